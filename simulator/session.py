"""One run, assembled once: the config, its plan, its weekly data and what each week sees.

Every entry point (a backtest, a paper account's step and report, ``recommend``, the audit,
a sweep trial, ``explain`` and ``stress``) opens one :class:`Session` per run and asks it for
what it needs; none of them resolves a config or loads data on its own:

- :meth:`Session.open` resolves the config into its plan (:func:`simulator.plan.resolve`)
  and loads the weekly data through the one loader (:func:`load_weekly`), once;
- a :class:`Window` says which weeks a run covers: the run's weeks, the weeks it decides at
  and, for a paper account, the close it resumes from; its constructors are the four kinds of
  run (:meth:`Window.period` for a backtest or a sweep trial's period, :meth:`Window.pending`
  for a paper step, :meth:`Window.replayed` for an account's recorded weeks,
  :meth:`Window.as_of` for a decision at a date);
- :attr:`Session.sight` cuts what a rule or a model may see at each decision week
  (:mod:`simulator.sight`), made once per run;
- :meth:`Session.run` runs a rule of the plan through the engine over a window; the 1/N
  column of a window is run once per session (:meth:`Session.one_over_n`);
- :meth:`Session.history` is the longer history a stress test reads (the source's rows
  before ``data.start`` too), loaded through the same loader, once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pandas as pd

from simulator.config import Config
from simulator.data import WeeklyData, load_daily, make_weekly
from simulator.data.weekly import last_complete_week
from simulator.engine import EngineResult
from simulator.errors import DataError
from simulator.plan import Built, Resources, RunPlan, resolve
from simulator.sight import Sight
from strategies.profile import Profile
from strategies.rebalance import Progress, Resume, WeekRecord
from strategies.rule import Decision, DecisionRule
from strategies.signal import SignalProvider

#: Where the history of a bundled or CSV source starts: before any row it can hold.
HISTORY_START = dt.date(1900, 1, 1)


def load_weekly(
    cfg: Config,
    workspace: Path,
    *,
    through: dt.date | None = None,
    tickers: Sequence[str] | None = None,
    whole: bool = False,
) -> WeeklyData:
    """The weekly bars of ``cfg``'s data: the one loader of every run.

    Parameters
    ----------
    through
        Reach at least this day (a live account records weeks after its config's
        ``data.end``; its Yahoo cache holds them).
    tickers
        Load these tickers instead of ``data.tickers`` (a stress test's held ones).
    whole
        Reach back past ``data.start`` to the first row the source has (the bundled set and
        a CSV folder; the Yahoo source keeps to its cached ``data.start..data.end``).
    """
    update: dict[str, object] = {}
    if through is not None and through > cfg.data.end:
        update["end"] = through
    if tickers is not None:
        update["tickers"] = tuple(tickers)
    if whole and cfg.data.source != "yahoo":
        update["start"] = HISTORY_START
    data = cfg.data.model_copy(update=update) if update else cfg.data
    return make_weekly(load_daily(data, cfg.report.risk_free, workspace))


@dataclass(frozen=True)
class Window:
    """The weeks of a run (see the module docstring).

    Attributes
    ----------
    weeks
        The weeks the engine runs over, consecutive weeks of the data's calendar.
    decisions
        The weeks at whose close the rule decides (a subset of ``weeks``).
    resume
        A paper account's close to continue from (None: start from cash at ``weeks[0]``).
    """

    weeks: pd.DatetimeIndex
    decisions: pd.DatetimeIndex
    resume: Resume | None = None

    @property
    def first(self) -> pd.Timestamp:
        """The first week: a backtest's first decision, a step's first week to record."""
        return pd.Timestamp(self.weeks[0])

    @property
    def last(self) -> pd.Timestamp:
        return pd.Timestamp(self.weeks[-1])

    @classmethod
    def period(cls, weekly: WeeklyData, start: dt.date, end: dt.date) -> Window:
        """A backtest (or a sweep trial's period): the first week ending on or after
        ``start`` up to ``end``, deciding at every week but the last."""
        cal = weekly.calendar
        weeks = cal[(cal >= pd.Timestamp(start)) & (cal <= pd.Timestamp(end))]
        if len(weeks) < 3:
            raise DataError(
                f"backtest {start}..{end} holds {len(weeks)} week(s) of data (data covers "
                f"{cal[0].date()}..{cal[-1].date()}); at least 3 are needed"
            )
        return cls(pd.DatetimeIndex(weeks), pd.DatetimeIndex(weeks[:-1]))

    @classmethod
    def backtest(cls, weekly: WeeklyData, cfg: Config) -> Window:
        """The backtest of ``cfg``: ``backtest.start`` to ``backtest.end``."""
        return cls.period(weekly, cfg.backtest.start, cfg.backtest.end)

    @classmethod
    def pending(cls, todo: pd.DatetimeIndex, resume: Resume | None) -> Window:
        """A paper account's step: it decides at every week it records, from ``resume``."""
        return cls(pd.DatetimeIndex(todo), pd.DatetimeIndex(todo), resume)

    @classmethod
    def replayed(cls, weeks: pd.DatetimeIndex) -> Window:
        """A paper account's recorded weeks, as a backtest over them (its report's 1/N)."""
        return cls(pd.DatetimeIndex(weeks), pd.DatetimeIndex(weeks[:-1]))

    @classmethod
    def as_of(cls, weekly: WeeklyData, day: dt.date) -> Window:
        """One decision at the close of the newest complete week on or before ``day``."""
        week = last_complete_week(weekly.calendar, pd.Timestamp(day))
        if week is None:
            raise DataError(f"no complete week on or before {day} in the data")
        weeks = pd.DatetimeIndex([week])
        return cls(weeks, weeks)


#: Called with each line the data check warns about.
Note = Callable[[str], None]


class ModelSource(Protocol):
    """Where a run's forecasts come from: walk-forward training
    (:class:`simulator.walkforward.WalkForward`), the versions a paper account pinned, the
    newest version before an as-of date (:class:`simulator.walkforward.AsOf`), or one of the
    audit's deliberately leaky variants. Each picks, at week t, a model trained on data that
    ended before t (:func:`simulator.walkforward.trained_before`), the audit's excepted."""

    def signal(self, session: Session, window: Window) -> SignalProvider:
        """The signal provider of ``session``'s strategy over ``window``."""
        ...


class Session:
    """One run's config, plan, weekly data and sight (see the module docstring).

    The weekly data is loaded when first asked for (a stress test of a run directory needs
    only the longer :meth:`history`), and then kept; :meth:`with_plan` shares it.
    """

    def __init__(
        self,
        plan: RunPlan,
        workspace: Path,
        *,
        through: dt.date | None = None,
        note: Note | None = None,
    ) -> None:
        self.plan = plan
        self.config = plan.config
        self.workspace = workspace
        self._through = through
        self._note = note
        self._weekly: WeeklyData | None = None
        self._sight: Sight | None = None
        self._one_over_n: dict[tuple[pd.Timestamp, ...], EngineResult] = {}
        self._baselines: dict[tuple[pd.Timestamp, ...], dict[str, EngineResult]] = {}
        self._history: dict[tuple[tuple[str, ...], dt.date], WeeklyData] = {}

    @classmethod
    def open(
        cls,
        cfg: Config | RunPlan,
        workspace: Path,
        *,
        rule: DecisionRule | type | None = None,
        profile: Profile | None = None,
        through: dt.date | None = None,
        note: Note | None = None,
    ) -> Session:
        """The session of ``cfg`` (or of a plan resolved already).

        ``rule`` and ``profile`` go to :func:`simulator.plan.resolve` (a user rule that
        cannot be imported fails here); ``through`` to :func:`load_weekly`; the data
        check's warnings go to ``note`` when the data is loaded.
        """
        if isinstance(cfg, RunPlan):
            if rule is not None or profile is not None:
                raise ValueError("pass a rule or a profile to resolve(), not beside a plan")
            plan = cfg
        else:
            plan = resolve(cfg, rule=rule, profile=profile)
        return cls(plan, workspace, through=through, note=note)

    @property
    def weekly(self) -> WeeklyData:
        """The run's weekly bars, loaded once (:func:`load_weekly`)."""
        if self._weekly is None:
            self._weekly = load_weekly(self.config, self.workspace, through=self._through)
            if self._note is not None:
                for line in self._weekly.warnings:
                    self._note(line)
        return self._weekly

    @property
    def sight(self) -> Sight:
        """What a week may see (:class:`simulator.sight.Sight`), made once."""
        if self._sight is None:
            self._sight = Sight.of(self.weekly)
        return self._sight

    def with_plan(self, plan: RunPlan) -> Session:
        """The same data, 1/N and baseline runs under another plan of the same config (the
        audit's leaky variants: only the strategy differs)."""
        other = Session(plan, self.workspace, through=self._through)
        other._weekly, other._sight = self.weekly, self.sight
        other._one_over_n, other._history = self._one_over_n, self._history
        other._baselines = self._baselines
        return other

    def run(
        self,
        built: Built,
        window: Window,
        *,
        progress: Progress | None = None,
        on_week: Callable[[WeekRecord], None] | None = None,
    ) -> EngineResult:
        """One engine run of ``built`` over ``window`` with the plan's broker settings."""
        return self.plan.run(
            built,
            self.weekly,
            window.weeks,
            window.decisions,
            progress=progress,
            resume=window.resume,
            on_week=on_week,
            sight=self.sight,
        )

    def strategy_rule(self, window: Window, models: ModelSource | None = None) -> Built:
        """The plan's strategy rule over ``window``, its forecasts (if it reads any) from
        ``models``, asked once, when the rule is built."""
        signal = None
        if models is not None:
            source = models

            def signal() -> SignalProvider:
                return source.signal(self, window)

        return self.plan.strategy_rule(Resources(signal=signal, decisions=window.decisions))

    def decide_once(self, built: Built, window: Window) -> tuple[Decision, pd.DataFrame]:
        """The decision of ``built`` at the close of ``window``'s week, outside an engine run
        (``recommend``), for an account in cash; and its decision log."""
        return self.plan.decide_once(built, self.weekly, window.last, sight=self.sight)

    def one_over_n(self, window: Window, progress: Progress | None = None) -> EngineResult:
        """The 1/N column over ``window`` (run once per session and window; a window that
        resumes an account's state is run every time, its state being no part of the key)."""
        if window.resume is not None:
            return self.run(self.plan.one_over_n_rule(), window, progress=progress)
        key = (*window.weeks, pd.NaT, *window.decisions)
        if key not in self._one_over_n:
            self._one_over_n[key] = self.run(self.plan.one_over_n_rule(), window, progress=progress)
        return self._one_over_n[key]

    def baselines(
        self, window: Window, phases: Callable[[str], Progress | None] | None = None
    ) -> dict[str, EngineResult]:
        """Each ``[report] baselines`` optimiser's engine run over ``window`` (``phases``
        gives the progress callback of each, by its phase name); run once per session and
        window, as :meth:`one_over_n`."""
        key = (*window.weeks, pd.NaT, *window.decisions)
        if window.resume is not None or key not in self._baselines:
            runs = {
                name: self.run(b, window, progress=phases(f"baseline {name}") if phases else None)
                for name, b in self.plan.baseline_rules().items()
            }
            if window.resume is not None:
                return runs
            self._baselines[key] = runs
        return self._baselines[key]

    def history(self, tickers: Sequence[str], through: dt.date) -> WeeklyData:
        """The whole history of ``tickers`` and the benchmark up to ``through`` at least
        (``whole`` in :func:`load_weekly`): a stress test's data, loaded once."""
        key = (tuple(tickers), through)
        if key not in self._history:
            data = self.config.data
            ends = max(data.end, through) == max(data.end, self._through or data.end)
            if ends and key[0] == tuple(self.weekly.bars) and self.weekly.whole:
                # The run's own data already is that history (same files, rows and tickers):
                # not read and aggregated again (a tenth of a 500-ticker run).
                self._history[key] = self.weekly
            else:
                self._history[key] = load_weekly(
                    self.config, self.workspace, through=through, tickers=tickers, whole=True
                )
        return self._history[key]
