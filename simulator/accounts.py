"""Paper accounts: the journal of each, opening one, and what it holds now.

``start`` opens an account: the config is frozen into a journal (:mod:`simulator.journal`) in
the workspace, with data paths made absolute, the start week fixed, and, for ``lstm_signal``,
one registry version pinned by number with the digests of its files. :func:`status` reads an
account back as one typed document (:class:`AccountStatus`, ``replay status --json``); the
command line and the web app render it. Stepping an account through the weeks is
:mod:`simulator.stepping`; its report (tear sheet, comparison, explanations) is
:mod:`simulator.account_report`.

Time contract as in the backtest: the pinned model must have been trained on data that ended
before the account's start week, unless the account was opened with ``allow_later_model``,
which status and report then state.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from pydantic import BaseModel, ConfigDict

import simulator
from models.errors import ModelError
from models.spec import trained_before
from simulator.config import Config, config_from_dict
from simulator.data import WeeklyData
from simulator.engine import eligible_frame
from simulator.errors import (
    ConfigError,
    DataError,
    FoliosimError,
    JournalError,
    LookAheadError,
    UnknownAccountError,
)
from simulator.journal import Journal, locked, meta_json, remove
from simulator.results import check_excluded
from simulator.session import Note, Session, Window
from strategies.rebalance import FILLED

if TYPE_CHECKING:
    from models.forecaster import TrainProgress
    from models.registry import Registry, VersionInfo
    from simulator.walkforward import RegistrySignal

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
#: The values of an account's ``schedule`` (journal meta): ``weekly`` accounts are stepped
#: ``--live`` by ``foliosim serve`` after each week closes (see :mod:`simulator.web.scheduler`).
SCHEDULES = ("off", "weekly")


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
        model_tags, model_created`` (as :func:`pin_meta` writes them)."""
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
    if cfg.data.path:
        absolute = str(Path(cfg.data.path).expanduser().resolve())
        cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"path": absolute})})
    # Resolved now: a user rule that cannot be imported is refused before anything; the
    # data is loaded once the account's name is known to be free.
    session = Session.open(cfg, workspace, note=say)
    plan = session.plan
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
        week = _start_week(session, from_date)
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
                _pin(session, week, model, allow_later_model, say, train_progress, scheduled)
            )
        Journal.create(path, meta).close()
    return open_account(workspace, name)


def _start_week(session: Session, from_date: dt.date | None) -> pd.Timestamp:
    """The account's first week: the first one ending on or after ``from_date`` (default
    ``backtest.start``) at which some ticker has ``backtest.min_history`` bars."""
    cfg, weekly = session.config, session.weekly
    begin = pd.Timestamp(from_date or cfg.backtest.start)
    cal = weekly.calendar
    after = cal[cal >= begin]
    if after.empty:
        raise DataError(
            f"no week on or after {begin.date()} in the data (it ends {cal[-1].date()}); "
            "choose an earlier --from or extend data.end"
        )
    week = after[0]
    if session.plan.profile is not None:
        check_excluded(session.plan.profile, weekly.tickers)
    ok = eligible_frame(weekly, pd.DatetimeIndex([week]), cfg.backtest.min_history)
    if not ok.iloc[0].any():
        raise DataError(
            f"too little history: no ticker has {cfg.backtest.min_history} weekly bars by "
            f"{week.date()}; start later (--from) or lower backtest.min_history"
        )
    return pd.Timestamp(week)


def _pin(
    session: Session,
    week: pd.Timestamp,
    ref: str | None,
    allow_later: bool,
    say: Callable[[str], None],
    progress: TrainProgress | None,
    scheduled: bool = False,
) -> dict[str, str]:
    """The meta fields of the pinned version: ref, train_end, files and their digests."""
    # Imported here: the registry and the trainer import torch, which an account without
    # models never needs.
    from simulator.training import open_registry
    from simulator.walkforward import prepare_models

    cfg, weekly = session.config, session.weekly
    registry = open_registry(session.workspace, cfg.model.registry_uri)
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
    if not trained_before(info.train_end, week):
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
    return pin_meta(info, registry)


