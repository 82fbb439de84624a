"""Stepping a paper account through the weeks, one at a time, and retraining a scheduled one.

``step`` continues the backtest engine from the last recorded week
(:class:`strategies.rebalance.Resume`) through the next weeks; every week is written in its own
transaction as soon as it closes. The engine cut into pieces gives the orders and values of one
unbroken run, so an account replayed over a historical range equals ``foliosim backtest`` over
that range with the same model version, and an account killed in the middle of a step
continues from its last recorded week.

A week is traded only once it is complete (its Friday has passed, or the data goes on into a
later week): a step never acts on a bar that can still change. ``step(live=True)`` first
downloads the newest daily prices from Yahoo; without a network it fails and records nothing.

Time contract as in the backtest: the decision at week t reads bars up to t only, with the
newest pinned version trained before t (:class:`Pinned`); a step never trains. A scheduled
account pins a new version between steps (:func:`retrain`).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pandas as pd

from simulator.accounts import Account, Pin, Pinned, journal_path, open_account, pin_meta
from simulator.config import Config
from simulator.data import WeeklyData
from simulator.data.sources import FRED_SERIES, fetch_fred, fetch_yahoo
from simulator.data.weekly import last_complete_week
from simulator.engine import RuleFailed
from simulator.errors import ConfigError, DataError, NetworkError, StrategyError
from simulator.journal import Journal, locked, meta_json
from simulator.session import Note, Session, Window, load_weekly
from strategies.profile import ProfileGuard
from strategies.rebalance import WeekRecord

if TYPE_CHECKING:
    from models.forecaster import TrainProgress

#: New York time after which a weekday's daily bar is taken as final (the close is 16:00).
_SETTLED = dt.time(16, 30)


def new_york_today(now: dt.datetime | None = None) -> dt.date:
    """The last day whose daily bar is final: today in New York after 16:30, else yesterday."""
    local = (now or dt.datetime.now(dt.UTC)).astimezone(ZoneInfo("America/New_York"))
    return local.date() if local.time() >= _SETTLED else local.date() - dt.timedelta(days=1)


def _refresh_yahoo(cfg: Config, workspace: Path, today: dt.date) -> Config:
    """Download the account's series from Yahoo up to ``today`` (the ``--live`` path)."""
    if cfg.data.source != "yahoo":
        raise ConfigError(
            f"--live downloads from Yahoo, but this account's data.source is "
            f"'{cfg.data.source}'; start an account from a config with data.source = \"yahoo\", "
            "or step without --live after updating the data"
        )
    end = max(cfg.data.end, today)
    data = cfg.data.model_copy(update={"end": end})
    rf = cfg.report.risk_free if isinstance(cfg.report.risk_free, str) else None
    start, stop = pd.Timestamp(data.start), pd.Timestamp(end)
    names = [*(data.tickers or ()), data.benchmark]
    try:
        fetch_yahoo(
            [*names, *([rf] if rf and rf not in FRED_SERIES else [])], start, stop, workspace
        )
        if rf and rf in FRED_SERIES:
            fetch_fred(rf, start - pd.Timedelta(days=14), stop, workspace)
    except NetworkError as err:
        raise NetworkError(f"--live: {err}; nothing was recorded") from None
    return cfg.model_copy(update={"data": data})


# --- step -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class WeekDone:
    """A week just recorded, for the command line to print.

    Attributes
    ----------
    seq
        The week's number in the journal (1 for the account's first week).
    record
        What the engine recorded at the week's close.
    previous_equity
        The equity at the close of the week before (the starting cash for the account's
        first week), so ``record.value / previous_equity - 1`` is the week's return.
    fill
        The config's fill mode (``next_open`` or ``close``).
    n, total
        The week's place in this step (1-based) and the number of weeks the step processes.
    """

    seq: int
    record: WeekRecord
    previous_equity: float
    fill: str
    n: int
    total: int


def pending_weeks(
    account: Account,
    weekly: WeeklyData,
    last: WeekRecord | None,
    today: dt.date,
    weeks: int | None = None,
    until: dt.date | None = None,
) -> pd.DatetimeIndex:
    """The complete weeks a step would process next, oldest first."""
    cal = weekly.calendar
    if last is None:
        if account.start_week not in cal:
            raise DataError(
                f"the data no longer holds the account's start week {account.start_week.date()}"
            )
        todo = cal[cal >= account.start_week]
    else:
        if last.week not in cal:
            raise DataError(
                f"the data no longer holds the last recorded week {last.week.date()}; the "
                "account can only continue on data that includes it"
            )
        todo = cal[cal > last.week]
    newest = last_complete_week(cal, pd.Timestamp(today))
    todo = todo[todo <= newest] if newest is not None else todo[:0]
    if until is not None:
        todo = todo[todo <= pd.Timestamp(until)]
    if weeks is not None:
        todo = todo[:weeks]
    return pd.DatetimeIndex(todo)


def step(
    workspace: Path,
    name: str,
    *,
    weeks: int | None = 1,
    until: dt.date | None = None,
    live: bool = False,
    today: dt.date | None = None,
    on_week: Callable[[WeekDone], None] | None = None,
    note: Note | None = None,
) -> tuple[Account, pd.DatetimeIndex]:
    """Advance account ``name`` by ``weeks`` (None: all) complete weeks, or up to ``until``.

    Each week is recorded in its own transaction as it closes. Returns the account (open; the
    caller closes it) and the weeks processed (empty when nothing was due). The data check's
    warnings go to ``note``.
    """
    path = journal_path(workspace, name)
    with locked(path, f"account {name!r}"):
        account = open_account(workspace, name)
        try:
            processed = _step(account, workspace, weeks, until, live, today, on_week, note)
        except BaseException:
            account.close()
            raise
    return account, processed


