"""Runs side by side: a table of the run directories in a folder, and a comparison page.

:func:`list_runs` reads every run directory directly under a folder (a folder holding
``summary.json``; hidden leftovers of killed runs are skipped) through
:func:`simulator.summary.read_summary` and returns one JSON-ready row per run, with its key
figures; a run whose summary cannot be read is listed with its error instead of stopping the
list. :func:`table_cells` formats a row for a terminal table.

:func:`compare_runs` writes one self-contained HTML page (atomically) with the metrics of two
or more runs side by side and one chart of their equity (growth of 1 of each strategy, each on
its own weeks). It writes only a new file or a page it wrote before (recognised by
:data:`MARKER` at its top), never through a symbolic link, onto a device, a pipe or a folder,
nor over any other file (another run's ``summary.json``, a user's notes): those are refused
with one :class:`RunDirError` line and left as they were. Every value from a run directory is
escaped. The figures are the strategy's:
summary.json's ``strategy`` series, its facts and, when present, its exposure and forecast
quality. Annualised figures of a short run (fewer than
:data:`~simulator.metrics.SHORT_RUN_WEEKS` weeks) are not shown.
"""

from __future__ import annotations

import datetime as dt
import errno
import os
import stat
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simulator.charts import runs_growth_figure
from simulator.errors import RunDirError
from simulator.htmlkit import esc, num, png, table
from simulator.metrics import SHORT_RUN_WEEKS
from simulator.report import standalone_page
from simulator.rundir import read_returns
from simulator.summary import RunSummary, read_summary

if TYPE_CHECKING:
    import pandas as pd

#: The columns of :func:`table_cells`, for a terminal table of :func:`list_runs`.
TABLE_COLUMNS = (
    "run",
    "strategy",
    "period",
    "weeks",
    "total return",
    "annual return",
    "Sharpe",
    "max drawdown",
    "vs benchmark",
)
#: The second line of every comparison page (after the doctype): a file that carries it near
#: its top is one :func:`compare_runs` wrote and may replace.
MARKER = "<!-- written by foliosim runs compare; the next comparison may replace this file -->"
#: How much of an existing file is read to look for :data:`MARKER`.
_MARKER_SPAN = 512
_NEW_NAME = "give --out a new file name (e.g. compare.html)"


def run_dirs(folder: Path) -> list[Path]:
    """The run directories directly under ``folder`` (holding summary.json), by name."""
    if not folder.is_dir():
        raise RunDirError(f"{folder}: no such folder; pass a folder of run directories (e.g. runs)")
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_dir() and not p.name.startswith(".") and (p / "summary.json").is_file()
    )


def _annual(summary: RunSummary, value: float | None) -> float | None:
    """An annualised figure, or None for a short run (it would say nothing)."""
    return None if summary.short else value


def run_row(run_dir: Path) -> dict[str, Any]:
    """One run's key figures (fractions; None where undefined or annualised over a short
    run); ``{"run", "path", "error"}`` when its summary cannot be read (the error in one line,
    naming the file by the run's name, not by a path of this machine: the web app shows it)."""
    try:
        s = read_summary(run_dir / "summary.json")
    except RunDirError as err:
        error = " ".join(str(err).replace(str(run_dir), run_dir.name).split())
        return {"run": run_dir.name, "path": str(run_dir), "error": error}
    strategy, benchmark = s.series["strategy"], s.series["benchmark"]
    row: dict[str, Any] = {
        "run": run_dir.name,
        "path": str(run_dir),
        "strategy": s.strategy_name,
        "benchmark": s.benchmark_name,
        "kind": "replay" if s.replay is not None else "backtest",
        "start": s.start.isoformat(),
        "end": s.end.isoformat(),
        "weeks": s.weeks,
        "short": s.short,
        "fill": s.fill,
        "total_return": strategy.total_return,
        "cagr": _annual(s, strategy.cagr),
        "volatility": _annual(s, strategy.volatility),
        "sharpe": _annual(s, strategy.sharpe),
        "max_drawdown": strategy.max_drawdown,
        "benchmark_total_return": benchmark.total_return,
        "final_value": s.final_value,
    }
    return row


def list_runs(folder: Path) -> list[dict[str, Any]]:
    """:func:`run_row` of every run directory under ``folder`` (see the module docstring)."""
    return [run_row(path) for path in run_dirs(folder)]


def _pct(value: float | None, *, sign: bool = False) -> str:
    return num(value, "+.2%" if sign else ".2%")


def table_cells(row: dict[str, Any]) -> list[str]:
    """``row`` as the plain-text cells of :data:`TABLE_COLUMNS` (an unreadable run: its error
    in the second cell)."""
    if "error" in row:
        return [row["run"], f"unreadable: {row['error']}", *[""] * (len(TABLE_COLUMNS) - 2)]
    active = row["total_return"] - row["benchmark_total_return"]
    return [
        row["run"],
        row["strategy"] + (" (replay)" if row["kind"] == "replay" else ""),
        f"{row['start']} .. {row['end']}",
        str(row["weeks"]),
        _pct(row["total_return"], sign=True),
        "short run" if row["short"] else _pct(row["cagr"], sign=True),
        "" if row["short"] else num(row["sharpe"], ".3f"),
        _pct(row["max_drawdown"]),
        f"{_pct(active, sign=True)} vs {row['benchmark']}",
    ]


