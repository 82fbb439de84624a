"""Portfolio risk measures (``strategies.risk``): exact figures on hand-made returns.

- Historical VaR is the k-th worst week (k = ceil(alpha n)) and CVaR the mean loss of a tail
  of exactly alpha n weeks, written out by hand for several n, both levels, with ties.
- Gaussian and Cornish-Fisher figures equal the textbook formulas computed here with
  ``statistics.NormalDist`` (not scipy) and the moments by loops; the Cornish-Fisher CVaR's
  closed form equals the numerical mean of its quantile function over the tail.
- Cross-checks: skfolio's ``cvar`` equals ours to 1e-12, its ``value_at_risk`` too except on
  a whole number of tail weeks, where it is the next order statistic (the documented
  difference); QuantStats' ``var`` and ``cvar`` are our Gaussian figures with the opposite
  sign, its historical ``cvar`` the mean below a linearly interpolated quantile.
- Portfolio returns of weights (a missing return counts as 0), ex-ante figures over a
  trailing window, bad input refused with a message.
- The reports: summary.json's ``risk`` of hand-made series, and of a real run with its tear
  sheet's "Portfolio risk" table; an older summary without them still loads.
"""

from __future__ import annotations

import json
import math
import re
import statistics
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest
import quantstats as qs
from scipy.integrate import quad
from scipy.special import ndtri
from skfolio.measures import cvar as skfolio_cvar
from skfolio.measures import value_at_risk as skfolio_var

from simulator.backtest import run_backtest
from simulator.config import load_config
from simulator.report import write_run
from simulator.results import risk_summary
from simulator.sections import risk_html
from simulator.summary import parse_summary
from strategies.risk import (
    FIGURES,
    METHODS,
    MIN_WEEKS,
    RULE,
    cornish_fisher_increasing,
    cornish_fisher_sorted,
    cornish_fisher_z,
    cvar,
    ex_ante_figures,
    ex_ante_returns,
    moments,
    portfolio_cvar,
    portfolio_returns,
    risk_figures,
    tail_weeks,
    trailing_returns,
    var,
)
from tests.conftest import REPO
from tests.helpers import summary_doc, weekly_returns

#: 12 weekly returns with a fat left tail.
R = [0.021, -0.013, 0.034, -0.047, 0.012, 0.051, -0.022, 0.004, 0.029, -0.081, 0.018, 0.007]
#: R with a deeper loss and a higher gain: skew -1.01, excess kurtosis 1.95, inside the
#: domain where the Cornish-Fisher expansion increases.
FAT = [0.021, -0.013, 0.034, -0.047, 0.012, 0.07, -0.022, 0.004, 0.029, -0.10, 0.018, 0.007]
STD_NORMAL = NormalDist()


def tailed(n: int, worst: tuple[float, ...] = (-0.09, -0.07, -0.05)) -> np.ndarray:
    """n returns whose worst are ``worst``, the rest spread between -4% and +4%, shuffled."""
    body = np.linspace(-0.04, 0.04, n - len(worst))
    return np.random.default_rng(n).permutation(np.concatenate([worst, body]))


