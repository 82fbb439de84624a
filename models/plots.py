"""The one home of the training plots (seed 000's visualisations): learning curves and
predicted vs actual closes, as PNG files of a registry version and as panels of a tear sheet.

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


def draw_predicted_vs_actual(
    ax: Axes, rows: pd.DataFrame, title: str, *, small: bool = False
) -> None:
    """Actual close, the model's predicted close and the naive one (last close) on ``ax``;
    ``rows`` has ``target_week``, ``actual_close``, ``predicted_close`` and ``last_close``."""
    weeks = pd.DatetimeIndex(rows["target_week"]).to_numpy()
    width = 0.8 if small else 1.0
    ax.plot(weeks, rows["actual_close"].to_numpy(), color="black", lw=width + 0.2, label="actual")
    ax.plot(weeks, rows["predicted_close"].to_numpy(), lw=width, label="LSTM")
    ax.plot(weeks, rows["last_close"].to_numpy(), ls="--", lw=width - 0.2, label="naive")
    ax.set_title(title, fontsize=8 if small else 10)
    locator = mdates.AutoDateLocator(minticks=2, maxticks=4 if small else 7)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    if small:
        ax.tick_params(labelsize=6)
    else:
        ax.set_ylabel("weekly close")


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


def predicted_vs_actual_figure(rows: Mapping[str, pd.DataFrame]) -> Figure | None:
    """Small multiples of :func:`draw_predicted_vs_actual`, one per ticker (None without)."""
    if not rows:
        return None
    fig, nrows, cols = _grid(len(rows), 2.8, 2.0)
    for i, (ticker, part) in enumerate(rows.items()):
        ax = fig.add_subplot(nrows, cols, i + 1)
        draw_predicted_vs_actual(ax, part, str(ticker), small=True)
        if i == 0:
            ax.legend(fontsize=6, frameon=False)
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
    """One ticker's test weeks (rows of :data:`models.forecaster.TEST_COLUMNS`) as a PNG."""
    fig = Figure(figsize=(6.4, 3.6))
    ax = fig.add_subplot()
    draw_predicted_vs_actual(ax, test, title)
    ax.legend(fontsize=8)
    return _save(fig, path)
