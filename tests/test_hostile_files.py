"""Hostile files (issue 24, "Data loss and files outside their place" and "Tracebacks"):
``runs compare --out`` over files it did not write, a summary.json nested 100,000 deep, a TOML
config nested 50,000 deep, a 1 GB sparse CSV and a CSV holding NUL bytes.

Each case gets one ``error:`` line and exit 2 (or, in a listing, one line for the bad run
while the others are listed), and leaves every file as it was. The command line runs
in-process; files are real, in the test's own folders. No test touches a real device: a
FIFO stands in for ``/dev/full``.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

import simulator.runs
from simulator.config import MAX_CONFIG_BYTES, load_config
from simulator.data.sources import MAX_CSV_BYTES, read_price_csv
from simulator.errors import ConfigError, DataError
from simulator.rundir import MAX_RUN_CSV_BYTES
from simulator.runs import MARKER
from simulator.summary import MAX_JSON_BYTES
from tests.conftest import REPO
from tests.helpers import cli, error_line, make_run, served, weekly_returns

LONG = weekly_returns("2022-01-07", 40, seed=1)
SHORT = weekly_returns("2023-01-06", 30, seed=2)
#: JSON nested 100,000 deep: Python's parser raises RecursionError on it.
DEEP_JSON = "[" * 100_000 + "]" * 100_000

CONFIG = """
[data]
source = "csv"
path = "{path}"
tickers = ["MSFT"]
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
    """Run ``foliosim argv``; assert exit 2 and one ``error:`` line (no traceback) matching
    ``match``; return the line."""
    code = cli(argv, monkeypatch)
    line = error_line(capsys)
    assert code == 2, line
    assert match in line, line
    return line


def snapshot(folder: Path) -> dict[str, tuple[str, bytes | str]]:
    """Every entry under ``folder``: its kind and its bytes (a link: its target)."""
    out: dict[str, tuple[str, bytes | str]] = {}
    for path in sorted(folder.rglob("*")):
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            out[str(path)] = ("link", os.readlink(path))
        elif stat.S_ISREG(mode):
            out[str(path)] = ("file", path.read_bytes())
        else:
            out[str(path)] = ("fifo" if stat.S_ISFIFO(mode) else "dir", "")
    return out


# --- runs compare --out ------------------------------------------------------------------------


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    folder = tmp_path / "runs"
    make_run(folder / "a", LONG)
    make_run(folder / "b", SHORT, strategy_name="equal_weight")
    make_run(folder / "c", SHORT, strategy_name="momentum")
    return folder


def compare(runs: Path, out: Path, *names: str) -> list[str]:
    return ["runs", "compare", *(str(runs / n) for n in names or ("a", "b")), "--out", str(out)]


