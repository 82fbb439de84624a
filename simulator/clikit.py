"""Shared pieces of the command line: consoles, progress bars, JSON output, date options."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shlex
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from typer.core import TyperArgument

from simulator.errors import FoliosimError

if TYPE_CHECKING:
    import pandas as pd

    from models.forecaster import TrainEvent


def _usage_name(self: TyperArgument) -> str:
    """An argument in a usage line as Unix tools write it: ``CONFIG``, ``[NAME]``."""
    name = self.metavar or self.display_name_raw.upper()
    name = name if self.required else f"[{name}]"
    return name + ("..." if self.nargs != 1 else "")


# Typer 0.29 writes a required argument as "{config}" in usage lines, which reads as a
# template to fill in; one override, here, for every command.
if hasattr(TyperArgument, "_usage_display_name"):
    TyperArgument._usage_display_name = _usage_name  # type: ignore[method-assign]

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
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)


def runnable(command: str, argv0: str | None = None) -> str:
    """``command`` (``foliosim`` or ``mlflow``) as this shell can run it.

    When the command on PATH is the one installed beside this Python, its bare name; else its
    path relative to the current folder (e.g. ``.venv/bin/foliosim`` when the virtualenv is
    not activated), so a printed hint can be pasted as it is.
    """
    here = Path(argv0 or sys.argv[0]) if command == "foliosim" else None
    installed = Path(sys.executable).parent / command
    target = here if here is not None and here.name == command and here.is_file() else installed
    found = shutil.which(command)
    if found is not None and target.exists() and Path(found).resolve() == target.resolve():
        return command
    if not target.exists():
        return command if command != "foliosim" else "python -m simulator.cli"
    try:
        shown = os.path.relpath(target)
    except ValueError:  # another drive (Windows)
        shown = str(target)
    if shown.startswith(".."):
        shown = str(target.absolute())
    elif not shown.startswith((".", os.sep)):
        shown = f".{os.sep}{shown}"
    return shlex.quote(shown)


class Reporter:
    """What a long command shows on stderr while it works.

    On a terminal: a bar per phase, named after it ("1/N", "training model 2/4: AAPL (3/20)",
    "backtest lstm_signal", "baseline min_variance"), each with its own clock, gone when the
    phase ends. In a log (stderr not a terminal: CI, ``nohup``, a pipe): one line when a phase
    starts and ends, and one line per trained network with its epochs, so a long run is never
    silent for minutes.
    """

    def __init__(self, terminal: bool | None = None) -> None:
        self.terminal = err_console.is_terminal if terminal is None else terminal
        self.bar: Progress | None = None
        if self.terminal:
            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=err_console,
                transient=True,
            )
        self.model = ""  # "model k/n" of the walk-forward version being trained
        self._epochs: Any = None

    def __enter__(self) -> Reporter:
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()

    def say(self, line: str) -> None:
        """A line of news (``note`` of the training and backtest functions)."""
        head = line.split(":", 1)[0]
        if head.startswith("model ") and "/" in head:
            self.model = head
        console_ = self.bar.console if self.bar is not None else err_console
        console_.print(line, markup=False, highlight=False, soft_wrap=True)

    def phase(self, name: str, unit: str = "weeks") -> Callable[[int, int], None]:
        """A progress callback ``(done, total)`` for one phase of ``total`` steps (weeks)."""
        clock = time.perf_counter()
        if self.bar is not None:
            bar = self.bar
            task = bar.add_task(name, total=None)

            def update(done: int, total: int) -> None:
                if done >= total:
                    bar.remove_task(task)
                else:
                    bar.update(task, completed=done, total=total)

            return update
        err_console.print(f"{name} ...", markup=False, highlight=False)

        def log(done: int, total: int) -> None:
            if done >= total:
                seconds = time.perf_counter() - clock
                line = f"{name}: {total} {unit} in {seconds:.1f} s"
                err_console.print(line, markup=False, highlight=False)

        return log

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        """A phase without steps to count (writing the tear sheet): a spinner on a terminal,
        a line when it starts and one when it ends in a log."""
        if self.terminal:
            with err_console.status(name):
                yield
            return
        clock = time.perf_counter()
        err_console.print(f"{name} ...", markup=False, highlight=False)
        yield
        seconds = time.perf_counter() - clock
        err_console.print(f"{name}: done in {seconds:.1f} s", markup=False, highlight=False)

    def training(self, event: TrainEvent) -> None:
        """The ``train`` progress callback: epochs of each network."""
        which = f"{event.key} ({event.index + 1}/{event.total})"
        label = f"training {self.model or 'model'}: {which}"
        if self.bar is None:
            if event.result is not None:
                r = event.result
                err_console.print(
                    f"{label}: {r.epochs} epochs, best {r.best_epoch} (val loss "
                    f"{r.best_val_loss:.4g}), {r.stop_reason}",
                    markup=False,
                    highlight=False,
                )
            return
        if event.result is not None:
            if self._epochs is not None and event.index + 1 == event.total:
                self.bar.remove_task(self._epochs)
                self._epochs = None
            return
        if event.epoch == 0:
            if self._epochs is not None:
                self.bar.remove_task(self._epochs)
            # A new task per network: its clock starts with it.
            self._epochs = self.bar.add_task(label, total=event.max_epochs)
        self.bar.update(self._epochs, completed=event.epoch)


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
