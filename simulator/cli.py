"""The ``foliosim`` command line.

User errors (bad config, bad data, no network) print one line ``error: ...`` on stderr and
exit with status 2; nothing half-written is left behind.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import os
import shlex
import sys
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from models.names import TICKER_RULE, bad_ticker
from models.spec import trained_before
from simulator.cli_replay import replay_app
from simulator.clikit import (
    Reporter,
    SetOption,
    check_returns_vary,
    console,
    err_console,
    parse_day,
    print_json,
    runnable,
)
from simulator.config import Config, load_config
from simulator.errors import ConfigError, FoliosimError
from simulator.leftovers import QS_TEMP, clean, clean_run_leftovers, system_temp
from simulator.workspace import workspace_dir, writable_workspace

if TYPE_CHECKING:
    from models.registry import Registry
    from simulator.lookahead import RuleCheck
    from simulator.summary import RunSummary, StressFacts
    from simulator.sweep import Trial

app = typer.Typer(
    add_completion=False,
    # Plain help: Rich markup would eat "[profile]" in help strings and print <bool> for flags.
    rich_markup_mode=None,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="foliosim: an honest weekly backtester for LSTM-signal portfolios.",
)
data_app = typer.Typer(
    no_args_is_help=True, rich_markup_mode=None, help="Manage price data in the workspace cache."
)
app.add_typer(data_app, name="data")
models_app = typer.Typer(
    no_args_is_help=True, rich_markup_mode=None, help="Browse and use the model registry."
)
app.add_typer(models_app, name="models")
app.add_typer(replay_app, name="replay")
runs_app = typer.Typer(
    no_args_is_help=True, rich_markup_mode=None, help="Run directories side by side."
)
app.add_typer(runs_app, name="runs")

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
RegistryOption = Annotated[
    str | None,
    typer.Option(
        "--registry-uri",
        metavar="URI",
        help="MLflow tracking URI of the registry (default: the workspace's embedded store).",
    ),
]
OutOption = Annotated[
    Path | None,
    typer.Option(
        "--out", metavar="DIR", help="Run directory to create (default: runs/<name>-<time>)."
    ),
]


def print_table2(summary: RunSummary) -> None:
    """Print the returns-and-risk table of a run (the layout of the paper's Table 2), as the
    tear sheet shows it."""
    from simulator.report import format_table2, table2

    cells = format_table2(table2(summary))
    title = f"returns and risk, {summary.start} .. {summary.end}, {summary.weeks} weeks"
    table = Table(title=title)
    table.add_column("")
    for col in cells.columns:
        table.add_column(str(col), justify="right")
    for row_name, row in cells.iterrows():
        table.add_row(str(row_name), *row.tolist())
    console.print(table)


def _run(cfg: Config, out: Path | None) -> Path:
    from simulator.backtest import run_backtest
    from simulator.report import write_run
    from simulator.rundir import check_out_dir, default_run_dir
    from simulator.session import Session

    session = Session.open(cfg, workspace_dir())  # a broken user rule fails here, before work
    plan = session.plan
    target = out or default_run_dir(plan.name)
    check_out_dir(target)  # fail before the work, not after
    clean_run_leftovers(target)
    if plan.strategy.uses_models or cfg.data.source == "yahoo":
        writable_workspace("a backtest that trains models or caches prices")

    with Reporter() as report:
        result = run_backtest(
            plan,
            workspace_dir(),
            progress=report.phase,
            train_progress=report.training,
            note=report.say,
        )
        check_returns_vary(result.returns["strategy"], cfg.backtest.cash)
        with report.step("tear sheet"):
            path = write_run(result, target)
    print_table2(result.summary)
    _print_lstm_facts(result.summary)
    if result.summary.orders_rejected:
        console.print(f"orders not filled: {result.summary.orders_rejected} (see orders.csv)")
    console.print(f"run directory: {path}", soft_wrap=True, markup=False, highlight=False)
    return path


def _print_lstm_facts(summary: RunSummary) -> None:
    """The models a run used, how well they forecast, and how sure its Sharpe ratio is."""
    for m in summary.models:
        how = "trained by this run" if m.trained_by_this_run else "reused from the registry"
        console.print(
            f"model {m.version}: trained up to {m.train_end}, decided "
            f"{m.decisions} week(s) from {m.first_decision} ({how})",
            markup=False,
            highlight=False,
        )
    prediction = summary.prediction
    if prediction is not None and prediction.scores:
        console.print(
            "the model's outputs are position scores (Sharpe loss), not forecasts: no forecast "
            "error against the naive forecast is given",
            markup=False,
        )
    elif prediction is not None:
        ratio = prediction.mse_ratio
        verdict = "beat" if ratio is not None and ratio < 1 else "did not beat"
        console.print(
            f"forecasts over the traded weeks {verdict} the naive forecast "
            f"(MSE ratio {_fmt(ratio, '.3f')}, below 1 is better)",
            markup=False,
        )
    if summary.short:  # a few weeks: no probabilistic Sharpe ratio to speak of
        return
    confidence = summary.confidence
    parts = []
    beats = [("over_equal_weight", "beats 1/N")]
    beats += [(f"over_{b}", f"beats {b}") for b in summary.baselines]
    for key, label in [("strategy", "Sharpe > 0"), *beats]:
        c = confidence.get(key)
        if c is not None and c.psr is not None:
            parts.append(f"P({label}) = {c.psr:.0%}")
    if parts:
        weeks = summary.weeks
        console.print(f"probabilistic Sharpe over {weeks} weeks: {', '.join(parts)}", markup=False)


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
    from simulator.report import write_tearsheet
    from simulator.rundir import check_run_dir
    from simulator.summary import read_summary

    check_run_dir(run_dir)
    clean(system_temp(), QS_TEMP)
    with err_console.status("writing the tear sheet"):
        path = write_tearsheet(run_dir)
    print_table2(read_summary(run_dir / "summary.json"))
    console.print(f"tear sheet: {path}", soft_wrap=True, markup=False, highlight=False)


def _process_start() -> float:
    """The :func:`time.perf_counter` reading when this process started (read from /proc on
    Linux; elsewhere, now): a long command's clock, so that its "in X s" agrees with `time`."""
    now = time.perf_counter()
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        age = uptime - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return now
    return now - min(max(age, 0.0), 3600.0)  # a clock reset cannot make it absurd


class _SweepLog:
    """What ``foliosim sweep`` says on stderr as it works (a :class:`simulator.sweep.
    SweepProgress`): where the sweep lives and what was done before, its phases, one line per
    trial as it ends, each on the sweep's own clock (from the command's start), and a bar on a
    terminal."""

    def __init__(self, report: Reporter, clock: float, axes: str) -> None:
        self.report = report
        self.clock = clock
        self.axes = axes
        self.bar: Callable[[int, int], None] | None = None
        self.counts = (0, 0)  # trials done before, and all of them

    def elapsed(self) -> float:
        return time.perf_counter() - self.clock

    def started(
        self, out: Path, total: int, done_before: int, resumed: bool, stale: int, changed: str
    ) -> None:
        self.counts = (done_before - stale, total)
        if not resumed:
            self.report.say(
                f"sweep {out}: {total:,} trials ({self.axes}); if it stops, the same command "
                "resumes it"
            )
        elif done_before >= total and not stale:
            self.report.say(f"sweep {out}: all {total:,} trials were done before")
        else:
            rerun = f", {stale:,} of them stale ({changed}): rerunning them" if stale else ""
            self.report.say(
                f"sweep {out}: resuming, {done_before:,} of {total:,} trials done before"
                f"{rerun}{'; ' if stale else ', '}{total - done_before + stale:,} to run"
            )

    def step(self, name: str) -> contextlib.AbstractContextManager[None]:
        return self.report.step(name)

    def trials(self, to_run: int, cpus: int, trains_models: bool) -> None:
        trains = (
            "; each trial trains the models it needs in its worker (a model several trials "
            "need is trained once), so the first trials end after their training"
            if trains_models
            else ""
        )
        self.report.say(f"trials: {to_run:,} to run, {cpus} at a time{trains}")
        if self.report.terminal:
            self.bar = self.report.phase("trials", unit="trials")
            self.bar(*self.counts)  # the bar's total from its start

    def waiting(self, done: int, total: int, in_flight: int) -> None:
        if not self.report.terminal:  # a terminal's bar has its own clock
            self.report.say(
                f"trials: {done} of {total} ended at {self.elapsed():.1f} s, {in_flight} "
                "submitted (running or waiting for a CPU)"
            )

    def finished(
        self, trial: Trial, row: dict[str, Any], done: int, total: int, running: int, failed: int
    ) -> None:
        at = f"at {self.elapsed():.1f} s ({done}/{total}, {failed} failed)"
        if row["status"] == "retry":
            line = f"trial {trial.id} stopped {at}, retried on resume: {row['error']}"
        elif row["status"] == "failed":
            line = f"trial {trial.id} failed {at}: {trial.label}: {row['error']}"
        else:
            line = (
                f"trial {trial.id} done {at}: {trial.label}: total return "
                f"{_fmt(row.get('total_return'), '.2%')}, Sharpe {_fmt(row.get('sharpe'), '.2f')}"
            )
        self.report.say(line)
        if self.bar is not None:
            self.bar(done, total)  # after the line: the bar ends with the last trial


@app.command()
def sweep(
    config: Annotated[Path, typer.Argument(help="TOML config file.")],
    seeds: Annotated[
        str | None,
        typer.Option("--seeds", metavar="0-9", help="Model seeds: a range 0-9 or a list 0,3,7."),
    ] = None,
    grid: Annotated[
        list[str] | None,
        typer.Option(
            "--grid",
            metavar="SECTION.KEY=A,B",
            help="Values of one config field to cross with the others (repeatable).",
        ),
    ] = None,
    periods: Annotated[
        str | None,
        typer.Option(
            "--periods",
            metavar="YEARS|START:END",
            help="Test periods: calendar years 2019,2020 or START:END ranges, comma-separated.",
        ),
    ] = None,
    address: Annotated[
        str | None,
        typer.Option(
            "--address",
            metavar="auto|ray://HOST:PORT",
            help="A running Ray cluster (default: a local Ray runtime for this sweep).",
        ),
    ] = None,
    cpus: Annotated[
        int | None,
        typer.Option("--cpus", min=1, help="CPUs of the local Ray runtime (default: all)."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            metavar="DIR",
            help="Sweep directory (default: runs/sweep-<config>-<digest of the config, --set "
            "and the axes>); run the same command again to resume it.",
        ),
    ] = None,
    set_: SetOption = None,
) -> None:
    """Run many trials of CONFIG (seeds x grid x periods) on Ray; write sweep.csv and
    sweep.html with how sure the result is (share beating 1/N, deflated Sharpe, PBO).

    To resume a stopped sweep, run the same command again: its directory is named after the
    config, the --set overrides and the axes (or is the --out given), and only the trials
    without a result run; trials stopped by a full disk, memory or a dead worker run again.

    After a sweep is killed (kill -9), the processes of its local Ray runtime (raylet,
    gcs_server, workers) may linger for a minute or two. They are harmless: the next sweep
    starts a runtime of its own. `ray stop` ends them at once, and every other Ray process of
    this user on the machine, a `ray start` cluster's included.
    """
    clock = _process_start()  # the sweep's own clock: from the command's start
    from simulator import sweep as sweeps
    from simulator.sweep_report import sweep_stats

    axes = sweeps.Axes(
        seeds=sweeps.parse_seeds(seeds) if seeds is not None else (),
        grid=sweeps.parse_grid(grid or []),
        periods=sweeps.parse_periods(periods) if periods is not None else (),
    )
    load_config(config, set_ or [])  # a bad config or --set fails before Ray starts
    target = out or sweeps.default_out(config, set_ or [], axes)
    workspace = writable_workspace("a sweep")
    with Reporter() as report:
        log = _SweepLog(report, clock, axes.describe())
        result = sweeps.run_sweep(
            config,
            target,
            axes,
            workspace,
            base=set_ or [],
            address=address,
            cpus=cpus,
            command=shlex.join(["foliosim", *sys.argv[1:]]),
            progress=log,
        )
        ran, total = len(result.ran), len(result.table)
        before = f", {total - ran:,} were done before" if ran < total else ""
        trials = f"{ran:,} trial{'s' * (ran != 1)}"
        report.say(f"sweep: {trials} in {log.elapsed():.1f} s{before}")
    stats = sweep_stats(result.table)
    table = Table(title=f"sweep {target.name}: {stats.trials} trials, {stats.failed} failed")
    columns = ("config", "trials", "median return", "median Sharpe", "1/N median", "beat 1/N",
               "P(beats 1/N)", "MSE / naive")  # fmt: skip
    for col in columns:
        table.add_column(col, justify="left" if col == "config" else "right")
    for _, r in stats.per_config.iterrows():
        table.add_row(
            str(r["config"]),
            str(r["trials"]),
            _fmt(r["median return"], ".1%"),
            _fmt(r["median Sharpe"], ".2f"),
            _fmt(r["1/N median return"], ".1%"),
            _fmt(r["share beating 1/N"], ".0%"),
            _fmt(r["median P(beats 1/N)"], ".0%"),
            _fmt(r["median MSE ratio"], ".3f"),
        )
    console.print(table)
    if stats.dsr is not None:
        console.print(
            f"deflated Sharpe ratio of the best trial ({stats.best_trial}): {stats.dsr:.1%}"
        )
    pbo_text = f"{stats.pbo:.1%}" if stats.pbo is not None else f"n/a ({stats.pbo_note})"
    console.print(f"probability of backtest overfitting: {pbo_text}", markup=False)
    ran = len(result.ran)
    console.print(f"ran {ran} trial(s) now, {stats.trials - ran} were done before", markup=False)
    console.print(f"sweep directory: {target}", soft_wrap=True, markup=False, highlight=False)


@app.command()
def audit(
    config: Annotated[Path, typer.Argument(help="TOML config file.")],
    variant: Annotated[
        list[str] | None,
        typer.Option(
            "--variant",
            metavar="NAME",
            help=(
                "honest, peek_next_close, train_through_test, scaler_full or "
                "early_stop_on_test (repeatable; default: all)."
            ),
        ),
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out",
            metavar="DIR",
            help=(
                "Folder that keeps each finished variant (default: runs/audit-<config>-<digest>"
                " of the config and --set); the same command resumes an interrupted audit."
            ),
        ),
    ] = None,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Run every variant again, ignoring kept ones.")
    ] = False,
    json_: JsonOption = False,
    set_: SetOption = None,
) -> None:
    """Run CONFIG honestly and with deliberate look-ahead leaks, side by side: how much
    would a leak inflate the result? Leaked results are marked LEAKED. Each finished variant
    is kept in the audit's folder: run the same command again to resume."""
    from simulator.audit_folder import VARIANTS, AuditFolder, check_variants, default_audit_dir
    from simulator.session import Session
    from simulator.summary import nan_to_none

    cfg = load_config(config, set_ or [])
    chosen = check_variants(variant or VARIANTS)
    session = Session.open(cfg, workspace_dir())  # a broken user rule fails here, before work
    if session.plan.strategy.uses_models or cfg.data.source == "yahoo":
        writable_workspace("an audit that trains models or caches prices")
    folder = AuditFolder.open(out_dir or default_audit_dir(config, cfg))
    folder.lock()  # until the audit ends: a second audit of this folder stops here, in a line
    check: RuleCheck | None = None
    try:
        if fresh:
            folder.clear()
        with Reporter() as report:
            # Before the models' libraries load (seconds on a busy machine): a log speaks first.
            report.say(
                f"leak audit of {config.name}: {len(chosen)} variant(s), each kept in "
                f"{folder.path} when it ends"
            )
            from simulator.audit import LEAKED, run_audit
            from simulator.lookahead import check_rule

            table, results = run_audit(
                session,
                workspace_dir(),
                chosen,
                folder=folder,
                progress=report.phase,
                train_progress=report.training,
                note=report.say,
            )
            before = int((table["note"] == "").sum()) - len(results)
            report.say(f"{len(results)} variant(s) run now, {before} were done before")
            if session.plan.strategy.user:  # a rule of the user's: the look-ahead check too
                check = check_rule(session, workspace_dir(), say=report.say)
    except KeyboardInterrupt:
        done = ", ".join(folder.kept) or "none yet"
        err_console.print(
            f"interrupted: finished variants kept in {folder.path} ({done}); run the same "
            "command to resume",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(130) from None
    finally:
        folder.unlock()
    if json_:
        doc: dict[str, Any] = {
            "variants": nan_to_none(table.to_dict("records")),
            "folder": str(folder.path),
        }
        if check is not None:
            doc["check_rule"] = check.to_dict()
        print_json(doc)
        if check is not None and not check.passed:
            raise typer.Exit(1)
        return
    out = Table(title=f"leak audit of {config.name}: rows marked {LEAKED} used the future")
    for col in ("variant", "total return", "Sharpe", "max drawdown", "1/N return", "index return"):
        out.add_column(col, justify="left" if col == "variant" else "right")
    for _, r in table.iterrows():
        label = f"{r['variant']} ({LEAKED})" if r["leaked"] else str(r["variant"])
        if r.get("note"):
            out.add_row(label, "n/a", "", "", "", str(r["note"]))
            continue
        out.add_row(
            label,
            _fmt(r["total_return"], ".1%"),
            _fmt(r["sharpe"], ".2f"),
            _fmt(r["max_drawdown"], ".1%"),
            _fmt(r["1/N total_return"], ".1%"),
            _fmt(r["index total_return"], ".1%"),
        )
    console.print(out)
    if cfg.report.reference == "paper2023":
        console.print(
            "the paper (seed 001, Table 2): LSTM 116.21% over the period, Sharpe 2.944",
            markup=False,
        )
    console.print(f"audit folder: {folder.path}", soft_wrap=True, markup=False, highlight=False)
    if check is not None:
        _print_rule_check(check)
        if not check.passed:
            raise typer.Exit(1)


@app.command("check-rule")
def check_rule_command(
    config: Annotated[Path, typer.Argument(help="TOML config file.")],
    weeks: Annotated[
        int,
        typer.Option(
            "--weeks", metavar="N", help="Decision weeks to re-run on cut data (default 6)."
        ),
    ] = 6,
    json_: JsonOption = False,
    set_: SetOption = None,
) -> None:
    """Check CONFIG's strategy for look-ahead: re-run it on data cut after N decision weeks
    and compare every decision with the full run's. Exit 1 names each decision that changed
    (it read the future); exit 0 when none did."""
    from simulator.lookahead import check_rule
    from simulator.session import Session

    cfg = load_config(config, set_ or [])
    session = Session.open(cfg, workspace_dir())
    if session.plan.strategy.uses_models or cfg.data.source == "yahoo":
        writable_workspace("a check of a rule on models or cached prices")
    with Reporter() as report:
        check = check_rule(session, workspace_dir(), weeks, say=report.say)
    if json_:
        print_json(check.to_dict())
    else:
        _print_rule_check(check)
    if not check.passed:
        raise typer.Exit(1)


def _print_rule_check(check: Any) -> None:
    first, last = check.cuts[0].date(), check.cuts[-1].date()
    head = (
        f"look-ahead check of {check.strategy}: {len(check.cuts)} cut(s) of the data "
        f"({first} .. {last}), {check.compared} decisions compared"
    )
    if check.passed:
        console.print(f"{head}: passed, no decision changed", markup=False, highlight=False)
        return
    console.print(f"{head}: FAILED, the rule read data after its week", markup=False)
    for change in check.changes:
        console.print(f"  changed: {change.line()}", markup=False, highlight=False)
    for cut, error in check.failures:
        console.print(
            f"  failed on the data cut after {cut.date()} (not on the full data): {error}",
            markup=False,
            highlight=False,
        )


@runs_app.command("list")
def runs_list(
    folder: Annotated[Path, typer.Argument(help="A folder of runs and sweeps.")] = Path("runs"),
    json_: JsonOption = False,
) -> None:
    """Every run directory and sweep in FOLDER with its key figures (a sweep: its trials done,
    medians over them, the share beating 1/N, and its report)."""
    from rich.text import Text

    from simulator.runs import TABLE_COLUMNS, list_runs, table_cells

    rows = list_runs(folder)
    if json_:
        print_json(rows)
        return
    if not rows:
        console.print(f"no run or sweep directories in {folder}", markup=False, highlight=False)
        return
    table = Table()
    for col in TABLE_COLUMNS:
        table.add_column(col)
    for row in rows:
        table.add_row(*(Text(c) for c in table_cells(row)))  # run names are not markup
    console.print(table)
    for row in rows:
        if row.get("report"):
            line = f"sweep report: {Path(row['path']) / row['report']}"
            console.print(line, soft_wrap=True, markup=False, highlight=False)


@runs_app.command("compare")
def runs_compare(
    runs: Annotated[
        list[Path],
        typer.Argument(help="Two or more run directories or sweeps (a sweep: its median trial)."),
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            metavar="FILE",
            help="HTML file (default: compare-<time>.html beside the first run).",
        ),
    ] = None,
) -> None:
    """Put two or more runs side by side in one HTML page: metrics and an equity chart.

    A sweep stands as its median trial (the finished trial whose total return ranks in the
    middle, not its best), with rows giving the spread over all its finished trials."""
    from simulator.runs import compare_runs, default_compare_path

    path = compare_runs(runs, out or default_compare_path(runs))
    console.print(f"comparison: {path}", soft_wrap=True, markup=False, highlight=False)


