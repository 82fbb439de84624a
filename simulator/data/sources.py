"""Loading validated daily prices from the three sources.

Every loader returns :class:`DailyData`: per ticker a daily frame indexed by date with columns
``open, high, low, close, volume`` already adjusted (see :func:`adjust_ohlc`), the benchmark
index's daily close, and optionally a daily yield series in percent for the risk-free rate.
"""

from __future__ import annotations

import csv
import io
import math
import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pcsv

from models.names import TICKER_RULE, is_ticker
from simulator.bounded import FileRefused, read_bounded
from simulator.config import DataConfig
from simulator.errors import DataError, NetworkError, did_you_mean

OHLCV = ["open", "high", "low", "close", "volume"]
# Yield series that may sit in a CSV folder beside the stocks; never taken as tickers by default.
RATE_SERIES = frozenset({"DGS1", "DGS2", "DGS5", "DGS10", "DGS3MO", "DTB3", "IRX", "TNX"})
CSV_COLUMNS = ["date", "open", "high", "low", "close", "adj_close", "volume"]
#: The largest CSV file read (bytes): a daily price file holds about 70 bytes a trading day, so
#: a century of one stock is under 2 MB; a larger file is refused before it is read.
MAX_CSV_BYTES = 200 * 2**20
_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_NON_SPACE = re.compile(rb"\S")
#: Prices (adjusted) a market can make, and yields in percent: outside, a row is refused
#: (a close of 1e-300 or 1e300 would overflow whole-share sizing).
PRICE_RANGE = (1e-6, 1e9)
YIELD_RANGE = (-100.0, 100.0)
_ZONED = r"\d[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:Z|[+-]\d{2}:?\d{2})$"
#: How far, as a fraction of the price, an open or a close may lie outside the day's
#: low..high (and a high below the low) before a row is impossible: published prices are
#: rounded (paper12's worst is 1.2e-5, a TSLA close below its low).
RANGE_TOLERANCE = 1e-3
#: A daily close more than JUMP_FACTOR times the previous close, or less than 1/JUMP_FACTOR of
#: it (|log return| > ln 10), that jumps back the other way as far within JUMP_REVERT_DAYS
#: trading days is a suspicious jump (a bad print): warned about, never changed.
JUMP_FACTOR = 10.0
JUMP_REVERT_DAYS = 5
CHECK_REMEDY = 'fix the file, or set data.check = "warn" (drops such rows) or "off"'
CLOSES_ONLY_NOTE = (
    "daily closes only: weekly open = the week's first daily close, high/low = the highest/"
    "lowest daily close, close = the last daily close; volume is not available"
)


@dataclass(frozen=True)
class DailyData:
    """Validated daily data, the input of :func:`simulator.data.make_weekly`.

    Attributes
    ----------
    assets
        ticker -> frame indexed by trading date, columns ``open, high, low, close, volume``,
        adjusted for splits and dividends.
    benchmark
        The index series' daily close, named after the index.
    risk_free
        A daily annual yield in percent (e.g. DGS2), or None.
    note
        How the prices were formed, for the report.
    warnings
        One line per series whose rows :func:`check_rows` warned about (entry points print
        them; a backtest's summary.json lists them).
    whole
        True when no series lost a row before ``data.start``: every one starts at its
        source's first row, so a load reaching back further gives the same rows.
    """

    assets: dict[str, pd.DataFrame]
    benchmark: pd.Series
    risk_free: pd.Series | None
    note: str
    source: str
    warnings: tuple[str, ...] = ()
    whole: bool = False


