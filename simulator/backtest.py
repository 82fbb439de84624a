"""A backtest: data -> weekly bars -> engine runs (strategy and 1/N) -> returns and summary.

Returns are dated on the week they were earned: the row of week t is the value at the close
of t over the value at the close of t-1, less one. The first decision is made at the close of
the first week on or after ``backtest.start``, so the first return row is the week after it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from simulator.config import Config
from simulator.data import WeeklyData, load_daily, make_weekly
from simulator.engine import EngineResult, run_engine
from simulator.errors import DataError
from simulator.metrics import RETURN_COLUMNS, summarize, weekly_risk_free
from strategies.rebalance import Decide, Progress
from strategies.sizing import Limits, equal_weight_array


@dataclass(frozen=True)
class BacktestResult:
    """Everything a run directory holds, in memory.

    Attributes
    ----------
    returns
        Weekly returns, index = return weeks, columns ``RETURN_COLUMNS``.
    weights
        Long table ``date, ticker, weight`` of the strategy's positions after each week's fills.
    orders
        The strategy's orders (see ``strategies.rebalance.ORDER_COLUMNS``).
    risk_free
        The weekly risk-free rate of each return week.
    summary
        The content of summary.json.
    """

    config: Config
    returns: pd.DataFrame
    weights: pd.DataFrame
    orders: pd.DataFrame
    risk_free: pd.Series
    summary: dict[str, Any]


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


def eligibility(weekly: WeeklyData, weeks: pd.DatetimeIndex, min_history: int) -> pd.DataFrame:
    """Whether each ticker may be traded at each week: a bar that week and ``min_history`` bars.

    Returns a boolean frame, shape ``(n_weeks, n_tickers)``. Bars before the backtest count as
    history; a late listing joins once it has ``min_history`` weekly bars.
    """
    closes = weekly.closes()
    seen = closes.notna()
    ok = seen & (seen.cumsum() >= min_history)
    ok = ok.reindex(weeks)
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


def equal_weight_rule(ok: pd.DataFrame, limits: Limits) -> Decide:
    """The 1/N decision: equal weights over the eligible tickers with a bar that week."""
    eligible = {
        week: frozenset(ok.columns[row]) for week, row in zip(ok.index, ok.to_numpy(), strict=True)
    }

    def decide(week: pd.Timestamp, tickers: list[str]) -> Mapping[str, float]:
        names = [t for t in tickers if t in eligible[week]]
        return dict(zip(names, equal_weight_array(len(names), limits).tolist(), strict=True))

    return decide


def _weights_table(engine: EngineResult) -> pd.DataFrame:
    long = engine.weights.rename_axis(index="date").reset_index()
    long = long.melt(id_vars="date", var_name="ticker", value_name="weight")
    long = long.sort_values("date", kind="stable")
    return long.loc[long["weight"] != 0.0, ["date", "ticker", "weight"]].reset_index(drop=True)


def run_backtest(cfg: Config, workspace: Path, progress: Progress | None = None) -> BacktestResult:
    """Run the configured backtest (see the module docstring for the dating of returns)."""
    daily = load_daily(cfg.data, cfg.report.risk_free, workspace)
    weekly = make_weekly(daily)
    weeks = backtest_weeks(weekly, cfg)
    ok = eligibility(weekly, weeks, cfg.backtest.min_history)
    limits = Limits(cfg.strategy.max_weight, cfg.strategy.gross, cfg.strategy.allow_short)
    rules = {"equal_weight": equal_weight_rule(ok, limits)}
    bt = cfg.backtest

    def engine(name: str) -> EngineResult:
        return run_engine(
            weekly,
            weeks,
            weeks[:-1],
            rules[name],
            cash=bt.cash,
            fill=bt.fill,
            commission=bt.commission,
            progress=progress,
        )

    main = engine(bt.strategy)
    one_over_n = main if bt.strategy == "equal_weight" else engine("equal_weight")
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
    summary: dict[str, Any] = {col: summarize(returns[col], rf) for col in RETURN_COLUMNS}
    rejected = main.orders["status"] != "Completed"
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
            "data_source": daily.source,
            "data_note": daily.note,
            "tickers": weekly.tickers,
            "orders_filled": int((~rejected).sum()),
            "orders_rejected": int(rejected.sum()),
            "final_value": float(main.values.iloc[-1]),
            "cash": bt.cash,
        }
    )
    return BacktestResult(cfg, returns, _weights_table(main), main.orders, rf, summary)