# --- the comparison page -----------------------------------------------------------------------


def _labels(runs: Sequence[Path]) -> list[str]:
    """Each run's folder name, with its parent's where two names are the same."""
    names = [p.name for p in runs]
    return [f"{p.parent.name}/{p.name}" if names.count(p.name) > 1 else p.name for p in runs]


def _metric_rows(summaries: Sequence[RunSummary]) -> list[list[str]]:
    """The rows of the comparison table: metric, then one HTML cell per run."""

    def row(label: str, cells: list[str]) -> list[str]:
        return [esc(label), *cells]

    def stats(key: str, spec: str, *, annual: bool = False) -> list[str]:
        out = []
        for s in summaries:
            value = getattr(s.series["strategy"], key)
            out.append("short run" if annual and s.short else num(value, spec))
        return out

    def fact(getter: Any, spec: str) -> list[str]:
        out = []
        for s in summaries:
            try:
                value = getter(s)
            except AttributeError:  # a fact an older summary does not have
                value = None
            out.append(num(value, spec))
        return out

    return [
        row("strategy", [esc(s.strategy_name) for s in summaries]),
        row("kind", ["paper account" if s.replay else "backtest" for s in summaries]),
        row("period", [f"{esc(s.start)} to {esc(s.end)}" for s in summaries]),
        row("weekly returns", [esc(s.weeks) for s in summaries]),
        row("fill", [esc(s.fill) for s in summaries]),
        row("benchmark", [esc(s.benchmark_name) for s in summaries]),
        row("total return", stats("total_return", "+.2%")),
        row("annual return (CAGR)", stats("cagr", "+.2%", annual=True)),
        row("volatility (annual)", stats("volatility", ".2%", annual=True)),
        row("Sharpe ratio", stats("sharpe", ".3f", annual=True)),
        row("Sortino ratio", stats("sortino", ".3f", annual=True)),
        row("max drawdown", stats("max_drawdown", ".2%")),
        row("benchmark total return", fact(lambda s: s.series["benchmark"].total_return, "+.2%")),
        row("1/N total return", fact(lambda s: s.series["equal_weight"].total_return, "+.2%")),
        row("final value", fact(lambda s: s.final_value, ",.0f")),
        row("orders filled", fact(lambda s: s.orders_filled, "d")),
        row("orders rejected", fact(lambda s: s.orders_rejected, "d")),
        row("mean gross exposure", fact(lambda s: s.exposure.mean_gross, ".1%")),
        row("mean net exposure", fact(lambda s: s.exposure.mean_net, ".1%")),
        row("turnover a year", fact(lambda s: s.exposure.annual_turnover, ".0%")),
        row("forecast MSE / naive", fact(lambda s: s.prediction.mse_ratio, ".3f")),
        row("rank IC (mean)", fact(lambda s: s.prediction.quality.rank_ic.mean, ".3f")),
        row("rank IC (t-stat)", fact(lambda s: s.prediction.quality.rank_ic.t_stat, ".2f")),
        row("direction hit rate", fact(lambda s: s.prediction.quality.hit_rate, ".1%")),
    ]


def default_compare_path(runs: Sequence[Path]) -> Path:
    """``<the first run's folder>/compare-<local time>.html``."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return runs[0].parent / f"compare-{stamp}.html"


def compare_runs(runs: Sequence[Path], out: Path) -> Path:
    """Write the comparison page of ``runs`` (two or more run directories) to ``out``.

    The page holds the metrics side by side (:func:`_metric_rows`) and the growth of 1 of each
    run's strategy on one chart. ``out`` must be new or a page this command wrote before
    (:func:`check_compare_out`, checked before any work and again before the page is put in
    place); the page is written to a temporary file beside ``out`` and moved into place.

    Raises
    ------
    RunDirError
        Fewer than two runs, a run named twice, an ``out`` refused by
        :func:`check_compare_out`, a run directory without a readable summary.json or
        returns.csv, or the page could not be written (``out`` is then left as it was).
    """
    if len(runs) < 2:
        raise RunDirError(f"compare needs two or more run directories (got {len(runs)})")
    resolved = [Path(p).resolve() for p in runs]
    if len(set(resolved)) < len(resolved):
        raise RunDirError("a run directory is named twice; pass each run once")
    check_compare_out(out)
    summaries: list[RunSummary] = []
    curves: dict[str, pd.Series] = {}
    labels = _labels(runs)
    for path, label in zip(runs, labels, strict=True):
        if not (path / "summary.json").is_file():
            raise RunDirError(
                f"{path}: not a run directory (no summary.json); pass folders that "
                "`foliosim backtest` or `foliosim replay status --html` wrote"
            )
        summary = read_summary(path / "summary.json")
        returns = read_returns(path / "returns.csv", ["strategy"])
        summaries.append(summary)
        curves[f"{label}: {summary.strategy_name}"] = returns["strategy"]
    head = ["metric", *labels]
    chart = png(runs_growth_figure(curves), dpi=100)
    short = [label for label, s in zip(labels, summaries, strict=True) if s.short]
    notes = [
        "Figures are the strategy's of each run, from its summary.json; returns are weekly, "
        "annualised with 52 weeks a year.",
        "Each run's curve starts at 1 one week before its first return week, on its own weeks.",
    ]
    if short:
        notes.append(
            f"Short runs (fewer than {SHORT_RUN_WEEKS} weeks: {esc(', '.join(short))}) show "
            "no annualised figures."
        )
    paths = "".join(
        f"<li><code>{esc(label)}</code>: {esc(path)}</li>"
        for label, path in zip(labels, runs, strict=True)
    )
    items = "".join(f"<li>{note}</li>" for note in notes)
    title = f"foliosim: {len(runs)} runs compared"
    body = f"""
