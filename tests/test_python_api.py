"""``import foliosim``: the Python API runs the command line's functions (docs/python.md).

The worked example of docs/python.md is run block by block and its printed output compared
with the output written under each block; a backtest through the API equals the command line's
run directory; configs, overrides and errors are read and worded as the command line reads and
words them.
"""

from __future__ import annotations

import ast
import contextlib
import datetime as dt
import io
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import foliosim
from simulator.config import load_config as load_config_file
from simulator.errors import ConfigError, FoliosimError, UnknownAccountError
from tests.conftest import REPO
from tests.helpers import cli, error_line

DOC = REPO / "docs" / "python.md"
EQUAL = "examples/paper12_equal_weight.toml"
#: A fenced block: its language, the rest of its info string, its text.
FENCE = re.compile(r"^```(\w*)([^\n]*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def doc_blocks() -> list[tuple[str, str, str]]:
    return [(m[1], m[2].strip(), m[3]) for m in FENCE.finditer(DOC.read_text(encoding="utf-8"))]


def test_worked_example_prints_what_the_doc_shows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, paper12: Path
) -> None:
    """Each ``python`` block of docs/python.md (not marked ``no-run``) runs in one namespace,
    from a folder laid out as the repository's root (examples/ and ../shared/data/paper12), and
    prints exactly the ``text`` block under it (nothing, when none follows)."""
    root = tmp_path / "main"
    root.mkdir()
    (root / "examples").symlink_to(REPO / "examples")
    (tmp_path / "shared" / "data").mkdir(parents=True)
    (tmp_path / "shared" / "data" / "paper12").symlink_to(paper12)
    monkeypatch.chdir(root)
    blocks = doc_blocks()
    namespace: dict[str, Any] = {"__name__": "docs_python_md"}
    ran = 0
    for i, (lang, info, code) in enumerate(blocks):
        if lang != "python" or info == "no-run":
            continue
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(code, f"{DOC}, block {i + 1}", "exec"), namespace)
        follows = blocks[i + 1] if i + 1 < len(blocks) else ("", "", "")
        expected = follows[2] if follows[0] == "text" else ""
        assert printed.getvalue() == expected, f"docs/python.md block {i + 1}:\n{code}"
        ran += 1
    assert ran >= 6
    assert (root / "runs" / "python-example" / "tearsheet.html").stat().st_size > 100_000
    # Every python block the doc does not run is marked so, and every marked one parses.
    for _, info, code in blocks:
        if info == "no-run":
            ast.parse(code)


def test_backtest_equals_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, paper12: Path
) -> None:
    """The issue's check: foliosim.backtest's total return is summary.json's, and the run
    directory it saves holds the command line's files, byte for byte."""
    monkeypatch.chdir(REPO)
    out = tmp_path / "cli"
    assert cli(["backtest", EQUAL, "--out", str(out)], monkeypatch) == 0
    run = foliosim.backtest(EQUAL)
    doc = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert run.summary.series["strategy"].total_return == doc["strategy"]["total_return"]
    assert run.summary.series["strategy"].total_return == pytest.approx(0.4217454523706)
    saved = run.save(tmp_path / "python", tearsheet=False)
    for name in ("summary.json", "returns.csv", "weights.csv", "orders.csv", "config.toml"):
        assert (saved / name).read_bytes() == (out / name).read_bytes(), name
    assert not (saved / "tearsheet.html").exists()

    # The frames are the reader's: changing them changes nothing of the run.
    returns = run.returns
    returns.iloc[:, :] = 0.0
    assert run.returns.equals(run.result.returns)
    weights = run.weights
    assert weights.shape == (53, 12)  # the first decision week and the 52 return weeks
    assert weights.iloc[-1].sum() == pytest.approx(1.0, abs=1e-3)
    assert str(run) == "Run equal_weight: 2022-07-01..2023-06-23, 52 weeks, total return +42.17%"

    # explain and stress take a Run in memory as they take a run directory.
    with pytest.raises(ConfigError, match=r"^run equal_weight ran equal_weight, which makes no"):
        foliosim.explain(run, week="2023-03-10")
    with pytest.raises(ConfigError, match="makes no forecasts to explain"):
        foliosim.explain(out, week="2023-03-10")
    facts = foliosim.stress(run=run, scenarios=["covid"])
    assert facts == foliosim.stress(run=out, scenarios=["covid"]).model_copy(
        update={"source": "run equal_weight"}
    )


def test_config_forms_read_alike(paper12: Path) -> None:
    """A path, a dict and a Config give one config; ``set`` is ``--set``, whatever the value's
    type; the caller's dict is left as it was."""
    path_cfg = foliosim.load_config(REPO / EQUAL)
    tables = path_cfg.model_dump()
    before = json.dumps(tables, default=str, sort_keys=True)
    assert foliosim.load_config(tables) == path_cfg
    assert foliosim.load_config(path_cfg) is path_cfg
    cli_sets = [
        "backtest.start=2022-12-30",
        "backtest.cash=5000000",
        "strategy.allow_short=false",
        "data.tickers=AAPL,MSFT,NVDA",
        "backtest.fill=next_open",
    ]
    wanted = load_config_file(REPO / EQUAL, cli_sets)
    as_text = dict(item.split("=", 1) for item in cli_sets)
    as_values: dict[str, object] = {
        "backtest.start": dt.date(2022, 12, 30),
        "backtest.cash": 5_000_000,
        "strategy.allow_short": False,
        "data.tickers": ["AAPL", "MSFT", "NVDA"],
        "backtest.fill": "next_open",
    }
    for source in (str(REPO / EQUAL), tables, path_cfg):
        assert foliosim.load_config(source, set=as_text) == wanted
        assert foliosim.load_config(source, set=as_values) == wanted
    assert json.dumps(tables, default=str, sort_keys=True) == before


