"""Tests of the tear sheet's defects of issue 15, each on small hand-made data: QuantStats'
page errors and missing glyph, its calendar-year and return-quantile charts on weekly data,
short runs, the forecast and learning-curve panels, and date axes that never warn."""

from __future__ import annotations

import base64
import html
import io
import json
import re
from pathlib import Path

import matplotlib.dates as mdates
import numpy as np
import pandas as pd
import pytest
from fontTools.ttLib import TTFont
from matplotlib.figure import Figure

from models.metrics import predictions_quality
from models.plots import (
    Curve,
    direction_hits,
    forecast_returns,
    forecast_scatter_figure,
    ic_figure,
    learning_summary_figure,
    png_bytes,
)
from simulator import stepping
from simulator.account_report import account_result
from simulator.backtest import run_backtest
from simulator.charts import (
    BETA_WINDOWS,
    exposure_figure,
    growth_figure,
    period_returns,
    return_quantiles_figure,
    rolling_beta,
    rolling_beta_figure,
    weekly_returns_figure,
    yearly_returns,
    yearly_returns_figure,
)
from simulator.metrics import SHORT_RUN_WEEKS
from simulator.report import SHORT_ROWS, TABLE2_ROWS, _assemble, table2, write_run, write_tearsheet
from simulator.summary import ForecastQuality, parse_summary
from tests.conftest import PaperModel
from tests.helpers import (
    browse,
    ew_config,
    make_run,
    open_new,
    require_chromium,
    summary_doc,
    weekly_returns,
)

# --- a hand-made run directory ---------------------------------------------------------------


def div(page: str, div_id: str) -> str:
    match = re.search(rf'<div id="{div_id}">(.*?)</div>', page, flags=re.DOTALL)
    assert match is not None, div_id
    return match[1]


def tick_labels(fig: Figure, axis: int = 0) -> list[str]:
    png_bytes(fig)  # draw, so the tick labels are final
    return [t.get_text() for t in fig.axes[axis].get_xticklabels()]


#: 40 weeks from 2022-09-02: 18 in 2022, 22 in 2023.
ACROSS_YEARS = weekly_returns("2022-09-02", 40)


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The tear sheet of a 40-week run across two calendar years (one QuantStats call)."""
    run = make_run(tmp_path_factory.mktemp("tearsheet") / "run", ACROSS_YEARS)
    return write_tearsheet(run).read_text(encoding="utf-8")


# --- QuantStats' page: its script error, its favicon and its missing glyph -------------------


QS_LIKE = """<!DOCTYPE html>
<html lang="en"><head><title>Tearsheet</title>
<link rel="shortcut icon" href="https://qtpylib.io/favicon.ico" type="image/x-icon">
<style>body,p,table,td,th{font:13px/1.4 Arial,sans-serif}</style></head>
<body onload="save()"><div id="eoy_returns"><svg><text>2023</text></svg></div>
<table><tr><td>CAGR﹪</td></tr></table></body></html>"""


def test_assemble_removes_the_onload_script_the_favicon_and_the_small_percent_sign() -> None:
    page = _assemble(
        QS_LIKE, "<p>ours &bull; &#9888;</p>", title="t<", figures={"eoy_returns": "X"}
    )
    assert re.search(r"<body>\s*<p>ours", page)  # no onload; our section first
    assert "save()" not in page and "favicon" not in page and "https://" not in page
    assert "﹪" not in page and "<td>CAGR%</td>" in page
    assert '<div id="eoy_returns">X</div>' in page
    assert "<title>t&lt;</title>" in page


def embedded_font(page: str) -> set[int]:
    """The characters of the page's embedded regular font."""
    data = re.search(r"font-weight:400;[^}]*base64,([A-Za-z0-9+/=]+)", page)
    assert data is not None
    return set(TTFont(io.BytesIO(base64.b64decode(data[1]))).getBestCmap())


