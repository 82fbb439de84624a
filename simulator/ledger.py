"""The fast engine: backtrader's weekly run, without backtrader's objects, to the last bit.

:func:`run_ledger` runs the adapter of :mod:`strategies.rebalance` and the part of
backtrader's ``BackBroker`` it uses (market orders, whole shares, stock-like commission
and slippage, margin checked at execution, cash from short sales) on arrays: one week is a
few list operations per order, where backtrader builds an order object, a notification and
line buffers for every bar of every feed. It mirrors backtrader's arithmetic operation by
operation (a position's average price, the cash of a partly closed position, the value
summed position by position in the broker's order), so the two give the same floats, not
nearly the same: :mod:`simulator.engine` can run both and compare them week by week
(``FOLIOSIM_ENGINE=both``, how the test suite runs every engine run), and backtrader, the
engine of record, decides when they differ.

One week ``i`` of the calendar, as backtrader's ``runonce`` loop with this adapter runs it:

1. ``next_open`` (``fill="next_open"``): the targets decided at ``i - 1`` are sized at the
   opens of ``i`` and submitted.
2. the broker: the pending orders execute in submission order (at the open of ``i``, or
   at the close they were decided at with ``fill="close"``), then the value is taken at the
   closes of ``i`` (a ticker without a bar at its last close).
3. the orders that ended are recorded; ``next``: the week's charges, its value, delisted
   positions closed, the decision (sized at the closes of ``i`` with ``fill="close"``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from strategies.rebalance import (
    WEEKS_PER_YEAR,
    Costs,
    Decide,
    OrderRow,
    Progress,
    Resume,
    WeekRecord,
    _row,
    plan_orders,
)
from strategies.rule import State


@dataclass
class LedgerRun:
    """What :func:`run_ledger` produced: what the adapter collects in a backtrader run."""

    values: list[float]
    order_rows: list[OrderRow]
    cost_rows: list[tuple[pd.Timestamp, float, float, float, float]]


@dataclass
class _Order:
    feed: int
    size: float  # signed whole shares, as backtrader's created.size
    week: pd.Timestamp  # the decision week
    tag: str
    reference: float
    fill_at: float  # the price it executes at before slippage
    filled_on: pd.Timestamp


class Ledger:
    """The broker's cash and positions, and the adapter's loop over the weeks."""

    def __init__(
        self,
        names: Sequence[str],
        opens: np.ndarray,
        closes: np.ndarray,
        cash: float,
        costs: Costs,
    ) -> None:
        self.names = list(names)
        # Prices per calendar week and feed, carried forward from each feed's last bar (a
        # feed without a bar keeps its last one, as backtrader's does).
        self.opens = opens
        self.closes = closes
        self.cash = cash
        self.costs = costs
        self.sizes: list[float] = [0] * len(self.names)  # whole shares: ints, as backtrader's
        self.prices: list[float] = [0.0] * len(self.names)
        self.pending: list[_Order] = []
        self.order_rows: list[OrderRow] = []
        self.slipped = 0.0

    # --- the broker -------------------------------------------------------------------------

    def value(self, i: int) -> float:
        """The portfolio value at the closes of week ``i``, summed as ``BackBroker._get_value``
        sums it: position by position in feed order, a long one as its value less and then
        plus its unrealised profit."""
        close = self.closes[i]
        total = 0.0
        for j, size in enumerate(self.sizes):
            if not size:
                continue
            c = float(close[j])
            dvalue = size * c
            if dvalue > 0:
                unrealized = size * (c - self.prices[j]) * 1.0
                total += (dvalue - unrealized) / 1.0
                total += unrealized
            else:
                total += dvalue
        return self.cash + total

    def execute_pending(self) -> None:
        """Execute the pending orders in submission order (``BackBroker.next``)."""
        orders, self.pending = self.pending, []
        for order in orders:
            self._execute(order)

    def _execute(self, order: _Order) -> None:
        """One market order, as ``BackBroker._execute`` does it for a stock-like instrument
        (``shortcash``, leverage 1, commission a fraction of the value)."""
        c = self.costs
        j, size = order.feed, order.size
        price = c.fill_price(order.fill_at, size)
        held, pprice_orig = self.sizes[j], self.prices[j]
        _psize, _pprice, opened, closed = _update(held, pprice_orig, size, price)
        pnl = -closed * (price - pprice_orig) * 1.0
        cash = self.cash
        closedcomm = openedcomm = 0.0
        if closed:
            cash += -closed * pprice_orig + pnl * True
            closedcomm = abs(closed) * c.commission * price
            cash -= closedcomm
            cash += 0.0
            self.cash = cash
        popened = opened
        if opened:
            cash -= opened * price
            openedcomm = abs(opened) * c.commission * price
            cash -= openedcomm
            if cash < 0.0:  # the cash cannot pay: what would open is not executed
                opened = 0
                openedcomm = 0.0
            else:
                self.cash = cash
        execsize = closed + opened
        executed = False
        if execsize:
            self.sizes[j], self.prices[j], _o, _c = _update(held, pprice_orig, execsize, price)
            executed = execsize == size
        if executed:
            ex_price = (0.0 + execsize * price) / execsize
            ex_comm = 0.0 + (closedcomm + openedcomm)
            self.slipped += abs(ex_price - order.reference) * abs(execsize)
            self.order_rows.append(
                _row(
                    order.week,
                    order.filled_on,
                    self.names[j],
                    execsize,
                    ex_price,
                    ex_comm,
                    "Completed",
                    order.tag,
                )
            )
        elif popened and not opened:
            self.order_rows.append(
                _row(order.week, None, self.names[j], size, math.nan, 0.0, "Margin", order.tag)
            )

    # --- the adapter ------------------------------------------------------------------------

    def rebalance(
        self,
        i: int,
        week: pd.Timestamp,
        targets: Mapping[str, float],
        present: Sequence[int],
        tag: str,
        at_open: bool,
        filled_on: pd.Timestamp,
    ) -> None:
        """Size and submit the orders of ``targets`` (``TargetWeightStrategy._rebalance``),
        at the opens of week ``i`` or at its closes; they fill dated ``filled_on``."""
        row = self.opens[i] if at_open else self.closes[i]
        price = {j: float(row[j]) for j in present}
        close = self.closes[i]
        orders, missing = plan_orders(
            targets,
            price,
            {j: self.names[j] for j in present},
            dict(enumerate(self.sizes)),
            lambda j: float(close[j]),
            self.cash,
            self.costs,
        )
        for name, weight in missing:
            nobar = _row(week, None, name, weight, math.nan, 0.0, "NoBar", tag)
            self.order_rows.append(replace(nobar, size=math.nan))
        for j, n in orders:
            self.pending.append(_Order(j, n, week, tag, price[j], price[j], filled_on))

    def charge(self, i: int) -> tuple[float, float, float]:
        """The week's borrow fee and interest (``TargetWeightStrategy._charge``)."""
        c = self.costs
        if not c.charges_weekly:
            return 0.0, 0.0, 0.0
        cash = self.cash
        fee = 0.0
        if c.borrow_fee:
            close = self.closes[i]
            short = sum(-s * float(close[j]) for j, s in enumerate(self.sizes) if s < 0)
            fee = short * (c.borrow_fee / WEEKS_PER_YEAR)
        interest = cash * ((c.cash_rate if cash > 0 else c.margin_rate) / WEEKS_PER_YEAR)
        self.cash = cash + interest - fee
        return fee, max(interest, 0.0), max(-interest, 0.0)

    def close_delisted(
        self, i: int, week: pd.Timestamp, ending: Sequence[tuple[int, pd.Timestamp]]
    ) -> None:
        """Close at its last close each held position whose data ended before ``week``."""
        for j, last in ending:
            size = self.sizes[j]
            if not size or week <= last:
                continue
            price = float(self.closes[i][j])
            commission = self.costs.commission * abs(size) * price
            self.cash += size * price - commission
            self.sizes[j], self.prices[j] = 0, 0.0
            self.order_rows.append(
                _row(week, week, self.names[j], -size, price, commission, "Delisted", "")
            )

    def holdings(self) -> dict[str, tuple[float, float]]:
        return {
            self.names[j]: (float(s), float(self.prices[j])) for j, s in enumerate(self.sizes) if s
        }