@app.command()
def analytics(
    config: Annotated[Path, typer.Argument(help="TOML config file.")],
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of", metavar="DATE", help="Last week (default: the newest complete week)."
        ),
    ] = None,
    window: Annotated[
        int, typer.Option("--window", metavar="WEEKS", help="Trailing weeks of returns.")
    ] = 52,
    json_: JsonOption = False,
    set_: SetOption = None,
) -> None:
    """Per-stock risk figures over a trailing window: annual return, volatility, max drawdown,
    Sortino, beta to the index, 95% VaR and CVaR (weekly), and a plain-words risk level."""
    import pandas as pd

    from simulator.analytics import analytics_json, data_analytics, risk_words
    from simulator.data.weekly import last_complete_week
    from simulator.session import load_weekly
    from simulator.tables import analytics_rows

    cfg = load_config(config, set_ or [])
    weekly = load_weekly(cfg, workspace_dir())
    for line in weekly.warnings:
        err_console.print(line, markup=False, highlight=False)
    day = pd.Timestamp(parse_day(as_of, "--as-of") if as_of else dt.date.today())
    week = last_complete_week(weekly.calendar, day)
    if week is None:
        raise FoliosimError(f"no complete week on or before {day.date()} in the data")
    frame = data_analytics(weekly, cfg.report.risk_free, week, window)
    if json_:
        print_json(analytics_json(frame, week, window))
        return
    table = Table(
        title=f"per-stock analytics, {window} weeks to {week.date()} (vs {cfg.data.benchmark})"
    )
    head, rows = analytics_rows(frame)
    for i, col in enumerate(head):
        table.add_column(col, justify="left" if i in (0, len(head) - 1) else "right")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    for ticker in frame.index:
        row = frame.loc[ticker].copy()
        row.name = ticker
        console.print(risk_words(row), markup=False, highlight=False)


