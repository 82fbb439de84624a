"""The command line end to end: real data, real backtrader runs, real files."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simulator.rundir import RUN_FILES
from tests.helpers import cli

PAPER_CONFIG = """
[data]
source = "csv"
path = "{path}"
benchmark = "IXIC"
start = "2018-01-01"
end = "2023-06-30"

[backtest]
start = "2022-06-24"
end = "2023-06-23"
strategy = "equal_weight"
cash = 10_000_000
fill = "close"

[report]
risk_free = "DGS2"
"""


def paper_config_dir(config: Path) -> Path:
    import tomllib

    return Path(tomllib.loads(config.read_text())["data"]["path"])


@pytest.fixture
def paper_config(paper12: Path, tmp_path: Path) -> Path:
    path = tmp_path / "paper.toml"
    path.write_text(PAPER_CONFIG.format(path=paper12))
    return path


@pytest.mark.slow
def test_backtest_on_paper12_writes_a_complete_run(
    paper_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "run"
    assert cli(["backtest", str(paper_config), "--out", str(out)], monkeypatch) == 0
    printed = capsys.readouterr().out
    assert "Annual return (%)" in printed and f"run directory: {out}" in printed
    for name in (*RUN_FILES, "tearsheet.html"):
        assert (out / name).is_file(), name

    returns = pd.read_csv(out / "returns.csv", parse_dates=["date"], index_col="date")
    assert list(returns.columns) == ["strategy", "equal_weight", "benchmark"]
    # The paper's 52 test weeks, dated on the last trading day (Thursday in Good-Friday week).
    assert len(returns) == 52
    assert returns.index[0] == pd.Timestamp("2022-07-01")
    assert returns.index[-1] == pd.Timestamp("2023-06-23")
    assert pd.Timestamp("2023-04-06") in returns.index
    assert (returns.index.day_of_week <= 4).all()
    ixic = pd.read_csv(paper_config_dir(paper_config) / "IXIC.csv", index_col="date")["close"]
    assert returns.loc["2022-07-01", "benchmark"] == pytest.approx(
        ixic["2022-07-01"] / ixic["2022-06-24"] - 1, rel=1e-12
    )

    weights = pd.read_csv(out / "weights.csv")
    assert list(weights.columns) == ["date", "ticker", "weight"]
    per_week = weights.groupby("date")["weight"].sum()
    assert per_week.between(0.99, 1.0 + 1e-12).all()  # fully invested, whole shares
    orders = pd.read_csv(out / "orders.csv")
    header = (
        "date_submitted,date_filled,ticker,side,size,price,value,commission,status,model_version"
    )
    assert list(orders.columns) == header.split(",")  # the orders.csv contract
    assert (orders["status"] == "Completed").all()
    assert (orders["date_submitted"] == orders["date_filled"]).all()  # fill = close

    summary = json.loads((out / "summary.json").read_text())
    assert summary["weeks"] == 52 and summary["fill"] == "close"
    assert summary["risk_free"] == "DGS2"
    rf = pd.read_csv(out / "risk_free.csv", parse_dates=["date"], index_col="date")["rate"]
    # Week 2022-07-08 earns the yield known at the close of 2022-07-01: DGS2 = 2.84%.
    assert rf.loc["2022-07-08"] == pytest.approx(1.0284 ** (1 / 52) - 1, rel=1e-12)
    for col in ("strategy", "equal_weight", "benchmark"):
        r = returns[col].to_numpy()
        excess = r - rf.to_numpy()
        stats = summary[col]
        assert stats["total_return"] == pytest.approx(np.prod(1 + r) - 1, rel=1e-9)
        assert stats["volatility"] == pytest.approx(np.std(r, ddof=1) * math.sqrt(52), rel=1e-9)
        sharpe = excess.mean() / np.std(excess, ddof=1) * math.sqrt(52)
        assert stats["sharpe"] == pytest.approx(sharpe, rel=1e-9)
        equity = np.concatenate([[1.0], np.cumprod(1 + r)])
        mdd = (equity / np.maximum.accumulate(equity) - 1).min()
        assert stats["max_drawdown"] == pytest.approx(mdd, rel=1e-9)
        assert stats["cagr"] == pytest.approx(stats["total_return"], rel=1e-9)  # 52 weeks
    html = (out / "tearsheet.html").read_text()
    assert "IXIC" in html and "1/N" in html

    # `report` rebuilds the tear sheet from the run directory alone.
    (out / "tearsheet.html").unlink()
    assert cli(["report", str(out)], monkeypatch) == 0
    assert (out / "tearsheet.html").is_file()


def test_constant_risk_free_enters_sharpe(
    paper_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "rf"
    args = ["backtest", str(paper_config), "--out", str(out), "--set", "report.risk_free=0.02"]
    assert cli([*args, "--set", "data.tickers=AAPL,MSFT,PEP"], monkeypatch) == 0
    r = pd.read_csv(out / "returns.csv")["strategy"].to_numpy()
    excess = r - (1.02 ** (1 / 52) - 1)
    summary = json.loads((out / "summary.json").read_text())
    expected = excess.mean() / np.std(excess, ddof=1) * math.sqrt(52)
    assert summary["strategy"]["sharpe"] == pytest.approx(expected, rel=1e-9)
    downside = math.sqrt(np.mean(np.minimum(excess, 0) ** 2))
    assert summary["strategy"]["sortino"] == pytest.approx(
        excess.mean() / downside * math.sqrt(52), rel=1e-9
    )


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--set", "data.tickers=AAPL,APPL"], "unknown ticker 'APPL'"),
        (["--set", "backtest.fill=open"], "backtest.fill"),
        (["--set", "data.path=/no/such/folder"], "no such folder"),
        (["--set", "backtest.min_history=400"], "too little history"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(
    paper_config: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    match: str,
) -> None:
    out = tmp_path / "never"
    assert cli(["backtest", str(paper_config), "--out", str(out), *extra], monkeypatch) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and match in err
    assert "Traceback" not in err
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".never")]


def test_an_existing_run_is_never_overwritten(
    paper_config: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    assert cli(["backtest", str(paper_config), "--out", str(out)], monkeypatch) == 2
    assert "already exists and is not empty" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "precious"


def test_report_on_a_folder_that_is_not_a_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(["report", str(tmp_path)], monkeypatch) == 2
    assert "not a complete run directory" in capsys.readouterr().err


def test_data_fetch_without_network_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError(101, "Network is unreachable")

    monkeypatch.setattr(socket, "create_connection", refuse)
    argv = ["data", "fetch", "--tickers", "AAPL,IXIC", "--start", "2020-01-01"]
    assert cli([*argv, "--end", "2021-01-01"], monkeypatch) == 2
    err = capsys.readouterr().err
    assert "cannot reach Yahoo" in err and "data.source=csv" in err
    assert not (tmp_path / "ws").exists()
    assert cli([*argv, "--end", "2019-01-01"], monkeypatch) == 2
    assert "must be after --start" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.cpu_seconds(600)
def test_demo_console_script_runs_offline(tmp_path: Path) -> None:
    """The installed console script, as `make demo` runs it, on the bundled data (its LSTMs
    on one torch thread, so that it keeps its pace beside other work)."""
    exe = Path(sys.executable).with_name("foliosim")
    out = tmp_path / "demo"
    proc = subprocess.run(
        [str(exe), "demo", "--out", str(out), "--set", "model.threads=1"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=1800,  # a hang guard; the work is bounded by the test's CPU budget
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"run directory: {out}" in proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["data_source"] == "bundled" and summary["benchmark_name"] == "SP500"
    assert summary["strategy_name"] == "lstm_signal"
    assert summary["weeks"] >= 200
    assert len(summary["tickers"]) == 20
    # Walk-forward: a model per 52 weeks, each trained before the first week it decided.
    models = summary["models"]
    assert len(models) == 4 and all(m["trained_by_this_run"] for m in models)
    assert all(m["train_end"] < m["first_decision"] for m in models)
    orders = pd.read_csv(out / "orders.csv")
    assert set(orders["model_version"]) == {m["version"] for m in models}
    page = (out / "tearsheet.html").read_text()
    assert "Predictions" in page and "Leakage audit" in page
    # The conventional optimisers stand beside the strategy in Table 2.
    assert list(summary["baselines"]) == ["min_variance", "mean_variance"]
    assert "Returns and risk: SP500, 1/N, min_variance, mean_variance and lstm_signal" in page
    assert "P(beats min_variance)" in proc.stdout
    # The demo's own tear sheet in a real browser: no error, no request, no missing glyph.
    from tests.helpers import browse

    seen = browse(out / "tearsheet.html", tmp_path)
    assert seen.errors == [] and seen.requests == []
    assert set(seen.fonts) == {("DejaVu Sans", True)}, seen.fonts
    assert not (tmp_path / ".foliosim").exists() or (tmp_path / ".foliosim").is_dir()


def test_usage_errors_exit_2_without_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(["backtest"], monkeypatch) == 2
    assert cli(["backtest", "x.toml", "--bogus"], monkeypatch) == 2
    err = capsys.readouterr().err
    assert "Missing argument" in err and "No such option" in err
    assert "Traceback" not in err


def test_printed_hints_are_commands_this_shell_can_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: hints said `foliosim ...` and `mlflow ui ...`, which fail from a shell
    whose PATH lacks the virtualenv; they now name the program as it can be run."""
    from simulator.clikit import runnable

    venv_bin = Path(sys.executable).parent
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # the virtualenv not activated
    monkeypatch.chdir(venv_bin.parent)
    assert runnable("foliosim", str(venv_bin / "foliosim")) == f"./{venv_bin.name}/foliosim"
    assert runnable("mlflow") == f"./{venv_bin.name}/mlflow"
    monkeypatch.chdir(tmp_path)  # elsewhere: the absolute path, not ../../..
    assert runnable("mlflow") == str(venv_bin / "mlflow")
    monkeypatch.setenv("PATH", f"{venv_bin}:/usr/bin:/bin")  # activated
    assert runnable("foliosim", str(venv_bin / "foliosim")) == "foliosim"
    assert runnable("mlflow") == "mlflow"


