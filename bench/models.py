"""``foliosim serve``'s model pages: the time of ``/models`` and of one version's page on a
registry holding several versions of the same model (a seed sweep's).

Run ``python bench/models.py`` (about a minute and a half on 2 cores). It registers
``--names`` x ``--seeds`` tiny models (2 x 8 LSTM, three hand-made tickers, seeds 0..n-1) in
a fresh workspace, or reuses the registry of ``--workspace``, starts ``foliosim serve`` as a
separate process (``--no-schedule``, a free loopback port), then times:

1. **first /models**: right after start (it opens the store: MLflow's import and engine);
2. **/models**: ``--repeat`` more requests, median and max;
3. **a version's page** (``/models/<name>/1``, its model card rendered): median and max.

It is a report, not a test: it exits 0 unless the server fails to start.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from common import cpu_model, machine_line, progress
from serve import get, serving

REPO = Path(__file__).resolve().parents[1]


def make_registry(workspace: Path, names: int, seeds: int) -> float:
    """``names`` x ``seeds`` tiny versions registered in ``workspace``; the seconds it took."""
    sys.path.insert(0, str(REPO))
    from models.forecaster import train
    from models.registry import Registry
    from tests.model_data import TRAIN_END, tiny, walk_closes

    registry = Registry(workspace)
    start = time.perf_counter()
    for n in range(names):
        for seed in range(seeds):
            spec = dataclasses.replace(tiny(seed=seed), name=f"sweep-{n}")
            model, report = train(walk_closes(), spec, TRAIN_END)
            registry.register(model, report)
    return time.perf_counter() - start


def timed(client: httpx.Client, url: str, repeat: int) -> tuple[float, float, int]:
    """Median and max seconds of ``repeat`` GETs of ``url``, and the page's size."""
    times, size = [], 0
    for _ in range(repeat):
        status, seconds, size = get(client, url)
        assert status == 200, (url, status)
        times.append(seconds)
    return statistics.median(times), max(times), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, help="reuse this workspace's registry")
    parser.add_argument("--names", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    print(machine_line(cpu_model(), f"httpx {httpx.__version__}"))
    with tempfile.TemporaryDirectory(prefix="bench-models-") as tmp:
        workspace = args.workspace or Path(tmp) / "ws"
        if args.workspace is None:
            count = args.names * args.seeds
            progress(f"registering {count} tiny versions ...")
            took = make_registry(workspace, args.names, args.seeds)
            shape = f"{args.names} names x {args.seeds} seeds"
            print(f"setup: {count} versions ({shape}), {took:.1f} s")
        with serving(workspace, Path(tmp) / "runs") as served, httpx.Client(timeout=120) as client:
            base = served.base
            status, first, size = get(client, f"{base}/models")
            print(f"first /models: {first * 1000:.0f} ms (HTTP {status}, {size} bytes)")
            median, worst, size = timed(client, f"{base}/models", args.repeat)
            print(
                f"/models, {args.repeat} requests: median {median * 1000:.0f} ms, max "
                f"{worst * 1000:.0f} ms ({size} bytes)"
            )
            median, worst, size = timed(client, f"{base}/models/sweep-0/1", args.repeat)
            print(
                f"/models/sweep-0/1, {args.repeat} requests: median {median * 1000:.0f} ms, "
                f"max {worst * 1000:.0f} ms ({size} bytes)"
            )


if __name__ == "__main__":
    main()
