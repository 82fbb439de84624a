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

The sweep directory (``--out``; by default ``runs/sweep-<config>-<digest>``, named by the
config's text, the ``--set`` overrides and the axes: :func:`default_out`) holds ``sweep.json``
(the config, the overrides, the axes and the command that made it), one folder per trial
(``trials/<id>/``, its run directory without a tear sheet) and its row (``trials/<id>.json``),
written as each trial ends; re-running the same command resumes: only the trials without a row
run, those the environment stopped (a full disk, memory, a killed worker: status ``retry``),
and those whose row was made with other data, another version of a user's rule, another
version behind a pinned ``model.version`` or another foliosim (:class:`MadeWith`). One sweep
at a time works in a folder (a lock on ``.lock``; :mod:`simulator.sweep_files` holds the
folder's layout). At the end it writes ``sweep.csv`` (one row per trial) and ``sweep.html`` (what
ran, the statistics per config, a row per trial, the distributions against 1/N and the index,
the share of trials beating 1/N, the deflated Sharpe ratio of the best trial, the probability
of backtest overfitting over the periods). Each finished trial is also an MLflow run in an
experiment named after the sweep. A :class:`SweepProgress` hears what happens as it happens.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import hashlib
import itertools
import json
import math
import os
import re
import shutil
import socket
import sys
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import grpc
import pandas as pd
import ray
from mlflow.entities import Metric, Param, RunTag
from ray._common.utils import get_ray_address_file
from ray._raylet import AuthenticationTokenLoader  # type: ignore[attr-defined]
from ray.exceptions import AuthenticationError, RayError, RayTaskError

from models.registry import Registry
from simulator import __version__
from simulator.audit_folder import data_digest, rule_source
from simulator.config import Config, apply_overrides, config_from_dict, read_toml
from simulator.errors import ConfigError, FoliosimError
from simulator.model_sources import WalkForward
from simulator.plan import STRATEGIES, resolve
from simulator.results import backtest
from simulator.rundir import write_files
from simulator.session import Session, Window, load_weekly
from simulator.summary import RunSummary
from simulator.sweep_files import (
    DONE,
    FAILED,
    LOCK_FILE,
    RETRY,
    SWEEP_FILE,
    TRIALS_DIR,
    SweepError,
    finished_rows,
    locked,
    write_json,
)
from simulator.sweep_report import WhatRan, write_sweep_html

#: The metrics of each series that sweep.csv keeps (summary.json's names).
METRICS = ("total_return", "cagr", "volatility", "sharpe", "sortino", "max_drawdown")
SERIES = ("strategy", "equal_weight", "benchmark")
#: The most trials a sweep may have (and values an axis may hold): counted before anything is
#: expanded, so ``--seeds 0-99999999`` is one line, not gigabytes of trials.
MAX_TRIALS = 100_000
#: Seconds without a trial ending after which a sweep says it is still working (a log is
#: never silent for minutes while the first trials train their models).
HEARTBEAT = 30.0


# --- axes --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Axes:
    """The axes of a sweep: seeds, grid values and test periods (empty: not swept)."""

    seeds: tuple[int, ...] = ()
    grid: tuple[tuple[str, tuple[str, ...]], ...] = ()
    periods: tuple[tuple[dt.date, dt.date], ...] = ()

    def __post_init__(self) -> None:
        n = self.count
        if n > MAX_TRIALS:
            sizes = [f"{len(self.seeds):,} seeds"] if self.seeds else []
            sizes += [f"{len(values):,} values of {key}" for key, values in self.grid]
            sizes += [f"{len(self.periods):,} periods"] if self.periods else []
            raise ConfigError(
                f"the sweep has {n:,} trials ({' x '.join(sizes)}), over the {MAX_TRIALS:,} a "
                "sweep may run: give fewer --seeds, --grid values or --periods"
            )

    @property
    def count(self) -> int:
        """The number of trials, the product of the axes' lengths (nothing expanded)."""
        n = max(len(self.seeds), 1) * max(len(self.periods), 1)
        return n * math.prod(len(values) for _, values in self.grid)

    def describe(self) -> str:
        """The axes in words.

        >>> Axes(seeds=(0, 1), grid=(("backtest.fill", ("close", "next_open")),)).describe()
        '2 seeds x 2 values of backtest.fill'
        """
        sizes = [f"{len(self.seeds):,} seed{'s' * (len(self.seeds) != 1)}"] if self.seeds else []
        sizes += [f"{len(values):,} values of {key}" for key, values in self.grid]
        n = len(self.periods)
        sizes += [f"{n:,} period{'s' * (n != 1)}"] if n else []
        return " x ".join(sizes) or "no axis"


def parse_seeds(text: str) -> tuple[int, ...]:
    """``"0-9"`` or ``"0,3,7"`` (or both, ``"0-2,7"``) as seeds; at most :data:`MAX_TRIALS`,
    counted before any range is expanded.

    >>> parse_seeds("0-2,7")
    (0, 1, 2, 7)
    """
    spans: list[range] = []
    for part in (p.strip() for p in text.split(",")):
        # 18 digits at most: a seed fits 64 bits (and a huge number is not parsed at all)
        found = re.fullmatch(r"(\d{1,18})(?:-(\d{1,18}))?", part)
        if not found:
            raise ConfigError(
                f"--seeds {text[:60]!r}: expected seeds like 0-9 or 0,3,7 (below 10^18)"
            )
        first, last = int(found[1]), int(found[2] if found[2] is not None else found[1])
        if last < first:
            raise ConfigError(
                f"--seeds {text!r}: the range {part} runs backwards; write {last}-{first}"
            )
        spans.append(range(first, last + 1))
        count = sum(len(s) for s in spans)
        if count > MAX_TRIALS:
            raise ConfigError(
                f"--seeds {text[:60]!r} names {count:,} seeds or more, over the {MAX_TRIALS:,} "
                "trials a sweep may run: give a shorter range"
            )
    ordered = sorted(spans, key=lambda s: s.start)
    if any(b.start < a.stop for a, b in itertools.pairwise(ordered)):
        raise ConfigError(f"--seeds {text!r} names a seed twice")
    return tuple(seed for span in spans for seed in span)


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
        if len(choices) > MAX_TRIALS:
            raise ConfigError(
                f"--grid {key}: {len(choices):,} values, over the {MAX_TRIALS:,} trials a sweep "
                "may run"
            )
        grid.append((key, choices))
    return tuple(grid)


def parse_periods(text: str) -> tuple[tuple[dt.date, dt.date], ...]:
    """``"2019,2020"`` (calendar years) or ``"2019-01-01:2019-06-30,..."`` as periods.

    >>> parse_periods("2021")
    ((datetime.date(2021, 1, 1), datetime.date(2021, 12, 31)),)
    """
    periods: list[tuple[dt.date, dt.date]] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        if len(periods) == MAX_TRIALS:
            raise ConfigError(f"--periods: over the {MAX_TRIALS:,} trials a sweep may run")
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

    @property
    def label(self) -> str:
        """What makes this trial: its seed, grid values and period (``"base"`` for none).

        >>> Trial("t0001", 3, (("strategy.max_weight", "0.2"),), ("2021-01-01", "2021-12-31"),
        ...       ()).label
        'seed 3, strategy.max_weight=0.2, 2021-01-01:2021-12-31'
        """
        parts = [f"seed {self.seed}"] if self.seed is not None else []
        parts += [f"{k}={v}" for k, v in self.grid]
        parts += [f"{self.period[0]}:{self.period[1]}"] if self.period else []
        return ", ".join(parts) or "base"


def make_trials(axes: Axes, base: Sequence[str] = ()) -> list[Trial]:
    """The cartesian product of the axes, in a fixed order (grid, then seed, then period)."""
    return list(iter_trials(axes, base))


def iter_trials(axes: Axes, base: Sequence[str] = ()) -> Iterator[Trial]:
    """:func:`make_trials` one trial at a time (a sweep submits them as CPUs free up)."""
    grids = itertools.product(*[[(k, v) for v in vs] for k, vs in axes.grid])
    seeds: Sequence[int | None] = axes.seeds or (None,)
    periods: Sequence[tuple[dt.date, dt.date] | None] = axes.periods or (None,)
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
        yield Trial(f"t{n:04d}", seed, tuple(grid), span, tuple(sets))


def trial_config(raw: dict[str, Any], where: str, trial: Trial) -> Config:
    """The validated config of one trial: the sweep's TOML tables ``raw`` (read once, from
    the file ``where``) with the trial's overrides applied."""
    return config_from_dict(apply_overrides(raw, list(trial.overrides)), where)


# --- one trial (a Ray task) ----------------------------------------------------------------


def run_trial(cfg: Config, trial: dict[str, Any], workspace: str, out: str) -> dict[str, Any]:
    """Run one trial (its validated config ``cfg``, made by the driver) into ``out`` and
    return its row (a failed trial: its one-line error).

    Runs in a Ray worker: torch is limited to this worker's CPU (``FOLIOSIM_THREADS``). A
    failure the environment caused (:func:`environment_cause`) is a ``retry`` row, run again
    when the sweep is; any other is ``failed``, and stays so.
    """
    t = Trial(
        trial["id"],
        trial["seed"],
        tuple((str(k), str(v)) for k, v in trial["grid"]),
        (str(trial["period"][0]), str(trial["period"][1])) if trial["period"] else None,
        tuple(trial["overrides"]),
    )
    row: dict[str, Any] = {"id": t.id, "status": DONE, "error": "", "node": _node()}
    target = Path(out)
    try:
        session = Session.open(cfg, Path(workspace))
        result = backtest(session, Window.backtest(session.weekly, cfg), models=WalkForward())
        if target.exists():  # a trial killed after its run directory, before its row
            shutil.rmtree(target)
        write_files(result, target)
        row.update(summary_row(result.summary))
    except FoliosimError as err:  # a model's errors (ModelError) included
        row.update(_failure(err, " ".join(str(err).split())))
    except Exception as err:  # one trial's bug must not stop the sweep; it is recorded
        row.update(_failure(err, f"{type(err).__name__}: {' '.join(str(err).split())}"))
    if row["status"] == RETRY:
        shutil.rmtree(target, ignore_errors=True)  # what it wrote takes no space it needs
    return row


def _failure(err: BaseException, message: str) -> dict[str, str]:
    cause = environment_cause(err)
    if cause is None:
        return {"status": FAILED, "error": message}
    return {"status": RETRY, "error": f"{cause}: {message}"}


#: errno values of a full disk or an exhausted quota.
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
#: How a full disk reads once an error has become text (SQLite, a wrapped message).
_DISK_FULL_TEXT = (os.strerror(errno.ENOSPC), os.strerror(errno.EDQUOT), "database or disk is full")


def environment_cause(err: BaseException) -> str | None:
    """``"disk full"`` or ``"out of memory"`` when the environment caused ``err`` (found along
    its chain of causes, or in its text); None for an error of the trial itself.

    >>> environment_cause(OSError(errno.ENOSPC, "No space left on device"))
    'disk full'
    >>> environment_cause(ValueError("max_weight must be below 1")) is None
    True
    """
    seen: set[int] = set()
    e: BaseException | None = err
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in _DISK_FULL:
            return "disk full"
        if isinstance(e, MemoryError):
            return "out of memory"
        if any(text in str(e) for text in _DISK_FULL_TEXT):
            return "disk full"
        e = e.__cause__ or e.__context__
    return None


def _node() -> str:
    """The Ray node this trial runs on ("" outside Ray)."""
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


def default_out(config: Path, base: Sequence[str], axes: Axes, root: Path = Path("runs")) -> Path:
    """The sweep directory a command without ``--out`` uses: ``runs/sweep-<config>-<digest>``,
    the digest that of the config's text, the ``--set`` overrides and the axes (what
    ``sweep.json``'s fingerprint covers), so the same command finds its sweep again and
    resumes it, and a changed config, override or axis is another sweep."""
    text = config.read_text(encoding="utf-8")
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", config.stem).strip("-.")[:40] or "config"
    return root / f"sweep-{stem}-{_fingerprint(text, base, axes)[:10]}"


def _axes_json(axes: Axes) -> dict[str, Any]:
    return {
        "seeds": list(axes.seeds),
        "grid": [[k, list(v)] for k, v in axes.grid],
        "periods": [[a.isoformat(), b.isoformat()] for a, b in axes.periods],
    }


def open_sweep(
    out: Path, config: Path, base: Sequence[str], axes: Axes, command: str = ""
) -> dict[str, Any]:
    """Create the sweep directory, or check that an existing one is this sweep's; return its
    ``sweep.json`` (``command``: the command line that created it, shell-quoted; ``""`` from
    Python)."""
    text = config.read_text(encoding="utf-8")
    print_ = _fingerprint(text, base, axes)
    marker = out / SWEEP_FILE
    if marker.is_file():
        try:
            stored = json.loads(marker.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            stored = None
        if not isinstance(stored, dict):
            raise ConfigError(f"{marker} is damaged; choose another --out")
        if stored.get("fingerprint") != print_:
            raise ConfigError(
                f"{out} holds a sweep of another config or other axes; give a new --out, or "
                "the same config, --set, --seeds, --grid and --periods to resume it"
            )
        return stored
    _check_new(out)
    (out / TRIALS_DIR).mkdir(parents=True, exist_ok=True)
    doc = {
        "fingerprint": print_,
        "config_file": str(config.resolve()),
        "config": text,
        "base": list(base),
        "axes": _axes_json(axes),
        "command": command,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    write_json(marker, doc)
    return doc


def _check_new(out: Path) -> None:
    """Refuse an ``out`` without sweep.json that holds anything but a sweep's lock (a file, a
    user's folder): a sweep is made only in a new or empty folder."""
    if out.exists() and (not out.is_dir() or any(p.name != LOCK_FILE for p in out.iterdir())):
        raise ConfigError(f"{out} exists and is not a sweep directory; choose another --out")


# --- what made a trial ----------------------------------------------------------------------


class MadeWith:
    """What made a trial's row beyond its config, kept in the row as ``made_with``: a digest
    of the weekly data it read (:func:`simulator.audit_folder.data_digest`), of a user rule's
    source (:func:`simulator.audit_folder.rule_source`), the resolved pinned model version
    (``NAME@alias`` moves) and foliosim's version. A resumed sweep reruns a row made with
    others (:func:`stale_rows`).

    Each is computed once per distinct input (the data once per data config, not per trial);
    an input that cannot be read is recorded by its one-line error, so the trial fails in its
    worker as before, and runs again once the input is fixed.
    """

    def __init__(self, workspace: Path) -> None:
        self.workspace = workspace
        self._data: dict[str, str] = {}
        self._rule: dict[str, str] = {}
        self._model: dict[tuple[str, str], str] = {}

    def of(self, cfg: Config) -> dict[str, str]:
        """The ``made_with`` of a trial of ``cfg`` (strings: digests, a version, an error)."""
        return {
            "data": self._data_key(cfg),
            "rule": self._rule_key(cfg),
            "model": self._model_key(cfg),
            "foliosim": __version__,
        }

    def _data_key(self, cfg: Config) -> str:
        what = json.dumps([cfg.data.model_dump(mode="json"), cfg.report.risk_free], sort_keys=True)
        if what not in self._data:
            try:
                self._data[what] = data_digest(load_weekly(cfg, self.workspace))
            except FoliosimError as err:
                self._data[what] = f"unreadable: {' '.join(str(err).split())}"
        return self._data[what]

    def _rule_key(self, cfg: Config) -> str:
        name = cfg.backtest.strategy
        if ":" not in name:
            return ""  # a built-in strategy: foliosim's version covers it
        if name not in self._rule:
            try:
                resolve(cfg)  # imports the rule's module, as the trial's worker does
                source = rule_source(cfg)
                self._rule[name] = hashlib.sha256(source.encode()).hexdigest()
            except FoliosimError as err:
                self._rule[name] = f"unreadable: {' '.join(str(err).split())}"
        return self._rule[name]

    def _model_key(self, cfg: Config) -> str:
        ref = cfg.model.version
        if not ref:
            return ""  # trained walk-forward: the data and the config make the models
        where = (cfg.model.registry_uri, ref)
        if where not in self._model:
            try:
                self._model[where] = (
                    Registry(self.workspace, cfg.model.registry_uri).resolve(ref).ref
                )
            except FoliosimError as err:
                self._model[where] = f"unresolved: {' '.join(str(err).split())}"
        return self._model[where]


#: What each part of ``made_with`` is called when it changed.
_CHANGED = {"data": "data", "rule": "rule", "model": "model version", "foliosim": "foliosim"}


def stale_rows(
    rows: dict[str, dict[str, Any]], current: dict[str, dict[str, str]]
) -> tuple[list[str], str]:
    """The ids of ``rows`` whose ``made_with`` differs from ``current[id]`` (a row with no
    ``made_with``, from a sweep run before rows kept one, is stale too), and what changed in
    words (``"data changed"``, ``"data and rule changed"``).

    >>> now = {"t0001": {"data": "b", "rule": ""}, "t0002": {"data": "b", "rule": ""}}
    >>> stale_rows({"t0001": {"made_with": {"data": "a", "rule": ""}},
    ...             "t0002": {"made_with": {"data": "b", "rule": ""}}}, now)
    (['t0001'], 'data changed')
    """
    stale, changed = [], set()
    for trial, row in rows.items():
        before = row.get("made_with")
        if before == current[trial]:
            continue
        stale.append(trial)
        if not isinstance(before, dict):
            changed.add("no record of the data it read: made by an older foliosim")
            continue
        changed.update(
            _CHANGED.get(k, k) for k in current[trial] if before.get(k) != current[trial][k]
        )
    words = sorted(c for c in changed if c in _CHANGED.values())
    said = [f"{' and '.join(words)} changed"] if words else []
    said += sorted(c for c in changed if c not in _CHANGED.values())
    return stale, "; ".join(said) or ("what made them changed" if stale else "")


# --- running it ----------------------------------------------------------------------------


class SweepProgress(Protocol):
    """What a sweep tells its caller as it works (``foliosim sweep`` prints it on stderr).

    The calls come in this order: :meth:`started` once the sweep is valid and its directory
    made; :meth:`step` around each phase without trials (starting Ray, writing the report);
    :meth:`trials` when trials start; :meth:`finished` as each ends, in the order they end, and
    :meth:`waiting` when none has ended for :data:`HEARTBEAT` seconds.
    """

    def started(
        self, out: Path, total: int, done_before: int, resumed: bool, stale: int, changed: str
    ) -> None:
        """The sweep directory, its trial count and the trials a previous run finished;
        ``stale`` of those run again because what made them changed (``changed`` says what,
        in words: ``"data changed"``)."""

    def step(self, name: str) -> contextlib.AbstractContextManager[None]:
        """A phase (``"starting a local Ray runtime (2 CPUs)"``), as a context."""
        ...

    def trials(self, to_run: int, cpus: int, trains_models: bool) -> None:
        """Trials start: ``to_run`` of them, on ``cpus`` CPUs; ``trains_models`` when they
        train the models they use (in their workers: the driver trains none)."""

    def waiting(self, done: int, total: int, in_flight: int) -> None:
        """No trial ended for :data:`HEARTBEAT` seconds: ``done`` of ``total`` have ended,
        ``in_flight`` are submitted to Ray (running, or queued for a CPU)."""

    def finished(
        self, trial: Trial, row: dict[str, Any], done: int, total: int, running: int, failed: int
    ) -> None:
        """A trial ended (``row["status"]``: done, failed or retry); ``done`` of ``total``
        have ended, ``running`` are still in flight, ``failed`` did not finish."""


class Quiet:
    """A :class:`SweepProgress` that says nothing (a sweep run from Python)."""

    def started(
        self, out: Path, total: int, done_before: int, resumed: bool, stale: int, changed: str
    ) -> None:
        pass

    def step(self, name: str) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def trials(self, to_run: int, cpus: int, trains_models: bool) -> None:
        pass

    def waiting(self, done: int, total: int, in_flight: int) -> None:
        pass

    def finished(
        self, trial: Trial, row: dict[str, Any], done: int, total: int, running: int, failed: int
    ) -> None:
        pass


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
    command: str = "",
    progress: SweepProgress | None = None,
) -> SweepResult:
    """Run (or resume) the sweep in ``out`` and write sweep.csv and sweep.html, telling
    ``progress`` what happens (:class:`SweepProgress`). ``command`` is the command line that
    made the sweep, shell-quoted: sweep.json records it (with the overrides ``base``) when it
    creates the sweep, and sweep.html shows it.

    Trials are made and submitted lazily, a few per CPU at a time. Raises :class:`SweepError`
    (one line, saying how to resume) when the environment stopped trials or the driver's own
    writes (a full disk): a re-run with the same ``out`` runs what is left.
    """
    tell: SweepProgress = progress if progress is not None else Quiet()
    if address:
        check_address(address)
    if axes.count == 0:
        raise ConfigError("the sweep has no trial: give --seeds, --grid or --periods")
    # Every trial's config is valid before any runs: seeds change no validity, so each grid
    # value and period is loaded once, with the first seed.
    raw, where = read_toml(config), str(config)
    first_seed = axes.seeds[:1]
    checked = [
        trial_config(raw, where, t)
        for t in iter_trials(Axes(first_seed, axes.grid, axes.periods), base)
    ]
    with _driver_writes(out, "create the sweep directory"):
        if not (out / SWEEP_FILE).is_file():
            _check_new(out)
        out.mkdir(parents=True, exist_ok=True)
    with locked(out):  # one sweep at a time in a folder: no trial runs (nor is logged) twice
        return _sweep_locked(
            config, raw, out, axes, workspace, base, address, cpus, command, tell, checked
        )


def _sweep_locked(
    config: Path,
    raw: dict[str, Any],
    out: Path,
    axes: Axes,
    workspace: Path,
    base: Sequence[str],
    address: str | None,
    cpus: int | None,
    command: str,
    tell: SweepProgress,
    checked: list[Config],
) -> SweepResult:
    """:func:`run_sweep` once its configs are checked (``raw``: its TOML tables) and its
    folder is held."""
    where = str(config)
    resumed = (out / SWEEP_FILE).is_file()
    with _driver_writes(out, "create the sweep directory"):
        doc = open_sweep(out, config, base, axes, command)
    # What made each trial beyond its config: seeds change none of it, so it is found once
    # per grid value and period (the configs checked above, in the same order).
    made = MadeWith(workspace)
    first_seed = axes.seeds[:1]
    shapes = iter_trials(Axes(first_seed, axes.grid, axes.periods), base)
    by_shape = {(t.grid, t.period): made.of(cfg) for t, cfg in zip(shapes, checked, strict=True)}
    before = {k: r for k, r in finished_rows(out).items() if not _to_retry(r)}
    current = {
        t.id: by_shape[(t.grid, t.period)] for t in iter_trials(axes, base) if t.id in before
    }
    stale, changed = stale_rows(before, current)
    done = {k: r for k, r in before.items() if k not in stale}
    tell.started(out, axes.count, len(before), resumed, len(stale), changed)
    pending = (t for t in iter_trials(axes, base) if t.id not in done)
    ran = []
    if axes.count > len(done):
        configs = ((t, trial_config(raw, where, t), by_shape[(t.grid, t.period)]) for t in pending)
        trains = any(_trains_models(c) for c in checked)
        ran = _run_on_ray(configs, out, workspace, address, cpus, axes.count, done, tell, trains)
    table = sweep_table(make_trials(axes, base), finished_rows(out))
    ran_facts = WhatRan(
        command=str(doc.get("command") or ""),
        overrides=tuple(str(o) for o in doc.get("base", base)),
        axes=axes.describe(),
    )
    what = "write sweep.csv and sweep.html"
    with tell.step("writing sweep.csv and sweep.html"), _driver_writes(out, what):
        table.to_csv(out / "sweep.csv", index=False)
        write_sweep_html(out, table, config, ran_facts)
    retry = table[table["status"] == RETRY]
    if len(retry):
        first = retry.iloc[0]
        raise SweepError(
            f"{len(retry)} of {len(table)} trials stopped by the environment, not by their "
            f"config (trial {first['trial']}: {first['error']}); {_remedy(str(first['error']))}"
            f", then run the same command again with --out {out} to run them"
        )
    return SweepResult(out, table, ran)


def _trains_models(cfg: Config) -> bool:
    """Whether a trial of ``cfg`` trains models (a model strategy without a pinned version)."""
    spec = STRATEGIES.get(cfg.backtest.strategy)
    return spec is not None and spec.uses_models and cfg.model.version is None


def _to_retry(row: dict[str, Any]) -> bool:
    """A row a re-run runs again: ``retry``, or ``failed`` by a full disk or memory in a sweep
    run before the two were told apart (its error holds the OS's words)."""
    if row.get("status") == RETRY:
        return True
    error = str(row.get("error", ""))
    told = any(text in error for text in (*_DISK_FULL_TEXT, "MemoryError"))
    return row.get("status") == FAILED and told


def _remedy(cause: str) -> str:
    if cause.startswith("disk full"):
        return "free space on the disk of the sweep directory and the workspace"
    if cause.startswith("out of memory"):
        return "free memory or run fewer trials at once (--cpus)"
    return "see why the worker died (the kernel's OOM killer: dmesg)"


@contextlib.contextmanager
def _driver_writes(out: Path, what: str) -> Iterator[None]:
    """Turn an error of the driver's own writes (sweep.json, rows, MLflow runs, sweep.csv)
    into one line saying what to free and how to resume; any other error passes through."""
    try:
        yield
    except FoliosimError:
        raise
    except Exception as err:
        cause = environment_cause(err)  # also the MLflow store's "database or disk is full"
        if cause is None and not isinstance(err, OSError):
            raise
        if isinstance(err, OSError):
            where = f"{err.filename}: " if err.filename else ""
            detail = f"{where}{err.strerror or err}"
        else:
            detail = " ".join(str(err).split())[:200]
        remedy = (
            _remedy(cause) + f", then run the same command again with --out {out} to resume"
            if cause is not None
            else "choose an --out folder this user can write"
        )
        raise SweepError(
            f"cannot {what} ({detail}); the trials whose rows were written are kept: {remedy}"
        ) from None


def _run_on_ray(
    pending: Iterator[tuple[Trial, Config, dict[str, str]]],
    out: Path,
    workspace: Path,
    address: str | None,
    cpus: int | None,
    total: int,
    done: dict[str, dict[str, Any]],
    tell: SweepProgress,
    trains_models: bool,
) -> list[str]:
    started = not ray.is_initialized()
    if started:
        where = (
            f"joining the Ray cluster at {address}"
            if address
            else f"starting a local Ray runtime ({cpus or os.cpu_count() or 1} CPUs)"
        )
        with tell.step(where):
            start_ray(address, cpus)
    in_flight: dict[Any, Trial] = {}
    try:
        # A few trials per CPU in flight: enough to keep every CPU busy, never the whole sweep.
        cluster_cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        window = 2 * cluster_cpus
        tell.trials(total - len(done), cluster_cpus, trains_models)
        client = Registry(workspace).client  # the driver alone writes the sweep's MLflow runs
        task = ray.remote(num_cpus=1)(run_trial)

        made: dict[str, dict[str, str]] = {}  # what made each trial in flight

        def submit() -> None:
            for t, cfg, made_with in itertools.islice(pending, window - len(in_flight)):
                ref = task.remote(
                    cfg,  # validated once, here: a worker never re-reads the config file
                    {**asdict(t), "grid": [list(p) for p in t.grid]},
                    str(workspace),
                    str(out / TRIALS_DIR / t.id),
                )
                in_flight[ref] = t
                made[t.id] = made_with

        failed = sum(1 for r in done.values() if r.get("status") == FAILED)
        count = len(done)
        ran = []
        submit()
        while in_flight:
            ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=HEARTBEAT)
            if not ready:
                tell.waiting(count, total, len(in_flight))
            for ref in ready:
                trial = in_flight.pop(ref)
                row = {**_row_of(ref, trial), "made_with": made.pop(trial.id)}
                with _driver_writes(out, f"record trial {trial.id}"):
                    write_json(out / TRIALS_DIR / f"{trial.id}.json", row)
                    _log_mlflow(client, out, trial, row)
                count += 1
                failed += row["status"] != DONE
                ran.append(trial.id)
                tell.finished(trial, row, count, total, len(in_flight), failed)
            submit()
        return ran
    finally:
        for ref in in_flight:  # stopped early (a full disk): a cluster's tasks end too
            ray.cancel(ref, force=True)
        if started:
            ray.shutdown()


def _row_of(ref: Any, trial: Trial) -> dict[str, Any]:
    """A finished task's row; a worker that died (killed, out of memory, its node lost) is a
    ``retry`` row."""
    try:
        row: dict[str, Any] = ray.get(ref)
        return row
    except RayTaskError as err:  # run_trial itself raised (SystemExit from a user's rule)
        line = " ".join(str(err).split())[-300:]
        return {"id": trial.id, "status": FAILED, "error": line, "node": ""}
    except RayError as err:
        why = " ".join(str(err).split())[:300]
        return {
            "id": trial.id,
            "status": RETRY,
            "error": f"the Ray worker died ({type(err).__name__}: {why})",
            "node": "",
        }


def start_ray(address: str | None = None, cpus: int | None = None) -> None:
    """Start the local Ray runtime of a sweep (or join the cluster at ``address``): each
    worker pins torch to one thread and imports user rules from the current folder.

    The local runtime is always a new one (``address="local"``): never a cluster named by
    ``RAY_ADDRESS`` or by a ``ray start`` of this machine, nor the processes a killed sweep
    left behind.
    """
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
        check_address(address)
        options["address"] = address
    else:
        options["address"] = "local"
        options["num_cpus"] = cpus or os.cpu_count() or 1
    try:
        ray.init(**options)
    except AuthenticationError as err:
        raise SweepError(f"--address {address}: {_auth_remedy(address or '', str(err))}") from None
    except (ConnectionError, RuntimeError, ValueError) as err:
        where = f"--address {address}" if address else "a local Ray runtime"
        if any(word in str(err) for word in ("InvalidAuthToken", "Unauthenticated")):
            raise SweepError(f"{where}: {_auth_remedy(address or '', '')}") from None
        raise SweepError(
            f"cannot start the sweep on {where}: {' '.join(str(err).split())[:300]}; check the "
            "address (ray://HOST:PORT or auto) and that the cluster runs"
        ) from None


def check_address(address: str) -> None:
    """Fail at once, in one line, on a cluster address Ray could not use: nothing answers
    there (Ray would retry for minutes), ``auto`` finds only a stopped cluster's session files
    (Ray ends in a traceback), or the cluster wants a token this process does not send (Ray
    prints a warning a second, then blames the address)."""
    auto = address == "auto"
    if auto:
        address = _auto_address()
    hostport = address.removeprefix("ray://")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ConfigError(f"--address {address!r}: expected auto, HOST:PORT or ray://HOST:PORT")
    try:
        with socket.create_connection((host, int(port)), timeout=3.0):
            pass
    except OSError as err:
        raise SweepError(
            f"--address {address}: nothing answers at {host}:{port} ({err.strerror or err}); "
            "start the cluster (ray start --head) or fix the address"
        ) from None
    if not address.startswith("ray://"):  # a GCS; Ray Client's proxy says it in ray.init
        _check_token(hostport, auto)


def _auto_address() -> str:
    """The address ``--address auto`` means, found as Ray finds it (``RAY_ADDRESS``, then the
    file the last ``ray start`` of this machine wrote), and checked to be running."""
    named = os.environ.get("RAY_ADDRESS", "")
    if named and named not in ("auto", "local"):
        return named
    marker = Path(get_ray_address_file(None))
    found = marker.read_text(encoding="utf-8").strip() if marker.is_file() else ""
    if not found:
        raise SweepError(
            "--address auto: no Ray cluster was started on this machine (no "
            f"{marker}); start one with `ray start --head`, or drop --address to run the "
            "sweep on a local Ray runtime"
        )
    host, _, port = found.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=3.0):
            pass
    except (OSError, ValueError):
        raise SweepError(
            f"--address auto: the Ray cluster last started on this machine ({found}, named "
            f"in {marker}) is not running, only its session files are left; start a cluster "
            "with `ray start --head`, or drop --address to run the sweep on a local Ray runtime"
        ) from None
    return found


