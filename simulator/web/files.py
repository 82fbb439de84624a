"""The files the app reads for a request: regular files that stay inside their folder.

A name from a URL is checked first (:func:`simulator.web.site.check_name`); then each part
below the folder is opened relative to its parent without following a symbolic link
(``O_NOFOLLOW``), and the last one must be a regular file (``fstat``). A symlinked run
directory, a tear sheet that links to ``/etc/passwd``, a FIFO or a device is answered as
absent (404), and nothing can be swapped between the check and the read: what is checked is
the open file itself. The folder itself (``--runs``, the workspace) is the user's choice and
may be a link.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

_READ = os.O_RDONLY | os.O_CLOEXEC
#: The chunk a file is streamed in.
CHUNK = 1 << 16


def open_inside(folder: Path, *parts: str) -> int | None:
    """A read-only descriptor of the regular file ``folder/parts...`` reached without a
    symbolic link below ``folder``, or None (absent, a link, not a regular file, unreadable).
    Each part is one name (no ``/``, ``.`` or ``..``); the caller closes the descriptor."""
    if not parts or any(p in ("", ".", "..") or "/" in p or "\0" in p for p in parts):
        return None
    try:
        fd = os.open(folder, _READ | os.O_DIRECTORY)
    except (OSError, ValueError):
        return None
    try:
        for part in parts[:-1]:
            inner = os.open(part, _READ | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = inner
        # O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused just below).
        found = os.open(parts[-1], _READ | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=fd)
    except (OSError, ValueError):
        return None
    finally:
        os.close(fd)
    if not stat.S_ISREG(os.fstat(found).st_mode):
        os.close(found)
        return None
    return found


def regular_file(folder: Path, *parts: str) -> bool:
    """Whether ``folder/parts...`` is a regular file reached without a symbolic link."""
    fd = open_inside(folder, *parts)
    if fd is None:
        return False
    os.close(fd)
    return True


def read_inside(folder: Path, *parts: str, limit: int) -> str | None:
    """The text of ``folder/parts...`` (see :func:`open_inside`), at most ``limit`` bytes of
    it; None where it is not such a file."""
    fd = open_inside(folder, *parts)
    if fd is None:
        return None
    with os.fdopen(fd, "rb") as file:
        return file.read(limit).decode("utf-8", errors="replace")


def size_of(fd: int) -> int:
    return os.fstat(fd).st_size


def stream(fd: int) -> Iterator[bytes]:
    """The bytes of an open file, in chunks. The file is owned from here: closed at its end,
    or with the iterator when a response is abandoned before or while it is sent."""
    return _chunks(os.fdopen(fd, "rb"))


def _chunks(file: BinaryIO) -> Iterator[bytes]:
    with file:
        while chunk := file.read(CHUNK):
            yield chunk
