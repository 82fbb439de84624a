"""A user-written strategy for foliosim: 12-week momentum, top 3 at 1/3 each.

Run it through the same engine, limits, profile, baselines, tear sheet and paper accounts as
the built-in strategies, from the repository root::

    foliosim backtest examples/momentum.toml
    foliosim replay start examples/momentum.toml --account mom
    foliosim recommend examples/momentum.toml

or from Python::

    from examples.momentum_rule import MomentumRule
    from simulator.backtest import run_backtest
    result = run_backtest(cfg, workspace, rule=MomentumRule)

The rule, exactly: at each decision week t, rank the tradable tickers by their return over the
last 12 weeks (the close of t over the close 12 weekly closes earlier, on each ticker's own
weekly closes), and hold the top 3 at 1/3 each (ties broken by ticker name). A ticker with
fewer than 13 weekly closes up to t is not ranked. Fewer than 3 ranked tickers: each ranked
one gets 1/3, the rest stays in cash. The engine only hands it the history up to t.

Under tighter limits (an investor profile with a cap below 1/3, or a gross exposure below 1)
each name gets ``min(1/3, cap, gross / 3)`` instead: foliosim passes the run's limits to a
rule whose ``__init__`` takes ``limits``, and refuses a weight over them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from strategies.rule import Decision, History, State
from strategies.sizing import Limits


class MomentumRule:
    """Hold the ``top`` tickers with the best ``lookback``-week return, 1/``top`` each (less
    when ``limits`` are tighter)."""

    name = "momentum"

    def __init__(self, lookback: int = 12, top: int = 3, limits: Limits | None = None) -> None:
        self.lookback = lookback
        self.top = top
        weight = 1.0 / top
        if limits is not None:
            weight = min(weight, limits.max_weight, limits.gross / top)
        self.weight = weight

    def decide(self, week: pd.Timestamp, history: History, state: State) -> Decision:
        # Only the recent rows are read (a view: no copy), so a week costs the same in the
        # twentieth year as in the first; a ticker with gaps among them reads its column.
        values = history.closes.to_numpy()
        names = list(history.tradable)
        columns = history.closes.columns.get_indexer(names)
        need = self.lookback + 1
        recent = values[-4 * need :]
        whole = len(recent) == len(values)
        # Tickers with every recent close: one division for all of them.
        complete = ~np.isnan(recent[:, columns]).any(axis=0) & (len(recent) >= need)
        change = recent[-1, columns] / recent[-min(need, len(recent)), columns] - 1.0
        score: list[float | None] = [x if ok else None for x, ok in zip(
            change.tolist(), complete.tolist(), strict=True
        )]  # fmt: skip
        for k in np.flatnonzero(~complete).tolist():
            seen = recent[:, columns[k]]
            seen = seen[~np.isnan(seen)]
            if len(seen) < need and not whole:
                seen = values[:, columns[k]]
                seen = seen[~np.isnan(seen)]
            if len(seen) >= need:
                score[k] = float(seen[-1] / seen[-need] - 1.0)
        scores = {t: x for t, x in zip(names, score, strict=True) if x is not None}
        ranked = sorted(scores, key=lambda t: (-scores[t], t))
        weights = {t: self.weight for t in ranked[: self.top]}
        return Decision(weights, scores=scores)