@app.command()
def stress(
    config: Annotated[
        Path | None,
        typer.Argument(
            help="TOML config file: its strategy's allocation for next week, as recommend "
            "decides it."
        ),
    ] = None,
    run: Annotated[
        Path | None,
        typer.Option("--run", metavar="RUN_DIR", help="A run directory's positions instead."),
    ] = None,
    account: Annotated[
        str | None,
        typer.Option("--account", metavar="NAME", help="A paper account's holdings instead."),
    ] = None,
    weights_as_of: Annotated[
        str | None,
        typer.Option(
            "--weights-as-of",
            metavar="DATE",
            help="The weights of the last week on or before DATE (default: the newest).",
        ),
    ] = None,
    scenario: Annotated[
        list[str] | None,
        typer.Option(
            "--scenario",
            metavar="NAME|START:END",
            help="dotcom, gfc, downgrade_2011, covid, rates_2022, bench_down_X, gap_down_X, "
            "rates_up_Nbp or a window START:END (repeatable; default: every named one).",
        ),
    ] = None,
    json_: JsonOption = False,
    set_: SetOption = None,
) -> None:
    """Put a portfolio through past crises and hypothetical shocks: per scenario its return,
    worst week, largest fall and the three largest contributions (docs/stress.md)."""
    from simulator.stress import DEFAULT_SCENARIOS, stress_json
    from simulator.stress_inputs import stress_test

    facts = stress_test(
        workspace_dir(),
        config=config,
        run=run,
        account=account,
        scenarios=scenario or list(DEFAULT_SCENARIOS),
        as_of=parse_day(weights_as_of, "--weights-as-of") if weights_as_of else None,
        overrides=set_ or [],
    )
    if json_:
        print_json(stress_json(facts))
        return
    _print_stress(facts)


