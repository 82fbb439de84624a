"""Paper-trading replay: a paper account stepped through the weeks one at a time.

``start`` opens an account: the config is frozen into a journal (:mod:`simulator.journal`) in
the workspace, with data paths made absolute, the start week fixed, and, for ``lstm_signal``,
one registry version pinned by number with the digests of its files. ``step`` continues the
backtest engine from the last recorded week (:class:`strategies.rebalance.Resume`) through the
next weeks; every week is written in its own transaction as soon as it closes. The engine
cut into pieces gives the orders and values of one unbroken run, so an account replayed over a
historical range equals ``foliosim backtest`` over that range with the same model version, and
an account killed in the middle of a step continues from its last recorded week.

A week is traded only once it is complete (its Friday has passed, or the data goes on into a
later week): a step never acts on a bar that can still change. ``step(live=True)`` first
downloads the newest daily prices from Yahoo; without a network it fails and records nothing.

Time contract as in the backtest: the decision at week t reads bars up to t only, and the
pinned model must have been trained on data that ended before the account's start week (unless
the account was opened with ``allow_later_model``, which status and report then state).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

import simulator
from simulator.backtest import assemble, check_excluded
from simulator.config import Config, config_from_dict
from simulator.data import WeeklyData, load_daily, make_weekly
from simulator.data.weekly import last_complete_week
from simulator.engine import EngineResult, RuleFailed, eligible_frame
from simulator.errors import (
    ConfigError,
    DataError,
    FoliosimError,
    JournalError,
    LookAheadError,
    NetworkError,
    StrategyError,
    UnknownAccountError,
)
from simulator.explain import Traded, check_models, run_explanations
from simulator.exposure import strategy_exposure
from simulator.journal import Journal, locked, meta_json, remove
from simulator.plan import Resources, resolve
from simulator.summary import ModelUse, ReplayFacts
from strategies.rebalance import FILLED, WeekRecord
from strategies.rule import DECISION_COLUMNS

if TYPE_CHECKING:
    from models.forecaster import TrainProgress
    from models.registry import Registry, VersionInfo
    from simulator.backtest import BacktestResult
    from simulator.walkforward import Note, RegistrySignal

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
#: The values of an account's ``schedule`` (journal meta): ``weekly`` accounts are stepped
#: ``--live`` by ``foliosim serve`` after each week closes (see :mod:`simulator.web.scheduler`).
SCHEDULES = ("off", "weekly")
#: New York time after which a weekday's daily bar is taken as final (the close is 16:00).
_SETTLED = dt.time(16, 30)


def journal_path(workspace: Path, name: str) -> Path:
    """``<workspace>/replay/<name>.sqlite``; refuses a name that is not a plain file name."""
    if not _NAME.fullmatch(name):  # fullmatch: "name\n" is refused
        raise ConfigError(
            f"account name {name!r}: use letters, digits, '.', '_' or '-' (at most 64), "
            "starting with a letter or digit"
        )
    return workspace / "replay" / f"{name}.sqlite"


def _fix(name: str) -> str:
    return (
        "restore the file from a backup, or delete the account with "
        f"`foliosim replay reset --account {name}`"
    )


def open_account(workspace: Path, name: str) -> Account:
    """The account ``name`` of ``workspace``, its journal checked (see :class:`Account`)."""
    path = journal_path(workspace, name)
    if not path.is_file():
        raise UnknownAccountError(
            f"no paper account {name!r} in {path.parent}; start one with "
            f"`foliosim replay start CONFIG --account {name}` (see `foliosim replay list`)"
        )
    journal = Journal.open(path, _fix(name))
    try:
        return Account(name, journal, _meta_config(journal, name))
    except BaseException:
        journal.close()
        raise


def _meta_config(journal: Journal, name: str) -> Config:
    import json

    required = ("config", "start_week", "strategy", "created_at")
    missing = [k for k in required if k not in journal.meta]
    try:
        if missing:
            raise ValueError(f"no {', '.join(missing)}")
        raw = json.loads(journal.meta["config"])
    except ValueError as err:
        raise JournalError(f"{journal.path} is damaged (meta: {err}); {_fix(name)}") from None
    return config_from_dict(raw, f"the config stored in {journal.path}")


@dataclass(frozen=True)
class Pin:
    """A registry version an account decides with, read from its files (no MLflow)."""

    version: str
    train_end: pd.Timestamp
    folder: Path
    tags: dict[str, str]
    created: dt.datetime

    @classmethod
    def from_meta(cls, meta: dict[str, str]) -> Pin:
        """The pin of the meta keys ``model_version, model_train_end, model_folder,
        model_tags, model_created`` (as :func:`_pin` writes them)."""
        import json

        return cls(
            meta["model_version"],
            pd.Timestamp(meta["model_train_end"]),
            Path(meta["model_folder"]),
            dict(json.loads(meta["model_tags"])),
            dt.datetime.fromisoformat(meta["model_created"]),
        )


@dataclass
class Account:
    """An open paper account: its journal and the config frozen into it at start."""

    name: str
    journal: Journal
    config: Config

    @property
    def meta(self) -> dict[str, str]:
        return self.journal.meta

    @property
    def start_week(self) -> pd.Timestamp:
        return pd.Timestamp(self.meta["start_week"])

    @property
    def model_version(self) -> str:
        return self.meta.get("model_version", "")

    @property
    def allow_later_model(self) -> bool:
        return self.meta.get("allow_later_model") == "1"

    @property
    def schedule(self) -> str:
        """``weekly`` (stepped by ``foliosim serve``) or ``off``."""
        return self.meta.get("schedule", "off")

    @property
    def pins(self) -> list[Pin]:
        """The pinned model versions, oldest first: the one pinned at start, then one per
        scheduled retraining (none for a strategy without models)."""
        import json

        if not self.model_version:
            return []
        try:
            later = json.loads(self.meta.get("retrained", "[]"))
            return [Pin.from_meta(self.meta), *(Pin.from_meta(d) for d in later)]
        except (ValueError, KeyError, TypeError) as err:
            raise JournalError(
                f"{self.journal.path} is damaged (meta model pins: {err}); {_fix(self.name)}"
            ) from None

    @property
    def look_ahead(self) -> bool:
        """Whether the pinned model was trained on data reaching the start week or later."""
        end = self.meta.get("model_train_end", "")
        return bool(end) and pd.Timestamp(end) >= self.start_week

    def close(self) -> None:
        self.journal.close()

    def __enter__(self) -> Account:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- data ---------------------------------------------------------------------------------


def _weekly(
    cfg: Config,
    workspace: Path,
    through: pd.Timestamp | None = None,
    note: Note | None = None,
) -> WeeklyData:
    """Weekly bars of the account's data, reaching at least the week ``through`` (a live
    account records weeks after its config's data.end; its Yahoo cache holds them). The data
    check's warnings go to ``note``."""
    if through is not None and through.date() > cfg.data.end:
        data = cfg.data.model_copy(update={"end": through.date()})
        cfg = cfg.model_copy(update={"data": data})
    weekly = make_weekly(load_daily(cfg.data, cfg.report.risk_free, workspace))
    if note is not None:
        for line in weekly.warnings:
            note(line)
    return weekly


