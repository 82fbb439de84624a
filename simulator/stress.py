"""Stress scenarios: what a portfolio would make or lose in past crises and in hypothetical
shocks (``foliosim stress``, and the "Stress" section of every tear sheet).

The portfolio is a set of weights ``w`` (fractions of the portfolio value, shorts negative)
held at the close of a week, the *as-of* week. The cash, ``1 - sum(w)``, earns nothing in a
stress: a crisis is measured by what the positions do.

Held through
    Buy and hold: the shares held at the start are kept unchanged through the scenario, so the
    weights drift with the prices. The value, 1 at the start, is
    ``V_t = 1 + sum_i w_i (G_it - 1)``, where ``G_it`` is stock i's price at t over its price at
    the start. Stock i contributes ``w_i (G_iT - 1)``, and the contributions add up to the
    scenario's return ``V_T - 1`` exactly. (Weights rebalanced every week have no such exact
    split; and a holder who does nothing is who a stress test speaks to.)

Historical windows (:data:`HISTORICAL`, or a user's ``START:END``)
    Weekly closes (W-FRI bars stamped on the week's last trading day,
    :mod:`simulator.data.weekly`). The portfolio is held from the close of the *base week*, the
    last week stamped on or before START, through every week stamped after START and on or
    before END: the window's weekly returns are those of the weeks with
    ``START < stamp <= END``. The data must hold a week on or before START and reach the week
    of END. A week without a bar keeps the stock's last close (the move shows in its next bar).
    A stock without a close at the base week (not listed yet) is *proxied*: each week it moves
    ``beta`` times the benchmark's weekly return (its price floored at 0), and it is marked as
    proxied. A window's returns are the history itself, wherever the window lies relative to
    the as-of week: that is what a historical stress is.

Hypothetical shocks (one instant move; its worst week is the move itself)
    ``bench_down_X``: the benchmark falls X% at once and each stock moves ``beta * -X%``.
    ``gap_down_X``: the stock with the largest weight (the largest long position) falls X%;
    nothing else moves. ``rates_up_Nbp``: the 2-year Treasury yield (:data:`YIELD_SERIES`) rises
    N basis points at once and each stock moves ``rate_sensitivity * N / 100``. A stock never
    falls below -100%.

Estimates (point in time)
    ``beta``: the OLS slope (with an intercept) of the stock's weekly returns on the
    benchmark's, over every week up to the as-of week in which both have a return.
    ``rate_sensitivity``: the OLS slope of the stock's weekly returns on the weekly change of
    the yield, in percentage points. Returns are never filled in (a week without a bar gives no
    return into or out of it). Fewer than :data:`MIN_WEEKS` pairs give no estimate, and a
    scenario that needs one is unavailable, with the reason. Nothing after the as-of week is
    read for them.

Figures of a scenario
    ``return`` = ``V_T - 1`` (negative for a loss); the worst week, the lowest weekly return
    ``V_t / V_{t-1} - 1`` (over the weeks that start with a positive value); ``max_drawdown`` =
    ``min_t V_t / max_{s<=t} V_s - 1`` (0 when the value never falls); and the three positions
    with the largest contributions in size.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from simulator.analytics import MIN_WEEKS
from simulator.data.weekly import WeeklyData
from simulator.errors import ConfigError, DataError, FoliosimError, did_you_mean
from simulator.session import Session
from simulator.summary import StressFacts, StressScenario, nan_to_none

#: The yield series of the rate shock: FRED's 2-year Treasury constant-maturity yield.
YIELD_SERIES = "DGS2"
#: The largest gross exposure (sum of |w|) a foliosim portfolio may hold: the optimisers'
#: ``baseline.max_gross`` goes up to 4. Weights beyond it are not a portfolio to stress.
MAX_GROSS = 4.0
#: Contributions listed per scenario.
TOP_CONTRIBUTORS = 3
#: How the portfolio is held through a scenario, in words (reports).
HELD_RULE = (
    "bought at the start and held unchanged (buy and hold: the weights drift with the prices); "
    "the cash earns nothing"
)
Kind = Literal["historical", "hypothetical"]


@dataclass(frozen=True)
class Scenario:
    """A stress scenario.

    Attributes
    ----------
    name
        Its name on the command line and in reports.
    kind
        ``"historical"`` (a window of weeks) or ``"hypothetical"`` (an instant shock).
    description
        What it is, in words.
    start, end
        A historical window's dates (see the module docstring for the weeks used).
    shock
        A hypothetical shock: ``"benchmark"``, ``"gap"`` or ``"rates"``.
    size
        The shock: the benchmark's or the stock's move as a fraction (``-0.2``), or the yield's
        rise in percentage points (``2.0``).
    user
        A user's window: one without data is an error, not an unavailable scenario.
    """

    name: str
    kind: Kind
    description: str
    start: pd.Timestamp | None = None
    end: pd.Timestamp | None = None
    shock: str = ""
    size: float = 0.0
    user: bool = False


def _window(name: str, start: str, end: str, description: str) -> Scenario:
    return Scenario(name, "historical", description, pd.Timestamp(start), pd.Timestamp(end))


#: The named historical windows: a market's peak close to its trough. The trough of
#: ``covid``, ``gfc`` and ``downgrade_2011`` fell on a Monday or a Tuesday, whose week is left
#: out (it closed well above the trough); ``rates_2022`` ends on the Friday of the week of the
#: S&P 500's closing low (Wednesday 2022-10-12), whose weekly close (3583) was the lowest of
#: the year.
HISTORICAL = {
    s.name: s
    for s in (
        _window(
            "dotcom",
            "2000-03-10",
            "2002-10-09",
            "the dot-com crash: the NASDAQ Composite's peak close (2000-03-10) to its trough "
            "(2002-10-09)",
        ),
        _window(
            "gfc",
            "2007-10-09",
            "2009-03-09",
            "the global financial crisis: the S&P 500's peak close (2007-10-09) to its trough "
            "(2009-03-09)",
        ),
        _window(
            "downgrade_2011",
            "2011-07-22",
            "2011-10-03",
            "the US debt-ceiling crisis and S&P's downgrade of the US (2011-08-05): the S&P "
            "500's last high close before it (2011-07-22) to its trough (2011-10-03)",
        ),
        _window(
            "covid",
            "2020-02-19",
            "2020-03-23",
            "the COVID-19 crash: the S&P 500's peak close (2020-02-19) to its trough (2020-03-23)",
        ),
        _window(
            "rates_2022",
            "2022-01-03",
            "2022-10-14",
            "the 2022 rate shock: the S&P 500's peak close (2022-01-03) to the week of its "
            "closing low (2022-10-12)",
        ),
    )
}
#: The hypothetical shocks run by default.
HYPOTHETICAL = ("bench_down_10", "bench_down_20", "bench_down_30", "gap_down_50", "rates_up_200bp")
#: Every scenario a stress runs when none is named.
DEFAULT_SCENARIOS = (*HISTORICAL, *HYPOTHETICAL)

_BENCH = re.compile(r"bench_down_(\d{1,2}(?:\.\d+)?)")
_GAP = re.compile(r"gap_down_(\d{1,3}(?:\.\d+)?)")
_RATES = re.compile(r"rates_up_(\d{1,4})bp")
_USER = re.compile(r"(\d{4}-\d{2}-\d{2}):(\d{4}-\d{2}-\d{2})")
NAME_RULE = (
    f"{', '.join(HISTORICAL)}, bench_down_X (0 < X < 100), gap_down_X (0 < X <= 100), "
    "rates_up_Nbp (0 < N <= 1000), or a window START:END (YYYY-MM-DD:YYYY-MM-DD)"
)


def scenario(name: str) -> Scenario:
    """The scenario called ``name`` (see :data:`NAME_RULE`); ConfigError for anything else.

    >>> s = scenario("bench_down_15")
    >>> s.kind, s.shock, s.size
    ('hypothetical', 'benchmark', -0.15)
    >>> scenario("2018-09-20:2018-12-24").user
    True
    """
    text = name.strip()
    if text in HISTORICAL:
        return HISTORICAL[text]
    if m := _BENCH.fullmatch(text):
        x = float(m[1])
        if 0 < x < 100:
            return Scenario(
                text,
                "hypothetical",
                f"the benchmark falls {x:g}% at once; each stock moves by its beta times that",
                shock="benchmark",
                size=-x / 100,
            )
    if m := _GAP.fullmatch(text):
        x = float(m[1])
        if 0 < x <= 100:
            return Scenario(
                text,
                "hypothetical",
                f"the largest long position gaps down {x:g}%; nothing else moves",
                shock="gap",
                size=-x / 100,
            )
    if m := _RATES.fullmatch(text):
        bp = int(m[1])
        if 0 < bp <= 1000:
            return Scenario(
                text,
                "hypothetical",
                f"the 2-year Treasury yield ({YIELD_SERIES}) rises {bp} bp at once; each stock "
                "moves by its rate sensitivity times that",
                shock="rates",
                size=bp / 100,
            )
    if m := _USER.fullmatch(text):
        return _user_window(text, m[1], m[2])
    raise ConfigError(
        f"unknown stress scenario {name!r}{did_you_mean(text, DEFAULT_SCENARIOS)}; use {NAME_RULE}"
    )


def _user_window(text: str, first: str, last: str) -> Scenario:
    try:
        start, end = pd.Timestamp(first), pd.Timestamp(last)
    except ValueError:
        raise ConfigError(
            f"stress window {text!r}: not a pair of dates YYYY-MM-DD:YYYY-MM-DD"
        ) from None
    if end <= start:
        raise ConfigError(f"stress window {text!r}: its end must be after its start")
    return Scenario(text, "historical", f"the window {first} to {last}", start, end, user=True)


def parse_scenarios(names: Sequence[str]) -> list[Scenario]:
    """The scenarios named (each once, in the order given); ConfigError for an unknown one.

    A name may be a comma-separated list (``--scenario covid,gfc``).
    """
    out: dict[str, Scenario] = {}
    for item in names:
        for part in item.split(","):
            if part.strip():
                found = scenario(part)
                out.setdefault(found.name, found)
    if not out:
        raise ConfigError(f"--scenario: name at least one scenario: {NAME_RULE}")
    return list(out.values())


# --- data and estimates ---------------------------------------------------------------------


@dataclass(frozen=True)
class StressData:
    """The weekly history a stress reads, on one calendar of week stamps.

    Attributes
    ----------
    closes
        Weekly closes, shape ``(n_weeks, n_tickers)``, NaN where a ticker has no bar.
    benchmark
        The index's weekly close on the same calendar (NaN where none).
    benchmark_name
        The index's name.
    yields
        The 2-year yield in percent known at each week stamp, or None.
    yield_note
        Why there is no yield series (when ``yields`` is None), for the reports.
    """

    closes: pd.DataFrame
    benchmark: pd.Series
    benchmark_name: str
    yields: pd.Series | None = None
    yield_note: str = ""

    @classmethod
    def from_weekly(cls, weekly: WeeklyData, risk_free: float | str) -> StressData:
        """The stress data of weekly bars; ``risk_free`` is the config's ``report.risk_free``
        (the yield series it names is the data's ``risk_free``)."""
        yields, note = None, ""
        if weekly.risk_free is None or not isinstance(risk_free, str):
            note = (
                f"the data has no yield series (report.risk_free = {risk_free!r}); set "
                f'report.risk_free = "{YIELD_SERIES}" with a csv or yahoo source that has it'
            )
        elif risk_free != YIELD_SERIES:
            note = f"the data's yield series is {risk_free}, not the 2-year yield {YIELD_SERIES}"
        else:
            yields = weekly.risk_free
        closes = weekly.closes()
        bench = weekly.benchmark.reindex(closes.index)
        return cls(closes, bench, str(weekly.benchmark.name), yields, note)

    @property
    def calendar(self) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(self.closes.index)


def ols_slopes(y: pd.DataFrame, x: pd.Series, min_pairs: int = MIN_WEEKS) -> pd.DataFrame:
    """The OLS slope (with an intercept) of each column of ``y`` on ``x``, on the rows where
    both are present, and the number of those rows.

    Parameters
    ----------
    y
        Shape ``(n, k)``, NaN where a value is missing.
    x
        Shape ``(n,)`` on the same index, NaN where missing.
    min_pairs
        Fewer rows than this (or an ``x`` that does not vary) give a NaN slope.

    Returns
    -------
    pd.DataFrame
        Index: ``y``'s columns; columns ``slope`` (float) and ``n`` (int).

    >>> y = pd.DataFrame({"a": [0.02, -0.04, 0.06, np.nan], "b": [1.0, 1.0, 1.0, 1.0]})
    >>> ols_slopes(y, pd.Series([0.01, -0.02, 0.03, 0.05]), min_pairs=3).round(6).to_dict()
    {'slope': {'a': 2.0, 'b': 0.0}, 'n': {'a': 3, 'b': 4}}
    """
    ys = y.to_numpy(dtype=float)
    xs = x.reindex(y.index).to_numpy(dtype=float)[:, None]
    both = np.isfinite(ys) & np.isfinite(xs)
    n = both.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        x_mean = np.where(both, xs, 0.0).sum(axis=0) / n
        y_mean = np.where(both, ys, 0.0).sum(axis=0) / n
        dx = np.where(both, xs - x_mean, 0.0)
        dy = np.where(both, ys - y_mean, 0.0)
        sxx = (dx * dx).sum(axis=0)
        slope = (dx * dy).sum(axis=0) / sxx
    slope = np.where((n >= min_pairs) & (sxx > 0), slope, np.nan)
    return pd.DataFrame({"slope": slope, "n": n.astype(int)}, index=y.columns)


def _returns(prices: pd.DataFrame | pd.Series) -> Any:
    """One-week simple returns; NaN where either week has no price (nothing filled in)."""
    return (prices / prices.shift(1) - 1.0).iloc[1:]


def estimates(data: StressData, as_of: pd.Timestamp) -> pd.DataFrame:
    """Each stock's beta and rate sensitivity from the weeks up to ``as_of`` only.

    Returns
    -------
    pd.DataFrame
        Index: the tickers; columns ``beta``, ``beta_weeks``, ``rate_sensitivity``,
        ``rate_weeks`` (NaN slopes below :data:`MIN_WEEKS` pairs; 0 weeks without a yield).
    """
    upto = data.calendar <= as_of
    stock_r = _returns(data.closes.loc[upto])
    beta = ols_slopes(stock_r, _returns(data.benchmark.loc[upto]))
    out = pd.DataFrame({"beta": beta["slope"], "beta_weeks": beta["n"]})
    if data.yields is None:
        out["rate_sensitivity"], out["rate_weeks"] = np.nan, 0
    else:
        change = data.yields.reindex(data.calendar).loc[upto].diff().iloc[1:]
        rates = ols_slopes(stock_r, change)
        out["rate_sensitivity"], out["rate_weeks"] = rates["slope"], rates["n"]
    return out


# --- the portfolio through a scenario -------------------------------------------------------


def check_weights(weights: Mapping[str, float], where: str) -> pd.Series:
    """The non-zero weights of ``weights`` as a Series; DataError unless they are a portfolio
    to stress: finite, at least one position, and a gross exposure (sum of |w|) of at most
    :data:`MAX_GROSS`. ``where`` names their source in the message."""
    w = pd.Series(dict(weights), dtype=float)
    bad = w[~np.isfinite(w.to_numpy())]
    if len(bad):
        raise DataError(
            f"{where}: the weight of {bad.index[0]} is {bad.iloc[0]}, not a number; fix the "
            "weights or pick another week"
        )
    w = w[w != 0.0]
    if w.empty:
        raise DataError(
            f"{where}: the portfolio holds no position (all cash), so a stress has nothing to "
            "move; pick a week with positions (--weights-as-of)"
        )
    gross = float(w.abs().sum())
    if gross > MAX_GROSS + 1e-9:
        raise DataError(
            f"{where}: the weights' gross exposure (sum of |w|) is {gross:.4g}, above "
            f"{MAX_GROSS:g}, the most a foliosim portfolio holds; they do not describe a "
            "portfolio (check the weights' file)"
        )
    return w.sort_index()


def hold_values(weights: np.ndarray, growth: np.ndarray) -> np.ndarray:
    """The value of a buy-and-hold portfolio (1 at the start) at each row of ``growth``.

    ``growth`` has shape ``(n_steps + 1, n_stocks)``: each stock's price over its price at the
    start (row 0 is all ones); ``weights`` has shape ``(n_stocks,)``. The cash, ``1 -
    sum(weights)``, stays as it is.

    >>> hold_values(np.array([0.5, -0.25]), np.array([[1.0, 1.0], [0.8, 1.2]])).round(6).tolist()
    [1.0, 0.85]
    """
    return 1.0 + (growth - 1.0) @ weights


def path_figures(values: np.ndarray) -> tuple[float, int | None, float, float]:
    """``(return, index of the worst step, its return, max drawdown)`` of a value path that
    starts at ``values[0] = 1``; the worst step's index counts steps from 1 (None when no step
    starts from a positive value).

    >>> [round(v, 6) for v in path_figures(np.array([1.0, 1.1, 0.88, 0.99]))]
    [-0.01, 2, -0.2, -0.2]
    """
    prev, now = values[:-1], values[1:]
    steps = np.full(len(now), np.nan)
    positive = prev > 0
    steps[positive] = now[positive] / prev[positive] - 1.0
    worst: int | None = None
    worst_return = math.nan
    if np.isfinite(steps).any():
        worst = int(np.nanargmin(steps))
        worst_return = float(steps[worst])
        worst += 1
    drawdown = float(np.min(values / np.maximum.accumulate(values) - 1.0))
    return float(values[-1] - 1.0), worst, worst_return, drawdown


def _contributors(w: pd.Series, moves: pd.Series, proxied: Sequence[str]) -> list[dict[str, Any]]:
    """The :data:`TOP_CONTRIBUTORS` largest contributions in size (ties by ticker); a position
    that did not move is not listed."""
    contribution = w * moves
    moved = [t for t in w.index if contribution[t] != 0.0]
    order = sorted(moved, key=lambda t: (-abs(float(contribution[t])), t))
    return [
        {
            "ticker": str(t),
            "weight": float(w[t]),
            "move": float(moves[t]),
            "contribution": float(contribution[t]),
            "proxied": t in proxied,
        }
        for t in order[:TOP_CONTRIBUTORS]
    ]


class Unavailable(Exception):
    """A scenario the data cannot support, and why (a default scenario is listed with the
    reason; a user's window is an error)."""


def _historical(
    sc: Scenario, w: pd.Series, data: StressData, est: pd.DataFrame, as_of: pd.Timestamp
) -> dict[str, Any]:
    """The figures of a historical window (see the module docstring)."""
    if sc.start is None or sc.end is None:
        raise ValueError(f"scenario {sc.name} is not a window")
    cal = data.calendar
    before = cal[cal <= sc.start]
    if not len(before):
        raise Unavailable(
            f"the data starts {cal[0].date()}, after the window's start {sc.start.date()}"
        )
    if cal[-1].to_period("W-FRI") < sc.end.to_period("W-FRI"):
        raise Unavailable(
            f"the data ends {cal[-1].date()}, before the window's end {sc.end.date()}"
        )
    weeks = cal[(cal > sc.start) & (cal <= sc.end)]
    if not len(weeks):
        raise Unavailable("no week ends after its start and on or before its end")
    rows = pd.DatetimeIndex([before[-1], *weeks])
    tickers = list(w.index)
    prices = data.closes.loc[: weeks[-1], tickers].ffill().loc[rows]
    start = prices.iloc[0]
    proxied = [t for t in tickers if not np.isfinite(start[t])]
    growth = prices / start
    if proxied:
        bench = data.benchmark.loc[: weeks[-1]].ffill().loc[rows]
        names = ", ".join(proxied)
        if not np.isfinite(bench.iloc[0]):
            raise Unavailable(
                f"{names} not listed by {rows[0].date()} and the benchmark "
                f"{data.benchmark_name} has no close then to proxy them"
            )
        unknown = [t for t in proxied if not np.isfinite(est.loc[t, "beta"])]
        if unknown:
            raise Unavailable(
                f"{', '.join(unknown)} not listed by {rows[0].date()}, and no beta to proxy "
                f"them (fewer than {MIN_WEEKS} weekly returns up to {as_of.date()})"
            )
        bench_r = bench.pct_change().iloc[1:].to_numpy(dtype=float)
        for t in proxied:
            factor = np.maximum(1.0 + float(est.loc[t, "beta"]) * bench_r, 0.0)
            growth[t] = np.concatenate([[1.0], np.cumprod(factor)])
    values = hold_values(w.to_numpy(), growth.to_numpy(dtype=float))
    total, worst, worst_return, drawdown = path_figures(values)
    moves = growth.iloc[-1] - 1.0
    return {
        "start": sc.start.date(),
        "end": sc.end.date(),
        "base_week": rows[0].date(),
        "first_week": weeks[0].date(),
        "last_week": weeks[-1].date(),
        "weeks": len(weeks),
        "return": total,
        "worst_week": rows[worst].date() if worst is not None else None,
        "worst_week_return": worst_return,
        "max_drawdown": drawdown,
        "contributors": _contributors(w, moves, proxied),
        "proxied": proxied,
    }


def _shock_moves(sc: Scenario, w: pd.Series, est: pd.DataFrame, data: StressData) -> pd.Series:
    """Each stock's instant move in a hypothetical shock (floored at -100%)."""
    if sc.shock == "gap":
        moves = pd.Series(0.0, index=w.index)
        moves[_gap_stock(w)] = sc.size
        return moves
    column, what = (
        ("beta", "beta") if sc.shock == "benchmark" else ("rate_sensitivity", "rate sensitivity")
    )
    if sc.shock == "rates" and data.yields is None:
        raise Unavailable(data.yield_note)
    slope = est.loc[w.index, column]
    unknown = list(slope.index[~np.isfinite(slope.to_numpy(dtype=float))])
    if unknown:
        raise Unavailable(
            f"no {what} for {', '.join(unknown)} (fewer than {MIN_WEEKS} weekly returns up to "
            "the weights' week)"
        )
    return (slope * sc.size).clip(lower=-1.0).astype(float)


def _gap_stock(w: pd.Series) -> str:
    """The stock whose fall costs most: the largest weight (the first ticker of a tie)."""
    return str(min(w.index, key=lambda t: (-float(w[t]), t)))


def _hypothetical(
    sc: Scenario, w: pd.Series, data: StressData, est: pd.DataFrame
) -> dict[str, Any]:
    """The figures of an instant shock (one step; its worst week is the shock)."""
    moves = _shock_moves(sc, w, est, data)
    growth = np.vstack([np.ones(len(w)), 1.0 + moves.to_numpy()])
    total, _worst, worst_return, drawdown = path_figures(hold_values(w.to_numpy(), growth))
    doc: dict[str, Any] = {
        "return": total,
        "worst_week_return": worst_return,
        "max_drawdown": drawdown,
        "contributors": _contributors(w, moves, ()),
    }
    if sc.shock == "gap":
        t = _gap_stock(w)
        side = "long position" if w[t] > 0 else "weight (no long position is held)"
        doc["description"] = (
            f"{t}, the largest {side} ({w[t]:.1%}), gaps down {-sc.size:.0%}; nothing else moves"
        )
    return doc


def run_scenario(
    sc: Scenario, w: pd.Series, data: StressData, est: pd.DataFrame, as_of: pd.Timestamp
) -> StressScenario:
    """One scenario's figures (an unavailable one with its reason; a user's window without
    the data it needs is a DataError)."""
    base = {"name": sc.name, "kind": sc.kind, "description": sc.description}
    try:
        if sc.kind == "historical":
            figures = _historical(sc, w, data, est, as_of)
        else:
            figures = _hypothetical(sc, w, data, est)
    except Unavailable as why:
        if sc.user:
            raise DataError(
                f"stress window {sc.name}: {why}; pick a window the data covers"
            ) from None
        window = {}
        if sc.start is not None and sc.end is not None:
            window = {"start": sc.start.date(), "end": sc.end.date()}
        return StressScenario.model_validate(
            {**base, **window, "available": False, "reason": str(why)}
        )
    return StressScenario.model_validate(nan_to_none({**base, **figures, "available": True}))


def stress(
    weights: Mapping[str, float],
    data: StressData,
    as_of: pd.Timestamp,
    scenarios: Sequence[Scenario],
    source: str,
) -> StressFacts:
    """Put the weights held at the close of ``as_of`` through each scenario.

    Parameters
    ----------
    weights
        Ticker -> weight (fractions of the portfolio value, shorts negative), checked by
        :func:`check_weights`; every ticker must be a column of ``data.closes``.
    data
        The weekly history (the whole of it the source holds, for the historical windows).
    as_of
        The week whose close the weights are held at; the estimates read weeks up to it only.
    scenarios
        The scenarios (:func:`parse_scenarios`).
    source
        Where the weights come from, for the messages and the reports.

    Raises
    ------
    DataError
        Weights that are not a portfolio, or a user's window the data cannot support.
    """
    w = check_weights(weights, source)
    missing = [t for t in w.index if t not in data.closes.columns]
    if missing:
        raise DataError(f"{source}: no prices for {', '.join(missing)} in the data")
    week = pd.Timestamp(as_of)
    est = estimates(data, week).loc[w.index]
    results = [run_scenario(sc, w, data, est, week) for sc in scenarios]
    cal = data.calendar
    return StressFacts.model_validate(
        nan_to_none(
            {
                "as_of": week.date(),
                "source": source,
                "benchmark": data.benchmark_name,
                "yield_series": YIELD_SERIES if data.yields is not None else None,
                "history_start": cal[0].date(),
                "history_end": cal[-1].date(),
                "weights": {str(t): float(v) for t, v in w.items()},
                "gross": float(w.abs().sum()),
                "net": float(w.sum()),
                "cash": 1.0 - float(w.sum()),
                "estimates": [
                    {
                        "ticker": str(t),
                        "beta": float(r["beta"]),
                        "beta_weeks": int(r["beta_weeks"]),
                        "rate_sensitivity": float(r["rate_sensitivity"]),
                        "rate_weeks": int(r["rate_weeks"]),
                    }
                    for t, r in est.iterrows()
                ],
                "scenarios": [r.model_dump(mode="json") for r in results],
                "notes": [],
            }
        )
    )


def stress_json(facts: StressFacts) -> dict[str, Any]:
    """The document of ``foliosim stress --json``: ``{"scenarios": [{"name", "return", ...}]``
    and the facts around them (NaN as null)."""
    return {"held": HELD_RULE, **facts.model_dump(mode="json")}


# --- tables ---------------------------------------------------------------------------------


def load_history(
    session: Session, tickers: Sequence[str], through: dt.date
) -> tuple[StressData, tuple[str, ...]]:
    """The weekly history of ``tickers`` and the benchmark (see the module docstring), and the
    data check's warnings."""
    weekly = session.history(tickers, max(session.config.data.end, through))
    return StressData.from_weekly(weekly, session.config.report.risk_free), weekly.warnings


def run_stress(session: Session, weights: pd.Series, as_of: pd.Timestamp) -> StressFacts:
    """The stress test of a run's positions at its last week ``as_of`` (``weights``: ticker ->
    weight, zeros allowed), every default scenario, for its summary. It never fails the run:
    when the whole history cannot be loaded the session's own weekly data is used, and a
    portfolio that cannot be stressed (all cash) has no scenario; the notes say so."""
    cfg, weekly = session.config, session.weekly
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
        history, warnings = load_history(session, list(held), as_of.date())
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
