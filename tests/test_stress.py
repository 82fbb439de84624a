"""Stress scenarios (:mod:`simulator.stress`): exact figures of a hand-made 3-stock portfolio,
point in time, the scenario names, the weights' checks, the tear sheet's section, and
``foliosim stress`` on a real demo run directory, a paper account and a config.

The hand-made data: 30 weekly closes, 2019-12-06 .. 2020-06-26 (Fridays), of a benchmark whose
weekly returns are :data:`BENCH_R`, and three stocks whose weekly returns are exact multiples of
it: A = 1.0 x, B = 0.5 x, C = 2.0 x (C is listed from 2020-03-27 only). The 2-year yield moves
-5 percentage points per unit of the benchmark's return each week. So the betas are 1, 0.5 and
2 and the rate sensitivities -0.2, -0.1 and -0.4 (return per point), which makes every figure
arithmetic that can be done by hand.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simulator import accounts
from simulator.backtest import run_backtest
from simulator.config import load_config
from simulator.errors import ConfigError, DataError
from simulator.report import write_run, write_tearsheet
from simulator.stress import (
    DEFAULT_SCENARIOS,
    MAX_GROSS,
    StressData,
    check_weights,
    estimates,
    ols_slopes,
    parse_scenarios,
    path_figures,
    stress,
)
from simulator.summary import StressFacts, read_summary
from simulator.workspace import workspace_dir
from tests.conftest import PAPER12
from tests.helpers import advance, cli, error_line, ew_config, make_run, open_new, weekly_returns

WEEKS = pd.date_range("2019-12-06", periods=30, freq="W-FRI")
#: The benchmark's return into each week 1..29; weeks 11..15 are the COVID window's
#: (2020-02-21 .. 2020-03-20), weeks 25..27 a user window's (2020-05-29 .. 2020-06-12).
BENCH_R = [
    *[0.02, -0.01, 0.03, 0.01, -0.02, 0.04, -0.03, 0.02, 0.01, -0.01],
    *[0.10, -0.20, 0.05, -0.10, 0.10],
    *[0.03, -0.02, 0.01, 0.02, -0.01, 0.04, -0.03, 0.02, 0.01],
    *[0.10, -0.20, 0.05, 0.02, -0.01],
]
C_LISTED = 16  # C's first close is at week 16 (2020-03-27)
W = {"A": 0.5, "B": 0.3, "C": -0.2}  # gross 1.0, net 0.6, cash 0.4


def _prices(start: float, multiple: float) -> np.ndarray:
    return start * np.cumprod([1.0, *(1.0 + multiple * np.array(BENCH_R))])


def hand_data(yields: bool = True) -> StressData:
    c = _prices(10.0, 2.0)
    c[:C_LISTED] = np.nan
    c[C_LISTED:] = 10.0 * np.cumprod([1.0, *(1.0 + 2.0 * np.array(BENCH_R[C_LISTED:]))])
    closes = pd.DataFrame({"A": _prices(50.0, 1.0), "B": _prices(20.0, 0.5), "C": c}, index=WEEKS)
    bench = pd.Series(_prices(1000.0, 1.0), index=WEEKS, name="IDX")
    y = pd.Series(3.0 + np.cumsum([0.0, *(-5.0 * np.array(BENCH_R))]), index=WEEKS)
    return StressData(closes, bench, "IDX", y if yields else None, "" if yields else "no yield")


def run(names: list[str], as_of: pd.Timestamp = WEEKS[-1], data: StressData | None = None):
    facts = stress(W, data or hand_data(), as_of, parse_scenarios(names), "hand-made")
    return {s.name: s for s in facts.scenarios}


# --- 1. estimates ----------------------------------------------------------------------------


def test_betas_and_rate_sensitivities_are_the_designed_multiples() -> None:
    est = estimates(hand_data(), WEEKS[-1])
    assert est["beta"].tolist() == pytest.approx([1.0, 0.5, 2.0], rel=1e-12)
    assert est["rate_sensitivity"].tolist() == pytest.approx([-0.2, -0.1, -0.4], rel=1e-12)
    # 29 weekly returns; C's own history: weeks 17..29, 13 returns.
    assert est["beta_weeks"].tolist() == [29, 29, 13]
    assert est["rate_weeks"].tolist() == [29, 29, 13]


def test_ols_slope_by_hand_with_an_intercept_and_missing_rows() -> None:
    # x = 1, 2, 3, 4; y = 1, 3, 2, 5 (and a row without y): slope = sxy / sxx with the means
    # 2.5 and 2.75: sxy = (-1.5)(-1.75) + (-0.5)(0.25) + (0.5)(-0.75) + (1.5)(2.25) = 5.5,
    # sxx = 2.25 + 0.25 + 0.25 + 2.25 = 5.
    y = pd.DataFrame({"s": [1.0, 3.0, 2.0, 5.0, np.nan]})
    out = ols_slopes(y, pd.Series([1.0, 2.0, 3.0, 4.0, 9.0]), min_pairs=4)
    assert out.loc["s", "slope"] == pytest.approx(5.5 / 5.0, rel=1e-15)
    assert out.loc["s", "n"] == 4
    assert np.isnan(ols_slopes(y, pd.Series([1.0, 2.0, 3.0, 4.0, 9.0]), min_pairs=5).iloc[0, 0])


# --- 2. historical windows -------------------------------------------------------------------


def test_a_user_window_equals_the_arithmetic_by_hand() -> None:
    # Base week 2020-05-22 (the last stamp on or before Wednesday 2020-05-27); the weeks of
    # 2020-05-29, 06-05 and 06-12, benchmark returns +10%, -20%, +5%.
    s = run(["2020-05-27:2020-06-12"])["2020-05-27:2020-06-12"]
    ga = np.array([1.1, 1.1 * 0.8, 1.1 * 0.8 * 1.05])  # A: beta 1
    gb = np.array([1.05, 1.05 * 0.9, 1.05 * 0.9 * 1.025])  # B: half the benchmark's returns
    gc = np.array([1.2, 1.2 * 0.6, 1.2 * 0.6 * 1.1])  # C: twice them
    v = 1.0 + 0.5 * (ga - 1) + 0.3 * (gb - 1) - 0.2 * (gc - 1)
    assert v.tolist() == pytest.approx([1.025, 0.9795, 0.9941875], rel=1e-14)
    assert (s.base_week, s.first_week, s.last_week, s.weeks) == (
        WEEKS[24].date(),
        WEEKS[25].date(),
        WEEKS[27].date(),
        3,
    )
    assert s.return_ == pytest.approx(-0.0058125, rel=1e-12)
    assert s.worst_week == WEEKS[26].date()
    assert s.worst_week_return == pytest.approx(0.9795 / 1.025 - 1, rel=1e-12)
    assert s.max_drawdown == pytest.approx(0.9795 / 1.025 - 1, rel=1e-12)
    # Contributions by size: C's short gains 0.2 * 0.208, A loses 0.5 * 0.076, B 0.3 * 0.031375.
    got = [(c.ticker, c.contribution) for c in s.contributors]
    assert [t for t, _ in got] == ["C", "A", "B"]
    assert [c for _, c in got] == pytest.approx([0.0416, -0.038, -0.0094125], rel=1e-12)
    assert sum(c for _, c in got) == pytest.approx(s.return_, rel=1e-12)
    assert s.proxied == [] and not any(c.proxied for c in s.contributors)


def test_covid_uses_five_weeks_and_proxies_an_unlisted_stock_through_its_beta() -> None:
    # covid = 2020-02-19..2020-03-23: base 2020-02-14, the weeks 02-21 .. 03-20, benchmark
    # +10%, -20%, +5%, -10%, +10%. C is listed only from 2020-03-27: it moves twice the
    # benchmark each week (its beta over its own history up to the as-of week).
    s = run(["covid"])["covid"]
    assert s.available and s.proxied == ["C"]
    assert (s.base_week.isoformat(), s.first_week.isoformat(), s.last_week.isoformat()) == (
        "2020-02-14",
        "2020-02-21",
        "2020-03-20",
    )
    assert s.weeks == 5
    ga = np.cumprod([1.1, 0.8, 1.05, 0.9, 1.1])
    gb = np.cumprod([1.05, 0.9, 1.025, 0.95, 1.05])
    gc = np.cumprod([1.2, 0.6, 1.1, 0.8, 1.2])
    v = 1.0 + 0.5 * (ga - 1) + 0.3 * (gb - 1) - 0.2 * (gc - 1)
    assert v.tolist() == pytest.approx(
        [1.025, 0.9795, 0.9941875, 0.965138125, 0.99517703125], rel=1e-13
    )
    assert s.return_ == pytest.approx(-0.00482296875, rel=1e-11)
    assert s.worst_week.isoformat() == "2020-02-28"
    assert s.max_drawdown == pytest.approx(0.965138125 / 1.025 - 1, rel=1e-12)
    by_ticker = {c.ticker: c for c in s.contributors}
    assert by_ticker["C"].proxied and by_ticker["C"].move == pytest.approx(0.76032 - 1, rel=1e-12)
    assert by_ticker["C"].contribution == pytest.approx(0.047936, rel=1e-12)
    assert by_ticker["A"].contribution == pytest.approx(-0.04262, rel=1e-12)


def test_the_exposure_and_the_estimates_of_the_summary() -> None:
    facts = stress(W, hand_data(), WEEKS[-1], parse_scenarios(["gap_down_50"]), "hand-made")
    assert (facts.gross, facts.net, facts.cash) == pytest.approx((1.0, 0.6, 0.4), rel=1e-15)
    assert (facts.as_of, facts.history_start, facts.history_end) == (
        WEEKS[-1].date(),
        WEEKS[0].date(),
        WEEKS[-1].date(),
    )
    assert facts.weights == W and facts.yield_series == "DGS2" and facts.benchmark == "IDX"
    by_ticker = {e.ticker: e for e in facts.estimates}
    assert by_ticker["C"].beta == pytest.approx(2.0, rel=1e-12)
    assert by_ticker["C"].rate_sensitivity == pytest.approx(-0.4, rel=1e-12)


def test_a_week_without_a_bar_keeps_the_last_close() -> None:
    data = hand_data()
    closes = data.closes.copy()
    closes.loc[WEEKS[26], "B"] = np.nan  # B has no bar in the window's middle week
    gapped = StressData(closes, data.benchmark, "IDX", data.yields)
    s = run(["2020-05-27:2020-06-12"], data=gapped)["2020-05-27:2020-06-12"]
    v2 = 1.0 + 0.5 * (0.88 - 1) + 0.3 * (1.05 - 1) - 0.2 * (0.72 - 1)  # B held at 1.05
    v3 = 0.9941875  # B's move shows in its next bar
    assert v2 == pytest.approx(1.011, rel=1e-14)
    assert s.return_ == pytest.approx(v3 - 1, rel=1e-12)
    # The weeks: +2.5%, 1.011 / 1.025 - 1 = -1.37%, then 0.9941875 / 1.011 - 1 = -1.66%.
    assert s.worst_week == WEEKS[27].date()
    assert s.worst_week_return == pytest.approx(v3 / v2 - 1, rel=1e-12)


# --- 3. hypothetical shocks ------------------------------------------------------------------


def test_hypothetical_shocks_equal_the_arithmetic_by_hand() -> None:
    got = run(["bench_down_20", "gap_down_50", "rates_up_200bp", "bench_down_60"])
    # The benchmark -20%: A -20%, B -10%, C -40% (the short gains).
    assert got["bench_down_20"].return_ == pytest.approx(
        0.5 * -0.2 + 0.3 * -0.1 - 0.2 * -0.4, rel=1e-12
    )
    assert [c.ticker for c in got["bench_down_20"].contributors] == ["A", "C", "B"]
    # A, the largest long position, halves; nothing else moves.
    gap = got["gap_down_50"]
    assert gap.return_ == pytest.approx(-0.25, rel=1e-15)
    assert [(c.ticker, c.move) for c in gap.contributors] == [("A", -0.5)]
    assert gap.description.startswith("A, the largest long position (50.0%), gaps down 50%")
    # The 2-year yield +2 points: A -0.2 x 2, B -0.1 x 2, C -0.4 x 2.
    assert got["rates_up_200bp"].return_ == pytest.approx(
        0.5 * -0.4 + 0.3 * -0.2 - 0.2 * -0.8, rel=1e-12
    )
    # -60% with C's beta of 2 would be -120%: a price stops at 0.
    assert got["bench_down_60"].return_ == pytest.approx(
        0.5 * -0.6 + 0.3 * -0.3 - 0.2 * -1.0, rel=1e-12
    )
    for s in got.values():  # one instant move: it is the worst week, and the drawdown if a loss
        assert s.kind == "hypothetical" and s.worst_week is None
        assert s.worst_week_return == s.return_
        assert s.max_drawdown == pytest.approx(min(s.return_, 0.0), abs=1e-15)


def test_the_rate_shock_without_a_yield_series_is_unavailable_with_the_reason() -> None:
    s = run(["rates_up_200bp"], data=hand_data(yields=False))["rates_up_200bp"]
    assert not s.available and s.reason == "no yield" and s.return_ is None


# --- 4. point in time, and what the data cannot support --------------------------------------


def test_prices_after_the_as_of_week_change_no_estimate_and_no_earlier_window() -> None:
    as_of = WEEKS[26]  # C has 10 weekly returns by then: enough for its beta
    data = hand_data()
    later = data.closes.index > as_of
    closes = data.closes.copy()
    closes.loc[later] = closes.loc[later] * [3.0, 0.1, 7.0]
    bench = data.benchmark.where(~later, data.benchmark * 5.0)
    yields = data.yields.where(~later, -9.0)
    changed = StressData(closes, bench, "IDX", yields)
    names = ["covid", "bench_down_20", "gap_down_50", "rates_up_200bp"]
    first = stress(W, data, as_of, parse_scenarios(names), "x")
    again = stress(W, changed, as_of, parse_scenarios(names), "x")
    assert again.estimates == first.estimates
    assert again.scenarios == first.scenarios
    assert first.scenarios[1].return_ == pytest.approx(-0.05, rel=1e-12)


def test_what_the_data_cannot_support_is_listed_with_its_reason() -> None:
    got = run(["dotcom", "rates_2022", "covid", "bench_down_10"], as_of=WEEKS[20])
    assert got["dotcom"].reason == "the data starts 2019-12-06, after the window's start 2000-03-10"
    assert got["rates_2022"].reason == (
        "the data ends 2020-06-26, before the window's end 2022-10-14"
    )
    # By 2020-04-24 C has 4 weekly returns: no beta to proxy it or to move it with the index.
    assert got["covid"].reason == (
        "C not listed by 2020-02-14, and no beta to proxy them (fewer than 8 weekly returns up "
        "to 2020-04-24)"
    )
    assert got["bench_down_10"].reason.startswith("no beta for C (fewer than 8 weekly returns")
    assert all(not s.available and s.return_ is None for s in got.values())


@pytest.mark.parametrize(
    ("window", "message"),
    [
        ("2021-01-01:2021-03-01", "the data ends 2020-06-26, before the window's end 2021-03-01"),
        ("2020-03-16:2020-03-19", "no week ends after its start and on or before its end"),
        ("2019-01-01:2019-12-31", "the data starts 2019-12-06, after the window's start"),
    ],
)
def test_a_user_window_without_data_is_an_error(window: str, message: str) -> None:
    with pytest.raises(DataError, match=f"stress window {window}: {message}"):
        run([window])


# --- 5. names, weights, paths -----------------------------------------------------------------


def test_scenario_names() -> None:
    assert [s.name for s in parse_scenarios(list(DEFAULT_SCENARIOS))] == [
        "dotcom",
        "gfc",
        "downgrade_2011",
        "covid",
        "rates_2022",
        "bench_down_10",
        "bench_down_20",
        "bench_down_30",
        "gap_down_50",
        "rates_up_200bp",
    ]
    assert [s.name for s in parse_scenarios(["covid,gfc", "covid", "bench_down_12.5"])] == [
        "covid",
        "gfc",
        "bench_down_12.5",
    ]
    with pytest.raises(ConfigError, match=r"unknown stress scenario 'covd' \(did you mean 'covid'"):
        parse_scenarios(["covd"])
    for bad in ("bench_down_0", "bench_down_100", "rates_up_0bp", "gap_down_101"):
        with pytest.raises(ConfigError, match=f"unknown stress scenario '{bad}'"):
            parse_scenarios([bad])
    with pytest.raises(ConfigError, match="its end must be after its start"):
        parse_scenarios(["2020-03-01:2020-02-01"])
    with pytest.raises(ConfigError, match="not a pair of dates"):
        parse_scenarios(["2020-02-30:2020-03-01"])


def test_weights_that_are_not_a_portfolio_are_refused() -> None:
    with pytest.raises(DataError, match="the weight of B is nan, not a number"):
        check_weights({"A": 0.5, "B": float("nan")}, "here")
    with pytest.raises(DataError, match="here: the portfolio holds no position"):
        check_weights({"A": 0.0}, "here")
    with pytest.raises(DataError, match=r"gross exposure \(sum of \|w\|\) is 4.5, above 4"):
        check_weights({"A": 3.0, "B": -1.5}, "here")
    at_limit = check_weights({"A": MAX_GROSS / 2, "B": -MAX_GROSS / 2, "C": 0.0}, "here")
    assert at_limit.to_dict() == {"A": 2.0, "B": -2.0}


def test_a_value_path_through_zero_has_no_weekly_return_after_it() -> None:
    # A short that triples: the value goes 1 -> 0.5 -> -0.25 -> -0.1.
    total, worst, worst_return, drawdown = path_figures(np.array([1.0, 0.5, -0.25, -0.1]))
    assert total == pytest.approx(-1.1)
    assert (worst, worst_return) == (2, pytest.approx(-1.5))  # from 0.5 to -0.25
    assert drawdown == pytest.approx(-1.25)


# --- 6. the tear sheet ------------------------------------------------------------------------


def test_the_stress_section_escapes_what_the_summary_holds(tmp_path: Path) -> None:
    facts = stress(W, hand_data(), WEEKS[-1], parse_scenarios(["covid", "gap_down_50"]), "x")
    doc = facts.model_dump(mode="json")
    doc["scenarios"][0]["description"] = "<script>alert(1)</script>"
    doc["notes"] = ["<img src=x onerror=alert(2)>"]
    returns = weekly_returns("2020-01-03", 10)  # a short run: no QuantStats, a quick page
    page = write_tearsheet(make_run(tmp_path / "run", returns, stress=doc)).read_text()
    assert "<h3>Stress</h3>" in page and 'alt="stress scenarios"' in page
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img src=x" not in page
    assert '<table id="stress">' in page and "C* +4.8%" in page

    old = write_tearsheet(make_run(tmp_path / "old", returns)).read_text()
    assert "No stress test in this run's summary" in old


# --- 7. the command line ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's config as 1/N, a real run on the bundled data, with its tear sheet."""
    from importlib import resources

    folder = tmp_path_factory.mktemp("demo")
    with resources.as_file(resources.files("simulator") / "configs" / "demo.toml") as path:
        cfg = load_config(path, ["backtest.strategy=equal_weight", "report.baselines=[]"])
    result = run_backtest(cfg, folder / "ws")
    return write_run(result, folder / "run")


