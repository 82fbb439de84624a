"""The momentum rule of ``bench/peers.py``, as a foliosim user writes one: 12-week momentum,
the top 10 at 1/10 each (``backtest.strategy = "bench.peer_rules:TopTenMomentum"``, run from
the repository root).

It is ``examples/momentum_rule.py`` with ``top=10``: at each decision week rank the tradable
tickers by close(t) / close(t - 12 weeks) - 1 on their weekly closes (ties by ticker name),
hold the best 10 at 1/10 each; a ticker with fewer than 13 weekly closes is not ranked.
"""

from __future__ import annotations

from examples.momentum_rule import MomentumRule
from strategies.sizing import Limits


class TopTenMomentum(MomentumRule):
    """:class:`examples.momentum_rule.MomentumRule` holding the top 10 at 1/10 each."""

    name = "momentum10"

    def __init__(self, limits: Limits | None = None) -> None:
        super().__init__(lookback=12, top=10, limits=limits)
