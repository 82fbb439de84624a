"""PNG plots of a training run (seed 000's visualisations).

Figures are drawn with matplotlib's object API on an Agg canvas, so importing or calling this
module never switches the process's plotting backend.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from models.train import FitResult


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=96)
    return path


def learning_curve(fit: FitResult, title: str, path: Path) -> Path:
    """Training and validation loss per epoch, the restored best epoch marked."""
    fig = Figure(figsize=(6.4, 3.6))
    ax = fig.add_subplot()
    epochs = range(1, fit.epochs + 1)
    ax.plot(epochs, fit.train_loss, label="train")
    ax.plot(epochs, fit.val_loss, label="validation")
    ax.axvline(fit.best_epoch, color="grey", linestyle=":", label=f"best (epoch {fit.best_epoch})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("MSE (scaled target)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return _save(fig, path)


def predicted_vs_actual(test: pd.DataFrame, title: str, path: Path) -> Path:
    """Actual weekly close, the model's prediction and the naive one on the test windows.

    ``test`` holds one ticker's rows of :data:`models.forecaster.TEST_COLUMNS`.
    """
    fig = Figure(figsize=(6.4, 3.6))
    ax = fig.add_subplot()
    weeks = pd.DatetimeIndex(test["target_week"])
    ax.plot(weeks, test["actual_close"], label="actual", color="black", linewidth=1.2)
    ax.plot(weeks, test["predicted_close"], label="LSTM", linewidth=1.0)
    ax.plot(weeks, test["last_close"], label="naive (last close)", linestyle="--", linewidth=0.8)
    ax.set_ylabel("weekly close")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.autofmt_xdate()
    return _save(fig, path)
