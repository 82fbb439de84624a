"""Sweep benchmark: trials of the demo config, serial in one process against a local Ray sweep,
Ray's own overhead per trial, and a two-node Ray cluster on this machine through --address.

Run ``python bench/sweep.py`` (40 trials of the demo config, model seeds 0-39, small models as
the demo trains them: long) or ``--trials N``, ``--quick`` (8 trials on 5 tickers, 5 epochs).
Each trial trains its own models (its seed), so trials share nothing but the data. It prints:

- the serial time (every trial in turn, one process, torch on one thread, each writing its run
  directory as a sweep's trial does) and the Ray sweep's
  time (``foliosim sweep``'s local runtime, one CPU a trial), their ratio against the target
  of at least 1.8x on 2 cores, and the sweep's result table equal to the serial one;
- Ray's overhead per trial: the round trip of an empty task, and the runtime's start;
- a two-node cluster (``ray.cluster_utils.Cluster``: a head and a worker node of one CPU
  each, on 127.0.0.1) used through ``--address``: which nodes ran trials, and whether its
  table equals the single-node sweep's.

It is a report, not a test: it exits 0.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import cpu_model, machine_line, progress

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
TARGET = 1.8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=None, help="default 40 (--quick: 8)")
    parser.add_argument("--quick", action="store_true", help="5 tickers, 5 epochs (8 trials)")
    args = parser.parse_args()
    os.environ["FOLIOSIM_THREADS"] = "1"  # serial trials on one thread, as the workers
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    import json
    from importlib import resources

    import pandas as pd
    import ray

    from simulator.backtest import run_backtest
    from simulator.config import load_config
    from simulator.rundir import write_files
    from simulator.sweep import Axes, make_trials, run_sweep, start_ray, summary_row

    trials_n = args.trials or (8 if args.quick else 40)
    base = ["report.baselines="]
    if args.quick:
        base += ["model.max_epochs=5", "data.tickers=AAPL,AMD,BAC,CVX,JPM"]
    axes = Axes(seeds=tuple(range(trials_n)))
    with resources.as_file(resources.files("simulator") / "configs" / "demo.toml") as p:
        config = Path(tempfile.mkdtemp(prefix="bench-sweep-")) / "demo.toml"
        config.write_text(p.read_text(encoding="utf-8"), encoding="utf-8")
    print("bench/sweep.py: trials of the demo config, serial vs Ray")
    print(machine_line(cpu_model(), f"ray {ray.__version__}"))
    print(f"{trials_n} trials (model seeds 0-{trials_n - 1}); overrides: {' '.join(base)}")

    trials = make_trials(axes, base)
    with tempfile.TemporaryDirectory(prefix="bench-serial-") as ws:
        progress("serial ...")
        start = time.perf_counter()
        serial = {}
        for t in trials:
            result = run_backtest(load_config(config, list(t.overrides)), Path(ws))
            # The same work as a sweep's trial: its run directory, without a tear sheet.
            write_files(result, Path(ws) / "serial" / t.id)
            serial[t.id] = summary_row(result.summary)["total_return"]
        serial_s = time.perf_counter() - start

    with tempfile.TemporaryDirectory(prefix="bench-ray-") as ws:
        progress("Ray runtime start and empty tasks ...")
        clock = time.perf_counter()
        start_ray(cpus=os.cpu_count())
        started_s = time.perf_counter() - clock

        @ray.remote(num_cpus=1)
        def nothing() -> None:
            return None

        ray.get([nothing.remote() for _ in range(20)])  # warm the workers
        clock = time.perf_counter()
        ray.get([nothing.remote() for _ in range(200)])
        per_task_ms = (time.perf_counter() - clock) / 200 * 1000
        progress("Ray sweep ...")
        clock = time.perf_counter()
        swept = run_sweep(config, Path(ws) / "sweep", axes, Path(ws), base=base)
        ray_s = time.perf_counter() - clock
        ray.shutdown()
    table = swept.table.set_index("trial")["total_return"]
    same = all(table[k] == v for k, v in serial.items())
    speed = serial_s / ray_s
    print(f"serial, one process:   {serial_s:8.1f} s ({serial_s / trials_n:.1f} s a trial)")
    print(f"Ray sweep, local:      {ray_s:8.1f} s ({ray_s / trials_n:.1f} s a trial)")
    print(
        f"Ray overhead: runtime start {started_s:.1f} s, empty task round trip {per_task_ms:.2f} ms"
    )
    verdict = "met" if speed >= TARGET else "NOT met"
    print(f"target: Ray sweep at least {TARGET}x faster than serial: {verdict} ({speed:.2f}x)")
    print(f"the sweep's total returns equal the serial runs': {'yes' if same else 'NO'}")

    progress("two-node cluster ...")
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, connect=False, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-cluster-") as ws:
            out = Path(ws) / "sweep"
            env = {**os.environ, "FOLIOSIM_WORKSPACE": ws, "PYTHONPATH": str(REPO)}
            exe = [sys.executable, "-m", "simulator.cli", "sweep", str(config)]
            cmd = [*exe, "--seeds", f"0-{trials_n - 1}", "--address", cluster.address]
            cmd += [a for b in base for a in ("--set", b)] + ["--out", str(out)]
            clock = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
            cluster_s = time.perf_counter() - clock
            if proc.returncode != 0:
                print(f"two-node cluster: FAILED ({proc.stderr.strip()[-300:]})")
                return
            nodes = {json.loads(p.read_text())["node"] for p in (out / "trials").glob("t*.json")}
            other = pd.read_csv(out / "sweep.csv").set_index("trial")["total_return"]
            equal = all(other[k] == v for k, v in table.items())
            print(
                f"two-node cluster via --address: {cluster_s:.1f} s, trials ran on "
                f"{len(nodes)} node(s); table equals the single-node sweep's: "
                f"{'yes' if equal else 'NO'}"
            )
    finally:
        cluster.shutdown()


if __name__ == "__main__":
    main()