<div class="container" id="foliosim">
<h1>{esc(title)}</h1>
<hr>
<h3>Metrics</h3>
{table(head, _metric_rows(summaries), "compare")}
<h3>Growth of 1</h3>
<img src="data:image/png;base64,{chart}" alt="{esc("Growth of 1 of " + ", ".join(curves))}">
<h3>Notes</h3>
<ul>{items}</ul>
<h3>Runs</h3>
<ul>{paths}</ul>
</div>
"""
    _write_page(out, _marked(standalone_page(body, title=title)))
    return out


def check_compare_out(out: Path) -> bool:
    """Refuse an ``--out`` that :func:`compare_runs` must not write; True when ``out`` is a
    page it wrote before (to be replaced), False when it does not exist yet.

    Raises
    ------
    RunDirError
        ``out`` in a missing folder, a folder, a symbolic link (dangling or not), a device, a
        pipe or a socket, or a file this command did not write (no :data:`MARKER`).
    """
    if not out.parent.is_dir():
        raise RunDirError(f"{out.parent}: no such folder for the comparison page")
    try:
        mode = os.lstat(out).st_mode
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise RunDirError(
            f"{out}: cannot be checked ({exc.strerror or exc}); {_NEW_NAME}"
        ) from None
    if stat.S_ISLNK(mode):
        raise RunDirError(
            f"{out} is a symbolic link; {_NEW_NAME} (the link and its target are left as they are)"
        )
    if stat.S_ISDIR(mode):
        raise RunDirError(f"{out} is a folder; give --out a file name such as compare.html")
    if not stat.S_ISREG(mode):
        raise RunDirError(
            f"{out} is not a regular file (a device, a pipe or a socket); {_NEW_NAME}"
        )
    if not _written_here(out):
        raise RunDirError(
            f"{out} exists and was not written by `foliosim runs compare`; {_NEW_NAME}, or "
            "move that file away first (it is left as it is)"
        )
    return True


def _written_here(path: Path) -> bool:
    """Whether the regular file at ``path`` carries :data:`MARKER` near its top (read without
    following a link or blocking on a pipe put there meanwhile)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return False
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            return False
        head = handle.read(_MARKER_SPAN)
    return MARKER.encode("ascii") in head


def _marked(page: str) -> str:
    """``page`` with :data:`MARKER` as its second line (after the doctype)."""
    first, newline, rest = page.partition("\n")
    if first.lower().startswith("<!doctype"):
        return f"{first}\n{MARKER}\n{rest}" if newline else f"{first}\n{MARKER}\n"
    return f"{MARKER}\n{page}"


def _write_page(out: Path, text: str) -> None:
    """Write ``text`` to ``out`` atomically: to a temporary file in the same folder, then
    linked into place when ``out`` is new (which fails, never replaces, if a file appeared
    there meanwhile) or renamed over a page this command wrote (checked again just before).
    On any failure the temporary file is removed and ``out`` is left as it was."""
    try:
        fd, tmp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    except OSError as exc:
        raise RunDirError(
            f"cannot write {out}: {out.parent} does not take new files ({exc.strerror or exc}); "
            f"{_NEW_NAME} in another folder"
        ) from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        tmp.chmod(0o644)  # mkstemp makes the file private; a report is an ordinary file
        if check_compare_out(out):
            os.replace(tmp, out)
        else:
            _link_new(tmp, out)
    except FileExistsError:
        raise RunDirError(
            f"{out} appeared while the page was written (left as it is); {_NEW_NAME}"
        ) from None
    except OSError as exc:
        raise RunDirError(
            f"cannot write {out} ({exc.strerror or exc}); free some space or {_NEW_NAME}"
        ) from None
    finally:
        tmp.unlink(missing_ok=True)


def _link_new(tmp: Path, out: Path) -> None:
    """Put ``tmp`` at ``out``, which must not exist: a hard link (atomic, and it fails if
    ``out`` exists), or on a file system without hard links a rename after one more check."""
    try:
        os.link(tmp, out)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        if os.path.lexists(out):
            raise FileExistsError(errno.EEXIST, "exists", str(out)) from None
        os.replace(tmp, out)
