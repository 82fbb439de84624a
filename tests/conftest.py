"""Shared fixtures: tiny hand-made price data and the real paper12 folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from simulator.data import DailyData

PAPER12 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "paper12"


@pytest.fixture
def paper12() -> Path:
    """The real 12-stock data set beside the checkout (skipped when absent)."""
    if not (PAPER12 / "AAPL.csv").is_file():
        pytest.skip(f"real data folder {PAPER12} is absent (clone with ../shared beside it)")
    return PAPER12


@pytest.fixture(autouse=True)
def _workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test gets its own workspace; nothing is written to the checkout."""
    ws = tmp_path / "ws"
    monkeypatch.setenv("FOLIOSIM_WORKSPACE", str(ws))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    yield ws


def daily_frame(rows: list[tuple[str, float, float, float, float]]) -> pd.DataFrame:
    """A daily OHLCV frame from ``(date, open, high, low, close)`` rows (volume 100)."""
    frame = pd.DataFrame(rows, columns=["date", "open", "high", "low", "close"])
    frame["volume"] = 100.0
    frame.index = pd.DatetimeIndex(pd.to_datetime(frame.pop("date")), name="date").as_unit("ns")
    return frame


def flat_week(monday: str, days: int, open_: float, close: float) -> list[tuple]:
    """``days`` trading days from ``monday``: first open ``open_``, every close ``close``."""
    start = pd.Timestamp(monday)
    rows = []
    for i in range(days):
        o = open_ if i == 0 else close
        day = str((start + pd.Timedelta(days=i)).date())
        rows.append((day, o, max(o, close), min(o, close), close))
    return rows


def tiny_daily(
    prices: dict[str, list[tuple[float, float]]], start: str = "2024-01-01"
) -> DailyData:
    """Daily data whose every week has 5 days; week k of ticker T opens at prices[T][k][0]
    and closes every day at prices[T][k][1]. The benchmark is the first ticker's close."""
    assets = {}
    for ticker, weeks in prices.items():
        rows: list[tuple] = []
        for k, (o, c) in enumerate(weeks):
            monday = pd.Timestamp(start) + pd.Timedelta(weeks=k)
            rows += flat_week(str(monday.date()), 5, o, c)
        assets[ticker] = daily_frame(rows)
    first = next(iter(assets.values()))
    return DailyData(assets, first["close"].rename("IDX"), None, "hand-made", "test")
