"""Investor profiles (``strategies.profile``, ``[profile]``): limits, guard, bounds, replay.

- Config: the presets' documented limits, field overrides, ``0`` turning the volatility target
  or the drawdown stop off, ``custom`` starting from ``[strategy]``, no ``[profile]`` -> None,
  bad values and an unknown excluded ticker refused in one line (exit 2).
- The guard on hand-made weeks: the drawdown stop fires in the week computed by hand, the
  account is in cash from that decision on, and trading resumes after ``resume_after`` weeks
  (or at a retrain week); the volatility target scales by exactly ``target / vol`` with the
  volatility computed by hand; ``excluded`` rows in each week the ticker could trade; ``cap``
  rows for the names at the cap.
- Each preset's limits hold in every week of a backtest on paper12 (1/N and the LSTM): the
  guard's targets exactly, weights.csv to whole-share rounding, excluded tickers never traded.
- summary.json's weeks_bound equals bounds.csv's distinct weeks per reason, and the tear sheet
  shows them; a paper account with a profile stepped in uneven chunks equals the backtest
  (returns, orders, bounds), both fill modes.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simulator import accounts
from simulator.backtest import run_backtest
from simulator.config import load_config
from simulator.data import DailyData, WeeklyData, load_daily, make_weekly
from simulator.engine import EngineResult, run_engine
from simulator.errors import ConfigError
from simulator.report import write_run
from simulator.sections import PROFILE_REASONS
from simulator.workspace import workspace_dir
from strategies.profile import (
    PRESETS,
    REASONS,
    Profile,
    ProfileGuard,
    name_volatility,
    portfolio_volatility,
)
from strategies.risk import portfolio_cvar
from strategies.rule import Decision, DecisionRule, History, State, as_decision
from strategies.sizing import Limits
from tests.conftest import PAPER12, PAPER_CONFIG, PAPER_FAST, PaperModel, tiny_daily
from tests.helpers import (
    FIRST_WEEK,
    LAST_WEEK,
    Scripted,
    advance,
    ask,
    assert_journal_is_the_backtest,
    assert_nothing_written,
    cli,
    error_line,
    ew_config,
    open_new,
    sets,
)

#: examples/paper2023.toml offline on paper12, as a 1/N run.
EQUAL = ["data.source=csv", f"data.path={PAPER12}", "backtest.strategy=equal_weight"]
EXCLUDE = frozenset({"TSLA", "NVDA"})
#: Float noise of the sizing rule's arithmetic (its cap check itself allows 1e-12).
TIGHT = 1e-12
#: Realised weights (weights.csv) are whole shares on $10M: the engine rounds every target
#: toward zero, so a realised |weight| is below its target by less than one share's price over
#: the account; no paper12 close of 2022-23 reaches $1,000, i.e. 1e-4 of $10M. A realised
#: weight can therefore never pass a limit by more than float noise; 1e-4 is the brief's bound.
SHARES = 1e-4


def one_over_n(week: pd.Timestamp, tickers: list[str]) -> dict[str, float]:
    """A plain 1/N decision (no cap): 1 / len(tickers) each."""
    return {t: 1.0 / len(tickers) for t in tickers}


# --- 1. config ------------------------------------------------------------------------------


def profile_of(*items: str) -> Profile | None:
    return load_config(PAPER_CONFIG, list(items)).investor_profile()


@pytest.mark.parametrize(
    ("name", "limits", "vol_target", "horizon", "name_vol"),
    [
        ("conservative", Limits(0.15, 0.6, False), 0.10, 156, 0.35),
        ("moderate", Limits(0.25, 1.0, False), 0.15, 104, 0.50),
        ("aggressive", Limits(1 / 3, 1.0, True), None, 52, None),
    ],
)
def test_presets_have_their_documented_limits(
    name: str, limits: Limits, vol_target: float | None, horizon: int, name_vol: float | None
) -> None:
    expected = Profile(
        name, limits, horizon_weeks=horizon, vol_target=vol_target, max_name_vol=name_vol
    )
    assert PRESETS[name] == expected
    got = profile_of(f"profile.name={name}")
    assert got == expected
    assert got.max_drawdown is None and got.exclude == frozenset()
    assert got.max_cvar_95 is None  # no preset has a CVaR limit
    assert (got.vol_window, got.cvar_window, got.resume_after) == (26, 52, 13)


def test_profile_fields_override_the_preset() -> None:
    got = profile_of("profile.name=moderate", "profile.max_weight=0.2")
    assert got == replace(PRESETS["moderate"], limits=Limits(0.2, 1.0, False))
    got = profile_of(
        "profile.name=conservative",
        "profile.allow_short=true",
        "profile.gross=0.5",
        "profile.horizon_weeks=26",
        "profile.max_drawdown=0.2",
        "profile.exclude= tsla, nvda",
    )
    assert got == Profile(
        "conservative",
        Limits(0.15, 0.5, True),
        horizon_weeks=26,
        vol_target=0.10,
        max_drawdown=0.2,
        exclude=frozenset({"TSLA", "NVDA"}),
        max_name_vol=0.35,
    )


def test_zero_turns_the_vol_target_and_the_drawdown_stop_off() -> None:
    got = profile_of(
        "profile.name=moderate",
        "profile.vol_target=0",
        "profile.max_drawdown=0",
        "profile.max_name_vol=0",
    )
    off = {"vol_target": None, "max_drawdown": None, "max_name_vol": None}
    assert got == replace(PRESETS["moderate"], **off)
    assert profile_of("profile.name=aggressive", "profile.max_name_vol=0.4") == replace(
        PRESETS["aggressive"], max_name_vol=0.4
    )
    custom = profile_of("profile.name=custom", "profile.vol_target=0", "profile.max_drawdown=0")
    assert custom is not None
    assert (custom.vol_target, custom.max_drawdown) == (None, None)
    with_cvar = profile_of("profile.name=moderate", "profile.max_cvar_95=0.03")
    assert with_cvar == replace(PRESETS["moderate"], max_cvar_95=0.03)
    assert profile_of("profile.name=moderate", "profile.max_cvar_95=0") == PRESETS["moderate"]


def test_custom_starts_from_the_strategy_limits_and_no_profile_is_none() -> None:
    strategy = ["strategy.max_weight=0.2", "strategy.gross=0.8", "strategy.allow_short=false"]
    assert profile_of(*strategy) is None  # no [profile]: [strategy]'s limits, no guard
    assert profile_of() is None
    assert profile_of(*strategy, "profile.name=custom") == Profile(
        "custom", Limits(0.2, 0.8, False)
    )
    # A field changes only itself; a field without a name is a custom profile too.
    assert profile_of(*strategy, "profile.gross=0.5", "profile.vol_target=0.12") == Profile(
        "custom", Limits(0.2, 0.5, False), vol_target=0.12
    )
    assert profile_of(*strategy, "profile.exclude=TSLA") == Profile(
        "custom", Limits(0.2, 0.8, False), exclude=frozenset({"TSLA"})
    )


def test_a_profile_table_in_a_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "alice.toml"
    path.write_text(
        PAPER_CONFIG.read_text()
        + '\n[profile]\nname = "aggressive"\nmax_drawdown = 0.25\nexclude = ["tsla"]\n'
    )
    got = load_config(path).investor_profile()
    assert got == replace(PRESETS["aggressive"], max_drawdown=0.25, exclude=frozenset({"TSLA"}))


@pytest.mark.parametrize(
    ("item", "words"),
    [
        ("profile.max_drawdown=1.5", "profile.max_drawdown: Input should be less than 1"),
        ("profile.max_drawdown=-0.1", "profile.max_drawdown"),
        ("profile.vol_target=2.5", "profile.vol_target"),
        ("profile.max_cvar_95=1.5", "profile.max_cvar_95: Input should be less than or equal to 1"),
        ("profile.max_cvar_95=-0.01", "profile.max_cvar_95: Input should be greater than or equal"),
        ("profile.max_cvar_95=nan", "profile.max_cvar_95"),
        ("profile.max_cvar_95=high", "profile.max_cvar_95: Input should be a valid number"),
        ("profile.max_weight=0", "profile.max_weight"),
        ("profile.name=reckless", "profile.name: Input should be"),
        ("profile.resume_after=3", "unknown field 'profile.resume_after'"),
    ],
)
def test_bad_profile_values_are_one_line_config_errors(
    item: str,
    words: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(ConfigError, match=re.escape(words)) as caught:
        load_config(PAPER_CONFIG, [item])
    assert "\n" not in str(caught.value)
    out = tmp_path / "run"
    argv = ["backtest", str(PAPER_CONFIG), *sets([*EQUAL, item]), "--out", str(out)]
    assert cli(argv, monkeypatch) == 2
    assert words in error_line(capsys)
    assert_nothing_written(out)


def test_an_unknown_excluded_ticker_is_refused_in_one_line(
    paper12: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    words = "profile.exclude: TSLAA not among the data's tickers"
    cfg = load_config(PAPER_CONFIG, [*EQUAL, "profile.exclude=TSLA,TSLAA"])
    with pytest.raises(ConfigError, match=re.escape(words)) as caught:
        run_backtest(cfg, tmp_path)
    assert "'TSLA'" in str(caught.value) and "\n" not in str(caught.value)  # did you mean
    out = tmp_path / "run"
    items = [*EQUAL, "profile.name=moderate", "profile.exclude=TSLA,TSLAA"]
    assert cli(["backtest", str(PAPER_CONFIG), *sets(items), "--out", str(out)], monkeypatch) == 2
    line = error_line(capsys)
    assert words in line and "'TSLA'" in line
    assert_nothing_written(out)


def test_a_paper_account_refuses_an_unknown_excluded_ticker(paper12: Path) -> None:
    cfg = ew_config("profile.name=moderate", "profile.exclude=TSLAA")
    with pytest.raises(ConfigError, match="TSLAA"):
        open_new(workspace_dir(), "typo", cfg)
        advance(workspace_dir(), "typo", weeks=2)


# --- 2. the guard on hand-made weeks --------------------------------------------------------

#: Closes of ticker A, one a week (opens equal closes; fills are at the close). From $10,000
#: all in A: 100 shares, equity 10000, 11000, 12500 (the peak), 10500 (-16%: no stop at 20%),
#: 9500 in week 4 (-24% <= -20%: the stop fires there). The account then holds cash, 9500,
#: whatever A does, until trading resumes.
CRASH = [100.0, 110.0, 125.0, 105.0, 95.0, 80.0, 70.0, 75.0, 80.0, 85.0, 90.0]
CRASH += [95.0, 100.0, 95.0, 90.0, 95.0, 100.0, 95.0, 100.0, 105.0, 110.0, 115.0]
FIRED = "equity 9500.00 is 24.00% below its peak"
IN_CASH = "in cash until trading resumes"


def hand_weekly(closes: Mapping[str, list[float]]) -> WeeklyData:
    return make_weekly(tiny_daily({t: [(c, c) for c in cs] for t, cs in closes.items()}))


def guarded_run(
    weekly: WeeklyData, profile: Profile, resets: Collection[pd.Timestamp] | None = None
) -> tuple[ProfileGuard, EngineResult]:
    """A backtest's wiring by hand: the 1/N decision in a guard that observes the equity."""
    weeks = weekly.calendar
    guard = ProfileGuard(Scripted(one_over_n), profile, resets)
    result = run_engine(
        weekly, weeks, weeks[:-1], guard, cash=10_000.0, fill="close", observe=guard.observe
    )
    return guard, result


