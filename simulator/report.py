"""The HTML tear sheet of a run directory and the seed paper's Table 2.

A run directory (written by a backtest) holds ``returns.csv`` (columns ``date, strategy,
equal_weight, benchmark`` and one per baseline optimiser listed in summary.json's
``baselines``: weekly simple returns as fractions, one row per week, stamped on the week's last
trading day), ``summary.json`` (:class:`simulator.summary.RunSummary`: the statistics of
:func:`simulator.metrics.summarize` per series plus run facts) and, when the config named a
yield series, ``risk_free.csv``. The files are read by :mod:`simulator.rundir` and
:mod:`simulator.summary`; the sections beyond Table 2 are :mod:`simulator.sections`.

:func:`write_tearsheet` turns it into one self-contained ``tearsheet.html``: our own section
(Table 2, a growth-of-1 chart of every series, notes on fills, risk-free rate and data)
followed by the QuantStats tear sheet of the strategy against the benchmark, annualised with
52 weeks a year. QuantStats is imported and run only inside :func:`write_tearsheet`, with its
warnings, its font log lines and its matplotlib styling confined to that call.
"""

from __future__ import annotations

import base64
import functools
import html
import io
import logging
import math
import re
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib
import pandas as pd

from simulator.charts import (
    BETA_WINDOWS,
    growth_figure,
    return_quantiles_figure,
    rolling_beta_figure,
    weekly_returns_figure,
    yearly_returns_figure,
)
from simulator.errors import RunDirError
from simulator.htmlkit import esc, format_number, png, write_atomically
from simulator.leftovers import system_temp, writing
from simulator.metrics import SHORT_RUN_WEEKS, WEEKS_PER_YEAR
from simulator.rundir import (
    read_explanations,
    read_exposure,
    read_models,
    read_returns,
    write_files,
)
from simulator.sections import (
    explanations_html,
    exposure_html,
    honesty_html,
    prediction_html,
    profile_html,
    reference_html,
    risk_html,
    stress_html,
)
from simulator.summary import REMEDY, PortfolioRisk, RunSummary, read_summary
from strategies.risk import LEVELS, MIN_WEEKS, cornish_fisher_sorted

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from matplotlib.typing import RcKeyType

    from simulator.results import BacktestResult

TEARSHEET_NAME = "tearsheet.html"
TABLE2_ROWS = ("Annual return (%)", "Volatility (%)", "Sharpe ratio", "Max drawdown (%)")
#: Table 2 of a short run (fewer than :data:`simulator.metrics.SHORT_RUN_WEEKS` weeks).
SHORT_ROWS = ("Return over the period (%)", "Max drawdown (%)")
EQUAL_WEIGHT_LABEL = "1/N"
FILL_NOTES = {
    "next_open": "orders decided at the close of week t fill at the open of week t+1",
    "close": "orders decided at the close of week t fill at the close of week t "
    "(cheat-on-close), as the paper assumes",
}

# Table 2 row -> (metric key in summary.json, factor applied to the fraction).
_TABLE2_SOURCE = {
    "Annual return (%)": ("cagr", 100.0),
    "Volatility (%)": ("volatility", 100.0),
    "Sharpe ratio": ("sharpe", 1.0),
    "Max drawdown (%)": ("max_drawdown", 100.0),
    "Return over the period (%)": ("total_return", 100.0),
}


def table2(summary: RunSummary) -> pd.DataFrame:
    """The seed paper's Table 2 for one run.

    Returns
    -------
    pd.DataFrame
        Floats, shape ``(4, 3 + n_baselines)``: rows :data:`TABLE2_ROWS` (annual return =
        CAGR, volatility and max drawdown in percent; Sharpe as a ratio), columns
        ``[benchmark_name, "1/N", *baselines, strategy_name]``. A null Sharpe ratio is NaN.
        A short run (:attr:`RunSummary.short`) has the rows :data:`SHORT_ROWS` instead: the return
        over the period and the max drawdown, in percent.

    Raises
    ------
    RunDirError
        If a baseline has no metrics, or two columns would share a label.
    """
    labels = column_labels(summary)
    rows = SHORT_ROWS if summary.short else TABLE2_ROWS
    data: dict[str, list[float]] = {}
    for key, label in labels.items():
        stats = summary.series.get(key)
        if stats is None:
            raise RunDirError(f"summary.json has no metrics object for '{key}'; {REMEDY}")
        data[label] = [
            _or_nan(getattr(stats, _TABLE2_SOURCE[row][0])) * _TABLE2_SOURCE[row][1] for row in rows
        ]
    return pd.DataFrame(data, index=list(rows), columns=list(data), dtype=float)