# --- historical ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "level", "var_", "cvar_"),
    [
        (10, 0.95, 0.09, 0.09),  # a = 0.5 < 1: the worst week is both
        (20, 0.95, 0.09, 0.09),  # a = 1 (not 1.0000000000000009), k = 1
        (21, 0.95, 0.07, (0.09 + 0.05 * 0.07) / 1.05),  # a = 1.05, k = 2: 5% of the 2nd
        (30, 0.95, 0.07, (0.09 + 0.5 * 0.07) / 1.5),  # a = 1.5
        (40, 0.95, 0.07, (0.09 + 0.07) / 2),  # a = k = 2
        (52, 0.95, 0.05, (0.09 + 0.07 + 0.6 * 0.05) / 2.6),  # a = 2.6, k = 3
        (60, 0.95, 0.05, (0.09 + 0.07 + 0.05) / 3),  # a = k = 3
        (52, 0.99, 0.09, 0.09),  # a = 0.52
        (150, 0.99, 0.07, (0.09 + 0.5 * 0.07) / 1.5),  # a = 1.5, k = 2
        (200, 0.99, 0.07, (0.09 + 0.07) / 2),  # a = k = 2
    ],
)
def test_historical_var_is_the_kth_worst_week_and_cvar_a_tail_of_alpha_n_weeks(
    n: int, level: float, var_: float, cvar_: float
) -> None:
    r = tailed(n)
    assert var(r, level) == pytest.approx(var_, rel=1e-12)
    assert cvar(r, level) == pytest.approx(cvar_, rel=1e-12)
    assert cvar(r, level) >= var(r, level)
    # The VaR is numpy's empirical quantile without interpolation (at 0.05, not at 1 - 0.95
    # = 0.050000000000000044, whose 20 weeks would be 1.0000000000000009, two order statistics).
    assert var(r, level) == -np.quantile(r, round(1 - level, 12), method="inverted_cdf")


def test_tail_weeks_round_away_floating_point_noise() -> None:
    assert (1 - 0.95) * 20 == 1.0000000000000009
    assert tail_weeks(20, 0.95) == (1.0, 1)
    assert tail_weeks(100, 0.99) == (1.0, 1)
    assert tail_weeks(21, 0.95) == (1.05, 2)


def test_a_tied_boundary_counts_only_the_tail_mass() -> None:
    r = np.array([0.01] * 37 + [-0.04, -0.09, -0.04])  # n = 40, a = 2: -9% and one -4%
    assert var(r) == pytest.approx(0.04, rel=1e-12)
    assert cvar(r) == pytest.approx((0.09 + 0.04) / 2, rel=1e-12)


def test_figures_are_negative_when_even_the_worst_weeks_gained() -> None:
    r = np.array([0.01, 0.02, 0.03, 0.015, 0.025, 0.012, 0.018, 0.022])
    assert var(r) == pytest.approx(-0.01, rel=1e-12)
    assert cvar(r) == pytest.approx(-0.01, rel=1e-12)


def test_historical_figures_ignore_order_and_scale_with_the_weights() -> None:
    r = tailed(52)
    shuffled = np.random.default_rng(1).permutation(r)
    assert (var(shuffled), cvar(shuffled)) == (var(r), cvar(r))
    for s in (0.3, 2.5):
        # Positive homogeneity: what lets the profile's CVaR limit scale by limit / cvar.
        assert cvar(s * r) == pytest.approx(s * cvar(r), rel=1e-14)
        assert var(s * r) == pytest.approx(s * var(r), rel=1e-14)


@pytest.mark.parametrize("n", [10, 20, 21, 30, 40, 52, 60, 100, 104, 200, 333])
@pytest.mark.parametrize("level", [0.95, 0.99])
def test_skfolio_agrees_except_var_on_a_whole_number_of_tail_weeks(n: int, level: float) -> None:
    r = np.random.default_rng(n).standard_t(4, n) * 0.03 + 0.002
    assert cvar(r, level) == pytest.approx(float(skfolio_cvar(r, beta=level)), abs=1e-12)
    a, k = tail_weeks(n, level)
    theirs = float(skfolio_var(r, beta=level))
    if a == round(a) and a >= 1:
        # skfolio: the lower level-quantile of the loss, the (a + 1)-th worst return.
        assert theirs == -np.sort(r)[k]
        assert var(r, level) == -np.sort(r)[k - 1] > theirs
    else:
        assert var(r, level) == pytest.approx(theirs, abs=1e-15)


# --- Gaussian and Cornish-Fisher ----------------------------------------------------------------