def fills(o: pd.DataFrame) -> list[tuple[pd.Timestamp, str, str, float, float]]:
    """The filled orders as ``(week, ticker, side, shares, price)``."""
    assert (o["status"] == "Completed").all()
    assert (o["date_submitted"] == o["date_filled"]).all()  # fill = close
    cols = ["date_submitted", "ticker", "side", "size", "price"]
    return [tuple(r) for r in o[cols].itertuples(index=False)]


def test_drawdown_stop_fires_in_the_hand_computed_week_and_resumes_after_resume_after() -> None:
    weekly = hand_weekly({"A": CRASH})
    w = weekly.calendar
    profile = Profile("custom", Limits(1.0, 1.0, False), max_drawdown=0.2, resume_after=3)
    guard, res = guarded_run(weekly, profile)
    # Weeks 4, 5, 6 in cash (the stop's week and 2 more); week 7 = 4 + resume_after trades
    # again: int(9500 / 75) = 126 shares, 50 in cash; then 126 * close + 50 (A never falls 20%
    # below the new peak 12650 of week 12, which was reset to 9500 when trading resumed).
    held = [126 * c + 50 for c in CRASH[7:]]
    assert res.values.tolist() == [10_000, 11_000, 12_500, 10_500, 9_500, 9_500, 9_500, *held]
    assert fills(res.orders) == [
        (w[0], "A", "buy", 100, 100.0),
        (w[4], "A", "sell", 100, 95.0),  # the stop's decision: all to cash at the close
        (w[7], "A", "buy", 126, 75.0),
    ]
    assert res.weights["A"].iloc[4:7].tolist() == [0.0, 0.0, 0.0]
    assert res.weights["A"].iloc[3] == 1.0
    assert res.weights["A"].iloc[7] == pytest.approx(126 * 75 / 9_500, rel=1e-15)
    # 1/N of one name is 1.0, the cap 1.0: a cap row in every week it trades.
    cap = "|weight| 1.0000 at the cap 1.0000"
    assert guard.rows == [
        *[(w[i], "cap", "A", cap) for i in range(0, 4)],
        (w[4], "drawdown_stop", "", FIRED),
        (w[5], "drawdown_stop", "", IN_CASH),
        (w[6], "drawdown_stop", "", IN_CASH),
        *[(w[i], "cap", "A", cap) for i in range(7, len(w) - 1)],  # the last week decides nothing
    ]
    assert not guard.stopped


