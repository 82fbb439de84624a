"""The thin backtrader adapter: trade to target weights, sells before buys.

The strategy holds no rules of its own. At the close of each decision week t it asks
``decide(t, tickers_with_a_bar_at_t, state)`` for a :class:`~strategies.rule.Decision` (the
engine's adapter, which cuts the history at t and asks the decision rule), turns its target
weights into whole-share orders and submits sells first, then buys:

- ``fill="close"``: shares are sized at the close of t and fill at that close (cheat-on-close).
- ``fill="next_open"``: the targets wait until the open of bar t+1; shares are then sized at
  that open and fill at it (cheat-on-open). Nothing of bar t+1 but its open is read.

Every order that ends (filled, rejected for margin, or impossible because the ticker has no bar
at the fill) becomes one row of :attr:`TargetWeightStrategy.order_rows`, carrying the
decision's ``tag`` (the model version behind the decision; empty without one).

Costs (:class:`Costs`, all off by default): commission and slippage are charged by the broker
on each fill, and the sizing reserves cash for both; a short borrow fee and interest on cash
and margin are charged at each week's close, on the positions and cash held through that week
(the state at the close, before that week's decision fills), and enter that week's value.

A ticker whose data end before the data set's last week (``ends``: a delisting) is closed at
its last close in the first week after its last bar, at that week's close and before its
decision, whatever the fill mode: a ``Delisted`` row (commission as on any sale, booked in the
following week's return as for fills at a close). It has no bar after, so no rule can hold it
again.

A run can continue an account (:class:`Resume`): the broker state recorded at the close of a
week, before that week's decision filled, and the decision itself. The run's first bar is that
week: the state is put back and the decision acted on again, exactly as an unbroken run would
have, so a run cut into pieces gives the orders and values of one run. After each week's
decision, ``on_week`` receives that week's :class:`WeekRecord` (what a journal stores).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import backtrader as bt
import numpy as np
import pandas as pd

from strategies.rule import Decision, State

#: ``decide(week, tickers with a bar that week, account state) -> Decision``.
Decide = Callable[[pd.Timestamp, list[str], State], Decision]
Progress = Callable[[int, int], None]
#: ticker -> (shares, average price), as backtrader's broker keeps a position.
Holdings = Mapping[str, tuple[float, float]]


@dataclass(frozen=True)
class OrderRow:
    """One order as it ended (a row of orders.csv and of a journal's orders).

    Attributes
    ----------
    date_submitted
        The decision week (None for none).
    date_filled
        The day it filled; None unless ``status == "Completed"``.
    side
        ``"buy"`` or ``"sell"``.
    size
        Shares (positive; NaN for a ``NoBar`` order, which had no price to size at).
    price, value, commission
        Fill price, ``size * price`` and the commission paid (NaN, NaN, 0 when not filled).
    status
        ``Completed``, ``Margin`` (rejected: the cash could not pay), ``NoBar`` (the ticker
        had no bar to fill at) or ``Delisted`` (the ticker's data ended: the position was
        closed at its last close in the week after its last bar; ``date_submitted`` and
        ``date_filled`` are that week).
    model_version
        The decision's tag (the model version behind it; empty without one).
    """

    date_submitted: pd.Timestamp | None
    date_filled: pd.Timestamp | None
    ticker: str
    side: str
    size: float
    price: float
    value: float
    commission: float
    status: str
    model_version: str


#: The columns of orders.csv: :class:`OrderRow`'s fields.
ORDER_COLUMNS = [f.name for f in fields(OrderRow)]
#: Statuses of rows that moved shares and cash.
FILLED = ("Completed", "Delisted")


#: Weeks a year: annual rates are charged at rate / 52 a week.
WEEKS_PER_YEAR = 52


@dataclass(frozen=True)
class Costs:
    """What trading and holding cost (all off by default).

    Attributes
    ----------
    commission
        Fraction of each fill's value (price after slippage x shares).
    slippage, slippage_kind
        ``"perc"``: buys fill at ``price x (1 + slippage)``, sells at ``price x (1 -
        slippage)``; ``"fixed"``: at ``price + slippage`` and ``price - slippage`` (price units
        of the adjusted series). ``price`` is the fill's reference: the open of the fill week
        (``next_open``) or the decision week's close (``close``). backtrader's own slippage
        (``set_slippage_perc`` / ``set_slippage_fixed``) applies it, never capped at the bar's
        high or low (a cap would read the fill bar's range, and with cheat-on-close the range
        of the bar after the fill).
    borrow_fee
        Annual rate on the market value of short positions, charged weekly: ``borrow_fee / 52
        x |short value|`` at each week's close.
    cash_rate, margin_rate
        Annual rates on the broker's cash at each week's close, compounded weekly: positive
        cash earns ``cash_rate / 52`` of itself, negative cash pays ``margin_rate / 52``. The
        cash includes the proceeds of short sales.
    """

    commission: float = 0.0
    slippage: float = 0.0
    slippage_kind: str = "perc"
    borrow_fee: float = 0.0
    cash_rate: float = 0.0
    margin_rate: float = 0.0

    def __post_init__(self) -> None:
        if self.slippage_kind not in ("perc", "fixed"):
            raise ValueError(f"slippage_kind {self.slippage_kind!r}: use 'perc' or 'fixed'")
        for name in ("commission", "slippage", "borrow_fee", "margin_rate"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} {value!r} must be a finite number >= 0")
        if not math.isfinite(self.cash_rate):
            raise ValueError(f"cash_rate {self.cash_rate!r} must be finite")

    @property
    def charges_weekly(self) -> bool:
        """Whether anything is charged at a week's close."""
        return bool(self.borrow_fee or self.cash_rate or self.margin_rate)

    def fill_price(self, price: float, shares: float) -> float:
        """The price a fill of ``shares`` (> 0 buys) gets at reference ``price``, computed as
        backtrader's broker computes it.

        >>> Costs(slippage=0.01).fill_price(10.0, 5)
        10.1
        >>> Costs(slippage=0.5, slippage_kind="fixed").fill_price(10.0, -5)
        9.5
        """
        s = self.slippage
        if not s:
            return price
        if self.slippage_kind == "perc":
            return price * (1 + s) if shares > 0 else price * (1 - s)
        return price + s if shares > 0 else price - s


#: One week's charges: borrow fee paid, interest earned on cash, interest paid on margin, and
#: the slippage of the fills booked that week (all >= 0, in cash).
COST_COLUMNS = ["borrow_fee", "cash_interest", "margin_interest", "slippage"]


@dataclass(frozen=True)
class Resume:
    """Where a run picks up an account: the close of ``week``, before its decision filled.

    ``cash`` and ``holdings`` are the broker's at that close (after the fills of earlier
    decisions); ``targets`` are the weights decided at that close and ``tag`` their label.
    """

    week: pd.Timestamp
    cash: float
    holdings: Holdings
    targets: Mapping[str, float]
    tag: str


@dataclass(frozen=True)
class WeekRecord:
    """One week of a run, as of its close: everything needed to resume after it.

    Attributes
    ----------
    value
        Portfolio value at the close (the week's equity).
    cash, holdings
        The broker's cash and positions at the close, before this week's decision filled
        (after the week's borrow fee and interest, and any ``Delisted`` close-out).
    targets
        The weights decided at the close (empty when the week was not a decision week).
    tag
        The label of the decision (its model version; empty without a tag).
    orders
        The order rows that ended while this week was processed: the fills of the previous
        decision (at this week's open, or at the previous close with ``fill="close"``), a
        position closed because its ticker's data ended (``Delisted``) and any order of this
        week's decision that could not be placed (``NoBar``).
    """

    week: pd.Timestamp
    value: float
    cash: float
    holdings: Holdings
    targets: Mapping[str, float]
    tag: str
    orders: list[OrderRow] = field(default_factory=list)

    def resume(self) -> Resume:
        """Where a later run continues from this week."""
        return Resume(self.week, self.cash, self.holdings, self.targets, self.tag)


class TargetWeightStrategy(bt.Strategy):
    """Rebalance to the targets of ``decide`` on each week of ``decisions``.

    ``datas[0]`` must be the calendar clock feed (one bar per week of ``calendar``, never
    traded); the other datas are the tickers, named after them. ``present[i]`` lists the
    positions in ``datas[1:]`` of the tickers that have a bar in week ``calendar[i]``.

    With ``resume``, the bars before ``calendar[begin]`` only warm the feeds up (a held ticker
    without a bar in the resume week needs its last close); at ``calendar[begin]``, the resume
    week, the account is restored and its decision acted on; values and records start after it.

    ``ends`` maps a ticker whose data end early to its last bar: held in a later week, it is
    closed at its last close (a ``Delisted`` row).
    """

    params: Any = (
        ("decide", None),
        ("calendar", None),
        ("decisions", None),
        ("present", None),
        ("fill", "next_open"),
        ("costs", Costs()),
        ("progress", None),
        ("begin", 0),
        ("resume", None),
        ("on_week", None),
        ("observe", None),
        ("ends", None),
    )

    def __init__(self) -> None:
        self.calendar: pd.DatetimeIndex = self.p.calendar
        self.decisions: frozenset[pd.Timestamp] = frozenset(self.p.decisions)
        self.assets = list(self.datas[1:])
        self._names = [d._name for d in self.assets]
        self._number = {d: j for j, d in enumerate(self.assets)}
        self.values: list[float] = []
        self.order_rows: list[OrderRow] = []
        self._waiting: tuple[pd.Timestamp, Mapping[str, float], str] | None = None
        self._dates: dict[float, pd.Timestamp] = {}
        self._recorded = 0  # order rows already handed to on_week
        ends = self.p.ends or {}
        self._ending = [(d, ends[d._name]) for d in self.assets if d._name in ends]
        self.costs: Costs = self.p.costs
        #: One row per week processed: ``(week, *COST_COLUMNS)``.
        self.cost_rows: list[tuple[pd.Timestamp, float, float, float, float]] = []
        self._slipped = 0.0  # slippage of the fills notified since the last week's row

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
        if i < self.p.begin:  # warm-up bars of a resumed run
            return
        if self.p.resume is not None and i == self.p.begin:
            self._restore(self.p.resume)
            return
        # The week's charges enter its value (the broker valued the account before them). The
        # run's first week only opens the account: nothing was held through it.
        fee, earned, paid = self._charge() if i > self.p.begin else (0.0, 0.0, 0.0)
        self.cost_rows.append((week, fee, earned, paid, self._slipped))
        self._slipped = 0.0
        # The value was taken by the broker before a delisted position is closed: it holds the
        # position at its last close, and the close-out's commission falls in the next week.
        self.values.append(self.broker.getvalue() + (earned - paid - fee))
        if self._ending:
            self._close_delisted(week)
        if self.p.observe is not None:  # e.g. a drawdown stop watching the equity
            self.p.observe(week, self.values[-1])
        # backtrader keeps every notified order in self._orders for good; our rows suffice.
        self._orders.clear()
        is_decision = week in self.decisions
        if self.p.on_week is not None or is_decision:
            cash, holdings = self.broker.getcash(), self._holdings()
        targets: Mapping[str, float] = {}
        tag = ""
        if is_decision:
            present = self._present()
            state = State(cash, self.values[-1], {t: s for t, (s, _p) in holdings.items()})
            decision = self.p.decide(week, [d._name for d in present], state)
            targets, tag = decision.weights, decision.tag
            self._act(week, targets, tag, present)
        if self.p.progress is not None:
            self.p.progress(i + 1 - self.p.begin, len(self.calendar) - self.p.begin)
        if self.p.on_week is not None:
            rows = self.order_rows[self._recorded :]
            self._recorded = len(self.order_rows)
            record = WeekRecord(week, self.values[-1], cash, holdings, dict(targets), tag, rows)
            self.p.on_week(record)

    def _charge(self) -> tuple[float, float, float]:
        """Charge the week's borrow fee and interest to the cash; return ``(borrow fee,
        interest earned, interest paid)``. Shorts are valued at the week's close (a ticker
        without a bar at its last close), summed in feed order (a resumed run sums the same
        terms in the same order)."""
        c = self.costs
        if not c.charges_weekly:
            return 0.0, 0.0, 0.0
        cash = self.broker.getcash()
        fee = 0.0
        if c.borrow_fee:
            positions = self.broker.positions
            held = [(positions[d].size, d) for d in self.assets if d in positions]
            short = sum(-size * d.close[0] for size, d in held if size < 0)
            fee = short * (c.borrow_fee / WEEKS_PER_YEAR)
        interest = cash * ((c.cash_rate if cash > 0 else c.margin_rate) / WEEKS_PER_YEAR)
        self.broker.cash = cash + interest - fee
        return fee, max(interest, 0.0), max(-interest, 0.0)

    def _close_delisted(self, week: pd.Timestamp) -> None:
        """Close, at its last close, every held position whose data ended before ``week``."""
        for d, last in self._ending:
            # .get: creating a position here would change the order in which the broker sums
            # the positions (a resumed run creates them in feed order), and so the last bit.
            position = self.broker.positions.get(d)
            if position is None or not position.size or week <= last:
                continue
            size, price = position.size, float(d.close[0])  # an ended feed keeps its last bar
            commission = self.costs.commission * abs(size) * price
            self.broker.cash += size * price - commission
            position.set(0, 0.0)
            self.order_rows.append(
                order_row(week, week, d._name, -size, price, commission, "Delisted", "")
            )

    def _act(
        self, week: pd.Timestamp, targets: Mapping[str, float], tag: str, present: list[Any]
    ) -> None:
        """Fill now at the close, or keep the targets for the next bar's open."""
        if self.p.fill == "close":
            self._rebalance(week, targets, present, tag, at_open=False)
        else:
            self._waiting = (week, targets, tag)

    def _holdings(self) -> dict[str, tuple[float, float]]:
        return {
            d._name: (float(p.size), float(p.price))
            for d, p in self.broker.positions.items()
            if p.size
        }

    def _restore(self, resume: Resume) -> None:
        """Put the broker back as it was at the resume week's close; act on its decision.

        Positions are created in feed order, the order an unbroken run creates them in, so
        the broker sums the portfolio value in the same order (bit-for-bit equal values).
        """
        names = {d._name: d for d in self.assets}
        unknown = sorted(set(resume.holdings) - set(names))
        if unknown:
            raise ValueError(f"held tickers without a feed: {', '.join(unknown)}")
        self.broker.cash = resume.cash
        for d in self.assets:
            size, price = resume.holdings.get(d._name, (0, 0.0))
            size = int(size) if float(size).is_integer() else size  # orders are whole shares
            position = bt.Position(size=size, price=price)
            position.datetime = resume.week.to_pydatetime()  # read by the broker's interest
            self.broker.positions[d] = position
        self._act(resume.week, resume.targets, resume.tag, self._present())
        # Rows made again here (NoBar rows of the decision) were recorded with that week.
        del self.order_rows[:]
        self._recorded = 0

    def next_open(self) -> None:
        if self._waiting is None:
            return
        week, targets, tag = self._waiting
        self._waiting = None
        self._rebalance(week, targets, self._present(), tag, at_open=True)

    def _rebalance(
        self,
        week: pd.Timestamp,
        targets: Mapping[str, float],
        present: list[Any],
        tag: str,
        at_open: bool,
    ) -> None:
        """Submit the orders that move the positions of ``present`` feeds to ``targets``."""
        price = np.array([d.open[0] if at_open else d.close[0] for d in present], dtype=float)
        positions = self.broker.positions
        # Every feed's position, in feed order (the order the broker then sums them in).
        sizes = np.array([positions[d].size for d in self.assets], dtype=float)
        number = self._number
        feeds, shares, missing = plan_orders(
            targets,
            np.array([number[d] for d in present], dtype=np.int64),
            price,
            self._names,
            sizes,
            lambda j: self.assets[j].close[0],
            self.broker.getcash(),
            self.costs,
        )
        for name, weight in missing:
            # No bar to fill at (e.g. a trading halt): recorded, never silently dropped.
            row = order_row(week, None, name, weight, math.nan, 0.0, "NoBar", tag)
            self.order_rows.append(replace(row, size=math.nan))
        reference = dict(zip(present, price.tolist(), strict=True))
        for j, n in zip(feeds.tolist(), shares.tolist(), strict=True):
            d = self.assets[j]
            order = self.sell(data=d, size=-n) if n < 0 else self.buy(data=d, size=n)
            order.addinfo(decided=week, tag=tag, reference=reference[d])

    def notify_order(self, order: Any) -> None:
        if order.alive():
            return
        week = order.info.get("decided")
        tag = order.info.get("tag", "")
        name = order.data._name
        status = order.getstatusname()
        if order.status == order.Completed:
            ex = order.executed
            reference = order.info.get("reference")
            if reference is not None:
                self._slipped += abs(ex.price - reference) * abs(ex.size)
            filled = self._dates.get(ex.dt)
            if filled is None:
                filled = self._dates[ex.dt] = pd.Timestamp(bt.num2date(ex.dt))
            row = order_row(week, filled, name, ex.size, ex.price, ex.comm, status, tag)
        else:
            row = order_row(week, None, name, order.created.size, math.nan, 0.0, status, tag)
        self.order_rows.append(row)


def running_sum(start: float, terms: np.ndarray) -> float:
    """``start + terms[0] + terms[1] + ...``, added one by one from the left, as a Python loop
    (and backtrader's broker) adds them: the same float to the last bit, where ``np.sum``'s
    pairwise sum may differ in it."""
    if not len(terms):
        return start
    return float(np.add.accumulate(np.concatenate(([start], terms)))[-1])


def fill_prices(costs: Costs, price: np.ndarray, shares: np.ndarray) -> np.ndarray:
    """:meth:`Costs.fill_price` of each ``(price, shares)`` pair."""
    s = costs.slippage
    if not s:
        return price
    if costs.slippage_kind == "perc":
        return np.where(shares > 0, price * (1 + s), price * (1 - s))
    return np.where(shares > 0, price + s, price - s)


def plan_orders(
    targets: Mapping[str, float],
    present: np.ndarray,
    price: np.ndarray,
    names: Sequence[str],
    sizes: np.ndarray,
    mark: Callable[[int], float],
    cash: float,
    costs: Costs,
) -> tuple[np.ndarray, np.ndarray, list[tuple[str, float]]]:
    """The whole-share orders that move the positions to ``targets``, sells first.

    The one sizing rule of both engines (backtrader's adapter and :mod:`simulator.ledger`).
    Instruments are numbered in the broker's order: ``names`` and ``sizes`` (0 when flat)
    list every one; ``present`` numbers those that can trade now, in the order of
    ``price``, their fill references; ``mark(j)`` is the price a held instrument that
    cannot trade now is valued at (it keeps its value out of the budget). Each target is
    ``int(weight * budget / price)`` shares (toward zero); with costs, the budget first
    reserves what the trades would cost; buys are then trimmed until the sells pay for them
    (:func:`_fund`). Sums are running sums (:func:`running_sum`), in the order the adapter
    always added them. Returns ``(instruments, shares, missing)``: the orders in submission
    order (signed whole shares), and the ``(ticker, weight)`` targets with no price (no bar
    to fill at).
    """
    can_trade = np.zeros(len(sizes), dtype=bool)
    can_trade[present] = True
    held = np.flatnonzero(sizes)
    at = np.empty(len(held))
    where = {int(j): k for k, j in enumerate(present)}
    away = []
    for n, j in enumerate(held.tolist()):
        if can_trade[j]:
            at[n] = price[where[j]]
        else:
            at[n] = mark(j)
            away.append(n)
    worth = sizes[held] * at
    value = running_sum(cash, worth)
    held_value = running_sum(0.0, np.abs(worth[away]))
    tradable = {names[j] for j in present.tolist()}
    missing = [(name, w) for name, w in targets.items() if name not in tradable and w]
    budget = value - held_value
    weights = np.array([targets.get(names[j], 0.0) for j in present.tolist()], dtype=float)
    now = np.trunc(sizes[present])
    deltas = _deltas(weights, price, now, budget)
    c = costs
    if c.commission > 0 or c.slippage > 0:
        # Reserve what the trades will cost, from the trades the budget alone would make.
        moved = deltas != 0
        n, p = deltas[moved], price[moved]
        fills = fill_prices(c, p, n)
        cost = c.commission * running_sum(0.0, np.abs(n) * fills)
        if c.slippage > 0:
            cost += running_sum(0.0, np.abs(n) * np.abs(fills - p))
        deltas = _deltas(weights, price, now, budget - cost)
    _fund(deltas, price, sizes[present], cash, c)
    sells, buys = np.flatnonzero(deltas < 0), np.flatnonzero(deltas > 0)
    order = np.concatenate((sells, buys))
    return present[order], deltas[order].astype(np.int64), missing


def _deltas(weights: np.ndarray, price: np.ndarray, now: np.ndarray, budget: float) -> np.ndarray:
    """Whole shares to trade: ``int(weight * budget / price) - int(size)`` (floats)."""
    return np.trunc(weights * budget / price) - now


def _fund(deltas: np.ndarray, price: np.ndarray, sizes: np.ndarray, cash: float, c: Costs) -> None:
    """Trim buys (largest value first) until the sells pay for them, in place.

    Whole shares are rounded toward zero, so each short position raises up to one share's
    price less than its target. When the targets spend every dollar (longs funded by
    shorts), the buys then need slightly more cash than there is and the broker would
    reject a whole order for margin; giving up a few shares of the largest buys keeps the
    rest. Only that rounding is made good: targets that overspend by more (gross long
    above the budget) are left to the broker, which rejects and logs them.
    """
    rate = 1.0 + c.commission
    moved = np.flatnonzero(deltas)
    n = deltas[moved]
    fill = fill_prices(c, price[moved], n)
    cash = running_sum(cash, -(n * fill + c.commission * np.abs(n) * fill))
    short = np.flatnonzero(sizes + deltas < 0)
    floor = running_sum(0.0, fill_prices(c, price[short], -np.ones(len(short))) * rate)
    if cash >= 0.0 or cash < -floor:
        return
    buys = sorted(np.flatnonzero(deltas > 0).tolist(), key=lambda k: -deltas[k] * price[k])
    for k in buys:
        fill1 = c.fill_price(float(price[k]), 1)
        cut = min(deltas[k], math.ceil(-cash / (fill1 * rate)))
        deltas[k] -= cut
        cash += cut * fill1 * rate
        if cash >= 0.0:
            return


def order_row(
    week: pd.Timestamp | None,
    filled: pd.Timestamp | None,
    ticker: str,
    size: float,
    price: float,
    commission: float,
    status: str,
    tag: str,
) -> OrderRow:
    """The row of an order that ended: ``size`` signed (> 0 buys), ``price`` NaN when it did
    not fill."""
    shares = abs(size)
    value = shares * price if not math.isnan(price) else math.nan
    side = "buy" if size > 0 else "sell"
    return OrderRow(week, filled, ticker, side, shares, price, value, commission, status, tag)
