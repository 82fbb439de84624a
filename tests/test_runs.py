"""`foliosim runs list` and `runs compare` (simulator.runs), on hand-made run directories and
sweep directories (written by the sweep's own functions)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simulator.errors import RunDirError
from simulator.runs import (
    TABLE_COLUMNS,
    compare_runs,
    default_compare_path,
    list_runs,
    median_trial,
    table_cells,
)
from simulator.summary import read_summary
from simulator.sweep import Axes, open_sweep, summary_row
from tests.helpers import browse, cli, make_run, require_chromium, weekly_returns

LONG = weekly_returns("2022-01-07", 40, seed=1)
SHORT = weekly_returns("2023-01-06", 4, seed=2)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Two runs, a broken one, a killed run's leftover and a folder that is not a run."""
    runs = tmp_path / "runs"
    make_run(runs / "a-long", LONG)
    make_run(runs / "b-short", SHORT, strategy_name="equal_weight", final_value=1.5e6)
    broken = runs / "c-broken"
    broken.mkdir()
    (broken / "summary.json").write_text("{not json")
    make_run(runs / ".d-left.abc123", LONG)  # a killed run's hidden leftover
    (runs / "notes").mkdir()
    (runs / "compare-old.html").write_text("<html></html>")
    return runs


def test_list_runs_reads_each_summary(folder: Path) -> None:
    rows = list_runs(folder)
    assert [r["run"] for r in rows] == ["a-long", "b-short", "c-broken"]
    long, short, broken = rows
    total = float(np.prod(1 + LONG["strategy"]) - 1)
    assert long["total_return"] == pytest.approx(total, abs=1e-15)
    assert long["cagr"] == pytest.approx((1 + total) ** (52 / 40) - 1, abs=1e-15)
    assert (long["weeks"], long["start"], long["end"]) == (40, "2022-01-07", "2022-10-07")
    assert long["kind"] == "backtest" and not long["short"]
    # A short run's annualised figures are not given.
    assert short["short"] and short["cagr"] is None and short["sharpe"] is None
    assert short["volatility"] is None and short["final_value"] == 1.5e6
    assert short["total_return"] == pytest.approx(float(np.prod(1 + SHORT["strategy"]) - 1))
    assert set(broken) == {"run", "path", "error"} and "not valid JSON" in broken["error"]
    json.dumps(rows, allow_nan=False)  # the rows are the --json document


def test_table_cells_format_each_row(folder: Path) -> None:
    rows = list_runs(folder)
    long = table_cells(rows[0])
    assert len(long) == len(TABLE_COLUMNS)
    assert long[:4] == ["a-long", "lstm_signal", "2022-01-07 .. 2022-10-07", "40"]
    assert long[4] == f"{rows[0]['total_return']:+.2%}"
    active = rows[0]["total_return"] - rows[0]["benchmark_total_return"]
    assert long[8] == f"{active:+.2%} vs SP500"
    short = table_cells(rows[1])
    assert short[5] == "short run" and short[6] == ""
    broken = table_cells(rows[2])
    assert broken[0] == "c-broken" and broken[1].startswith("unreadable: ")


def test_list_runs_of_a_missing_folder_is_one_error(tmp_path: Path) -> None:
    with pytest.raises(RunDirError, match="no such folder"):
        list_runs(tmp_path / "nowhere")
    assert list_runs(tmp_path) == []


def cells(page: str, metric: str) -> list[str]:
    row = re.search(rf"<tr><td>{re.escape(metric)}</td>(.*?)</tr>", page)
    assert row is not None, metric
    return re.findall(r"<td>(.*?)</td>", row[1])


