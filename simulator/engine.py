"""The backtrader engine: weekly feeds, broker, the target-weight adapter, and its ledger.

:func:`run_engine` runs one decision rule (:mod:`strategies.rule`) over a window of weeks and
returns the portfolio value at every week's close, the orders, the positions' weights after
each week's fills and the decision log. It can continue an account from a recorded week
(``resume``) and hand over each week's record as it closes (``on_week``): the paper-trading
replay is this engine run a few weeks at a time.

The engine, not the rule, decides what a rule sees (:class:`RuleRun`): at decision week t the
weekly closes cut at t and the tickers that may trade (a bar at t and ``min_history`` weekly
bars up to it). It checks every answer before trading it.
"""

from __future__ import annotations

import dataclasses
import math
import os
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import backtrader as bt
import numpy as np
import pandas as pd

from simulator.data import WeeklyData
from simulator.errors import ConfigError, StrategyError
from simulator.ledger import Orders, run_ledger
from simulator.sight import Sight
from strategies.rebalance import (
    COST_COLUMNS,
    FILLED,
    ORDER_COLUMNS,
    Costs,
    Decide,
    OrderRow,
    Progress,
    Resume,
    TargetWeightStrategy,
    WeekRecord,
)
from strategies.rule import (
    DECISION_COLUMNS,
    Decision,
    DecisionRule,
    RuleError,
    State,
    as_decision,
    check_decision,
    rule_inputs,
)
from strategies.sizing import Limits

_FEED_COLUMNS = ["open", "high", "low", "close", "volume", "openinterest"]


@dataclass(frozen=True)
class EngineResult:
    """What one engine run produced.

    Attributes
    ----------
    values
        Portfolio value at the close of each week of the window, shape ``(n_weeks,)``.
    orders
        One row per order (``ORDER_COLUMNS``), in submission order within a week.
    weights
        Position value / portfolio value after each week's fills, valued at that week's
        close, shape ``(n_weeks, n_tickers)`` (0 where nothing is held).
    decisions
        The decision log (``strategies.rule.DECISION_COLUMNS``); empty for a result rebuilt
        from a journal.
    costs
        What each week of the window cost beyond commission (``strategies.rebalance.
        COST_COLUMNS``, cash amounts >= 0, index = weeks); empty for a result rebuilt from a
        journal.
    """

    values: pd.Series
    orders: pd.DataFrame
    weights: pd.DataFrame
    decisions: pd.DataFrame
    costs: pd.DataFrame = dataclasses.field(
        default_factory=lambda: pd.DataFrame(columns=COST_COLUMNS, dtype=float)
    )


def order_frame(rows: Sequence[OrderRow] | Orders) -> pd.DataFrame:
    """Order rows as a frame with :data:`~strategies.rebalance.ORDER_COLUMNS` (each
    column's type inferred from its values, whichever engine made them)."""
    if isinstance(rows, Orders):
        columns = rows.columns()
    else:
        # Field by field: dataclasses.astuple deep-copies every field.
        columns = [list(column) for column in zip(*(vars(r).values() for r in rows), strict=True)]
    if not columns or not len(columns[0]):
        return pd.DataFrame([], columns=ORDER_COLUMNS)
    return pd.DataFrame(dict(zip(ORDER_COLUMNS, columns, strict=True)), columns=ORDER_COLUMNS)


def eligible_frame(weekly: WeeklyData, weeks: pd.DatetimeIndex, min_history: int) -> pd.DataFrame:
    """Whether each ticker may trade at each of ``weeks``: a bar that week and at least
    ``min_history`` bars up to it (boolean, ``(n_weeks, n_tickers)``)."""
    seen = weekly.closes().notna()
    return (seen & (seen.cumsum() >= min_history)).reindex(weeks)


