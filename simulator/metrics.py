"""Performance statistics of weekly return series.

Conventions (the time contract): returns are weekly simple returns as fractions, 52 weeks a
year, the risk-free rate is a weekly rate aligned with the returns (see :func:`weekly_risk_free`).
The same definitions as QuantStats with ``periods=52``:

- ``total_return`` = prod(1 + r) - 1
- ``cagr`` = (1 + total_return) ** (52 / weeks) - 1
- ``volatility`` = std(r, ddof=1) * sqrt(52)
- ``sharpe`` = mean(r - rf) / std(r - rf, ddof=1) * sqrt(52)
- ``sortino`` = mean(r - rf) / sqrt(mean(min(r - rf, 0) ** 2)) * sqrt(52)
- ``max_drawdown`` = min over t of equity_t / max(equity_0..t) - 1, with equity_0 = 1 before
  the first week, as a negative fraction (0.0 when the series never falls).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

WEEKS_PER_YEAR = 52
#: Below this many weekly returns a run is a short run: its tear sheet, Table 2 and summary
#: figures are read for the period only, never annualised, and its tear sheet leaves out the
#: QuantStats report. A quarter of a year: annualising fewer weeks raises a few weeks' luck to
#: a yearly rate (two weeks of +5% read as an annual return of 255%, with a Sharpe ratio in
#: the tens).
SHORT_RUN_WEEKS = 13
# The series of every run, as columns of returns.csv and keys of summary.json.
RETURN_COLUMNS = ("strategy", "equal_weight", "benchmark")
METRIC_NAMES = ("total_return", "cagr", "volatility", "sharpe", "sortino", "max_drawdown")


def weekly_risk_free(annual: float | pd.Series, index: pd.DatetimeIndex) -> pd.Series:
    """Weekly risk-free rate for each return week in ``index``.

    Parameters
    ----------
    annual
        An annual rate as a fraction (constant), or a series of annual yields in **percent**
        indexed by week-end date (e.g. DGS2 resampled to weeks). The rate earned over week t
        is the yield known at the close of week t-1, so a series is shifted by one week.
    index
        The return weeks.

    Returns
    -------
    pd.Series
        ``(1 + annual) ** (1 / 52) - 1`` per week, indexed like ``index``.
    """
    if isinstance(annual, pd.Series):
        known = annual.sort_index().div(100.0)
        # Yield at the close of the previous week: as-of lookup strictly before each week.
        prior = known.reindex(known.index.union(index)).ffill().shift(1).reindex(index)
        if prior.isna().any():
            first = index[int(np.argmax(prior.isna().to_numpy()))]
            raise ValueError(f"risk-free series has no value before {first.date()}")
        rate = prior
    else:
        rate = pd.Series(float(annual), index=index)
    return (1.0 + rate) ** (1.0 / WEEKS_PER_YEAR) - 1.0


def max_drawdown(returns: pd.Series) -> float:
    """Largest peak-to-trough fall of the compounded equity curve, as a negative fraction."""
    equity = np.concatenate([[1.0], np.cumprod(1.0 + returns.to_numpy(dtype=float))])
    peaks = np.maximum.accumulate(equity)
    return float(np.min(equity / peaks - 1.0))


def summarize(returns: pd.Series, risk_free: pd.Series) -> dict[str, float]:
    """The six summary statistics of one weekly return series.

    Parameters
    ----------
    returns
        Weekly simple returns, shape ``(n_weeks,)``.
    risk_free
        Weekly risk-free rates on the same index (see :func:`weekly_risk_free`).

    Examples
    --------
    >>> r = pd.Series([0.01, -0.02, 0.03])
    >>> s = summarize(r, pd.Series([0.0, 0.0, 0.0]))
    >>> round(s["total_return"], 6), round(s["max_drawdown"], 6)
    (0.019494, -0.02)
    """
    r = returns.to_numpy(dtype=float)
    excess = r - risk_free.to_numpy(dtype=float)
    n = len(r)
    if n < 2:
        raise ValueError("at least 2 weekly returns are needed for statistics")
    total = float(np.prod(1.0 + r) - 1.0)
    std = float(np.std(r, ddof=1))
    ex_std = float(np.std(excess, ddof=1))
    downside = math.sqrt(float(np.mean(np.minimum(excess, 0.0) ** 2)))
    ann = math.sqrt(WEEKS_PER_YEAR)
    mean_ex = float(np.mean(excess))
    return {
        "total_return": total,
        "cagr": float((1.0 + total) ** (WEEKS_PER_YEAR / n) - 1.0) if total > -1 else -1.0,
        "volatility": std * ann,
        "sharpe": mean_ex / ex_std * ann if ex_std > 0 else float("nan"),
        "sortino": mean_ex / downside * ann if downside > 0 else float("nan"),
        "max_drawdown": max_drawdown(returns),
    }


def probabilistic_sharpe(excess: pd.Series, threshold: float = 0.0) -> dict[str, float | None]:
    """The probabilistic Sharpe ratio of a weekly excess-return series (Bailey and
    López de Prado, 2012): the probability that the true Sharpe ratio is above ``threshold``,
    given the observed one, the number of weeks, and the skewness and kurtosis of the returns.

    ``PSR = Phi((SR - SR*) * sqrt(n - 1) / sqrt(1 - skew * SR + (kurtosis - 1) / 4 * SR**2))``
    with ``SR`` the weekly (not annualised) Sharpe ratio ``mean / std(ddof=1)``, ``skew`` and
    ``kurtosis`` the sample moments (kurtosis 3 for a normal law) and ``SR*`` the weekly
    threshold. ``threshold`` is given annualised, like the Sharpe ratios of the summary.

    Returns ``{"weeks", "sharpe" (annualised), "skew", "kurtosis", "psr"}``; ``psr`` and
    the moments are None when the series is constant.

    >>> r = pd.Series([0.02, -0.01, 0.03, 0.0, 0.01, -0.02, 0.04, 0.01])
    >>> out = probabilistic_sharpe(r)
    >>> out["weeks"], round(out["sharpe"], 4), round(out["kurtosis"], 4), round(out["psr"], 4)
    (8, 3.6056, 2.0, 0.9003)
    """
    x = excess.to_numpy(dtype=float)
    n = len(x)
    std = float(np.std(x, ddof=1)) if n > 1 else 0.0
    if n < 3 or std <= 0:
        return {"weeks": n, "sharpe": None, "skew": None, "kurtosis": None, "psr": None}
    sr = float(np.mean(x)) / std
    centred = x - float(np.mean(x))
    m2 = float(np.mean(centred**2))
    skew = float(np.mean(centred**3)) / m2**1.5
    kurt = float(np.mean(centred**4)) / m2**2
    target = threshold / math.sqrt(WEEKS_PER_YEAR)
    spread = 1.0 - skew * sr + (kurt - 1.0) / 4.0 * sr**2
    z = (sr - target) * math.sqrt(n - 1) / math.sqrt(max(spread, 1e-12))
    psr = 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))
    return {
        "weeks": n,
        "sharpe": sr * math.sqrt(WEEKS_PER_YEAR),
        "skew": skew,
        "kurtosis": kurt,
        "psr": psr,
    }