def _or_nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


def format_table2(table: pd.DataFrame) -> pd.DataFrame:
    """Table 2 as display strings, as the tear sheet and the terminal show it.

    Percent rows get 2 decimals, the Sharpe ratio 3; NaN becomes ``"n/a"``.

    Examples
    --------
    >>> t = pd.DataFrame({"A": [12.3456, 20.0, float("nan"), -5.0]}, index=list(TABLE2_ROWS))
    >>> format_table2(t)["A"].tolist()
    ['12.35', '20.00', 'n/a', '-5.00']
    """
    values = table.to_numpy(dtype=float)
    decimals = [3 if row == "Sharpe ratio" else 2 for row in table.index]
    cells = {
        column: [format_number(values[i, j], decimals[i]) for i in range(len(table.index))]
        for j, column in enumerate(table.columns)
    }
    return pd.DataFrame(cells, index=table.index, columns=table.columns)


def write_run(result: BacktestResult, out: Path, *, tearsheet: bool = True) -> Path:
    """Write a run directory into ``out`` (see :func:`simulator.rundir.write_files`), its tear
    sheet included unless ``tearsheet=False``, all renamed into place at once."""
    return write_files(result, out, write_tearsheet if tearsheet else None)


def write_tearsheet(run_dir: Path) -> Path:
    """Write ``run_dir/tearsheet.html`` and return its path.

    The page is our section (Table 2, a growth-of-1 chart of every series as an inline
    PNG, notes on fill mode, risk-free rate, data and rejected orders) followed by the
    QuantStats tear sheet of the strategy against the benchmark (weekly series on the same
    dates, 52 periods a year), with its calendar-year, return-quantile and rolling-beta charts
    replaced by ours (:mod:`simulator.charts` says why). A short run (fewer than
    :data:`~simulator.metrics.SHORT_RUN_WEEKS` weeks) shows period figures only and no
    QuantStats report. The page needs nothing from the network: its charts are inline and
    its text is set in a subset of DejaVu Sans embedded in the page. The file is written to
    a temporary file in ``run_dir`` and renamed into place, so a failure never leaves a
    half-written tear sheet. Takes 2-6 s, nearly all in QuantStats.

    Parameters
    ----------
    run_dir
        A run directory holding ``returns.csv`` and ``summary.json``.

    Returns
    -------
    Path
        ``run_dir / "tearsheet.html"``.

    Raises
    ------
    RunDirError
        If ``run_dir``, ``returns.csv`` or ``summary.json`` is missing or malformed.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirError(f"run directory {run_dir} does not exist; {REMEDY}")
    summary = read_summary(run_dir / "summary.json")
    table = table2(summary)
    returns = read_returns(run_dir / "returns.csv", list(column_labels(summary)))
    rf_annual = _annual_risk_free(summary)
    strategy_label, benchmark_label = summary.strategy_name, summary.benchmark_name

    figures: dict[str, str] = {}
    if summary.short:
        qs_page = _PLAIN_PAGE
    else:
        qs_page = _quantstats_html(
            returns["strategy"],
            returns["benchmark"],
            rf_annual=rf_annual,
            strategy_label=strategy_label,
            benchmark_label=benchmark_label,
        )
        qs_page = weekly_quantstats(qs_page, returns["strategy"])
        pair = {"benchmark": benchmark_label, "strategy": strategy_label}
        figures = {
            "eoy_returns": _img(
                yearly_returns_figure(returns, pair),
                f"Returns per calendar year of {strategy_label} and {benchmark_label}",
            ),
            "returns_dist": _img(
                return_quantiles_figure(returns["strategy"], strategy_label),
                f"Return quantiles of {strategy_label} per week, month, quarter and year",
            ),
            "rolling_beta": _rolling_beta_img(returns, column_labels(summary)),
            "daily_returns": _img(
                weekly_returns_figure(
                    returns["strategy"], returns["benchmark"], (strategy_label, benchmark_label)
                ),
                f"Weekly returns of {strategy_label}, with {benchmark_label}'s",
            ),
        }
    models = read_models(run_dir)
    extra = [
        risk_html(summary, column_labels(summary), sorted_cornish_fisher(returns, summary.risk)),
        profile_html(summary),
        exposure_html(summary, read_exposure(run_dir)),
        reference_html(summary),
    ]
    stocks = summary.analytics
    if stocks is not None and stocks.stocks:
        from simulator.analytics import from_json_rows
        from simulator.tables import analytics_html

        extra.append(
            analytics_html(
                from_json_rows([row.model_dump() for row in stocks.stocks]),
                pd.Timestamp(stocks.as_of),
                stocks.window,
                benchmark_name=benchmark_label,
            )
        )
    extra.append(stress_html(summary))
    if models is not None:
        extra.append(prediction_html(run_dir, models))
    extra.append(explanations_html(read_explanations(run_dir)))  # a run's or an account's
    extra.append(honesty_html(summary, models))
    section = _section_html(
        table,
        returns,
        summary,
        rf_annual,
        has_rf_file=(run_dir / "risk_free.csv").is_file(),
        extra="\n".join(extra),
    )
    page = _assemble(
        qs_page, section, title=f"foliosim: {strategy_label} vs {benchmark_label}", figures=figures
    )

    target = run_dir / TEARSHEET_NAME
    write_atomically(target, page)
    return target


def column_labels(summary: RunSummary) -> dict[str, str]:
    """Table 2's series, in column order, with their labels: benchmark -> its name,
    equal_weight -> "1/N", each baseline -> its name, strategy -> its name."""
    labels = {
        "benchmark": summary.benchmark_name,
        "equal_weight": EQUAL_WEIGHT_LABEL,
        **{name: name for name in summary.baselines},
        "strategy": summary.strategy_name,
    }
    if summary.strategy_name == "equal_weight" and summary.profile is None:
        # The strategy is the 1/N run itself (the same series): one column, not two.
        del labels["equal_weight"]
    if len(set(labels.values())) < len(labels):
        raise RunDirError(
            f"summary.json: benchmark_name, '{EQUAL_WEIGHT_LABEL}', the baselines and "
            f"strategy_name must differ (got {list(labels.values())}); rename the strategy or "
            "the benchmark in the config"
        )
    return labels


def sorted_cornish_fisher(returns: pd.DataFrame, risk: PortfolioRisk | None) -> list[str]:
    """The columns of ``returns`` whose Cornish-Fisher VaR or CVaR (95% or 99%, over their
    weeks with a return) came from a sorted expansion that moved a printed digit
    (:func:`strategies.risk.cornish_fisher_sorted`); none for a run whose summary.json's
    ``risk`` was written before the expansion was sorted (its rule does not say so): its
    figures are the textbook ones, and are shown as written."""
    if risk is None or "sorted" not in risk.rule:
        return []
    out = []
    for column in returns.columns:
        r = returns[column].dropna().to_numpy(dtype=float)
        if len(r) >= MIN_WEEKS and any(cornish_fisher_sorted(r, level) for level in LEVELS):
            out.append(str(column))
    return out


def _annual_risk_free(summary: RunSummary) -> float:
    """The constant annual risk-free rate handed to QuantStats, as a fraction."""
    rate: float | None
    if isinstance(summary.risk_free, str):
        rate, key = summary.risk_free_annual_mean, "risk_free_annual_mean"
    else:
        rate, key = summary.risk_free, "risk_free"
    if rate is None or not math.isfinite(rate):
        raise RunDirError(f"summary.json: '{key}' must be a finite number (got {rate!r}); {REMEDY}")
    return float(rate)


# --- QuantStats ----------------------------------------------------------------------------


@functools.cache
def _quantstats_style() -> dict[RcKeyType, Any]:
    """The rcParams QuantStats sets when first imported, imported without keeping them global.

    QuantStats restyles matplotlib (seaborn theme, Arial) at import time; we import it inside
    ``rc_context`` and re-apply the captured difference for each tear sheet only. Empty if
    QuantStats was already imported elsewhere (its style is then already global).
    """
    with matplotlib.rc_context(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        before = dict(matplotlib.rcParams)
        import quantstats  # noqa: F401

        return {
            key: value
            for key, value in matplotlib.rcParams.items()
            if key != "backend" and before.get(key) != value
        }


@contextmanager
def _quiet_matplotlib_fonts() -> Iterator[None]:
    """Hide font_manager's "findfont: Font family 'Arial' not found" lines for one call."""
    logger = logging.getLogger("matplotlib.font_manager")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _quantstats_html(
    strategy: pd.Series,
    benchmark: pd.Series,
    *,
    rf_annual: float,
    strategy_label: str,
    benchmark_label: str,
) -> str:
    """The QuantStats HTML tear sheet of ``strategy`` against ``benchmark`` (both weekly)."""
    import matplotlib.pyplot as plt

    open_before = set(plt.get_fignums())
    # QuantStats (and the pandas/seaborn/matplotlib code it calls) emits deprecation and
    # tick-label warnings that say nothing about our data; silence them for this call only.
    with (
        _quiet_matplotlib_fonts(),
        warnings.catch_warnings(),
        matplotlib.rc_context(_quantstats_style()),
        writing(system_temp()),  # another process's clean-up leaves the folder alone
        tempfile.TemporaryDirectory(prefix="foliosim-qs-") as tmp,
    ):
        warnings.simplefilter("ignore")
        import quantstats

        output = Path(tmp) / "quantstats.html"
        try:
            quantstats.reports.html(
                strategy.rename(strategy_label),
                # A Series on the same weekly dates: a ticker string would download daily data.
                benchmark=benchmark.rename(benchmark_label),
                rf=rf_annual,
                title=html.escape(f"{strategy_label} vs {benchmark_label}"),
                output=str(output),
                periods_per_year=WEEKS_PER_YEAR,
                strategy_title=strategy_label,
                benchmark_title=benchmark_label,
            )
        finally:
            for number in set(plt.get_fignums()) - open_before:
                plt.close(number)
        return output.read_text(encoding="utf-8")


