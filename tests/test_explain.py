"""Explanations: Integrated Gradients on hand-made nets, completeness on trained LSTMs, and
`foliosim explain` on a run directory and a paper account."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from models.explain import baseline_prices, explain_window
from models.forecaster import train
from models.windows import Scaler
from simulator.backtest import run_backtest
from simulator.config import load_config
from simulator.report import write_run
from simulator.rundir import read_predictions
from tests.conftest import PAPER_CONFIG, PAPER_FAST, PaperModel
from tests.helpers import advance, cli, error_line, open_new
from tests.model_data import TRAIN_END, tiny, walk_closes

#: A quarter of the paper's test year, on the session's small paper models.
QUARTER = ["backtest.start=2022-07-01", "backtest.end=2022-09-30", "report.baselines="]


class Linear(nn.Module):
    """out = w . x + b: Integrated Gradients of a linear map are w_i (x_i - x0_i), exactly."""

    def __init__(self, w: list[float], b: float) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w))
        self.b = nn.Parameter(torch.tensor(b))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.w + self.b


def test_linear_net_attributions_are_weight_times_distance_in_return_units() -> None:
    scaler = Scaler("window", in_mean=0.1, in_std=0.5, out_mean=0.002, out_std=0.04)
    prices = np.array([80.0, 90.0, 100.0])
    e = explain_window(Linear([1.0, -2.0, 3.0], 0.5), scaler, prices)
    # inputs (p / 100 - 1 - 0.1) / 0.5 = [-0.6, -0.4, -0.2]; the flat baseline's are all -0.2.
    # out = 1(-0.6) - 2(-0.4) + 3(-0.2) + 0.5 = 0.1 -> return 0.1 * 0.04 + 0.002 = 0.006, and
    # the baseline's out = (1 - 2 + 3)(-0.2) + 0.5 = 0.1 too: the two weeks' pushes cancel.
    # attributions = w * (x - x0) * out_std = [1(-0.4), -2(-0.2), 3(0)] * 0.04.
    # (Captum's quadrature weights sum to 1 within ~1e-9 relative: hence 1e-10, not 1e-16.)
    assert e.attributions[:, 0] == pytest.approx([-0.016, 0.016, 0.0], abs=1e-10)
    assert e.prediction == pytest.approx(0.006, abs=1e-12)
    assert e.baseline_prediction == pytest.approx(0.006, abs=1e-12)
    assert e.steps == 64


def test_ticker_scaling_maps_the_output_through_the_last_close() -> None:
    scaler = Scaler("ticker", in_mean=100.0, in_std=10.0, out_mean=100.0, out_std=10.0)
    prices = np.array([90.0, 110.0, 100.0])  # inputs [-1, 1, 0]; baseline [0, 0, 0]
    e = explain_window(Linear([2.0, 1.0, 1.0], 0.0), scaler, prices)
    # out = -2 + 1 + 0 = -1 -> price 100 - 10 = 90 -> return -10%; baseline out 0 -> 0%.
    assert e.prediction == pytest.approx(-0.10, abs=1e-12)
    assert e.baseline_prediction == pytest.approx(0.0, abs=1e-12)
    assert e.attributions[:, 0] == pytest.approx([-0.2, 0.1, 0.0], abs=1e-9)


@pytest.mark.parametrize(
    ("arch", "scaling"),
    [
        ("lstm", "window"),
        ("lstm", "ticker"),
        ("lstm_attention", "window"),
        ("transformer", "window"),
    ],
)
def test_completeness_on_a_trained_network(arch: str, scaling: str) -> None:
    closes = walk_closes()
    model, _ = train(closes, tiny(arch=arch, scaling=scaling, max_epochs=5), TRAIN_END)
    as_of = closes.index[-1]
    prices = closes["AAA"].iloc[-8:].to_numpy()
    e = explain_window(model.net_for("AAA"), model.scalers["AAA"], prices)
    assert abs(e.attributions.sum() - (e.prediction - e.baseline_prediction)) < 1e-4
    assert e.gap < 1e-6 and e.attributions.shape == (8, 1)
    # The same forecast as the model's own (float32) predict, and the baseline's is the
    # model's forecast for a flat history.
    assert e.prediction == pytest.approx(model.predict(closes, as_of, ["AAA"])["AAA"], abs=1e-6)
    flat = closes[["AAA"]].copy()
    flat.iloc[-8:, 0] = baseline_prices(prices)
    baseline = model.predict(flat, as_of, ["AAA"])["AAA"]
    assert e.baseline_prediction == pytest.approx(baseline, abs=1e-6)
    if scaling == "window":
        assert e.attributions[-1, 0] == 0.0  # the last close is the level of reference
    net = model.net_for("AAA")
    if arch == "lstm_attention":  # the network's own weights over the 8 weeks
        with torch.inference_mode():
            own = net.attention(torch.from_numpy(model.scalers["AAA"].inputs(prices[None, :])))
        assert e.attention is not None and e.attention.sum() == pytest.approx(1.0, abs=1e-12)
        assert e.attention == pytest.approx(own[0].numpy(), abs=1e-6)
    else:
        assert e.attention is None


def test_bad_windows_are_refused() -> None:
    scaler = Scaler("window", 0.0, 1.0, 0.0, 1.0)
    for bad in (np.array([1.0, np.nan]), np.array([1.0, -2.0]), np.ones((2, 2))):
        with pytest.raises(ValueError, match="positive, finite prices"):
            explain_window(Linear([1.0, 1.0], 0.0), scaler, bad)


@pytest.fixture(scope="module")
def lstm_run(paper_model: PaperModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A quarter of the paper's year on the session's small models, as a run directory."""
    cfg = load_config(PAPER_CONFIG, [*PAPER_FAST, f"model.version={paper_model.ref}", *QUARTER])
    out = tmp_path_factory.mktemp("explain") / "run"
    return write_run(run_backtest(cfg, paper_model.workspace), out, tearsheet=False)


