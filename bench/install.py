"""A fresh install, as the README's two commands make it: how long, how large, and what it holds.

Run ``python bench/install.py`` (about 3 minutes on 2 cores). In a temporary folder it makes a
new virtualenv with the Python that runs it and installs what ``make demo`` installs (pip
upgraded, the CPU torch wheel, then foliosim and its runtime dependencies, editable, as the
Makefile does), then what ``make test`` adds (the ``dev`` extra: pytest, ruff, mypy,
Playwright). It times each step and prints the virtualenv's size after each, and the largest
packages with what foliosim uses them for.

It measures the install on this machine as pip is configured here (torch's CPU wheel from a
local folder, the other wheels downloaded from PyPI), so a slow network adds to the figures.
``--torch-spec`` is the Makefile's ``TORCH_SPEC``. It is a report, not a test: it exits 0
unless a step fails. Run it alone on the machine.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import cpu_model, machine_line, progress

ROOT = Path(__file__).resolve().parent.parent

#: What the largest packages of the runtime install are there for.
WHY = {
    "torch": "the LSTM, attention and transformer models (CPU build)",
    "ray": "sweeps: a local Ray runtime, or a cluster by address",
    "pyarrow": "Parquet data files and pandas' Arrow dtypes",
    "scipy": "statistics (normal quantiles, Cornish-Fisher), skfolio's optimisers",
    "pandas": "every table",
    "sympy": "a dependency of torch",
    "mlflow": "the model registry (an embedded SQLite store)",
    "plotly": "the web app's charts (plotly.js served from the wheel)",
    "sklearn": "skfolio (min- and mean-variance baselines, the bundled S&P 500 sample)",
    "numpy": "arrays",
    "curl_cffi": "yfinance's HTTP client (downloads with a network)",
    "matplotlib": "the tear sheet's charts",
    "fontTools": "subsets the tear sheet's font",
    "cvxpy": "skfolio's optimisers",
    "grpc": "Ray's client (ray:// cluster addresses)",
    "sparsediffpy.libs": "cvxpy (skfolio's optimisers)",
    "playwright": "dev: drives Debian's chromium in the browser tests",
    "mypy": "dev: type checks",
}


def du(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):  # removed while walking
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def mb(size: int) -> str:
    return f"{size / 1e6:,.0f} MB"


def run(step: str, argv: list[str]) -> float:
    progress(f"{step}: {shlex.join(argv)}")
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if done.returncode:
        sys.exit(f"{step} failed (exit {done.returncode}):\n{done.stderr.decode()[-4000:]}")
    return time.perf_counter() - start


def site_packages(venv: Path) -> Path:
    return next((venv / "lib").glob("python3*/site-packages"))


def package_sizes(venv: Path) -> dict[str, int]:
    """Bytes per top-level entry of site-packages (folders and lone files such as mypyc's)."""
    return {
        p.name: du(p) if p.is_dir() else p.lstat().st_size for p in site_packages(venv).iterdir()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--torch-spec", default="torch==2.13.0")
    parser.add_argument("--top", type=int, default=14, help="largest packages shown")
    args = parser.parse_args()

    print(machine_line(cpu_model(), f"load average {os.getloadavg()[0]:.1f} at start"))
    with tempfile.TemporaryDirectory(prefix="foliosim-install-") as tmp:
        venv = Path(tmp) / "venv"
        py = str(venv / "bin" / "python")
        times: list[tuple[str, float, int]] = []

        def step(name: str, argv: list[str]) -> None:
            seconds = run(name, argv)
            times.append((name, seconds, du(venv)))

        step("virtualenv", [sys.executable, "-m", "venv", str(venv)])
        step("pip upgrade", [py, "-m", "pip", "install", "--quiet", "--upgrade", "pip"])
        step("torch (CPU)", [py, "-m", "pip", "install", "--quiet", *args.torch_spec.split()])
        step("foliosim (runtime)", [py, "-m", "pip", "install", "--quiet", "-e", "."])
        runtime = du(venv)
        before = package_sizes(venv)
        sizes = sorted(((size, name) for name, size in before.items()), reverse=True)
        step("dev extra (make test)", [py, "-m", "pip", "install", "--quiet", "-e", ".[dev]"])

        print("\n| step | seconds | virtualenv after |")
        print("|---|---|---|")
        for name, seconds, size in times:
            print(f"| {name} | {seconds:.1f} | {mb(size)} |")
        demo = sum(s for n, s, _ in times if n != "dev extra (make test)")
        print(f"\nmake demo's install: {demo:.0f} s, {mb(runtime)}")
        print(f"make test's install: {sum(s for _, s, _ in times):.0f} s, {mb(times[-1][2])}")
        print(f"\nLargest packages of the runtime install ({mb(runtime)}):\n")
        print("| package | size | what for |")
        print("|---|---|---|")
        for size, name in sizes[: args.top]:
            print(f"| {name} | {mb(size)} | {WHY.get(name, '')} |")
        after = package_sizes(venv)
        added = sorted(((size - before.get(n, 0), n) for n, size in after.items()), reverse=True)
        print("\nLargest additions of the dev extra:\n")
        for size, name in added[:5]:
            print(f"- {name}: {mb(size)} ({WHY.get(name, '')})")


if __name__ == "__main__":
    main()
