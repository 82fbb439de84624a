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
from typing import Any

import numpy as np
import pandas as pd

from strategies.rebalance import (
    ORDER_COLUMNS,
    WEEKS_PER_YEAR,
    Costs,
    Decide,
    OrderRow,
    Progress,
    Resume,
    WeekRecord,
    fill_prices,
    order_row,
    plan_orders,
    running_sum,
)
from strategies.rule import State


class Orders:
    """A run's order rows, kept by column: a week's orders are arrays, not row objects."""

    def __init__(self) -> None:
        self._chunks: list[tuple[list[Any] | np.ndarray, ...]] = []
        self.count = 0

    def add(self, *columns: list[Any] | np.ndarray) -> None:
        """Rows given as one list (or numpy array of numbers) per
        :data:`~strategies.rebalance.ORDER_COLUMNS` column."""
        if len(columns[0]):
            self._chunks.append(columns)
            self.count += len(columns[0])

    def add_row(self, row: OrderRow) -> None:
        self.add(*([value] for value in vars(row).values()))

    def clear(self) -> None:
        self._chunks.clear()
        self.count = 0

    def columns(self) -> list[list[Any] | np.ndarray]:
        """Every row so far, one list per column; a column whose every chunk is a numpy
        array is one array (a frame infers the same type from it as from its values)."""
        out: list[list[Any] | np.ndarray] = []
        for k in range(len(ORDER_COLUMNS)):
            parts = [chunk[k] for chunk in self._chunks]
            if parts and all(isinstance(p, np.ndarray) for p in parts):
                out.append(np.concatenate(parts))
            else:
                column: list[Any] = []
                for part in parts:
                    column.extend(part.tolist() if isinstance(part, np.ndarray) else part)
                out.append(column)
        return out

    def since(self, first: int) -> list[OrderRow]:
        """The rows from the ``first``-th on, as :class:`OrderRow` objects (the last
        chunks only: a week's record costs that week's rows)."""
        rows: list[OrderRow] = []
        end = self.count
        for chunk in reversed(self._chunks):
            if end <= first:
                break
            start = end - len(chunk[0])
            lists = [c.tolist() if isinstance(c, np.ndarray) else c for c in chunk]
            part = [OrderRow(*values) for values in zip(*lists, strict=True)]
            rows[:0] = part[max(first - start, 0) :]
            end = start
        return rows


@dataclass
class LedgerRun:
    """What :func:`run_ledger` produced: what the adapter collects in a backtrader run."""

    values: list[float]
    orders: Orders
    cost_rows: list[tuple[pd.Timestamp, float, float, float, float]]


@dataclass
class _Batch:
    """One decision's orders, waiting for the broker (submission order)."""

    feeds: np.ndarray
    shares: np.ndarray  # signed whole shares (int64)
    reference: np.ndarray  # the price each was sized at, before slippage
    week: pd.Timestamp  # the decision week
    tag: str
    filled_on: pd.Timestamp