class RuleRun:
    """The engine's side of a decision rule: what it may see, and a check of what it says.

    Called by the backtrader adapter at each decision week with the tickers that have a bar
    and the account's state, it cuts the closes at the week, keeps the tradable tickers
    (``eligible``), asks ``rule`` and checks its answer against ``limits`` (``max_gross``
    bounds ``sum(|w|)``, default ``limits.gross``). Every decision is logged in
    :attr:`rows` (``DECISION_COLUMNS``). An answer that breaks a rule stops the run with a
    :class:`~simulator.errors.StrategyError` naming the rule and the week.
    """

    def __init__(
        self,
        rule: DecisionRule,
        sight: Sight,
        eligible: Mapping[pd.Timestamp, frozenset[str]],
        limits: Limits | None,
        max_gross: float | None = None,
    ) -> None:
        self.rule = rule
        self.sight = sight
        try:
            self.reads = sight.check(rule_inputs(rule), f"strategy {rule.name!r}")
        except RuleError as err:
            raise StrategyError(f"strategy {rule.name!r}: {err}; fix the rule") from None
        # This run's own copy of what the rule reads, written as the weeks pass.
        self.tape = sight.tape(self.reads)
        self.eligible = eligible
        # Without limits (the engine's own tests) only finiteness and tradability are checked.
        self.max_weight = limits.max_weight if limits is not None else math.inf
        self.allow_short = limits.allow_short if limits is not None else True
        gross = limits.gross if limits is not None else math.inf
        self.max_gross = gross if max_gross is None else max_gross
        # The decision log, a week at a time: (week, tickers, scores, targets, note).
        self._weeks: list[tuple[pd.Timestamp, tuple[str, ...], np.ndarray, np.ndarray, str]] = []

    def __call__(self, week: pd.Timestamp, present: list[str], state: State) -> Decision:
        allowed = self.eligible[week]
        history = self.tape.at(week, [t for t in present if t in allowed])
        try:
            decision = as_decision(self.rule.decide(week, history, state))
            weights = check_decision(
                decision,
                history.tradable,
                max_weight=self.max_weight,
                max_gross=self.max_gross,
                allow_short=self.allow_short,
            )
        except RuleError as err:
            raise RuleFailed(
                f"strategy {self.rule.name!r}, decision of the week of {week.date()}: {err}; "
                "fix the rule",
                week,
            ) from None
        names = history.tradable
        scores = decision.scores
        score = (
            np.array([float(scores.get(t, math.nan)) for t in names], dtype=float)
            if scores
            else np.full(len(names), math.nan)
        )
        target = np.array([weights.get(t, 0.0) for t in names], dtype=float)
        self._weeks.append((week, names, score, target, decision.note))
        return Decision(weights, decision.scores, decision.note, decision.tag)

    @property
    def log(self) -> pd.DataFrame:
        """The decision log so far, ``DECISION_COLUMNS``."""
        weeks: list[pd.Timestamp] = []
        tickers: list[str] = []
        scores: list[np.ndarray] = []
        targets: list[np.ndarray] = []
        notes: list[str] = []
        for week, names, score, target, note in self._weeks:
            # One row per tradable ticker, then the week's note in a row of its own.
            weeks.extend([week] * (len(names) + bool(note)))
            tickers.extend(names)
            scores.append(score)
            targets.append(target)
            notes.extend([""] * len(names))
            if note:
                tickers.append("")
                scores.append(np.full(1, math.nan))
                targets.append(np.full(1, math.nan))
                notes.append(note)
        if not weeks:
            return pd.DataFrame([], columns=DECISION_COLUMNS)
        columns = [weeks, tickers, np.concatenate(scores), np.concatenate(targets), notes]
        return pd.DataFrame(dict(zip(DECISION_COLUMNS, columns, strict=True)))


class RuleFailed(StrategyError):
    """A rule failed or broke the engine's rules at decision ``week``.

    Its message says nothing was written, which holds for a backtest; an entry point that
    records weeks as they close (a paper account's step) says instead what it recorded, from
    :attr:`head`.
    """

    def __init__(self, head: str, week: pd.Timestamp) -> None:
        super().__init__(f"{head} (nothing was written)")
        self.head = head
        self.week = week


def eligible_sets(ok: pd.DataFrame) -> Mapping[pd.Timestamp, frozenset[str]]:
    """Week -> the tickers that may trade that week (see :func:`eligible_frame`), each set
    made when its week is asked for (a run asks once per decision week)."""
    return _Eligible(ok)


class _Eligible(Mapping[pd.Timestamp, frozenset[str]]):
    def __init__(self, ok: pd.DataFrame) -> None:
        self._names = np.array([str(t) for t in ok.columns], dtype=object)
        self._ok = ok.to_numpy(dtype=bool)
        self._row = {week: i for i, week in enumerate(ok.index)}

    def __getitem__(self, week: pd.Timestamp) -> frozenset[str]:
        return frozenset(self._names[self._ok[self._row[week]]].tolist())

    def __iter__(self) -> Iterator[pd.Timestamp]:
        return iter(self._row)

    def __len__(self) -> int:
        return len(self._row)


