"""A backtest: data -> weekly bars -> engine runs (strategy, 1/N and any baselines) -> returns
and summary.

Returns are dated on the week they were earned: the row of week t is the value at the close
of t over the value at the close of t-1, less one. The first decision is made at the close of
the first week on or after ``backtest.start``, so the first return row is the week after it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from simulator.config import Baseline, Config
from simulator.data import WeeklyData, load_daily, make_weekly
from simulator.engine import EngineResult, run_engine
from simulator.errors import ConfigError, DataError, did_you_mean
from simulator.metrics import RETURN_COLUMNS, probabilistic_sharpe, summarize, weekly_risk_free
from strategies.profile import REASONS, Profile, ProfileGuard
from strategies.rebalance import Decide, Progress, Tag
from strategies.sizing import Limits, equal_weight_array

if TYPE_CHECKING:
    from models.forecaster import TrainProgress
    from simulator.signals import LstmRun, Note


@dataclass(frozen=True)
class BacktestResult:
    """Everything a run directory holds, in memory.

    Attributes
    ----------
    returns
        Weekly returns, index = return weeks, columns ``RETURN_COLUMNS`` and then one per
        ``[report] baselines`` optimiser.
    weights
        Long table ``date, ticker, weight`` of the strategy's positions after each week's fills.
    orders
        The strategy's orders (see ``strategies.rebalance.ORDER_COLUMNS``).
    risk_free
        The weekly risk-free rate of each return week.
    summary
        The content of summary.json.
    predictions
        LSTM-signal runs: one row per decision week and ticker
        (``simulator.signals.PREDICTION_COLUMNS``), the
        forecast, the target weight and the close the next week actually had.
    models
        LSTM-signal runs: the content of models.json (the versions used, their training and
        test records, and the prediction metrics over the traded weeks).
    bounds
        With an investor profile: one row per limit that bound (``week, reason, ticker,
        detail``; see :mod:`strategies.profile`).
    timings
        Seconds per stage: ``data``, ``equal_weight`` (its engine run), ``models`` (training
        or loading them), ``strategy`` (its engine run) and ``baselines`` (their engine runs).
        Not written to the run directory.
    """

    config: Config
    returns: pd.DataFrame
    weights: pd.DataFrame
    orders: pd.DataFrame
    risk_free: pd.Series
    summary: dict[str, Any]
    predictions: pd.DataFrame | None = None
    models: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    bounds: pd.DataFrame | None = None


def backtest_weeks(weekly: WeeklyData, cfg: Config) -> pd.DatetimeIndex:
    """The simulated weeks: the first week ending on or after backtest.start to backtest.end."""
    cal = weekly.calendar
    weeks = cal[(cal >= pd.Timestamp(cfg.backtest.start)) & (cal <= pd.Timestamp(cfg.backtest.end))]
    if len(weeks) < 3:
        raise DataError(
            f"backtest {cfg.backtest.start}..{cfg.backtest.end} holds {len(weeks)} week(s) of "
            f"data (data covers {cal[0].date()}..{cal[-1].date()}); at least 3 are needed"
        )
    return weeks


#: Trailing weeks of the per-stock analytics in summary.json and the tear sheet.
ANALYTICS_WINDOW = 52


def eligible_frame(weekly: WeeklyData, weeks: pd.DatetimeIndex, min_history: int) -> pd.DataFrame:
    """Whether each ticker may trade at each of ``weeks``: a bar that week and at least
    ``min_history`` bars up to it (boolean, ``(n_weeks, n_tickers)``)."""
    seen = weekly.closes().notna()
    return (seen & (seen.cumsum() >= min_history)).reindex(weeks)


def eligibility(weekly: WeeklyData, weeks: pd.DatetimeIndex, min_history: int) -> pd.DataFrame:
    """Whether each ticker may be traded at each week: a bar that week and ``min_history`` bars.

    Returns a boolean frame, shape ``(n_weeks, n_tickers)``. Bars before the backtest count as
    history; a late listing joins once it has ``min_history`` weekly bars.
    """
    ok = eligible_frame(weekly, weeks, min_history)
    seen = weekly.closes().notna()
    never = [t for t in ok.columns if not ok[t].iloc[:-1].any()]
    if len(never) == len(ok.columns):
        raise DataError(
            f"too little history: no ticker has {min_history} weekly bars by {weeks[-2].date()}; "
            "start data earlier, start the backtest later, or lower backtest.min_history"
        )
    if never:
        counts = {t: int(seen[t].loc[: weeks[-2]].sum()) for t in never}
        detail = ", ".join(f"{t} ({n})" for t, n in counts.items())
        raise DataError(
            f"too little history: {detail} weekly bar(s) by {weeks[-2].date()}, "
            f"backtest.min_history is {min_history}; drop the ticker(s) or lower min_history"
        )
    return ok


def eligible_sets(ok: pd.DataFrame) -> dict[pd.Timestamp, frozenset[str]]:
    """Week -> the tickers that may trade that week (see :func:`eligibility`)."""
    return {
        week: frozenset(ok.columns[row]) for week, row in zip(ok.index, ok.to_numpy(), strict=True)
    }


def equal_weight_rule(ok: pd.DataFrame, limits: Limits) -> Decide:
    """The 1/N decision: equal weights over the eligible tickers with a bar that week."""
    eligible = eligible_sets(ok)

    def decide(week: pd.Timestamp, tickers: list[str]) -> Mapping[str, float]:
        names = [t for t in tickers if t in eligible[week]]
        return dict(zip(names, equal_weight_array(len(names), limits).tolist(), strict=True))

    return decide


def baseline_rule(
    cfg: Config, weekly: WeeklyData, ok: pd.DataFrame, limits: Limits, kind: Baseline | None = None
) -> Decide:
    """The min- or mean-variance decision (``[baseline]``) on the eligible names: ``kind``, or
    the strategy of ``cfg`` when it is one of them."""
    from strategies.optimize import BaselineRule  # skfolio: only for runs that need it

    b = cfg.baseline
    if kind is None:
        kind = "min_variance" if cfg.backtest.strategy == "min_variance" else "mean_variance"
    return BaselineRule(
        kind,
        weekly.closes(),
        eligible_sets(ok),
        limits,
        b.window,
        b.min_weeks,
        risk_aversion=b.risk_aversion,
        max_gross=max(b.max_gross, limits.gross) if limits.allow_short else None,
    )


#: ``engine(decide, guard=None, tag=None)``: one engine run of a decision rule (see
#: :func:`engine_runner`).
Engine = Callable[..., EngineResult]


def engine_runner(
    cfg: Config, weekly: WeeklyData, weeks: pd.DatetimeIndex, progress: Progress | None = None
) -> Engine:
    """``engine(decide, guard=None, tag=None)``: a run of ``decide`` over ``weeks`` (deciding
    at all but the last) with the config's cash, fill and commission; ``guard`` (a profile
    guard wrapping ``decide``) watches the equity, ``tag`` labels the orders."""
    bt = cfg.backtest

    def engine(
        decide: Decide, guard: ProfileGuard | None = None, tag: Tag | None = None
    ) -> EngineResult:
        return run_engine(
            weekly,
            weeks,
            weeks[:-1],
            decide,
            cash=bt.cash,
            fill=bt.fill,
            commission=bt.commission,
            tag=tag,
            progress=progress,
            observe=guard.observe if guard is not None else None,
        )

    return engine


def run_baselines(
    cfg: Config,
    weekly: WeeklyData,
    ok: pd.DataFrame,
    limits: Limits,
    profile: Profile | None,
    engine: Engine,
) -> dict[str, EngineResult]:
    """The engine result of each ``[report] baselines`` optimiser, under the strategy's limits
    and profile (its volatility target, drawdown stop and exclusions too)."""
    results: dict[str, EngineResult] = {}
    for kind in cfg.report.baselines:
        rule = baseline_rule(cfg, weekly, ok, limits, kind)
        if profile is None:
            results[kind] = engine(rule, None)
        else:
            guard = ProfileGuard(rule, profile, weekly.closes())
            results[kind] = engine(guard, guard)
    return results


def check_excluded(profile: Profile, tickers: list[str]) -> None:
    """Refuse an excluded ticker the data does not hold (a typo would exclude nothing)."""
    unknown = sorted(profile.exclude - set(tickers))
    if unknown:
        hint = did_you_mean(unknown[0], tickers)
        raise ConfigError(
            f"profile.exclude: {', '.join(unknown)} not among the data's tickers{hint}"
        )


def model_switches(decisions: pd.DatetimeIndex, train_ends: list[pd.Timestamp]) -> list[Any]:
    """The first decision week of each model after the first (a drawdown stop ends there)."""
    weeks = []
    for end in sorted(train_ends)[1:]:
        later = decisions[decisions > end]
        if len(later):
            weeks.append(later[0])
    return weeks


def profile_summary(profile: Profile, bounds: pd.DataFrame) -> dict[str, Any]:
    """summary.json's ``profile``: the limits, and in how many weeks each one bound."""
    return {
        "name": profile.name,
        "max_weight": profile.limits.max_weight,
        "gross": profile.limits.gross,
        "allow_short": profile.limits.allow_short,
        "horizon_weeks": profile.horizon_weeks,
        "vol_target": profile.vol_target,
        "max_drawdown": profile.max_drawdown,
        "exclude": sorted(profile.exclude),
        "weeks_bound": {
            reason: int(bounds.loc[bounds["reason"] == reason, "week"].nunique())
            for reason in REASONS
        },
    }


