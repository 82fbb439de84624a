"""``foliosim replay``: paper accounts stepped week by week (:mod:`simulator.accounts`,
:mod:`simulator.stepping`, :mod:`simulator.account_report`)."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

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
from simulator.errors import FoliosimError
from simulator.workspace import workspace_dir, writable_workspace

if TYPE_CHECKING:
    from simulator.accounts import Account, AccountStatus
    from simulator.stepping import WeekDone

replay_app = typer.Typer(
    rich_markup_mode=None,
    no_args_is_help=True,
    help="Paper trading: replay a strategy week by week in a persistent paper account.",
)

AccountOption = Annotated[
    str,
    typer.Option(
        "--account", metavar="NAME", help="The paper account's name (letters, digits, . _ -)."
    ),
]


def _money(value: float) -> str:
    return f"{value:,.2f}"


@replay_app.command("start")
def start(
    config: Annotated[Path, typer.Argument(help="TOML config file.")],
    account: AccountOption,
    from_: Annotated[
        str | None,
        typer.Option(
            "--from",
            metavar="DATE",
            help="First week: the week ending on or after this date (default: backtest.start).",
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            metavar="REF",
            help="Pin this registry version: NAME/N, NAME@ALIAS or @ALIAS (default: "
            "model.version, else the version a backtest would use first).",
        ),
    ] = None,
    allow_later_model: Annotated[
        bool,
        typer.Option(
            "--allow-later-model",
            help="Accept a model trained after the start week (look-ahead; status and report "
            "say so).",
        ),
    ] = False,
    schedule: Annotated[
        str,
        typer.Option(
            "--schedule",
            metavar="off|weekly",
            help="weekly: `foliosim serve` steps the account --live after each week closes "
            "(and retrains on model.retrain_every).",
        ),
    ] = "off",
    set_: SetOption = None,
) -> None:
    """Open a paper account: cash from CONFIG, one pinned model version, a start week."""
    from simulator.accounts import start as start_account
    from simulator.config import load_config

    cfg = load_config(config, set_ or [])
    begin = parse_day(from_, "--from") if from_ else None
    workspace = writable_workspace("replay start", "replay")
    with Reporter() as reporter:
        acct = start_account(
            workspace,
            account,
            cfg,
            source=str(config),
            from_date=begin,
            model=model,
            allow_later_model=allow_later_model,
            schedule=schedule,
            train_progress=reporter.training,
            note=reporter.say,
        )
    with acct:
        doc = acct.meta
        model_part = f", model {doc['model_version']}" if doc.get("model_version") else ""
        console.print(
            f"account {account}: {acct.config.backtest.strategy}{model_part}, cash "
            f"{_money(acct.config.backtest.cash)}, first week {doc['start_week']} "
            f"(fill {acct.config.backtest.fill})"
            + (f", schedule {acct.schedule}" if acct.schedule != "off" else ""),
            markup=False,
            highlight=False,
        )
        path = acct.journal.path
        console.print(f"journal: {path}", markup=False, highlight=False, soft_wrap=True)
        hint = f"{runnable('foliosim')} replay step --account {account}"
        console.print(f"next: {hint}", markup=False, highlight=False, soft_wrap=True)


def _warn(line: str) -> None:
    """A warning of the data check, on stderr."""
    err_console.print(line, markup=False, highlight=False, soft_wrap=True)


#: How an order that ended in a week is counted on its line, by status (OrderRow.status).
_ENDED = {
    "Completed": "filled",
    "Delisted": "closed out (data ended)",
    "Margin": "rejected (cash)",
    "NoBar": "not placed (no bar)",
}


def week_line(done: WeekDone) -> str:
    r"""The one line a step prints for a week: its close, equity and return, the orders that
    ended in it, and the decision taken at its close.

    >>> import pandas as pd
    >>> from strategies.rebalance import WeekRecord
    >>> from simulator.stepping import WeekDone
    >>> rec = WeekRecord(pd.Timestamp("2022-07-08"), 10_100_000.0, 1_000.0, {"AAPL": (10, 1.0)},
    ...                  {"AAPL": 0.5, "MSFT": -0.25, "NVDA": 0.0}, "lstm/3")
    >>> print(*week_line(WeekDone(2, rec, 10_000_000.0, "close", 1, 3)).split("; "), sep=";\n")
    week 2022-07-08 (1/3): equity 10,100,000.00 (+1.00%), 1 held;
    no orders;
    decided 1 long / 1 short, gross 75% (lstm/3)
    """
    rec = done.record
    ret = rec.value / done.previous_equity - 1
    counts: dict[str, int] = {}
    for o in rec.orders:
        what = _ENDED.get(o.status, o.status)
        counts[what] = counts.get(what, 0) + 1
    ended = ", ".join(f"{n} {what}" for what, n in counts.items())
    orders = f"orders {ended}" if ended else "no orders"
    weights = [w for w in rec.targets.values() if w]
    if not rec.targets:
        decided = "no decision"
    elif not weights:
        decided = "decided all cash"
    else:
        longs, shorts = sum(w > 0 for w in weights), sum(w < 0 for w in weights)
        gross = sum(abs(w) for w in weights)
        decided = f"decided {longs} long / {shorts} short, gross {gross:.0%}"
    by = f" ({rec.tag})" if rec.tag and weights else ""
    return (
        f"week {rec.week.date()} ({done.n}/{done.total}): equity {_money(rec.value)} "
        f"({ret:+.2%}), {len(rec.holdings)} held; {orders}; {decided}{by}"
    )


class StepConsole(Console):
    """Standard output of a step. When its reader goes away (``| head``), the step goes on:
    the console falls silent, and standard output is pointed at the null device so that later
    writes and the interpreter's flush at exit do not fail (rich's default exits at once)."""

    def __init__(self) -> None:
        super().__init__(width=None if sys.stdout.isatty() else 160)
        self.closed = False

    def on_broken_pipe(self) -> None:
        self.quiet = True
        self.closed = True
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, sys.stdout.fileno())
        finally:
            os.close(devnull)


@dataclass(frozen=True)
class WeekPrinter:
    """A step's ``on_week``: one line per week; with ``verbose``, the orders that ended in it,
    its cash and holdings and the target weights decided at its close under the line."""

    out: StepConsole
    verbose: bool

    def __call__(self, done: WeekDone) -> None:
        say = self.out.print
        say(week_line(done), markup=False, highlight=False, soft_wrap=True)
        if not self.verbose:
            return
        rec = done.record
        if rec.orders:
            table = Table(title=f"week {rec.week.date()}: orders", title_justify="left")
            for col in ("ticker", "side", "shares", "price", "value", "status", "decided"):
                right = col in ("shares", "price", "value")
                table.add_column(col, justify="right" if right else "left")
            for o in rec.orders:
                table.add_row(
                    o.ticker,
                    o.side,
                    f"{o.size:,.0f}" if o.size == o.size else "",
                    f"{o.price:,.2f}" if o.price == o.price else "",
                    f"{o.value:,.2f}" if o.value == o.value else "",
                    o.status,
                    str(o.date_submitted.date()) if o.date_submitted is not None else "",
                )
            say(table)
        held = ", ".join(f"{t} {s:,.0f}" for t, (s, _p) in sorted(rec.holdings.items()))
        targets = ", ".join(f"{t} {w:+.1%}" for t, w in sorted(rec.targets.items()) if w)
        when = "the next open" if done.fill == "next_open" else "this close (booked next week)"
        version = f" by {rec.tag}" if rec.tag else ""
        say(
            f"  cash {_money(rec.cash)}; holdings: {held or 'none'}\n"
            f"  decided at the close{version}: {targets or 'cash'}; fills at {when}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


@replay_app.command("step")
def step(
    account: AccountOption,
    weeks: Annotated[
        int | None,
        typer.Option("--weeks", metavar="N", min=1, help="Weeks to advance (default 1)."),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option("--until", metavar="DATE", help="Advance through every week up to this date."),
    ] = None,
    live: Annotated[
        bool,
        typer.Option(
            "--live",
            help="First download the newest daily prices from Yahoo (needs a network), then "
            "act on every completed week not yet recorded.",
        ),
    ] = False,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            "-v",
            help="Under each week's line: the orders that ended in it, cash, holdings and the "
            "target weights decided at its close.",
        ),
    ] = False,
) -> None:
    """Advance the account week by week; each week is recorded as soon as it closes.

    One line per week (details with -v). When standard output closes (a pipe into `head`),
    the step still records every week, then says so in one line on stderr.
    """
    from simulator.stepping import step as step_account

    if weeks is not None and until is not None:
        raise FoliosimError("give --weeks or --until, not both")
    stop = parse_day(until, "--until") if until else None
    count = weeks if weeks is not None else (None if (stop or live) else 1)
    workspace = writable_workspace("replay step", "replay")
    out = StepConsole()
    acct, processed = step_account(
        workspace,
        account,
        weeks=count,
        until=stop,
        live=live,
        on_week=WeekPrinter(out, verbose),
        note=_warn,
    )
    with acct:
        last = acct.journal.last()
    if processed.empty:
        where = f"last recorded week {last.week.date()}" if last else "no week recorded yet"
        line = f"account {account}: nothing to do ({where}; no later complete week in the data)"
    else:
        short = (
            f" (of {count} asked: no later complete week in the data)"
            if count is not None and len(processed) < count
            else ""
        )
        line = (
            f"account {account}: recorded {len(processed)} week(s), "
            f"{processed[0].date()}..{processed[-1].date()}{short}"
        )
    out.print(line, markup=False, highlight=False, soft_wrap=True)
    if out.closed:
        _warn(f"standard output was closed; the step went on: {line}")


@replay_app.command("status")
def status(
    account: AccountOption,
    json_: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
    html: Annotated[
        bool, typer.Option("--html", help="Write a tear sheet of the account so far.")
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            metavar="DIR",
            help="Run directory for --html (default: runs/replay-NAME-<time>).",
        ),
    ] = None,
) -> None:
    """Positions, weights, equity so far, last week, model version (or JSON / a tear sheet)."""
    from simulator.accounts import open_account
    from simulator.accounts import status as account_status

    with open_account(workspace_dir(), account) as acct:
        doc = account_status(acct)
        if json_:
            print_json(doc.model_dump(mode="json"))
        else:
            _print_status(doc)
        if html:
            _write_html(acct, out)


def _print_status(doc: AccountStatus) -> None:
    say = console.print
    model = f", model {doc.model_version} (trained up to {doc.model_train_end})"
    say(
        f"account {doc.account}: {doc.strategy}"
        f"{model if doc.model_version else ''}, fill {doc.fill}, schedule {doc.schedule}",
        markup=False,
        highlight=False,
    )
    if len(doc.models) > 1:
        later = ", ".join(f"{m.version} (trained up to {m.train_end})" for m in doc.models[1:])
        say(f"retrained: {later}", markup=False, highlight=False)
    if doc.look_ahead:
        say(
            f"warning: LOOK-AHEAD: the model was trained on data up to {doc.model_train_end}, "
            f"after the start week {doc.start_week} (--allow-later-model)",
            markup=False,
        )
    if not doc.last_week or doc.pending is None:
        say(f"no week recorded yet; first week {doc.start_week}", markup=False)
        return
    say(
        f"{doc.weeks_processed} week(s) {doc.start_week}..{doc.last_week}: equity "
        f"{_money(doc.equity)} ({doc.total_return:+.2%} on {_money(doc.start_cash)}), "
        f"cash {_money(doc.cash)}",
        markup=False,
        highlight=False,
    )
    if doc.positions:
        table = Table(title=f"positions at the close of {doc.last_week}", title_justify="left")
        for col in ("ticker", "shares", "weight"):
            table.add_column(col, justify="left" if col == "ticker" else "right")
        for t, shares in doc.positions.items():
            table.add_row(t, f"{shares:,.0f}", f"{doc.weights[t]:+.2%}")
        console.print(table)
    pending = doc.pending
    targets = ", ".join(f"{t} {w:+.1%}" for t, w in pending.targets.items()) or "all cash"
    say(
        f"decided at the close of {pending.decided}: {targets}; fills {pending.fills}",
        markup=False,
        highlight=False,
    )
    curve = doc.equity_curve
    table = Table(title="equity (last 12 weeks)", title_justify="left")
    for col in ("week", "equity", "week return"):
        table.add_column(col, justify="left" if col == "week" else "right")
    for i in range(max(0, len(curve) - 12), len(curve)):
        ret = curve[i].equity / curve[i - 1].equity - 1 if i else None
        table.add_row(
            curve[i].week, _money(curve[i].equity), f"{ret:+.2%}" if ret is not None else ""
        )
    console.print(table)


def _write_html(acct: Account, out: Path | None) -> None:
    from simulator.account_report import account_result
    from simulator.leftovers import clean_run_leftovers
    from simulator.report import write_run
    from simulator.rundir import check_out_dir, default_run_dir

    target = out or default_run_dir(f"replay-{acct.name}")
    check_out_dir(target)
    clean_run_leftovers(target)
    result = account_result(acct, workspace_dir())
    check_returns_vary(result.returns["strategy"], acct.config.backtest.cash)
    with err_console.status("writing the tear sheet"):
        path = write_run(result, target)
    console.print(f"tear sheet: {path / 'tearsheet.html'}", soft_wrap=True, markup=False)


@replay_app.command("list")
def list_(
    json_: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Every paper account of the workspace."""
    from simulator.accounts import UnreadableAccount, list_accounts

    rows = list_accounts(workspace_dir())
    if json_:
        print_json([r.model_dump(mode="json") for r in rows])
        return
    if not rows:
        console.print(f"no paper accounts in {workspace_dir() / 'replay'}", markup=False)
        return
    table = Table()
    for col in ("account", "strategy", "model", "weeks", "last week", "equity", "return"):
        table.add_column(col)
    for r in rows:
        if isinstance(r, UnreadableAccount):
            table.add_row(r.account, f"unreadable: {r.error}", "", "", "", "", "")
            continue
        table.add_row(
            r.account,
            r.strategy,
            r.model_version + (" (look-ahead)" if r.look_ahead else ""),
            str(r.weeks_processed),
            r.last_week or "",
            _money(r.equity),
            f"{r.total_return:+.2%}",
        )
    console.print(table)


