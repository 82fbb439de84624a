"""Hostile input: payloads and broken files at every boundary get one ``error:`` line, exit 2.

Each case is named after the hole it closes (issue 14, "Hardening"). The command line runs
in-process (``simulator.cli.main``); files are real, in the test's own folders.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import tomli_w

from tests.helpers import CHROMIUM, CHROMIUM_FLAGS, cli, require_chromium

REPO = Path(__file__).resolve().parents[1]

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


def refused(
    argv: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    match: str,
) -> str:
    """Run ``argv``; assert exit 2 and exactly one ``error:`` line matching ``match``."""
    code = cli(argv, monkeypatch)
    err = capsys.readouterr().err
    # Progress of the work done before the error (stderr is a log here: one line per phase,
    # "1/N ..." and "1/N: 52 weeks in 0.1 s") may come first; the error is the last line and
    # the only one that says error.
    lines = [line for line in err.split("\n") if line.strip()]
    assert code == 2, err
    assert lines and lines[-1].startswith("error: "), err
    assert sum(line.startswith("error") for line in lines) == 1, err
    assert all(_PROGRESS.fullmatch(line) for line in lines[:-1]), err
    assert "Traceback" not in err
    assert re.search(match, lines[-1]), lines[-1]
    return lines[-1]


#: The lines a command prints to a log while it works (clikit.Reporter).
_PROGRESS = re.compile(r"(1/N|backtest \S+|baseline \S+|tear sheet)( \.\.\.|: .* in [\d.]+ s)")


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
    from simulator.accounts import journal_path
    from simulator.errors import ConfigError

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


# --- tracebacks that became one line: config -------------------------------------------------


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("inf", r"backtest.cash: Input should be a finite number"),
        ("1e400", r"backtest.cash: Input should be a finite number"),
        ("nan", r"backtest.cash: Input should be a finite number"),
        ("1", r"backtest.cash: Input should be greater than or equal to 1000 \(got 1\)"),
        ("1e300", r"backtest.cash: Input should be less than or equal to 1000000000000"),
    ],
)
def test_cash_that_sizing_cannot_count_is_refused(
    config: Path,
    tmp_path: Path,
    value: str,
    match: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """inf and 1e400 overflowed whole-share sizing; a cash of 1 crashed QuantStats."""
    argv = ["backtest", str(config), "--out", str(tmp_path / "r"), "--set"]
    refused([*argv, f"backtest.cash={value}"], monkeypatch, capsys, match)


def test_a_section_that_is_not_a_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "oops.toml"
    path.write_text('data = "oops"\n')
    refused(
        ["backtest", str(path), "--set", "data.source=csv"],
        monkeypatch,
        capsys,
        r"--set 'data.source=csv': the config sets data = 'oops', not a \[data\] table",
    )
    refused(
        ["backtest", str(path)],
        monkeypatch,
        capsys,
        r"oops.toml: data must be a \[data\] table of key = value lines \(got 'oops'\)$",
    )


def test_an_unknown_section_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "sec.toml"
    path.write_text("[dta]\nsource = 'csv'\n")
    refused(
        ["backtest", str(path)],
        monkeypatch,
        capsys,
        r"sec.toml: unknown section \[dta\] \(did you mean 'data'\?\); the sections are \[data\]",
    )


# --- tracebacks that became one line: data ---------------------------------------------------


def edited_csv(paper12: Path, folder: Path, edit: str) -> Path:
    """A data folder of MSFT (edited) and IXIC."""
    folder.mkdir()
    shutil.copy(paper12 / "IXIC.csv", folder / "IXIC.csv")
    lines = (paper12 / "MSFT.csv").read_text().splitlines()
    for i, line in enumerate(lines[1:], start=1):
        date, rest = line.split(",", 1)
        if edit == "utc":
            lines[i] = f"{date}T00:00:00+00:00,{rest}"
        elif edit == "mixed":
            lines[i] = f"{date} 16:00:00{'-04:00' if i % 2 else '-05:00'},{rest}"
        elif edit in ("1e-300", "1e300") and date == "2022-09-12":
            lines[i] = ",".join([date, *[edit] * 5, rest.rsplit(",", 1)[1]])
        elif edit == "ragged" and date == "2022-09-12":
            lines[i] = f"{line},1,2"
    (folder / "MSFT.csv").write_text("\n".join(lines) + "\n")
    return folder


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        ("utc", r"MSFT.csv: line 2: date '2000-01-03T00:00:00\+00:00' carries a time zone; "),
        ("mixed", r"MSFT.csv: line 2: date '2000-01-03 16:00:00-04:00' carries a time zone; "),
        ("1e-300", r"MSFT has a price of 1e-300 on 2022-09-12, outside 1e-06..1e\+09; fix or"),
        ("1e300", r"MSFT has a price of 1e\+300 on 2022-09-12, outside 1e-06..1e\+09; fix or"),
        # pandas' message ends in a newline: the error is still one line.
        ("ragged", r"MSFT.csv: not a readable CSV file \(Error tokenizing data. C error: Exp"),
    ],
)
def test_csv_rows_no_market_makes_are_one_line(
    paper12: Path,
    config: Path,
    tmp_path: Path,
    edit: str,
    match: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = edited_csv(paper12, tmp_path / "data", edit)
    out = tmp_path / "never"
    argv = ["backtest", str(config), "--out", str(out), "--set", f"data.path={data}"]
    refused([*argv, "--set", "data.tickers=MSFT"], monkeypatch, capsys, match)
    assert not out.exists()


def test_a_strategy_that_never_holds_a_position_is_refused_before_the_tear_sheet(
    paper12: Path,
    config: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Cash too small for one whole share: QuantStats' regression used to crash on it."""
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(paper12 / "IXIC.csv", data / "IXIC.csv")
    frame = pd.read_csv(paper12 / "MSFT.csv")
    for col in ("open", "high", "low", "close", "adj_close"):
        frame[col] = frame[col] * 1000  # ~250,000 a share
    frame.to_csv(data / "DEAR.csv", index=False)
    out = tmp_path / "never"
    argv = ["backtest", str(config), "--out", str(out), "--set", f"data.path={data}"]
    refused(
        [*argv, "--set", "data.tickers=DEAR", "--set", "backtest.cash=1000"],
        monkeypatch,
        capsys,
        r"the strategy's weekly return is 0 every week: it never held a position \(with cash "
        r"1,000, .*raise backtest.cash",
    )
    assert not out.exists()


