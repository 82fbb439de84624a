"""The look-ahead check of a decision rule (``foliosim check-rule``).

The engine hands a rule the history cut at its decision week, as a copy the rule owns. But a
rule runs in foliosim's process with full trust: a deliberate one can still reach the engine's
whole table (a caller's frame, the garbage collector) and read the week after its decision.
This check catches that the way freqtrade's lookahead analysis does: by running the rule again
on data that *ends* at a decision week, where nothing after it exists anywhere, and comparing.

1. The config runs once on its full data (the reference).
2. For each of ``n`` decision weeks sampled evenly over the backtest, the data files are copied
   into a temporary folder with every row after that week's close removed (the index and the
   rate series too), and the rule runs again from the start of the backtest up to that week.
3. Every decision of the cut run (the sampled week's and every earlier one) must equal the
   reference's: the same target weight and score for every ticker. Any difference is a
   decision that changed when the future was removed, i.e. a decision that read the future.

Each run is a fresh Python process (``python -m simulator.lookahead``), so the cut runs never
share memory with the full data. A rule that opens files of its own choosing (the original
data files, say) can still read the future and cannot be caught this way; nor can a rule whose
answers are not the same from one run to the next (the check says so when two full runs
differ).

A rule trading on registry models (``lstm_signal``) is checked with its models: the cut runs
pick the same versions from the workspace's registry (a version is found by its spec and the
fingerprint of the data it was trained on, which ends before the cut).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from simulator.config import Config, config_from_dict
from simulator.data import load_daily
from simulator.errors import ConfigError, FoliosimError, StrategyError
from simulator.model_sources import WalkForward
from simulator.session import Session, Window

#: Decision weeks re-run on cut data by default.
DEFAULT_WEEKS = 6
#: Target weights and scores equal within this (the same arithmetic on the same rows gives the
#: same bits; a leak moves a weight by far more).
TOLERANCE = 1e-9

Say = Callable[[str], None]


@dataclass(frozen=True)
class Change:
    """A decision that changed when the data were cut after ``cut``.

    Attributes
    ----------
    week
        The decision week whose answer changed (``<= cut``).
    cut
        The week after whose close the data were cut.
    tickers
        ``(ticker, what, with the full data, with the data cut)``, ``what`` being ``"target"``
        or ``"score"``.
    """

    week: pd.Timestamp
    cut: pd.Timestamp
    tickers: tuple[tuple[str, str, float, float], ...]

    def line(self) -> str:
        """One line naming the week and the tickers."""
        shown = ", ".join(
            f"{t} {what} {full:.6g} with the full data, {cut:.6g} cut"
            for t, what, full, cut in self.tickers[:6]
        )
        more = f" and {len(self.tickers) - 6} more" if len(self.tickers) > 6 else ""
        return f"week {self.week.date()} (data cut after {self.cut.date()}): {shown}{more}"


@dataclass(frozen=True)
class RuleCheck:
    """The outcome of :func:`check_rule`.

    Attributes
    ----------
    strategy
        The rule's name.
    cuts
        The weeks after which the data were cut, oldest first.
    compared
        Decisions (week x ticker) compared.
    changes
        The decisions that changed, oldest first (empty: the rule passed).
    failures
        ``(cut week, error line)`` for each cut run that failed although the full run did not.
    """

    strategy: str
    cuts: tuple[pd.Timestamp, ...]
    compared: int
    changes: tuple[Change, ...] = ()
    failures: tuple[tuple[pd.Timestamp, str], ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        return not self.changes and not self.failures

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready document."""
        return {
            "strategy": self.strategy,
            "passed": self.passed,
            "cuts": [w.date().isoformat() for w in self.cuts],
            "compared": self.compared,
            "changes": [
                {
                    "week": c.week.date().isoformat(),
                    "cut": c.cut.date().isoformat(),
                    "tickers": [
                        {"ticker": t, "what": what, "full": full, "cut": cut}
                        for t, what, full, cut in c.tickers
                    ],
                }
                for c in self.changes
            ],
            "failures": [{"cut": w.date().isoformat(), "error": e} for w, e in self.failures],
        }