def weights_table(engine: EngineResult) -> pd.DataFrame:
    long = engine.weights.rename_axis(index="date").reset_index()
    long = long.melt(id_vars="date", var_name="ticker", value_name="weight")
    long = long.sort_values("date", kind="stable")
    return long.loc[long["weight"] != 0.0, ["date", "ticker", "weight"]].reset_index(drop=True)


def assemble(
    cfg: Config,
    weekly: WeeklyData,
    weeks: pd.DatetimeIndex,
    main: EngineResult,
    one_over_n: EngineResult,
    baselines: Mapping[str, EngineResult] | None = None,
) -> tuple[pd.DataFrame, pd.Series, dict[str, Any]]:
    """Weekly returns, risk-free rates and summary.json of a run over ``weeks``.

    ``main`` is the strategy's engine result and ``one_over_n`` that of 1/N over the same
    weeks (the same object when the strategy is 1/N); ``baselines`` (see
    :func:`run_baselines`) add a return column and a metrics object each, named after the
    optimiser, and are listed in summary.json's ``baselines``. A paper account's report calls
    this with the values and orders from its journal.
    """
    baselines = dict(baselines or {})
    bt = cfg.backtest
    bench = weekly.benchmark.reindex(weeks)
    if bench.isna().any():
        missing = bench.index[bench.isna()][0].date()
        raise DataError(
            f"benchmark {cfg.data.benchmark} has no price in the week of {missing}; "
            "use an index series that covers the backtest"
        )
    returns = pd.DataFrame(
        {
            "strategy": main.values.pct_change(),
            "equal_weight": one_over_n.values.pct_change(),
            "benchmark": bench.pct_change(),
            **{name: result.values.pct_change() for name, result in baselines.items()},
        }
    ).iloc[1:]
    returns.index.name = "date"
    rf_source: float | pd.Series
    if weekly.risk_free is not None:
        rf_source = weekly.risk_free
    elif isinstance(cfg.report.risk_free, float | int):
        rf_source = float(cfg.report.risk_free)
    else:  # load_daily refuses a named series it cannot load; this is a guard, not a path
        raise DataError(f"report.risk_free {cfg.report.risk_free}: no such series in the data")
    try:
        rf = weekly_risk_free(rf_source, pd.DatetimeIndex(returns.index))
    except ValueError as err:
        raise DataError(f"report.risk_free {cfg.report.risk_free}: {err}") from None
    columns = [*RETURN_COLUMNS, *baselines]
    summary: dict[str, Any] = {col: summarize(returns[col], rf) for col in columns}
    confidence = {"strategy": probabilistic_sharpe(returns["strategy"] - rf)}
    others = (["equal_weight"] if bt.strategy != "equal_weight" else []) + list(baselines)
    for other in others:
        active = returns["strategy"] - returns[other]
        confidence[f"over_{other}"] = probabilistic_sharpe(active)
    from simulator.analytics import analytics_json, data_analytics  # its HTML needs matplotlib

    stocks = data_analytics(weekly, cfg.report.risk_free, weeks[-1], ANALYTICS_WINDOW)
    rejected = main.orders["status"] != "Completed"
    runs = {}
    for name, result in baselines.items():
        missed = int((result.orders["status"] != "Completed").sum())
        runs[name] = {
            "orders_filled": len(result.orders) - missed,
            "orders_rejected": missed,
            "final_value": float(result.values.iloc[-1]),
        }
    summary.update(
        {
            "weeks": len(returns),
            "start": returns.index[0].date().isoformat(),
            "end": returns.index[-1].date().isoformat(),
            "first_decision": weeks[0].date().isoformat(),
            "fill": bt.fill,
            "risk_free": cfg.report.risk_free,
            "risk_free_annual_mean": float(np.prod(1.0 + rf.to_numpy()) ** (52 / len(rf)) - 1),
            "strategy_name": bt.strategy,
            "benchmark_name": cfg.data.benchmark,
            "data_source": weekly.source,
            "data_note": weekly.note,
            "tickers": weekly.tickers,
            "orders_filled": int((~rejected).sum()),
            "orders_rejected": int(rejected.sum()),
            "final_value": float(main.values.iloc[-1]),
            "cash": bt.cash,
            "confidence": confidence,
            "reference": cfg.report.reference,
            "analytics": analytics_json(stocks, weeks[-1], ANALYTICS_WINDOW),
            "baselines": runs,
        }
    )
    return returns, rf, summary


