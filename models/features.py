"""Input features of a forecaster: what each one is, and how a window of it becomes network
input.

A model reads ``model.features`` (default ``["close"]``), always in the order of
:data:`FEATURES`, one input channel each. ``close`` is the window of weekly closes (scaled as
the spec's ``scaling`` says, see :class:`models.windows.Scaler`). Every other feature arrives
as a *raw panel*: a frame of one number per week stamp and ticker, on the closes' index, that
the caller computes from the weekly bars (``simulator.features``) so that the value of week t
depends on weeks up to t only:

- ``volume``: the week's traded shares. In a window it becomes ``log(1 + v) - mean over the
  window of log(1 + v)`` (the week's volume against the window's usual volume), so tickers
  and decades of different turnover read alike.
- ``index``: the benchmark's return over the week, ``B_t / B_{t-1} - 1`` (the same for every
  ticker).
- ``rate``: the 2-year yield's change over the week in percentage points (the same for every
  ticker).
- ``range``: the week's high-low range over its close, ``(H_t - L_t) / C_t``.

Each feature is then standardised with its mean and standard deviation over the training
split's windows only (``Scaler.extra``). A window that lacks any feature's value in any of its
weeks is dropped in training and gets no forecast, as a window with a missing close does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from models.errors import SpecError, TrainingDataError, did_you_mean

#: Every feature, in the order a model reads them.
FEATURES = ("close", "volume", "index", "rate", "range")

#: One line on each feature (the model card, the README's config reference).
DESCRIPTIONS = {
    "close": "weekly adjusted closes",
    "volume": "weekly volume, log(1+v) less its window mean",
    "index": "the benchmark's weekly return",
    "rate": "the 2-year yield's weekly change (percentage points)",
    "range": "the weekly high-low range over the close",
}

#: A raw panel per feature other than ``close``: ``(n_weeks, n_tickers)`` on the closes' index.
Panels = Mapping[str, pd.DataFrame]


def check_features(names: Sequence[str]) -> tuple[str, ...]:
    """``names`` in the order of :data:`FEATURES`, after checking them.

    >>> check_features(["volume", "close"])
    ('close', 'volume')
    """
    if isinstance(names, str) or not names:
        raise SpecError(f"model.features must be a non-empty list, e.g. [\"close\", \"volume\"] "
                        f"(got {names!r})")  # fmt: skip
    for name in names:
        if name not in FEATURES:
            raise SpecError(
                f"unknown model feature {name!r}{did_you_mean(str(name), FEATURES)}: use "
                f"{', '.join(FEATURES)}"
            )
    if len(set(names)) != len(names):
        raise SpecError(f"model.features lists a feature twice: {list(names)}")
    if "close" not in names:
        raise SpecError(
            "model.features must include 'close': the target is next week's close, and the "
            "other features are read beside it"
        )
    return tuple(f for f in FEATURES if f in names)


def window_values(feature: str, raw: np.ndarray) -> np.ndarray:
    """``(n, window)`` raw values of ``feature`` -> its unstandardised network input.

    >>> window_values("volume", np.array([[0.0, np.e - 1.0]])).tolist()
    [[-0.5, 0.5]]
    >>> window_values("index", np.array([[0.01, -0.02]])).tolist()
    [[0.01, -0.02]]
    """
    if feature == "volume":
        logs = np.log1p(raw)
        return logs - logs.mean(axis=1, keepdims=True)
    return raw


def panel_array(
    panels: Panels | None, features: Sequence[str], closes: pd.DataFrame, ticker: str
) -> np.ndarray | None:
    """``(n_weeks, n_extra)`` raw values of ``ticker``'s extra features on ``closes``' index,
    None when the model reads closes only."""
    extra = [f for f in features if f != "close"]
    if not extra:
        return None
    if panels is None or any(f not in panels for f in extra):
        missing = [f for f in extra if panels is None or f not in panels]
        raise TrainingDataError(
            f"the model reads {', '.join(extra)} besides closes, but no {missing[0]} data was "
            "given; pass the feature panels built from the weekly bars"
        )
    columns = []
    for f in extra:
        frame = panels[f]
        if ticker not in frame.columns:
            raise TrainingDataError(f"no {f} data for {ticker} in the feature panels given")
        columns.append(frame[ticker].reindex(closes.index).to_numpy(dtype=np.float64))
    return np.column_stack(columns)


def select_panels(panels: Panels | None, features: Sequence[str]) -> dict[str, pd.DataFrame] | None:
    """The panels of ``features`` besides ``close`` (None for a closes-only model, or when
    no panels are given: :func:`panel_array` then says which is missing)."""
    extra = [f for f in features if f != "close"]
    if panels is None or not extra:
        return None
    return {f: panels[f] for f in extra if f in panels}
