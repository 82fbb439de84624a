"""The backtrader engine on hand-made weeks: exact fills, rejections, and the time contract."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simulator.backtest import run_backtest
from simulator.config import load_config
from simulator.data import make_weekly
from simulator.engine import order_frame, run_engine
from simulator.errors import StrategyError
from strategies.rebalance import Costs
from strategies.rule import History, State
from strategies.sizing import Limits
from tests.helpers import Scripted, whole_and_resumed

from .conftest import tiny_daily

# Week k opens at the first number and closes (every day) at the second.
PRICES = {
    "A": [(10.0, 10.0), (11.0, 12.0), (12.0, 12.0), (12.5, 13.0)],
    "B": [(20.0, 20.0), (19.0, 18.0), (18.0, 18.0), (17.0, 16.0)],
}


def run(targets: Mapping[str, float], fill: str, decisions: int = 1, prices=PRICES):  # type: ignore[no-untyped-def]
    weekly = make_weekly(tiny_daily(prices))
    weeks = weekly.calendar
    rule = Scripted(lambda w, t: dict(targets))
    return run_engine(weekly, weeks, weeks[:decisions], rule, cash=10_000.0, fill=fill)


def test_weeks_are_stamped_on_fridays() -> None:
    weekly = make_weekly(tiny_daily(PRICES))
    assert weekly.calendar.strftime("%a %Y-%m-%d").tolist() == [
        "Fri 2024-01-05",
        "Fri 2024-01-12",
        "Fri 2024-01-19",
        "Fri 2024-01-26",
    ]


def test_next_open_fills_at_the_following_weeks_open() -> None:
    res = run({"A": 0.5, "B": 0.5}, "next_open")
    fills = res.orders.set_index("ticker")
    # Decided at the close of 2024-01-05; sized and filled at the open of 2024-01-12.
    assert fills.loc["A", ["size", "price"]].tolist() == [454, 11.0]  # int(5000 / 11)
    assert fills.loc["B", ["size", "price"]].tolist() == [263, 19.0]  # int(5000 / 19)
    assert (fills["date_submitted"] == pd.Timestamp("2024-01-05")).all()
    assert (fills["date_filled"] == pd.Timestamp("2024-01-12")).all()
    cash = 10_000 - 454 * 11 - 263 * 19
    assert res.values.tolist() == pytest.approx(
        [10_000, cash + 454 * 12 + 263 * 18, cash + 454 * 12 + 263 * 18, cash + 454 * 13 + 263 * 16]
    )


def test_close_fills_at_the_decision_weeks_close() -> None:
    res = run({"A": 0.5, "B": 0.5}, "close")
    fills = res.orders.set_index("ticker")
    assert fills.loc["A", ["size", "price"]].tolist() == [500, 10.0]
    assert fills.loc["B", ["size", "price"]].tolist() == [250, 20.0]
    assert (fills["date_filled"] == pd.Timestamp("2024-01-05")).all()
    assert res.values.tolist() == pytest.approx([10_000, 10_500, 10_500, 500 * 13 + 250 * 16])
    # Weights after the week's fills, valued at that week's close.
    assert res.weights.loc["2024-01-05"].tolist() == pytest.approx([0.5, 0.5])
    assert res.weights.loc["2024-01-12"].tolist() == pytest.approx([6000 / 10_500, 4500 / 10_500])


def test_sells_go_before_buys_and_shorts_are_allowed() -> None:
    weekly = make_weekly(tiny_daily(PRICES))
    weeks = weekly.calendar
    plan = {weeks[0]: {"A": 0.5, "B": 0.5}, weeks[1]: {"A": 0.9, "B": -0.1}}
    rule = Scripted(lambda w, t: plan[w])
    res = run_engine(weekly, weeks, weeks[:2], rule, cash=10_000.0, fill="close")
    second = res.orders[res.orders["date_submitted"] == weeks[1]]
    assert second["side"].tolist() == ["sell", "buy"]
    # V = 10500 at the close of week 1: B to int(-1050 / 18) = -58 shares, A to int(9450 / 12).
    assert second["size"].tolist() == [250 + 58, 787 - 500]
    assert (second["status"] == "Completed").all()


def test_a_buy_the_cash_cannot_pay_is_rejected_and_logged() -> None:
    res = run({"A": 0.8, "B": 0.8}, "close")
    rows = res.orders.set_index("ticker")
    assert rows.loc["A", "status"] == "Completed"
    assert rows.loc["B", "status"] == "Margin"
    assert rows.loc["B", ["side", "size"]].tolist() == ["buy", 400]
    assert pd.isna(rows.loc["B", "date_filled"])


def test_longs_funded_by_shorts_give_up_the_shares_rounding_cannot_pay() -> None:
    prices = {"A": [(10.0, 10.0), (10.0, 10.0)], "B": [(30.0, 30.0), (30.0, 30.0)]}
    res = run({"A": 1.25, "B": -0.25}, "close", prices=prices)
    rows = res.orders.set_index("ticker")
    # B to int(-2500 / 30) = -83 raises 2490, not 2500: the 1250 A shares would cost 10 more
    # than the cash; one share fewer of the largest buy pays for it instead of a Margin reject.
    assert rows.loc["B", ["side", "size", "status"]].tolist() == ["sell", 83, "Completed"]
    assert rows.loc["A", ["side", "size", "status"]].tolist() == ["buy", 1249, "Completed"]
    assert res.values.iloc[-1] == pytest.approx(10_000.0)
    assert res.weights.iloc[0].tolist() == pytest.approx([0.1249 * 10, -0.249])


def test_commission_is_charged_and_cash_reserved() -> None:
    weekly = make_weekly(tiny_daily(PRICES))
    weeks = weekly.calendar
    res = run_engine(
        weekly,
        weeks,
        weeks[:1],
        Scripted(lambda w, t: {"A": 1.0}),
        cash=10_000.0,
        fill="close",
        costs=Costs(commission=0.01),
    )
    fill = res.orders.iloc[0]
    # 10000 * 1% of cost reserved: int(9900 / 10) = 990 shares, commission 1% of 9900.
    assert (fill["size"], fill["status"]) == (990, "Completed")
    assert fill["commission"] == pytest.approx(99.0)


def test_future_prices_do_not_move_earlier_decisions_or_orders() -> None:
    seen: list[tuple[pd.Timestamp, tuple[str, ...]]] = []

    def decide(week: pd.Timestamp, tickers: list[str]) -> dict[str, float]:
        seen.append((week, tuple(tickers)))
        return {t: 1 / len(tickers) for t in tickers}

    base = {k: list(v) for k, v in PRICES.items()}
    changed = {k: [*v[:2], (99.0, 1.0), (1.0, 77.0)] for k, v in PRICES.items()}
    results = []
    for prices in (base, changed):
        seen.clear()
        weekly = make_weekly(tiny_daily(prices))
        weeks = weekly.calendar
        for fill in ("close", "next_open"):
            res = run_engine(weekly, weeks, weeks[:3], Scripted(decide), cash=10_000.0, fill=fill)
            results.append((fill, list(seen), res))
    week1 = pd.Timestamp("2024-01-12")
    for (fill, seen_a, a), (_, seen_b, b) in zip(results[:2], results[2:], strict=True):
        assert [s for s in seen_a if s[0] <= week1] == [s for s in seen_b if s[0] <= week1]
        # Orders filled up to week 1 (decided up to week 1 with close fills, up to week 0 with
        # next-open fills) and the values up to week 1 are identical.
        early_a = a.orders[a.orders["date_filled"] <= week1].reset_index(drop=True)
        early_b = b.orders[b.orders["date_filled"] <= week1].reset_index(drop=True)
        assert len(early_a) > 0
        pd.testing.assert_frame_equal(early_a, early_b)
        pd.testing.assert_series_equal(a.values.loc[:week1], b.values.loc[:week1])
        pd.testing.assert_frame_equal(a.weights.loc[:week1], b.weights.loc[:week1])
        assert fill in {"close", "next_open"}


def test_late_listing_joins_and_untraded_week_is_logged() -> None:
    prices = {"A": PRICES["A"], "B": PRICES["B"]}
    daily = tiny_daily(prices)
    # B has no trading days in week 2 (a halt): no bar, nothing invented.
    b = daily.assets["B"]
    halted = b[(b.index < "2024-01-15") | (b.index > "2024-01-19")]
    weekly = make_weekly(
        type(daily)({"A": daily.assets["A"], "B": halted}, daily.benchmark, None, "", "test")
    )
    weeks = weekly.calendar
    res = run_engine(
        weekly,
        weeks,
        weeks[:3],
        Scripted(lambda w, t: dict.fromkeys(t, 0.5)),  # B has no bar, so no weight, in week 2
        cash=10_000.0,
        fill="next_open",
    )
    nobar = res.orders[res.orders["status"] == "NoBar"]
    assert nobar["ticker"].tolist() == ["B"]
    assert nobar["date_submitted"].tolist() == [pd.Timestamp("2024-01-12")]


@pytest.mark.slow
def test_equal_weight_matches_vectorised_mean_of_returns(tmp_path: Path) -> None:
    """With close fills and no costs, 1/N's weekly return is the tickers' mean weekly return,
    to whole-share rounding of $10M."""
    cfg = load_config(
        None,
        [
            "data.start=2015-01-01",
            "backtest.start=2016-01-01",
            "backtest.end=2022-12-31",
            "backtest.fill=close",
            "strategy.max_weight=1.0",
        ],
    )
    result = run_backtest(cfg, tmp_path)
    from simulator.data import load_daily

    closes = make_weekly(load_daily(cfg.data, 0.0, tmp_path)).closes()
    vectorised = closes.pct_change().mean(axis=1).reindex(result.returns.index)
    diff = (result.returns["strategy"] - vectorised).abs()
    assert len(diff) > 300
    assert diff.max() < 1e-4
    assert np.allclose(result.returns["equal_weight"], result.returns["strategy"])
    assert (result.orders["status"] == "Completed").all()


@pytest.mark.parametrize("fill", ["close", "next_open"])
def test_a_run_resumed_week_by_week_equals_one_run(fill: str) -> None:
    """Cut into one-week pieces (each resumed from the previous piece's last WeekRecord), a run
    gives the same values and orders to the last bit: shorts, commission, and a held ticker
    halted in the very week a piece resumes from (its last bar comes from before)."""
    prices = {
        "A": [(10.0, 10.0), (11.0, 12.0), (12.0, 12.5), (12.5, 13.0), (13.0, 12.0), (12.0, 11.5)],
        "B": [(20.0, 20.0), (19.0, 18.0), (18.0, 18.5), (17.0, 16.0), (16.5, 17.0), (17.0, 17.5)],
        "C": [(5.0, 5.0), (5.2, 5.4), (5.5, 5.3), (5.1, 5.0), (5.0, 5.6), (5.7, 5.9)],
    }
    daily = tiny_daily(prices)
    b = daily.assets["B"]
    halted = b[(b.index < "2024-01-15") | (b.index > "2024-01-19")]  # no bar in week 2
    assets = {**daily.assets, "B": halted}
    weekly = make_weekly(type(daily)(assets, daily.benchmark, None, "", "test"))
    weeks = weekly.calendar
    # With fill="close" B is short in its halted week: the budget there needs its last close.
    plans = [{"A": 0.5, "B": 0.3, "C": 0.2}, {"A": -0.2, "B": -0.4, "C": 0.4}]

    def targets(week: pd.Timestamp, tickers: list[str]) -> dict[str, float]:
        return {t: w for t, w in plans[weeks.get_loc(week) % 2].items() if t in tickers}

    settings = {"cash": 10_000.0, "fill": fill, "costs": Costs(commission=0.002)}
    whole, records = whole_and_resumed(weekly, Scripted(targets), **settings)
    assert records[2].holdings["B"][0] != 0  # B is held in its halted week 2, resumed from
    assert [r.value for r in records] == whole.values.tolist()
    rows = order_frame([o for r in records for o in r.orders])
    pd.testing.assert_frame_equal(rows, whole.orders)
    # Decided at week 1, B's order meets no bar at week 2's open (next_open fills only).
    assert (whole.orders["status"] == "NoBar").sum() == (fill == "next_open")


class Peeker:
    """A rule that tries to read next week's close and the whole calendar."""

    name = "peeker"

    def __init__(self) -> None:
        self.seen: list[tuple[pd.Timestamp, pd.Timestamp, int]] = []

    def decide(self, week: pd.Timestamp, history: History, state: State) -> dict[str, float]:
        tomorrow = week + pd.Timedelta(weeks=1)
        assert history.closes.loc[tomorrow:].empty  # nothing past t, however it asks
        with pytest.raises(KeyError):
            history.closes.loc[tomorrow]
        self.seen.append((week, history.closes.index[-1], len(history.closes)))
        return dict.fromkeys(history.tradable, 0.25)


def test_a_rule_that_reads_tomorrow_gets_nothing_past_t() -> None:
    weekly = make_weekly(tiny_daily(PRICES))
    weeks = weekly.calendar
    rule = Peeker()
    run_engine(weekly, weeks, weeks[:3], rule, cash=10_000.0, fill="close")
    assert rule.seen == [(w, w, i + 1) for i, w in enumerate(weeks[:3])]


def test_the_rule_sees_the_account_before_its_decision() -> None:
    weekly = make_weekly(tiny_daily(PRICES))
    weeks = weekly.calendar
    states: list[State] = []

    def targets(week: pd.Timestamp, tickers: list[str]) -> dict[str, float]:
        return {"A": 0.5}

    class Recorder(Scripted):
        def decide(self, week: pd.Timestamp, history: History, state: State):  # type: ignore[no-untyped-def]
            states.append(state)
            return super().decide(week, history, state)

    run_engine(weekly, weeks, weeks[:2], Recorder(targets), cash=10_000.0, fill="close")
    assert states[0] == State(10_000.0, 10_000.0, {})
    # 500 A shares bought at 10 at week 0's close; week 1 closes A at 12.
    assert states[1] == State(5_000.0, 11_000.0, {"A": 500.0})


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({"A": float("nan")}, "weight nan of A is not a finite number"),
        ({"A": 0.5}, "weight 0.5 of A breaks the cap of 0.3333 per ticker"),
        ({"Z": 0.1}, "weight 0.1 on 'Z', which is not tradable this week"),
        ({"A": -0.1}, "weight -0.1 of A is a short, and shorts are off"),
        ({"A": "x"}, "weight 'x' of A is not a number"),
    ],
)
def test_an_answer_that_breaks_the_rules_stops_the_run_naming_rule_and_week(
    weights: dict[str, float], message: str
) -> None:
    weekly = make_weekly(tiny_daily(PRICES))
    weeks = weekly.calendar
    rule = Scripted(lambda w, t: weights, name="mine")
    with pytest.raises(StrategyError) as err:
        run_engine(
            weekly,
            weeks,
            weeks[:2],
            rule,
            cash=10_000.0,
            fill="close",
            limits=Limits(allow_short=False),
        )
    assert str(err.value).startswith(
        f"strategy 'mine', decision of the week of 2024-01-05: {message}"
    )


