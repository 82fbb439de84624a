"""The leak audit's folder: each finished variant kept on disk, so an interrupted audit resumes.

``foliosim audit`` keeps every variant it finishes in ``variants/<variant>.json`` of its
folder (``--out``, else ``runs/audit-<config>-<digest>``, named by the config and its
``--set`` overrides so that the same command finds the same folder). Each file holds the
variant's row of the audit table under a key: the SHA-256 of the resolved config, the
variant, the weekly data, the source of a user's rule and foliosim's version. A rerun reuses
a row whose key matches and runs the variant again when any of them changed. ``audit.json``
holds the whole table once every variant is done. Every file is written to a temporary name
and renamed into place, so an interrupted write never leaves half a file.

When the config pins ``model.version`` (``NAME``, ``NAME/V`` or ``NAME@ALIAS``) the key holds
the version it resolves to now and the digests of its files: a moved alias or a newer version
runs the variants again. An audit holds an exclusive lock on ``<folder>/.lock`` while it
works, so a second audit of the same folder stops at once with one line. A write that fails
(a full disk, a folder made read-only or removed) is one :class:`RunDirError` line that says
what to do; the variants written before it are kept, and the same command resumes.

This module imports no torch: the command line names the folder before the models load.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import hashlib
import inspect
import json
import math
import os
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from simulator import __version__
from simulator.config import Config
from simulator.data import WeeklyData
from simulator.errors import ConfigError, RunDirError
from simulator.sweep_files import write_json

#: The audit's variants, in the order of its table (see :mod:`simulator.audit`).
VARIANTS = ("honest", "peek_next_close", "train_through_test", "scaler_full", "early_stop_on_test")
#: The folder of the finished variants' files, inside the audit's folder.
VARIANTS_DIR = "variants"
#: The whole table, written when every variant is done.
AUDIT_FILE = "audit.json"
#: The lock file an audit holds while it works (:meth:`AuditFolder.locked`).
LOCK_FILE = ".lock"
#: Fields of a row that are text or flags; the others are numbers (None on disk is NaN).
TEXT_FIELDS = ("variant", "leaked", "strategy", "note")


def check_variants(variants: Sequence[str]) -> list[str]:
    """``variants`` as a list, each a known one (else one line naming the known ones)."""
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ConfigError(
            f"unknown audit variant(s) {', '.join(unknown)}; known: {', '.join(VARIANTS)}"
        )
    return list(variants)


def config_digest(cfg: Config) -> str:
    """SHA-256 of the resolved config (the file and its ``--set`` overrides as validated)."""
    text = json.dumps(cfg.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def default_audit_dir(config: Path, cfg: Config, root: Path = Path("runs")) -> Path:
    """``runs/audit-<config file's stem>-<8 digits of the config's digest>``: the same
    command (config and overrides) names the same folder, so it resumes there."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", config.stem) or "config"
    return root / f"audit-{stem}-{config_digest(cfg)[:8]}"


def data_digest(weekly: WeeklyData) -> str:
    """SHA-256 of the weekly bars, the index and the risk-free rate a run reads."""
    h = hashlib.sha256()
    for ticker, bars in sorted(weekly.bars.items()):
        h.update(ticker.encode())
        h.update(pd.util.hash_pandas_object(bars, index=True).to_numpy().tobytes())
    h.update(pd.util.hash_pandas_object(weekly.benchmark, index=True).to_numpy().tobytes())
    if weekly.risk_free is not None:
        h.update(pd.util.hash_pandas_object(weekly.risk_free, index=True).to_numpy().tobytes())
    h.update(pd.util.hash_pandas_object(weekly.calendar.to_series()).to_numpy().tobytes())
    return h.hexdigest()


def rule_source(cfg: Config) -> str:
    """The source of the user rule ``cfg`` names (``package.module:Class``), else ``""``: an
    edited rule must not resume its old results. The module was imported when the config
    was resolved."""
    name = cfg.backtest.strategy
    if ":" not in name:
        return ""
    module = sys.modules.get(name.partition(":")[0])
    try:
        return inspect.getsource(module) if module is not None else ""
    except (OSError, TypeError):  # no source file (a compiled module): its name only
        return ""


def run_key(cfg: Config, weekly: WeeklyData, model: str = "") -> str:
    """What every variant's key shares: config, data, rule source, foliosim's version and
    ``model``, the registry version a pinned ``model.version`` resolves to now with its files'
    digests (``""`` when none is pinned): the config's text ``NAME@champion`` stays the same
    when the alias moves, the version it names does not."""
    doc = {
        "config": config_digest(cfg),
        "data": data_digest(weekly),
        "rule": hashlib.sha256(rule_source(cfg).encode()).hexdigest(),
        "foliosim": __version__,
    }
    if model:  # absent otherwise: the keys of audits that pin nothing stay as they were
        doc["model"] = model
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def variant_key(run: str, variant: str) -> str:
    """The key of ``variant``'s file: the run's key (:func:`run_key`) and the variant."""
    return hashlib.sha256(f"{run}\n{variant}".encode()).hexdigest()