def _print_stress(facts: StressFacts) -> None:
    from simulator.stress import HELD_RULE
    from simulator.tables import STRESS_HEAD, stress_rows

    say = console.print
    table = Table(
        title=f"stress of {facts.source}: the weights at the close of {facts.as_of} (gross "
        f"{facts.gross:.0%}, net {facts.net:.0%}, cash {facts.cash:.0%})"
    )
    for i, col in enumerate(STRESS_HEAD):
        table.add_column(col, justify="right" if 1 < i < len(STRESS_HEAD) - 1 else "left")
    for row in stress_rows(facts):
        table.add_row(*row)
    console.print(table)
    say(f"held: {HELD_RULE}", markup=False, highlight=False)
    betas = {e.ticker: e.beta for e in facts.estimates}
    for s in facts.scenarios:
        if s.proxied:
            names = ", ".join(f"{t} (beta {betas[t]:.2f})" for t in s.proxied)
            say(
                f"{s.name}: * not listed by {s.base_week}, moved with {facts.benchmark}: {names}",
                markup=False,
                highlight=False,
            )
        if s.name.startswith("gap_down_") and s.available:
            say(f"{s.name}: {s.description}", markup=False, highlight=False)
    for note in facts.notes:
        say(f"note: {note}", markup=False, highlight=False)