# --- a delisted ticker: its data end before the data set's ----------------------------------

#: B's data end after week 2 (2024-01-19); A (and the index) go on to week 4.
DELISTING = {
    "A": [(10.0, 10.0)] * 5,
    "B": [(20.0, 20.0), (20.0, 25.0), (25.0, 30.0)],
}


def delisting_run(fill: str, **kwargs):  # type: ignore[no-untyped-def]
    weekly = make_weekly(tiny_daily(DELISTING))
    weeks = weekly.calendar
    rule = Scripted(lambda w, t: dict.fromkeys(t, 0.5))
    costs = Costs(**kwargs)
    return weeks, run_engine(weekly, weeks, weeks[:-1], rule, cash=10_000.0, fill=fill, costs=costs)


def test_a_delisted_position_is_closed_at_its_last_close_with_close_fills() -> None:
    weeks, res = delisting_run("close")
    # w0: 500 A at 10, 250 B at 20. w1 (B 25, V 11250): B -25, A +62, cash 5. w2 (B 30,
    # V 12375): B to int(6187.5 / 30) = 206 (-19), A to 618 (+56), cash 15. w3: B has no bar
    # and never will: its 206 shares are sold at its last close, 30; A stays at 618.
    delisted = res.orders[res.orders["status"] == "Delisted"]
    assert delisted[["ticker", "side", "size", "price", "value"]].values.tolist() == [
        ["B", "sell", 206, 30.0, 6180.0]
    ]
    assert delisted["date_submitted"].tolist() == [weeks[3]]
    assert delisted["date_filled"].tolist() == [weeks[3]]
    assert res.values.tolist() == [10_000.0, 11_250.0, 12_375.0, 12_375.0, 12_375.0]
    assert res.weights["B"].tolist() == pytest.approx([0.5, 5625 / 11_250, 6180 / 12_375, 0, 0])
    assert res.weights["A"].iloc[3:].tolist() == pytest.approx([6180 / 12_375] * 2)
    later = res.orders[res.orders["date_submitted"] > weeks[2]]
    assert later["status"].tolist() == ["Delisted"]  # no order, no NoBar row for B after


