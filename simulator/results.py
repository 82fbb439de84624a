"""A run's result, assembled once: the engine runs of a session's window (strategy, 1/N and
any baselines) -> returns, weights, exposure and summary, then the analyses of the result
(stress, explanations). Backtests, sweep trials, the audit's variants and a paper account's
report all come through here.

Returns are dated on the week they were earned: the row of week t is the value at the close
of t over the value at the close of t-1, less one. The first decision is made at the close of
the first week on or after ``backtest.start``, so the first return row is the week after it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd

from models.metrics import predictions_quality
from simulator.analytics import analytics_json, data_analytics
from simulator.config import Config
from simulator.data import WeeklyData
from simulator.engine import EngineResult, eligible_frame
from simulator.errors import ConfigError, DataError, did_you_mean
from simulator.explain import run_explanations
from simulator.exposure import exposure_facts, strategy_exposure
from simulator.metrics import RETURN_COLUMNS, probabilistic_sharpe, summarize, weekly_risk_free
from simulator.plan import Resources, RunPlan
from simulator.session import ModelSource, Session, Window
from simulator.stress import run_stress
from simulator.summary import (
    Analytics,
    Confidence,
    CostFacts,
    EngineRun,
    ForecastQuality,
    ModelUse,
    PortfolioRisk,
    PredictionFacts,
    ProfileFacts,
    RunSummary,
    SeriesRisk,
    SeriesStats,
    nan_to_none,
)
from strategies import risk
from strategies.profile import REASONS, Profile
from strategies.rebalance import FILLED, Progress

if TYPE_CHECKING:
    from simulator.walkforward import LstmRun


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
    decisions
        The strategy's decision log (``strategies.rule.DECISION_COLUMNS``): every decision
        week's targets and scores, and the notes of its rule (e.g. weeks an optimiser failed
        and went to cash).
    risk_free
        The weekly risk-free rate of each return week.
    summary
        The content of summary.json (:class:`simulator.summary.RunSummary`).
    predictions
        LSTM-signal runs: one row per decision week and ticker
        (``simulator.walkforward.PREDICTION_COLUMNS``), the
        forecast, the target weight and the close the next week actually had.
    models
        LSTM-signal runs: the content of models.json (the versions used, their training and
        test records, and the prediction metrics over the traded weeks).
    bounds
        With an investor profile: one row per limit that bound (``week, reason, ticker,
        detail``; see :mod:`strategies.profile`).
    exposure
        The strategy's long, short, gross and net exposure and turnover per return week
        (:func:`simulator.exposure.exposure_frame`).
    timings
        Seconds per stage: ``data``, ``equal_weight`` (its engine run), ``models`` (training
        or loading them), ``strategy`` (its engine run), ``baselines`` (their engine runs) and
        ``stress`` (the stress test of the last week's positions, with its history). Not
        written to the run directory.
    """

    config: Config
    returns: pd.DataFrame
    weights: pd.DataFrame
    orders: pd.DataFrame
    decisions: pd.DataFrame
    risk_free: pd.Series
    summary: RunSummary
    predictions: pd.DataFrame | None = None
    models: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    bounds: pd.DataFrame | None = None
    exposure: pd.DataFrame | None = None
    explanations: dict[str, Any] | None = None


#: Trailing weeks of the per-stock analytics in summary.json and the tear sheet.
ANALYTICS_WINDOW = 52


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


def check_excluded(profile: Profile, tickers: list[str]) -> None:
    """Refuse an excluded ticker the data does not hold (a typo would exclude nothing)."""
    unknown = sorted(profile.exclude - set(tickers))
    if unknown:
        hint = did_you_mean(unknown[0], tickers)
        raise ConfigError(
            f"profile.exclude: {', '.join(unknown)} not among the data's tickers{hint}"
        )


def profile_summary(profile: Profile, bounds: pd.DataFrame) -> ProfileFacts:
    """summary.json's ``profile``: the limits, and in how many weeks each one bound."""
    return ProfileFacts(
        name=profile.name,
        max_weight=profile.limits.max_weight,
        gross=profile.limits.gross,
        allow_short=profile.limits.allow_short,
        horizon_weeks=profile.horizon_weeks,
        vol_target=profile.vol_target,
        max_drawdown=profile.max_drawdown,
        exclude=sorted(profile.exclude),
        max_name_vol=profile.max_name_vol,
        max_cvar_95=profile.max_cvar_95,
        weeks_bound={
            reason: int(bounds.loc[bounds["reason"] == reason, "week"].nunique())
            for reason in REASONS
        },
    )


