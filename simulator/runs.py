"""Runs side by side: a table of the run directories and sweeps in a folder, and a comparison
page.

:func:`list_runs` reads every run directory directly under a folder (a folder holding
``summary.json``; hidden leftovers of killed runs are skipped) through
:func:`simulator.summary.read_summary` and returns one JSON-ready row per run, with its key
figures; a run whose summary cannot be read is listed with its error instead of stopping the
list. A sweep directory (a folder holding ``sweep.json``, whatever its name: see
:mod:`simulator.sweep`) is listed too, as one row of kind ``sweep`` (:func:`sweep_row`): its
trials done of its total, read from the trials' own rows (``trials/<id>.json``, so a sweep
still running or killed is listed with what it finished), the median, lowest and highest
total return and the median Sharpe of its finished trials, the share of them beating 1/N,
and its report (``sweep.html``) when written. A sweep whose ``sweep.json`` is damaged (not
JSON, or not the shape a sweep writes) is listed all the same, from its trials' rows, with its
trial count unknown and a ``note`` saying so. :func:`table_cells` formats a row for a
terminal table.

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

A sweep given to :func:`compare_runs` stands in the comparison as its **median trial**
(:func:`median_trial`): of its finished trials, the one whose total return ranks in the
middle (the lower of the two middle ones for an even count; ties by trial id). That is a
real run, so its figures and its curve agree with each other, and it is not chosen for
its luck, as the best trial would be. Rows below the metrics give every sweep's spread:
trials finished, median and range of total return, and the share beating 1/N.
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import math
import os
import stat
import statistics
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simulator.bounded import FileRefused, read_bounded
from simulator.charts import runs_growth_figure
from simulator.errors import RunDirError
from simulator.htmlkit import esc, num, png, table
from simulator.metrics import SHORT_RUN_WEEKS
from simulator.report import standalone_page
from simulator.rundir import read_returns
from simulator.summary import RunSummary, read_summary
from simulator.sweep_files import (
    DONE,
    SWEEP_FILE,
    SWEEP_REPORT,
    TRIALS_DIR,
    finished_rows,
    trial_count,
)

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
#: The most of a sweep.json that is read (the config's text and the axes: kilobytes).
_SWEEP_FILE_LIMIT = 64 * 1024 * 1024


def run_dirs(folder: Path) -> list[Path]:
    """The run directories (holding summary.json) and sweep directories (holding sweep.json)
    directly under ``folder``, by name."""
    if not folder.is_dir():
        raise RunDirError(f"{folder}: no such folder; pass a folder of run directories (e.g. runs)")
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_dir()
        and not p.name.startswith(".")
        and ((p / "summary.json").is_file() or is_sweep(p))
    )


def is_sweep(path: Path) -> bool:
    """Whether ``path`` is a sweep directory: it holds sweep.json and no summary.json."""
    return (path / SWEEP_FILE).is_file() and not (path / "summary.json").exists()


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
    """:func:`run_row` of every run directory under ``folder``, :func:`sweep_row` of every
    sweep directory, by name (see the module docstring)."""
    return [sweep_row(p) if is_sweep(p) else run_row(p) for p in run_dirs(folder)]


# --- sweeps ------------------------------------------------------------------------------------


def _number(value: Any) -> float | None:
    """A finite number from a trial's row, else None (a row of JSON: null, text, NaN)."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else None