def test_a_delisted_position_is_closed_at_its_last_close_with_next_open_fills() -> None:
    weeks, res = delisting_run("next_open")
    # w1 open: 500 A, 250 B. w2 open (B 25): B -25, A +62, cash 5. w3 open: B, decided at
    # w2, has no bar (NoBar); A is sized on the budget less B's value (12375 - 225 x 30):
    # int(2812.5 / 10) = 281, a sale of 281. w3 close: B's 225 shares are sold at 30, cash
    # 2815 + 6750 = 9565. w4 open: A to int(6187.5 / 10) = 618, +337.
    rows = res.orders
    assert rows[rows["status"] == "NoBar"]["ticker"].tolist() == ["B"]
    delisted = rows[rows["status"] == "Delisted"]
    assert delisted[["ticker", "side", "size", "price", "value"]].values.tolist() == [
        ["B", "sell", 225, 30.0, 6750.0]
    ]
    assert delisted["date_filled"].tolist() == [weeks[3]]
    last = rows[(rows["date_submitted"] == weeks[3]) & (rows["status"] == "Completed")]
    assert last[["ticker", "side", "size", "price"]].values.tolist() == [["A", "buy", 337, 10.0]]
    assert res.values.tolist() == [10_000.0, 11_250.0, 12_375.0, 12_375.0, 12_375.0]
    assert res.weights["B"].iloc[3:].tolist() == [0.0, 0.0]


