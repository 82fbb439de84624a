"""Stress scenarios: seconds to put a portfolio of N stocks through every scenario, data loaded.

Run ``python bench/risk.py`` (a few seconds; ``--n 100 --repeat 7`` are the defaults,
``--n 12,100,500`` times several sizes). It builds a synthetic weekly history on the calendar of
the real data (W-FRI weeks 1990-01-05 .. 2024-03-08, 1,784 weeks): a benchmark, a 2-year yield
and N stocks following a one-factor model (beta 0.3..2, a small rate sensitivity, 3% weekly
noise), 30% of them listed only after 1995 (so the dot-com and later windows proxy some through
their beta) and 1% of the bars missing. A long/short portfolio of all N stocks (gross 1, net
0.5) is stressed as of the last week through every default scenario
(:data:`simulator.stress.DEFAULT_SCENARIOS`: 5 historical windows and 5 hypothetical shocks),
the whole of :func:`simulator.stress.stress`: the point-in-time betas and rate sensitivities
(OLS over every week), every window's value path and figures, and the summary object. Each
timing is a fresh call (nothing is cached between calls); the median and the best of
``--repeat`` are printed, with a check that every scenario ran.

Target: under 1 s at N = 100 (median). Then the ``min_cvar`` baseline's weekly solve at N = 20
and N = 100 (:func:`risk_solve.solve_figures`, beside ``min_variance``; ``--solve-n`` and
``--solve-repeat``; ``bench/risk_solve.py`` runs that part alone). It is a report, not a test:
it exits 0 unless a check fails.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import pandas as pd
from common import cpu_model, machine_line
from risk_solve import solve_figures

from simulator.stress import DEFAULT_SCENARIOS, StressData, parse_scenarios, stress

TARGET_S = 1.0
CALENDAR = pd.date_range("1990-01-05", "2024-03-08", freq="W-FRI")


def synthetic(n: int, seed: int = 0) -> StressData:
    """The synthetic history of ``n`` stocks (see the module docstring)."""
    rng = np.random.default_rng(seed)
    weeks = len(CALENDAR)
    bench_r = rng.normal(0.0015, 0.022, weeks)
    dy = rng.normal(0.0, 0.08, weeks)  # weekly change of the yield, percentage points
    betas = rng.uniform(0.3, 2.0, n)
    sens = rng.normal(0.0, 0.02, n)
    r = betas * bench_r[:, None] + sens * dy[:, None] + rng.normal(0.0, 0.03, (weeks, n))
    closes = 50.0 * np.cumprod(1.0 + r, axis=0)
    late = rng.random(n) < 0.3
    listed = rng.integers(CALENDAR.get_loc(pd.Timestamp("1995-01-06")), weeks - 200, n)
    for i in np.flatnonzero(late):
        closes[: listed[i], i] = np.nan
    closes[rng.random((weeks, n)) < 0.01] = np.nan
    tickers = [f"S{i:03d}" for i in range(n)]
    frame = pd.DataFrame(closes, index=CALENDAR, columns=tickers)
    bench = pd.Series(1000.0 * np.cumprod(1.0 + bench_r), index=CALENDAR)
    yields = pd.Series(5.0 + np.cumsum(dy), index=CALENDAR)
    return StressData(frame, bench, "BENCH", yields)


def portfolio(tickers: list[str], seed: int = 1) -> dict[str, float]:
    """Long/short weights over every ticker: gross 1, net 0.5."""
    rng = np.random.default_rng(seed)
    raw = rng.uniform(0.5, 1.5, len(tickers))
    long = rng.random(len(tickers)) < 0.75
    w = np.where(long, raw / raw[long].sum() * 0.75, -raw / raw[~long].sum() * 0.25)
    return dict(zip(tickers, w.tolist(), strict=True))


def time_one(n: int, repeat: int) -> None:
    data = synthetic(n)
    weights = portfolio(list(data.closes.columns))
    scenarios = parse_scenarios(list(DEFAULT_SCENARIOS))
    as_of = CALENDAR[-1]
    seconds = []
    for _ in range(repeat):
        clock = time.perf_counter()
        facts = stress(weights, data, as_of, scenarios, "bench")
        seconds.append(time.perf_counter() - clock)
    ran = [s for s in facts.scenarios if s.available]
    if len(ran) != len(DEFAULT_SCENARIOS):
        missing = [f"{s.name}: {s.reason}" for s in facts.scenarios if not s.available]
        raise SystemExit(f"N={n}: scenarios did not run: {missing}")
    proxied = max(len(s.proxied) for s in ran)
    median = statistics.median(seconds)
    verdict = "met" if n != 100 or median < TARGET_S else "NOT met"
    print(
        f"N = {n:>4}: median {median * 1000:7.1f} ms, best {min(seconds) * 1000:7.1f} ms over "
        f"{repeat} calls; {len(ran)} scenarios over {len(CALENDAR)} weeks, up to {proxied} "
        f"stocks proxied in a window"
        + (f"; target < {TARGET_S:g} s: {verdict}" if n == 100 else "")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", default="100", help="Numbers of stocks, comma-separated.")
    parser.add_argument("--repeat", type=int, default=7, help="Timed calls per size.")
    parser.add_argument("--solve-n", default="20,100", help="Names of the min_cvar solves.")
    parser.add_argument("--solve-repeat", type=int, default=15, help="Weeks timed per solve case.")
    args = parser.parse_args()
    print(machine_line(cpu_model(), f"numpy {np.__version__}, pandas {pd.__version__}"))
    for n in (int(x) for x in args.n.split(",")):
        time_one(n, args.repeat)
    solve_figures([int(x) for x in args.solve_n.split(",")], args.solve_repeat)


if __name__ == "__main__":
    main()