def new_york_today(now: dt.datetime | None = None) -> dt.date:
    """The last day whose daily bar is final: today in New York after 16:30, else yesterday."""
    from zoneinfo import ZoneInfo

    local = (now or dt.datetime.now(dt.UTC)).astimezone(ZoneInfo("America/New_York"))
    return local.date() if local.time() >= _SETTLED else local.date() - dt.timedelta(days=1)


def _refresh_yahoo(cfg: Config, workspace: Path, today: dt.date) -> Config:
    """Download the account's series from Yahoo up to ``today`` (the ``--live`` path)."""
    from simulator.data.sources import FRED_SERIES, fetch_fred, fetch_yahoo

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


# --- start ----------------------------------------------------------------------------------


def start(
    workspace: Path,
    name: str,
    cfg: Config,
    *,
    source: str,
    from_date: dt.date | None = None,
    model: str | None = None,
    allow_later_model: bool = False,
    schedule: str = "off",
    train_progress: TrainProgress | None = None,
    note: Note | None = None,
) -> Account:
    """Open the paper account ``name`` (see the module docstring); it must not exist.

    ``model`` pins a registry version (``NAME/N``, ``NAME@ALIAS`` or ``@ALIAS`` of the config's
    model name); without it, ``model.version`` of the config, else the version a backtest
    would use first (trained up to ``model.train_end``, reused from the registry or trained).
    ``schedule`` is one of :data:`SCHEDULES`.
    """
    say = note or (lambda _line: None)
    path = journal_path(workspace, name)
    _check_schedule(schedule)
    plan = resolve(cfg)  # a user rule that cannot be imported is refused before anything
    if model and not plan.strategy.uses_models:
        raise ConfigError(
            f"--model pins an LSTM version, but the config's strategy is "
            f"'{cfg.backtest.strategy}'; set backtest.strategy = \"lstm_signal\" or drop --model"
        )
    with locked(path, f"account {name!r}"):
        if path.exists():
            raise JournalError(
                f"paper account {name!r} exists already ({path}); step it with `foliosim replay "
                f"step --account {name}`, or delete it with `foliosim replay reset --account "
                f"{name}`"
            )
        if cfg.data.path:
            absolute = str(Path(cfg.data.path).expanduser().resolve())
            cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"path": absolute})})
        weekly = _weekly(cfg, workspace, note=say)
        begin = pd.Timestamp(from_date or cfg.backtest.start)
        cal = weekly.calendar
        after = cal[cal >= begin]
        if after.empty:
            raise DataError(
                f"no week on or after {begin.date()} in the data (it ends {cal[-1].date()}); "
                "choose an earlier --from or extend data.end"
            )
        week = after[0]
        if plan.profile is not None:
            check_excluded(plan.profile, weekly.tickers)
        ok = eligible_frame(weekly, pd.DatetimeIndex([week]), cfg.backtest.min_history)
        if not ok.iloc[0].any():
            raise DataError(
                f"too little history: no ticker has {cfg.backtest.min_history} weekly bars by "
                f"{week.date()}; start later (--from) or lower backtest.min_history"
            )
        meta = {
            "account": name,
            "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "foliosim_version": simulator.__version__,
            "config": cfg.model_dump_json(),
            "config_source": source,
            "start_week": week.date().isoformat(),
            "strategy": cfg.backtest.strategy,
            "allow_later_model": "1" if allow_later_model else "0",
            "schedule": schedule,
        }
        if plan.strategy.uses_models:
            scheduled = schedule != "off"
            meta.update(
                _pin(
                    cfg,
                    weekly,
                    week,
                    workspace,
                    model,
                    allow_later_model,
                    say,
                    train_progress,
                    scheduled,
                )
            )
        Journal.create(path, meta).close()
    return open_account(workspace, name)


