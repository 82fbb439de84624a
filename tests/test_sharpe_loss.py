"""The Sharpe loss (``model.loss = "sharpe"``): the differentiable sizing is the strategy's
rule, the loss sees no week after train_end, training is deterministic, and the strategy
trades the weights the network was trained to hold."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from models.errors import SpecError, TrainingDataError
from models.forecaster import POOLED, train
from models.portfolio import negative_sharpe, size
from models.registry import Registry
from models.spec import ARCHS, ModelSpec
from strategies.sizing import Limits, apply_limits, signal_weights
from tests.model_data import TRAIN_END, WEEKS, tiny, walk_closes


def sharpe_spec(**fields: object) -> ModelSpec:
    return tiny(loss="sharpe", **fields)


@pytest.mark.parametrize("seed", range(20))
def test_differentiable_sizing_is_the_strategy_rule_on_centred_scores(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 9))
    scores = rng.normal(0, 1, (3, n)) * rng.uniform(0.1, 5, (3, n))
    mask = rng.uniform(size=(3, n)) > 0.2
    mask[:, :2] = True  # two names at least each week
    got = size(torch.from_numpy(scores), torch.from_numpy(mask)).numpy()
    for week in range(3):
        names = np.flatnonzero(mask[week])
        centred = scores[week, names] - scores[week, names].mean()
        expected = apply_limits(pd.Series(centred), Limits()).to_numpy()
        np.testing.assert_allclose(got[week, names], expected, atol=1e-9)
        assert (got[week, ~mask[week]] == 0).all()


def test_sizing_passes_gradients_to_every_uncapped_score() -> None:
    scores = torch.tensor([[0.3, 0.1, -0.2, 0.05]], requires_grad=True)
    returns = torch.tensor([[0.02, -0.01, 0.03, 0.0]])
    mask = torch.ones(1, 4, dtype=torch.bool)
    (size(scores, mask) * returns).sum().backward()
    assert scores.grad is not None and torch.isfinite(scores.grad).all()
    assert (scores.grad != 0).any()


def test_negative_sharpe_by_hand() -> None:
    r = torch.tensor([0.01, 0.03, -0.01])  # mean 0.01, population std sqrt(8/3) / 100
    assert float(negative_sharpe(r)) == pytest.approx(-0.01 / (np.sqrt(8 / 3) / 100), rel=1e-5)


def test_the_sharpe_loss_sees_no_week_after_train_end() -> None:
    """Every close after train_end changed: the trained weights are the same to the last bit,
    and the weeks it trained and validated on all have their target on or before it."""
    closes = walk_closes()
    spec = sharpe_spec()
    model, report = train(closes, spec, TRAIN_END)
    moved = closes.copy()
    moved.loc[moved.index > TRAIN_END] *= 3.0
    again, _ = train(moved, spec, TRAIN_END)
    for name, tensor in model.nets[POOLED].state_dict().items():
        assert torch.equal(tensor, again.nets[POOLED].state_dict()[name]), name
    splits = report.splits
    assert max(pd.Timestamp(s["validation"]["last"]) for s in splits.values()) <= TRAIN_END
    fit = report.fits[POOLED]
    # Decision weeks with a window for at least one ticker, target week <= TRAIN_END: weeks
    # 7..78 (window 8), 72 weeks, split into training and validation weeks.
    assert fit.n_train + fit.n_val == 72
    assert model.train_end == TRAIN_END


@pytest.mark.parametrize("arch", ARCHS)
def test_sharpe_training_is_deterministic_and_pooled(arch: str) -> None:
    closes = walk_closes()
    spec = sharpe_spec(arch=arch)
    assert spec.mode == "pooled"
    first, report = train(closes, spec, TRAIN_END)
    second, _ = train(closes, spec, TRAIN_END)
    assert list(first.nets) == [POOLED]
    for name, tensor in first.nets[POOLED].state_dict().items():
        assert torch.equal(tensor, second.nets[POOLED].state_dict()[name])
    other, _ = train(closes, sharpe_spec(arch=arch, seed=1), TRAIN_END)
    assert not torch.equal(
        next(iter(first.nets[POOLED].parameters())), next(iter(other.nets[POOLED].parameters()))
    )
    assert report.metrics["per_ticker"] == {} and report.metrics["all"] == {}
    assert report.metrics["portfolio"]["test_weeks"] == 20
    assert np.isfinite(report.metrics["portfolio"]["test_sharpe"])


def test_the_strategy_trades_the_weights_the_loss_sized() -> None:
    """The forecast's scores, sized by the strategy's own rule, are the weights the loss's
    differentiable sizing gives the network's raw outputs."""
    closes = walk_closes()
    model, _ = train(closes, sharpe_spec(), TRAIN_END)
    week = WEEKS[90]
    forecast = model.forecast(closes, week)
    scores = forecast["predicted_return"]
    assert scores.sum() == pytest.approx(0.0, abs=1e-12)  # centred
    traded = signal_weights(scores, Limits())
    _, names, prices, _, _ = model.inputs(closes, week)
    scaler = model.scalers[names[0]]
    with torch.inference_mode():
        raw = model.nets[POOLED](torch.from_numpy(scaler.inputs(prices)))
    trained = size(raw[None, :].double(), torch.ones(1, len(names), dtype=torch.bool))[0]
    np.testing.assert_allclose(traded.to_numpy(), trained.numpy(), atol=1e-6)


def test_sharpe_loss_errors() -> None:
    with pytest.raises(TrainingDataError, match=r"the data has one \(AAA\)"):
        train(walk_closes()[["AAA"]], sharpe_spec(), TRAIN_END)
    with pytest.raises(SpecError, match="trains one pooled network"):
        ModelSpec("m", loss="sharpe")  # the dataclass default mode is per_ticker
    with pytest.raises(SpecError, match="needs model\\.scaling = 'window'"):
        ModelSpec("m", loss="sharpe", mode="pooled", scaling="ticker")
    with pytest.raises(SpecError, match=r"unknown model\.loss 'sharp'"):
        ModelSpec("m", loss="sharp")  # type: ignore[arg-type]


def test_a_sharpe_model_round_trips_through_the_registry(tmp_path: Path) -> None:
    closes = walk_closes()
    model, report = train(closes, sharpe_spec(), TRAIN_END)
    registry = Registry(tmp_path / "ws")
    info = registry.register(model, report)
    loaded = registry.load(info.ref)
    assert loaded.spec.loss == "sharpe" and info.tags["mode"] == "pooled"
    pd.testing.assert_frame_equal(
        loaded.forecast(closes, WEEKS[95]), model.forecast(closes, WEEKS[95])
    )
    card = (registry.artifact_dir(info) / "model_card.md").read_text()
    assert "Sharpe loss" in card and "not forecasts" in card
