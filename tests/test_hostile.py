"""Hostile input: payloads and broken files at every boundary get one ``error:`` line, exit 2.

Each case is named after the hole it closes (issue 14, "Hardening"). The command line runs
in-process (``simulator.cli.main``); files are real, in the test's own folders.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simulator.cli import main

#: Script payloads a hostile config or file name could carry into a report.
PAYLOADS = [
    "<svg onload=alert(1)>",
    "<script>document.title='pwned'</script>",
    '"><img src=x onerror=alert(1)>',
    "AA\tPL",
    "AAPL\nMSFT",
    "../../etc/passwd",
    "A B",
    "X" * 21,
]

BASE = """
[data]
source = "csv"
path = "{path}"
tickers = ["AAPL", "MSFT", "JPM"]
benchmark = "IXIC"
start = "2021-01-01"
end = "2023-06-30"

[backtest]
start = "2022-06-24"
end = "2023-06-23"
strategy = "equal_weight"
fill = "close"
"""


def run_cli(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    """``foliosim argv`` in-process; its exit status."""
    monkeypatch.setattr(sys, "argv", ["foliosim", *argv])
    try:
        main()
    except SystemExit as ex:
        return int(ex.code or 0)
    return 0


def refused(
    argv: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    match: str,
) -> str:
    """Run ``argv``; assert exit 2 and exactly one ``error:`` line matching ``match``."""
    code = run_cli(argv, monkeypatch)
    err = capsys.readouterr().err
    # A transient progress bar leaves a blank line behind; the error is the one line of text.
    lines = [line for line in err.split("\n") if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert re.search(match, lines[0]), lines[0]
    return lines[0]


@pytest.fixture
def config(paper12: Path, tmp_path: Path) -> Path:
    path = tmp_path / "base.toml"
    path.write_text(BASE.format(path=paper12))
    return path


def copy_data(paper12: Path, folder: Path, names: list[str]) -> Path:
    folder.mkdir()
    for name in names:
        shutil.copy(paper12 / f"{name}.csv", folder / f"{name}.csv")
    return folder


# --- names at the config boundary ------------------------------------------------------------


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize(
    "field", ["data.tickers", "data.benchmark", "report.risk_free", "profile.exclude"]
)
def test_names_outside_the_ticker_charset_are_refused_before_any_work(
    config: Path,
    tmp_path: Path,
    field: str,
    payload: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "never"
    value = f'["{payload}"]' if field in ("data.tickers", "profile.exclude") else payload
    argv = ["backtest", str(config), "--out", str(out), "--set", f"{field}={value}"]
    refused(argv, monkeypatch, capsys, rf"{re.escape(field)}: .* is not a ticker name: use")
    assert not out.exists()


def test_benchmark_file_named_as_a_script_is_refused(
    paper12: Path,
    config: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The XSS of issue 14: `<svg onload=...>.csv` as data.benchmark reached QuantStats."""
    data = copy_data(paper12, tmp_path / "data", ["AAPL", "MSFT", "JPM"])
    evil = "<svg onload=alert(1)>"
    shutil.copy(paper12 / "IXIC.csv", data / f"{evil}.csv")
    out = tmp_path / "never"
    argv = ["backtest", str(config), "--out", str(out), "--set", f"data.path={data}"]
    refused(
        [*argv, "--set", f"data.benchmark={evil}"],
        monkeypatch,
        capsys,
        r"data.benchmark: '<svg onload=alert\(1\)>' is not a ticker name",
    )
    # Without data.tickers, every file becomes a ticker: the strange file is named and refused.
    refused(
        [*argv, "--set", "data.benchmark=JPM", "--set", "data.tickers=[]"],
        monkeypatch,
        capsys,
        r"data.tickers: give at least one ticker",
    )
    (tmp_path / "bare.toml").write_text(
        BASE.format(path=data).replace('tickers = ["AAPL", "MSFT", "JPM"]\n', "")
    )
    refused(
        ["backtest", str(tmp_path / "bare.toml"), "--out", str(out), "--set", "data.benchmark=JPM"],
        monkeypatch,
        capsys,
        r"file name '<svg onload=alert\(1\)>.csv' is not TICKER.csv .*rename or remove it, or "
        r"list data.tickers$",
    )
    assert not out.exists()


def test_csv_stems_outside_the_charset_are_not_tickers(paper12: Path, tmp_path: Path) -> None:
    """With data.tickers listed, a strange file beside them is never read."""
    from simulator.config import DataConfig
    from simulator.data.sources import load_csv
    from simulator.errors import DataError

    data = copy_data(paper12, tmp_path / "data", ["AAPL", "IXIC"])
    (data / "A B.csv").write_text("not even a csv\n")
    cfg = DataConfig(source="csv", path=str(data), tickers=("AAPL",), benchmark="IXIC")
    assert list(load_csv(cfg, None).assets) == ["AAPL"]
    with pytest.raises(DataError, match=r"file name 'A B.csv' is not TICKER.csv"):
        load_csv(cfg.model_copy(update={"tickers": None}), None)


@pytest.mark.parametrize("name", ["acct\n", "acct\nx", "../acct", "<b>", "a" * 65, ""])
def test_account_names_match_whole_strings(name: str, tmp_path: Path) -> None:
    from simulator.errors import ConfigError
    from simulator.replay import journal_path

    with pytest.raises(ConfigError, match=r"account name .*: use letters, digits"):
        journal_path(tmp_path, name)
    assert journal_path(tmp_path, "acct-1.b_2").name == "acct-1.b_2.sqlite"


@pytest.mark.parametrize("name", ["m\n", "m<x>", "-m", "m/1", "a" * 101])
def test_model_names_match_whole_strings(name: str) -> None:
    from models.errors import SpecError
    from models.spec import ModelSpec
    from simulator.config import ConfigError, config_from_dict

    with pytest.raises(ConfigError, match=r"model.name: use letters, digits"):
        config_from_dict({"model": {"name": name}})
    with pytest.raises(SpecError, match=r"model name .*: use letters, digits"):
        ModelSpec.from_preset(name, "small")


@pytest.mark.parametrize("alias", ["prod\n", "prod x", "1prod", "<b>", "latest"])
def test_alias_names_match_whole_strings(alias: str, tmp_path: Path) -> None:
    from models.errors import RegistryError
    from models.registry import Registry

    with pytest.raises(RegistryError, match=r"alias .*: use letters, digits"):
        Registry(tmp_path).set_alias("m", 1, alias)
    assert not (tmp_path / "mlflow.db").exists()


def test_a_ticker_with_markup_is_refused_before_training() -> None:
    """It used to train every network and fail only at registration."""
    from models.errors import TrainingDataError
    from models.forecaster import train
    from models.spec import ModelSpec

    weeks = pd.date_range("2020-01-03", periods=60, freq="W-FRI")
    closes = pd.DataFrame({"A<B": np.linspace(10, 20, 60)}, index=weeks)
    spec = ModelSpec.from_preset("m", "small", window=4, max_epochs=1)
    with pytest.raises(TrainingDataError, match=r"ticker 'A<B': use upper-case letters"):
        train(closes, spec, weeks[40])


def test_data_fetch_refuses_a_strange_symbol_before_the_network(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["data", "fetch", "--tickers", "AAPL,<b>", "--start", "2020-01-01"]
    refused([*argv, "--end", "2021-01-01"], monkeypatch, capsys, r"--tickers: '<B>' is not a")