def test_a_delisting_costs_commission_booked_the_week_after() -> None:
    _, res = delisting_run("close", commission=0.001)
    delisted = res.orders[res.orders["status"] == "Delisted"].iloc[0]
    assert delisted["commission"] == pytest.approx(0.001 * delisted["value"])
    values = res.values.tolist()
    assert values[4] == pytest.approx(values[3] - delisted["commission"])


@pytest.mark.parametrize("fill", ["close", "next_open"])
def test_a_run_with_a_delisting_resumed_week_by_week_equals_one_run(fill: str) -> None:
    weekly = make_weekly(tiny_daily(DELISTING))
    decide = Scripted(lambda w, t: dict.fromkeys(t, 0.5))
    settings = {"cash": 10_000.0, "fill": fill, "costs": Costs(commission=0.002)}
    whole, records = whole_and_resumed(weekly, decide, **settings)
    assert "B" not in records[3].holdings  # closed in week 3, before its record
    assert [r.value for r in records] == whole.values.tolist()
    pd.testing.assert_frame_equal(order_frame([o for r in records for o in r.orders]), whole.orders)
    assert (whole.orders["status"] == "Delisted").sum() == 1


def test_a_backtest_lists_its_delistings_and_does_not_count_them_as_rejected(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    header = "date,open,high,low,close,adj_close,volume\n"
    days = pd.bdate_range("2024-01-01", "2024-03-29")
    for name, last in (("A", days[-1]), ("B", pd.Timestamp("2024-02-16")), ("IDX", days[-1])):
        body = "".join(f"{d.date()},10,10,10,10,10,100\n" for d in days if d <= last)
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
        ],
    )
    result = run_backtest(cfg, tmp_path / "ws")
    assert result.summary.delisted == {"B": pd.Timestamp("2024-02-23").date()}
    # The one order not filled is B's of the week of its last bar, which meets no bar at the
    # next open (NoBar); the Delisted row counts as filled.
    statuses = result.orders["status"].value_counts().to_dict()
    assert statuses["NoBar"] == statuses["Delisted"] == result.summary.orders_rejected == 1
    assert result.summary.orders_filled == len(result.orders) - 1
    assert result.summary.to_json()["delisted"] == {"B": "2024-02-23"}