def hand_moments(r: list[float]) -> tuple[float, float, float, float]:
    """Mean, sample std, adjusted skewness and excess kurtosis, by the textbook formulas."""
    n = len(r)
    mu = sum(r) / n
    m2 = sum((x - mu) ** 2 for x in r) / n
    m3 = sum((x - mu) ** 3 for x in r) / n
    m4 = sum((x - mu) ** 4 for x in r) / n
    g1, g2 = m3 / m2**1.5, m4 / m2**2 - 3
    skew = g1 * math.sqrt(n * (n - 1)) / (n - 2)
    kurt = (n - 1) / ((n - 2) * (n - 3)) * ((n + 1) * g2 + 6)
    return mu, statistics.stdev(r), skew, kurt


def test_moments_are_the_adjusted_estimators_of_pandas() -> None:
    got = moments(R)
    assert got == pytest.approx(hand_moments(R), rel=1e-12)
    s = pd.Series(R)
    assert got[2] == pytest.approx(s.skew(), rel=1e-12)
    assert got[3] == pytest.approx(s.kurt(), rel=1e-12)
    assert moments([0.01] * 6) == (0.01, 0.0, 0.0, 0.0)  # no spread: no skew, no kurtosis
    mu, std, skew, kurt = moments([0.01, 0.03, 0.02])  # symmetric; too few for a kurtosis
    assert (mu, std, skew) == pytest.approx((0.02, 0.01, 0.0), abs=1e-12)
    assert math.isnan(kurt)


@pytest.mark.parametrize("level", [0.95, 0.99])
def test_gaussian_figures_by_hand(level: float) -> None:
    mu, sd = statistics.fmean(R), statistics.stdev(R)
    alpha = 1 - level
    z = STD_NORMAL.inv_cdf(alpha)
    assert var(R, level, "gaussian") == pytest.approx(-(mu + sd * z), rel=1e-12)
    expected = -mu + sd * STD_NORMAL.pdf(z) / alpha
    assert cvar(R, level, "gaussian") == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("level", [0.95, 0.99])
def test_cornish_fisher_figures_by_hand(level: float) -> None:
    mu, sd, s, k = hand_moments(FAT)
    # The expansion increases everywhere: d z_cf / d z = a z^2 + b z + c with a > 0 and no
    # real root, so the figures are the textbook closed forms.
    a, b, c = k / 8 - s * s / 6, s / 3, 1 - k / 8 + 5 * s * s / 36
    assert a > 0 and b * b - 4 * a * c < 0 and cornish_fisher_increasing(s, k)
    alpha = 1 - level
    z = STD_NORMAL.inv_cdf(alpha)

    def z_cf(t: float) -> float:
        return t + (t * t - 1) * s / 6 + (t**3 - 3 * t) * k / 24 - (2 * t**3 - 5 * t) * s * s / 36

    assert cornish_fisher_z(z, s, k) == pytest.approx(z_cf(z), rel=1e-14)
    assert var(FAT, level, "cornish_fisher") == pytest.approx(-(mu + sd * z_cf(z)), rel=1e-12)
    # CVaR: the mean of the expansion's quantile function over the tail, p in (0, alpha),
    # i.e. the integral of z_cf(t) phi(t) for t below z, divided by alpha.
    # Below -12 the integrand is under 1e-28 in size: nothing to integrate there.
    integral, error = quad(
        lambda t: z_cf(t) * STD_NORMAL.pdf(t), -12, z, epsabs=1e-15, epsrel=1e-13, limit=500
    )
    assert error < 1e-14
    expected = -(mu + sd * integral / alpha)
    assert cvar(FAT, level, "cornish_fisher") == pytest.approx(expected, rel=1e-12)
    # The fat left tail makes both figures larger than the Gaussian ones.
    assert s < 0 < k
    assert var(FAT, level, "cornish_fisher") > var(FAT, level, "gaussian")
    assert cvar(FAT, level, "cornish_fisher") > cvar(FAT, level, "gaussian")
    assert not cornish_fisher_sorted(FAT, level)