def _token_header(auto: bool) -> tuple[tuple[str, str], ...]:
    """The token Ray would send from this process: with ``RAY_AUTH_MODE=token``, or unset for
    ``--address auto`` (Ray then sends a token it finds)."""
    mode = os.environ.get("RAY_AUTH_MODE")
    if mode != "token" and not (auto and mode is None):
        return ()
    loader = AuthenticationTokenLoader.instance()
    if not loader.has_token(ignore_auth_mode=True):
        return ()
    return (("authorization", f"Bearer {loader.get_raw_token(ignore_auth_mode=True)}"),)


def _check_token(hostport: str, auto: bool = False) -> None:
    """Ask the cluster's GCS for its id, with the token Ray would send: a cluster that wants
    another token answers UNAUTHENTICATED at once."""
    metadata = _token_header(auto)
    with grpc.insecure_channel(hostport) as channel:
        call = channel.unary_unary("/ray.rpc.NodeInfoGcsService/GetClusterId")
        try:
            call(b"", timeout=5.0, metadata=metadata)
        except grpc.RpcError as err:
            if err.code() == grpc.StatusCode.UNAUTHENTICATED:
                raise SweepError(
                    f"--address {hostport}: {_auth_remedy(hostport, '', sent=bool(metadata))}"
                ) from None
            # anything else (not a GCS, busy): ray.init says it


