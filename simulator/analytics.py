"""Per-stock risk analytics over a trailing window of weekly closes (seed 000's scheduled
"analysis on each stock").

For every ticker, from its weekly closes up to and including the week ``as_of`` only (point in
time: nothing after ``as_of`` is read), over the trailing ``window`` calendar weeks of returns:

- ``weeks``: the one-week returns used (fewer than ``window`` after a late listing or gaps).
- ``annual_return``: compounded, ``prod(1 + r) ** (52 / weeks) - 1``.
- ``volatility``: ``std(r, ddof=1) * sqrt(52)``.
- ``max_drawdown``: the largest fall of the compounded curve from a peak, a negative fraction
  (0.0 when it never falls), the curve starting at 1 before the window's first return.
- ``sortino``: ``mean(r - rf) / sqrt(mean(min(r - rf, 0) ** 2)) * sqrt(52)`` (NaN when no
  week earned less than the risk-free rate).
- ``beta``: ``cov(r, r_b) / var(r_b)`` (both with ddof=1) against the benchmark index, on the
  weeks where both have a return.
- ``var_95``, ``cvar_95``: weekly historical value at risk and conditional value at risk at
  95%, as positive loss fractions (:func:`strategies.risk.var` and :func:`strategies.risk.cvar`,
  the estimators of the portfolio risk figures).
- ``risk``: ``"low"``, ``"medium"`` or ``"high"`` from volatility and drawdown (see
  :func:`risk_level` and :data:`RISK_RULE`), ``"unknown"`` below :data:`MIN_WEEKS` returns.

The annual, volatility, Sortino and drawdown figures are :func:`simulator.metrics.summarize`'s,
so they follow the run summary's conventions (52 weeks a year, weekly risk-free rate).

Missing weeks are never filled: a weekly return exists only between two consecutive calendar
weeks that both have a close. A week without a bar removes the return into it and the one out
of it; the price move across the gap is left out of every figure (it is not a one-week move, so
it would inflate volatility and VaR if taken as one, and forward-filling would invent flat
weeks). The remaining returns are chained as they come, and ``weeks`` says how many there are.
"""

from __future__ import annotations

import math
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from simulator.data.weekly import WeeklyData
from simulator.errors import ConfigError, DataError
from simulator.metrics import summarize, weekly_risk_free
from strategies import risk as measures

#: Columns of :func:`stock_analytics`, in order (the index is the ticker).
ANALYTICS_COLUMNS = (
    "weeks",
    "annual_return",
    "volatility",
    "max_drawdown",
    "sortino",
    "beta",
    "var_95",
    "cvar_95",
    "risk",
)
FIGURE_COLUMNS = ANALYTICS_COLUMNS[1:-1]
RISK_LEVELS = ("low", "medium", "high", "unknown")

#: Fewer weekly returns than this in the window: figures NaN, risk "unknown".
MIN_WEEKS = 8
#: Confidence level of VaR and CVaR.
VAR_LEVEL = 0.95
#: Low risk: annualised volatility below this ...
LOW_VOLATILITY = 0.20
#: ... and a maximum drawdown above this (a smaller fall than 15%).
LOW_MAX_DRAWDOWN = -0.15
#: High risk: annualised volatility at or above this ...
HIGH_VOLATILITY = 0.35
#: ... or a maximum drawdown at or below this (a fall of 30% or more).
HIGH_MAX_DRAWDOWN = -0.30

#: The risk rule in plain words, for reports.
RISK_RULE = (
    f"low: annualised volatility below {LOW_VOLATILITY:.0%} and a largest fall from a peak "
    f"smaller than {-LOW_MAX_DRAWDOWN:.0%}; high: volatility of {HIGH_VOLATILITY:.0%} or more, "
    f"or a fall of {-HIGH_MAX_DRAWDOWN:.0%} or more; medium: everything in between; unknown: "
    f"fewer than {MIN_WEEKS} weekly returns in the window"
)
#: The VaR convention in plain words, for reports.
VAR_RULE = (
    f"VaR {VAR_LEVEL:.0%} is the weekly loss exceeded in fewer than 1 week out of "
    f"{round(1 / (1 - VAR_LEVEL))}: the k-th worst weekly return of the n in the window, with "
    f"k = ceil({1 - VAR_LEVEL:.2f} n) and no interpolation; CVaR {VAR_LEVEL:.0%} is the average "
    f"loss of the worst {1 - VAR_LEVEL:.2f} n weeks, the k-th counted in part when "
    f"{1 - VAR_LEVEL:.2f} n is not a whole number (both as positive losses)"
)