def visible_text(page: str) -> str:
    body = page[page.index("<body") :]
    body = re.sub(r"<(svg|style|script)\b.*?</\1>", "", body, flags=re.DOTALL)
    return html.unescape(re.sub(r"<[^>]+>", "", body))


def test_the_embedded_font_has_every_character_the_page_prints(page: str) -> None:
    """Bullets, quotes, the warning sign and the accents of our notes, and everything
    QuantStats prints, are in the page's own font (a DejaVu Sans subset)."""
    assert "font-family:&quot;" not in page
    covered = embedded_font(page)
    text = {c for c in visible_text(page) if not c.isspace()}
    assert {"•", "“", "ó", "%"} <= text
    assert sorted(c for c in text if ord(c) not in covered) == []
    assert 'body,body *{font-family:"foliosim DejaVu Sans",sans-serif}' in page


# --- the calendar-year chart -----------------------------------------------------------------


def test_yearly_returns_compound_the_weeks_dated_in_each_year() -> None:
    r = pd.DataFrame(
        {"s": [0.10, 0.10, -0.50, 0.20]},
        index=pd.to_datetime(["2022-12-23", "2022-12-30", "2023-01-06", "2023-01-13"]),
    )
    table = yearly_returns(r)
    assert table.index.tolist() == [2022, 2023]
    np.testing.assert_allclose(table["s"], [1.1 * 1.1 - 1, 0.5 * 1.2 - 1], rtol=0, atol=1e-15)
    assert table["weeks"].tolist() == [2, 2]


def test_the_calendar_year_chart_labels_the_years_of_the_data() -> None:
    """Regression (issue 15): QuantStats labelled the 2022 bar '2023' and left 2023 bare."""
    fig = yearly_returns_figure(ACROSS_YEARS, {"benchmark": "SP500", "strategy": "lstm"})
    assert tick_labels(fig) == ["2022 (18 wk)", "2023 (22 wk)"]
    bars = [patch.get_height() for patch in fig.axes[0].patches]
    expected = yearly_returns(ACROSS_YEARS)
    np.testing.assert_allclose(
        bars, [*expected["benchmark"], *expected["strategy"]], rtol=0, atol=1e-15
    )
    full = weekly_returns("2021-01-01", 105)  # 2021: 53 Fridays, 2022: 52
    assert tick_labels(yearly_returns_figure(full, {"strategy": "s"})) == ["2021", "2022"]


def test_the_page_shows_our_calendar_year_and_quantile_charts(page: str) -> None:
    for div_id, alt in [
        ("eoy_returns", "Returns per calendar year of lstm_signal and SP500"),
        ("returns_dist", "Return quantiles of lstm_signal per week, month, quarter and year"),
    ]:
        inner = div(page, div_id)
        assert "<svg" not in inner
        assert inner.startswith('<img src="data:image/png;base64,') and f'alt="{alt}"' in inner
    assert "Key Performance Metrics" in page  # the rest of QuantStats' report stays


# --- the return quantiles --------------------------------------------------------------------


def test_period_returns_compound_by_calendar_period() -> None:
    r = pd.Series(
        [0.1, -0.1, 0.2, 0.05],
        index=pd.to_datetime(["2023-03-24", "2023-03-31", "2023-04-07", "2023-07-07"]),
    )
    months = period_returns(r, "M")
    assert [str(p) for p in months.index] == ["2023-03", "2023-04", "2023-07"]
    np.testing.assert_allclose(months, [1.1 * 0.9 - 1, 0.2, 0.05], rtol=0, atol=1e-15)
    quarters = period_returns(r, "Q")
    assert [str(p) for p in quarters.index] == ["2023Q1", "2023Q2", "2023Q3"]
    np.testing.assert_allclose(quarters, [1.1 * 0.9 - 1, 0.2, 0.05], rtol=0, atol=1e-15)
    np.testing.assert_allclose(period_returns(r, "Y"), [1.1 * 0.9 * 1.2 * 1.05 - 1], atol=1e-15)
    pd.testing.assert_series_equal(period_returns(r, None), r)


