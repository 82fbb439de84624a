"""Reading a user's file whole, with a size limit, without hanging on what is not a file.

A config, a run directory's JSON and a price CSV are each read by :func:`read_bounded`: only a
regular file (checked on the opened descriptor, so a pipe swapped in after ``is_file()`` is
refused, not waited on: the file is opened non-blocking), at most ``limit`` bytes (checked
before reading, and again in case it grew). Each caller turns a :class:`FileRefused` into its
own one-line error with its own remedy.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


class FileRefused(Exception):
    """Why :func:`read_bounded` did not read a file.

    Attributes
    ----------
    reason
        ``"missing"``, ``"not a regular file"``, ``"too large"`` or ``"unreadable"``.
    size
        The file's size in bytes (``"too large"``); None when it grew while being read.
    detail
        The system's reason (``"unreadable"``).
    """

    def __init__(self, reason: str, size: int | None = None, detail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.size = size
        self.detail = detail


def read_bounded(path: Path, limit: int) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` of them; else
    :class:`FileRefused`.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     (Path(tmp) / "a.txt").write_bytes(b"abc")
    ...     read_bounded(Path(tmp) / "a.txt", 10)
    ...     try:
    ...         read_bounded(Path(tmp) / "a.txt", 2)
    ...     except FileRefused as why:
    ...         print(why.reason, why.size)
    3
    b'abc'
    too large 3
    """
    if not path.is_file():
        raise FileRefused("not a regular file" if path.exists() else "missing")
    try:
        with os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise FileRefused("not a regular file")
            if info.st_size > limit:
                raise FileRefused("too large", info.st_size)
            data = handle.read(limit + 1)
    except OSError as err:
        raise FileRefused("unreadable", detail=str(err.strerror or err)) from None
    if len(data) > limit:  # it grew after the check
        raise FileRefused("too large")
    return data
