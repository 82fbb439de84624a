"""The models package on hand-made weekly closes: windows, splits, scalers, training, look-ahead.

Every frame here is built in the test module (seeded random walks, a periodic series), with a
missing week and a late listing; specs are tiny (hidden 8, a few epochs, one thread), so each
training takes a fraction of a second. The registry is tested in ``test_registry.py``.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from models.artifacts import SCHEMA_VERSION, read_version, write_version
from models.errors import IntegrityError, ModelError, SpecError, TrainingDataError
from models.forecaster import POOLED, Forecaster, TrainingReport, data_fingerprint, train
from models.metrics import compare, score
from models.net import (
    AttentionLSTM,
    LSTMForecaster,
    TransformerForecaster,
    WindowNet,
    make_net,
    positions,
)
from models.spec import ARCHS, HEADS, Arch, ModelSpec
from models.train import evaluate, fit
from models.windows import Scaling, check_prices, fit_scaler, make_windows, validation_cut
from tests.model_data import GAP, LISTED, TICKERS, TRAIN_END, WEEKS, tiny, walk_closes


def weekly(values: list[float], start: str = "2024-01-05", name: str = "T") -> pd.Series:
    return pd.Series(
        values, index=pd.date_range(start, periods=len(values), freq="W-FRI"), name=name
    )


def assert_same_weights(a: Forecaster, b: Forecaster) -> None:
    assert a.nets.keys() == b.nets.keys()
    for key in a.nets:
        sa, sb = a.nets[key].state_dict(), b.nets[key].state_dict()
        assert sa.keys() == sb.keys()
        for name in sa:
            assert torch.equal(sa[name], sb[name]), (key, name)


def weights_differ(a: Forecaster, b: Forecaster, key: str) -> bool:
    sa, sb = a.nets[key].state_dict(), b.nets[key].state_dict()
    return any(not torch.equal(sa[name], sb[name]) for name in sa)


# -- 1. windows ----------------------------------------------------------------------------------


def test_windows_align_inputs_targets_and_weeks() -> None:
    s = weekly([10.0, 11.0, 12.0, 13.0, np.nan, 15.0, 16.0, 17.0, 18.0])
    w = make_windows(s, 2)
    # Windows of 2 weeks + target: every one touching week 4 (the NaN) is dropped.
    assert w.ticker == "T"
    assert w.inputs.tolist() == [[10.0, 11.0], [11.0, 12.0], [15.0, 16.0], [16.0, 17.0]]
    assert w.target.tolist() == [12.0, 13.0, 17.0, 18.0]
    assert [d.date().isoformat() for d in w.as_of] == [
        "2024-01-12",
        "2024-01-19",
        "2024-02-16",
        "2024-02-23",
    ]
    assert [d.date().isoformat() for d in w.target_week] == [
        "2024-01-19",
        "2024-01-26",
        "2024-02-23",
        "2024-03-01",
    ]
    # The target week is always the row after the window's last week.
    weeks = pd.DatetimeIndex(s.index)
    for as_of, target_week in zip(w.as_of, w.target_week, strict=True):
        assert weeks.get_loc(target_week) == weeks.get_loc(as_of) + 1


def test_windows_of_a_late_listing_start_at_its_first_bar() -> None:
    w = make_windows(walk_closes()["CCC"], 8)
    assert len(w) == len(WEEKS) - LISTED - 8
    assert w.as_of[0] == WEEKS[LISTED + 7]
    assert w.target_week[-1] == WEEKS[-1]
    assert np.isfinite(w.inputs).all() and np.isfinite(w.target).all()


def test_windows_drop_every_window_touching_a_missing_week() -> None:
    closes = walk_closes()
    w = make_windows(closes["BBB"], 8)
    # 92 windows of 8 + 1 weeks; the 9 whose span covers week 50 are gone.
    assert len(w) == 92 - 9
    kept = {WEEKS.get_loc(d) for d in w.target_week}
    assert kept == set(range(8, 100)) - set(range(GAP, GAP + 9))
    row = WEEKS.get_loc(w.as_of[0])
    assert w.inputs[0].tolist() == closes["BBB"].iloc[row - 7 : row + 1].tolist()
    assert w.target[0] == closes["BBB"].iloc[row + 1]


def test_a_series_shorter_than_window_plus_one_has_no_windows() -> None:
    for n in (0, 1, 4):
        w = make_windows(weekly([1.0 + i for i in range(n)]), 4)
        assert len(w) == 0
        assert w.inputs.shape == (0, 4) and w.target.shape == (0,)
        assert len(w.as_of) == 0 and len(w.target_week) == 0
    assert len(make_windows(weekly([1.0, 2.0, 3.0, 4.0, 5.0]), 4)) == 1


# -- 2. splits -----------------------------------------------------------------------------------


def test_validation_cut_is_on_a_week_boundary() -> None:
    weeks = pd.DatetimeIndex(pd.date_range("2024-01-05", periods=10, freq="W-FRI"))
    assert validation_cut(weeks, 0.2) == weeks[8]  # the last 2 of 10
    assert validation_cut(weeks, 0.25) == weeks[7]  # ceil(2.5) = 3
    assert validation_cut(weeks, 0.01) == weeks[9]  # at least one
    # Pooled: the same week from several tickers is never split.
    pooled = weeks.append(weeks[5:]).append(weeks[8:])  # weeks 5-7 twice, 8-9 three times
    # ceil(0.2 * 17) = 4 stamps; the 4th-last is week 8, so all 6 stamps of weeks 8-9 validate.
    assert validation_cut(pooled, 0.2) == weeks[8]
    with pytest.raises(TrainingDataError, match="too few to carve a validation split"):
        validation_cut(weeks[:1], 0.2)


def test_per_ticker_splits_are_chronological_and_the_test_is_after_train_end() -> None:
    model, report = train(walk_closes(), tiny(), TRAIN_END)

    def span(n: int, first: int, last: int) -> dict[str, Any]:
        return {
            "n": n,
            "first": WEEKS[first].date().isoformat(),
            "last": WEEKS[last].date().isoformat(),
        }

    # Seen target weeks: AAA 8..79 (72), BBB the same less 50..58 (63), CCC 38..79 (42);
    # validation is the last ceil(0.2 n): 15, 13 and 9 windows.
    assert report.splits == {
        "AAA": {"train": span(57, 8, 64), "validation": span(15, 65, 79), "test": span(20, 80, 99)},
        "BBB": {"train": span(50, 8, 66), "validation": span(13, 67, 79), "test": span(20, 80, 99)},
        "CCC": {"train": span(33, 38, 70), "validation": span(9, 71, 79), "test": span(20, 80, 99)},
    }
    assert {k: (f.n_train, f.n_val) for k, f in report.fits.items()} == {
        "AAA": (57, 15),
        "BBB": (50, 13),
        "CCC": (33, 9),
    }
    assert model.train_start == WEEKS[0]
    assert model.train_end == TRAIN_END
    # The test rows are exactly the windows whose target week is after train_end.
    test = report.test
    assert len(test) == 60
    assert (test["target_week"] > TRAIN_END).all()
    assert test.groupby("ticker")["as_of"].min().tolist() == [WEEKS[79]] * 3
    assert report.metrics["all"]["n"] == 60


def test_train_end_between_week_stamps_keeps_the_last_full_week() -> None:
    # A Wednesday: the target of week 79 (Friday before) is seen, week 80's is not.
    model, report = train(walk_closes()[["AAA"]], tiny(), TRAIN_END + pd.Timedelta(days=5))
    assert model.train_end == TRAIN_END
    assert report.splits["AAA"]["test"]["first"] == WEEKS[80].date().isoformat()


def test_pooled_mode_uses_one_cut_date_for_every_ticker() -> None:
    model, report = train(walk_closes(), tiny(mode="pooled"), TRAIN_END)
    # 72 + 63 + 42 = 177 seen windows; ceil(0.2 * 177) = 36 = the 3 tickers' last 12 weeks.
    cut = WEEKS[68]
    assert {t: s["validation"]["first"] for t, s in report.splits.items()} == dict.fromkeys(
        TICKERS, cut.date().isoformat()
    )
    assert {t: s["train"]["last"] for t, s in report.splits.items()} == dict.fromkeys(
        TICKERS, WEEKS[67].date().isoformat()
    )
    assert [report.splits[t]["validation"]["n"] for t in TICKERS] == [12, 12, 12]
    assert [report.splits[t]["train"]["n"] for t in TICKERS] == [60, 51, 30]
    (fit_result,) = report.fits.values()
    assert list(report.fits) == [POOLED]
    assert (fit_result.n_train, fit_result.n_val) == (141, 36)
    # One network and, with window scaling, one scaler shared by every ticker.
    assert list(model.nets) == [POOLED]
    assert model.scalers["AAA"] is model.scalers["BBB"] is model.scalers["CCC"]


# -- 3. scalers ----------------------------------------------------------------------------------


def test_fit_scaler_window_statistics_by_hand() -> None:
    x = np.array([[2.0, 4.0], [3.0, 6.0]])
    y = np.array([5.0, 3.0])
    s = fit_scaler("window", x, y, "T")
    # Inputs relative to the last close: [-0.5, 0], [-0.5, 0] -> mean -0.25, std 0.25.
    # Targets as returns: 5/4 - 1 = 0.25, 3/6 - 1 = -0.5 -> mean -0.125, std 0.375.
    assert (s.kind, s.in_mean, s.in_std, s.out_mean, s.out_std) == (
        "window",
        -0.25,
        0.25,
        -0.125,
        0.375,
    )
    assert s.inputs(x).tolist() == [[-1.0, 1.0], [-1.0, 1.0]]
    assert s.target(x, y).tolist() == [1.0, -1.0]
    # Output 1.0 (one std above the mean return) -> 0.25 -> last close x 1.25.
    assert s.price(x, np.array([1.0, -1.0], dtype=np.float32)).tolist() == [5.0, 3.0]


def test_fit_scaler_ticker_statistics_by_hand() -> None:
    x = np.array([[1.0, 3.0], [3.0, 5.0]])
    y = np.array([5.0, 7.0])
    s = fit_scaler("ticker", x, y, "T")
    # Every price of the split, inputs and targets: 1 3 3 5 5 7 -> mean 4, variance 22 / 6.
    assert (s.in_mean, s.out_mean) == (4.0, 4.0)
    assert s.in_std == s.out_std == math.sqrt(22 / 6)
    assert s.price(x, s.target(x, y)) == pytest.approx(y, rel=1e-6)


def test_fit_scaler_refuses_an_empty_or_flat_split() -> None:
    with pytest.raises(TrainingDataError, match="T: no training windows"):
        fit_scaler("window", np.empty((0, 2)), np.empty(0), "T")
    flat = np.full((3, 2), 5.0)
    with pytest.raises(TrainingDataError, match="T: prices do not vary"):
        fit_scaler("ticker", flat, np.full(3, 5.0), "T")


@pytest.mark.parametrize("scaling", ["window", "ticker"])
def test_scaler_is_fitted_on_the_training_windows_only(scaling: Scaling) -> None:
    closes = walk_closes()
    spec = tiny(scaling=scaling)
    model, report = train(closes, spec, TRAIN_END)
    w = make_windows(closes["AAA"], 8)
    n_train = report.fits["AAA"].n_train  # 57: target weeks 8..64
    assert model.scalers["AAA"] == fit_scaler(
        scaling, w.inputs[:n_train], w.target[:n_train], "AAA"
    )
    one_more = fit_scaler(scaling, w.inputs[: n_train + 1], w.target[: n_train + 1], "AAA")
    assert model.scalers["AAA"] != one_more

    # A test-period change (after train_end): scalers, weights and fingerprint unchanged.
    test_changed = closes.copy()
    test_changed.iloc[90, 0] *= 1.5
    retrained, _ = train(test_changed, spec, TRAIN_END)
    assert retrained.scalers == model.scalers
    assert_same_weights(retrained, model)
    assert retrained.data_fingerprint == model.data_fingerprint

    # A validation-period change (week 70; AAA's validation targets are weeks 65..79): the
    # scaler and the training-loss curve are unchanged, the validation loss is not.
    val_changed = closes.copy()
    val_changed.iloc[70, 0] *= 1.5
    retrained, rereport = train(val_changed, spec, TRAIN_END)
    assert retrained.scalers == model.scalers
    assert rereport.fits["AAA"].train_loss == report.fits["AAA"].train_loss
    assert rereport.fits["AAA"].val_loss != report.fits["AAA"].val_loss
    assert retrained.data_fingerprint != model.data_fingerprint

    # A training-split change (week 20) moves the scaler: the two checks above can fail.
    train_changed = closes.copy()
    train_changed.iloc[20, 0] *= 1.5
    retrained, _ = train(train_changed, spec, TRAIN_END)
    assert retrained.scalers["AAA"] != model.scalers["AAA"]
    assert retrained.scalers["BBB"] == model.scalers["BBB"]
    assert weights_differ(retrained, model, "AAA")


# -- networks ------------------------------------------------------------------------------------


def test_make_net_builds_the_architecture_of_the_spec() -> None:
    assert type(make_net(tiny())) is LSTMForecaster
    assert type(make_net(tiny(arch="lstm_attention"))) is AttentionLSTM
    net = make_net(tiny(arch="transformer", hidden=12, layers=3, dropout=0.25))
    assert isinstance(net, TransformerForecaster)
    assert len(net.encoder.layers) == 3
    for layer in net.encoder.layers:
        assert (layer.self_attn.num_heads, layer.self_attn.embed_dim) == (HEADS, 12) == (4, 12)
        assert layer.linear1.out_features == 24  # feed-forward width 2 x d_model
        assert layer.norm_first and layer.dropout.p == 0.25
    assert net.pe.shape == (8, 12)  # window x d_model
    # The positional table is rebuilt from the spec, never stored with the weights.
    assert set(net.state_dict()) == {name for name, _ in net.named_parameters()}


@pytest.mark.parametrize("arch", ARCHS)
def test_every_arch_maps_windows_to_one_prediction_each(arch: Arch) -> None:
    spec = tiny(arch=arch)
    torch.manual_seed(0)
    net = make_net(spec)
    assert isinstance(net, WindowNet)
    x = torch.randn(5, spec.window)
    assert net(x).shape == (5,) and net(x).dtype == torch.float32
    net.eval()
    with torch.inference_mode():
        batch = net(x)
        # Each window is predicted on its own: the batch gives the single windows' values.
        torch.testing.assert_close(batch, torch.cat([net(x[i : i + 1]) for i in range(5)]))
        assert net(x[:0]).shape == (0,)


def test_attention_weights_and_prediction_follow_the_documented_formula() -> None:
    torch.manual_seed(3)
    net = make_net(tiny(arch="lstm_attention"))
    assert isinstance(net, AttentionLSTM)
    net.eval()
    x = torch.randn(4, 8)
    with torch.no_grad():
        h, _ = net.lstm(x.unsqueeze(-1))  # (4, 8 weeks, 8 hidden)
        weights, out = net.attention(x), net(x)
        w, u, b, v = net.w.weight, net.u.weight, net.u.bias, net.v.weight[0]
        for i in range(4):
            last = h[i, -1]
            # score_t = v . tanh(W h_t + U h_T + b), softmax over the 8 weeks
            scores = torch.stack([v @ torch.tanh(w @ h[i, t] + u @ last + b) for t in range(8)])
            expected = torch.exp(scores) / torch.exp(scores).sum()
            torch.testing.assert_close(weights[i], expected)
            context = (expected[:, None] * h[i]).sum(dim=0)
            head = net.head.weight[0] @ torch.cat([context, last]) + net.head.bias[0]
            torch.testing.assert_close(out[i], head)
    assert weights.shape == (4, 8) and bool((weights > 0).all())
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(4))


def test_attention_of_a_trained_model_reads_one_batch_of_windows(
    trained: tuple[Forecaster, TrainingReport],
) -> None:
    model, _ = trained
    net = model.net_for("AAA")
    if model.spec.arch != "lstm_attention":
        assert not hasattr(net, "attention")
        return
    assert isinstance(net, AttentionLSTM)
    windows = make_windows(walk_closes()["AAA"], 8).inputs[-3:]  # (3, 8) prices
    with torch.inference_mode():
        x = torch.from_numpy(model.scalers["AAA"].inputs(windows))
        weights = net.attention(x)
    assert weights.shape == (3, 8)
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(3))


def test_positions_are_the_sinusoidal_table() -> None:
    # d_model 4: frequencies 1 and 1 / 10000^(2/4) = 1/100.
    expected = [[math.sin(p), math.cos(p), math.sin(p / 100), math.cos(p / 100)] for p in range(3)]
    np.testing.assert_allclose(positions(3, 4).numpy(), expected, rtol=0, atol=1e-7)
    assert positions(3, 4).dtype == torch.float32


def test_the_transformer_sees_the_order_of_the_weeks_through_its_positions() -> None:
    torch.manual_seed(1)
    net = make_net(tiny(arch="transformer"))
    assert isinstance(net, TransformerForecaster)
    net.eval()
    x = torch.randn(1, 8)
    swapped = x[:, [1, 0, 2, 3, 4, 5, 6, 7]]  # the two oldest weeks exchanged
    with torch.no_grad():
        assert not torch.allclose(net(x), net(swapped), rtol=0, atol=1e-6)
        # Without positions, self-attention is blind to the order of the other weeks.
        net.pe.zero_()
        torch.testing.assert_close(net(x), net(swapped))


# -- 4-6. training -------------------------------------------------------------------------------


def test_a_model_overfits_a_short_periodic_series() -> None:
    pattern = [100.0, 104.0, 101.0, 107.0, 103.0]
    weeks = pd.date_range("2020-01-03", periods=80, freq="W-FRI")
    closes = pd.DataFrame({"P": [pattern[i % 5] for i in range(80)]}, index=weeks)
    spec = tiny(hidden=32, window=5, lr=1e-2, max_epochs=150, patience=10_000)
    model, report = train(closes, spec, weeks[-1])
    result = report.fits["P"]
    assert result.epochs == 150 and result.stop_reason == "reached max_epochs (150)"
    # Observed: 0.99 -> 1.7e-4 (a factor of ~5700); 1000 leaves a margin across CPUs.
    assert result.train_loss[0] / result.train_loss[-1] > 1000
    assert result.best_val_loss < 1e-3
    # In-sample, the next close of the cycle is predicted to within 0.5 %.
    for week in (40, 41, 42, 43, 44):
        forecast = model.forecast(closes, weeks[week])
        expected = pattern[(week + 1) % 5]
        assert forecast.loc["P", "predicted_close"] == pytest.approx(expected, rel=5e-3)


@pytest.mark.parametrize("arch", ARCHS)
def test_retraining_is_bit_identical_and_the_seed_matters(arch: Arch) -> None:
    closes = walk_closes()
    first, first_report = train(closes, tiny(arch=arch), TRAIN_END)
    second, second_report = train(closes, tiny(arch=arch), TRAIN_END)
    assert_same_weights(first, second)
    assert first.scalers == second.scalers
    assert first_report.fits["AAA"].train_loss == second_report.fits["AAA"].train_loss
    pd.testing.assert_frame_equal(first_report.test, second_report.test, check_exact=True)
    for week in (WEEKS[79], WEEKS[90], WEEKS[99]):
        pd.testing.assert_series_equal(
            first.predict(closes, week), second.predict(closes, week), check_exact=True
        )
    other, _ = train(closes, tiny(arch=arch, seed=1), TRAIN_END)
    assert all(weights_differ(first, other, t) for t in TICKERS)
    # A network's seed does not depend on the other tickers trained beside it.
    alone, _ = train(closes[["CCC"]], tiny(arch=arch), TRAIN_END)
    assert not weights_differ(first, alone, "CCC")


def random_split(seed: int) -> tuple[tuple[torch.Tensor, torch.Tensor], ...]:
    g = torch.Generator().manual_seed(seed)
    train_xy = (torch.randn(48, 6, generator=g), torch.randn(48, generator=g))
    val_xy = (torch.randn(16, 6, generator=g), torch.randn(16, generator=g))
    return train_xy, val_xy


def fit_with_snapshots(
    spec: ModelSpec, train_xy: Any, val_xy: Any
) -> tuple[LSTMForecaster, Any, dict[int, dict[str, torch.Tensor]]]:
    torch.manual_seed(0)
    net = LSTMForecaster(spec.hidden, spec.layers)
    snapshots: dict[int, dict[str, torch.Tensor]] = {
        0: {k: v.clone() for k, v in net.state_dict().items()}
    }
    seen: list[tuple[int, float, float]] = []

    def on_epoch(epoch: int, train_loss: float, val_loss: float) -> None:
        seen.append((epoch, train_loss, val_loss))
        snapshots[epoch] = {k: v.clone() for k, v in net.state_dict().items()}

    result = fit(net, train_xy, val_xy, spec, torch.Generator().manual_seed(0), on_epoch)
    assert seen == list(
        zip(range(1, result.epochs + 1), result.train_loss, result.val_loss, strict=True)
    )
    return net, result, snapshots


def test_early_stopping_restores_the_best_epoch() -> None:
    # Pure noise: the validation loss soon stops improving while the training loss falls.
    spec = tiny(hidden=16, lr=1e-2, max_epochs=200, patience=3)
    train_xy, val_xy = random_split(0)
    net, result, snapshots = fit_with_snapshots(spec, train_xy, val_xy)
    assert result.epochs == result.best_epoch + 3 < 200
    assert result.best_val_loss == min(result.val_loss)
    assert result.stop_reason == (
        f"validation loss did not improve for 3 epochs "
        f"(best {result.best_val_loss:.6g} at epoch {result.best_epoch})"
    )
    assert (result.n_train, result.n_val) == (48, 16)
    # The net holds the best epoch's weights, not the last epoch's.
    state = net.state_dict()
    assert all(torch.equal(state[k], snapshots[result.best_epoch][k]) for k in state)
    assert any(not torch.equal(state[k], snapshots[result.epochs][k]) for k in state)
    assert evaluate(net, *val_xy) == result.best_val_loss
    assert result.val_loss[-1] > result.best_val_loss
    assert not net.training


def test_training_stops_at_max_epochs_and_keeps_the_best() -> None:
    # The same noise as above: the best epoch (2) is before the last, within the patience.
    spec = tiny(hidden=16, lr=1e-2, max_epochs=4, patience=10)
    net, result, snapshots = fit_with_snapshots(spec, *random_split(0))
    assert result.epochs == 4
    assert result.stop_reason == "reached max_epochs (4)"
    assert result.best_val_loss == min(result.val_loss) < result.val_loss[-1]
    assert result.best_epoch < 4
    state = net.state_dict()
    assert all(torch.equal(state[k], snapshots[result.best_epoch][k]) for k in state)
    assert evaluate(net, *random_split(0)[1]) == result.best_val_loss


def test_train_reports_early_stopping_per_network() -> None:
    _, report = train(walk_closes(), tiny(lr=1e-2, max_epochs=60, patience=2), TRAIN_END)
    for result in report.fits.values():
        assert result.epochs == result.best_epoch + 2 < 60
        assert result.stop_reason.startswith("validation loss did not improve for 2 epochs")


def test_a_loss_that_is_not_finite_from_the_first_epoch_is_a_clear_error() -> None:
    # Regression: fit() used to return best_epoch=1 with NaN loss while holding the initial
    # weights; a network that never had a finite loss is not a model.
    spec = tiny(hidden=4, max_epochs=50)
    (x, y), val_xy = random_split(2)
    x = x.clone()
    x[0, 0] = float("nan")
    with pytest.raises(TrainingDataError, match="training diverged: the loss was not finite"):
        fit_with_snapshots(spec, (x, y), val_xy)


# -- 10. point in time ---------------------------------------------------------------------------


@pytest.fixture(scope="module", params=ARCHS)
def trained(request: pytest.FixtureRequest) -> tuple[Forecaster, TrainingReport]:
    """A tiny model of each architecture: every test that takes it runs once per arch."""
    return train(walk_closes(), tiny(arch=request.param), TRAIN_END)


@pytest.mark.parametrize("week", [60, 79, 85, 99])
def test_predictions_as_of_t_ignore_every_later_price(
    trained: tuple[Forecaster, TrainingReport], week: int
) -> None:
    model, _ = trained
    closes = walk_closes()
    t = WEEKS[week]
    expected = model.forecast(closes, t)
    assert (expected["week"] == t).all()
    assert expected["last_close"].tolist() == closes.loc[t].tolist()
    changed = closes.copy()
    changed.iloc[week + 1 :] *= 3.0
    nan_after = closes.copy()
    nan_after.iloc[week + 1 :] = np.nan
    for later in (changed, nan_after, closes.loc[:t]):
        pd.testing.assert_frame_equal(model.forecast(later, t), expected, check_exact=True)
    # A mid-week as-of date uses the week that closed before it, with or without later rows.
    midweek = t + pd.Timedelta(days=5)
    pd.testing.assert_frame_equal(model.forecast(changed, midweek), expected, check_exact=True)
    pd.testing.assert_series_equal(
        model.predict(closes, midweek), expected["predicted_return"], check_exact=True
    )


def test_predictions_need_a_full_window_up_to_the_as_of_week(
    trained: tuple[Forecaster, TrainingReport],
) -> None:
    model, _ = trained
    closes = walk_closes()
    # Week 55: BBB's window (48..55) holds its missing week 50; CCC has bars since 30.
    early = model.forecast(closes, WEEKS[GAP + 5])
    assert np.isnan(early.loc["BBB", "predicted_return"])
    assert np.isfinite(early.loc[["AAA", "CCC"], "predicted_return"]).all()
    # Week 36: CCC has 7 of its 8 weeks; week 37 is its first full window.
    assert np.isnan(model.forecast(closes, WEEKS[LISTED + 6]).loc["CCC", "predicted_return"])
    assert np.isfinite(model.forecast(closes, WEEKS[LISTED + 7]).loc["CCC", "predicted_return"])
    # Fewer weeks than a window: no predictions at all.
    assert model.forecast(closes, WEEKS[3])["predicted_return"].isna().all()
    # The predicted return is predicted_close / last_close - 1.
    row = model.forecast(closes, WEEKS[90]).loc["AAA"]
    assert row["predicted_return"] == row["predicted_close"] / row["last_close"] - 1.0


def test_forecast_refuses_stale_or_missing_data(trained: tuple[Forecaster, TrainingReport]) -> None:
    model, _ = trained
    closes = walk_closes()
    with pytest.raises(TrainingDataError, match="more than a week before the as-of date"):
        model.forecast(closes.loc[: WEEKS[50]], WEEKS[52])
    with pytest.raises(TrainingDataError, match="no weekly closes on or before 2018-12-28"):
        model.forecast(closes, "2018-12-28")
    with pytest.raises(TrainingDataError, match="no prices for CCC"):
        model.forecast(closes[["AAA", "BBB"]], WEEKS[90], tickers=["AAA", "CCC"])
    with pytest.raises(TrainingDataError, match="has no model for ZZZ") as err:
        model.predict(closes.assign(ZZZ=1.0), WEEKS[90], tickers=["AAA", "ZZZ"])
    assert isinstance(err.value, ModelError)
    assert "trained on AAA, BBB, CCC" in str(err.value)
    # Only the model's tickers are predicted by default; extra columns are ignored.
    assert model.predict(closes.assign(ZZZ=1.0), WEEKS[90]).index.tolist() == TICKERS


def test_train_and_forecast_do_not_mutate_the_input(
    trained: tuple[Forecaster, TrainingReport],
) -> None:
    closes = walk_closes()
    before = closes.copy()
    train(closes, tiny(max_epochs=1), TRAIN_END)
    trained[0].forecast(closes, WEEKS[90])
    pd.testing.assert_frame_equal(closes, before, check_exact=True)


def test_data_fingerprint_covers_prices_and_weeks_only_up_to_train_end(
    trained: tuple[Forecaster, TrainingReport],
) -> None:
    model, _ = trained
    closes = walk_closes()
    assert model.data_fingerprint == data_fingerprint(closes.loc[:TRAIN_END])
    # Column order does not matter; a value or a week stamp does.
    assert data_fingerprint(closes[TICKERS[::-1]]) == data_fingerprint(closes)
    moved = closes.copy()
    moved.iloc[10, 0] = np.nextafter(moved.iloc[10, 0], np.inf)
    assert data_fingerprint(moved) != data_fingerprint(closes)
    assert data_fingerprint(closes.shift(1, freq="D")) != data_fingerprint(closes)


# -- 8. bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"window": 1}, "model.window must be between 2 and 520 weeks (got 1)"),
        ({"hidden": 0}, "model.hidden must be between 1 and 4096 (got 0)"),
        ({"layers": 9}, "model.layers must be between 1 and 8 (got 9)"),
        ({"dropout": 1.0}, "model.dropout must be in [0, 1) (got 1.0)"),
        ({"lr": 0.0}, "model.lr must be in (0, 1] (got 0.0)"),
        ({"val_fraction": 1.0}, "model.val_fraction must be in (0, 1) (got 1.0)"),
        ({"max_epochs": 0}, "model.max_epochs must be at least 1 (got 0)"),
        ({"patience": 0}, "model.patience must be at least 1 (got 0)"),
        ({"seed": -1}, "model.seed must be a non-negative integer (got -1)"),
        ({"mode": "both"}, "model.mode must be 'per_ticker' or 'pooled' (got 'both')"),
        ({"scaling": "none"}, "model.scaling must be 'window' or 'ticker'"),
        ({"optimizer": "sgd"}, "model.optimizer must be 'adam' or 'adamw'"),
        ({"hiden": 8}, "unknown model field 'hiden' (did you mean 'hidden'?)"),
        (
            {"arch": "transformr"},
            "unknown model.arch 'transformr' (did you mean 'transformer'?): use one of lstm, "
            "lstm_attention, transformer",
        ),
        (
            {"arch": "transformer", "hidden": 30},
            "model.hidden must be a multiple of 4 with arch 'transformer' (d_model is split "
            "over 4 attention heads) (got 30)",
        ),
    ],
)
def test_spec_errors_name_the_field(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=re.escape(message)):
        ModelSpec.from_preset("m", "small", **fields)


def test_spec_names_presets_and_round_trip() -> None:
    with pytest.raises(
        SpecError, match=re.escape("unknown model preset 'smal' (did you mean 'small'?)")
    ):
        ModelSpec.from_preset("m", "smal")
    with pytest.raises(SpecError, match="model name 'bad/name'"):
        ModelSpec(name="bad/name")
    with pytest.raises(SpecError, match="unknown model field 'bogus' in a stored spec"):
        ModelSpec.from_dict({"name": "m", "bogus": 1})
    spec = ModelSpec.from_preset("m", "small", hidden=16, lr=None)
    assert (spec.hidden, spec.lr, spec.optimizer, spec.weight_decay) == (16, 1e-3, "adamw", 0.01)
    assert ModelSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(AttributeError):
        spec.hidden = 4  # type: ignore[misc]


def test_check_prices_refuses_bad_frames() -> None:
    closes = walk_closes()
    check_prices(closes)  # NaN means "no bar" and is fine
    zero = closes.copy()
    zero.iloc[12, 1] = 0.0
    with pytest.raises(
        TrainingDataError, match=re.escape("BBB: price 0.0 on 2019-03-29 is not a positive")
    ):
        check_prices(zero)
    negative = closes.copy()
    negative.iloc[40, 2] = -3.0
    with pytest.raises(TrainingDataError, match=re.escape("CCC: price -3.0 on 2019-10-11")):
        train(negative, tiny(), TRAIN_END)
    infinite = closes.copy()
    infinite.iloc[5, 0] = np.inf
    with pytest.raises(TrainingDataError, match="AAA: price inf"):
        train(infinite, tiny(), TRAIN_END)
    with pytest.raises(TrainingDataError, match="DatetimeIndex"):
        check_prices(closes.reset_index(drop=True))
    with pytest.raises(TrainingDataError, match="unique, ascending"):
        check_prices(closes.iloc[::-1])
    with pytest.raises(TrainingDataError, match="unique, ascending"):
        check_prices(pd.concat([closes.iloc[:3], closes.iloc[2:5]]))
    with pytest.raises(TrainingDataError, match="no tickers to train on"):
        train(closes[[]], tiny(), TRAIN_END)


def test_train_refuses_too_little_history() -> None:
    closes = walk_closes()
    # AAA up to week 8: 9 closes, one 8-week window with its target.
    with pytest.raises(
        TrainingDataError, match="AAA: 9 weekly closes up to train_end 2019-03-01, too few"
    ):
        train(closes[["AAA"]], tiny(), WEEKS[8])
    # CCC is listed in week 30: nothing to train on before it.
    with pytest.raises(TrainingDataError, match="CCC: 0 weekly closes up to train_end 2019-06-28"):
        train(closes, tiny(), WEEKS[25])
    # Window longer than the history.
    with pytest.raises(TrainingDataError, match="too few for 200-week windows"):
        train(closes[["AAA"]], tiny(window=200), TRAIN_END)


# -- artifacts without the registry --------------------------------------------------------------


def test_version_files_round_trip_and_schema_check(
    trained: tuple[Forecaster, TrainingReport], tmp_path: Path
) -> None:
    model, report = trained
    folder = tmp_path / "v"
    digests = write_version(model, report, folder)
    loaded = read_version(folder, **digests)
    assert_same_weights(loaded, model)
    assert loaded.scalers == model.scalers
    assert (loaded.spec, loaded.tickers) == (model.spec, model.tickers)
    assert (loaded.train_start, loaded.train_end) == (model.train_start, model.train_end)
    closes = walk_closes()
    pd.testing.assert_frame_equal(
        loaded.forecast(closes, WEEKS[90]), model.forecast(closes, WEEKS[90]), check_exact=True
    )

    config = json.loads((folder / "config.json").read_text())
    assert config["schema_version"] == SCHEMA_VERSION == 1
    assert config["networks"] == {t: f"weights/{t}.safetensors" for t in TICKERS}
    config["schema_version"] = 2
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(IntegrityError, match="has schema version 2; this foliosim reads schema 1"):
        read_version(folder)


def test_read_version_refuses_malformed_files(
    trained: tuple[Forecaster, TrainingReport], tmp_path: Path
) -> None:
    model, report = trained
    folder = tmp_path / "v"
    write_version(model, report, folder)
    config_text = (folder / "config.json").read_text()
    config = json.loads(config_text)
    config["feature_spec"]["window"] = 9
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(IntegrityError, match="feature spec"):
        read_version(folder)
    (folder / "config.json").write_text(config_text)

    scaler_text = (folder / "scaler.json").read_text()
    scalers = json.loads(scaler_text)
    scalers["scalers"]["BBB"]["out_std"] = 0.0
    (folder / "scaler.json").write_text(json.dumps(scalers))
    with pytest.raises(IntegrityError, match=re.escape("scaler.json is malformed")):
        read_version(folder)
    (folder / "scaler.json").write_text(scaler_text)

    weights = folder / "weights" / "CCC.safetensors"
    weights.write_bytes(b"\xff" * 16 + weights.read_bytes()[16:])
    with pytest.raises(
        IntegrityError, match=re.escape("CCC.safetensors is not a valid weights file for CCC")
    ):
        read_version(folder)
    weights.unlink()
    with pytest.raises(IntegrityError, match=r"model file missing: .*CCC\.safetensors"):
        read_version(folder)


# -- metrics -------------------------------------------------------------------------------------


def test_metrics_against_the_naive_forecast_by_hand() -> None:
    last = np.array([10.0, 10.0, 10.0, 10.0])
    actual = np.array([11.0, 9.0, 10.0, 12.0])
    predicted = np.array([10.5, 10.5, 11.0, 10.0])
    m = score(last, actual, predicted)
    # Price errors -0.5, 1.5, 1, -2.
    assert m["price"]["mse"] == 7.5 / 4
    assert m["price"]["mae"] == 5.0 / 4
    assert m["price"]["mape"] == pytest.approx((0.5 / 11 + 1.5 / 9 + 1 / 10 + 2 / 12) / 4 * 100)
    # Directions: up/up hit, up/down miss; a flat actual (week 3) or flat prediction (week 4)
    # is not counted.
    assert m["price"]["hit_rate"] == m["return"]["hit_rate"] == 0.5
    # Return errors -0.05, 0.15, 0.1, -0.2; MAPE skips the week whose actual return is 0.
    assert m["return"]["mse"] == pytest.approx(0.075 / 4)
    assert m["return"]["mape"] == pytest.approx((0.5 + 1.5 + 1.0) / 3 * 100)
    c = compare(last, actual, predicted)
    assert c["n"] == 4
    assert c["naive"]["return"]["mse"] == pytest.approx(0.06 / 4)
    assert c["naive"]["return"]["hit_rate"] is None
    assert c["mse_ratio"] == pytest.approx(1.25)


def test_one_training_window_is_a_clear_error() -> None:
    # Regression: with two windows before train_end the error blamed flat prices.
    closes = walk_closes()[["AAA"]]
    with pytest.raises(TrainingDataError, match="AAA: 1 training window"):
        train(closes, tiny(), WEEKS[9])


def test_threads_zero_is_one_for_small_networks_and_every_core_for_large() -> None:
    """A small network trains on one thread (fair beside other processes, no slower alone);
    the choice depends on the spec and the machine only, never on the load."""
    import torch

    from models.forecaster import auto_threads, set_threads

    usable = len(os.sched_getaffinity(0))
    assert auto_threads(32) == 1 and auto_threads(127) == 1
    assert auto_threads(128) == auto_threads(256) == usable
    before = torch.get_num_threads()
    try:
        assert set_threads(0, 32) == 1 == torch.get_num_threads()
        assert set_threads(0, 256) == usable == torch.get_num_threads()
        assert set_threads(3, 32) == 3 == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def test_the_command_line_makes_waiting_openmp_threads_sleep(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    from tests.helpers import cli

    assert cli(["--help"], monkeypatch) == 0
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
