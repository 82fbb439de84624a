"""Statistics over many runs: how sure a sweep's best result is.

- :func:`expected_max_sharpe`: the Sharpe ratio the best of N trials reaches by luck alone,
  given the spread of the trials' Sharpe ratios (Bailey and López de Prado 2014, eq. 5).
- :func:`deflated_sharpe`: the deflated Sharpe ratio (DSR) of the best trial: the probability
  that its true Sharpe ratio is above that luck threshold, correcting for the number of trials,
  the record's length and the returns' skewness and kurtosis (Bailey and López de Prado 2014,
  "The Deflated Sharpe Ratio", eq. 2 with SR0 of eq. 5).
- :func:`pbo`: the probability of backtest overfitting by combinatorially symmetric
  cross-validation (CSCV; Bailey, Borwein, López de Prado and Zhu 2015): how often the config
  that looks best on half of the periods ranks below the median on the other half.

Sharpe ratios here are per period (weekly, not annualised), as the formulas need.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

#: The Euler-Mascheroni constant.
EULER_GAMMA = 0.5772156649015329


def expected_max_sharpe(variance: float, trials: int) -> float:
    """SR0: the expected maximum Sharpe ratio of ``trials`` independent trials whose true
    Sharpe ratio is 0 and whose estimates vary with ``variance``.

    ``SR0 = sqrt(V) * ((1 - g) * Z(1 - 1/N) + g * Z(1 - 1/(N e)))``, Z the standard normal
    quantile and g the Euler-Mascheroni constant; 0 for a single trial.

    >>> round(expected_max_sharpe(1.0, 10), 4)
    1.5746
    """
    if trials < 1:
        raise ValueError(f"trials must be at least 1, got {trials}")
    if not variance >= 0:
        raise ValueError(f"variance must be >= 0, got {variance}")
    if trials == 1:
        return 0.0
    z1 = norm.ppf(1.0 - 1.0 / trials)
    z2 = norm.ppf(1.0 - 1.0 / (trials * math.e))
    return float(math.sqrt(variance) * ((1.0 - EULER_GAMMA) * z1 + EULER_GAMMA * z2))


def deflated_sharpe(
    sharpe: float, threshold: float, weeks: int, skew: float, kurtosis: float
) -> float:
    """The probability that the true Sharpe ratio exceeds ``threshold`` (SR0), given the
    estimate ``sharpe`` over ``weeks`` returns with their ``skew`` and ``kurtosis`` (3 for a
    normal law): ``Phi((SR - SR0) sqrt(T - 1) / sqrt(1 - skew SR + (kurtosis - 1) / 4 SR^2))``.

    With ``threshold = 0`` this is the probabilistic Sharpe ratio of
    :func:`simulator.metrics.probabilistic_sharpe`.

    >>> round(deflated_sharpe(0.1, 0.0, 101, 0.0, 3.0), 6)  # Phi(0.1 * 10 / sqrt(1.005))
    0.840741
    """
    if weeks < 2:
        raise ValueError(f"need at least 2 weeks, got {weeks}")
    denominator = 1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe**2
    if not denominator > 0:
        return math.nan
    return float(norm.cdf((sharpe - threshold) * math.sqrt(weeks - 1) / math.sqrt(denominator)))


@dataclass(frozen=True)
class Overfitting:
    """The result of :func:`pbo`.

    Attributes
    ----------
    pbo
        The share of splits whose in-sample best config ranks at or below the median out of
        sample (logit <= 0).
    logits
        One per split: ``ln(w / (1 - w))`` with ``w`` the out-of-sample relative rank of the
        in-sample best config.
    splits
        The number of in-sample / out-of-sample splits (``C(S, S/2)`` for S blocks).
    """

    pbo: float
    logits: tuple[float, ...]
    splits: int


def pbo(performance: np.ndarray) -> Overfitting:
    """The probability of backtest overfitting by CSCV.

    Parameters
    ----------
    performance
        Shape ``(n_blocks, n_configs)``: the performance (e.g. Sharpe ratio) of each config in
        each block of time (a test period); an even number of blocks, at least 2, and at least
        2 configs.

    Every choice of half of the blocks is an in-sample set and the other half its
    out-of-sample set. A config's performance on a set is its mean over the set's blocks. The
    config best in sample (the first of equals) is ranked among all configs out of sample
    (rank 1 = worst, N = best; ties share their average rank); with ``w = rank / (N + 1)`` the
    split's logit is ``ln(w / (1 - w))``. PBO is the share of splits with logit <= 0.

    >>> m = np.array([[1.0, 0.0], [0.0, 1.0]])  # each config best in one block only
    >>> pbo(m).pbo, pbo(m).splits
    (1.0, 2)
    """
    m = np.asarray(performance, dtype=float)
    if m.ndim != 2:
        raise ValueError("performance must be a (blocks x configs) matrix")
    blocks, configs = m.shape
    if blocks < 2 or blocks % 2:
        raise ValueError(f"need an even number of blocks (at least 2), got {blocks}")
    if configs < 2:
        raise ValueError(f"need at least 2 configs to choose from, got {configs}")
    if not np.isfinite(m).all():
        raise ValueError("performance holds NaN or infinite values")
    logits = []
    for inside in itertools.combinations(range(blocks), blocks // 2):
        outside = [b for b in range(blocks) if b not in inside]
        best = int(np.argmax(m[list(inside)].mean(axis=0)))
        oos = m[outside].mean(axis=0)
        below = float((oos < oos[best]).sum())
        equal = float((oos == oos[best]).sum())
        rank = below + (equal + 1.0) / 2.0  # average rank among ties, 1 = worst
        w = rank / (configs + 1.0)
        logits.append(math.log(w / (1.0 - w)))
    share = sum(1 for x in logits if x <= 0) / len(logits)
    return Overfitting(share, tuple(logits), len(logits))
