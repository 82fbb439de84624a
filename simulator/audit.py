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
- ``train_through_test`` (LSTM strategies): one model trained on every week up to the end of the
  backtest, test weeks included, used from the first week (it is not registered).
- ``scaler_full`` (LSTM strategies): the models of the honest walk-forward (same train_ends),
  but each one's scalers are fitted on the whole series, test weeks included. With the default
  ``window`` scaling the target's mean and deviation are those of the test weeks' returns too,
  so the network's bias leans towards each ticker's test-period drift.
- ``early_stop_on_test`` (LSTM strategies): the models of the honest walk-forward, trained on
  every seen week, with early stopping and the best epoch chosen on the test weeks up to the
  backtest's end. Choosing epochs, or any setting, by the test year's loss is the leak a paper
  that reports one test year can most easily make.

The model variants train their own models and never register them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from models.forecaster import train
from models.registry import VersionInfo
from simulator.config import Config
from simulator.errors import ConfigError
from simulator.model_sources import WalkForward
from simulator.plan import Factory, Resources, RunPlan
from simulator.results import BacktestResult, backtest
from simulator.session import Session, Window
from simulator.sight import Sight
from simulator.training import model_spec
from simulator.walkforward import RegistrySignal, UsedModel, retrain_ends
from strategies.rule import Decision, DecisionRule, History, State, as_decision, rule_inputs
from strategies.sizing import Limits

VARIANTS = ("honest", "peek_next_close", "train_through_test", "scaler_full", "early_stop_on_test")
LEAKED = "LEAKED"
#: The series of the audit table and their column prefixes.
SHOWN = (("strategy", ""), ("equal_weight", "1/N "), ("benchmark", "index "))


class _PeekNextClose:
    """A rule that decides at week t what it would decide at the close of t+1 (a leak)."""

    def __init__(self, inner: DecisionRule, sight: Sight) -> None:
        self.inner = inner
        self.name = inner.name
        self.sight = sight  # every week: this wrapper reads past the engine's cut on purpose
        self.calendar = pd.DatetimeIndex(sight.closes.index)

    @property
    def inputs(self) -> tuple[str, ...]:
        return rule_inputs(self.inner)

    def decide(self, week: pd.Timestamp, history: History, state: State) -> Decision:
        later = self.calendar[self.calendar > week]
        if later.empty:
            return as_decision(self.inner.decide(week, history, state))
        peek = later[0]
        leaked = self.sight.at(peek, history.tradable, tuple(history.inputs))
        return as_decision(self.inner.decide(peek, leaked, state))


def _renamed(plan: RunPlan, variant: str, build: Factory) -> RunPlan:
    name = f"{plan.strategy.name} [{LEAKED}: {variant}]"
    return dataclasses.replace(
        plan, strategy=dataclasses.replace(plan.strategy, name=name, build=build)
    )


def _peeking(plan: RunPlan, sight: Sight) -> RunPlan:
    base = plan.strategy.build

    def build(p: RunPlan, limits: Limits, res: Resources) -> DecisionRule:
        return _PeekNextClose(base(p, limits, res), sight)

    return _renamed(plan, "peek_next_close", build)


@dataclass
class LeakyModels:
    """The models of a leaky variant (a :class:`simulator.session.ModelSource` that breaks
    the rule "trained before t" on purpose): trained with ``variant``'s leak, never
    registered, each tagged LEAKED."""

    variant: str

    def signal(self, session: Session, window: Window) -> RegistrySignal:
        cfg, weekly, variant = session.config, session.weekly, self.variant
        closes, weeks = session.sight.closes, window.weeks
        spec = model_spec(cfg)
        if variant == "train_through_test":
            ends = [weeks[-1]]
        else:
            first = pd.Timestamp(cfg.model_train_end())
            ends = retrain_ends(first, window.decisions, cfg.model.retrain_every)  # as honest
        leak = {
            "train_through_test": {},
            "scaler_full": {"scaler_end": closes.index[-1]},
            "early_stop_on_test": {"validate_through": weeks[-1]},
        }[variant]
        used = []
        panels = session.sight.panels()
        for k, end in enumerate(ends, start=1):
            model, _report = train(closes, spec, end, features=panels, **leak)
            ref = f"{LEAKED}-{variant}/{k}"
            model.version = ref
            tags = {"train_end": pd.Timestamp(end).date().isoformat()}
            info = VersionInfo.pinned(ref, tags, dt.datetime.now(dt.UTC))
            used.append(UsedModel(model, info, trained=True))
        return RegistrySignal(used, allow_later=variant == "train_through_test", weekly=weekly)


def run_audit(
    cfg: Config | Session, workspace: Path, variants: Sequence[str] = VARIANTS
) -> tuple[pd.DataFrame, dict[str, BacktestResult]]:
    """Every variant's figures (one row each) and results, of a config or a session; see
    the module docstring."""
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ConfigError(
            f"unknown audit variant(s) {', '.join(unknown)}; known: {', '.join(VARIANTS)}"
        )
    session = cfg if isinstance(cfg, Session) else Session.open(cfg, workspace)
    cfg, plan = session.config, session.plan
    window = Window.backtest(session.weekly, cfg)
    results: dict[str, BacktestResult] = {}
    notes: dict[str, str] = {}
    for variant in variants:
        if variant == "honest":
            results[variant] = backtest(session, window, models=WalkForward())
        elif variant == "peek_next_close":
            leaky = session.with_plan(_peeking(plan, session.sight))
            results[variant] = backtest(leaky, window, models=WalkForward())
        elif not plan.strategy.uses_models:
            notes[variant] = "needs a strategy that trades on models (lstm_signal)"
        elif cfg.model.version and variant != "train_through_test":
            notes[variant] = "the config pins model.version; this leak needs models it trains"
        else:
            leaky = session.with_plan(_renamed(plan, variant, plan.strategy.build))
            results[variant] = backtest(leaky, window, models=LeakyModels(variant))
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