def test_errors_are_the_command_lines(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], paper12: Path
) -> None:
    """A user error raises the FoliosimError whose message the command line prints."""
    monkeypatch.chdir(REPO)
    cases: list[tuple[list[str], Any]] = [
        (
            ["backtest", EQUAL, "--set", "backtest.fil=close"],
            lambda: foliosim.backtest(EQUAL, set={"backtest.fil": "close"}),
        ),
        (
            ["backtest", EQUAL, "--set", "strategy.max_weight=2"],
            lambda: foliosim.backtest(EQUAL, set={"strategy.max_weight": 2}),
        ),
        (
            ["backtest", "examples/nope.toml"],
            lambda: foliosim.backtest("examples/nope.toml"),
        ),
        (["replay", "status", "--account", "nope"], lambda: foliosim.account("nope")),
        (
            ["stress", EQUAL, "--scenario", "covdi"],
            lambda: foliosim.stress(EQUAL, scenarios=["covdi"]),
        ),
        (
            ["recommend", EQUAL, "--profile", "bold"],
            lambda: foliosim.recommend(EQUAL, profile="bold"),
        ),
    ]
    for argv, call in cases:
        assert cli(argv, monkeypatch) == 2
        line = error_line(capsys)
        with pytest.raises(FoliosimError) as caught:
            call()
        assert f"error: {caught.value}" == line
    with pytest.raises(UnknownAccountError):
        foliosim.account("nope")
    # A dict's mistakes name the field as a file's do.
    with pytest.raises(ConfigError, match=r"^config: unknown section \[backtset\] \(did you"):
        foliosim.load_config({"backtset": {"fill": "close"}})


def test_argument_errors_name_the_argument() -> None:
    with pytest.raises(ConfigError, match=r"^config: expected a TOML file path, a dict"):
        foliosim.backtest(42)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"^set: expected a dict of section.key to value"):
        foliosim.load_config({}, set=["backtest.fill=close"])  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"^set 'backtest.cash': None is not a config value"):
        foliosim.load_config({}, set={"backtest.cash": None})
    with pytest.raises(FoliosimError, match=r"^give one of config, run or account$"):
        foliosim.stress()
    with pytest.raises(FoliosimError, match=r"^give one of config, run or account \(got conf"):
        foliosim.stress(EQUAL, account="demo")
    with pytest.raises(ConfigError, match=r"^give a run or an account \(one of the two\)$"):
        foliosim.explain(week="2023-03-10")
    with pytest.raises(FoliosimError, match=r"^as_of '2023-13-01': expected a date YYYY-MM-DD$"):
        foliosim.recommend({}, as_of="2023-13-01")
    with pytest.raises(FoliosimError, match=r"^give weeks or until, not both$"):
        foliosim.Account("demo").step(weeks=2, until="2023-01-06")
    with pytest.raises(ConfigError, match=r"^weeks: expected a whole number of at least 1"):
        foliosim.Account("demo").step(weeks=0)


def test_sweep_of_a_config_object(tmp_path: Path, paper12: Path) -> None:
    """A sweep's axes are checked before Ray starts and its folder is made; a Config (written
    to a temporary TOML file its trial reads) sweeps as a path does, and its trial's figures
    are the backtest's of the same period."""
    out = tmp_path / "sweep"
    cfg = foliosim.load_config(REPO / EQUAL, set={"data.path": str(paper12)})
    with pytest.raises(ConfigError, match=r"^--seeds '3-1': the range 3-1 runs backwards"):
        foliosim.sweep(cfg, seeds="3-1", out=out)
    with pytest.raises(ConfigError, match=r"^--set 'strategy.max_weigth=0.2': unknown field"):
        foliosim.sweep(cfg, grid={"strategy.max_weigth": [0.2, 0.3]}, out=out)
    with pytest.raises(FoliosimError, match=r"^periods '2022-02-30': expected a date"):
        foliosim.sweep(cfg, periods=[("2022-02-30", "2022-06-30")], out=out)
    assert not out.exists()
    result = foliosim.sweep(
        cfg, grid={"backtest.fill": ["next_open"]}, periods=[2022], out=out, cpus=1
    )
    assert result.out == out and result.ran == ["t0001"]
    row = result.table.iloc[0]
    assert (row["status"], row["config"], row["period"]) == (
        "done",
        "backtest.fill=next_open",
        "2022-01-01:2022-12-31",
    )
    period = {"backtest.start": "2022-01-01", "backtest.end": "2022-12-31"}
    run = foliosim.backtest(cfg, set={**period, "backtest.fill": "next_open"})
    assert row["total_return"] == pytest.approx(run.summary.series["strategy"].total_return)


def test_import_is_light_and_one_way() -> None:
    """``import foliosim`` imports neither torch nor Ray; ``simulator``, ``strategies`` and
    ``models`` never import ``foliosim`` (the API sits on top of them)."""
    code = "import sys, foliosim; print(sorted({'torch', 'ray', 'mlflow'} & set(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"
    for package in ("simulator", "strategies", "models"):
        for path in (REPO / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                    if isinstance(node, ast.ImportFrom)
                    else []
                )
                assert not any(n.split(".")[0] == "foliosim" for n in names), path
    assert set(foliosim.__all__) <= set(dir(foliosim))