def adjust_ohlc(frame: pd.DataFrame) -> pd.DataFrame:
    """Daily OHLCV on the adjusted-close basis, from a frame in the CSV format.

    - ``close`` and ``adj_close`` both present: open/high/low/close are multiplied by
      ``adj_close / close`` (split and dividend adjustment), volume is kept.
    - only ``adj_close`` (no ``close``): close = adj_close and, as the raw prices' basis is
      unknown, open/high/low = adj_close.
    - only ``close`` (an index): prices as they are.
    Rows whose open/high/low are missing take the close for them. The input is not modified.

    >>> f = pd.DataFrame({"open": [10.0], "high": [12.0], "low": [9.0], "close": [11.0],
    ...                   "adj_close": [5.5], "volume": [100.0]})
    >>> adjust_ohlc(f)[["open", "high", "low", "close"]].iloc[0].tolist()
    [5.0, 6.0, 4.5, 5.5]
    """
    close = frame["close"].to_numpy(dtype=float)
    adj = frame["adj_close"].to_numpy(dtype=float)
    has_adj = bool((~np.isnan(adj)).any())
    if has_adj and np.isnan(close).all():
        base = adj
        factor = np.full(len(adj), np.nan)  # O/H/L unusable: basis unknown
    elif has_adj:
        base = adj
        with np.errstate(divide="ignore", invalid="ignore"):  # a close of 0: refused later
            factor = adj / close
    else:
        base = close
        factor = np.ones(len(close))
    columns = {}
    for col in ("open", "high", "low"):
        with np.errstate(invalid="ignore"):  # 0 x inf, from a close of 0: refused later
            scaled = frame[col].to_numpy(dtype=float) * factor
        columns[col] = np.where(np.isnan(scaled), base, scaled)
    columns["close"] = base
    volume = frame["volume"].to_numpy(dtype=float)
    columns["volume"] = np.where(np.isnan(volume), 0.0, volume)
    return pd.DataFrame({col: columns[col] for col in OHLCV}, index=frame.index)


def _check_series(name: str, frame: pd.DataFrame, where: str, prices: bool = True) -> None:
    """Raise DataError for unsorted or duplicate dates, NaN or non-positive prices."""
    idx = frame.index
    if len(idx) == 0:
        raise DataError(f"{where}: no rows for {name}; check the file or the date range")
    dupes = idx[idx.duplicated()]
    if len(dupes):
        raise DataError(
            f"{where}: duplicate date {dupes[0].date()} for {name}; keep one row per trading day"
        )
    if not idx.is_monotonic_increasing:
        pos = int(np.argmax(np.diff(idx.to_numpy()).astype("int64") < 0)) + 1
        raise DataError(
            f"{where}: dates are not in ascending order for {name} (at {idx[pos].date()}); "
            "sort the file by date"
        )
    cols = ["open", "high", "low", "close"] if prices else ["close"]
    values = frame[cols].to_numpy(dtype=float)
    bad = ~np.isfinite(values) | ((values <= 0) if prices else False)
    if bad.any():
        row = int(np.argmax(bad.any(axis=1)))
        raise DataError(
            f"{where}: {name} has a missing, NaN or non-positive price on {idx[row].date()}; "
            "fix or remove that row"
        )
    low, high = PRICE_RANGE if prices else YIELD_RANGE
    bad = (values < low) | (values > high)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        what = "price" if prices else "yield (percent)"
        raise DataError(
            f"{where}: {name} has a {what} of {values[row, col]:g} on {idx[row].date()}, "
            f"outside {low:g}..{high:g}; fix or remove that row"
        )


def impossible_rows(frame: pd.DataFrame) -> np.ndarray:
    """Why each row of a daily OHLCV frame is impossible, ``""`` where it is not.

    Impossible: a date on a Saturday or Sunday, a high below the low, an open or a close
    outside low..high (each by more than :data:`RANGE_TOLERANCE`), a negative volume. Only the
    first reason of a row is given.

    >>> f = pd.DataFrame({"open": [1.0, 1.0], "high": [1.0, 0.5], "low": [1.0, 1.0],
    ...                   "close": [1.0, 1.0], "volume": [0.0, 0.0]},
    ...                  index=pd.DatetimeIndex(["2024-01-06", "2024-01-08"]))
    >>> impossible_rows(f).tolist()
    ['dated on a Saturday', 'its high is below its low']
    """
    o, h, lo, c, v = (frame[k].to_numpy(dtype=float) for k in OHLCV)
    up, down = 1.0 + RANGE_TOLERANCE, 1.0 - RANGE_TOLERANCE
    dates = pd.DatetimeIndex(frame.index)
    day = dates.day_of_week.to_numpy()
    checks = [
        (day >= 5, "dated on a {day}"),
        (h < lo * down, "its high is below its low"),
        ((c > h * up) | (c < lo * down), "its close lies outside its low..high"),
        ((o > h * up) | (o < lo * down), "its open lies outside its low..high"),
        (v < 0, "its volume is negative ({volume:g})"),
    ]
    reasons = np.full(len(frame), "", dtype=object)
    for bad, text in reversed(checks):  # the first check's reason wins
        for i in np.flatnonzero(bad):
            reasons[i] = text.format(day=dates[int(i)].day_name(), volume=v[i])
    return reasons


