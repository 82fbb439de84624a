"""A time limit on a call made in the main thread: a user rule that never answers.

A rule runs in foliosim's process, so the only way to end one that blocks (``time.sleep``,
a loop, a read that never returns) without ending the process is a signal: :func:`deadline`
arms ``SIGALRM`` for the call and raises :class:`DeadlineExceeded` in it when time is up.
``DeadlineExceeded`` is a ``BaseException``, so a rule's ``except Exception`` cannot swallow
it. An alarm armed before (pytest-timeout's, say) keeps its time: it is re-armed after the
call, and passed on if it falls due inside it.

Outside the main thread (a web app's worker pool) signals cannot be used; there the caller's
own limit applies (``foliosim serve`` answers 504 when a request runs over).
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any


class DeadlineExceeded(BaseException):  # not an Exception: a rule's `except Exception` misses it
    """The call ran past its :func:`deadline`."""


def available() -> bool:
    """Whether :func:`deadline` can limit a call made here (the main thread, a POSIX alarm)."""
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Raise :class:`DeadlineExceeded` in the block once it has run ``seconds``.

    Does nothing where :func:`available` is false. Nested use is fine: the outer alarm is
    restored, with the time it had left less the time spent here.
    """
    if not available() or not seconds > 0:
        yield
        return
    start = time.monotonic()
    due = start + seconds
    outer_handler = signal.getsignal(signal.SIGALRM)
    outer_left, outer_interval = signal.getitimer(signal.ITIMER_REAL)
    outer_due = start + outer_left if outer_left > 0 else None

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        if time.monotonic() >= due - 1e-3:
            raise DeadlineExceeded(f"over {seconds:g} s")
        # The outer alarm fell due first: hand it on, then wait for ours.
        if callable(outer_handler):
            outer_handler(signum, frame)
        signal.setitimer(signal.ITIMER_REAL, max(due - time.monotonic(), 1e-3))

    signal.signal(signal.SIGALRM, on_alarm)
    first = seconds if outer_due is None else min(seconds, max(outer_due - start, 1e-3))
    signal.setitimer(signal.ITIMER_REAL, first)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, _as_handler(outer_handler))
        if outer_due is not None:
            left = max(outer_due - time.monotonic(), 1e-3)
            signal.setitimer(signal.ITIMER_REAL, left, outer_interval)


def _as_handler(handler: Any) -> Any:
    """``signal.getsignal``'s answer as ``signal.signal`` takes it (None: the default)."""
    return signal.SIG_DFL if handler is None else handler