def test_a_retrain_week_ends_the_drawdown_stop() -> None:
    weekly = hand_weekly({"A": CRASH})
    w = weekly.calendar
    profile = Profile("custom", Limits(1.0, 1.0, False), max_drawdown=0.2, resume_after=3)
    # A new model decides from week 9 (week 2's, before the stop, ends nothing): the stop
    # holds past resume_after (week 7) to week 9: int(9500 / 85) = 111 shares, 65 in cash.
    guard, res = guarded_run(weekly, profile, resets=[w[2], w[9]])
    assert res.values.tolist()[:10] == [10_000, 11_000, 12_500, 10_500, *[9_500] * 6]
    assert res.values.tolist()[10:] == [111 * c + 65 for c in CRASH[10:]]
    assert fills(res.orders) == [
        (w[0], "A", "buy", 100, 100.0),
        (w[4], "A", "sell", 100, 95.0),
        (w[9], "A", "buy", 111, 85.0),
    ]
    stops = [r for r in guard.rows if r[1] == "drawdown_stop"]
    assert stops == [(w[4], "drawdown_stop", "", FIRED)] + [
        (w[i], "drawdown_stop", "", IN_CASH) for i in range(5, 9)
    ]


def write_csv_folder(daily: DailyData, folder: Path) -> Path:
    """``daily`` as a folder of paper12-format CSV files (the benchmark as IDX.csv)."""
    folder.mkdir()
    frames = {**daily.assets, "IDX": daily.benchmark.to_frame("close")}
    for name, frame in frames.items():
        out = frame.reindex(columns=["open", "high", "low", "close"]).copy()
        out = out.fillna({c: frame["close"] for c in ("open", "high", "low")})
        out["adj_close"] = out["close"]
        out["volume"] = frame.get("volume", 0.0)
        out.rename_axis("date").to_csv(folder / f"{name}.csv", date_format="%Y-%m-%d")
    return folder


def test_a_backtest_goes_to_cash_at_the_stop_for_13_weeks(tmp_path: Path) -> None:
    """run_backtest's wiring on the crash: the engine feeds the equity to the guard, and
    without retraining the stop lasts resume_after = 13 weeks (no [profile] field for it)."""
    folder = write_csv_folder(tiny_daily({"A": [(c, c) for c in CRASH]}), tmp_path / "crash")
    cfg = load_config(
        None,
        [
            "data.source=csv",
            f"data.path={folder}",
            "data.benchmark=IDX",
            "data.start=2024-01-01",
            "data.end=2024-06-28",
            "backtest.start=2024-01-01",
            "backtest.end=2024-06-28",
            "backtest.fill=close",
            "backtest.cash=10000",
            "backtest.min_history=1",
            "strategy.max_weight=1.0",
            "strategy.allow_short=false",
            "profile.name=custom",
            "profile.max_drawdown=0.2",
        ],
    )
    result = run_backtest(cfg, tmp_path / "ws")
    w = pd.DatetimeIndex(result.weights["date"].unique())
    weeks = pd.DatetimeIndex([pd.Timestamp("2024-01-05"), *result.returns.index])
    assert len(weeks) == len(CRASH)
    # Cash from week 4 through week 16; week 17 = 4 + 13 buys int(9500 / 95) = 100 shares.
    values = [10_000, 11_000, 12_500, 10_500, *[9_500] * 14, *[100 * c for c in CRASH[18:]]]
    equity = 10_000 * (1 + result.returns["strategy"]).cumprod()
    assert equity.tolist() == pytest.approx(values[1:], rel=1e-12)
    assert result.summary.final_value == 11_500
    assert fills(result.orders) == [
        (weeks[0], "A", "buy", 100, 100.0),
        (weeks[4], "A", "sell", 100, 95.0),
        (weeks[17], "A", "buy", 100, 95.0),
    ]
    assert w.equals(weeks[[0, 1, 2, 3, *range(17, len(weeks))]])  # no holdings while stopped
    assert result.bounds is not None
    stops = result.bounds[result.bounds["reason"] == "drawdown_stop"]
    assert stops["week"].tolist() == list(weeks[4:17])
    assert stops["detail"].tolist() == [FIRED] + [IN_CASH] * 12
    assert result.summary.profile.weeks_bound == {
        "excluded": 0,
        "name_vol": 0,
        "cap": 8,  # 1/N of one name is the cap 1.0: weeks 0-3 and 17-20 (21 decides nothing)
        "vol_target": 0,
        "cvar_limit": 0,
        "drawdown_stop": 13,
    }


