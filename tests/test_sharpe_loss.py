"""The Sharpe loss (``model.loss = "sharpe"``): the differentiable sizing is the strategy's
rule under the run's limits, the loss sees no week after train_end, training is deterministic,
the strategy trades the weights the network was trained to hold, and the limits enter a Sharpe
model's spec, digest, tags and card (never an MSE model's)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from models.errors import SpecError, TrainingDataError
from models.forecaster import POOLED, train
from models.portfolio import negative_sharpe, size
from models.registry import Registry, spec_digest
from models.spec import ARCHS, PAPER_LIMITS, ModelSpec
from simulator.config import Config, load_config
from simulator.plan import resolve
from simulator.training import model_spec
from strategies.sizing import Limits, apply_limits, signal_weights
from tests.model_data import TRAIN_END, WEEKS, tiny, walk_closes

#: The limits of a run with a moderate investor's cap, half invested, shorts off.
SMALL = Limits(max_weight=0.25, gross=0.5, allow_short=False)


def sharpe_spec(**fields: object) -> ModelSpec:
    return tiny(loss="sharpe", **fields)


def sized(scores: torch.Tensor, mask: torch.Tensor, limits: Limits) -> torch.Tensor:
    return size(
        scores,
        mask,
        max_weight=limits.max_weight,
        gross=limits.gross,
        allow_short=limits.allow_short,
    )


@pytest.mark.parametrize(
    "limits", [Limits(), SMALL, Limits(0.4, 1.5, True), Limits(1.0, 1.0, False)], ids=str
)
@pytest.mark.parametrize("seed", range(20))
def test_differentiable_sizing_is_the_strategy_rule_on_centred_scores(
    seed: int, limits: Limits
) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 9))
    scores = rng.normal(0, 1, (3, n)) * rng.uniform(0.1, 5, (3, n))
    mask = rng.uniform(size=(3, n)) > 0.2
    mask[:, :2] = True  # two names at least each week
    got = sized(torch.from_numpy(scores), torch.from_numpy(mask), limits).numpy()
    for week in range(3):
        names = np.flatnonzero(mask[week])
        centred = pd.Series(scores[week, names] - scores[week, names].mean())
        expected = apply_limits(centred, limits).to_numpy()
        np.testing.assert_allclose(got[week, names], expected, atol=1e-9)
        # ... which is what the strategy's rule makes of the centred scores
        np.testing.assert_allclose(signal_weights(centred, limits).to_numpy(), expected)
        assert (got[week, ~mask[week]] == 0).all()


def test_sizing_under_a_quarter_cap_half_gross_and_no_shorts_by_hand() -> None:
    scores = torch.tensor(
        [
            # F has no window this week: mean over A..E 2.4 / 5 = 0.48, centred (0.52, 0.12,
            # 0.02, -0.18, -0.48); no shorts -> (0.52, 0.12, 0.02, 0, 0), sum 0.66; gross 0.5
            # -> (26/66, 6/66, 1/66); A over the cap by 26/66 - 1/4 = 19/132, handed to B and
            # C by 6 : 1 -> B 6/66 + 19/132 * 6/7 = 3/14, C 1/66 + 19/132 / 7 = 1/28.
            [1.0, 0.6, 0.5, 0.3, 0.0, 9.9],
            # A, B, C only: centred (2/3, -1/3, -1/3) -> A alone, 0.5, capped at 0.25: nobody
            # is left under the cap, so the other 0.25 stays in cash.
            [2.0, 1.0, 1.0, 0.0, 0.0, 0.0],
            # every score equal: nothing to rank, all in cash
            [0.7, 0.7, 0.7, 0.7, 0.7, 0.7],
        ],
        dtype=torch.float64,
    )
    mask = torch.tensor(
        [[True] * 5 + [False], [True] * 3 + [False] * 3, [True] * 6], dtype=torch.bool
    )
    got = sized(scores, mask, SMALL).tolist()
    expected = [
        [0.25, 3 / 14, 1 / 28, 0.0, 0.0, 0.0],
        [0.25, 0.0, 0.0, 0.0, 0.0, 0.0],
        [0.0] * 6,
    ]
    for week, want in zip(got, expected, strict=True):
        assert week == pytest.approx(want, rel=1e-10, abs=1e-15)
    # The same weeks with shorts on (cap 0.25, gross 0.5): the first week's centred scores
    # (52, 12, 2, -18, -48) / 100, sum |.| 1.32, scale to (52, 12, 2, -18, -48) / 264, all
    # under the cap.
    shorts = sized(scores, mask, dataclasses.replace(SMALL, allow_short=True)).tolist()
    first = [52 / 264, 12 / 264, 2 / 264, -18 / 264, -48 / 264, 0.0]
    assert shorts[0] == pytest.approx(first, rel=1e-10)
    # second week: (2/3, -1/3, -1/3) / (4/3) * 0.5 = (0.25, -0.125, -0.125), under the cap
    assert shorts[1] == pytest.approx([0.25, -0.125, -0.125, 0.0, 0.0, 0.0], rel=1e-10)


@pytest.mark.parametrize("limits", [Limits(), SMALL], ids=str)
def test_sizing_passes_gradients_to_every_uncapped_score(limits: Limits) -> None:
    # Centred (0.1625, 0.1125, 0.0625, -0.3375): the paper's limits cap D's -0.5 at 1/3;
    # SMALL sets D to 0 and leaves A, B, C under the cap at (0.2407, 0.1667, 0.0926).
    scores = torch.tensor([[0.3, 0.25, 0.2, -0.2]], requires_grad=True)
    returns = torch.tensor([[0.02, -0.01, 0.03, 0.0]])
    mask = torch.ones(1, 4, dtype=torch.bool)
    (sized(scores, mask, limits) * returns).sum().backward()
    assert scores.grad is not None and torch.isfinite(scores.grad).all()
    assert (scores.grad != 0).any()


def test_a_week_the_limits_fix_entirely_passes_no_gradient() -> None:
    """Which names are capped or set to 0 is constant to the gradient: under SMALL,
    (0.3, 0.1, -0.2, 0.05) is centred to (0.2375, 0.0375, -0.2625, -0.0125), long A and B
    only, scaled (0.4419, 0.0581); A's excess over 0.25 takes B to the cap too."""
    scores = torch.tensor([[0.3, 0.1, -0.2, 0.05]], requires_grad=True)
    weights = sized(scores, torch.ones(1, 4, dtype=torch.bool), SMALL)
    assert weights.tolist() == [[0.25, 0.25, 0.0, 0.0]]
    (weights * torch.tensor([[0.02, -0.01, 0.03, 0.0]])).sum().backward()
    assert scores.grad is not None and (scores.grad == 0).all()


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


