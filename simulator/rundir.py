"""Run directories: write a backtest's files atomically, and read them back.

A run directory holds ``config.toml`` (the resolved config), ``summary.json``,
``returns.csv``, ``weights.csv``, ``orders.csv``, ``decisions.csv`` (the strategy's decision
log: every decision week's target weights and scores, and its rule's notes, such as the weeks
an optimiser failed and went to cash), ``risk_free.csv``, ``exposure.csv`` (the strategy's
long, short, gross and net exposure and its turnover per return week, see
:mod:`simulator.exposure`) and ``tearsheet.html``;
an ``lstm_signal`` run adds ``predictions.csv`` (every forecast, its target weight and the
close that followed) and ``models.json`` (the versions used, their training and test records,
and the forecast errors over the traded weeks) and ``explanations.json`` (Integrated Gradients
of the last decision's largest positions and the permutation importance of each input
feature, :func:`simulator.explain.run_explanations`); a run with an investor profile adds
``bounds.csv`` (every week a profile limit bound, and why).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from simulator.errors import RunDirError
from simulator.leftovers import writing
from simulator.summary import REMEDY, nan_to_none, read_json_file, write_summary

if TYPE_CHECKING:
    from simulator.results import BacktestResult

RUN_FILES = ("config.toml", "summary.json", "returns.csv", "weights.csv", "orders.csv")
#: The largest CSV file of a run directory read: the largest a real run writes, predictions.csv
#: of 500 tickers over 20 years, is about 50 MB; a larger file is refused before it is read.
MAX_RUN_CSV_BYTES = 256 * 2**20


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


def write_files(
    result: BacktestResult, out: Path, finish: Callable[[Path], object] | None = None
) -> Path:
    """Write every data file of a run into ``out`` (created; must not hold files).

    Files are written into a temporary sibling folder that is renamed to ``out`` at the end,
    so an interrupted run leaves no half-written run directory. ``finish`` adds to that folder
    before the rename (:func:`simulator.report.write_run` adds the tear sheet); without it the
    run has no tear sheet (a sweep's trials; ``foliosim report`` makes it later).
    """
    check_out_dir(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # A shared lock on the parent while the temporary folder exists: another process's
    # clean-up of killed runs' leftovers (simulator.leftovers) leaves it alone.
    with writing(out.parent):
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        try:
            (tmp / "config.toml").write_text(result.config.to_toml(), encoding="utf-8")
            write_summary(result.summary, tmp / "summary.json")
            result.returns.to_csv(tmp / "returns.csv", date_format="%Y-%m-%d")
            result.weights.to_csv(tmp / "weights.csv", index=False, date_format="%Y-%m-%d")
            result.orders.to_csv(tmp / "orders.csv", index=False, date_format="%Y-%m-%d")
            result.decisions.to_csv(tmp / "decisions.csv", index=False, date_format="%Y-%m-%d")
            result.risk_free.rename("rate").to_csv(tmp / "risk_free.csv", date_format="%Y-%m-%d")
            if result.exposure is not None:
                result.exposure.to_csv(
                    tmp / "exposure.csv", date_format="%Y-%m-%d", float_format="%.10g"
                )
            if result.bounds is not None:
                result.bounds.to_csv(tmp / "bounds.csv", index=False, date_format="%Y-%m-%d")
            if result.predictions is not None:
                result.predictions.to_csv(
                    tmp / "predictions.csv",
                    index=False,
                    date_format="%Y-%m-%d",
                    float_format="%.10g",
                )
                models = json.dumps(nan_to_none(result.models), indent=2, allow_nan=False)
                (tmp / "models.json").write_text(models + "\n", encoding="utf-8")
            if result.explanations is not None:
                doc = json.dumps(nan_to_none(result.explanations), indent=1, allow_nan=False)
                (tmp / "explanations.json").write_text(doc + "\n", encoding="utf-8")
            if finish is not None:
                finish(tmp)
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


# --- reading --------------------------------------------------------------------------------


def read_run_csv(path: Path) -> pd.DataFrame:
    """A CSV file of a run directory; RunDirError when it is missing, not a regular file, over
    :data:`MAX_RUN_CSV_BYTES` (refused before it is read) or unreadable."""
    if not path.is_file():
        what = "is not a regular file" if path.exists() else "not found"
        raise RunDirError(f"{path} {what}; {REMEDY}")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise RunDirError(f"{path} cannot be read ({exc.strerror or exc}); {REMEDY}") from None
    if size > MAX_RUN_CSV_BYTES:
        raise RunDirError(
            f"{path} is too large ({size / 2**20:,.1f} MB, over the limit of "
            f"{MAX_RUN_CSV_BYTES // 2**20} MB); {REMEDY}"
        )
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        reason = " ".join(str(exc).split())
        raise RunDirError(f"{path} is not a readable CSV ({reason}); {REMEDY}") from None
    except OSError as exc:
        raise RunDirError(f"{path} cannot be read ({exc.strerror or exc}); {REMEDY}") from None


def read_returns(path: Path, columns: list[str]) -> pd.DataFrame:
    """``returns.csv``'s ``columns`` as floats, shape ``(n_weeks, len(columns))``, on a sorted
    DatetimeIndex."""
    frame = read_run_csv(path)
    expected = ("date", *columns)
    missing = [c for c in expected if c not in frame.columns]
    if missing:
        raise RunDirError(
            f"{path} lacks column(s) {', '.join(missing)} (expected {','.join(expected)}); {REMEDY}"
        )
    try:
        dates = pd.DatetimeIndex(pd.to_datetime(frame["date"], format="ISO8601"), name="date")
    except (ValueError, TypeError) as exc:
        raise RunDirError(f"{path} has a date that is not an ISO date ({exc}); {REMEDY}") from exc
    if not dates.is_monotonic_increasing or not dates.is_unique:
        raise RunDirError(f"{path} dates must be unique and increasing; {REMEDY}")
    values = frame[columns].apply(pd.to_numeric, errors="coerce")
    values.index = dates
    bad = ~np.isfinite(values.to_numpy(dtype=float))
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise RunDirError(
            f"{path} has a missing or non-numeric return in column '{columns[col]}' "
            f"on {dates[row].date()}; {REMEDY}"
        )
    if len(values) < 2:
        raise RunDirError(f"{path} has {len(values)} week(s); at least 2 are needed; {REMEDY}")
    return values.astype(float)


def _read_doc(path: Path, keys: tuple[str, ...]) -> dict[str, Any] | None:
    """A JSON object of a run directory holding ``keys`` (None when the file is absent)."""
    if not path.exists() and not path.is_symlink():
        return None
    doc = read_json_file(path)
    if not isinstance(doc, dict) or not set(keys) <= set(doc):
        raise RunDirError(f"{path} lacks {'/'.join(keys)}; {REMEDY}")
    return doc


def read_models(run_dir: Path) -> dict[str, Any] | None:
    """models.json of an LSTM run (None when the run has none)."""
    return _read_doc(run_dir / "models.json", ("used", "versions", "as_traded"))


def read_explanations(run_dir: Path) -> dict[str, Any] | None:
    """explanations.json of a model strategy's run (None for a run without one)."""
    return _read_doc(run_dir / "explanations.json", ("positions", "permutation", "features"))


def read_predictions(run_dir: Path) -> pd.DataFrame:
    """predictions.csv of an LSTM run, weeks parsed."""
    path = run_dir / "predictions.csv"
    frame = read_run_csv(path)
    need = ["week", "ticker", "model_version", "last_close", "predicted_close", "actual_close"]
    missing = [c for c in need if c not in frame.columns]
    if missing:
        raise RunDirError(f"{path} lacks column(s) {', '.join(missing)}; {REMEDY}")
    frame["week"] = pd.to_datetime(frame["week"], format="ISO8601")
    return frame


def read_exposure(run_dir: Path) -> pd.DataFrame | None:
    """exposure.csv (None for a run written before it existed), on a DatetimeIndex ``week``."""
    from simulator.exposure import EXPOSURE_COLUMNS

    path = run_dir / "exposure.csv"
    if not path.is_file():
        return None
    frame = read_run_csv(path)
    missing = [c for c in ["week", *EXPOSURE_COLUMNS] if c not in frame.columns]
    if missing:
        raise RunDirError(f"{path} lacks column(s) {', '.join(missing)}; {REMEDY}")
    try:
        weeks = pd.to_datetime(frame["week"], format="ISO8601")
        index = pd.DatetimeIndex(weeks, name="week").as_unit("ns")
    except (ValueError, TypeError) as exc:
        raise RunDirError(f"{path} has a week that is not an ISO date ({exc}); {REMEDY}") from exc
    values = frame[EXPOSURE_COLUMNS].apply(pd.to_numeric, errors="coerce")
    if not np.isfinite(values.to_numpy(dtype=float)).all():
        raise RunDirError(f"{path} has a missing or non-numeric figure; {REMEDY}")
    values.index = index
    return values.astype(float)


def read_weights(run_dir: Path) -> pd.DataFrame:
    """weights.csv: the long table ``date, ticker, weight`` (a row per position held after each
    week's fills, valued at that week's close; a week in cash has no row), dates parsed,
    weights as floats (NaN where not a number)."""
    path = run_dir / "weights.csv"
    frame = read_run_csv(path)
    missing = [c for c in ("date", "ticker", "weight") if c not in frame.columns]
    if missing:
        raise RunDirError(f"{path} lacks column(s) {', '.join(missing)}; {REMEDY}")
    try:
        dates = pd.to_datetime(frame["date"], format="ISO8601")
    except (ValueError, TypeError) as exc:
        raise RunDirError(f"{path} has a date that is not an ISO date ({exc}); {REMEDY}") from exc
    out = pd.DataFrame(
        {
            "date": dates,
            "ticker": frame["ticker"].astype(str),
            "weight": pd.to_numeric(frame["weight"], errors="coerce"),
        }
    )
    twice = out.duplicated(["date", "ticker"])
    if twice.any():
        row = out[twice].iloc[0]
        raise RunDirError(f"{path} lists {row['ticker']} twice on {row['date'].date()}; {REMEDY}")
    return out
