"""Per-stock analytics: exact figures on hand-made weekly closes, the VaR quantile, the risk
rule, point in time, windows, gaps, output, and sane figures on the real paper12 data.

Expected values are computed here with plain Python (``math``, ``statistics``, loops), not
with the code under test or simulator.metrics.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import statistics
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simulator.analytics import (
    ANALYTICS_COLUMNS,
    MIN_WEEKS,
    RISK_RULE,
    analytics_json,
    risk_level,
    risk_words,
    stock_analytics,
    to_json_rows,
)
from simulator.config import DataConfig
from simulator.data import load_daily, make_weekly
from simulator.errors import ConfigError, DataError
from simulator.tables import analytics_html, analytics_rows
from strategies.risk import cvar, var

# 12 weekly returns of a stock and of the index.
R_A = [0.02, -0.01, 0.03, -0.04, 0.01, 0.05, -0.02, 0.0, 0.03, -0.06, 0.02, 0.01]
R_B = [0.01, -0.005, 0.012, -0.02, 0.004, 0.02, -0.01, 0.003, 0.01, -0.03, 0.008, 0.002]
SQRT52 = math.sqrt(52)


def weeks(n: int, start: str = "2024-01-05") -> pd.DatetimeIndex:
    return pd.date_range(start, periods=n, freq="W-FRI", name="date")


def prices(returns: list[float], start: float = 100.0) -> list[float]:
    out = [start]
    for r in returns:
        out.append(out[-1] * (1.0 + r))
    return out


def hand_figures(r: list[float], rf: list[float] | None = None) -> dict[str, float]:
    """The figures of one return list, by the textbook formulas."""
    n = len(r)
    ex = [x - (rf[i] if rf else 0.0) for i, x in enumerate(r)]
    equity, peak, mdd = 1.0, 1.0, 0.0
    for x in r:
        equity *= 1.0 + x
        peak = max(peak, equity)
        mdd = min(mdd, equity / peak - 1.0)
    downside = math.sqrt(sum(min(e, 0.0) ** 2 for e in ex) / n)
    return {
        "annual_return": math.prod(1.0 + x for x in r) ** (52 / n) - 1.0,
        "volatility": statistics.stdev(r) * SQRT52,
        "max_drawdown": mdd,
        "sortino": statistics.fmean(ex) / downside * SQRT52,
    }


def hand_beta(x: list[float], y: list[float]) -> float:
    mx, my = statistics.fmean(x), statistics.fmean(y)
    cov = sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True))
    return cov / sum((b - my) ** 2 for b in y)


@pytest.fixture
def frame() -> tuple[pd.DataFrame, pd.Series]:
    """Closes of A, B = 2x the index's returns, C = -0.5x, and the index, over 13 weeks."""
    idx = weeks(13)
    closes = pd.DataFrame(
        {
            "A": prices(R_A),
            "B": prices([2 * x for x in R_B]),
            "C": prices([-0.5 * x for x in R_B], 50.0),
        },
        index=idx,
    )
    return closes, pd.Series(prices(R_B, 1000.0), index=idx, name="IDX")


# --- exact figures ----------------------------------------------------------------------------


def test_figures_equal_the_hand_computation(frame: tuple[pd.DataFrame, pd.Series]) -> None:
    closes, bench = frame
    out = stock_analytics(closes, bench, closes.index[-1], window=52)
    assert list(out.columns) == list(ANALYTICS_COLUMNS)
    assert list(out.index) == ["A", "B", "C"] and out.index.name == "ticker"
    a = out.loc["A"]
    assert a["weeks"] == 12
    for key, value in hand_figures(R_A).items():
        assert a[key] == pytest.approx(value, rel=1e-9), key
    assert a["beta"] == pytest.approx(hand_beta(R_A, R_B), rel=1e-9)
    # 12 returns: k = ceil(0.6) = 1, the worst week (-6%) is both VaR and CVaR.
    assert a["var_95"] == pytest.approx(0.06, rel=1e-9)
    assert a["cvar_95"] == pytest.approx(0.06, rel=1e-9)
    assert out.loc["B", "beta"] == pytest.approx(2.0, rel=1e-9)
    assert out.loc["C", "beta"] == pytest.approx(-0.5, rel=1e-9)
    assert out["weeks"].dtype == np.int64