@app.command()
def recommend(
    config: Annotated[Path, typer.Argument(help="TOML config file.")],
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile",
            metavar="NAME|FILE",
            help="conservative | moderate | aggressive, or a TOML file with a [profile] table "
            "(default: the config's [profile]).",
        ),
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            metavar="DATE",
            help="Decide at the close of this week (default: the newest "
            "complete week in the data).",
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model", metavar="REF", help="Use this registry version (NAME/N, NAME@ALIAS)."
        ),
    ] = None,
    json_: JsonOption = False,
    set_: SetOption = None,
) -> None:
    """Next week's allocation for a profile, with each position's risk in plain words."""
    from simulator.recommend import recommend as make

    cfg = load_config(config, set_ or [])
    day = parse_day(as_of, "--as-of") if as_of else None
    doc = make(cfg, workspace_dir(), profile, day, model).to_json()
    for line in doc.get("data_warnings", []):
        err_console.print(line, markup=False, highlight=False)
    if json_:
        print_json(doc)
        return
    _print_recommendation(doc)


def _print_recommendation(doc: dict[str, Any]) -> None:
    p = doc["profile"]
    by = (
        f" by {doc['model_version']} (trained up to {doc['model_train_end']})"
        if doc.get("model_version")
        else ""
    )
    say = console.print
    say(
        f"allocation for next week, decided at the close of {doc['as_of']}{by}; profile "
        f"{p['name']}: cap {p['max_weight']:.0%}, gross {p['gross']:.0%}, shorts "
        f"{'allowed' if p['allow_short'] else 'off'}",
        markup=False,
        highlight=False,
    )
    say(f"rule: {doc['rule']}", markup=False, highlight=False)
    table = Table()
    # The rule's score: the LSTM's predicted return, a user rule's own figure (none for 1/N).
    models = any("predicted_return" in pos for pos in doc["positions"])
    score = "predicted return" if models else "score"
    for col in ("ticker", "weight", score, "risk", "volatility", "max drawdown"):
        table.add_column(col, justify="left" if col in ("ticker", "risk") else "right")
    for pos in doc["positions"]:
        a = pos["analytics"]
        table.add_row(
            pos["ticker"],
            f"{pos['weight']:+.1%}",
            _fmt(pos["score"], "+.2%" if models else ".4g"),
            pos["risk"],
            _fmt(a["volatility"], ".0%"),
            _fmt(a["max_drawdown"], ".0%"),
        )
    console.print(table)
    for pos in doc["positions"]:
        say(pos["in_words"], markup=False, highlight=False)
    say(
        f"{doc['cash_note']}; this portfolio would have moved about "
        f"{doc['expected_volatility']:.0%} a year over the last 26 weeks",
        markup=False,
        highlight=False,
    )
    from strategies.risk import FIGURES, METHODS  # scipy: only for this command

    risk = doc["expected_risk"]
    figures = [
        f"{label} " + " / ".join(_fmt(risk[m][key], ".1%") for m in METHODS)
        for key, label in FIGURES.items()
    ]
    say(
        f"its weekly losses over the last {risk['weeks']} weeks at these weights "
        f"(historical / Gaussian / Cornish-Fisher): {', '.join(figures)}",
        markup=False,
        highlight=False,
    )
    reasons: dict[str, int] = {}
    for b in doc["bounds"]:
        reasons[b["reason"]] = reasons.get(b["reason"], 0) + 1
    if reasons:
        say("limits that bound: " + ", ".join(f"{r} ({n})" for r, n in reasons.items()))
        for b in doc["bounds"]:
            if b["reason"] != "excluded":
                who = f" {b['ticker']}" if b["ticker"] else ""
                say(f"  {b['reason']}{who}: {b['detail']}", markup=False)
    for note in doc["notes"]:
        say(f"note: {note}", markup=False)


