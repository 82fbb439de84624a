"""The paper's experiment end to end on the real paper12 data, and what must hold around it.

- ``examples/paper2023.toml`` offline on paper12: the run's period, the NASDAQ figure, the
  tear sheet's sections, the model tags on orders and forecasts (the issue's contract).
- Look-ahead on real data: with a pinned registry version, changing or deleting every price
  after week t leaves the forecasts, target weights, weights and orders up to t unchanged.
- Walk-forward retraining: the models a run trains, when each one decides, and their reuse.
- User errors of the LSTM run (one line, exit 2, nothing written), ``foliosim report`` without
  the registry, FRED parsing and the yahoo source offline.

Tests that reuse the session's registered model (``paper_model``) pin it or run its exact
config, so they never add versions to its workspace; tests that train use their own.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simulator.backtest import run_backtest
from simulator.config import load_config
from simulator.data.sources import parse_fred_csv
from simulator.errors import DataError
from simulator.walkforward import FORECAST_COLUMNS, PREDICTION_COLUMNS, retrain_ends
from tests.conftest import PAPER12, PAPER_CONFIG, PAPER_FAST, REPO, PaperModel, require_paper12
from tests.helpers import assert_nothing_written, cli, error_line, sets

#: The issue's command line, offline: `foliosim backtest examples/paper2023.toml --set ...`.
ISSUE_SETS = ["data.source=csv", "data.path=../shared/data/paper12"]
#: PAPER_FAST's [model] overrides (small 3-epoch LSTMs named paper-small).
FAST_MODEL = [s for s in PAPER_FAST if s.startswith("model.")]
FIRST_DECISION = pd.Timestamp("2022-07-01")
LAST_WEEK = pd.Timestamp("2023-06-23")
#: The paper's published Table 2 figures (seed 001), as the reference table prints them.
PAPER_FIGURES = ["116.21", "39.77", "21.25", "2.944", "1.337", "0.780", "23.46", "-13.10"]


def table(page: str, table_id: str) -> str:
    """The HTML of ``<table id="table_id">`` in a tear sheet (fails when absent)."""
    found = re.search(rf'<table id="{table_id}">.*?</table>', page, flags=re.DOTALL)
    assert found is not None, f'no <table id="{table_id}"> in the tear sheet'
    return found.group(0)


def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")} if folder.exists() else set()


def paper12_adj_closes(tickers: list[str]) -> pd.DataFrame:
    """Daily adj_close per ticker, read straight from the CSV files (no foliosim code)."""
    return pd.DataFrame(
        {
            t: pd.read_csv(PAPER12 / f"{t}.csv", index_col="date", parse_dates=["date"])[
                "adj_close"
            ]
            for t in tickers
        }
    )


@pytest.fixture
def shared_workspace(paper_model: PaperModel, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The session model's workspace as FOLIOSIM_WORKSPACE (nothing may be trained into it)."""
    monkeypatch.setenv("FOLIOSIM_WORKSPACE", str(paper_model.workspace))
    return paper_model.workspace


# --- 1. the paper config end to end ---------------------------------------------------------


