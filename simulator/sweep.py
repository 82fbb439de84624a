"""Sweeps: many trials of one config, on Ray, with statistics over them (``foliosim sweep``).

A sweep is a list of trials, the cartesian product of its axes: model seeds (``--seeds
0-9``), config values (``--grid section.key=a,b,c``, repeatable) and test periods
(``--periods 2019,2020`` for calendar years, or ``START:END`` ranges). A trial is the config
with its axes' values set (``--set`` overrides), run by :func:`simulator.backtest.run_backtest`
exactly as ``foliosim backtest`` runs it, so a trial equals a plain backtest of the same values.

Trials run as Ray tasks, one CPU each, torch pinned to that one CPU (``FOLIOSIM_THREADS=1``):
on a local Ray runtime started for the sweep and stopped after it (default), or on a cluster
(``--address``). Trials share the workspace's registry: a model version that several trials
need (same spec, same data) is trained once (:func:`simulator.walkforward.training_lock`).

The sweep directory (``--out``) holds ``sweep.json`` (the config and the axes), one folder per
trial (``trials/<id>/``, its run directory without a tear sheet) and its row
(``trials/<id>.json``), written as each trial ends; re-running the same command resumes: only
the trials without a row run. At the end it writes ``sweep.csv`` (one row per trial) and
``sweep.html`` (distributions against 1/N and the index, the share of trials beating 1/N, the
deflated Sharpe ratio of the best trial, the probability of backtest overfitting over the
periods). Each finished trial is also an MLflow run in an experiment named after the sweep.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import math
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from simulator.config import Config, apply_overrides, load_config
from simulator.errors import ConfigError, FoliosimError
from simulator.summary import RunSummary, nan_to_none

SWEEP_FILE = "sweep.json"
#: The metrics of each series that sweep.csv keeps (summary.json's names).
METRICS = ("total_return", "cagr", "volatility", "sharpe", "sortino", "max_drawdown")
SERIES = ("strategy", "equal_weight", "benchmark")


# --- axes --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Axes:
    """The axes of a sweep: seeds, grid values and test periods (empty: not swept)."""

    seeds: tuple[int, ...] = ()
    grid: tuple[tuple[str, tuple[str, ...]], ...] = ()
    periods: tuple[tuple[dt.date, dt.date], ...] = ()


def parse_seeds(text: str) -> tuple[int, ...]:
    """``"0-9"`` or ``"0,3,7"`` (or both, ``"0-2,7"``) as seeds.

    >>> parse_seeds("0-2,7")
    (0, 1, 2, 7)
    """
    seeds: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        found = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not found:
            raise ConfigError(f"--seeds {text!r}: expected seeds like 0-9 or 0,3,7")
        first, last = int(found[1]), int(found[2] if found[2] is not None else found[1])
        if last < first:
            raise ConfigError(
                f"--seeds {text!r}: the range {part} runs backwards; write {last}-{first}"
            )
        seeds.extend(range(first, last + 1))
    if len(set(seeds)) < len(seeds):
        raise ConfigError(f"--seeds {text!r} names a seed twice")
    return tuple(seeds)


def split_values(text: str) -> tuple[str, ...]:
    """A grid's values: split on the commas outside brackets and quotes, so that a value may
    be a list (``model.features=["close"],["close","volume"]``).

    >>> split_values('a, b')
    ('a', 'b')
    >>> split_values('["close"],["close","volume"]')
    ('["close"]', '["close","volume"]')
    """
    values, depth, quote, part = [], 0, "", ""
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        elif char == "," and depth == 0:
            values.append(part)
            part = ""
            continue
        part += char
    values.append(part)
    return tuple(v.strip() for v in values if v.strip())


def parse_grid(items: Sequence[str]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """``section.key=a,b,c`` items as ``(key, values)`` (:func:`split_values`); keys are
    checked against the config's fields."""
    grid: list[tuple[str, tuple[str, ...]]] = []
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip()
        choices = split_values(values)
        if not sep or not choices:
            raise ConfigError(
                f"--grid {item!r}: expected section.key=a,b,c with at least one value"
            )
        apply_overrides({}, [f"{key}={choices[0]}"])  # an unknown section or field: one line
        if key in (k for k, _ in grid):
            raise ConfigError(f"--grid {key} is given twice")
        if key in ("model.seed", "backtest.start", "backtest.end"):
            raise ConfigError(f"--grid {key}: use --seeds or --periods for it")
        grid.append((key, choices))
    return tuple(grid)


