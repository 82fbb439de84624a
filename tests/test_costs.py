"""Costs beyond commission (issue 15): slippage, a short borrow fee, interest on cash and
margin, on hand-made weeks with exact cash and values, and a paper account resumed week by
week that equals one run with every cost on."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from simulator.backtest import run_backtest
from simulator.config import load_config
from simulator.data import make_weekly
from simulator.engine import EngineResult, order_frame, run_engine
from simulator.errors import ConfigError
from strategies.rebalance import Costs, Resume
from tests.helpers import Scripted, whole_and_resumed

from .conftest import tiny_daily

#: A opens week k at the first number and closes every day at the second. Week 1's bar
#: (9..9) lies wholly below a buy slipped from week 0's close of 10: no cap may apply.
FLAT = {"A": [(10.0, 10.0), (9.0, 9.0), (9.0, 9.0)]}
MOVING = {"A": [(10.0, 10.0), (11.0, 12.0), (12.5, 13.0)]}


def run(
    prices: Mapping[str, list[tuple[float, float]]],
    plan: Mapping[int, Mapping[str, float]],
    fill: str,
    **costs: Any,
) -> tuple[pd.DatetimeIndex, EngineResult]:
    """Decide ``plan[k]`` at the close of week k (no decision where ``plan`` has none)."""
    weekly = make_weekly(tiny_daily(dict(prices)))
    weeks = weekly.calendar
    rule = Scripted(lambda w, t: dict(plan[weeks.get_loc(w)]))
    decisions = pd.DatetimeIndex([weeks[k] for k in sorted(plan)])
    return weeks, run_engine(
        weekly, weeks, decisions, rule, cash=10_000.0, fill=fill, costs=Costs(**costs)
    )


# --- slippage ------------------------------------------------------------------------------


def test_percent_slippage_at_the_close_is_reserved_and_never_capped() -> None:
    _, res = run(FLAT, {0: {"A": 1.0}}, "close", slippage=0.01)
    fill = res.orders.iloc[0]
    # 1000 shares would cost 100 of slippage: int(9900 / 10) = 990 shares at 10 x 1.01, though
    # week 1's high (9) is below that price (backtrader would cap it there: slip_out).
    assert (fill["status"], fill["size"], fill["price"]) == ("Completed", 990, 10.0 * 1.01)
    cash = 10_000.0 - 990 * (10.0 * 1.01)
    assert res.values.tolist() == [10_000.0, cash + 990 * 9.0, cash + 990 * 9.0]
    assert res.costs["slippage"].tolist() == pytest.approx([0.0, 990 * 0.1, 0.0])


def test_percent_slippage_at_the_next_open_on_buys_and_sells() -> None:
    _, res = run(MOVING, {0: {"A": 1.0}, 1: {"A": 0.0}}, "next_open", slippage=0.01)
    buy, sell = res.orders.itertuples()
    # Week 1's open 11: int(10000 / 11) = 909 would slip 99.99; int(9900.01 / 11) = 900 at
    # 11 x 1.01. Week 2's open 12.5: 900 sold at 12.5 x 0.99.
    assert (buy.side, buy.size, buy.price) == ("buy", 900, 11.0 * 1.01)
    assert (sell.side, sell.size, sell.price) == ("sell", 900, 12.5 * 0.99)
    cash = 10_000.0 - 900 * (11.0 * 1.01)
    assert res.values.tolist() == [10_000.0, cash + 900 * 12.0, cash + 900 * (12.5 * 0.99)]
    assert res.costs["slippage"].tolist() == pytest.approx([0.0, 900 * 0.11, 900 * 0.125])


def test_fixed_slippage_per_share() -> None:
    _, res = run(FLAT, {0: {"A": 1.0}}, "close", slippage=0.05, slippage_kind="fixed")
    fill = res.orders.iloc[0]
    # 1000 shares would slip 50: int(9950 / 10) = 995 shares at 10.05.
    assert (fill["status"], fill["size"], fill["price"]) == ("Completed", 995, 10.0 + 0.05)
    assert res.values.iloc[1] == 10_000.0 - 995 * 10.05 + 995 * 9.0


def test_slippage_and_commission_are_both_reserved() -> None:
    _, res = run(FLAT, {0: {"A": 1.0}}, "close", slippage=0.01, commission=0.01)
    fill = res.orders.iloc[0]
    # 1000 shares: commission 1% of 10100 plus slippage 100 = 201; int(9799 / 10) = 979.
    assert (fill["status"], fill["size"], fill["price"]) == ("Completed", 979, 10.0 * 1.01)
    assert fill["commission"] == pytest.approx(0.01 * 979 * 10.1)


def test_a_fixed_slippage_above_a_price_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"backtest.slippage of 9 per share is not below A's"):
        run(FLAT, {0: {"A": 1.0}}, "close", slippage=9.0, slippage_kind="fixed")


def test_percent_slippage_of_ten_percent_or_more_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"must be below 0.1 .* slippage_kind = \"fixed\""):
        load_config(None, ["backtest.slippage=0.1"])
    assert load_config(None, ["backtest.slippage=0.5", "backtest.slippage_kind=fixed"])


# --- charges at each week's close ----------------------------------------------------------


def test_a_short_pays_its_borrow_fee_every_week_at_the_close() -> None:
    prices = {"A": [(10.0, 10.0), (10.0, 10.0), (10.0, 12.0)]}
    _, res = run(prices, {0: {"A": -0.5}}, "close", borrow_fee=0.052)
    # 500 A sold short at week 0's close; cash 15000. Week 1: 5000 short, fee 5000 x 0.052/52;
    # week 2: 6000 short (A closes at 12).
    rate = 0.052 / 52
    fee1, fee2 = 5000.0 * rate, 6000.0 * rate
    assert res.costs["borrow_fee"].tolist() == [0.0, fee1, fee2]
    cash1 = 15_000.0 - fee1
    assert res.values.tolist() == [10_000.0, 10_000.0 - fee1, cash1 - fee2 - 6000.0]
    # The ledger's weights use the same cash.
    assert res.weights["A"].iloc[2] == pytest.approx(-6000.0 / res.values.iloc[2], abs=1e-15)


def test_cash_earns_interest_compounded_weekly() -> None:
    _, res = run(FLAT, {}, "close", cash_rate=0.052)
    rate = 0.052 / 52
    week1 = 10_000.0 + 10_000.0 * rate
    week2 = week1 + week1 * rate
    # The first week only opens the account: no interest for it.
    assert res.values.tolist() == [10_000.0, week1, week2]
    assert res.costs["cash_interest"].tolist() == [0.0, 10_000.0 * rate, week1 * rate]
    assert res.costs["margin_interest"].tolist() == [0.0, 0.0, 0.0]


def test_negative_cash_pays_the_margin_rate() -> None:
    # A paper account that owes 1000 (bought on margin elsewhere) holds 1100 A at 10, its
    # target at the resume week (1.1 x 10000 / 10 shares): no order.
    weekly = make_weekly(tiny_daily(dict(FLAT)))
    weeks = weekly.calendar
    resume = Resume(weeks[0], -1000.0, {"A": (1100, 10.0)}, {"A": 1.1}, "")
    res = run_engine(
        weekly,
        weeks[1:],
        weeks[:0],
        Scripted(lambda w, t: {}),
        cash=10_000.0,
        fill="close",
        costs=Costs(cash_rate=0.052, margin_rate=0.104),
        resume=resume,
    )
    rate = 0.104 / 52
    paid1 = 1000.0 * rate
    paid2 = (1000.0 + paid1) * rate
    assert res.costs["margin_interest"].tolist() == [paid1, paid2]
    assert res.costs["cash_interest"].tolist() == [0.0, 0.0]
    assert res.values.tolist() == [-1000.0 - paid1 + 9900.0, -1000.0 - paid1 - paid2 + 9900.0]


# --- a paper account with every cost -------------------------------------------------------


ALL_COSTS = {
    "commission": 0.002,
    "slippage": 0.003,
    "borrow_fee": 0.05,
    "cash_rate": 0.03,
    "margin_rate": 0.08,
}


@pytest.mark.parametrize("kind", ["perc", "fixed"])
@pytest.mark.parametrize("fill", ["close", "next_open"])
def test_a_run_with_every_cost_resumed_week_by_week_equals_one_run(fill: str, kind: str) -> None:
    prices = {
        "A": [(10.0, 10.0), (11.0, 12.0), (12.0, 12.5), (12.5, 13.0), (13.0, 12.0), (12.0, 11.5)],
        "B": [(20.0, 20.0), (19.0, 18.0), (18.0, 18.5), (17.0, 16.0), (16.5, 17.0), (17.0, 17.5)],
        "C": [(5.0, 5.0), (5.2, 5.4), (5.5, 5.3), (5.1, 5.0)],  # delisted after week 3
    }
    weekly = make_weekly(tiny_daily(prices))
    weeks = weekly.calendar
    plans = [{"A": 0.5, "B": -0.3, "C": 0.2}, {"A": 1.2, "B": -0.4, "C": 0.1}]

    def targets(week: pd.Timestamp, tickers: list[str]) -> dict[str, float]:
        return {t: w for t, w in plans[weeks.get_loc(week) % 2].items() if t in tickers}

    settings = {"cash": 10_000.0, "fill": fill, "costs": Costs(slippage_kind=kind, **ALL_COSTS)}
    whole, records = whole_and_resumed(weekly, Scripted(targets), **settings)
    assert [r.value for r in records] == whole.values.tolist()
    assert [r.cash for r in records[1:]] != [0.0] * (len(records) - 1)
    pd.testing.assert_frame_equal(order_frame([o for r in records for o in r.orders]), whole.orders)
    # Every cost was charged somewhere in the run.
    charged = whole.costs.sum()
    assert (charged[["borrow_fee", "cash_interest", "slippage"]] > 0).all()
    assert (whole.orders["status"] == "Delisted").sum() == 1


# --- summary.json --------------------------------------------------------------------------


def test_a_backtest_reports_its_costs_in_the_summary(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    header = "date,open,high,low,close,adj_close,volume\n"
    days = pd.bdate_range("2024-01-01", "2024-03-29")
    for name in ("A", "B", "IDX"):
        price = {"A": 10, "B": 20, "IDX": 100}[name]
        body = "".join(f"{d.date()},{price},{price},{price},{price},{price},100\n" for d in days)
        (folder / f"{name}.csv").write_text(header + body)
    cfg = load_config(
        None,
        [
            "data.source=csv",
            f"data.path={folder}",
            "data.benchmark=IDX",
            "data.start=2024-01-01",
            "data.end=2024-03-29",
            "backtest.start=2024-01-19",
            "backtest.end=2024-03-29",
            "backtest.min_history=1",
            "backtest.fill=close",
            "backtest.commission=0.001",
            "backtest.slippage=0.002",
            "backtest.cash_rate=0.04",
        ],
    )
    result = run_backtest(cfg, tmp_path / "ws")
    costs = result.summary.costs
    assert costs is not None
    assert (costs.commission, costs.slippage, costs.slippage_kind) == (0.001, 0.002, "perc")
    assert (costs.borrow_fee, costs.cash_rate, costs.margin_rate) == (0.0, 0.04, 0.0)
    orders = result.orders
    assert costs.commission_paid == pytest.approx(orders["commission"].sum())
    # Prices never move, so each fill's reference price is the ticker's one price (1/N buys a
    # little more every week with the interest).
    reference = orders["ticker"].map({"A": 10.0, "B": 20.0})
    slipped = ((orders["price"] - reference).abs() * orders["size"]).sum()
    assert costs.slippage_paid == pytest.approx(slipped)
    assert costs.slippage_paid == pytest.approx(0.002 * (orders["size"] * reference).sum())
    assert costs.cash_interest_earned is not None and costs.cash_interest_earned > 0
    assert costs.borrow_fees_paid == costs.margin_interest_paid == 0.0
    doc = result.summary.to_json()["costs"]
    assert doc["slippage_kind"] == "perc" and doc["cash_rate"] == 0.04