class _TerminalNotifyBroker(bt.brokers.BackBroker):
    """backtrader's broker, telling the strategy only how each order ended.

    The stock broker notifies every status change (Submitted, Accepted, Completed, ...) with a
    copy of the order, and copying is a tenth of the engine's time. Our adapter reads only
    final states, and an order in a final state never changes again, so the order itself is
    passed, once, when it ends. Its executed bits are marked as the stock ``clone`` does, so
    backtrader's trade bookkeeping sees each execution exactly once.
    """

    def notify(self, order: bt.Order) -> None:
        if order.alive():
            return
        order.executed.markpending()
        self.notifs.append(order)


def _feed(frame: pd.DataFrame, name: str) -> bt.feeds.PandasDirectData:
    data = frame.assign(openinterest=0.0)[_FEED_COLUMNS]
    return bt.feeds.PandasDirectData(dataname=data, name=name)


#: The default of :func:`run_engine`: no costs (the seed's assumption).
NO_COSTS = Costs()


def run_engine(
    weekly: WeeklyData,
    weeks: pd.DatetimeIndex,
    decisions: pd.DatetimeIndex,
    rule: DecisionRule,
    *,
    cash: float,
    fill: str,
    costs: Costs = NO_COSTS,
    limits: Limits | None = None,
    max_gross: float | None = None,
    min_history: int = 1,
    progress: Progress | None = None,
    resume: Resume | None = None,
    on_week: Callable[[WeekRecord], None] | None = None,
    observe: Callable[[pd.Timestamp, float], None] | None = None,
    sight: Sight | None = None,
    engine: str | None = None,
) -> EngineResult:
    """Run ``rule``'s targets through backtrader over ``weeks``.

    Parameters
    ----------
    weeks
        The window: consecutive week stamps of ``weekly.calendar``. When resuming, the weeks
        right after ``resume.week``.
    decisions
        The weeks at whose close ``rule`` is asked for targets (a subset of ``weeks``).
    rule
        The decision rule (:class:`RuleRun` shows it the history cut at each decision week).
    limits, max_gross
        What every answer is checked against (:class:`RuleRun`); without ``limits`` only
        that the weights are finite and on tradable tickers (the engine's own tests).
    min_history
        Weekly bars a ticker needs up to a week to be tradable that week (default 1: a bar).
    fill
        ``"next_open"`` or ``"close"`` (see :mod:`strategies.rebalance`).
    costs
        What trading and holding cost (:class:`strategies.rebalance.Costs`; all off by
        default).
    resume
        Continue an account from the close of ``resume.week`` (``cash`` is then ignored).
    on_week
        Called at the close of each week of ``weeks``, after its decision, with its record.
    observe
        Called at the close of each week of ``weeks``, before its decision, with the
        portfolio value (a profile's drawdown stop reads it).
    sight
        What the rule may see at each decision week (:class:`simulator.sight.Sight`; by
        default made from ``weekly``; a session passes its own, made once per run).
    engine
        ``"fast"`` (:mod:`simulator.ledger`), ``"backtrader"`` (the engine of record) or
        ``"both"`` (backtrader, checked week by week against the fast engine); by default
        :func:`engine_choice`.
    """
    begin, calendar = 0, weeks
    if resume is not None:
        warm_up = _warm_up(weekly, resume)
        calendar = pd.DatetimeIndex(warm_up.append(weeks))
        begin = len(warm_up) - 1
        following = weekly.calendar[weekly.calendar > resume.week][: len(weeks)]
        if not following.equals(weeks):
            raise ValueError(f"weeks must follow {resume.week.date()} without a gap")
    if costs.slippage and costs.slippage_kind == "fixed":
        _check_fixed_slippage(weekly, calendar, costs.slippage)
    eligible = eligible_sets(eligible_frame(weekly, pd.DatetimeIndex(decisions), min_history))
    decide = RuleRun(rule, sight or Sight.of(weekly), eligible, limits, max_gross)
    first, last = calendar[0], calendar[-1]
    feeds = {t: b.loc[first:last] for t, b in weekly.bars.items()}
    feeds = {t: window for t, window in feeds.items() if not window.empty}
    has_bar = np.array([calendar.isin(window.index) for window in feeds.values()])
    # Which feeds have a bar each week: known from the bars themselves, read once here rather
    # than from every feed's clock every week.
    present = [tuple(np.flatnonzero(row).tolist()) for row in has_bar.T]
    # Tickers whose data end before the data set's: closed in the week after their last bar.
    end = weekly.calendar[-1]
    ends = {t: b.index[-1] for t, b in weekly.bars.items() if len(b) and b.index[-1] < end}
    setup = _Setup(calendar, frozenset(decisions), present, fill, costs, begin, resume, ends)
    how = engine or engine_choice()
    runner = {"backtrader": _run_backtrader, "fast": _run_fast}.get(how, _run_both)
    run = runner(feeds, setup, decide, cash, _Hooks(progress, on_week, observe))
    values = pd.Series(run.values, index=weeks, name="value")
    orders = run.orders
    start = resume or Resume(weeks[0], cash, {}, {}, "")
    charges = pd.DataFrame(
        [row[1:] for row in run.cost_rows], index=weeks, columns=COST_COLUMNS, dtype=float
    )
    weights = _ledger_weights(weekly, weeks, orders, start, charges)
    return EngineResult(values, orders, weights, decide.log, charges)


