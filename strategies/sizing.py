"""Target weights from raw scores and limits: pure functions, no engine.

Weights are fractions of portfolio value; positive is long, negative is short. What the weights
do not use stays in cash.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

_EPS = 1e-12


@dataclass(frozen=True)
class Limits:
    """Limits every sizing rule honours.

    Attributes
    ----------
    max_weight
        Cap on each ``|weight|`` (default 1/3 of portfolio value, seed 001).
    gross
        Target ``sum(|weight|)`` before capping (1.0 = fully invested).
    allow_short
        When False, negative raw scores get weight 0.
    """

    max_weight: float = 1 / 3
    gross: float = 1.0
    allow_short: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.max_weight <= 1:
            raise ValueError(f"max_weight must be in (0, 1], got {self.max_weight}")
        if not 0 < self.gross <= 2:
            raise ValueError(f"gross must be in (0, 2], got {self.gross}")


def _cap(weights: np.ndarray, cap: float) -> np.ndarray:
    """:func:`cap_weights` on a plain array (the engine calls this every week)."""
    size = np.abs(weights)
    sign = np.sign(weights)
    capped = np.zeros(len(size), dtype=bool)
    while True:
        over = (size > cap + _EPS) & ~capped
        if not over.any():
            break
        excess = float((size[over] - cap).sum())
        size[over] = cap
        capped |= over
        free = ~capped & (size > 0)
        if not free.any():
            break  # nobody left under the cap: the excess stays in cash
        size[free] += excess * size[free] / size[free].sum()
    return sign * size


def cap_weights(weights: pd.Series, cap: float) -> pd.Series:
    """Cap every ``|weight|`` at ``cap``, handing the excess to the uncapped names.

    The excess of a capped name goes to the names still under the cap in proportion to their
    ``|weight|`` (signs kept); this repeats until no name is over the cap. When every name is
    capped, what is left over stays in cash.

    >>> cap_weights(pd.Series([0.5, 0.3, 0.2]), 1 / 3).round(6).tolist()
    [0.333333, 0.333333, 0.333333]
    >>> cap_weights(pd.Series([0.6, -0.4]), 1 / 3).round(6).tolist()
    [0.333333, -0.333333]
    """
    return pd.Series(_cap(weights.to_numpy(dtype=float), cap), index=weights.index, dtype=float)


def limit_array(raw: np.ndarray, limits: Limits) -> np.ndarray:
    """:func:`apply_limits` on a plain array of scores, shape ``(n_tickers,)``."""
    w = np.asarray(raw, dtype=float)
    if np.isnan(w).any():
        raise ValueError("raw scores contain NaN")
    if not limits.allow_short:
        w = np.clip(w, 0.0, None)
    total = float(np.abs(w).sum())
    if total <= _EPS:
        return np.zeros(len(w))
    return _cap(w * (limits.gross / total), limits.max_weight)


def apply_limits(raw: pd.Series, limits: Limits) -> pd.Series:
    """Turn raw scores into target weights under ``limits``.

    Negative scores become 0 when shorts are off; the rest is scaled so that
    ``sum(|w|) == limits.gross``, then capped with :func:`cap_weights`. All-zero scores give
    all-zero weights (everything in cash).

    Parameters
    ----------
    raw
        Scores per ticker, shape ``(n_tickers,)``; only their signs and relative sizes matter.

    >>> apply_limits(pd.Series({"A": 2.0, "B": -1.0, "C": 1.0}), Limits()).round(4).to_dict()
    {'A': 0.3333, 'B': -0.3333, 'C': 0.3333}
    >>> apply_limits(pd.Series({"A": 3.0, "B": -1.0, "C": 1.0}), Limits(allow_short=False,
    ...              max_weight=1.0)).round(4).to_dict()
    {'A': 0.75, 'B': 0.0, 'C': 0.25}
    """
    if raw.isna().any():
        raise ValueError(f"raw scores contain NaN for {list(raw.index[raw.isna()])}")
    return pd.Series(limit_array(raw.to_numpy(dtype=float), limits), index=raw.index)


def signal_scores(predicted: np.ndarray) -> np.ndarray:
    """Raw scores of the LSTM-signal rule (seed 001, section 3) from predicted returns.

    If any prediction is negative the scores are the predictions themselves (long the
    predicted risers, short the predicted fallers, each in proportion to its predicted move).
    If none is, they are the z-scores ``(r - mean(r)) / std(r)`` (the seed's equation 7): buy
    the stronger, sell the weaker. Only relative sizes matter afterwards (the scores are scaled
    to the gross exposure), so the choice of ``std`` (population here) changes nothing. When
    the z-score is undefined (one name, or all predictions equal) the predictions are used
    as they are: every name is predicted to rise by the same margin, so each is bought alike.

    >>> signal_scores(np.array([0.02, -0.01, 0.03])).tolist()
    [0.02, -0.01, 0.03]
    >>> signal_scores(np.array([0.01, 0.02, 0.03])).round(4).tolist()
    [-1.2247, 0.0, 1.2247]
    """
    r = np.asarray(predicted, dtype=float)
    if np.isnan(r).any():
        raise ValueError("predicted returns contain NaN")
    if len(r) == 0 or (r < 0).any():
        return r.copy()
    std = float(np.std(r))
    if len(r) < 2 or std <= _EPS * max(1.0, float(np.abs(r).max())):
        return r.copy()
    return (r - float(np.mean(r))) / std


def signal_weights(predicted: pd.Series, limits: Limits) -> pd.Series:
    """Target weights of the LSTM-signal rule: :func:`signal_scores`, then :func:`apply_limits`.

    Parameters
    ----------
    predicted
        Predicted next-week returns (fractions) per ticker. Tickers with NaN (no prediction)
        get weight 0 and take no part in the mean and spread.

    >>> p = pd.Series({"A": 0.03, "B": -0.01, "C": 0.01, "D": 0.01, "E": float("nan")})
    >>> signal_weights(p, Limits()).round(4).to_dict()
    {'A': 0.3333, 'B': -0.2222, 'C': 0.2222, 'D': 0.2222, 'E': 0.0}
    """
    known = predicted.dropna()
    weights = pd.Series(0.0, index=predicted.index)
    if len(known):
        scores = signal_scores(known.to_numpy(dtype=float))
        weights.loc[known.index] = limit_array(scores, limits)
    return weights


def equal_weight(tickers: Sequence[str], limits: Limits) -> pd.Series:
    """The 1/N rule: the same weight for each ticker, under ``limits``.

    >>> equal_weight(["A", "B", "C", "D"], Limits()).tolist()
    [0.25, 0.25, 0.25, 0.25]
    >>> equal_weight(["A", "B"], Limits()).round(4).tolist()
    [0.3333, 0.3333]
    """
    return pd.Series(equal_weight_array(len(tickers), limits), index=list(tickers), dtype=float)


def equal_weight_array(n: int, limits: Limits) -> np.ndarray:
    """:func:`equal_weight` for ``n`` names as a plain array."""
    return limit_array(np.ones(n), limits)