def test_explain_a_run_week_as_json(
    lstm_run: Path,
    paper_model: PaperModel,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("FOLIOSIM_WORKSPACE", str(paper_model.workspace))
    assert cli(["explain", str(lstm_run), "--week", "2022-08-10", "--json"], monkeypatch) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["week"] == "2022-08-12"  # the decision week holding the day
    orders = pd.read_csv(lstm_run / "orders.csv")
    traded = sorted(set(orders.loc[orders["date_submitted"] == "2022-08-12", "ticker"]))
    assert sorted(doc["tickers"]) == traded and traded
    recorded = read_predictions(lstm_run).set_index(["week", "ticker"])["predicted_return"]
    for ticker, t in doc["tickers"].items():
        attributions = np.array(t["attributions"])
        assert attributions.shape == (24, 1) and t["features"] == ["close"]
        assert abs(attributions.sum() - (t["prediction"] - t["baseline_prediction"])) < 1e-4
        assert t["prediction"] == pytest.approx(
            recorded[(pd.Timestamp("2022-08-12"), ticker)], abs=1e-6
        )
        assert t["input_weeks"][-1] == "2022-08-12" and len(t["input_weeks"]) == 24


def test_explain_in_words_and_for_one_ticker(
    lstm_run: Path,
    paper_model: PaperModel,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("FOLIOSIM_WORKSPACE", str(paper_model.workspace))
    orders = pd.read_csv(lstm_run / "orders.csv")
    ticker = str(orders.loc[orders["date_submitted"] == "2022-08-12", "ticker"].iloc[0])
    argv = ["explain", str(lstm_run), "--week", "2022-08-12", "--ticker", ticker]
    assert cli(argv, monkeypatch) == 0
    out = capsys.readouterr().out
    assert "decision week 2022-08-12" in out
    assert out.count("for next week") == 1 and f"{ticker}: " in out
    assert "a flat price history would have given" in out


def test_explain_bad_input(
    lstm_run: Path,
    paper_model: PaperModel,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("FOLIOSIM_WORKSPACE", str(paper_model.workspace))
    run = str(lstm_run)
    cases = [
        (["explain", run, "--week", "2019-01-04"], "placed no orders in the week of 2019-01-04"),
        (["explain", "--week", "2022-08-12"], "give a run directory or --account NAME"),
        (["explain", run, "--account", "a", "--week", "2022-08-12"], "one of the two"),
        (["explain", run], "give the decision week with --week"),
        (["explain", run, "--week", "2022-08-12", "--ticker", "ZZZ"], "no order for ZZZ"),
        (["explain", run, "--week", "12/08/2022"], "--week"),
        (["explain", str(tmp_path / "nope"), "--week", "2022-08-12"], "nope"),
    ]
    for argv, expected in cases:
        assert cli(argv, monkeypatch) == 2, argv
        assert expected in error_line(capsys), argv
    # A run without forecasts, and a run whose data changed since.
    ew = load_config(PAPER_CONFIG, [*PAPER_FAST, "backtest.strategy=equal_weight", *QUARTER])
    ew_run = write_run(run_backtest(ew, paper_model.workspace), tmp_path / "ew", tearsheet=False)
    assert cli(["explain", str(ew_run), "--week", "2022-08-12"], monkeypatch) == 2
    assert "makes no forecasts to explain" in error_line(capsys)
    from simulator.errors import RunDirError
    from simulator.explain import explain_week, from_run

    with pytest.raises(RunDirError, match="recorded"):
        traded = from_run(lstm_run, paper_model.workspace)
        forecasts = traded.forecasts.assign(predicted_return=traded.forecasts.predicted_return + 1)
        explain_week(
            type(traded)(traded.label, traded.session, forecasts, traded.orders, traded.load),
            pd.Timestamp("2022-08-12"),
        )


def test_explain_a_paper_account_week(
    paper_model: PaperModel, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    workspace = paper_model.workspace
    monkeypatch.setenv("FOLIOSIM_WORKSPACE", str(workspace))
    cfg = load_config(PAPER_CONFIG, [*PAPER_FAST, f"model.version={paper_model.ref}", *QUARTER])
    open_new(workspace, "explained", cfg)
    argv = ["explain", "--account", "explained", "--week", "2022-07-08", "--json"]
    assert cli(argv, monkeypatch) == 2
    assert "has no recorded weeks yet" in error_line(capsys)
    advance(workspace, "explained", weeks=3)
    assert cli(argv, monkeypatch) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["source"] == "account 'explained'" and doc["week"] == "2022-07-08"
    journal_orders = doc["tickers"]
    assert journal_orders
    for t in journal_orders.values():
        assert abs(np.sum(t["attributions"]) - (t["prediction"] - t["baseline_prediction"])) < 1e-4
        assert t["model_version"] == paper_model.ref
    # The account's tear sheet has its Explanations too, from the journal's forecasts.
    from simulator.rundir import read_explanations

    out = workspace / "sheet"
    argv = ["replay", "status", "--account", "explained", "--html", "--out", str(out)]
    assert cli(argv, monkeypatch) == 0
    explained = read_explanations(out)
    assert explained is not None and explained["features"] == ["close"]
    assert explained["permutation"]["weeks"] == 2  # the decisions with a return after them
    for p in explained["positions"]:
        gap = np.sum(p["attributions"]) - (p["prediction"] - p["baseline_prediction"])
        assert abs(gap) < 1e-4
    assert "<h3>Explanations</h3>" in (out / "tearsheet.html").read_text(encoding="utf-8")


def test_a_runs_explanations_recompute_from_its_files(
    lstm_run: Path, paper_model: PaperModel
) -> None:
    """explanations.json: the MSE from predictions.csv, the shuffled forecasts from the
    seeded permutation of the decision weeks, and IG of the largest last positions."""
    from models.registry import Registry
    from simulator.data import load_daily, make_weekly
    from simulator.rundir import read_explanations
    from simulator.summary import read_summary

    doc = read_explanations(lstm_run)
    assert doc is not None
    predictions = read_predictions(lstm_run)
    weeks = pd.DatetimeIndex(sorted(set(predictions["week"])))
    realised = predictions["actual_close"] / predictions["last_close"] - 1.0
    scored = realised.notna() & predictions["predicted_return"].notna()
    perm = doc["permutation"]["features"][0]
    mse = ((predictions["predicted_return"] - realised)[scored] ** 2).mean()
    assert perm["feature"] == "close" and perm["mse"] == pytest.approx(mse, rel=1e-12)
    cfg = load_config(lstm_run / "config.toml")
    closes = make_weekly(load_daily(cfg.data, cfg.report.risk_free, paper_model.workspace)).closes()
    model = Registry(paper_model.workspace).load(paper_model.ref)
    source = weeks[np.random.default_rng(cfg.model.seed).permutation(len(weeks))]
    tickers = sorted(set(predictions["ticker"]))
    errors = []
    for week, src in zip(weeks, source, strict=True):
        shuffled = model.predict(closes, src, tickers)
        rows = predictions[predictions["week"] == week].set_index("ticker")
        r = (rows["actual_close"] / rows["last_close"] - 1.0).reindex(tickers)
        errors.extend(((shuffled - r) ** 2).dropna())
    assert perm["mse_shuffled"] == pytest.approx(np.mean(errors), rel=1e-9)
    summary = read_summary(lstm_run / "summary.json")
    assert perm["strategy_return"] == pytest.approx(
        summary.series["strategy"].total_return, abs=1e-12
    )
    last = predictions[predictions["week"] == weeks[-1]]
    top = last.loc[last["target"].abs().sort_values(ascending=False).index[:3], "ticker"]
    assert [p["ticker"] for p in doc["positions"]] == list(top)
    for p in doc["positions"]:
        gap = np.sum(p["attributions"]) - (p["prediction"] - p["baseline_prediction"])
        assert abs(gap) < 1e-4


def test_an_attention_models_run_shows_its_attention_beside_the_attributions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from simulator.rundir import read_explanations

    sets = [*PAPER_FAST, "data.tickers=AAPL,MSFT,PEP", "model.arch=lstm_attention", *QUARTER]
    workspace = tmp_path / "ws"
    run = write_run(run_backtest(load_config(PAPER_CONFIG, sets), workspace), tmp_path / "run")
    doc = read_explanations(run)
    assert doc is not None and doc["positions"]
    for p in doc["positions"]:
        assert len(p["attention"]) == 24 and sum(p["attention"]) == pytest.approx(1.0)
    page = (run / "tearsheet.html").read_text(encoding="utf-8")
    assert "they are not an\nattribution" in page and "attention weights of the largest" in page
    # The summary, the tear sheet and the registry's list name the architecture.
    from simulator.summary import read_summary

    assert [m.arch for m in read_summary(run / "summary.json").models] == ["lstm_attention"]
    assert "</code> (lstm_attention, small per_ticker, trained on" in page
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("FOLIOSIM_WORKSPACE", str(workspace))
    assert cli(["models", "list"], monkeypatch) == 0
    assert "lstm_attention" in capsys.readouterr().out
    assert cli(["explain", str(run), "--week", doc["week"]], monkeypatch) == 0
    assert "not an attribution" in capsys.readouterr().out


def test_a_run_on_every_feature_explains_each_and_shuffles_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A real backtest of a Sharpe-loss model reading all five features: the tear sheet's
    heatmap has a column per feature, the permutation table a row per feature, and explain
    recomputes each traded week's centred score from the registry."""
    from models.features import FEATURES
    from simulator.rundir import read_explanations
    from simulator.summary import read_summary

    features = "model.features=" + ",".join(FEATURES)
    sets = [*PAPER_FAST, "data.tickers=AAPL,MSFT,PEP", features, "model.loss=sharpe", *QUARTER]
    workspace = tmp_path / "ws"
    run = write_run(run_backtest(load_config(PAPER_CONFIG, sets), workspace), tmp_path / "run")
    doc = read_explanations(run)
    assert doc is not None and doc["features"] == list(FEATURES)
    assert [f["feature"] for f in doc["permutation"]["features"]] == list(FEATURES)
    for p in doc["positions"]:
        assert np.array(p["attributions"]).shape == (24, 5)
    summary = read_summary(run / "summary.json")
    assert summary.prediction is not None and summary.prediction.scores
    assert summary.prediction.mse_ratio is None
    page = (run / "tearsheet.html").read_text(encoding="utf-8")
    assert "position scores" in page and "range" in page
    monkeypatch.setenv("FOLIOSIM_WORKSPACE", str(workspace))
    assert cli(["explain", str(run), "--week", doc["week"], "--json"], monkeypatch) == 0
    out = json.loads(capsys.readouterr().out)
    for t in out["tickers"].values():
        assert t["features"] == list(FEATURES)
        gap = np.sum(t["attributions"]) - (t["prediction"] - t["baseline_prediction"])
        assert abs(gap) < 1e-4