def test_compare_out_never_replaces_another_runs_summary(
    runs: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(runs)
    for victim in (runs / "c" / "summary.json", runs / "a" / "summary.json"):
        line = refused(compare(runs, victim), monkeypatch, capsys, f"{victim} exists and was not")
        assert "give --out a new file name" in line
    assert snapshot(runs) == before  # no byte changed, no temporary file left


def test_compare_out_never_replaces_a_users_file(
    runs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    for name, data in (("plan.html", b"<html>my plan</html>"), ("empty.html", b"")):
        (notes / name).write_bytes(data)
        refused(compare(runs, notes / name), monkeypatch, capsys, "was not written by")
        assert (notes / name).read_bytes() == data
    assert sorted(p.name for p in notes.iterdir()) == ["empty.html", "plan.html"]


def test_compare_out_never_writes_through_a_symlink(
    runs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A link to a page this command wrote is refused too: the link would become a file.
    own = tmp_path / "own.html"
    assert cli(compare(runs, own), monkeypatch) == 0
    capsys.readouterr()
    target = tmp_path / "target.txt"
    target.write_bytes(b"keep me")
    before = snapshot(tmp_path)
    for to in (target, own, tmp_path / "missing.html", runs / "a" / "summary.json"):
        link = tmp_path / f"link-to-{to.name}"
        link.symlink_to(to)
        before[str(link)] = ("link", str(to))
        refused(compare(runs, link), monkeypatch, capsys, "is a symbolic link")
    assert snapshot(tmp_path) == before


def test_compare_out_never_replaces_a_device_or_a_pipe(
    runs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # As root, `--out /dev/full` replaced the device node; a FIFO stands in for it here.
    fifo = tmp_path / "full"
    os.mkfifo(fifo)
    refused(compare(runs, fifo), monkeypatch, capsys, "is not a regular file")
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_compare_out_in_a_folder_that_takes_no_files_is_one_line(
    runs: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # /proc takes no new files, even from root: the temporary file cannot be made.
    if not Path("/proc/self").is_dir():
        pytest.skip("no /proc on this system")
    refused(compare(runs, Path("/proc/compare.html")), monkeypatch, capsys, "does not take new")


def test_compare_replaces_its_own_earlier_page(
    runs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "compare.html"
    assert cli(compare(runs, out, "a", "b"), monkeypatch) == 0
    first = out.read_text(encoding="utf-8")
    assert first.splitlines()[:2] == ["<!DOCTYPE html>", MARKER]
    assert "<th>b</th>" in first and "<th>c</th>" not in first
    assert cli(compare(runs, out, "a", "c"), monkeypatch) == 0
    second = out.read_text(encoding="utf-8")
    assert "<th>c</th>" in second and "<th>b</th>" not in second
    assert capsys.readouterr().err == ""
    assert [p.name for p in tmp_path.iterdir() if p.is_file()] == ["compare.html"]
    assert stat.S_IMODE(out.stat().st_mode) == 0o644


def test_a_file_that_appears_while_the_page_is_made_is_kept(
    runs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "compare.html"
    real_png = simulator.runs.png

    def png_then_a_file_appears(*args: Any, **kwargs: Any) -> str:
        out.write_bytes(b"written meanwhile")
        return real_png(*args, **kwargs)

    monkeypatch.setattr(simulator.runs, "png", png_then_a_file_appears)
    refused(compare(runs, out), monkeypatch, capsys, "exists and was not written by")
    assert out.read_bytes() == b"written meanwhile"
    assert [p.name for p in tmp_path.iterdir() if p.is_file()] == ["compare.html"]


# --- summary.json nested 100,000 deep ----------------------------------------------------------


@pytest.fixture
def hostile_runs(runs: Path) -> Path:
    """Good runs a, b, c and, between them, runs whose summary.json cannot be read."""
    deep = make_run(runs / "b-deep", SHORT)
    (deep / "summary.json").write_text(DEEP_JSON, encoding="utf-8")
    for name in ("config.toml", "weights.csv", "orders.csv"):  # all `report` asks for
        (deep / name).write_text("", encoding="utf-8")
    wide = make_run(runs / "b-deep-object", SHORT)
    (wide / "summary.json").write_text('{"a":' * 100_000 + "1" + "}" * 100_000)
    big = make_run(runs / "b-huge", SHORT)
    with (big / "summary.json").open("r+b") as handle:
        handle.truncate(MAX_JSON_BYTES + 1)  # sparse: no disk used
    digits = make_run(runs / "b-digits", SHORT)
    doc = json.loads((digits / "summary.json").read_text())
    (digits / "summary.json").write_text(json.dumps(doc)[:-1] + ', "x": ' + "9" * 5000 + "}")
    return runs


def test_runs_list_shows_a_bad_summary_as_one_line_and_the_others(
    hostile_runs: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(["runs", "list", str(hostile_runs), "--json"], monkeypatch) == 0
    rows = {row["run"]: row for row in json.loads(capsys.readouterr().out)}
    assert list(rows) == ["a", "b", "b-deep", "b-deep-object", "b-digits", "b-huge", "c"]
    assert rows["a"]["total_return"] == pytest.approx(float(np.prod(1 + LONG["strategy"]) - 1))
    assert rows["c"]["strategy"] == "momentum"
    assert "not valid JSON (nested too deeply)" in rows["b-deep"]["error"]
    assert "not valid JSON (nested too deeply)" in rows["b-deep-object"]["error"]
    assert "not valid JSON (Exceeds the limit (4300 digits)" in rows["b-digits"]["error"]
    assert "too large (64.0 MB, over the limit of 64 MB)" in rows["b-huge"]["error"]
    for row in rows.values():
        assert "\n" not in row.get("error", "")
    assert cli(["runs", "list", str(hostile_runs)], monkeypatch) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert "unreadable:" in captured.out and "momentum" in captured.out


def test_compare_and_report_refuse_a_deep_summary_in_one_line(
    hostile_runs: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "c.html"
    for bad in ("b-deep", "b-deep-object", "b-huge"):
        argv = compare(hostile_runs, out, "a", bad)
        refused(argv, monkeypatch, capsys, f"{hostile_runs / bad / 'summary.json'} is ")
    refused(["report", str(hostile_runs / "b-deep")], monkeypatch, capsys, "nested too deeply")
    assert not out.exists()
    assert not (hostile_runs / "b-deep" / "tearsheet.html").exists()


def test_a_huge_returns_csv_is_refused_before_it_is_read(
    runs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    returns = runs / "b" / "returns.csv"
    sparse(returns, returns.read_bytes(), MAX_RUN_CSV_BYTES + 1)
    started = time.monotonic()
    match = f"{returns} is too large (256.0 MB, over the limit of 256 MB)"
    refused(compare(runs, tmp_path / "c.html"), monkeypatch, capsys, match)
    assert time.monotonic() - started < 5
    assert not (tmp_path / "c.html").exists()


def test_the_web_lists_the_runs_beside_a_deep_summary(
    hostile_runs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    with served(tmp_path / "ws", hostile_runs, REPO) as base:
        api = httpx.get(f"{base}/api/runs", timeout=60)
        page = httpx.get(f"{base}/runs", timeout=60)
    assert api.status_code == 200, api.text
    rows = {row["run"]: row for row in api.json()}
    assert rows["c"]["strategy"] == "momentum"
    assert "nested too deeply" in rows["b-deep"]["error"]
    assert rows["b-deep"]["error"].startswith("b-deep/summary.json is not valid JSON (nested")
    assert str(tmp_path) not in api.text and str(hostile_runs / "b-deep") not in page.text
    assert page.status_code == 200, page.text
    assert "nested too deeply" in page.text and "momentum" in page.text


# --- a TOML config nested 50,000 deep ----------------------------------------------------------


DEEP_TOML = {
    "array": "[data]\ntickers = " + "[" * 50_000 + "]" * 50_000 + "\n",
    "inline table": "[data]\ntickers = " + "{a = " * 50_000 + "1" + "}" * 50_000 + "\n",
    # tomllib takes time growing with the square of a dotted key's parts (here over a minute).
    "dotted key": "[data]\n" + "x." * 50_000 + "y = 1\n",
    "table header": "[" + "x." * 50_000 + "y]\n",
}


@pytest.mark.parametrize("kind", list(DEEP_TOML))
@pytest.mark.parametrize("command", ["backtest", "audit"])
def test_a_deep_toml_config_is_one_line(
    kind: str,
    command: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "deep.toml"
    path.write_text(DEEP_TOML[kind], encoding="utf-8")
    out = tmp_path / "never"
    started = time.monotonic()
    argv = [command, str(path), *(["--out", str(out)] if command == "backtest" else [])]
    line = refused(argv, monkeypatch, capsys, f"{path}: ")
    assert "nested too deeply; write [section] tables" in line
    assert time.monotonic() - started < 5
    assert not out.exists()


def test_a_deep_set_value_and_a_huge_config_are_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    deep = "[" * 50_000 + "]" * 50_000
    plain = tmp_path / "plain.toml"
    plain.write_text('[data]\nsource = "bundled"\n', encoding="utf-8")
    argv = ["backtest", str(plain), "--set", f"data.tickers={deep}"]
    refused(argv, monkeypatch, capsys, "--set value '[[[[[[[[[[[[[[[[[[[[': not valid TOML: a")
    with pytest.raises(ConfigError, match="a dotted key of more than 64 parts"):
        load_config(None, ["data.tickers={" + "x." * 50_000 + "y = 1}"])
    huge = tmp_path / "huge.toml"
    with huge.open("wb") as handle:
        handle.write(b"[data]\n")
        handle.truncate(MAX_CONFIG_BYTES + 1)
    refused(["backtest", str(huge)], monkeypatch, capsys, "too large for a config (1.0 MB")
    fifo = tmp_path / "pipe.toml"
    os.mkfifo(fifo)
    refused(["audit", str(fifo)], monkeypatch, capsys, f"{fifo}: not a regular file")


def test_a_deep_profile_file_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    plain = tmp_path / "plain.toml"
    plain.write_text('[data]\nsource = "bundled"\n', encoding="utf-8")
    profile = tmp_path / "profile.toml"
    profile.write_text("[profile]\nexclude = " + "[" * 50_000 + "]" * 50_000 + "\n")
    argv = ["recommend", str(plain), "--profile", str(profile)]
    refused(argv, monkeypatch, capsys, f"--profile {profile}: not valid TOML: a value is nested")


def test_a_long_but_fair_config_still_loads(tmp_path: Path) -> None:
    """The guards refuse nothing a real config holds: dotted keys of a few parts, dots in
    strings and comments, a long list."""
    path = tmp_path / "ok.toml"
    tickers = ", ".join(f'"T{i}"' for i in range(2000))
    path.write_text(
        "# " + ".".join("abcdefghij" * 10) + "\n"
        f"data.tickers = [{tickers}]\n"
        'data.path = "../../a.b/c.d/e.f"\n'
        'backtest.strategy = "equal_weight"\n',
        encoding="utf-8",
    )
    cfg = load_config(path)
    assert cfg.data.tickers is not None
    assert len(cfg.data.tickers) == 2000 and cfg.data.path == "../../a.b/c.d/e.f"


# --- CSV price files: 1 GB sparse, NUL bytes, no header --------------------------------------


def data_folder(paper12: Path, folder: Path) -> Path:
    folder.mkdir()
    shutil.copy(paper12 / "IXIC.csv", folder / "IXIC.csv")
    shutil.copy(paper12 / "MSFT.csv", folder / "MSFT.csv")
    return folder


def sparse(path: Path, head: bytes, size: int) -> Path:
    """``head`` followed by NUL bytes up to ``size`` (a hole: no disk is used)."""
    with path.open("wb") as handle:
        handle.write(head)
        handle.truncate(size)
    return path


@pytest.mark.parametrize("header", [b"date,open,high,low,close,adj_close,volume\n", b""])
def test_a_1gb_sparse_csv_is_refused_at_once_as_too_large(
    header: bytes,
    paper12: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = data_folder(paper12, tmp_path / "data")
    sparse(data / "MSFT.csv", header, 1 << 30)
    config = tmp_path / "c.toml"
    config.write_text(CONFIG.format(path=data), encoding="utf-8")
    out = tmp_path / "never"
    started = time.monotonic()
    line = refused(["backtest", str(config), "--out", str(out)], monkeypatch, capsys, "MSFT.csv")
    assert time.monotonic() - started < 5  # it took 35 s, to say "missing column(s)"
    assert "file too large: 1,024 MB, over the limit of 200 MB" in line
    assert not out.exists()


def test_a_csv_with_nul_bytes_is_binary_data(
    paper12: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = data_folder(paper12, tmp_path / "data")
    text = (data / "MSFT.csv").read_bytes()
    lines = text.splitlines(keepends=True)
    (data / "MSFT.csv").write_bytes(b"".join(lines[:3]) + b"2000-01-06,\0\0\0\n" + text[-200:])
    config = tmp_path / "c.toml"
    config.write_text(CONFIG.format(path=data), encoding="utf-8")
    match = "MSFT.csv: line 4: binary data (a NUL byte at byte "
    refused(["backtest", str(config), "--out", str(tmp_path / "x")], monkeypatch, capsys, match)
    # Under the size limit, a header and NULs after it (a sparse 150 MB file): refused at once.
    big = sparse(tmp_path / "BIG.csv", b"date,open,high,low,close,adj_close,volume\n", 150 << 20)
    started = time.monotonic()
    with pytest.raises(DataError, match=r"BIG.csv: line 2: binary data \(a NUL byte at byte 42\)"):
        read_price_csv(big, "BIG")
    assert time.monotonic() - started < 5
    assert big.stat().st_size < MAX_CSV_BYTES


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (
            b"2024-01-02,1,1,1,1,1,100\n2024-01-03,1,1,1,1,1,100\n",
            "no header line: the first line ('2024-01-02,1,1,1,1,1,100') is data; add the header",
        ),
        (
            b"Date,Open,High,Low,Close,Volume\n2024-01-02,1,1,1,1,100\n",
            "the header is missing column(s) adj_close; expected header date,open,",
        ),
        (b"\xff\xfed\x00a\x00t\x00e\x00", "the file is UTF-16 text; save it as UTF-8"),
        (b"\xe9t\xe9,open\n", "line 1 is not UTF-8 text"),
        (b"\n\n  \n", "the file is empty"),
    ],
)
def test_a_csv_says_what_is_wrong_with_its_header(tmp_path: Path, body: bytes, match: str) -> None:
    path = tmp_path / "X.csv"
    path.write_bytes(body)
    with pytest.raises(DataError) as caught:
        read_price_csv(path, "X")
    assert match in str(caught.value)


def test_a_csv_header_with_a_bom_quotes_and_blank_lines_is_read(tmp_path: Path) -> None:
    path = tmp_path / "X.csv"
    path.write_bytes(
        b'\xef\xbb\xbf"date","open","high","low","close","adj_close","volume"\r\n'
        b"2024-01-02,1,2,1,1.5,1.5,100\r\n"
    )
    assert read_price_csv(path, "X")["close"].tolist() == [1.5]
    fifo = tmp_path / "P.csv"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match=r"P\.csv: not a regular file"):
        read_price_csv(fifo, "P")
