"""What the app serves from: the workspace, the run folder, the config folder, the token, and
the per-account cache of the comparison series (1/N and the index beside each account)."""

from __future__ import annotations

import contextlib
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from simulator import account_report, accounts
from simulator.config import Config, config_from_dict, read_toml
from simulator.errors import (
    AccountBusyError,
    ConfigError,
    FoliosimError,
    NetworkError,
    UnknownAccountError,
)
from simulator.web.files import regular_file
from simulator.web.listing import ModelListing

#: A run directory's or a model's name as a URL may carry it: checked before any lookup.
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")

#: The only ``set=`` overrides a web request may give: limits of the strategy and the profile,
#: numbers and booleans that choose no code and reach no file (the strategy, data paths, the
#: registry and the model come from the config alone).
WEB_OVERRIDES = (
    "strategy.max_weight",
    "strategy.gross",
    "strategy.allow_short",
    "profile.max_weight",
    "profile.gross",
    "profile.allow_short",
    "profile.vol_target",
    "profile.max_drawdown",
    "profile.max_name_vol",
    "profile.horizon_weeks",
)
#: The data sources a ``set=data.source=...`` may choose: files, never a download.
WEB_SOURCES = ("csv", "bundled")
#: How many ``set=`` overrides a request may give (each limit, a data source and a folder).
MAX_OVERRIDES = len(WEB_OVERRIDES) + 2

#: A control character other than a tab (NUL, a line break, ESC, DEL ...): no config path
#: nor override holds one (a NUL makes every path call raise ValueError).
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")

#: An absolute path of two parts or more inside a message (not a URL's ``//host``, a
#: relative ``a/b``, nor the ``</b>`` of markup a request sent).
_PART = r"[^\s'\"/,;()<>\[\]{}]+"
_ABSOLUTE = re.compile(rf"(?<!:/)(?<![\w.:~<>\]-])/(?:{_PART}/)+{_PART}")