def check_rule(
    cfg: Config | Session, workspace: Path, weeks: int = DEFAULT_WEEKS, say: Say | None = None
) -> RuleCheck:
    """Run the look-ahead check of ``cfg``'s strategy, or of a session's (see the module
    docstring).

    Raises a :class:`~simulator.errors.FoliosimError` when the full run itself fails (a bad
    config, missing data, a rule that breaks the engine's rules).
    """
    if not 1 <= weeks <= 520:
        raise ConfigError(f"--weeks {weeks}: check between 1 and 520 decision weeks")
    say = say or (lambda _line: None)
    # Resolving imports a user rule once: a broken one fails now.
    session = cfg if isinstance(cfg, Session) else Session.open(cfg, workspace)
    cfg, name = session.config, session.plan.name
    decisions = Window.backtest(session.weekly, cfg).decisions
    # A cut run needs 3 weeks of backtest (Window.period); sample the rest evenly, the last
    # decision week included.
    candidates = decisions[2:]
    if candidates.empty:
        raise ConfigError("the backtest has too few decision weeks to check; lengthen it")
    picks = np.unique(np.linspace(0, len(candidates) - 1, min(weeks, len(candidates))).round())
    cuts = tuple(pd.Timestamp(candidates[int(i)]) for i in picks)
    with tempfile.TemporaryDirectory(prefix="foliosim-check-rule-") as tmp:
        root = Path(tmp)
        say(f"1/2 {name} on the full data")
        clock = time.perf_counter()
        full = _prepare(cfg, None, workspace, root / "full")
        (reference,) = _run_in_process([full], workspace, say)
        if isinstance(reference, str):
            raise StrategyError(reference)
        weeks_run = reference["week"].nunique()
        say(f"1/2: {weeks_run} decision weeks in {time.perf_counter() - clock:.1f} s")
        say(f"2/2 {name} on the data cut after each of {len(cuts)} week(s)")
        clock = time.perf_counter()
        folders = [_prepare(cfg, cut, workspace, root / f"cut-{k}") for k, cut in enumerate(cuts)]
        ran = _run_in_process(folders, workspace, say)
        changes: list[Change] = []
        failures: list[tuple[pd.Timestamp, str]] = []
        compared = 0
        for cut, log in zip(cuts, ran, strict=True):
            if isinstance(log, str):
                failures.append((cut, log))
                continue
            found, n = compare(reference, log, cut)
            compared += n
            changes.extend(found)
        verdict = f"{len(changes)} decision(s) changed" if changes else "no decision changed"
        say(f"2/2: {verdict} in {time.perf_counter() - clock:.1f} s")
    return RuleCheck(name, cuts, compared, tuple(changes), tuple(failures))


def compare(
    reference: pd.DataFrame, ran: pd.DataFrame, cut: pd.Timestamp
) -> tuple[list[Change], int]:
    """The decisions of ``ran`` (data cut after ``cut``) that differ from ``reference``'s.

    Both are decision logs (``strategies.rule.DECISION_COLUMNS``); only ticker rows of weeks up
    to ``cut`` are compared. Returns the changes, one per week, and the rows compared.
    """

    def rows(log: pd.DataFrame) -> pd.DataFrame:
        log = log[(log["ticker"] != "") & (pd.DatetimeIndex(log["week"]) <= cut)]
        return log.set_index(["week", "ticker"])[["target", "score"]]

    full, mine = rows(reference), rows(ran)
    both = full.add_suffix("_full").join(mine.add_suffix("_cut"), how="outer")
    changes: list[Change] = []
    by_week: dict[pd.Timestamp, list[tuple[str, str, float, float]]] = {}
    weeks = both.index.get_level_values("week")
    tickers = both.index.get_level_values("ticker")
    for what in ("target", "score"):
        full_values = both[f"{what}_full"].to_numpy(dtype=float)
        cut_values = both[f"{what}_cut"].to_numpy(dtype=float)
        for i, (a, b) in enumerate(zip(full_values, cut_values, strict=True)):
            if what == "target":  # a ticker missing from one log was not held in it
                a, b = (0.0 if math.isnan(a) else a), (0.0 if math.isnan(b) else b)
            if not _same(a, b):
                by_week.setdefault(pd.Timestamp(weeks[i]), []).append((str(tickers[i]), what, a, b))
    changes = [Change(week, cut, tuple(found)) for week, found in sorted(by_week.items())]
    return changes, len(both)


