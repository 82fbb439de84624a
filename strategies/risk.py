"""Portfolio risk measures: weekly value at risk (VaR) and conditional value at risk (CVaR).

Pure numeric code (numpy, pandas, scipy), shared by the reports (:mod:`simulator.analytics`,
summary.json, the tear sheet, ``recommend``), the investor profile's CVaR limit
(:mod:`strategies.profile`) and the ``min_cvar`` baseline's checks.

Conventions
-----------
- **Losses are positive numbers**, as in the per-stock analytics: a weekly VaR of 0.05 means a
  loss of 5% of the portfolio's value in one week. A figure is negative when even the tail
  weeks gained.
- ``level`` is the confidence level (0.95 or 0.99); ``alpha = 1 - level`` is the tail's
  probability mass.
- The returns are weekly simple returns (fractions), one per week, no NaN: the caller decides
  what a missing week is (:func:`portfolio_returns` counts a missing return as 0).

The three methods, for n returns ``x`` with sample mean ``mu`` and standard deviation
``sigma`` (``ddof=1``), and ``z = Phi^-1(alpha)`` (negative; ``Phi``, ``phi``: the standard
normal distribution and density):

- ``historical``. Sort ``x`` ascending, ``x_(1) <= ... <= x_(n)``; ``a = alpha * n`` (the
  number of tail weeks, rounded to 9 decimals so that ``0.05 * 20`` is exactly 1) and
  ``k = max(1, ceil(a))``.

  * ``VaR = -x_(k)``: the k-th worst return, no interpolation (numpy's ``inverted_cdf``
    quantile of the returns at ``alpha``). Fewer than ``a`` weeks lost more than VaR, and at
    least ``a`` weeks lost VaR or more.
  * ``CVaR = -(x_(1) + ... + x_(k-1) + (a - k + 1) x_(k)) / a``: the mean loss of the worst
    ``alpha`` of the weeks, the boundary week counted with the fraction of it that lies in
    the tail (Rockafellar and Uryasev's estimator; with ``a < 1``, the worst loss). With an
    integer ``a`` it is the mean of the ``a`` worst returns. It is the CVaR that skfolio's
    ``MeanRisk`` minimises (the ``min_cvar`` baseline), it is coherent (sub-additive), and
    ``CVaR(s * x) = s * CVaR(x)`` for ``s > 0`` exactly, which the profile's CVaR limit uses.

- ``gaussian`` (parametric, normal returns): ``VaR = -(mu + sigma z)``,
  ``CVaR = -mu + sigma phi(z) / alpha``.

- ``cornish_fisher`` (the normal quantile corrected for the sample skewness ``S`` and excess
  kurtosis ``K``): ``z_cf = z + (z^2 - 1) S / 6 + (z^3 - 3 z) K / 24 - (2 z^3 - 5 z) S^2 / 36``,
  ``VaR = -(mu + sigma z_cf)``. CVaR is the mean of that quantile function over the tail,
  ``-(mu + sigma / alpha * integral_0^alpha z_cf(Phi^-1(p)) dp)``, in closed form:
  ``CVaR = -mu + sigma phi(z) / alpha * (1 + z S / 6 + (z^2 - 1) K / 24 + (1 - 2 z^2) S^2 / 36)``
  (the modified expected shortfall of Boudt, Peterson and Croux 2008, to the expansion's
  order). ``S`` and ``K`` are the adjusted Fisher-Pearson estimators (what pandas' ``skew()``
  and ``kurt()`` return, scipy's ``bias=False``); a series with no spread has ``S = K = 0``.

  The expansion is only a correction, and for some ``S`` and ``K`` its quantile function is
  not increasing: ``d z_cf / d z = (K / 8 - S^2 / 6) z^2 + S z / 3 + 1 - K / 8 + 5 S^2 / 36``
  turns negative somewhere (always when ``K < 4 S^2 / 3``, e.g. the negative excess kurtosis
  of many short samples: the cubic bends back in the far tails). The formulas above then
  describe no distribution, and the closed-form "CVaR" can fall below the VaR (ten weeks of
  the Nasdaq, July to September 2022, ``S = -0.50``, ``K = -1.74``: VaR 99% 7.22%, CVaR 99%
  7.06%). We therefore take the figures of the distribution the expansion does describe, that
  of ``Y = z_cf(Z)`` for a standard normal ``Z`` (its quantile function is the expansion's,
  sorted: the increasing rearrangement of Chernozhukov, Fernandez-Val and Galichon 2010):
  ``VaR = -(mu + sigma y)`` with ``P(Y <= y) = alpha``, and ``CVaR = -(mu + sigma E[Y; Y <=
  y] / alpha)``, the mean of its lowest ``alpha``. Where the expansion increases everywhere
  these are the closed forms above exactly; elsewhere they are computed from the real roots
  of the cubic ``z_cf(t) = y`` and the normal partial moments over the intervals where
  ``z_cf(t) <= y`` (``y`` by bisection). Either way the CVaR is at least the VaR.
  :func:`cornish_fisher_sorted` says whether sorting moved a figure by a reported digit.

Cross-checks (tested)
---------------------
- skfolio 1.12 (``skfolio.measures``): ``cvar(x, beta=level)`` equals the historical CVaR
  (to 1e-10). ``value_at_risk(x, beta=level)`` equals the historical VaR except when ``a`` is
  a whole number: skfolio then takes the lower ``level``-quantile of the loss, the
  ``(a + 1)``-th worst return, where we take the ``a``-th (the larger loss; fewer than ``a``
  weeks lost more, where skfolio's is exceeded in exactly ``a`` weeks).
- QuantStats 0.0.86 (``quantstats.stats``): ``var(x, confidence=level)`` is
  ``-VaR_gaussian`` and ``cvar(x, confidence=level)`` is ``-CVaR_gaussian``: the same
  estimator, its sign the opposite (returns, not losses). Its
  ``cvar(..., method="historical")`` is the mean of the returns at or below pandas' linearly
  interpolated ``alpha``-quantile, ties included: not a tail of mass ``alpha``, so it differs
  from our historical CVaR whenever ``a`` is not a whole number or the boundary is tied.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Collection, Mapping
from typing import Literal, get_args

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.stats import norm

Method = Literal["historical", "gaussian", "cornish_fisher"]
METHODS: tuple[str, ...] = get_args(Method)
#: The confidence levels of the reports.
LEVELS = (0.95, 0.99)
#: The figures of :func:`risk_figures` for each method, in order, with their labels.
FIGURES = {"var_95": "VaR 95%", "cvar_95": "CVaR 95%", "var_99": "VaR 99%", "cvar_99": "CVaR 99%"}
#: The methods' names in reports.
METHOD_LABELS = {
    "historical": "Historical",
    "gaussian": "Gaussian",
    "cornish_fisher": "Cornish-Fisher",
}
#: Fewer returns than this: :func:`risk_figures` gives NaN (the same floor as the per-stock
#: analytics).
MIN_WEEKS = 8

#: The convention in one sentence, for reports.
RULE = (
    "weekly losses as positive fractions of the portfolio value; historical VaR is the k-th "
    "worst week of n, k = ceil(alpha n) with alpha = 1 - level, no interpolation, and "
    "historical CVaR the mean loss of the worst alpha n weeks (the k-th counted in part); "
    "Gaussian from the sample mean and standard deviation; Cornish-Fisher corrects the normal "
    "quantile for the sample skewness and excess kurtosis (sorted where the expansion bends "
    "back, so that its CVaR is never below its VaR)"
)


def _values(returns: object) -> np.ndarray:
    """``returns`` as a 1-D float array; refuses empty, non-finite or 2-D input."""
    x = np.asarray(returns, dtype=float)
    if x.ndim != 1 or len(x) == 0 or not np.isfinite(x).all():
        raise ValueError(
            "returns must be a non-empty 1-D sequence of finite weekly returns; drop NaN weeks "
            "first"
        )
    return x


def _alpha(level: float) -> float:
    if not (isinstance(level, float | int) and 0.0 < level < 1.0):
        raise ValueError(f"level must be a confidence level in (0, 1), e.g. 0.95; got {level!r}")
    return 1.0 - float(level)


def _method(method: str) -> Method:
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    return method  # type: ignore[return-value]


def tail_weeks(n: int, level: float) -> tuple[float, int]:
    """``(a, k)`` of the historical estimators: ``a = (1 - level) * n`` weeks in the tail
    (rounded to 9 decimals) and ``k = max(1, ceil(a))``, the order statistic of the VaR.

    >>> tail_weeks(20, 0.95), tail_weeks(52, 0.95), tail_weeks(52, 0.99)
    ((1.0, 1), (2.6, 3), (0.52, 1))
    """
    # round(): (1 - 0.95) * 20 is 1.0000000000000009 in floating point, whose ceil would be 2.
    a = round(_alpha(level) * n, 9)
    return a, max(1, math.ceil(a))


def moments(returns: object) -> tuple[float, float, float, float]:
    """``(mean, std, skew, kurtosis)`` of weekly returns: the sample standard deviation
    (``ddof=1``), and the adjusted Fisher-Pearson skewness and excess kurtosis (pandas'
    ``skew()`` and ``kurt()``); skew and kurtosis are 0 when the returns do not vary, NaN
    with fewer than 3 and 4 returns.

    >>> [round(v, 6) for v in moments([0.01, -0.02, 0.03, 0.0, 0.01])]
    [0.006, 0.018166, -0.2669, 1.07438]
    """
    x = _values(returns)
    n = len(x)
    mu = float(np.mean(x))
    std = float(np.std(x, ddof=1)) if n > 1 else math.nan
    d = x - mu
    m2 = float(np.mean(d**2))
    if m2 == 0.0:
        return mu, std, 0.0 if n > 2 else math.nan, 0.0 if n > 3 else math.nan
    g1 = float(np.mean(d**3)) / m2**1.5
    g2 = float(np.mean(d**4)) / m2**2 - 3.0
    skew = g1 * math.sqrt(n * (n - 1)) / (n - 2) if n > 2 else math.nan
    kurt = ((n + 1) * g2 + 6.0) * (n - 1) / ((n - 2) * (n - 3)) if n > 3 else math.nan
    return mu, std, skew, kurt


def cornish_fisher_z(z: float, skew: float, kurtosis: float) -> float:
    """The Cornish-Fisher quantile of the standard normal quantile ``z`` (module docstring).

    >>> cornish_fisher_z(-1.5, 0.0, 0.0)
    -1.5
    """
    return (
        z
        + (z * z - 1.0) * skew / 6.0
        + (z**3 - 3.0 * z) * kurtosis / 24.0
        - (2.0 * z**3 - 5.0 * z) * skew * skew / 36.0
    )


def _cubic(skew: float, kurtosis: float) -> np.ndarray:
    """The coefficients of ``z_cf`` as a cubic in ``z``, highest power first."""
    return np.array(
        [
            kurtosis / 24.0 - skew * skew / 18.0,
            skew / 6.0,
            1.0 - kurtosis / 8.0 + 5.0 * skew * skew / 36.0,
            -skew / 6.0,
        ]
    )


def cornish_fisher_increasing(skew: float, kurtosis: float) -> bool:
    """Whether the Cornish-Fisher quantile function of ``skew`` and excess ``kurtosis``
    never decreases: ``d z_cf / d z = a z^2 + b z + c >= 0`` for every ``z`` (Maillard's
    domain of validity), i.e. ``a > 0`` and ``c - b^2 / 4a >= 0``, or ``a = b = 0 <= c``.

    >>> cornish_fisher_increasing(0.0, 0.0), cornish_fisher_increasing(-1.0, 3.0)
    (True, True)
    >>> cornish_fisher_increasing(-0.5, -1.74)  # platykurtic: it bends back in the tails
    False
    """
    a = kurtosis / 8.0 - skew * skew / 6.0
    b = skew / 3.0
    c = 1.0 - kurtosis / 8.0 + 5.0 * skew * skew / 36.0
    if a > 0.0:
        return c - b * b / (4.0 * a) >= 0.0
    return a == 0.0 and b == 0.0 and c >= 0.0


_SQRT2 = math.sqrt(2.0)
_SQRT2PI = math.sqrt(2.0 * math.pi)


def _below(cubic: np.ndarray, y: float) -> list[tuple[float, float]]:
    """The intervals of ``t`` where the cubic is at most ``y``, ends possibly infinite."""
    shifted = cubic.copy()
    shifted[-1] -= y
    roots = np.roots(np.trim_zeros(shifted, "f"))
    # A double root may come back with a tiny imaginary part: keep it as a cut; a cut too
    # many is harmless, each piece is tested at an inner point.
    cuts = sorted(float(r.real) for r in roots if abs(r.imag) <= 1e-7 * (1.0 + abs(r.real)))
    edges = [-math.inf, *cuts, math.inf]
    out: list[tuple[float, float]] = []
    for lo, hi in itertools.pairwise(edges):
        if lo == hi:
            continue
        inner = hi - 1.0 if lo == -math.inf else lo + 1.0 if hi == math.inf else (lo + hi) / 2
        if np.polyval(shifted, inner) <= 0.0:
            if out and out[-1][1] == lo:
                out[-1] = (out[-1][0], hi)
            else:
                out.append((lo, hi))
    return out


def _mass(lo: float, hi: float) -> float:
    """``P(lo < Z < hi)`` for a standard normal ``Z``, accurate in either tail (``erfc``: a
    scalar call, many times faster than scipy's, which this bisection calls thousands of
    times)."""
    if lo > 0.0:
        return 0.5 * (math.erfc(lo / _SQRT2) - math.erfc(hi / _SQRT2))
    return 0.5 * (math.erfc(-hi / _SQRT2) - math.erfc(-lo / _SQRT2))


def _partial(cubic: np.ndarray, lo: float, hi: float) -> float:
    """``E[z_cf(Z); lo < Z < hi]``: the normal partial moments ``int t^k phi(t) dt`` of
    ``k = 0..3`` over ``(lo, hi)``, from ``phi' = -t phi``."""

    def at(t: float) -> tuple[float, float, float]:
        # (phi(t), t phi(t), (t^2 + 2) phi(t)), all 0 at an infinite end
        if math.isinf(t):
            return 0.0, 0.0, 0.0
        p = math.exp(-0.5 * t * t) / _SQRT2PI
        return p, t * p, (t * t + 2.0) * p

    p_lo, tp_lo, sq_lo = at(lo)
    p_hi, tp_hi, sq_hi = at(hi)
    m0 = _mass(lo, hi)
    m1 = p_lo - p_hi
    m2 = m0 + tp_lo - tp_hi
    m3 = sq_lo - sq_hi
    return float(cubic[0] * m3 + cubic[1] * m2 + cubic[2] * m1 + cubic[3] * m0)