def _step(
    account: Account,
    workspace: Path,
    weeks: int | None,
    until: dt.date | None,
    live: bool,
    today: dt.date | None,
    on_week: Callable[[WeekDone], None] | None,
    note: Note | None = None,
) -> pd.DatetimeIndex:
    cfg = account.config
    if live:
        today = today or new_york_today()
        cfg = _refresh_yahoo(cfg, workspace, today)
    today = today or dt.date.today()
    journal = account.journal
    last = journal.last()
    through = last.week.date() if last is not None else None
    session = Session.open(cfg, workspace, through=through, note=note)
    todo = pending_weeks(account, session.weekly, last, today, weeks, until)
    if todo.empty:
        return todo
    missing = sorted(set(last.holdings) - set(session.weekly.bars)) if last else []
    if missing:
        raise DataError(f"the data lacks held ticker(s) {', '.join(missing)}")
    window = Window.pending(todo, last.resume() if last is not None else None)
    models = Pinned(account)
    # A step never retrains (a scheduled account retrains between steps, see retrain): a
    # drawdown stop ends after profile.resume_after weeks.
    built = session.strategy_rule(window, models)
    if built.guard is not None:
        # The guard sees the recorded equity first, as an unbroken run's would have.
        for week, equity in zip(*(journal.weeks()[c] for c in ("week", "equity")), strict=True):
            built.guard.observe(pd.Timestamp(week), float(equity))
        built.guard.rows.clear()  # what bound in recorded weeks is in the journal already
    record = _Recorder(
        journal,
        session.weekly.closes().ffill(),  # a held ticker without a bar keeps its last close
        models,
        built.guard,
        on_week,
        cfg.backtest.fill,
        last.value if last else cfg.backtest.cash,
        len(todo),
    )
    try:
        session.run(built, window, on_week=record)
    except RuleFailed as err:
        raise StrategyError(f"{err.head} ({record.so_far()})") from None
    return todo


@dataclass
class _Recorder:
    """The engine's ``on_week`` of a step: writes each week to the journal as it closes, with
    the holdings valued at ``closes`` (forward-filled), the forecasts it decided with and
    what the profile's guard bound."""

    journal: Journal
    closes: pd.DataFrame
    models: Pinned
    guard: ProfileGuard | None
    on_week: Callable[[WeekDone], None] | None
    fill: str
    previous: float
    total: int
    recorded: list[pd.Timestamp] = field(default_factory=list)

    def __call__(self, week: WeekRecord) -> None:
        forecasts = None
        provider = self.models.provider
        if provider is not None and provider.forecasts:
            table = provider.forecasts[-1]
            if (table["decision"] == week.week).all():
                forecasts = table
        at = self.closes.loc[week.week].to_dict()
        held = {t: float(at[t]) for t in week.holdings}
        bound = None
        if self.guard is not None:
            bound = [(r, t, d) for w, r, t, d in self.guard.rows if w == week.week]
        seq = self.journal.append(week, held, forecasts, bound)
        self.recorded.append(week.week)
        if self.on_week is not None:
            done = WeekDone(seq, week, self.previous, self.fill, len(self.recorded), self.total)
            self.on_week(done)
        self.previous = week.value

    def so_far(self) -> str:
        """What a failed step left recorded: each week was recorded as it closed, so nobody
        re-enters them by hand."""
        recorded = self.recorded
        if not recorded:
            return "no week of this step was recorded"
        kept = f"{recorded[0].date()}" + (f"..{recorded[-1].date()}" if len(recorded) > 1 else "")
        return (
            f"{len(recorded)} week(s) of this step were recorded ({kept}); the account "
            f"stands at {recorded[-1].date()}, and the next step starts at the week that failed"
        )


# --- retraining ---------------------------------------------------------------------------------


def retrain_due(account: Account) -> bool:
    """Whether a scheduled account's newest pinned version has made ``model.retrain_every``
    decisions (as a walk-forward backtest retrains after every K decision weeks)."""
    every = account.config.model.retrain_every
    pins = account.pins
    if account.schedule == "off" or not every or not pins:
        return False
    decided = account.journal.weeks()["model_version"] == pins[-1].version
    return int(decided.sum()) >= every


def retrain(
    workspace: Path,
    name: str,
    progress: TrainProgress | None = None,
    note: Note | None = None,
) -> Pin | None:
    """Pin a new version to scheduled account ``name`` when :func:`retrain_due`: the config's
    model trained on every week up to the last recorded one (reused from the registry when it
    holds one of the same spec and data, as a backtest would), used from the next decision on.

    Holds the account's lock throughout; returns the new pin, or None when none was due.
    """
    # Imported here: the registry and the trainer import torch.
    from simulator.training import open_registry
    from simulator.walkforward import prepare_models

    path = journal_path(workspace, name)
    with locked(path, f"account {name!r}"), open_account(workspace, name) as account:
        last = account.journal.last()
        if last is None or not retrain_due(account):
            return None
        cfg = account.config
        weekly = load_weekly(cfg, workspace, through=last.week.date())
        if note is not None:
            for line in weekly.warnings:
                note(line)
        closes = weekly.closes().loc[: last.week]
        section = {"train_end": last.week.date(), "retrain_every": 0, "version": None}
        once = cfg.model_copy(update={"model": cfg.model.model_copy(update=section)})
        registry = open_registry(workspace, cfg.model.registry_uri)
        after = pd.DatetimeIndex([last.week + pd.Timedelta(days=1)])
        info = prepare_models(once, closes, after, registry, progress, note, weekly=weekly)[0].info
        entry = pin_meta(info, registry)
        later = json.loads(account.meta.get("retrained", "[]"))
        account.journal.set_meta({"retrained": meta_json([*later, entry])})
        return Pin.from_meta(entry)