def test_every_return_quantile_box_holds_its_periods() -> None:
    """Regression (issue 15): QuantStats' "Weekly" box was empty on Friday-dated weeks."""
    series = ACROSS_YEARS["strategy"]
    fig = return_quantiles_figure(series, "lstm")
    assert tick_labels(fig) == [
        "Weekly\n(n=40)",
        "Monthly\n(n=10)",
        "Quarterly\n(n=4)",
        "Yearly\n(n=2)",
    ]
    levels = np.array([y for line in fig.axes[0].lines for y in line.get_ydata()], dtype=float)
    for freq in (None, "M", "Q", "Y"):
        median = float(np.median(period_returns(series, freq)))
        assert np.isclose(levels, median, rtol=0, atol=1e-15).any(), freq


# --- the rolling beta ------------------------------------------------------------------------


def by_hand_beta(r: list[float], b: list[float]) -> float:
    """cov(r, b) / var(b), written out."""
    mr, mb = sum(r) / len(r), sum(b) / len(b)
    cov = sum((x - mr) * (y - mb) for x, y in zip(r, b, strict=True))
    return cov / sum((y - mb) ** 2 for y in b)


def test_rolling_beta_is_absent_until_its_window_is_full_then_cov_over_var() -> None:
    """Regression (issue 26): QuantStats drew the first six months of its rolling beta as 0."""
    dates = pd.date_range("2024-01-05", periods=6, freq="W-FRI")
    b = [0.01, -0.01, 0.03, 0.00, 0.02, -0.02]
    r = [0.03, -0.01, 0.01, 0.02, 0.01, -0.03]
    beta = rolling_beta(pd.Series(r, dates, name="s"), pd.Series(b, dates), 3)
    assert beta.name == "s" and beta.index.equals(dates)
    assert beta.iloc[:2].isna().all()
    # Weeks 1-3: b - mean = (0, -.02, .02), r - mean = (.02, -.02, 0): cov .0004 / var .0008.
    assert beta.iloc[2] == pytest.approx(0.5, rel=1e-12)
    expected = [by_hand_beta(r[t - 2 : t + 1], b[t - 2 : t + 1]) for t in range(2, 6)]
    np.testing.assert_allclose(beta.iloc[2:], expected, rtol=1e-12, atol=0)


def test_rolling_beta_is_absent_over_a_missing_week_and_a_flat_benchmark() -> None:
    dates = pd.date_range("2024-01-05", periods=6, freq="W-FRI")
    r = pd.Series([0.01, np.nan, 0.02, 0.03, -0.01, 0.02], dates)
    b = pd.Series([0.02, 0.01, -0.01, 0.1, 0.1, 0.1], dates)  # 0.1 * 3 / 3 != 0.1 in floats
    beta = rolling_beta(r, b, 3)
    # Weeks 2-4 hold the missing week; weeks 4-6 saw the benchmark stand still.
    assert beta.isna().tolist() == [True, True, True, True, False, True]
    assert beta.iloc[4] == pytest.approx(by_hand_beta([0.02, 0.03, -0.01], [-0.01, 0.1, 0.1]))
    with pytest.raises(ValueError, match="at least 2 weeks"):
        rolling_beta(r, b, 1)