def _pin(
    cfg: Config,
    weekly: WeeklyData,
    week: pd.Timestamp,
    workspace: Path,
    ref: str | None,
    allow_later: bool,
    say: Callable[[str], None],
    progress: TrainProgress | None,
    scheduled: bool = False,
) -> dict[str, str]:
    """The meta fields of the pinned version: ref, train_end, files and their digests."""
    from simulator.training import open_registry
    from simulator.walkforward import prepare_models

    registry = open_registry(workspace, cfg.model.registry_uri)
    tickers = weekly.tickers
    ref = ref or cfg.model.version
    if ref:
        if ref.startswith("@"):
            ref = f"{cfg.model.name}{ref}"
        info = registry.resolve(ref)
        registry.load(info, tickers)  # checks files, digests and tickers now, not at a step
    else:
        if cfg.model.retrain_every and not scheduled:
            say(
                f"an account stepped by hand keeps one model version: model.retrain_every = "
                f"{cfg.model.retrain_every} applies only to a scheduled account (--schedule "
                "weekly, stepped by `foliosim serve`)"
            )
        once = cfg.model_copy(update={"model": cfg.model.model_copy(update={"retrain_every": 0})})
        used = prepare_models(
            once, weekly.closes(), pd.DatetimeIndex([week]), registry, progress, say, weekly=weekly
        )
        info = used[0].info
    if info.train_end >= week:
        if not allow_later:
            raise LookAheadError(
                f"{info.ref} was trained on data up to {info.train_end.date()}, not before the "
                f"account's start week {week.date()}: replaying with it would use the future. "
                "Pick an earlier version, start later (--from), or pass --allow-later-model "
                "(status and report then say so)"
            )
        say(
            f"warning: {info.ref} was trained on data up to {info.train_end.date()}, after "
            f"the start week {week.date()}: this account uses look-ahead (--allow-later-model)"
        )
    say(f"pinned {info.ref} (trained up to {info.train_end.date()})")
    return _pin_meta(info, registry)