class AuditFolder:
    """An audit's folder (see the module docstring).

    Attributes
    ----------
    path
        The folder.
    kept
        The variants whose current row is on disk: found by :meth:`get` or written by
        :meth:`put` in this run, in that order.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.kept: list[str] = []
        self._lock: int | None = None  # the lock file's descriptor while this audit holds it

    @classmethod
    def open(cls, path: Path) -> AuditFolder:
        """The audit folder at ``path``, made if needed; a folder that holds something else
        (files, and no ``variants/``) is refused, before any work."""
        if path.is_symlink() and not path.is_dir():
            raise RunDirError(f"{path} is a dangling symbolic link; choose another --out")
        if path.exists() and not path.is_dir():
            raise RunDirError(f"{path} is a file, not an audit folder; choose another --out")
        variants = path / VARIANTS_DIR
        mine = (VARIANTS_DIR, LOCK_FILE)
        if (
            path.is_dir()
            and any(p.name not in mine for p in path.iterdir())
            and not variants.is_dir()
        ):
            raise RunDirError(
                f"{path} exists and is not an audit folder (no {VARIANTS_DIR}/); choose "
                "another --out"
            )
        try:
            variants.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise RunDirError(
                f"cannot make {variants} ({err.strerror or err}); choose another --out"
            ) from None
        if not os.access(variants, os.W_OK):
            raise RunDirError(f"{variants} is not writable; choose another --out")
        return cls(path)

    def lock(self) -> None:
        """Hold the folder's lock (exclusive, not waiting) until :meth:`unlock`; another
        audit holding it is one line. Held already by this object: nothing to do."""
        if self._lock is not None:
            return
        target = self.path / LOCK_FILE
        with self._writing(target):
            fd = os.open(target, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunDirError(
                f"audit folder {self.path} is in use by another foliosim audit; wait for it "
                "or use --out"
            ) from None
        self._lock = fd

    def unlock(self) -> None:
        """Let go of the folder's lock (the file stays: removing it would race a waiter)."""
        if self._lock is not None:
            os.close(self._lock)  # closing the descriptor releases the flock
            self._lock = None

    @contextlib.contextmanager
    def locked(self) -> Iterator[AuditFolder]:
        """The folder, its lock held for the block (and left held if it was already)."""
        if self._lock is not None:
            yield self
            return
        self.lock()
        try:
            yield self
        finally:
            self.unlock()

    @contextlib.contextmanager
    def _writing(self, target: Path, verb: str = "write") -> Iterator[None]:
        """An OS error writing ``target`` as one line: what failed, why, and how to resume."""
        try:
            yield
        except OSError as err:
            raise RunDirError(self._cannot(target, err, verb)) from None

    def _cannot(self, target: Path, err: OSError, verb: str) -> str:
        reason = err.strerror or str(err)
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            fix = f"free space on the disk of {self.path}"
        elif err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            fix = f"make {self.path} writable"
        elif err.errno in (errno.ENOENT, errno.ENOTDIR):
            fix = f"check that {self.path} is still there"
        else:
            fix = f"fix {target.name}'s place in {self.path}"
        kept = f"finished variants are kept ({', '.join(self.kept)}): " if self.kept else ""
        return (
            f"cannot {verb} {target}: {reason}; {kept}{fix}, then run the same command to "
            "resume (or choose another --out)"
        )

    def clear(self) -> None:
        """Forget every kept variant and the table (``--fresh``)."""
        for path in (self.path / VARIANTS_DIR).glob("*.json"):
            with self._writing(path, "remove"):
                path.unlink()
        with self._writing(self.path / AUDIT_FILE, "remove"):
            (self.path / AUDIT_FILE).unlink(missing_ok=True)

    def file(self, variant: str) -> Path:
        return self.path / VARIANTS_DIR / f"{variant}.json"

    def get(self, variant: str, key: str) -> dict[str, Any] | None:
        """The row kept for ``variant`` under ``key``, else None (none kept, another key: a
        changed config or data, or a damaged file)."""
        try:
            doc = json.loads(self.file(variant).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            return None
        if (
            not isinstance(doc, dict)
            or doc.get("key") != key
            or not isinstance(doc.get("row"), dict)
        ):
            return None
        row: dict[str, Any] = {
            k: (math.nan if v is None and k not in TEXT_FIELDS else v)
            for k, v in doc["row"].items()
        }
        self.kept.append(variant)
        return row

    def put(self, variant: str, key: str, row: dict[str, Any], seconds: float) -> None:
        """Keep ``variant``'s finished row under ``key`` (atomically)."""
        doc = {
            "key": key,
            "variant": variant,
            "seconds": round(seconds, 1),
            "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "row": row,
        }
        with self._writing(self.file(variant)):
            write_json(self.file(variant), doc)
        self.kept.append(variant)

    def finish(self, rows: list[dict[str, Any]]) -> Path:
        """Write the whole table, ``audit.json``; its path."""
        target = self.path / AUDIT_FILE
        with self._writing(target):
            write_json(target, {"variants": rows})
        return target