@pytest.mark.slow
def test_paper_config_end_to_end_on_paper12(
    paper_model: PaperModel,
    shared_workspace: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(REPO)  # the issue's relative data.path
    out = tmp_path / "paper"
    before = files_under(shared_workspace / "mlartifacts")
    argv = ["backtest", "examples/paper2023.toml", *sets(ISSUE_SETS + FAST_MODEL)]
    assert cli([*argv, "--out", str(out)], monkeypatch) == 0
    printed = capsys.readouterr().out
    assert f"run directory: {out}" in printed
    assert files_under(shared_workspace / "mlartifacts") == before  # nothing trained

    summary = json.loads((out / "summary.json").read_text())
    assert summary["weeks"] == 51
    assert (summary["start"], summary["end"]) == ("2022-07-08", "2023-06-23")
    assert summary["first_decision"] == "2022-07-01"
    assert summary["fill"] == "close" and summary["strategy_name"] == "lstm_signal"
    assert summary["benchmark_name"] == "IXIC" and summary["risk_free"] == "DGS2"
    assert summary["reference"] == "paper2023"
    assert len(summary["tickers"]) == 12

    # The paper's NASDAQ figure: the close of 2023-06-23 over that of 2022-07-01.
    ixic = pd.read_csv(PAPER12 / "IXIC.csv", index_col="date")["close"]
    expected = ixic["2023-06-23"] / ixic["2022-07-01"] - 1
    assert summary["benchmark"]["total_return"] == pytest.approx(expected, rel=1e-9)
    assert round(summary["benchmark"]["total_return"] * 100, 2) == 21.25

    # The model: the session's version, reused, deciding every week.
    (used,) = summary["models"]
    assert used["version"] == paper_model.ref
    assert used["trained_by_this_run"] is False
    assert used["train_end"] == "2022-06-24"
    assert (used["first_decision"], used["last_decision"]) == ("2022-07-01", "2023-06-16")
    assert used["decisions"] == 51

    orders = pd.read_csv(out / "orders.csv", keep_default_na=False)
    assert len(orders) > 0 and (orders["model_version"] == paper_model.ref).all()
    assert used["orders"] == len(orders)
    assert (orders["date_submitted"] == orders["date_filled"]).all()  # fill = close

    # predictions.csv: 12 tickers x 51 decision weeks; actual_close = next week's close.
    pred = pd.read_csv(out / "predictions.csv", parse_dates=["week"])
    assert list(pred.columns) == PREDICTION_COLUMNS
    assert len(pred) == 12 * 51
    weeks = sorted(pred["week"].unique())
    assert len(weeks) == 51 and weeks[0] == FIRST_DECISION
    assert (pred["model_version"] == paper_model.ref).all()
    assert pred["predicted_close"].notna().all()
    following = dict(zip(weeks, [*weeks[1:], LAST_WEEK], strict=True))
    adj = paper12_adj_closes(sorted(set(pred["ticker"])))
    daily = adj.stack()  # (date, ticker) -> adj_close
    last = daily.reindex(pd.MultiIndex.from_arrays([pred["week"], pred["ticker"]])).to_numpy()
    later = pred["week"].map(following)
    nxt = daily.reindex(pd.MultiIndex.from_arrays([later, pred["ticker"]])).to_numpy()
    assert not np.isnan(last).any() and not np.isnan(nxt).any()
    np.testing.assert_allclose(pred["last_close"], last, rtol=1e-9)
    np.testing.assert_allclose(pred["actual_close"], nxt, rtol=1e-9)
    np.testing.assert_allclose(
        pred["predicted_return"], pred["predicted_close"] / pred["last_close"] - 1, rtol=1e-6
    )
    # Targets: gross 1, cap 1/3 (shorts allowed), every week.
    gross = pred.groupby("week")["target"].apply(lambda w: w.abs().sum())
    np.testing.assert_allclose(gross, 1.0, atol=1e-6)
    assert pred["target"].abs().max() <= 1 / 3 + 1e-9

    scored = pred.dropna(subset=["predicted_close", "actual_close", "last_close"])
    models = json.loads((out / "models.json").read_text())
    assert models["used"] == summary["models"]
    assert [v["version"] for v in models["versions"]] == [paper_model.ref]
    assert models["as_traded"]["all"]["n"] == len(scored) == 612
    assert summary["prediction"]["forecasts"] == 612
    confidence = summary["confidence"]["over_equal_weight"]
    assert confidence["weeks"] == 51 and 0.0 <= confidence["psr"] <= 1.0

    page = (out / "tearsheet.html").read_text()
    assert "Returns and risk:" in page
    table(page, "table2")
    reference = table(page, "reference")
    for figure in PAPER_FIGURES:
        assert f"<td>{figure}</td>" in reference, figure
    assert "<td>21.25</td><td>21.25</td><td>+0.00</td>" in reference  # the NASDAQ, ours: paper
    assert "Our figures beside the paper" in page
    assert "<h3>Predictions</h3>" in page
    assert "<b>all</b>" in table(page, "prediction")
    assert "Leakage audit" in page
    leakage = table(page, "leakage")
    assert paper_model.ref in leakage and "LEAK" not in leakage
    assert "ok: train_end before the first decision" in leakage
    assert "probabilistic Sharpe ratio" in page


# --- 2. look-ahead on real data ----------------------------------------------------------------

#: The week the look-ahead test cuts at (a Friday in the middle of the test year).
CUT = pd.Timestamp("2023-01-13")
PRICE_FIELDS = (1, 2, 3, 4, 5)  # open, high, low, close, adj_close in the CSV layout


def _rewrite_after(dst: Path, *, delete: bool, seed: int = 7) -> Path:
    """A copy of paper12 whose rows after CUT are deleted, or rescaled by 1.5 x a random
    factor per row and file (every price column of every file: stocks, IXIC and DGS2).
    Rows up to CUT are copied as text, byte for byte."""
    rng = np.random.default_rng(seed)
    dst.mkdir()
    cut = CUT.date().isoformat()
    for src in sorted(PAPER12.glob("*.csv")):
        header, *rows = src.read_text().splitlines()
        kept = [header]
        for row in rows:
            if row[:10] <= cut:
                kept.append(row)
            elif not delete:
                cells = row.split(",")
                factor = 1.5 * rng.uniform(0.6, 1.4)
                for i in PRICE_FIELDS:
                    if cells[i]:
                        cells[i] = repr(float(cells[i]) * factor)
                kept.append(",".join(cells))
        (dst / src.name).write_text("\n".join(kept) + "\n")
    return dst


@pytest.fixture(scope="module")
def altered_paper12(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    require_paper12()
    root = tmp_path_factory.mktemp("altered")
    return {
        "changed": _rewrite_after(root / "changed", delete=False),
        "deleted": _rewrite_after(root / "deleted", delete=True),
    }


@dataclass(frozen=True)
class Pinned:
    """What a backtest decided, in memory (the content of the run directory's files)."""

    predictions: pd.DataFrame
    orders: pd.DataFrame
    weights: pd.DataFrame
    returns: pd.DataFrame


def _pinned_run(paper_model: PaperModel, path: Path, fill: str, end: str | None) -> Pinned:
    extra = [f"data.path={path}", f"model.version={paper_model.ref}", f"backtest.fill={fill}"]
    if end is not None:
        extra += [f"data.end={end}", f"backtest.end={end}"]
    cfg = load_config(PAPER_CONFIG, [*PAPER_FAST, *extra])
    result = run_backtest(cfg, paper_model.workspace)
    assert [m.version for m in result.summary.models] == [paper_model.ref]
    assert result.predictions is not None
    return Pinned(result.predictions, result.orders, result.weights, result.returns)


def _rows(frame: pd.DataFrame, keep: pd.Series) -> pd.DataFrame:
    return frame.loc[keep].reset_index(drop=True)


@pytest.mark.slow
@pytest.mark.parametrize("fill", ["close", "next_open"])
def test_prices_after_week_t_change_nothing_up_to_t(
    paper_model: PaperModel, altered_paper12: dict[str, Path], fill: str
) -> None:
    base = _pinned_run(paper_model, PAPER12, fill, None)
    weeks = pd.DatetimeIndex(sorted(base.predictions["week"].unique()))
    assert CUT in weeks and weeks[0] < CUT < weeks[-1]
    before_cut = weeks[weeks < CUT][-1]
    runs = {
        "changed": _pinned_run(paper_model, altered_paper12["changed"], fill, None),
        "deleted": _pinned_run(
            paper_model, altered_paper12["deleted"], fill, CUT.date().isoformat()
        ),
    }
    for how, other in runs.items():
        # The last decision both runs made: CUT itself, or the week before (deleted data end
        # at CUT, and the last week of a backtest is not a decision week).
        decided = CUT if how == "changed" else before_cut
        made = other.predictions["week"]
        assert decided in set(made) and (how == "changed" or made.max() == decided), how

        # Forecasts and target weights up to the last common decision: exactly equal.
        # actual_close is the next week's close, known only for weeks before CUT.
        cols = [*FORECAST_COLUMNS, "target"]
        a, b = base.predictions, other.predictions
        pd.testing.assert_frame_equal(
            _rows(a, a["week"] <= decided)[cols],
            _rows(b, b["week"] <= decided)[cols],
            check_exact=True,
            obj=f"{how} forecasts",
        )
        pd.testing.assert_frame_equal(
            _rows(a, a["week"] < CUT)[PREDICTION_COLUMNS],
            _rows(b, b["week"] < CUT)[PREDICTION_COLUMNS],
            check_exact=True,
            obj=f"{how} predictions",
        )

        # Orders whose decision and fill are at or before CUT: next_open fills a decision of
        # week d at the open of d+1, so only decisions before CUT have filled by then.
        order_cut = decided if fill == "close" else min(decided, before_cut)
        a, b = base.orders, other.orders
        mine = _rows(a, pd.to_datetime(a["date_submitted"]) <= order_cut)
        theirs = _rows(b, pd.to_datetime(b["date_submitted"]) <= order_cut)
        assert len(mine) > 0 and (pd.to_datetime(mine["date_filled"]) <= CUT).all()
        pd.testing.assert_frame_equal(mine, theirs, check_exact=True, obj=f"{how} orders")

        # Weights after each week's fills: at close they follow that week's decision, at
        # next_open the week before's.
        weight_cut = decided if fill == "close" else CUT
        a, b = base.weights, other.weights
        pd.testing.assert_frame_equal(
            _rows(a, pd.to_datetime(a["date"]) <= weight_cut),
            _rows(b, pd.to_datetime(b["date"]) <= weight_cut),
            check_exact=True,
            obj=f"{how} weights",
        )
        pd.testing.assert_frame_equal(
            base.returns.loc[:CUT], other.returns.loc[:CUT], check_exact=True, obj=f"{how} returns"
        )

    # The test is not vacuous: after CUT the changed prices changed the forecasts and returns.
    a, b = base.predictions, runs["changed"].predictions
    later_a, later_b = _rows(a, a["week"] > CUT), _rows(b, b["week"] > CUT)
    assert len(later_a) == len(later_b) > 0
    assert (later_a["last_close"] != later_b["last_close"]).all()
    assert (later_a["predicted_return"] != later_b["predicted_return"]).mean() > 0.9
    after = base.returns.index > CUT
    changed = runs["changed"].returns
    assert (base.returns.loc[after, "strategy"] != changed.loc[after, "strategy"]).any()
    assert base.returns.index[-1] == LAST_WEEK and runs["deleted"].returns.index[-1] == CUT


# --- 3. walk-forward retraining ----------------------------------------------------------------

WALK_FORWARD = [
    "data.source=csv",
    f"data.path={PAPER12}",
    "data.tickers=AAPL,MSFT,JPM",
    "data.start=2012-01-01",
    "model.name=walk-forward",
    "model.preset=small",
    "model.max_epochs=2",
    "model.retrain_every=13",
]


@dataclass(frozen=True)
class WalkForward:
    workspace: Path
    first: Path
    second: Path
    registered: list[str]


@pytest.fixture(scope="module")
def walk_forward(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WalkForward]:
    """examples/paper2023.toml on 3 tickers with retrain_every = 13, run twice in a fresh
    workspace: the first run trains every model, the second reuses them."""
    require_paper12()
    from models.registry import Registry

    root = tmp_path_factory.mktemp("walk-forward")
    workspace = root / "ws"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FOLIOSIM_WORKSPACE", str(workspace))
        mp.setenv("MPLBACKEND", "Agg")
        argv = ["backtest", str(PAPER_CONFIG), *sets(WALK_FORWARD)]
        assert cli([*argv, "--out", str(root / "first")], mp) == 0
        assert cli([*argv, "--out", str(root / "second")], mp) == 0
    registered = [v.ref for v in Registry(workspace).versions()]
    yield WalkForward(workspace, root / "first", root / "second", registered)


@pytest.mark.slow
def test_walk_forward_trains_on_schedule_and_reuses(walk_forward: WalkForward) -> None:
    first = json.loads((walk_forward.first / "summary.json").read_text())
    returns = pd.read_csv(walk_forward.first / "returns.csv", parse_dates=["date"])
    decisions = pd.DatetimeIndex([FIRST_DECISION, *returns["date"].iloc[:-1]])
    assert len(decisions) == 51 and returns["date"].iloc[-1] == LAST_WEEK

    ends = retrain_ends(pd.Timestamp("2022-06-24"), decisions, 13)
    assert len(ends) == 4  # the first model, then one after decisions 13, 26 and 39
    models = first["models"]
    assert len(models) == len(ends)
    assert [m["train_end"] for m in models] == [e.date().isoformat() for e in ends]
    assert all(m["trained_by_this_run"] for m in models)
    versions = [m["version"] for m in models]
    assert versions == [f"walk-forward/{k}" for k in range(1, 5)]
    assert walk_forward.registered == versions  # the second run registered nothing
    for k, m in enumerate(models):
        mine = decisions[decisions > ends[k]]
        if k + 1 < len(ends):
            mine = mine[mine <= ends[k + 1]]
        assert m["train_end"] < m["first_decision"]
        assert m["first_decision"] == mine[0].date().isoformat()
        assert m["last_decision"] == mine[-1].date().isoformat()
        assert m["decisions"] == len(mine)
    assert [m["decisions"] for m in models] == [13, 13, 13, 12]

    def expected_version(week: pd.Timestamp) -> str:
        return [v for v, e in zip(versions, ends, strict=True) if e < week][-1]

    # Every forecast and every order carries the model in force that week: the one with the
    # latest train_end strictly before it, switching the week after each retrain date.
    pred = pd.read_csv(walk_forward.first / "predictions.csv", parse_dates=["week"])
    assert len(pred) == 3 * 51
    assert (pred["model_version"] == pred["week"].map(expected_version)).all()
    orders = pd.read_csv(
        walk_forward.first / "orders.csv", parse_dates=["date_submitted"], keep_default_na=False
    )
    assert (orders["model_version"] == orders["date_submitted"].map(expected_version)).all()
    for k in range(1, len(ends)):
        retrain, after = ends[k], decisions[decisions > ends[k]][0]
        assert set(pred.loc[pred["week"] == retrain, "model_version"]) == {versions[k - 1]}
        assert set(pred.loc[pred["week"] == after, "model_version"]) == {versions[k]}
    for m in models:
        assert m["orders"] == int((orders["model_version"] == m["version"]).sum()) > 0

    page = (walk_forward.first / "tearsheet.html").read_text()
    leakage = table(page, "leakage")
    assert all(v in leakage for v in versions) and "LEAK" not in leakage

    # The second run reuses every version and trades exactly as the first.
    second = json.loads((walk_forward.second / "summary.json").read_text())
    assert [m["version"] for m in second["models"]] == versions
    assert not any(m["trained_by_this_run"] for m in second["models"])
    for name in ("returns.csv", "orders.csv", "weights.csv", "predictions.csv"):
        one = (walk_forward.first / name).read_bytes()
        assert one == (walk_forward.second / name).read_bytes(), name


# --- 4. user errors of an LSTM run ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["model.version=paper-small/1", "model.retrain_every=4"], "model.retrain_every"),
        (["model.train_end=2022-07-01"], "is not before the first decision week 2022-07-01"),
        (["model.train_end=2022-07-06"], "is not before the first decision week 2022-07-01"),
    ],
)
def test_config_errors_of_an_lstm_run(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    match: str,
) -> None:
    """Refused before any training, in the test's own (empty) workspace."""
    require_paper12()
    out = tmp_path / "never"
    argv = ["backtest", str(PAPER_CONFIG), *sets(PAPER_FAST + extra), "--out", str(out)]
    assert cli(argv, monkeypatch) == 2
    assert match in error_line(capsys)
    assert_nothing_written(out)
    assert not (tmp_path / "ws" / "mlartifacts").exists()  # nothing trained


