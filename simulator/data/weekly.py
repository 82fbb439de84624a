"""Weekly bars (the time contract's bar t).

A week is a W-FRI period (Saturday..Friday). Its bar is stamped on the week's last trading
day: the last date in that week on which any series of the data set (stocks or index) has a
row, normally the Friday and the Thursday in a Good-Friday week, never a weekend. Bars hold the
week's first open, highest high, lowest low, last close and summed volume. A ticker without any
row in a week has no bar that week: nothing is filled in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from simulator.data.sources import OHLCV, DailyData
from simulator.errors import DataError

#: How far a risk-free series may end before the data's last week (FRED publishes with a lag
#: of a day or two; holidays): more is refused.
RISK_FREE_STALE = pd.Timedelta(days=14)


@dataclass(frozen=True)
class WeeklyData:
    """Weekly bars of a data set.

    Attributes
    ----------
    bars
        ticker -> frame indexed by week stamp (a subset of ``calendar``), columns ``OHLCV``.
    benchmark
        The index's weekly close on the calendar (NaN where the index has no row that week).
    risk_free
        The annual yield in percent known at each week stamp (last observation), or None.
    calendar
        Every week stamp of the data set, ascending.
    warnings
        The daily data's warnings (:attr:`DailyData.warnings`).
    whole
        Made from every row the source has before ``data.end`` (:attr:`DailyData.whole`).
    """

    bars: dict[str, pd.DataFrame]
    benchmark: pd.Series
    risk_free: pd.Series | None
    calendar: pd.DatetimeIndex
    note: str
    source: str
    warnings: tuple[str, ...] = ()
    whole: bool = False

    @property
    def tickers(self) -> list[str]:
        return list(self.bars)

    def closes(self) -> pd.DataFrame:
        """Weekly closes, shape ``(n_weeks, n_tickers)``, NaN where a ticker has no bar."""
        return pd.DataFrame({t: b["close"] for t, b in self.bars.items()}).reindex(self.calendar)


def week_stamps(dates: pd.DatetimeIndex) -> pd.Series:
    """Map each trading date to its week's stamp (the week's last date present in ``dates``).

    >>> d = pd.DatetimeIndex(["2023-04-03", "2023-04-06", "2023-04-10", "2023-04-14"])
    >>> [s.date().isoformat() for s in week_stamps(d)]
    ['2023-04-06', '2023-04-06', '2023-04-14', '2023-04-14']
    """
    dates = pd.DatetimeIndex(dates).unique().sort_values()
    period = dates.to_period("W-FRI")
    stamp = pd.Series(dates, index=dates).groupby(period).transform("max")
    return stamp


def last_complete_week(calendar: pd.DatetimeIndex, as_of: pd.Timestamp) -> pd.Timestamp | None:
    """The newest week stamp whose week is complete at ``as_of`` (None if there is none).

    A week is complete when its stamp is on or before ``as_of`` and either its Friday has
    passed or the calendar goes on into a later week (so the stamp is the week's real last
    trading day, e.g. the Thursday before Good Friday). A week cut short by the end of the data
    is not complete.

    >>> cal = pd.DatetimeIndex(["2023-01-06", "2023-01-10"])
    >>> last_complete_week(cal, pd.Timestamp("2023-01-10")).date()
    datetime.date(2023, 1, 6)
    >>> last_complete_week(cal, pd.Timestamp("2023-01-13")).date()
    datetime.date(2023, 1, 10)
    """
    past = calendar[calendar <= as_of]
    for position in range(len(past) - 1, -1, -1):
        stamp = past[position]
        friday = stamp + pd.offsets.Week(weekday=4) if stamp.weekday() != 4 else stamp
        if friday <= as_of or position + 1 < len(calendar):
            return pd.Timestamp(stamp)
    return None


def to_weekly(daily: pd.DataFrame, stamps: pd.Series) -> pd.DataFrame:
    """Aggregate one ticker's daily OHLCV into weekly bars keyed by ``stamps``.

    A week's bar: the open of its first day, the highest high, the lowest low, the close of
    its last day and the volume summed. The days of a week are consecutive rows (dates
    ascend), so each column is reduced over runs of rows, without a group-by.
    """
    keys = stamps.reindex(daily.index).to_numpy()
    if not len(keys):
        return pd.DataFrame(
            {col: np.empty(0) for col in OHLCV}, index=pd.DatetimeIndex([], name="date")
        )
    starts = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
    ends = np.concatenate((starts[1:], [len(keys)])) - 1
    values = {col: daily[col].to_numpy(dtype=float) for col in OHLCV}
    bars = pd.DataFrame(
        {
            "open": values["open"][starts],
            "high": np.maximum.reduceat(values["high"], starts),
            "low": np.minimum.reduceat(values["low"], starts),
            "close": values["close"][ends],
            "volume": np.add.reduceat(values["volume"], starts),
        },
        index=pd.DatetimeIndex(keys[starts], name="date"),
    )
    return bars


def make_weekly(daily: DailyData) -> WeeklyData:
    """Weekly bars for every series of ``daily`` on one shared calendar of week stamps."""
    all_dates = daily.benchmark.index
    for frame in daily.assets.values():
        all_dates = all_dates.union(frame.index)
    stamps = week_stamps(pd.DatetimeIndex(all_dates))
    calendar = pd.DatetimeIndex(stamps.unique(), name="date")
    bars = {t: to_weekly(f, stamps) for t, f in daily.assets.items()}
    bench_keys = stamps.reindex(daily.benchmark.index).to_numpy()
    bench = daily.benchmark.groupby(bench_keys).last()
    bench.index = pd.DatetimeIndex(bench.index, name="date")
    if len(calendar) < 2:
        raise DataError("fewer than 2 weeks of data; widen data.start..data.end")
    rf = None
    if daily.risk_free is not None:
        series = daily.risk_free.sort_index()
        last = series.index[-1]
        if last < calendar[-1] - RISK_FREE_STALE:
            # Carried forward, a yield that stopped would be used stale for every later week.
            raise DataError(
                f"the risk-free series {series.name} ends {last.date()}, before the data's last "
                f"week {calendar[-1].date()}; extend its file, or give report.risk_free as an "
                "annual fraction such as 0.02"
            )
        # The yield known at each week's close: its last observation on or before the stamp.
        rf = series.reindex(calendar, method="ffill")
    return WeeklyData(
        bars,
        bench.reindex(calendar).rename(str(daily.benchmark.name)),
        rf,
        calendar,
        daily.note,
        daily.source,
        daily.warnings,
        daily.whole,
    )