def test_compare_sets_the_runs_side_by_side(folder: Path) -> None:
    out = folder / "compare.html"
    assert compare_runs([folder / "a-long", folder / "b-short"], out) == out
    page = out.read_text(encoding="utf-8")
    head = re.search(r"<thead><tr>(.*?)</tr></thead>", page)
    assert head is not None and head[1] == "<th>metric</th><th>a-long</th><th>b-short</th>"
    long_total = float(np.prod(1 + LONG["strategy"]) - 1)
    short_total = float(np.prod(1 + SHORT["strategy"]) - 1)
    assert cells(page, "total return") == [f"{long_total:+.2%}", f"{short_total:+.2%}"]
    cagr = (1 + long_total) ** (52 / 40) - 1
    assert cells(page, "annual return (CAGR)") == [f"{cagr:+.2%}", "short run"]
    assert cells(page, "strategy") == ["lstm_signal", "equal_weight"]
    assert cells(page, "weekly returns") == ["40", "4"]
    assert cells(page, "final value") == ["n/a", "1,500,000"]
    assert cells(page, "rank IC (mean)") == ["n/a", "n/a"]  # older summaries: no such fact
    assert page.count("data:image/png;base64,") == 1
    assert "Short runs (fewer than 13 weeks: b-short)" in page
    assert not [p for p in folder.iterdir() if p.name.startswith(".compare")]


def test_compare_escapes_every_value(tmp_path: Path) -> None:
    payload = '<img src=x onerror="alert(1)">'
    a = make_run(tmp_path / "x<b>", LONG, strategy_name=payload, benchmark_name="S&P")
    b = make_run(tmp_path / "y", SHORT)
    page = compare_runs([a, b], tmp_path / "c.html").read_text(encoding="utf-8")
    assert payload not in page and "<b>" not in page
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page
    assert "<th>x&lt;b&gt;</th>" in page and "<td>S&amp;P</td>" in page


def test_compare_refuses_what_it_cannot_compare(folder: Path, tmp_path: Path) -> None:
    a, b = folder / "a-long", folder / "b-short"
    with pytest.raises(RunDirError, match="two or more run directories"):
        compare_runs([a], tmp_path / "c.html")
    with pytest.raises(RunDirError, match="named twice"):
        compare_runs([a, folder / ".." / "runs" / "a-long"], tmp_path / "c.html")
    with pytest.raises(RunDirError, match="is a folder"):
        compare_runs([a, b], tmp_path)
    with pytest.raises(RunDirError, match="no such folder"):
        compare_runs([a, b], tmp_path / "none" / "c.html")
    with pytest.raises(RunDirError, match="not a run directory"):
        compare_runs([a, folder / "notes"], tmp_path / "c.html")
    with pytest.raises(RunDirError, match="not valid JSON"):
        compare_runs([a, folder / "c-broken"], tmp_path / "c.html")
    assert not (tmp_path / "c.html").exists()


def test_two_runs_of_the_same_name_are_told_apart(tmp_path: Path) -> None:
    a = make_run(tmp_path / "one" / "run", LONG)
    b = make_run(tmp_path / "two" / "run", SHORT)
    page = compare_runs([a, b], tmp_path / "c.html").read_text(encoding="utf-8")
    assert "<th>one/run</th><th>two/run</th>" in page
    assert default_compare_path([a, b]).parent == tmp_path / "one"
    assert default_compare_path([a, b]).name.startswith("compare-")


def test_the_comparison_page_is_clean_in_chromium(folder: Path, tmp_path: Path) -> None:
    require_chromium()
    out = compare_runs([folder / "a-long", folder / "b-short"], tmp_path / "compare.html")
    seen = browse(out, tmp_path)
    assert seen.errors == [] and seen.requests == []
    assert set(seen.fonts) == {("DejaVu Sans", True)}
    assert seen.title == "foliosim: 2 runs compared"


# --- sweeps ------------------------------------------------------------------------------------

#: The finished trials of the hand-made sweep (40 weeks each), by id; t0004 failed, t0005 has
#: not ended (the sweep is still running, or was killed).
TRIALS = {f"t000{i}": weekly_returns("2022-01-07", 40, seed=10 + i) for i in (1, 2, 3)}


def total(returns: pd.Series) -> float:
    return float(np.prod(1 + returns) - 1)