def suspicious_jumps(close: pd.Series) -> list[tuple[pd.Timestamp, float, int]]:
    """Closes that jump by more than :data:`JUMP_FACTOR` and back within
    :data:`JUMP_REVERT_DAYS` trading days: ``(date of the odd close, its ratio to the close
    before, trading days until the jump back)``.

    >>> c = pd.Series([10.0, 10_000.0, 10.5, 11.0], index=pd.date_range("2024-01-01", periods=4))
    >>> [(d.date().isoformat(), f, n) for d, f, n in suspicious_jumps(c)]
    [('2024-01-02', 1000.0, 1)]
    """
    r = np.diff(np.log(close.to_numpy(dtype=float)))
    big = np.abs(r) > math.log(JUMP_FACTOR)
    found = []
    i = 0
    while i < len(r):
        back = None
        if big[i]:  # r[i] moves from day i to day i + 1, the odd close
            ahead = range(i + 1, min(i + 1 + JUMP_REVERT_DAYS, len(r)))
            back = next((k for k in ahead if big[k] and r[k] * r[i] < 0), None)
        if back is None:
            i += 1
            continue
        ratio = float(close.iloc[i + 1] / close.iloc[i])
        found.append((pd.Timestamp(close.index[i + 1]), ratio, back - i))
        i = back + 1
    return found


def check_rows(
    name: str, frame: pd.DataFrame, where: str, level: str
) -> tuple[pd.DataFrame, list[str]]:
    """Check one series' daily rows at ``level`` (``data.check``); return the rows to use and
    the warnings (one line each).

    - ``"strict"``: an impossible row (:func:`impossible_rows`) raises a :class:`DataError`
      naming the series, the date and the remedy.
    - ``"warn"``: impossible rows are dropped, with one warning for the series.
    - both: one warning for the series' suspicious jumps (:func:`suspicious_jumps`); the rows
      are kept.
    - ``"off"``: nothing is checked.

    The input frame is not modified.
    """
    if level == "off":
        return frame, []
    notes = []
    reasons = impossible_rows(frame)
    bad = reasons != ""
    if bad.any():
        first = int(np.argmax(bad))
        day = frame.index[first].date()
        if level == "strict":
            raise DataError(f"{where}: {name} on {day}: {reasons[first]}; {CHECK_REMEDY}")
        frame = frame[~bad]
        if frame.empty:
            raise DataError(f"{where}: every row of {name} is impossible; fix the file")
        notes.append(
            f"warning: {where}: dropped {int(bad.sum())} impossible row(s) of {name}, the "
            f"first on {day} ({reasons[first]}); fix the file"
        )
    jumps = suspicious_jumps(frame["close"])
    if jumps:
        day, ratio, back = jumps[0]
        size = f"{ratio:.4g} times" if ratio > 1 else f"1/{1 / ratio:.4g} of"
        more = f" ({len(jumps) - 1} more such jump(s))" if len(jumps) > 1 else ""
        notes.append(
            f"warning: {where}: {name} on {day.date()}: the close is {size} the previous close "
            f"and jumps back {back} trading day(s) later, a likely bad print{more}; check the "
            'file (data.check = "off" silences this)'
        )
    return frame, notes