def test_the_stop_week_has_one_drawdown_row_with_an_excluded_ticker() -> None:
    weekly = hand_weekly({"A": CRASH, "B": [50.0] * len(CRASH)})
    w = weekly.calendar
    profile = Profile(
        "custom",
        Limits(1.0, 1.0, False),
        max_drawdown=0.2,
        resume_after=3,
        exclude=frozenset({"B"}),
    )
    guard, res = guarded_run(weekly, profile)
    assert res.values.iloc[4] == 9_500  # the same run as without B
    stops = [(r[0], r[3]) for r in guard.rows if r[1] == "drawdown_stop"]
    assert stops == [(w[4], FIRED), (w[5], IN_CASH), (w[6], IN_CASH)]


def test_excluded_rows_in_each_week_the_ticker_could_trade() -> None:
    daily = tiny_daily(
        {
            "A": [(10.0, 10.0), (11.0, 12.0), (12.0, 12.0), (12.5, 13.0), (13.0, 13.0)],
            "B": [(20.0, 20.0), (19.0, 18.0), (18.0, 18.0), (17.0, 16.0), (16.0, 16.0)],
            "C": [(5.0, 5.0), (5.0, 6.0), (6.0, 7.0), (7.0, 8.0), (8.0, 9.0)],
        }
    )
    c = daily.assets["C"]
    halted = c[(c.index < "2024-01-15") | (c.index > "2024-01-19")]  # no bar in week 2
    weekly = make_weekly(DailyData({**daily.assets, "C": halted}, daily.benchmark, None, "", "t"))
    w = weekly.calendar
    profile = Profile("custom", Limits(1.0, 1.0, False), exclude=frozenset({"C"}))
    guard, res = guarded_run(weekly, profile)
    # Decisions at weeks 0-3; C has a bar in 0, 1 and 3 (halted in 2): a row each.
    assert guard.rows == [(w[i], "excluded", "C", "excluded by the profile") for i in (0, 1, 3)]
    assert "C" not in set(res.orders["ticker"])
    assert (res.weights["C"] == 0.0).all()
    assert (res.weights[["A", "B"]].iloc[:4] > 0.49).all().all()  # 1/2 each, whole shares


def test_cap_rows_for_the_names_at_the_cap() -> None:
    sized = {"A": 0.25, "B": -0.25, "C": 0.2, "D": 0.25 - 1e-10, "E": 0.1}
    closes = pd.DataFrame(
        1.0, index=pd.date_range("2024-01-05", periods=3, freq="W-FRI"), columns=list(sized)
    )
    week = closes.index[-1]
    profile = Profile("custom", Limits(0.25, 1.05, True))
    guard = ProfileGuard(Scripted(lambda _w, _t: dict(sized)), profile)
    assert (
        ask(guard, closes, week, list(sized)) == sized
    )  # the cap is the sizing rule's; the guard records
    assert guard.rows == [
        (week, "cap", "A", "|weight| 0.2500 at the cap 0.2500"),
        (week, "cap", "B", "|weight| 0.2500 at the cap 0.2500"),
        (week, "cap", "D", "|weight| 0.2500 at the cap 0.2500"),  # at the cap up to rounding
    ]
    assert guard.bounds.to_dict("list") == {
        "week": [week] * 3,
        "reason": ["cap"] * 3,
        "ticker": ["A", "B", "D"],
        "detail": [r[3] for r in guard.rows],
    }


#: Weekly closes for the volatility target: A swings +-10% a week in the last 4 weeks (the
#: 900% jump before them is outside a 4-week window), B is flat; the rows after the decision
#: week (index 5) are the future, which the guard must not read.
VOL_CLOSES = pd.DataFrame(
    {
        "A": [10.0, 100.0, 110.0, 99.0, 108.9, 98.01, 500.0, 1.0],
        "B": [50.0] * 8,
    },
    index=pd.date_range("2024-01-05", periods=8, freq="W-FRI"),
)


def hand_vol(weights: Mapping[str, float]) -> float:
    """The 4-week ex-ante volatility by hand: the returns of A are +10%, -10%, +10%, -10% and
    of B 0, so the portfolio's weekly returns are +-wA/10, mean 0; std (ddof 1) is
    sqrt(4 (wA/10)^2 / 3) = |wA|/10 sqrt(4/3), annualised with sqrt(52)."""
    path = np.array([0.1, -0.1, 0.1, -0.1]) * weights["A"]
    by_numpy = float(np.std(path, ddof=1) * math.sqrt(52))
    closed_form = abs(weights["A"]) / 10 * math.sqrt(4 / 3) * math.sqrt(52)
    assert by_numpy == pytest.approx(closed_form, rel=1e-14)
    return closed_form


def test_portfolio_volatility_by_hand() -> None:
    until = VOL_CLOSES.iloc[:6]
    for weights in ({"A": 0.5, "B": 0.5}, {"A": -0.3, "B": 0.1}, {"A": 1.0, "B": 0.0}):
        got = portfolio_volatility(until, weights, 4)
        assert got == pytest.approx(hand_vol(weights), rel=1e-12)
    assert portfolio_volatility(until, {"B": 1.0}, 4) == 0.0
    assert portfolio_volatility(until, {}, 4) == 0.0
    assert portfolio_volatility(until.iloc[:2], {"A": 1.0}, 4) == 0.0  # one return: no spread
    # A missing close: its return and the next count as 0.
    gap = until.copy()
    gap.loc[gap.index[4], "A"] = np.nan
    expected = float(np.std([0.1, -0.1, 0.0, 0.0], ddof=1) * math.sqrt(52))
    assert portfolio_volatility(gap, {"A": 1.0}, 4) == pytest.approx(expected, rel=1e-12)


