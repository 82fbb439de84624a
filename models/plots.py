"""The one home of the training plots: learning curves and predicted against realised
returns, as PNG files of a registry version and as panels of a tear sheet.

Forecasts are shown as returns, not prices: on a price chart the actual close, the forecast
and the naive forecast (last close) overlap so closely that they say nothing, while a scatter
of realised against predicted returns shows how little of the weekly moves the forecasts
catch and how often their direction is right.

Figures are drawn with matplotlib's object API on an Agg canvas, so importing or calling this
module never switches the process's plotting backend (and never imports torch).
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib.dates as mdates
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator, PercentFormatter

if TYPE_CHECKING:
    from models.train import FitResult


@dataclass(frozen=True)
class Curve:
    """One model's loss per epoch and the epoch whose weights were restored."""

    train_loss: Sequence[float]
    val_loss: Sequence[float]
    best_epoch: int


def draw_learning_curve(ax: Axes, curve: Curve, title: str, *, small: bool = False) -> None:
    """Training and validation loss per epoch on ``ax``, the restored best epoch dotted."""
    epochs = np.arange(1, len(curve.train_loss) + 1)
    ax.plot(epochs, curve.train_loss, lw=1.0, label="train")
    ax.plot(epochs, curve.val_loss, lw=1.0, label="validation")
    ax.axvline(
        curve.best_epoch, color="grey", ls=":", lw=0.8, label=f"best (epoch {curve.best_epoch})"
    )
    ax.set_title(title, fontsize=8 if small else 10)
    if small:
        ax.tick_params(labelsize=6)
    else:
        ax.set_xlabel("epoch")
        ax.set_ylabel("MSE (scaled target)")


