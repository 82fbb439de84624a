"""Forecast quality as quants measure it (models.metrics): the weekly IC and rank IC of
predicted against realised returns, their mean, t-statistic and share of positive weeks, and
the predictions section that prints them. Exact on hand-made forecasts."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from models.metrics import (
    compare,
    forecast_quality,
    ic_stats,
    predictions_ic,
    predictions_quality,
    weekly_ic,
)
from simulator.sections import quality_html
from simulator.summary import PredictionFacts


def test_weekly_ic_is_pearson_and_spearman_across_tickers() -> None:
    weeks = np.array(["w1"] * 4 + ["w2"] * 4 + ["w3"] * 2 + ["w4"] * 3)
    predicted = np.array([0.01, 0.02, 0.03, 0.04, 0.01, 0.01, 0.02, 0.03, 0.1, 0.2, 0.0, 0.0, 0.0])
    realised = np.array([0.1, -0.2, 0.3, 0.5, 0.3, 0.1, 0.2, 0.4, 0.1, 0.2, 0.1, 0.2, 0.3])
    ic = weekly_ic(weeks, predicted, realised)
    assert ic.index.tolist() == ["w1", "w2", "w3", "w4"]
    assert ic["n"].tolist() == [4, 4, 2, 3]
    # w1: Pearson by hand; ranks (1, 2, 3, 4) against (2, 1, 3, 4): Spearman 0.8.
    p, r = predicted[:4], realised[:4]
    dp, dr = p - p.mean(), r - r.mean()
    assert ic.loc["w1", "ic"] == pytest.approx(
        (dp * dr).sum() / math.sqrt((dp**2).sum() * (dr**2).sum()), abs=1e-15
    )
    assert ic.loc["w1", "rank_ic"] == pytest.approx(0.8, abs=1e-15)
    # w2: a tie in the forecasts shares its ranks (1.5, 1.5, 3, 4) against (3, 1, 2, 4).
    x, y = np.array([1.5, 1.5, 3, 4]), np.array([3, 1, 2, 4.0])
    dx, dy = x - x.mean(), y - y.mean()
    expected = (dx * dy).sum() / math.sqrt((dx**2).sum() * (dy**2).sum())
    assert ic.loc["w2", "rank_ic"] == pytest.approx(expected, abs=1e-15)
    # w3: two tickers are too few; w4: forecasts that are all equal have no correlation.
    assert ic.loc["w3"].isna()[["ic", "rank_ic"]].all()
    assert ic.loc["w4"].isna()[["ic", "rank_ic"]].all()


def test_ic_stats_are_mean_std_t_and_positive_share() -> None:
    stats = ic_stats(pd.Series([0.2, -0.1, 0.5, np.nan]))
    mean, std = 0.2, float(np.std([0.2, -0.1, 0.5], ddof=1))
    assert stats["weeks"] == 3
    assert stats["mean"] == pytest.approx(mean, abs=1e-15)
    assert stats["std"] == pytest.approx(std, abs=1e-15)
    assert stats["t_stat"] == pytest.approx(mean / (std / math.sqrt(3)), abs=1e-12)
    assert stats["positive"] == pytest.approx(2 / 3, abs=1e-15)
    assert ic_stats(np.array([np.nan])) == {
        "weeks": 0,
        "mean": None,
        "std": None,
        "t_stat": None,
        "positive": None,
    }
    one = ic_stats(np.array([0.3]))
    assert one["std"] is None and one["t_stat"] is None


def predictions() -> pd.DataFrame:
    """Two weeks of three tickers, and one forecast whose next close is unknown yet."""
    weeks = pd.to_datetime(["2024-01-05"] * 3 + ["2024-01-12"] * 3 + ["2024-01-19"])
    return pd.DataFrame(
        {
            "week": weeks,
            "ticker": ["A", "B", "C"] * 2 + ["A"],
            "last_close": [10.0, 20.0, 40.0, 11.0, 19.0, 44.0, 12.0],
            "predicted_close": [10.1, 19.8, 40.8, 11.0, 19.19, 43.56, 12.1],
            "actual_close": [11.0, 19.0, 44.0, 12.0, 20.0, 44.0, np.nan],
        }
    )


def test_forecast_quality_of_a_runs_predictions() -> None:
    frame = predictions()
    quality = predictions_quality(frame)
    last = frame["last_close"].to_numpy()[:6]
    actual = frame["actual_close"].to_numpy()[:6]
    predicted = frame["predicted_close"].to_numpy()[:6]
    assert quality["forecasts"] == 6
    # Week 1: predicted (+1%, -1%, +2%) against (+10%, -5%, +10%): ranks (2,1,3) vs (2.5,1,2.5).
    ic = predictions_ic(frame)
    assert ic["n"].tolist() == [3, 3]
    assert ic["rank_ic"].iloc[0] == pytest.approx(math.sqrt(3) / 2, abs=1e-12)
    # Week 2: predicted (0%, +1%, -1%) against (+1/11, +1/19, 0): ranks (2,3,1) vs (3,2,1).
    assert ic["rank_ic"].iloc[1] == pytest.approx(0.5, abs=1e-12)
    assert quality["rank_ic"]["mean"] == pytest.approx((math.sqrt(3) / 2 + 0.5) / 2, abs=1e-12)
    # Direction: A's second forecast predicted no move and C's second return was 0: 4 counted,
    # all right.
    assert quality["hit_rate"] == 1.0
    assert quality["mse_ratio"] == compare(last, actual, predicted)["mse_ratio"]
    assert forecast_quality(np.array([]), np.array([]), np.array([]), np.array([])) == {
        "forecasts": 0,
        "ic": ic_stats(np.array([])),
        "rank_ic": ic_stats(np.array([])),
        "hit_rate": None,
        "mse_ratio": None,
    }


def test_the_quality_table_prints_the_figures_escaped() -> None:
    frame = predictions()
    quality = predictions_quality(frame)
    section = quality_html(frame)
    rank = quality["rank_ic"]
    row = (
        f"<tr><td>rank IC (Spearman)</td><td>{rank['mean']:.3f}</td><td>{rank['std']:.3f}</td>"
        f"<td>{rank['t_stat']:.2f}</td><td>100.0%</td><td>2</td></tr>"
    )
    assert row in section
    assert "Over 6 forecasts the direction was right 100.0% of the time" in " ".join(
        section.split()
    )
    assert 'alt="weekly rank IC"' in section
    assert quality_html(frame.iloc[6:]) == ""


def test_a_summary_written_before_forecast_quality_still_reads() -> None:
    facts = PredictionFacts.model_validate({"weeks": 3, "forecasts": 9, "mse_ratio": 0.99})
    assert facts.quality is None