def _pin_meta(info: VersionInfo, registry: Registry) -> dict[str, str]:
    """The meta keys of a pinned version (read back by :meth:`Pin.from_meta`)."""
    return {
        "model_version": info.ref,
        "model_train_end": info.train_end.date().isoformat(),
        "model_folder": str(registry.artifact_dir(info).resolve()),
        "model_tags": meta_json(info.tags),
        "model_created": info.created.isoformat(),
    }


# --- step -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class WeekDone:
    """A week just recorded, for the command line to print."""

    seq: int
    record: WeekRecord
    previous_equity: float | None
    fill: str


def _provider(
    account: Account, weekly: WeeklyData, first: pd.Timestamp | None = None
) -> RegistrySignal:
    """The pinned versions, read from their files (no MLflow), verified against their digests.

    With ``first`` (the first week to decide), only the versions a decision from then on can
    pick: the newest one trained before ``first`` and those trained later.
    """
    pins = account.pins
    if first is not None:
        before = [i for i, p in enumerate(pins) if p.train_end < first]
        pins = pins[before[-1] :] if before else pins
    return _signal(account, pins, weekly)


def _signal(account: Account, pins: list[Pin], weekly: WeeklyData) -> RegistrySignal:
    from models.artifacts import read_version
    from models.errors import ModelError
    from models.registry import VersionInfo
    from simulator.walkforward import RegistrySignal, UsedModel

    used = []
    for pin in pins:
        if not pin.folder.is_dir():
            raise JournalError(
                f"the files of {pin.version}, pinned by account {account.name!r}, are "
                f"missing ({pin.folder}); the workspace was moved or cleaned"
            )
        try:
            model = read_version(
                pin.folder,
                weights_sha256=pin.tags.get("weights_sha256", ""),
                manifest_sha256=pin.tags.get("manifest_sha256", ""),
            )
        except ModelError as err:
            raise JournalError(
                f"account {account.name!r} is pinned to {pin.version}, whose files no "
                f"longer match: {err}"
            ) from None
        model.version = pin.version
        model.check_tickers(weekly.tickers)
        info = VersionInfo.pinned(pin.version, pin.tags, pin.created)
        used.append(UsedModel(model, info, trained=False))
    return RegistrySignal(used, account.allow_later_model, weekly=weekly)


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
    weekly = _weekly(cfg, workspace, last.week if last is not None else None, note)
    todo = pending_weeks(account, weekly, last, today, weeks, until)
    if todo.empty:
        return todo
    missing = sorted(set(last.holdings) - set(weekly.bars)) if last else []
    if missing:
        raise DataError(f"the data lacks held ticker(s) {', '.join(missing)}")
    plan = resolve(cfg)
    provider: RegistrySignal | None = None

    def signal() -> RegistrySignal:
        nonlocal provider
        provider = _provider(account, weekly, todo[0])
        return provider

    # A step never retrains (a scheduled account retrains between steps, see retrain): a
    # drawdown stop ends after profile.resume_after weeks.
    built = plan.strategy_rule(Resources(signal=signal, decisions=todo))
    guard = built.guard
    if guard is not None:
        # The guard sees the recorded equity first, as an unbroken run's would have.
        for week, equity in zip(*(journal.weeks()[c] for c in ("week", "equity")), strict=True):
            guard.observe(pd.Timestamp(week), float(equity))
        guard.rows.clear()  # what bound in recorded weeks is in the journal already
    closes = weekly.closes().ffill()  # a held ticker without a bar keeps its last close
    previous = [last.value if last else None]

    def record(week: WeekRecord) -> None:
        forecasts = None
        if provider is not None and provider.forecasts:
            table = provider.forecasts[-1]
            if (table["decision"] == week.week).all():
                forecasts = table
        at = closes.loc[week.week].to_dict()
        held = {t: float(at[t]) for t in week.holdings}
        bound = None
        if guard is not None:
            bound = [(r, t, d) for w, r, t, d in guard.rows if w == week.week]
        seq = journal.append(week, held, forecasts, bound)
        recorded.append(week.week)
        if on_week is not None:
            on_week(WeekDone(seq, week, previous[0], cfg.backtest.fill))
        previous[0] = week.value

    recorded: list[pd.Timestamp] = []
    try:
        plan.run(
            built,
            weekly,
            todo,
            todo,
            resume=last.resume() if last is not None else None,
            on_week=record,
        )
    except RuleFailed as err:
        # Each week was recorded as it closed: say which, so nobody re-enters them by hand.
        if recorded:
            kept = f"{recorded[0].date()}" + (
                f"..{recorded[-1].date()}" if len(recorded) > 1 else ""
            )
            done = (
                f"{len(recorded)} week(s) of this step were recorded ({kept}); the account "
                f"stands at {recorded[-1].date()}, and the next step starts at the week that "
                "failed"
            )
        else:
            done = "no week of this step was recorded"
        raise StrategyError(f"{err.head} ({done})") from None
    return todo