def make_sweep(path: Path, tmp_path: Path, trials: dict[str, pd.DataFrame]) -> Path:
    """A sweep directory as ``foliosim sweep`` writes it (its own functions write sweep.json
    and the trials' rows): 5 seeds, ``trials`` finished, t0004 failed, t0005 not ended."""
    config = tmp_path / "sweep.toml"
    config.write_text("[backtest]\nstrategy = 'lstm_signal'\n", encoding="utf-8")
    open_sweep(path, config, ["data.source=csv"], Axes(seeds=(0, 1, 2, 3, 4)))
    for trial, returns in trials.items():
        run = make_run(path / "trials" / trial, returns)
        row = {"id": trial, "status": "done", "error": "", "node": ""}
        row |= summary_row(read_summary(run / "summary.json"))
        (path / "trials" / f"{trial}.json").write_text(json.dumps(row), encoding="utf-8")
    failed = {"id": "t0004", "status": "failed", "error": "ConfigError: bad value"}
    (path / "trials" / "t0004.json").write_text(json.dumps(failed), encoding="utf-8")
    return path


def test_a_sweep_is_listed_with_its_trials_medians_and_report(folder: Path, tmp_path: Path) -> None:
    sweep = make_sweep(folder / "sweep-paper-0123456789", tmp_path, TRIALS)
    (sweep / "sweep.html").write_text("<html></html>", encoding="utf-8")
    rows = list_runs(folder)
    assert [r["run"] for r in rows] == ["a-long", "b-short", "c-broken", sweep.name]
    row = rows[-1]
    totals = sorted(total(r["strategy"]) for r in TRIALS.values())
    beats = [total(r["strategy"]) > total(r["equal_weight"]) for r in TRIALS.values()]
    assert beats == [False, False, True]  # the data: one trial of three beats 1/N
    assert row["kind"] == "sweep" and row["strategy"] == "lstm_signal"
    assert (row["trials_done"], row["trials_total"], row["trials_failed"]) == (3, 5, 1)
    assert (row["start"], row["end"], row["weeks"]) == ("2022-01-07", "2022-10-07", 40)
    assert row["median_return"] == pytest.approx(totals[1], abs=1e-15)
    assert (row["min_return"], row["max_return"]) == pytest.approx((totals[0], totals[2]))
    assert row["share_beating_equal_weight"] == pytest.approx(1 / 3)
    assert row["report"] == "sweep.html"
    json.dumps(rows, allow_nan=False)
    assert table_cells(row) == [
        sweep.name,
        "lstm_signal (sweep)",
        "2022-01-07 .. 2022-10-07",
        "3/5 trials, 1 failed",
        f"{totals[1]:+.2%} median",
        "",
        f"{row['median_sharpe']:.3f} median",
        "",
        "33% of trials beat 1/N",
    ]


