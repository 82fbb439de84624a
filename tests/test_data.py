"""Loading, validating and weekly-aggregating prices, on hand-made files with exact values."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from simulator.config import load_config
from simulator.data import load_daily, make_weekly, read_price_csv, sources
from simulator.data.sources import DailyData
from simulator.data.weekly import to_weekly, week_stamps
from simulator.errors import DataError, NetworkError

from .conftest import daily_frame

HEADER = "date,open,high,low,close,adj_close,volume\n"


def write(folder: Path, name: str, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.csv"
    path.write_text(HEADER + body)
    return path


def test_adjusted_ohlc_uses_adj_close_over_close(tmp_path: Path) -> None:
    path = write(tmp_path, "X", "2024-01-02,10,12,9,11,5.5,100\n2024-01-03,11,11,10,10,5,200\n")
    frame = read_price_csv(path, "X")
    assert frame.loc["2024-01-02"].tolist() == [5.0, 6.0, 4.5, 5.5, 100.0]
    assert frame.loc["2024-01-03"].tolist() == [5.5, 5.5, 5.0, 5.0, 200.0]


def test_index_without_adj_close_keeps_its_prices(tmp_path: Path) -> None:
    path = write(tmp_path, "IDX", "2024-01-02,100,101,99,100.5,,0\n")
    assert read_price_csv(path, "IDX").iloc[0].tolist() == [100.0, 101.0, 99.0, 100.5, 0.0]


def test_adj_close_only_source_uses_it_for_all_prices(tmp_path: Path) -> None:
    path = write(tmp_path, "Y", "2024-01-02,,,,,7.25,\n2024-01-03,,,,,7.5,\n")
    frame = read_price_csv(path, "Y")
    assert frame["close"].tolist() == [7.25, 7.5]
    assert frame["open"].tolist() == [7.25, 7.5]
    assert frame["volume"].tolist() == [0.0, 0.0]


def test_listing_placeholder_row_is_dropped(tmp_path: Path) -> None:
    # SHOP's first row in paper12: every price 1.70 and volume 0, the day before trading began.
    path = write(
        tmp_path, "S", "2015-05-20,1.7,1.7,1.7,1.7,1.7,0\n2015-05-21,2.8,2.9,2.4,2.6,2.6,9\n"
    )
    frame = read_price_csv(path, "S")
    assert list(frame.index.strftime("%Y-%m-%d")) == ["2015-05-21"]


def test_yield_series_reads_percent_from_close(tmp_path: Path) -> None:
    path = write(tmp_path, "DGS2", "2024-01-02,,,,4.33,,\n2024-01-03,,,,4.31,,\n")
    assert read_price_csv(path, "DGS2", kind="yield")["close"].tolist() == [4.33, 4.31]


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ("2024-01-02,1,1,1,1,1,1\n2024-01-02,1,1,1,1,1,1\n", "duplicate date 2024-01-02"),
        ("2024-01-03,1,1,1,1,1,1\n2024-01-02,1,1,1,1,1,1\n", "not in ascending order"),
        ("2024-01-02,1,1,1,1,1,1\n2024-01-03,1,1,1,0,0,1\n", "non-positive price on 2024-01-03"),
        ("2024-01-02,1,1,1,1,1,1\n2024-01-03,1,1,1,nan,,1\n", "line 3: close 'nan'"),
        ("2024-01-02,1,1,1,1,1,1\n2024-01-03,1,1,1,,,1\n", "NaN or non-positive price on 2024"),
        ("2024-01-02,1,1,1,abc,1,1\n", "line 2: close 'abc' is not a number"),
        ("02/01/2024,1,1,1,1,1,1\n", "line 2: date '02/01/2024' is not ISO"),
        ("", "no data rows"),
    ],
)
def test_malformed_files_get_one_clear_error(tmp_path: Path, body: str, match: str) -> None:
    path = write(tmp_path, "BAD", body)
    with pytest.raises(DataError, match=match):
        read_price_csv(path, "BAD")


def test_missing_columns_and_empty_file(tmp_path: Path) -> None:
    (tmp_path / "A.csv").write_text("date,close\n2024-01-02,1\n")
    with pytest.raises(DataError, match="missing column"):
        read_price_csv(tmp_path / "A.csv", "A")
    (tmp_path / "B.csv").write_text("")
    with pytest.raises(DataError, match="empty"):
        read_price_csv(tmp_path / "B.csv", "B")


def _csv_config(folder: Path, *extra: str):  # type: ignore[no-untyped-def]
    return load_config(
        None,
        [
            "data.source=csv",
            f"data.path={folder}",
            "data.benchmark=IDX",
            "data.start=2024-01-01",
            "data.end=2024-03-01",
            "backtest.start=2024-01-15",
            "backtest.end=2024-02-28",
            *extra,
        ],
    )


def test_unknown_ticker_suggests_the_closest(tmp_path: Path) -> None:
    write(tmp_path, "AAPL", "2024-01-02,1,1,1,1,1,1\n")
    write(tmp_path, "IDX", "2024-01-02,1,1,1,1,,1\n")
    cfg = _csv_config(tmp_path, "data.tickers=APPL")
    with pytest.raises(DataError, match=r"unknown ticker 'APPL'.*did you mean 'AAPL'"):
        load_daily(cfg.data, 0.0, tmp_path / "ws")


def test_missing_folder_and_date_range_without_data(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such folder"):
        load_daily(_csv_config(tmp_path / "nope").data, 0.0, tmp_path / "ws")
    write(tmp_path, "AAPL", "2020-01-02,1,1,1,1,1,1\n")
    write(tmp_path, "IDX", "2024-01-02,1,1,1,1,,1\n")
    with pytest.raises(DataError, match="AAPL has no data between 2024-01-01 and 2024-03-01"):
        load_daily(_csv_config(tmp_path).data, 0.0, tmp_path / "ws")


def test_bundled_source_has_no_yield_series(tmp_path: Path) -> None:
    cfg = load_config(None, ["report.risk_free=DGS2"])
    with pytest.raises(DataError, match="bundled data set has no yield series"):
        load_daily(cfg.data, cfg.report.risk_free, tmp_path)


def test_bundled_unknown_ticker(tmp_path: Path) -> None:
    cfg = load_config(None, ["data.tickers=MSFTT"])
    with pytest.raises(DataError, match="did you mean 'MSFT'"):
        load_daily(cfg.data, 0.0, tmp_path)


def test_yahoo_without_network_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError(101, "Network is unreachable")

    monkeypatch.setattr(socket, "create_connection", refuse)
    cfg = load_config(None, ["data.source=yahoo", "data.tickers=AAPL", "data.benchmark=IXIC"])
    with pytest.raises(NetworkError, match=r"cannot reach Yahoo.*data\.source=csv"):
        load_daily(cfg.data, 0.0, tmp_path)


def test_yahoo_cache_of_a_late_listing_serves_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, paper12: Path
) -> None:
    """A symbol listed after data.start (SHOP, 2015) and DGS2 from FRED, cached once, are
    read back offline: the cache records the range that was asked for, not only the dates."""
    import socket

    from simulator.data.sources import _cache_path, _write_cache

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError(101, "Network is unreachable")

    start, end = pd.Timestamp("2010-01-01"), pd.Timestamp("2020-12-31")
    for name in ("SHOP", "IXIC", "DGS2"):
        frame = pd.read_csv(paper12 / f"{name}.csv", parse_dates=["date"])
        frame = frame[(frame["date"] >= start - pd.Timedelta(days=14)) & (frame["date"] <= end)]
        _write_cache(frame, _cache_path(tmp_path, name), start, end)
    monkeypatch.setattr(socket, "create_connection", refuse)
    cfg = load_config(
        None,
        [
            "data.source=yahoo",
            "data.tickers=SHOP",
            "data.benchmark=IXIC",
            "data.start=2010-01-01",
            "data.end=2020-12-31",
            "backtest.start=2018-01-01",
            "backtest.end=2020-12-31",
        ],
    )
    daily = load_daily(cfg.data, "DGS2", tmp_path)
    assert daily.assets["SHOP"].index[0] >= pd.Timestamp("2015-05-21")
    assert daily.risk_free is not None and len(daily.risk_free) > 2000
    later = cfg.data.model_copy(update={"end": pd.Timestamp("2021-06-30").date()})
    with pytest.raises(NetworkError, match="cannot reach Yahoo"):
        load_daily(later, 0.0, tmp_path)  # beyond the cached range: a download is needed


def test_week_stamp_is_the_last_trading_day_in_a_holiday_week() -> None:
    # Good Friday 2023-04-07: the week's bar is stamped Thursday 2023-04-06.
    days = pd.bdate_range("2023-04-03", "2023-04-14").drop(pd.Timestamp("2023-04-07"))
    stamps = week_stamps(days)
    assert stamps.loc["2023-04-03"] == pd.Timestamp("2023-04-06")
    assert stamps.loc["2023-04-10"] == pd.Timestamp("2023-04-14")


def test_weekly_bar_aggregates_ohlcv_exactly() -> None:
    daily = daily_frame(
        [
            ("2023-04-03", 10.0, 12.0, 9.0, 11.0),
            ("2023-04-04", 11.0, 15.0, 10.0, 14.0),
            ("2023-04-05", 14.0, 14.5, 8.0, 9.0),
            ("2023-04-06", 9.0, 10.0, 8.5, 9.5),
            ("2023-04-10", 9.5, 9.6, 9.4, 9.6),
        ]
    )
    bars = to_weekly(daily, week_stamps(daily.index))
    assert bars.index.strftime("%Y-%m-%d").tolist() == ["2023-04-06", "2023-04-10"]
    assert bars.iloc[0].tolist() == [10.0, 15.0, 8.0, 9.5, 400.0]
    assert bars.iloc[1].tolist() == [9.5, 9.6, 9.4, 9.6, 100.0]


def test_late_listing_and_missing_week_are_not_filled() -> None:
    a = daily_frame([(d, 1.0, 1.0, 1.0, 1.0) for d in ["2024-01-05", "2024-01-12", "2024-01-19"]])
    b = daily_frame([(d, 2.0, 2.0, 2.0, 2.0) for d in ["2024-01-12"]])  # listed late, then gone
    weekly = make_weekly(DailyData({"A": a, "B": b}, a["close"].rename("I"), None, "", "test"))
    closes = weekly.closes()
    assert closes["A"].tolist() == [1.0, 1.0, 1.0]
    assert closes["B"].isna().tolist() == [True, False, True]


def test_weekly_does_not_mutate_the_daily_input() -> None:
    a = daily_frame([("2024-01-05", 1.0, 2.0, 0.5, 1.5), ("2024-01-08", 1.5, 2.0, 1.0, 1.8)])
    before = a.copy()
    make_weekly(DailyData({"A": a}, a["close"].rename("I"), None, "", "test"))
    pd.testing.assert_frame_equal(a, before)


def test_paper12_weekly_panel(paper12: Path, tmp_path: Path) -> None:
    cfg = load_config(
        None,
        [
            "data.source=csv",
            f"data.path={paper12}",
            "data.benchmark=IXIC",
            "data.start=2022-01-01",
            "data.end=2023-06-30",
            "backtest.start=2022-07-01",
            "backtest.end=2023-06-23",
            "report.risk_free=DGS2",
        ],
    )
    weekly = make_weekly(load_daily(cfg.data, cfg.report.risk_free, tmp_path))
    assert sorted(weekly.tickers) == sorted(
        ["TSLA", "NVDA", "AAPL", "MSFT", "AMZN", "SHOP", "NFLX", "NKE", "PEP", "JPM", "UNH", "BA"]
    )
    closes = weekly.closes()
    test_weeks = closes.loc["2022-07-01":"2023-06-23"]
    assert len(test_weeks) == 52 and not test_weeks.isna().any().any()
    assert pd.Timestamp("2023-04-06") in closes.index  # Good Friday week
    assert pd.Timestamp("2023-04-07") not in closes.index
    assert closes.loc["2023-06-23", "AAPL"] == pytest.approx(185.945679)  # adj_close
    assert weekly.benchmark.loc["2022-06-24"] == pytest.approx(11607.62, abs=0.01)
    assert weekly.risk_free is not None
    assert weekly.risk_free.loc["2022-07-01"] == pytest.approx(2.84)


@pytest.mark.parametrize(
    ("body", "fast"),
    [
        ("2024-01-02,10,11,9,10.5,5.25,100\n2024-01-03,10.5,12,10,11.75,5.875,\n", True),
        ("2024-01-02,,,,10.5,,\n2024-01-03,,,,11.1,,\n", True),  # closes only, an index
        ("2024-01-02,10,11,9,10.5,10.5,100\r\n2024-01-03,10,11,9,10.1,10.1,100\r\n", True),
        ("2024-01-02, 10,11,9,10.5,10.5,100\n", True),  # a space before a number: both read it
        ("2024-01-02,10,11,9,NaN,10.5,100\n", False),  # NaN written out: named below
        ("2024-1-2,10,11,9,10.5,10.5,100\n", False),  # not ISO: named below
        ("2024-01-02,10,11,9,10.5,10.5,100,7\n", False),  # an extra cell
    ],
)
def test_plain_files_read_fast_give_what_the_careful_reader_gives(
    tmp_path: Path, body: str, fast: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Plain files take Arrow's CSV reader, the rest pandas' checks; the same frame or the
    same one-line error either way."""
    path = write(tmp_path, "X", body)
    assert (sources._plain_columns(path.read_bytes()) is not None) is fast

    def read() -> pd.DataFrame | str:
        try:
            return read_price_csv(path, "X")
        except DataError as err:
            return str(err)

    first = read()
    monkeypatch.setattr(sources, "_plain_columns", lambda data: None)
    careful = read()
    if isinstance(first, str):
        assert first == careful
    else:
        assert isinstance(careful, pd.DataFrame)
        pd.testing.assert_frame_equal(first, careful, check_exact=True)