# --- schedule and retraining -------------------------------------------------------------------


def _check_schedule(schedule: str) -> None:
    if schedule not in SCHEDULES:
        raise ConfigError(f"schedule {schedule!r}: use one of {', '.join(SCHEDULES)}")


def set_schedule(workspace: Path, name: str, schedule: str) -> None:
    """Mark account ``name`` as stepped by ``foliosim serve`` (``weekly``) or not (``off``)."""
    _check_schedule(schedule)
    path = journal_path(workspace, name)
    with locked(path, f"account {name!r}"), open_account(workspace, name) as account:
        account.journal.set_meta({"schedule": schedule})


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
    import json

    from simulator.training import open_registry
    from simulator.walkforward import prepare_models

    path = journal_path(workspace, name)
    with locked(path, f"account {name!r}"), open_account(workspace, name) as account:
        last = account.journal.last()
        if last is None or not retrain_due(account):
            return None
        cfg = account.config
        weekly = _weekly(cfg, workspace, last.week, note)
        closes = weekly.closes().loc[: last.week]
        section = {"train_end": last.week.date(), "retrain_every": 0, "version": None}
        once = cfg.model_copy(update={"model": cfg.model.model_copy(update=section)})
        registry = open_registry(workspace, cfg.model.registry_uri)
        after = pd.DatetimeIndex([last.week + pd.Timedelta(days=1)])
        info = prepare_models(once, closes, after, registry, progress, note, weekly=weekly)[0].info
        entry = _pin_meta(info, registry)
        later = json.loads(account.meta.get("retrained", "[]"))
        account.journal.set_meta({"retrained": meta_json([*later, entry])})
        return Pin.from_meta(entry)


# --- status, list, reset ----------------------------------------------------------------------


def status(account: Account) -> dict[str, Any]:
    """The account as one JSON-ready document (``replay status --json``)."""
    journal = account.journal
    weeks = journal.weeks()
    cfg = account.config
    doc: dict[str, Any] = {
        "account": account.name,
        "journal": str(journal.path),
        "config_source": account.meta.get("config_source", ""),
        "strategy": cfg.backtest.strategy,
        "fill": cfg.backtest.fill,
        "model_version": account.model_version,
        "model_train_end": account.meta.get("model_train_end"),
        "allow_later_model": account.allow_later_model,
        "look_ahead": account.look_ahead,
        "schedule": account.schedule,
        "models": [
            {
                "version": pin.version,
                "train_end": pin.train_end.date().isoformat(),
                "decisions": int((weeks["model_version"] == pin.version).sum()),
            }
            for pin in account.pins
        ],
        "start_week": account.start_week.date().isoformat(),
        "start_cash": cfg.backtest.cash,
        "weeks_processed": len(weeks),
        "last_week": None,
        "cash": cfg.backtest.cash,
        "equity": cfg.backtest.cash,
        "total_return": 0.0,
        "positions": {},
        "weights": {},
        "pending": None,
        "equity_curve": [],
        "orders_filled": 0,
        "orders_not_filled": 0,
    }
    if weeks.empty:
        return doc
    last = weeks.iloc[-1]
    held = journal.holdings(int(last["seq"]))
    equity = float(last["equity"])
    targets = journal.targets(int(last["seq"]))
    orders = journal.orders()
    filled = int(orders["status"].isin(FILLED).sum())
    doc.update(
        {
            "last_week": last["week"].date().isoformat(),
            "cash": float(last["cash"]),
            "equity": equity,
            "total_return": equity / cfg.backtest.cash - 1.0,
            "positions": {t: float(s) for t, s in zip(held["ticker"], held["shares"], strict=True)},
            "weights": holding_weights(held, equity),
            "pending": {
                "decided": last["week"].date().isoformat(),
                "model_version": str(last["model_version"]),
                "fills": "at the next week's open"
                if cfg.backtest.fill == "next_open"
                else "at this close; booked with the next week",
                "targets": {
                    t: float(w)
                    for t, w in zip(targets["ticker"], targets["weight"], strict=True)
                    if w != 0.0
                },
            },
            "equity_curve": [
                {"week": w.date().isoformat(), "equity": float(e)}
                for w, e in zip(weeks["week"], weeks["equity"], strict=True)
            ],
            "orders_filled": filled,
            "orders_not_filled": len(orders) - filled,
        }
    )
    return doc