#: QuantStats' labels of one period, which is a week here: (pattern, replacement).
_WEEKLY_LABELS = (
    (r"\bExpected Daily\b", "Expected Weekly"),
    (r"\bDaily Value-at-Risk\b", "Weekly Value-at-Risk"),
    (r"\bBest Day\b", "Best Week"),
    (r"\bWorst Day\b", "Worst Week"),
    (r"<td>Kurtosis</td>", "<td>Excess kurtosis</td>"),
)


def weekly_quantstats(page: str, strategy: pd.Series) -> str:
    """QuantStats' page with its labels set for weekly data: "Daily", "Day" -> "Weekly",
    "Week"; its "Kurtosis" (pandas' ``kurt()``, excess over the normal's 3) named "Excess
    kurtosis"; and in its worst-drawdowns table, a drawdown still open at the last week
    (``strategy``'s weekly returns end below their peak) shown as "ongoing", not
    "Recovered" on the last date."""
    for pattern, label in _WEEKLY_LABELS:
        page = re.sub(pattern, label, page)
    growth = (1.0 + strategy.fillna(0.0)).cumprod()
    if len(growth) and float(growth.iloc[-1]) < float(growth.max()):
        last = pd.Timestamp(strategy.index[-1]).strftime("%Y-%m-%d")
        found = re.search(r'<div id="ddinfo">.*?</div>', page, flags=re.DOTALL)
        if found is not None:
            table = re.sub(
                rf"(<tr><td>[^<]*</td><td>){re.escape(last)}(</td>)",
                r"\1ongoing\2",
                found[0],
            )
            page = page[: found.start()] + table + page[found.end() :]
    return page