def test_hand_numbers_spelled_out() -> None:
    """One case with the arithmetic written out: +10%, -20%, +25%, then flat weeks."""
    r = [0.10, -0.20, 0.25] + [0.0] * 5
    idx = weeks(9)
    out = stock_analytics(pd.DataFrame({"X": prices(r)}, index=idx), pd.Series(1.0, idx), idx[-1])
    x = out.loc["X"]
    # 1.1 * 0.8 * 1.25 = 1.1 over 8 weeks; the peak 1.1 falls to 0.88 (-20%).
    assert x["annual_return"] == pytest.approx(1.1 ** (52 / 8) - 1, rel=1e-12)
    assert x["max_drawdown"] == pytest.approx(-0.20, rel=1e-12)
    # mean 0.15 / 8; downside deviation sqrt(0.04 / 8).
    assert x["sortino"] == pytest.approx((0.15 / 8) / math.sqrt(0.04 / 8) * SQRT52, rel=1e-12)
    assert x["var_95"] == pytest.approx(0.20, rel=1e-12)
    assert out["beta"].isna().all()  # a flat benchmark has no variance


def test_sortino_uses_the_previous_weeks_yield() -> None:
    idx = weeks(13)
    closes = pd.DataFrame({"A": prices(R_A)}, index=idx)
    yields = pd.Series([4.0 + 0.1 * i for i in range(13)], index=idx)  # percent
    out = stock_analytics(closes, pd.Series(prices(R_B), idx), idx[-1], risk_free=yields)
    # The return of week t earns the yield known at the close of week t-1.
    rf = [(1 + yields.iloc[t - 1] / 100) ** (1 / 52) - 1 for t in range(1, 13)]
    assert out.loc["A", "sortino"] == pytest.approx(hand_figures(R_A, rf)["sortino"], rel=1e-9)
    const = stock_analytics(closes, pd.Series(prices(R_B), idx), idx[-1], risk_free=0.02)
    flat = [1.02 ** (1 / 52) - 1] * 12
    assert const.loc["A", "sortino"] == pytest.approx(hand_figures(R_A, flat)["sortino"], 1e-9)
    # Volatility and drawdown do not depend on the rate.
    pd.testing.assert_series_equal(out["volatility"], const["volatility"])


# --- VaR and CVaR -----------------------------------------------------------------------------


def _tail(n: int) -> np.ndarray:
    """n returns whose worst are -9%, -7%, -5%, the rest between -4% and +4%, shuffled."""
    body = np.linspace(-0.04, 0.04, n - 3)
    return np.random.default_rng(n).permutation(np.concatenate([[-0.05, -0.09, -0.07], body]))


def historical_var_cvar(r: np.ndarray) -> tuple[float, float]:
    """The analytics' 95% figures: strategies.risk's historical VaR and CVaR."""
    return var(r, 0.95), cvar(r, 0.95)


@pytest.mark.parametrize(
    ("n", "var_95", "cvar_95"),
    [
        (20, 0.09, 0.09),  # a = 0.05 n = 1, k = 1: the worst week
        (21, 0.07, (0.09 + 0.05 * 0.07) / 1.05),  # a = 1.05, k = 2: 5% of the second worst
        (40, 0.07, 0.08),  # a = k = 2: the mean of the two worst
        (52, 0.05, (0.09 + 0.07 + 0.6 * 0.05) / 2.6),  # a = 2.6, k = 3
        (60, 0.05, 0.07),  # a = k = 3
    ],
)
def test_var_is_the_kth_worst_week(n: int, var_95: float, cvar_95: float) -> None:
    r = _tail(n)
    got = historical_var_cvar(r)
    assert got == pytest.approx((var_95, cvar_95), rel=1e-12)
    # The same quantile as numpy's empirical (inverted_cdf) one.
    assert got[0] == pytest.approx(-np.quantile(r, 0.05, method="inverted_cdf"), rel=1e-12)


def test_cvar_takes_a_tail_of_exactly_five_percent_of_the_weeks_with_ties() -> None:
    r = np.array([0.01] * 37 + [-0.04, -0.09, -0.04])
    var_95, cvar_95 = historical_var_cvar(r)  # n = 40, a = k = 2: two of the three worst
    assert var_95 == pytest.approx(0.04, rel=1e-12)
    assert cvar_95 == pytest.approx((0.09 + 0.04) / 2, rel=1e-12)


def test_var_through_stock_analytics_on_52_weeks() -> None:
    r = [float(x) for x in _tail(52)]
    idx = weeks(53)
    out = stock_analytics(pd.DataFrame({"A": prices(r)}, index=idx), pd.Series(1.0, idx), idx[-1])
    assert out.loc["A", "var_95"] == pytest.approx(0.05, rel=1e-9)
    assert out.loc["A", "cvar_95"] == pytest.approx((0.09 + 0.07 + 0.6 * 0.05) / 2.6, rel=1e-9)


