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
  ``CVaR = -mu + sigma phi(z) / alpha * (1 + z S / 6 + (z^2 - 1) K / 24 + (1 - 2 z^2) S^2 / 36)``.
  ``S`` and ``K`` are the adjusted Fisher-Pearson estimators (what pandas' ``skew()`` and
  ``kurt()`` return, scipy's ``bias=False``); a series with no spread has ``S = K = 0``. The
  expansion is only a correction: for large ``|S|`` or ``K`` its quantile function is not
  monotone and the figures mean little (the figure is reported as computed).

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

import math
from collections.abc import Collection, Mapping
from typing import Literal, get_args

import numpy as np
import pandas as pd
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
    "quantile for the sample skewness and excess kurtosis"
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
    mu, sigma, skew, kurt = moments(x)
    z = float(norm.ppf(alpha))
    if kind == "cornish_fisher":
        z = cornish_fisher_z(z, skew, kurt)
    return -(mu + sigma * z)


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
    mu, sigma, skew, kurt = moments(x)
    z = float(norm.ppf(alpha))
    tail = float(norm.pdf(z)) / alpha
    if kind == "cornish_fisher":
        tail *= (
            1.0
            + z * skew / 6.0
            + (z * z - 1.0) * kurt / 24.0
            + (1.0 - 2.0 * z * z) * skew * skew / 36.0
        )
    return -mu + sigma * tail


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
