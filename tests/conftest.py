"""Shared fixtures: tiny hand-made price data and the real paper12 folder."""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from simulator.config import Config, load_config
from simulator.data import DailyData

REPO = Path(__file__).resolve().parents[1]
PAPER12 = REPO.parent / "shared" / "data" / "paper12"
PAPER_CONFIG = REPO / "examples" / "paper2023.toml"
#: --set overrides that run examples/paper2023.toml offline, fast: CSV data, small 3-epoch LSTMs.
PAPER_FAST = [
    "data.source=csv",
    f"data.path={PAPER12}",
    "model.preset=small",
    "model.max_epochs=3",
    "model.name=paper-small",
    # One torch thread: beside another CPU-bound process, torch's spinning OpenMP threads
    # would turn seconds of training into minutes.
    "model.threads=1",
]

#: CPU seconds (this process and its children) a test may use; a test that needs more says so
#: with ``@pytest.mark.cpu_seconds(N)``. A limit on CPU time measures the work a test does,
#: whatever else runs on the machine; pytest-timeout's wall-clock limit (pyproject.toml) only
#: catches a test that hangs.
CPU_SECONDS = 240

# Every engine run of the suite, in this process and in the CLI's subprocesses, runs
# backtrader (the engine of record) and checks the fast engine against it week by week: a
# difference is an EngineMismatch warning, an error here (simulator.engine.engine_choice).
os.environ.setdefault("FOLIOSIM_ENGINE", "both")


def cpu_seconds() -> float:
    """CPU time used so far by this process and its finished children, in seconds."""
    mine = time.process_time()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return mine + children.ru_utime + children.ru_stime


@pytest.fixture(autouse=True)
def _cpu_budget(request: pytest.FixtureRequest) -> Iterator[None]:
    marker = request.node.get_closest_marker("cpu_seconds")
    budget = float(marker.args[0]) if marker is not None else CPU_SECONDS
    before = cpu_seconds()
    yield
    used = cpu_seconds() - before
    if used > budget:
        pytest.fail(
            f"{request.node.nodeid} used {used:.0f} CPU seconds, over its budget of "
            f"{budget:.0f}: make it do less work, or mark it @pytest.mark.cpu_seconds(N)",
            pytrace=False,
        )


@dataclass(frozen=True)
class PaperModel:
    """A registered small-preset model of the paper config, trained once per test session.

    ``workspace`` holds its registry. Tests that use it must not add versions to it: run the
    same ``config`` (every model is then reused) or pin ``ref`` with ``model.version``.
    """

    workspace: Path
    config: Config
    ref: str


def require_paper12() -> None:
    """Fail, saying why, when the real data beside the checkout is missing (never skip: a
    suite that skips its real-data tests would pass without testing them)."""
    if not (PAPER12 / "AAPL.csv").is_file():
        pytest.fail(
            f"real data folder {PAPER12} is absent: these tests need the shared folder beside "
            "the checkout (../shared/data/paper12, as CI has it)",
            pytrace=False,
        )


@pytest.fixture
def paper12() -> Path:
    """The real 12-stock data set beside the checkout (the test fails when it is absent)."""
    require_paper12()
    return PAPER12


@pytest.fixture(scope="session")
def paper_model(tmp_path_factory: pytest.TempPathFactory) -> PaperModel:
    """examples/paper2023.toml with :data:`PAPER_FAST`, its models trained and registered."""
    require_paper12()
    from simulator.training import train_from_config

    workspace = tmp_path_factory.mktemp("paper-registry")
    cfg = load_config(PAPER_CONFIG, PAPER_FAST)
    _, _, info = train_from_config(cfg, workspace)
    return PaperModel(workspace, cfg, info.ref)


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