def test_var_is_negative_when_even_the_worst_weeks_gained() -> None:
    var_95, cvar_95 = historical_var_cvar(np.array([0.01, 0.02, 0.03]))
    assert (var_95, cvar_95) == pytest.approx((-0.01, -0.01))


# --- the risk rule ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("vol", "mdd", "level"),
    [
        (0.10, -0.05, "low"),
        (0.199, -0.149, "low"),
        (0.20, -0.05, "medium"),  # volatility at the low limit is not low
        (0.10, -0.15, "medium"),  # a 15% fall is not low
        (0.349, -0.299, "medium"),
        (0.35, 0.0, "high"),  # volatility at the high limit is high
        (0.10, -0.30, "high"),  # a 30% fall is high
        (0.50, -0.50, "high"),
        (math.nan, -0.10, "unknown"),
        (0.10, math.nan, "unknown"),
    ],
)
def test_risk_level_thresholds(vol: float, mdd: float, level: str) -> None:
    assert risk_level(vol, mdd) == level


def test_risk_column_follows_the_rule() -> None:
    idx = weeks(21)
    calm = [0.005, -0.004] * 10  # about 3.3% a year, no real fall
    middle = [0.03, -0.025] * 10  # about 20% a year
    crash = [0.01] * 10 + [-0.40] + [0.01] * 9  # a 40% fall
    closes = pd.DataFrame(
        {"CALM": prices(calm), "MID": prices(middle), "CRASH": prices(crash)}, index=idx
    )
    closes["SHORT"] = [math.nan] * 14 + prices([0.01] * 6)  # 6 returns: too few
    out = stock_analytics(closes, pd.Series(prices(calm), idx), idx[-1])
    assert out["risk"].tolist() == ["low", "medium", "high", "unknown"]
    assert statistics.stdev(middle) * SQRT52 == pytest.approx(out.loc["MID", "volatility"])
    assert RISK_RULE.startswith("low: annualised volatility below 20%")


def test_fewer_than_min_weeks_is_unknown() -> None:
    idx = weeks(12)
    closes = pd.DataFrame(
        {
            "SEVEN": [math.nan] * 4 + prices([0.01, -0.01] * 3 + [0.02]),  # 8 closes, 7 returns
            "EIGHT": [math.nan] * 3 + prices([0.01, -0.01] * 4),  # 9 closes, 8 returns
        },
        index=idx,
    )
    out = stock_analytics(closes, pd.Series(prices([0.01] * 11), idx), idx[-1])
    assert MIN_WEEKS == 8
    assert out.loc["SEVEN", "weeks"] == 7 and out.loc["SEVEN", "risk"] == "unknown"
    assert out.loc["SEVEN", list(ANALYTICS_COLUMNS[1:-1])].isna().all()
    assert out.loc["EIGHT", "weeks"] == 8 and out.loc["EIGHT", "risk"] != "unknown"
    assert out.loc["EIGHT", "var_95"] == pytest.approx(0.01, rel=1e-9)


# --- point in time, windows, gaps -------------------------------------------------------------


def _thirty() -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    idx = weeks(30)
    rng = np.random.default_rng(7)
    rets = rng.normal(0.003, 0.04, size=(29, 3))
    closes = pd.DataFrame(
        {t: prices(list(rets[:, i])) for i, t in enumerate(["A", "B", "C"])}, index=idx
    )
    closes.iloc[4, 2] = math.nan  # a gap in C
    bench = pd.Series(prices(list(rets.mean(axis=1))), index=idx)
    yields = pd.Series(np.linspace(1.0, 4.0, 30), index=idx)
    return closes, bench, yields


def test_later_prices_do_not_matter() -> None:
    closes, bench, yields = _thirty()
    as_of = closes.index[19]
    base = stock_analytics(closes, bench, as_of, window=12, risk_free=yields)

    changed = closes.copy()
    changed.iloc[20:] *= 3.0
    changed.iloc[22, 0] = math.nan
    later_bench = bench.copy()
    later_bench.iloc[20:] = 1.0
    later_yields = yields.copy()
    later_yields.iloc[20:] = 50.0
    variants = [
        stock_analytics(changed, later_bench, as_of, 12, later_yields),
        stock_analytics(closes.iloc[:20], bench.iloc[:20], as_of, 12, yields.iloc[:20]),
        # A date inside the next week reads the same closes as the week's stamp.
        stock_analytics(closes, bench, as_of + pd.Timedelta(days=3), 12, yields.iloc[:20]),
    ]
    for other in variants:
        pd.testing.assert_frame_equal(other, base)


