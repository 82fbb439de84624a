"""``foliosim serve``: the time to serve a paper account's page with 500 weeks, and 50
concurrent API reads.

Run ``python bench/serve.py`` (about a minute on 2 cores). In a fresh workspace it opens a 1/N
paper account on ``examples/paper12_equal_weight.toml`` (CSV data, ``--data``, default
``../shared/data/paper12``) from 2013-07-05 and steps it 500 weeks, starts ``foliosim serve``
as a separate process (``--no-schedule``, a free loopback port), then times:

1. **first view**: ``GET /accounts/bench`` right after start (the app computes the page's 1/N
   and index series once per recorded week, in the background from start: this request may
   wait for it);
2. **page**: ``GET /accounts/bench`` ``--repeat`` times (the series cached): median, p90, max,
   and the page's size;
3. **50 concurrent reads**: 50 clients at once, each ``GET /api/accounts/bench`` (the 500-week
   status document) or ``GET /api/accounts``: errors (anything but HTTP 200), wall time,
   median and max latency;
4. **a step** through the API (``POST /api/accounts/bench/step``, one week, with the token).

Targets (2 cores): the page under 300 ms (median, warm); 50 concurrent reads with no error.
It is a report, not a test: it exits 0 unless the server fails to start.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
from common import cpu_model, machine_line, progress

REPO = Path(__file__).resolve().parents[1]
TOKEN = "bench-token-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_account(workspace: Path, data: Path, weeks: int) -> float:
    """The 1/N account ``bench`` stepped ``weeks`` weeks; returns the seconds it took."""
    sys.path.insert(0, str(REPO))
    from simulator import accounts, stepping
    from simulator.config import load_config

    cfg = load_config(
        REPO / "examples" / "paper12_equal_weight.toml",
        [f"data.path={data}", "data.start=2005-01-01", "backtest.start=2013-07-05"],
    )
    start = time.perf_counter()
    with accounts.start(workspace, "bench", cfg, source="bench"):
        pass
    account, done = stepping.step(workspace, "bench", weeks=weeks)
    account.close()
    assert len(done) == weeks, f"stepped {len(done)} weeks, not {weeks}"
    return time.perf_counter() - start


@dataclass(frozen=True)
class Served:
    """A ``foliosim serve`` process started by :func:`serving`."""

    #: ``http://127.0.0.1:PORT``.
    base: str
    #: Seconds from the process's start to its first answer.
    started: float


@contextlib.contextmanager
def serving(workspace: Path, runs: Path, token: str | None = None) -> Iterator[Served]:
    """``foliosim serve`` on ``workspace`` as a separate process (``--no-schedule``, a free
    loopback port, ``runs`` as its run folder, ``token`` as ``FOLIOSIM_TOKEN`` if given),
    yielded once it answers; terminated on leaving. SystemExit if it has not answered within
    60 seconds or has ended."""
    port = free_port()
    env = {**os.environ, "FOLIOSIM_WORKSPACE": str(workspace)}
    if token is not None:
        env["FOLIOSIM_TOKEN"] = token
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    argv = [sys.executable, "-m", "simulator.cli", "serve", "--port", str(port)]
    server = subprocess.Popen(
        [*argv, "--no-schedule", "--runs", str(runs)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        begun = time.perf_counter()
        with httpx.Client(timeout=120) as client:
            while True:
                try:
                    client.get(f"{base}/static/app/style.css")
                    break
                except httpx.TransportError:
                    if server.poll() is not None or time.perf_counter() - begun > 60:
                        raise SystemExit("the server did not start") from None
                    time.sleep(0.05)
        yield Served(base, time.perf_counter() - begun)
    finally:
        server.terminate()
        server.wait(30)


def get(client: httpx.Client, url: str) -> tuple[int, float, int]:
    start = time.perf_counter()
    response = client.get(url)
    return response.status_code, time.perf_counter() - start, len(response.content)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "paper12")
    parser.add_argument("--weeks", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--clients", type=int, default=50)
    args = parser.parse_args()
    print(machine_line(cpu_model(), f"httpx {httpx.__version__}"))
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        workspace = Path(tmp) / "ws"
        progress(f"stepping a 1/N account {args.weeks} weeks ...")
        took = make_account(workspace, args.data.resolve(), args.weeks)
        print(f"setup: account 'bench' with {args.weeks} weeks recorded in {took:.1f} s")
        with serving(workspace, Path(tmp) / "runs", TOKEN) as served:
            base, started = served.base, served.started
            with httpx.Client(timeout=120) as client:
                status, first, size = get(client, f"{base}/accounts/bench")
                print(
                    f"first view: {first * 1000:.0f} ms (HTTP {status}, {started:.1f} s after "
                    "the server process began; may wait for the 1/N series)"
                )
                times = []
                for _ in range(args.repeat):
                    status, seconds, size = get(client, f"{base}/accounts/bench")
                    assert status == 200, status
                    times.append(seconds)
                times.sort()
                p90 = times[int(0.9 * (len(times) - 1))]
                median = statistics.median(times)
                verdict = "met" if median < 0.3 else "NOT met"
                print(
                    f"page /accounts/bench ({args.weeks} weeks, {size / 1024:.0f} KiB), "
                    f"{args.repeat} requests: median {median * 1000:.0f} ms, p90 "
                    f"{p90 * 1000:.0f} ms, max {times[-1] * 1000:.0f} ms (target < 300 ms: "
                    f"{verdict})"
                )

            def read(i: int) -> tuple[int, float, int]:
                path = "/api/accounts/bench" if i % 2 == 0 else "/api/accounts"
                with httpx.Client(timeout=120) as own:
                    return get(own, base + path)

            begun = time.perf_counter()
            with ThreadPoolExecutor(args.clients) as pool:
                results = list(pool.map(read, range(args.clients)))
            wall = time.perf_counter() - begun
            errors = sum(status != 200 for status, _, _ in results)
            latency = sorted(seconds for _, seconds, _ in results)
            print(
                f"{args.clients} concurrent reads (GET /api/accounts/bench and /api/accounts): "
                f"{errors} error(s), {wall:.2f} s wall, latency median "
                f"{statistics.median(latency) * 1000:.0f} ms, max {latency[-1] * 1000:.0f} ms"
            )
            with httpx.Client(timeout=120) as client:
                begun = time.perf_counter()
                response = client.post(
                    f"{base}/api/accounts/bench/step",
                    headers={"Authorization": f"Bearer {TOKEN}"},
                    json={"weeks": 1},
                )
                took = time.perf_counter() - begun
                recorded = response.json().get("recorded")
                print(f"step via the API: HTTP {response.status_code} in {took:.2f} s {recorded}")


if __name__ == "__main__":
    main()
