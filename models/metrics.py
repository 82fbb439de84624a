"""Forecast error metrics, for the model and for the naive forecast on the same windows.

The naive forecast says next week's close equals this week's (a predicted return of 0). Every
metric is computed on prices and on returns (``close_{t+1} / close_t - 1``):

- ``mse``, ``mae``, ``rmse``: as usual.
- ``mape``: mean of ``|error| / |actual|`` in percent. On returns it skips weeks whose actual
  return is exactly 0 and is dominated by weeks with tiny returns: read it with care.
- ``hit_rate``: the fraction of weeks whose predicted direction (up / down against the last
  close) matches the actual one, over weeks where both moved. The naive forecast never
  predicts a direction, so its hit rate is None.

Forecast quality as quants measure it (:func:`weekly_ic`, :func:`ic_stats`): each week, the
correlation across tickers between predicted and realised returns (the information
coefficient, IC, and its rank version, Spearman's), then its mean, standard deviation,
t-statistic and share of positive weeks. The IC ignores the forecasts' scale and level, which
the MSE punishes: a model can rank next week's winners well and still lose to the naive
forecast on MSE, or the other way round.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

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


#: Fewest tickers scored in a week for that week's cross-sectional correlation to count.
MIN_IC_TICKERS = 3


def weekly_ic(
    weeks: np.ndarray,
    predicted: np.ndarray,
    realised: np.ndarray,
    min_tickers: int = MIN_IC_TICKERS,
) -> pd.DataFrame:
    """The information coefficient of each week: the correlation across tickers between the
    predicted and the realised returns (Pearson: ``ic``; Spearman, on ranks with ties
    averaged: ``rank_ic``), and ``n`` the tickers scored.

    A week with fewer than ``min_tickers`` forecasts, or whose forecasts or returns are all
    equal, has no correlation (NaN).

    Returns
    -------
    pd.DataFrame
        Index: the weeks (sorted); columns ``ic``, ``rank_ic``, ``n``.

    Examples
    --------
    >>> w = np.array(["w1"] * 3 + ["w2"] * 3)
    >>> ic = weekly_ic(w, np.array([1, 2, 3, 1, 2, 3.0]), np.array([1, 2, 9, 3, 2, 1.0]))
    >>> ic.round(4).to_dict("list")
    {'ic': [0.9177, -1.0], 'rank_ic': [1.0, -1.0], 'n': [3, 3]}
    """
    frame = pd.DataFrame({"week": weeks, "p": predicted, "r": realised}).dropna()
    rows = {}
    for week, part in frame.groupby("week", sort=True):
        n = len(part)
        ic = rank_ic = math.nan
        if n >= min_tickers:
            ic = _correlation(part["p"].to_numpy(float), part["r"].to_numpy(float))
            rank_ic = _correlation(
                part["p"].rank(method="average").to_numpy(float),
                part["r"].rank(method="average").to_numpy(float),
            )
        rows[week] = (ic, rank_ic, n)
    out = pd.DataFrame.from_dict(rows, orient="index", columns=["ic", "rank_ic", "n"])
    out.index.name = "week"
    return out


def _correlation(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation; NaN when either side does not vary."""
    dx, dy = x - x.mean(), y - y.mean()
    scale = math.sqrt(float((dx**2).sum()) * float((dy**2).sum()))
    return float((dx * dy).sum() / scale) if scale > 0 else math.nan


def ic_stats(values: pd.Series | np.ndarray) -> dict[str, float | int | None]:
    """Mean, standard deviation (ddof 1), t-statistic (``mean / (std / sqrt(weeks))``) and
    the share of positive weeks of a weekly IC series, over the weeks that have one.

    >>> stats = ic_stats(np.array([0.1, 0.3, np.nan, -0.1]))
    >>> {k: round(v, 4) for k, v in stats.items()}
    {'weeks': 3, 'mean': 0.1, 'std': 0.2, 't_stat': 0.866, 'positive': 0.6667}
    """
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    weeks = len(x)
    mean = float(x.mean()) if weeks else None
    std = float(x.std(ddof=1)) if weeks > 1 else None
    t_stat = mean / (std / math.sqrt(weeks)) if mean is not None and std else None
    positive = float((x > 0).mean()) if weeks else None
    return {
        "weeks": weeks,
        "mean": mean,
        "std": std,
        "t_stat": t_stat,
        "positive": positive,
    }


def forecast_quality(
    weeks: np.ndarray, last: np.ndarray, actual: np.ndarray, predicted: np.ndarray
) -> dict[str, Any]:
    """IC, rank IC, hit rate and MSE against the naive forecast of forecasts of next week's
    close, made at ``weeks`` from ``last`` (rows missing a close are left out).

    Returns
    -------
    dict
        ``forecasts`` (rows scored), ``ic`` and ``rank_ic`` (:func:`ic_stats` of
        :func:`weekly_ic` on the returns ``close / last - 1``), ``hit_rate`` (the share of
        forecasts whose direction was right, :func:`hit_rate`) and ``mse_ratio`` (the model's
        MSE on returns over the naive forecast's, :func:`compare`).
    """
    ok = np.isfinite(last) & np.isfinite(actual) & np.isfinite(predicted)
    weeks, last, actual, predicted = weeks[ok], last[ok], actual[ok], predicted[ok]
    if not len(last):
        empty = ic_stats(np.array([]))
        return {"forecasts": 0, "ic": empty, "rank_ic": empty, "hit_rate": None, "mse_ratio": None}
    ics = weekly_ic(weeks, predicted / last - 1.0, actual / last - 1.0)
    return {
        "forecasts": len(last),
        "ic": ic_stats(ics["ic"]),
        "rank_ic": ic_stats(ics["rank_ic"]),
        "hit_rate": hit_rate(last, actual, predicted),
        "mse_ratio": compare(last, actual, predicted)["mse_ratio"],
    }


def _columns(predictions: pd.DataFrame) -> tuple[np.ndarray, ...]:
    def column(name: str) -> np.ndarray:
        return predictions[name].to_numpy(dtype=float)

    return (
        predictions["week"].to_numpy(),
        column("last_close"),
        column("actual_close"),
        column("predicted_close"),
    )


def predictions_quality(predictions: pd.DataFrame) -> dict[str, Any]:
    """:func:`forecast_quality` of a run's predictions (columns ``week``, ``last_close``,
    ``actual_close``, ``predicted_close``: one row per decision week and ticker)."""
    return forecast_quality(*_columns(predictions))


def predictions_ic(predictions: pd.DataFrame) -> pd.DataFrame:
    """:func:`weekly_ic` of a run's predictions (see :func:`predictions_quality`) on the
    returns ``close / last_close - 1``."""
    weeks, last, actual, predicted = _columns(predictions)
    return weekly_ic(weeks, predicted / last - 1.0, actual / last - 1.0)