@pytest.mark.slow
def test_stress_of_the_demo_run_is_the_stress_in_its_summary_and_tear_sheet(
    demo_run: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    summary = read_summary(demo_run / "summary.json")
    assert summary.stress is not None and str(summary.stress.as_of) == "2022-12-28"
    assert "<h3>Stress</h3>" in (demo_run / "tearsheet.html").read_text()

    assert cli(["stress", "--run", str(demo_run), "--json"], monkeypatch) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [s["name"] for s in doc["scenarios"]] == list(DEFAULT_SCENARIOS)
    assert doc["as_of"] == "2022-12-28"
    last = pd.read_csv(demo_run / "weights.csv").query("date == '2022-12-28'")
    assert doc["weights"] == dict(zip(last["ticker"], last["weight"], strict=True))
    assert doc["weights"] == summary.stress.weights
    mine = {s.name: s.return_ for s in summary.stress.scenarios}
    assert {s["name"]: s["return"] for s in doc["scenarios"]} == mine
    covid = next(s for s in doc["scenarios"] if s["name"] == "covid")
    assert covid["available"] and covid["return"] < -0.2 and covid["weeks"] == 5
    rates = next(s for s in doc["scenarios"] if s["name"] == "rates_up_200bp")
    assert not rates["available"] and "no yield series" in rates["reason"]
    # The sum of the contributions of every position is the return: check through the weights.
    assert doc["gross"] == pytest.approx(sum(abs(w) for w in doc["weights"].values()))

    argv = ["stress", "--run", str(demo_run), "--weights-as-of", "2020-06-30"]
    assert cli([*argv, "--scenario", "covid,bench_down_20", "--json"], monkeypatch) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["as_of"] == "2020-06-26"
    assert [s["name"] for s in doc["scenarios"]] == ["covid", "bench_down_20"]
    assert cli([*argv, "--scenario", "covid,bench_down_20"], monkeypatch) == 0
    out = capsys.readouterr().out
    assert "covid" in out and "bench_down_20" in out and "dotcom" not in out


def _edited_run(demo_run: Path, tmp_path: Path, weights: pd.DataFrame) -> Path:
    run_dir = tmp_path / "edited"
    shutil.copytree(demo_run, run_dir)
    weights.to_csv(run_dir / "weights.csv", index=False)
    return run_dir


@pytest.mark.slow
def test_bad_input_is_one_line_and_exit_2(
    demo_run: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run_dir = str(demo_run)
    cases = [
        (["stress"], "give one of CONFIG, --run RUN_DIR or --account NAME"),
        (["stress", "x.toml", "--run", run_dir], "(got CONFIG and --run)"),
        (["stress", "--run", run_dir, "--scenario", "covd"], "(did you mean 'covid'?)"),
        (
            ["stress", "--run", run_dir, "--scenario", "1980-01-01:1981-01-01"],
            "stress window 1980-01-01:1981-01-01: the data starts",
        ),
        (
            ["stress", "--run", run_dir, "--weights-as-of", "2001-01-01"],
            "--weights-as-of 2001-01-01 is before the first week",
        ),
        (["stress", "--account", "nobody"], "no paper account 'nobody'"),
    ]
    weights = pd.read_csv(demo_run / "weights.csv")
    last = weights["date"] == weights["date"].max()
    doubled = weights.assign(weight=weights["weight"].where(~last, weights["weight"] * 5))
    cash = weights[~last]
    nan = weights.assign(weight=weights["weight"].where(~last, "x"))
    for edited, message in [
        (doubled, "above 4, the most a foliosim portfolio holds"),
        (cash, "the portfolio holds no position (all cash)"),
        (nan, "is nan, not a number"),
    ]:
        folder = _edited_run(demo_run, tmp_path / message[:5].strip(), edited)
        cases.append((["stress", "--run", str(folder)], message))
    for argv, message in cases:
        assert cli(argv, monkeypatch) == 2, argv
        assert message in error_line(capsys), argv


def test_stress_of_a_paper_account_and_of_a_config(
    paper12: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    workspace = workspace_dir()
    open_new(workspace, "paper12", ew_config())
    assert cli(["stress", "--account", "paper12"], monkeypatch) == 2
    assert "account 'paper12' has no recorded week yet; step it first" in error_line(capsys)

    advance(workspace, "paper12", weeks=4)
    assert cli(["stress", "--account", "paper12", "--json"], monkeypatch) == 0
    doc = json.loads(capsys.readouterr().out)
    with accounts.open_account(workspace, "paper12") as account:
        status = accounts.status(account).model_dump(mode="json")
    assert doc["as_of"] == status["last_week"] == "2022-07-22"
    assert doc["weights"] == status["weights"] and len(doc["weights"]) == 12
    got = {s["name"]: s for s in doc["scenarios"]}
    assert all(got[n]["available"] for n in DEFAULT_SCENARIOS)
    assert got["dotcom"]["proxied"] == ["NFLX", "SHOP", "TSLA"]  # listed 2002, 2015, 2010
    assert got["covid"]["proxied"] == [] and got["covid"]["weeks"] == 5
    assert doc["yield_series"] == "DGS2" and got["rates_up_200bp"]["return"] is not None
    for s in doc["scenarios"]:
        assert set(s) >= {"name", "return", "worst_week_return", "max_drawdown", "contributors"}
        assert len(s["contributors"]) <= 3

    assert cli(["stress", "--account", "paper12", "--set", "data.path=x"], monkeypatch) == 2
    assert "--set does not apply to --account" in error_line(capsys)

    config = str(Path(__file__).parents[1] / "examples" / "paper12_equal_weight.toml")
    argv = ["stress", config, "--set", f"data.path={PAPER12}", "--weights-as-of", "2023-01-13"]
    assert cli([*argv, "--json", "--scenario", "gfc"], monkeypatch) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["as_of"] == "2023-01-13" and doc["weights"] == pytest.approx(
        dict.fromkeys(status["weights"], 1 / 12), rel=1e-12
    )
    assert [s["name"] for s in doc["scenarios"]] == ["gfc"]
    facts = StressFacts.model_validate(doc)  # the JSON is the summary's schema
    assert facts.scenarios[0].return_ == doc["scenarios"][0]["return"]