def test_window_takes_the_last_weeks() -> None:
    closes, bench, _ = _thirty()
    out = stock_analytics(closes, bench, closes.index[-1], window=10)
    r = (closes["A"] / closes["A"].shift(1) - 1).iloc[-10:].tolist()
    assert out.loc["A", "weeks"] == 10
    assert out.loc["A", "volatility"] == pytest.approx(statistics.stdev(r) * SQRT52, rel=1e-9)
    assert out.loc["A", "annual_return"] == pytest.approx(
        (closes["A"].iloc[-1] / closes["A"].iloc[-11]) ** (52 / 10) - 1, rel=1e-9
    )


def test_window_longer_than_the_history() -> None:
    closes, bench, _ = _thirty()
    long = stock_analytics(closes, bench, closes.index[-1], window=520)
    assert long.loc["A", "weeks"] == 29
    pd.testing.assert_frame_equal(long, stock_analytics(closes, bench, closes.index[-1], 29))


def test_a_gap_drops_the_returns_into_and_out_of_it() -> None:
    idx = weeks(13)
    closes = pd.DataFrame({"A": prices(R_A)}, index=idx)
    closes.iloc[5, 0] = math.nan  # no bar in week 5: returns 5 and 6 (R_A[4], R_A[5]) vanish
    bench = pd.Series(prices(R_B), index=idx)
    bench.iloc[9] = math.nan  # the index misses week 9: beta also loses returns 9 and 10
    out = stock_analytics(closes, bench, idx[-1]).loc["A"]
    used = R_A[:4] + R_A[6:]
    assert out["weeks"] == 10
    for key, value in hand_figures(used).items():
        assert out[key] == pytest.approx(value, rel=1e-9), key
    shared = [0, 1, 2, 3, 6, 7, 10, 11]
    expected_beta = hand_beta([R_A[i] for i in shared], [R_B[i] for i in shared])
    assert out["beta"] == pytest.approx(expected_beta, rel=1e-9)
    assert out["var_95"] == pytest.approx(0.06, rel=1e-9)


def test_input_is_not_modified(frame: tuple[pd.DataFrame, pd.Series]) -> None:
    closes, bench = frame
    closes.iloc[3, 1] = math.nan
    before, bench_before = closes.copy(), bench.copy()
    stock_analytics(closes, bench, closes.index[-1], 10, 0.03)
    pd.testing.assert_frame_equal(closes, before)
    pd.testing.assert_series_equal(bench, bench_before)


def test_bad_inputs_are_refused(frame: tuple[pd.DataFrame, pd.Series]) -> None:
    closes, bench = frame
    end = closes.index[-1]
    with pytest.raises(DataError, match="no weekly close on or before"):
        stock_analytics(closes, bench, pd.Timestamp("2020-01-01"))
    with pytest.raises(ConfigError, match="at least 8"):
        stock_analytics(closes, bench, end, window=4)
    with pytest.raises(DataError, match="ascending"):
        stock_analytics(closes.iloc[::-1], bench, end)
    bad = closes.copy()
    bad.iloc[2, 0] = -1.0
    with pytest.raises(DataError, match="A has a non-positive close"):
        stock_analytics(bad, bench, end)
    late = pd.Series(3.0, index=closes.index[6:])
    with pytest.raises(DataError, match="risk-free"):
        stock_analytics(closes, bench, end, risk_free=late)
    # A bad price after as_of is not read.
    stock_analytics(bad.iloc[:1].combine_first(closes), bench, end)
    later_bad = closes.copy()
    later_bad.iloc[-1, 0] = -1.0
    stock_analytics(later_bad, bench, closes.index[-2])


def test_no_tickers_gives_an_empty_frame() -> None:
    idx = weeks(10)
    out = stock_analytics(pd.DataFrame(index=idx), pd.Series(1.0, idx), idx[-1])
    assert out.empty and list(out.columns) == list(ANALYTICS_COLUMNS)


# --- output -----------------------------------------------------------------------------------


def _shown() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "weeks": [52, 5],
            "annual_return": [0.3256, math.nan],
            "volatility": [0.2834, math.nan],
            "max_drawdown": [-0.1822, math.nan],
            "sortino": [1.2345, math.nan],
            "beta": [1.214, math.nan],
            "var_95": [0.0514, math.nan],
            "cvar_95": [0.0702, math.nan],
            "risk": ["medium", "unknown"],
        },
        index=pd.Index(["AAPL", "<b>X"], name="ticker"),
    )