def read_price_csv(path: Path, name: str, *, kind: str = "price") -> pd.DataFrame:
    """Read one file in the paper12 CSV format (``date,open,high,low,close,adj_close,volume``).

    Parameters
    ----------
    kind
        ``"price"`` for a stock or an index (adjusted OHLCV returned), ``"yield"`` for a
        rate series whose value is in ``close`` (a one-column frame ``close`` returned).
    """
    data = _price_file_bytes(path)
    plain = _plain_columns(data)
    if plain is not None:
        dates = plain.pop("date")
        frame = pd.DataFrame(plain, index=pd.DatetimeIndex(dates, name="date").as_unit("ns"))
        return _finish(frame, name, str(path), kind)
    try:
        # Only empty cells are missing; a cell such as "NA" keeps its column as text, and
        # parse_price_table then names it. Clean numeric columns parse in C (10x faster).
        raw = pd.read_csv(io.BytesIO(data), keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        reason = " ".join(str(err).split())  # the parser's message may span lines
        raise DataError(f"{path}: not a readable CSV file ({reason})") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty; expected {','.join(CSV_COLUMNS)}") from None
    return parse_price_table(raw, name, str(path), kind=kind)


def _price_file_bytes(path: Path) -> bytes:
    """The bytes of a price CSV file, checked before pandas parses them: a regular file of at
    most :data:`MAX_CSV_BYTES`, no NUL byte (binary data), and a header line naming every
    column of :data:`CSV_COLUMNS`. Each failure is one :class:`DataError` saying which."""
    expected = f"expected a text CSV file with the header {','.join(CSV_COLUMNS)}"
    try:
        data = read_bounded(path, MAX_CSV_BYTES)
    except FileRefused as why:
        limit = f"the limit of {MAX_CSV_BYTES // 2**20} MB"
        what = {
            "missing": "file not found",
            "too large": (
                f"file too large: {why.size / 2**20:,.0f} MB, over {limit} for a daily price "
                "file (a century of one stock is under 2 MB); check that it is the right file"
                if why.size is not None
                else f"file too large: over {limit}"
            ),
            "unreadable": f"cannot be read ({why.detail})",
        }.get(why.reason, "not a regular file")
        raise DataError(f"{path}: {what}") from None
    text_at = _NON_SPACE.search(data)
    if text_at is None:
        raise DataError(f"{path}: the file is empty; expected {','.join(CSV_COLUMNS)}")
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise DataError(f"{path}: the file is UTF-16 text; save it as UTF-8 ({expected})")
    nul = data.find(b"\0")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise DataError(
            f"{path}: line {line}: binary data (a NUL byte at byte {nul:,}); {expected}"
        )
    first = data[text_at.start() : text_at.start() + 2**16].splitlines()[0]
    try:
        header = next(csv.reader([first.decode("utf-8-sig")]), [])
    except UnicodeDecodeError:
        raise DataError(f"{path}: line 1 is not UTF-8 text; {expected}") from None
    names = {cell.strip().lower().replace(" ", "_") for cell in header}
    missing = [c for c in CSV_COLUMNS if c not in names]
    first_cell = header[0].strip() if header else ""
    if len(missing) == len(CSV_COLUMNS) and _ISO_DAY.match(first_cell):
        shown = first[:60].decode("utf-8", "replace")
        raise DataError(
            f"{path}: no header line: the first line ({shown!r}) is data; add the header "
            f"{','.join(CSV_COLUMNS)} as the first line"
        )
    if missing:
        raise DataError(
            f"{path}: the header is missing column(s) {', '.join(missing)}; expected header "
            f"{','.join(CSV_COLUMNS)} (empty cells are fine)"
        )
    return data


def parse_price_table(raw: pd.DataFrame, name: str, where: str, *, kind: str) -> pd.DataFrame:
    """Validate a table of strings in the CSV format; see :func:`read_price_csv`."""
    raw = raw.rename(columns=lambda c: str(c).strip().lower().replace(" ", "_"))
    missing = [c for c in CSV_COLUMNS if c not in raw.columns]
    if missing:
        raise DataError(
            f"{where}: missing column(s) {', '.join(missing)}; expected header "
            f"{','.join(CSV_COLUMNS)} (empty cells are fine)"
        )
    if raw.empty:
        raise DataError(f"{where}: no data rows")
    text = raw["date"].astype(str).str.strip()
    # Plain YYYY-MM-DD dates (every file we know) parse in C; anything else takes the
    # checks below, which name what is wrong.
    plain = pd.to_datetime(text, format="%Y-%m-%d", errors="coerce")
    if not plain.isna().any():
        return _price_frame(raw, plain, name, where, kind)
    zoned = text.str.contains(_ZONED, regex=True).to_numpy()
    if zoned.any():
        # A daily bar's date is the exchange's trading day; an offset would move it.
        line = int(np.argmax(zoned)) + 2
        raise DataError(
            f"{where}: line {line}: date {text.iloc[line - 2]!r} carries a time zone; write "
            "plain dates (YYYY-MM-DD, the exchange's trading day)"
        )
    try:
        dates = pd.to_datetime(text, format="ISO8601", errors="coerce")
    except (ValueError, TypeError) as err:
        reason = " ".join(str(err).split())
        raise DataError(f"{where}: dates are not plain ISO dates ({reason})") from None
    if dates.dt.tz is not None:
        raise DataError(
            f"{where}: dates carry a time zone ({dates.dt.tz}); write plain dates (YYYY-MM-DD)"
        )
    if dates.isna().any():
        line = int(np.argmax(dates.isna().to_numpy())) + 2
        raise DataError(f"{where}: line {line}: date {raw['date'].iloc[line - 2]!r} is not ISO")
    return _price_frame(raw, dates, name, where, kind)


def _price_frame(
    raw: pd.DataFrame, dates: pd.Series, name: str, where: str, kind: str
) -> pd.DataFrame:
    """The numbers of a price table whose dates parsed (see :func:`parse_price_table`)."""
    columns = {}
    for col in CSV_COLUMNS[1:]:
        cells = raw[col]
        if cells.dtype.kind in "iuf":  # numbers (a bool column is text to name)
            columns[col] = cells.to_numpy(dtype=float)
            continue
        text = cells.astype(str).str.strip().mask(cells.isna(), "")
        values = pd.to_numeric(text.mask(text == ""), errors="coerce")
        bad = values.isna() & (text != "")
        if bad.any():
            line = int(np.argmax(bad.to_numpy())) + 2
            raise DataError(f"{where}: line {line}: {col} {text.iloc[line - 2]!r} is not a number")
        columns[col] = values.to_numpy(dtype=float)
    frame = pd.DataFrame(columns, index=pd.DatetimeIndex(dates, name="date").as_unit("ns"))
    return _finish(frame, name, where, kind)


#: The header of a plain price file, and the types of its columns.
_PLAIN_HEADER = ",".join(CSV_COLUMNS).encode()
_PLAIN_TYPES = {"date": pa.date32(), **{c: pa.float64() for c in CSV_COLUMNS[1:]}}


def _plain_columns(data: bytes) -> dict[str, np.ndarray] | None:
    """The columns of a plain price file, read by Arrow's CSV reader (a few times faster than
    pandas' for the small files of a 500-ticker universe), or None when the file is not
    plain: the exact header, ISO dates, and numbers or empty cells only. Any other file takes
    the checks of :func:`parse_price_table`, which name what is wrong. Both readers give the
    same floats (correctly rounded; checked on every bundled file).
    """
    if data.split(b"\n", 1)[0].rstrip(b"\r") != _PLAIN_HEADER:
        return None
    try:
        table = pcsv.read_csv(
            io.BytesIO(data),
            read_options=pcsv.ReadOptions(use_threads=False),
            convert_options=pcsv.ConvertOptions(
                column_types=_PLAIN_TYPES, null_values=[""], strings_can_be_null=False
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if table.num_rows == 0 or table.num_columns != len(CSV_COLUMNS) or table["date"].null_count:
        return None
    columns = {"date": table["date"].to_numpy().astype("datetime64[ns]")}
    for col in CSV_COLUMNS[1:]:
        cells = table[col]
        values = cells.to_numpy()
        # NaN or infinity written out: the checks below name the row.
        if not (np.isfinite(values) | cells.is_null().to_numpy()).all():
            return None
        columns[col] = values
    return columns


def _finish(frame: pd.DataFrame, name: str, where: str, kind: str) -> pd.DataFrame:
    """A parsed price table, checked: the yield series' values, or adjusted prices."""
    if kind == "yield":
        out = frame[["close"]]
        if out["close"].isna().all():
            raise DataError(f"{where}: a yield series needs its values (percent) in 'close'")
        out = out.dropna()
        _check_series(name, out, where, prices=False)
        return out
    if frame["close"].isna().all() and frame["adj_close"].isna().all():
        raise DataError(f"{where}: neither 'close' nor 'adj_close' has values")
    if (
        len(frame) > 1
        and frame["volume"].iloc[0] == 0
        and frame[["open", "high", "low", "close"]].iloc[0].nunique() == 1
    ):
        # A listing placeholder (e.g. SHOP 2015-05-20: all prices 1.70, volume 0), not a trade.
        frame = frame.iloc[1:]
    out = adjust_ohlc(frame)
    _check_series(name, out, where)
    return out


def _restrict(frame: pd.DataFrame, cfg: DataConfig, name: str, where: str) -> pd.DataFrame:
    cut = frame.loc[pd.Timestamp(cfg.start) : pd.Timestamp(cfg.end)]
    if cut.empty:
        first, last = frame.index[0].date(), frame.index[-1].date()
        raise DataError(
            f"{where}: {name} has no data between {cfg.start} and {cfg.end} "
            f"(it covers {first}..{last}); change data.start/data.end"
        )
    return cut


def _checked(
    name: str, frame: pd.DataFrame, where: str, level: str, warnings: list[str]
) -> pd.DataFrame:
    """:func:`check_rows`, its warnings added to ``warnings``."""
    kept, notes = check_rows(name, frame, where, level)
    warnings.extend(notes)
    return kept


def _check_names(names: Sequence[str], available: Sequence[str], where: str) -> None:
    for name in names:
        if name not in available:
            raise DataError(
                f"unknown ticker '{name}' in {where}{did_you_mean(name, available)}; "
                f"available: {', '.join(sorted(available))}"
            )


def load_bundled(cfg: DataConfig) -> DailyData:
    """skfolio's bundled S&P 500 sample: 20 stocks and the S&P 500 index, daily closes.

    The data ship inside the installed skfolio package, so this works offline.
    """
    from skfolio.datasets import load_sp500_dataset, load_sp500_index

    prices = load_sp500_dataset()
    index = load_sp500_index()
    where = "the bundled data set"
    tickers = list(cfg.tickers or prices.columns)
    _check_names(tickers, list(prices.columns), where)
    if cfg.benchmark not in index.columns:
        raise DataError(
            f"benchmark '{cfg.benchmark}' is not in {where}; it has only "
            f"{', '.join(index.columns)}{did_you_mean(cfg.benchmark, index.columns)}"
        )
    assets = {}
    warnings: list[str] = []

    def closes_only(close: pd.Series) -> pd.DataFrame:
        close = close.dropna().astype(float)
        close.index = pd.DatetimeIndex(close.index, name="date").as_unit("ns")
        frame = pd.DataFrame({c: close for c in ("open", "high", "low", "close")})
        frame["volume"] = 0.0
        return frame

    for t in tickers:
        frame = closes_only(prices[t])
        _check_series(t, frame, where)
        assets[t] = _checked(t, _restrict(frame, cfg, t, where), where, cfg.check, warnings)
    name = cfg.benchmark
    bench_frame = _restrict(closes_only(index[name]), cfg, name, where)
    bench = _checked(name, bench_frame, where, cfg.check, warnings)["close"]
    return DailyData(assets, bench.rename(name), None, CLOSES_ONLY_NOTE, "bundled", tuple(warnings))


def load_csv(cfg: DataConfig, risk_free: str | None) -> DailyData:
    """A folder of ``TICKER.csv`` files (the format of shared/data/paper12)."""
    folder = Path(cfg.path or "")
    if not folder.is_dir():
        raise DataError(f"data.path '{folder}': no such folder; point it at a folder of CSV files")
    found = {p.stem.upper(): p for p in folder.glob("*.csv")}
    if not found:
        raise DataError(f"data.path '{folder}': no .csv files in it")
    # A file's stem becomes a ticker name, which reaches file names and HTML reports: only
    # names in the documented character set are taken (config names were checked already).
    files = {name: p for name, p in found.items() if is_ticker(name)}
    where = f"data.path '{folder}'"
    if not cfg.tickers:
        strange = sorted(p.name for name, p in found.items() if not is_ticker(name))
        if strange:
            raise DataError(
                f"{where}: file name {strange[0]!r} is not TICKER.csv ({TICKER_RULE}); rename "
                "or remove it, or list data.tickers"
            )
    available = sorted(files)
    special = {cfg.benchmark, *([risk_free] if risk_free else [])}
    tickers = list(cfg.tickers or [a for a in available if a not in special | RATE_SERIES])
    _check_names([*tickers, cfg.benchmark, *([risk_free] if risk_free else [])], available, where)
    warnings: list[str] = []
    start = pd.Timestamp(cfg.start)
    cut: list[str] = []  # series that lost rows before data.start

    def load(name: str) -> pd.DataFrame:
        at = str(files[name])
        rows = read_price_csv(files[name], name)
        if len(rows) and rows.index[0] < start:
            cut.append(name)
        frame = _restrict(rows, cfg, name, at)
        return _checked(name, frame, at, cfg.check, warnings)

    assets = {t: load(t) for t in tickers}
    bench = load(cfg.benchmark)["close"]
    rf = None
    if risk_free:
        rf = read_price_csv(files[risk_free], risk_free, kind="yield")["close"].rename(risk_free)
    note = "daily OHLC from CSV files, adjusted by adj_close / close (splits and dividends)"
    return DailyData(
        assets, bench.rename(cfg.benchmark), rf, note, "csv", tuple(warnings), whole=not cut
    )


YAHOO_INDICES = frozenset({"IXIC", "GSPC", "DJI", "NDX", "RUT", "IRX", "TNX", "FVX", "VIX"})


def yahoo_symbol(name: str) -> str:
    """Yahoo's symbol for a config name: indices get a caret (IXIC -> ^IXIC)."""
    return f"^{name}" if name in YAHOO_INDICES else name


def check_network(
    host: str = "query1.finance.yahoo.com", timeout: float = 5.0, service: str = "Yahoo Finance"
) -> None:
    """Raise NetworkError unless ``host`` accepts a TCP connection on port 443."""
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError as err:
        raise NetworkError(
            f"cannot reach {service} ({host}: {err.strerror or err}); without a network use "
            "--set data.source=csv --set data.path=FOLDER, or data.source=bundled"
        ) from None


def _cache_path(workspace: Path, symbol: str) -> Path:
    return workspace / "cache" / "yahoo" / f"{symbol.lstrip('^')}.parquet"


def _write_cache(frame: pd.DataFrame, path: Path, start: pd.Timestamp, end: pd.Timestamp) -> None:
    """Write a downloaded series and, beside it, the range that was asked for (a late listing
    starts after the asked start; the record says the download covered it all the same). An
    end after today is recorded as today: the days after it are still to come."""
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    frame.to_parquet(tmp, index=False)
    tmp.replace(path)
    until = min(end, pd.Timestamp.today().normalize())
    asked = {"start": start.date().isoformat(), "end": until.date().isoformat()}
    path.with_suffix(".json").write_text(json.dumps(asked) + "\n", encoding="utf-8")


def _cache_covers(path: Path, start: pd.Timestamp, end: pd.Timestamp) -> bool:
    """Whether the cached series at ``path`` covers ``start..end`` (give or take a week)."""
    import json

    if not path.is_file():
        return False
    week = pd.Timedelta(days=7)
    try:
        asked = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
        first, last = pd.Timestamp(asked["start"]), pd.Timestamp(asked["end"])
    except (OSError, ValueError, KeyError, TypeError):
        dates = pd.read_parquet(path, columns=["date"])["date"]
        first, last = dates.min() - week, dates.max()
    return bool(first <= start + week and last >= end - week)


def fetch_yahoo(
    symbols: Sequence[str], start: pd.Timestamp, end: pd.Timestamp, workspace: Path
) -> dict[str, Path]:
    """Download daily prices from Yahoo into the workspace cache (Parquet, CSV columns)."""
    check_network()
    import yfinance as yf

    paths = {}
    for symbol in symbols:
        ysym = yahoo_symbol(symbol)
        hist = yf.Ticker(ysym).history(
            start=start.date().isoformat(),
            end=(end + pd.Timedelta(days=1)).date().isoformat(),
            auto_adjust=False,
            actions=False,
        )
        if hist is None or hist.empty:
            raise DataError(
                f"Yahoo returned no prices for '{ysym}' between {start.date()} and {end.date()}; "
                "check the ticker symbol and the dates"
            )
        frame = pd.DataFrame(
            {
                "date": pd.DatetimeIndex(hist.index).tz_localize(None).normalize(),
                "open": hist["Open"].to_numpy(float),
                "high": hist["High"].to_numpy(float),
                "low": hist["Low"].to_numpy(float),
                "close": hist["Close"].to_numpy(float),
                "adj_close": hist.get("Adj Close", hist["Close"]).to_numpy(float),
                "volume": hist["Volume"].to_numpy(float),
            }
        )
        path = _cache_path(workspace, symbol)
        _write_cache(frame, path, start, end)
        paths[symbol] = path
    return paths


#: Yield series Yahoo does not carry: the ``yahoo`` source takes them from FRED.
FRED_SERIES = frozenset({"DGS1", "DGS2", "DGS5", "DGS10", "DGS3MO", "DTB3"})
FRED_HOST = "fred.stlouisfed.org"


def parse_fred_csv(text: str, name: str) -> pd.DataFrame:
    r"""FRED's graph CSV (``observation_date,<NAME>``; ``.`` or empty = no value) in our cache
    layout: columns ``date, open, high, low, close, adj_close, volume``, the yield in ``close``.

    >>> f = parse_fred_csv("observation_date,DGS2\n2024-01-02,4.33\n2024-01-03,.\n", "DGS2")
    >>> f["date"].dt.strftime("%Y-%m-%d").tolist(), f["close"].tolist()
    (['2024-01-02'], [4.33])
    """
    import io

    try:
        raw = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise DataError(f"FRED sent no readable CSV for {name} ({err})") from None
    if len(raw.columns) != 2 or raw.columns[1].strip().upper() != name:
        raise DataError(f"FRED sent an unexpected table for {name}: columns {list(raw.columns)}")
    values = pd.to_numeric(raw.iloc[:, 1].str.strip().replace({".": ""}), errors="coerce")
    keep = values.notna()
    if not keep.any():
        raise DataError(f"FRED returned no values for {name}")
    dates = pd.to_datetime(raw.iloc[:, 0][keep].str.strip(), format="ISO8601", errors="coerce")
    if dates.isna().any():
        bad = raw.iloc[:, 0][keep][dates.isna()].iloc[0]
        raise DataError(f"FRED sent {name} with a date that is not ISO: {bad!r}; try again later")
    nan = np.full(int(keep.sum()), np.nan)
    return pd.DataFrame(
        {
            "date": dates.to_numpy(),
            "open": nan,
            "high": nan,
            "low": nan,
            "close": values[keep].to_numpy(float),
            "adj_close": nan,
            "volume": nan,
        }
    )


def fetch_fred(name: str, start: pd.Timestamp, end: pd.Timestamp, workspace: Path) -> Path:
    """Download a daily FRED yield series (e.g. DGS2, percent) into the workspace cache."""
    import urllib.error
    import urllib.request

    check_network(FRED_HOST, service="FRED")
    url = (
        f"https://{FRED_HOST}/graph/fredgraph.csv?id={name}"
        f"&cosd={start.date().isoformat()}&coed={end.date().isoformat()}"
    )
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            text = response.read().decode("utf-8")
    except (urllib.error.URLError, TimeoutError, UnicodeDecodeError) as err:
        raise NetworkError(
            f"could not download {name} from FRED ({err}); give report.risk_free as an annual "
            "fraction such as 0.04, or use a csv source with a DGS2.csv file"
        ) from None
    frame = parse_fred_csv(text, name)
    path = _cache_path(workspace, name)
    _write_cache(frame, path, start, end)
    return path


def _read_cached(path: Path, name: str, kind: str = "price") -> pd.DataFrame:
    frame = pd.read_parquet(path)
    raw = frame.assign(date=frame["date"].dt.strftime("%Y-%m-%d")).astype(object)
    # Missing cells become "" (pandas 3's astype(str) would keep them as NaN, not text).
    raw = raw.where(raw.notna(), "").astype(str)
    return parse_price_table(raw, name, str(path), kind=kind)


def load_yahoo(cfg: DataConfig, risk_free: str | None, workspace: Path) -> DailyData:
    """Prices from Yahoo, cached as Parquet in the workspace; downloads only what is missing."""
    if not cfg.tickers:
        raise DataError('source \'yahoo\' needs data.tickers, e.g. tickers = ["AAPL", "MSFT"]')
    start, end = pd.Timestamp(cfg.start), pd.Timestamp(cfg.end)
    names = [*cfg.tickers, cfg.benchmark, *([risk_free] if risk_free else [])]
    missing = [
        name for name in names if not _cache_covers(_cache_path(workspace, name), start, end)
    ]
    from_fred = [name for name in missing if name in FRED_SERIES]
    if [name for name in missing if name not in FRED_SERIES]:
        fetch_yahoo([name for name in missing if name not in FRED_SERIES], start, end, workspace)
    for name in from_fred:
        fetch_fred(name, start - pd.Timedelta(days=14), end, workspace)
    where = "Yahoo cache"
    warnings: list[str] = []

    def load(name: str) -> pd.DataFrame:
        frame = _restrict(_read_cached(_cache_path(workspace, name), name), cfg, name, where)
        return _checked(name, frame, where, cfg.check, warnings)

    assets = {t: load(t) for t in cfg.tickers}
    bench = load(cfg.benchmark)["close"]
    rf = None
    if risk_free:
        rf = _read_cached(_cache_path(workspace, risk_free), risk_free, "yield")["close"]
    note = "daily OHLC from Yahoo, adjusted by Adj Close / Close (splits and dividends)"
    return DailyData(assets, bench.rename(cfg.benchmark), rf, note, "yahoo", tuple(warnings))


def load_daily(cfg: DataConfig, risk_free: float | str, workspace: Path) -> DailyData:
    """Load the configured source. ``risk_free`` names a yield series to load, if a string."""
    rf_name = risk_free if isinstance(risk_free, str) else None
    if cfg.source == "bundled":
        if rf_name:
            raise DataError(
                f"report.risk_free '{rf_name}': the bundled data set has no yield series; "
                "give an annual fraction such as 0.02, or use a csv/yahoo source"
            )
        return load_bundled(cfg)
    if cfg.source == "csv":
        return load_csv(cfg, rf_name)
    return load_yahoo(cfg, rf_name, workspace)