def _sorted_tail(skew: float, kurtosis: float, alpha: float) -> tuple[float, float]:
    """``(y, m)``: the ``alpha``-quantile of ``Y = z_cf(Z)`` and the mean of ``Y`` over its
    lowest ``alpha`` (module docstring), for an expansion that is not increasing."""
    cubic = _cubic(skew, kurtosis)

    def excess(y: float) -> float:
        return sum(_mass(lo, hi) for lo, hi in _below(cubic, y)) - alpha

    lo = hi = cornish_fisher_z(float(norm.ppf(alpha)), skew, kurtosis)
    step = 1.0
    while excess(lo) > 0.0:
        lo -= step
        step *= 2.0
    step = 1.0
    while excess(hi) < 0.0:
        hi += step
        step *= 2.0
    y = float(brentq(excess, lo, hi, xtol=1e-15, rtol=4 * np.finfo(float).eps, maxiter=200))
    return y, sum(_partial(cubic, a, b) for a, b in _below(cubic, y)) / alpha


def _cornish_fisher(x: np.ndarray, level: float, *, closed: bool = False) -> tuple[float, float]:
    """``(VaR, CVaR)`` of ``x`` at ``level`` by Cornish-Fisher; ``closed=True`` gives the
    textbook closed forms even where the expansion is not increasing."""
    alpha = _alpha(level)
    mu, sigma, skew, kurt = moments(x)
    if not (math.isfinite(sigma) and math.isfinite(skew) and math.isfinite(kurt)):
        return math.nan, math.nan
    z = float(norm.ppf(alpha))
    if closed or cornish_fisher_increasing(skew, kurt):
        y = cornish_fisher_z(z, skew, kurt)
        shape = (
            1.0
            + z * skew / 6.0
            + (z * z - 1.0) * kurt / 24.0
            + (1.0 - 2.0 * z * z) * skew * skew / 36.0
        )
        tail = -float(norm.pdf(z)) / alpha * shape
    else:
        y, tail = _sorted_tail(skew, kurt, alpha)
    return -(mu + sigma * y), -(mu + sigma * tail)


