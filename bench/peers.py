"""Peers benchmark: foliosim against bt, vectorbt and ml4t-backtest on one synthetic market.

``python bench/peers.py`` generates the seeded one-factor market of ``bench/synthetic.py``
(20 years of business days, N = 20, 100 and 500 tickers; cached in
``~/.cache/foliosim-bench/data`` or ``--data DIR``), builds one virtualenv per peer with pinned
versions (``~/.cache/foliosim-bench/venvs/<peer>-<version>``; none of them is a dependency of
foliosim) and runs two weekly strategies through every engine:

- **1/N**: every ticker at 1/N each week (foliosim: ``strategy = "equal_weight"`` with
  ``strategy.max_weight = 1``, so the default 1/3 cap never binds);
- **momentum**: rank the tickers by close(t) / close(t - 12 weeks) - 1 on the weekly closes,
  hold the top 10 at 1/10 each; a ticker with fewer than 13 weekly closes is not ranked, so
  the first 12 weeks hold cash (foliosim: the user rule ``bench/peer_rules.py``).

Both decide at the close of the last trading day of each week (the Friday; the market has no
holidays) and fill at that close (foliosim ``backtest.fill = "close"``), long only, no costs,
cash 10,000,000, from the first week (``backtest.min_history = 1``) to the last complete week
(Friday 2023-12-29; the data's last, partial week is left out for every engine). Engines:

- ``foliosim CLI``: ``foliosim backtest CONFIG --set ...`` (run files and tear sheet included);
- ``foliosim API``: a process running ``load_config`` + ``simulator.backtest.run_backtest``
  (``bench/peer_engines/foliosim_api.py``);
- ``bt`` (pmorissette): ``RunWeekly(run_on_end_of_period=True)``, ``SelectAll`` or
  ``SelectMomentum``, ``WeighEqually``, ``Rebalance``, whole shares
  (``bench/peer_engines/bt_engine.py``);
- ``vectorbt``: ``Portfolio.from_orders`` with ``size_type="targetpercent"``, shared cash,
  ``call_seq="auto"`` (``bench/peer_engines/vectorbt_engine.py``);
- ``ml4t-backtest``: an event-driven ``Strategy`` handing target weights to its
  ``TargetWeightExecutor``, ``SAME_BAR`` fills at the close (``bench/peer_engines/ml4t_engine.py``).

Every run is its own process, timed whole (interpreter start, imports, data loading, the run,
the results), with its peak memory (``ru_maxrss`` of the child from ``os.wait4``); the table
shows the fastest of ``--runs`` runs and the highest peak. Before the timed runs each engine
makes one untimed warm-up run on the smallest N over one year (vectorbt compiles its numba
functions into a cache on its very first run; the others only warm the disk cache).

**Parity.** foliosim trades whole shares: each week every ticker's target is rounded down,
``floor(weight * value / close)``, and the cash left over stays uninvested. The script checks
each final value against foliosim's as a difference of total return (``(final - foliosim's
final) / cash``) with a tolerance ``TOLERANCE`` = 1e-4, and against two exact references
computed here from the same weekly closes: ``numpy whole`` (foliosim's rule) and ``numpy
fractional`` (every dollar invested). What differs, and why:

- **bt** rounds each long order down (``integer_positions``, its default) on the value at
  that close: the same shares as foliosim, so the same final value to the cent (one share
  apart, rarely, where a target lands within floating-point error of a whole number: on
  momentum at N = 100, T0038's target on 2009-03-13 is 29,315.00000000003 shares and bt
  buys 29,314, which moves the final value by 9e-6 of total return).
- **vectorbt** and **ml4t-backtest** run with fractional shares (``--shares auto``): they
  match ``numpy fractional`` to 1e-14, and differ from foliosim by the cash foliosim's
  rounding leaves idle each week (printed as its mean share of the value). That difference
  grows with N and with the price level: about 3e-4 of total return at N = 20, 4e-3 at
  N = 100 and 1.1e-2 at N = 500 for 1/N over 20 years (well over the tolerance), and is
  explained exactly by ``numpy whole`` against ``numpy fractional``. Their whole-share modes
  (``--shares whole``: vectorbt's ``size_granularity=1``, ml4t's ``ShareType.INTEGER``) round
  each *order* toward zero, so a sale keeps up to one share above the rounded-down target;
  they then hold more than foliosim and land between the two references, a rule neither
  foliosim nor bt uses (ml4t also rejects a whole buy that the cash falls short of by those
  shares unless partial fills are allowed, as they are here).
- **The weekly grid** is the same everywhere: the last trading day of each Monday-to-Friday
  week (every Friday here), decisions at every week but the last; the data's last, partial
  week (Monday 2024-01-01 to Thursday 2024-01-04) is left out for every engine.

It is a report: it exits 0 once every run finished, and 1 with one line when a run failed or
the setup is broken (no virtualenv, no data).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import synthetic
from common import cpu_model, machine_line, progress

REPO = Path(__file__).resolve().parent.parent
ENGINES_DIR = Path(__file__).resolve().parent / "peer_engines"
CACHE = Path.home() / ".cache" / "foliosim-bench"
CASH = 10_000_000.0
TOLERANCE = 1e-4  # on total return: |final - foliosim's final| / cash
RESULT_TAG = "PEER_RESULT "
STRATEGIES = ("equal_weight", "momentum")
STRATEGY_TITLES = {"equal_weight": "weekly 1/N", "momentum": "12-week momentum, top 10"}
MOMENTUM_RULE = "bench.peer_rules:TopTenMomentum"
LOOKBACK, TOP = 12, 10


@dataclass(frozen=True)
class Peer:
    """A peer engine: its PyPI pin, the distribution whose version proves the venv, its script."""

    name: str
    requirement: str
    distribution: str
    script: str
    #: The share mode of ``--shares auto``: whole where the peer rounds each target down as
    #: foliosim does, fractional where its whole-share mode rounds orders instead.
    auto_shares: str

    @property
    def version(self) -> str:
        return self.requirement.split("==", 1)[1]


PEERS = (
    Peer("bt", "bt==1.4.1", "bt", "bt_engine.py", "whole"),
    Peer("vectorbt", "vectorbt==1.2.0", "vectorbt", "vectorbt_engine.py", "fractional"),
    # A pre-release: pinned exactly, which pip accepts without --pre.
    Peer(
        "ml4t-backtest", "ml4t-backtest==0.1.0b5", "ml4t-backtest", "ml4t_engine.py", "fractional"
    ),
)
FOLIOSIM = ("foliosim CLI", "foliosim API")
PARITY_NOTES = (
    "numpy whole: foliosim's rule computed directly, floor(weight * value / close) at each "
    "close; it checks foliosim to the cent.",
    "bt rounds each long order down on the value at that close: the same shares as foliosim "
    "(a share apart, rarely, where a target lands within rounding error of a whole number).",
    "numpy fractional invests every dollar; a fractional engine differs from foliosim by the "
    "cash foliosim's rounding leaves idle (grows with N: up to a share's price per ticker).",
    "vectorbt and ml4t-backtest with whole shares (--shares whole) round each order toward "
    "zero: a sale keeps up to a share above the rounded-down target, so they hold more than "
    "foliosim and land between numpy whole and fractional.",
)


class SetupError(Exception):
    """The benchmark cannot run (a venv that does not build, data that cannot be written)."""


# --- the setup ----------------------------------------------------------------------------


def shares_of(engine: str, mode: str) -> str:
    """``whole`` or ``fractional``: how ``engine`` trades under ``--shares mode``."""
    if engine in FOLIOSIM:
        return "whole"
    if mode == "auto":
        return next(p for p in PEERS if p.name == engine).auto_shares
    return mode


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env["FOLIOSIM_WORKSPACE"] = str(CACHE / "workspace")
    env.pop("PYTHONPATH", None)
    return env


def venv_python(venvs: Path, peer: Peer) -> Path:
    return venvs / f"{peer.name}-{peer.version}" / "bin" / "python"


def installed_version(python: Path, distribution: str) -> str | None:
    if not python.exists():
        return None
    code = f"import importlib.metadata as m; print(m.version({distribution!r}))"
    proc = subprocess.run([python, "-c", code], capture_output=True, text=True, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


def ensure_venv(venvs: Path, peer: Peer) -> Path:
    """The peer's venv, built (``python -m venv`` + ``pip install PIN``) unless it holds the
    pinned version already."""
    python = venv_python(venvs, peer)
    if installed_version(python, peer.distribution) == peer.version:
        return python
    folder = python.parent.parent
    progress(f"building {folder} ({peer.requirement}; a few minutes) ...")
    steps = [
        [sys.executable, "-m", "venv", "--clear", str(folder)],
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            peer.requirement,
        ],
    ]
    for cmd in steps:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise SetupError(f"cannot build the {peer.name} venv ({' '.join(cmd[-2:])}): {tail[0]}")
    if installed_version(python, peer.distribution) != peer.version:
        raise SetupError(f"the {peer.name} venv at {folder} does not hold {peer.requirement}")
    return python


def peer_versions(python: Path) -> str:
    """``pandas x, numpy y`` as the peer's venv has them."""
    code = (
        "import importlib.metadata as m; "
        "print(', '.join(f'{d} {m.version(d)}' for d in ('pandas', 'numpy')))"
    )
    proc = subprocess.run([python, "-c", code], capture_output=True, text=True, check=False)
    return proc.stdout.strip()


