"""Blocking work of a request, off the event loop, bounded and timed.

Every route does its file reads and computations through a :class:`Pool`, so the event loop
only parses requests and writes answers: a slow or stuck request never holds up another one.
Two pools: the decisions (a recommendation, an account's step: they run a strategy's code,
which may take long or never end) and the reads (everything else).

- **Bounded.** A pool runs at most ``size`` threads; a request beyond them waits in a queue of
  at most ``queue`` (none for decisions): a request that finds the pool and its queue full is
  answered 503 at once. A thread counts until its work really ends, so work that outlived its
  request still takes its place: stuck work cannot pile up threads.
- **Timed.** A request waits at most ``limit`` seconds, in the queue and at work together;
  then it is answered 504. Python cannot stop a thread: the work goes on in the background
  and its result is dropped (a step that ends still records its weeks, as it would had the
  client gone away).
- **Daemon threads.** Work left running never keeps the process alive: SIGTERM or Ctrl-C
  stops the server after a short grace (:func:`simulator.web.app.serve`).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from simulator.web.site import ApiError

T = TypeVar("T")


class Pool:
    """At most ``size`` threads of blocking work and ``queue`` waiting requests, each request
    answered within ``limit`` seconds (see the module docstring). Counters are touched on the
    event loop's thread only."""

    def __init__(self, kind: str, size: int, queue: int, limit: float) -> None:
        self.kind = kind
        self.size = size
        self.queue = queue
        self.limit = limit
        self._running = 0
        self._waiting = 0
        self._slots: asyncio.Semaphore | None = None

    @property
    def running(self) -> int:
        """Threads at work now (work past its request's time limit included)."""
        return self._running

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a daemon thread; its exception is raised here. 503 when the pool
        and its queue are full, 504 over the time limit."""
        loop = asyncio.get_running_loop()
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.size)
        slots = self._slots
        if self._running + self._waiting >= self.size + self.queue:
            raise ApiError(
                503,
                "overloaded",
                f"the server is busy with {self._running} {self.kind} at once (its limit); "
                "try again later",
            )
        deadline = loop.time() + self.limit
        self._waiting += 1
        try:
            await asyncio.wait_for(slots.acquire(), self.limit)
        except TimeoutError:
            raise self._timeout() from None
        finally:
            self._waiting -= 1
        self._running += 1
        future: asyncio.Future[T] = loop.create_future()

        def finish(result: Any, error: BaseException | None) -> None:
            self._running -= 1
            slots.release()
            if future.done():
                return  # the request was answered already (504) or went away
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)

        def work() -> None:
            result: Any = None
            error: BaseException | None = None
            try:
                result = fn(*args)
            except Exception as err:  # raised to the request, whose handlers answer it
                error = err
            except BaseException as err:  # SystemExit from a rule: never out of the loop
                error = ApiError(500, "aborted", f"the work ended with {type(err).__name__}: {err}")
            # RuntimeError: the server has stopped, nobody waits for this any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(finish, result, error)

        threading.Thread(target=work, name=f"foliosim-{self.kind}", daemon=True).start()
        try:
            return await asyncio.wait_for(asyncio.shield(future), deadline - loop.time())
        except TimeoutError:
            raise self._timeout() from None

    def _timeout(self) -> ApiError:
        return ApiError(
            504,
            "timeout",
            f"the request took longer than the server's time limit ({self.limit:g} s); its work "
            "may still end in the background, unanswered (a step still records its weeks); "
            "`foliosim serve --time-limit SECONDS` sets the limit",
        )