def cornish_fisher_sorted(returns: object, level: float, digits: float = 5e-5) -> bool:
    """Whether sorting the expansion (module docstring) moved the Cornish-Fisher VaR or
    CVaR of ``returns`` at ``level`` from the textbook closed forms by ``digits`` or more
    (default 0.005 percentage points, the last digit the reports print).

    >>> nasdaq = [0.0456, -0.0157, 0.0333, 0.047, 0.0215, 0.0308, -0.0262, -0.0444, -0.0421,
    ...           0.0414]  # 10 weeks to 9 September 2022
    >>> [round(f(nasdaq, 0.99, "cornish_fisher"), 4) for f in (var, cvar)]  # closed: 7.22, 7.06
    [0.0714, 0.0727]
    >>> fat = [0.021, -0.013, 0.034, -0.047, 0.012, 0.051, -0.022, 0.004, 0.029, -0.081, 0.018]
    >>> cornish_fisher_sorted(nasdaq, 0.99), cornish_fisher_sorted(fat + [0.007], 0.99)
    (True, False)
    """
    x = _values(returns)
    if len(x) < 4:
        return False
    sorted_ = _cornish_fisher(x, level)
    closed = _cornish_fisher(x, level, closed=True)
    return any(abs(a - b) >= digits for a, b in zip(sorted_, closed, strict=True))


