"""Paper accounts (``foliosim replay``) on the real paper12 data: real runs, real journals.

- Replay equals backtest: an LSTM account pinned to the session's model and stepped in uneven
  chunks records exactly the weekly returns, orders and decisions of ``run_backtest`` (both fill
  modes); a 1/N account driven through the command line does the same, also under a profile
  whose CVaR limit scales exposure (its bounds journaled as the backtest's bounds.csv).
- Crashes: ``foliosim replay step --weeks 20`` in a real process, killed with SIGKILL at
  several points (after 0.5 s, after 3 and 9 weeks were seen in the journal, inside a week's
  transaction, just before its COMMIT), then resumed with ``--until``: the journal equals an
  uninterrupted account's, with no week lost or doubled.
- One writer: while the account's lock is held, a second step or reset fails with one line and
  the journal is untouched; status still reads.
- Damaged journals (random bytes, truncated, schema 99, a foreign SQLite file): one ``error:``
  line, exit 2, the file left byte for byte; ``reset --yes`` still deletes it.
- Look-ahead: a model trained after the start week is refused unless --allow-later-model, which
  status then reports.
- ``--live`` without a network, on a csv account, and with a fake Yahoo built from the paper12
  CSV files: only complete weeks are recorded.
- The command line's account life cycle, the tear sheet, and ``pending_weeks`` /
  ``new_york_today``.
- What a step prints: one line per week (every order status and decision kind on hand-made
  records; exact lines on paper12), the details with ``-v``; a real ``foliosim`` process
  whose stdout pipe is closed at once or after the first line records every week, exits 0
  and says so in one stderr line.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
import pytest

from simulator import account_report, accounts, cli_replay, stepping
from simulator.backtest import run_backtest
from simulator.config import Config, load_config
from simulator.data import load_daily, make_weekly
from simulator.errors import DataError, JournalError, NetworkError
from simulator.journal import Journal, locked
from simulator.workspace import workspace_dir
from strategies.rebalance import OrderRow, WeekRecord
from tests.conftest import PAPER12, PAPER_CONFIG, PAPER_FAST, REPO, PaperModel, require_paper12
from tests.helpers import (
    CSV,
    EQUAL,
    FIRST_WEEK,
    LAST_WEEK,
    advance,
    assert_journal_is_the_backtest,
    cli,
    error_line,
    ew_config,
    open_new,
    sets,
)

#: The last week of the 1/N account driven through the command line.
LAST_WEEK_OF_2022 = pd.Timestamp("2022-12-30")
#: How many weeks the crash tests step (``--weeks 20`` from FIRST_WEEK).
CRASH_WEEKS = 20


def lstm_config(paper_model: PaperModel, *extra: str) -> Config:
    return load_config(PAPER_CONFIG, [*PAPER_FAST, f"model.version={paper_model.ref}", *extra])


def journal_rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the weeks (less ``recorded_at``), holdings, targets and orders tables,
    read through a read-only connection, in key order."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {
            "weeks": con.execute(
                "SELECT seq, week, equity, cash, model_version FROM weeks ORDER BY seq"
            ).fetchall(),
            "holdings": con.execute("SELECT * FROM holdings ORDER BY seq, ticker").fetchall(),
            "targets": con.execute("SELECT * FROM targets ORDER BY seq, ticker").fetchall(),
            "orders": con.execute("SELECT * FROM orders ORDER BY seq, n").fetchall(),
        }
    finally:
        con.close()


def upto(rows: dict[str, list[tuple[Any, ...]]], seq: int) -> dict[str, list[tuple[Any, ...]]]:
    """``rows`` of the weeks 1..seq (every table's first column is ``seq``)."""
    return {table: [r for r in found if r[0] <= seq] for table, found in rows.items()}


def assert_whole_weeks(path: Path) -> int:
    """The journal opens, its seq is 1..n and its weeks strictly increase; returns n."""
    journal = Journal.open(path, "test")
    try:
        weeks = journal.weeks()
    finally:
        journal.close()
    assert weeks["seq"].tolist() == list(range(1, len(weeks) + 1))
    assert weeks["week"].is_monotonic_increasing and weeks["week"].is_unique
    return len(weeks)


def status_json(
    account: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> dict[str, Any]:
    assert cli(["replay", "status", "--account", account, "--json"], monkeypatch) == 0
    doc: dict[str, Any] = json.loads(capsys.readouterr().out)
    return doc


def flat(text: str) -> str:
    """``text`` with every run of white space (a console's line wraps) as one space."""
    return " ".join(text.split())


def foliosim(*argv: str) -> list[str]:
    """The command line of a real ``foliosim`` process."""
    return [sys.executable, "-m", "simulator.cli", *argv]


# --- 1. replay == backtest ------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("fill", ["close", "next_open"])
def test_lstm_account_stepped_in_chunks_equals_the_backtest(
    paper_model: PaperModel, fill: str
) -> None:
    workspace = paper_model.workspace
    cfg = lstm_config(paper_model, f"backtest.fill={fill}")
    result = run_backtest(cfg, workspace)
    assert result.returns.index[-1] == LAST_WEEK

    name = f"chunks-{fill}"
    open_new(workspace, name, cfg)
    done = [advance(workspace, name, weeks=n) for n in (1, 5, 2)]
    done.append(advance(workspace, name, weeks=None, until=LAST_WEEK.date()))
    assert [len(d) for d in done] == [1, 5, 2, 44]
    assert done[0][0] == FIRST_WEEK and done[-1][-1] == LAST_WEEK
    assert len(advance(workspace, name, weeks=None, until=LAST_WEEK.date())) == 0  # done

    with accounts.open_account(workspace, name) as account:
        assert account.model_version == paper_model.ref and not account.look_ahead
        journal = account.journal
        assert_journal_is_the_backtest(journal, result)
        assert (journal.weeks()["model_version"] == paper_model.ref).all()
        assert (journal.orders()["model_version"] == paper_model.ref).all()
        # Each decision with its forecasts, as the backtest's predictions hold them.
        targets = journal.targets()
        assert sorted(set(targets["week"])) == [FIRST_WEEK, *result.returns.index]
        targets = targets[targets["week"] < LAST_WEEK].reset_index(drop=True)
        assert result.predictions is not None
        predictions = result.predictions.sort_values(["week", "ticker"]).reset_index(drop=True)
        cols = ["week", "ticker", "weight", "predicted_return", "last_close", "predicted_close"]
        pd.testing.assert_frame_equal(
            targets[cols],
            predictions.rename(columns={"target": "weight"})[cols],
            check_exact=True,
            check_dtype=False,
        )


@pytest.mark.parametrize(
    "profile",
    [
        [],
        # A CVaR limit that binds: exposure scaled down in some weeks, journaled as bounds.
        ["profile.name=moderate", "profile.max_cvar_95=0.03"],
    ],
    ids=["no-profile", "cvar-limit"],
)
def test_equal_weight_account_through_the_cli_equals_the_backtest(
    profile: list[str],
    paper12: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    extra = ["backtest.fill=next_open", "backtest.end=2022-12-30", *profile]
    cfg = ew_config(*extra)
    result = run_backtest(cfg, workspace_dir())
    base = ["replay", "step", "--account", "ew"]
    start = ["replay", "start", str(PAPER_CONFIG), "--account", "ew", *sets([*EQUAL, *extra])]
    assert cli(start, monkeypatch) == 0
    out = capsys.readouterr().out
    assert "account ew: equal_weight, cash 10,000,000.00, first week 2022-07-01" in out
    assert "(fill next_open)" in out
    assert cli([*base, "--weeks", "2"], monkeypatch) == 0
    assert "account ew: recorded 2 week(s), 2022-07-01..2022-07-08\n" in capsys.readouterr().out
    assert cli(base, monkeypatch) == 0  # one week by default
    assert "account ew: recorded 1 week(s), 2022-07-15..2022-07-15\n" in capsys.readouterr().out
    assert cli([*base, "--until", "2022-12-30"], monkeypatch) == 0
    assert "..2022-12-30\n" in capsys.readouterr().out
    with accounts.open_account(workspace_dir(), "ew") as account:
        assert account.model_version == ""
        assert_journal_is_the_backtest(account.journal, result)
        assert (account.journal.weeks()["model_version"] == "").all()
        bounds = account.journal.bounds()
    if profile:
        # Every bound of the backtest, its figures to the last digit; the account's last week
        # decided too (the backtest's last week decides nothing).
        assert result.bounds is not None
        theirs = result.bounds
        assert (theirs["reason"] == "cvar_limit").sum() > 0
        mine = bounds[bounds["week"] < LAST_WEEK_OF_2022].reset_index(drop=True)
        pd.testing.assert_frame_equal(mine, theirs, check_dtype=False)
    else:
        assert bounds.empty


# --- 2. crashes -----------------------------------------------------------------------------

#: A fault injector for a real ``foliosim`` process: SIGKILL itself when the journal's
#: connection is about to run the statement starting with $KILL_BEFORE while week $KILL_WEEK
#: is being written (its INSERT INTO weeks ran). Only a trace callback is added to sqlite3.
KILLER = """
import os, signal, sqlite3, sys

week, before = int(os.environ["KILL_WEEK"]), os.environ["KILL_BEFORE"]
seen = 0
connect = sqlite3.connect


def traced(*args, **kwargs):
    conn = connect(*args, **kwargs)

    def trace(sql):
        global seen
        if sql.startswith("INSERT INTO weeks"):
            seen += 1
        if seen == week and sql.startswith(before):
            os.kill(os.getpid(), signal.SIGKILL)

    conn.set_trace_callback(trace)
    return conn


sqlite3.connect = traced
from simulator.cli import main

sys.argv = ["foliosim", *sys.argv[1:]]
main()
"""


def step_and_kill(
    workspace: Path,
    name: str,
    *,
    after_s: float | None = None,
    weeks_seen: int | None = None,
    inject: tuple[int, str] | None = None,
) -> int:
    """Run ``foliosim replay step --account NAME --weeks 20`` in a real process and kill it
    with SIGKILL: ``after_s`` seconds after its start, as soon as ``weeks_seen`` weeks are in
    the journal (polled read-only), or from inside via :data:`KILLER` (``inject``: week,
    statement). Returns the number of weeks the journal holds after the kill."""
    env = {**os.environ, "FOLIOSIM_WORKSPACE": str(workspace)}
    args = ["replay", "step", "--account", name, "--weeks", str(CRASH_WEEKS)]
    if inject is not None:
        env.update(KILL_WEEK=str(inject[0]), KILL_BEFORE=inject[1])
        argv = [sys.executable, "-c", KILLER, *args]
    else:
        argv = foliosim(*args)
    path = accounts.journal_path(workspace, name)
    proc = subprocess.Popen(
        argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        if after_s is not None:
            time.sleep(after_s)
        elif weeks_seen is not None:
            con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                deadline = time.monotonic() + 120
                while proc.poll() is None and time.monotonic() < deadline:
                    if con.execute("SELECT count(*) FROM weeks").fetchone()[0] >= weeks_seen:
                        break
                    time.sleep(0.001)
            finally:
                con.close()
        if inject is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the step ended before it was killed"
    return assert_whole_weeks(path)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[tuple[Any, ...]]]:
    """The journal rows of a 1/N account stepped ``--weeks 20`` in one go."""
    require_paper12()
    workspace = tmp_path_factory.mktemp("uninterrupted")
    path = open_new(workspace, "reference", ew_config())
    done = advance(workspace, "reference", weeks=CRASH_WEEKS)
    assert len(done) == CRASH_WEEKS and done[0] == FIRST_WEEK
    return journal_rows(path)


@pytest.mark.slow
@pytest.mark.parametrize(
    "kill",
    [
        {"after_s": 0.5},
        {"weeks_seen": 3},
        {"weeks_seen": 9},
        {"inject": (6, "INSERT INTO orders")},  # inside week 6's transaction
        {"inject": (14, "COMMIT")},  # week 14 written, not committed
    ],
    ids=["after-0.5s", "after-3-weeks", "after-9-weeks", "mid-transaction", "before-commit"],
)
def test_killed_step_resumes_to_the_uninterrupted_journal(
    paper12: Path,
    uninterrupted: dict[str, list[tuple[Any, ...]]],
    kill: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    workspace = workspace_dir()
    path = open_new(workspace, "crash", ew_config())
    kept = step_and_kill(workspace, "crash", **kill)
    assert kept < CRASH_WEEKS
    if "weeks_seen" in kill:
        assert kept >= kill["weeks_seen"]
    if "inject" in kill:
        assert kept == kill["inject"][0] - 1  # the week in flight is not recorded at all
    # What survived is exactly the first weeks of the uninterrupted account.
    assert journal_rows(path) == upto(uninterrupted, kept)

    final = uninterrupted["weeks"][-1][1]
    assert cli(["replay", "step", "--account", "crash", "--until", final], monkeypatch) == 0
    printed = capsys.readouterr().out
    assert f"account crash: recorded {CRASH_WEEKS - kept} week(s), " in printed
    assert printed.rstrip().endswith(f"..{final}")
    assert assert_whole_weeks(path) == CRASH_WEEKS
    assert journal_rows(path) == uninterrupted
    assert not [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.slow
def test_killed_lstm_step_resumes_to_the_uninterrupted_journal(paper_model: PaperModel) -> None:
    workspace = paper_model.workspace
    cfg = lstm_config(paper_model)
    reference = open_new(workspace, "crash-lstm-reference", cfg)
    done = advance(workspace, "crash-lstm-reference", weeks=CRASH_WEEKS)
    assert len(done) == CRASH_WEEKS
    expected = journal_rows(reference)
    path = open_new(workspace, "crash-lstm", cfg)
    kept = step_and_kill(workspace, "crash-lstm", weeks_seen=3)
    assert 3 <= kept < CRASH_WEEKS
    assert journal_rows(path) == upto(expected, kept)
    resumed = advance(workspace, "crash-lstm", weeks=None, until=done[-1].date())
    assert len(resumed) == CRASH_WEEKS - kept
    assert assert_whole_weeks(path) == CRASH_WEEKS
    assert journal_rows(path) == expected
    assert {r[4] for r in expected["weeks"]} == {paper_model.ref}


# --- 3. one writer --------------------------------------------------------------------------


def test_a_second_writer_fails_at_once_and_changes_nothing(
    paper12: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    workspace = workspace_dir()
    path = open_new(workspace, "busy", ew_config())
    advance(workspace, "busy", weeks=2)
    before = path.read_bytes()
    with locked(path, "account 'busy'"):
        proc = subprocess.run(
            foliosim("replay", "step", "--account", "busy", "--weeks", "3"),
            cwd=REPO,
            env=dict(os.environ),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, proc.stderr
        assert lines[0].startswith("error: another foliosim process is changing account 'busy'")
        assert f"(pid {os.getpid()})" in lines[0]  # the holder, written in the lock file
        assert "run the command again" in lines[0]
        assert proc.stdout == ""

        with pytest.raises(JournalError, match="another foliosim process"):
            stepping.step(workspace, "busy", weeks=1)
        assert cli(["replay", "reset", "--account", "busy", "--yes"], monkeypatch) == 2
        assert "another foliosim process" in error_line(capsys)
        # Reading is not changing: status works while the lock is held.
        assert status_json("busy", monkeypatch, capsys)["weeks_processed"] == 2
        assert path.read_bytes() == before
    assert path.read_bytes() == before
    assert len(advance(workspace, "busy", weeks=3)) == 3  # the lock is free again


# --- 4. damaged journals --------------------------------------------------------------------


def damage(kind: str, workspace: Path, name: str) -> Path:
    """An account file of ``kind``; real journals are written by a real account first."""
    path = accounts.journal_path(workspace, name)
    if kind == "random":
        path.parent.mkdir(parents=True)
        path.write_bytes(random.Random(7).randbytes(16384))
    elif kind == "foreign":
        path.parent.mkdir(parents=True)
        other = workspace / "other.db"
        con = sqlite3.connect(other)
        con.execute("CREATE TABLE weeks (seq INTEGER, week TEXT)")
        con.execute("INSERT INTO weeks VALUES (1, '2022-07-01')")
        con.commit()
        con.close()
        other.rename(path)
    else:
        open_new(workspace, name, ew_config())
        advance(workspace, name, weeks=12)
        if kind == "truncated":
            data = path.read_bytes()
            path.write_bytes(data[: len(data) // 2])
        else:
            con = sqlite3.connect(path)
            con.execute("PRAGMA user_version = 99")
            con.close()
    return path


@pytest.mark.parametrize(
    ("kind", "says"),
    [
        ("random", "is damaged or not a journal (file is not a database)"),
        ("truncated", "is damaged"),
        ("schema", "has journal schema version 99; this foliosim reads version 1"),
        ("foreign", "is not a foliosim paper-account journal"),
    ],
)
def test_a_damaged_journal_is_refused_in_one_line_and_left_alone(
    paper12: Path,
    kind: str,
    says: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    workspace = workspace_dir()
    path = damage(kind, workspace, "acct")
    before = path.read_bytes()
    for argv in (
        ["status"],
        ["status", "--json"],
        ["step"],
        ["step", "--weeks", "3"],
        ["step", "--until", "2023-06-23"],
    ):
        assert cli(["replay", *argv, "--account", "acct"], monkeypatch) == 2, argv
        line = error_line(capsys)
        assert f"error: {path} " in line and says in line, line
        assert "`foliosim replay reset --account acct`" in line, line
        assert path.read_bytes() == before, argv
    with pytest.raises(JournalError, match="foliosim replay reset"):
        stepping.step(workspace, "acct", weeks=1)
    assert path.read_bytes() == before

    assert cli(["replay", "list", "--json"], monkeypatch) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["account"] == "acct" and says in row["error"]
    # reset asks first (no terminal here: refused), then deletes the damaged file on --yes.
    assert cli(["replay", "reset", "--account", "acct"], monkeypatch) == 2
    assert "confirm with --yes" in error_line(capsys)
    assert path.read_bytes() == before
    assert cli(["replay", "reset", "--account", "acct", "--yes"], monkeypatch) == 0
    assert "account acct deleted" in capsys.readouterr().out
    assert not [p.name for p in path.parent.iterdir() if p.name.startswith("acct.sqlite")]


# --- 5. look-ahead --------------------------------------------------------------------------


@pytest.mark.slow
def test_a_model_trained_after_the_start_week_needs_allow_later_model(
    paper_model: PaperModel, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    workspace = paper_model.workspace
    monkeypatch.setenv("FOLIOSIM_WORKSPACE", str(workspace))
    argv = ["replay", "start", str(PAPER_CONFIG), "--account", "early", *sets(PAPER_FAST)]
    argv += ["--model", paper_model.ref, "--from", "2022-01-07"]
    assert cli(argv, monkeypatch) == 2
    line = error_line(capsys)
    assert f"{paper_model.ref} was trained on data up to 2022-06-24" in line
    assert "start week 2022-01-07" in line and "--allow-later-model" in line
    assert not accounts.journal_path(workspace, "early").exists()
    assert not (workspace / "replay" / "early.sqlite.lock").exists()

    assert cli([*argv, "--allow-later-model"], monkeypatch) == 0
    captured = capsys.readouterr()
    assert "this account uses look-ahead (--allow-later-model)" in flat(captured.err)
    assert "first week 2022-01-07" in captured.out
    doc = status_json("early", monkeypatch, capsys)
    assert doc["look_ahead"] is True and doc["allow_later_model"] is True
    assert doc["model_version"] == paper_model.ref and doc["model_train_end"] == "2022-06-24"
    assert doc["start_week"] == "2022-01-07" and doc["weeks_processed"] == 0
    assert cli(["replay", "status", "--account", "early"], monkeypatch) == 0
    text = flat(capsys.readouterr().out)
    assert "warning: LOOK-AHEAD: the model was trained on data up to 2022-06-24, after the " in text
    assert "start week 2022-01-07 (--allow-later-model)" in text
    assert cli(["replay", "step", "--account", "early"], monkeypatch) == 0  # it may trade
    capsys.readouterr()
    doc = status_json("early", monkeypatch, capsys)
    assert doc["weeks_processed"] == 1 and doc["pending"]["model_version"] == paper_model.ref
    assert doc["look_ahead"] is True
    # Started after the training window, the same version is no look-ahead.
    with accounts.start(workspace, "on-time", lstm_config(paper_model), source="t") as account:
        assert account.look_ahead is False and account.start_week == FIRST_WEEK


# --- 6. live ----------------------------------------------------------------------------------

LIVE_TICKERS = ["AAPL", "MSFT", "JPM", "NVDA"]
#: A 1/N yahoo account of four tickers, no FRED series; data.end before the live weeks.
LIVE = [
    "backtest.strategy=equal_weight",
    "report.risk_free=0.0",
    f"data.tickers={','.join(LIVE_TICKERS)}",
    "data.start=2021-01-01",
    "data.end=2023-01-06",
    "backtest.start=2022-12-02",
    "backtest.end=2023-01-06",
]


class FakeYahoo:
    """``yfinance.Ticker`` serving the paper12 CSV files in yfinance's layout, up to ``today``
    (the download of a day that has not happened yet is empty)."""

    today: ClassVar[pd.Timestamp] = pd.Timestamp("2023-01-06")
    asked: ClassVar[list[tuple[str, str, str]]] = []

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol

    def history(
        self, start: str, end: str, auto_adjust: bool = True, actions: bool = True
    ) -> pd.DataFrame:
        assert auto_adjust is False and actions is False
        type(self).asked.append((self.symbol, start, end))
        raw = pd.read_csv(PAPER12 / f"{self.symbol.lstrip('^')}.csv", parse_dates=["date"])
        dates = raw["date"]
        keep = (dates >= pd.Timestamp(start)) & (dates < pd.Timestamp(end))
        raw = raw[keep & (dates <= type(self).today)]
        index = pd.DatetimeIndex(raw["date"]).tz_localize("America/New_York").rename("Date")
        columns = {"Open": "open", "High": "high", "Low": "low", "Close": "close"}
        columns |= {"Adj Close": "adj_close", "Volume": "volume"}
        return pd.DataFrame({k: raw[v].to_numpy() for k, v in columns.items()}, index=index)


def install_fake_yahoo(monkeypatch: pytest.MonkeyPatch) -> type[FakeYahoo]:
    """Yahoo reachable (the network check passes) and answered by :class:`FakeYahoo`."""
    import yfinance

    import simulator.data.sources as sources

    monkeypatch.setattr(sources, "check_network", lambda *args, **kwargs: None)
    monkeypatch.setattr(yfinance, "Ticker", FakeYahoo)
    monkeypatch.setattr(FakeYahoo, "today", pd.Timestamp("2023-01-06"))
    monkeypatch.setattr(FakeYahoo, "asked", [])
    return FakeYahoo


@pytest.fixture
def fake_yahoo(paper12: Path, monkeypatch: pytest.MonkeyPatch) -> type[FakeYahoo]:
    return install_fake_yahoo(monkeypatch)


def start_live(fake: type[FakeYahoo], name: str = "live") -> Path:
    """A yahoo account (downloaded from the fake) that has recorded nothing yet."""
    path = open_new(workspace_dir(), name, load_config(PAPER_CONFIG, LIVE))
    assert {s for s, _, _ in fake.asked} == {*LIVE_TICKERS, "^IXIC"}
    return path


def live_weeks_to_saturday(fake: type[FakeYahoo]) -> None:
    """Step the live account on Wednesday 2023-01-18, then on Saturday 2023-01-21."""
    workspace = workspace_dir()
    fake.today = pd.Timestamp("2023-01-18")
    done = advance(workspace, "live", weeks=None, live=True, today=dt.date(2023, 1, 18))
    # Every complete week; never the week of 2023-01-20, whose Tuesday and Wednesday are in.
    assert [d.date().isoformat() for d in done] == [
        "2022-12-02",
        "2022-12-09",
        "2022-12-16",
        "2022-12-23",
        "2022-12-30",
        "2023-01-06",
        "2023-01-13",
    ]
    fake.today = pd.Timestamp("2023-01-21")
    done = advance(workspace, "live", weeks=None, live=True, today=dt.date(2023, 1, 21))
    assert list(done) == [pd.Timestamp("2023-01-20")]


def test_live_step_records_complete_weeks_only(fake_yahoo: type[FakeYahoo]) -> None:
    workspace = workspace_dir()
    path = start_live(fake_yahoo)
    live_weeks_to_saturday(fake_yahoo)
    # It downloaded up to the day asked (yfinance's end is exclusive).
    assert ("AAPL", "2021-01-01", "2023-01-22") in fake_yahoo.asked
    # The same Saturday again: nothing new.
    assert len(advance(workspace, "live", weeks=None, live=True, today=dt.date(2023, 1, 21))) == 0
    assert assert_whole_weeks(path) == 8

    # The same weeks from the CSV files give the same account, to the last bit.
    csv = [*LIVE, *CSV, "data.end=2023-01-27"]
    other = open_new(workspace, "csv", load_config(PAPER_CONFIG, csv))
    assert len(advance(workspace, "csv", weeks=None, until=dt.date(2023, 1, 20))) == 8
    assert journal_rows(path) == journal_rows(other)


def test_live_account_has_a_tear_sheet_after_weeks_past_its_data_end(
    fake_yahoo: type[FakeYahoo],
) -> None:
    workspace = workspace_dir()
    start_live(fake_yahoo)
    live_weeks_to_saturday(fake_yahoo)
    with accounts.open_account(workspace, "live") as account:
        result = account_report.account_result(account, workspace)
    assert result.returns.index[-1] == pd.Timestamp("2023-01-20")
    # A step without --live reads the cache the live steps filled, past data.end: nothing new.
    assert len(advance(workspace, "live", weeks=None, today=dt.date(2023, 1, 21))) == 0


def test_live_step_without_a_network_is_one_line_and_records_nothing(
    paper12: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    workspace = workspace_dir()
    with monkeypatch.context() as patched:  # the account's prices come from the fake ...
        path = start_live(install_fake_yahoo(patched))
    advance(workspace, "live", weeks=2)  # (from the cache)

    def refuse(*args: object, **kwargs: object) -> socket.socket:
        raise OSError(101, "Network is unreachable")

    monkeypatch.setattr(socket, "create_connection", refuse)  # ... then there is no network
    cache = sorted((workspace / "cache").rglob("*"))
    before = path.read_bytes()
    assert cli(["replay", "step", "--account", "live", "--live"], monkeypatch) == 2
    line = error_line(capsys)
    assert line.startswith("error: --live: cannot reach Yahoo Finance")
    assert "Network is unreachable" in line and line.endswith("nothing was recorded")
    with pytest.raises(NetworkError, match="nothing was recorded"):
        stepping.step(workspace, "live", weeks=None, live=True, today=dt.date(2023, 1, 21))
    assert path.read_bytes() == before
    assert sorted((workspace / "cache").rglob("*")) == cache
    with accounts.open_account(workspace, "live") as account:
        assert account.journal.count() == 2


def test_live_step_of_a_csv_account_is_refused(
    paper12: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = open_new(workspace_dir(), "csv", ew_config())
    before = path.read_bytes()
    assert cli(["replay", "step", "--account", "csv", "--live"], monkeypatch) == 2
    line = error_line(capsys)
    assert "--live downloads from Yahoo, but this account's data.source is 'csv'" in line
    assert path.read_bytes() == before


# --- 7. the command line --------------------------------------------------------------------


def test_account_life_cycle_on_the_command_line(
    paper12: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    workspace = workspace_dir()
    start = ["replay", "start", str(PAPER_CONFIG), "--account", "acct", *sets(EQUAL)]
    assert cli(start, monkeypatch) == 0
    capsys.readouterr()
    path = accounts.journal_path(workspace, "acct")
    before = path.read_bytes()
    assert cli(start, monkeypatch) == 2  # it exists already
    line = error_line(capsys)
    assert "paper account 'acct' exists already" in line
    assert "`foliosim replay step --account acct`" in line
    assert path.read_bytes() == before

    assert cli(["replay", "status", "--account", "acct"], monkeypatch) == 0
    assert "no week recorded yet; first week 2022-07-01" in capsys.readouterr().out
    empty = status_json("acct", monkeypatch, capsys)
    assert empty["weeks_processed"] == 0 and empty["last_week"] is None
    assert empty["equity"] == empty["cash"] == 10_000_000 and empty["positions"] == {}

    both = ["replay", "step", "--account", "acct", "--weeks", "2", "--until", "2022-08-05"]
    assert cli(both, monkeypatch) == 2
    assert "give --weeks or --until, not both" in error_line(capsys)
    assert cli(["replay", "step", "--account", "acct", "--weeks", "3"], monkeypatch) == 0
    printed = capsys.readouterr().out
    assert "week 2022-07-01 (1/3): equity 10,000,000.00 (+0.00%), 0 held; no orders" in printed
    assert "account acct: recorded 3 week(s), 2022-07-01..2022-07-15\n" in printed

    doc = status_json("acct", monkeypatch, capsys)
    assert {"last_week", "cash", "equity", "positions", "model_version", "weeks_processed"} <= set(
        doc
    )
    with accounts.open_account(workspace, "acct") as account:
        weeks = account.journal.weeks()
        held = account.journal.holdings(3)
    assert doc["last_week"] == "2022-07-15" and doc["weeks_processed"] == 3
    assert doc["model_version"] == "" and doc["strategy"] == "equal_weight"
    assert doc["cash"] == weeks["cash"].iloc[-1] and doc["equity"] == weeks["equity"].iloc[-1]
    assert doc["positions"] == dict(zip(held["ticker"], held["shares"], strict=True))
    assert len(doc["positions"]) == 12 and all(s > 0 for s in doc["positions"].values())
    assert doc["total_return"] == doc["equity"] / 10_000_000 - 1
    assert [p["week"] for p in doc["equity_curve"]] == ["2022-07-01", "2022-07-08", "2022-07-15"]
    assert doc["orders_filled"] == 24 and doc["orders_not_filled"] == 0

    open_new(workspace, "second", ew_config("backtest.fill=next_open"))
    assert cli(["replay", "list", "--json"], monkeypatch) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["account"], r["weeks_processed"], r["last_week"]) for r in rows] == [
        ("acct", 3, "2022-07-15"),
        ("second", 0, None),
    ]
    assert rows[0]["equity"] == doc["equity"] and rows[0]["look_ahead"] is False

    before = path.read_bytes()
    assert cli(["replay", "reset", "--account", "acct"], monkeypatch) == 2  # no terminal
    line = error_line(capsys)
    assert "account 'acct': 3 week(s) recorded up to 2022-07-15" in line
    assert line.endswith("confirm with --yes")
    assert path.read_bytes() == before
    assert cli(["replay", "reset", "--account", "acct", "--yes"], monkeypatch) == 0
    assert "account acct deleted" in capsys.readouterr().out
    assert not [p.name for p in path.parent.iterdir() if p.name.startswith("acct.")]
    assert cli(["replay", "status", "--account", "acct"], monkeypatch) == 2
    assert "`foliosim replay start CONFIG --account acct`" in error_line(capsys)
    assert cli(["replay", "list", "--json"], monkeypatch) == 0
    assert [r["account"] for r in json.loads(capsys.readouterr().out)] == ["second"]


def test_unknown_and_malformed_account_names(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    workspace = workspace_dir()
    for command in ("step", "status"):
        assert cli(["replay", command, "--account", "ghost"], monkeypatch) == 2
        line = error_line(capsys)
        assert "no paper account 'ghost'" in line
        assert "`foliosim replay start CONFIG --account ghost`" in line
    assert cli(["replay", "reset", "--account", "ghost", "--yes"], monkeypatch) == 2
    assert "no paper account 'ghost'" in error_line(capsys)
    assert not (workspace / "replay" / "ghost.sqlite.lock").exists()  # nothing left behind
    for bad in ("../escape", "a b", ".hidden", "x" * 65):
        for argv in (
            ["replay", "start", str(PAPER_CONFIG), "--account", bad, *sets(EQUAL)],
            ["replay", "step", "--account", bad],
            ["replay", "status", "--account", bad],
        ):
            assert cli(argv, monkeypatch) == 2, argv
            assert f"account name {bad!r}: use letters, digits" in error_line(capsys)
    assert not (workspace.parent / "escape.sqlite").exists()
    assert not list(workspace.parent.rglob("*.sqlite"))
    assert cli(["replay", "list", "--json"], monkeypatch) == 0
    assert json.loads(capsys.readouterr().out) == []


@pytest.mark.slow
def test_status_html_writes_the_account_tear_sheet(
    paper12: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    workspace = workspace_dir()
    open_new(workspace, "sheet", ew_config())
    advance(workspace, "sheet", weeks=2)
    out = tmp_path / "sheet-run"
    argv = ["replay", "status", "--account", "sheet", "--html", "--out", str(out)]
    assert cli(argv, monkeypatch) == 2  # two weeks are too few
    assert "has 2 recorded week(s); a tear sheet needs at least 3" in error_line(capsys)
    assert not out.exists()
    advance(workspace, "sheet", weeks=10)
    assert cli(argv, monkeypatch) == 0
    assert f"tear sheet: {out / 'tearsheet.html'}" in capsys.readouterr().out
    page = (out / "tearsheet.html").read_text()
    assert (
        "Paper account <code>sheet</code>: 12 weeks recorded one at a time from 2022-07-01 "
        "(the first is the start, so 11 weekly returns)" in page
    )
    assert 'id="short-run"' in page  # 11 weekly returns: period figures only
    assert 'id="look-ahead"' not in page
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["start"], summary["end"]) == ("2022-07-08", "2022-09-16")
    assert summary["replay"]["account"] == "sheet" and summary["replay"]["weeks"] == 12
    with accounts.open_account(workspace, "sheet") as account:
        final = float(account.journal.weeks()["equity"].iloc[-1])
    assert summary["final_value"] == final


# --- 8. what a step prints, and a closed stdout -------------------------------------------

#: paper12's stocks.
TICKERS = ["AAPL", "AMZN", "BA", "JPM", "MSFT", "NFLX", "NKE", "NVDA", "PEP", "SHOP", "TSLA", "UNH"]
#: The three first weeks of a 1/N account on paper12, as ``replay step`` prints them.
THREE_WEEKS = [
    "week 2022-07-01 (1/3): equity 10,000,000.00 (+0.00%), 0 held; no orders; "
    "decided 12 long / 0 short, gross 100%",
    "week 2022-07-08 (2/3): equity 10,499,463.75 (+4.99%), 12 held; orders 12 filled; "
    "decided 12 long / 0 short, gross 100%",
    "week 2022-07-15 (3/3): equity 10,362,391.12 (-1.31%), 12 held; orders 12 filled; "
    "decided 12 long / 0 short, gross 100%",
]


def _order(ticker: str, side: str, status: str) -> OrderRow:
    week = pd.Timestamp("2022-07-01")
    filled = status in ("Completed", "Delisted")
    return OrderRow(
        week,
        week if filled else None,
        ticker,
        side,
        10.0,
        100.0 if filled else float("nan"),
        1_000.0 if filled else float("nan"),
        0.0,
        status,
        "lstm/3",
    )


@pytest.mark.parametrize(
    ("orders", "targets", "tag", "expected"),
    [
        ([], {}, "", "no orders; no decision"),
        ([], {"AAPL": 0.0, "MSFT": 0.0}, "lstm/3", "no orders; decided all cash"),
        (
            [
                _order("AAPL", "buy", "Completed"),
                _order("MSFT", "sell", "Completed"),
                _order("NVDA", "buy", "Margin"),
                _order("TSLA", "sell", "Delisted"),
                _order("SHOP", "buy", "NoBar"),
            ],
            {"AAPL": 1 / 3, "MSFT": -0.25, "NVDA": 0.125, "SHOP": 0.0},
            "lstm/3",
            "orders 2 filled, 1 rejected (cash), 1 closed out (data ended), "
            "1 not placed (no bar); decided 2 long / 1 short, gross 71% (lstm/3)",
        ),
    ],
    ids=["no-decision", "all-cash", "every-status"],
)
def test_week_line(
    orders: list[OrderRow], targets: dict[str, float], tag: str, expected: str
) -> None:
    record = WeekRecord(
        pd.Timestamp("2022-07-08"),
        9_950_000.0,
        12.5,
        {"AAPL": (100.0, 150.0), "MSFT": (-20.0, 250.0)},
        targets,
        tag,
        orders,
    )
    done = stepping.WeekDone(7, record, 10_000_000.0, "next_open", 4, 52)
    head = "week 2022-07-08 (4/52): equity 9,950,000.00 (-0.50%), 2 held; "
    assert cli_replay.week_line(done) == head + expected


def test_a_step_prints_one_line_a_week_and_the_details_with_verbose(
    paper12: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    workspace = workspace_dir()
    open_new(workspace, "brief", ew_config())
    open_new(workspace, "full", ew_config())
    assert cli(["replay", "step", "--account", "brief", "--weeks", "3"], monkeypatch) == 0
    brief = capsys.readouterr().out.splitlines()
    assert brief == [*THREE_WEEKS, "account brief: recorded 3 week(s), 2022-07-01..2022-07-15"]
    with accounts.open_account(workspace, "brief") as account:
        equity = account.journal.weeks()["equity"].tolist()
    assert [f"{e:,.2f}" for e in equity] == ["10,000,000.00", "10,499,463.75", "10,362,391.12"]

    assert cli(["replay", "step", "--account", "full", "--weeks", "3", "-v"], monkeypatch) == 0
    full = capsys.readouterr().out.splitlines()
    # Each week's line, then its orders (a table: title, 3 rules, header, 12 rows), its cash
    # and holdings, and its decision.
    starts = [full.index(line) for line in THREE_WEEKS]
    assert starts == [0, 3, 23]
    assert len(full) == 23 + 20 + 1 and full[-1].startswith("account full: recorded 3 week(s)")
    assert full[1] == "  cash 10,000,000.00; holdings: none"
    equal = ", ".join(f"{t} +8.3%" for t in TICKERS)
    fills = "fills at this close (booked next week)"
    assert full[2] == f"  decided at the close: {equal}; {fills}"
    assert full[4].rstrip() == "week 2022-07-08: orders"
    bought = [row.split()[1] for row in full[8:20]]
    assert sorted(bought) == TICKERS and full[8].split()[3] == "buy"
    assert full[21].startswith("  cash ") and "; holdings: AAPL " in full[21]
    assert full[22] == full[2]


#: A ``foliosim`` process whose second week waits, before it is written, until the file
#: $PIPE_CLOSED exists: the test reads the first week's line, closes its end of the pipe and
#: creates the file, so that every later line meets a closed stdout. Only a trace callback
#: is added to sqlite3.
GATED = """
import os, pathlib, sqlite3, sys, time

gate = pathlib.Path(os.environ["PIPE_CLOSED"])
seen = 0
connect = sqlite3.connect


def gated(*args, **kwargs):
    conn = connect(*args, **kwargs)

    def trace(sql):
        global seen
        if sql.startswith("INSERT INTO weeks"):
            seen += 1
            deadline = time.monotonic() + 60
            while seen == 2 and not gate.exists() and time.monotonic() < deadline:
                time.sleep(0.01)

    conn.set_trace_callback(trace)
    return conn


sqlite3.connect = gated
from simulator.cli import main

sys.argv = ["foliosim", *sys.argv[1:]]
main()
"""


@pytest.mark.slow
@pytest.mark.parametrize("lines_read", [0, 1], ids=["closed-at-once", "closed-after-a-line"])
def test_a_closed_stdout_does_not_stop_a_step(
    paper12: Path,
    uninterrupted: dict[str, list[tuple[Any, ...]]],
    lines_read: int,
    tmp_path: Path,
) -> None:
    """Regression (issue 26): ``replay step --weeks 10 | head -3`` recorded 2 of 10 weeks and
    exited 1 without a word (rich exits on a broken pipe)."""
    workspace = workspace_dir()
    path = open_new(workspace, "piped", ew_config())
    gate = tmp_path / "closed"
    env = {**os.environ, "FOLIOSIM_WORKSPACE": str(workspace), "PIPE_CLOSED": str(gate)}
    args = ["replay", "step", "--account", "piped", "--weeks", "10"]
    argv = [sys.executable, "-c", GATED, *args] if lines_read else foliosim(*args)
    proc = subprocess.Popen(
        argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    try:
        read = [proc.stdout.readline() for _ in range(lines_read)]
        proc.stdout.close()
        gate.touch()
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert read == [line.replace("(1/3)", "(1/10)") + "\n" for line in THREE_WEEKS[:lines_read]]
    assert err.splitlines() == [
        "standard output was closed; the step went on: account piped: recorded 10 week(s), "
        "2022-07-01..2022-09-02"
    ]
    assert proc.returncode == 0
    assert journal_rows(path) == upto(uninterrupted, 10)


# --- 9. pending weeks and the New York day --------------------------------------------------


def _utc(year: int, month: int, day: int, hour: int, minute: int, second: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("now", "day"),
    [
        (_utc(2023, 1, 13, 20, 0), dt.date(2023, 1, 12)),  # 15:00 EST: Friday's bar not final
        (_utc(2023, 1, 13, 22, 0), dt.date(2023, 1, 13)),  # 17:00 EST
        (_utc(2023, 1, 13, 21, 29, 59), dt.date(2023, 1, 12)),  # 16:29:59 EST
        (_utc(2023, 1, 13, 21, 30), dt.date(2023, 1, 13)),  # 16:30 EST sharp
        (_utc(2023, 7, 14, 20, 30), dt.date(2023, 7, 14)),  # 16:30 EDT
        (_utc(2023, 7, 14, 20, 29), dt.date(2023, 7, 13)),  # 16:29 EDT
        (_utc(2023, 1, 14, 3, 0), dt.date(2023, 1, 13)),  # Saturday in UTC, Friday 22:00 EST
        (_utc(2023, 1, 14, 4, 59), dt.date(2023, 1, 13)),  # 23:59 EST
        (_utc(2023, 1, 14, 5, 0), dt.date(2023, 1, 13)),  # Saturday 00:00 EST: before 16:30
        (_utc(2023, 1, 14, 22, 0), dt.date(2023, 1, 14)),  # Saturday 17:00 EST
    ],
)
def test_new_york_today(now: dt.datetime, day: dt.date) -> None:
    assert stepping.new_york_today(now) == day


def test_new_york_today_of_a_time_in_another_zone() -> None:
    from zoneinfo import ZoneInfo

    tokyo = dt.datetime(2023, 1, 14, 6, 30, tzinfo=ZoneInfo("Asia/Tokyo"))  # 16:30 EST on 13th
    assert stepping.new_york_today(tokyo) == dt.date(2023, 1, 13)
    assert stepping.new_york_today(tokyo - dt.timedelta(seconds=1)) == dt.date(2023, 1, 12)
    assert stepping.new_york_today() in {
        dt.date.today() - dt.timedelta(days=1),
        dt.date.today(),
        dt.date.today() + dt.timedelta(days=1),
    }


def _days(index: pd.DatetimeIndex) -> list[str]:
    return [d.date().isoformat() for d in index]


def test_pending_weeks(paper12: Path) -> None:
    """The data ends on Wednesday 2023-01-18: that week is complete only once its Friday has
    passed; ``weeks`` and ``until`` cut the list; a step continues after the last record."""
    workspace = workspace_dir()
    cfg = ew_config("data.end=2023-01-18", "backtest.start=2022-12-02", "backtest.end=2023-01-13")
    open_new(workspace, "pending", cfg)
    weekly = make_weekly(load_daily(cfg.data, cfg.report.risk_free, workspace))
    assert weekly.calendar[-1] == pd.Timestamp("2023-01-18")
    first = ["2022-12-02", "2022-12-09", "2022-12-16", "2022-12-23", "2022-12-30"]
    day = dt.date.fromisoformat
    with accounts.open_account(workspace, "pending") as account:

        def pending(last: WeekRecord | None = None, **kwargs: Any) -> list[str]:
            return _days(stepping.pending_weeks(account, weekly, last, **kwargs))

        assert account.start_week == pd.Timestamp("2022-12-02")
        assert pending(today=day("2022-12-01")) == []
        assert pending(today=day("2022-12-02")) == ["2022-12-02"]  # Friday: its close is in
        assert pending(today=day("2022-12-07")) == ["2022-12-02"]
        everything = [*first, "2023-01-06", "2023-01-13"]
        for today in ("2023-01-18", "2023-01-19"):  # Thursday and Friday still to come
            assert pending(today=day(today)) == everything
        assert pending(today=day("2023-01-20")) == [*everything, "2023-01-18"]
        assert pending(today=day("2024-06-01"), weeks=5) == first
        assert pending(today=day("2024-06-01"), until=day("2022-12-29")) == first[:4]
        assert pending(today=day("2024-06-01"), weeks=2, until=day("2022-12-29")) == first[:2]

        def record(week: str) -> WeekRecord:
            return WeekRecord(pd.Timestamp(week), 1.0, 1.0, {}, {}, "")

        after = ["2023-01-06", "2023-01-13"]
        assert pending(record("2022-12-30"), today=day("2023-01-18")) == after
        assert pending(record("2023-01-13"), today=day("2023-01-19")) == []
        assert pending(record("2023-01-13"), today=day("2023-01-21")) == ["2023-01-18"]
        with pytest.raises(DataError, match="no longer holds the last recorded week 2022-12-31"):
            pending(record("2022-12-31"), today=day("2023-01-21"))


def test_pending_weeks_of_a_good_friday_week(paper12: Path) -> None:
    """The week of Good Friday 2023-04-07 ends on Thursday: with the data ending there, it is
    complete once the Friday is the settled day, not on the Thursday; with later data at once."""
    workspace = workspace_dir()
    cut = ew_config("data.end=2023-04-06", "backtest.start=2023-03-24", "backtest.end=2023-04-06")
    open_new(workspace, "easter", cut)
    with accounts.open_account(workspace, "easter") as account:
        for cfg, today, expected in (
            (cut, "2023-04-06", ["2023-03-24", "2023-03-31"]),
            (cut, "2023-04-07", ["2023-03-24", "2023-03-31", "2023-04-06"]),
            (ew_config(), "2023-04-06", ["2023-03-24", "2023-03-31", "2023-04-06"]),
        ):
            weekly = make_weekly(load_daily(cfg.data, cfg.report.risk_free, workspace))
            found = stepping.pending_weeks(account, weekly, None, dt.date.fromisoformat(today))
            assert _days(found) == expected, (cfg.data.end, today)