def _update(
    size: float, price: float, change: float, at: float
) -> tuple[float, float, float, float]:
    """``backtrader.Position.update``: the new size and average price, and how much of
    ``change`` opened and closed a position (both with the sign of ``change``)."""
    new = size + change
    if not new:
        return new, 0.0, 0, change
    if not size:
        return new, at, change, 0
    if size > 0:
        if change > 0:
            return new, (price * size + change * at) / new, change, 0
        if new > 0:
            return new, price, 0, change
        return new, at, new, -size
    if change < 0:
        return new, (price * size + change * at) / new, change, 0
    if new < 0:
        return new, price, 0, change
    return new, at, new, -size


def run_ledger(
    *,
    names: Sequence[str],
    opens: np.ndarray,
    closes: np.ndarray,
    calendar: pd.DatetimeIndex,
    decisions: frozenset[pd.Timestamp],
    present: Sequence[Sequence[int]],
    decide: Decide,
    cash: float,
    fill: str,
    costs: Costs,
    progress: Progress | None,
    begin: int,
    resume: Resume | None,
    on_week: Callable[[WeekRecord], None] | None,
    observe: Callable[[pd.Timestamp, float], None] | None,
    ending: Sequence[tuple[int, pd.Timestamp]],
) -> LedgerRun:
    """Run the weeks of ``calendar`` (the arguments are :class:`~strategies.rebalance.
    TargetWeightStrategy`'s, with prices as ``(weeks, feeds)`` arrays carried forward)."""
    book = Ledger(names, opens, closes, cash, costs)
    values: list[float] = []
    cost_rows: list[tuple[pd.Timestamp, float, float, float, float]] = []
    waiting: tuple[pd.Timestamp, Mapping[str, float], str] | None = None
    recorded = 0
    at_close = fill == "close"
    for i, week in enumerate(calendar):
        if waiting is not None:  # next_open
            decided, targets, tag = waiting
            waiting = None
            book.rebalance(i, decided, targets, present[i], tag, True, week)
        if book.pending:
            book.execute_pending()
        if i < begin:
            continue
        if resume is not None and i == begin:
            book.cash = resume.cash
            for j, name in enumerate(book.names):
                size, price = resume.holdings.get(name, (0, 0.0))
                size = int(size) if float(size).is_integer() else size
                book.sizes[j], book.prices[j] = size, price
            if at_close:
                book.rebalance(
                    i, resume.week, resume.targets, present[i], resume.tag, False, resume.week
                )
            else:
                waiting = (resume.week, resume.targets, resume.tag)
            del book.order_rows[:]
            continue
        value = book.value(i)
        fee, earned, paid = book.charge(i) if i > begin else (0.0, 0.0, 0.0)
        cost_rows.append((week, fee, earned, paid, book.slipped))
        book.slipped = 0.0
        values.append(value + (earned - paid - fee))
        if ending:
            book.close_delisted(i, week, ending)
        if observe is not None:
            observe(week, values[-1])
        is_decision = week in decisions
        if on_week is not None or is_decision:
            held_cash, holdings = book.cash, book.holdings()
        targets = {}
        tag = ""
        if is_decision:
            state = State(held_cash, values[-1], {t: s for t, (s, _p) in holdings.items()})
            decision = decide(week, [book.names[j] for j in present[i]], state)
            targets, tag = dict(decision.weights), decision.tag
            if at_close:
                # Filled at the next bar, at this close and dated this week (backtrader's
                # cheat-on-close).
                book.rebalance(i, week, targets, present[i], tag, False, week)
            else:
                waiting = (week, targets, tag)
        if progress is not None:
            progress(i + 1 - begin, len(calendar) - begin)
        if on_week is not None:
            rows = book.order_rows[recorded:]
            recorded = len(book.order_rows)
            on_week(WeekRecord(week, values[-1], held_cash, holdings, dict(targets), tag, rows))
    return LedgerRun(values, book.order_rows, cost_rows)