class ApiError(Exception):
    """An error with its HTTP status and a stable code (``{"error": {...}}`` in JSON)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


_STATUS: list[tuple[type[Exception], int, str]] = [
    (UnknownAccountError, 404, "not_found"),
    (AccountBusyError, 409, "busy"),
    (NetworkError, 502, "network"),
    (ConfigError, 400, "bad_request"),
]


def as_api_error(err: Exception) -> ApiError:
    """The HTTP status and code of a foliosim or model error (see :mod:`simulator.web.app`)."""
    if isinstance(err, ApiError):
        return err
    message = " ".join(str(err).split())
    for kind, status, code in _STATUS:
        if isinstance(err, kind):
            return ApiError(status, code, message)
    if "no registered model named" in message or "there is no version" in message:
        return ApiError(404, "not_found", message)
    return ApiError(422, "unprocessable", message)


def not_found(message: str) -> ApiError:
    return ApiError(404, "not_found", message)


def check_name(kind: str, name: str) -> str:
    """``name`` when it is a plain name (letters, digits, ``.``, ``_``, ``-``), else 400."""
    if not SAFE_NAME.fullmatch(name):
        raise ApiError(
            400,
            "bad_name",
            f"{kind} name {name!r}: use letters, digits, '.', '_' or '-', starting with a "
            "letter or digit",
        )
    return name


@dataclass(frozen=True)
class Settings:
    """How the app runs.

    Attributes
    ----------
    workspace
        The foliosim workspace (``FOLIOSIM_WORKSPACE``, else ``.foliosim``).
    runs
        The folder of run directories (``runs`` beside where the command runs).
    root
        The folder configs are read from (``GET /api/recommend?config=...`` names a ``.toml``
        file inside it); relative data paths in them are read from the current folder, as
        the command line does.
    token
        The bearer token of every mutating endpoint.
    schedule
        Run the scheduler (off in tests that drive it by hand).
    tick_seconds
        How often the scheduler looks for due accounts.
    time_limit
        Seconds a request may take, its decision included (a recommendation, a step): over it
        the answer is 504 (see :mod:`simulator.web.work`).
    decision_workers
        Requests that run a strategy's decisions (recommend, step) at once; one more is 503.
    read_workers
        Reads served at once (more wait in a bounded queue).
    body_limit
        The largest request body, in bytes (413 over it).
    """

    workspace: Path
    runs: Path
    root: Path
    token: str
    host: str = "127.0.0.1"
    port: int = 8765
    schedule: bool = True
    tick_seconds: float = 60.0
    time_limit: float = 120.0
    decision_workers: int = 4
    read_workers: int = 16
    body_limit: int = 1 << 20

    def __post_init__(self) -> None:
        if not 0 < self.time_limit <= 86_400:
            raise ConfigError(f"time limit {self.time_limit:g} s: give 0 < seconds <= 86400")
        if self.decision_workers < 1 or self.read_workers < 1 or self.body_limit < 1:
            raise ConfigError("the app needs at least one worker of each kind and a body limit")


@dataclass(frozen=True)
class RunConfig:
    """A run config the app lists (:meth:`Site.run_configs`): a ``.toml`` file of its folder
    that names its ``backtest.strategy`` and validates as a foliosim config.

    Attributes
    ----------
    path
        Relative to the server's folder, as ``config=`` names it.
    strategy
        ``backtest.strategy``: a built-in name or a user rule's ``module:Class``.
    tickers
        How many tickers it names (None: every ticker of its data).
    source
        ``data.source``: ``bundled``, ``csv`` or ``yahoo``.
    data_path
        ``data.path`` as the config writes it (None without one).
    model
        ``model.name`` (the LSTM-signal strategy's registry name).
    """

    path: str
    strategy: str
    tickers: int | None
    source: str
    data_path: str | None
    model: str

    @classmethod
    def of(cls, path: str, cfg: Config) -> RunConfig:
        tickers = cfg.data.tickers
        return cls(
            path,
            cfg.backtest.strategy,
            len(tickers) if tickers is not None else None,
            cfg.data.source,
            cfg.data.path,
            cfg.model.name,
        )

    @property
    def runs(self) -> str:
        """What it recommends, in words (``1/N: recommends equal weights`` for 1/N).

        >>> RunConfig("a.toml", "equal_weight", 12, "csv", "data", "m").runs
        '1/N: recommends equal weights · 12 tickers · CSV files'
        >>> RunConfig("b.toml", "lstm_signal", None, "yahoo", None, "m").runs
        'LSTM signal (model m) · every ticker of its data · Yahoo prices (needs a network)'
        """
        if self.strategy == "equal_weight":
            what = "1/N: recommends equal weights"
        elif self.strategy == "lstm_signal":
            what = f"LSTM signal (model {self.model})"
        elif ":" in self.strategy:
            what = f"user rule {self.strategy}"
        else:
            what = f"{self.strategy} optimiser"
        names = f"{self.tickers} tickers" if self.tickers else "every ticker of its data"
        data = {
            "csv": "CSV files",
            "bundled": "bundled data",
            "yahoo": "Yahoo prices (needs a network)",
        }.get(self.source, self.source)
        return f"{what} · {names} · {data}"


@dataclass
class Site:
    """The app's state: settings and caches (one per app, never global)."""

    settings: Settings
    #: Each .toml file's run config (None: not one), by relative path, with the file's
    #: (mtime, size) when it was read.
    _configs: dict[str, tuple[tuple[int, int], RunConfig | None]] = field(default_factory=dict)
    _cache: dict[str, tuple[tuple[str, ...], pd.DataFrame]] = field(default_factory=dict)
    _locks: dict[str, threading.Lock] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)
    warmer: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="foliosim-warm")
    )
    #: The registry's versions, listed again only when the store changed (the model pages).
    models: ModelListing = field(default_factory=ModelListing)

    @property
    def workspace(self) -> Path:
        return self.settings.workspace

    def account_lock(self, name: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(name, threading.Lock())

    def comparison(self, account: accounts.Account) -> pd.DataFrame | None:
        """:func:`simulator.account_report.comparison` of ``account``, computed once per recorded
        week (None before its second week). The 1/N run over 500 weeks takes seconds: it is
        kept until the account records another week, and made ahead (:meth:`warm`) after a
        step and at start."""
        weeks = account.journal.weeks()
        if len(weeks) < 2:
            return None
        key = (
            account.meta.get("created_at", ""),
            str(len(weeks)),
            str(weeks["week"].iloc[-1].date()),
        )
        with self.account_lock(account.name):
            cached = self._cache.get(account.name)
            if cached is not None and cached[0] == key:
                return cached[1]
            frame = account_report.comparison(account, self.workspace)
            self._cache[account.name] = (key, frame)
            return frame

    def warm(self, name: str) -> None:
        """Compute the comparison of account ``name`` in the background."""
        self.warmer.submit(self._warm, name)

    def _warm(self, name: str) -> None:
        try:
            with accounts.open_account(self.workspace, name) as account:
                self.comparison(account)
        except FoliosimError:
            pass  # the page that needs it says what is wrong

    def config_path(self, relative: str) -> Path:
        """The config ``relative``: one of :meth:`configs` (400 for anything else, 404 for a
        plain ``.toml`` name that is not listed)."""
        if (
            not relative
            or len(relative) > 256
            or _CONTROL.search(relative)
            or Path(relative).is_absolute()
            or "\\" in relative
            or ".." in Path(relative).parts
            or not relative.endswith(".toml")
        ):
            raise ConfigError(
                f"config {relative[:256]!r}: give one of the configs the server lists, by its "
                "path relative to the server's folder (e.g. examples/paper12_equal_weight.toml)"
            )
        if relative not in self.configs():
            raise ApiError(
                404,
                "not_found",
                f"config {relative!r}: not one of the configs of the server's folder (see "
                "/recommend)",
            )
        return self.settings.root / relative

    def configs(self) -> list[str]:
        """The paths of :meth:`run_configs`."""
        return [c.path for c in self.run_configs()]

    def run_configs(self) -> list[RunConfig]:
        """The run configs of the root and its first level of folders, by path: ``.toml``
        regular files inside it (not hidden, not reached through a symbolic link, not in the
        run folder) whose own text names ``backtest.strategy`` and that validate as foliosim
        configs. ``pyproject.toml`` is not one, nor a training config (``foliosim train``'s,
        such as examples/paper12_lstm.toml, which leaves the strategy to the default: it
        would recommend 1/N). A file is read again only when its modification time or size
        changes; reading one imports no rule (a user rule's module is imported only when a
        recommendation runs it)."""
        root = self.settings.root
        found = [*root.glob("*.toml"), *root.glob("*/*.toml")]
        runs = self.settings.runs.resolve()
        listed = []
        for path in found:
            parts = path.relative_to(root).parts
            if any(part.startswith(".") for part in parts) or path.resolve().is_relative_to(runs):
                continue
            if regular_file(root, *parts):
                entry = self._run_config("/".join(parts), path)
                if entry is not None:
                    listed.append(entry)
        return sorted(listed, key=lambda c: c.path)

    def _run_config(self, relative: str, path: Path) -> RunConfig | None:
        try:
            stat = path.stat()
        except OSError:
            return None
        stamp = (stat.st_mtime_ns, stat.st_size)
        with self._guard:
            cached = self._configs.get(relative)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        entry: RunConfig | None = None  # not a run config: not listed
        try:
            raw = read_toml(path)
            backtest = raw.get("backtest")
            if isinstance(backtest, dict) and isinstance(backtest.get("strategy"), str):
                entry = RunConfig.of(relative, config_from_dict(raw, relative))
        except FoliosimError:
            pass
        with self._guard:
            self._configs[relative] = (stamp, entry)
        return entry

    def data_folders(self) -> dict[str, str]:
        """The CSV folders the listed configs read, as each writes it, by real path: the only
        folders a ``set=data.path=...`` may name (it reaches no file the app does not read
        already)."""
        folders: dict[str, str] = {}
        for c in self.run_configs():
            real = _real_path(c.data_path) if c.source == "csv" and c.data_path else None
            if real is not None and c.data_path is not None:
                folders.setdefault(real, c.data_path)
        return folders

    def public(self, value: Any) -> Any:
        """``value`` (a message, or a JSON document) with no absolute server path: the
        workspace, the run folder and the server's folder are named, every other absolute
        path is cut to its last part (``.../AAPL.csv``).

        >>> site = Site(Settings(Path("/srv/ws"), Path("/srv/runs"), Path("/srv/cfg"), "t" * 16))
        >>> site.public({"error": "no /srv/ws/replay/a.sqlite nor /data/csv/AAPL.csv"})
        {'error': 'no [workspace]/replay/a.sqlite nor .../AAPL.csv'}
        """
        if isinstance(value, str):
            return self._hide_paths(value)
        if isinstance(value, dict):
            return {k: self.public(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.public(v) for v in value]
        return value

    def _hide_paths(self, text: str) -> str:
        if "/" not in text:
            return text
        named = [
            (self.settings.workspace, "[workspace]"),
            (self.settings.runs, "[runs]"),
            (self.settings.root, "."),
        ]
        with contextlib.suppress(OSError):  # a folder removed under the server has no cwd
            named.append((Path.cwd(), "."))
        roots: list[tuple[str, str]] = []
        for folder, label in named:
            for form in {str(folder.absolute()), os.path.realpath(folder)}:
                if form != "/":
                    roots.append((form.rstrip("/"), label))
        for form, label in sorted(roots, key=lambda r: -len(r[0])):
            start = r"(?<![\w.-])" + re.escape(form)
            if label == ".":  # inside the server's folder: the path relative to it
                text = re.sub(r"(?<![\w./-])" + re.escape(form) + "/", "", text)
            text = re.sub(start + r"(?![\w.-])", label, text)
        return _ABSOLUTE.sub(lambda m: ".../" + m.group(0).rsplit("/", 1)[-1], text)


def check_overrides(overrides: list[str], folders: dict[str, str] | None = None) -> list[str]:
    """``overrides`` when each one sets a key of :data:`WEB_OVERRIDES`, ``data.source`` to one
    of :data:`WEB_SOURCES`, or ``data.path`` to one of ``folders`` (:meth:`Site.data_folders`,
    by real path), else 400: a web request chooses no code, no download and no file the
    app's configs do not read already."""
    if len(overrides) > MAX_OVERRIDES:
        raise ApiError(400, "bad_request", f"at most {MAX_OVERRIDES} set= overrides")
    known = folders or {}
    for item in overrides:
        if _CONTROL.search(item):
            raise ApiError(
                400,
                "bad_request",
                f"set {item[:200]!r}: holds a control character; give key=value as plain "
                "text, one override per set= (or per line of the form)",
            )
        key, sep, value = (part.strip() for part in item.partition("="))
        value = value.strip("\"'")
        if sep and (
            key in WEB_OVERRIDES
            or (key == "data.source" and value in WEB_SOURCES)
            or (key == "data.path" and value and _real_path(value) in known)
        ):
            continue
        shown = ", ".join(sorted(set(known.values()))) or "none here"
        raise ApiError(
            400,
            "bad_request",
            f"set {item[:200]!r}: the web app takes only {', '.join(WEB_OVERRIDES)}, "
            f"data.source={' or '.join(WEB_SOURCES)} and data.path= a folder its configs read "
            f"({shown}), as key=value (the strategy, the model and other data come from the "
            "config; run `foliosim recommend --set ...` for the others)",
        )
    return overrides


def _real_path(path: str) -> str | None:
    """``os.path.realpath`` of ``path``; None for one no path call takes (a NUL byte, a name
    the file system refuses)."""
    if _CONTROL.search(path):
        return None
    try:
        return os.path.realpath(path)
    except (ValueError, OSError):
        return None
