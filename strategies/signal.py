"""The LSTM-signal decision: predictions from a signal provider, sized by :mod:`sizing`.

The strategy knows nothing of torch or of the registry. It sees a *signal provider*: an object
that, asked at the close of week t, answers predicted next-week returns per ticker from data up
to t, and names the model version that made them (DESIGN.md, "Dependency direction").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import pandas as pd

from strategies.sizing import Limits, signal_weights


class SignalProvider(Protocol):
    """Predicted next-week returns, from data up to the as-of week only."""

    def predict(self, as_of: pd.Timestamp) -> pd.Series:
        """Predicted next-week return (fraction) per ticker; NaN where there is none."""
        ...

    def version(self, as_of: pd.Timestamp) -> str:
        """The model version whose predictions :meth:`predict` answers at ``as_of``."""
        ...


class SignalRule:
    """The weekly decision of the LSTM-signal strategy, callable as a ``Decide``.

    At decision week ``week`` the tickers that may trade (a bar that week and enough history,
    ``eligible[week]``) take the provider's predictions; :func:`~strategies.sizing.
    signal_weights` turns them into target weights. Every other ticker gets weight 0. Each
    decision is kept in :attr:`decisions` as ``(week, ticker, predicted_return, weight)`` rows.
    """

    def __init__(
        self,
        provider: SignalProvider,
        limits: Limits,
        eligible: Mapping[pd.Timestamp, frozenset[str]],
    ) -> None:
        self.provider = provider
        self.limits = limits
        self.eligible = eligible
        self.rows: list[tuple[pd.Timestamp, str, float, float]] = []

    def __call__(self, week: pd.Timestamp, tickers: list[str]) -> Mapping[str, float]:
        names = [t for t in tickers if t in self.eligible[week]]
        predicted = self.provider.predict(week).reindex(names)
        weights = signal_weights(predicted, self.limits)
        self.rows.extend((week, t, float(predicted[t]), float(weights[t])) for t in names)
        return {str(t): float(w) for t, w in weights.items()}

    def tag(self, week: pd.Timestamp) -> str:
        """The model version behind the decision of ``week`` (stamped on its orders)."""
        return self.provider.version(week)

    @property
    def decisions(self) -> pd.DataFrame:
        """One row per decision week and eligible ticker: prediction and target weight."""
        return pd.DataFrame(self.rows, columns=["week", "ticker", "predicted_return", "target"])
