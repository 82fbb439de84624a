"""Sweeps on Ray: trials equal plain backtests, shared models train once, a killed sweep
resumes, bad input is one line. One Ray runtime serves the module (session-scoped)."""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import json
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from simulator import __version__
from simulator import sweep as sweep_module
from simulator.audit_folder import data_digest
from simulator.backtest import run_backtest
from simulator.config import load_config
from simulator.errors import ConfigError
from simulator.session import load_weekly
from simulator.sweep import (
    Axes,
    MadeWith,
    default_out,
    make_trials,
    parse_grid,
    parse_periods,
    parse_seeds,
    run_sweep,
    stale_rows,
)
from simulator.sweep_files import locked
from simulator.sweep_report import sweep_stats
from tests.conftest import PAPER12, PAPER_CONFIG, PAPER_FAST
from tests.helpers import CSV, cli, error_line, sets

#: 1/N on paper12, no baselines: a trial takes a second.
EQUAL = [*CSV, "backtest.strategy=equal_weight", "report.baselines=", "data.start=2015-01-01"]


@pytest.fixture(scope="session")
def ray_runtime() -> Iterator[None]:
    import ray

    from simulator.sweep import start_ray

    start_ray(cpus=2)
    yield
    ray.shutdown()


def test_axes_are_parsed_and_bad_ones_are_one_line() -> None:
    assert parse_seeds("0-3") == (0, 1, 2, 3)
    assert parse_periods("2021,2022-01-01:2022-06-30") == (
        (dt.date(2021, 1, 1), dt.date(2021, 12, 31)),
        (dt.date(2022, 1, 1), dt.date(2022, 6, 30)),
    )
    assert parse_grid(["strategy.max_weight=0.2,0.25"]) == (
        ("strategy.max_weight", ("0.2", "0.25")),
    )
    with pytest.raises(ConfigError, match="runs backwards; write 2-5"):
        parse_seeds("5-2")
    with pytest.raises(ConfigError, match="expected seeds like 0-9"):
        parse_seeds("")
    with pytest.raises(ConfigError, match=r"unknown field 'strategy\.max_weigth'"):
        parse_grid(["strategy.max_weigth=0.2"])
    with pytest.raises(ConfigError, match="with at least one value"):
        parse_grid(["strategy.max_weight="])
    with pytest.raises(ConfigError, match="use --seeds or --periods"):
        parse_grid(["model.seed=1,2"])
    with pytest.raises(ConfigError, match="the end must come after the start"):
        parse_periods("2022-06-30:2022-01-01")


def test_sweep_stats_by_hand() -> None:
    """Per config: medians over the done trials; n/a (NaN) where no trial has the figure, as
    for 1/N's P(beats 1/N) or a Sharpe-loss model's forecast MSE; a failed trial counts in
    the failures only."""
    rows = pd.DataFrame(
        {
            "trial": ["t1", "t2", "t3", "t4", "t5"],
            "config": ["a", "a", "a", "b", "b"],
            "status": ["done", "done", "done", "done", "failed"],
            "total_return": [0.1, 0.3, 0.2, 0.05, None],
            "sharpe": [1.0, 2.0, 1.5, 0.5, None],
            "equal_weight_total_return": [0.25] * 5,
            "benchmark_total_return": [0.1] * 5,
            "p_beats_equal_weight": [0.2, 0.6, 0.4, None, None],
            "mse_ratio": [0.9, None, 1.1, None, None],
            "weeks": [52] * 5,
            "skew": [0.0] * 5,
            "kurtosis": [3.0] * 5,
        }
    )
    stats = sweep_stats(rows)
    per = stats.per_config.set_index("config")
    assert (stats.trials, stats.failed) == (5, 1)
    assert per.loc["a", "median return"] == pytest.approx(0.2)
    assert per.loc["a", "share beating 1/N"] == pytest.approx(1 / 3)
    assert per.loc["a", "median P(beats 1/N)"] == pytest.approx(0.4)
    assert per.loc["a", "median MSE ratio"] == pytest.approx(1.0)
    assert per.loc["b", "trials"] == 1
    assert pd.isna(per.loc["b", "median P(beats 1/N)"]) and pd.isna(
        per.loc["b", "median MSE ratio"]
    )