def test_vol_target_scales_by_exactly_target_over_vol() -> None:
    week = VOL_CLOSES.index[5]
    profile = Profile("custom", Limits(1.0, 1.0, False), vol_target=0.10, vol_window=4)
    sized = {"A": 0.5, "B": 0.5}
    guard = ProfileGuard(Scripted(lambda _w, _t: dict(sized)), profile)
    vol = hand_vol(sized)  # 0.05 * sqrt(208 / 3) = 41.63%
    assert vol == pytest.approx(0.4163332, abs=1e-7)
    got = ask(guard, VOL_CLOSES, week, ["A", "B"])
    scale = 0.10 / vol
    assert got == pytest.approx({"A": 0.5 * scale, "B": 0.5 * scale}, rel=1e-12, abs=0)
    assert portfolio_volatility(VOL_CLOSES.loc[:week], got, 4) == pytest.approx(0.10, rel=1e-12)
    assert guard.rows == [
        (week, "vol_target", "", f"trailing volatility 41.63% > target 10.00%: x{scale:.4f}")
    ]
    assert guard.rows[0][3].endswith("x0.2402")


def test_names_above_the_volatility_ceiling_are_left_out_before_sizing() -> None:
    # At week 5, A's last 4 returns are +-10% (0.1 x sqrt(4/3) x sqrt(52) = 83.27% a year), B
    # is flat (0%), C has one return (too few to measure); the rows after week 5 (A at 500,
    # then 1) are the future. 1/N is asked with B alone.
    closes = VOL_CLOSES.assign(C=[np.nan] * 4 + [5.0, 5.5, 6.0, 6.0])
    week = closes.index[5]
    asked: list[list[str]] = []

    def spy(week: pd.Timestamp, tickers: list[str]) -> dict[str, float]:
        asked.append(tickers)
        return one_over_n(week, tickers)

    profile = Profile("custom", Limits(1.0, 1.0, False), vol_window=4, max_name_vol=0.5)
    guard = ProfileGuard(Scripted(spy), profile)
    assert ask(guard, closes, week, ["A", "B", "C"]) == {"B": 1.0}
    assert asked == [["B"]]
    vol_a = 0.1 * math.sqrt(4 / 3) * math.sqrt(52)
    assert f"{vol_a:.2%}" == "83.27%"
    assert guard.rows == [
        (week, "name_vol", "A", "trailing volatility 83.27% > ceiling 50.00%"),
        (week, "name_vol", "C", "fewer than 4 weekly returns to measure its volatility"),
        (week, "cap", "B", "|weight| 1.0000 at the cap 1.0000"),  # 1/N of one name
    ]
    # At the ceiling a name is kept; above it, not.
    measured = name_volatility(closes.loc[:week], ["A"], 4)["A"]
    assert measured == pytest.approx(vol_a, rel=1e-12)
    for ceiling, kept in ((measured, {"A": 0.5, "B": 0.5}), (measured * (1 - 1e-9), {"B": 1.0})):
        at = Profile("custom", Limits(1.0, 1.0, False), vol_window=4, max_name_vol=ceiling)
        assert ask(ProfileGuard(Scripted(one_over_n), at), closes, week, ["A", "B"]) == kept


def hand_cvar(weights: Mapping[str, float]) -> float:
    """The 4-week ex-ante historical CVaR 95% by hand: 4 weeks, a tail of 0.05 x 4 = 0.2
    weeks, so the worst week's loss. A's returns are +10%, -10%, +10%, -10%, B's 0: the
    worst week loses |wA| / 10."""
    return abs(weights["A"]) / 10


def test_cvar_limit_scales_by_exactly_limit_over_cvar() -> None:
    week = VOL_CLOSES.index[5]
    profile = Profile("custom", Limits(1.0, 1.0, False), max_cvar_95=0.02, cvar_window=4)
    sized = {"A": 0.5, "B": 0.5}
    guard = ProfileGuard(Scripted(lambda _w, _t: dict(sized)), profile)
    tail = hand_cvar(sized)  # 5% a week
    assert portfolio_cvar(VOL_CLOSES.loc[:week], sized, 4) == pytest.approx(tail, rel=1e-12)
    got = ask(guard, VOL_CLOSES, week, ["A", "B"])
    scale = 0.02 / portfolio_cvar(VOL_CLOSES.loc[:week], sized, 4)
    assert scale == pytest.approx(0.4, rel=1e-12)
    assert got == {"A": 0.5 * scale, "B": 0.5 * scale}
    # The scaled portfolio's CVaR is the limit: CVaR scales with the weights.
    assert portfolio_cvar(VOL_CLOSES.loc[:week], got, 4) == pytest.approx(0.02, rel=1e-12)
    assert guard.rows == [
        (week, "cvar_limit", "", "trailing CVaR 95% 5.00% > limit 2.00%: x0.4000")
    ]
    # Below the limit (A at 0.1: 1% a week), or at it, nothing is scaled.
    for weights in ({"A": 0.1, "B": 0.9}, {"A": 0.2, "B": 0.8}):
        calm = ProfileGuard(Scripted(lambda _w, _t, w=weights: dict(w)), profile)
        assert ask(calm, VOL_CLOSES, week, ["A", "B"]) == weights
        assert calm.rows == []


def test_cvar_limit_and_vol_target_together_scale_by_the_smaller_ratio() -> None:
    week = VOL_CLOSES.index[5]
    sized = {"A": 0.5, "B": 0.5}
    vol, tail = hand_vol(sized), hand_cvar(sized)  # 41.63% a year, 5% a week
    for vol_target, limit in ((0.10, 0.03), (0.30, 0.01)):
        profile = Profile(
            "custom",
            Limits(1.0, 1.0, False),
            vol_target=vol_target,
            max_cvar_95=limit,
            vol_window=4,
            cvar_window=4,
        )
        guard = ProfileGuard(Scripted(lambda _w, _t: dict(sized)), profile)
        got = ask(guard, VOL_CLOSES, week, ["A", "B"])
        scale = min(vol_target / vol, limit / tail)
        assert got == pytest.approx({"A": 0.5 * scale, "B": 0.5 * scale}, rel=1e-12)
        reasons = [row[1] for row in guard.rows]
        # The volatility target scales first; the CVaR limit binds only if still above it.
        assert reasons == (
            ["vol_target"] if vol_target / vol < limit / tail else ["vol_target", "cvar_limit"]
        )