def pin_meta(info: VersionInfo, registry: Registry) -> dict[str, str]:
    """The meta keys of a pinned version (read back by :meth:`Pin.from_meta`)."""
    return {
        "model_version": info.ref,
        "model_train_end": info.train_end.date().isoformat(),
        "model_folder": str(registry.artifact_dir(info).resolve()),
        "model_tags": meta_json(info.tags),
        "model_created": info.created.isoformat(),
    }


# --- schedule ---------------------------------------------------------------------------------


def _check_schedule(schedule: str) -> None:
    if schedule not in SCHEDULES:
        raise ConfigError(f"schedule {schedule!r}: use one of {', '.join(SCHEDULES)}")


def set_schedule(workspace: Path, name: str, schedule: str) -> None:
    """Mark account ``name`` as stepped by ``foliosim serve`` (``weekly``) or not (``off``)."""
    _check_schedule(schedule)
    path = journal_path(workspace, name)
    with locked(path, f"account {name!r}"), open_account(workspace, name) as account:
        account.journal.set_meta({"schedule": schedule})


def schedule_log_path(workspace: Path, name: str) -> Path:
    """``<workspace>/replay/<name>.schedule.jsonl``: the scheduled actions of the account and
    their outcomes (:mod:`simulator.web.scheduler` writes it)."""
    return journal_path(workspace, name).with_name(f"{name}.schedule.jsonl")


# --- status -------------------------------------------------------------------------------------