def test_the_rolling_beta_chart_draws_nothing_before_each_window_is_full() -> None:
    returns = weekly_returns("2022-01-07", 60)
    series = {"lstm": returns["strategy"], "1/N": returns["equal_weight"]}
    fig = rolling_beta_figure(returns["benchmark"], series, "SP500")
    ax = fig.axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    short, long = BETA_WINDOWS
    assert (short, long) == (26, 52)  # QuantStats' windows at 52 periods a year
    drawn = [
        ("lstm", short, "strategy"),
        ("lstm", long, "strategy"),
        ("1/N", short, "equal_weight"),
    ]
    for label, window, column in drawn:
        y = np.asarray(lines[f"{label}, {window} weeks"].get_ydata(), dtype=float)
        assert np.isnan(y[: window - 1]).all(), (label, window)  # absent, not 0
        expected = [
            by_hand_beta(
                returns[column].iloc[t - window + 1 : t + 1].tolist(),
                returns["benchmark"].iloc[t - window + 1 : t + 1].tolist(),
            )
            for t in range(window - 1, 60)
        ]
        np.testing.assert_allclose(y[window - 1 :], expected, rtol=1e-10, atol=0)
    whole = by_hand_beta(returns["strategy"].tolist(), returns["benchmark"].tolist())
    assert f"lstm, whole run {whole:.2f}" in lines
    assert "1/N, 52 weeks" not in lines
    # The x axis starts at the first week, so the empty half year shows as empty.
    assert ax.get_xlim()[0] == pytest.approx(mdates.date2num(returns.index[0]))
    assert ax.get_title() == (
        "Rolling beta against SP500 over the last 26 and 52 weeks\n"
        "(each line starts when its window is full)"
    )


def test_the_rolling_beta_chart_says_which_window_the_run_is_too_short_for() -> None:
    fig = rolling_beta_figure(ACROSS_YEARS["benchmark"], {"lstm": ACROSS_YEARS["strategy"]}, "X")
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert [x for x in labels if "weeks" in x] == ["lstm, 26 weeks"]
    assert fig.axes[0].get_title().endswith("(the run has 40 weeks: no 52-week window)")


def test_the_page_shows_our_rolling_beta_chart(page: str) -> None:
    """QuantStats' zero-filled chart is gone: the div holds our PNG, drawn from the run."""
    inner = div(page, "rolling_beta")
    alt = (
        "Rolling beta of lstm_signal and 1/N against SP500 over 26 and 52 weeks, "
        "absent until the window is full"
    )
    assert "<svg" not in inner and f'alt="{alt}"' in inner
    shown = re.search(r'src="data:image/png;base64,([^"]+)"', inner)
    assert shown is not None
    series = {"lstm_signal": ACROSS_YEARS["strategy"], "1/N": ACROSS_YEARS["equal_weight"]}
    ours = rolling_beta_figure(ACROSS_YEARS["benchmark"], series, "SP500")
    assert base64.b64decode(shown[1]) == png_bytes(ours, 100)
    assert "draw a beta of 0 until its 26-week window is full" in page


def test_the_page_shows_our_weekly_returns_chart(page: str) -> None:
    """QuantStats' "Daily Returns" chart (each week a spike on a calendar of days) is ours: a
    bar a week, at the strategy's return, and the benchmark's as a line."""
    inner = div(page, "daily_returns")
    assert "<svg" not in inner and 'alt="Weekly returns of lstm_signal, with SP500&#x27;s"' in inner
    shown = re.search(r'src="data:image/png;base64,([^"]+)"', inner)
    assert shown is not None
    fig = weekly_returns_figure(
        ACROSS_YEARS["strategy"], ACROSS_YEARS["benchmark"], ("lstm_signal", "SP500")
    )
    assert base64.b64decode(shown[1]) == png_bytes(fig, 100)
    ax = fig.axes[0]
    heights = [bar.get_height() for bar in ax.patches]
    assert heights == pytest.approx(ACROSS_YEARS["strategy"].to_list())
    assert ax.lines[0].get_ydata() == pytest.approx(ACROSS_YEARS["benchmark"].to_numpy())
    assert "Daily Returns (Cumulative Sum)" not in page  # its title, drawn in its SVG


# --- short runs ------------------------------------------------------------------------------


