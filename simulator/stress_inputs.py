"""What a stress test reads: the weights (of a config, a run directory or a paper account) and
the weekly history of their stocks (:mod:`simulator.stress` computes the scenarios).

- Weights: a config's are its strategy's allocation for next week, as ``foliosim recommend``
  decides it (:func:`simulator.recommend.config_weights`); a run directory's are its
  positions at the close of its last week, or of the last week on or before a date
  (:func:`run_weights`, from weights.csv);
  a paper account's are its holdings at its last recorded week, as ``replay status`` shows
  them (:func:`simulator.replay.held_weights`).
- History (:func:`load_history`): the config's source for the held tickers and the benchmark,
  reaching back past ``data.start`` to the first row the source has (the bundled set and a CSV
  folder; the Yahoo source keeps to the cached ``data.start..data.end`` and never downloads),
  up to ``data.end`` or the weights' week when later.
- :func:`run_stress` is the stress test a backtest or a paper account's report writes into its
  summary: it never fails the run, and says in its notes what it could not do.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from simulator.config import Config
from simulator.data import WeeklyData, load_daily, make_weekly
from simulator.errors import DataError, FoliosimError, RunDirError
from simulator.rundir import read_returns, read_weights
from simulator.stress import (
    DEFAULT_SCENARIOS,
    StressData,
    check_weights,
    parse_scenarios,
    stress,
)
from simulator.summary import StressFacts

#: Where the history of a bundled or CSV source starts: before any row it can hold.
HISTORY_START = dt.date(1900, 1, 1)


def load_history(
    cfg: Config, tickers: Sequence[str], through: dt.date, workspace: Path
) -> tuple[StressData, tuple[str, ...]]:
    """The weekly history of ``tickers`` and the benchmark (see the module docstring), and the
    data check's warnings."""
    data = cfg.data
    update: dict[str, object] = {"tickers": tuple(tickers), "end": max(data.end, through)}
    if data.source != "yahoo":
        update["start"] = HISTORY_START
    daily = load_daily(data.model_copy(update=update), cfg.report.risk_free, workspace)
    weekly = make_weekly(daily)
    return StressData.from_weekly(weekly, cfg.report.risk_free), weekly.warnings


def run_weights(run_dir: Path, as_of: dt.date | None) -> tuple[pd.Timestamp, dict[str, float]]:
    """The run's positions at the close of its last week, or of its last week on or before
    ``as_of`` (the weeks are those of returns.csv)."""
    weeks = pd.DatetimeIndex(read_returns(run_dir / "returns.csv", ["strategy"]).index)
    if as_of is not None:
        earlier = weeks[weeks <= pd.Timestamp(as_of)]
        if not len(earlier):
            raise RunDirError(
                f"--weights-as-of {as_of} is before the first week of {run_dir} "
                f"({weeks[0].date()}); pick a date in {weeks[0].date()}..{weeks[-1].date()}"
            )
        weeks = earlier
    week = weeks[-1]
    table = read_weights(run_dir)
    rows = table[table["date"] == week]
    return week, dict(zip(rows["ticker"], rows["weight"].astype(float), strict=True))


def stress_of(
    cfg: Config,
    weights: dict[str, float],
    as_of: pd.Timestamp,
    scenarios: Sequence[str],
    source: str,
    workspace: Path,
) -> StressFacts:
    """The stress test of ``weights`` held at ``as_of`` on the history of ``cfg``'s source
    (``foliosim stress``); the data check's warnings are in its notes."""
    chosen = parse_scenarios(scenarios)  # an unknown name fails before any data is read
    held = check_weights(weights, source)  # so do weights that are not a portfolio
    history, warnings = load_history(cfg, list(held.index), as_of.date(), workspace)
    facts = stress({str(t): float(w) for t, w in held.items()}, history, as_of, chosen, source)
    return facts.model_copy(update={"notes": [*facts.notes, *warnings]})


def run_stress(
    cfg: Config, weights: pd.Series, as_of: pd.Timestamp, workspace: Path, weekly: WeeklyData
) -> StressFacts:
    """The stress test of a run's positions at its last week ``as_of`` (``weights``: ticker ->
    weight, zeros allowed), every default scenario, for its summary. It never fails the run:
    when the whole history cannot be loaded the run's own ``weekly`` data is used, and a
    portfolio that cannot be stressed (all cash) has no scenario; the notes say so."""
    source = f"the positions held at the close of the run's last week, {as_of.date()}"
    held = {str(t): float(w) for t, w in weights.items() if w}
    if not held:
        return StressFacts(
            as_of=as_of.date(),
            source=source,
            benchmark=cfg.data.benchmark,
            notes=[
                f"the portfolio held no position at the close of {as_of.date()}: nothing to stress"
            ],
        )
    notes: list[str] = []
    try:
        history, warnings = load_history(cfg, list(held), as_of.date(), workspace)
    except FoliosimError as err:
        history, warnings = StressData.from_weekly(weekly, cfg.report.risk_free), ()
        cal = weekly.calendar
        notes.append(
            f"the whole history could not be loaded ({err}); the run's own data, "
            f"{cal[0].date()}..{cal[-1].date()}, is used"
        )
    try:
        facts = stress(held, history, as_of, parse_scenarios(DEFAULT_SCENARIOS), source)
    except DataError as err:
        return StressFacts(
            as_of=as_of.date(),
            source=source,
            benchmark=cfg.data.benchmark,
            notes=[*notes, f"not computed: {err}"],
        )
    return facts.model_copy(update={"notes": [*facts.notes, *notes, *warnings]})
