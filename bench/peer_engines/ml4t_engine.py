"""ml4t-backtest: weekly 1/N or 12-week momentum on the synthetic panel; runs in its venv.

Daily closes in (a long polars frame: timestamp, asset, close); an event-driven ``Strategy``
whose ``on_data`` acts on the last trading day of each week but the last: it records that
week's closes and hands target weights (1/N, or 1/10 for the 10 best 12-week returns once 13
weekly closes exist) to ml4t's ``TargetWeightExecutor`` (sells first, then buys; no minimum
trade). ``ExecutionMode.SAME_BAR`` at ``ExecutionPrice.CLOSE``: the orders fill at that close;
no commission, no slippage (both non-zero by default). Fractional shares (``bench/peers.py``'s
default for ml4t), or whole shares (``ShareType.INTEGER``: each order's size is truncated
toward zero, so a sale keeps up to one share above the rounded-down target, and the buys then
fall short of cash by those shares: ``partial_fills_allowed`` lets such a buy fill what the
cash pays, where ml4t's default rejects the whole order).
"""

from __future__ import annotations

from typing import Any

import _panel
import numpy as np
import pandas as pd
import polars as pl
from ml4t.backtest import (
    BacktestConfig,
    DataFeed,
    Engine,
    ExecutionMode,
    RebalanceConfig,
    Strategy,
    TargetWeightExecutor,
)
from ml4t.backtest.config import ExecutionPrice, ShareType


class WeeklyTargets(Strategy):
    """1/N or top-10 momentum at each decision day's close."""

    def __init__(self, decisions: set[Any], tickers: list[str], strategy: str, whole: bool):
        self.decisions = decisions
        self.tickers = tickers
        self.momentum = strategy == "momentum"
        self.weekly: list[np.ndarray] = []  # the closes of each decision week so far
        self.executor = TargetWeightExecutor(
            RebalanceConfig(min_trade_value=0.0, min_weight_change=0.0, allow_fractional=not whole)
        )

    def on_data(self, timestamp: Any, data: Any, context: Any, broker: Any) -> None:
        if timestamp not in self.decisions:
            return
        closes = np.array([data[t]["close"] for t in self.tickers])
        if not self.momentum:
            targets = {t: 1.0 / len(self.tickers) for t in self.tickers}
        else:
            self.weekly.append(closes)
            if len(self.weekly) <= _panel.LOOKBACK:
                return
            score = closes / self.weekly[-1 - _panel.LOOKBACK] - 1.0
            order = sorted(range(len(self.tickers)), key=lambda i: (-score[i], self.tickers[i]))
            targets = {self.tickers[i]: 1.0 / _panel.TOP for i in order[: _panel.TOP]}
        self.executor.execute(targets, data, broker)


def main() -> None:
    args = _panel.arguments(__doc__.splitlines()[0])
    closes = _panel.daily_closes(args.panel, args.end)
    weeks = _panel.week_ends(closes.index)
    long = (
        closes.rename_axis("timestamp")
        .reset_index()
        .melt(id_vars="timestamp", var_name="asset", value_name="close")
    )
    prices = pl.from_pandas(long).sort(["timestamp", "asset"])
    decisions = {ts.to_pydatetime() for ts in weeks[:-1]}
    whole = args.shares == "whole"
    config = BacktestConfig(
        initial_cash=_panel.CASH,
        commission_rate=0.0,
        slippage_rate=0.0,
        execution_mode=ExecutionMode.SAME_BAR,
        execution_price=ExecutionPrice.CLOSE,
        share_type=ShareType.INTEGER if whole else ShareType.FRACTIONAL,
        partial_fills_allowed=True,
    )
    strategy = WeeklyTargets(decisions, list(closes.columns), args.strategy, whole)
    engine = Engine(DataFeed(prices_df=prices), strategy, config)
    engine.run()
    last, final = engine.equity_curve[-1]
    rejected = len(engine.broker.get_rejected_orders())
    _panel.emit(final, len(weeks), last=str(pd.Timestamp(last).date()), rejected=rejected)


if __name__ == "__main__":
    main()
