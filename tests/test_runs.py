"""`foliosim runs list` and `runs compare` (simulator.runs), on hand-made run directories."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from simulator.errors import RunDirError
from simulator.runs import (
    TABLE_COLUMNS,
    compare_runs,
    default_compare_path,
    list_runs,
    table_cells,
)
from tests.helpers import browse, make_run, require_chromium, weekly_returns

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