@replay_app.command("schedule")
def schedule(
    account: AccountOption,
    when: Annotated[
        str, typer.Argument(metavar="off|weekly", help="weekly: stepped by `foliosim serve`.")
    ],
) -> None:
    """Mark an account as stepped by `foliosim serve` after each week closes, or not."""
    from simulator.accounts import set_schedule

    set_schedule(writable_workspace("replay schedule", "replay"), account, when)
    console.print(f"account {account}: schedule {when}", markup=False, highlight=False)


@replay_app.command("reset")
def reset(
    account: AccountOption,
    yes: Annotated[bool, typer.Option("--yes", help="Delete without asking.")] = False,
) -> None:
    """Delete a paper account and its whole journal (asks first)."""
    from simulator.accounts import describe, journal_path
    from simulator.accounts import reset as reset_account

    path = journal_path(workspace_dir(), account)
    if not path.exists():
        raise FoliosimError(f"no paper account {account!r} in {path.parent}")
    if not yes:
        if not sys.stdin.isatty():
            raise FoliosimError(
                f"reset deletes {describe(workspace_dir(), account)}; confirm with --yes"
            )
        if not typer.confirm(f"Delete {describe(workspace_dir(), account)}?", default=False):
            console.print("nothing deleted", markup=False)
            raise typer.Exit(1)
    reset_account(workspace_dir(), account)
    console.print(f"account {account} deleted", markup=False)