def run_backtest(
    cfg: Config,
    workspace: Path,
    progress: Progress | None = None,
    train_progress: TrainProgress | None = None,
    note: Note | None = None,
) -> BacktestResult:
    """Run the configured backtest (see the module docstring for the dating of returns).

    ``train_progress`` and ``note`` report on the models an ``lstm_signal`` run trains or
    reuses (see :func:`simulator.signals.prepare_models`).
    """
    clock = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[stage] = now - clock
        clock = now

    daily = load_daily(cfg.data, cfg.report.risk_free, workspace)
    weekly = make_weekly(daily)
    weeks = backtest_weeks(weekly, cfg)
    ok = eligibility(weekly, weeks, cfg.backtest.min_history)
    base_limits = cfg.strategy.limits()
    profile = cfg.investor_profile()
    limits = profile.limits if profile is not None else base_limits
    if profile is not None:
        check_excluded(profile, weekly.tickers)
    bt = cfg.backtest
    engine = engine_runner(cfg, weekly, weeks, progress)
    lap("data")
    one_over_n = engine(equal_weight_rule(ok, base_limits))
    lap("equal_weight")
    lstm: LstmRun | None = None
    rule: Decide | None = None  # None: the strategy is the 1/N run above
    tag: Tag | None = None
    resets: list[Any] | None = None
    if bt.strategy == "lstm_signal":
        from simulator.signals import run_lstm  # imports torch: only for runs that need it

        eligible = eligible_sets(ok)
        closes = weekly.closes()
        lstm = run_lstm(cfg, closes, weeks[:-1], eligible, limits, workspace, train_progress, note)
        lap("models")
        rule, tag = lstm.rule, lstm.rule.tag
        # One model never retrains: a drawdown stop then ends after resume_after weeks.
        ends = [m.train_end for m in lstm.models]
        resets = model_switches(weeks[:-1], ends) if len(ends) > 1 else None
    elif bt.strategy in ("min_variance", "mean_variance"):
        rule = baseline_rule(cfg, weekly, ok, limits)
        lap("models")
    elif profile is not None:
        rule = equal_weight_rule(ok, limits)
    guard: ProfileGuard | None = None
    if rule is None:
        main = one_over_n
    else:
        if profile is not None:
            guard = ProfileGuard(rule, profile, weekly.closes(), resets)
        main = engine(guard if guard is not None else rule, guard, tag)
        lap("strategy")
    baselines = run_baselines(cfg, weekly, ok, limits, profile, engine)
    if baselines:
        lap("baselines")
    returns, rf, summary = assemble(cfg, weekly, weeks, main, one_over_n, baselines)
    bounds = None
    if profile is not None and guard is not None:  # a profile always has a guard
        bounds = guard.bounds
        summary["profile"] = profile_summary(profile, bounds)
    predictions: pd.DataFrame | None = None
    record: dict[str, Any] = {}
    if lstm is not None:
        predictions = lstm.predictions(weekly.closes(), weeks)
        record = lstm.record(predictions, main.orders)
        summary["models"] = record["used"]
        summary["prediction"] = {
            "weeks": int(predictions["week"].nunique()),
            "forecasts": int(predictions["predicted_close"].notna().sum()),
            "mse_ratio": (record["as_traded"].get("all") or {}).get("mse_ratio"),
        }
    return BacktestResult(
        cfg,
        returns,
        weights_table(main),
        main.orders,
        rf,
        summary,
        predictions,
        record,
        timings,
        bounds,
    )
