"""Causal windows, chronological splits and scalers fitted on the training split only.

A window ending at week ``t`` holds the weekly closes of weeks ``t-window+1 .. t`` and its
target is the close of week ``t+1`` (the next row of the ticker's weekly series). A window with
a missing week (NaN) anywhere in it or in its target is dropped, never filled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from models.errors import TrainingDataError
from models.features import FEATURES, window_values
from models.names import TICKER_RULE, bad_ticker
from models.spec import Scaling


@dataclass(frozen=True)
class Windows:
    """The causal windows of one ticker.

    Attributes
    ----------
    inputs
        ``(n, window)`` weekly closes, oldest first.
    target
        ``(n,)`` the close of the week after each window.
    as_of
        ``(n,)`` the window's last week (the decision week).
    target_week
        ``(n,)`` the week of the target.
    extras
        ``(n, window, n_extra)`` raw values of the model's other features
        (:mod:`models.features`) in the same weeks, or None for a closes-only model.
    """

    ticker: str
    inputs: np.ndarray
    target: np.ndarray
    as_of: pd.DatetimeIndex
    target_week: pd.DatetimeIndex
    extras: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.target)

    def take(self, mask: np.ndarray) -> Windows:
        return Windows(
            self.ticker, self.inputs[mask], self.target[mask], self.as_of[mask],
            self.target_week[mask], None if self.extras is None else self.extras[mask],
        )  # fmt: skip


def check_prices(closes: pd.DataFrame) -> None:
    """Refuse prices that are not a date-indexed frame of positive numbers (NaN = no bar)."""
    if not isinstance(closes.index, pd.DatetimeIndex):
        raise TrainingDataError("weekly closes need a DatetimeIndex of week stamps")
    if not closes.index.is_monotonic_increasing or closes.index.has_duplicates:
        raise TrainingDataError("weekly closes must have unique, ascending week stamps")
    bad_name = bad_ticker(list(closes.columns))
    if bad_name is not None:
        # Checked before any training: a ticker becomes a file name and a registry key.
        raise TrainingDataError(f"ticker {bad_name!r}: {TICKER_RULE}")
    values = closes.to_numpy(dtype=float)
    bad = np.isinf(values) | (values <= 0)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise TrainingDataError(
            f"{closes.columns[col]}: price {values[row, col]} on {closes.index[row].date()} "
            "is not a positive number; fix the data"
        )


def make_windows(closes: pd.Series, window: int, extras: np.ndarray | None = None) -> Windows:
    """Every complete window of one ticker's weekly closes (and ``extras``, ``(n_weeks,
    n_extra)`` raw values of its other features on the same weeks: a window needs every one).

    >>> s = pd.Series([1.0, 2.0, np.nan, 4.0, 5.0, 6.0, 7.0],
    ...               index=pd.date_range("2024-01-05", periods=7, freq="W-FRI"))
    >>> w = make_windows(s, 2)
    >>> w.inputs.tolist(), w.target.tolist()
    ([[4.0, 5.0], [5.0, 6.0]], [6.0, 7.0])
    >>> [d.date().isoformat() for d in w.as_of]
    ['2024-02-02', '2024-02-09']
    """
    values = closes.to_numpy(dtype=float)
    dates = pd.DatetimeIndex(closes.index)
    n_extra = 0 if extras is None else extras.shape[1]
    if len(values) <= window:
        empty = None if extras is None else np.empty((0, window, n_extra))
        return Windows(
            str(closes.name), np.empty((0, window)), np.empty(0), dates[:0], dates[:0], empty
        )
    full = sliding_window_view(values, window + 1)
    ok = np.isfinite(full).all(axis=1)
    extra_windows = None
    if extras is not None:
        # (n_windows, n_extra, window) -> (n_windows, window, n_extra); the target week's
        # values are not an input.
        extra_windows = sliding_window_view(extras[:-1], window, axis=0).transpose(0, 2, 1)
        ok &= np.isfinite(extra_windows).all(axis=(1, 2))
        extra_windows = np.ascontiguousarray(extra_windows[ok])
    return Windows(
        ticker=str(closes.name),
        inputs=np.ascontiguousarray(full[ok, :window]),
        target=full[ok, window].copy(),
        as_of=dates[window - 1 : len(values) - 1][ok],
        target_week=dates[window:][ok],
        extras=extra_windows,
    )


def validation_cut(target_weeks: pd.DatetimeIndex, val_fraction: float) -> pd.Timestamp:
    """The first target week of the validation split: the last ``val_fraction`` of the
    training windows, cut on a week boundary so that no week is in both splits.

    >>> weeks = pd.DatetimeIndex(pd.date_range("2024-01-05", periods=10, freq="W-FRI"))
    >>> validation_cut(weeks, 0.2).date()
    datetime.date(2024, 3, 1)
    """
    ordered = target_weeks.sort_values()
    n_val = max(1, math.ceil(val_fraction * len(ordered)))
    if len(ordered) - n_val < 1:
        raise TrainingDataError(
            f"only {len(ordered)} training window(s): too few to carve a validation split; "
            "give more history (an earlier data.start) or a later model.train_end"
        )
    return pd.Timestamp(ordered[len(ordered) - n_val])


@dataclass(frozen=True)
class Scaler:
    """Maps windows of prices to network inputs and targets, and predictions back to prices.

    The four statistics are fitted on the training split only (:func:`fit_scaler`).
    ``kind="window"``: inputs ``p / p_last - 1``, target ``p_next / p_last - 1`` (the next-week
    return), each then standardised. ``kind="ticker"``: prices standardised directly.
    """

    kind: Scaling
    in_mean: float
    in_std: float
    out_mean: float
    out_std: float
    #: ``(feature, mean, std)`` of each other feature's window values
    #: (:func:`models.features.window_values`) over the training split, in input order.
    extra: tuple[tuple[str, float, float], ...] = ()

    def close_inputs(self, prices: np.ndarray) -> np.ndarray:
        """``(n, window)`` prices -> their ``(n, window)`` float64 input channel."""
        if self.kind == "window":
            rel = prices / prices[:, -1:] - 1.0
            return (rel - self.in_mean) / self.in_std
        return (prices - self.in_mean) / self.in_std

    def inputs(
        self, prices: np.ndarray, dtype: type = np.float32, extras: np.ndarray | None = None
    ) -> np.ndarray:
        """``(n, window)`` prices -> ``(n, window)`` network inputs (float32 unless asked);
        with other features, their ``(n, window, n_extra)`` raw values -> ``(n, window,
        1 + n_extra)`` inputs, closes first."""
        closes = self.close_inputs(prices)
        if not self.extra:
            return closes.astype(dtype)
        if extras is None or extras.shape[-1] != len(self.extra):
            raise ValueError(f"the model reads {len(self.extra)} feature(s) besides closes")
        channels = [closes]
        for i, (feature, mean, std) in enumerate(self.extra):
            channels.append((window_values(feature, extras[..., i]) - mean) / std)
        return np.stack(channels, axis=-1).astype(dtype)

    def target(self, prices: np.ndarray, target: np.ndarray) -> np.ndarray:
        """The scaled target of each window."""
        if self.kind == "window":
            ret = target / prices[:, -1] - 1.0
            return ((ret - self.out_mean) / self.out_std).astype(np.float32)
        return ((target - self.out_mean) / self.out_std).astype(np.float32)

    def price(self, prices: np.ndarray, output: np.ndarray) -> np.ndarray:
        """Network outputs -> predicted next-week close (float64)."""
        raw = output.astype(np.float64) * self.out_std + self.out_mean
        if self.kind == "window":
            return prices[:, -1] * (1.0 + raw)
        return raw

    def to_dict(self) -> dict[str, Any]:
        """The stored form; ``extra`` only when there are other features (a closes-only
        scaler keeps the form it always had)."""
        out: dict[str, Any] = {
            "kind": self.kind,
            "in_mean": self.in_mean,
            "in_std": self.in_std,
            "out_mean": self.out_mean,
            "out_std": self.out_std,
        }
        if self.extra:
            out["extra"] = [{"feature": f, "mean": m, "std": s} for f, m, s in self.extra]
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Scaler:
        kind = raw["kind"]
        if kind not in ("window", "ticker"):
            raise ValueError(f"unknown scaler kind {kind!r}")
        stats = [float(raw[k]) for k in ("in_mean", "in_std", "out_mean", "out_std")]
        if not all(math.isfinite(v) for v in stats) or stats[1] <= 0 or stats[3] <= 0:
            raise ValueError("scaler statistics must be finite with positive deviations")
        extra = tuple(
            (str(e["feature"]), float(e["mean"]), float(e["std"])) for e in raw.get("extra", [])
        )
        for feature, mean, std in extra:
            if feature not in FEATURES[1:] or not (math.isfinite(mean) and std > 0):
                raise ValueError(f"bad statistics for feature {feature!r}")
        return cls(kind, stats[0], stats[1], stats[2], stats[3], extra)


def fit_scaler(
    kind: Scaling,
    inputs: np.ndarray,
    target: np.ndarray,
    who: str,
    extras: np.ndarray | None = None,
    features: tuple[str, ...] = ("close",),
) -> Scaler:
    """Fit a :class:`Scaler` on training-split windows only (``extras``: their other
    features' raw values, ``(n, window, n_extra)``, for ``features[1:]``).

    >>> x = np.array([[1.0, 2.0], [2.0, 4.0]]); y = np.array([3.0, 2.0])
    >>> s = fit_scaler("window", x, y, "T")
    >>> round(s.in_mean, 3), round(s.out_mean, 3)
    (-0.25, 0.0)
    """
    if len(target) == 0:
        raise TrainingDataError(f"{who}: no training windows to fit the scaler on")
    if kind == "window":
        rel = inputs / inputs[:, -1:] - 1.0
        out = target / inputs[:, -1] - 1.0
        in_mean, in_std = float(rel.mean()), float(rel.std())
        out_mean, out_std = float(out.mean()), float(out.std())
    else:
        both = np.concatenate([inputs.ravel(), target])
        in_mean = out_mean = float(both.mean())
        in_std = out_std = float(both.std())
    if not (in_std > 0 and out_std > 0):
        raise TrainingDataError(
            f"{who}: prices do not vary over the training split, so they cannot be scaled; "
            "give more history"
        )
    extra = []
    for i, feature in enumerate(features[1:]):
        assert extras is not None
        values = window_values(feature, extras[..., i])
        mean, std = float(values.mean()), float(values.std())
        if not std > 0:
            raise TrainingDataError(
                f"{who}: feature {feature!r} does not vary over the training split (the data "
                f"has no real {feature} values?); drop it from model.features or use data "
                "that has it"
            )
        extra.append((feature, mean, std))
    return Scaler(kind, in_mean, in_std, out_mean, out_std, tuple(extra))