def var(returns: object, level: float = 0.95, method: str = "historical") -> float:
    """Weekly value at risk of ``returns`` at ``level`` (a positive loss fraction).

    See the module docstring for the three methods. The Gaussian and Cornish-Fisher methods
    need at least 2 and 4 returns (NaN otherwise).

    >>> r = [0.01] * 36 + [-0.02, -0.03, -0.07, -0.10]
    >>> round(var(r), 6)  # 40 weeks: k = 2, the second worst
    0.07
    """
    x = _values(returns)
    alpha = _alpha(level)
    kind = _method(method)
    if kind == "historical":
        _, k = tail_weeks(len(x), level)
        return -float(np.partition(x, k - 1)[k - 1])
    if kind == "cornish_fisher":
        return _cornish_fisher(x, level)[0]
    mu, sigma, _, _ = moments(x)
    return -(mu + sigma * float(norm.ppf(alpha)))


def cvar(returns: object, level: float = 0.95, method: str = "historical") -> float:
    """Weekly conditional value at risk of ``returns`` at ``level`` (a positive loss
    fraction): the mean loss of the worst ``1 - level`` of the weeks.

    See the module docstring for the three methods.

    >>> r = [0.01] * 36 + [-0.02, -0.03, -0.07, -0.10]
    >>> round(cvar(r), 6)  # 40 weeks: the mean of the 2 worst
    0.085
    >>> round(cvar(r[-30:]), 6)  # 30 weeks: a = 1.5, (10% + 0.5 x 7%) / 1.5
    0.09
    """
    x = _values(returns)
    alpha = _alpha(level)
    kind = _method(method)
    if kind == "historical":
        a, k = tail_weeks(len(x), level)
        worst = np.sort(x)[:k]
        return -(float(np.sum(worst[:-1])) + (a - (k - 1)) * float(worst[-1])) / a
    if kind == "cornish_fisher":
        return _cornish_fisher(x, level)[1]
    mu, sigma, _, _ = moments(x)
    return -mu + sigma * float(norm.pdf(norm.ppf(alpha))) / alpha


