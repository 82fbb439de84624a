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
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd

from models.metrics import predictions_quality
from simulator.config import Config
from simulator.data import WeeklyData, load_daily, make_weekly
from simulator.engine import EngineResult, eligible_frame
from simulator.errors import ConfigError, DataError, did_you_mean
from simulator.exposure import exposure_facts, strategy_exposure
from simulator.metrics import RETURN_COLUMNS, probabilistic_sharpe, summarize, weekly_risk_free
from simulator.plan import Resources, RunPlan, resolve
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
from strategies.rule import DecisionRule

if TYPE_CHECKING:
    from models.forecaster import TrainProgress
    from simulator.walkforward import LstmRun, Note, RegistrySignal


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
) -> tuple[pd.DataFrame, pd.Series, RunSummary]:
    """Weekly returns, risk-free rates and summary.json of a run over ``weeks``.

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
    from simulator.analytics import analytics_json, data_analytics  # its HTML needs matplotlib

    stocks = data_analytics(weekly, cfg.report.risk_free, weeks[-1], ANALYTICS_WINDOW)
    rejected = ~main.orders["status"].isin(FILLED)
    e = plan.engine
    totals = main.costs.sum() if len(main.costs) else None
    costs = CostFacts(
        commission=e.commission,
        slippage=e.slippage,
        slippage_kind=cast(Any, e.slippage_kind),
        borrow_fee=e.borrow_fee,
        cash_rate=e.cash_rate,
        margin_rate=e.margin_rate,
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
        exposure=exposure_facts(
            strategy_exposure(main.weights, main.orders, main.values, weeks, plan.engine.fill, held)
        ),
        risk=risk_summary(returns[columns]),
    )
    return returns, rf, summary


#: ``phases(name) -> progress(done, total)``: a progress callback for each engine run, named
#: after its phase ("1/N", "backtest <strategy>", "baseline <name>").
Phases = Callable[[str], Progress]


def run_backtest(
    cfg: Config | RunPlan,
    workspace: Path,
    progress: Phases | None = None,
    train_progress: TrainProgress | None = None,
    note: Note | None = None,
    *,
    rule: DecisionRule | type | None = None,
) -> BacktestResult:
    """Run the backtest of a config or plan (see the module docstring for the dating of
    returns).

    ``rule`` runs a user's decision rule (a class or an object, see :mod:`strategies.rule`)
    instead of the config's strategy. ``train_progress`` and ``note`` report on the models an
    ``lstm_signal`` run trains or reuses (see :func:`simulator.walkforward.prepare_models`).
    """
    plan = cfg if isinstance(cfg, RunPlan) else resolve(cfg, rule=rule)
    if isinstance(cfg, RunPlan) and rule is not None:
        raise ValueError("pass a rule to resolve(), not beside a plan")
    config = plan.config
    clock = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[stage] = now - clock
        clock = now

    daily = load_daily(config.data, config.report.risk_free, workspace)
    weekly = make_weekly(daily)
    if note is not None:
        for line in weekly.warnings:
            note(line)
    weeks = backtest_weeks(weekly, config)
    eligibility(weekly, weeks, plan.engine.min_history)
    if plan.profile is not None:
        check_excluded(plan.profile, weekly.tickers)
    decisions = weeks[:-1]
    lap("data")

    def engine(built: Any, phase: str) -> EngineResult:
        bar = progress(phase) if progress is not None else None
        return plan.run(built, weekly, weeks, decisions, progress=bar)

    one_over_n = engine(plan.one_over_n_rule(), "1/N")
    lap("equal_weight")
    lstm: LstmRun | None = None

    def signal() -> RegistrySignal:
        nonlocal lstm
        from simulator.walkforward import run_lstm  # imports torch: only for runs that need it

        lstm = run_lstm(config, weekly, decisions, workspace, train_progress, note)
        return lstm.provider

    if plan.strategy_is_one_over_n:
        main = one_over_n  # the strategy is the 1/N run above
    else:
        built = plan.strategy_rule(Resources(signal=signal, decisions=decisions))
        lap("models")
        main = engine(built, f"backtest {plan.name}")
        lap("strategy")
    baselines = {name: engine(b, f"baseline {name}") for name, b in plan.baseline_rules().items()}
    if baselines:
        lap("baselines")
    returns, rf, summary = assemble(plan, weekly, weeks, main, one_over_n, baselines)
    from simulator.stress_inputs import run_stress  # its figures' module needs matplotlib

    stressed = run_stress(config, main.weights.iloc[-1], weeks[-1], workspace, weekly)
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
    if lstm is not None:
        predictions = lstm.predictions(weekly.closes(), weeks, main.decisions)
        record = lstm.record(predictions, main.orders)
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
        used = [ModelUse(**u) for u in record["used"]]
        summary = summary.model_copy(update={"models": used, "prediction": facts})

        from simulator.explain import run_explanations

        def rerun(provider: Any) -> float:
            rule = plan.strategy_rule(Resources(signal=lambda: provider, decisions=decisions))
            values = plan.run(rule, weekly, weeks, decisions).values
            return float(values.iloc[-1] / values.iloc[0] - 1.0)

        explanations = run_explanations(
            lstm.provider,
            weekly.closes(),
            predictions,
            rerun,
            float(main.values.iloc[-1] / main.values.iloc[0] - 1.0),
            config.model.seed,
        )
        lap("explanations")
    exposure = strategy_exposure(main.weights, main.orders, main.values, weeks, plan.engine.fill)
    return BacktestResult(
        config,
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