def risk_summary(returns: pd.DataFrame) -> PortfolioRisk:
    """summary.json's ``risk``: the weekly VaR and CVaR of each column of ``returns`` (ex
    post, over all its weeks with a return; :func:`strategies.risk.risk_figures`)."""
    series = {}
    for column in returns.columns:
        r = returns[column].dropna().to_numpy(dtype=float)
        figures = {"weeks": len(r), **risk.risk_figures(r)}
        series[str(column)] = SeriesRisk.model_validate(nan_to_none(figures))
    return PortfolioRisk(rule=risk.RULE, series=series)


def weights_table(engine: EngineResult) -> pd.DataFrame:
    long = engine.weights.rename_axis(index="date").reset_index()
    long = long.melt(id_vars="date", var_name="ticker", value_name="weight")
    long = long.sort_values("date", kind="stable")
    return long.loc[long["weight"] != 0.0, ["date", "ticker", "weight"]].reset_index(drop=True)


def assemble(
    plan: RunPlan,
    weekly: WeeklyData,
    weeks: pd.DatetimeIndex,
    main: EngineResult,
    one_over_n: EngineResult,
    baselines: Mapping[str, EngineResult] | None = None,
    held: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.Series, RunSummary, pd.DataFrame]:
    """Weekly returns, risk-free rates, summary.json and the strategy's exposure per return
    week (:func:`simulator.exposure.strategy_exposure`, computed once) of a run over
    ``weeks``.

    ``main`` is the strategy's engine result and ``one_over_n`` that of 1/N over the same
    weeks (the same object when the strategy is 1/N); ``baselines`` (see
    :func:`run_baselines`) add a return column and a metrics object each, named after the
    optimiser, and are listed in summary.json's ``baselines``. A paper account's report calls
    this with the values and orders from its journal, and ``held``: the weights it held over
    each return week (see :mod:`simulator.exposure`; by default read from ``main.weights``).
    """
    baselines = dict(baselines or {})
    cfg = plan.config
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
    series = {col: SeriesStats(**nan_to_none(summarize(returns[col], rf))) for col in columns}
    confidence = {"strategy": probabilistic_sharpe(returns["strategy"] - rf)}
    others = (["equal_weight"] if plan.name != "equal_weight" else []) + list(baselines)
    for other in others:
        active = returns["strategy"] - returns[other]
        confidence[f"over_{other}"] = probabilistic_sharpe(active)
    stocks = data_analytics(weekly, cfg.report.risk_free, weeks[-1], ANALYTICS_WINDOW)
    rejected = ~main.orders["status"].isin(FILLED)
    c = plan.engine.costs
    totals = main.costs.sum() if len(main.costs) else None
    costs = CostFacts(
        commission=c.commission,
        slippage=c.slippage,
        slippage_kind=cast(Any, c.slippage_kind),
        borrow_fee=c.borrow_fee,
        cash_rate=c.cash_rate,
        margin_rate=c.margin_rate,
        commission_paid=float(main.orders["commission"].sum()),
        **{
            paid: None if totals is None else float(totals[column])
            for paid, column in (
                ("slippage_paid", "slippage"),
                ("borrow_fees_paid", "borrow_fee"),
                ("cash_interest_earned", "cash_interest"),
                ("margin_interest_paid", "margin_interest"),
            )
        },
    )
    delisted = main.orders[main.orders["status"] == "Delisted"]
    runs = {}
    for name, result in baselines.items():
        missed = int((~result.orders["status"].isin(FILLED)).sum())
        runs[name] = EngineRun(
            orders_filled=len(result.orders) - missed,
            orders_rejected=missed,
            final_value=float(result.values.iloc[-1]),
        )
    exposure = strategy_exposure(
        main.weights, main.orders, main.values, weeks, plan.engine.fill, held
    )
    summary = RunSummary(
        series=series,
        weeks=len(returns),
        start=returns.index[0].date(),
        end=returns.index[-1].date(),
        first_decision=weeks[0].date(),
        fill=cast(Any, plan.engine.fill),
        risk_free=cfg.report.risk_free,
        risk_free_annual_mean=float(np.prod(1.0 + rf.to_numpy()) ** (52 / len(rf)) - 1),
        strategy_name=plan.name,
        benchmark_name=cfg.data.benchmark,
        data_source=weekly.source,
        data_note=weekly.note,
        tickers=list(weekly.tickers),
        orders_filled=int((~rejected).sum()),
        orders_rejected=int(rejected.sum()),
        final_value=float(main.values.iloc[-1]),
        cash=plan.engine.cash,
        confidence={k: Confidence(**nan_to_none(v)) for k, v in confidence.items()},
        reference=cfg.report.reference,
        analytics=Analytics.model_validate(
            nan_to_none(analytics_json(stocks, weeks[-1], ANALYTICS_WINDOW))
        ),
        baselines=runs,
        data_warnings=list(weekly.warnings),
        costs=costs,
        delisted={
            str(t): pd.Timestamp(w).date()
            for t, w in zip(delisted["ticker"], delisted["date_filled"], strict=True)
        },
        exposure=exposure_facts(exposure),
        risk=risk_summary(returns[columns]),
    )
    return returns, rf, summary, exposure


