"""What a week may see: the one place where a run's inputs are cut at a decision week.

A :class:`Sight` holds a run's weekly inputs once: the closes and, for the rules that read
them, the feature panels of :mod:`simulator.features` (volume, high-low range, the index's
return, the yield's change). At decision week t, :meth:`Sight.at` hands a rule its
:class:`~strategies.rule.History`: the rows up to t of the closes and of each input the rule
names in its ``inputs`` attribute, copied into memory the rule owns (no view reaches past t,
see :func:`strategies.rule.owned_frame`). The engine asks for it every decision week
(:class:`simulator.engine.RuleRun`); the LSTM rule's models read their feature inputs from
the same history, so a model and a user's rule see the same thing at t.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd

from models.features import FEATURES
from simulator.data.weekly import WeeklyData
from simulator.features import check_available, feature_panels
from strategies.rule import History, RuleError

#: The inputs a rule may read besides the closes.
INPUTS = tuple(f for f in FEATURES if f != "close")


class Sight:
    """A run's weekly inputs, cut at a week on request (see the module docstring)."""

    def __init__(self, closes: pd.DataFrame, weekly: WeeklyData | None = None) -> None:
        self.closes = closes
        self.weekly = weekly
        self._panels: dict[str, pd.DataFrame] | None = None

    @classmethod
    def of(cls, weekly: WeeklyData) -> Sight:
        """The sight of a run's weekly bars: their closes, and their panels on request."""
        return cls(weekly.closes(), weekly)

    def check(self, reads: Iterable[str], who: str) -> tuple[str, ...]:
        """``reads`` after checking that each is an input the data can give.

        Raises :class:`~strategies.rule.RuleError` for an unknown name and
        :class:`~simulator.errors.DataError` for one the data lacks (e.g. volume in the
        bundled closes-only set), each in one line naming ``who``.
        """
        names = tuple(reads)
        if names and self.weekly is None:
            raise RuleError(f"reads {', '.join(names)}, but this run has weekly closes only")
        for name in names:
            if name not in INPUTS:
                raise RuleError(
                    f"reads an unknown input {name!r}; the inputs are {', '.join(INPUTS)}"
                )
        if self.weekly is not None:
            check_available(self.weekly, names, who)
        return names

    def panels(self) -> dict[str, pd.DataFrame]:
        """Every input panel of the data, on its calendar (computed once)."""
        if self._panels is None:
            self._panels = feature_panels(self.weekly) if self.weekly is not None else {}
        return self._panels

    def at(self, week: pd.Timestamp, tradable: Sequence[str], reads: Sequence[str] = ()) -> History:
        """The history of ``week``: the closes and the inputs ``reads``, rows up to ``week``."""
        panels = self.panels() if reads else {}
        return History.cut(self.closes, week, tradable, {name: panels[name] for name in reads})
