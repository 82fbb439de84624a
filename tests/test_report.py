"""Tests of simulator.report: Table 2 and the HTML tear sheet of a hand-built run directory."""

from __future__ import annotations

import copy
import json
import logging
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
import pytest

from simulator.errors import RunDirError
from simulator.metrics import summarize, weekly_risk_free
from simulator.report import (
    TABLE2_ROWS,
    format_table2,
    sorted_cornish_fisher,
    weekly_quantstats,
    write_tearsheet,
)
from simulator.report import table2 as typed_table2
from simulator.results import risk_summary
from simulator.summary import parse_summary
from tests.helpers import make_run, summary_doc


def table2(summary: dict[str, Any]) -> pd.DataFrame:
    """Table 2 of a summary document, read as summary.json is."""
    return typed_table2(parse_summary(copy.deepcopy(summary)))


N_WEEKS = 30
RF_ANNUAL = 0.02
STRATEGY = "lstm_signal"
BENCHMARK = "SP500"
#: The moderate profile as summary.json records it.
MODERATE: dict[str, Any] = {
    "name": "moderate",
    "max_weight": 0.25,
    "gross": 1.0,
    "allow_short": False,
    "horizon_weeks": 104,
    "vol_target": 0.15,
    "max_drawdown": None,
    "exclude": [],
    "weeks_bound": {},
}
DATA_NOTE = "weekly open/high/low formed from daily closes (open = first close of the week)"


def _returns() -> pd.DataFrame:
    """30 weeks of deterministic weekly returns with clearly different series."""
    rng = np.random.default_rng(20240607)
    dates = pd.date_range("2023-01-06", periods=N_WEEKS, freq="W-FRI", name="date")
    return pd.DataFrame(
        {
            "strategy": rng.normal(0.004, 0.03, N_WEEKS),
            "equal_weight": rng.normal(0.002, 0.02, N_WEEKS),
            "benchmark": rng.normal(0.001, 0.018, N_WEEKS),
        },
        index=dates,
    )


def _summary(returns: pd.DataFrame) -> dict[str, Any]:
    rf = weekly_risk_free(RF_ANNUAL, pd.DatetimeIndex(returns.index))
    summary: dict[str, Any] = {key: summarize(returns[key], rf) for key in returns.columns}
    summary.update(
        weeks=len(returns),
        start="2023-01-06",
        end=returns.index[-1].date().isoformat(),
        fill="next_open",
        risk_free=RF_ANNUAL,
        risk_free_annual_mean=RF_ANNUAL,
        strategy_name=STRATEGY,
        benchmark_name=BENCHMARK,
        data_source="bundled",
        data_note=DATA_NOTE,
        tickers=["AAPL", "MSFT", "JPM"],
        orders_rejected=3,
    )
    return summary