@pytest.mark.parametrize("limits", [Limits(), SMALL], ids=str)
def test_the_strategy_trades_the_weights_the_loss_sized(limits: Limits) -> None:
    """The forecast's scores, sized by the strategy's own rule under the run's limits, are the
    weights the loss's differentiable sizing gives the network's raw outputs."""
    closes = walk_closes()
    spec = sharpe_spec(
        max_weight=limits.max_weight, gross=limits.gross, allow_short=limits.allow_short
    )
    model, _ = train(closes, spec, TRAIN_END)
    week = WEEKS[90]
    forecast = model.forecast(closes, week)
    scores = forecast["predicted_return"]
    assert scores.sum() == pytest.approx(0.0, abs=1e-12)  # centred
    traded = signal_weights(scores, limits)
    _, names, prices, _, _ = model.inputs(closes, week)
    scaler = model.scalers[names[0]]
    with torch.inference_mode():
        raw = model.nets[POOLED](torch.from_numpy(scaler.inputs(prices)))
    trained = sized(raw[None, :].double(), torch.ones(1, len(names), dtype=torch.bool), limits)
    np.testing.assert_allclose(traded.to_numpy(), trained[0].numpy(), atol=1e-6)


def test_the_loss_trains_under_the_specs_limits() -> None:
    """Regression (issue 25): the loss sized under cap 1/3, gross 1, shorts on whatever the
    spec said. Other limits give other weights; the report names the limits."""
    closes = walk_closes()
    paper, paper_report = train(closes, sharpe_spec(), TRAIN_END)
    small, small_report = train(
        closes, sharpe_spec(max_weight=0.25, gross=0.5, allow_short=False), TRAIN_END
    )
    first = next(iter(paper.nets[POOLED].state_dict()))
    assert not torch.equal(
        paper.nets[POOLED].state_dict()[first], small.nets[POOLED].state_dict()[first]
    )
    assert paper_report.metrics["portfolio"]["limits"] == "cap 0.3333, gross 1, shorts on"
    assert small_report.metrics["portfolio"]["limits"] == "cap 0.25, gross 0.5, shorts off"


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
    assert (info.tags["max_weight"], info.tags["gross"], info.tags["allow_short"]) == (
        "0.3333333333333333",
        "1.0",
        "true",
    )


def test_a_sharpe_models_limits_are_in_its_tags_card_and_stored_spec(tmp_path: Path) -> None:
    closes = walk_closes()
    spec = sharpe_spec(max_weight=0.25, gross=0.5, allow_short=False)
    model, report = train(closes, spec, TRAIN_END)
    registry = Registry(tmp_path / "ws")
    info = registry.register(model, report)
    assert {k: info.tags[k] for k in ("max_weight", "gross", "allow_short")} == {
        "max_weight": "0.25",
        "gross": "0.5",
        "allow_short": "false",
    }
    assert info.describe()["limits"] == {"max_weight": 0.25, "gross": 0.5, "allow_short": False}
    assert info.tags["spec_sha256"] == spec_digest(spec.to_dict())
    assert registry.load(info.ref).spec == spec
    card = (registry.artifact_dir(info) / "model_card.md").read_text()
    assert (
        "Sharpe loss (the weekly Sharpe ratio of the portfolio its scores size into, cap " in card
    )
    assert "cap 0.25, gross 0.5, shorts off; models.portfolio)" in card
    assert "(cap 0.25, gross 0.5, shorts off, no costs)" in card
    # An MSE version has no limits: none in its tags, none described.
    mse, mse_report = train(closes, tiny(), TRAIN_END)
    plain = registry.register(mse, mse_report)
    assert not {"max_weight", "gross", "allow_short"} & set(plain.tags)
    assert plain.describe()["limits"] is None