def sorted_expansion(returns: list[float], level: float, n: int = 1_000_000) -> tuple[float, ...]:
    """VaR and CVaR of the distribution of ``mu + sd z_cf(Z)`` by brute force: the expansion
    at ``n`` evenly spaced probabilities, sorted; the VaR is the ``alpha n``-th lowest value
    and the CVaR the mean of the ``alpha n`` lowest (independent of the roots and bisection
    of strategies.risk; within 2e-6 of the exact figures here)."""
    mu, sd, s, k = hand_moments(returns)
    z = ndtri((np.arange(n) + 0.5) / n)
    y = np.sort(z + (z * z - 1) * s / 6 + (z**3 - 3 * z) * k / 24 - (2 * z**3 - 5 * z) * s * s / 36)
    m = round((1 - level) * n)
    return -(mu + sd * y[m - 1]), -(mu + sd * float(np.mean(y[:m])))


#: Ten weekly returns of the Nasdaq Composite (IXIC), 8 July to 9 September 2022, rounded to
#: 0.01%: the 10-week account of issue 26 whose Cornish-Fisher CVaR 99% was below its VaR.
NASDAQ_10 = [0.0456, -0.0157, 0.0333, 0.047, 0.0215, 0.0308, -0.0262, -0.0444, -0.0421, 0.0414]


def test_regression_a_cornish_fisher_cvar_below_its_var() -> None:
    mu, sd, s, k = hand_moments(NASDAQ_10)
    assert (round(s, 2), round(k, 2)) == (-0.50, -1.74)  # platykurtic: the cubic bends back
    assert not cornish_fisher_increasing(s, k)
    z = STD_NORMAL.inv_cdf(0.01)
    # The textbook closed forms, what the tear sheet showed: CVaR 7.06% < VaR 7.22%.
    closed_var = -(mu + sd * cornish_fisher_z(z, s, k))
    closed_cvar = -mu + sd * STD_NORMAL.pdf(z) / 0.01 * (
        1 + z * s / 6 + (z * z - 1) * k / 24 + (1 - 2 * z * z) * s * s / 36
    )
    assert (round(closed_var * 100, 2), round(closed_cvar * 100, 2)) == (7.22, 7.06)
    # Ours: the figures of the distribution the expansion describes (its quantiles sorted).
    got = (var(NASDAQ_10, 0.99, "cornish_fisher"), cvar(NASDAQ_10, 0.99, "cornish_fisher"))
    assert (round(got[0] * 100, 2), round(got[1] * 100, 2)) == (7.14, 7.27)
    assert got[1] >= got[0]
    assert got == pytest.approx(sorted_expansion(NASDAQ_10, 0.99), abs=1e-5)
    assert cornish_fisher_sorted(NASDAQ_10, 0.99) and cornish_fisher_sorted(NASDAQ_10, 0.95)


@pytest.mark.parametrize("level", [0.95, 0.99])
@pytest.mark.parametrize(
    "returns",
    [R, NASDAQ_10, [0.01] * 9 + [-0.05], [-0.01] * 9 + [0.05], [0.03, -0.03] * 5],
    ids=["fat-tail-bending-at-8-sigma", "nasdaq-10", "one-crash", "one-jump", "two-point"],
)
def test_sorted_cornish_fisher_figures_match_brute_force(
    returns: list[float], level: float
) -> None:
    got = (var(returns, level, "cornish_fisher"), cvar(returns, level, "cornish_fisher"))
    assert got == pytest.approx(sorted_expansion(returns, level), abs=1e-5)


def _series() -> dict[str, list[float]]:
    """Hand-made and seeded series: short (8 and 10 weeks), skewed both ways, platykurtic,
    fat-tailed, constant, and 100 random ones of 8 to 104 weeks from four laws."""
    out = {
        "R": R,
        "fat": FAT,
        "nasdaq-10": NASDAQ_10,
        "one-crash": [0.01] * 9 + [-0.05],
        "one-jump": [-0.01] * 9 + [0.05],
        "two-point": [0.03, -0.03] * 5,
        "flat": [-0.002] * 10,
        "eight-weeks": [0.02, -0.01, 0.0, 0.01, -0.08, 0.03, 0.01, 0.0],
        **{f"tailed-{n}": list(tailed(n)) for n in (10, 13, 20, 30, 52, 104)},
    }
    rng = np.random.default_rng(26)
    for i in range(100):
        n = int(rng.integers(8, 105))
        law = i % 4
        if law == 0:
            x = rng.normal(0.002, 0.03, n)
        elif law == 1:
            x = 0.02 * rng.standard_t(3, n)
        elif law == 2:
            x = rng.uniform(-0.05, 0.05, n)  # platykurtic
        else:
            x = rng.choice([-1.0, 1.0]) * (rng.lognormal(-4.0, 0.8, n) - 0.02)  # skewed
        out[f"random-{i}"] = list(x)
    return out