@data_app.command("fetch")
def data_fetch(
    tickers: Annotated[
        str, typer.Option(metavar="A,B,C", help="Comma-separated symbols, e.g. AAPL,MSFT,IXIC.")
    ],
    start: Annotated[str, typer.Option(metavar="DATE", help="First day, YYYY-MM-DD.")],
    end: Annotated[str, typer.Option(metavar="DATE", help="Last day, YYYY-MM-DD.")],
) -> None:
    """Download daily prices from Yahoo into the workspace cache (needs a network)."""
    import pandas as pd

    from simulator.data.sources import fetch_yahoo

    first, last = parse_day(start, "--start"), parse_day(end, "--end")
    if last <= first:
        raise FoliosimError(f"--end {last} must be after --start {first}")
    names = [t.strip().upper().lstrip("^") for t in tickers.split(",") if t.strip()]
    if not names:
        raise FoliosimError("--tickers: give at least one symbol, e.g. --tickers AAPL,MSFT")
    bad = bad_ticker(names)
    if bad is not None:
        raise FoliosimError(f"--tickers: {bad!r} is not a ticker name: {TICKER_RULE}")
    workspace = writable_workspace("data fetch")
    with err_console.status(f"downloading {len(names)} symbol(s) from Yahoo"):
        paths = fetch_yahoo(names, pd.Timestamp(first), pd.Timestamp(last), workspace)
    for name, path in paths.items():
        console.print(f"{name}: {path}")


@app.command()
def explain(
    run_dir: Annotated[
        Path | None, typer.Argument(help="A run directory of a model strategy.")
    ] = None,
    week: Annotated[
        str, typer.Option("--week", metavar="DATE", help="A day of the decision week.")
    ] = "",
    account: Annotated[
        str | None, typer.Option("--account", metavar="NAME", help="A paper account instead.")
    ] = None,
    ticker: Annotated[
        str | None, typer.Option("--ticker", metavar="T", help="Only this ticker's trade.")
    ] = None,
    json_: JsonOption = False,
) -> None:
    """Why the strategy traded what it did in one week: each forecast behind the week's
    orders attributed to its input weeks (Integrated Gradients)."""
    from simulator.account_report import from_account
    from simulator.explain import explain_week, from_run

    if (run_dir is None) == (account is None):
        raise ConfigError("give a run directory or --account NAME (one of the two)")
    if not week:
        raise ConfigError("give the decision week with --week DATE (e.g. --week 2023-03-10)")
    day = parse_day(week, "--week")
    workspace = workspace_dir()
    with Reporter() as report:
        traded = from_run(run_dir, workspace) if run_dir else from_account(str(account), workspace)
        found = explain_week(traded, day, ticker)
        report.say(f"{len(found.tickers)} forecast(s) explained")
    if json_:
        print_json(found.to_json())
        return
    console.print(
        f"{found.label}, decision week {found.week.date()}: each forecast against a flat price "
        "history (next-week returns; bp = basis points, 0.01%)",
        markup=False,
        highlight=False,
    )
    for t in found.tickers:
        console.print(t.words(), markup=False, highlight=False, soft_wrap=True)


def _fmt(value: object, spec: str = ".4f") -> str:
    missing = value is None or (isinstance(value, float) and math.isnan(value))
    return "n/a" if missing else format(value, spec)


@app.command()
def train(
    config: Annotated[Path, typer.Argument(help="TOML config file with a [model] section.")],
    set_: SetOption = None,
) -> None:
    """Train the LSTM forecasters of CONFIG and register them as one new model version."""
    from simulator.training import train_from_config

    cfg = load_config(config, set_ or [])
    workspace = writable_workspace("train")
    with Reporter() as reporter:
        model, report, info = train_from_config(cfg, workspace, reporter.training)

    table = Table(title=f"{info.ref}: test weeks after {info.tags['train_end']} (weekly returns)")
    for col in ("ticker", "epochs (best)", "weeks", "MSE ratio", "RMSE", "naive RMSE", "hit rate"):
        table.add_column(col, justify="left" if col == "ticker" else "right")
    per = report.metrics.get("per_ticker", {})
    for ticker in model.tickers:
        fit = report.fits.get(ticker) or next(iter(report.fits.values()))
        m = per.get(ticker)
        cells = [ticker, f"{fit.epochs} ({fit.best_epoch})"]
        if m is None:
            cells += ["0", "n/a", "n/a", "n/a", "n/a"]
        else:
            cells += [
                str(m["n"]),
                _fmt(m["mse_ratio"]),
                _fmt(m["model"]["return"]["rmse"]),
                _fmt(m["naive"]["return"]["rmse"]),
                _fmt(m["model"]["return"]["hit_rate"], ".1%"),
            ]
        table.add_row(*cells)
    portfolio = report.metrics.get("portfolio")
    if portfolio is not None:  # the Sharpe loss: scores, not forecasts
        fit = next(iter(report.fits.values()))
        console.print(
            f"{info.ref}: one pooled network trained on the Sharpe loss, {fit.epochs} epochs "
            f"(best {fit.best_epoch}); its outputs are position scores, not forecasts, so no "
            "forecast error is given.",
            markup=False,
        )
        if portfolio["test_weeks"] >= 2:
            console.print(
                f"The portfolio they size ({portfolio['limits']}, no costs) over the "
                f"{portfolio['test_weeks']} test weeks after train_end: annualised Sharpe ratio "
                f"{_fmt(portfolio['test_sharpe'], '.2f')}.",
                markup=False,
            )
        else:
            console.print("No test weeks after train_end: extend data.end to score the model.")
        return
    console.print(table)
    overall = report.metrics.get("all") or {}
    if overall:
        ratio = overall["mse_ratio"]
        verdict = "beats" if ratio is not None and ratio < 1 else "does not beat"
        console.print(
            f"Over all tickers the model {verdict} the naive forecast "
            f"(MSE ratio {_fmt(ratio)}; below 1 is better than 'next close = last close')."
        )
    else:
        console.print("No test weeks after train_end: extend data.end to score the model.")
    registry = _registry(cfg.model.registry_uri)
    console.print(f"registered: {info.ref}", markup=False, highlight=False)
    console.print(f"files: {registry.artifact_dir(info)}", soft_wrap=True, markup=False)
    console.print(
        f"browse: {registry.ui_command(runnable('mlflow'))}", soft_wrap=True, markup=False
    )