def risk_figures(returns: object) -> dict[str, dict[str, float]]:
    """Every figure of ``returns``: ``{method: {"var_95", "cvar_95", "var_99", "cvar_99"}}``
    for each of :data:`METHODS`, all NaN with fewer than :data:`MIN_WEEKS` returns.

    >>> figures = risk_figures([0.01] * 36 + [-0.02, -0.03, -0.07, -0.10])
    >>> {k: round(v, 4) for k, v in figures["historical"].items()}
    {'var_95': 0.07, 'cvar_95': 0.085, 'var_99': 0.1, 'cvar_99': 0.1}
    """
    x = _values(returns)
    out: dict[str, dict[str, float]] = {}
    for method in METHODS:
        row: dict[str, float] = {}
        for level in LEVELS:
            tag = f"{round(level * 100)}"
            enough = len(x) >= MIN_WEEKS
            row[f"var_{tag}"] = var(x, level, method) if enough else math.nan
            row[f"cvar_{tag}"] = cvar(x, level, method) if enough else math.nan
        out[method] = row
    return out


# --- portfolios ----------------------------------------------------------------------------


def trailing_returns(closes: pd.DataFrame, names: Collection[str], window: int) -> pd.DataFrame:
    """The last ``window`` weekly returns of ``names`` from weekly ``closes`` (rows up to the
    decision week; ``close[t] / close[t-1] - 1``, NaN across a missing close).

    >>> closes = pd.DataFrame({"A": [100.0, 110.0, 99.0, 99.0]})
    >>> trailing_returns(closes, ["A"], 2)["A"].round(6).tolist()
    [-0.1, 0.0]
    """
    return closes[list(names)].pct_change(fill_method=None).iloc[1:].tail(window)