def _same(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= TOLERANCE * max(1.0, abs(a), abs(b))


# --- the runs, in processes of their own -----------------------------------------------------


def _prepare(cfg: Config, cut: pd.Timestamp | None, workspace: Path, folder: Path) -> Path:
    """A folder holding one run: its config (on the data cut after ``cut``, if any)."""
    folder.mkdir(parents=True)
    raw = json.loads(json.dumps(cfg.model_dump(mode="json", exclude_none=True)))
    if cut is not None:
        raw = cut_config(raw, cfg, cut, workspace, folder / "data")
    (folder / "config.json").write_text(json.dumps(raw), encoding="utf-8")
    spec = {"cut": cut.date().isoformat() if cut is not None else None}
    (folder / "run.json").write_text(json.dumps(spec), encoding="utf-8")
    return folder


def _run_in_process(folders: list[Path], workspace: Path, say: Say) -> list[pd.DataFrame | str]:
    """Run each folder's config, in order, in one new process; each one's decision log, or
    the line saying why it failed.

    The full run has a process of its own; the cut runs share one, oldest cut first, so that
    nothing in its memory ever reaches past the cut being run (each earlier run's data end
    sooner).
    """
    env = dict(os.environ)
    # The rule is imported as it is here: same folder, same import path.
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    argv = [sys.executable, "-m", "simulator.lookahead", str(workspace.resolve())]
    argv += [str(f) for f in folders]
    tail: list[str] = []
    with subprocess.Popen(
        argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stderr is not None
        for line in proc.stderr:
            line = line.rstrip()
            if line.startswith(_PROGRESS):
                say(line.removeprefix(_PROGRESS))
            elif line.strip():
                tail = [*tail[-20:], line]
        status = proc.wait()
    out: list[pd.DataFrame | str] = []
    for folder in folders:
        if (folder / "decisions.parquet").is_file():
            out.append(pd.read_parquet(folder / "decisions.parquet"))
        elif (folder / "error.txt").is_file():
            out.append((folder / "error.txt").read_text(encoding="utf-8").strip())
        else:
            last = tail[-1] if tail else "no message"
            out.append(f"the run ended with status {status} ({last})")
    return out


_PROGRESS = "progress: "


def cut_config(
    raw: dict[str, Any], cfg: Config, cut: pd.Timestamp, workspace: Path, folder: Path
) -> dict[str, Any]:
    """``raw`` (the config as a mapping) on data that end at the close of week ``cut``.

    The data and the backtest end at ``cut``. A CSV source's files (tickers, index, the rate
    series) are copied into ``folder`` without their rows after ``cut``; a Yahoo source's
    prices are written there as CSV files the same way; the bundled data set lives inside an
    installed package, so it is only cut by ``data.end``.
    """
    raw = json.loads(json.dumps(raw))
    day = cut.date().isoformat()
    raw["data"]["end"] = day
    raw["backtest"]["end"] = day
    if cfg.data.source == "bundled":
        return raw
    folder.mkdir(parents=True)
    if cfg.data.source == "csv":
        source = Path(cfg.data.path or "")
        rf = cfg.report.risk_free if isinstance(cfg.report.risk_free, str) else None
        names = {*(cfg.data.tickers or []), cfg.data.benchmark, *([rf] if rf else [])}
        for path in sorted(source.glob("*.csv")):
            if cfg.data.tickers and path.stem.upper() not in names:
                continue
            _cut_csv(path, folder / path.name, cut)
    else:
        daily = load_daily(cfg.data, cfg.report.risk_free, workspace)
        for name, frame in {**daily.assets}.items():
            _write_csv(frame, folder / f"{name}.csv", cut)
        bench = daily.benchmark.to_frame("close")
        _write_csv(bench, folder / f"{cfg.data.benchmark}.csv", cut)
        if daily.risk_free is not None:
            _write_csv(
                daily.risk_free.to_frame("close"), folder / f"{daily.risk_free.name}.csv", cut
            )
        raw["data"]["source"] = "csv"
    raw["data"]["path"] = str(folder)
    return raw


def _cut_csv(source: Path, target: Path, cut: pd.Timestamp) -> None:
    """``source`` without its rows dated after ``cut``, every kept cell as it was written."""
    table = pd.read_csv(source, dtype=str, keep_default_na=False)
    dates = pd.to_datetime(table.iloc[:, 0].str.strip(), format="ISO8601", errors="coerce")
    # A date that does not parse is kept: the loader names the line, as it would have.
    table[~(dates > cut)].to_csv(target, index=False)


def _write_csv(frame: pd.DataFrame, target: Path, cut: pd.Timestamp) -> None:
    """A loaded daily frame in the CSV format, its rows up to ``cut``; prices already
    adjusted, so ``adj_close`` is left empty."""
    kept = frame[frame.index <= cut]
    out = pd.DataFrame(index=pd.Index(pd.DatetimeIndex(kept.index).date, name="date"))
    for col in ("open", "high", "low", "close"):
        out[col] = kept[col].to_numpy() if col in kept else kept["close"].to_numpy()
    out["adj_close"] = ""
    # No volume is an empty cell, not 0: a first row of equal prices and volume 0 would read
    # as a listing placeholder and be dropped (simulator.data.sources.parse_price_table).
    volume = kept["volume"] if "volume" in kept else pd.Series(0.0, index=kept.index)
    out["volume"] = [repr(float(v)) if v else "" for v in volume.to_numpy()]
    out.to_csv(target, float_format="%.17g")


def _worker(folder: Path, workspace: Path) -> None:
    """One run: the config in ``folder``, its strategy's decision log to ``folder``."""
    raw = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    cfg = config_from_dict(raw, "the checked config")
    session = Session.open(cfg, workspace)
    window = Window.backtest(session.weekly, cfg)
    if json.loads((folder / "run.json").read_text(encoding="utf-8"))["cut"] is not None:
        # The full run decides as a backtest does (every week but the last); a cut run
        # decides at its last week too: the cut week is the one under test.
        window = Window(window.weeks, window.weeks)
    result = session.run(session.strategy_rule(window, WalkForward()), window)
    result.decisions.to_parquet(folder / "decisions.parquet")


def main(argv: list[str]) -> int:
    """``python -m simulator.lookahead WORKSPACE FOLDER...``: the runs of :func:`check_rule`,
    in order; a run that fails leaves its error line in its folder and the next one runs."""
    workspace = Path(argv[0])
    for folder in map(Path, argv[1:]):
        clock = time.perf_counter()
        cut = json.loads((folder / "run.json").read_text(encoding="utf-8"))["cut"]
        label = f"data cut after {cut}" if cut else "full data"
        try:
            _worker(folder, workspace)
        except FoliosimError as err:  # a model's errors (ModelError) included
            line = " ".join(str(err).split())
            (folder / "error.txt").write_text(line, encoding="utf-8")
            print(f"{_PROGRESS}{label}: failed: {line}", file=sys.stderr, flush=True)
            continue
        took = time.perf_counter() - clock
        print(f"{_PROGRESS}{label}: ran in {took:.1f} s", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
