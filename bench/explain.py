"""Explanation benchmark: one week's Integrated Gradients for the paper's 12 tickers.

Run ``python bench/explain.py [--workspace DIR]`` (about 3 minutes in a fresh workspace: it
runs ``examples/paper2023.toml`` on the paper12 CSV folder, training the 12 paper-preset LSTMs;
seconds with a workspace that already holds them) or ``--quick`` (small 3-epoch models). It
times, for the decision week with the most orders:

- the attributions of the 12 forecasts (``models.explain.explain_window`` per ticker, the
  version loaded and the data in memory): the target is under 2 s on 2 cores;
- ``foliosim explain RUN_DIR --week DATE`` as a user runs it, a fresh process (imports, the
  registry, the data, the 12 attributions), wall clock;

and the quadrature steps and completeness gaps the attributions reached. It is a report, not a
test: it exits 0.
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
CONFIG = REPO / "examples" / "paper2023.toml"
DATA = ["data.source=csv", f"data.path={REPO.parent / 'shared' / 'data' / 'paper12'}"]
QUICK = ["model.preset=small", "model.max_epochs=3", "model.name=paper2023-quick"]
TARGET_S = 2.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, help="reuse (or fill) this workspace")
    parser.add_argument("--quick", action="store_true", help="small 3-epoch models")
    args = parser.parse_args()
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    workspace = args.workspace or Path(tempfile.mkdtemp(prefix="bench-explain-"))
    os.environ["FOLIOSIM_WORKSPACE"] = str(workspace)
    import pandas as pd
    import torch

    from models.explain import explain_window
    from simulator.backtest import run_backtest
    from simulator.config import load_config
    from simulator.data import load_daily, make_weekly
    from simulator.explain import from_run, window_inputs
    from simulator.features import feature_panels
    from simulator.report import write_run

    overrides = [*DATA, "report.baselines=", *(QUICK if args.quick else [])]
    print("bench/explain.py: one week's Integrated Gradients for the paper's 12 tickers")
    print(machine_line(cpu_model(), f"torch {torch.__version__}"))
    progress(f"the paper's experiment in {workspace} (trains its models unless registered) ...")
    cfg = load_config(CONFIG, overrides)
    run_dir = write_run(run_backtest(cfg, workspace), workspace / "bench-run", tearsheet=False)
    traded = from_run(run_dir, workspace)
    placed = traded.orders.dropna(subset=["date_submitted"])
    week = pd.Timestamp(placed.groupby("date_submitted").size().idxmax())
    weekly = make_weekly(load_daily(cfg.data, cfg.report.risk_free, workspace))
    closes, panels = weekly.closes(), feature_panels(weekly)
    rows = traded.forecasts[traded.forecasts["week"] == week]
    model = traded.load(str(rows["model_version"].iloc[0]))
    windows = {
        t: window_inputs(model, closes, panels, week, t) for t in sorted(set(rows["ticker"]))
    }
    inputs = {t: (w[0].to_numpy(float), w[1]) for t, w in windows.items() if w is not None}
    first = next(iter(inputs))
    explain_window(model.net_for(first), model.scalers[first], inputs[first][0],
                   extras=inputs[first][1])  # fmt: skip  # warm-up: Captum's import
    start = time.perf_counter()
    found = {
        t: explain_window(model.net_for(t), model.scalers[t], p, extras=x)
        for t, (p, x) in inputs.items()
    }
    seconds = time.perf_counter() - start
    progress("foliosim explain as a fresh process ...")
    begin = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "simulator.cli", "explain", str(run_dir), "--week",
         week.date().isoformat(), "--json"],
        check=True, capture_output=True, env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO,
    )  # fmt: skip
    command = time.perf_counter() - begin
    spec = model.spec
    print(f"model {model.version}: {spec.preset} preset, {spec.hidden} x {spec.layers}, window "
          f"{spec.window}; decision week {week.date()} ({len(inputs)} forecasts)")  # fmt: skip
    print(f"attributions of {len(inputs)} forecasts: {seconds:.3f} s "
          f"({seconds / len(inputs) * 1000:.0f} ms each)")  # fmt: skip
    steps = sorted({e.steps for e in found.values()})
    gap = max(e.gap for e in found.values())
    print(f"quadrature steps used: {steps}; largest completeness gap {gap:.1e} (return units)")
    print(f"foliosim explain RUN_DIR --week {week.date()} (fresh process): {command:.2f} s")
    verdict = "met" if seconds < TARGET_S else "NOT met"
    print(f"target: one week's explanation for 12 tickers under {TARGET_S:.0f} s: {verdict}")


if __name__ == "__main__":
    main()