def last_friday(years: int) -> pd.Timestamp:
    """The last Friday of the first ``years`` years of the data: the run's last week."""
    days = synthetic.business_days(years)
    return days[days.day_of_week == 4][-1]


def make_data(root: Path, n: int) -> Path:
    folder = root / f"n{n}"
    try:
        synthetic.write(folder, n)
    except OSError as err:
        raise SetupError(f"cannot write the N={n} data set into {folder}: {err}") from None
    return folder


# --- one run ------------------------------------------------------------------------------


@dataclass
class Run:
    engine: str
    strategy: str
    n: int
    seconds: float = math.inf
    peak_mib: float = 0.0
    final: float = math.nan
    weeks: int = 0
    runs: int = 0
    error: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def timed(cmd: list[str], cwd: Path) -> tuple[float, float, int, str, str]:
    """Run ``cmd`` as one child: (wall seconds, peak MiB, exit code, stdout, stderr)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=child_env(), stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        out.seek(0)
        err.seek(0)
        return seconds, usage.ru_maxrss / 1024, proc.returncode, out.read(), err.read()


def foliosim_args(data: Path, n: int, strategy: str, end: pd.Timestamp) -> list[str]:
    tickers = ",".join(synthetic.ticker_names(n))
    rule = "equal_weight" if strategy == "equal_weight" else MOMENTUM_RULE
    sets = {
        "data.source": "csv",
        "data.path": str(data),
        "data.tickers": tickers,
        "data.benchmark": synthetic.BENCHMARK,
        "data.start": synthetic.START,
        "data.end": str(end.date()),
        "backtest.start": synthetic.START,
        "backtest.end": str(end.date()),
        "backtest.strategy": rule,
        "backtest.cash": str(int(CASH)),
        "backtest.fill": "close",
        "backtest.commission": "0",
        "backtest.min_history": "1",
        "strategy.max_weight": "1.0",
        "strategy.gross": "1.0",
        "strategy.allow_short": "false",
    }
    return [arg for key, value in sets.items() for arg in ("--set", f"{key}={value}")]


def command(
    engine: str,
    strategy: str,
    data: Path,
    n: int,
    end: pd.Timestamp,
    pythons: dict[str, Path],
    shares: str,
    out: Path,
) -> list[str]:
    if engine in FOLIOSIM:
        config = ENGINES_DIR / "foliosim_base.toml"
        sets = foliosim_args(data, n, strategy, end)
        if engine == "foliosim CLI":
            cli = Path(sys.executable).parent / "foliosim"
            return [str(cli), "backtest", str(config), *sets, "--out", str(out)]
        return [sys.executable, str(ENGINES_DIR / "foliosim_api.py"), str(config), *sets]
    peer = next(p for p in PEERS if p.name == engine)
    return [
        str(pythons[engine]),
        str(ENGINES_DIR / peer.script),
        "--panel",
        str(data / "panel.npz"),
        "--strategy",
        strategy,
        "--end",
        str(end.date()),
        "--shares",
        shares_of(engine, shares),
    ]


def run_once(cmd: list[str], engine: str, out: Path) -> tuple[float, float, dict[str, Any]]:
    seconds, peak, code, stdout, stderr = timed(cmd, REPO)
    lines = [ln for ln in stdout.splitlines() if ln.startswith(RESULT_TAG)]
    if engine == "foliosim CLI" and code == 0:
        summary = json.loads((out / "summary.json").read_text())
        result = {"final": summary["final_value"], "weeks": summary["weeks"] + 1}
    elif code == 0 and lines:
        result = json.loads(lines[-1][len(RESULT_TAG) :])
    else:
        tail = (stderr.strip() or stdout.strip()).splitlines()[-5:]
        raise RuntimeError(f"exit {code}: " + " | ".join(tail))
    return seconds, peak, result


def measure(
    engine: str,
    strategy: str,
    data: Path,
    n: int,
    end: pd.Timestamp,
    pythons: dict[str, Path],
    shares: str,
    runs: int,
) -> Run:
    run = Run(engine, strategy, n)
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="foliosim-peers-") as tmp:
            out = Path(tmp) / "run"
            cmd = command(engine, strategy, data, n, end, pythons, shares, out)
            try:
                seconds, peak, result = run_once(cmd, engine, out)
            except (RuntimeError, OSError, ValueError) as err:
                run.error = str(err)[-600:]
                return run
        run.runs += 1
        run.peak_mib = max(run.peak_mib, peak)
        if seconds < run.seconds:
            run.seconds = seconds
        run.final, run.weeks = float(result["final"]), int(result["weeks"])
        run.extra = {k: v for k, v in result.items() if k not in ("final", "weeks")}
    return run


# --- the exact references -----------------------------------------------------------------


def weekly_closes(data: Path, end: pd.Timestamp) -> pd.DataFrame:
    """Closes of the last trading day of each week up to ``end``, ``(n_weeks, n_tickers)``."""
    with np.load(data / "panel.npz") as npz:
        days = pd.DatetimeIndex(npz["dates"].astype(str))
        closes = pd.DataFrame(npz["closes"], index=days, columns=npz["tickers"].astype(str))
    closes = closes.loc[:end]
    return closes.groupby(closes.index.to_period("W-FRI")).tail(1)


def targets(closes: np.ndarray, strategy: str) -> np.ndarray:
    """Target weights at each week's close, ``(n_weeks, n_tickers)``."""
    n_weeks, n = closes.shape
    if strategy == "equal_weight":
        return np.full((n_weeks, n), 1.0 / n)
    weights = np.zeros((n_weeks, n))
    for k in range(LOOKBACK, n_weeks):
        score = closes[k] / closes[k - LOOKBACK] - 1.0
        best = np.lexsort((np.arange(n), -score))[:TOP]  # ties: the earlier ticker
        weights[k, best] = 1.0 / TOP
    return weights


