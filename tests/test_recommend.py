"""``foliosim recommend`` and ``foliosim analytics`` on the real paper12 data.

A recommendation on a fixed registry version is deterministic and point in time: changing or
deleting every price after the as-of week changes nothing. Its weights obey the profile; its
figures are the analytics module's, and the portfolio's weekly VaR and CVaR at its weights
those of ``strategies.risk``; the command line prints them and refuses bad input with one
line.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simulator.analytics import data_analytics, to_json_rows
from simulator.config import load_config
from simulator.data import load_daily, make_weekly
from simulator.errors import ConfigError
from simulator.plan import STRATEGIES
from simulator.recommend import Recommendation, cash_line, recommend, rule_line
from strategies.risk import cvar, risk_figures
from strategies.sizing import Limits, signal_weights
from tests.conftest import PAPER12, PAPER_CONFIG, PaperModel
from tests.helpers import cli, error_line, sets

AS_OF = dt.date(2023, 1, 13)


def _copy_with_future_changed(folder: Path, how: str) -> Path:
    """paper12 with every row after AS_OF doubled (``how="change"``) or removed."""
    folder.mkdir()
    for src in PAPER12.glob("*.csv"):
        frame = pd.read_csv(src)
        later = pd.to_datetime(frame["date"]) > pd.Timestamp(AS_OF)
        if how == "delete":
            frame = frame[~later]
        else:
            for col in ("open", "high", "low", "close", "adj_close"):
                frame.loc[later, col] = frame.loc[later, col] * 2.0
        frame.to_csv(folder / src.name, index=False)
    return folder


def test_recommend_is_deterministic_and_point_in_time(
    paper_model: PaperModel, tmp_path: Path
) -> None:
    cfg = load_config(PAPER_CONFIG, ["data.source=csv", f"data.path={PAPER12}"])
    cfg = cfg.model_copy(
        update={"model": cfg.model.model_copy(update={"version": paper_model.ref})}
    )
    ws = paper_model.workspace
    typed = recommend(cfg, ws, "moderate", AS_OF)
    first = typed.to_json()
    assert recommend(cfg, ws, "moderate", AS_OF) == typed
    assert typed.positions[0].predicted_return == typed.positions[0].score  # a model's
    assert first["as_of"] == "2023-01-13"
    assert first["model_version"] == paper_model.ref
    for how in ("change", "delete"):
        folder = _copy_with_future_changed(tmp_path / how, how)
        data = cfg.data.model_copy(update={"path": str(folder)})
        other = recommend(cfg.model_copy(update={"data": data}), ws, "moderate", AS_OF).to_json()
        assert other == first, how

    # The moderate profile: no shorts, every weight at most 0.25, gross at most 1.
    weights = [p["weight"] for p in first["positions"]]
    assert weights and min(weights) > 0 and max(weights) <= 0.25 + 1e-12
    assert first["gross_exposure"] <= 1.0 + 1e-12
    assert first["cash_weight"] == pytest.approx(1.0 - sum(weights), abs=1e-12)
    assert first["expected_volatility"] <= 0.15 + 1e-12  # scaled to the volatility target
    # Each position's figures are the analytics module's, as of the same week.
    weekly = make_weekly(load_daily(cfg.data, cfg.report.risk_free, ws))
    rows = {
        r["ticker"]: r
        for r in to_json_rows(data_analytics(weekly, "DGS2", pd.Timestamp(AS_OF), 52))
    }
    for p in first["positions"]:
        expected = {k: v for k, v in rows[p["ticker"]].items() if k != "ticker"}
        assert p["analytics"] == expected
        assert p["in_words"].startswith(f"{p['ticker']}: {p['risk']} risk")


def test_recommend_refuses_a_model_trained_after_the_week(paper_model: PaperModel) -> None:
    cfg = load_config(PAPER_CONFIG, ["data.source=csv", f"data.path={PAPER12}"])
    with pytest.raises(ConfigError, match="not before 2022-06-24"):
        recommend(cfg, paper_model.workspace, "aggressive", dt.date(2022, 6, 24), paper_model.ref)


def test_recommend_and_analytics_commands(
    paper_model: PaperModel,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("FOLIOSIM_WORKSPACE", str(paper_model.workspace))
    base = [str(PAPER_CONFIG), *sets(["data.source=csv", f"data.path={PAPER12}"])]
    base += ["--set", f"model.version={paper_model.ref}", "--as-of", "2023-01-13"]
    profile = tmp_path / "alice.toml"
    profile.write_text('[profile]\nname = "conservative"\nexclude = ["TSLA"]\n')
    assert cli(["recommend", *base, "--profile", str(profile), "--json"], monkeypatch) == 0
    doc = json.loads(capsys.readouterr().out)
    # The printed document is the typed one: it reads back with every key, and only them.
    assert Recommendation.model_validate(doc).to_json() == doc
    assert list(doc) == [key for key in Recommendation.model_fields if key in doc]
    assert doc["model_version"] == paper_model.ref
    assert doc["profile"]["name"] == "conservative" and doc["profile"]["exclude"] == ["TSLA"]
    assert "TSLA" not in {p["ticker"] for p in doc["positions"]}
    assert {"reason": "excluded", "ticker": "TSLA", "detail": "excluded by the profile"} in (
        doc["bounds"]
    )
    assert all(0 < p["weight"] <= 0.15 + 1e-12 for p in doc["positions"])

    assert cli(["recommend", *base, "--profile", "moderate"], monkeypatch) == 0
    out = capsys.readouterr().out
    assert "decided at the close of 2023-01-13" in out and "risk —" in out

    assert cli(["recommend", *base, "--profile", "reckless"], monkeypatch) == 2
    assert "not a preset" in error_line(capsys)

    assert cli(["analytics", *base, "--json"], monkeypatch) == 0
    stocks = json.loads(capsys.readouterr().out)
    assert stocks["as_of"] == "2023-01-13" and len(stocks["stocks"]) == 12
    assert cli(["analytics", *base], monkeypatch) == 0
    out = capsys.readouterr().out
    assert "risk —" in out
    assert "┃ Ticker" in out and "│ AAPL" in out  # a table, like the other commands


def test_profile_file_with_a_bad_value_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[profile]\nmax_drawdown = 1.5\n")
    argv = ["recommend", str(PAPER_CONFIG), "--set", "data.source=csv"]
    argv += ["--set", f"data.path={PAPER12}", "--set", "backtest.strategy=equal_weight"]
    assert cli([*argv, "--profile", str(bad)], monkeypatch) == 2
    assert "--profile" in error_line(capsys)


def test_recommend_shows_the_weekly_risk_of_its_weights(
    paper12: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    items = ["data.source=csv", f"data.path={paper12}", "backtest.strategy=equal_weight"]
    base = ["recommend", str(PAPER_CONFIG), *sets(items), "--as-of", AS_OF.isoformat()]
    assert cli([*base, "--profile", "moderate", "--json"], monkeypatch) == 0
    doc = json.loads(capsys.readouterr().out)
    weights = {p["ticker"]: p["weight"] for p in doc["positions"]}
    assert len(weights) == 7  # the 50% ceiling leaves 5 names out in January 2023
    # By hand: the last 52 weekly returns up to the as-of week at these weights (a missing
    # return counts as 0), then every figure of strategies.risk.
    cfg = load_config(PAPER_CONFIG, items)
    closes = make_weekly(load_daily(cfg.data, 0.0, tmp_path)).closes().loc[: pd.Timestamp(AS_OF)]
    names = list(weights)
    returns = (closes[names] / closes[names].shift(1) - 1).iloc[1:].tail(52).fillna(0.0)
    path = returns.to_numpy() @ np.array([weights[t] for t in names])
    assert doc["expected_risk"] == {"window": 52, "weeks": 52, **risk_figures(path)}
    hist = doc["expected_risk"]["historical"]
    assert hist["cvar_95"] == pytest.approx(cvar(path), rel=1e-15)

    assert cli([*base, "--profile", "moderate"], monkeypatch) == 0
    out = " ".join(capsys.readouterr().out.split())
    by = [doc["expected_risk"][m]["var_95"] for m in ("historical", "gaussian", "cornish_fisher")]
    line = " / ".join(f"{v:.1%}" for v in by)
    assert (
        "its weekly losses over the last 52 weeks at these weights (historical / Gaussian / "
        f"Cornish-Fisher): VaR 95% {line}, CVaR 95% "
    ) in out


# --- why the weights are what they are: the rule's line and the cash's ---------------------


def test_all_predicted_risers_regression_the_line_says_the_lowest_are_shorted() -> None:
    """Issue 26: every predicted return positive, yet names shorted and "cash 104%"; the
    recommendation now says why in one line, and what the cash is made of."""
    predicted = pd.Series({"A": 0.010, "B": 0.020, "C": 0.030, "D": 0.045})
    weights = signal_weights(predicted, Limits())
    # The real rule on these hand-made predictions, by hand: centred (mean 2.625%) they are
    # -1.625, -0.625, +0.375, +1.875 points; scaled to a gross of 1 (sum 4.5 points): -0.3611,
    # -0.1389, +0.0833, +0.4167. D is capped at 1/3 and its excess 0.0833 goes to A, B, C in
    # proportion (A -0.4127, B -0.1587, C +0.0952); then A is capped and its excess 0.0794 goes
    # to B and C in proportion: B -0.2083, C +0.125.
    assert weights.round(6).to_dict() == {
        "A": -0.333333,
        "B": -0.208333,
        "C": 0.125,
        "D": 0.333333,
    }
    line = rule_line(
        STRATEGIES["lstm_signal"], {"A": 0.01, "B": 0.02, "C": 0.03, "D": 0.045}, Limits()
    )
    assert line == (
        "LSTM signal: all 4 names are predicted to rise, so the predictions are centred across "
        "the names ((r - mean) / std, mean +2.62%): names above the mean are bought, those "
        "below it shorted (the lowest predicted risers most); scaled to gross 100%, each name "
        "capped at 33%"
    )
    cash = cash_line({str(t): float(w) for t, w in weights.items()})
    assert cash == (
        "cash 108.3% = 100% - 45.8% held long + 54.2% from short sales (a short sale's proceeds "
        "are held as cash until the shares are bought back)"
    )


def test_the_rule_line_names_the_case_that_applied() -> None:
    signal = STRATEGIES["lstm_signal"]
    no_shorts = Limits(max_weight=0.25, gross=0.8, allow_short=False)
    mixed = {"A": 0.02, "B": -0.01, "C": float("nan")}
    assert rule_line(signal, mixed, no_shorts) == (
        "LSTM signal: 1 of 2 names are predicted to fall, so each name is weighted by its "
        "predicted return: long the predicted risers, no weight for fallers; scaled to gross "
        "80%, each name capped at 25%, shorts off"
    )
    rising = {"A": 0.01, "B": 0.03}
    assert "those below it given no weight (shorts off)" in rule_line(signal, rising, no_shorts)
    assert rule_line(signal, {"A": 0.01, "B": 0.01}, Limits()).startswith(
        "LSTM signal: all 2 names are predicted to rise alike, so each is weighted by its "
        "predicted return"
    )
    assert rule_line(signal, {"A": float("nan")}, Limits()) == (
        "LSTM signal: no name has a prediction this week, so all is cash"
    )
    assert rule_line(STRATEGIES["equal_weight"], {"A": 0.0, "B": 0.0}, Limits()) == (
        "1/N: the same weight on each of the 2 names held, whatever the data say (no "
        "forecast); scaled to gross 100%, each name capped at 33%"
    )
    assert rule_line(STRATEGIES["min_cvar"], {}, Limits()).startswith(
        "min_cvar: the weights of least weekly CVaR 95% of the trailing weekly returns"
    )
    assert cash_line({"A": 0.5, "B": 0.25}) == "cash 25.0% = 100% - 75.0% held long"


def test_recommend_prints_its_rule_and_what_its_cash_is(
    paper12: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    items = ["data.source=csv", f"data.path={paper12}", "backtest.strategy=equal_weight"]
    base = ["recommend", str(PAPER_CONFIG), *sets(items), "--as-of", AS_OF.isoformat()]
    assert cli([*base, "--json"], monkeypatch) == 0
    doc = json.loads(capsys.readouterr().out)
    rule = (
        "1/N: the same weight on each of the 12 names held, whatever the data say (no "
        "forecast); scaled to gross 100%, each name capped at 33%"
    )
    assert doc["rule"] == rule
    assert doc["cash_note"] == "cash 0.0% = 100% - 100.0% held long"
    assert cli(base, monkeypatch) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"rule: {rule}" in out
    assert "cash 0.0% = 100% - 100.0% held long; this portfolio would have moved about" in out