def test_a_sweep_without_finished_trials_or_with_a_damaged_file(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    started = make_sweep(runs / "sweep-new", tmp_path, {})
    damaged = runs / "sweep-damaged"
    damaged.mkdir()
    (damaged / "sweep.json").write_text("{not json", encoding="utf-8")
    broken, new = list_runs(runs)  # by name: sweep-damaged, sweep-new
    assert (new["trials_done"], new["trials_total"], new["median_return"]) == (0, 5, None)
    assert new["report"] is None and new["share_beating_equal_weight"] is None
    assert table_cells(new)[1:5] == ["? (sweep)", "no trial done yet", "0/5 trials, 1 failed", ""]
    assert broken["kind"] == "sweep" and broken["trials_total"] is None
    assert broken["note"] == "damaged sweep.json (not valid JSON): its trial count is unknown"
    assert table_cells(broken)[3] == "0/? trials, damaged sweep.json"
    assert new["note"] is None
    run = make_run(runs / "a-run", LONG)
    with pytest.raises(RunDirError, match="no finished trial yet"):
        compare_runs([run, started], tmp_path / "c.html")
    with pytest.raises(RunDirError, match=r"damaged sweep\.json \(not valid JSON\)"):
        compare_runs([run, damaged], tmp_path / "c.html")
    assert not (tmp_path / "c.html").exists()


@pytest.mark.parametrize(
    ("axes", "reason"),
    [
        (
            {"seeds": [], "grid": [["strategy.max_weight", 3]], "periods": []},
            "grid axis 1 is not [key, [values]]",
        ),
        ({"seeds": [], "grid": [["a"]], "periods": []}, "grid axis 1 is not [key, [values]]"),
        ({"seeds": [0, "1"], "grid": [], "periods": []}, "a seed is not a whole number"),
        ({"seeds": [0], "grid": [], "periods": ["2021"]}, "period 1 is not [start, end]"),
        ({"seeds": {}, "grid": [], "periods": []}, "its seeds, grid and periods are not lists"),
        ([], "no axes"),
    ],
)
def test_a_sweep_json_of_another_shape_is_listed_with_a_note(
    tmp_path: Path,
    axes: object,
    reason: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Review of issue 26: a grid entry ["key", 3] in sweep.json raised TypeError in runs
    list (a traceback; /runs answered 500). A sweep.json of any other shape is a listed sweep
    with its finished trials' figures, its total unknown and a note saying why."""
    runs = tmp_path / "runs"
    sweep = make_sweep(runs / "sweep-odd", tmp_path, TRIALS)
    doc = json.loads((sweep / "sweep.json").read_text(encoding="utf-8"))
    doc = axes if isinstance(axes, list) else {**doc, "axes": axes}
    (sweep / "sweep.json").write_text(json.dumps(doc), encoding="utf-8")
    (row,) = list_runs(runs)
    assert row["note"] == f"damaged sweep.json ({reason}): its trial count is unknown"
    totals = sorted(total(r["strategy"]) for r in TRIALS.values())
    assert (row["trials_done"], row["trials_total"], row["trials_failed"]) == (3, None, 1)
    assert row["median_return"] == pytest.approx(totals[1], abs=1e-15)
    assert table_cells(row)[3] == "3/? trials, 1 failed, damaged sweep.json"
    json.dumps(row, allow_nan=False)
    assert cli(["runs", "list", str(runs)], monkeypatch) == 0
    assert cli(["runs", "list", str(runs), "--json"], monkeypatch) == 0
    printed = capsys.readouterr()
    assert "Traceback" not in printed.err
    listed = json.loads(printed.out[printed.out.index("[") :])
    assert [r["note"] for r in listed] == [row["note"]]


def test_compare_sets_a_sweeps_median_trial_beside_a_run(folder: Path, tmp_path: Path) -> None:
    # Four finished trials: the median trial is the lower of the two middle ones.
    trials = {**TRIALS, "t0005": weekly_returns("2022-01-07", 40, seed=20)}
    sweep = make_sweep(folder / "sw", tmp_path, trials)
    ranked = sorted(trials, key=lambda t: total(trials[t]["strategy"]))
    middle = ranked[1]
    assert median_trial(sweep) == sweep / "trials" / middle
    out = tmp_path / "compare.html"
    page = compare_runs([folder / "a-long", sweep], out).read_text(encoding="utf-8")
    assert f"<th>metric</th><th>a-long</th><th>sw (median trial {middle})</th>" in page
    trial = total(trials[middle]["strategy"])
    assert cells(page, "total return") == [f"{total(LONG['strategy']):+.2%}", f"{trial:+.2%}"]
    totals = sorted(total(r["strategy"]) for r in trials.values())
    assert cells(page, "sweep: trials finished") == ["", "4 of 5"]
    median = (totals[1] + totals[2]) / 2
    assert cells(page, "sweep: median total return") == ["", f"{median:+.2%}"]
    assert cells(page, "sweep: total return range") == [
        "",
        f"{totals[0]:+.2%} to {totals[3]:+.2%}",
    ]
    share = np.mean([total(r["strategy"]) > total(r["equal_weight"]) for r in trials.values()])
    assert cells(page, "sweep: share beating 1/N") == ["", f"{share:.0%}"]
    assert "A sweep stands here as its median trial" in page
    plain = compare_runs([folder / "a-long", folder / "b-short"], tmp_path / "plain.html")
    assert "sweep:" not in plain.read_text(encoding="utf-8")
