"""The registry's versions as the model pages show them, listed again only when the store
changed.

Listing a registry takes a few store calls (:meth:`models.registry.Registry.versions`); the
``/models`` page and a version's page would make them on every request. :class:`ModelListing`
keeps the last listing of the workspace's embedded store with the size and modification time
(nanoseconds) of its database file and of SQLite's journal files beside it: every write
(training a version, setting an alias) changes them, so a request after one lists again. A
store of another URI (a tracking server) is listed on every request: nothing here can tell
when it changed.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from models.registry import Registry, VersionInfo
from simulator.training import open_registry

#: The files whose stats key the cache: the database and SQLite's rollback and write-ahead logs.
_SUFFIXES = ("", "-journal", "-wal")


def _stamp(database: Path) -> tuple[tuple[int, int] | None, ...]:
    """``(size, mtime_ns)`` of the database and its journals (None: absent)."""
    stamps: list[tuple[int, int] | None] = []
    for suffix in _SUFFIXES:
        try:
            st = database.with_name(database.name + suffix).stat()
        except OSError:
            stamps.append(None)
            continue
        stamps.append((st.st_size, st.st_mtime_ns))
    return tuple(stamps)


@dataclass
class ModelListing:
    """The versions of a workspace's registry, cached by its store's stamp (one per app)."""

    _cached: tuple[tuple[object, ...], list[VersionInfo]] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def versions(self, workspace: Path) -> tuple[Registry, list[VersionInfo]]:
        """The registry of ``workspace`` and its versions (see the module docstring)."""
        registry = open_registry(workspace)
        if not registry.embedded:
            return registry, registry.versions()
        database = registry.workspace / "mlflow.db"
        with self._lock:
            key = (str(registry.workspace), *_stamp(database))
            if self._cached is not None and self._cached[0] == key:
                return registry, list(self._cached[1])
            found = registry.versions()
            # Stamped before and after: a store written while it was listed is listed again.
            if _stamp(database) == key[1:]:
                self._cached = (key, found)
            return registry, list(found)
