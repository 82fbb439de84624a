"""Scheduled steps: ``foliosim serve`` keeps accounts marked ``schedule = "weekly"`` current.

After each week closes in New York (Friday's daily bar is final at 16:30 ET, see
:func:`simulator.stepping.new_york_today`), a scheduled account is stepped through every
complete week not yet recorded: ``--live`` (the newest prices from Yahoo first) when its data
source is Yahoo, else from the data on disk (a CSV account is kept current with its files).
Where the account's config has ``model.retrain_every = K`` and it uses models, the scheduler
steps one week at a time and, once the newest pinned version has made K decisions, trains a
new version on every week up to the last recorded one and pins it for the next decisions
(:func:`simulator.stepping.retrain`): the walk-forward schedule of a backtest.

Every action is appended to the account's log (:func:`simulator.accounts.schedule_log_path`, one
JSON object a line) with its outcome: ``ok``, ``nothing to do``, ``busy`` (another process
held the account's lock: tried again at the next tick) or ``error`` (tried again an hour
later). A closed week is acted on until an attempt ends ``ok`` or ``nothing to do``. Steps
hold the journal's lock (:func:`simulator.journal.locked`), shared with the command line, so
two steps of one account never run at once, whoever starts them.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from simulator import accounts, stepping
from simulator.errors import AccountBusyError, FoliosimError

log = logging.getLogger("foliosim.serve")

#: How long after a failed attempt the same closed week is tried again.
RETRY_AFTER = dt.timedelta(hours=1)
#: The outcomes that end the work for a closed week.
DONE = ("ok", "nothing to do")


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def closed_week(now: dt.datetime) -> pd.Timestamp:
    """The Friday of the newest week closed in New York at ``now``.

    >>> closed_week(dt.datetime(2024, 6, 7, 20, 29, tzinfo=dt.UTC)).date()  # 16:29 ET
    datetime.date(2024, 5, 31)
    >>> closed_week(dt.datetime(2024, 6, 7, 20, 31, tzinfo=dt.UTC)).date()  # 16:31 ET
    datetime.date(2024, 6, 7)
    """
    day = pd.Timestamp(stepping.new_york_today(now))
    return day - pd.Timedelta(days=(day.weekday() - 4) % 7)


def read_log(workspace: Path, name: str, limit: int | None = None) -> list[dict[str, Any]]:
    """The account's scheduled actions, oldest first (the last ``limit``); a line that is not
    a JSON object (a write cut by a crash) is skipped."""
    path = accounts.schedule_log_path(workspace, name)
    if not path.is_file():
        return []
    entries = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            entries.append(entry)
    return entries[-limit:] if limit else entries


def append_log(workspace: Path, name: str, entry: dict[str, Any]) -> None:
    """Append ``entry`` to the account's log as one line, in one write, synced."""
    path = accounts.schedule_log_path(workspace, name)
    line = (json.dumps(entry, sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def due(account: accounts.Account, entries: list[dict[str, Any]], now: dt.datetime) -> bool:
    """Whether the scheduler should act on ``account`` at ``now`` (see the module docstring)."""
    if account.schedule != "weekly":
        return False
    week = closed_week(now)
    last = account.journal.last()
    if last is not None and last.week.to_period("W-FRI") >= week.to_period("W-FRI"):
        return False
    if last is None and account.start_week > week:
        return False
    tried = [e for e in entries if e.get("for_week") == week.date().isoformat()]
    if any(e.get("action") == "step" and e.get("outcome") in DONE for e in tried):
        return False
    failed = [e for e in tried if e.get("outcome") == "error"]
    if failed:
        at = dt.datetime.fromisoformat(failed[-1]["at"])
        return now - at >= RETRY_AFTER
    return True


def run_scheduled(
    workspace: Path, name: str, now: dt.datetime, note: Callable[[str], None] | None = None
) -> list[dict[str, Any]]:
    """Step account ``name`` through its pending weeks (retraining when due) and log each
    action; returns the entries logged."""
    say = note or (lambda line: log.info("%s: %s", name, line))
    week = closed_week(now).date().isoformat()
    logged: list[dict[str, Any]] = []

    def record(action: str, outcome: str, detail: str, weeks: list[str] | None = None) -> None:
        entry = {
            "at": utc_now().isoformat(timespec="seconds"),
            "action": action,
            "for_week": week,
            "outcome": outcome,
            "detail": detail,
            "weeks": weeks or [],
        }
        append_log(workspace, name, entry)
        logged.append(entry)

    with accounts.open_account(workspace, name) as account:
        live = account.config.data.source == "yahoo"
        retraining = bool(account.config.model.retrain_every and account.pins)
    recorded: list[str] = []
    action = "step --live" if live else "step"
    try:
        while True:
            acct, done = stepping.step(
                workspace, name, weeks=1 if retraining else None, live=live, note=say
            )
            acct.close()
            recorded += [w.date().isoformat() for w in done]
            if done.empty or not retraining:
                break
            pin = stepping.retrain(workspace, name, note=say)
            if pin is not None:
                record(action, "ok", f"recorded {len(recorded)} week(s)", recorded)
                recorded = []
                record(
                    "retrain",
                    "ok",
                    f"pinned {pin.version} (trained up to {pin.train_end.date()})",
                )
    except AccountBusyError as err:
        record(action, "busy", str(err), recorded)
        return logged
    except FoliosimError as err:  # a model's errors (ModelError) included
        record(action, "error", " ".join(str(err).split()), recorded)
        return logged
    if recorded:
        record(action, "ok", f"recorded {len(recorded)} week(s)", recorded)
    elif not any(e["action"] == "step" for e in logged):
        record(action, "nothing to do", "no complete week after the last recorded one")
    return logged


class Scheduler:
    """A background thread that runs :func:`tick` every ``tick_seconds``.

    ``on_step`` is called with each account name after an action recorded weeks (the app
    refreshes its caches).
    """

    def __init__(
        self,
        workspace: Path,
        tick_seconds: float = 60.0,
        on_step: Callable[[str], None] | None = None,
        clock: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        self.workspace = workspace
        self.tick_seconds = tick_seconds
        self.on_step = on_step
        self.clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self) -> dict[str, list[dict[str, Any]]]:
        """Act on every due account now; returns the entries logged per account."""
        now = self.clock()
        out = {}
        folder = self.workspace / "replay"
        for path in sorted(folder.glob("*.sqlite")) if folder.is_dir() else []:
            name = path.stem
            try:
                with accounts.open_account(self.workspace, name) as account:
                    ready = due(account, read_log(self.workspace, name), now)
            except FoliosimError:
                continue  # listed as unreadable on the accounts page
            if ready:
                out[name] = run_scheduled(self.workspace, name, now)
                for entry in out[name]:
                    log.info(
                        "%s: %s %s: %s", name, entry["action"], entry["outcome"], entry["detail"]
                    )
                if self.on_step is not None and any(e["weeks"] for e in out[name]):
                    self.on_step(name)
        return out

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # a bug must not stop the schedule of every account: logged
                log.exception("scheduler tick failed")
            self._stop.wait(self.tick_seconds)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="foliosim-scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the action in flight (a step in progress finishes its week)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