# -- the limits in the spec and its digest -------------------------------------------------------

#: The ``spec_sha256`` of the default config's model (``foliosim-lstm``, paper preset), MSE and
#: with ``model.loss = "sharpe"``, as foliosim computed them before a spec had limits (commit
#: 1ed22b8).
OLD_MSE_DIGEST = "c4611ed73b2fa0cdbee4455af503ddfa17a61d1abbabce68f21f35eb424367cd"
OLD_SHARPE_DIGEST = "b971d13da5b774d0a325dbd40271994cd7f4930bf684b345a7c0db3347286111"

#: Configs whose run sizes under other limits than the paper's: [strategy]'s, a preset
#: profile's (moderate: cap 0.25, gross 1, no shorts), a custom profile over [strategy]'s.
LIMITED = {
    "strategy": ["strategy.max_weight=0.25", "strategy.gross=0.5", "strategy.allow_short=false"],
    "profile": ["profile.name=moderate"],
    "custom": ["strategy.max_weight=0.2", "profile.name=custom", "profile.gross=1.5"],
    "preset over strategy": ["strategy.max_weight=0.2", "profile.name=conservative"],
}
EXPECTED = {
    "strategy": (0.25, 0.5, False),
    "profile": (0.25, 1.0, False),
    "custom": (0.2, 1.5, True),
    "preset over strategy": (0.15, 0.6, False),
}


def config(overrides: list[str]) -> Config:
    return load_config(None, overrides)


@pytest.mark.parametrize("case", LIMITED)
def test_a_sharpe_spec_carries_the_runs_limits(case: str) -> None:
    cfg = config(["model.loss=sharpe", *LIMITED[case]])
    spec = model_spec(cfg)
    assert spec.limits == EXPECTED[case]
    limits = resolve(cfg).limits  # the limits the run's strategy sizes under
    assert spec.limits == (limits.max_weight, limits.gross, limits.allow_short)
    stored = spec.to_dict()
    assert ModelSpec.from_dict(stored) == spec
    assert spec_digest(stored) != OLD_SHARPE_DIGEST


def test_a_sharpe_specs_digest_changes_with_each_limit() -> None:
    base = model_spec(config(["model.loss=sharpe"]))
    assert base.limits == PAPER_LIMITS
    # The paper's limits: the stored form, and digest, of a Sharpe spec before the limits
    # existed, so its versions (trained under them) are still reused.
    assert not {"max_weight", "gross", "allow_short"} & set(base.to_dict())
    assert spec_digest(base.to_dict()) == OLD_SHARPE_DIGEST
    digests = {spec_digest(base.to_dict())}
    for change in ({"max_weight": 0.25}, {"gross": 0.5}, {"allow_short": False}):
        other = dataclasses.replace(base, **change)  # type: ignore[arg-type]
        assert other.to_dict() == {**base.to_dict(), **change}
        digests.add(spec_digest(other.to_dict()))
    assert len(digests) == 4
    # 1 and 1.0 are one limit, one digest
    assert spec_digest(dataclasses.replace(base, max_weight=1).to_dict()) == spec_digest(
        dataclasses.replace(base, max_weight=1.0).to_dict()
    )


@pytest.mark.parametrize("case", LIMITED)
def test_an_mse_specs_digest_is_unchanged_by_the_limits(case: str) -> None:
    spec = model_spec(config(LIMITED[case]))
    assert spec == model_spec(config([]))
    assert spec.limits == PAPER_LIMITS and spec.to_dict() == config([]).model.spec().to_dict()
    assert spec_digest(spec.to_dict()) == OLD_MSE_DIGEST


def test_limit_errors() -> None:
    with pytest.raises(SpecError, match=r"are for model\.loss = 'sharpe' only"):
        ModelSpec("m", max_weight=0.25)
    with pytest.raises(SpecError, match=r"max_weight must be in \(0, 1\] \(got 1\.5\)"):
        sharpe_spec(max_weight=1.5)
    with pytest.raises(SpecError, match=r"gross must be in \(0, 2\] \(got 0\.0\)"):
        sharpe_spec(gross=0)
    with pytest.raises(SpecError, match="allow_short must be true or false"):
        sharpe_spec(allow_short="no")
