"""Figures of the tear sheet drawn from a run's weekly series, and the tables behind them.

Every figure is drawn with matplotlib's object API on an Agg canvas (no pyplot, no global
style) in matplotlib's own DejaVu Sans, so no font lookup fails. Date axes use matplotlib's
default :class:`~matplotlib.dates.AutoDateLocator`, which has an interval for every span.

Weekly returns are dated on the week's last trading day; a calendar period (month, quarter,
year) holds the weeks whose date falls in it, compounded. Three of QuantStats' charts are
replaced by ours (see :mod:`simulator.report`): its "EOY Returns" bar chart labels the wrong
years on weekly data (pandas 3 places the bars of a year-end index at period ordinals, and
QuantStats sets its year labels on the ticks 51, 52, ... that sit beside them); its
"Return Quantiles" chart resamples to Monday-dated weeks and month ends that a Friday-dated
series never holds, so its "Weekly" box is empty and the others are forward-filled; and its
"Rolling Beta" chart fills the weeks before its half-year window is full with 0
(``rolling_greeks(...)["beta"].fillna(0)``), drawing a beta of 0 for the first six months
and pulling its mean line towards 0.
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.dates as mdates
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter
from numpy.lib.stride_tricks import sliding_window_view

from simulator.metrics import WEEKS_PER_YEAR

#: The calendar periods of :func:`period_returns`: label -> pandas period frequency.
PERIODS = {"Weekly": None, "Monthly": "M", "Quarterly": "Q", "Yearly": "Y"}


def _date_axis(ax: Axes) -> None:
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def _finish(ax: Axes, *, percent: bool = True) -> None:
    ax.grid(True, color="#dddddd", lw=0.5)
    if percent:
        # As many decimals as the ticks need: with none, ticks 2.5% apart read "2%", "-3%".
        ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=None))


# --- growth of 1 ---------------------------------------------------------------------------


def growth_table(returns: pd.DataFrame) -> pd.DataFrame:
    """Growth of 1 of each column, starting at 1.0 one week before the first return week.

    >>> r = pd.DataFrame({"a": [0.1, -0.5]}, index=pd.to_datetime(["2024-01-12", "2024-01-19"]))
    >>> growth_table(r)["a"].round(4).tolist()
    [1.0, 1.1, 0.55]
    """
    start = returns.index[0] - pd.Timedelta(weeks=1)
    growth = (1.0 + returns).cumprod()
    growth.loc[start] = 1.0
    return growth.sort_index()


def growth_figure(returns: pd.DataFrame, labels: Mapping[str, str]) -> Figure:
    """Growth of 1 of each column of ``returns`` named in ``labels`` (column -> legend)."""
    growth = growth_table(returns[list(labels)])
    fig = Figure(figsize=(9, 4.2), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    for key, label in labels.items():
        ax.plot(growth.index.to_numpy(), growth[key].to_numpy(), label=label, lw=1.5)
    ax.axhline(1.0, color="#999999", lw=0.8, ls="--")
    _date_axis(ax)
    ax.set_ylabel("growth of 1")
    _finish(ax, percent=False)
    ax.legend(loc="upper left", frameon=False)
    return fig


def runs_growth_figure(curves: Mapping[str, pd.Series]) -> Figure:
    """Growth of 1 of each weekly return series of ``curves`` (label -> returns), each on its
    own weeks, starting at 1.0 one week before its first."""
    fig = Figure(figsize=(9, 4.2), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    for label, returns in curves.items():
        growth = growth_table(returns.to_frame("r"))["r"]
        ax.plot(growth.index.to_numpy(), growth.to_numpy(), label=label, lw=1.5)
    ax.axhline(1.0, color="#999999", lw=0.8, ls="--")
    _date_axis(ax)
    ax.set_ylabel("growth of 1")
    _finish(ax, percent=False)
    ax.legend(loc="upper left", frameon=False, fontsize=8)
    return fig


# --- calendar periods ----------------------------------------------------------------------


def period_returns(returns: pd.Series, freq: str | None) -> pd.Series:
    """Compounded returns per calendar period (``"M"``, ``"Q"``, ``"Y"``; None: the weeks).

    Indexed by the period (a :class:`pandas.PeriodIndex`); a period holds the weeks dated in it.

    >>> r = pd.Series([0.1, 0.1, -0.5], index=pd.to_datetime(["2023-12-29", "2024-01-05",
    ...                                                        "2024-01-12"]))
    >>> period_returns(r, "Y").round(4).to_dict()
    {Period('2023', 'Y-DEC'): 0.1, Period('2024', 'Y-DEC'): -0.45}
    """
    if freq is None:
        return returns.copy()
    index = pd.DatetimeIndex(returns.index).to_period(freq)
    return (1.0 + returns).groupby(index).prod() - 1.0


def yearly_returns(returns: pd.DataFrame) -> pd.DataFrame:
    """Compounded return of each column per calendar year, and the weeks each year holds.

    Returns
    -------
    pd.DataFrame
        Index: the years (int); columns: those of ``returns`` (fractions), then ``weeks``.
    """
    years = pd.DatetimeIndex(returns.index).year
    table = (1.0 + returns).groupby(years).prod() - 1.0
    table["weeks"] = returns.groupby(years).size()
    table.index.name = "year"
    return table


def yearly_returns_figure(returns: pd.DataFrame, labels: Mapping[str, str]) -> Figure:
    """Bars of each column's return per calendar year, labelled with the year.

    A year the run covers only in part is labelled with its number of weeks, e.g.
    ``2022 (25 wk)``, so a half year is not read as a full one.
    """
    table = yearly_returns(returns[list(labels)])
    years = table.index.to_list()
    positions = np.arange(len(years))
    width = 0.8 / max(len(labels), 1)
    fig = Figure(figsize=(8, 3.6), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    for i, (key, label) in enumerate(labels.items()):
        offset = (i - (len(labels) - 1) / 2) * width
        ax.bar(positions + offset, table[key].to_numpy(), width=width, label=label)
    ax.axhline(0.0, color="black", lw=0.8)
    # A calendar year holds 52 or 53 week-end dates; fewer means the run covers part of it.
    ticks = [
        f"{y}" if n >= 52 else f"{y} ({n} wk)" for y, n in zip(years, table["weeks"], strict=True)
    ]
    ax.set_xticks(positions, ticks)
    ax.set_title("Returns per calendar year (compounded weekly returns)", fontsize=11)
    _finish(ax)
    ax.legend(frameon=False, fontsize=9)
    return fig


def weekly_returns_figure(
    returns: pd.Series, benchmark: pd.Series, labels: tuple[str, str]
) -> Figure:
    """Bars of the strategy's return each week, and the benchmark's the same week as a line
    (``labels``: strategy, benchmark): in place of QuantStats' "Daily Returns" chart, which
    resamples weekly returns to calendar days and draws each week as a spike from zero."""
    strategy = returns.dropna()
    fig = Figure(figsize=(8, 3), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    colours = np.where(strategy.to_numpy() >= 0, "#348dc1", "#c1444a")
    ax.bar(strategy.index, strategy.to_numpy(), width=5.0, color=colours, label=labels[0])
    line = benchmark.reindex(strategy.index)
    ax.plot(line.index, line.to_numpy(), color="#555555", lw=0.8, label=labels[1])
    ax.axhline(0.0, color="black", lw=0.8)
    ax.set_title("Weekly returns (Friday close to Friday close)", fontsize=11)
    _date_axis(ax)
    _finish(ax)
    ax.legend(frameon=False, fontsize=9, loc="upper left", bbox_to_anchor=(0.0, -0.12), ncols=2)
    return fig


def return_quantiles_figure(returns: pd.Series, label: str) -> Figure:
    """Box plots of ``returns`` compounded over weeks, months, quarters and years.

    Each box is labelled with its number of periods; a period with no data is left out.
    """
    fig = Figure(figsize=(8, 3.6), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    data, names = [], []
    for name, freq in PERIODS.items():
        values = period_returns(returns, freq).to_numpy(dtype=float)
        if len(values):
            data.append(values)
            names.append(f"{name}\n(n={len(values)})")
    ax.boxplot(data, tick_labels=names, widths=0.5)
    ax.axhline(0.0, color="#999999", lw=0.8, ls="--")
    ax.set_title(f"{label}: return quantiles per calendar period", fontsize=11)
    _finish(ax)
    return fig


# --- rolling beta --------------------------------------------------------------------------

#: The rolling-beta windows, in weeks: QuantStats' at 52 periods a year (half a year, rounded
#: up, and a year).
BETA_WINDOWS = (-(-WEEKS_PER_YEAR // 2), WEEKS_PER_YEAR)


#: A weekly standard deviation below which a benchmark did not move (rounding only).
_FLAT = 1e-12


def rolling_beta(returns: pd.Series, benchmark: pd.Series, window: int) -> pd.Series:
    """Beta of ``returns`` on ``benchmark`` over each trailing ``window`` of weeks.

    The beta at week t is ``cov(r, b) / var(b)`` over weeks t-window+1 .. t. It is NaN
    (absent, not 0) until ``window`` weeks have passed, when a week of the window lacks either
    return, and when the benchmark did not move over the window (rounding aside).

    Parameters
    ----------
    returns, benchmark
        Weekly simple returns (fractions); ``benchmark`` is read on ``returns``' weeks.
    window
        Weeks per estimate, at least 2.

    Returns
    -------
    pd.Series
        On ``returns``' index, named after ``returns``.

    >>> idx = pd.date_range("2024-01-05", periods=4, freq="W-FRI")
    >>> b = pd.Series([0.01, -0.02, 0.03, 0.0], index=idx)
    >>> rolling_beta(2 * b, b, 3).tolist()
    [nan, nan, 2.0, 2.0]
    """
    if window < 2:
        raise ValueError(f"a rolling beta needs a window of at least 2 weeks (got {window})")
    x = returns.to_numpy(dtype=float)
    y = benchmark.reindex(returns.index).to_numpy(dtype=float)
    beta = np.full(len(x), np.nan)
    if len(x) >= window:
        xs, ys = sliding_window_view(x, window), sliding_window_view(y, window)
        dx = xs - xs.mean(axis=1, keepdims=True)
        dy = ys - ys.mean(axis=1, keepdims=True)
        cov, var = (dx * dy).sum(axis=1), (dy * dy).sum(axis=1)
        # A benchmark that stood still (a standard deviation under 1e-12 a week: rounding
        # alone) has no beta; NaN compares False too, so a window with a gap stays absent.
        moved = var > window * _FLAT**2
        beta[window - 1 :] = np.divide(cov, var, out=np.full(len(var), np.nan), where=moved)
    return pd.Series(beta, index=returns.index, name=returns.name)


def rolling_beta_figure(
    benchmark: pd.Series, series: Mapping[str, pd.Series], benchmark_label: str
) -> Figure:
    """Rolling beta against ``benchmark`` of each of ``series`` (legend label -> weekly
    returns on ``benchmark``'s weeks): the first over each of :data:`BETA_WINDOWS`, the
    others over the shorter one.

    A line starts where its window is full: before that the chart is empty, not 0, and the x
    axis spans every week of the run, so the empty start shows. A window longer than the run
    is not drawn, and the title says so. The first series' beta over the whole run is a
    dotted line. The legend sits below the plot, where it covers no line.
    """
    short, long = BETA_WINDOWS
    weeks = pd.DatetimeIndex(benchmark.index)
    fig = Figure(figsize=(8, 3.8), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    for i, (label, returns) in enumerate(series.items()):
        first = i == 0
        for window in BETA_WINDOWS if first else (short,):
            if window > len(weeks):
                continue
            beta = rolling_beta(returns, benchmark, window)
            ax.plot(
                weeks.to_numpy(),
                beta.to_numpy(),
                lw=1.5 if window == short else 1.0,
                ls="-" if first else "--",
                color=None if window == short else "#888888",
                label=f"{label}, {window} weeks",
            )
        both = pd.concat([returns, benchmark.reindex(returns.index)], axis=1).dropna()
        if first and len(both) >= 2:
            whole = float(rolling_beta(both.iloc[:, 0], both.iloc[:, 1], len(both)).iloc[-1])
            if np.isfinite(whole):
                ax.axhline(
                    whole, color="#c44e52", lw=1.0, ls=":", label=f"{label}, whole run {whole:.2f}"
                )
    ax.axhline(0.0, color="black", lw=0.8)
    if len(weeks) > 1:
        ax.set_xlim(float(mdates.date2num(weeks[0])), float(mdates.date2num(weeks[-1])))
    _date_axis(ax)
    ax.set_ylabel("beta")
    _finish(ax, percent=False)
    title = f"Rolling beta against {benchmark_label} over the last {short} and {long} weeks"
    missing = [w for w in BETA_WINDOWS if w > len(weeks)]
    if missing:
        shown = " or ".join(f"{w}-week" for w in missing)
        title += f"\n(the run has {len(weeks)} weeks: no {shown} window)"
    else:
        title += "\n(each line starts when its window is full)"
    ax.set_title(title, fontsize=10)
    if ax.get_legend_handles_labels()[0]:
        fig.legend(frameon=False, fontsize=8, ncols=4, loc="outside lower center")
    return fig


# --- exposure and turnover -----------------------------------------------------------------


def exposure_figure(exposure: pd.DataFrame) -> Figure:
    """Gross, net, long and short exposure per week (``exposure`` as in exposure.csv), and
    the weekly turnover below them."""
    weeks = pd.DatetimeIndex(exposure.index).to_numpy()
    fig = Figure(figsize=(9, 4.8), dpi=100, layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 2])
    styles = {"gross": "-", "net": "-", "long": "--", "short": "--"}
    for column, style in styles.items():
        top.plot(weeks, exposure[column].to_numpy(), ls=style, lw=1.3, label=column)
    top.axhline(0.0, color="black", lw=0.8)
    top.set_ylabel("fraction of value")
    # Above the plot, not in it: inside, it covered the 100% line of a fully invested run.
    fig.legend(frameon=False, fontsize=8, ncols=4, loc="outside upper center")
    _finish(top)
    # Bars 5 days wide, in matplotlib's date units (days): a bare number beside datetime64
    # positions would be read as nanoseconds and draw nothing.
    bottom.bar(mdates.date2num(weeks), exposure["turnover"].to_numpy(), width=5, color="#4c72b0")
    bottom.set_ylabel("turnover")
    _date_axis(bottom)
    _finish(bottom)
    return fig


# --- explanations --------------------------------------------------------------------------


def attribution_figure(positions: list[Mapping[str, object]], features: list[str]) -> Figure:
    """Integrated Gradients of the explained positions: one heatmap column per position and
    feature, one row per input week (oldest at the top), in basis points of next-week return;
    red pushed the forecast up, blue down, on one colour scale shared by every column."""
    columns, labels = [], []
    for p in positions:
        values = np.asarray(p["attributions"], dtype=float) * 1e4  # (window, features)
        for j, feature in enumerate(features):
            columns.append(values[:, j])
            labels.append(f"{p['ticker']}\n{feature}" if len(features) > 1 else str(p["ticker"]))
    bound = float(np.abs(np.column_stack(columns)).max()) or 1.0
    weeks = [str(w) for w in positions[0]["input_weeks"]]  # type: ignore[attr-defined]
    return _week_heatmap(
        columns, labels, weeks, cmap="RdBu_r", limits=(-bound, bound), unit="bp of next-week return"
    )


def attention_figure(positions: list[Mapping[str, object]]) -> Figure:
    """The attention weights of the explained positions (networks with attention): one column
    per position, one row per input week, each column summing to 1."""
    columns = [np.asarray(p["attention"], dtype=float) for p in positions]
    weeks = [str(w) for w in positions[0]["input_weeks"]]  # type: ignore[attr-defined]
    labels = [str(p["ticker"]) for p in positions]
    return _week_heatmap(columns, labels, weeks, cmap="Greys", limits=(0.0, None), unit="weight")


def _short(label: str, most: int = 16) -> str:
    """A tick label cut to ``most`` characters (a tampered file's long name would squeeze the
    heatmap to nothing).

    >>> _short("2024-01-05"), _short("x" * 20)
    ('2024-01-05', 'xxxxxxxxxxxxxxx…')
    """
    return label if len(label) <= most else label[: most - 1] + "…"


def _week_heatmap(
    columns: list[np.ndarray],
    labels: list[str],
    weeks: list[str],
    *,
    cmap: str,
    limits: tuple[float, float | None],
    unit: str,
) -> Figure:
    grid = np.column_stack(columns)
    window = grid.shape[0]
    # At least 5 inches wide: the week labels and the colour bar take about 3 of them.
    width = max(5.0, 1.6 + 1.1 * grid.shape[1])
    fig = Figure(figsize=(width, 4.8), dpi=100, layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(grid, aspect="auto", cmap=cmap, vmin=limits[0], vmax=limits[1])
    ax.set_xticks(range(grid.shape[1]), [_short(x) for x in labels], fontsize=8)
    rows = sorted({0, window // 2, window - 1})
    ax.set_yticks(rows, [_short(weeks[i]) for i in rows], fontsize=8)
    ax.set_ylabel("input week")
    fig.colorbar(image, ax=ax, label=unit)
    return fig


# --- stress scenarios ------------------------------------------------------------------------


def stress_figure(figures: Mapping[str, tuple[float, float]]) -> Figure:
    """Horizontal bars of each stress scenario's return and maximum drawdown (fractions;
    ``figures`` maps a scenario's name to the pair), the first scenario at the top."""
    names = list(figures)
    positions = np.arange(len(names))[::-1]
    returns = np.array([figures[n][0] for n in names])
    drawdowns = np.array([figures[n][1] for n in names])
    fig = Figure(figsize=(8, 0.45 * len(names) + 1.2), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    ax.barh(positions + 0.2, returns, height=0.4, color="#c44e52", label="return")
    ax.barh(positions - 0.2, drawdowns, height=0.4, color="#8c8c8c", label="max drawdown")
    ax.axvline(0.0, color="black", lw=0.8)
    ax.set_yticks(positions, names)
    ax.grid(True, axis="x", color="#dddddd", lw=0.5)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.margins(x=0.05)
    fig.legend(frameon=False, fontsize=8, loc="outside lower center", ncols=2)
    ax.set_title("Stress scenarios: the portfolio's return and its largest fall", fontsize=11)
    return fig