# --- our section ---------------------------------------------------------------------------


def _img(fig: Figure, alt: str) -> str:
    """``fig`` as an inline PNG ``<img>`` (``alt`` is plain text, escaped here)."""
    return f'<img src="data:image/png;base64,{png(fig, dpi=100)}" alt="{esc(alt)}">'


def _rolling_beta_img(returns: pd.DataFrame, labels: Mapping[str, str]) -> str:
    """Our rolling-beta chart of the strategy (and of 1/N, when the run has it) against the
    benchmark, in place of QuantStats', which draws 0 before its window is full."""
    drawn = [key for key in ("strategy", "equal_weight") if key in labels]
    series = {labels[key]: returns[key] for key in drawn}
    short, long = BETA_WINDOWS
    names = " and ".join(series)
    return _img(
        rolling_beta_figure(returns["benchmark"], series, labels["benchmark"]),
        f"Rolling beta of {names} against {labels['benchmark']} over {short} and {long} weeks, "
        "absent until the window is full",
    )


def _table2_html(table: pd.DataFrame) -> str:
    """Table 2 as an HTML table, its columns side by side."""
    cells = format_table2(table)
    head = "".join(f"<th>{esc(c)}</th>" for c in ["Metric", *cells.columns])
    rows = "".join(
        f"<tr><td>{esc(row)}</td>"
        + "".join(f"<td>{esc(v)}</td>" for v in cells.loc[row])
        + "</tr>\n"
        for row in cells.index
    )
    return f'<table id="table2">\n<thead><tr>{head}</tr></thead>\n<tbody>\n{rows}</tbody>\n</table>'


