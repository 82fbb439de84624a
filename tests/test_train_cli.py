"""``foliosim train`` and ``foliosim models ...`` end to end on real data, real MLflow store."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from models.registry import Registry
from simulator.config import load_config
from simulator.training import weekly_closes
from tests.helpers import cli

TRAIN_CONFIG = """
[data]
source = "csv"
path = "{path}"
tickers = ["AAPL", "MSFT", "SHOP"]
benchmark = "IXIC"
start = "2016-01-01"
end = "2023-06-30"

[backtest]
start = "2022-07-01"
end = "2023-06-23"

[model]
name = "t-lstm"
preset = "small"
hidden = 8
train_end = "2022-06-24"
max_epochs = 2
threads = 1
"""


@pytest.fixture
def train_config(paper12: Path, tmp_path: Path) -> Path:
    path = tmp_path / "train.toml"
    path.write_text(TRAIN_CONFIG.format(path=paper12))
    return path


def run_json(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> dict:
    capsys.readouterr()
    assert cli(argv, monkeypatch) == 0
    return json.loads(capsys.readouterr().out)


def test_train_list_show_predict(
    train_config: Path,
    tmp_path: Path,
    _workspace: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    assert cli(["train", str(train_config)], monkeypatch) == 0
    out = capsys.readouterr().out
    assert "registered: t-lstm/1" in out
    assert "naive forecast" in out
    assert list(cwd.iterdir()) == []  # the store lives in the workspace, not here

    listed = run_json(["models", "list", "--json"], monkeypatch, capsys)
    (version,) = listed["versions"]
    assert version["name"] == "t-lstm" and version["version"] == 1
    assert version["tickers"] == ["AAPL", "MSFT", "SHOP"]
    assert version["train_end"] == "2022-06-24"
    assert version["window"] == 24
    assert version["test_weeks"] == 53  # 2022-07-01 .. 2023-06-30

    shown = run_json(["models", "show", "t-lstm/1", "--json"], monkeypatch, capsys)
    for key in ("name", "version", "tickers", "window", "train_start", "train_end", "metrics"):
        assert key in shown
    assert shown["integrity"] == "ok"
    assert set(shown["metrics"]["per_ticker"]) == {"AAPL", "MSFT", "SHOP"}
    folder = Path(shown["artifact_dir"])
    for name in ("config.json", "scaler.json", "metrics.json", "model_card.md"):
        assert (folder / name).is_file()
    assert sorted(p.name for p in (folder / "weights").iterdir()) == [
        "AAPL.safetensors",
        "MSFT.safetensors",
        "SHOP.safetensors",
    ]
    assert (folder / "plots" / "learning_AAPL.png").is_file()
    assert (folder / "plots" / "predicted_vs_actual_SHOP.png").is_file()
    assert len(shown["weights_sha256"]) == 64

    # The MLflow run holds the learning curves, one step per epoch.
    registry = Registry(_workspace)
    info = registry.resolve("t-lstm")
    history = registry.client.get_metric_history(info.run_id, "AAPL/val_loss")
    assert [m.step for m in history] == [1, 2]

    # Wednesday as-of: the week in progress is not used; the window ends on Friday 2023-01-06.
    predicted = run_json(
        ["models", "predict", "t-lstm", "--as-of", "2023-01-11", "--json"], monkeypatch, capsys
    )
    assert predicted["week"] == "2023-01-06"
    assert predicted["point_in_time"] is True
    cfg = load_config(train_config)
    closes = weekly_closes(cfg.data, _workspace)
    direct = registry.load("t-lstm/1").predict(closes, pd.Timestamp("2023-01-06"))
    for ticker, row in predicted["predictions"].items():
        assert math.isclose(row["predicted_return"], float(direct[ticker]), rel_tol=0, abs_tol=0)
    assert list(cwd.iterdir()) == []


def test_second_training_adds_a_version_and_aliases_resolve(
    train_config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    assert cli(["train", str(train_config), "--set", "model.mode=pooled"], monkeypatch) == 0
    assert cli(["train", str(train_config), "--set", "model.seed=1"], monkeypatch) == 0
    listed = run_json(["models", "list", "--json"], monkeypatch, capsys)
    assert [(v["version"], v["mode"]) for v in listed["versions"]] == [
        (1, "pooled"),
        (2, "per_ticker"),
    ]
    assert cli(["models", "alias", "t-lstm/1", "prod"], monkeypatch) == 0
    shown = run_json(["models", "show", "t-lstm@prod", "--json"], monkeypatch, capsys)
    assert shown["version"] == 1 and shown["aliases"] == ["prod"]
    assert shown["config"]["networks"] == {"pooled": "weights.safetensors"}
    predicted = run_json(
        ["models", "predict", "t-lstm@prod", "--as-of", "2023-03-03", "--json"],
        monkeypatch,
        capsys,
    )
    assert predicted["version"] == 1 and predicted["week"] == "2023-03-03"


@pytest.mark.parametrize("arch", ["lstm_attention", "transformer"])
def test_train_show_and_predict_each_arch(
    train_config: Path,
    arch: str,
    _workspace: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    assert cli(["train", str(train_config), "--set", f"model.arch={arch}"], monkeypatch) == 0
    listed = run_json(["models", "list", "--json"], monkeypatch, capsys)
    assert [(v["version"], v["arch"]) for v in listed["versions"]] == [(1, arch)]
    shown = run_json(["models", "show", "t-lstm/1", "--json"], monkeypatch, capsys)
    assert shown["integrity"] == "ok" and shown["config"]["spec"]["arch"] == arch
    assert cli(["models", "show", "t-lstm/1"], monkeypatch) == 0
    assert f"- Architecture: `{arch}`, " in capsys.readouterr().out
    predicted = run_json(
        ["models", "predict", "t-lstm/1", "--as-of", "2023-01-06", "--json"], monkeypatch, capsys
    )
    closes = weekly_closes(load_config(train_config).data, _workspace)
    direct = Registry(_workspace).load("t-lstm/1").predict(closes, pd.Timestamp("2023-01-06"))
    assert {t: row["predicted_return"] for t, row in predicted["predictions"].items()} == {
        t: float(v) for t, v in direct.items()
    }


def test_predict_before_train_end_is_flagged(
    train_config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    assert cli(["train", str(train_config)], monkeypatch) == 0
    predicted = run_json(
        ["models", "predict", "t-lstm/1", "--as-of", "2021-06-04", "--json"], monkeypatch, capsys
    )
    assert predicted["point_in_time"] is False
    capsys.readouterr()
    assert cli(["models", "predict", "t-lstm/1", "--as-of", "2021-06-04"], monkeypatch) == 0
    assert "use information from after the as-of date" in capsys.readouterr().out


def one_error_line(capsys: pytest.CaptureFixture) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "Traceback" not in err
    return err


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["model.preset=huge"], "model.preset"),
        (["model.train_end=2030-01-01"], "model.train_end"),
        (["model.name=bad/name"], "model.name"),
        (["model.window=1"], "model.window"),
        (["model.train_end=2016-02-05"], "too few"),
        (["data.tickers=AAPL,ZZZZ"], "ZZZZ"),
        (["model.arch=transfomer"], "unknown architecture 'transfomer' (did you mean"),
        (["model.arch=transformer", "model.hidden=10"], "model.hidden must be a multiple of 4"),
    ],
)
def test_train_config_errors(
    train_config: Path,
    overrides: list[str],
    expected: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
    _workspace: Path,
) -> None:
    argv = ["train", str(train_config)] + [a for o in overrides for a in ("--set", o)]
    assert cli(argv, monkeypatch) == 2
    assert expected in one_error_line(capsys)
    assert Registry(_workspace).names() == []


def test_models_errors(
    train_config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    assert cli(["models", "show", "nothing"], monkeypatch) == 2
    assert "no registered model named 'nothing'" in one_error_line(capsys)
    assert cli(["train", str(train_config)], monkeypatch) == 0
    capsys.readouterr()
    cases = [
        (["models", "show", "t-lstn"], "did you mean 't-lstm'"),
        (["models", "show", "t-lstm/7"], "no version 7"),
        (["models", "show", "t-lstm@prod"], "no alias 'prod'"),
        (["models", "show", "t-lstm/x"], "positive integer"),
        (["models", "alias", "t-lstm", "prod"], "explicit version"),
        (["models", "alias", "t-lstm/1", "latest"], "reserved"),
        (["models", "predict", "t-lstm", "--as-of", "2023-13-01"], "expected a date"),
        (["models", "predict", "t-lstm/1", "--as-of", "2010-01-01"], "before the data's start"),
        # A bare name is the newest version trained before --as-of: none was.
        (
            ["models", "predict", "t-lstm", "--as-of", "2010-01-01"],
            "no version of 't-lstm' was trained on data ending before 2010-01-01",
        ),
        (
            ["models", "predict", "t-lstm", "--as-of", "2023-01-06", "--set", "data.tickers=NVDA"],
            "has no model for NVDA",
        ),
    ]
    for argv, expected in cases:
        assert cli(argv, monkeypatch) == 2, argv
        assert expected in one_error_line(capsys), argv


def test_tampered_weights_are_refused(
    train_config: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
    _workspace: Path,
) -> None:
    assert cli(["train", str(train_config)], monkeypatch) == 0
    registry = Registry(_workspace)
    weights = registry.artifact_dir(registry.resolve("t-lstm/1")) / "weights" / "MSFT.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    capsys.readouterr()
    assert cli(["models", "predict", "t-lstm/1", "--as-of", "2023-01-06"], monkeypatch) == 2
    assert "checksum mismatch" in one_error_line(capsys)
    # models show makes the same checks and fails the same way (it said "weights changed"
    # and exited 0).
    assert cli(["models", "show", "t-lstm/1", "--json"], monkeypatch) == 2
    assert "t-lstm/1 fails its integrity check: weights in" in one_error_line(capsys)


def test_registry_uri_elsewhere_keeps_files_beside_it(
    train_config: Path,
    tmp_path: Path,
    _workspace: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    shared = tmp_path / "shared-store"
    shared.mkdir()
    uri = f"sqlite:///{shared / 'team.db'}"
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    assert cli(["train", str(train_config), "--set", f"model.registry_uri={uri}"], monkeypatch) == 0
    assert list(cwd.iterdir()) == []
    assert not (_workspace / "mlflow.db").exists()
    shown = run_json(
        ["models", "show", "t-lstm", "--registry-uri", uri, "--json"], monkeypatch, capsys
    )
    assert Path(shown["artifact_dir"]).is_relative_to(shared / "mlartifacts")
    assert cli(["models", "show", "t-lstm"], monkeypatch) == 2  # not in the workspace store
    assert list(cwd.iterdir()) == []


def test_train_and_predict_a_sharpe_model_reading_features(
    train_config: Path,
    _workspace: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    """`train` says what a Sharpe-loss model is scored by; `models predict` builds the panels
    of its features from the data and answers the forecast the registry's version gives."""
    from simulator.data import load_daily, make_weekly
    from simulator.features import feature_panels

    sets = ["--set", "model.loss=sharpe", "--set", "model.features=close,volume,index,range"]
    capsys.readouterr()
    assert cli(["train", str(train_config), *sets], monkeypatch) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "one pooled network trained on the Sharpe loss" in out
    assert "over the 53 test weeks after train_end: annualised Sharpe ratio" in out
    shown = run_json(["models", "show", "t-lstm/1", "--json"], monkeypatch, capsys)
    assert shown["config"]["spec"]["features"] == ["close", "volume", "index", "range"]
    assert shown["config"]["spec"]["mode"] == "pooled"
    predicted = run_json(
        ["models", "predict", "t-lstm/1", "--as-of", "2023-01-06", "--json"], monkeypatch, capsys
    )
    data = load_config(train_config).data
    weekly = make_weekly(load_daily(data, 0.0, _workspace))
    direct = Registry(_workspace).load("t-lstm/1")
    expected = direct.predict(
        weekly.closes(), pd.Timestamp("2023-01-06"), features=feature_panels(weekly)
    )
    got = {t: row["predicted_return"] for t, row in predicted["predictions"].items()}
    assert got == {t: float(v) for t, v in expected.items()}
    assert sum(got.values()) == pytest.approx(0.0, abs=1e-12)  # centred scores