def test_cvar_is_never_below_var_for_any_method_level_or_series() -> None:
    for name, returns in _series().items():
        figures = risk_figures(returns)
        for method in METHODS:
            f = figures[method]
            assert all(math.isfinite(v) for v in f.values()), (name, method)
            assert f["cvar_95"] >= f["var_95"] - 1e-12, (name, method, f)
            assert f["cvar_99"] >= f["var_99"] - 1e-12, (name, method, f)
            # The 99% tail lies inside the 95% one.
            assert f["var_99"] >= f["var_95"] - 1e-12, (name, method, f)
            assert f["cvar_99"] >= f["cvar_95"] - 1e-12, (name, method, f)


def test_a_series_without_spread_loses_its_mean_by_every_method() -> None:
    r = [-0.002] * 10
    for method in METHODS:
        assert var(r, 0.95, method) == pytest.approx(0.002, rel=1e-12)
        assert cvar(r, 0.99, method) == pytest.approx(0.002, rel=1e-12)


@pytest.mark.parametrize("level", [0.95, 0.99])
def test_quantstats_var_and_cvar_are_our_gaussian_figures_negated(level: float) -> None:
    series = pd.Series(R, index=pd.date_range("2024-01-05", periods=len(R), freq="W-FRI"))
    assert qs.stats.var(series, confidence=level) == pytest.approx(
        -var(R, level, "gaussian"), abs=1e-15
    )
    assert qs.stats.cvar(series, confidence=level) == pytest.approx(
        -cvar(R, level, "gaussian"), abs=1e-15
    )


def test_quantstats_historical_cvar_averages_below_an_interpolated_quantile() -> None:
    r = tailed(30)  # worst -9%, -7%, -5%; a = 1.5
    series = pd.Series(r, index=pd.date_range("2024-01-05", periods=30, freq="W-FRI"))
    theirs = qs.stats.cvar(series, confidence=0.95, method="historical")
    # pandas' 5% quantile interpolates between the 2nd and 3rd worst (position 0.05 x 29 =
    # 1.45): -7% + 0.45 x 2% = -6.1%; the returns at or below it are -9% and -7%.
    assert np.quantile(r, 0.05) == pytest.approx(-0.061, rel=1e-12)
    assert theirs == pytest.approx(-(0.09 + 0.07) / 2, rel=1e-12)
    assert cvar(r) == pytest.approx((0.09 + 0.5 * 0.07) / 1.5, rel=1e-12)  # ours: 8.33%


# --- all figures at once ----------------------------------------------------------------------


def test_risk_figures_are_the_single_figures() -> None:
    r = tailed(52)
    got = risk_figures(r)
    assert list(got) == list(METHODS)
    for method in METHODS:
        assert list(got[method]) == list(FIGURES)
        for level in (0.95, 0.99):
            tag = round(level * 100)
            assert got[method][f"var_{tag}"] == var(r, level, method)
            assert got[method][f"cvar_{tag}"] == cvar(r, level, method)
    short = risk_figures(r[: MIN_WEEKS - 1])
    assert all(math.isnan(v) for figures in short.values() for v in figures.values())
    assert not math.isnan(risk_figures(r[:MIN_WEEKS])["cornish_fisher"]["cvar_99"])


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (([],), "non-empty 1-D"),
        (([0.01, math.nan, 0.02],), "finite"),
        (([0.01, math.inf],), "finite"),
        (([[0.01, 0.02]],), "1-D"),
        ((R, 1.0), "level must be a confidence level in (0, 1)"),
        ((R, 95), "level must be"),
        ((R, math.nan), "level must be"),
        ((R, 0.95, "monte_carlo"), "method must be one of historical, gaussian, cornish_fisher"),
    ],
)
def test_bad_input_is_refused(args: tuple[object, ...], words: str) -> None:
    for fn in (var, cvar):
        with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
            fn(*args)  # type: ignore[arg-type]