def test_pbo_is_not_shown_when_the_variants_cannot_be_told_apart() -> None:
    """Two configs with the same Sharpe ratio in every period (a cap that never binds): every
    split's pick ranks at the median, which CSCV would count as 100% overfitting; the sweep
    says there is nothing to choose instead. One different figure brings PBO back."""

    def frame(sharpes: list[float]) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "trial": ["t1", "t2", "t3", "t4"],
                "config": ["cap=0.2", "cap=0.2", "cap=0.33", "cap=0.33"],
                "seed": [None] * 4,
                "period": ["2021", "2022"] * 2,
                "status": ["done"] * 4,
                "total_return": [0.3, -0.3, 0.3, -0.3],
                "sharpe": sharpes,
                "equal_weight_total_return": [0.3, -0.3] * 2,
                "benchmark_total_return": [0.2, -0.3] * 2,
                "weeks": [52] * 4,
                "skew": [0.0] * 4,
                "kurtosis": [3.0] * 4,
            }
        )

    tied = sweep_stats(frame([1.6, -1.0, 1.6, -1.0]))
    assert tied.pbo is None
    assert tied.pbo_note == (
        "the variants have the same Sharpe ratio in every period: nothing to choose"
    )
    # cap=0.33 is better in both periods: picked on either, it ranks best on the other.
    apart = sweep_stats(frame([1.6, -1.0, 1.7, -0.9]))
    assert apart.pbo == pytest.approx(0.0)


def test_trials_are_the_cartesian_product_in_a_fixed_order() -> None:
    axes = Axes(
        seeds=(0, 1),
        grid=(("backtest.fill", ("close", "next_open")),),
        periods=parse_periods("2021,2022"),
    )
    trials = make_trials(axes, ["report.baselines="])
    assert [t.id for t in trials] == [f"t{n:04d}" for n in range(1, 9)]
    assert trials[0].overrides == (
        "report.baselines=",
        "backtest.fill=close",
        "model.seed=0",
        "backtest.start=2021-01-01",
        "backtest.end=2021-12-31",
        "model.train_end=2020-12-31",  # the day before the period, whatever the config says
    )
    assert trials[-1].grid == (("backtest.fill", "next_open"),) and trials[-1].seed == 1


def test_a_sweep_equals_plain_backtests_and_resumes(ray_runtime: None, tmp_path: Path) -> None:
    axes = Axes(
        grid=parse_grid(["strategy.max_weight=0.05,0.2"]), periods=parse_periods("2021,2022")
    )
    out, ws = tmp_path / "sweep", tmp_path / "ws"
    first = run_sweep(PAPER_CONFIG, out, axes, ws, base=EQUAL)
    table = first.table
    assert sorted(first.ran) == ["t0001", "t0002", "t0003", "t0004"]
    assert (table["status"] == "done").all() and len(table) == 4
    # Every trial is the plain backtest of its values, to the last digit.
    for trial in make_trials(axes, EQUAL):
        plain = run_backtest(load_config(PAPER_CONFIG, list(trial.overrides)), ws)
        row = table.set_index("trial").loc[trial.id]
        assert row["total_return"] == plain.summary.series["strategy"].total_return
        assert row["equal_weight_total_return"] == plain.summary.series["equal_weight"].total_return
        # 1/N itself: no excess over 1/N to test, and no forecasts
        assert "over_equal_weight" not in plain.summary.confidence
        assert pd.isna(row["p_beats_equal_weight"]) and pd.isna(row["mse_ratio"])
    csv = pd.read_csv(out / "sweep.csv")
    assert list(csv["trial"]) == ["t0001", "t0002", "t0003", "t0004"]
    assert "share beating 1/N" in (out / "sweep.html").read_text(encoding="utf-8")

    # Killed after two trials: their rows (and a half-written trial folder) are gone.
    for trial in ("t0002", "t0004"):
        (out / "trials" / f"{trial}.json").unlink()
    shutil.rmtree(out / "trials" / "t0004")
    again = run_sweep(PAPER_CONFIG, out, axes, ws, base=EQUAL)
    assert sorted(again.ran) == ["t0002", "t0004"]
    pd.testing.assert_frame_equal(again.table, table)

    # Each finished trial is an MLflow run of the sweep's experiment.
    from models.registry import Registry

    client = Registry(ws).client
    experiment = client.get_experiment_by_name(f"sweep {out.name}")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.data.params["trial"] for r in runs) == [
        "t0001",
        "t0002",
        "t0002",
        "t0003",
        "t0004",
        "t0004",
    ]


