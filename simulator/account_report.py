"""A paper account's report: its recorded weeks read back as a run, beside 1/N and the index.

:func:`comparison` is the account's equity beside 1/N and the index (the web app's chart);
:func:`account_result` is the account so far as a backtest result, for a tear sheet
(``replay status --html``), with its stress test and, for a model strategy, its
explanations; :func:`from_account` is the account as ``foliosim explain`` reads it. Each
public call opens one :class:`simulator.session.Session` over the recorded weeks and reads
everything else from the journal; the figures are those the account recorded, never re-run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from simulator.accounts import Account, open_account, pinned_signal
from simulator.engine import EngineResult
from simulator.errors import ConfigError, DataError, JournalError
from simulator.explain import Traded, check_models, run_explanations
from simulator.plan import Resources
from simulator.results import BacktestResult, assemble, weights_table
from simulator.session import Session, Window
from simulator.stress import run_stress
from simulator.summary import ModelUse, ReplayFacts
from strategies.rule import DECISION_COLUMNS


def _replayed(
    account: Account, workspace: Path, least: int, what: str
) -> tuple[pd.DataFrame, Window, Session]:
    """The account's recorded weeks (at least ``least``, for ``what``), their window (a
    backtest over them) and the session whose data holds every one of them."""
    rows = account.journal.weeks()
    if len(rows) < least:
        raise JournalError(
            f"account {account.name!r} has {len(rows)} recorded week(s); {what} needs at "
            f"least {least}: step it further first"
        )
    weeks = pd.DatetimeIndex(rows["week"])
    session = Session.open(account.config, workspace, through=weeks[-1].date())
    absent = weeks.difference(session.weekly.calendar)
    if len(absent):
        raise DataError(f"the data no longer holds recorded week {absent[0].date()}")
    return rows, Window.replayed(weeks), session


def comparison(account: Account, workspace: Path) -> pd.DataFrame:
    """The account's equity beside 1/N and the index over its recorded weeks, in money.

    Shape ``(n_weeks, 3)``, columns ``account, equal_weight, benchmark``: 1/N is the engine's
    run of the 1/N rule from the start cash over the same weeks with the account's settings
    (the tear sheet's 1/N); the index is scaled to the start cash at the first week (NaN where
    it has no price).
    """
    rows, window, session = _replayed(account, workspace, 2, "a comparison")
    one_over_n = session.one_over_n(window)
    bench = session.weekly.benchmark.reindex(window.weeks)
    return pd.DataFrame(
        {
            "account": rows["equity"].to_numpy(float),
            "equal_weight": one_over_n.values.to_numpy(float),
            "benchmark": (bench / bench.iloc[0] * account.config.backtest.cash).to_numpy(float),
        },
        index=window.weeks,
    )


def account_result(account: Account, workspace: Path) -> BacktestResult:
    """The account so far as a backtest result (for a tear sheet): its equity, orders and
    weights from the journal, 1/N and the index over the same weeks from the data."""
    cfg = account.config
    journal = account.journal
    rows, window, session = _replayed(account, workspace, 3, "a tear sheet")
    weeks = window.weeks
    values = pd.Series(rows["equity"].to_numpy(float), index=weeks, name="value")
    orders = journal.orders().drop(columns="week")
    holdings = journal.all_holdings()
    weights = (
        (holdings["shares"] * holdings["close"])
        .groupby([holdings["week"], holdings["ticker"]])
        .sum()
        .unstack()
        .fillna(0.0)
        .reindex(index=weeks, fill_value=0.0)
        .div(values, axis=0)
    )
    main = EngineResult(values, orders, weights, pd.DataFrame(columns=DECISION_COLUMNS))
    held = _held(session, holdings, weights, values)
    returns, rf, summary, exposure = assemble(
        session.plan,
        session.weekly,
        weeks,
        main,
        session.one_over_n(window),
        session.baselines(window),
        held,
    )
    stressed = run_stress(session, weights.iloc[-1], weeks[-1])
    used = _models_used(account, rows, weeks, orders)
    facts = _replay_facts(account, len(weeks))
    summary = summary.model_copy(update={"replay": facts, "models": used, "stress": stressed})
    explanations = None
    if session.plan.strategy.uses_models and account.pins:
        explanations = _account_explanations(account, session, window, values)
    return BacktestResult(
        cfg,
        returns,
        weights_table(main),
        orders,
        journal.decisions(),
        rf,
        summary,
        exposure=exposure,
        explanations=explanations,
    )


def _held(
    session: Session, holdings: pd.DataFrame, weights: pd.DataFrame, values: pd.Series
) -> pd.DataFrame:
    """The weights held over each return week, shape ``(n_weeks - 1, n_tickers)``.

    The journal records each close's holdings before that close's fills: the shares held
    over that week. The engine values them after the fills that bought them: at the close
    of the week itself with next-open fills, at the close before with close fills.
    """
    if session.plan.engine.fill != "close":
        return weights.iloc[1:]
    weeks = weights.index
    shares = holdings.groupby(["week", "ticker"])["shares"].sum().unstack()
    shares = shares.reindex(index=weeks).fillna(0.0)
    closes = session.weekly.closes().reindex(index=weeks, columns=shares.columns)
    return (shares * closes.shift(1)).fillna(0.0).div(values.shift(1), axis=0).iloc[1:]


def _replay_facts(account: Account, weeks: int) -> ReplayFacts:
    return ReplayFacts(
        account=account.name,
        model_version=account.model_version,
        model_train_end=account.meta.get("model_train_end"),
        allow_later_model=account.allow_later_model,
        look_ahead=account.look_ahead,
        start_week=account.start_week.date().isoformat(),
        weeks=weeks,
    )


def _models_used(
    account: Account, rows: pd.DataFrame, weeks: pd.DatetimeIndex, orders: pd.DataFrame
) -> list[ModelUse]:
    """The pinned versions that decided some recorded week, oldest first."""
    used = []
    for pin in account.pins:
        decided = weeks[(rows["model_version"] == pin.version).to_numpy()]
        if decided.empty:
            continue
        used.append(
            ModelUse(
                version=pin.version,
                arch=pin.tags.get("arch", "lstm"),  # a version from before architectures
                train_end=pin.train_end.date().isoformat(),
                first_decision=decided[0].date().isoformat(),
                last_decision=decided[-1].date().isoformat(),
                decisions=len(decided),
                orders=int((orders["model_version"] == pin.version).sum()),
                trained_by_this_run=False,
            )
        )
    return used


def _account_explanations(
    account: Account, session: Session, window: Window, values: pd.Series
) -> dict[str, Any] | None:
    """The tear sheet's Explanations of a paper account (as a backtest's: Integrated Gradients
    of the last decision's largest positions, permutation importance over its weeks), from
    its pinned versions and the forecasts its journal recorded; None before any forecast."""
    weeks = window.weeks
    targets = account.journal.targets()
    targets = targets[targets["week"].isin(window.decisions)]
    if targets.empty or not targets["predicted_return"].notna().any():
        return None
    closes = session.weekly.closes()
    following = closes.reindex(weeks).shift(-1).rename_axis(index="week").reset_index()
    actual = following.melt(id_vars="week", var_name="ticker", value_name="actual_close")
    predictions = targets.rename(columns={"weight": "target"}).merge(
        actual, on=["week", "ticker"], how="left"
    )

    def rerun(signal: Any) -> float:
        res = Resources(signal=lambda: signal, decisions=window.decisions)
        rerun_values = session.run(session.plan.strategy_rule(res), window).values
        return float(rerun_values.iloc[-1] / rerun_values.iloc[0] - 1.0)

    return run_explanations(
        pinned_signal(account, session.weekly),
        closes,
        predictions,
        rerun,
        float(values.iloc[-1] / values.iloc[0] - 1.0),
        account.config.model.seed,
    )


# --- explanations of an account -----------------------------------------------------------


def from_account(name: str, workspace: Path) -> Traded:
    """A paper account as ``foliosim explain`` reads it: its recorded forecasts and orders,
    and its pinned versions read from their files (verified)."""
    with open_account(workspace, name) as account:
        cfg = account.config
        journal = account.journal
        weeks = journal.weeks()
        through = weeks["week"].iloc[-1].date() if len(weeks) else None
        session = Session.open(cfg, workspace, through=through)
        check_models(session, f"account {name!r}")
        if weeks.empty:
            raise ConfigError(
                f"account {name!r} has no recorded weeks yet; step it first "
                f"(`foliosim replay step --account {name}`)"
            )
        targets = journal.targets()
        # Each week's deciding version (a scheduled account retrains between weeks).
        version = dict(zip(weeks["week"], weeks["model_version"], strict=True))
        forecasts = pd.DataFrame(
            {
                "week": targets["week"],
                "ticker": targets["ticker"],
                "model_version": targets["week"].map(version),
                "predicted_return": targets["predicted_return"],
                "target": targets["weight"],
            }
        )
        orders = journal.orders()
        models = {m.info.ref: m.model for m in pinned_signal(account, session.weekly).models}
    return Traded(f"account {name!r}", session, forecasts, orders, models.__getitem__)