def test_the_cvar_limit_reads_no_later_price() -> None:
    week = VOL_CLOSES.index[5]
    profile = Profile("custom", Limits(1.0, 1.0, False), max_cvar_95=0.02, cvar_window=4)
    later = VOL_CLOSES.copy()
    later.iloc[6:] = [[3.0, 1.0], [7.0, 900.0]]  # the future, changed
    asked = [
        ask(ProfileGuard(Scripted(one_over_n), profile), closes, week, ["A", "B"])
        for closes in (VOL_CLOSES, later, VOL_CLOSES.iloc[:6])
    ]
    assert asked[0] == asked[1] == asked[2]  # exactly
    assert asked[0] == pytest.approx({"A": 0.2, "B": 0.2}, rel=1e-12)  # 1/N x 0.02 / 0.05


def test_no_scaling_below_the_vol_target() -> None:
    week = VOL_CLOSES.index[5]
    profile = Profile("custom", Limits(1.0, 1.0, False), vol_target=0.10, vol_window=4)
    # With A at 0.05: 0.005 * sqrt(208 / 3) = 4.16% < 10% (A at 0.2 would give 16.65%).
    low = {"A": 0.05, "B": 0.95}
    assert hand_vol(low) < 0.10 < hand_vol({"A": 0.2, "B": 0.8})
    guard = ProfileGuard(Scripted(lambda _w, _t: dict(low)), profile)
    assert ask(guard, VOL_CLOSES, week, ["A", "B"]) == low  # the very weights, unscaled
    assert guard.rows == []


# --- 3. every preset's limits on paper12 ----------------------------------------------------


@dataclass
class Recorded:
    """What one guard of a backtest was asked and answered, week by week."""

    asked: dict[pd.Timestamp, list[str]] = field(default_factory=dict)
    sized: dict[pd.Timestamp, dict[str, float]] = field(default_factory=dict)  # the rule's
    targets: dict[pd.Timestamp, dict[str, float]] = field(default_factory=dict)  # the guard's


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[Recorded]:
    """Every ProfileGuard run_backtest makes records its inputs and outputs (same logic)."""
    made: list[Recorded] = []

    class RecordingGuard(ProfileGuard):
        def __init__(
            self,
            inner: DecisionRule,
            profile: Profile,
            resets: Collection[pd.Timestamp] | None = None,
        ) -> None:
            rec = Recorded()

            class Sizing:
                name = inner.name

                def decide(self, week: pd.Timestamp, history: History, state: State) -> Decision:
                    decision = as_decision(inner.decide(week, history, state))
                    rec.sized[week] = dict(decision.weights)
                    return decision

            super().__init__(Sizing(), profile, resets)
            self.rec = rec
            made.append(rec)

        def decide(self, week: pd.Timestamp, history: History, state: State) -> Decision:
            self.rec.asked[week] = list(history.tradable)
            decision = super().decide(week, history, state)
            self.rec.targets[week] = dict(decision.weights)
            return decision

    monkeypatch.setattr("simulator.plan.ProfileGuard", RecordingGuard)
    return made


def held_shares(orders: pd.DataFrame, weeks: pd.DatetimeIndex) -> pd.DataFrame:
    """Shares held after each week's fills, summed from the filled orders."""
    done = orders[orders["status"] == "Completed"]
    signed = np.where(done["side"] == "buy", 1.0, -1.0) * done["size"].to_numpy(float)
    flows = pd.DataFrame({"week": done["date_filled"], "ticker": done["ticker"], "n": signed})
    table = flows.pivot_table(index="week", columns="ticker", values="n", aggfunc="sum")
    return table.reindex(weeks).fillna(0.0).cumsum()


def row_of(frame: pd.DataFrame, week: pd.Timestamp) -> dict[str, float]:
    """One row of a (weeks x tickers) frame as ``{ticker: value}``."""
    values = frame.loc[week].to_numpy(dtype=float)
    return {str(t): float(v) for t, v in zip(frame.columns, values, strict=True)}


def bound_keys(frame: pd.DataFrame) -> list[tuple[pd.Timestamp, str, str]]:
    return sorted(zip(frame["week"], frame["reason"], frame["ticker"], strict=True))


LIMIT_CASES = [
    *[pytest.param("equal_weight", name, id=f"equal_weight-{name}") for name in PRESETS],
    *[
        pytest.param("lstm_signal", name, id=f"lstm-{name}", marks=pytest.mark.slow)
        for name in ("conservative", "aggressive")
    ],
]


