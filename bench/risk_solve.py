"""The ``min_cvar`` baseline's weekly solve: seconds per decision at N names.

Run ``python bench/risk_solve.py`` (about a minute on 2 shared cores; ``--n 20,100`` and
``--repeat 15`` are the defaults). It builds synthetic weekly closes of N stocks (a one-factor
model: betas 0.5..1.5 on a market with 2.2% weekly volatility, 3% idiosyncratic noise, Student-t
with 4 degrees of freedom for fat tails), then times :meth:`strategies.optimize.BaselineRule.
decide` of ``min_cvar`` at ``--repeat`` consecutive decision weeks: the whole weekly decision
(the trailing 104-week window of returns, skfolio's ``MeanRisk`` with CVaR at 95% solved by
Clarabel, the checks), each week a new window and a new solve. Two sets of limits: the default
``[strategy]`` (cap 1/3, shorts allowed, ``[baseline] max_gross`` 1.6) and the moderate profile's
(cap 0.25, long only). ``min_variance`` is timed the same way beside it.

Each solve is checked: the budget and caps hold, no week fell back to cash, and the CVaR of
the solution is within 1e-6 (relative) of the optimum of the same linear program solved
exactly by HiGHS' simplex (``scipy.optimize.linprog``). It is a report, not a test: it exits
0 unless a check fails. :func:`solve_figures` is the part ``bench/risk.py`` can call.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import pandas as pd
import scipy
import skfolio
from common import cpu_model, machine_line
from scipy.optimize import linprog

from strategies.optimize import BaselineRule, Kind
from strategies.risk import cvar
from strategies.rule import History, State
from strategies.sizing import Limits

WINDOW = 104
LIMITS = {
    "cap 1/3, shorts, max_gross 1.6": (Limits(1 / 3, 1.0, True), 1.6),
    "cap 0.25, long only": (Limits(0.25, 1.0, False), None),
}


def synthetic_closes(n: int, weeks: int, seed: int = 0) -> pd.DataFrame:
    """Weekly closes of ``n`` stocks over ``weeks`` weeks (see the module docstring)."""
    rng = np.random.default_rng(seed)
    market = rng.standard_t(4, weeks) * 0.022 / np.sqrt(2) + 0.0015
    betas = rng.uniform(0.5, 1.5, n)
    noise = rng.standard_t(4, (weeks, n)) * 0.03 / np.sqrt(2)
    r = betas * market[:, None] + noise
    closes = 50.0 * np.cumprod(1.0 + r, axis=0)
    index = pd.date_range("2020-01-03", periods=weeks, freq="W-FRI")
    return pd.DataFrame(closes, index=index, columns=[f"S{i:03d}" for i in range(n)])


def lp_optimum(x: np.ndarray, limits: Limits, max_gross: float | None) -> float:
    """The minimum CVaR 95% of ``x`` (weeks x names) under the rule's constraints, by HiGHS:
    Rockafellar and Uryasev's program over ``w = p - q`` (long and short parts)."""
    n, m = x.shape
    a = 0.05 * n
    lower = -limits.max_weight if limits.allow_short else 0.0
    # Variables: p (m), q (m), v, u (n). w = p - q, 0 <= p <= cap, 0 <= q <= -lower.
    cost = np.concatenate([np.zeros(2 * m), [1.0], np.full(n, 1.0 / a)])
    loss = np.hstack([-x, x, -np.ones((n, 1)), -np.eye(n)])  # -x w - v - u <= 0
    rows, bounds_ub = [loss], [np.zeros(n)]
    if max_gross is not None and limits.allow_short:
        rows.append(np.concatenate([np.ones(2 * m), [0.0], np.zeros(n)])[None, :])
        bounds_ub.append(np.array([max_gross]))
    budget = np.concatenate([np.ones(m), -np.ones(m), [0.0], np.zeros(n)])[None, :]
    bounds = [(0.0, limits.max_weight)] * m + [(0.0, -lower)] * m
    bounds += [(None, None)] + [(0.0, None)] * n
    out = linprog(
        cost,
        np.vstack(rows),
        np.concatenate(bounds_ub),
        budget,
        [limits.gross],
        bounds,
        method="highs",
    )
    if out.status != 0:
        raise SystemExit(f"HiGHS failed: {out.message}")
    return float(out.fun)


def time_rule(
    kind: Kind, closes: pd.DataFrame, limits: Limits, max_gross: float | None, repeat: int
) -> tuple[list[float], float]:
    """Seconds of each of ``repeat`` weekly decisions of ``kind``, and the largest relative
    gap of a ``min_cvar`` solution's CVaR above the exact optimum (0 for other kinds)."""
    rule = BaselineRule(kind, limits, WINDOW, 26, max_gross=max_gross)
    tickers = tuple(str(c) for c in closes.columns)
    seconds, gap = [], 0.0
    for week in closes.index[-repeat:]:
        history = History.cut(closes, week, tickers)
        start = time.perf_counter()
        decision = rule.decide(week, history, State(1.0, 1.0))
        seconds.append(time.perf_counter() - start)
        w = np.array([decision.weights[t] for t in tickers])
        if rule.notes or abs(w.sum() - limits.gross) > 1e-6:
            raise SystemExit(f"{kind} at {week.date()}: {rule.notes or w.sum()}")
        if np.abs(w).max() > limits.max_weight + 1e-6:
            raise SystemExit(f"{kind} at {week.date()}: a weight above the cap")
        if kind == "min_cvar":
            x = rule.estimation_window(history, list(tickers)).to_numpy()
            best = lp_optimum(x, limits, max_gross)
            gap = max(gap, (cvar(x @ w) - best) / best)
    if gap > 1e-6:
        raise SystemExit(f"min_cvar's CVaR is {gap:.2e} above the exact optimum")
    return seconds, gap


def solve_figures(sizes: list[int], repeat: int) -> None:
    """Print the seconds per weekly decision of ``min_cvar`` (and ``min_variance``) at each
    number of names in ``sizes``, for each set of :data:`LIMITS`."""
    print(f"weekly decision of a baseline, {WINDOW}-week window, median (best) of {repeat} weeks")
    for n in sizes:
        closes = synthetic_closes(n, WINDOW + 1 + repeat)
        for label, (limits, max_gross) in LIMITS.items():
            for kind in ("min_cvar", "min_variance"):
                seconds, gap = time_rule(kind, closes, limits, max_gross, repeat)
                exact = f"; CVaR within {gap:.1e} of HiGHS' optimum" if kind == "min_cvar" else ""
                print(
                    f"  N={n:<4} {label:<32} {kind:<13} {statistics.median(seconds) * 1e3:7.1f} "
                    f"ms ({min(seconds) * 1e3:.1f}){exact}"
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", default="20,100", help="numbers of names, comma-separated")
    parser.add_argument("--repeat", type=int, default=15, help="decision weeks timed per case")
    args = parser.parse_args()
    versions = f"skfolio {skfolio.__version__}, scipy {scipy.__version__}"
    print(machine_line(cpu_model(), versions))
    solve_figures([int(n) for n in args.n.split(",")], args.repeat)


if __name__ == "__main__":
    main()
