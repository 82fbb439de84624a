"""The fast engine (simulator.ledger) against backtrader, the engine of record.

The whole suite runs with ``FOLIOSIM_ENGINE=both`` (tests/conftest.py): every engine run of
every test runs backtrader, replays its decisions through the fast engine and compares every
week's value, charges and orders, to the bit. The tests here add a market made to reach the
corners (shorts that flip to longs, buys the cash cannot pay, a halt, a late listing, a
delisting, every cost at once, both fill modes, a run resumed week by week), check that the
comparison catches a difference, and check how the engine is chosen.
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import simulator.ledger as ledger
from simulator.data import DailyData, make_weekly
from simulator.engine import EngineMismatch, engine_choice, run_engine
from simulator.errors import ConfigError
from strategies.rebalance import Costs
from strategies.rule import Decision, History, State
from tests.conftest import REPO, daily_frame, flat_week
from tests.helpers import whole_and_resumed

WEEKS = 60


def corner_market(seed: int = 3) -> Any:
    """Six tickers over 60 weeks: E lists in week 10, F stops trading after week 40 (a
    delisting), C has no bar in weeks 20 and 33 (halts)."""
    rng = np.random.default_rng(seed)
    assets = {}
    for k, ticker in enumerate("ABCDEF"):
        price = 10.0 * (k + 1)
        rows: list[tuple[Any, ...]] = []
        for week in range(WEEKS):
            open_ = round(price * float(np.exp(rng.normal(0, 0.01))), 2)
            price = round(price * float(np.exp(rng.normal(0.002, 0.05))), 2)
            listed = not (ticker == "E" and week < 10) and not (ticker == "F" and week > 40)
            if listed and not (ticker == "C" and week in (20, 33)):
                monday = pd.Timestamp("2024-01-01") + pd.Timedelta(weeks=week)
                rows += flat_week(str(monday.date()), 5, open_, price)
        assets[ticker] = daily_frame(rows)
    index = assets["A"]["close"].rename("IDX")
    return make_weekly(DailyData(assets, index, None, "hand-made", "test"))


class Wild:
    """Seeded weights in [-0.6, 0.6] on the tradable tickers, gross up to 3: shorts, flips
    from short to long and back, and buys the cash cannot pay (C halted the next week is a
    NoBar row with next-open fills)."""

    name = "wild"

    def __init__(self, seed: int = 11) -> None:
        self.seed = seed

    def decide(self, week: pd.Timestamp, history: History, state: State) -> Decision:
        names = list(history.tradable)
        # The same draws for the same week, however often it is asked (a resumed run).
        rng = np.random.default_rng([self.seed, week.toordinal()])
        draws = rng.uniform(-0.6, 0.6, len(names))
        return Decision(dict(zip(names, draws.tolist(), strict=True)), tag=str(week.date()))


COSTS = Costs(commission=0.001, slippage=0.002, borrow_fee=0.03, cash_rate=0.02, margin_rate=0.05)


@pytest.mark.parametrize("fill", ["close", "next_open"])
@pytest.mark.parametrize(
    "costs",
    [Costs(), COSTS, Costs(slippage=0.05, slippage_kind="fixed", commission=0.002)],
    ids=["free", "every cost", "fixed slippage"],
)
def test_the_fast_engine_equals_backtrader_in_the_corners(fill: str, costs: Costs) -> None:
    weekly = make_weekly_cached()
    weeks = weekly.calendar
    runs = {}
    for engine in ("backtrader", "fast"):
        runs[engine] = run_engine(
            weekly, weeks, weeks[:-1], Wild(), cash=100_000.0, fill=fill, costs=costs,
            engine=engine,
        )  # fmt: skip
    record, fast = runs["backtrader"], runs["fast"]
    assert record.values.to_numpy().tobytes() == fast.values.to_numpy().tobytes()
    pd.testing.assert_frame_equal(record.orders, fast.orders, check_exact=True)
    pd.testing.assert_frame_equal(record.costs, fast.costs, check_exact=True)
    pd.testing.assert_frame_equal(record.weights, fast.weights, check_exact=True)
    pd.testing.assert_frame_equal(record.decisions, fast.decisions, check_exact=True)
    statuses = set(record.orders["status"])
    expected = {"Completed", "Margin", "Delisted"} | ({"NoBar"} if fill == "next_open" else set())
    assert expected <= statuses, statuses
    # Positions flipped sides within one order (a short bought back into a long and back).
    flips = _flips(record.orders)
    assert flips > 5


def make_weekly_cached() -> Any:
    return corner_market()


def _flips(orders: pd.DataFrame) -> int:
    held: dict[str, float] = {}
    flips = 0
    for _, row in orders[orders["status"].isin(["Completed", "Delisted"])].iterrows():
        before = held.get(row["ticker"], 0.0)
        after = before + (row["size"] if row["side"] == "buy" else -row["size"])
        flips += before * after < 0
        held[row["ticker"]] = after
    return flips


@pytest.mark.parametrize("fill", ["close", "next_open"])
def test_the_fast_engine_resumed_week_by_week_equals_one_run(fill: str) -> None:
    weekly = corner_market()
    whole, records = whole_and_resumed(weekly, Wild(), cash=100_000.0, fill=fill, costs=COSTS)
    assert [r.value for r in records] == whole.values.tolist()


def test_a_difference_warns_and_keeps_backtraders_result(monkeypatch: pytest.MonkeyPatch) -> None:
    weekly = corner_market()
    weeks = weekly.calendar[:12]
    honest = run_engine(weekly, weeks, weeks, Wild(), cash=100_000.0, fill="close")
    value = ledger.Ledger.value
    monkeypatch.setattr(ledger.Ledger, "value", lambda self, i: value(self, i) + 1e-9)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        kept = run_engine(weekly, weeks, weeks, Wild(), cash=100_000.0, fill="close", engine="both")
    [warning] = [w for w in caught if issubclass(w.category, EngineMismatch)]
    assert f"week of {weeks[0].date()}: value 100000.000000001 against 100000.0" in str(
        warning.message
    )
    assert "backtrader's result is kept" in str(warning.message)
    assert kept.values.tolist() == honest.values.tolist()


def test_the_engine_is_chosen_by_foliosim_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FOLIOSIM_ENGINE")
    assert engine_choice() == "fast"
    for name in ("fast", "backtrader", "both"):
        monkeypatch.setenv("FOLIOSIM_ENGINE", name)
        assert engine_choice() == name
    monkeypatch.setenv("FOLIOSIM_ENGINE", "turbo")
    with pytest.raises(ConfigError, match="FOLIOSIM_ENGINE='turbo' is not an engine; use one"):
        engine_choice()


def test_an_unknown_engine_is_one_line_from_the_cli(tmp_path: Path) -> None:
    env = {"FOLIOSIM_ENGINE": "turbo", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "simulator.cli", "backtest", str(REPO / "examples/momentum.toml")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("error: FOLIOSIM_ENGINE='turbo' is not an engine"), lines
    assert "Traceback" not in done.stderr