def test_a_short_run_shows_period_figures_and_no_quantstats_report(tmp_path: Path) -> None:
    returns = weekly_returns("2023-01-06", SHORT_RUN_WEEKS - 1)
    summary = parse_summary(summary_doc(returns))
    assert summary.short
    table = table2(summary)
    assert table.index.tolist() == list(SHORT_ROWS)
    np.testing.assert_allclose(
        table.loc["Return over the period (%)"].to_numpy(),
        [(np.prod(1 + returns[k]) - 1) * 100 for k in ("benchmark", "equal_weight", "strategy")],
        rtol=1e-12,
    )
    page = write_tearsheet(make_run(tmp_path / "run", returns)).read_text(encoding="utf-8")
    assert 'id="short-run"' in page and f"fewer than {SHORT_RUN_WEEKS} weeks" in page
    shown = ("Annual return", "Volatility", "CAGR", "Key Performance Metrics", "annualised Sharpe ")
    for annualised in shown:
        assert annualised not in visible_text(page), annualised
    # The probabilistic Sharpe ratio is annualised too: a short run says why it is left out.
    assert "too short" in visible_text(page)


def test_a_run_of_the_threshold_is_not_short() -> None:
    summary = parse_summary(summary_doc(weekly_returns("2023-01-06", SHORT_RUN_WEEKS)))
    assert not summary.short
    assert table2(summary).index.tolist() == list(TABLE2_ROWS)


# --- forecasts and learning curves -----------------------------------------------------------


def test_forecast_returns_and_direction_hits_are_exact() -> None:
    rows = pd.DataFrame(
        {
            "last_close": [100.0, 100.0, 50.0, 10.0, 10.0],
            "predicted_close": [101.0, 99.0, 51.0, 10.0, np.nan],
            "actual_close": [110.0, 101.0, 50.0, 11.0, 12.0],
        }
    )
    predicted, actual = forecast_returns(rows)
    np.testing.assert_allclose(predicted, [0.01, -0.01, 0.02, 0.0], rtol=0, atol=1e-15)
    np.testing.assert_allclose(actual, [0.1, 0.01, 0.0, 0.1], rtol=0, atol=1e-15)
    # Row 3 did not move and row 4 predicted no move: 1 right of 2.
    assert direction_hits(predicted, actual) == (1, 2)
    fig = forecast_scatter_figure(rows)
    assert fig is not None
    ax = fig.axes[0]
    assert ax.get_title() == "all tickers: hit rate 50.0% (n=4)"
    naive = [line for line in ax.lines if line.get_label() == "naive forecast (0)"]
    assert len(naive) == 1 and list(naive[0].get_xdata()) == [0.0, 0.0]
    assert forecast_scatter_figure(rows.iloc[4:]) is None


def test_learning_curves_show_one_panel_per_version_with_the_median() -> None:
    versions = {
        "m/1": {
            "A": Curve([4.0, 2.0, 1.0], [5.0, 3.0, 2.0], 3),
            "B": Curve([2.0, 1.0], [3.0, 2.0], 1),
            "C": Curve([3.0, 3.0, 3.0], [4.0, 4.0, 1.0], 2),
        },
        "m/2": {
            "A": Curve([1.0, 1.0, 1.0, 9.0], [1.0, 1.0, 1.0, 9.0], 1),
            "B": Curve([2.0, 2.0], [2.0, 2.0], 1),
            "C": Curve([3.0], [3.0], 1),
        },
        "m/3": {},
    }
    fig = learning_summary_figure(versions)
    assert fig is not None
    assert [ax.get_title() for ax in fig.axes] == ["m/1 (3 models)", "m/2 (3 models)"]
    # m/2: half of its models stopped after 2 epochs; A's last epochs alone are not shown.
    np.testing.assert_allclose(fig.axes[1].lines[0].get_ydata(), [2.0, 1.5])
    train, val, best = fig.axes[0].lines
    # Epoch 3: only A and C trained that long.
    np.testing.assert_allclose(train.get_ydata(), [3.0, 2.0, 2.0])
    np.testing.assert_allclose(val.get_ydata(), [4.0, 3.0, 1.5])
    assert list(best.get_xdata()) == [2.0, 2.0]
    assert learning_summary_figure({"m/3": {}}) is None


# --- date axes -------------------------------------------------------------------------------


