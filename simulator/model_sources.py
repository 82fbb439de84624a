"""Where a run's forecasts come from (:class:`simulator.session.ModelSource`): walk-forward
training for a backtest (:class:`WalkForward`) and the newest version before a week for a
one-off decision (:class:`AsOf`). A paper account's pinned versions are
:class:`simulator.accounts.Pinned`, the audit's leaky ones :class:`simulator.audit.LeakyModels`.
Each picks a model trained on data that ended before the week it decides
(:func:`models.spec.trained_before`).

This module imports no torch: the models are loaded when a strategy that reads them is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from models.spec import trained_before
from simulator.errors import ConfigError
from simulator.session import Note, Session, Window

if TYPE_CHECKING:
    from models.forecaster import TrainProgress
    from models.registry import VersionInfo
    from simulator.walkforward import LstmRun, RegistrySignal


@dataclass
class WalkForward:
    """A backtest's models (a :class:`simulator.session.ModelSource`): trained walk-forward
    from ``model.train_end`` (retrained every ``model.retrain_every`` decision weeks) or the
    pinned ``model.version``, each reused from the registry when one with the same spec and
    data exists. After :meth:`signal`, :attr:`lstm` holds the run's models and provider."""

    progress: TrainProgress | None = None
    note: Note | None = None
    lstm: LstmRun | None = None

    def signal(self, session: Session, window: Window) -> RegistrySignal:
        from simulator.walkforward import run_lstm  # imports torch: only a run on models

        self.lstm = run_lstm(
            session.config,
            session.weekly,
            window.decisions,
            session.workspace,
            self.progress,
            self.note,
        )
        return self.lstm.provider


@dataclass
class AsOf:
    """The model of a decision at one week (a :class:`simulator.session.ModelSource`):
    version ``ref`` (``NAME/N`` or ``NAME@ALIAS``), else the newest version of
    ``model.name`` trained before the week (``foliosim recommend``). After :meth:`signal`,
    :attr:`info` is the version used."""

    ref: str | None = None
    info: VersionInfo | None = None

    def signal(self, session: Session, window: Window) -> RegistrySignal:
        # Imported here: the registry and the provider import torch, which a decision of a
        # strategy without models never needs.
        from simulator.training import open_registry
        from simulator.walkforward import RegistrySignal, UsedModel

        cfg, week = session.config, window.last
        registry = open_registry(session.workspace, cfg.model.registry_uri)
        ref = self.ref or cfg.model.version
        info = registry.resolve(ref) if ref else registry.as_of(cfg.model.name, week)
        if not trained_before(info.train_end, week):
            raise ConfigError(
                f"{info.ref} was trained on data up to {info.train_end.date()}, not before "
                f"{week.date()}: a decision as of that week cannot use it"
            )
        has_bar = session.sight.closes.loc[week].notna()
        present = [t for t in session.weekly.tickers if bool(has_bar[t])]
        self.info = info
        used = UsedModel(registry.load(info, present), info, False)
        return RegistrySignal([used], weekly=session.weekly)
