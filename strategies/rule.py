"""The one shape of a decision rule: 1/N, the LSTM signal, the optimisers and user rules.

A decision rule answers, at the close of decision week t, the target weights of the portfolio
(fractions of its value; positive long, negative short; what is left stays in cash)::

    class MyRule:
        name = "my-rule"

        def decide(self, week, history, state):
            ...
            return Decision(weights={"AAPL": 0.5}, scores={"AAPL": 0.03})

- ``history`` (:class:`History`) is cut at week t **by the engine**: its weekly closes end
  with the row of t, and they are the rule's own copy (read-only, no ``.base`` that reaches
  the engine's table), so nothing reached through them lies past t. A rule runs in foliosim's
  process with full trust, so a deliberate one could still reach the engine (its callers'
  frames, the garbage collector, the files on disk): ``foliosim check-rule`` re-runs a rule on
  data cut after sampled weeks and names any decision that changes (see docs/strategies.md).
  ``history.tradable`` lists the tickers the rule may hold this week: a bar at t and
  ``backtest.min_history`` weekly bars up to it. Any other ticker must get no weight.
  ``history.inputs`` holds the other weekly inputs the rule reads, cut the same way: a rule
  names them in its ``inputs`` attribute (e.g. ``inputs = ("volume", "index")``), from the
  feature inputs the models read (:data:`models.features.FEATURES` besides ``close``).
- ``state`` (:class:`State`) is the account at the close of t, before the decision: cash,
  portfolio value and shares held.
- The answer is a :class:`Decision` (or a plain ``{ticker: weight}`` mapping): the weights,
  optionally the score each ticker was ranked or sized by, a note on the week (why it went to
  cash, say) and a tag stamped on its orders (the LSTM rule's model version).

The engine checks every answer before it trades (:func:`check_decision`): finite weights,
tradable tickers only, ``|w| <= max_weight``, no shorts when they are off, and a bounded gross
exposure; a rule that breaks one stops the run with one line naming the rule and the week.
Every decision is logged in one schema, :data:`DECISION_COLUMNS` (the engine's
``simulator.engine.RuleRun.log``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd

#: The decision log of every rule: one row per tradable ticker and decision week (``score``
#: NaN when the rule gives none), plus a row with an empty ticker for each note of a week.
DECISION_COLUMNS = ["week", "ticker", "score", "target", "note"]

#: Weights may exceed a limit by this much (floating-point noise of the sizing rules).
TOLERANCE = 1e-9


@dataclass(frozen=True)
class History:
    """What a rule may know at the close of ``week``: weekly closes up to and including it.

    Attributes
    ----------
    week
        The decision week (the last row of ``closes``).
    closes
        Adjusted weekly closes, shape ``(n_weeks up to week, n_tickers)``, NaN where a ticker
        had no bar; every ticker of the data is a column, tradable or not. Read-only, and
        owned: its memory holds these rows only (see :func:`owned_frame`).
    tradable
        The tickers the rule may hold this week, in the data's order.
    inputs
        The other weekly inputs the rule reads (its ``inputs`` attribute), each shaped like
        ``closes`` and cut and owned the same way: ``volume``, ``range`` (high - low over
        close), ``index`` (the benchmark's weekly return), ``rate`` (the yield's weekly
        change); see :mod:`models.features`.
    """

    week: pd.Timestamp
    closes: pd.DataFrame
    tradable: tuple[str, ...]
    inputs: Mapping[str, pd.DataFrame] = field(default_factory=dict)

    @classmethod
    def cut(
        cls,
        closes: pd.DataFrame,
        week: pd.Timestamp,
        tradable: Sequence[str],
        inputs: Mapping[str, pd.DataFrame] | None = None,
    ) -> History:
        """The history of ``week``: the rows of ``closes`` (and of each of ``inputs``, on
        the same weeks) up to ``week`` only.

        >>> closes = pd.DataFrame({"A": [1.0, 2.0, 3.0]},
        ...                       index=pd.date_range("2024-01-05", periods=3, freq="W-FRI"))
        >>> History.cut(closes, closes.index[1], ["A"]).closes["A"].tolist()
        [1.0, 2.0]
        """
        end = int(closes.index.searchsorted(week, side="right"))
        cut = {
            name: owned_frame(frame.iloc[: int(frame.index.searchsorted(week, side="right"))])
            for name, frame in (inputs or {}).items()
        }
        return cls(pd.Timestamp(week), owned_frame(closes.iloc[:end]), tuple(tradable), cut)

    def restrict(self, tickers: Sequence[str]) -> History:
        """The same history with fewer tradable tickers (a profile's exclusions), on a copy of
        its own: what the inner rule does to its copy never reaches the caller's (a profile's
        volatility target reads the caller's after the rule has answered)."""
        keep = set(tickers)
        closes = owned_frame(self.closes)
        inputs = {name: owned_frame(frame) for name, frame in self.inputs.items()}
        return History(self.week, closes, tuple(t for t in self.tradable if t in keep), inputs)


def owned_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A read-only float copy of ``frame`` that owns its memory.

    A slice of a frame is a view: its numpy ``.base`` is the whole table, later rows included,
    and can be made writable. The copy's values and index hold the rows of ``frame`` only.

    >>> big = pd.DataFrame({"A": [1.0, 2.0, 3.0]},
    ...                    index=pd.date_range("2024-01-05", periods=3, freq="W-FRI"))
    >>> small = owned_frame(big.iloc[:2])
    >>> values = small.to_numpy()
    >>> (values.base if values.base is not None else values).size, values.flags.writeable
    (2, False)
    """
    # Column-major, as pandas holds a frame of float columns: reductions then add in the same
    # order as on the engine's table, so figures stay the same to the last bit.
    values = np.array(frame.to_numpy(dtype=float), dtype=float, order="F", copy=True)
    values.flags.writeable = False
    index = pd.Index(np.array(frame.index.to_numpy(), copy=True), name=frame.index.name)
    columns = pd.Index(np.array(frame.columns.to_numpy(), copy=True), name=frame.columns.name)
    return pd.DataFrame(values, index=index, columns=columns, copy=False)


@dataclass(frozen=True)
class State:
    """The account at the close of the decision week, before the decision fills.

    Attributes
    ----------
    cash
        Cash (negative with margin).
    value
        Portfolio value: cash plus positions at the latest close.
    shares
        Shares held per ticker (negative when short); tickers not held are absent.
    """

    cash: float
    value: float
    shares: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    """A rule's answer for one week.

    Attributes
    ----------
    weights
        Target weight per ticker (fraction of portfolio value); a tradable ticker left out
        gets 0.
    scores
        The figure each ticker was ranked or sized by (the LSTM rule: its predicted return);
        logged beside the weights.
    note
        Something to know about the week (e.g. "solver failed; all cash"); logged.
    tag
        Stamped on the week's orders (the LSTM rule: the model version behind the decision).
    """

    weights: Mapping[str, float]
    scores: Mapping[str, float] = field(default_factory=dict)
    note: str = ""
    tag: str = ""


@runtime_checkable
class DecisionRule(Protocol):
    """The decision rule interface (see the module docstring).

    A rule may also have an ``inputs`` attribute: the weekly inputs besides the closes it
    reads from ``history.inputs`` (see :func:`rule_inputs`).
    """

    name: str

    def decide(
        self, week: pd.Timestamp, history: History, state: State
    ) -> Decision | Mapping[str, float]:
        """Target weights at the close of ``week`` from ``history`` (cut at ``week``)."""
        ...


class RuleError(ValueError):
    """A rule's answer broke the rules of the engine (see :func:`check_decision`)."""


def rule_inputs(rule: object) -> tuple[str, ...]:
    """The inputs besides the closes that ``rule`` reads: its ``inputs`` attribute (a
    sequence of names), or none.

    Raises :class:`RuleError` for an ``inputs`` that is not a sequence of names.
    """
    try:
        given = getattr(rule, "inputs", ())
    except Exception as err:  # a user's property: any failure is the rule's
        raise RuleError(f"its inputs attribute raised {type(err).__name__}: {err}") from None
    if isinstance(given, str) or not isinstance(given, Sequence | frozenset | set):
        raise RuleError(
            f"its inputs are a {type(given).__name__}; give a tuple of names, e.g. "
            '("volume", "index")'
        )
    names = tuple(given)
    for name in names:
        if not isinstance(name, str):
            raise RuleError(f"its inputs hold {name!r}, not a name")
    return tuple(dict.fromkeys(names))


def as_decision(answer: object) -> Decision:
    """A rule's answer as a :class:`Decision` (a plain mapping is its weights)."""
    if isinstance(answer, Decision):
        return answer
    if isinstance(answer, Mapping):
        return Decision(weights=answer)
    raise RuleError(
        f"returned {type(answer).__name__}; return a Decision or a {{ticker: weight}} mapping"
    )


def check_decision(
    decision: Decision,
    tradable: Sequence[str],
    *,
    max_weight: float,
    max_gross: float,
    allow_short: bool,
) -> dict[str, float]:
    """The weights of ``decision`` as floats, after checking them; raises :class:`RuleError`.

    A weight must be a finite number, on a tradable ticker, with ``|w| <= max_weight``, and
    ``>= 0`` when shorts are off; ``sum(|w|) <= max_gross`` (all within :data:`TOLERANCE`).
    Weights and scores must be mappings, every score a number (NaN allowed), the note and
    the tag text.

    >>> check_decision(Decision({"A": 0.5}), ["A"], max_weight=1/3, max_gross=1.0,
    ...                allow_short=True)
    Traceback (most recent call last):
    ...
    strategies.rule.RuleError: weight 0.5 of A breaks the cap of 0.3333 per ticker
    """
    for part in ("weights", "scores"):
        given = getattr(decision, part)
        if not isinstance(given, Mapping):
            raise RuleError(
                f"its {part} are a {type(given).__name__}; give a {{ticker: number}} mapping"
            )
    for part in ("note", "tag"):
        if not isinstance(getattr(decision, part), str):
            raise RuleError(f"its {part} is a {type(getattr(decision, part)).__name__}, not text")
    for ticker, raw in decision.scores.items():
        try:
            float(raw)
        except (TypeError, ValueError):
            raise RuleError(f"score {raw!r} of {ticker} is not a number") from None
    allowed = set(tradable)
    quick = _plain_weights(decision.weights, allowed, max_weight, max_gross, allow_short)
    if quick is not None:
        return quick
    weights: dict[str, float] = {}
    for ticker, raw in decision.weights.items():
        try:
            w = float(raw)
        except (TypeError, ValueError):
            raise RuleError(f"weight {raw!r} of {ticker} is not a number") from None
        if not math.isfinite(w):
            raise RuleError(f"weight {w} of {ticker} is not a finite number")
        if ticker not in allowed:
            if w == 0.0:
                continue
            raise RuleError(
                f"weight {w:g} on {ticker!r}, which is not tradable this week (tradable: "
                f"{', '.join(tradable) or 'none'})"
            )
        if abs(w) > max_weight + TOLERANCE:
            raise RuleError(
                f"weight {w:g} of {ticker} breaks the cap of {max_weight:.4g} per ticker"
            )
        if w < 0 and not allow_short:
            raise RuleError(f"weight {w:g} of {ticker} is a short, and shorts are off")
        weights[str(ticker)] = w
    gross = sum(abs(w) for w in weights.values())
    if gross > max_gross + TOLERANCE:
        raise RuleError(f"gross exposure {gross:.6g} is above the limit {max_gross:.6g}")
    return weights


def _plain_weights(
    given: Mapping[str, object],
    allowed: set[str],
    max_weight: float,
    max_gross: float,
    allow_short: bool,
) -> dict[str, float] | None:
    """:func:`check_decision`'s weights at once, when every rule holds (a week of 500
    tickers costs a few array operations); None when one may not, for the check that names
    it."""
    try:
        values = np.array(list(given.values()), dtype=float)
    except (TypeError, ValueError):
        return None
    names = list(given)
    if not all(isinstance(t, str) for t in names) or not allowed.issuperset(names):
        return None
    if not np.isfinite(values).all() or (np.abs(values) > max_weight + TOLERANCE).any():
        return None
    if not allow_short and (values < 0).any():
        return None
    weights = dict(zip(names, values.tolist(), strict=True))
    if sum(map(abs, weights.values())) > max_gross + TOLERANCE:
        return None
    return weights