def parse_periods(text: str) -> tuple[tuple[dt.date, dt.date], ...]:
    """``"2019,2020"`` (calendar years) or ``"2019-01-01:2019-06-30,..."`` as periods.

    >>> parse_periods("2021")
    ((datetime.date(2021, 1, 1), datetime.date(2021, 12, 31)),)
    """
    periods = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        if re.fullmatch(r"\d{4}", part):
            year = int(part)
            periods.append((dt.date(year, 1, 1), dt.date(year, 12, 31)))
            continue
        start, sep, end = part.partition(":")
        try:
            first, last = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
        except ValueError:
            raise ConfigError(
                f"--periods {part!r}: expected a year (2019) or START:END dates "
                "(2019-01-01:2019-06-30)"
            ) from None
        if not sep or last <= first:
            raise ConfigError(f"--periods {part!r}: the end must come after the start")
        periods.append((first, last))
    if not periods:
        raise ConfigError("--periods: give at least one period")
    return tuple(periods)


# --- trials --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Trial:
    """One trial: its id, its axes' values and the ``--set`` overrides that make it."""

    id: str
    seed: int | None
    grid: tuple[tuple[str, str], ...]
    period: tuple[str, str] | None
    overrides: tuple[str, ...]

    @property
    def config_label(self) -> str:
        """The grid values (the "config" that statistics compare), or ``"base"``."""
        return ", ".join(f"{k}={v}" for k, v in self.grid) or "base"


def make_trials(axes: Axes, base: Sequence[str] = ()) -> list[Trial]:
    """The cartesian product of the axes, in a fixed order (grid, then seed, then period)."""
    grids = list(itertools.product(*[[(k, v) for v in vs] for k, vs in axes.grid]))
    seeds: list[int | None] = list(axes.seeds) or [None]
    periods: list[tuple[dt.date, dt.date] | None] = list(axes.periods) or [None]
    trials = []
    for n, (grid, seed, period) in enumerate(itertools.product(grids, seeds, periods), 1):
        sets = [*base, *(f"{k}={v}" for k, v in grid)]
        if seed is not None:
            sets.append(f"model.seed={seed}")
        span = None
        if period is not None:
            span = (period[0].isoformat(), period[1].isoformat())
            # A model trained up to the day before the period, whatever train_end the config
            # pins (a model trained into the period could not trade it: the time contract).
            train_end = (period[0] - dt.timedelta(days=1)).isoformat()
            sets += [
                f"backtest.start={span[0]}",
                f"backtest.end={span[1]}",
                f"model.train_end={train_end}",
            ]
        trials.append(Trial(f"t{n:04d}", seed, tuple(grid), span, tuple(sets)))
    return trials


def trial_config(path: Path, trial: Trial) -> Config:
    """The config of one trial."""
    return load_config(path, list(trial.overrides))


# --- one trial (a Ray task) ----------------------------------------------------------------


def run_trial(config_path: str, trial: dict[str, Any], workspace: str, out: str) -> dict[str, Any]:
    """Run one trial into ``out`` and return its row (a failed trial: its one-line error).

    Runs in a Ray worker: torch is limited to this worker's CPU (``FOLIOSIM_THREADS``).
    """
    from models.errors import ModelError
    from simulator.backtest import run_backtest
    from simulator.rundir import write_run

    t = Trial(
        trial["id"],
        trial["seed"],
        tuple((str(k), str(v)) for k, v in trial["grid"]),
        (str(trial["period"][0]), str(trial["period"][1])) if trial["period"] else None,
        tuple(trial["overrides"]),
    )
    row: dict[str, Any] = {"id": t.id, "status": "done", "error": "", "node": _node()}
    try:
        cfg = trial_config(Path(config_path), t)
        result = run_backtest(cfg, Path(workspace))
        target = Path(out)
        if target.exists():  # a trial killed after its run directory, before its row
            shutil.rmtree(target)
        write_run(result, target, tearsheet=False)
        row.update(summary_row(result.summary))
    except (FoliosimError, ModelError) as err:
        row.update(status="failed", error=" ".join(str(err).split()))
    except Exception as err:  # one trial's bug must not stop the sweep; it is recorded
        row.update(status="failed", error=f"{type(err).__name__}: {' '.join(str(err).split())}")
    return row


def _node() -> str:
    """The Ray node this trial runs on ("" outside Ray)."""
    import ray

    return str(ray.get_runtime_context().get_node_id()) if ray.is_initialized() else ""


def summary_row(summary: RunSummary) -> dict[str, Any]:
    """The figures of a trial: each series' metrics, the strategy's weekly Sharpe facts and,
    for a model strategy, its forecasts' MSE ratio against the naive forecast."""
    row: dict[str, Any] = {
        "weeks": summary.weeks,
        "start": summary.start.isoformat(),
        "end": summary.end.isoformat(),
    }
    for series in SERIES:
        stats = summary.series[series]
        for metric in METRICS:
            key = metric if series == "strategy" else f"{series}_{metric}"
            row[key] = getattr(stats, metric)
    c = summary.confidence.get("strategy")
    row["skew"] = c.skew if c is not None else None
    row["kurtosis"] = c.kurtosis if c is not None else None
    # A model strategy's forecast MSE over the traded weeks, against the naive forecast's.
    row["mse_ratio"] = summary.prediction.mse_ratio if summary.prediction is not None else None
    # The probabilistic Sharpe ratio of the weekly excess over 1/N: P(beats 1/N).
    over = summary.confidence.get("over_equal_weight")
    row["p_beats_equal_weight"] = over.psr if over is not None else None
    return row