#: The engines :func:`run_engine` can run (see :func:`engine_choice`).
ENGINES = ("fast", "backtrader", "both")
ENGINE_VARIABLE = "FOLIOSIM_ENGINE"


def engine_choice() -> str:
    """The engine named by ``FOLIOSIM_ENGINE`` (default ``"fast"``).

    ``fast`` runs :mod:`simulator.ledger`; ``backtrader`` runs backtrader, the engine of
    record; ``both`` runs backtrader, replays its decisions through the fast engine and
    compares every week's value, order and charge, warning (:class:`EngineMismatch`) at the
    first that differs and keeping backtrader's result. The test suite runs with ``both``.
    """
    value = os.environ.get(ENGINE_VARIABLE, "").strip() or "fast"
    if value not in ENGINES:
        raise ConfigError(
            f"{ENGINE_VARIABLE}={value!r} is not an engine; use one of {', '.join(ENGINES)} "
            "(or leave it unset: fast)"
        )
    return value


class EngineMismatch(UserWarning):
    """The fast engine and backtrader gave different results (a bug in the fast engine)."""


@dataclass(frozen=True)
class _Setup:
    calendar: pd.DatetimeIndex
    decisions: frozenset[pd.Timestamp]
    present: list[tuple[int, ...]]
    fill: str
    costs: Costs
    begin: int
    resume: Resume | None
    ends: dict[str, pd.Timestamp]

    def arguments(self, decide: Decide, hooks: _Hooks) -> dict[str, Any]:
        """What both engines' week loops take besides their prices and cash."""
        return {
            "decide": decide,
            "calendar": self.calendar,
            "decisions": self.decisions,
            "present": self.present,
            "fill": self.fill,
            "costs": self.costs,
            "begin": self.begin,
            "resume": self.resume,
            **vars(hooks),
        }


@dataclass(frozen=True)
class _Run:
    """What either engine's week loop produced: the week's values, its orders (one frame
    builder for both, :func:`order_frame`) and its charges."""

    values: list[float]
    orders: pd.DataFrame
    cost_rows: list[tuple[pd.Timestamp, float, float, float, float]]


@dataclass(frozen=True)
class _Hooks:
    """What a run calls as it goes (see :func:`run_engine`)."""

    progress: Progress | None = None
    on_week: Callable[[WeekRecord], None] | None = None
    observe: Callable[[pd.Timestamp, float], None] | None = None


