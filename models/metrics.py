"""Forecast error metrics, for the model and for the naive forecast on the same windows.

The naive forecast says next week's close equals this week's (a predicted return of 0). Every
metric is computed on prices and on returns (``close_{t+1} / close_t - 1``):

- ``mse``, ``mae``, ``rmse``: as usual.
- ``mape``: mean of ``|error| / |actual|`` in percent. On returns it skips weeks whose actual
  return is exactly 0 and is dominated by weeks with tiny returns: read it with care.
- ``hit_rate``: the fraction of weeks whose predicted direction (up / down against the last
  close) matches the actual one, over weeks where both moved. The naive forecast never
  predicts a direction, so its hit rate is None.
"""

from __future__ import annotations

from typing import Any

import numpy as np

KINDS = ("price", "return")
METRICS = ("mse", "mae", "rmse", "mape", "hit_rate")


def errors(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """MSE, MAE, RMSE and MAPE (percent) of ``predicted`` against ``actual``.

    >>> errors(np.array([1.0, 2.0]), np.array([2.0, 2.0]))
    {'mse': 0.5, 'mae': 0.5, 'rmse': 0.7071067811865476, 'mape': 50.0}
    """
    err = predicted - actual
    nonzero = actual != 0
    mape = (
        float(np.mean(np.abs(err[nonzero]) / np.abs(actual[nonzero])) * 100)
        if nonzero.any()
        else float("nan")
    )
    mse = float(np.mean(err**2))
    return {
        "mse": mse,
        "mae": float(np.mean(np.abs(err))),
        "rmse": float(np.sqrt(mse)),
        "mape": mape,
    }


def hit_rate(last: np.ndarray, actual: np.ndarray, predicted: np.ndarray) -> float | None:
    """Share of weeks where the predicted move's sign equals the actual move's sign.

    >>> hit_rate(np.array([1.0, 1, 1]), np.array([2.0, 0.5, 1]), np.array([1.5, 1.5, 2]))
    0.5
    """
    pred_move, actual_move = np.sign(predicted - last), np.sign(actual - last)
    both = (pred_move != 0) & (actual_move != 0)
    if not both.any():
        return None
    return float(np.mean(pred_move[both] == actual_move[both]))


def score(last: np.ndarray, actual: np.ndarray, predicted: np.ndarray) -> dict[str, Any]:
    """``{"price": {...}, "return": {...}}`` metrics of one forecast of next week's close."""
    hits = hit_rate(last, actual, predicted)
    return {
        "price": {**errors(actual, predicted), "hit_rate": hits},
        "return": {**errors(actual / last - 1, predicted / last - 1), "hit_rate": hits},
    }


def compare(last: np.ndarray, actual: np.ndarray, predicted: np.ndarray) -> dict[str, Any]:
    """Model and naive scores on the same windows, with the model/naive MSE ratios.

    A ratio below 1 means the model's squared error is smaller than the naive forecast's.
    """
    model = score(last, actual, predicted)
    naive = score(last, actual, last)
    naive_mse = naive["return"]["mse"]
    return {
        "n": len(actual),
        "model": model,
        "naive": naive,
        "mse_ratio": model["return"]["mse"] / naive_mse if naive_mse > 0 else None,
    }