@pytest.mark.parametrize(("strategy", "name"), LIMIT_CASES)
def test_each_profiles_limits_hold_in_every_week_on_paper12(
    strategy: str,
    name: str,
    recorded: list[Recorded],
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    if strategy == "lstm_signal":
        model: PaperModel = request.getfixturevalue("paper_model")
        items, workspace = [*PAPER_FAST, f"model.version={model.ref}"], model.workspace
    else:
        request.getfixturevalue("paper12")
        items, workspace = EQUAL, tmp_path
    exclude = f"profile.exclude={','.join(sorted(EXCLUDE))}"
    # Without the config's baselines: their guards would be recorded too.
    sets = [*items, f"profile.name={name}", exclude, "report.baselines="]
    cfg = load_config(PAPER_CONFIG, sets)
    assert cfg.backtest.fill == "close"
    profile = cfg.investor_profile()
    assert profile == replace(PRESETS[name], exclude=EXCLUDE)
    limits = profile.limits
    result = run_backtest(cfg, workspace)
    # The strategy's guard; a model strategy's explanations re-run it on shuffled forecasts
    # (simulator.explain.run_explanations), with a guard of their own built after it.
    rec = recorded[0]
    assert len(recorded) == (2 if strategy == "lstm_signal" else 1)
    assert result.bounds is not None
    weeks = pd.DatetimeIndex([FIRST_WEEK, *result.returns.index])
    decisions = weeks[:-1]
    assert list(rec.targets) == list(decisions)  # the guard decided every decision week
    closes = make_weekly(load_daily(cfg.data, cfg.report.risk_free, workspace)).closes()

    # The guard's targets, exactly, and the rows it recorded for them.
    expected: list[tuple[pd.Timestamp, str, str]] = []
    for week in decisions:
        sized, out = rec.sized[week], rec.targets[week]
        assert EXCLUDE.isdisjoint(sized) and EXCLUDE.isdisjoint(out)
        if not limits.allow_short:
            assert min(out.values()) >= 0.0
        assert max(abs(v) for v in out.values()) <= limits.max_weight + TIGHT
        assert sum(abs(v) for v in out.values()) <= limits.gross + TIGHT
        expected += [(week, "excluded", t) for t in sorted(EXCLUDE & set(rec.asked[week]))]
        if profile.max_name_vol is not None:
            # Each name's own trailing volatility, point in time: above the ceiling (or not
            # measurable) it is left out before sizing, so never targeted.
            allowed = [t for t in rec.asked[week] if t not in EXCLUDE]
            vols = name_volatility(closes.loc[:week], allowed, 26)
            risky = {t for t, v in vols.items() if not v <= profile.max_name_vol}
            assert risky.isdisjoint(sized) and risky.isdisjoint(out)
            assert all(vols[t] <= profile.max_name_vol for t in out)
            expected += [(week, "name_vol", t) for t in sorted(risky)]
        expected += [
            (week, "cap", t) for t, v in sized.items() if abs(v) >= limits.max_weight - 1e-9
        ]
        vol = portfolio_volatility(closes.loc[:week], sized, 26)
        if profile.vol_target is not None and vol > profile.vol_target:
            scale = profile.vol_target / vol
            assert out == {t: v * scale for t, v in sized.items()}
            scaled = portfolio_volatility(closes.loc[:week], out, 26)
            assert scaled == pytest.approx(profile.vol_target, rel=1e-9)
            expected.append((week, "vol_target", ""))
        else:
            assert out == sized
    assert bound_keys(result.bounds) == sorted(expected)
    assert set(result.bounds["reason"]) <= set(REASONS) - {"drawdown_stop"}
    excluded_weeks = result.bounds.loc[result.bounds["reason"] == "excluded", "week"]
    assert excluded_weeks.nunique() == len(decisions)  # TSLA and NVDA trade every week
    if profile.max_name_vol is not None:
        # SHOP's volatility is above 50% (and 35%) every week of 2022-23: never held.
        assert (result.bounds["reason"] == "name_vol").any()
        assert "SHOP" not in set(result.orders["ticker"])
    if profile.vol_target is not None:
        assert (result.bounds["reason"] == "vol_target").any()
    if strategy == "lstm_signal" and name == "conservative":
        assert (result.bounds["reason"] == "cap").any()
    if limits.allow_short and strategy == "lstm_signal":
        assert min(min(out.values()) for out in rec.targets.values()) < 0  # shorts were taken

    # weights.csv (result.weights): excluded tickers never held nor traded, no shorts, and
    # within the limits to whole-share rounding in every decision week.
    table = result.weights
    assert EXCLUDE.isdisjoint(set(table["ticker"])) and EXCLUDE.isdisjoint(result.orders["ticker"])
    assert (result.orders["status"] == "Completed").all()
    assert not (result.orders["date_submitted"] >= weeks[-1]).any()  # the last week decides nothing
    if not limits.allow_short:
        assert (table["weight"] > -TIGHT).all()
    realised = table.pivot(index="date", columns="ticker", values="weight").reindex(weeks).fillna(0)
    at_decisions = realised.loc[decisions]
    assert (at_decisions.abs().max(axis=1) <= limits.max_weight + SHARES).all()
    assert (at_decisions.abs().sum(axis=1) <= limits.gross + SHARES).all()

    # ... exactly: each position is its target rounded toward zero to whole shares.
    values = pd.Series(
        cfg.backtest.cash * np.concatenate([[1.0], (1 + result.returns["strategy"]).cumprod()]),
        index=weeks,
    )
    shares = held_shares(result.orders, weeks)
    for week in decisions:
        value, out = float(values[week]), rec.targets[week]
        held = row_of(shares, week)
        close = row_of(closes, week)
        weights = row_of(realised, week)
        for ticker in sorted(set(held) | set(out)):
            n, price = held.get(ticker, 0.0), close[ticker]
            target = out.get(ticker, 0.0) * value / price  # in shares
            # Whole shares, toward zero (1e-6: our value is rebuilt from returns, not the
            # broker's own float).
            assert n == round(n) and n * target >= 0, (week, ticker, n, target)
            assert -1e-6 <= abs(target) - abs(n) < 1 + 1e-6, (week, ticker, n, target)
            assert weights.get(ticker, 0.0) == pytest.approx(n * price / value, rel=1e-9, abs=1e-15)


# --- 4. summary, bounds.csv, tear sheet -------------------------------------------------------


def stopped_weeks(equity: pd.Series, stop: float, resume_after: int) -> list[pd.Timestamp]:
    """The weeks in cash by the documented rule: from the week the equity is ``stop`` or more
    below its peak since trading (re)started, for ``resume_after`` weeks."""
    peak, began, out = -math.inf, None, []
    for i, (week, value) in enumerate(zip(equity.index, equity.to_numpy(float), strict=True)):
        if began is not None:
            if i - began < resume_after:
                out.append(week)
                continue
            began, peak = None, value
        peak = max(peak, value)
        if value <= peak * (1 - stop):
            began = i
            out.append(week)
    return out


def test_summary_and_tear_sheet_count_the_weeks_in_bounds_csv(
    paper12: Path, tmp_path: Path
) -> None:
    # A 5% cap on 1/N of 11 names (1/11 each) binds; 3% stops fire twice in 2022-23.
    items = ["profile.name=moderate", "profile.max_weight=0.05", "profile.max_drawdown=0.03"]
    # A 90% per-name ceiling leaves SHOP out only in its wildest weeks: every limit binds in
    # some week (at the preset's 50%, the portfolio never reaches the volatility target).
    items.append("profile.max_name_vol=0.9")
    # A weekly CVaR limit of 3.5% binds in 7 weeks the volatility target leaves above it.
    items.append("profile.max_cvar_95=0.035")
    cfg = load_config(PAPER_CONFIG, [*EQUAL, *items, "profile.exclude=TSLA"])
    result = run_backtest(cfg, tmp_path / "ws")
    out = write_run(result, tmp_path / "run")
    bounds = pd.read_csv(out / "bounds.csv", parse_dates=["week"], keep_default_na=False)
    assert list(bounds.columns) == ["week", "reason", "ticker", "detail"]
    assert result.bounds is not None
    pd.testing.assert_frame_equal(bounds, result.bounds, check_dtype=False)
    summary = json.loads((out / "summary.json").read_text())
    counts = {r: int(bounds.loc[bounds["reason"] == r, "week"].nunique()) for r in REASONS}
    assert summary["profile"] == {
        "name": "moderate",
        "max_weight": 0.05,
        "gross": 1.0,
        "allow_short": False,
        "horizon_weeks": 104,
        "vol_target": 0.15,
        "max_drawdown": 0.03,
        "exclude": ["TSLA"],
        "weeks_bound": counts,
        "max_name_vol": 0.9,
        "max_cvar_95": 0.035,
    }
    assert all(counts.values()), counts  # every limit bound in some week
    assert counts["excluded"] == summary["weeks"] == 51

    # The stops: the weeks the documented rule gives on the run's equity (fill = close: in
    # cash from the stop's own decision), with no position in weights.csv in any of them.
    weeks = pd.DatetimeIndex([FIRST_WEEK, *result.returns.index])
    equity = pd.Series(
        np.concatenate([[1.0], (1 + result.returns["strategy"]).cumprod()]), index=weeks
    )
    stopped = stopped_weeks(equity, 0.03, 13)
    assert len(stopped) == 26  # two stops of 13 weeks
    stops = bounds[bounds["reason"] == "drawdown_stop"]
    assert sorted(set(stops["week"])) == stopped
    weights = pd.read_csv(out / "weights.csv", parse_dates=["date"])
    pd.testing.assert_frame_equal(weights, result.weights, check_dtype=False)
    assert not set(weights["date"]) & set(stopped)
    assert set(weights["date"]) == set(weeks) - set(stopped)

    page = (out / "tearsheet.html").read_text(encoding="utf-8")
    found = re.search(r'<table id="profile-bounds">.*?</table>', page, flags=re.DOTALL)
    assert found is not None
    for reason, text in PROFILE_REASONS.items():
        assert f"<tr><td>{text}</td><td>{counts[reason]}</td><td>51</td></tr>" in found.group(0)
    limits = re.search(r'<table id="profile">.*?</table>', page, flags=re.DOTALL)
    assert limits is not None
    for cell in ("5.00%", "not allowed", "15%", "3%", "TSLA", "104 weeks", "3.50%"):
        assert f"<td>{cell}</td>" in limits.group(0), cell


# --- 5. paper accounts ----------------------------------------------------------------------


@pytest.mark.parametrize("fill", ["close", "next_open"])
def test_a_profiled_account_stepped_in_chunks_equals_the_backtest(paper12: Path, fill: str) -> None:
    workspace = workspace_dir()
    items = ["profile.name=moderate", "profile.max_drawdown=0.04", "profile.exclude=TSLA"]
    cfg = ew_config(*items, f"backtest.fill={fill}")
    result = run_backtest(cfg, workspace)
    assert result.bounds is not None
    theirs = result.bounds
    stops = theirs.loc[theirs["reason"] == "drawdown_stop", "week"]
    # The stop fires in week 9 (2022-09-02) and holds 13 weeks; the chunks end in its week,
    # inside it and in its last week, so the guard is rebuilt from the journal at each.
    assert sorted(set(stops)) == list(pd.date_range("2022-09-02", periods=13, freq="W-FRI"))
    name = f"profiled-{fill}"
    open_new(workspace, name, cfg)
    done = [advance(workspace, name, weeks=n) for n in (10, 1, 5, 6)]
    done.append(advance(workspace, name, weeks=None, until=LAST_WEEK.date()))
    assert [len(d) for d in done] == [10, 1, 5, 6, 30]
    assert done[0][-1] == pd.Timestamp("2022-09-02") and done[3][-1] == pd.Timestamp("2022-11-25")

    with accounts.open_account(workspace, name) as account:
        journal = account.journal
        assert_journal_is_the_backtest(journal, result)
        mine = journal.bounds()
        assert "TSLA" not in set(journal.targets()["ticker"])
        assert "TSLA" not in set(journal.all_holdings()["ticker"])

    # Every bound of the backtest, week by week; the account's last week decided too (the
    # backtest's last week is observed, so a stop could fire there, but decides nothing).
    before = mine[mine["week"] < LAST_WEEK].reset_index(drop=True)
    pd.testing.assert_frame_equal(
        before, theirs[theirs["week"] < LAST_WEEK].reset_index(drop=True), check_dtype=False
    )
    last_mine = mine[mine["week"] == LAST_WEEK].reset_index(drop=True)
    last_theirs = theirs[theirs["week"] == LAST_WEEK].reset_index(drop=True)
    assert (last_theirs["reason"] == "drawdown_stop").all()
    pd.testing.assert_frame_equal(
        last_mine.iloc[: len(last_theirs)], last_theirs, check_dtype=False
    )
    assert ("excluded", "TSLA") in set(zip(last_mine["reason"], last_mine["ticker"], strict=True))