@pytest.mark.slow
@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["model.version=paper-smal/1"], "did you mean 'paper-small'"),
        (["model.version=paper-small/99"], "there is no version 99"),
        (["backtest.start=2022-06-24", "model.version={ref}"], "not before the first decision"),
        (["backtest.start=2022-06-01", "model.version={ref}"], "trained on data up to 2022-06-24"),
    ],
)
def test_pinned_version_errors(
    paper_model: PaperModel,
    shared_workspace: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    match: str,
) -> None:
    out = tmp_path / "never"
    items = [e.format(ref=paper_model.ref) for e in extra]
    before = files_under(shared_workspace)
    argv = ["backtest", str(PAPER_CONFIG), *sets(PAPER_FAST + items), "--out", str(out)]
    assert cli(argv, monkeypatch) == 2
    line = error_line(capsys)
    assert match in line
    if "backtest.start" in extra[0]:  # the LookAheadError of a pinned version
        assert paper_model.ref in line and "model.version" in line
    assert_nothing_written(out)
    assert files_under(shared_workspace) == before


# --- 5. foliosim report without the registry -----------------------------------------------------

SECTION_TABLES = ("table2", "reference", "prediction", "leakage")


@pytest.mark.slow
def test_report_rebuilds_an_lstm_tearsheet_without_the_registry(
    walk_forward: WalkForward,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = tmp_path / "run"
    shutil.copytree(walk_forward.first, run)
    shutil.rmtree(walk_forward.workspace)  # the registry that trained the models is gone
    original = (run / "tearsheet.html").read_text()
    (run / "tearsheet.html").unlink()
    monkeypatch.setenv("FOLIOSIM_WORKSPACE", str(tmp_path / "nowhere"))

    assert cli(["report", str(run)], monkeypatch) == 0
    assert f"tear sheet: {run / 'tearsheet.html'}" in capsys.readouterr().out
    rebuilt = (run / "tearsheet.html").read_text()
    for table_id in SECTION_TABLES:
        assert table(rebuilt, table_id) == table(original, table_id), table_id
    for heading in ("Returns and risk:", "Our figures beside the paper", "<h3>Predictions</h3>"):
        assert heading in rebuilt
    for heading in ("Leakage audit", "How sure is the result?", "Learning curves of"):
        assert heading in rebuilt
    assert not (tmp_path / "nowhere").exists()

    # A malformed models.json: one line, exit 2, the tear sheet left as it was.
    for broken in ('{"used": [', '{"used": []}'):
        (run / "models.json").write_text(broken)
        assert cli(["report", str(run)], monkeypatch) == 2
        assert "models.json" in error_line(capsys)
        assert (run / "tearsheet.html").read_text() == rebuilt


# --- 6. FRED and the yahoo source offline --------------------------------------------------------


def test_parse_fred_csv_values_and_gaps() -> None:
    text = (
        "observation_date,DGS2\n"
        "2023-01-03,4.40\n"
        "2023-01-04,.\n"
        "2023-01-05,\n"
        "2023-01-06, 4.27 \n"
        "2023-01-09,4.22\n"
    )
    frame = parse_fred_csv(text, "DGS2")
    assert list(frame.columns) == ["date", "open", "high", "low", "close", "adj_close", "volume"]
    assert frame["date"].dt.strftime("%Y-%m-%d").tolist() == [
        "2023-01-03",
        "2023-01-06",
        "2023-01-09",
    ]
    assert frame["close"].tolist() == [4.40, 4.27, 4.22]
    assert frame[["open", "high", "low", "adj_close", "volume"]].isna().all().all()


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("observation_date,DGS10\n2023-01-03,4.40\n", "unexpected table"),
        ("date,DGS2,extra\n2023-01-03,4.40,1\n", "unexpected table"),
        ("<html><body>Service unavailable</body></html>\n", "unexpected table"),
        ("observation_date,DGS2\n2023-01-03,.\n2023-01-04,.\n", "no values"),
        ("", "no readable CSV"),
    ],
)
def test_parse_fred_csv_refuses_what_is_not_a_fred_series(text: str, match: str) -> None:
    with pytest.raises(DataError, match=match):
        parse_fred_csv(text, "DGS2")