class Ledger:
    """The broker's cash and positions, in feed order, and its order rows."""

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
        self.sizes = np.zeros(len(self.names))
        self.prices = np.zeros(len(self.names))
        self.pending: _Batch | None = None
        self.orders = Orders()
        self.slipped = 0.0

    # --- the broker -------------------------------------------------------------------------

    def value(self, i: int) -> float:
        """The portfolio value at the closes of week ``i``, summed as ``BackBroker._get_value``
        sums it: position by position in feed order, a long one as its value less its
        unrealised profit, then plus it."""
        held = np.flatnonzero(self.sizes)
        size, close = self.sizes[held], self.closes[i, held]
        dvalue = size * close
        unrealized = size * (close - self.prices[held]) * 1.0
        long = dvalue > 0
        terms = np.empty((len(held), 2))
        terms[:, 0] = np.where(long, (dvalue - unrealized) / 1.0, dvalue)
        terms[:, 1] = np.where(long, unrealized, 0.0)
        return self.cash + running_sum(0.0, _drop(terms, long))

    def execute_pending(self) -> None:
        """Execute the waiting orders in submission order (``BackBroker.next``), each as
        ``BackBroker._execute`` does for a stock-like instrument (``shortcash``, leverage 1,
        commission a fraction of the value, margin checked at execution)."""
        batch, self.pending = self.pending, None
        if batch is None or not len(batch.feeds):
            return
        c = self.costs
        j = batch.feeds
        n = batch.shares.astype(float)
        price = fill_prices(c, batch.reference, n)
        held, before = self.sizes[j], self.prices[j]
        new = held + n
        long, short = held > 0, held < 0
        flat_after, flat_before = new == 0, held == 0
        grows = (long & (n > 0)) | (short & (n < 0))
        shrinks = (long & (n < 0) & (new > 0)) | (short & (n > 0) & (new < 0))
        # Position.update: how much of each order opens and how much closes a position.
        opened = np.select([flat_after, flat_before, grows, shrinks], [0.0, n, n, 0.0], new)
        closed = np.select([flat_after, flat_before, grows, shrinks], [n, 0.0, 0.0, n], -held)
        pnl = -closed * (price - before) * 1.0
        closedcomm = np.abs(closed) * c.commission * price
        openedcomm = np.abs(opened) * c.commission * price
        steps = np.empty((len(j), 4))
        steps[:, 0] = -closed * before + pnl
        steps[:, 1] = -closedcomm
        steps[:, 2] = -(opened * price)
        steps[:, 3] = -openedcomm
        done = np.ones(len(j), dtype=bool)
        cash, first = self.cash, 0
        while first < len(j):
            path = np.add.accumulate(np.concatenate(([cash], steps[first:].ravel())))
            after = path[4::4]
            refused = np.flatnonzero((opened[first:] != 0) & (after < 0.0))
            if not len(refused):
                cash = float(path[-1])
                break
            k = first + int(refused[0])
            done[k] = False
            # The closed part stands; what would open is not executed (a Margin row).
            cash = float(path[(k - first) * 4 + 2])
            first = k + 1
        self.cash = cash
        # Positions after the fills (a refused order moves only what it closed).
        moved = np.where(done, n, closed)
        after_size = held + moved
        average = (before * held + moved * price) / np.where(after_size == 0, 1.0, after_size)
        self.prices[j] = np.select(
            [after_size == 0, flat_before, grows & done, shrinks | ~done],
            [0.0, price, average, before],
            price,
        )
        self.sizes[j] = after_size
        ex_price = (0.0 + n * price) / n
        ex_comm = 0.0 + (closedcomm + openedcomm)
        self.slipped = running_sum(
            self.slipped, (np.abs(ex_price - batch.reference) * np.abs(n))[done]
        )
        shares = np.abs(batch.shares)
        names = [self.names[f] for f in j.tolist()]
        sides = np.where(batch.shares > 0, "buy", "sell").tolist()
        status = np.where(done, "Completed", "Margin").tolist()
        fill_price = np.where(done, ex_price, math.nan)
        k = len(j)
        self.orders.add(
            [batch.week] * k,
            [batch.filled_on if ok else None for ok in done.tolist()],
            names,
            sides,
            shares,
            fill_price,
            shares * fill_price,
            np.where(done, ex_comm, 0.0),
            status,
            [batch.tag] * k,
        )

    # --- the adapter ------------------------------------------------------------------------

    def rebalance(
        self,
        i: int,
        week: pd.Timestamp,
        targets: Mapping[str, float],
        present: np.ndarray,
        tag: str,
        at_open: bool,
        filled_on: pd.Timestamp,
    ) -> None:
        """Size and submit the orders of ``targets`` (``TargetWeightStrategy._rebalance``),
        at the opens of week ``i`` or at its closes; they fill dated ``filled_on``."""
        price = (self.opens if at_open else self.closes)[i, present]
        close = self.closes[i]
        feeds, shares, missing = plan_orders(
            targets,
            present,
            price,
            self.names,
            self.sizes,
            lambda j: float(close[j]),
            self.cash,
            self.costs,
        )
        for name, weight in missing:
            nobar = order_row(week, None, name, weight, math.nan, 0.0, "NoBar", tag)
            self.orders.add_row(replace(nobar, size=math.nan))
        where = {f: k for k, f in enumerate(present.tolist())}
        reference = price[[where[f] for f in feeds.tolist()]]
        # Dated as backtrader dates a fill: a datetime made from its float date (microseconds).
        filled = pd.Timestamp(filled_on.to_pydatetime())
        self.pending = _Batch(feeds, shares, reference, week, tag, filled)

    def charge(self, i: int) -> tuple[float, float, float]:
        """The week's borrow fee and interest (``TargetWeightStrategy._charge``)."""
        c = self.costs
        if not c.charges_weekly:
            return 0.0, 0.0, 0.0
        cash = self.cash
        fee = 0.0
        if c.borrow_fee:
            shorts = np.flatnonzero(self.sizes < 0)
            short = running_sum(0.0, -self.sizes[shorts] * self.closes[i, shorts])
            fee = short * (c.borrow_fee / WEEKS_PER_YEAR)
        interest = cash * ((c.cash_rate if cash > 0 else c.margin_rate) / WEEKS_PER_YEAR)
        self.cash = cash + interest - fee
        return fee, max(interest, 0.0), max(-interest, 0.0)

    def close_delisted(
        self, i: int, week: pd.Timestamp, ending: Sequence[tuple[int, pd.Timestamp]]
    ) -> None:
        """Close at its last close each held position whose data ended before ``week``."""
        for j, last in ending:
            size = _shares(self.sizes[j])
            if not size or week <= last:
                continue
            price = float(self.closes[i, j])
            commission = self.costs.commission * abs(size) * price
            self.cash += size * price - commission
            self.sizes[j], self.prices[j] = 0.0, 0.0
            row = order_row(week, week, self.names[j], -size, price, commission, "Delisted", "")
            self.orders.add_row(row)

    def holdings(self) -> dict[str, tuple[float, float]]:
        held = np.flatnonzero(self.sizes).tolist()
        sizes, prices, names = self.sizes.tolist(), self.prices.tolist(), self.names
        return {names[j]: (sizes[j], prices[j]) for j in held}