def holding_weights(held: pd.DataFrame, equity: float) -> dict[str, float]:
    """Each holding's weight: its shares times the week's close over the equity
    (``held`` as :meth:`simulator.journal.Journal.holdings` reads it)."""
    return {
        str(t): float(s * c / equity)
        for t, s, c in zip(held["ticker"], held["shares"], held["close"], strict=True)
    }


def held_weights(
    account: Account, as_of: dt.date | None = None
) -> tuple[pd.Timestamp, dict[str, float]]:
    """The weights the account held at the close of its last recorded week, or of the last one
    on or before ``as_of``: the journal's holdings of that week (as ``replay status`` shows
    them; orders decided at that close and not yet filled are not in them).

    Raises
    ------
    JournalError
        An account with no recorded week (on or before ``as_of``).
    """
    weeks = account.journal.weeks()
    if weeks.empty:
        raise JournalError(
            f"account {account.name!r} has no recorded week yet; step it first with "
            f"`foliosim replay step --account {account.name}`"
        )
    if as_of is not None:
        first = weeks["week"].iloc[0].date()
        weeks = weeks[weeks["week"] <= pd.Timestamp(as_of)]
        if weeks.empty:
            raise JournalError(
                f"account {account.name!r} has no week recorded on or before {as_of} (its first "
                f"is {first}); pick a later date"
            )
    row = weeks.iloc[-1]
    held = account.journal.holdings(int(row["seq"]))
    return pd.Timestamp(row["week"]), holding_weights(held, float(row["equity"]))


def list_accounts(workspace: Path) -> list[dict[str, Any]]:
    """Every account of the workspace, with the error line of one that cannot be read."""
    folder = workspace / "replay"
    rows: list[dict[str, Any]] = []
    for path in sorted(folder.glob("*.sqlite")) if folder.is_dir() else []:
        name = path.stem
        try:
            with open_account(workspace, name) as account:
                doc = status(account)
            rows.append({k: doc[k] for k in _LIST_KEYS})
        except FoliosimError as err:  # a damaged account is listed as such, not fatal
            rows.append({"account": name, "error": " ".join(str(err).split())})
    return rows


_LIST_KEYS = (
    "account",
    "strategy",
    "model_version",
    "start_week",
    "last_week",
    "weeks_processed",
    "equity",
    "total_return",
    "look_ahead",
    "schedule",
)


def reset(workspace: Path, name: str) -> None:
    """Delete account ``name`` (journal, WAL and lock files), damaged or not."""
    path = journal_path(workspace, name)
    if not path.exists():
        raise JournalError(
            f"no paper account {name!r} in {path.parent}; see `foliosim replay list`"
        )
    with locked(path, f"account {name!r}"):
        remove(path)
        schedule_log_path(workspace, name).unlink(missing_ok=True)


def schedule_log_path(workspace: Path, name: str) -> Path:
    """``<workspace>/replay/<name>.schedule.jsonl``: the scheduled actions of the account and
    their outcomes (:mod:`simulator.web.scheduler` writes it)."""
    return journal_path(workspace, name).with_name(f"{name}.schedule.jsonl")


