"""``foliosim backtest``: a config's backtest, as one short function over a session.

Returns are dated on the week they were earned: the row of week t is the value at the close
of t over the value at the close of t-1, less one. The first decision is made at the close of
the first week on or after ``backtest.start``, so the first return row is the week after it
(see :mod:`simulator.results`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from simulator.config import Config
from simulator.model_sources import WalkForward
from simulator.plan import RunPlan
from simulator.results import BacktestResult, Phases, backtest
from simulator.session import Note, Session, Window
from strategies.rule import DecisionRule

if TYPE_CHECKING:
    from models.forecaster import TrainProgress


def run_backtest(
    cfg: Config | RunPlan | Session,
    workspace: Path,
    progress: Phases | None = None,
    train_progress: TrainProgress | None = None,
    note: Note | None = None,
    *,
    rule: DecisionRule | type | None = None,
) -> BacktestResult:
    """Run the backtest of a config, plan or session (see the module docstring for the
    dating of returns).

    ``rule`` runs a user's decision rule (a class or an object, see :mod:`strategies.rule`)
    instead of the config's strategy. ``train_progress`` and ``note`` report on the models an
    ``lstm_signal`` run trains or reuses (see :class:`simulator.walkforward.WalkForward`).
    """
    clock = time.perf_counter()
    if isinstance(cfg, Session):
        if rule is not None:
            raise ValueError("pass a rule to Session.open(), not beside a session")
        session = cfg
    else:
        session = Session.open(cfg, workspace, rule=rule, note=note)
    window = Window.backtest(session.weekly, session.config)
    opened = time.perf_counter() - clock
    result = backtest(session, window, progress, WalkForward(train_progress, note))
    result.timings["data"] += opened
    return result