def _run_backtrader(
    feeds: Mapping[str, pd.DataFrame],
    setup: _Setup,
    decide: Decide,
    cash: float,
    hooks: _Hooks,
) -> _Run:
    costs, fill = setup.costs, setup.fill
    cerebro = bt.Cerebro(stdstats=False, cheat_on_open=(fill == "next_open"))
    cerebro.broker = _TerminalNotifyBroker()
    cerebro.broker.setcash(cash)
    # Margin is checked when an order executes; skipping the pseudo-execution at submission
    # halves the per-order cost and still rejects (and reports) any buy the cash cannot pay.
    cerebro.broker.set_checksubmit(False)
    cerebro.broker.setcommission(
        commission=costs.commission,
        commtype=bt.CommInfoBase.COMM_PERC,
        percabs=True,
        stocklike=True,
    )
    if fill == "close":
        cerebro.broker.set_coc(True)
    if costs.slippage:
        # slip_open: market orders filled at an open, or at a close with cheat-on-close, slip
        # too (backtrader's default leaves them unslipped). slip_out: never capped at the fill
        # bar's high/low, which with cheat-on-close is the bar after the decision (look-ahead).
        how = {"slip_open": True, "slip_match": True, "slip_limit": True, "slip_out": True}
        if costs.slippage_kind == "perc":
            cerebro.broker.set_slippage_perc(costs.slippage, **how)
        else:
            cerebro.broker.set_slippage_fixed(costs.slippage, **how)
    # The clock feed: one bar per week, so that next() runs every week whatever is listed.
    calendar = setup.calendar
    clock = pd.DataFrame(1.0, index=calendar, columns=["open", "high", "low", "close", "volume"])
    cerebro.adddata(_feed(clock, "_calendar"))
    for ticker, window in feeds.items():
        cerebro.adddata(_feed(window, ticker))
    cerebro.addstrategy(TargetWeightStrategy, ends=setup.ends, **setup.arguments(decide, hooks))
    strat = cerebro.run(runonce=True, preload=True)[0]
    return _Run(strat.values, order_frame(strat.order_rows), strat.cost_rows)


def _run_fast(
    feeds: Mapping[str, pd.DataFrame],
    setup: _Setup,
    decide: Decide,
    cash: float,
    hooks: _Hooks,
) -> _Run:
    names = list(feeds)
    calendar = setup.calendar

    def carried(column: str) -> np.ndarray:
        # A feed without a bar in a week keeps its last one, as backtrader's feeds do.
        if not names:
            return np.empty((len(calendar), 0))
        frame = pd.concat({t: w[column] for t, w in feeds.items()}, axis=1)
        return frame.reindex(calendar).ffill().to_numpy(dtype=float)

    ending = [(j, setup.ends[t]) for j, t in enumerate(names) if t in setup.ends]
    run = run_ledger(
        names=names,
        opens=carried("open") if setup.fill == "next_open" else np.empty((0, 0)),
        closes=carried("close"),
        cash=cash,
        ending=ending,
        **setup.arguments(decide, hooks),
    )
    return _Run(run.values, order_frame(run.orders), run.cost_rows)


def _run_both(
    feeds: Mapping[str, pd.DataFrame],
    setup: _Setup,
    decide: Decide,
    cash: float,
    hooks: _Hooks,
) -> _Run:
    """backtrader's run, and the fast engine's replay of its decisions, compared."""
    said: dict[pd.Timestamp, Decision] = {}

    def recorded(week: pd.Timestamp, present: list[str], state: State) -> Decision:
        said[week] = decision = decide(week, present, state)
        return decision

    def replayed(week: pd.Timestamp, present: list[str], state: State) -> Decision:
        if week not in said:
            raise _Differ(f"the fast engine asked for a decision in the week of {week.date()}")
        return said[week]

    record = _run_backtrader(feeds, setup, recorded, cash, hooks)
    try:
        fast = _run_fast(feeds, setup, replayed, cash, _Hooks())
        _compare(record, fast)
    except _Differ as why:
        warnings.warn(
            f"the fast engine differs from backtrader: {why}; backtrader's result is kept "
            f"(please report it; {ENGINE_VARIABLE}=backtrader runs backtrader alone)",
            EngineMismatch,
            stacklevel=3,
        )
    return record


class _Differ(Exception):
    pass