def describe(workspace: Path, name: str) -> str:
    """One line on what ``reset`` would delete (for its question)."""
    try:
        with open_account(workspace, name) as account:
            doc = status(account)
    except JournalError as err:
        return f"account {name!r} (unreadable: {err})"
    last = doc["last_week"] or "no week yet"
    return (
        f"account {name!r}: {doc['weeks_processed']} week(s) recorded up to {last}, "
        f"equity {doc['equity']:,.2f}"
    )


# --- report -----------------------------------------------------------------------------------


def _replayed(
    account: Account, workspace: Path, least: int, what: str
) -> tuple[pd.DataFrame, pd.DatetimeIndex, WeeklyData]:
    """The account's recorded weeks (at least ``least``, for ``what``), their index, and the
    weekly data that holds every one of them."""
    rows = account.journal.weeks()
    if len(rows) < least:
        raise JournalError(
            f"account {account.name!r} has {len(rows)} recorded week(s); {what} needs at "
            f"least {least}: step it further first"
        )
    weeks = pd.DatetimeIndex(rows["week"])
    weekly = _weekly(account.config, workspace, weeks[-1])
    absent = weeks.difference(weekly.calendar)
    if len(absent):
        raise DataError(f"the data no longer holds recorded week {absent[0].date()}")
    return rows, weeks, weekly


def comparison(account: Account, workspace: Path) -> pd.DataFrame:
    """The account's equity beside 1/N and the index over its recorded weeks, in money.

    Shape ``(n_weeks, 3)``, columns ``account, equal_weight, benchmark``: 1/N is the engine's
    run of the 1/N rule from the start cash over the same weeks with the account's settings
    (the tear sheet's 1/N); the index is scaled to the start cash at the first week (NaN where
    it has no price).
    """
    rows, weeks, weekly = _replayed(account, workspace, 2, "a comparison")
    plan = resolve(account.config)
    one_over_n = plan.run(plan.one_over_n_rule(), weekly, weeks, weeks[:-1])
    bench = weekly.benchmark.reindex(weeks)
    return pd.DataFrame(
        {
            "account": rows["equity"].to_numpy(float),
            "equal_weight": one_over_n.values.to_numpy(float),
            "benchmark": (bench / bench.iloc[0] * account.config.backtest.cash).to_numpy(float),
        },
        index=weeks,
    )


def account_result(account: Account, workspace: Path) -> BacktestResult:
    """The account so far as a backtest result (for a tear sheet): its equity, orders and
    weights from the journal, 1/N and the index over the same weeks from the data."""
    from simulator.backtest import BacktestResult, weights_table

    cfg = account.config
    journal = account.journal
    rows, weeks, weekly = _replayed(account, workspace, 3, "a tear sheet")
    values = pd.Series(rows["equity"].to_numpy(float), index=weeks, name="value")
    orders = journal.orders().drop(columns="week")
    holdings = journal.all_holdings()
    weights = (
        (holdings["shares"] * holdings["close"])
        .groupby([holdings["week"], holdings["ticker"]])
        .sum()
        .unstack()
        .fillna(0.0)
        .reindex(index=weeks, fill_value=0.0)
        .div(values, axis=0)
    )
    main = EngineResult(values, orders, weights, pd.DataFrame(columns=DECISION_COLUMNS))
    plan = resolve(cfg)
    decisions = weeks[:-1]
    one_over_n = plan.run(plan.one_over_n_rule(), weekly, weeks, decisions)
    baselines = {
        name: plan.run(b, weekly, weeks, decisions) for name, b in plan.baseline_rules().items()
    }
    # The journal records each close's holdings before that close's fills: the shares held
    # over that week. The engine values them after the fills that bought them: at the close
    # of the week itself with next-open fills, at the close before with close fills.
    held = weights.iloc[1:]
    if plan.engine.fill == "close":
        shares = holdings.groupby(["week", "ticker"])["shares"].sum().unstack()
        shares = shares.reindex(index=weeks).fillna(0.0)
        closes = weekly.closes().reindex(index=weeks, columns=shares.columns)
        held = (shares * closes.shift(1)).fillna(0.0).div(values.shift(1), axis=0).iloc[1:]
    returns, rf, summary = assemble(plan, weekly, weeks, main, one_over_n, baselines, held)
    exposure = strategy_exposure(main.weights, orders, values, weeks, plan.engine.fill, held)
    facts = ReplayFacts(
        account=account.name,
        model_version=account.model_version,
        model_train_end=account.meta.get("model_train_end"),
        allow_later_model=account.allow_later_model,
        look_ahead=account.look_ahead,
        start_week=account.start_week.date().isoformat(),
        weeks=len(weeks),
    )
    used = []
    for pin in account.pins:
        decided = weeks[(rows["model_version"] == pin.version).to_numpy()]
        if decided.empty:
            continue
        used.append(
            ModelUse(
                version=pin.version,
                arch=pin.tags.get("arch", "lstm"),  # a version from before architectures
                train_end=pin.train_end.date().isoformat(),
                first_decision=decided[0].date().isoformat(),
                last_decision=decided[-1].date().isoformat(),
                decisions=len(decided),
                orders=int((orders["model_version"] == pin.version).sum()),
                trained_by_this_run=False,
            )
        )
    from simulator.stress_inputs import run_stress  # its figures' module needs matplotlib

    stressed = run_stress(cfg, weights.iloc[-1], weeks[-1], workspace, weekly)
    summary = summary.model_copy(update={"replay": facts, "models": used, "stress": stressed})
    explanations = None
    if plan.strategy.uses_models and account.pins:
        explanations = _account_explanations(account, weekly, weeks, values)
    return BacktestResult(
        cfg,
        returns,
        weights_table(main),
        orders,
        journal.decisions(),
        rf,
        summary,
        exposure=exposure,
        explanations=explanations,
    )


