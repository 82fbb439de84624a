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

Progress: a line when the data is loaded, when each variant starts and ends (with its figures
and time), per model trained, and the engine runs' phases (``progress``, ``note`` and
``train_progress`` of :func:`run_audit`, as a backtest's). With a folder
(:mod:`simulator.audit_folder`) each finished variant is kept on disk, and a rerun of the same
config on the same data skips it ("N of M variants were done before; resuming").
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from models.forecaster import TrainProgress, train
from models.registry import VersionInfo
from simulator.audit_folder import VARIANTS, AuditFolder, check_variants, run_key, variant_key
from simulator.config import Config
from simulator.model_sources import WalkForward
from simulator.plan import Factory, Resources, RunPlan
from simulator.results import BacktestResult, Phases, backtest
from simulator.session import Note, Session, Window
from simulator.sight import Sight
from simulator.training import model_spec, open_registry
from simulator.walkforward import RegistrySignal, UsedModel, retrain_ends
from strategies.rebalance import Progress
from strategies.rule import Decision, DecisionRule, History, State, as_decision, rule_inputs
from strategies.sizing import Limits

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
    registered, each tagged LEAKED. ``progress`` hears each network's epochs and ``note``
    a line per model, as a backtest's walk-forward models report."""

    variant: str
    progress: TrainProgress | None = None
    note: Note | None = None

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
            if self.note is not None:
                upto = pd.Timestamp(end).date()
                self.note(
                    f"model {k}/{len(ends)}: training {spec.name} ({LEAKED}: {variant}) "
                    f"on data up to {upto}"
                )
            model, _report = train(closes, spec, end, self.progress, features=panels, **leak)
            ref = f"{LEAKED}-{variant}/{k}"
            model.version = ref
            tags = {"train_end": pd.Timestamp(end).date().isoformat()}
            info = VersionInfo.pinned(ref, tags, dt.datetime.now(dt.UTC))
            used.append(UsedModel(model, info, trained=True))
        return RegistrySignal(used, allow_later=variant == "train_through_test", weekly=weekly)


def _skipped(plan: RunPlan, cfg: Config, variant: str) -> str:
    """Why ``variant`` cannot run on this plan, else ``""``."""
    if variant in ("honest", "peek_next_close"):
        return ""
    if not plan.strategy.uses_models:
        return "needs a strategy that trades on models (lstm_signal)"
    if cfg.model.version and variant != "train_through_test":
        return "the config pins model.version; this leak needs models it trains"
    return ""


def _row(variant: str, result: BacktestResult | None, note: str) -> dict[str, Any]:
    """``variant``'s row of the audit table (its figures, or the note of why it did not run)."""
    row: dict[str, Any] = {"variant": variant, "leaked": variant != "honest"}
    if result is None:
        row["note"] = note
        return row
    s = result.summary
    row["strategy"] = s.strategy_name
    for series, prefix in SHOWN:
        stats = s.series[series]
        row[f"{prefix}total_return"] = stats.total_return
        row[f"{prefix}sharpe"] = stats.sharpe
        row[f"{prefix}max_drawdown"] = stats.max_drawdown
    row["weeks"] = s.weeks
    row["note"] = ""
    return row


def _without_one_over_n(progress: Phases) -> Phases:
    """``progress`` less the 1/N phase, which :func:`run_audit` runs once before the
    variants."""

    def phase(name: str) -> Progress:
        return (lambda _done, _total: None) if name == "1/N" else progress(name)

    return phase


def run_audit(
    cfg: Config | Session,
    workspace: Path,
    variants: Sequence[str] = VARIANTS,
    *,
    folder: AuditFolder | None = None,
    progress: Phases | None = None,
    train_progress: TrainProgress | None = None,
    note: Note | None = None,
) -> tuple[pd.DataFrame, dict[str, BacktestResult]]:
    """Every variant's figures (one row each) and results, of a config or a session; see
    the module docstring.

    Parameters
    ----------
    folder
        Where each finished variant's row is kept (:class:`simulator.audit_folder.
        AuditFolder`): a variant kept there under the same config, data, code and pinned
        model version is not run again (it has a row and no result), and ``audit.json`` is
        written at the end. Its lock is held while the audit runs.
    progress, train_progress, note
        As a backtest's (:func:`simulator.backtest.run_backtest`): a bar or log line per
        phase (1/N, each variant's engine run), each network's epochs, and a line when the
        data is loaded, when each variant starts and ends (with its time) and per model.
    """
    variants = check_variants(variants)
    session = cfg if isinstance(cfg, Session) else Session.open(cfg, workspace, note=note)
    if folder is None:
        return _audit(session, variants, None, progress, train_progress, note)
    with folder.locked():  # a second audit of this folder stops here, with one line
        return _audit(session, variants, folder, progress, train_progress, note)