def _same(a: object, b: object) -> bool:
    """Equal, NaN equal to NaN (an order that did not fill has no price)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def _compare(record: _Run, fast: _Run) -> None:
    """Raise :class:`_Differ` at the first week whose value, charges or orders differ."""
    if len(record.values) != len(fast.values):
        raise _Differ(f"{len(fast.values)} weeks against backtrader's {len(record.values)}")
    for ours, theirs in zip(record.cost_rows, fast.cost_rows, strict=True):
        if not all(_same(x, y) for x, y in zip(ours, theirs, strict=True)):
            raise _Differ(f"week of {ours[0].date()}: charges {theirs[1:]} against {ours[1:]}")
    for week, ours_v, theirs_v in zip(
        (row[0] for row in record.cost_rows), record.values, fast.values, strict=True
    ):
        if not _same(ours_v, theirs_v):
            raise _Differ(f"week of {week.date()}: value {theirs_v!r} against {ours_v!r}")
    ours_f, theirs_f = record.orders, fast.orders
    if len(ours_f) != len(theirs_f):
        raise _Differ(f"{len(theirs_f)} orders against backtrader's {len(ours_f)}")
    if ours_f.dtypes.tolist() != theirs_f.dtypes.tolist():
        raise _Differ(f"order columns {theirs_f.dtypes.tolist()} against {ours_f.dtypes.tolist()}")
    for column in ORDER_COLUMNS:
        a, b = ours_f[column].tolist(), theirs_f[column].tolist()
        for row, (x, y) in enumerate(zip(a, b, strict=True)):
            if not (_same(x, y) or (pd.isna(x) and pd.isna(y))):
                raise _Differ(
                    f"order {row} ({ours_f['ticker'].iloc[row]}, decided "
                    f"{ours_f['date_submitted'].iloc[row]}): {column} {y!r} against {x!r}"
                )


def _check_fixed_slippage(weekly: WeeklyData, calendar: pd.DatetimeIndex, slippage: float) -> None:
    """Refuse a fixed slippage a price of the window does not exceed (a sale would fill at a
    price <= 0)."""
    for ticker, bars in weekly.bars.items():
        window = bars.loc[calendar[0] : calendar[-1], ["open", "close"]]
        low = window.min(axis=1)
        if len(low) and low.min() <= slippage:
            at = int(np.argmin(low.to_numpy()))
            raise ConfigError(
                f"backtest.slippage of {slippage:g} per share is not below {ticker}'s price "
                f"{low.iloc[at]:g} in the week of {low.index[at].date()}: a sale would fill "
                'at a price <= 0; use slippage_kind = "perc" or a smaller amount'
            )


def _warm_up(weekly: WeeklyData, resume: Resume) -> pd.DatetimeIndex:
    """Calendar weeks from the oldest last bar of a held ticker up to the resume week.

    Normally just the resume week; a held ticker without a bar that week (a halt) needs its
    last bar before it, as an unbroken run would have it, to be valued and traded.
    """
    cal = weekly.calendar
    first = resume.week
    for ticker in resume.holdings:
        bars = weekly.bars[ticker].index
        seen = bars[bars <= resume.week]
        if len(seen):
            first = min(first, seen[-1])
    return cal[(cal >= first) & (cal <= resume.week)]


def _ledger_weights(
    weekly: WeeklyData,
    weeks: pd.DatetimeIndex,
    orders: pd.DataFrame,
    start: Resume,
    charges: pd.DataFrame,
) -> pd.DataFrame:
    """Weights after each week's fills, from the fills, the weekly charges and the closes.

    Positions are the start holdings plus the filled sizes up to and including week t; cash is
    the start cash less the fills' cost and commission and the charges (borrow fees, interest)
    up to week t; both are valued at the close of week t
    (the last close for a ticker without a bar that week). A fill dated before the window
    (a resumed decision filled at the close before it) counts in its first week.
    """
    tickers = list(weekly.bars)
    fills = orders[orders["status"].isin(FILLED)]
    signed = np.where(fills["side"] == "buy", 1.0, -1.0) * fills["size"].to_numpy(float)
    cost = signed * fills["price"].to_numpy(float) + fills["commission"].to_numpy(float)
    filled = pd.DatetimeIndex(fills["date_filled"])
    flows = pd.DataFrame(
        {
            "week": filled.where(filled >= weeks[0], weeks[0]),
            "ticker": fills["ticker"].to_numpy(),
            "shares": signed,
            "cash": -cost,
        }
    )
    start_shares = pd.Series({t: s for t, (s, _price) in start.holdings.items()}, dtype=float)
    shares = (
        flows.pivot_table(index="week", columns="ticker", values="shares", aggfunc="sum")
        .reindex(index=weeks, columns=tickers)
        .fillna(0.0)
    )
    shares.iloc[0] += start_shares.reindex(tickers).fillna(0.0)
    shares = shares.cumsum()
    cash_path = start.cash + flows.groupby("week")["cash"].sum().reindex(weeks).fillna(0.0).cumsum()
    net = charges["cash_interest"] - charges["margin_interest"] - charges["borrow_fee"]
    cash_path = cash_path + net.reindex(weeks).fillna(0.0).cumsum()
    closes = weekly.closes().ffill().reindex(weeks)[tickers]
    held = (shares * closes).fillna(0.0)
    value = cash_path + held.sum(axis=1)
    return held.div(value, axis=0)