def _account_explanations(
    account: Account, weekly: WeeklyData, weeks: pd.DatetimeIndex, values: pd.Series
) -> dict[str, Any] | None:
    """The tear sheet's Explanations of a paper account (as a backtest's: Integrated Gradients
    of the last decision's largest positions, permutation importance over its weeks), from
    its pinned versions and the forecasts its journal recorded; None before any forecast."""

    targets = account.journal.targets()
    targets = targets[targets["week"].isin(weeks[:-1])]
    if targets.empty or not targets["predicted_return"].notna().any():
        return None
    closes = weekly.closes()
    following = closes.reindex(weeks).shift(-1).rename_axis(index="week").reset_index()
    actual = following.melt(id_vars="week", var_name="ticker", value_name="actual_close")
    predictions = targets.rename(columns={"weight": "target"}).merge(
        actual, on=["week", "ticker"], how="left"
    )
    provider = _provider(account, weekly)
    plan = resolve(account.config)
    decisions = weeks[:-1]

    def rerun(signal: Any) -> float:
        rule = plan.strategy_rule(Resources(signal=lambda: signal, decisions=decisions))
        rerun_values = plan.run(rule, weekly, weeks, decisions).values
        return float(rerun_values.iloc[-1] / rerun_values.iloc[0] - 1.0)

    return run_explanations(
        provider,
        closes,
        predictions,
        rerun,
        float(values.iloc[-1] / values.iloc[0] - 1.0),
        account.config.model.seed,
    )


# --- explanations of an account -----------------------------------------------------------


def from_account(name: str, workspace: Path) -> Traded:
    """A paper account as ``foliosim explain`` reads it: its recorded forecasts and orders,
    and its pinned versions read from their files (verified)."""
    with open_account(workspace, name) as account:
        cfg = account.config
        check_models(cfg, f"account {name!r}")
        journal = account.journal
        weeks = journal.weeks()
        if weeks.empty:
            raise ConfigError(
                f"account {name!r} has no recorded weeks yet; step it first "
                f"(`foliosim replay step --account {name}`)"
            )
        targets = journal.targets()
        # Each week's deciding version (a scheduled account retrains between weeks).
        version = dict(zip(weeks["week"], weeks["model_version"], strict=True))
        forecasts = pd.DataFrame(
            {
                "week": targets["week"],
                "ticker": targets["ticker"],
                "model_version": targets["week"].map(version),
                "predicted_return": targets["predicted_return"],
                "target": targets["weight"],
            }
        )
        orders = journal.orders()
        weekly = _weekly(cfg, workspace, pd.Timestamp(weeks["week"].iloc[-1]))
        models = {m.info.ref: m.model for m in _provider(account, weekly).models}
    return Traded(f"account {name!r}", cfg, forecasts, orders, models.__getitem__)