#: ``phases(name) -> progress(done, total)``: a progress callback for each engine run, named
#: after its phase ("1/N", "backtest <strategy>", "baseline <name>").
Phases = Callable[[str], Progress]


def backtest(
    session: Session,
    window: Window,
    progress: Phases | None = None,
    models: ModelSource | None = None,
) -> BacktestResult:
    """The backtest of ``session`` over ``window``: the strategy (its forecasts from
    ``models``), 1/N and the baselines through the engine, then the analyses of the result
    (stress, explanations)."""
    plan, weekly = session.plan, session.weekly
    clock = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[stage] = now - clock
        clock = now

    eligibility(weekly, window.weeks, plan.engine.min_history)
    if plan.profile is not None:
        check_excluded(plan.profile, weekly.tickers)
    lap("data")

    def bar(phase: str) -> Progress | None:
        return progress(phase) if progress is not None else None

    one_over_n = session.one_over_n(window, bar("1/N"))
    lap("equal_weight")
    if plan.strategy_is_one_over_n:
        main = one_over_n  # the strategy is the 1/N run above
    else:
        built = session.strategy_rule(window, models)
        lap("models")
        main = session.run(built, window, progress=bar(f"backtest {plan.name}"))
        lap("strategy")
    baselines = session.baselines(window, bar)
    if baselines:
        lap("baselines")
    weeks = window.weeks
    returns, rf, summary, exposure = assemble(plan, weekly, weeks, main, one_over_n, baselines)
    stressed = run_stress(session, main.weights.iloc[-1], weeks[-1])
    summary = summary.model_copy(update={"stress": stressed})
    lap("stress")
    bounds = None
    if plan.profile is not None:
        guard = built.guard
        assert guard is not None  # a plan with a profile guards its strategy
        bounds = guard.bounds
        summary = summary.model_copy(update={"profile": profile_summary(plan.profile, bounds)})
    predictions: pd.DataFrame | None = None
    record: dict[str, Any] = {}
    explanations: dict[str, Any] | None = None
    lstm: LstmRun | None = getattr(models, "lstm", None)  # walk-forward models' record
    if lstm is not None:
        predictions = lstm.predictions(session.sight.closes, weeks, main.decisions)
        record = lstm.record(predictions, main.orders)
        summary = summary.model_copy(update=prediction_facts(predictions, record))

        def rerun(provider: Any) -> float:
            res = Resources(signal=lambda: provider, decisions=window.decisions)
            values = session.run(plan.strategy_rule(res), window).values
            return float(values.iloc[-1] / values.iloc[0] - 1.0)

        explanations = run_explanations(
            lstm.provider,
            session.sight.closes,
            predictions,
            rerun,
            float(main.values.iloc[-1] / main.values.iloc[0] - 1.0),
            session.config.model.seed,
        )
        lap("explanations")
    return BacktestResult(
        session.config,
        returns,
        weights_table(main),
        main.orders,
        main.decisions,
        rf,
        summary,
        predictions,
        record,
        timings,
        bounds,
        exposure,
        explanations,
    )


def prediction_facts(predictions: pd.DataFrame, record: dict[str, Any]) -> dict[str, Any]:
    """summary.json's ``models`` and ``prediction`` of an LSTM-signal run."""
    scores = bool(record["as_traded"].get("scores"))
    quality = nan_to_none(predictions_quality(predictions))
    if scores:
        quality["mse_ratio"] = None
    facts = PredictionFacts(
        weeks=int(predictions["week"].nunique()),
        forecasts=int(predictions["predicted_close"].notna().sum()),
        mse_ratio=nan_to_none((record["as_traded"].get("all") or {}).get("mse_ratio")),
        quality=ForecastQuality.model_validate(quality),
        scores=scores,
    )
    return {"models": [ModelUse(**u) for u in record["used"]], "prediction": facts}