class _Doc(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PinnedModel(_Doc):
    """A version the account pinned, and how many of its recorded weeks it decided."""

    version: str
    train_end: str
    decisions: int


class PendingTargets(_Doc):
    """The targets decided at the close of the last recorded week, not filled yet."""

    decided: str
    model_version: str
    #: When they fill: ``at the next week's open`` or ``at this close; booked with the next
    #: week``.
    fills: str
    #: Ticker -> target weight (a fraction of the equity), nonzero ones only.
    targets: dict[str, float]


class EquityPoint(_Doc):
    week: str
    equity: float


class AccountStatus(_Doc):
    """A paper account now (``replay status --json``; the web app's account page and
    ``GET /api/accounts/NAME``). Weeks are ISO dates; money in the account's currency;
    ``total_return`` and ``weights`` are fractions (of the start cash, of the equity)."""

    account: str
    journal: str
    config_source: str
    strategy: str
    fill: str
    #: The version pinned at start ("" for a strategy without models).
    model_version: str
    model_train_end: str | None
    allow_later_model: bool
    look_ahead: bool
    schedule: str
    models: list[PinnedModel]
    start_week: str
    start_cash: float
    weeks_processed: int
    last_week: str | None
    cash: float
    equity: float
    total_return: float
    #: Ticker -> shares held at the close of the last week.
    positions: dict[str, float]
    weights: dict[str, float]
    pending: PendingTargets | None
    equity_curve: list[EquityPoint]
    orders_filled: int
    orders_not_filled: int


class AccountRow(_Doc):
    """An account as ``replay list`` shows it: the first facts of its :class:`AccountStatus`."""

    account: str
    strategy: str
    model_version: str
    start_week: str
    last_week: str | None
    weeks_processed: int
    equity: float
    total_return: float
    look_ahead: bool
    schedule: str


class UnreadableAccount(_Doc):
    """An account ``replay list`` could not read, with the error's line."""

    account: str
    error: str


def status(account: Account) -> AccountStatus:
    """The account now (``replay status --json``); see :class:`AccountStatus`."""
    journal = account.journal
    weeks = journal.weeks()
    cfg = account.config
    doc = AccountStatus(
        account=account.name,
        journal=str(journal.path),
        config_source=account.meta.get("config_source", ""),
        strategy=cfg.backtest.strategy,
        fill=cfg.backtest.fill,
        model_version=account.model_version,
        model_train_end=account.meta.get("model_train_end"),
        allow_later_model=account.allow_later_model,
        look_ahead=account.look_ahead,
        schedule=account.schedule,
        models=[
            PinnedModel(
                version=pin.version,
                train_end=pin.train_end.date().isoformat(),
                decisions=int((weeks["model_version"] == pin.version).sum()),
            )
            for pin in account.pins
        ],
        start_week=account.start_week.date().isoformat(),
        start_cash=cfg.backtest.cash,
        weeks_processed=len(weeks),
        last_week=None,
        cash=cfg.backtest.cash,
        equity=cfg.backtest.cash,
        total_return=0.0,
        positions={},
        weights={},
        pending=None,
        equity_curve=[],
        orders_filled=0,
        orders_not_filled=0,
    )
    if weeks.empty:
        return doc
    last = weeks.iloc[-1]
    held = journal.holdings(int(last["seq"]))
    equity = float(last["equity"])
    orders = journal.orders()
    filled = int(orders["status"].isin(FILLED).sum())
    recorded = {
        "last_week": last["week"].date().isoformat(),
        "cash": float(last["cash"]),
        "equity": equity,
        "total_return": equity / cfg.backtest.cash - 1.0,
        "positions": {t: float(s) for t, s in zip(held["ticker"], held["shares"], strict=True)},
        "weights": holding_weights(held, equity),
        "pending": _pending(account, last),
        "equity_curve": [
            EquityPoint(week=w.date().isoformat(), equity=float(e))
            for w, e in zip(weeks["week"], weeks["equity"], strict=True)
        ],
        "orders_filled": filled,
        "orders_not_filled": len(orders) - filled,
    }
    return doc.model_copy(update=recorded)


def _pending(account: Account, last: pd.Series) -> PendingTargets:
    """The targets decided at the close of ``last`` (a row of the journal's weeks)."""
    targets = account.journal.targets(int(last["seq"]))
    return PendingTargets(
        decided=last["week"].date().isoformat(),
        model_version=str(last["model_version"]),
        fills="at the next week's open"
        if account.config.backtest.fill == "next_open"
        else "at this close; booked with the next week",
        targets={
            t: float(w)
            for t, w in zip(targets["ticker"], targets["weight"], strict=True)
            if w != 0.0
        },
    )


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


# --- list, reset ------------------------------------------------------------------------------


def list_accounts(workspace: Path) -> list[AccountRow | UnreadableAccount]:
    """Every account of the workspace, with the error line of one that cannot be read."""
    folder = workspace / "replay"
    rows: list[AccountRow | UnreadableAccount] = []
    for path in sorted(folder.glob("*.sqlite")) if folder.is_dir() else []:
        name = path.stem
        try:
            with open_account(workspace, name) as account:
                doc = status(account)
            rows.append(AccountRow(**doc.model_dump(include=set(AccountRow.model_fields))))
        except FoliosimError as err:  # a damaged account is listed as such, not fatal
            rows.append(UnreadableAccount(account=name, error=" ".join(str(err).split())))
    return rows


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


def describe(workspace: Path, name: str) -> str:
    """One line on what ``reset`` would delete (for its question)."""
    try:
        with open_account(workspace, name) as account:
            doc = status(account)
    except JournalError as err:
        return f"account {name!r} (unreadable: {err})"
    last = doc.last_week or "no week yet"
    return (
        f"account {name!r}: {doc.weeks_processed} week(s) recorded up to {last}, "
        f"equity {doc.equity:,.2f}"
    )


# --- the pinned versions ------------------------------------------------------------------------


def pinned_signal(
    account: Account, weekly: WeeklyData, first: pd.Timestamp | None = None
) -> RegistrySignal:
    """The pinned versions, read from their files (no MLflow), verified against their digests.

    With ``first`` (the first week to decide), only the versions a decision from then on can
    pick: the newest one trained before ``first`` and those trained later.
    """
    # Imported here: the model files and the provider import torch, which an account
    # without models never needs.
    from models.artifacts import read_version
    from models.registry import VersionInfo
    from simulator.walkforward import RegistrySignal, UsedModel

    pins = account.pins
    if first is not None:
        before = [i for i, p in enumerate(pins) if trained_before(p.train_end, first)]
        pins = pins[before[-1] :] if before else pins
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


@dataclass
class Pinned:
    """The versions a paper account pinned (a :class:`simulator.session.ModelSource`): those
    a decision from the window's first week on can pick. After :meth:`signal`,
    :attr:`provider` holds the provider (its forecasts go into the journal)."""

    account: Account
    provider: RegistrySignal | None = None

    def signal(self, session: Session, window: Window) -> RegistrySignal:
        self.provider = pinned_signal(self.account, session.weekly, window.first)
        return self.provider
