"""Leftovers of killed commands: temporary run folders and QuantStats' scratch folders.

A run directory is written into a hidden temporary sibling (``.<name>.<8 characters>``) that is
renamed into place at the end, and each tear sheet is drawn in a ``foliosim-qs-*`` folder of the
system's temporary directory; a SIGKILL leaves them behind. Every process that writes such
folders into a directory holds a shared lock on its ``.foliosim.lock`` meanwhile
(:func:`writing`); :func:`clean` removes leftovers only when it gets that lock exclusively, that
is when no foliosim process is writing there, so a concurrent run's folder is never touched.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

LOCK_NAME = ".foliosim.lock"
#: ``tempfile.mkdtemp``'s random part.
_RANDOM = r"[a-z0-9_]{8}"
#: Temporary run folders and --out probes (beside run directories), and QuantStats' scratch
#: folders (in the system's temporary directory).
RUN_TEMP = re.compile(rf"\.(?:.+\.|foliosim-probe-){_RANDOM}")
QS_TEMP = re.compile(rf"foliosim-qs-{_RANDOM}")
#: What a temporary run folder can hold: a folder holding anything else is not ours.
RUN_TEMP_FILES = frozenset(
    {
        "config.toml",
        "summary.json",
        "returns.csv",
        "weights.csv",
        "orders.csv",
        "risk_free.csv",
        "exposure.csv",
        "bounds.csv",
        "decisions.csv",
        "predictions.csv",
        "models.json",
        "explanations.json",
        "tearsheet.html",
    }
)


def system_temp() -> Path:
    return Path(tempfile.gettempdir())


@contextlib.contextmanager
def writing(*folders: Path) -> Iterator[None]:
    """Hold a shared lock on each folder's ``.foliosim.lock`` while temporary folders are
    written there (the folders are created if missing)."""
    with contextlib.ExitStack() as stack:
        for folder in folders:
            folder.mkdir(parents=True, exist_ok=True)
            handle = stack.enter_context(open(folder / LOCK_NAME, "a"))
            fcntl.flock(handle, fcntl.LOCK_SH)
        yield


def clean(
    folder: Path, pattern: re.Pattern[str], allowed: frozenset[str] | None = None
) -> list[Path]:
    """Remove the folders of ``folder`` whose names match ``pattern`` (and, with ``allowed``,
    that hold only such file names), owned by this user, unless a foliosim process is writing
    there now. Returns what was removed."""
    lock = folder / LOCK_NAME
    if not folder.is_dir():
        return []
    try:
        handle = open(lock, "a")  # noqa: SIM115 (closed by the with below)
    except OSError:
        return []  # a folder this user cannot write: nothing of ours to clean
    removed = []
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return []  # another foliosim process is writing here: its folders are live
        for path in sorted(folder.iterdir()):
            if (
                pattern.fullmatch(path.name)
                and path.is_dir()
                and not path.is_symlink()
                and path.stat().st_uid == os.getuid()
                and (allowed is None or all(p.name in allowed for p in path.iterdir()))
            ):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
    return removed


def clean_run_leftovers(run_dir: Path) -> list[Path]:
    """Remove what killed runs left beside ``run_dir`` and in the system's temporary folder."""
    parent = run_dir.absolute().parent
    return clean(parent, RUN_TEMP, RUN_TEMP_FILES) + clean(system_temp(), QS_TEMP)
