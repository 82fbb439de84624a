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
from simulator.recommend import Recommendation, recommend
from strategies.risk import cvar, risk_figures
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
