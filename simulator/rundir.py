"""Run directories: write a backtest's files atomically, and read them back.

A run directory holds ``config.toml`` (the resolved config), ``summary.json``,
``returns.csv``, ``weights.csv``, ``orders.csv``, ``risk_free.csv`` and ``tearsheet.html``;
an ``lstm_signal`` run adds ``predictions.csv`` (every forecast, its target weight and the
close that followed) and ``models.json`` (the versions used, their training and test records,
and the forecast errors over the traded weeks); a run with an investor profile adds
``bounds.csv`` (every week a profile limit bound, and why).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from simulator.backtest import BacktestResult
from simulator.errors import RunDirError

RUN_FILES = ("config.toml", "summary.json", "returns.csv", "weights.csv", "orders.csv")


def default_run_dir(strategy: str, root: Path = Path("runs")) -> Path:
    """``runs/<strategy>-<local time>`` (a suffix is added if it exists already)."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = root / f"{strategy}-{stamp}"
    n = 1
    while path.exists():
        n += 1
        path = root / f"{strategy}-{stamp}-{n}"
    return path


def check_out_dir(out: Path) -> None:
    """Refuse, before any work, an output folder that cannot become a new run directory.

    Runs are never overwritten: ``out`` must not hold files. It must not be a symbolic link
    (the run is renamed into place, which a link, dangling or not, does not allow), and its
    nearest existing parent must be a folder where a new folder can be made (probed: not a
    file, not read-only, not a virtual file system such as /proc).
    """
    if out.is_symlink():
        raise RunDirError(
            f"{out} is a symbolic link; give --out a real path (a run is renamed into place)"
        )
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise RunDirError(f"{out} already exists and is not empty; choose another --out")
    parent = out.absolute().parent
    while not parent.exists() and not parent.is_symlink() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise RunDirError(
            f"cannot make {out}: {parent} is not a folder (or is a dangling link); "
            "choose another --out"
        )
    try:
        probe = tempfile.mkdtemp(prefix=".foliosim-probe-", dir=parent)
    except OSError as err:
        raise RunDirError(
            f"cannot make {out}: {parent} does not take new folders ({err.strerror}); "
            "choose another --out"
        ) from None
    os.rmdir(probe)


def _clean(value: Any) -> Any:
    """JSON-safe: NaN and infinities become null."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_run(result: BacktestResult, out: Path) -> Path:
    """Write every file of a run into ``out`` (created; must not hold files).

    Files are written into a temporary sibling folder that is renamed to ``out`` at the end,
    so an interrupted run leaves no half-written run directory.
    """
    from simulator.report import write_tearsheet

    check_out_dir(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        (tmp / "config.toml").write_text(result.config.to_toml(), encoding="utf-8")
        summary = json.dumps(_clean(result.summary), indent=2, allow_nan=False)
        (tmp / "summary.json").write_text(summary + "\n", encoding="utf-8")
        result.returns.to_csv(tmp / "returns.csv", date_format="%Y-%m-%d")
        result.weights.to_csv(tmp / "weights.csv", index=False, date_format="%Y-%m-%d")
        result.orders.to_csv(tmp / "orders.csv", index=False, date_format="%Y-%m-%d")
        result.risk_free.rename("rate").to_csv(tmp / "risk_free.csv", date_format="%Y-%m-%d")
        if result.bounds is not None:
            result.bounds.to_csv(tmp / "bounds.csv", index=False, date_format="%Y-%m-%d")
        if result.predictions is not None:
            result.predictions.to_csv(
                tmp / "predictions.csv", index=False, date_format="%Y-%m-%d", float_format="%.10g"
            )
            models = json.dumps(_clean(result.models), indent=2, allow_nan=False)
            (tmp / "models.json").write_text(models + "\n", encoding="utf-8")
        write_tearsheet(tmp)
        tmp.chmod(0o755)  # mkdtemp makes it private; a run directory is an ordinary folder
        if out.exists():
            out.rmdir()  # empty, checked above
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def check_run_dir(run_dir: Path) -> None:
    """Raise RunDirError unless ``run_dir`` holds the files a report needs."""
    if not run_dir.is_dir():
        raise RunDirError(f"{run_dir}: no such run directory")
    missing = [f for f in RUN_FILES if not (run_dir / f).is_file()]
    if missing:
        raise RunDirError(
            f"{run_dir}: not a complete run directory (missing {', '.join(missing)}); "
            "run `foliosim backtest` to make one"
        )
