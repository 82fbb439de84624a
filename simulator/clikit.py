"""Shared pieces of the command line: consoles, progress bars, JSON output, date options."""

from __future__ import annotations

import datetime as dt
import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from simulator.errors import FoliosimError

if TYPE_CHECKING:
    import pandas as pd

    from models.forecaster import TrainEvent, TrainProgress

#: ``--set section.key=value``, repeatable, on every command that reads a config.
SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        metavar="SECTION.KEY=VALUE",
        help="Override one config field, e.g. --set data.source=csv (repeatable).",
    ),
]

# Piped output (a log, a file) is not wrapped at 80 columns: tables stay readable.
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True)


def progress_bars() -> Progress:
    """Progress bars on stderr that vanish when done."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    )


def train_bars(bar: Progress, max_epochs: int) -> TrainProgress:
    """Bars of models and epochs on ``bar``, shown once training starts; returns the
    ``train`` progress callback."""
    models_task = bar.add_task("models", total=None, visible=False)
    epochs_task = bar.add_task("epochs", total=max_epochs, visible=False)

    def on_event(event: TrainEvent) -> None:
        if event.result is not None:
            bar.update(models_task, completed=event.index + 1, total=event.total)
            return
        if event.epoch == 0:
            bar.update(models_task, completed=event.index, total=event.total, visible=True)
            bar.reset(epochs_task, total=event.max_epochs, visible=True)
        label = f"  {event.key} epoch"
        if event.epoch:
            label += f" (val loss {event.val_loss:.4g})"
        bar.update(epochs_task, completed=event.epoch, description=label)

    return on_event


def parse_day(text: str, flag: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise FoliosimError(f"{flag} {text!r}: expected a date YYYY-MM-DD") from None


def print_json(doc: object) -> None:
    import json

    sys.stdout.write(json.dumps(doc, indent=2, allow_nan=False, default=str) + "\n")


def check_returns_vary(returns: pd.Series, cash: float) -> None:
    """Refuse, before a tear sheet is drawn, a strategy whose weekly returns never change.

    QuantStats regresses the strategy on the benchmark and fails on a constant series (a run
    that never held a position, e.g. cash too small for one whole share).
    """
    values = returns.dropna()
    if len(values) and values.nunique() == 1:
        raise FoliosimError(
            f"the strategy's weekly return is {values.iloc[0]:.4g} every week: it never held a "
            f"position (with cash {cash:,.0f}, no whole share may have been affordable), and a "
            "tear sheet cannot be drawn of a constant series; raise backtest.cash or check the "
            "strategy's settings"
        )