def risk_level(volatility: float, max_drawdown: float) -> str:
    """The risk level from annualised volatility and maximum drawdown (fractions).

    ``"high"`` if volatility >= :data:`HIGH_VOLATILITY` (35%) or drawdown <=
    :data:`HIGH_MAX_DRAWDOWN` (-30%); else ``"low"`` if volatility < :data:`LOW_VOLATILITY`
    (20%) and drawdown > :data:`LOW_MAX_DRAWDOWN` (-15%); else ``"medium"``; ``"unknown"`` when
    either figure is NaN.

    >>> risk_level(0.15, -0.10), risk_level(0.25, -0.10), risk_level(0.15, -0.30)
    ('low', 'medium', 'high')
    """
    if not (math.isfinite(volatility) and math.isfinite(max_drawdown)):
        return "unknown"
    if volatility >= HIGH_VOLATILITY or max_drawdown <= HIGH_MAX_DRAWDOWN:
        return "high"
    if volatility < LOW_VOLATILITY and max_drawdown > LOW_MAX_DRAWDOWN:
        return "low"
    return "medium"


def _check_inputs(closes: pd.DataFrame, benchmark: pd.Series, window: int) -> None:
    if not isinstance(closes, pd.DataFrame) or not isinstance(closes.index, pd.DatetimeIndex):
        raise DataError(
            "closes must be a DataFrame of weekly closes indexed by week stamp "
            "(WeeklyData.closes())"
        )
    if not isinstance(benchmark, pd.Series):
        raise DataError("benchmark must be a Series of weekly index closes (WeeklyData.benchmark)")
    if not closes.index.is_monotonic_increasing or closes.index.has_duplicates:
        raise DataError("closes: week stamps must be unique and ascending; sort the frame")
    if closes.columns.has_duplicates:
        raise DataError("closes: duplicate ticker columns; keep one column per ticker")
    if isinstance(window, bool) or not isinstance(window, int | np.integer) or window < MIN_WEEKS:
        raise ConfigError(
            f"analytics window {window!r}: give a whole number of weeks, at least {MIN_WEEKS} "
            "(52 is one year)"
        )


_P = TypeVar("_P", pd.DataFrame, pd.Series)


def _weekly_returns(prices: _P) -> _P:
    """One-week simple returns; NaN where either week has no price (no filling)."""
    return (prices / prices.shift(1) - 1.0).iloc[1:]


