"""The ``foliosim`` command line.

User errors (bad config, bad data, no network) print one line ``error: ...`` on stderr and
exit with status 2; nothing half-written is left behind.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sys
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from simulator.config import Config, load_config
from simulator.errors import FoliosimError
from simulator.workspace import workspace_dir

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="foliosim: an honest weekly backtester for LSTM-signal portfolios.",
)
data_app = typer.Typer(no_args_is_help=True, help="Manage price data in the workspace cache.")
app.add_typer(data_app, name="data")

console = Console()
err_console = Console(stderr=True)

SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        metavar="SECTION.KEY=VALUE",
        help="Override one config field, e.g. --set data.source=csv (repeatable).",
    ),
]
OutOption = Annotated[
    Path | None,
    typer.Option("--out", help="Run directory to create (default: runs/<name>-<time>)."),
]


@contextlib.contextmanager
def _week_progress(label: str) -> Iterator[Callable[[int, int], None]]:
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def print_table2(summary: dict[str, object]) -> None:
    """Print the seed paper's Table 2 layout for a run, as the tear sheet shows it."""
    from simulator.report import format_table2, table2

    cells = format_table2(table2(summary))
    table = Table(title=f"{summary['start']} .. {summary['end']}, {summary['weeks']} weeks")
    table.add_column("")
    for col in cells.columns:
        table.add_column(str(col), justify="right")
    for row_name, row in cells.iterrows():
        table.add_row(str(row_name), *row.tolist())
    console.print(table)


def _run(cfg: Config, out: Path | None) -> Path:
    from simulator.backtest import run_backtest
    from simulator.rundir import check_out_dir, default_run_dir, write_run

    target = out or default_run_dir(cfg.backtest.strategy)
    check_out_dir(target)  # fail before the work, not after
    with _week_progress(f"backtest {cfg.backtest.strategy}") as update:
        result = run_backtest(cfg, workspace_dir(), progress=update)
    with err_console.status("writing the tear sheet"):
        path = write_run(result, target)
    print_table2(result.summary)
    if result.summary["orders_rejected"]:
        console.print(f"orders not filled: {result.summary['orders_rejected']} (see orders.csv)")
    console.print(f"run directory: {path}", soft_wrap=True, markup=False, highlight=False)
    return path


@app.command()
def demo(out: OutOption = None, set_: SetOption = None) -> None:
    """Run the main job on the bundled data (offline): a weekly backtest and its tear sheet."""
    with resources.as_file(resources.files("simulator") / "configs" / "demo.toml") as path:
        cfg = load_config(path, set_ or [])
    _run(cfg, out)


@app.command()
def backtest(
    config: Annotated[Path, typer.Argument(help="TOML config file.")],
    out: OutOption = None,
    set_: SetOption = None,
) -> None:
    """Backtest the strategy of CONFIG and write a run directory with its tear sheet."""
    _run(load_config(config, set_ or []), out)


@app.command()
def report(run_dir: Annotated[Path, typer.Argument(help="A run directory.")]) -> None:
    """Rebuild tearsheet.html of RUN_DIR from its files."""
    import json

    from simulator.report import write_tearsheet
    from simulator.rundir import check_run_dir

    check_run_dir(run_dir)
    with err_console.status("writing the tear sheet"):
        path = write_tearsheet(run_dir)
    print_table2(json.loads((run_dir / "summary.json").read_text(encoding="utf-8")))
    console.print(f"tear sheet: {path}", soft_wrap=True, markup=False, highlight=False)


def _parse_day(text: str, flag: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise FoliosimError(f"{flag} {text!r}: expected a date YYYY-MM-DD") from None


@data_app.command("fetch")
def data_fetch(
    tickers: Annotated[str, typer.Option(help="Comma-separated symbols, e.g. AAPL,MSFT,IXIC.")],
    start: Annotated[str, typer.Option(help="First day, YYYY-MM-DD.")],
    end: Annotated[str, typer.Option(help="Last day, YYYY-MM-DD.")],
) -> None:
    """Download daily prices from Yahoo into the workspace cache (needs a network)."""
    import pandas as pd

    from simulator.data.sources import fetch_yahoo

    first, last = _parse_day(start, "--start"), _parse_day(end, "--end")
    if last <= first:
        raise FoliosimError(f"--end {last} must be after --start {first}")
    names = [t.strip().upper().lstrip("^") for t in tickers.split(",") if t.strip()]
    if not names:
        raise FoliosimError("--tickers: give at least one symbol, e.g. --tickers AAPL,MSFT")
    with err_console.status(f"downloading {len(names)} symbol(s) from Yahoo"):
        paths = fetch_yahoo(names, pd.Timestamp(first), pd.Timestamp(last), workspace_dir())
    for name, path in paths.items():
        console.print(f"{name}: {path}")


def main() -> None:
    """Console-script entry point: one line and exit 2 for user errors.

    Usage errors (a missing argument, an unknown option) are click's: a usage line and exit 2.
    """
    try:
        app()
    except FoliosimError as err:
        err_console.print(f"error: {err}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
