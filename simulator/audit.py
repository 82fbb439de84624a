"""The leak audit (``foliosim audit``): how much a look-ahead leak inflates a backtest.

The config runs honestly and then with deliberate leaks, each through the same engine, limits
and costs, and the figures are set side by side. The leaks exist only here, as named variants
of the run plan: no config field can switch one on, and every result of theirs is labelled
LEAKED.

Variants:

- ``honest``: the backtest as ``foliosim backtest`` runs it.
- ``peek_next_close``: the decision of week t is made as if at the close of week t+1 (the rule
  is handed the history up to t+1 and asked about t+1) but trades at week t: an off-by-one in
  the date alignment, the commonest leak there is. Any strategy.
- ``train_through_test`` (LSTM strategies): one model trained on every week up to the end of
  the backtest, test weeks included, used from the first week (it is not registered).

Not built: ``scaler_full`` (scalers fitted on the whole series). foliosim's default scaling
(``model.scaling = "window"``) scales each 24-week window by its own figures, so there is no
fitted scaler to leak; with ``scaling = "ticker"`` the scaler is fitted on the training window
only, and fitting it on the test weeks would be this audit's next variant.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from simulator.backtest import BacktestResult, backtest_weeks, run_backtest
from simulator.config import Config
from simulator.data import load_daily, make_weekly
from simulator.errors import ConfigError
from simulator.plan import Resources, RunPlan, StrategySpec, resolve
from strategies.rule import Decision, DecisionRule, History, State, as_decision
from strategies.sizing import Limits

VARIANTS = ("honest", "peek_next_close", "train_through_test")
LEAKED = "LEAKED"
#: The series of the audit table and their column prefixes.
SHOWN = (("strategy", ""), ("equal_weight", "1/N "), ("benchmark", "index "))


class _PeekNextClose:
    """A rule that decides at week t what it would decide at the close of t+1 (a leak)."""

    def __init__(self, inner: DecisionRule, closes: pd.DataFrame) -> None:
        self.inner = inner
        self.name = inner.name
        self.closes = closes  # every week: this wrapper reads past the engine's cut on purpose
        self.calendar = pd.DatetimeIndex(closes.index)

    def decide(self, week: pd.Timestamp, history: History, state: State) -> Decision:
        later = self.calendar[self.calendar > week]
        if later.empty:
            return as_decision(self.inner.decide(week, history, state))
        peek = later[0]
        leaked = History.cut(self.closes, peek, history.tradable)
        return as_decision(self.inner.decide(peek, leaked, state))


def _leaky(plan: RunPlan, variant: str, spec: StrategySpec, closes: pd.DataFrame) -> RunPlan:
    base = spec.build

    def build(p: RunPlan, limits: Limits, res: Resources) -> DecisionRule:
        return _PeekNextClose(base(p, limits, res), closes)

    name = f"{spec.name} [{LEAKED}: {variant}]"
    return dataclasses.replace(plan, strategy=dataclasses.replace(spec, name=name, build=build))


def _train_through_test(plan: RunPlan, workspace: Path) -> BacktestResult:
    """The LSTM strategy on one model trained on every week up to the backtest's end."""
    from models.forecaster import train
    from models.registry import VersionInfo
    from simulator.training import model_spec
    from simulator.walkforward import RegistrySignal, UsedModel

    cfg = plan.config
    weekly = make_weekly(load_daily(cfg.data, cfg.report.risk_free, workspace))
    weeks = backtest_weeks(weekly, cfg)
    model, _report = train(weekly.closes(), model_spec(cfg), weeks[-1])
    ref = f"{LEAKED}-train-through-test/1"
    model.version = ref
    tags = {"train_end": weeks[-1].date().isoformat()}
    info = VersionInfo.pinned(ref, tags, dt.datetime.now(dt.UTC))
    signal = RegistrySignal([UsedModel(model, info, trained=True)], allow_later=True)
    spec = plan.strategy
    name = f"{spec.name} [{LEAKED}: train_through_test]"

    def build(p: RunPlan, limits: Limits, res: Resources) -> DecisionRule:
        return spec.build(p, limits, Resources(signal=lambda: signal, decisions=res.decisions))

    leaky = dataclasses.replace(plan, strategy=dataclasses.replace(spec, name=name, build=build))
    return run_backtest(leaky, workspace)


def run_audit(
    cfg: Config, workspace: Path, variants: Sequence[str] = VARIANTS
) -> tuple[pd.DataFrame, dict[str, BacktestResult]]:
    """Every variant's figures (one row each) and results; see the module docstring."""
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ConfigError(
            f"unknown audit variant(s) {', '.join(unknown)}; known: {', '.join(VARIANTS)}"
        )
    plan = resolve(cfg)
    results: dict[str, BacktestResult] = {}
    notes: dict[str, str] = {}
    for variant in variants:
        if variant == "honest":
            results[variant] = run_backtest(plan, workspace)
        elif variant == "peek_next_close":
            weekly = make_weekly(load_daily(cfg.data, cfg.report.risk_free, workspace))
            leaky = _leaky(plan, variant, plan.strategy, weekly.closes())
            results[variant] = run_backtest(leaky, workspace)
        elif not plan.strategy.uses_models:
            notes[variant] = "needs a strategy that trades on models (lstm_signal)"
        else:
            results[variant] = _train_through_test(plan, workspace)
    rows = []
    for variant in variants:
        row: dict[str, Any] = {"variant": variant, "leaked": variant != "honest"}
        if variant in results:
            s = results[variant].summary
            row["strategy"] = s.strategy_name
            for series, prefix in SHOWN:
                stats = s.series[series]
                row[f"{prefix}total_return"] = stats.total_return
                row[f"{prefix}sharpe"] = stats.sharpe
                row[f"{prefix}max_drawdown"] = stats.max_drawdown
            row["weeks"] = s.weeks
            row["note"] = ""
        else:
            row["note"] = notes.get(variant, "")
        rows.append(row)
    return pd.DataFrame(rows), results