def stock_analytics(
    closes: pd.DataFrame,
    benchmark: pd.Series,
    as_of: pd.Timestamp,
    window: int = 52,
    risk_free: float | pd.Series = 0.0,
) -> pd.DataFrame:
    """Risk and return figures per ticker over the trailing ``window`` weeks up to ``as_of``.

    Parameters
    ----------
    closes
        Weekly closes, shape ``(n_weeks, n_tickers)``, indexed by ascending week stamp, NaN
        where a ticker has no bar (``WeeklyData.closes()``). Only rows stamped on or before
        ``as_of`` are read; pass the stamp of a complete week (see
        :func:`simulator.data.weekly.last_complete_week`).
    benchmark
        Weekly index closes; reindexed to ``closes``' stamps without filling
        (``WeeklyData.benchmark``). Used for beta only.
    as_of
        The last week whose close is used.
    window
        Number of calendar weeks of returns, ending at the last stamp on or before ``as_of``
        (at least :data:`MIN_WEEKS`). The window uses ``window + 1`` closes; a shorter history
        uses what there is.
    risk_free
        An annual rate as a fraction, or a series of annual yields in percent by week stamp
        (``WeeklyData.risk_free``), as :func:`simulator.metrics.weekly_risk_free` takes it;
        used by the Sortino ratio only. A series is read up to ``as_of`` only.

    Returns
    -------
    pd.DataFrame
        One row per ticker (index ``ticker``, in the order of ``closes``' columns), columns
        :data:`ANALYTICS_COLUMNS`: ``weeks`` (int), the figures (float fractions; NaN for a
        ticker with fewer than :data:`MIN_WEEKS` returns, and beta also NaN with fewer than
        that many weeks shared with the benchmark) and ``risk`` (str).

    Raises
    ------
    DataError
        Malformed inputs, no week on or before ``as_of``, a non-positive price up to
        ``as_of``, or a risk-free series without a value before the window.
    ConfigError
        A window that is not a whole number of at least :data:`MIN_WEEKS` weeks.

    Examples
    --------
    >>> weeks = pd.date_range("2024-01-05", periods=11, freq="W-FRI")
    >>> prices = pd.DataFrame({"A": [100.0, 102, 101, 104, 103, 106, 105, 108, 107, 110, 111]},
    ...                       index=weeks)
    >>> out = stock_analytics(prices, prices["A"] * 2, weeks[-1], window=10)
    >>> int(out.loc["A", "weeks"]), round(float(out.loc["A", "beta"]), 6), out.loc["A", "risk"]
    (10, 1.0, 'low')
    """
    _check_inputs(closes, benchmark, window)
    stamp = pd.Timestamp(as_of)
    upto = closes.loc[closes.index <= stamp]
    if len(upto) == 0:
        first = closes.index[0].date() if len(closes.index) else "none"
        raise DataError(
            f"analytics as of {stamp.date()}: no weekly close on or before it (first week "
            f"{first}); pick a later date"
        )
    try:
        prices = upto.astype(float)
        bench = benchmark.reindex(upto.index).astype(float)
    except (TypeError, ValueError):
        raise DataError("closes and benchmark must hold numeric prices (NaN where none)") from None
    values = prices.to_numpy()
    if (values <= 0).any():
        row, col = np.argwhere(values <= 0)[0]
        raise DataError(
            f"closes: {upto.columns[col]} has a non-positive close in the week of "
            f"{upto.index[row].date()}; fix the price data"
        )
    stock_r = _weekly_returns(prices).iloc[-window:]
    bench_r = _weekly_returns(bench).iloc[-window:]
    rf = _window_risk_free(risk_free, stamp, pd.DatetimeIndex(stock_r.index))

    rows = [_one_ticker(stock_r[t], bench_r, rf) for t in stock_r.columns]
    out = pd.DataFrame(rows, index=pd.Index(list(stock_r.columns), name="ticker"))
    out = out.reindex(columns=list(ANALYTICS_COLUMNS))
    return out.astype({"weeks": "int64", **dict.fromkeys(FIGURE_COLUMNS, "float64"), "risk": str})


def _window_risk_free(
    risk_free: float | pd.Series, as_of: pd.Timestamp, index: pd.DatetimeIndex
) -> pd.Series:
    if isinstance(risk_free, pd.Series):
        risk_free = risk_free.loc[risk_free.index <= as_of]
    elif isinstance(risk_free, bool) or not isinstance(risk_free, int | float):
        raise DataError(f"risk_free {risk_free!r}: give an annual fraction or a yield series")
    if len(index) == 0:
        return pd.Series(0.0, index=index)
    try:
        return weekly_risk_free(risk_free, index)
    except ValueError as err:
        raise DataError(f"risk-free rate for analytics: {err}; start the yield earlier") from None


def _one_ticker(r: pd.Series, bench_r: pd.Series, rf: pd.Series) -> dict[str, Any]:
    valid = r.notna()
    n = int(valid.sum())
    row: dict[str, Any] = {"weeks": n, **dict.fromkeys(FIGURE_COLUMNS, math.nan)}
    if n < MIN_WEEKS:
        row["risk"] = "unknown"
        return row
    used = r[valid]
    stats = summarize(used, rf[valid])
    shared = valid & bench_r.notna()
    beta = math.nan
    if int(shared.sum()) >= MIN_WEEKS:
        x = r[shared].to_numpy(dtype=float)
        y = bench_r[shared].to_numpy(dtype=float)
        var_b = float(np.var(y, ddof=1))
        if var_b > 0:
            beta = float(np.cov(x, y, ddof=1)[0, 1]) / var_b
    row.update(
        annual_return=stats["cagr"],
        volatility=stats["volatility"],
        max_drawdown=stats["max_drawdown"],
        sortino=stats["sortino"],
        beta=beta,
        var_95=measures.var(used, VAR_LEVEL),
        cvar_95=measures.cvar(used, VAR_LEVEL),
        risk=risk_level(stats["volatility"], stats["max_drawdown"]),
    )
    return row


