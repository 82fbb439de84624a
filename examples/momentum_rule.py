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
        scores: dict[str, float] = {}
        for ticker in history.tradable:
            closes = history.closes[ticker].dropna()
            if len(closes) > self.lookback:
                scores[ticker] = float(closes.iloc[-1] / closes.iloc[-1 - self.lookback] - 1.0)
        ranked = sorted(scores, key=lambda t: (-scores[t], t))
        weights = {t: self.weight for t in ranked[: self.top]}
        return Decision(weights, scores=scores)