def _make_run_dir(path: Path) -> dict[str, Any]:
    """Write returns.csv and summary.json into ``path``; return the summary."""
    path.mkdir(parents=True, exist_ok=True)
    returns = _returns()
    out = returns.copy()
    out.index = pd.DatetimeIndex(out.index).strftime("%Y-%m-%d")
    out.to_csv(path / "returns.csv", index_label="date")
    summary = _summary(returns)
    (path / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return summary


@dataclass(frozen=True)
class Tearsheet:
    run_dir: Path
    path: Path
    html: str
    summary: dict[str, Any]
    seconds: float
    rc_changed: list[str]
    font_logger_level_kept: bool
    open_figures: list[int]


@pytest.fixture(scope="module")
def tearsheet(tmp_path_factory: pytest.TempPathFactory) -> Tearsheet:
    """The module's one QuantStats call (~5 s)."""
    import matplotlib.pyplot as plt

    run_dir = tmp_path_factory.mktemp("run")
    summary = _make_run_dir(run_dir)
    rc_before = dict(matplotlib.rcParams)
    font_logger = logging.getLogger("matplotlib.font_manager")
    level_before = font_logger.level
    start = time.perf_counter()
    path = write_tearsheet(run_dir)
    seconds = time.perf_counter() - start
    rc_changed = [str(k) for k, v in matplotlib.rcParams.items() if rc_before.get(k) != v]
    return Tearsheet(
        run_dir=run_dir,
        path=path,
        html=path.read_text(encoding="utf-8"),
        summary=summary,
        seconds=seconds,
        rc_changed=rc_changed,
        font_logger_level_kept=font_logger.level == level_before,
        open_figures=plt.get_fignums(),
    )


# --- table2 --------------------------------------------------------------------------------


def test_table2_layout_and_exact_values() -> None:
    summary = _summary(_returns())
    table = table2(summary)
    assert list(table.index) == list(TABLE2_ROWS)
    assert list(table.columns) == [BENCHMARK, "1/N", STRATEGY]
    assert all(dtype == np.float64 for dtype in table.dtypes)
    for label, key in [(BENCHMARK, "benchmark"), ("1/N", "equal_weight"), (STRATEGY, "strategy")]:
        stats = summary[key]
        assert table.at["Annual return (%)", label] == stats["cagr"] * 100
        assert table.at["Volatility (%)", label] == stats["volatility"] * 100
        assert table.at["Sharpe ratio", label] == stats["sharpe"]
        assert table.at["Max drawdown (%)", label] == stats["max_drawdown"] * 100
    # The three series differ, so a swapped column cannot pass unnoticed.
    assert table.loc["Annual return (%)"].nunique() == 3


def test_table2_null_sharpe_is_nan_and_input_untouched() -> None:
    summary = _summary(_returns())
    summary["strategy"]["sharpe"] = None
    before = copy.deepcopy(summary)
    table = table2(summary)
    assert table[STRATEGY].isna().tolist() == [False, False, True, False]
    assert summary == before
    assert format_table2(table).at["Sharpe ratio", STRATEGY] == "n/a"


def test_table2_missing_metric_raises() -> None:
    summary = _summary(_returns())
    del summary["equal_weight"]["volatility"]
    with pytest.raises(RunDirError, match=r"'equal_weight\.volatility': Field required"):
        table2(summary)


def test_format_table2_decimals() -> None:
    table = pd.DataFrame(
        {"A": [12.3456, 20.0, 0.98765, -0.0001]}, index=list(TABLE2_ROWS), dtype=float
    )
    assert format_table2(table)["A"].tolist() == ["12.35", "20.00", "0.988", "0.00"]


# --- write_tearsheet -----------------------------------------------------------------------


def test_tearsheet_path_and_table2_figures(tearsheet: Tearsheet) -> None:
    assert tearsheet.path == tearsheet.run_dir / "tearsheet.html"
    section = tearsheet.html.split('id="table2"', 1)[1].split("</table>", 1)[0]
    assert f"<th>{BENCHMARK}</th><th>1/N</th><th>{STRATEGY}</th>" in section
    cells = format_table2(table2(tearsheet.summary))
    for row in TABLE2_ROWS:
        expected = "".join(f"<td>{v}</td>" for v in cells.loc[row])
        assert f"<tr><td>{row}</td>{expected}</tr>" in section
    strategy = tearsheet.summary["strategy"]
    assert f"<td>{strategy['cagr'] * 100:.2f}</td>" in section
    assert f"<td>{strategy['sharpe']:.3f}</td>" in section


def test_tearsheet_has_chart_notes_and_quantstats(tearsheet: Tearsheet) -> None:
    page = tearsheet.html
    # Growth of 1, and our weekly-return, calendar-year, return-quantile and rolling-beta
    # charts in QuantStats' report; its "Daily Returns" chart is gone.
    assert page.count("data:image/png;base64,") == 5
    assert "Daily Returns (Cumulative Sum)" not in page  # its title, drawn in its SVG
    assert "Key Performance Metrics" in page  # QuantStats' metrics table
    assert "Cumulative Returns" in page  # QuantStats' first chart
    assert "at the open of week t+1" in page
    assert "2.00% a year" in page
    assert DATA_NOTE in page
    assert "Orders rejected by the broker: 3." in page
    assert "Best Week" in page and "one period is one week, and its labels say so" in page
    assert "30 weeks, 2023-01-06 to 2023-07-28" in page
    assert "qtpylib.io/favicon" not in page  # no network fetch when opened
    # Our section sits inside <body>, before QuantStats' own heading.
    assert page.index("<body") < page.index('id="foliosim"') < page.index("Key Performance")


def test_quantstats_annualises_weekly(tearsheet: Tearsheet) -> None:
    # With 252 periods a year QuantStats' Sharpe would be ~2.2x ours (../shared/docs/PITFALLS.md).
    row = re.search(r"<tr><td>Sharpe</td><td>([-\d.]+)</td><td>([-\d.]+)</td></tr>", tearsheet.html)
    assert row is not None
    qs_benchmark, qs_strategy = float(row.group(1)), float(row.group(2))
    assert qs_strategy == round(tearsheet.summary["strategy"]["sharpe"], 2)
    assert qs_benchmark == round(tearsheet.summary["benchmark"]["sharpe"], 2)


def test_tearsheet_leaves_no_temp_files_or_global_state(tearsheet: Tearsheet) -> None:
    names = sorted(p.name for p in tearsheet.run_dir.iterdir())
    assert names == ["returns.csv", "summary.json", "tearsheet.html"]
    assert tearsheet.rc_changed == []
    assert tearsheet.font_logger_level_kept
    assert tearsheet.open_figures == []


def test_import_has_no_side_effects() -> None:
    code = (
        "import logging, sys, matplotlib\n"
        "before = dict(matplotlib.rcParams)\n"
        "import simulator.report\n"
        "changed = [k for k, v in matplotlib.rcParams.items() if before.get(k) != v]\n"
        "assert changed == [], changed\n"
        "assert 'quantstats' not in sys.modules and 'matplotlib.pyplot' not in sys.modules\n"
        "assert logging.getLogger('matplotlib.font_manager').level == logging.NOTSET\n"
    )
    subprocess.run([sys.executable, "-W", "error", "-c", code], check=True)


# --- bad run directories -------------------------------------------------------------------


def test_missing_summary_raises(tmp_path: Path) -> None:
    _make_run_dir(tmp_path)
    (tmp_path / "summary.json").unlink()
    with pytest.raises(RunDirError, match=r"summary\.json not found; .*run the backtest again"):
        write_tearsheet(tmp_path)
    assert not (tmp_path / "tearsheet.html").exists()


def test_returns_without_benchmark_column_raises(tmp_path: Path) -> None:
    _make_run_dir(tmp_path)
    frame = pd.read_csv(tmp_path / "returns.csv").drop(columns="benchmark")
    frame.to_csv(tmp_path / "returns.csv", index=False)
    with pytest.raises(RunDirError, match=r"returns\.csv lacks column\(s\) benchmark"):
        write_tearsheet(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["returns.csv", "summary.json"]


def test_malformed_summary_raises(tmp_path: Path) -> None:
    _make_run_dir(tmp_path)
    (tmp_path / "summary.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(RunDirError, match=r"summary\.json is not valid JSON"):
        write_tearsheet(tmp_path)


def test_unknown_fill_mode_raises(tmp_path: Path) -> None:
    summary = _make_run_dir(tmp_path)
    summary["fill"] = "open"
    (tmp_path / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    with pytest.raises(RunDirError, match=r"'fill': Input should be 'next_open' or 'close'"):
        write_tearsheet(tmp_path)


def test_non_numeric_return_raises(tmp_path: Path) -> None:
    _make_run_dir(tmp_path)
    frame = pd.read_csv(tmp_path / "returns.csv")
    frame["equal_weight"] = frame["equal_weight"].astype(object)
    frame.loc[4, "equal_weight"] = "oops"
    frame.to_csv(tmp_path / "returns.csv", index=False)
    with pytest.raises(RunDirError, match=r"non-numeric return in column 'equal_weight' on 2023"):
        write_tearsheet(tmp_path)


def test_missing_run_dir_raises(tmp_path: Path) -> None:
    with pytest.raises(RunDirError, match=r"run directory .* does not exist"):
        write_tearsheet(tmp_path / "nope")


# --- baseline columns ----------------------------------------------------------------------


def _with_baselines(path: Path | None = None) -> dict[str, Any]:
    """The hand-made run with min- and mean-variance columns beside the strategy."""
    returns = _returns()
    rng = np.random.default_rng(7)
    returns["min_variance"] = rng.normal(0.001, 0.01, N_WEEKS)
    returns["mean_variance"] = rng.normal(0.003, 0.025, N_WEEKS)
    summary = _summary(returns)
    summary["baselines"] = {
        name: {"orders_filled": 10, "orders_rejected": 0, "final_value": 1.0}
        for name in ("min_variance", "mean_variance")
    }
    if path is not None:
        out = returns.copy()
        out.index = pd.DatetimeIndex(out.index).strftime("%Y-%m-%d")
        out.to_csv(path / "returns.csv", index_label="date")
        (path / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    return summary


def test_table2_sets_the_baselines_between_one_over_n_and_the_strategy() -> None:
    summary = _with_baselines()
    table = table2(summary)
    assert list(table.columns) == [BENCHMARK, "1/N", "min_variance", "mean_variance", STRATEGY]
    for name in ("min_variance", "mean_variance"):
        assert table.at["Annual return (%)", name] == summary[name]["cagr"] * 100
        assert table.at["Max drawdown (%)", name] == summary[name]["max_drawdown"] * 100
    assert table.loc["Volatility (%)"].nunique() == 5


def test_an_unknown_baseline_in_the_summary_raises() -> None:
    summary = _with_baselines()
    summary["baselines"]["max_sharpe"] = summary["baselines"].pop("min_variance")
    with pytest.raises(RunDirError, match=r"no metrics for series max_sharpe"):
        table2(summary)


def test_a_baseline_column_missing_from_returns_raises(tmp_path: Path) -> None:
    _with_baselines(tmp_path)
    frame = pd.read_csv(tmp_path / "returns.csv").drop(columns="mean_variance")
    frame.to_csv(tmp_path / "returns.csv", index=False)
    with pytest.raises(RunDirError, match=r"returns\.csv lacks column\(s\) mean_variance"):
        write_tearsheet(tmp_path)
    assert not (tmp_path / "tearsheet.html").exists()


# --- the typed summary ---------------------------------------------------------------------


def test_a_summary_without_a_schema_is_read_as_schema_1_and_renders(tmp_path: Path) -> None:
    """Run directories written before summary.json had a schema (the same layout) still
    render; their summary is read as schema 1."""
    summary = _make_run_dir(tmp_path)
    assert "schema" not in summary
    from simulator.summary import read_summary

    assert read_summary(tmp_path / "summary.json").schema_version == 1
    assert write_tearsheet(tmp_path).is_file()


def test_a_summary_of_a_newer_schema_is_one_line(tmp_path: Path) -> None:
    summary = _make_run_dir(tmp_path)
    summary["schema"] = 99
    (tmp_path / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    with pytest.raises(RunDirError, match=r"schema 99 is newer than this foliosim reads \(2\)"):
        write_tearsheet(tmp_path)


def test_the_summary_round_trips_through_its_own_writer(tmp_path: Path) -> None:
    from simulator.summary import parse_summary, read_summary, write_summary

    typed = parse_summary({**_with_baselines(), "schema": 2})
    write_summary(typed, tmp_path / "summary.json")
    again = read_summary(tmp_path / "summary.json")
    assert again == typed
    doc = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))
    assert doc["schema"] == 2 and list(doc)[:6] == [
        "schema",
        "strategy",
        "equal_weight",
        "benchmark",
        "min_variance",
        "mean_variance",
    ]


PAYLOAD = '<script>document.title="pwned"</script><img src=x onerror=alert(1)>'


def test_an_edited_summary_cannot_put_markup_in_the_page(tmp_path: Path) -> None:
    """Regression: strategy_name and confidence weeks went unescaped into "How sure"."""
    summary = _make_run_dir(tmp_path)
    summary["strategy_name"] = PAYLOAD
    confidence = {"weeks": 30, "sharpe": 1.0, "skew": 0.0, "kurtosis": 3.0, "psr": 0.9}
    summary["confidence"] = {"strategy": confidence, "over_equal_weight": confidence}
    (tmp_path / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    page = write_tearsheet(tmp_path).read_text(encoding="utf-8")
    ours = page.split('<div class="container" id="foliosim">', 1)[1].split("<hr>\n</div>", 1)[0]
    assert "<script>document" not in ours and "<img src=x" not in ours
    assert "&lt;script&gt;document.title=&quot;pwned&quot;&lt;/script&gt;" in ours
    # A number that is not a number is refused on read, naming the field.
    summary["confidence"]["strategy"]["weeks"] = PAYLOAD
    (tmp_path / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    with pytest.raises(
        RunDirError, match=r"'confidence\.strategy\.weeks': Input should be a valid"
    ):
        write_tearsheet(tmp_path)


def test_a_one_over_n_strategy_is_one_column_not_two() -> None:
    """Regression: with strategy = "equal_weight" the table showed 1/N twice."""
    summary = _summary(_returns())
    summary["strategy_name"] = "equal_weight"
    table = table2(summary)
    assert list(table.columns) == [BENCHMARK, "equal_weight"]
    with_profile = {
        **summary,
        "profile": dict(MODERATE),
    }
    # With a profile the strategy is 1/N under its limits: another series, its own column.
    assert list(table2(with_profile).columns) == [BENCHMARK, "1/N", "equal_weight"]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s["confidence"]["strategy"].pop("sharpe"), r"'confidence\.strategy\.sharpe'"),
        (lambda s: s["profile"].pop("max_weight"), r"'profile\.max_weight': Field required"),
        (lambda s: s["analytics"].update(as_of="yesterday"), r"'analytics\.as_of'"),
    ],
    ids=["no confidence sharpe", "no profile max_weight", "bad analytics as_of"],
)
def test_an_edited_summary_is_one_line_naming_the_field(
    tmp_path: Path, edit: Any, message: str
) -> None:
    """Regression: these edits of summary.json gave tracebacks in `foliosim report`."""
    summary = _make_run_dir(tmp_path)
    c = {"weeks": 30, "sharpe": 1.0, "skew": 0.0, "kurtosis": 3.0, "psr": 0.9}
    summary["confidence"] = {"strategy": c}
    summary["profile"] = dict(MODERATE)
    summary["analytics"] = {
        "as_of": "2023-07-28",
        "window": 52,
        "min_weeks": 8,
        "var_level": 0.95,
        "var_rule": "",
        "risk_rule": "",
        "stocks": [],
    }
    edit(summary)
    (tmp_path / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    with pytest.raises(RunDirError, match=message):
        write_tearsheet(tmp_path)
    assert not (tmp_path / "tearsheet.html").exists()


# --- portfolio risk of a 10-week account -----------------------------------------------------

#: Ten weekly returns of the Nasdaq Composite to 9 September 2022 (issue 26: its tear sheet
#: showed a Cornish-Fisher CVaR 99% of 7.05% below the VaR 99% of 7.22%), and two series whose
#: expansion increases.
NASDAQ_10 = [0.0456, -0.0157, 0.0333, 0.047, 0.0215, 0.0308, -0.0262, -0.0444, -0.0421, 0.0414]
TEN_WEEKS = pd.DataFrame(
    {
        "strategy": [0.01, 0.0, 0.02, -0.01, 0.01, 0.0, -0.04, 0.01, 0.03, 0.0],
        "equal_weight": [0.005, -0.004, 0.012, 0.0, -0.03, 0.004, 0.006, -0.002, 0.02, 0.001],
        "benchmark": NASDAQ_10,
    },
    index=pd.date_range("2022-07-08", periods=10, freq="W-FRI", name="date"),
)


def test_sorted_cornish_fisher_names_the_columns_whose_expansion_bends() -> None:
    risk = risk_summary(TEN_WEEKS)
    assert sorted_cornish_fisher(TEN_WEEKS, risk) == ["benchmark"]
    assert sorted_cornish_fisher(TEN_WEEKS.iloc[:7], risk) == []  # below 8 weeks: no figure
    # A run written before the expansion was sorted shows its textbook figures, unmarked.
    old = risk.model_copy(update={"rule": risk.rule.split(" (sorted where")[0] + ")"})
    assert "sorted" not in old.rule
    assert sorted_cornish_fisher(TEN_WEEKS, old) == []


def test_a_ten_week_tear_sheet_never_shows_a_cvar_below_its_var(tmp_path: Path) -> None:
    doc = summary_doc(TEN_WEEKS, risk=risk_summary(TEN_WEEKS).model_dump())
    run = make_run(tmp_path / "run", TEN_WEEKS, **doc)
    text = write_tearsheet(run).read_text(encoding="utf-8")
    found = re.search(r'<table id="portfolio-risk">(.*?)</table>', text, flags=re.DOTALL)
    assert found is not None
    rows = {
        cells[0]: cells[1:]
        for cells in (
            re.findall(r"<td>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", found[1])
        )
        if cells
    }
    # Columns: SP500 (the Nasdaq weeks), 1/N, lstm_signal; only the bent expansion is marked.
    # (The textbook closed forms gave the Nasdaq 7.22 and 7.06: tests/test_risk.py.)
    assert rows["Cornish-Fisher VaR 99%"] == ["7.14*", "4.47", "5.92"]
    assert rows["Cornish-Fisher CVaR 99%"] == ["7.27*", "5.86", "7.60"]
    assert rows["Cornish-Fisher VaR 95%"] == ["5.82*", "2.39", "3.28"]
    assert rows["Historical CVaR 99%"] == ["4.44", "3.00", "4.00"]  # a tail of 0.1 week
    for method in ("Historical", "Gaussian", "Cornish-Fisher"):
        for level in ("95%", "99%"):
            var_ = [float(v.rstrip("*")) for v in rows[f"{method} VaR {level}"]]
            cvar_ = [float(v.rstrip("*")) for v in rows[f"{method} CVaR {level}"]]
            assert all(c >= v for v, c in zip(var_, cvar_, strict=True)), (method, level)
    note = re.search(r'<p id="risk-sorted">(.*?)</p>', text, flags=re.DOTALL)
    assert note is not None and note[1].startswith("* SP500: the Cornish-Fisher expansion")


def test_quantstats_labels_say_week_and_excess_kurtosis(tearsheet: Tearsheet) -> None:
    """Issue 26: QuantStats' "Daily" labels on weekly data, and two kurtoses unlabelled."""
    page = tearsheet.html
    for label in ("Best Week", "Worst Week", "Weekly Value-at-Risk", "Expected Weekly"):
        assert label in page, label
    for label in ("Best Day", "Worst Day", "Daily Value-at-Risk", "Expected Daily"):
        assert label not in page, label
    # Its columns: the benchmark, then the strategy; pandas' excess kurtosis, 2 decimals.
    excess = re.search(r"<td>Excess kurtosis</td><td>(-?[\d.]+)</td><td>(-?[\d.]+)</td>", page)
    assert excess is not None
    assert (excess[1], excess[2]) == ("-0.4", "0.81")
    r = _returns()
    assert (round(r["benchmark"].kurt(), 2), round(r["strategy"].kurt(), 2)) == (-0.4, 0.81)


def test_an_open_drawdown_is_ongoing_not_recovered() -> None:
    dates = pd.date_range("2023-01-06", periods=6, freq="W-FRI")
    page = (
        '<div id="ddinfo"><table><tr><td>2023-01-13</td><td>2023-02-10</td><td>-9.0</td>'
        "<td>28</td></tr><tr><td>2023-01-06</td><td>2023-01-13</td><td>-1.0</td><td>7</td>"
        "</tr></table></div><p>2023-02-10</p>"
    )
    falling = pd.Series([0.01, -0.05, 0.02, -0.03, 0.01, -0.02], index=dates)
    got = weekly_quantstats(page, falling)
    assert "<td>2023-01-13</td><td>ongoing</td><td>-9.0</td>" in got
    assert "<td>2023-01-06</td><td>2023-01-13</td>" in got and got.endswith("<p>2023-02-10</p>")
    recovered = pd.Series([0.01, -0.05, 0.02, -0.03, 0.01, 0.2], index=dates)
    assert weekly_quantstats(page, recovered) == page
