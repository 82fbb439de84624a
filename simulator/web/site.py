"""What the app serves from: the workspace, the run folder, the config folder, the token, and
the per-account cache of the comparison series (1/N and the index beside each account)."""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from simulator import replay
from simulator.errors import ConfigError, FoliosimError

#: A run directory's or a model's name as a URL may carry it: checked before any lookup.
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


class ApiError(Exception):
    """An error with its HTTP status and a stable code (``{"error": {...}}`` in JSON)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


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
    """

    workspace: Path
    runs: Path
    root: Path
    token: str
    host: str = "127.0.0.1"
    port: int = 8765
    schedule: bool = True
    tick_seconds: float = 60.0


@dataclass
class Site:
    """The app's state: settings and caches (one per app, never global)."""

    settings: Settings
    _cache: dict[str, tuple[tuple[str, ...], pd.DataFrame]] = field(default_factory=dict)
    _locks: dict[str, threading.Lock] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)
    warmer: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="foliosim-warm")
    )

    @property
    def workspace(self) -> Path:
        return self.settings.workspace

    def account_lock(self, name: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(name, threading.Lock())

    def comparison(self, account: replay.Account) -> pd.DataFrame | None:
        """:func:`simulator.replay.comparison` of ``account``, computed once per recorded
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
            frame = replay.comparison(account, self.workspace)
            self._cache[account.name] = (key, frame)
            return frame

    def warm(self, name: str) -> None:
        """Compute the comparison of account ``name`` in the background."""
        self.warmer.submit(self._warm, name)

    def _warm(self, name: str) -> None:
        try:
            with replay.open_account(self.workspace, name) as account:
                self.comparison(account)
        except FoliosimError:
            pass  # the page that needs it says what is wrong

    def config_path(self, relative: str) -> Path:
        """The config file ``relative`` inside :attr:`Settings.root` (400 otherwise)."""
        root = self.settings.root.resolve()
        candidate = Path(relative)
        if (
            not relative
            or candidate.is_absolute()
            or "\\" in relative
            or candidate.suffix != ".toml"
            or not (root / candidate).resolve().is_relative_to(root)
        ):
            raise ConfigError(
                f"config {relative!r}: give the path of a .toml file inside {root}, relative "
                "to it (e.g. examples/paper12_equal_weight.toml)"
            )
        path = root / candidate
        if not path.is_file():
            raise ApiError(404, "not_found", f"config {relative!r}: no such file in {root}")
        return path

    def configs(self) -> list[str]:
        """The ``.toml`` files in the root and its first level of folders (not hidden, not
        the run folder), relative to the root."""
        root = self.settings.root
        found = [*root.glob("*.toml"), *root.glob("*/*.toml")]
        runs = self.settings.runs.resolve()
        return sorted(
            str(p.relative_to(root))
            for p in found
            if not any(part.startswith(".") for part in p.relative_to(root).parts)
            and not p.resolve().is_relative_to(runs)
        )