def _registry(uri: str | None) -> Registry:
    from simulator.training import open_registry

    return open_registry(workspace_dir(), uri or "")


@models_app.command("list")
def models_list(json_: JsonOption = False, registry_uri: RegistryOption = None) -> None:
    """Registered models: versions, aliases, seeds, tickers, training window, test metrics."""
    registry = _registry(registry_uri)
    versions = registry.versions()
    if json_:
        print_json({"registry": registry.uri, "versions": [v.describe() for v in versions]})
        return
    if not versions:
        console.print("No registered models yet: run `foliosim train CONFIG`.")
        return
    table = Table()
    head = (
        "model",
        "aliases",
        "seed",
        "arch",
        "mode",
        "inputs, loss",
        "tickers",
        "train window",
        "test weeks",
        "MSE ratio",
    )
    for col in head:
        table.add_column(col)
    for v in versions:
        d = v.describe()
        tickers = ",".join(d["tickers"])
        table.add_row(
            v.ref,
            ",".join(d["aliases"]),
            "?" if d["seed"] is None else str(d["seed"]),
            str(d["arch"]),
            f"{d['mode']} {d['preset']}",
            f"{'+'.join(d['features'])}, {d['loss']}",
            tickers if len(tickers) <= 40 else f"{len(d['tickers'])} tickers",
            f"{d['train_start']}..{d['train_end']}",
            str(d["test_weeks"]),
            _fmt(d["test_mse_ratio"]),
        )
    console.print(table)
    console.print(
        f"browse: {registry.ui_command(runnable('mlflow'))}", soft_wrap=True, markup=False
    )


@models_app.command("show")
def models_show(
    ref: Annotated[str, typer.Argument(help="NAME, NAME/VERSION or NAME@ALIAS.")],
    json_: JsonOption = False,
    registry_uri: RegistryOption = None,
) -> None:
    """One version's model card, config, metrics and lineage."""
    from models.artifacts import read_config, read_metrics
    from models.errors import IntegrityError, RegistryError

    registry = _registry(registry_uri)
    info = registry.resolve(ref)
    folder = registry.artifact_dir(info)
    try:
        # Every check predict makes (schema, config.json and scaler.json digests, weights
        # digests, feature spec, scalers, weight files), and metrics.json's layout.
        registry.load(info)
        config = read_config(folder)
        metrics = read_metrics(folder)
    except IntegrityError as err:
        raise RegistryError(f"{info.ref} fails its integrity check: {err}") from None
    integrity = "ok"
    doc = {
        **info.describe(),
        "artifact_dir": str(folder),
        "integrity": integrity,
        "metrics": metrics["test"],
        "training": {
            k: {key: v[key] for key in ("epochs", "best_epoch", "best_val_loss", "stop_reason")}
            for k, v in metrics["training"].items()
        },
        "config": {k: config[k] for k in ("spec", "feature_spec", "networks")},
        "lineage": {
            "run_id": info.run_id,
            "model_id": info.model_id,
            "data_fingerprint": config["data_fingerprint"],
            "spec_sha256": info.tags.get("spec_sha256"),
            "code_version": config["code_version"],
            "created": config["created"],
            "source_config": config["source_config"],
            "registry": registry.uri,
        },
    }
    if json_:
        print_json(doc)
        return
    console.print((folder / "model_card.md").read_text(encoding="utf-8"), markup=False)
    lines = [
        f"version: {info.ref}  aliases: {', '.join(info.aliases) or '-'}  seed: {doc['seed']}",
        f"files: {folder}",
        f"weights_sha256: {doc['weights_sha256']}  integrity: {integrity}",
        f"run: {info.run_id}  logged model: {info.model_id}",
        f"code: {config['code_version']}  created: {config['created']}",
    ]
    for line in lines:
        console.print(line, soft_wrap=True, markup=False, highlight=False)


@models_app.command("alias")
def models_alias(
    ref: Annotated[str, typer.Argument(help="NAME/VERSION to point the alias at.")],
    alias: Annotated[str, typer.Argument(help="Alias name, e.g. prod.")],
    registry_uri: RegistryOption = None,
) -> None:
    """Point NAME@ALIAS at a version."""
    from models.registry import parse_ref

    name, version, _ = parse_ref(ref)
    if version is None:
        raise FoliosimError(f"{ref!r}: give an explicit version, e.g. {name}/1")
    info = _registry(registry_uri).set_alias(name, version, alias)
    console.print(f"{name}@{alias} -> {info.ref}", markup=False, highlight=False)