def test_json_rows_and_document() -> None:
    rows = to_json_rows(_shown())
    assert rows[0] == {
        "ticker": "AAPL",
        "weeks": 52,
        "annual_return": 0.3256,
        "volatility": 0.2834,
        "max_drawdown": -0.1822,
        "sortino": 1.2345,
        "beta": 1.214,
        "var_95": 0.0514,
        "cvar_95": 0.0702,
        "risk": "medium",
    }
    assert rows[1]["beta"] is None and rows[1]["weeks"] == 5 and type(rows[1]["weeks"]) is int
    doc = analytics_json(_shown(), pd.Timestamp("2023-06-23"), 52)
    text = json.dumps(doc, allow_nan=False)
    assert json.loads(text)["as_of"] == "2023-06-23" and doc["risk_rule"] == RISK_RULE


def test_html_section() -> None:
    page = analytics_html(_shown(), pd.Timestamp("2023-06-23"), 52, benchmark_name="IXIC")
    assert page.startswith("<h3>Per-stock analytics</h3>")
    assert '<table id="analytics">' in page
    cells = ["AAPL", "52", "32.6%", "28.3%", "-18.2%", "1.23", "1.21", "5.1%", "7.0%", "medium"]
    assert "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>" in page
    assert "<td>&lt;b&gt;X</td><td>5</td>" + "<td>n/a</td>" * 7 + "<td>unknown</td>" in page
    assert "last 52 weeks up to the week of 2023-06-23" in page and "IXIC" in page
    assert "k = ceil(0.05 n)" in page and "fewer than 8 weekly returns" in page
    assert "AAPL: medium risk — over the 52 weeks measured" in page
    head, rows = analytics_rows(_shown())
    assert head[0] == "Ticker" and rows[0] == cells


def test_risk_words() -> None:
    frame = _shown()
    assert risk_words(frame.iloc[0]) == (
        "AAPL: medium risk — over the 52 weeks measured its price moved about 28% a year and "
        "fell at most 18% from a peak; in its worst 1 week out of 20 it lost 5.1% or more."
    )
    assert risk_words(frame.iloc[1]) == (
        "<b>X: risk unknown — only 5 weekly price changes up to this date, fewer than the 8 needed."
    )
    calm = pd.Series(
        {"weeks": 30, "volatility": 0.046, "max_drawdown": 0.0, "var_95": -0.002, "risk": "low"},
        name="T",
    )
    assert risk_words(calm) == (
        "T: low risk — over the 30 weeks measured its price moved about 4.6% a year and never "
        "fell below an earlier peak; even in its worst 1 week out of 20 it did not lose money."
    )


# --- the real data ----------------------------------------------------------------------------


def test_real_paper12_figures_are_sane(paper12: Path, tmp_path: Path) -> None:
    cfg = DataConfig(
        source="csv",
        path=str(paper12),
        benchmark="IXIC",
        start=dt.date(2021, 6, 1),
        end=dt.date(2023, 6, 23),
    )
    weekly = make_weekly(load_daily(cfg, "DGS2", tmp_path))
    as_of = pd.Timestamp("2023-06-23")
    closes = weekly.closes()
    assert weekly.risk_free is not None
    out = stock_analytics(closes, weekly.benchmark, as_of, 52, weekly.risk_free)
    assert len(out) == 12 and (out["weeks"] == 52).all()
    assert not out.drop(columns="risk").isna().any().any()
    assert out["volatility"].between(0.10, 1.0).all()
    assert out["max_drawdown"].between(-0.8, 0.0).all()
    assert (out["var_95"] > 0).all() and (out["cvar_95"] >= out["var_95"]).all()
    assert set(out["risk"]) <= {"low", "medium", "high"}
    tech = ["AAPL", "MSFT", "NVDA", "AMZN", "NFLX", "SHOP", "TSLA"]
    assert (out.loc[tech, "beta"] > 0.5).all()
    beta = out["beta"].to_dict()
    assert beta["NVDA"] > beta["PEP"]
    # 52 weeks without gaps: the annual return is the price ratio over exactly one year.
    aapl = closes["AAPL"].loc[:as_of]
    assert out.loc["AAPL", "annual_return"] == pytest.approx(
        aapl.iloc[-1] / aapl.iloc[-53] - 1, rel=1e-9
    )