# --- tracebacks that became one line: paths --------------------------------------------------


def out_paths(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """--out values that cannot become a run directory, and the error each gets."""
    empty = tmp_path / "empty"
    empty.mkdir()
    (tmp_path / "to-empty").symlink_to(empty)
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    (tmp_path / "a-file").write_text("x")
    return {
        "symlink to an empty folder": (tmp_path / "to-empty", r"to-empty is a symbolic link; "),
        "dangling symlink": (tmp_path / "dangling", r"dangling is a symbolic link; "),
        "under a file": (tmp_path / "a-file" / "x" / "y", r"a-file is not a folder"),
        "/proc/self/x": (Path("/proc/self/x"), r"/proc/self does not take new folders \("),
    }


@pytest.mark.parametrize(
    "case", ["symlink to an empty folder", "dangling symlink", "under a file", "/proc/self/x"]
)
def test_an_unusable_out_is_refused_before_the_backtest(
    config: Path,
    tmp_path: Path,
    case: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import simulator.backtest

    def never(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the backtest ran before --out was checked")

    monkeypatch.setattr(simulator.backtest, "run_backtest", never)
    out, match = out_paths(tmp_path)[case]
    refused(["backtest", str(config), "--out", str(out)], monkeypatch, capsys, match)
    assert not (tmp_path / "empty").exists() or not any((tmp_path / "empty").iterdir())
    assert not (tmp_path / "nowhere").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.fixture
def ew_account(
    config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> str:
    """An equal-weight paper account 'ew' with 4 recorded weeks."""
    assert cli(["replay", "start", str(config), "--account", "ew"], monkeypatch) == 0
    assert cli(["replay", "step", "--account", "ew", "--weeks", "4"], monkeypatch) == 0
    capsys.readouterr()
    return "ew"


@pytest.mark.parametrize(
    "case", ["symlink to an empty folder", "dangling symlink", "under a file", "/proc/self/x"]
)
def test_an_unusable_out_is_refused_before_the_account_report(
    ew_account: str,
    tmp_path: Path,
    case: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import simulator.account_report

    def never(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the account's runs were made before --out was checked")

    monkeypatch.setattr(simulator.account_report, "account_result", never)
    out, match = out_paths(tmp_path)[case]
    argv = ["replay", "status", "--account", ew_account, "--html", "--out", str(out)]
    code = cli(argv, monkeypatch)
    captured = capsys.readouterr()
    assert code == 2
    assert "equity" in captured.out  # the status itself was printed
    lines = [line for line in captured.err.split("\n") if line.strip()]
    assert len(lines) == 1 and re.search(match, lines[0]), captured.err


def test_a_workspace_that_is_a_file(
    config: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ws = tmp_path / "ws-file"
    ws.write_text("not a folder")
    monkeypatch.setenv("FOLIOSIM_WORKSPACE", str(ws))
    match = r"the workspace .*ws-file \(FOLIOSIM_WORKSPACE\) is a file, not a folder; point"
    for argv in (
        ["models", "list"],
        ["replay", "list"],
        ["replay", "start", str(config), "--account", "a"],
        ["train", str(config)],
    ):
        refused(argv, monkeypatch, capsys, match)
    assert ws.read_text() == "not a folder"


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Callable[[Path], None]]:
    """Make a folder read-only for everyone, root included: a read-only bind mount.

    Skipped where mounts are not allowed (not root). Permissions alone do not stop root.
    """
    mounted: list[Path] = []

    def make(folder: Path) -> None:
        done = subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot bind-mount here ({done.stderr.decode().strip()})")
        mounted.append(folder)
        remount = ["mount", "-o", "remount,ro,bind", str(folder)]
        subprocess.run(remount, check=True, capture_output=True)

    yield make
    for folder in reversed(mounted):
        subprocess.run(["umount", str(folder)], check=True, capture_output=True)


def test_a_read_only_workspace(
    ew_account: str,
    config: Path,
    _workspace: Path,
    read_only: Callable[[Path], None],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Writers are refused before any work; status still reads a healthy account, and never
    calls it damaged or suggests reset."""
    journal = _workspace / "replay" / "ew.sqlite"
    before = journal.read_bytes()
    read_only(_workspace)
    not_writable = r"writes to the workspace .*, but .* is not writable \(Read-only file system\)"
    refused(
        ["replay", "step", "--account", "ew"], monkeypatch, capsys, "replay step " + not_writable
    )
    refused(
        ["replay", "start", str(config), "--account", "two"],
        monkeypatch,
        capsys,
        "replay start " + not_writable,
    )
    refused(["train", str(config)], monkeypatch, capsys, "train " + not_writable)
    model = ["--set", "backtest.strategy=lstm_signal", "--set", "model.preset=small"]
    refused(
        ["backtest", str(config), "--out", str(_workspace.parent / "r"), *model],
        monkeypatch,
        capsys,
        not_writable,
    )

    assert cli(["replay", "status", "--account", "ew"], monkeypatch) == 0
    out, err = capsys.readouterr()
    assert "4 week(s) 2022-06-24..2022-07-15: equity" in out
    assert "damaged" not in out + err and "reset" not in out + err
    assert cli(["replay", "list"], monkeypatch) == 0
    out = capsys.readouterr().out
    assert "unreadable" not in out and "equal_weight" in out
    assert journal.read_bytes() == before


def test_the_library_refuses_a_step_on_a_read_only_journal(
    ew_account: str, _workspace: Path, read_only: Callable[[Path], None]
) -> None:
    from simulator.errors import JournalError
    from simulator.stepping import step

    read_only(_workspace)
    with pytest.raises(JournalError, match=r"cannot change account 'ew': .* is not writable"):
        step(_workspace, "ew")


# --- journal damage --------------------------------------------------------------------------


def edit_journal(path: Path, sql: str) -> None:
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(sql)
    conn.close()


@pytest.mark.parametrize(
    ("sql", "match"),
    [
        (
            "UPDATE weeks SET equity = 'abc' WHERE seq = 3",
            r"ew.sqlite is damaged: weeks.equity holds 'abc' \(text\) in row 3, not a number; "
            r"restore the file from a backup, or delete the account with `foliosim replay reset",
        ),
        (
            "UPDATE holdings SET shares = x'00' WHERE seq = 2",
            r"ew.sqlite is damaged: holdings.shares holds X'00' \(blob\) in row \d+, not a",
        ),
        (
            "UPDATE orders SET price = 'NaN?' WHERE n = 0",
            r"ew.sqlite is damaged: orders.price holds 'NaN\?' \(text\) in row \d+, not a",
        ),
    ],
)
def test_a_journal_number_that_is_not_a_number(
    ew_account: str,
    _workspace: Path,
    sql: str,
    match: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """equity = 'abc' crashed status and step; now both refuse, and list shows the others."""
    journal = _workspace / "replay" / "ew.sqlite"
    edit_journal(journal, sql)
    damaged = journal.read_bytes()
    refused(["replay", "status", "--account", "ew"], monkeypatch, capsys, match)
    refused(["replay", "step", "--account", "ew"], monkeypatch, capsys, match)
    assert journal.read_bytes() == damaged


def test_one_damaged_account_does_not_break_the_list(
    ew_account: str,
    config: Path,
    _workspace: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli(["replay", "start", str(config), "--account", "fine"], monkeypatch) == 0
    folder = _workspace / "replay"
    edit_journal(folder / "ew.sqlite", "UPDATE weeks SET equity = 'abc' WHERE seq = 3")
    (folder / "junk.sqlite").write_text("not a database")
    shutil.copy(folder / "fine.sqlite", folder / "bad name.sqlite")  # no account has it
    capsys.readouterr()
    assert cli(["replay", "list", "--json"], monkeypatch) == 0
    rows = {row["account"]: row for row in json.loads(capsys.readouterr().out)}
    assert set(rows) == {"bad name", "ew", "fine", "junk"}
    assert rows["fine"]["strategy"] == "equal_weight" and rows["fine"]["weeks_processed"] == 0
    assert re.match(r".*ew.sqlite is damaged: weeks.equity holds 'abc'", rows["ew"]["error"])
    assert re.match(r".*junk.sqlite is (damaged or )?not a", rows["junk"]["error"])
    assert rows["bad name"]["error"].startswith("account name 'bad name': use letters")
    assert cli(["replay", "list"], monkeypatch) == 0
    out = capsys.readouterr().out
    assert "unreadable:" in out and "equal_weight" in out


# --- the registry ----------------------------------------------------------------------------

#: A script that trains a tiny model and registers it in the workspace argv[1]. argv[2]:
#: "kill" SIGKILLs itself in the middle of the registration; "wait:<file>" waits for <file>
#: to appear first (to start several registrations at once); "fsize:<bytes>" limits the size
#: of every file it writes (a full disk), and opens the store only.
REGISTER = """
import os, signal, sys, time, resource
from pathlib import Path
import numpy as np, pandas as pd
import mlflow
from models.errors import RegistryError
from models.forecaster import train
from models.registry import Registry
from models.spec import ModelSpec

mode = sys.argv[2]
if mode.startswith("fsize:"):
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG)
    limit = int(mode[6:])
    if limit:  # 0: no limit
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    try:
        Registry(Path(sys.argv[1])).client
    except RegistryError as err:
        sys.exit(f"error: {err}")
    sys.exit(0)
weeks = pd.date_range("2020-01-03", periods=60, freq="W-FRI")
closes = pd.DataFrame({"AAA": 10 + np.sin(np.arange(60.0))}, index=weeks)
spec = ModelSpec.from_preset("m", "small", window=4, max_epochs=1, hidden=4, threads=1)
model, report = train(closes, spec, weeks[50])
if mode == "kill":
    def die(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)
    mlflow.MlflowClient.log_model_artifacts = die
if mode.startswith("wait:"):
    while not Path(mode[5:]).exists():
        time.sleep(0.01)
print(Registry(Path(sys.argv[1])).register(model, report).ref)
"""


def register(workspace: Path, mode: str = "ok") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    argv = [sys.executable, "-c", REGISTER, str(workspace), mode]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=240)


def statuses(workspace: Path) -> tuple[list[str], list[int]]:
    """The runs' statuses and the logged models' (1 pending, 2 ready, 3 failed)."""
    conn = sqlite3.connect(workspace / "mlflow.db")
    runs = [r[0] for r in conn.execute("SELECT status FROM runs ORDER BY start_time")]
    models = [
        r[0]
        for r in conn.execute("SELECT status FROM logged_models ORDER BY creation_timestamp_ms")
    ]
    conn.close()
    return runs, models


def test_a_full_disk_while_the_store_is_created_leaves_no_store(tmp_path: Path) -> None:
    """It left mlflow.db half-migrated and unusable for good (_alembic_tmp_experiments)."""
    ws = tmp_path / "ws-full"
    done = register(ws, "fsize:200000")
    assert done.returncode == 1
    assert re.fullmatch(
        r"error: could not create the model registry .*mlflow.db \(disk I/O error\); nothing was "
        r"left behind: free some disk space or fix the folder, and run again\n",
        done.stderr,
    ), done.stderr
    assert sorted(p.name for p in ws.iterdir()) == ["mlflow.db.lock"]
    # With space again, the store is made whole.
    assert register(ws, "fsize:0").returncode == 0
    assert register(ws).stdout == "m/1\n"


def test_concurrent_registrations_into_a_fresh_workspace_both_succeed(tmp_path: Path) -> None:
    """One of two used to fail after training ("Online migration expected to match one row")."""
    ws = tmp_path / "ws-race"
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", REGISTER, str(ws), f"wait:{go}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(3)
    ]
    time.sleep(1.0)
    go.touch()
    outs = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    assert sorted(out for out, _ in outs) == ["m/1\n", "m/2\n", "m/3\n"]
    assert statuses(ws) == (["FINISHED"] * 3, [2, 2, 2])


def test_a_killed_registration_is_cleaned_up_by_the_next(tmp_path: Path) -> None:
    ws = tmp_path / "ws-kill"
    killed = register(ws, "kill")
    assert killed.returncode == -signal.SIGKILL
    assert [p.name.split("-")[0] for p in (ws / "tmp").iterdir()] == ["version"]
    assert statuses(ws) == (["RUNNING"], [1])
    assert register(ws).stdout == "m/1\n"
    assert list((ws / "tmp").iterdir()) == []
    assert statuses(ws) == (["FAILED", "FINISHED"], [3, 2])


def test_a_live_registrations_scratch_folder_is_left_alone(tmp_path: Path) -> None:
    import fcntl

    from models.registry import clean_scratch

    scratch = tmp_path / "tmp"
    live = scratch / "version-1-abcdefgh"  # pid 1 is alive, its folder is locked
    young = scratch / f"version-{os.getpid()}-abcdefgh"  # alive, not locked yet
    dead = scratch / "version-999999999-abcdefgh"  # no such process
    for folder in (live, young, dead):
        (folder / "files").mkdir(parents=True)
    held = os.open(live, os.O_RDONLY)
    fcntl.flock(held, fcntl.LOCK_EX)
    try:
        assert clean_scratch(scratch) == [dead]
        assert live.is_dir() and young.is_dir()
    finally:
        os.close(held)


@pytest.fixture(scope="session")
def tiny_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with one version m/1 of a tiny model, registered once per session."""
    ws = tmp_path_factory.mktemp("tiny-registry") / "ws"
    assert register(ws).stdout == "m/1\n"
    return ws


@pytest.fixture
def registered(tiny_registry: Path, _workspace: Path) -> Path:
    """The test's workspace, a copy of :func:`tiny_registry` (its paths moved with it)."""
    shutil.copytree(tiny_registry, _workspace)
    old, new = tiny_registry.as_uri(), _workspace.as_uri()
    conn = sqlite3.connect(_workspace / "mlflow.db")
    with conn:
        for table, column in (
            ("experiments", "artifact_location"),
            ("runs", "artifact_uri"),
            ("logged_models", "artifact_location"),
        ):
            conn.execute(f"UPDATE {table} SET {column} = replace({column}, ?, ?)", (old, new))
    conn.close()
    return _workspace


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        ("garbage", r"mlflow.db is not an MLflow store \(not an SQLite database\); move it away"),
        ("truncated", r"mlflow.db is damaged \(database disk image is malformed\); move it"),
        ("half", r"mlflow.db is a half-created MLflow store \(an interrupted migration\); move"),
    ],
)
def test_a_broken_store_is_one_line(
    registered: Path,
    damage: str,
    match: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    db = registered / "mlflow.db"
    if damage == "garbage":
        db.write_bytes(b"\x00garbage" * 100)
    elif damage == "truncated":
        db.write_bytes(db.read_bytes()[:50_000])
    else:
        conn = sqlite3.connect(db)
        conn.execute("CREATE TABLE _alembic_tmp_experiments (x)")
        conn.commit()
        conn.close()
    broken = db.read_bytes()
    for argv in (["models", "list"], ["models", "show", "m"]):
        refused(argv, monkeypatch, capsys, match)
    assert db.read_bytes() == broken  # left for the user to inspect


@pytest.mark.parametrize(
    ("uri", "match"),
    [
        ("{config}", r"registry URI '.*base.toml' is a folder path, MLflow's file store, which"),
        ("sqlite:///{config}", r"base.toml is not an MLflow store \(not an SQLite database\); "),
        ("file://{config}", r"registry URI 'file://.*base.toml' is a folder path"),
    ],
)
def test_a_registry_uri_at_a_non_database(
    config: Path,
    uri: str,
    match: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = config.read_text()
    argv = ["models", "list", "--registry-uri", uri.format(config=config)]
    refused(argv, monkeypatch, capsys, match)
    assert config.read_text() == text


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("window", "x", r"m/1: its tag window = 'x' is not a number \(the store was edited\)"),
        ("test_weeks", "-1", r"m/1: its tag test_weeks = '-1' is not a number"),
        ("test_mse_ratio", "abc", r"m/1: its tag test_mse_ratio = 'abc' is not a number"),
        ("train_end", "soon", r"m/1: its tag train_end = 'soon' is not a date YYYY-MM-DD"),
    ],
)
def test_an_edited_version_tag_is_one_line(
    registered: Path,
    key: str,
    value: str,
    match: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    conn = sqlite3.connect(registered / "mlflow.db")
    conn.execute("UPDATE model_version_tags SET value = ? WHERE key = ?", (value, key))
    conn.commit()
    conn.close()
    if key == "train_end":  # read by point-in-time selection (backtests, paper accounts)
        from models.errors import RegistryError
        from models.registry import Registry

        with pytest.raises(RegistryError, match=match):
            Registry(registered).as_of("m", "2021-06-30")
    else:
        refused(["models", "list"], monkeypatch, capsys, match)


def version_folder(workspace: Path) -> Path:
    return next((workspace / "mlartifacts" / "m" / "models").glob("m-*/artifacts"))


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        ("config.json", r"config.json or scaler.json in .* differ from the registered version"),
        ("scaler.json", r"config.json or scaler.json in .* differ from the registered version"),
        ("weights", r"weights in .* differ from the registered version \(checksum mismatch\)"),
        ("no metrics.json", r"model file missing: .*metrics.json$"),
        ("garbage metrics.json", r"model file .*metrics.json is not valid JSON \("),
        ("empty metrics.json", r"metrics.json lacks its test metrics or training records; retrain"),
    ],
)
def test_models_show_checks_every_file_predict_checks(
    registered: Path,
    edit: str,
    match: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """It said "integrity: ok" for an edited config.json or scaler.json, and exited 0 on
    "weights changed"; a missing metrics.json was a traceback."""
    folder = version_folder(registered)
    if edit in ("config.json", "scaler.json"):
        with (folder / edit).open("a") as handle:
            handle.write(" ")
    elif edit == "weights":
        path = folder / "weights" / "AAA.safetensors"
        data = bytearray(path.read_bytes())
        data[-1] ^= 1
        path.write_bytes(bytes(data))
    elif edit == "no metrics.json":
        (folder / "metrics.json").unlink()
    elif edit == "garbage metrics.json":
        (folder / "metrics.json").write_text("{oops")
    else:
        (folder / "metrics.json").write_text("{}")
    for argv in (["models", "show", "m/1"], ["models", "show", "m", "--json"]):
        refused(argv, monkeypatch, capsys, r"^error: m/1 fails its integrity check: .*" + match)


@pytest.mark.parametrize("location", ["http://127.0.0.1:9/files", "file:///etc", "/tmp"])
def test_an_artifact_location_outside_the_workspace_is_refused(
    registered: Path,
    location: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """predict used to download from whatever host the store named."""
    conn = sqlite3.connect(registered / "mlflow.db")
    conn.execute("UPDATE logged_models SET artifact_location = ?", (location,))
    conn.commit()
    conn.close()
    match = (
        rf"the files of m/1 are registered at '{re.escape(location)}', outside the workspace; "
        r"refusing to read them"
    )
    refused(["models", "show", "m/1"], monkeypatch, capsys, match)
    refused(["models", "predict", "m/1", "--as-of", "2021-03-05"], monkeypatch, capsys, match)
    assert not (registered / "model-cache").exists()


# --- bad data that used to pass silently -----------------------------------------------------


def test_a_risk_free_series_that_ends_before_the_backtest_is_refused(
    paper12: Path,
    config: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """DGS2 ending in 2021 was used stale for every later week."""
    data = copy_data(paper12, tmp_path / "data", ["AAPL", "MSFT", "JPM", "IXIC"])
    dgs2 = pd.read_csv(paper12 / "DGS2.csv")
    dgs2[dgs2["date"] <= "2021-12-31"].to_csv(data / "DGS2.csv", index=False)
    out = tmp_path / "never"
    argv = ["backtest", str(config), "--out", str(out), "--set", f"data.path={data}"]
    refused(
        [*argv, "--set", "report.risk_free=DGS2"],
        monkeypatch,
        capsys,
        r"the risk-free series DGS2 ends 2021-12-31, before the data's last week 2023-06-30; "
        r"extend its file, or give report.risk_free as an annual fraction",
    )
    assert not out.exists()
    # Ending within two weeks of the data is a publication lag, not a stale series.
    dgs2[dgs2["date"] <= "2023-06-20"].to_csv(data / "DGS2.csv", index=False)
    assert cli([*argv, "--set", "report.risk_free=DGS2"], monkeypatch) == 0


# --- the tear sheet in a real browser --------------------------------------------------------

#: A payload that marks the page if it ever runs: the DOM dump then shows the attribute.
MARK = "document.body.setAttribute('data-pwned','1');document.title='pwned'"
SCRIPTS = [
    f'<img src=x onerror="{MARK}">',
    f"<script>{MARK}</script>",
    f"<svg onload={MARK}>",
]


def render(page: Path, tmp_path: Path) -> tuple[str, list[str]]:
    """``page`` opened by headless Chromium: the DOM after its scripts ran, and the console
    messages (errors included)."""
    profile = tmp_path / f"chromium-{page.parent.name[:8]}-{len(list(tmp_path.iterdir()))}"
    argv = [
        str(CHROMIUM),
        *CHROMIUM_FLAGS,
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
        "--dump-dom",
        page.as_uri(),
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return done.stdout, console


def assert_no_payload_ran(dom: str, console: list[str], title: str) -> None:
    assert "data-pwned" not in re.sub(r"&#39;data-pwned&#39;|'data-pwned'", "", dom)
    assert re.search(r"<title>(.*?)</title>", dom, re.S)[1] == title  # type: ignore[index]
    assert console == []  # QuantStats' onload="save()" error is gone too (issue 15)


@pytest.mark.slow
def test_tear_sheets_run_no_payload_in_a_real_browser(
    paper12: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Every user-controlled string that still gets through validation (the data folder's
    path, the config file's name, the run folder's name, an account name at the edge of its
    character set) is a script payload; the tear sheets of a backtest and of a paper account
    run none of them in headless Chromium, and the console has no error of ours. The names
    that could carry markup are refused before any work."""
    require_chromium()
    # The harness itself: a page that does run the payload is caught.
    control = tmp_path / "control" / "page.html"
    control.parent.mkdir()
    control.write_text(f"<html><head><title>t</title></head><body>{SCRIPTS[0]}</body></html>")
    dom, _ = render(control, tmp_path)
    assert 'data-pwned="1"' in dom and "<title>pwned</title>" in dom

    data = copy_data(paper12, tmp_path / SCRIPTS[0], ["AAPL", "MSFT", "JPM", "IXIC", "DGS2"])
    config = tmp_path / f"{SCRIPTS[1].replace('/', '')}.toml"
    raw = tomllib.loads(BASE.format(path="."))
    raw["data"]["path"] = str(data)  # quotes and markup: tomli_w escapes them for TOML
    raw["report"] = {"risk_free": "DGS2"}
    config.write_text(tomli_w.dumps(raw))
    for field, payload in [("data.benchmark", SCRIPTS[2]), ("data.tickers", SCRIPTS[0])]:
        refused(
            ["backtest", str(config), "--set", f"{field}={payload}"],
            monkeypatch,
            capsys,
            rf"{field}: .* is not a ticker name",
        )

    run = tmp_path / SCRIPTS[2]
    assert cli(["backtest", str(config), "--out", str(run)], monkeypatch) == 0
    dom, console = render(run / "tearsheet.html", tmp_path)
    assert_no_payload_ran(dom, console, "foliosim: equal_weight vs IXIC")

    account = "x" + "._-" * 21  # 64 characters, every allowed punctuation mark
    assert cli(["replay", "start", str(config), "--account", account], monkeypatch) == 0
    assert cli(["replay", "step", "--account", account, "--weeks", "6"], monkeypatch) == 0
    sheet = tmp_path / f"{SCRIPTS[0]}-replay"
    argv = ["replay", "status", "--account", account, "--html", "--out", str(sheet)]
    assert cli(argv, monkeypatch) == 0
    capsys.readouterr()
    dom, console = render(sheet / "tearsheet.html", tmp_path)
    assert_no_payload_ran(dom, console, "foliosim: equal_weight vs IXIC")
    assert account in dom


def test_the_explanations_section_runs_no_payload_in_a_real_browser(tmp_path: Path) -> None:
    """Every string of explanations.json that reaches the tear sheet's Explanations section
    (a tampered file: tickers, weeks, features, the seed) is a script payload; none runs."""
    require_chromium()
    from simulator.report import standalone_page
    from simulator.sections import explanations_html

    position = {
        "ticker": SCRIPTS[2],
        "target": 0.3,
        "prediction": 0.01,
        "baseline_prediction": 0.0,
        "input_weeks": [SCRIPTS[0]] * 3,
        "attributions": [[0.001], [0.0], [-0.001]],
        "attention": [0.2, 0.3, 0.5],
    }
    perm = {"feature": SCRIPTS[2], "mse": 0.1, "mse_shuffled": 0.2}
    perm |= {"strategy_return": 0.1, "strategy_return_shuffled": 0.05}
    doc = {
        "week": SCRIPTS[0],
        "features": [SCRIPTS[1]],
        "positions": [position],
        "permutation": {"seed": SCRIPTS[1], "weeks": SCRIPTS[0], "features": [perm]},
    }
    page = tmp_path / "explained" / "page.html"
    page.parent.mkdir()
    page.write_text(standalone_page(explanations_html(doc), title="t"), encoding="utf-8")
    dom, console = render(page, tmp_path)
    assert_no_payload_ran(dom, console, "t")
    assert "Explanations" in dom


# --- leftovers of killed runs ----------------------------------------------------------------


@pytest.mark.slow
def test_leftovers_of_a_killed_backtest_are_removed_by_the_next(
    config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGKILL while the tear sheet is drawn leaves `.run.*` beside the run directory and a
    foliosim-qs-* folder in the temporary directory; the next backtest removes both."""
    runs, scratch = tmp_path / "runs", tmp_path / "scratch"
    scratch.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO), "TMPDIR": str(scratch), "MPLBACKEND": "Agg"}
    argv = [sys.executable, "-m", "simulator.cli", "backtest", str(config)]
    proc = subprocess.Popen(
        [*argv, "--out", str(runs / "first")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while not (list(runs.glob(".first.*")) and list(scratch.glob("foliosim-qs-*"))):
        assert proc.poll() is None and time.monotonic() < deadline, "never reached the tear sheet"
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    assert len(list(runs.glob(".first.*"))) == 1 and len(list(scratch.glob("foliosim-qs-*"))) == 1

    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    assert cli(["backtest", str(config), "--out", str(runs / "second")], monkeypatch) == 0
    assert sorted(p.name for p in runs.iterdir()) == [".foliosim.lock", "second"]
    assert [p.name for p in scratch.iterdir()] == [".foliosim.lock"]
    assert (runs / "second" / "tearsheet.html").is_file()


def test_a_run_written_from_python_keeps_its_folders_through_a_clean_up(
    config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """write_run and the tear sheet hold the folders' locks themselves, not only the CLI: a
    script's run survives another process cleaning up killed runs' leftovers meanwhile."""
    import quantstats

    import simulator.report as report
    from simulator.backtest import run_backtest
    from simulator.config import load_config
    from simulator.leftovers import QS_TEMP, RUN_TEMP, RUN_TEMP_FILES, clean
    from simulator.report import write_run

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    removed: list[Path] = []
    real_html, real_tearsheet = quantstats.reports.html, report.write_tearsheet

    def html(*args: Any, **kwargs: Any) -> Any:  # the clean-up runs while QuantStats draws
        removed.extend(clean(scratch, QS_TEMP))
        return real_html(*args, **kwargs)

    def tearsheet(run_dir: Path) -> Path:  # ... and while the run's folder is being written
        removed.extend(clean(run_dir.parent, RUN_TEMP, RUN_TEMP_FILES))
        return real_tearsheet(run_dir)

    monkeypatch.setattr(quantstats.reports, "html", html)
    monkeypatch.setattr(report, "write_tearsheet", tearsheet)
    result = run_backtest(load_config(config, ["report.baselines="]), tmp_path / "ws")
    path = write_run(result, tmp_path / "runs" / "scripted")
    assert removed == [] and (path / "tearsheet.html").is_file()


def test_leftovers_are_kept_while_another_run_writes(tmp_path: Path) -> None:
    from simulator.leftovers import QS_TEMP, RUN_TEMP, RUN_TEMP_FILES, clean, writing

    temp = tmp_path / ".run.abcd_123"
    temp.mkdir()
    (temp / "summary.json").write_text("{}")
    qs = tmp_path / "foliosim-qs-x1y2z3w4"
    qs.mkdir()
    mine = tmp_path / ".config.backup1"  # a user's folder of that shape, holding other files
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    with writing(tmp_path):  # a live run writes here
        assert clean(tmp_path, RUN_TEMP, RUN_TEMP_FILES) == []
        assert clean(tmp_path, QS_TEMP) == []
    assert clean(tmp_path, RUN_TEMP, RUN_TEMP_FILES) == [temp]
    assert clean(tmp_path, QS_TEMP) == [qs]
    assert (mine / "notes.txt").read_text() == "keep"