@models_app.command("predict")
def models_predict(
    ref: Annotated[str, typer.Argument(help="NAME, NAME/VERSION or NAME@ALIAS.")],
    as_of: Annotated[
        str, typer.Option("--as-of", metavar="DATE", help="Decision date, YYYY-MM-DD.")
    ],
    config: Annotated[
        Path | None,
        typer.Option(
            help="Config whose [data] to use (default: the one the model was trained on)."
        ),
    ] = None,
    set_: SetOption = None,
    json_: JsonOption = False,
    registry_uri: RegistryOption = None,
) -> None:
    """Predicted next-week return per ticker from data up to --as-of (a bare NAME: the newest
    version trained before --as-of)."""
    import math

    import pandas as pd

    from models.artifacts import read_config
    from models.registry import VersionInfo, parse_ref
    from simulator.config import config_from_dict
    from simulator.data.weekly import last_complete_week
    from simulator.features import feature_panels
    from simulator.training import model_weekly

    day = parse_day(as_of, "--as-of")

    def pick(registry: Registry) -> VersionInfo:
        # A bare NAME means the newest version trained before --as-of, as a backtest picks;
        # NAME/V or NAME@ALIAS is used as given (with a warning if it saw later data).
        name, version, alias = parse_ref(ref)
        if version is None and alias is None:
            return registry.as_of(name, pd.Timestamp(day))
        return registry.resolve(ref)

    if config is not None:
        cfg = load_config(config, set_ or [])
        uri = registry_uri if registry_uri is not None else cfg.model.registry_uri
        registry = _registry(uri)
        info = pick(registry)
    else:
        registry = _registry(registry_uri)
        info = pick(registry)
        stored = read_config(registry.artifact_dir(info)).get("source_config") or {}
        cfg = (
            load_config(None, set_ or [])
            if not stored
            else config_from_dict(
                _with_overrides(stored, set_ or []), f"the config stored with {info.ref}"
            )
        )
    model = registry.load(info)
    tickers = list(cfg.data.tickers or model.tickers)
    model.check_tickers(tickers)
    if day <= cfg.data.start:
        raise FoliosimError(f"--as-of {day} is before the data's start {cfg.data.start}")
    # Load past the as-of date so the as-of week's real end is known, then keep only weeks
    # complete at --as-of: a week still in progress is never used.
    data = cfg.data.model_copy(
        update={"end": day + dt.timedelta(days=7), "tickers": tuple(tickers)}
    )
    weekly = model_weekly(data, workspace_dir(), model.spec.features, cfg.report.risk_free)
    closes = weekly.closes()
    week_end = last_complete_week(pd.DatetimeIndex(closes.index), pd.Timestamp(day))
    if week_end is None:
        raise FoliosimError(f"no complete week of data on or before --as-of {day}")
    table = model.forecast(closes.loc[:week_end], week_end, tickers, feature_panels(weekly))
    point_in_time = trained_before(model.train_end, pd.Timestamp(day))
    rows = {
        t: {
            "last_close": None if math.isnan(r.last_close) else r.last_close,
            "predicted_close": None if math.isnan(r.predicted_close) else r.predicted_close,
            "predicted_return": None if math.isnan(r.predicted_return) else r.predicted_return,
        }
        for t, r in table.iterrows()
    }
    week = pd.Timestamp(table["week"].iloc[0]).date().isoformat()
    if json_:
        print_json(
            {
                "name": info.name,
                "version": info.version,
                "as_of": day.isoformat(),
                "week": week,
                "train_end": model.train_end.date().isoformat(),
                "point_in_time": point_in_time,
                "predictions": rows,
            }
        )
        return
    out = Table(title=f"{info.ref}: next week after {week} (data up to {day})")
    for col in ("ticker", "last close", "predicted close", "predicted return"):
        out.add_column(col, justify="left" if col == "ticker" else "right")
    for t, row in rows.items():
        out.add_row(
            str(t),
            _fmt(row["last_close"], ".2f"),
            _fmt(row["predicted_close"], ".2f"),
            _fmt(row["predicted_return"], "+.2%"),
        )
    console.print(out)
    if not point_in_time:
        console.print(
            f"warning: {info.ref} was trained on data up to {model.train_end.date()}, not "
            f"before {day}: these predictions use information from after the as-of date."
        )


@app.command()
def serve(
    host: Annotated[
        str,
        typer.Option(
            "--host",
            metavar="ADDRESS",
            help="Address to listen on (default: this machine only; 0.0.0.0 opens it to the "
            "network).",
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="TCP port.")] = 8765,
    runs: Annotated[
        Path, typer.Option("--runs", metavar="DIR", help="The folder of run directories.")
    ] = Path("runs"),
    configs: Annotated[
        Path,
        typer.Option(
            "--configs",
            metavar="DIR",
            help="The folder whose .toml configs (and those one folder down) /recommend "
            "offers; a request picks only among them.",
        ),
    ] = Path(),
    time_limit: Annotated[
        float,
        typer.Option(
            "--time-limit",
            metavar="SECONDS",
            min=1,
            max=86_400,
            help="The longest a request may take, its decisions included (then 504).",
        ),
    ] = 120.0,
    schedule: Annotated[
        bool,
        typer.Option(
            "--schedule/--no-schedule",
            help="Step the accounts marked weekly after each week closes (New York time).",
        ),
    ] = True,
) -> None:
    """A local web app over the workspace: accounts, recommendations, models, runs, JSON API."""
    from simulator.web.app import bind
    from simulator.web.app import serve as run_server
    from simulator.web.security import TOKEN_VAR, server_token
    from simulator.web.site import Settings

    if not configs.is_dir():
        raise ConfigError(f"--configs {configs}: no such folder; give the folder of your configs")
    token, from_env = server_token()
    sock = bind(host, port)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    address = f"http://{shown}:{bound}/"
    settings = Settings(
        workspace=workspace_dir(),
        runs=runs,
        root=configs.absolute(),
        token=token,
        host=host,
        port=bound,
        schedule=schedule,
        time_limit=time_limit,
    )
    say = console.print
    say(f"foliosim serve: {address}", markup=False, highlight=False, soft_wrap=True)
    say(
        f"workspace: {settings.workspace}; runs: {runs}; configs: {configs}",
        markup=False,
        highlight=False,
    )
    if from_env:
        say(f"token: from {TOKEN_VAR}", markup=False, highlight=False)
    else:
        say(f"token: {token}", markup=False, highlight=False)
        say(f"open {address}#token={token} to step accounts from the browser", markup=False)
    if host in ("0.0.0.0", "::"):
        err_console.print(
            "warning: listening on every interface: anyone who can reach this machine can "
            "read the workspace (and step accounts with the token)",
            markup=False,
        )
    say("Ctrl-C stops the server", markup=False)
    run_server(settings, sock)


def _with_overrides(raw: dict[str, object], overrides: list[str]) -> dict[str, object]:
    from simulator.config import apply_overrides

    return apply_overrides(raw, overrides) if overrides else raw


def main() -> None:
    """Console-script entry point: one line and exit 2 for user errors.

    Usage errors (a missing argument, an unknown option) are click's: a usage line and exit 2.
    """
    # Before torch is imported: OpenMP threads that wait sleep instead of spinning, so that
    # multi-threaded training does not burn the cores other processes need (bench/contention.py).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        app()
    except FoliosimError as err:  # a model's errors (ModelError) included
        # One line, whatever the message holds (a parser's error may carry newlines).
        line = " ".join(str(err).split())
        err_console.print(f"error: {line}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