def pinned_model(session: Session) -> str:
    """The registry version the config's ``model.version`` names now (``NAME/V``) and the
    SHA-256 of its weights and manifest, else ``""`` (nothing pinned, or no models): part of
    the audit folder's key, so that a moved alias or a newer version is not resumed."""
    cfg = session.config
    if not cfg.model.version or not session.plan.strategy.uses_models:
        return ""
    info = open_registry(session.workspace, cfg.model.registry_uri).resolve(cfg.model.version)
    digests = (info.tags.get(k, "") for k in ("weights_sha256", "manifest_sha256"))
    return " ".join((info.ref, *digests))


def _audit(
    session: Session,
    variants: list[str],
    folder: AuditFolder | None,
    progress: Phases | None,
    train_progress: TrainProgress | None,
    note: Note | None,
) -> tuple[pd.DataFrame, dict[str, BacktestResult]]:
    """:func:`run_audit` of an open session (the folder's lock held)."""
    say = note or (lambda _line: None)
    cfg, plan = session.config, session.plan
    clock = time.perf_counter()
    say("loading data ...")
    weekly = session.weekly
    say(
        f"data: {len(weekly.tickers)} tickers, {len(weekly.calendar)} weeks in "
        f"{time.perf_counter() - clock:.1f} s"
    )
    window = Window.backtest(weekly, cfg)
    notes = {v: _skipped(plan, cfg, v) for v in variants}
    runnable = [v for v in variants if not notes[v]]
    run = run_key(cfg, weekly, pinned_model(session)) if folder is not None else ""
    kept: dict[str, dict[str, Any]] = {}
    if folder is not None:
        for v in runnable:
            row = folder.get(v, variant_key(run, v))
            if row is not None:
                kept[v] = row
        if kept and len(kept) == len(runnable):
            say(f"{len(kept)} of {len(runnable)} variants were done before: nothing to run")
        elif kept:
            say(
                f"{len(kept)} of {len(runnable)} variants were done before "
                f"({', '.join(kept)}); resuming"
            )
    for reason in dict.fromkeys(n for n in notes.values() if n):
        skipped = [v for v in variants if notes[v] == reason]
        say(f"skipping {', '.join(skipped)}: {reason}")
    phases = progress
    if progress is not None and len(kept) < len(runnable):
        # The 1/N column is run once, here, and then shared by every variant's session (a
        # phase each variant named again would hang as a bar that never moves).
        session.one_over_n(window, progress("1/N"))
        phases = _without_one_over_n(progress)
    results: dict[str, BacktestResult] = {}
    rows: dict[str, dict[str, Any]] = {}
    for k, variant in enumerate(runnable, start=1):
        head = f"variant {k}/{len(runnable)} {variant}"
        if variant in kept:
            rows[variant] = kept[variant]
            continue
        say(f"{head}{'' if variant == 'honest' else f' ({LEAKED})'} ...")
        started = time.perf_counter()
        if variant == "honest":
            result = backtest(session, window, phases, WalkForward(train_progress, note))
        elif variant == "peek_next_close":
            leaky = session.with_plan(_peeking(plan, session.sight))
            result = backtest(leaky, window, phases, WalkForward(train_progress, note))
        else:
            leaky = session.with_plan(_renamed(plan, variant, plan.strategy.build))
            result = backtest(leaky, window, phases, LeakyModels(variant, train_progress, note))
        seconds = time.perf_counter() - started
        results[variant] = result
        rows[variant] = _row(variant, result, "")
        if folder is not None:
            folder.put(variant, variant_key(run, variant), rows[variant], seconds)
        stats = result.summary.series["strategy"]
        say(
            f"{head}: total return {stats.total_return:.1%}, Sharpe {stats.sharpe:.2f}, "
            f"in {seconds:.1f} s"
        )
    table = [rows[v] if v in rows else _row(v, None, notes[v]) for v in variants]
    if folder is not None:
        folder.finish(table)
    return pd.DataFrame(table), results