def test_parse_fred_csv_refuses_a_malformed_date() -> None:
    with pytest.raises(DataError):
        parse_fred_csv("observation_date,DGS2\n2023-01-03,4.40\nnot-a-date,4.41\n", "DGS2")


def _refuse(*args: object, **kwargs: object) -> None:
    raise OSError(101, "Network is unreachable")


def _cache_from_paper12(workspace: Path, names: list[str]) -> None:
    """The Yahoo cache of ``names``, filled from the paper12 CSV files (as if downloaded)."""
    from simulator.data.sources import _cache_path, _write_cache

    for name in names:
        frame = pd.read_csv(PAPER12 / f"{name}.csv", parse_dates=["date"])
        cols = ["open", "high", "low", "close", "adj_close", "volume"]
        frame[cols] = frame[cols].astype(float)
        _write_cache(
            frame, _cache_path(workspace, name), frame["date"].iloc[0], frame["date"].iloc[-1]
        )


@pytest.mark.parametrize("cached", [False, True])
def test_yahoo_source_with_dgs2_offline_is_one_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    cached: bool,
) -> None:
    """examples/paper2023.toml as shipped (yahoo prices, DGS2 from FRED) without a network:
    nothing cached -> Yahoo is unreachable; prices cached, DGS2 not -> FRED is unreachable."""
    require_paper12()
    workspace = tmp_path / "ws"
    tickers = ["AAPL", "MSFT", "JPM"]
    if cached:
        _cache_from_paper12(workspace, [*tickers, "IXIC"])
    before = files_under(workspace)
    monkeypatch.setattr(socket, "create_connection", _refuse)
    out = tmp_path / "never"
    extra = [f"data.tickers={','.join(tickers)}", "data.start=2012-01-01", *FAST_MODEL]
    argv = ["backtest", str(PAPER_CONFIG), *sets(extra), "--out", str(out)]
    assert cli(argv, monkeypatch) == 2
    line = error_line(capsys)
    assert ("cannot reach FRED" if cached else "cannot reach Yahoo Finance") in line
    assert "data.source=csv" in line
    assert_nothing_written(out)
    assert files_under(workspace) == before  # no cache file, no registry