def _auth_remedy(address: str, detail: str, *, sent: bool = False) -> str:
    head = (
        "the Ray cluster refused this machine's token"
        if sent
        else "the Ray cluster uses token authentication and this process sent no token"
    )
    return (
        f"{head}{' (' + detail + ')' if detail else ''}: run with RAY_AUTH_MODE=token and the "
        "head node's token (`ray get-auth-token` on the head prints it) in RAY_AUTH_TOKEN, in "
        "a file named by RAY_AUTH_TOKEN_PATH, or in ~/.ray/auth_token"
    )


def _log_mlflow(client: Any, out: Path, trial: Trial, row: dict[str, Any]) -> None:
    """Record the trial as an MLflow run in the experiment named after the sweep."""
    name = f"sweep {out.name}"
    found = client.get_experiment_by_name(name)
    experiment = found.experiment_id if found is not None else client.create_experiment(name)
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
        RunTag("run_dir", str((out / TRIALS_DIR / trial.id).resolve())),
        RunTag("error", row.get("error", "")),
    ]
    # One write for the run's facts: the driver logs every trial on the trials' own CPUs.
    client.log_batch(run.info.run_id, metrics=metrics, params=params, tags=tags)
    client.set_terminated(run.info.run_id, "FINISHED" if row["status"] == DONE else "FAILED")


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
        # The node a trial ran on and what made it stay in its row file: they say nothing of
        # the result.
        record.update({k: v for k, v in row.items() if k not in ("id", "node", "made_with")})
        records.append(record)
    frame = pd.DataFrame.from_records(records)
    order = ["trial", "config", *keys, "seed", "period", "status", "error"]
    rest = [c for c in frame.columns if c not in order]
    return frame[[c for c in order if c in frame.columns] + rest]
