"""Training models from a config: the glue between the config, the data and :mod:`models`."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from models.forecaster import Forecaster, TrainingReport, TrainProgress, train
from models.registry import Registry, VersionInfo
from models.spec import ModelSpec
from simulator.config import Config, DataConfig
from simulator.data.sources import load_daily
from simulator.data.weekly import WeeklyData, make_weekly
from simulator.features import check_available, feature_panels
from strategies.sizing import Limits


def run_limits(cfg: Config) -> Limits:
    """The limits a run of ``cfg`` sizes under: its ``[profile]``'s when it has one, else
    ``[strategy]``'s (the rule of :func:`simulator.plan.resolve`, which a profile given on the
    command line, ``recommend --profile``, overrides there but not here)."""
    profile = cfg.investor_profile()
    return profile.limits if profile is not None else cfg.strategy.limits()


def model_spec(cfg: Config) -> ModelSpec:
    """The :class:`~models.spec.ModelSpec` of ``cfg``'s ``[model]`` section; with the Sharpe
    loss it carries the run's limits (:func:`run_limits`), which the loss sizes under.

    An MSE spec keeps the default limits, outside its stored form, so its digest does not
    depend on the run's.
    """
    spec = cfg.model.spec()
    if spec.loss != "sharpe":
        return spec
    limits = run_limits(cfg)
    return dataclasses.replace(
        spec, max_weight=limits.max_weight, gross=limits.gross, allow_short=limits.allow_short
    )


def open_registry(workspace: Path, uri: str = "") -> Registry:
    """The registry at ``uri``, or the embedded one in ``workspace``."""
    return Registry(workspace, uri)


def weekly_closes(data: DataConfig, workspace: Path) -> pd.DataFrame:
    """Adjusted weekly closes ``(n_weeks, n_tickers)`` of a data config (NaN = no bar)."""
    return model_weekly(data, workspace, ("close",)).closes()


def model_weekly(
    data: DataConfig, workspace: Path, features: Sequence[str], risk_free: float | str = 0.0
) -> WeeklyData:
    """The weekly bars a model with ``features`` reads, checked to give every feature
    (:func:`simulator.features.check_available`); the yield series ``risk_free`` is loaded
    only for ``rate``."""
    weekly = make_weekly(load_daily(data, risk_free if "rate" in features else 0.0, workspace))
    check_available(weekly, features)
    return weekly


def train_from_config(
    cfg: Config, workspace: Path, progress: TrainProgress | None = None
) -> tuple[Forecaster, TrainingReport, VersionInfo]:
    """Train the ``[model]`` of ``cfg`` on its data and register one new version."""
    spec = model_spec(cfg)
    registry = open_registry(workspace, cfg.model.registry_uri)
    weekly = model_weekly(cfg.data, workspace, spec.features, cfg.report.risk_free)
    closes = weekly.closes()
    model, report = train(
        closes,
        spec,
        pd.Timestamp(cfg.model_train_end()),
        progress,
        features=feature_panels(weekly) if len(spec.features) > 1 else None,
    )
    source: dict[str, Any] = cfg.model_dump(mode="json", exclude_none=True)
    info = registry.register(model, report, source)
    return model, report, info
