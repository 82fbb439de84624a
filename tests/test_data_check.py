"""The daily data check (``data.check``, issue 14 "Bad data that passes silently"): impossible
rows refused (strict) or dropped (warn), suspicious jumps warned about, on hand-made CSVs."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from simulator.backtest import run_backtest
from simulator.config import load_config
from simulator.data import load_daily
from simulator.errors import DataError
from tests.helpers import cli, error_line

HEADER = "date,open,high,low,close,adj_close,volume\n"
#: Eight weeks of trading days, Monday 2024-01-01 .. Friday 2024-02-23.
DAYS = pd.bdate_range("2024-01-01", "2024-02-23")


def rows(edits: dict[str, str] | None = None, close: float = 10.0) -> str:
    """A CSV body: every day open 10, high 11, low 9, close ``close``, volume 100; ``edits``
    replaces the whole line (after the date) of a day, or adds a day that is not in DAYS."""
    lines = {d.date().isoformat(): f"10,11,9,{close},{close},100" for d in DAYS}
    lines.update(edits or {})
    return "".join(f"{day},{rest}\n" for day, rest in sorted(lines.items()))


def folder(tmp_path: Path, x_edits: dict[str, str] | None = None) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    (data / "X.csv").write_text(HEADER + rows(x_edits))
    (data / "Y.csv").write_text(HEADER + rows(close=10.5))
    (data / "IDX.csv").write_text(HEADER + rows())
    return data


def settings(data: Path, *extra: str) -> list[str]:
    return [
        "data.source=csv",
        f"data.path={data}",
        "data.benchmark=IDX",
        "data.start=2024-01-01",
        "data.end=2024-02-23",
        "backtest.start=2024-01-19",
        "backtest.end=2024-02-23",
        "backtest.min_history=1",
        "backtest.fill=close",
        *extra,
    ]


REMEDY = 'fix the file, or set data.check = "warn" (drops such rows) or "off"'
IMPOSSIBLE = [
    ({"2024-01-10": "10,9,11,10,10,100"}, "2024-01-10", "its high is below its low"),
    ({"2024-01-09": "10,11,9,11.5,11.5,100"}, "2024-01-09", "its close lies outside its low..high"),
    ({"2024-01-11": "8.5,11,9,10,10,100"}, "2024-01-11", "its open lies outside its low..high"),
    ({"2024-01-12": "10,11,9,10,10,-5"}, "2024-01-12", "its volume is negative (-5)"),
    ({"2024-01-13": "10,11,9,10,10,100"}, "2024-01-13", "dated on a Saturday"),
    ({"2024-01-14": "10,11,9,10,10,100"}, "2024-01-14", "dated on a Sunday"),
]


@pytest.mark.parametrize(("edits", "day", "reason"), IMPOSSIBLE)
def test_strict_refuses_an_impossible_row_in_one_line(
    tmp_path: Path,
    edits: dict[str, str],
    day: str,
    reason: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = folder(tmp_path, edits)
    out = tmp_path / "run"
    code = cli(["backtest", *_argv(data, out)], monkeypatch)
    line = error_line(capsys)
    assert code == 2
    assert line == f"error: {data / 'X.csv'}: X on {day}: {reason}; {REMEDY}"
    assert not out.exists()


def _argv(data: Path, out: Path, *extra: str) -> list[str]:
    """``backtest`` arguments: an empty config with :func:`settings`."""
    cfg = out.parent / "c.toml"
    cfg.write_text("")
    argv = [str(cfg), "--out", str(out)]
    for item in settings(data, *extra):
        argv += ["--set", item]
    return argv


def test_a_tolerance_of_rounding_is_not_impossible(tmp_path: Path) -> None:
    # A close 0.05% above the high (rounding in published data) passes; 0.2% does not.
    data = folder(tmp_path, {"2024-01-10": "10,11,9,11.0055,11.0055,100"})
    cfg = load_config(None, settings(data))
    assert load_daily(cfg.data, 0.0, tmp_path / "ws").warnings == ()
    (data / "X.csv").write_text(HEADER + rows({"2024-01-10": "10,11,9,11.022,11.022,100"}))
    with pytest.raises(DataError, match="X on 2024-01-10: its close lies outside"):
        load_daily(cfg.data, 0.0, tmp_path / "ws")


def test_warn_drops_impossible_rows_and_says_so(tmp_path: Path) -> None:
    edits = {e: r for case in IMPOSSIBLE for e, r in case[0].items()}
    data = folder(tmp_path, edits)
    cfg = load_config(None, settings(data, "data.check=warn"))
    daily = load_daily(cfg.data, 0.0, tmp_path / "ws")
    x = daily.assets["X"]
    dropped = [pd.Timestamp(d) for d in edits]
    assert not x.index.isin(dropped).any()
    assert len(x) == len(DAYS) - 4  # 4 bad weekdays dropped; the weekend rows too
    assert daily.warnings == (
        f"warning: {data / 'X.csv'}: dropped 6 impossible row(s) of X, the first on 2024-01-09 "
        "(its close lies outside its low..high); fix the file",
    )
    assert daily.assets["Y"].index.equals(pd.DatetimeIndex(DAYS, name="date"))


def test_off_checks_nothing(tmp_path: Path) -> None:
    data = folder(tmp_path, {"2024-01-10": "10,9,11,10,10,100", "2024-01-13": "10,11,9,10,10,1"})
    cfg = load_config(None, settings(data, "data.check=off"))
    daily = load_daily(cfg.data, 0.0, tmp_path / "ws")
    assert daily.warnings == ()
    assert pd.Timestamp("2024-01-13") in daily.assets["X"].index


def test_a_jump_that_reverts_is_warned_about_and_kept(tmp_path: Path) -> None:
    # A x1000 close for one day (the 26,614%-a-year 1/N), and later a /20 dip for two.
    data = folder(
        tmp_path,
        {
            "2024-01-10": "10,10000,9,10000,10000,100",
            "2024-02-06": "0.5,11,0.4,0.5,0.5,100",
            "2024-02-07": "0.5,11,0.4,0.5,0.5,100",
        },
    )
    for level in ("strict", "warn"):
        cfg = load_config(None, settings(data, f"data.check={level}"))
        daily = load_daily(cfg.data, 0.0, tmp_path / "ws")
        assert daily.warnings == (
            f"warning: {data / 'X.csv'}: X on 2024-01-10: the close is 1000 times the previous "
            "close and jumps back 1 trading day(s) later, a likely bad print (1 more such "
            'jump(s)); check the file (data.check = "off" silences this)',
        )
        assert daily.assets["X"].loc["2024-01-10", "close"] == 10_000.0  # kept as it is


def test_a_jump_that_stays_is_not_warned_about(tmp_path: Path) -> None:
    # A fall of 95% that does not come back is a market event, not a bad print.
    late = {d.date().isoformat(): "0.5,0.5,0.5,0.5,0.5,100" for d in DAYS[DAYS >= "2024-01-10"]}
    data = folder(tmp_path, late)
    cfg = load_config(None, settings(data))
    assert load_daily(cfg.data, 0.0, tmp_path / "ws").warnings == ()


def test_a_backtest_prints_the_warnings_and_lists_them_in_its_summary(tmp_path: Path) -> None:
    data = folder(tmp_path, {"2024-01-10": "10,10000,9,10000,10000,100"})
    cfg = load_config(None, settings(data))
    said: list[str] = []
    result = run_backtest(cfg, tmp_path / "ws", note=said.append)
    expected = [
        f"warning: {data / 'X.csv'}: X on 2024-01-10: the close is 1000 times the previous "
        "close and jumps back 1 trading day(s) later, a likely bad print; check the file "
        '(data.check = "off" silences this)'
    ]
    assert said == expected
    assert result.summary.data_warnings == expected
    assert result.summary.to_json()["data_warnings"] == expected


def test_real_and_bundled_data_pass_strict_without_warnings(paper12: Path, tmp_path: Path) -> None:
    # SHOP's first row (all prices 1.70, volume 0) is a placeholder, not an impossible row.
    cfg = load_config(
        None,
        [
            "data.source=csv",
            f"data.path={paper12}",
            "data.benchmark=IXIC",
            "data.start=2000-01-01",
            "data.end=2024-12-31",
        ],
    )
    assert load_daily(cfg.data, "DGS2", tmp_path).warnings == ()
    bundled = load_config(None, ["data.start=1990-01-01"])
    assert load_daily(bundled.data, 0.0, tmp_path).warnings == ()


def test_the_level_is_validated(tmp_path: Path) -> None:
    from simulator.errors import ConfigError

    with pytest.raises(ConfigError, match=re.escape("data.check: Input should be 'strict'")):
        load_config(None, ["data.check=loose"])
