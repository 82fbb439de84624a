"""Input features (``model.features``): exact panels and scalers, point in time, determinism,
the registry round trip, explanations per feature, and bad input at every boundary."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from models.errors import ModelError, SpecError, TrainingDataError
from models.explain import explain_window
from models.features import FEATURES, check_features, window_values
from models.forecaster import data_fingerprint, train
from models.registry import Registry
from models.spec import ARCHS, ModelSpec
from models.windows import Scaler, fit_scaler, make_windows
from simulator.data.sources import CLOSES_ONLY_NOTE
from simulator.data.weekly import WeeklyData
from simulator.errors import DataError
from simulator.features import check_available, feature_panels
from tests.helpers import CSV, cli, error_line, sets
from tests.model_data import TICKERS, TRAIN_END, WEEKS, tiny, walk_closes

EXTRA = [f for f in FEATURES if f != "close"]


def weekly_data(seed: int = 3, rates: bool = True) -> WeeklyData:
    """Hand-made weekly bars on WEEKS: closes of walk_closes, volume, high and low per ticker,
    an index and a yield."""
    rng = np.random.default_rng(seed)
    closes = walk_closes()
    bars = {}
    for t in TICKERS:
        close = closes[t].dropna()
        bars[t] = pd.DataFrame(
            {
                "open": close,
                "high": close * (1 + rng.uniform(0.01, 0.05, len(close))),
                "low": close * (1 - rng.uniform(0.01, 0.05, len(close))),
                "close": close,
                "volume": rng.uniform(1e5, 1e6, len(close)).round(),
            }
        )
    index = pd.Series(100 * np.exp(np.cumsum(rng.normal(0, 0.02, len(WEEKS)))), index=WEEKS)
    yields = pd.Series(2 + np.cumsum(rng.normal(0, 0.05, len(WEEKS))), index=WEEKS)
    return WeeklyData(bars, index, yields if rates else None, WEEKS, "test", "csv")


def panels() -> dict[str, pd.DataFrame]:
    return feature_panels(weekly_data())


def test_features_are_checked_and_kept_in_one_order() -> None:
    assert check_features(["range", "close", "volume"]) == ("close", "volume", "range")
    assert ModelSpec("m", features=("index", "close")).features == ("close", "index")
    for names, message in [
        (["close", "vol"], "unknown model feature 'vol' (did you mean 'volume'?)"),
        (["volume"], "must include 'close'"),
        (["close", "close"], "lists a feature twice"),
        ([], "non-empty list"),
    ]:
        with pytest.raises(SpecError, match=re.escape(message)):
            check_features(names)


def test_a_closes_only_spec_and_scaler_keep_their_stored_form() -> None:
    """Versions registered before features existed are still reused: same digest, same form."""
    assert "features" not in ModelSpec("m").to_dict()
    assert "loss" not in ModelSpec("m").to_dict()
    assert ModelSpec.from_dict({**ModelSpec("m").to_dict()}).features == ("close",)
    assert "extra" not in Scaler("window", 0.0, 1.0, 0.0, 1.0).to_dict()
    stored = ModelSpec("m", features=("close", "rate")).to_dict()
    assert stored["features"] == ["close", "rate"]
    assert ModelSpec.from_dict(stored).features == ("close", "rate")


def test_panels_by_hand_and_point_in_time() -> None:
    weekly = weekly_data()
    got = feature_panels(weekly)
    bars, week = weekly.bars["AAA"], WEEKS[10]
    assert got["volume"].loc[week, "AAA"] == bars.loc[week, "volume"]
    high, low, close = bars.loc[week, ["high", "low", "close"]]
    assert got["range"].loc[week, "AAA"] == pytest.approx((high - low) / close, rel=1e-15)
    bench = weekly.benchmark
    assert got["index"].loc[week, "CCC"] == pytest.approx(bench[week] / bench[WEEKS[9]] - 1)
    assert weekly.risk_free is not None
    assert got["rate"].loc[week, "BBB"] == pytest.approx(
        weekly.risk_free[week] - weekly.risk_free[WEEKS[9]]
    )
    assert np.isnan(got["index"].iloc[0]).all() and np.isnan(got["rate"].iloc[0]).all()
    # CCC has no bar before week 30: no volume or range there, nothing filled in.
    assert got["volume"]["CCC"].iloc[:30].isna().all()
    # Every value after week t changed: the panels up to t do not move.
    t = 60
    later = weekly_data(seed=99)
    mixed_bars = {
        k: pd.concat([weekly.bars[k].loc[: WEEKS[t]], later.bars[k].loc[WEEKS[t + 1] :]])
        for k in TICKERS
    }
    assert later.risk_free is not None
    mixed = WeeklyData(
        mixed_bars,
        pd.concat([bench.loc[: WEEKS[t]], later.benchmark.loc[WEEKS[t + 1] :]]),
        pd.concat([weekly.risk_free.loc[: WEEKS[t]], later.risk_free.loc[WEEKS[t + 1] :]]),
        WEEKS,
        "test",
        "csv",
    )
    again = feature_panels(mixed)
    for f in EXTRA:
        pd.testing.assert_frame_equal(again[f].loc[: WEEKS[t]], got[f].loc[: WEEKS[t]])
        assert not again[f].loc[WEEKS[t + 1] :].equals(got[f].loc[WEEKS[t + 1] :])


def test_volume_windows_and_extra_statistics_by_hand() -> None:
    volume = np.array([[np.e - 1, np.e**3 - 1]])  # log1p: 1 and 3, mean 2
    assert window_values("volume", volume).tolist() == [[-1.0, 1.0]]
    prices = np.array([[1.0, 2.0], [2.0, 4.0]])
    extras = np.array([[[0.1], [0.3]], [[0.2], [0.4]]])  # one extra feature: index
    s = fit_scaler("window", prices, np.array([3.0, 2.0]), "T", extras, ("close", "index"))
    assert s.extra == (("index", pytest.approx(0.25), pytest.approx(np.sqrt(0.0125))),)
    x = s.inputs(prices, extras=extras)
    assert x.shape == (2, 2, 2)
    np.testing.assert_allclose(x[..., 1], (extras[..., 0] - 0.25) / np.sqrt(0.0125), rtol=1e-6)
    np.testing.assert_allclose(x[..., 0], s.close_inputs(prices), rtol=1e-7)
    assert Scaler.from_dict(json.loads(json.dumps(s.to_dict()))) == s
    flat = np.ones((2, 2, 1))
    with pytest.raises(TrainingDataError, match="feature 'index' does not vary"):
        fit_scaler("window", prices, np.array([3.0, 2.0]), "T", flat, ("close", "index"))
    with pytest.raises(ValueError, match="bad statistics"):
        Scaler.from_dict({**s.to_dict(), "extra": [{"feature": "index", "mean": 0, "std": 0}]})


def test_a_window_missing_a_feature_value_is_dropped() -> None:
    closes = walk_closes()["AAA"].rename("AAA")
    values = np.ones((len(WEEKS), 1))
    values[40, 0] = np.nan
    whole = make_windows(closes, 8)
    holed = make_windows(closes, 8, values)
    assert holed.extras is not None and holed.extras.shape == (len(holed), 8, 1)
    dropped = set(whole.as_of) - set(holed.as_of)
    assert dropped == set(WEEKS[40:48])  # the 8 windows whose weeks include week 40


@pytest.mark.parametrize("feature", EXTRA)
def test_training_and_forecasts_with_a_feature_ignore_every_later_value(feature: str) -> None:
    """The leakage test, per feature: every value after t (closes and all panels) changed,
    the weights trained up to t and the forecast as of t are the same to the last bit."""
    closes, given = walk_closes(), panels()
    spec = tiny(features=("close", feature))
    model, _ = train(closes, spec, TRAIN_END, features=given)
    after = closes.index > TRAIN_END
    moved_closes = closes.copy()
    moved_closes.loc[after] *= 1.7
    moved = {k: v.copy() for k, v in given.items()}
    for v in moved.values():
        v.loc[after] = v.loc[after] * 1.9 + 0.5  # still a possible volume, range...
    again, _ = train(moved_closes, spec, TRAIN_END, features=moved)
    for key, net in model.nets.items():
        for name, tensor in net.state_dict().items():
            assert torch.equal(tensor, again.nets[key].state_dict()[name]), (key, name)
    pd.testing.assert_frame_equal(
        model.forecast(closes, TRAIN_END, features=given),
        again.forecast(moved_closes, TRAIN_END, features=moved),
    )
    # ...while the feature does reach the forecast: change it up to t, and it moves.
    shifted = {k: v.copy() for k, v in given.items()}
    shifted[feature].loc[TRAIN_END] = shifted[feature].loc[TRAIN_END] * 1.5 + 0.01
    changed = model.predict(closes, TRAIN_END, features=shifted)
    assert not np.allclose(changed, model.predict(closes, TRAIN_END, features=given))


@pytest.mark.parametrize("arch", ARCHS)
def test_every_arch_reads_every_feature_deterministically(arch: str) -> None:
    closes, given = walk_closes(), panels()
    spec = tiny(features=FEATURES, arch=arch)
    first, _ = train(closes, spec, TRAIN_END, features=given)
    second, _ = train(closes, spec, TRAIN_END, features=given)
    for name, tensor in first.nets["AAA"].state_dict().items():
        assert torch.equal(tensor, second.nets["AAA"].state_dict()[name])
    window, _, prices, extras, complete = first.inputs(closes, WEEKS[90], None, given)
    assert window == WEEKS[90] and prices.shape == (3, 8)
    assert extras is not None and extras.shape == (3, 8, 4) and complete.all()
    x = first.scalers["AAA"].inputs(prices[:1], extras=extras[:1])
    assert x.shape == (1, 8, 5)
    assert first.nets["AAA"](torch.from_numpy(x)).shape == (1,)
    forecast = first.forecast(closes, WEEKS[90], features=given)
    assert forecast["predicted_return"].notna().all()


def test_a_model_with_features_needs_their_panels() -> None:
    with pytest.raises(TrainingDataError, match="no volume data was given"):
        train(walk_closes(), tiny(features=("close", "volume")), TRAIN_END)
    model, _ = train(
        walk_closes(), tiny(features=("close", "volume")), TRAIN_END, features=panels()
    )
    with pytest.raises(TrainingDataError, match="no volume data was given"):
        model.forecast(walk_closes(), WEEKS[90])


def test_the_fingerprint_covers_the_features_read() -> None:
    closes, given = walk_closes(), panels()
    model, _ = train(closes, tiny(features=("close", "index")), TRAIN_END, features=given)
    assert model.data_fingerprint == data_fingerprint(
        closes.loc[:TRAIN_END], {"index": given["index"]}
    )
    assert model.data_fingerprint != data_fingerprint(closes.loc[:TRAIN_END])


def test_registry_round_trip_and_tamper_refusal(tmp_path: Path) -> None:
    closes, given = walk_closes(), panels()
    model, report = train(closes, tiny(features=FEATURES), TRAIN_END, features=given)
    registry = Registry(tmp_path / "ws")
    info = registry.register(model, report)
    loaded = registry.load(info.ref)
    assert loaded.spec == model.spec and loaded.scalers == model.scalers
    pd.testing.assert_frame_equal(
        loaded.forecast(closes, WEEKS[95], features=given),
        model.forecast(closes, WEEKS[95], features=given),
    )
    card = (registry.artifact_dir(info) / "model_card.md").read_text()
    assert "- Inputs: close, volume, index, rate, range" in card
    assert info.describe()["features"] == list(FEATURES) and info.describe()["loss"] == "mse"
    scaler_file = registry.artifact_dir(info) / "scaler.json"
    doc = json.loads(scaler_file.read_text())
    doc["scalers"]["AAA"]["extra"][0]["std"] *= 2
    scaler_file.write_text(json.dumps(doc))
    with pytest.raises(ModelError, match="checksum mismatch"):
        registry.load(info.ref)


def test_integrated_gradients_are_complete_with_every_feature() -> None:
    closes, given = walk_closes(), panels()
    for arch in ARCHS:
        model, _ = train(closes, tiny(features=FEATURES, arch=arch), TRAIN_END, features=given)
        _, _, prices, extras, _ = model.inputs(closes, WEEKS[90], ["BBB"], given)
        assert extras is not None
        e = explain_window(model.net_for("BBB"), model.scalers["BBB"], prices[0], extras=extras[0])
        assert e.attributions.shape == (8, 5)
        assert abs(e.attributions.sum() - (e.prediction - e.baseline_prediction)) < 1e-4
        assert e.prediction == pytest.approx(
            float(model.predict(closes, WEEKS[90], ["BBB"], given)["BBB"]), abs=1e-6
        )


# --- the data boundary -----------------------------------------------------------------------


def test_features_the_data_lacks_are_one_clear_error() -> None:
    with pytest.raises(DataError, match="no yield series; set report"):
        check_available(weekly_data(rates=False), ["close", "rate"])
    closes_only = WeeklyData(
        weekly_data().bars, weekly_data().benchmark, None, WEEKS, CLOSES_ONLY_NOTE, "bundled"
    )
    for feature in ("volume", "range"):
        with pytest.raises(DataError, match="daily closes only"):
            check_available(closes_only, ["close", feature])
    check_available(closes_only, ["close", "index"])  # the index is there
    silent = weekly_data()
    silent.bars["BBB"]["volume"] = 0.0
    with pytest.raises(DataError, match="no volume for BBB"):
        check_available(silent, ["close", "volume"])


TRAIN = ["model.preset=small", "model.hidden=8", "model.max_epochs=2", "model.threads=1"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["model.features=close,vol"], "unknown model feature 'vol' (did you mean 'volume'?)"),
        (
            [
                "data.source=bundled",
                "data.tickers=AAPL,MSFT",
                "data.benchmark=SP500",
                "model.features=close,volume",
            ],
            "has daily closes only",
        ),
        (["report.risk_free=0.0", "model.features=close,rate"], "no yield series"),
        (["data.tickers=AAPL", "model.loss=sharpe"], "the data has one (AAPL)"),
        (["model.loss=sharp"], "unknown loss 'sharp' (did you mean 'sharpe'?)"),
        (
            ["model.loss=sharpe", "model.mode=per_ticker"],
            "trains one pooled network for the universe",
        ),
    ],
)
def test_bad_feature_and_loss_settings_exit_2_with_one_line(
    extra: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("FOLIOSIM_WORKSPACE", str(tmp_path / "ws"))
    config = Path("examples/paper2023.toml")
    args = ["train", str(config), *sets([*CSV, *TRAIN, *extra])]
    assert cli(args, monkeypatch) == 2
    assert message in error_line(capsys)
    assert not (tmp_path / "ws" / "mlflow.db").exists()


def test_set_and_grid_take_a_feature_list(tmp_path: Path) -> None:
    from simulator.config import load_config
    from simulator.sweep import parse_grid

    cfg = load_config(Path("examples/paper2023.toml"), ['model.features=["volume","close"]'])
    assert cfg.model.features == ["close", "volume"]
    assert cfg.model.spec().features == ("close", "volume")
    cfg = load_config(Path("examples/paper2023.toml"), ["model.arch=transformer"])
    assert cfg.model.spec().arch == "transformer"
    grid = parse_grid(['model.features=["close"],["close","index"]'])
    assert grid == (("model.features", ('["close"]', '["close","index"]')),)


def test_an_account_on_a_feature_model_equals_the_backtest(tmp_path: Path) -> None:
    """Walk-forward, replay and the time contract with every feature and the Sharpe loss: a
    paper account stepped week by week trades exactly as the one backtest does."""
    from simulator import accounts
    from simulator.backtest import run_backtest
    from simulator.config import load_config
    from tests.conftest import PAPER_CONFIG, PAPER_FAST
    from tests.helpers import advance, assert_journal_is_the_backtest, open_new

    quarter = ["backtest.start=2022-07-01", "backtest.end=2022-09-30", "report.baselines="]
    sets = [
        *PAPER_FAST,
        "data.tickers=AAPL,MSFT,NVDA,PEP",
        "model.features=" + ",".join(FEATURES),
        "model.loss=sharpe",
        "model.name=featured",
        *quarter,
    ]
    workspace = tmp_path / "ws"
    cfg = load_config(PAPER_CONFIG, sets)
    result = run_backtest(cfg, workspace)
    assert [m.version for m in result.summary.models] == ["featured/1"]
    open_new(workspace, "featured", cfg)
    advance(workspace, "featured", weeks=3)
    advance(workspace, "featured", weeks=None, until=result.returns.index[-1].date())
    with accounts.open_account(workspace, "featured") as account:
        assert account.model_version == "featured/1"  # reused, not retrained
        assert_journal_is_the_backtest(account.journal, result)