def _section_html(
    table: pd.DataFrame,
    returns: pd.DataFrame,
    summary: RunSummary,
    rf_annual: float,
    *,
    has_rf_file: bool,
    extra: str = "",
) -> str:
    """Our part of the page: heading, Table 2, the growth-of-1 chart, the notes, then
    ``extra`` (the paper side by side, predictions and honesty sections)."""
    strategy, benchmark = summary.strategy_name, summary.benchmark_name
    # returns holds Table 2's series in its column order: key -> label.
    labels = dict(zip(returns.columns, table.columns, strict=True))
    growth = _img(growth_figure(returns, labels), f"Growth of 1 of {', '.join(labels.values())}")
    shown = list(labels.values())
    series = f"{', '.join(shown[:-1])} and {shown[-1]}"

    if isinstance(summary.risk_free, str):
        source = "risk_free.csv" if has_rf_file else "the run"
        rf_note = (
            f"Risk-free rate: the {esc(summary.risk_free)} yield, one rate per week (the "
            f"yield known at the close of the week before, from {source}), on average "
            f"{rf_annual:.2%} a year. Table 2 uses the weekly rates"
            + (
                "."
                if summary.short
                else f"; QuantStats takes one constant rate, so its figures use the average "
                f"{rf_annual:.2%}."
            )
        )
    else:
        weekly = (1.0 + rf_annual) ** (1.0 / WEEKS_PER_YEAR) - 1.0
        rf_note = f"Risk-free rate: {rf_annual:.2%} a year ({weekly:.4%} a week), constant; " + (
            "used by Table 2." if summary.short else "used by Table 2 and by QuantStats."
        )
    facts = [f"{esc(summary.weeks)} weeks, {esc(summary.start)} to {esc(summary.end)}"]
    if summary.data_source:
        facts.append(f"data: {esc(summary.data_source)}")
    if summary.tickers:
        facts.append(f"{len(summary.tickers)} tickers: {esc(', '.join(summary.tickers))}")
    period = (
        f"Period: {esc(summary.weeks)} weeks, {esc(summary.start)} to {esc(summary.end)}; "
        f"returns are weekly, annualised with {WEEKS_PER_YEAR} weeks a year."
    )
    if summary.short:
        period = (
            f'<strong id="short-run">Period: {esc(summary.weeks)} weeks, {esc(summary.start)} '
            f"to {esc(summary.end)}: a short run (fewer than {SHORT_RUN_WEEKS} weeks). Its "
            "figures are for the period, not annualised: a few weeks raised to a yearly rate "
            "say nothing about a year. The QuantStats report, which annualises, is left "
            "out.</strong>"
        )
    notes = [
        f"Fill mode <code>{esc(summary.fill)}</code>: {FILL_NOTES[summary.fill]}.",
        rf_note,
        f"Data: {esc(summary.data_note)}",
        period,
        f"Orders rejected by the broker: {esc(summary.orders_rejected)}.",
        _costs_note(summary),
    ]
    if summary.delisted:
        gone = ", ".join(f"{esc(t)} ({esc(d)})" for t, d in summary.delisted.items())
        notes.append(
            f"Delisted (data ended before the data set's last week; the position was closed "
            f"at its last close the week after): {gone}."
        )
    for warning in summary.data_warnings:
        notes.append(f"Data warning: {esc(warning)}")
    if not summary.short:
        notes.append(
            f"The QuantStats report below compares {esc(strategy)} with {esc(benchmark)} on "
            "the same weekly dates; one period is one week, and its labels say so "
            "(&ldquo;Best Week&rdquo;, &ldquo;Weekly Value-at-Risk&rdquo;). Its "
            "&ldquo;Excess kurtosis&rdquo; is pandas' small-sample estimate (0 for a normal "
            "law); the kurtosis under &ldquo;How sure is the result?&rdquo; is the moment "
            "estimate (3 for a normal law). A drawdown still open at the last week is "
            "&ldquo;ongoing&rdquo; in its drawdown table. Its weekly-return, calendar-year, "
            "return-quantile and rolling-beta charts are ours: QuantStats' own draw each week "
            "as a spike on a calendar of days under a &ldquo;Daily Returns&rdquo; title, label "
            "the wrong years, leave the weekly box empty on weekly data and draw a beta of 0 "
            f"until its {BETA_WINDOWS[0]}-week window is full (ours leaves those weeks empty)."
        )
    replay = summary.replay
    if replay is not None:
        pinned = (
            f", model {esc(replay.model_version)} pinned (trained up to "
            f"{esc(replay.model_train_end)})"
            if replay.model_version
            else ""
        )
        notes.insert(
            0,
            f"Paper account <code>{esc(replay.account)}</code>: "
            f"{esc(replay.weeks)} weeks recorded one at a time from "
            f"{esc(replay.start_week)} (the first is the start, so {esc(replay.weeks - 1)} "
            f"weekly returns){pinned}; equity and orders are the journal's.",
        )
        if replay.look_ahead:
            notes.insert(
                0,
                '<strong id="look-ahead">&#9888; Look-ahead: the model was trained on data up '
                f"to {esc(replay.model_train_end)}, after the account's start week "
                f"{esc(replay.start_week)} (opened with --allow-later-model). These "
                "results use information the strategy could not have had.</strong>",
            )
    items = "\n".join(f"<li>{note}</li>" for note in notes)
    return f"""
<div class="container" id="foliosim">
<h1>foliosim: {esc(strategy)} vs {esc(benchmark)} and {EQUAL_WEIGHT_LABEL}</h1>
<h4>{" &bull; ".join(facts)}</h4>
<hr>
<h3>Returns and risk: {esc(series)}</h3>
{_table2_html(table)}
<h3>Growth of 1</h3>
{growth}
<h3>Notes</h3>
<ul>
{items}
</ul>
{extra}
<hr>
</div>
"""


