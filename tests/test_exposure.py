"""Exposure and turnover (simulator.exposure): exact on hand-made weeks, the same for a paper
account as for the backtest it replays, in summary.json and in the tear sheet."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simulator import stepping
from simulator.account_report import account_result
from simulator.backtest import run_backtest
from simulator.charts import exposure_figure
from simulator.data import make_weekly
from simulator.engine import run_engine
from simulator.exposure import EXPOSURE_COLUMNS, exposure_facts, held_weights, strategy_exposure
from simulator.leftovers import RUN_TEMP_FILES
from simulator.report import write_run
from simulator.rundir import read_exposure
from simulator.sections import exposure_html
from simulator.summary import parse_summary
from tests.conftest import tiny_daily
from tests.helpers import Scripted, ew_config, open_new

# Week k opens at the first number and closes (every day) at the second.
PRICES = {
    "A": [(10.0, 10.0), (11.0, 12.0), (12.0, 12.0), (12.5, 13.0)],
    "B": [(20.0, 20.0), (19.0, 18.0), (18.0, 18.0), (17.0, 16.0)],
}


def test_exposure_and_turnover_of_a_long_short_run_are_exact() -> None:
    """Close fills. Week 0: A and B half each (500 A at 10, 250 B at 20). Week 1 (A 12, B 18,
    value 10500): A to 0.9, B to -0.1: sell 308 B (5544), buy 287 A (3444); 787 A and -58 B
    are held over weeks 2 and 3."""
    weekly = make_weekly(tiny_daily(PRICES))
    weeks = weekly.calendar
    plan = {weeks[0]: {"A": 0.5, "B": 0.5}, weeks[1]: {"A": 0.9, "B": -0.1}}
    res = run_engine(
        weekly, weeks, weeks[:2], Scripted(lambda w, t: plan[w]), cash=10_000.0, fill="close"
    )
    frame = strategy_exposure(res.weights, res.orders, res.values, weeks, "close")
    assert frame.index.tolist() == weeks[1:].tolist()
    assert frame.columns.tolist() == EXPOSURE_COLUMNS
    long, short = 787 * 12 / 10_500, -58 * 18 / 10_500
    expected = np.array(
        [
            [0.5 + 0.5, 0.0, 1.0, 1.0, 10_000 / 10_000],
            [long, short, long - short, long + short, (5544 + 3444) / 10_500],
            [long, short, long - short, long + short, 0.0],
        ]
    )
    np.testing.assert_allclose(frame.to_numpy(), expected, rtol=0, atol=1e-15)

    facts = exposure_facts(frame)
    assert facts.weeks == 3 and facts.first_turnover == 1.0
    assert facts.mean_turnover == pytest.approx((5544 + 3444) / 10_500 / 2, abs=1e-15)
    assert facts.annual_turnover == pytest.approx(facts.mean_turnover * 52, abs=1e-15)
    assert facts.mean_short == pytest.approx(2 * short / 3, abs=1e-15)
    assert facts.max_gross == 1.0


def test_held_weights_follow_the_fill_mode() -> None:
    weeks = pd.DatetimeIndex(["2024-01-05", "2024-01-12", "2024-01-19"])
    after_fills = pd.DataFrame({"A": [0.5, 0.6, 0.7]}, index=weeks)
    # Close fills: bought at the close before the week; next-open: at the week's open.
    assert held_weights(after_fills, weeks, "close")["A"].tolist() == [0.5, 0.6]
    assert held_weights(after_fills, weeks, "next_open")["A"].tolist() == [0.6, 0.7]


def test_exposure_does_not_change_the_engine_result() -> None:
    weekly = make_weekly(tiny_daily(PRICES))
    weeks = weekly.calendar
    rule = Scripted(lambda w, t: {"A": 1.0})
    res = run_engine(weekly, weeks, weeks[:1], rule, cash=10_000.0, fill="close")
    weights, orders = res.weights.copy(), res.orders.copy()
    strategy_exposure(res.weights, res.orders, res.values, weeks, "close")
    pd.testing.assert_frame_equal(res.weights, weights)
    pd.testing.assert_frame_equal(res.orders, orders)


@pytest.mark.parametrize("fill", ["close", "next_open"])
def test_a_paper_account_has_the_exposure_of_the_backtest_it_replays(
    fill: str, tmp_path: Path
) -> None:
    """The journal records holdings before each close's fills, the engine after them; both
    give the same positions held over each week, valued the same way."""
    cfg = ew_config("backtest.end=2022-08-12", f"backtest.fill={fill}")
    workspace = tmp_path / "ws"
    open_new(workspace, "acct", cfg)
    account, _ = stepping.step(workspace, "acct", weeks=7)
    try:
        paper = account_result(account, workspace)
    finally:
        account.close()
    backtest = run_backtest(cfg, workspace)
    assert paper.exposure is not None and backtest.exposure is not None
    pd.testing.assert_frame_equal(paper.exposure, backtest.exposure, rtol=0, atol=1e-14)
    assert paper.summary.exposure is not None and backtest.summary.exposure is not None
    facts, expected = paper.summary.exposure.model_dump(), backtest.summary.exposure.model_dump()
    assert facts == pytest.approx(expected, rel=0, abs=1e-14)
    assert backtest.summary.exposure.mean_short == 0.0  # 1/N holds no shorts

    run = write_run(backtest, tmp_path / "run")
    # A killed run's temporary folder holding exposure.csv is still recognised as ours.
    assert {p.name for p in run.iterdir()} <= RUN_TEMP_FILES
    read = read_exposure(run)
    assert read is not None
    pd.testing.assert_frame_equal(
        read, backtest.exposure, check_freq=False, check_index_type=False, atol=1e-12
    )
    doc = json.loads((run / "summary.json").read_text())
    assert doc["exposure"]["weeks"] == 6
    assert doc["exposure"]["first_turnover"] == pytest.approx(read["turnover"].iloc[0])
    page = (run / "tearsheet.html").read_text()
    assert "<h3>Exposure and turnover</h3>" in page and 'id="exposure"' in page


def test_the_exposure_section_prints_its_figures_and_is_empty_without_a_file() -> None:
    weeks = pd.DatetimeIndex(["2024-01-12", "2024-01-19"], name="week")
    frame = pd.DataFrame(
        {
            "long": [1.2, 1.0],
            "short": [-0.2, -0.4],
            "gross": [1.4, 1.4],
            "net": [1.0, 0.6],
            "turnover": [1.4, 0.25],
        },
        index=weeks,
    )
    doc = {
        series: {
            "total_return": 0.0,
            "cagr": 0.0,
            "volatility": 0.0,
            "sharpe": None,
            "sortino": None,
            "max_drawdown": 0.0,
        }
        for series in ("strategy", "equal_weight", "benchmark")
    }
    doc |= {
        "weeks": 2,
        "start": "2024-01-12",
        "end": "2024-01-19",
        "fill": "close",
        "risk_free": 0.0,
        "strategy_name": "s",
        "benchmark_name": "b",
        "data_note": "n",
        "orders_rejected": 0,
        "exposure": exposure_facts(frame).model_dump(),
    }
    summary = parse_summary(doc)
    section = exposure_html(summary, frame)
    assert "<tr><td>short</td><td>-30.0</td><td>-40.0</td></tr>" in section
    assert "<tr><td>gross</td><td>140.0</td><td>140.0</td></tr>" in section
    assert "140.0% in the first week" in section and "25.0% a week on average" in section
    assert "1300.0% a year" in section
    assert exposure_html(summary, None) == ""
    older = parse_summary({k: v for k, v in doc.items() if k != "exposure"})
    assert older.exposure is None and exposure_html(older, frame) == ""


def test_the_turnover_bars_are_drawn_five_days_wide() -> None:
    """Regression: a bar width of 5 beside datetime64 positions was read as 5 ns (invisible)."""
    weeks = pd.DatetimeIndex(["2024-01-12", "2024-01-19"], name="week")
    frame = pd.DataFrame(
        {"long": 1.0, "short": 0.0, "gross": 1.0, "net": 1.0, "turnover": [1.0, 0.25]},
        index=weeks,
    )
    bars = exposure_figure(frame).axes[1].patches
    assert [b.get_height() for b in bars] == [1.0, 0.25]
    assert [b.get_width() for b in bars] == [5.0, 5.0]