def test_a_sweep_directory_of_another_config_is_refused(ray_runtime: None, tmp_path: Path) -> None:
    axes = Axes(periods=parse_periods("2022"))
    out = tmp_path / "sweep"
    run_sweep(PAPER_CONFIG, out, axes, tmp_path / "ws", base=EQUAL)
    before = (out / "sweep.json").read_text(encoding="utf-8")
    with pytest.raises(ConfigError, match="holds a sweep of another config or other axes"):
        run_sweep(PAPER_CONFIG, out, axes, tmp_path / "ws", base=[*EQUAL, "backtest.fill=close"])
    assert (out / "sweep.json").read_text(encoding="utf-8") == before


@pytest.mark.cpu_seconds(400)
def test_trials_that_need_one_model_train_it_once(ray_runtime: None, tmp_path: Path) -> None:
    """Two trials at once need the same model (same spec, same data): one trains it, the
    other waits and reuses it; the registry holds one version."""
    base = [*PAPER_FAST, "report.baselines=", "backtest.end=2022-12-30"]
    axes = Axes(grid=parse_grid(["backtest.fill=close,next_open"]), seeds=(0,))
    ws = tmp_path / "ws"
    result = run_sweep(PAPER_CONFIG, tmp_path / "sweep", axes, ws, base=base)
    assert (result.table["status"] == "done").all(), result.table["error"].tolist()
    from models.registry import Registry

    versions = Registry(ws).versions()
    assert [v.ref for v in versions] == ["paper-small/1"]
    used = [
        json.loads((tmp_path / "sweep" / "trials" / t / "models.json").read_text())["used"]
        for t in ("t0001", "t0002")
    ]
    assert sorted(u[0]["trained_by_this_run"] for u in used) == [False, True]


