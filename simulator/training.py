"""Training models from a config: the glue between the config, the data and :mod:`models`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from models.forecaster import Forecaster, TrainingReport, TrainProgress, train
from models.registry import Registry, VersionInfo
from models.spec import ModelSpec
from simulator.config import Config, DataConfig
from simulator.data.sources import load_daily
from simulator.data.weekly import make_weekly


def model_spec(cfg: Config) -> ModelSpec:
    """The :class:`~models.spec.ModelSpec` of ``cfg``'s ``[model]`` section."""
    return cfg.model.spec()


def open_registry(workspace: Path, uri: str = "") -> Registry:
    """The registry at ``uri``, or the embedded one in ``workspace``."""
    return Registry(workspace, uri)


def weekly_closes(data: DataConfig, workspace: Path) -> pd.DataFrame:
    """Adjusted weekly closes ``(n_weeks, n_tickers)`` of a data config (NaN = no bar)."""
    return make_weekly(load_daily(data, 0.0, workspace)).closes()


def train_from_config(
    cfg: Config, workspace: Path, progress: TrainProgress | None = None
) -> tuple[Forecaster, TrainingReport, VersionInfo]:
    """Train the ``[model]`` of ``cfg`` on its data and register one new version."""
    spec = model_spec(cfg)
    registry = open_registry(workspace, cfg.model.registry_uri)
    closes = weekly_closes(cfg.data, workspace)
    model, report = train(closes, spec, pd.Timestamp(cfg.model_train_end()), progress)
    source: dict[str, Any] = cfg.model_dump(mode="json", exclude_none=True)
    info = registry.register(model, report, source)
    return model, report, info
