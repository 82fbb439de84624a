"""What a week may see: the one place where a run's inputs are cut at a decision week.

A :class:`Sight` holds a run's weekly inputs once: the closes and, for the rules that read
them, the feature panels of :mod:`simulator.features` (volume, high-low range, the index's
return, the yield's change). At decision week t, :meth:`Sight.at` hands a rule its
:class:`~strategies.rule.History`: the rows up to t of the closes and of each input the rule
names in its ``inputs`` attribute, copied into memory the rule owns (no view reaches past t,
see :func:`strategies.rule.owned_frame`). The engine asks for it every decision week
(:class:`simulator.engine.RuleRun`); the LSTM rule's models read their feature inputs from
the same history, so a model and a user's rule see the same thing at t.

An engine run asks for the weeks in order, so it reads through a :class:`Tape` instead: the
run's own copy of the tables, written one week at a time as the run reaches it, so a week's
history costs its new rows, not every row so far. At week t the tape holds the rows up to t
and nothing after (the later rows are not yet written), its memory cannot be made writable
(it is read through a read-only buffer), and each run has its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
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

    def tape(self, reads: Sequence[str] = ()) -> Tape:
        """A tape of this sight's closes and the inputs ``reads`` (for one engine run)."""
        return Tape(self, reads)


class _Table:
    """One table of a tape: rows written up to :attr:`filled`, read-only to readers."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.source = frame.to_numpy(dtype=float)
        self.dates = frame.index.to_numpy(dtype="datetime64[ns]")
        rows, cols = self.source.shape
        flat = np.full(rows * cols, np.nan)
        # Column-major, as pandas holds a frame of float columns (see owned_frame).
        self.rows = flat.reshape((rows, cols), order="F")
        self.seen = np.frombuffer(flat.data.toreadonly()).reshape((rows, cols), order="F")
        stamps = np.zeros(rows, dtype="int64")
        self.stamps = stamps
        self.seen_stamps = np.frombuffer(stamps.data.toreadonly(), dtype="datetime64[ns]")
        self.columns = pd.Index(
            np.array(frame.columns.to_numpy(), copy=True), name=frame.columns.name
        )
        self.name = frame.index.name
        self.filled = 0

    def upto(self, end: int) -> pd.DataFrame:
        """The first ``end`` rows (written now if not yet)."""
        if end > self.filled:
            self.rows[self.filled : end] = self.source[self.filled : end]
            self.stamps[self.filled : end] = self.dates[self.filled : end].view("int64")
            self.filled = end
        index = pd.DatetimeIndex(self.seen_stamps[:end], name=self.name, copy=False)
        return pd.DataFrame(self.seen[:end], index=index, columns=self.columns, copy=False)


class Tape:
    """What one engine run's rule sees, written week by week (see the module docstring)."""

    def __init__(self, sight: Sight, reads: Sequence[str] = ()) -> None:
        self.sight = sight
        self.reads = tuple(reads)
        panels = sight.panels() if self.reads else {}
        self._closes = _Table(sight.closes)
        self._inputs = {name: _Table(panels[name]) for name in self.reads}
        self._last: pd.Timestamp | None = None

    def at(self, week: pd.Timestamp, tradable: Sequence[str]) -> History:
        """The history of ``week``: as :meth:`Sight.at`, from the tape. A week before one
        already read is cut by :meth:`Sight.at` (the tape holds later rows by then)."""
        if self._last is not None and week < self._last:
            return self.sight.at(week, tradable, self.reads)
        self._last = pd.Timestamp(week)
        closes = self._end(self._closes, week)
        inputs = {name: self._end(table, week) for name, table in self._inputs.items()}
        return History(pd.Timestamp(week), closes, tuple(tradable), inputs)

    @staticmethod
    def _end(table: _Table, week: pd.Timestamp) -> pd.DataFrame:
        end = int(np.searchsorted(table.dates, np.datetime64(week, "ns"), side="right"))
        return table.upto(end)