@pytest.mark.parametrize(
    ("argv", "usage", "shown"),
    [
        (
            ["recommend"],
            "foliosim recommend [OPTIONS] CONFIG",
            "a TOML file with a [profile]",
        ),
        (["replay", "start"], "foliosim replay start [OPTIONS] CONFIG", "--from DATE"),
        (["models", "show"], "foliosim models show [OPTIONS] REF", "--json"),
    ],
)
def test_help_keeps_brackets_and_names_placeholders(
    argv: list[str],
    usage: str,
    shown: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Regression: Rich markup ate "[profile]", flags showed <bool>, usage read {config}."""
    monkeypatch.setenv("COLUMNS", "200")
    assert cli([*argv, "--help"], monkeypatch) == 0
    out = " ".join(capsys.readouterr().out.split())  # help text wraps
    assert usage in out and shown in out
    assert "<bool>" not in out and "{" not in out


def test_progress_in_a_log_is_one_line_per_phase_and_network(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Regression: with stderr in a log a long demo printed nothing for minutes."""
    from models.forecaster import TrainEvent
    from models.train import FitResult
    from simulator.clikit import Reporter

    fit = FitResult((1.0, 0.5, 0.4), (0.9, 0.7, 0.8), 2, "early stop", 0.1, 10, 5)
    with Reporter(terminal=False) as report:
        report.say("model 2/4: training demo-lstm on data up to 2019-12-27")
        report.training(TrainEvent("AAPL", 0, 20, 0, 200))
        report.training(TrainEvent("AAPL", 0, 20, 1, 200, 1.0, 0.9))
        report.training(TrainEvent("AAPL", 0, 20, 3, 200, result=fit))
        week = report.phase("backtest lstm_signal")
        week(1, 3)
        week(3, 3)
        with report.step("tear sheet"):
            pass
    lines = capsys.readouterr().err.splitlines()
    assert lines[:4] == [
        "model 2/4: training demo-lstm on data up to 2019-12-27",
        "training model 2/4: AAPL (1/20): 3 epochs, best 2 (val loss 0.7), early stop",
        "backtest lstm_signal ...",
        lines[3],
    ]
    assert re.fullmatch(r"backtest lstm_signal: 3 weeks in \d+\.\d s", lines[3])
    assert lines[4] == "tear sheet ..." and lines[5].startswith("tear sheet: done in ")
    assert len(lines) == 6


def test_runs_list_and_compare_commands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "runs"
    config = Path(__file__).resolve().parents[1] / "examples" / "paper12_equal_weight.toml"
    monkeypatch.chdir(config.parents[1])  # its data path is relative to the repository root
    for name, fill in (("a", "close"), ("b", "next_open")):
        argv = ["backtest", str(config), "--out", str(folder / name)]
        assert cli([*argv, "--set", f"backtest.fill={fill}"], monkeypatch) == 0
    capsys.readouterr()
    assert cli(["runs", "list", str(folder)], monkeypatch) == 0
    out = capsys.readouterr().out
    assert "│ a" in out and "│ b" in out
    page = tmp_path / "compare.html"
    argv = ["runs", "compare", str(folder / "a"), str(folder / "b"), "--out", str(page)]
    assert cli(argv, monkeypatch) == 0
    assert page.is_file() and f"comparison: {page}" in capsys.readouterr().out
    assert cli(["runs", "compare", str(folder / "a")], monkeypatch) == 2
    assert "error:" in capsys.readouterr().err