# --- the sweep directory --------------------------------------------------------------------


def _fingerprint(config_text: str, base: Sequence[str], axes: Axes) -> str:
    doc = {"config": config_text, "base": list(base), "axes": _axes_json(axes)}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def _axes_json(axes: Axes) -> dict[str, Any]:
    return {
        "seeds": list(axes.seeds),
        "grid": [[k, list(v)] for k, v in axes.grid],
        "periods": [[a.isoformat(), b.isoformat()] for a, b in axes.periods],
    }


def open_sweep(out: Path, config: Path, base: Sequence[str], axes: Axes) -> Path:
    """Create the sweep directory, or check that an existing one is this sweep's."""
    text = config.read_text(encoding="utf-8")
    print_ = _fingerprint(text, base, axes)
    marker = out / SWEEP_FILE
    if marker.is_file():
        try:
            stored = json.loads(marker.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ConfigError(f"{marker} is damaged; choose another --out") from None
        if stored.get("fingerprint") != print_:
            raise ConfigError(
                f"{out} holds a sweep of another config or other axes; give a new --out, or "
                "the same config, --set, --seeds, --grid and --periods to resume it"
            )
        return marker
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{out} exists and is not a sweep directory; choose another --out")
    (out / "trials").mkdir(parents=True, exist_ok=True)
    doc = {
        "fingerprint": print_,
        "config_file": str(config.resolve()),
        "config": text,
        "base": list(base),
        "axes": _axes_json(axes),
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    _write_json(marker, doc)
    return marker


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(nan_to_none(doc), handle, indent=2, allow_nan=False)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def finished(out: Path) -> dict[str, dict[str, Any]]:
    """The rows of the trials that ended, by id."""
    rows = {}
    for path in sorted((out / "trials").glob("t*.json")):
        try:
            row = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue  # a torn row cannot exist (written atomically); a foreign file is skipped
        if isinstance(row, dict) and row.get("id") == path.stem:
            rows[path.stem] = row
    return rows


# --- running it ----------------------------------------------------------------------------

#: ``on_row(row, done, total, running, failed)``: called as each trial ends.
OnRow = Callable[[dict[str, Any], int, int, int, int], None]


@dataclass(frozen=True)
class SweepResult:
    out: Path
    table: pd.DataFrame
    ran: list[str]


def run_sweep(
    config: Path,
    out: Path,
    axes: Axes,
    workspace: Path,
    *,
    base: Sequence[str] = (),
    address: str | None = None,
    cpus: int | None = None,
    on_row: OnRow | None = None,
) -> SweepResult:
    """Run (or resume) the sweep in ``out`` and write sweep.csv and sweep.html."""
    if address:
        _check_reachable(address)
    trials = make_trials(axes, base)
    if not trials:
        raise ConfigError("the sweep has no trial: give --seeds, --grid or --periods")
    for t in trials:  # every trial's config is valid before any runs
        trial_config(config, t)
    open_sweep(out, config, base, axes)
    done = finished(out)
    pending = [t for t in trials if t.id not in done]
    ran = []
    if pending:
        ran = _run_on_ray(config, out, pending, workspace, address, cpus, len(trials), done, on_row)
    rows = finished(out)
    table = sweep_table(trials, rows)
    table.to_csv(out / "sweep.csv", index=False)
    from simulator.sweep_report import write_sweep_html

    write_sweep_html(out, table, config)
    return SweepResult(out, table, ran)


def _run_on_ray(
    config: Path,
    out: Path,
    pending: list[Trial],
    workspace: Path,
    address: str | None,
    cpus: int | None,
    total: int,
    done: dict[str, dict[str, Any]],
    on_row: OnRow | None,
) -> list[str]:
    import ray

    started = not ray.is_initialized()
    if started:
        start_ray(address, cpus)
    try:
        from models.registry import Registry

        client = Registry(workspace).client  # the driver alone writes the sweep's MLflow runs
        task = ray.remote(num_cpus=1)(run_trial)
        refs = {
            task.remote(
                str(config.resolve()),
                {**asdict(t), "grid": [list(p) for p in t.grid]},
                str(workspace),
                str(out / "trials" / t.id),
            ): t
            for t in pending
        }
        failed = sum(1 for r in done.values() if r.get("status") == "failed")
        count = len(done)
        ran = []
        waiting = list(refs)
        while waiting:
            ready, waiting = ray.wait(waiting, num_returns=1)
            for ref in ready:
                trial = refs[ref]
                row = ray.get(ref)
                _write_json(out / "trials" / f"{trial.id}.json", row)
                _log_mlflow(client, out, trial, row)
                count += 1
                failed += row["status"] == "failed"
                ran.append(trial.id)
                if on_row is not None:
                    on_row(row, count, total, len(waiting), failed)
        return ran
    finally:
        if started:
            ray.shutdown()


def start_ray(address: str | None = None, cpus: int | None = None) -> None:
    """Start the local Ray runtime of a sweep (or join the cluster at ``address``): each
    worker pins torch to one thread and imports user rules from the current folder."""
    import ray

    env = {"FOLIOSIM_THREADS": "1", "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    here = os.getcwd()  # user rules named module:Class import from here, as the CLI does
    path = os.pathsep.join([here, *[p for p in sys.path if p]])
    env["PYTHONPATH"] = path
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    options: dict[str, Any] = {
        "runtime_env": {"env_vars": env},
        "include_dashboard": False,
        "log_to_driver": False,
        "logging_level": "ERROR",
        "configure_logging": True,
    }
    if address:
        _check_reachable(address)
        options["address"] = address
    else:
        options["num_cpus"] = cpus or os.cpu_count() or 1
    try:
        ray.init(**options)
    except (ConnectionError, RuntimeError, ValueError) as err:
        where = f"--address {address}" if address else "a local Ray runtime"
        raise FoliosimError(
            f"cannot start the sweep on {where}: {' '.join(str(err).split())[:300]}; check the "
            "address (ray://HOST:PORT or auto) and that the cluster runs"
        ) from None


def _check_reachable(address: str) -> None:
    """Fail at once, in one line, on a cluster address nothing answers at (Ray itself would
    retry for minutes)."""
    import socket

    if address == "auto":
        return  # Ray finds the local cluster's address itself, and says so when there is none
    hostport = address.removeprefix("ray://")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ConfigError(f"--address {address!r}: expected auto, HOST:PORT or ray://HOST:PORT")
    try:
        with socket.create_connection((host, int(port)), timeout=3.0):
            pass
    except OSError as err:
        raise FoliosimError(
            f"--address {address}: nothing answers at {host}:{port} ({err.strerror or err}); "
            "start the cluster (ray start --head) or fix the address"
        ) from None


def _log_mlflow(client: Any, out: Path, trial: Trial, row: dict[str, Any]) -> None:
    """Record the trial as an MLflow run in the experiment named after the sweep."""
    name = f"sweep {out.name}"
    found = client.get_experiment_by_name(name)
    experiment = found.experiment_id if found is not None else client.create_experiment(name)
    from mlflow.entities import Metric, Param, RunTag

    run = client.create_run(experiment, run_name=trial.id)
    params = [Param("trial", trial.id), Param("config", trial.config_label)]
    if trial.seed is not None:
        params.append(Param("seed", str(trial.seed)))
    if trial.period is not None:
        params.append(Param("period", f"{trial.period[0]}:{trial.period[1]}"))
    stamp = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    metrics = [
        Metric(name, float(row[name]), stamp, 0)
        for name in (*METRICS, *(f"equal_weight_{m}" for m in METRICS))
        if isinstance(row.get(name), int | float) and math.isfinite(row[name])
    ]
    tags = [
        RunTag("run_dir", str((out / "trials" / trial.id).resolve())),
        RunTag("error", row.get("error", "")),
    ]
    # One write for the run's facts: the driver logs every trial on the trials' own CPUs.
    client.log_batch(run.info.run_id, metrics=metrics, params=params, tags=tags)
    client.set_terminated(run.info.run_id, "FINISHED" if row["status"] == "done" else "FAILED")


def sweep_table(trials: Sequence[Trial], rows: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """sweep.csv: one row per trial, in trial order: the axes, then its figures."""
    keys = [k for k, _ in trials[0].grid] if trials else []
    records = []
    for t in trials:
        row = rows.get(t.id, {"status": "missing", "error": ""})
        record: dict[str, Any] = {"trial": t.id, "config": t.config_label}
        record.update(dict(t.grid))
        record["seed"] = t.seed
        record["period"] = f"{t.period[0]}:{t.period[1]}" if t.period else ""
        # The node a trial ran on stays in its row file: it says nothing of the result.
        record.update({k: v for k, v in row.items() if k not in ("id", "node")})
        records.append(record)
    frame = pd.DataFrame.from_records(records)
    order = ["trial", "config", *keys, "seed", "period", "status", "error"]
    rest = [c for c in frame.columns if c not in order]
    return frame[[c for c in order if c in frame.columns] + rest]