def reference(closes: np.ndarray, strategy: str, whole: bool) -> tuple[float, float]:
    """Trade to the targets at every week's close but the last, whole shares rounded down
    (foliosim's rule) or fractional: (final value, mean share of the value left in cash after
    the weeks' trades, over the weeks the targets invest it all)."""
    weights = targets(closes, strategy)
    cash, shares = CASH, np.zeros(closes.shape[1])
    idle = []
    for k in range(len(closes) - 1):
        value = cash + float(shares @ closes[k])
        new = weights[k] * value / closes[k]
        if whole:
            new = np.floor(new)
        cash = value - float(new @ closes[k])
        shares = new
        if weights[k].sum() > 0.999:
            idle.append(cash / value)
    return cash + float(shares @ closes[-1]), float(np.mean(idle)) if idle else 0.0


# --- the report ---------------------------------------------------------------------------


def fmt_run(run: Run | None) -> str:
    if run is None:
        return "-"
    if run.error:
        return "failed"
    return f"{run.seconds:.1f} s, {run.peak_mib:.0f} MiB"


def slope(ns: list[int], seconds: list[float]) -> float:
    """Least-squares slope of log(seconds) on log(N)."""
    return float(np.polyfit(np.log(ns), np.log(seconds), 1)[0])


def parse_sizes(text: str, parser: argparse.ArgumentParser, flag: str) -> list[int]:
    try:
        sizes = sorted({int(s) for s in text.split(",") if s.strip()})
    except ValueError:
        parser.error(f"{flag}: comma-separated whole numbers, e.g. 20,100,500 (got {text!r})")
    if not sizes or min(sizes) < TOP:
        parser.error(f"{flag}: sizes of at least {TOP} tickers (the momentum rule holds {TOP})")
    return sizes