def forecast_returns(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Predicted and realised returns of forecast rows (``last_close``, ``predicted_close``,
    ``actual_close``): ``close / last_close - 1``, rows missing either close left out."""
    ok = rows[["last_close", "predicted_close", "actual_close"]].notna().all(axis=1)
    last = rows.loc[ok, "last_close"].to_numpy(dtype=float)
    predicted = rows.loc[ok, "predicted_close"].to_numpy(dtype=float) / last - 1.0
    actual = rows.loc[ok, "actual_close"].to_numpy(dtype=float) / last - 1.0
    return predicted, actual


def _span(values: np.ndarray, least: float) -> float:
    """Half the width of a symmetric axis holding ``values`` (at least ``least``)."""
    return max(float(np.abs(values).max()) if len(values) else 0.0, least) * 1.1


def direction_hits(predicted: np.ndarray, actual: np.ndarray) -> tuple[int, int]:
    """How many forecasts called the direction right, out of those where both the forecast
    and the realised return moved (a return of exactly 0 has no direction).

    >>> direction_hits(np.array([0.1, -0.1, 0.2, 0.0]), np.array([0.3, 0.2, 0.0, 0.1]))
    (1, 2)
    """
    moved = (predicted != 0) & (actual != 0)
    return int((np.sign(predicted[moved]) == np.sign(actual[moved])).sum()), int(moved.sum())


def draw_forecast_scatter(
    ax: Axes, predicted: np.ndarray, actual: np.ndarray, title: str, *, small: bool = False
) -> None:
    """Realised against predicted weekly returns on ``ax``, each axis on its own scale (the
    forecasts vary far less than the returns). The naive forecast (next close = last close)
    predicts a return of 0: the vertical line. Points in the shaded quadrants called the
    direction right; the hit rate is in the title."""
    hits, moved = direction_hits(predicted, actual)
    rate = f"{hits / moved:.1%}" if moved else "n/a"
    # Symmetric axes, each on its own scale; the quadrants of a right call are shaded.
    xspan = _span(predicted, 1e-4)
    yspan = _span(actual, 1e-2)
    for x0, y0 in ((0.0, 0.0), (-xspan, -yspan)):
        ax.add_patch(Rectangle((x0, y0), xspan, yspan, color="#e3f1e3", lw=0, zorder=0))
    ax.scatter(predicted, actual, s=4 if small else 8, alpha=0.5, lw=0, zorder=2)
    ax.axhline(0.0, color="#999999", lw=0.8, zorder=1)
    ax.axvline(0.0, color="black", lw=1.0, ls="--", zorder=1, label="naive forecast (0)")
    ax.set_xlim(-xspan, xspan)
    ax.set_ylim(-yspan, yspan)
    ax.xaxis.set_major_locator(MaxNLocator(5 if small else 9, symmetric=True))
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_title(f"{title}: hit rate {rate} (n={len(predicted)})", fontsize=8 if small else 10)
    if small:
        ax.tick_params(labelsize=6)
    else:
        ax.set_xlabel("predicted return")
        ax.set_ylabel("realised return")


def _grid(n: int, width: float, height: float) -> tuple[Figure, int, int]:
    cols = min(4, n)
    nrows = math.ceil(n / cols)
    return Figure(figsize=(width * cols, height * nrows), layout="constrained"), nrows, cols


def learning_curves_figure(curves: Mapping[str, Curve]) -> Figure | None:
    """Small multiples of :func:`draw_learning_curve`, one per model (None without any)."""
    if not curves:
        return None
    fig, nrows, cols = _grid(len(curves), 2.6, 1.9)
    for i, (key, curve) in enumerate(curves.items()):
        ax = fig.add_subplot(nrows, cols, i + 1)
        draw_learning_curve(ax, curve, f"{key} (best {curve.best_epoch})", small=True)
        if i == 0:
            ax.legend(fontsize=6, frameon=False)
    return fig


def forecast_scatter_figure(rows: pd.DataFrame) -> Figure | None:
    """All forecasts of ``rows`` pooled in one :func:`draw_forecast_scatter` (None without)."""
    predicted, actual = forecast_returns(rows)
    if not len(predicted):
        return None
    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.add_subplot()
    draw_forecast_scatter(ax, predicted, actual, "all tickers")
    ax.legend(fontsize=8, frameon=False, loc="upper left")
    return fig


def forecast_scatter_grid(rows: Mapping[str, pd.DataFrame]) -> Figure | None:
    """Small multiples of :func:`draw_forecast_scatter`, one per ticker (None without)."""
    pairs = {t: forecast_returns(part) for t, part in rows.items()}
    pairs = {t: pair for t, pair in pairs.items() if len(pair[0])}
    if not pairs:
        return None
    fig, nrows, cols = _grid(len(pairs), 2.6, 2.1)
    for i, (ticker, (predicted, actual)) in enumerate(pairs.items()):
        ax = fig.add_subplot(nrows, cols, i + 1)
        draw_forecast_scatter(ax, predicted, actual, str(ticker), small=True)
    return fig


def learning_summary_figure(versions: Mapping[str, Mapping[str, Curve]]) -> Figure | None:
    """One panel per version: the median training and validation loss per epoch over its
    models, the middle half of the models shaded, and the median restored epoch dotted (None
    without any curve). An epoch's figures are over the models that trained that long, shown
    while at least half of the version's models did (early stopping ends the others; the
    last few would make a noisy tail)."""
    versions = {v: curves for v, curves in versions.items() if curves}
    if not versions:
        return None
    fig, nrows, cols = _grid(len(versions), 3.0, 2.2)
    for i, (version, curves) in enumerate(versions.items()):
        ax = fig.add_subplot(nrows, cols, i + 1)
        for key, label in (("train_loss", "train"), ("val_loss", "validation")):
            losses = [np.asarray(getattr(c, key), dtype=float) for c in curves.values()]
            # The median length: at least half of the models trained this many epochs.
            shown = int(np.ceil(np.median([len(x) for x in losses])))
            table = np.full((len(losses), shown), np.nan)
            for row, x in enumerate(losses):
                table[row, : min(len(x), shown)] = x[:shown]
            epochs = np.arange(1, shown + 1)
            low, mid, high = np.nanpercentile(table, [25, 50, 75], axis=0)
            (line,) = ax.plot(epochs, mid, lw=1.2, label=f"{label} (median)")
            ax.fill_between(epochs, low, high, color=line.get_color(), alpha=0.2, lw=0)
        best = float(np.median([c.best_epoch for c in curves.values()]))
        ax.axvline(best, color="grey", ls=":", lw=0.8, label=f"median best epoch {best:g}")
        ax.set_title(f"{version} ({len(curves)} models)", fontsize=9)
        ax.tick_params(labelsize=7)
        ax.set_xlabel("epoch", fontsize=7)
        ax.legend(fontsize=6, frameon=False)
    return fig


#: Weeks of the rolling mean on the weekly IC chart (a quarter).
IC_ROLLING_WEEKS = 13


def ic_figure(ics: pd.DataFrame) -> Figure | None:
    """The weekly rank IC as bars, its trailing :data:`IC_ROLLING_WEEKS`-week mean and its
    overall mean (``ics`` as :func:`models.metrics.weekly_ic` returns; None without a week
    that has one)."""
    rank = ics["rank_ic"].dropna()
    if rank.empty:
        return None
    weeks = mdates.date2num(pd.DatetimeIndex(rank.index).to_numpy())
    fig = Figure(figsize=(9, 3.0), layout="constrained")
    ax = fig.add_subplot()
    colors = np.where(rank.to_numpy() > 0, "#55a868", "#c44e52")
    # Bars 5 days wide in matplotlib's date units (days).
    ax.bar(weeks, rank.to_numpy(), width=5, color=colors, alpha=0.6, label="rank IC of the week")
    rolling = rank.rolling(IC_ROLLING_WEEKS, min_periods=IC_ROLLING_WEEKS).mean()
    ax.plot(weeks, rolling.to_numpy(), color="black", lw=1.2, label=f"{IC_ROLLING_WEEKS}-week mean")
    ax.axhline(float(rank.mean()), color="#4c72b0", ls="--", lw=1.0, label="mean")
    ax.axhline(0.0, color="#999999", lw=0.8)
    ax.set_ylim(-1.05, 1.05)
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.set_ylabel("rank IC")
    ax.legend(fontsize=8, frameon=False, ncols=3, loc="upper left")
    return fig


def png_bytes(fig: Figure, dpi: int = 90) -> bytes:
    """``fig`` as PNG bytes."""
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=96)
    return path


def learning_curve(fit: FitResult, title: str, path: Path) -> Path:
    """A version's learning curve as a PNG file."""
    fig = Figure(figsize=(6.4, 3.6))
    ax = fig.add_subplot()
    draw_learning_curve(ax, Curve(fit.train_loss, fit.val_loss, fit.best_epoch), title)
    ax.legend(fontsize=8)
    return _save(fig, path)


def predicted_vs_actual(test: pd.DataFrame, title: str, path: Path) -> Path:
    """One ticker's test weeks (rows of :data:`models.forecaster.TEST_COLUMNS`) as a PNG: the
    realised against the predicted return (:func:`draw_forecast_scatter`)."""
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.add_subplot()
    predicted, actual = forecast_returns(test)
    draw_forecast_scatter(ax, predicted, actual, title)
    ax.legend(fontsize=8, frameon=False, loc="upper left")
    return _save(fig, path)
