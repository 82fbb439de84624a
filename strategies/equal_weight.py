"""The 1/N rule: the same weight on every tradable ticker, under the limits."""

from __future__ import annotations

import pandas as pd

from strategies.rule import Decision, History, State
from strategies.sizing import Limits, equal_weight_array


class EqualWeightRule:
    """1/N over the tickers the engine lets trade this week (a ``DecisionRule``).

    >>> closes = pd.DataFrame({"A": [1.0], "B": [2.0]}, index=[pd.Timestamp("2024-01-05")])
    >>> h = History.cut(closes, closes.index[0], ["A", "B"])
    >>> dict(EqualWeightRule(Limits()).decide(h.week, h, State(1.0, 1.0)).weights)
    {'A': 0.3333333333333333, 'B': 0.3333333333333333}
    """

    name = "equal_weight"

    def __init__(self, limits: Limits) -> None:
        self.limits = limits

    def decide(self, week: pd.Timestamp, history: History, state: State) -> Decision:
        names = list(history.tradable)
        weights = equal_weight_array(len(names), self.limits).tolist()
        return Decision(dict(zip(names, weights, strict=True)))