def _drop(terms: np.ndarray, long: np.ndarray) -> np.ndarray:
    """The terms in order, a short position's second (none in backtrader's sum) left out."""
    keep = np.ones(terms.shape, dtype=bool)
    keep[:, 1] = long
    return terms[keep]


def _shares(size: float) -> float:
    """A position's size as backtrader holds it: whole shares as an int."""
    return int(size) if float(size).is_integer() else float(size)


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
    present_arrays = [np.array(p, dtype=np.int64) for p in present]
    values: list[float] = []
    cost_rows: list[tuple[pd.Timestamp, float, float, float, float]] = []
    waiting: tuple[pd.Timestamp, Mapping[str, float], str] | None = None
    recorded = 0
    at_close = fill == "close"
    for i, week in enumerate(calendar):
        if waiting is not None:  # next_open
            decided, targets, tag = waiting
            waiting = None
            book.rebalance(i, decided, targets, present_arrays[i], tag, True, week)
        book.execute_pending()
        if i < begin:
            continue
        if resume is not None and i == begin:
            book.cash = resume.cash
            for j, name in enumerate(book.names):
                size, price = resume.holdings.get(name, (0, 0.0))
                book.sizes[j], book.prices[j] = size, price
            if at_close:
                book.rebalance(
                    i,
                    resume.week,
                    resume.targets,
                    present_arrays[i],
                    resume.tag,
                    False,
                    resume.week,
                )
            else:
                waiting = (resume.week, resume.targets, resume.tag)
            book.orders.clear()
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
                book.rebalance(i, week, targets, present_arrays[i], tag, False, week)
            else:
                waiting = (week, targets, tag)
        if progress is not None:
            progress(i + 1 - begin, len(calendar) - begin)
        if on_week is not None:
            rows = book.orders.since(recorded)
            recorded = book.orders.count
            on_week(WeekRecord(week, values[-1], held_cash, holdings, dict(targets), tag, rows))
    return LedgerRun(values, book.orders, cost_rows)