def _done(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The finished trials with a total return."""
    return [
        r for r in rows if r.get("status") == DONE and _number(r.get("total_return")) is not None
    ]


def _sweep_total(sweep_dir: Path) -> tuple[int | None, str | None]:
    """The trial count of a sweep's ``sweep.json``, or None and why it cannot be read."""
    try:
        doc = json.loads(read_bounded(sweep_dir / SWEEP_FILE, _SWEEP_FILE_LIMIT))
        return trial_count(doc.get("axes") if isinstance(doc, dict) else None), None
    except FileRefused as why:
        reason = why.reason
    except json.JSONDecodeError:
        reason = "not valid JSON"
    except UnicodeDecodeError:
        reason = "not UTF-8 text"
    except RecursionError:  # JSON nested thousands deep
        reason = "not valid JSON"
    except ValueError as err:  # valid JSON, but not what a sweep writes
        reason = str(err)
    except OSError as err:
        reason = err.strerror or str(err)
    return None, f"damaged {SWEEP_FILE} ({reason}): its trial count is unknown"


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def sweep_row(sweep_dir: Path) -> dict[str, Any]:
    """A sweep's row (fractions; see the module docstring): ``kind`` "sweep", its trials
    done of its total, the median, lowest and highest total return, the median Sharpe (None
    when the trials are short runs), the median 1/N and index returns and the share of
    finished trials whose total return beats 1/N's, over the finished trials; ``report``:
    "sweep.html" when that is a regular file in it, else None; ``note``: None, or why its
    sweep.json cannot be read (``trials_total`` is then None)."""
    name = sweep_dir.name
    total, note = _sweep_total(sweep_dir)
    rows = list(finished_rows(sweep_dir).values())
    done = _done(rows)
    strategy, benchmark = "", ""
    if done:  # the names of the first finished trial's run (they are the same in every trial)
        try:
            first = read_summary(sweep_dir / TRIALS_DIR / str(done[0]["id"]) / "summary.json")
            strategy, benchmark = first.strategy_name, first.benchmark_name
        except RunDirError:
            pass
    returns = [float(r["total_return"]) for r in done]
    weeks = [int(r["weeks"]) for r in done if _number(r.get("weeks")) is not None]
    short = bool(weeks) and statistics.median(weeks) < SHORT_RUN_WEEKS
    sharpes = [v for r in done if (v := _number(r.get("sharpe"))) is not None]
    versus = [
        (float(r["total_return"]), v)
        for r in done
        if (v := _number(r.get("equal_weight_total_return"))) is not None
    ]
    report = sweep_dir / SWEEP_REPORT
    return {
        "run": name,
        "path": str(sweep_dir),
        "kind": "sweep",
        "strategy": strategy,
        "benchmark": benchmark,
        "trials_total": total,
        "trials_done": len(done),
        "trials_failed": sum(r.get("status") != DONE for r in rows),
        "start": min((str(r["start"]) for r in done if r.get("start")), default=None),
        "end": max((str(r["end"]) for r in done if r.get("end")), default=None),
        "weeks": statistics.median(weeks) if weeks else None,
        "short": short,
        "median_return": _median(returns),
        "min_return": min(returns, default=None),
        "max_return": max(returns, default=None),
        "median_sharpe": None if short else _median(sharpes),
        "median_equal_weight_return": _median([v for _, v in versus]),
        "median_benchmark_return": _median(
            [v for r in done if (v := _number(r.get("benchmark_total_return"))) is not None]
        ),
        "share_beating_equal_weight": (
            sum(ret > ew for ret, ew in versus) / len(versus) if versus else None
        ),
        "report": SWEEP_REPORT if report.is_file() and not report.is_symlink() else None,
        "note": note,
    }


def median_trial(sweep_dir: Path) -> Path:
    """The run directory of a sweep's median trial: of its finished trials, the one whose
    total return ranks in the middle (the lower of the two middle ones for an even count,
    ties by trial id).

    Raises
    ------
    RunDirError
        The sweep has no finished trial yet.
    """
    rows = finished_rows(sweep_dir).values()
    done = sorted(_done(list(rows)), key=lambda r: (r["total_return"], r["id"]))
    if not done:
        raise RunDirError(
            f"{sweep_dir}: a sweep with no finished trial yet; run it (the same `foliosim "
            "sweep` command resumes it), or compare run directories"
        )
    return sweep_dir / TRIALS_DIR / str(done[(len(done) - 1) // 2]["id"])


def _pct(value: float | None, *, sign: bool = False) -> str:
    return num(value, "+.2%" if sign else ".2%")


def table_cells(row: dict[str, Any]) -> list[str]:
    """``row`` as the plain-text cells of :data:`TABLE_COLUMNS` (an unreadable run: its error
    in the second cell; a sweep: :func:`sweep_cells`)."""
    if "error" in row:
        return [row["run"], f"unreadable: {row['error']}", *[""] * (len(TABLE_COLUMNS) - 2)]
    if row["kind"] == "sweep":
        return sweep_cells(row)
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


def sweep_cells(row: dict[str, Any]) -> list[str]:
    """A sweep's row as the cells of :data:`TABLE_COLUMNS`: its trials in the weeks column,
    its figures as medians over its finished trials, the share beating 1/N last (a damaged
    sweep.json: an unknown total, and the note after the trials)."""
    total = "?" if row["trials_total"] is None else row["trials_total"]
    trials = f"{row['trials_done']}/{total} trials"
    if row["trials_failed"]:
        trials += f", {row['trials_failed']} failed"
    if row.get("note"):
        trials += f", damaged {SWEEP_FILE}"
    period = f"{row['start']} .. {row['end']}" if row["start"] else "no trial done yet"
    share = row["share_beating_equal_weight"]
    median = row["median_return"]
    return [
        row["run"],
        f"{row['strategy'] or '?'} (sweep)",
        period,
        trials,
        "" if median is None else f"{_pct(median, sign=True)} median",
        "",
        "" if row["median_sharpe"] is None else f"{num(row['median_sharpe'], '.3f')} median",
        "",
        "" if share is None else f"{share:.0%} of trials beat 1/N",
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


def _compared(path: Path) -> tuple[Path, dict[str, Any] | None]:
    """The run directory that stands for ``path`` in a comparison, and the sweep's row when
    ``path`` is a sweep (its median trial stands for it)."""
    if is_sweep(path):
        sweep = sweep_row(path)
        if sweep["note"]:  # its trial count unknown: the sweep's spread cannot be told
            raise RunDirError(f"{path}: {sweep['note']}; compare its trials' run directories")
        return median_trial(path), sweep
    if not (path / "summary.json").is_file():
        raise RunDirError(
            f"{path}: not a run directory (no summary.json) nor a sweep (no sweep.json); pass "
            "folders that `foliosim backtest`, `foliosim replay status --html` or `foliosim "
            "sweep` wrote"
        )
    return path, None


def _sweep_rows(sweeps: Sequence[dict[str, Any] | None]) -> list[list[str]]:
    """The rows of a comparison with a sweep: its spread over its finished trials (empty
    cells for a run)."""

    def row(label: str, cell: Any) -> list[str]:
        return [esc(label), *("" if s is None else cell(s) for s in sweeps)]

    return [
        row("sweep: trials finished", lambda s: f"{s['trials_done']} of {s['trials_total']}"),
        row("sweep: median total return", lambda s: num(s["median_return"], "+.2%")),
        row(
            "sweep: total return range",
            lambda s: f"{num(s['min_return'], '+.2%')} to {num(s['max_return'], '+.2%')}",
        ),
        row("sweep: median Sharpe ratio", lambda s: num(s["median_sharpe"], ".3f")),
        row("sweep: share beating 1/N", lambda s: num(s["share_beating_equal_weight"], ".0%")),
    ]


def default_compare_path(runs: Sequence[Path]) -> Path:
    """``<the first run's folder>/compare-<local time>.html``."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return runs[0].parent / f"compare-{stamp}.html"


def compare_runs(runs: Sequence[Path], out: Path) -> Path:
    """Write the comparison page of ``runs`` (two or more run or sweep directories; a sweep
    stands as its median trial, see the module docstring) to ``out``.

    The page holds the metrics side by side (:func:`_metric_rows`) and the growth of 1 of each
    run's strategy on one chart. ``out`` must be new or a page this command wrote before
    (:func:`check_compare_out`, checked before any work and again before the page is put in
    place); the page is written to a temporary file beside ``out`` and moved into place.

    Raises
    ------
    RunDirError
        Fewer than two runs, a run named twice, an ``out`` refused by
        :func:`check_compare_out`, a run directory without a readable summary.json or
        returns.csv, a sweep with no finished trial, or the page could not be written
        (``out`` is then left as it was).
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
    sweeps: list[dict[str, Any] | None] = []
    for i, (given, label) in enumerate(zip(runs, labels, strict=True)):
        path, sweep = _compared(Path(given))
        if sweep is not None:
            labels[i] = label = f"{label} (median trial {path.name})"
        summary = read_summary(path / "summary.json")
        returns = read_returns(path / "returns.csv", ["strategy"])
        summaries.append(summary)
        sweeps.append(sweep)
        curves[f"{label}: {summary.strategy_name}"] = returns["strategy"]
    head = ["metric", *labels]
    rows = _metric_rows(summaries)
    if any(sweeps):
        rows += _sweep_rows(sweeps)
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
    if any(sweeps):
        notes.append(
            "A sweep stands here as its median trial: of its finished trials, the one whose "
            "total return ranks in the middle (the lower middle one for an even count), a real "
            "run whose figures and curve agree; not its best trial, which is picked by luck. "
            "The rows named 'sweep:' give the spread over all its finished trials."
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
{table(head, rows, "compare")}
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
