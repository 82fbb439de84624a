"""The LSTM-signal decision: predictions from a signal provider, sized by :mod:`sizing`.

The strategy knows nothing of torch or of the registry. It sees a *signal provider*: an object
that, asked at the close of week t with the history up to t, answers predicted next-week
returns per ticker, and names the model version that made them
(../shared/docs/DESIGN.md, "Dependency direction").
"""

from __future__ import annotations

from typing import Protocol

import pandas as pd

from strategies.rule import Decision, History, State, rule_inputs
from strategies.sizing import Limits, signal_weights


class SignalProvider(Protocol):
    """Predicted next-week returns, from the history it is given (cut at the as-of week).

    A provider whose models read more than closes names those inputs in an ``inputs``
    attribute (as a rule does, see :func:`strategies.rule.rule_inputs`); the engine then
    cuts them into ``history.inputs``.
    """

    def predict(self, as_of: pd.Timestamp, history: History) -> pd.Series:
        """Predicted next-week return (fraction) per ticker from ``history`` (its closes and
        inputs, rows up to ``as_of``); NaN where there is none."""
        ...

    def version(self, as_of: pd.Timestamp) -> str:
        """The model version whose predictions :meth:`predict` answers at ``as_of``."""
        ...

    @property
    def train_ends(self) -> list[pd.Timestamp]:
        """The last training week of each of its models, oldest first (a model decides from
        the first week after its train_end)."""
        ...


class SignalRule:
    """The weekly decision of the LSTM-signal strategy (a ``DecisionRule``).

    At decision week ``week`` the tradable tickers take the provider's predictions (from the
    history the engine cut at ``week``); :func:`~strategies.sizing.signal_weights` turns them
    into target weights, every other ticker gets none. The predictions are the decision's
    scores, and the model version its tag.
    """

    name = "lstm_signal"

    def __init__(self, provider: SignalProvider, limits: Limits) -> None:
        self.provider = provider
        self.limits = limits

    @property
    def train_ends(self) -> list[pd.Timestamp]:
        """The train_end of each model the provider chooses from (a profile's drawdown stop
        ends when a new one starts deciding)."""
        return self.provider.train_ends

    @property
    def inputs(self) -> tuple[str, ...]:
        """The inputs besides the closes its provider's models read."""
        return rule_inputs(self.provider)

    def decide(self, week: pd.Timestamp, history: History, state: State) -> Decision:
        names = list(history.tradable)
        predicted = self.provider.predict(week, history).reindex(names)
        weights = signal_weights(predicted, self.limits)
        return Decision(
            weights={str(t): float(w) for t, w in weights.items()},
            scores={str(t): float(r) for t, r in predicted.items()},
            tag=self.provider.version(week),
        )