# --- portfolios -------------------------------------------------------------------------------


def test_portfolio_returns_by_hand() -> None:
    returns = pd.DataFrame(
        {"A": [0.10, -0.20, 0.05], "B": [0.02, math.nan, -0.04], "C": [0.5, 0.5, 0.5]},
        index=pd.date_range("2024-01-05", periods=3, freq="W-FRI"),
    )
    before = returns.copy()
    got = portfolio_returns(returns, {"A": 0.6, "B": -0.2, "D": 0.0})  # C left out, D zero
    expected = [0.6 * 0.10 - 0.2 * 0.02, 0.6 * -0.20, 0.6 * 0.05 - 0.2 * -0.04]  # NaN: 0
    assert got.tolist() == pytest.approx(expected, rel=1e-15)
    assert got.index.equals(returns.index)
    pd.testing.assert_frame_equal(returns, before)
    assert portfolio_returns(returns, {}).tolist() == [0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="weights name tickers the returns lack: D"):
        portfolio_returns(returns, {"A": 0.5, "D": 0.5})


#: Weekly closes: A moves +10%, -20%, +25%, -10%, +5% and B is flat then +10%; the last row
#: (week 6) is the future.
CLOSES = pd.DataFrame(
    {
        "A": [100.0, 110.0, 88.0, 110.0, 99.0, 103.95, 1.0],
        "B": [50.0, 50.0, 50.0, 50.0, 50.0, 55.0, 500.0],
    },
    index=pd.date_range("2024-01-05", periods=7, freq="W-FRI"),
)


def test_ex_ante_figures_of_weights_over_a_trailing_window() -> None:
    until = CLOSES.iloc[:6]
    # The last 4 returns: A -20%, +25%, -10%, +5%; B 0, 0, 0, +10%.
    r = trailing_returns(until, ["A", "B"], 4)
    assert r["A"].tolist() == pytest.approx([-0.2, 0.25, -0.1, 0.05], rel=1e-12)
    path = ex_ante_returns(until, {"A": 0.5, "B": 0.5}, 4)
    assert path.tolist() == pytest.approx([-0.1, 0.125, -0.05, 0.075], rel=1e-12)
    # 4 weeks at 95%: a = 0.2, the worst week, -10%.
    assert portfolio_cvar(until, {"A": 0.5, "B": 0.5}, 4) == pytest.approx(0.10, rel=1e-12)
    assert portfolio_cvar(until, {"A": -0.5}, 4) == pytest.approx(0.125, rel=1e-12)
    assert portfolio_cvar(until, {}, 4) == 0.0
    assert portfolio_cvar(until.iloc[:1], {"A": 1.0}, 4) == 0.0  # no return yet
    weeks, figures = ex_ante_figures(until, {"A": 0.5, "B": 0.5}, 4)
    assert weeks == 4 and math.isnan(figures["historical"]["cvar_95"])  # below MIN_WEEKS
    weeks, figures = ex_ante_figures(until, {"A": 0.5, "B": 0.5}, 52)
    assert weeks == 5 and math.isnan(figures["gaussian"]["var_99"])
    # Nothing after the cut is read: the future row changes nothing.
    assert portfolio_cvar(CLOSES.loc[: until.index[-1]], {"A": 1.0}, 4) == portfolio_cvar(
        until, {"A": 1.0}, 4
    )


# --- the reports --------------------------------------------------------------------------------