#: The page of a short run, which has no QuantStats report to carry our section.
_PLAIN_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>foliosim</title>
<style>
body{margin:30px;background:#fff;color:#000;font:13px/1.4 sans-serif}
.container{max-width:960px;margin:auto}img{width:100%}h1,h2,h3,h4{font-weight:400;margin:0}
h3{margin:10px 0;font-weight:700}h4{color:grey}hr{margin:25px 0 40px;border:0;
border-top:1px solid #ccc}table{margin:0 0 40px;border-spacing:0;width:100%}
table td,table th{text-align:right;padding:4px 5px}table thead th{background:#eee}
table td:first-of-type,table th:first-of-type{text-align:left}
</style>
</head>
<body>
</body>
</html>
"""
#: The family name of the page's embedded font (a subset of matplotlib's DejaVu Sans).
PAGE_FONT = "foliosim DejaVu Sans"
_FONT_FILES = {400: "DejaVuSans.ttf", 700: "DejaVuSans-Bold.ttf"}
#: Styles of our section beside QuantStats' own.
_SECTION_CSS = (
    "#foliosim details{margin:0 0 20px}#foliosim summary{cursor:pointer;color:#069}"
    "#foliosim img.small{width:auto;max-width:100%}"
)


def _subset_font(path: Path, text: str) -> bytes:
    """The TrueType font at ``path`` cut to the glyphs of the characters of ``text``."""
    from fontTools import subset
    from fontTools.ttLib import TTFont

    options = subset.Options()
    options.hinting = False  # smaller; browsers hint themselves
    options.drop_tables += ["FFTM"]  # FontForge's timestamps: fontTools would log a warning
    font = TTFont(path)
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=sorted({ord(c) for c in text}))
    subsetter.subset(font)
    buffer = io.BytesIO()
    font.save(buffer)
    return buffer.getvalue()


def font_css(text: str) -> str:
    """CSS that sets the page in :data:`PAGE_FONT`, embedded: DejaVu Sans (regular and bold,
    the files matplotlib ships) cut to the characters of ``text`` (plain text: entities
    already replaced by their characters).

    Arial, which QuantStats' template asks for, is absent on many systems, and the fallback
    fonts differ from one browser to the next; DejaVu Sans has every character we print, and
    embedding it makes the page render the same everywhere, offline.
    """
    fonts = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    faces = []
    for weight, name in _FONT_FILES.items():
        data = base64.b64encode(_subset_font(fonts / name, text)).decode("ascii")
        faces.append(
            f'@font-face{{font-family:"{PAGE_FONT}";font-weight:{weight};font-style:normal;'
            f'src:url(data:font/ttf;base64,{data}) format("truetype")}}'
        )
    # Same specificity as the template's "body,p,table,td,th{font:...}", and later: it wins.
    return "".join(faces) + f'body,body *{{font-family:"{PAGE_FONT}",sans-serif}}'


def standalone_page(body: str, *, title: str) -> str:
    """A self-contained page of ``body`` (HTML, already escaped) with the tear sheet's styles
    and its embedded font (``foliosim runs compare`` writes one)."""
    return _assemble(_PLAIN_PAGE, body, title=title)


def _replace_div(page: str, div_id: str, inner: str) -> str:
    """``page`` with the content of ``<div id="div_id">`` replaced by ``inner`` (unchanged if
    there is no such div)."""
    pattern = re.compile(rf'(<div id="{re.escape(div_id)}">).*?(</div>)', flags=re.DOTALL)
    return pattern.sub(lambda m: m[1] + inner + m[2], page, count=1)


def _costs_note(summary: RunSummary) -> str:
    """What the run charged beyond the prices: commission, slippage, borrow fee, interest."""
    c = summary.costs
    if c is None:
        return "Costs: none beyond the prices (this summary lists none)."
    slip = (
        f"{c.slippage:.4%} of the price"
        if c.slippage_kind == "perc"
        else f"{c.slippage:g} per share"
    )
    rates = (
        f"commission {c.commission:.4%} of traded value, slippage {slip}, short borrow fee "
        f"{c.borrow_fee:.2%} a year, interest on cash {c.cash_rate:.2%} and on margin "
        f"{c.margin_rate:.2%} a year (charged weekly, rate / 52)"
    )
    paid = [
        (name, value)
        for name, value in (
            ("commission", c.commission_paid),
            ("slippage", c.slippage_paid),
            ("borrow fees", c.borrow_fees_paid),
            ("interest earned on cash", c.cash_interest_earned),
            ("interest paid on margin", c.margin_interest_paid),
        )
        if value is not None
    ]
    spent = "; ".join(f"{name} {value:,.2f}" for name, value in paid)
    return f"Costs: {esc(rates)}." + (f" The strategy's totals: {esc(spent)}." if spent else "")


def _assemble(
    qs_page: str, section: str, *, title: str, figures: Mapping[str, str] | None = None
) -> str:
    """Insert ``section`` at the top of the page's body and make the page self-contained.

    The QuantStats template's favicon link (its only network fetch) and its
    ``<body onload="save()">`` (a function it never defines: a ReferenceError on every load)
    are removed; its "﹪" (U+FE6A, in no common font) becomes "%"; each ``figures`` entry
    (div id -> HTML) replaces the content of that div; the page's fonts are embedded
    (:func:`font_css`).
    """
    page = re.sub(r"\s*<link rel=\"shortcut icon\"[^>]*>", "", qs_page)
    page = re.sub(
        r"(<body\b[^>]*?)\s+on\w+=(\"[^\"]*\"|'[^']*')",
        r"\1",
        page,
        count=1,
        flags=re.IGNORECASE,
    )
    page = page.replace("\ufe6a", "%")
    page = re.sub(r"<title>.*?</title>", f"<title>{html.escape(title)}</title>", page, count=1)
    for div_id, inner in (figures or {}).items():
        page = _replace_div(page, div_id, inner)
    body = re.search(r"<body\b[^>]*>", page, flags=re.IGNORECASE)
    at = 0 if body is None else body.end()
    page = page[:at] + section + page[at:]
    # Every character the page may show, entities (&bull;, &#9888;) read as what they print.
    style = f"<style>{font_css(html.unescape(page))}{_SECTION_CSS}</style>\n"
    head = page.find("</head>")
    return style + page if head < 0 else page[:head] + style + page[head:]