def test_sweep_command_line_and_bad_input(
    ray_runtime: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Issue 26: the sweep speaks from its start (where it lives, how many trials), one line
    per trial as it ends on the sweep's own clock, and its last line, "2 trials in X s", comes
    after the last trial's with X from the command's start; sweep.json and sweep.html hold the
    command and its overrides."""
    out = tmp_path / "sweep"
    argv = ["sweep", str(PAPER_CONFIG), *sets(EQUAL), "--out", str(out)]
    assert cli([*argv, "--periods", "2021,2022"], monkeypatch) == 0
    captured = capsys.readouterr()
    text = captured.out
    assert "sweep sweep: 2 trials, 0 failed" in " ".join(text.split())
    assert "probability of backtest overfitting: n/a" in text
    # A trial that takes over 30 s on a busy machine: a line says the sweep still works.
    waiting = re.compile(r"trials: [01] of 2 ended at [\d.]+ s, [12] submitted \(.*\)")
    lines = [line for line in captured.err.splitlines() if not waiting.fullmatch(line)]
    assert lines[:2] == [
        f"sweep {out}: 2 trials (2 periods); if it stops, the same command resumes it",
        "trials: 2 to run, 2 at a time",  # the session's runtime has 2 CPUs
    ]
    # One line per trial in the order they end (either trial may end first).
    trial = re.compile(r"trial (t000[12]) done at ([\d.]+) s \((\d)/2, 0 failed\): (.*)")
    ends = [trial.fullmatch(line) for line in lines[2:4]]
    assert all(ends), lines
    period = {"t0001": "2021-01-01:2021-12-31", "t0002": "2022-01-01:2022-12-31"}
    assert sorted(m[1] for m in ends if m) == ["t0001", "t0002"]
    assert [m[3] for m in ends if m] == ["1", "2"]
    assert all(m[4].startswith(f"{period[m[1]]}: total return ") for m in ends if m)
    assert lines[4] == "writing sweep.csv and sweep.html ..."
    assert re.fullmatch(r"writing sweep.csv and sweep.html: done in [\d.]+ s", lines[5])
    # The last line, after every trial's, on the sweep's clock (never less than a trial's).
    last = re.fullmatch(r"sweep: 2 trials in ([\d.]+) s", lines[6])
    assert last is not None and len(lines) == 7, lines
    assert float(last[1]) >= max(float(m[2]) for m in ends if m) > 0
    command = shlex.join(["foliosim", *argv, "--periods", "2021,2022"])
    assert json.loads((out / "sweep.json").read_text())["command"] == command
    page = (out / "sweep.html").read_text(encoding="utf-8")
    assert html.escape(command) in page
    assert all(f"<li><code>{html.escape(item)}</code></li>" in page for item in EQUAL)
    for bad, message in [
        (["--seeds", "5-2"], "runs backwards"),
        (["--grid", "nosuch.key=1"], "unknown section 'nosuch'"),
        (["--periods", "2021"], "holds a sweep of another config or other axes"),
        (
            ["--address", "127.0.0.1:9", "--periods", "2021", "--out", str(tmp_path / "b")],
            "nothing answers at",
        ),
    ]:
        assert cli([*argv, *bad], monkeypatch) == 2, bad
        assert message in error_line(capsys)


@pytest.mark.slow
@pytest.mark.cpu_seconds(600)
def test_a_two_node_cluster_through_address_runs_trials_on_both_nodes(
    ray_runtime: None, tmp_path: Path
) -> None:
    """A head and a worker node on this machine (Ray's own Cluster), used by the command line
    through --address: trials run on both, and the table equals the local sweep's."""
    import os
    import subprocess
    import sys

    from ray.cluster_utils import Cluster

    axes = Axes(periods=parse_periods("2019,2020,2021,2022"))
    local = run_sweep(PAPER_CONFIG, tmp_path / "local", axes, tmp_path / "ws", base=EQUAL)
    cluster = Cluster(initialize_head=True, connect=False, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    try:
        out = tmp_path / "cluster"
        env = {**os.environ, "FOLIOSIM_WORKSPACE": str(tmp_path / "ws2")}
        argv = ["sweep", str(PAPER_CONFIG), *sets(EQUAL), "--periods", "2019,2020,2021,2022"]
        cmd = [sys.executable, "-m", "simulator.cli", *argv, "--address", cluster.address]
        proc = subprocess.run(
            [*cmd, "--out", str(out)], capture_output=True, text=True, env=env, check=False
        )
        assert proc.returncode == 0, proc.stderr
        nodes = {json.loads(p.read_text())["node"] for p in (out / "trials").glob("t*.json")}
        assert len(nodes) == 2
        pd.testing.assert_frame_equal(
            pd.read_csv(out / "sweep.csv"), pd.read_csv(tmp_path / "local" / "sweep.csv")
        )
        assert local.table["status"].eq("done").all()
    finally:
        cluster.shutdown()


def test_sweep_html_escapes_every_string(tmp_path: Path) -> None:
    """A config label or a trial's error holding a script payload reaches sweep.html as text."""
    from simulator.sweep_report import write_sweep_html

    payload = '<script>document.title="pwned"</script>'
    row = {
        "trial": "t0001",
        "config": f"x={payload}",
        "seed": 0,
        "period": "",
        "status": "done",
        "error": "",
        "weeks": 10,
        "total_return": 0.1,
        "sharpe": 1.0,
        "skew": 0.0,
        "kurtosis": 3.0,
        "equal_weight_total_return": 0.05,
        "equal_weight_sharpe": 0.5,
        "benchmark_total_return": 0.02,
        "benchmark_sharpe": 0.2,
    }
    failed = {**row, "trial": "t0002", "status": "failed", "error": f"boom {payload}"}
    page = write_sweep_html(tmp_path, pd.DataFrame([row, failed]), tmp_path / payload)
    text = page.read_text(encoding="utf-8")
    assert "<script>" not in text
    assert "&lt;script&gt;document.title=&quot;pwned&quot;&lt;/script&gt;" in text


def test_the_default_sweep_folder_is_named_by_the_config_and_its_arguments(
    tmp_path: Path,
) -> None:
    """Issue 26: without --out a sweep's folder is named after the config and a digest of its
    text, the --set overrides and the axes: the same command finds it again (and resumes),
    and any change is another sweep."""
    config = tmp_path / "my config!.toml"
    config.write_text(PAPER_CONFIG.read_text(encoding="utf-8"), encoding="utf-8")
    axes = Axes(seeds=(0, 1))
    name = default_out(config, EQUAL, axes)
    assert re.fullmatch(r"runs/sweep-my-config-[0-9a-f]{10}", name.as_posix()), name
    assert default_out(config, list(EQUAL), Axes(seeds=(0, 1))) == name
    assert default_out(config, EQUAL, axes, tmp_path / "elsewhere").name == name.name
    others = {
        default_out(config, [*EQUAL, "backtest.fill=close"], axes),
        default_out(config, EQUAL, Axes(seeds=(0, 2))),
        default_out(config, EQUAL, Axes(seeds=(0, 1), periods=parse_periods("2022"))),
    }
    config.write_text(config.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
    others.add(default_out(config, EQUAL, axes))
    assert len(others) == 4 and name not in others


def test_the_same_command_without_out_resumes_its_sweep(
    ray_runtime: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Issue 26: docs/sweeps.md says re-running the same command resumes a sweep; without
    --out it started a new folder ("0 were done before"). Now the same command finds its
    folder and says what was done before; another --set is another sweep."""
    monkeypatch.chdir(tmp_path)
    argv = ["sweep", str(PAPER_CONFIG), *sets(EQUAL), "--periods", "2022,2021"]
    target = default_out(PAPER_CONFIG, EQUAL, Axes(periods=parse_periods("2022,2021")))
    assert cli(argv, monkeypatch) == 0
    first = capsys.readouterr()
    assert first.err.splitlines()[0] == (
        f"sweep {target}: 2 trials (2 periods); if it stops, the same command resumes it"
    )
    assert "ran 2 trial(s) now, 0 were done before" in first.out
    (target / "trials" / "t0002.json").unlink()  # killed before its row
    monkeypatch.setattr(sweep_module, "HEARTBEAT", 0.05)  # the 30 s, shortened
    assert cli(argv, monkeypatch) == 0
    again = capsys.readouterr()
    # While no trial ends, a line says so (a log is never silent for long).
    assert "trials: 1 of 2 ended at " in again.err
    assert " s, 1 submitted (running or waiting for a CPU)" in again.err
    assert again.err.splitlines()[0] == (
        f"sweep {target}: resuming, 1 of 2 trials done before, 1 to run"
    )
    assert "sweep: 1 trial in " in again.err and ", 1 were done before" in again.err
    assert "ran 1 trial(s) now, 1 were done before" in again.out
    assert cli(argv, monkeypatch) == 0
    assert f"sweep {target}: all 2 trials were done before" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "runs").iterdir()] == [target.name]


def _rows() -> pd.DataFrame:
    """Four done trials (two configs x seeds 0, 1, one period) and a failed one."""
    rows = []
    for n, (weight, seed, ret, sharpe) in enumerate(
        [("0.2", 0, 0.1, 1.0), ("0.2", 1, 0.3, 1.5), ("0.5", 0, -0.05, 0.2), ("0.5", 1, 0.2, 1.2)]
    ):
        rows.append(
            {
                "trial": f"t{n + 1:04d}",
                "config": f"strategy.max_weight={weight}",
                "strategy.max_weight": weight,
                "seed": seed,
                "period": "2021-01-01:2021-12-31",
                "status": "done",
                "error": "",
                "weeks": 52,
                "total_return": ret,
                "sharpe": sharpe,
                "max_drawdown": -0.1 * (n + 1),
                "skew": 0.0,
                "kurtosis": 3.0,
                "equal_weight_total_return": 0.15,
                "equal_weight_sharpe": 0.9,
                "benchmark_total_return": 0.08,
                "benchmark_sharpe": 0.6,
                "p_beats_equal_weight": 0.25 * n,
                "mse_ratio": 0.98,
            }
        )
    rows.append({**rows[0], "trial": "t0005", "seed": 2, "status": "failed", "error": "boom"})
    for figure in ("total_return", "sharpe", "max_drawdown", "p_beats_equal_weight"):
        rows[-1][figure] = None
    return pd.DataFrame(rows)


def test_sweep_html_says_what_ran_and_lists_every_trial(tmp_path: Path) -> None:
    """Issue 26: sweep.html omitted the --set overrides and labelled no trial or seed. It
    shows the command and the overrides (escaped: a hostile --set value stays text), a row
    per trial with its seed, grid value, period and figures in percent, and the chart."""
    from simulator.sweep_report import WhatRan, write_sweep_html

    payload = '<script>alert("x")</script>'
    command = shlex.join(["foliosim", "sweep", "c.toml", "--set", f"report.title={payload}"])
    ran = WhatRan(command, ("data.source=csv", f"report.title={payload}"), "2 seeds")
    text = write_sweep_html(tmp_path, _rows(), tmp_path / "c.toml", ran).read_text()
    assert "<script>" not in text
    assert f"<pre><code>{html.escape(command)}</code></pre>" in text
    assert "<li><code>data.source=csv</code></li>" in text
    assert "<li><code>report.title=&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;</code>" in text
    assert "Axes: 2 seeds." in text
    head = (
        "<th>trial</th><th>seed</th><th>strategy.max_weight</th><th>period</th><th>status</th>"
        "<th>total return</th><th>Sharpe</th><th>max drawdown</th><th>1/N return</th>"
        "<th>index return</th><th>P(beats 1/N)</th><th>forecast MSE / naive</th>"
    )
    assert head in text
    cells = [
        "<td><code>t0001</code></td><td>0</td><td>0.2</td><td>2021-01-01:2021-12-31</td>"
        "<td>done</td><td>10.0%</td><td>1.00</td><td>-10.0%</td><td>15.0%</td><td>8.0%</td>"
        "<td>0.0%</td><td>0.980</td>",
        "<td><code>t0004</code></td><td>1</td><td>0.5</td><td>2021-01-01:2021-12-31</td>"
        "<td>done</td><td>20.0%</td><td>1.20</td><td>-40.0%</td><td>15.0%</td><td>8.0%</td>"
        "<td>75.0%</td><td>0.980</td>",
        "<td><code>t0005</code></td><td>2</td><td>0.2</td><td>2021-01-01:2021-12-31</td>"
        "<td>failed</td><td>n/a</td><td>n/a</td><td>n/a</td>",
    ]
    assert all(cell in text for cell in cells)
    assert text.count("<tr><td><code>t000") == 5
    assert '<img src="data:image/png;base64,' in text and 'alt="distribution (ECDF)' in text

    bare = write_sweep_html(tmp_path, _rows(), tmp_path / "c.toml").read_text()
    assert "Command: not recorded" in bare and "<h3>Overrides (<code>--set</code>)" in bare


def test_the_distribution_chart_marks_one_over_n_and_the_index_in_percent() -> None:
    """One ECDF per config (returns in percent), 1/N and the index as lines where all trials
    share their weeks, as their own dashed ECDFs over several periods."""
    from matplotlib.ticker import PercentFormatter

    from simulator.sweep_report import distribution_figure

    fig = distribution_figure(_rows())
    assert fig is not None
    returns, sharpe = fig.axes
    lines = {line.get_label(): line for line in returns.get_lines()}
    assert list(lines) == [
        "strategy.max_weight=0.2",
        "strategy.max_weight=0.5",
        "1/N 15.0%",
        "index 8.0%",
    ]
    assert np.asarray(lines["1/N 15.0%"].get_xdata()).tolist() == [0.15, 0.15]
    assert np.asarray(lines["index 8.0%"].get_xdata()).tolist() == [0.08, 0.08]
    ecdf = lines["strategy.max_weight=0.5"]  # two done trials: -5% and 20%, half each
    xs = np.asarray(ecdf.get_xdata(), dtype=float)
    assert sorted(set(xs[np.isfinite(xs)].tolist())) == [-0.05, 0.2]
    assert sorted(set(np.asarray(ecdf.get_ydata(), dtype=float).tolist())) == [0.0, 0.5, 1.0]
    assert isinstance(returns.xaxis.get_major_formatter(), PercentFormatter)
    assert isinstance(returns.yaxis.get_major_formatter(), PercentFormatter)
    assert not isinstance(sharpe.xaxis.get_major_formatter(), PercentFormatter)
    assert [line.get_label() for line in sharpe.get_lines()][2:] == ["1/N 0.90", "index 0.60"]

    periods = _rows()
    periods.loc[2:, "equal_weight_total_return"] = 0.4  # another period: another 1/N
    several = distribution_figure(periods)
    assert several is not None
    labels = [line.get_label() for line in several.axes[0].get_lines()]
    assert labels[2:] == ["1/N (each trial's weeks)", "index 8.0%"]
    assert distribution_figure(_rows().assign(status="failed")) is None


# --- review of issue 26: stale rows, one sweep per folder -------------------------------------


def test_stale_rows_are_told_by_what_made_them() -> None:
    """A row is kept only when what made it (data, rule, pinned version, foliosim) is what
    would make it now; a row from before rows kept it is stale, and the reason says so."""
    now = {"data": "d2", "rule": "r1", "model": "", "foliosim": "1.0"}
    rows: dict[str, dict[str, Any]] = {
        "t0001": {"made_with": {**now, "data": "d1"}},
        "t0002": {"made_with": dict(now)},
        "t0003": {"made_with": {**now, "data": "d1", "rule": "r0"}},
        "t0004": {"status": "done"},
    }
    current = {trial: now for trial in rows}
    assert stale_rows(rows, current) == (
        ["t0001", "t0003", "t0004"],
        "data and rule changed; no record of the data it read: made by an older foliosim",
    )
    assert stale_rows({"t0002": rows["t0002"]}, current) == ([], "")
    moved = {**now, "model": "paper/2", "foliosim": "1.1"}
    assert stale_rows({"t0002": rows["t0002"]}, {"t0002": moved}) == (
        ["t0002"],
        "foliosim and model version changed",
    )


RULE = """
from strategies.rule import Decision


class Rule:
    name = "review26"

    def decide(self, week, history, state):
        return Decision({t: 1.0 / len(history.tradable) for t in history.tradable})
"""


def test_what_made_a_trial_follows_its_data_rule_and_model_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key kept in each trial's row: the digest of the weekly data the trial reads (a
    changed CSV changes it), of a user rule's source (an edited rule changes it), the
    version a pinned model.version resolves to (here: none, said in one line) and
    foliosim's version."""
    data = tmp_path / "data"
    shutil.copytree(PAPER12, data)
    ws = tmp_path / "ws"
    (tmp_path / "review26_rule.py").write_text(RULE, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    sets_ = ["data.source=csv", f"data.path={data}", "backtest.strategy=review26_rule:Rule"]
    cfg = load_config(PAPER_CONFIG, sets_)
    made = MadeWith(ws).of(cfg)
    source = (tmp_path / "review26_rule.py").read_text(encoding="utf-8")
    assert made == {
        "data": data_digest(load_weekly(cfg, ws)),
        "rule": hashlib.sha256(source.encode()).hexdigest(),
        "model": "",
        "foliosim": __version__,
    }
    # One week's close of one ticker is restated: the data's digest changes, nothing else.
    prices = data / "AAPL.csv"
    frame = pd.read_csv(prices)
    day = frame["date"] == "2022-06-03"  # a Friday: a weekly close
    assert day.sum() == 1
    frame.loc[day, ["close", "adj_close"]] *= 1.01
    frame.to_csv(prices, index=False)
    moved = MadeWith(ws).of(cfg)
    assert moved["data"] != made["data"] and {**moved, "data": made["data"]} == made
    # The rule's file is edited: its digest changes.
    (tmp_path / "review26_rule.py").write_text(RULE + "\n# tuned\n", encoding="utf-8")
    edited = MadeWith(ws).of(cfg)
    assert edited["rule"] == hashlib.sha256((RULE + "\n# tuned\n").encode()).hexdigest()
    # A pinned version that does not resolve is kept as its one-line error (the trial then
    # fails in its worker, as it did, and runs again once the version exists).
    pinned = load_config(PAPER_CONFIG, [*CSV, "model.version=nosuch@champion"])
    assert MadeWith(ws).of(pinned)["model"] == (
        "unresolved: no registered model named 'nosuch' in the workspace registry; train one "
        "with `foliosim train CONFIG`"
    )


def test_a_second_sweep_in_the_same_folder_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Review of issue 26: two runs of one sweep command in one folder both ran the pending
    trials (and logged each twice in MLflow). A real second process holds the folder's lock:
    the sweep stops at once, before Ray, in one line naming that process; once it ends, the
    folder is free."""
    out = tmp_path / "sweep"
    out.mkdir()
    with subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom pathlib import Path\nfrom simulator.sweep_files import "
            "locked\nwith locked(Path(sys.argv[1])):\n    print('held', flush=True)\n"
            "    time.sleep(120)\n",
            str(out),
        ],
        cwd=Path(__file__).resolve().parents[1],
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        try:
            assert holder.stdout is not None and holder.stdout.readline() == "held\n"
            argv = ["sweep", str(PAPER_CONFIG), *sets(EQUAL), "--out", str(out)]
            assert cli([*argv, "--periods", "2022"], monkeypatch) == 2
            assert error_line(capsys) == (
                f"error: sweep folder {out} is in use by another foliosim sweep (pid "
                f"{holder.pid}); wait for it or use another --out"
            )
            assert [p.name for p in out.iterdir()] == [".lock"]  # nothing of the sweep made
        finally:
            holder.kill()
    with locked(out):  # the lock died with its process
        pass


def test_a_resumed_sweep_reruns_the_trials_of_changed_data(
    ray_runtime: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Review of issue 26: the same command after the CSV data changed kept the old trials'
    rows and mixed them with new ones. Now each row keeps what made it, and a row made with
    other data is run again, the first line saying how many and why."""
    data = tmp_path / "data"
    shutil.copytree(PAPER12, data)
    base = [*EQUAL, f"data.path={data}"]
    out = tmp_path / "sweep"
    argv = ["sweep", str(PAPER_CONFIG), *sets(base), "--out", str(out), "--periods", "2021,2022"]
    assert cli(argv, monkeypatch) == 0
    capsys.readouterr()
    first = {t: json.loads((out / "trials" / f"{t}.json").read_text()) for t in ("t0001", "t0002")}
    cfg = load_config(PAPER_CONFIG, base)
    assert first["t0001"]["made_with"]["data"] == data_digest(load_weekly(cfg, tmp_path / "ws"))
    # The last year's closes of one ticker are restated 10% higher.
    prices = data / "AAPL.csv"
    frame = pd.read_csv(prices)
    late = frame["date"] >= "2022-01-01"
    for column in ("open", "high", "low", "close", "adj_close"):
        frame.loc[late, column] = frame.loc[late, column] * 1.1
    frame.to_csv(prices, index=False)
    assert cli(argv, monkeypatch) == 0
    err = capsys.readouterr().err
    assert err.splitlines()[0] == (
        f"sweep {out}: resuming, 2 of 2 trials done before, 2 of them stale (data changed): "
        "rerunning them; 2 to run"
    )
    again = {t: json.loads((out / "trials" / f"{t}.json").read_text()) for t in ("t0001", "t0002")}
    assert again["t0002"]["total_return"] != first["t0002"]["total_return"]
    assert again["t0001"]["made_with"]["data"] == data_digest(load_weekly(cfg, tmp_path / "ws"))
    csv = pd.read_csv(out / "sweep.csv").set_index("trial")
    assert csv.loc["t0002", "total_return"] == again["t0002"]["total_return"]
    assert "made_with" not in csv.columns
    assert cli(argv, monkeypatch) == 0
    assert f"sweep {out}: all 2 trials were done before" in capsys.readouterr().err
