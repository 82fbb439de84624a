"""Tiny model-test data shared by test_models and test_registry."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from models.spec import ModelSpec

TICKERS = ["AAA", "BBB", "CCC"]
WEEKS = pd.date_range("2019-01-04", periods=100, freq="W-FRI")
#: Week 79 (2020-07-10): targets up to here are seen in training, weeks 80..99 are the test.
TRAIN_END = WEEKS[79]
GAP = 50  # BBB has no bar in this week
LISTED = 30  # CCC's first bar


def walk_closes(seed: int = 7) -> pd.DataFrame:
    """Weekly closes ``(100, 3)``: geometric random walks; BBB misses week 50, CCC is listed
    in week 30."""
    rng = np.random.default_rng(seed)
    steps = rng.normal(0.001, 0.03, size=(len(WEEKS), len(TICKERS)))
    closes = pd.DataFrame(50.0 * np.exp(np.cumsum(steps, axis=0)), index=WEEKS, columns=TICKERS)
    closes.iloc[GAP, 1] = np.nan
    closes.iloc[:LISTED, 2] = np.nan
    return closes


def tiny(**fields: Any) -> ModelSpec:
    """A spec that trains in milliseconds: 2 x 8 LSTM, 8-week windows, 3 epochs, 1 thread."""
    base: dict[str, Any] = {"hidden": 8, "window": 8, "max_epochs": 3, "threads": 1}
    return ModelSpec.from_preset("t", "small", **{**base, **fields})