def test_the_summary_risk_of_hand_made_series() -> None:
    weeks = pd.date_range("2024-01-05", periods=20, freq="W-FRI")
    late = [math.nan] * 13 + [0.01, -0.02, 0.03, 0.0, 0.01, -0.01, 0.02]  # 7 returns
    frame = pd.DataFrame({"strategy": tailed(20), "benchmark": late}, index=weeks)
    facts = risk_summary(frame)
    assert facts.rule == RULE and list(facts.series) == ["strategy", "benchmark"]
    mine = facts.series["strategy"]
    assert mine.weeks == 20
    # 20 weeks: a tail of one week at 95% and of 0.2 weeks at 99%, the worst (-9%) for all.
    assert mine.historical.model_dump() == pytest.approx(dict.fromkeys(FIGURES, 0.09), rel=1e-12)
    mu, sd = statistics.fmean(tailed(20)), statistics.stdev(tailed(20))
    z99 = STD_NORMAL.inv_cdf(0.01)
    assert mine.gaussian.var_99 == pytest.approx(-(mu + sd * z99), rel=1e-12)
    assert mine.gaussian.cvar_99 == pytest.approx(-mu + sd * STD_NORMAL.pdf(z99) / 0.01, rel=1e-12)
    theirs = facts.series["benchmark"]
    assert theirs.weeks == 7  # fewer than MIN_WEEKS: no figure
    assert theirs.cornish_fisher.model_dump() == dict.fromkeys(FIGURES)


def test_summary_json_and_the_tear_sheet_show_every_series_risk(
    paper12: Path, tmp_path: Path
) -> None:
    sets = [
        f"data.path={paper12}",
        "report.baselines=min_cvar",
        "backtest.start=2023-01-06",
        "backtest.end=2023-06-23",
    ]
    cfg = load_config(REPO / "examples" / "paper12_equal_weight.toml", sets)
    out = write_run(run_backtest(cfg, tmp_path / "ws"), tmp_path / "run")
    summary = json.loads((out / "summary.json").read_text())
    returns = pd.read_csv(out / "returns.csv", index_col="date")
    columns = ["strategy", "equal_weight", "benchmark", "min_cvar"]
    assert list(summary["risk"]["series"]) == columns == list(returns.columns)
    for column in columns:
        r = returns[column].to_numpy()
        assert summary["risk"]["series"][column] == {"weeks": 24, **risk_figures(r)}
    # The tear sheet: one row per method and figure, one column per series of Table 2 (the
    # index, the baselines, the strategy; 1/N is the strategy here, shown once), in percent
    # with 2 decimals.
    page = (out / "tearsheet.html").read_text(encoding="utf-8")
    found = re.search(r'<table id="portfolio-risk">(.*?)</table>', page, flags=re.DOTALL)
    assert found is not None
    table = found.group(1)
    heads = re.findall(r"<th>(.*?)</th>", table)
    assert heads == ["risk (% a week)", "IXIC", "min_cvar", "equal_weight"]
    rows = [re.findall(r"<td>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", table)]
    rows = [row for row in rows if row]
    assert len(rows) == 12
    order = ["benchmark", "min_cvar", "strategy"]
    for row, (method, label) in zip(rows, [(m, f) for m in METHODS for f in FIGURES], strict=True):
        name = {"historical": "Historical", "gaussian": "Gaussian"}.get(method, "Cornish-Fisher")
        assert row[0] == f"{name} {FIGURES[label]}"
        values = [summary["risk"]["series"][key][method][label] for key in order]
        assert row[1:] == [f"{v * 100:.2f}" for v in values]
    assert "Portfolio risk" in page and "ex post over\nthe run's 24 weekly returns" in page


def test_a_summary_written_before_the_risk_figures_still_loads(tmp_path: Path) -> None:
    doc = summary_doc(weekly_returns("2024-01-05", 30))
    assert "risk" not in doc
    summary = parse_summary(doc)
    assert summary.risk is None
    assert risk_html(summary, {"strategy": "x"}) == ""
