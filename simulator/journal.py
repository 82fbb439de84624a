"""The paper account's journal: one SQLite file (WAL), one transaction per week.

A journal holds the account's frozen settings (``meta``) and, for every processed week, the
week's record (:class:`strategies.rebalance.WeekRecord`): equity at the close, the broker's cash
and holdings before that week's decision filled, the decision (target weights, and the
forecasts behind them), and the orders that ended while the week was processed. A week is
written in one transaction, after checking that it follows the last recorded week, so a week is
either fully recorded or not at all and never twice, whatever kills the process.

Opening refuses, with one line saying what to do, a file that is not a foliosim journal, a
journal of another schema version, and a damaged one; nothing is ever reset silently. Changes
(a step, a reset) hold an exclusive lock on ``<journal>.lock``: a second process fails at once.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import math
import os
import sqlite3
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pandas as pd

from simulator.errors import AccountBusyError, JournalError
from strategies.rebalance import ORDER_COLUMNS, WeekRecord
from strategies.rule import DECISION_COLUMNS

#: Bumped whenever the tables change; a journal of another version is refused, not migrated.
SCHEMA_VERSION = 1
#: ``PRAGMA application_id`` of a foliosim journal ("FoSi").
APPLICATION_ID = 0x466F5369

#: The forecast columns kept with each decision (NaN for a strategy without forecasts).
TARGET_COLUMNS = ["ticker", "weight", "predicted_return", "last_close", "predicted_close"]

#: The numeric columns of each table, and whether they may be NULL (NaN).
_NUMERIC: dict[str, list[tuple[str, bool]]] = {
    "weeks": [("seq", False), ("equity", False), ("cash", False)],
    "holdings": [("seq", False), ("shares", False), ("price", False), ("close", True)],
    "targets": [
        ("seq", False),
        ("weight", False),
        ("predicted_return", True),
        ("last_close", True),
        ("predicted_close", True),
    ],
    "bounds": [("seq", False), ("n", False)],
    "orders": [
        ("seq", False),
        ("n", False),
        ("size", True),
        ("price", True),
        ("value", True),
        ("commission", False),
    ],
}

_SCHEMA = f"""
PRAGMA application_id = {APPLICATION_ID};
PRAGMA user_version = {SCHEMA_VERSION};
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE weeks (
    seq INTEGER PRIMARY KEY,
    week TEXT NOT NULL UNIQUE,
    equity REAL NOT NULL,
    cash REAL NOT NULL,
    model_version TEXT NOT NULL,
    recorded_at TEXT NOT NULL
);
CREATE TABLE holdings (
    seq INTEGER NOT NULL REFERENCES weeks(seq),
    ticker TEXT NOT NULL,
    shares REAL NOT NULL,
    price REAL NOT NULL,
    close REAL,
    PRIMARY KEY (seq, ticker)
);
CREATE TABLE targets (
    seq INTEGER NOT NULL REFERENCES weeks(seq),
    ticker TEXT NOT NULL,
    weight REAL NOT NULL,
    predicted_return REAL,
    last_close REAL,
    predicted_close REAL,
    PRIMARY KEY (seq, ticker)
);
CREATE TABLE bounds (
    seq INTEGER NOT NULL REFERENCES weeks(seq),
    n INTEGER NOT NULL,
    reason TEXT NOT NULL,
    ticker TEXT NOT NULL,
    detail TEXT NOT NULL,
    PRIMARY KEY (seq, n)
);
CREATE TABLE orders (
    seq INTEGER NOT NULL REFERENCES weeks(seq),
    n INTEGER NOT NULL,
    date_submitted TEXT,
    date_filled TEXT,
    ticker TEXT NOT NULL,
    side TEXT NOT NULL,
    size REAL,
    price REAL,
    value REAL,
    commission REAL NOT NULL,
    status TEXT NOT NULL,
    model_version TEXT NOT NULL,
    PRIMARY KEY (seq, n)
);
"""


def _day(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return None
    return pd.Timestamp(value).date().isoformat()


def _num(value: Any) -> float | None:
    """SQLite keeps NaN as NULL; say so explicitly."""
    value = float(value)
    return None if math.isnan(value) else value


class Journal:
    """An open journal. Use :meth:`create` or :meth:`open`; close with :meth:`close`."""

    def __init__(self, path: Path, conn: sqlite3.Connection, fix: str = "") -> None:
        self.path = path
        self._conn = conn
        self.fix = fix or "restore it from a backup"
        self.read_only = False
        self.meta: dict[str, str] = dict(self._read("SELECT key, value FROM meta"))

    # --- opening -------------------------------------------------------------------------

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        conn = sqlite3.connect(path, timeout=10.0, isolation_level=None)
        conn.execute("PRAGMA foreign_keys = ON")
        # FULL: a committed week survives a power cut, not only a killed process.
        conn.execute("PRAGMA synchronous = FULL")
        return conn

    @classmethod
    def create(cls, path: Path, meta: Mapping[str, str]) -> Journal:
        """Write a new journal with ``meta`` at ``path`` (which must not exist).

        The file is built under a temporary name and renamed into place, so an account
        either exists whole or not at all.
        """
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.unlink(missing_ok=True)
        try:
            conn = sqlite3.connect(tmp, isolation_level=None)
            conn.execute("PRAGMA journal_mode = WAL")  # kept in the file's header
            conn.executescript(_SCHEMA)
            conn.execute("BEGIN")
            conn.executemany("INSERT INTO meta VALUES (?, ?)", sorted(meta.items()))
            conn.execute("COMMIT")
            conn.close()  # the last connection checkpoints and removes the WAL file
            if path.exists():
                raise JournalError(f"{path} appeared while the account was being created")
            os.replace(tmp, path)
        finally:
            for leftover in (
                tmp,
                tmp.with_name(tmp.name + "-wal"),
                tmp.with_name(tmp.name + "-shm"),
            ):
                leftover.unlink(missing_ok=True)
        return cls(path, cls._connect(path))

    @staticmethod
    def _connect_read_only(path: Path) -> sqlite3.Connection:
        """A read-only connection to a journal in a folder that cannot be written.

        SQLite's WAL mode needs a writable folder even to read, unless the file is opened as
        immutable; that is safe only while no change waits in the WAL file (a journal closed
        normally has none), so a journal with one is refused with what to do.
        """
        wal = path.with_name(path.name + "-wal")
        if wal.exists() and wal.stat().st_size > 0:
            raise JournalError(
                f"{path} cannot be read: its folder is read-only and {wal.name} holds changes "
                "not yet merged into it; make the folder writable and run the command again "
                "(the account is not damaged)"
            )
        uri = f"file:{quote(str(path.absolute()))}?immutable=1"
        return sqlite3.connect(uri, uri=True, isolation_level=None)

    @classmethod
    def open(cls, path: Path, fix: str) -> Journal:
        """Open and check an existing journal. ``fix`` ends the error for a damaged file.

        A journal in a read-only folder (or a read-only file) is opened for reading only:
        :attr:`read_only` is then True and :meth:`append` refuses.
        """
        if not path.is_file():
            raise JournalError(f"no journal at {path}")
        read_only = not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK))
        try:
            conn = cls._connect_read_only(path) if read_only else cls._connect(path)
            app = conn.execute("PRAGMA application_id").fetchone()[0]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if app != APPLICATION_ID:
                conn.close()
                raise JournalError(f"{path} is not a foliosim paper-account journal; {fix}")
            if version != SCHEMA_VERSION:
                conn.close()
                raise JournalError(
                    f"{path} has journal schema version {version}; this foliosim reads version "
                    f"{SCHEMA_VERSION}. Use the foliosim that wrote it, or {fix}"
                )
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                conn.close()
                raise JournalError(f"{path} is damaged (SQLite: {check}); {fix}")
            journal = cls(path, conn, fix)
            journal.read_only = read_only
            journal._check_sequence()
            journal._check_types()
        except sqlite3.DatabaseError as err:
            raise JournalError(f"{path} is damaged or not a journal ({err}); {fix}") from None
        return journal

    def _check_types(self) -> None:
        """Refuse a journal whose numbers are not numbers (an edit such as equity = 'abc':
        SQLite keeps text in a REAL column)."""
        for table, columns in _NUMERIC.items():
            for column, nullable in columns:
                allowed = "('real', 'integer', 'null')" if nullable else "('real', 'integer')"
                row = self._conn.execute(
                    f"SELECT rowid, typeof({column}), quote({column}) FROM {table} "
                    f"WHERE typeof({column}) NOT IN {allowed} LIMIT 1"
                ).fetchone()
                if row is not None:
                    raise JournalError(
                        f"{self.path} is damaged: {table}.{column} holds {row[2][:40]} "
                        f"({row[1]}) in row {row[0]}, not a number; {self.fix}"
                    )

    def _check_sequence(self) -> None:
        n, low, high = self._conn.execute(
            "SELECT count(*), min(seq), max(seq) FROM weeks"
        ).fetchone()
        if n and (low != 1 or high != n):
            raise JournalError(f"{self.path} is damaged: weeks {low}..{high} hold {n} rows")

    def close(self) -> None:
        self._conn.close()

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._conn.execute(sql, args).fetchall()
        except sqlite3.DatabaseError as err:
            raise JournalError(f"{self.path} could not be read ({err})") from None

    # --- reading -------------------------------------------------------------------------

    def count(self) -> int:
        return int(self._read("SELECT count(*) FROM weeks")[0][0])

    def weeks(self) -> pd.DataFrame:
        """One row per recorded week: ``seq, week, equity, cash, model_version, recorded_at``."""
        rows = self._read(
            "SELECT seq, week, equity, cash, model_version, recorded_at FROM weeks ORDER BY seq"
        )
        frame = pd.DataFrame(
            rows, columns=["seq", "week", "equity", "cash", "model_version", "recorded_at"]
        )
        frame["week"] = pd.to_datetime(frame["week"])
        return frame

    def holdings(self, seq: int) -> pd.DataFrame:
        """Week ``seq``'s holdings: ``ticker, shares, price`` (average cost), ``close``."""
        rows = self._read(
            "SELECT ticker, shares, price, close FROM holdings WHERE seq = ? ORDER BY ticker",
            (seq,),
        )
        return pd.DataFrame(rows, columns=["ticker", "shares", "price", "close"]).astype(
            {"shares": float, "price": float, "close": float}
        )

    def all_holdings(self) -> pd.DataFrame:
        """Every week's holdings, with its ``week``."""
        rows = self._read(
            "SELECT w.week, h.ticker, h.shares, h.price, h.close FROM holdings h "
            "JOIN weeks w USING (seq) ORDER BY h.seq, h.ticker"
        )
        frame = pd.DataFrame(rows, columns=["week", "ticker", "shares", "price", "close"])
        frame["week"] = pd.to_datetime(frame["week"])
        return frame.astype({"shares": float, "price": float, "close": float})

    def targets(self, seq: int | None = None) -> pd.DataFrame:
        """The decisions: ``week`` and ``TARGET_COLUMNS`` (one week with ``seq``)."""
        where, args = ("WHERE t.seq = ?", (seq,)) if seq is not None else ("", ())
        rows = self._read(
            "SELECT w.week, t.ticker, t.weight, t.predicted_return, t.last_close, "
            f"t.predicted_close FROM targets t JOIN weeks w USING (seq) {where} "
            "ORDER BY t.seq, t.ticker",
            args,
        )
        frame = pd.DataFrame(rows, columns=["week", *TARGET_COLUMNS])
        frame["week"] = pd.to_datetime(frame["week"])
        return frame.astype({c: float for c in TARGET_COLUMNS[1:]})

    def decisions(self) -> pd.DataFrame:
        """The decisions as a decision log (``strategies.rule.DECISION_COLUMNS``): the
        target weights, and the predicted returns as scores (NaN for a rule without
        forecasts). A journal keeps no notes of the rule."""
        targets = self.targets()
        return pd.DataFrame(
            {
                "week": targets["week"],
                "ticker": targets["ticker"],
                "score": targets["predicted_return"],
                "target": targets["weight"],
                "note": "",
            },
            columns=DECISION_COLUMNS,
        )

    def bounds(self) -> pd.DataFrame:
        """Every profile limit that bound: ``week, reason, ticker, detail``."""
        rows = self._read(
            "SELECT w.week, b.reason, b.ticker, b.detail FROM bounds b JOIN weeks w USING (seq) "
            "ORDER BY b.seq, b.n"
        )
        frame = pd.DataFrame(rows, columns=["week", "reason", "ticker", "detail"])
        frame["week"] = pd.to_datetime(frame["week"])
        return frame

    def orders(self, seq: int | None = None) -> pd.DataFrame:
        """Every order row, in the order it was recorded (``ORDER_COLUMNS`` plus ``week``,
        the week whose processing recorded it); those of week ``seq`` only when given."""
        cols = ", ".join(f"o.{c}" for c in ORDER_COLUMNS)
        where, args = ("WHERE o.seq = ?", (seq,)) if seq is not None else ("", ())
        rows = self._read(
            f"SELECT w.week, {cols} FROM orders o JOIN weeks w USING (seq) {where} "
            "ORDER BY o.seq, o.n",
            args,
        )
        frame = pd.DataFrame(rows, columns=["week", *ORDER_COLUMNS])
        for col in ("week", "date_submitted", "date_filled"):
            frame[col] = pd.to_datetime(frame[col])
        return frame.astype({c: float for c in ("size", "price", "value", "commission")})

    def last(self) -> WeekRecord | None:
        """The newest week's record (what a step resumes from), or None before the first."""
        rows = self._read(
            "SELECT seq, week, equity, cash, model_version FROM weeks ORDER BY seq DESC LIMIT 1"
        )
        if not rows:
            return None
        seq, week, equity, cash, version = rows[0]
        held = self.holdings(seq)
        targets = self.targets(seq)
        return WeekRecord(
            week=pd.Timestamp(week),
            value=float(equity),
            cash=float(cash),
            holdings={
                str(t): (float(s), float(p))
                for t, s, p in zip(held["ticker"], held["shares"], held["price"], strict=True)
            },
            targets={
                str(t): float(w)
                for t, w in zip(targets["ticker"], targets["weight"], strict=True)
                if w != 0.0
            },
            tag=str(version),
        )

    # --- writing -------------------------------------------------------------------------

    def set_meta(self, updates: Mapping[str, str]) -> None:
        """Write ``updates`` into ``meta`` in one transaction (the caller holds the lock)."""
        if self.read_only:
            raise JournalError(
                f"cannot change {self.path}: the file or its folder is read-only; make it "
                "writable and run the command again"
            )
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(
                    "INSERT OR REPLACE INTO meta VALUES (?, ?)", sorted(updates.items())
                )
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
        except sqlite3.DatabaseError as err:
            raise JournalError(f"could not change the settings in {self.path} ({err})") from None
        self.meta.update(updates)

    def append(
        self,
        record: WeekRecord,
        closes: Mapping[str, float],
        forecasts: pd.DataFrame | None,
        bounds: list[tuple[str, str, str]] | None = None,
    ) -> int:
        """Record one week in one transaction; returns its sequence number.

        ``closes``: each held ticker's last close at the week (for weights in status);
        ``forecasts``: indexed by ticker, ``predicted_return``, ``last_close``,
        ``predicted_close`` (None for a strategy without forecasts); ``bounds``: the
        investor profile's limits that bound this week, ``(reason, ticker, detail)``. Refuses
        a week that does not follow the last recorded one (another process got there first).
        """
        if self.read_only:
            raise JournalError(
                f"cannot record a week in {self.path}: the file or its folder is read-only; "
                "make it writable and run the command again"
            )
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        week = _day(record.week)
        names = sorted(
            set(record.targets) | (set(forecasts.index) if forecasts is not None else set())
        )
        target_rows = []
        for t in names:
            f = forecasts.loc[t] if forecasts is not None and t in forecasts.index else None
            target_rows.append(
                (
                    t,
                    float(record.targets.get(t, 0.0)),
                    _num(f["predicted_return"]) if f is not None else None,
                    _num(f["last_close"]) if f is not None else None,
                    _num(f["predicted_close"]) if f is not None else None,
                )
            )
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                high, newest = conn.execute("SELECT max(seq), max(week) FROM weeks").fetchone()
                if newest is not None and newest >= week:
                    raise JournalError(
                        f"week {week} is already recorded in {self.path} (another process "
                        "stepped this account); run the command again to continue from there"
                    )
                seq = (high or 0) + 1
                conn.execute(
                    "INSERT INTO weeks VALUES (?, ?, ?, ?, ?, ?)",
                    (seq, week, record.value, record.cash, record.tag, now),
                )
                conn.executemany(
                    "INSERT INTO holdings VALUES (?, ?, ?, ?, ?)",
                    [
                        (seq, t, size, price, _num(closes.get(t, math.nan)))
                        for t, (size, price) in sorted(record.holdings.items())
                    ],
                )
                conn.executemany(
                    "INSERT INTO targets VALUES (?, ?, ?, ?, ?, ?)",
                    [(seq, *row) for row in target_rows],
                )
                conn.executemany(
                    "INSERT INTO bounds VALUES (?, ?, ?, ?, ?)",
                    [(seq, n, *row) for n, row in enumerate(bounds or [])],
                )
                conn.executemany(
                    f"INSERT INTO orders VALUES ({', '.join(['?'] * (len(ORDER_COLUMNS) + 2))})",
                    [
                        (
                            seq,
                            n,
                            _day(o.date_submitted),
                            _day(o.date_filled),
                            o.ticker,
                            o.side,
                            _num(o.size),
                            _num(o.price),
                            _num(o.value),
                            float(o.commission),
                            o.status,
                            o.model_version,
                        )
                        for n, o in enumerate(record.orders)
                    ],
                )
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.DatabaseError as err:
            raise JournalError(f"could not record week {week} in {self.path} ({err})") from None
        return seq


@contextlib.contextmanager
def locked(path: Path, what: str) -> Iterator[None]:
    """Hold the account's exclusive lock (``<journal>.lock``) or fail at once.

    The lock file holds the holder's process id, for the error of the one that waits. The OS
    releases the lock when its holder dies, even by SIGKILL. The file is removed on release
    when there is no journal beside it (a refused start, a reset).
    """
    lock = path.with_name(path.name + ".lock")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(lock, "a+")  # noqa: SIM115 (closed by the with below)
    except OSError as err:
        raise JournalError(
            f"cannot change {what}: {lock.parent} is not writable ({err.strerror}); make it "
            "writable and run the command again"
        ) from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip()
            pid = f" (pid {holder})" if holder.isdigit() else ""
            raise AccountBusyError(
                f"another foliosim process is changing {what} right now{pid}; wait for it to "
                "finish and run the command again"
            ) from None
        try:
            handle.truncate(0)
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            yield
        finally:
            if not path.exists():
                lock.unlink(missing_ok=True)
            fcntl.flock(handle, fcntl.LOCK_UN)


def remove(path: Path) -> None:
    """Delete a journal and its WAL, shared-memory and lock files."""
    for suffix in ("", "-wal", "-shm", ".lock"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


def meta_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True)
