"""The thin backtrader adapter: trade to target weights, sells before buys.

The strategy holds no rules of its own. At the close of each decision week t it asks
``decide(t, tickers_with_a_bar_at_t)`` for target weights, turns them into whole-share orders
and submits sells first, then buys:

- ``fill="close"``: shares are sized at the close of t and fill at that close (cheat-on-close).
- ``fill="next_open"``: the targets wait until the open of bar t+1; shares are then sized at
  that open and fill at it (cheat-on-open). Nothing of bar t+1 but its open is read.

Every order that ends (filled, rejected for margin, or impossible because the ticker has no bar
at the fill) becomes one row of :attr:`TargetWeightStrategy.order_rows`, carrying the label
``tag(decision week)`` (the model version behind the decision; empty without a tag).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import backtrader as bt
import pandas as pd

Decide = Callable[[pd.Timestamp, list[str]], Mapping[str, float]]
#: ``tag(decision week) -> label`` stamped on each order, e.g. the model version behind it.
Tag = Callable[[pd.Timestamp], str]
Progress = Callable[[int, int], None]

ORDER_COLUMNS = [
    "date_submitted",
    "date_filled",
    "ticker",
    "side",
    "size",
    "price",
    "value",
    "commission",
    "status",
    "model_version",
]


class TargetWeightStrategy(bt.Strategy):
    """Rebalance to the targets of ``decide`` on each week of ``decisions``.

    ``datas[0]`` must be the calendar clock feed (one bar per week of ``calendar``, never
    traded); the other datas are the tickers, named after them. ``present[i]`` lists the
    positions in ``datas[1:]`` of the tickers that have a bar in week ``calendar[i]``.
    """

    params: Any = (
        ("decide", None),
        ("calendar", None),
        ("decisions", None),
        ("present", None),
        ("fill", "next_open"),
        ("commission", 0.0),
        ("tag", None),
        ("progress", None),
    )

    def __init__(self) -> None:
        self.calendar: pd.DatetimeIndex = self.p.calendar
        self.decisions: frozenset[pd.Timestamp] = frozenset(self.p.decisions)
        self.assets = list(self.datas[1:])
        self.values: list[float] = []
        self.order_rows: list[dict[str, Any]] = []
        self._waiting: tuple[pd.Timestamp, Mapping[str, float]] | None = None
        self._dates: dict[float, pd.Timestamp] = {}

    # backtrader calls prenext* while some feeds have not started (late listings).
    def prenext(self) -> None:
        self.next()

    def prenext_open(self) -> None:
        self.next_open()

    def _present(self) -> list[Any]:
        """Ticker feeds that have a bar at the current week (``present[i]`` lists them)."""
        return [self.assets[j] for j in self.p.present[len(self.data0) - 1]]

    def next(self) -> None:
        i = len(self.data0) - 1
        week = self.calendar[i]
        self.values.append(self.broker.getvalue())
        # backtrader keeps every notified order in self._orders for good; our rows suffice.
        self._orders.clear()
        if week in self.decisions:
            present = self._present()
            targets = self.p.decide(week, [d._name for d in present])
            if self.p.fill == "close":
                self._rebalance(week, targets, present, at_open=False)
            else:
                self._waiting = (week, targets)
        if self.p.progress is not None:
            self.p.progress(i + 1, len(self.calendar))

    def next_open(self) -> None:
        if self._waiting is None:
            return
        week, targets = self._waiting
        self._waiting = None
        self._rebalance(week, targets, self._present(), at_open=True)

    def _rebalance(
        self, week: pd.Timestamp, targets: Mapping[str, float], present: list[Any], at_open: bool
    ) -> None:
        """Submit the orders that move the positions of ``present`` feeds to ``targets``."""
        price = {d: (d.open[0] if at_open else d.close[0]) for d in present}
        held_value = 0.0  # positions that cannot trade now keep their value
        value = self.broker.getcash()
        positions = self.broker.positions
        for d in self.assets:
            size = positions[d].size
            if size:
                p = price.get(d, d.close[0])
                value += size * p
                if d not in price:
                    held_value += abs(size * p)
        names = {d._name: d for d in present}
        for name, weight in targets.items():
            if name not in names and weight:
                # No bar to fill at (e.g. a trading halt): recorded, never silently dropped.
                row = _row(week, None, name, weight, math.nan, 0.0, "NoBar", self._tag(week))
                self.order_rows.append({**row, "size": math.nan})
        budget = value - held_value
        deltas = self._deltas(targets, price, budget)
        if self.p.commission > 0:
            cost = self.p.commission * sum(abs(n) * price[d] for d, n in deltas.items())
            deltas = self._deltas(targets, price, budget - cost)
        for d, n in sorted(deltas.items(), key=lambda kv: kv[1] > 0):  # sells first
            order = self.sell(data=d, size=-n) if n < 0 else self.buy(data=d, size=n)
            order.addinfo(decided=week, tag=self._tag(week))

    def _tag(self, week: pd.Timestamp) -> str:
        return self.p.tag(week) if self.p.tag is not None else ""

    def _deltas(
        self, targets: Mapping[str, float], price: Mapping[Any, float], budget: float
    ) -> dict[Any, int]:
        deltas = {}
        positions = self.broker.positions
        for d, p in price.items():
            target = int(targets.get(d._name, 0.0) * budget / p)  # whole shares, toward zero
            delta = target - int(positions[d].size)
            if delta:
                deltas[d] = delta
        return deltas

    def notify_order(self, order: Any) -> None:
        if order.alive():
            return
        week = order.info.get("decided")
        tag = order.info.get("tag", "")
        name = order.data._name
        status = order.getstatusname()
        if order.status == order.Completed:
            ex = order.executed
            filled = self._dates.get(ex.dt)
            if filled is None:
                filled = self._dates[ex.dt] = pd.Timestamp(bt.num2date(ex.dt))
            row = _row(week, filled, name, ex.size, ex.price, ex.comm, status, tag)
        else:
            row = _row(week, None, name, order.created.size, math.nan, 0.0, status, tag)
        self.order_rows.append(row)


def _row(
    week: pd.Timestamp | None,
    filled: pd.Timestamp | None,
    ticker: str,
    size: float,
    price: float,
    commission: float,
    status: str,
    tag: str,
) -> dict[str, Any]:
    shares = abs(size)
    return {
        "date_submitted": week,
        "date_filled": filled,
        "ticker": ticker,
        "side": "buy" if size > 0 else "sell",
        "size": shares,
        "price": price,
        "value": shares * price if not math.isnan(price) else math.nan,
        "commission": commission,
        "status": status,
        "model_version": tag,
    }
