"""The paper's experiment end to end: ``examples/paper2023.toml`` on the paper12 CSV folder.

Run ``python bench/paper.py`` (about 3 minutes on 2 cores). In a fresh workspace it times:

1. the **first run**: import, data, the 1/N engine run, training and registering the 12
   paper-preset LSTMs, the strategy's engine run, and writing the run directory with its tear
   sheet; and the whole command as a user runs it (``foliosim backtest ...``, wall clock);
2. the **second run** of the same config, which reuses the 12 registered models.

Targets (2 cores): first run under 4 minutes, second under 20 s.

``--seeds 0,1,2 --fills close,next_open`` adds the spread of the result over training seeds
and fill modes (each seed trains 12 models; the second fill mode reuses them) and prints the
table docs/benchmarks.md shows. ``--quick`` uses the small preset with 3 epochs (a smoke run).
Every run is a fresh process (``--child``), as a user's command would be. It is a report, not
a test: it exits 0 unless a run fails.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import cpu_model, machine_line, progress

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "examples" / "paper2023.toml"
DEFAULT_DATA = "../shared/data/paper12"
QUICK = ["model.preset=small", "model.max_epochs=3", "model.name=paper2023-quick"]


def child(workspace: Path, out: Path, overrides: list[str]) -> None:
    """One run in this process; prints a JSON line of stage seconds and results."""
    os.environ["FOLIOSIM_WORKSPACE"] = str(workspace)
    t0 = time.perf_counter()
    from simulator.backtest import run_backtest
    from simulator.config import load_config
    from simulator.report import write_run

    imported = time.perf_counter() - t0
    cfg = load_config(CONFIG, overrides)
    result = run_backtest(cfg, workspace)
    t1 = time.perf_counter()
    write_run(result, out)
    written = time.perf_counter() - t1
    s = result.summary
    doc = {
        "stages": {"import": imported, **result.timings, "run_dir": written},
        "trained": sum(m["trained_by_this_run"] for m in s["models"]),
        "models": [m["version"] for m in s["models"]],
        "strategy": s["strategy"],
        "equal_weight": s["equal_weight"],
        "benchmark": s["benchmark"],
        "baselines": {name: s[name] for name in s["baselines"]},
        "psr": s["confidence"]["strategy"]["psr"],
        "psr_over_1n": s["confidence"]["over_equal_weight"]["psr"],
        "mse_ratio": s["prediction"]["mse_ratio"],
        "weeks": s["weeks"],
    }
    print(json.dumps(doc))


def run(workspace: Path, out: Path, overrides: list[str]) -> dict[str, Any]:
    """A child process; returns its JSON line plus the wall clock of the whole process."""
    t0 = time.perf_counter()
    argv = [sys.executable, __file__, "--child", str(workspace), str(out), *overrides]
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"run failed ({' '.join(overrides)}):\n{proc.stderr[-3000:]}")
    doc: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    doc["wall"] = wall
    return doc


def cli_wall(workspace: Path, out: Path, overrides: list[str]) -> float:
    """Wall clock of ``foliosim backtest`` as a user types it (models already registered)."""
    exe = Path(sys.executable).with_name("foliosim")
    sets = [arg for item in overrides for arg in ("--set", item)]
    t0 = time.perf_counter()
    subprocess.run(
        [str(exe), "backtest", str(CONFIG), *sets, "--out", str(out)],
        capture_output=True,
        cwd=REPO,
        check=True,
        env={**os.environ, "FOLIOSIM_WORKSPACE": str(workspace)},
    )
    return time.perf_counter() - t0


def stage_line(label: str, doc: dict[str, Any]) -> str:
    st = doc["stages"]
    parts = ", ".join(f"{k} {v:.1f} s" for k, v in st.items())
    trained = f"{doc['trained']} model version(s) trained" if doc["trained"] else "models reused"
    return f"{label}: {doc['wall']:.1f} s wall ({parts}; {trained})"


def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=DEFAULT_DATA, help="paper12 CSV folder")
    parser.add_argument("--quick", action="store_true", help="small preset, 3 epochs")
    parser.add_argument("--seeds", default="", help="extra spread runs, e.g. 0,1,2")
    parser.add_argument("--fills", default="close,next_open", help="fill modes of the spread")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.child:
        child(Path(args.child[0]), Path(args.child[1]), [*args.child[2:], *rest])
        return
    base = ["data.source=csv", f"data.path={args.data}", *(QUICK if args.quick else [])]
    import torch

    print(machine_line(cpu_model(), f"torch {torch.__version__}"))
    with tempfile.TemporaryDirectory(prefix="foliosim-bench-") as tmp:
        root = Path(tmp)
        ws = root / "ws"
        progress("first run (trains the 12 models) ...")
        first = run(ws, root / "run1", base)
        progress("second run (reuses them) ...")
        second = run(ws, root / "run2", base)
        progress("second run through the console script ...")
        wall_cli = cli_wall(ws, root / "run3", base)
        print(stage_line("first run ", first) + "  [target < 240 s]")
        print(stage_line("second run", second) + "  [target < 20 s]")
        print(f"second run, `foliosim backtest` as typed: {wall_cli:.1f} s wall")
        print(
            f"result (seed 0, fill close, {first['weeks']} weeks): strategy return "
            f"{pct(first['strategy']['total_return'])}%, Sharpe {first['strategy']['sharpe']:.3f}"
            f", max drawdown {pct(first['strategy']['max_drawdown'])}%; 1/N "
            f"{pct(first['equal_weight']['total_return'])}%; NASDAQ "
            f"{pct(first['benchmark']['total_return'])}%"
            + "".join(
                f"; {name} {pct(stats['total_return'])}%"
                for name, stats in first["baselines"].items()
            )
        )
        if not args.seeds:
            return
        rows = []
        fills = [f for f in args.fills.split(",") if f]
        for seed in [int(s) for s in args.seeds.split(",") if s]:
            for fill in fills:
                if seed == 0 and fill == "close":
                    doc = first
                else:
                    progress(f"spread: seed {seed}, fill {fill} ...")
                    over = [*base, f"model.seed={seed}", f"backtest.fill={fill}"]
                    doc = run(ws, root / f"s{seed}-{fill}", over)
                rows.append((seed, fill, doc))
        print()
        print(
            "| seed | fill | return % | volatility % | Sharpe | max drawdown % | "
            "P(Sharpe>0) | P(beats 1/N) | MSE ratio |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for seed, fill, doc in rows:
            st = doc["strategy"]
            print(
                f"| {seed} | {fill} | {pct(st['total_return'])} | {pct(st['volatility'])} | "
                f"{st['sharpe']:.3f} | {pct(st['max_drawdown'])} | {doc['psr']:.2f} | "
                f"{doc['psr_over_1n']:.2f} | {doc['mse_ratio']:.3f} |"
            )
        for fill in fills:
            mine = [d for _, f, d in rows if f == fill]
            ret = [100 * d["strategy"]["total_return"] for d in mine]
            sharpe = [d["strategy"]["sharpe"] for d in mine]
            one_n = 100 * mine[0]["equal_weight"]["total_return"]
            print(
                f"fill {fill}: strategy return over {len(mine)} seeds min {min(ret):.2f} / "
                f"median {statistics.median(ret):.2f} / max {max(ret):.2f} % (1/N {one_n:.2f} %);"
                f" Sharpe min {min(sharpe):.3f} / median {statistics.median(sharpe):.3f} / "
                f"max {max(sharpe):.3f}"
            )


if __name__ == "__main__":
    main()