def portfolio_returns(returns: pd.DataFrame, weights: Mapping[str, float]) -> pd.Series:
    """The weekly returns of a portfolio held at constant ``weights`` (fractions of its value,
    rebalanced every week; the rest in cash earning 0): ``sum_i w_i r_i`` each week.

    Parameters
    ----------
    returns
        Weekly returns, shape ``(n_weeks, n_tickers)``; a missing return (NaN) counts as 0,
        the position earning nothing that week.
    weights
        Weight per ticker; every ticker with a non-zero weight must be a column of
        ``returns``, and tickers left out weigh 0.

    Returns
    -------
    pd.Series
        One return per row of ``returns``, same index.

    >>> r = pd.DataFrame({"A": [0.10, -0.20], "B": [0.0, float("nan")]})
    >>> portfolio_returns(r, {"A": 0.5, "B": 0.5}).round(6).tolist()
    [0.05, -0.1]
    """
    names = [t for t, w in weights.items() if w]
    missing = [t for t in names if t not in returns.columns]
    if missing:
        raise ValueError(f"weights name tickers the returns lack: {', '.join(missing)}")
    w = np.array([weights[t] for t in names], dtype=float)
    path = returns[names].fillna(0.0).to_numpy(dtype=float) @ w
    return pd.Series(path, index=returns.index, dtype=float)


def ex_ante_returns(closes: pd.DataFrame, weights: Mapping[str, float], window: int) -> pd.Series:
    """The weekly returns today's ``weights`` would have had over the last ``window`` weeks of
    ``closes`` (:func:`trailing_returns`, then :func:`portfolio_returns`)."""
    names = [t for t, w in weights.items() if w]
    return portfolio_returns(trailing_returns(closes, names, window), weights)


def ex_ante_figures(
    closes: pd.DataFrame, weights: Mapping[str, float], window: int
) -> tuple[int, dict[str, dict[str, float]]]:
    """The number of weekly returns measured and every figure of :func:`risk_figures` for
    ``weights`` over the last ``window`` weeks of ``closes`` (NaN below :data:`MIN_WEEKS`
    returns)."""
    path = ex_ante_returns(closes, weights, window)
    if len(path) == 0:
        return 0, {m: dict.fromkeys(FIGURES, math.nan) for m in METHODS}
    return len(path), risk_figures(path.to_numpy())


def portfolio_cvar(
    closes: pd.DataFrame, weights: Mapping[str, float], window: int, level: float = 0.95
) -> float:
    """The historical CVaR at ``level`` that today's ``weights`` would have had over the last
    ``window`` weekly returns of ``closes`` (0.0 with no weight or no return to measure).

    >>> closes = pd.DataFrame({"A": [100.0, 90.0, 99.0, 99.0], "B": [10.0, 10.0, 10.0, 11.0]})
    >>> round(portfolio_cvar(closes, {"A": 0.5, "B": 0.5}, 3), 6)  # the worst week: -5%
    0.05
    """
    if not any(weights.values()):
        return 0.0
    path = ex_ante_returns(closes, weights, window)
    return cvar(path.to_numpy(), level) if len(path) else 0.0