@pytest.mark.parametrize("weeks", [2, 5, 30, 80, 85, 90, 95, 100, 210])
def test_date_axes_never_warn(weeks: int) -> None:
    """Regression (issue 15): the predicted-vs-actual panels used AutoDateLocator(maxticks=4),
    which has no monthly interval for 19-23 months and warned on every demo run. Our date
    axes use the default locator; warnings are errors here."""
    returns = weekly_returns("2019-01-04", weeks)
    png_bytes(growth_figure(returns, {"strategy": "s", "benchmark": "b"}))
    exposure = pd.DataFrame(
        {"long": 0.6, "short": -0.4, "gross": 1.0, "net": 0.2, "turnover": 0.3},
        index=returns.index,
    )
    png_bytes(exposure_figure(exposure))
    ics = pd.DataFrame({"ic": 0.1, "rank_ic": 0.2, "n": 3}, index=returns.index)
    figure = ic_figure(ics)
    assert figure is not None
    png_bytes(figure)


def test_the_exposure_legend_is_outside_the_plot() -> None:
    """Regression (issue 26): the legend sat inside the upper panel and covered the 100%
    line of a fully invested run."""
    weeks = pd.date_range("2024-01-05", periods=20, freq="W-FRI")
    exposure = pd.DataFrame(
        {"long": 1.0, "short": 0.0, "gross": 1.0, "net": 1.0, "turnover": 0.1}, index=weeks
    )
    fig = exposure_figure(exposure)
    fig.canvas.draw()
    top = fig.axes[0]
    assert top.get_legend() is None and len(fig.legends) == 1
    legend = fig.legends[0]
    assert [t.get_text() for t in legend.get_texts()] == ["gross", "net", "long", "short"]
    box, plot = legend.get_window_extent(), top.get_window_extent()
    assert box.y0 >= plot.y1  # wholly above the upper panel
    png_bytes(fig)


# --- the tear sheets in a real browser -------------------------------------------------------


def assert_clean_in_chromium(run: Path, tmp_path: Path) -> str:
    """The tear sheet of ``run`` in headless Chromium: no page error, no request, every glyph
    drawn in the page's embedded DejaVu Sans. Returns its rendered text."""
    seen = browse(run / "tearsheet.html", tmp_path)
    assert seen.errors == []
    assert seen.requests == []
    assert set(seen.fonts) == {("DejaVu Sans", True)}, seen.fonts
    assert seen.title.startswith("foliosim: ")
    return seen.text


@pytest.mark.slow
def test_an_lstm_tear_sheet_and_a_replay_tear_sheet_are_clean_in_chromium(
    paper_model: PaperModel, tmp_path: Path
) -> None:
    """Issue 15's browser check, on the paper run (lstm_signal, predictions, learning curves,
    the reference table, baselines) and on a paper account of 3 weeks (a short run)."""
    require_chromium()
    result = run_backtest(paper_model.config, paper_model.workspace)
    assert result.summary.prediction is not None and result.predictions is not None
    quality = result.summary.prediction.quality
    assert quality == ForecastQuality.model_validate(predictions_quality(result.predictions))
    assert quality.rank_ic.weeks == 51 and quality.forecasts == 51 * 12
    run = write_run(result, tmp_path / "lstm")
    doc = json.loads((run / "summary.json").read_text())
    assert doc["prediction"]["quality"]["rank_ic"]["weeks"] == 51
    text = assert_clean_in_chromium(run, tmp_path)
    for shown in (
        "CAGR%",
        "Realised against predicted",
        "Learning curves of every version",
        "Exposure and turnover",
        "Forecast quality",
    ):
        assert shown in text

    workspace = tmp_path / "ws"
    open_new(workspace, "three-weeks", ew_config())
    account, _ = stepping.step(workspace, "three-weeks", weeks=3)
    try:
        sheet = write_run(account_result(account, workspace), tmp_path / "replay")
    finally:
        account.close()
    text = assert_clean_in_chromium(sheet, tmp_path)
    assert "a short run" in text and "CAGR" not in text
