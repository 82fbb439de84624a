"""Engine benchmark: foliosim vs bare backtrader vs numpy on weekly 1/N rebalancing.

Run ``python bench/engine.py`` (a few minutes) or ``python bench/engine.py --quick`` (a short
smoke run over fewer weeks). For N = 12, 20 and 100 tickers over the bundled history it prints
the throughput in asset-weeks per second (N * weeks / wall seconds of the engine run only, data
loading excluded), the ratios foliosim/bare and numpy/foliosim, the peak memory of each engine
run and the final portfolio values as a sanity check. It is a report, not a test: it exits 0.

Every engine run happens in a fresh subprocess (``--child``), so that its peak memory
(``ru_maxrss``) is its own and no run warms caches for another.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from common import cpu_model, machine_line, max_rss_mib, progress

from simulator.data import WeeklyData

SIZES = (12, 20, 100)
CASH = 10_000_000.0
QUICK_WEEKS = 156
COPIES = 4  # N=100: the 20 real series plus 4 scaled copies of each
RESULT_TAG = "BENCH_RESULT "
TARGET = "foliosim >= 2x bare backtrader; N=100 peak < 1024 MiB"


# --- data ---------------------------------------------------------------------------------


def copy_factor(copy: int, j: int) -> float:
    """Price multiplier of copy ``copy`` (2..5) of the ``j``-th real ticker (0..19).

    Copy k spans [k, 1.19 k], so the 80 factors are distinct (2.00 .. 5.95).
    """
    return copy * (1.0 + j / 100.0)


def load_weekly(n: int, n_weeks: int | None) -> WeeklyData:
    """Weekly bars of ``n`` tickers: the first ``n`` bundled stocks, or the 20 plus copies.

    Parameters
    ----------
    n
        12, 20 or 100; 100 adds ``COPIES`` copies of each real series named ``<TICKER>_<k>``
        (k = 2..5) whose open/high/low/close are multiplied by :func:`copy_factor`.
    n_weeks
        Keep only the first ``n_weeks`` week stamps (``--quick``), or all when None.
    """
    from simulator.config import load_config
    from simulator.data import load_daily, make_weekly

    cfg = load_config(
        None, ["data.start=1990-01-01", "data.end=2022-12-31", "backtest.start=1990-01-01"]
    )
    with tempfile.TemporaryDirectory(prefix="foliosim-bench-") as tmp:
        daily = load_daily(cfg.data, 0.0, Path(tmp))
    real = list(daily.assets)
    if n <= len(real):
        assets = {t: daily.assets[t] for t in real[:n]}
    else:
        if n != len(real) * (1 + COPIES):
            raise ValueError(f"n must be <= {len(real)} or {len(real) * (1 + COPIES)}, got {n}")
        assets = dict(daily.assets)
        prices = ["open", "high", "low", "close"]
        for copy in range(2, 2 + COPIES):
            for j, t in enumerate(real):
                frame = daily.assets[t].copy()
                frame[prices] = frame[prices] * copy_factor(copy, j)
                assets[f"{t}_{copy}"] = frame
    weekly = make_weekly(dataclasses.replace(daily, assets=assets))
    if n_weeks is None or n_weeks >= len(weekly.calendar):
        return weekly
    calendar = weekly.calendar[:n_weeks]
    last = calendar[-1]
    return dataclasses.replace(
        weekly,
        bars={t: b.loc[:last] for t, b in weekly.bars.items()},
        benchmark=weekly.benchmark.loc[:last],
        calendar=calendar,
    )


# --- the three engines --------------------------------------------------------------------


def run_foliosim(weekly: WeeklyData, fill: str) -> dict[str, Any]:
    """foliosim's engine, 1/N targets at every week's close but the last."""
    from simulator.engine import run_engine
    from strategies.equal_weight import EqualWeightRule
    from strategies.sizing import Limits

    weeks = weekly.calendar
    # The decision rule a user's `strategy = "equal_weight"` backtest runs; no cap binds for 1/N.
    limits = Limits(max_weight=1.0)
    start = time.perf_counter()
    res = run_engine(
        weekly, weeks, weeks[:-1], EqualWeightRule(limits), cash=CASH, fill=fill, limits=limits
    )
    seconds = time.perf_counter() - start
    status = res.orders["status"].value_counts().to_dict() if len(res.orders) else {}
    return {
        "seconds": seconds,
        "final": float(res.values.iloc[-1]),
        "orders": len(res.orders),
        "status": {str(k): int(v) for k, v in status.items()},
    }


def run_bare(weekly: WeeklyData, sells_first: bool) -> dict[str, Any]:
    """Bare backtrader with default settings: ``order_target_percent(1/N)`` for every data.

    With ``sells_first`` the datas are visited in order of their excess over the target value
    (largest sell first), so that the broker's submission check sees the sells' cash before
    the buys; otherwise in feed order, as a plain loop does.
    """
    import backtrader as bt

    class EqualWeight(bt.Strategy):
        params: Any = (("n_weeks", 0), ("sells_first", False))

        def __init__(self) -> None:
            self.target = 1.0 / len(self.datas)
            self.submitted = 0
            self.ended: Counter[str] = Counter()

        def next(self) -> None:
            # No order at the last week: it could never fill (same orders as foliosim's run).
            if len(self.data0) >= self.p.n_weeks:
                return
            datas = self.datas
            if self.p.sells_first:
                value = self.broker.getvalue()

                def excess(d: Any) -> float:
                    return float(self.getposition(d).size * d.close[0] - self.target * value)

                datas = sorted(datas, key=excess, reverse=True)
            for data in datas:
                if self.order_target_percent(data, target=self.target) is not None:
                    self.submitted += 1

        def notify_order(self, order: Any) -> None:
            if not order.alive():
                self.ended[order.getstatusname()] += 1

    frames = {t: b.assign(openinterest=0.0) for t, b in weekly.bars.items()}
    start = time.perf_counter()
    cerebro = bt.Cerebro()
    cerebro.broker.setcash(CASH)
    for ticker, frame in frames.items():
        cerebro.adddata(bt.feeds.PandasData(dataname=frame, name=ticker))
    cerebro.addstrategy(EqualWeight, n_weeks=len(weekly.calendar), sells_first=sells_first)
    strat = cerebro.run()[0]
    seconds = time.perf_counter() - start
    status = dict(strat.ended)
    alive = strat.submitted - sum(status.values())
    if alive:
        status["still alive"] = alive
    return {
        "seconds": seconds,
        "final": float(cerebro.broker.getvalue()),
        "orders": strat.submitted,
        "status": status,
    }


def numpy_close_to_close(closes: np.ndarray, cash: float) -> np.ndarray:
    """1/N rebalanced at every week's close: the mean weekly return, compounded.

    Parameters
    ----------
    closes
        Weekly closes, shape ``(n_weeks, n_tickers)``.

    Returns
    -------
    Portfolio value at each week's close, shape ``(n_weeks,)``.
    """
    growth = (closes[1:] / closes[:-1]).mean(axis=1)
    return cash * np.concatenate(([1.0], np.cumprod(growth)))


def numpy_next_open_final(opens: np.ndarray, closes: np.ndarray, cash: float) -> float:
    """Final value of 1/N decided at week t's close and filled at t+1's open (not timed).

    Cash until week 1's open; from each open to the next, equal weights at the open; the last
    week ends at its close. Fractional shares: foliosim differs from it by whole-share rounding.
    """
    between_opens = (opens[2:] / opens[1:-1]).mean(axis=1)
    last_week = (closes[-1] / opens[-1]).mean()
    return float(cash * np.prod(between_opens) * last_week)


def time_numpy(closes: np.ndarray) -> tuple[float, int, float]:
    """Best wall seconds of one :func:`numpy_close_to_close` call, the repeats, the final value."""
    best = float("inf")
    repeats = 0
    spent = 0.0
    values = numpy_close_to_close(closes, CASH)  # warm-up
    while spent < 0.5 or repeats < 20:
        start = time.perf_counter()
        values = numpy_close_to_close(closes, CASH)
        took = time.perf_counter() - start
        best = min(best, took)
        spent += took
        repeats += 1
    return best, repeats, float(values[-1])


# --- subprocesses -------------------------------------------------------------------------


def child(engine: str, n: int, fill: str, n_weeks: int | None) -> None:
    """One engine run in this (fresh) process; prints its result as one JSON line."""
    weekly = load_weekly(n, n_weeks)
    before = max_rss_mib()
    if engine == "bare":
        result = run_bare(weekly, sells_first=fill == "sells_first")
    else:
        result = run_foliosim(weekly, fill)
    result.update(peak_mib=max_rss_mib(), before_mib=before, weeks=len(weekly.calendar))
    print(RESULT_TAG + json.dumps(result), flush=True)


def spawn(engine: str, n: int, fill: str, n_weeks: int | None, repeats: int) -> dict[str, Any]:
    """Run :func:`child` in ``repeats`` fresh interpreters; the fastest run's result, with the
    highest peak memory of all."""
    cmd = [sys.executable, __file__, "--child", engine, "--n", str(n), "--fill", fill]
    if n_weeks is not None:
        cmd += ["--weeks", str(n_weeks)]
    results: list[dict[str, Any]] = []
    for _ in range(repeats):
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_TAG)]
        if proc.returncode != 0 or not lines:
            raise RuntimeError(
                f"{engine} N={n} fill={fill} failed (exit {proc.returncode}):\n"
                f"{proc.stderr[-3000:]}"
            )
        results.append(json.loads(lines[-1][len(RESULT_TAG) :]))
    best = min(results, key=lambda r: r["seconds"])
    best["peak_mib"] = max(r["peak_mib"] for r in results)
    best["repeats"] = repeats
    return best


# --- the report ---------------------------------------------------------------------------


def machine() -> str:
    import backtrader as bt

    return machine_line(
        cpu_model(),
        f"backtrader {bt.__version__}, pandas {pd.__version__}, numpy {np.__version__}",
    )


def fmt_seconds(seconds: float) -> str:
    return f"{seconds:.3f}" if seconds >= 0.01 else f"{seconds * 1e6:.1f}us"


def rel(a: float, b: float) -> str:
    return f"{(a - b) / b:+.2e}"


def statuses(status: dict[str, int]) -> str:
    """Order outcomes other than Completed, e.g. ``Margin 12``; ``-`` when all completed."""
    other = [f"{k} {v}" for k, v in sorted(status.items()) if k != "Completed"]
    return ", ".join(other) or "-"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help=f"first {QUICK_WEEKS} weeks only")
    parser.add_argument(
        "--repeat", type=int, default=3, help="timed runs per engine for N < 100 (best is kept)"
    )
    parser.add_argument("--child", choices=["foliosim", "bare"], help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=20, help=argparse.SUPPRESS)
    parser.add_argument("--fill", default="next_open", help=argparse.SUPPRESS)
    parser.add_argument("--weeks", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.n, args.fill, args.weeks)
        return 0

    n_weeks = QUICK_WEEKS if args.quick else None
    rows: list[dict[str, Any]] = []
    for n in SIZES:
        weekly = load_weekly(n, n_weeks)
        weeks = len(weekly.calendar)
        tickers = weekly.tickers
        closes = weekly.closes()[tickers].to_numpy(float)
        open_frame = pd.DataFrame({t: b["open"] for t, b in weekly.bars.items()})
        opens = open_frame.reindex(weekly.calendar)[tickers].to_numpy(float)
        if np.isnan(closes).any():
            raise RuntimeError("a ticker misses a week: the numpy baseline assumes full history")
        runs: dict[str, dict[str, Any]] = {}
        for name, engine, fill in [
            ("foliosim next_open", "foliosim", "next_open"),
            ("foliosim close", "foliosim", "close"),
            ("bare backtrader", "bare", "default"),
            ("bare, sells first", "bare", "sells_first"),
        ]:
            progress(f"N={n}: {name} ({weeks} weeks) ...")
            runs[name] = spawn(engine, n, fill, n_weeks, 1 if n >= 100 else args.repeat)
        seconds, repeats, final = time_numpy(closes)
        runs["numpy"] = {"seconds": seconds, "final": final, "repeats": repeats}
        for name, r in runs.items():
            rows.append({"n": n, "weeks": weeks, "run": name, **r})
        rows[-1]["next_open_final"] = numpy_next_open_final(opens, closes, CASH)

    weeks = rows[0]["weeks"]
    print(f"foliosim engine benchmark: weekly 1/N rebalancing, cash {CASH:,.0f}")
    print(f"machine: {machine()}")
    print(
        "data: skfolio's bundled S&P 500 sample (20 stocks, daily closes only: weekly open = "
        "the week's first daily close),"
    )
    cal = load_weekly(12, n_weeks).calendar
    print(
        f"      {weeks} weeks {cal[0].date()}..{cal[-1].date()}"
        + (f" (--quick: first {QUICK_WEEKS} weeks)" if args.quick else " (whole history)")
    )
    print("      N=12: the first 12 tickers; N=20: all 20;")
    print(
        f"      N=100: the 20 plus {COPIES} synthetic copies of each (AAPL_2..AAPL_5, ...), "
        "copy k of the j-th ticker has prices x k*(1+j/100), 2.00..5.95:"
    )
    print("      same returns as the originals, different share counts (not real stocks)")
    print(
        f"runs: each in a fresh subprocess, best of {args.repeat} for N < 100 and one run at "
        "N=100; seconds = engine run only (feeds + run), data loading excluded;"
    )
    print(
        "      bare = bt.Cerebro() defaults (stdstats on), PandasData feeds, "
        "order_target_percent(1/N) every week, next-open market fills;"
    )
    print(
        "      bare, sells first = the same, datas visited largest sell first (extra row, "
        "not the headline);"
    )
    print(
        "      numpy = 1/N close-to-close from a (weeks x N) closes array, best of repeats; "
        "peak = ru_maxrss of the child"
    )
    print()
    header = (
        f"{'N':>4}  {'run':<20}{'seconds':>9}{'asset-wk/s':>15}{'orders':>9}"
        f"{'not filled':>16}{'peak MiB':>10}{'pre-run MiB':>12}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        rate = r["n"] * r["weeks"] / r["seconds"]
        if r["run"] == "numpy":
            extra = f"{'-':>9}{'-':>16}{'-':>10}{'-':>12}   ({r['repeats']} repeats)"
        else:
            extra = (
                f"{r['orders']:>9,}{statuses(r['status']):>16}"
                f"{r['peak_mib']:>10.0f}{r['before_mib']:>12.0f}"
            )
        print(f"{r['n']:>4}  {r['run']:<20}{fmt_seconds(r['seconds']):>9}{rate:>15,.0f}{extra}")
        if r["run"] == "numpy":
            print()
    print(
        "not filled: orders that ended other than Completed (Margin = rejected for want of "
        "cash); pre-run MiB: the child's peak after imports and data loading"
    )
    print()

    by = {(r["n"], r["run"]): r for r in rows}
    print("throughput ratios (foliosim = fill next_open; bare = the default run above)")
    print(
        f"{'N':>4}{'foliosim/bare':>15}{'foliosim/bare sells-first':>27}{'numpy/foliosim':>16}"
        f"{'foliosim peak':>15}{'bare peak':>11}"
    )
    speeds = []
    for n in SIZES:
        fo, bare = by[(n, "foliosim next_open")], by[(n, "bare backtrader")]
        bare_sf, npy = by[(n, "bare, sells first")], by[(n, "numpy")]
        speed = bare["seconds"] / fo["seconds"]
        speeds.append(speed)
        print(
            f"{n:>4}{speed:>14.2f}x{bare_sf['seconds'] / fo['seconds']:>26.2f}x"
            f"{fo['seconds'] / npy['seconds']:>15,.0f}x"
            f"{fo['peak_mib']:>11.0f} MiB{bare['peak_mib']:>7.0f} MiB"
        )
    print()

    print("sanity: final portfolio values (relative difference to the reference on the right)")
    print(
        f"{'N':>4}{'foliosim n-o':>15}{'bare':>15}{'bare s-f':>15}{'numpy n-o':>15}"
        f"{'fs/bare':>10}{'fs/np':>10}{'bare/np':>10}{'bsf/np':>10}"
        f"{'foliosim cl':>15}{'numpy cl':>15}{'fs/np':>10}"
    )
    for n in SIZES:
        fo, fc = by[(n, "foliosim next_open")], by[(n, "foliosim close")]
        bare, bare_sf, npy = (
            by[(n, "bare backtrader")],
            by[(n, "bare, sells first")],
            by[(n, "numpy")],
        )
        nxo = npy["next_open_final"]
        print(
            f"{n:>4}{fo['final']:>15,.0f}{bare['final']:>15,.0f}{bare_sf['final']:>15,.0f}"
            f"{nxo:>15,.0f}{rel(fo['final'], bare['final']):>10}{rel(fo['final'], nxo):>10}"
            f"{rel(bare['final'], nxo):>10}{rel(bare_sf['final'], nxo):>10}"
            f"{fc['final']:>15,.0f}{npy['final']:>15,.0f}{rel(fc['final'], npy['final']):>10}"
        )
    print(
        "n-o = next-open fills, cl = fills at the deciding close (foliosim fill='close'); "
        "numpy cl = the timed close-to-close computation;"
    )
    print(
        "numpy n-o = the same 1/N decided at t's close and filled at t+1's open with fractional "
        "shares (not timed). foliosim and bare"
    )
    print(
        "trade whole shares; bare sizes its orders from t's close, so its weights at the open "
        "are not exactly 1/N, and its rejected buys leave cash idle."
    )
    print()
    peak100 = by[(100, "foliosim next_open")]["peak_mib"]
    met_mem = peak100 < 1024
    met_speed = min(speeds) >= 2.0
    print(f"target: {TARGET}")
    print(
        f"        speed: {'met' if met_speed else 'NOT met'} (min foliosim/bare "
        f"{min(speeds):.2f}x); "
        f"memory: {'met' if met_mem else 'NOT met'} (N=100 foliosim peak {peak100:.0f} MiB)"
    )
    if args.quick:
        print("        (--quick: fewer weeks; memory and ratios are not comparable to the target)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
