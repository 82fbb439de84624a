"""A sweep directory's files: what ``foliosim sweep`` writes and ``runs list`` reads.

The layout (:mod:`simulator.sweep` writes it)::

    sweep.json        the config, overrides, axes and command that made the sweep
    .lock             held (``flock``) by the sweep that runs in the folder: one at a time
    trials/<id>.json  a trial's row, written as it ends; trials/<id>/ its run directory
    sweep.csv         one row per trial, written at the end; sweep.html its report

Every JSON file is written to a temporary name beside it and renamed into place
(:func:`write_json`), so a reader never sees half a file. This module imports neither Ray
nor torch: ``runs list`` and the web app read sweeps through it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from simulator.errors import FoliosimError
from simulator.summary import nan_to_none

#: The file that makes a folder a sweep directory.
SWEEP_FILE = "sweep.json"
#: The sweep's report, written when it ends.
SWEEP_REPORT = "sweep.html"
#: The folder of the trials' rows and run directories.
TRIALS_DIR = "trials"
#: The lock a running sweep holds on its folder.
LOCK_FILE = ".lock"
#: A trial's status: ran, failed by its own error (a bad value, a rule's bug), or stopped by the
#: environment (a full disk, memory, a killed worker), which a re-run retries.
DONE, FAILED, RETRY = "done", "failed", "retry"


class SweepError(FoliosimError):
    """A sweep cannot start or could not finish (the cluster, the disk, its folder in use):
    one line, with the remedy."""


def _plain(value: Any) -> Any:
    """A numpy scalar (a week count) as the Python number it holds."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def write_json(path: Path, doc: dict[str, Any]) -> None:
    """``doc`` as JSON at ``path`` (NaN as null, numpy scalars as numbers): written to a
    temporary file beside it and renamed into place, so no reader sees half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(nan_to_none(doc), handle, indent=2, allow_nan=False, default=_plain)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def finished_rows(out: Path) -> dict[str, dict[str, Any]]:
    """The rows of the trials of the sweep in ``out`` that ended (``trials/<id>.json``), by
    id, in id order; a file that is not such a row (unreadable, another id) is skipped."""
    rows = {}
    for path in sorted((out / TRIALS_DIR).glob("t*.json")):
        try:
            row = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # a torn row cannot exist; a foreign file is skipped
            continue
        if isinstance(row, dict) and row.get("id") == path.stem:
            rows[path.stem] = row
    return rows


def trial_count(axes: Any) -> int:
    """The number of trials of ``sweep.json``'s ``axes`` (seeds x grid values x periods).

    Raises
    ------
    ValueError
        ``axes`` is not what :mod:`simulator.sweep` writes: its message says what is wrong.

    >>> trial_count({"seeds": [0, 1], "grid": [["strategy.max_weight", ["0.2", "0.3"]]],
    ...              "periods": []})
    4
    >>> trial_count({"seeds": [], "grid": [["a", 3]], "periods": []})
    Traceback (most recent call last):
    ...
    ValueError: grid axis 1 is not [key, [values]]
    """
    if not isinstance(axes, dict):
        raise ValueError("no axes")
    seeds, grid, periods = axes.get("seeds"), axes.get("grid"), axes.get("periods")
    if not (isinstance(seeds, list) and isinstance(grid, list) and isinstance(periods, list)):
        raise ValueError("its seeds, grid and periods are not lists")
    if not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise ValueError("a seed is not a whole number")
    sizes = []
    for n, item in enumerate(grid, 1):
        ok = isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)
        values = item[1] if ok else None
        if not isinstance(values, list) or not values:
            raise ValueError(f"grid axis {n} is not [key, [values]]")
        sizes.append(len(values))
    for n, period in enumerate(periods, 1):
        if not (isinstance(period, list) and len(period) == 2):
            raise ValueError(f"period {n} is not [start, end]")
    return max(len(seeds), 1) * max(len(periods), 1) * math.prod(sizes)


@contextlib.contextmanager
def locked(out: Path) -> Iterator[None]:
    """Hold the sweep folder ``out`` (which must exist) for one sweep: an exclusive
    ``flock`` on ``out/.lock``, taken without waiting and released when the block ends or the
    process dies (the lock is not inherited by the processes a sweep starts).

    Raises
    ------
    SweepError
        Another process holds the folder (its pid named), or the lock cannot be taken.
    """
    path = out / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as err:
        raise SweepError(
            f"cannot lock the sweep folder {out} ({path}: {err.strerror or err}); choose an "
            "--out this user can write"
        ) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise SweepError(
                    f"cannot lock the sweep folder {out} ({err.strerror or err}); use an --out "
                    "on a local disk"
                ) from None
            held = os.read(fd, 32).decode("ascii", "replace").strip()
            pid = f"pid {held}" if held.isdigit() else "pid unknown"
            raise SweepError(
                f"sweep folder {out} is in use by another foliosim sweep ({pid}); wait for it "
                "or use another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        yield
    finally:
        os.close(fd)  # closing the only descriptor releases the lock
