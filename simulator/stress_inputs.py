"""What a stress test reads: the weights (of a config, a run directory or a paper account) and
the weekly history of their stocks (:mod:`simulator.stress` computes the scenarios).

- Weights: a config's are its strategy's allocation for next week, as ``foliosim recommend``
  decides it (:func:`config_weights`); a run directory's are its
  positions at the close of its last week, or of the last week on or before a date
  (:func:`run_weights`, from weights.csv);
  a paper account's are its holdings at its last recorded week, as ``replay status`` shows
  them (:func:`simulator.accounts.held_weights`).
- History (:func:`simulator.stress.load_history`): the session's source for the held tickers and the
  benchmark, reaching back past ``data.start`` to the first row the source has (the bundled
  set and a CSV folder; the Yahoo source keeps to the cached ``data.start..data.end`` and
  never downloads), up to ``data.end`` or the weights' week when later
  (:meth:`simulator.session.Session.history`).
- :func:`stress_test` is ``foliosim stress``; :func:`simulator.stress.run_stress` is the
  stress test a backtest or a paper account's report writes into its summary.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from simulator.accounts import held_weights, open_account
from simulator.config import Config, load_config
from simulator.errors import ConfigError, RunDirError
from simulator.model_sources import AsOf
from simulator.rundir import check_run_dir, read_returns, read_weights
from simulator.session import Session, Window
from simulator.stress import (
    DEFAULT_SCENARIOS,
    check_weights,
    load_history,
    parse_scenarios,
    stress,
)
from simulator.summary import StressFacts


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
    session: Session,
    weights: dict[str, float],
    as_of: pd.Timestamp,
    scenarios: Sequence[str],
    source: str,
) -> StressFacts:
    """The stress test of ``weights`` held at ``as_of`` on the history of the session's
    source (``foliosim stress``); the data check's warnings are in its notes."""
    chosen = parse_scenarios(scenarios)  # an unknown name fails before any data is read
    held = check_weights(weights, source)  # so do weights that are not a portfolio
    history, warnings = load_history(session, list(held.index), as_of.date())
    facts = stress({str(t): float(w) for t, w in held.items()}, history, as_of, chosen, source)
    return facts.model_copy(update={"notes": [*facts.notes, *warnings]})


def config_weights(
    session: Session, as_of: dt.date | None
) -> tuple[pd.Timestamp, dict[str, float]]:
    """The allocation of the session's strategy for the week after ``as_of`` (default: the
    newest complete week), decided as ``foliosim recommend`` decides it (the session opened
    with the config's :meth:`~simulator.config.Config.decision_profile`), and its week."""
    window = Window.as_of(session.weekly, as_of or dt.date.today())
    built = session.strategy_rule(window, AsOf())
    decision, _log = session.decide_once(built, window)
    weights = {str(t): float(w) for t, w in decision.weights.items() if w}
    return window.last, weights


def stress_test(
    workspace: Path,
    *,
    config: Config | Path | None = None,
    run: Path | None = None,
    account: str | None = None,
    scenarios: Sequence[str] = DEFAULT_SCENARIOS,
    as_of: dt.date | None = None,
    overrides: Sequence[str] = (),
) -> StressFacts:
    """``foliosim stress``: the stress test of a config's next allocation, of a run
    directory's positions or of a paper account's holdings (one of them), at their last
    week or the last one on or before ``as_of``. ``overrides`` (``--set``) apply to a config
    file's or a run directory's config."""
    given = [n for n, v in (("CONFIG", config), ("--run", run), ("--account", account)) if v]
    if len(given) != 1:
        got = f" (got {' and '.join(given)})" if given else ""
        raise ConfigError(f"give one of CONFIG, --run RUN_DIR or --account NAME{got}")
    parse_scenarios(scenarios)  # an unknown scenario fails before any data is read
    if account is not None:
        if overrides:
            raise ConfigError(
                "--set does not apply to --account: the account's config is frozen in its journal"
            )
        with open_account(workspace, account) as acct:
            week, weights = held_weights(acct, as_of)
            session = Session.open(acct.config, workspace)
        source = f"account {account}"
    elif run is not None:
        check_run_dir(run)
        week, weights = run_weights(run, as_of)
        session = Session.open(load_config(run / "config.toml", list(overrides)), workspace)
        source = f"run {run}"
    else:
        assert config is not None
        if isinstance(config, Config):
            cfg, source = config, "config"
        else:
            cfg, source = load_config(config, list(overrides)), f"config {config}"
        session = Session.open(cfg, workspace, profile=cfg.decision_profile())
        week, weights = config_weights(session, as_of)
    return stress_of(session, weights, week, scenarios, source)