def verdict(engine: str, whole: bool, to_foliosim: float, to_own: float) -> str:
    if abs(to_foliosim) <= TOLERANCE:
        return "ok"
    if not whole and abs(to_own) <= TOLERANCE:
        return "explained: fractional shares invest the cash foliosim keeps"
    if whole and engine in ("vectorbt", "ml4t-backtest"):
        return "OVER: its whole shares round each order toward zero, not the target down"
    return "OVER"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="20,100,500", help="comma-separated N")
    parser.add_argument(
        "--foliosim-sizes", help="the sizes foliosim runs at (default: --sizes), e.g. 20"
    )
    parser.add_argument("--only", choices=["foliosim", "peers"], help="run only these engines")
    parser.add_argument("--runs", type=int, default=3, help="timed runs each, the fastest kept")
    parser.add_argument(
        "--foliosim-runs-500", type=int, default=1, help="timed runs of foliosim at N >= 500"
    )
    parser.add_argument("--years", type=int, default=synthetic.YEARS, help="years simulated")
    parser.add_argument(
        "--shares",
        choices=["auto", "whole", "fractional"],
        default="auto",
        help="the peers' shares (auto: bt whole, vectorbt and ml4t-backtest fractional)",
    )
    parser.add_argument("--data", type=Path, default=CACHE / "data")
    parser.add_argument("--venvs", type=Path, default=CACHE / "venvs")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args(argv)
    sizes = parse_sizes(args.sizes, parser, "--sizes")
    fol_sizes = parse_sizes(args.foliosim_sizes or args.sizes, parser, "--foliosim-sizes")
    if args.runs < 1 or args.foliosim_runs_500 < 1 or not 1 <= args.years <= synthetic.YEARS:
        parser.error(f"--runs and --foliosim-runs-500 at least 1, --years 1..{synthetic.YEARS}")

    load_start = os.getloadavg()
    engines = [] if args.only == "peers" else list(FOLIOSIM)
    engines += [] if args.only == "foliosim" else [p.name for p in PEERS]
    all_sizes = sorted(set(sizes) | (set(fol_sizes) if args.only != "peers" else set()))
    try:
        pythons = {p.name: ensure_venv(args.venvs, p) for p in PEERS if p.name in engines}
        folders = {n: make_data(args.data, n) for n in all_sizes}
    except SetupError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    end = last_friday(args.years)

    def sizes_of(engine: str) -> list[int]:
        return fol_sizes if engine in FOLIOSIM else sizes

    for engine in engines:  # untimed warm-up: smallest N, one year
        n = min(sizes_of(engine))
        progress(f"warm-up: {engine} ...")
        warm = measure(
            engine, "equal_weight", folders[n], n, last_friday(1), pythons, args.shares, 1
        )
        if warm.error:
            print(f"error: {engine} does not run: {warm.error}", file=sys.stderr)
            return 1

    runs: list[Run] = []
    for n in all_sizes:
        for strategy in STRATEGIES:
            for engine in (e for e in engines if n in sizes_of(e)):
                k = args.foliosim_runs_500 if engine in FOLIOSIM and n >= 500 else args.runs
                progress(f"N={n} {strategy}: {engine} ({k} run{'s' * (k > 1)}) ...")
                run = measure(engine, strategy, folders[n], n, end, pythons, args.shares, k)
                if run.error:
                    progress(f"  failed: {run.error}")
                runs.append(run)
    by = {(r.engine, r.strategy, r.n): r for r in runs}
    refs: dict[tuple[str, int, bool], tuple[float, float]] = {}
    for n in all_sizes:
        closes = weekly_closes(folders[n], end).to_numpy()
        for strategy in STRATEGIES:
            for whole in (True, False):
                refs[(strategy, n, whole)] = reference(closes, strategy, whole)

    versions = ", ".join(p.requirement for p in PEERS)
    if pythons:
        versions += f" (peer venvs: {peer_versions(next(iter(pythons.values())))})"
    print("foliosim peers benchmark (bench/peers.py)")
    print(f"machine: {machine_line(cpu_model(), f'pandas {pd.__version__}, {versions}')}")
    loads = ", ".join(f"{x:.2f}" for x in load_start)
    print(
        f"load average (1, 5, 15 min) at start: {loads}; at end: "
        + ", ".join(f"{x:.2f}" for x in os.getloadavg())
    )
    peers_shares = ", ".join(f"{p.name} {shares_of(p.name, args.shares)}" for p in PEERS)
    print(
        f"data: bench/synthetic.py, seed {synthetic.SEED}, {synthetic.START} .. {end.date()} "
        f"({len(weekly_closes(folders[all_sizes[0]], end))} weeks), decisions and fills at each "
        f"Friday close, no costs, cash {CASH:,.0f}, long only"
    )
    print(f"shares: foliosim whole (rounded down); {peers_shares}")
    print(
        f"time: whole process, fastest of {args.runs} (foliosim at N >= 500: "
        f"{args.foliosim_runs_500}); peak: ru_maxrss of the process"
    )
    for strategy in STRATEGIES:
        print()
        title = f"{STRATEGY_TITLES[strategy]}, whole process"
        header = f"{title:<32}" + "".join(f"{f'N={n}':>19}" for n in all_sizes)
        print(header)
        print("-" * len(header))
        for engine in engines:
            cells = "".join(f"{fmt_run(by.get((engine, strategy, n))):>19}" for n in all_sizes)
            print(f"{engine:<32}{cells}")
        pairs = [(f, p) for f in FOLIOSIM for p in ("bt", "vectorbt") if {f, p} <= set(engines)]
        for f, p in pairs:
            cells = ""
            for n in all_sizes:
                a, b = by.get((f, strategy, n)), by.get((p, strategy, n))
                ok = a is not None and b is not None and not a.error and not b.error
                cells += f"{f'{a.seconds / b.seconds:.1f}x' if ok else '-':>19}"  # type: ignore[union-attr]
            print(f"{f + ' / ' + p:<32}{cells}")

    print()
    print(
        textwrap.fill(
            "parity, as total return ((final - other) / cash): each final value against "
            "foliosim's (the API run; numpy whole where foliosim did not run) and against the "
            "engine's own exact reference (numpy whole or fractional, as it trades); tolerance "
            f"{TOLERANCE:.0e}",
            100,
        )
    )
    print(f"    {'engine':<18}{'final value':>18}{'vs foliosim':>13}{'vs own ref':>13}")
    problems = []
    for strategy in STRATEGIES:
        for n in all_sizes:
            (whole_ref, idle), (frac_ref, _) = refs[(strategy, n, True)], refs[(strategy, n, False)]
            base = by.get(("foliosim API", strategy, n))
            base_final = base.final if base is not None and not base.error else whole_ref
            rows = [
                (e, by[(e, strategy, n)].final, shares_of(e, args.shares) == "whole")
                for e in engines
                if (e, strategy, n) in by and not by[(e, strategy, n)].error
            ]
            rows += [("numpy whole", whole_ref, True), ("numpy fractional", frac_ref, False)]
            print(
                f"  {STRATEGY_TITLES[strategy]}, N={n} (foliosim's rounding leaves "
                f"{idle:.3%} of the value in cash each week, on average):"
            )
            for name, final, whole in rows:
                to_foliosim = (final - base_final) / CASH
                to_own = (final - (whole_ref if whole else frac_ref)) / CASH
                word = verdict(name, whole, to_foliosim, to_own)
                if word.startswith("OVER") or abs(to_own) > TOLERANCE:
                    problems.append(f"{name} {strategy} N={n}")
                print(f"    {name:<18}{final:>18,.2f}{to_foliosim:>+13.2e}{to_own:>+13.2e}  {word}")
    for line in PARITY_NOTES:
        print(textwrap.fill(line, 100, initial_indent="  - ", subsequent_indent="    "))

    if len(all_sizes) >= 2:
        print()
        print("growth in N: least-squares slope of log(seconds) on log(N) (1 = linear)")
        for strategy in STRATEGIES:
            cells = []
            for engine in engines:
                pts = [by[(engine, strategy, n)] for n in sizes_of(engine)]
                if len(pts) >= 2 and all(not r.error for r in pts):
                    ns = sizes_of(engine)
                    cells.append(f"{engine} {slope(ns, [r.seconds for r in pts]):.2f}")
            print(f"  {STRATEGY_TITLES[strategy]}: " + "; ".join(cells))

    if args.json:
        doc = {
            "machine": machine_line(cpu_model(), versions),
            "load_start": load_start,
            "end": str(end.date()),
            "shares": {e: shares_of(e, args.shares) for e in engines},
            "tolerance": TOLERANCE,
            "runs": [asdict(r) for r in runs],
            "references": [
                {"strategy": s, "n": n, "whole": w, "final": v, "mean_cash": c}
                for (s, n, w), (v, c) in refs.items()
            ],
        }
        args.json.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    failed = [r for r in runs if r.error]
    if failed:
        names = ", ".join(f"{r.engine} {r.strategy} N={r.n}" for r in failed)
        print(f"error: {len(failed)} run(s) failed: {names}", file=sys.stderr)
        return 1
    if problems:
        print("parity over the tolerance: " + ", ".join(problems))
    return 0


if __name__ == "__main__":
    sys.exit(main())