# --- output ---------------------------------------------------------------------------------


def json_value(value: Any) -> Any:
    """``value`` as JSON holds it: a finite float, an int, None for NaN or infinity."""
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def to_json_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """One JSON-ready dict per ticker: ``{"ticker", *ANALYTICS_COLUMNS}``, NaN as None.

    >>> f = pd.DataFrame({"weeks": [5], "beta": [float("nan")], "risk": ["unknown"]},
    ...                  index=pd.Index(["A"], name="ticker"))
    >>> to_json_rows(f)
    [{'ticker': 'A', 'weeks': 5, 'beta': None, 'risk': 'unknown'}]
    """
    return [
        {"ticker": str(ticker), **{str(k): json_value(v) for k, v in row.items()}}
        for ticker, row in zip(frame.index, frame.to_dict("records"), strict=True)
    ]


def analytics_json(frame: pd.DataFrame, as_of: pd.Timestamp, window: int) -> dict[str, Any]:
    """The document of ``foliosim analytics --json``: conventions and one row per ticker."""
    return {
        "as_of": pd.Timestamp(as_of).date().isoformat(),
        "window": int(window),
        "min_weeks": MIN_WEEKS,
        "var_level": VAR_LEVEL,
        "var_rule": VAR_RULE,
        "risk_rule": RISK_RULE,
        "stocks": to_json_rows(frame),
    }


def risk_words(row: pd.Series) -> str:
    """One plain-English sentence on how risky a stock was, for a novice.

    ``row`` is one row of :func:`stock_analytics` (its ``name`` is the ticker).

    >>> row = pd.Series({"weeks": 52, "volatility": 0.283, "max_drawdown": -0.182,
    ...                  "var_95": 0.0514, "risk": "medium"}, name="AAPL")
    >>> print(risk_words(row))  # doctest: +NORMALIZE_WHITESPACE
    AAPL: medium risk — over the 52 weeks measured its price moved about 28% a year and fell
    at most 18% from a peak; in its worst 1 week out of 20 it lost 5.1% or more.
    """
    name, n, risk = str(row.name), int(row["weeks"]), str(row["risk"])
    if risk == "unknown":
        return (
            f"{name}: risk unknown — only {n} weekly price change{'' if n == 1 else 's'} up to "
            f"this date, fewer than the {MIN_WEEKS} needed."
        )
    vol, mdd, var = float(row["volatility"]), float(row["max_drawdown"]), float(row["var_95"])
    fall = (
        "never fell below an earlier peak"
        if mdd >= 0
        else f"fell at most {_about(-mdd)} from a peak"
    )
    every = round(1 / (1 - VAR_LEVEL))
    tail = (
        f"in its worst 1 week out of {every} it lost {var:.1%} or more"
        if var > 0
        else f"even in its worst 1 week out of {every} it did not lose money"
    )
    return (
        f"{name}: {risk} risk — over the {n} weeks measured its price moved about {_about(vol)} "
        f"a year and {fall}; {tail}."
    )


def _about(fraction: float) -> str:
    """Whole percents, one decimal below 10% (so 4.6% is not rounded to 5%)."""
    return f"{fraction:.1%}" if fraction < 0.095 else f"{fraction:.0%}"


def from_json_rows(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The frame of :func:`to_json_rows` back (None becomes NaN), indexed by ticker."""
    frame = pd.DataFrame(rows, columns=["ticker", *ANALYTICS_COLUMNS]).set_index("ticker")
    return frame.astype({c: float for c in FIGURE_COLUMNS})


def data_analytics(
    weekly: WeeklyData, risk_free: float | str, as_of: pd.Timestamp, window: int = 52
) -> pd.DataFrame:
    """:func:`stock_analytics` of a data set's tickers against its index, as of ``as_of``;
    the risk-free rate is the data's yield series, or ``risk_free`` when it is a number."""
    rf: float | pd.Series = (
        weekly.risk_free
        if weekly.risk_free is not None
        else float(risk_free)
        if not isinstance(risk_free, str)
        else 0.0
    )
    return stock_analytics(weekly.closes(), weekly.benchmark, as_of, window, rf)
