"""The model registry on a real embedded MLflow store in a temporary workspace.

Creating a store costs a few seconds (MLflow's schema migrations), so most tests share one
module-scoped registry and each uses its own model name; registering a version is under a
second. The models are trained on the hand-made closes of ``test_models.py``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest
import torch

from models.artifacts import SCHEMA_VERSION, code_version, files_digest, read_version, write_version
from models.errors import IntegrityError, ModelError, RegistryError, TrainingDataError
from models.forecaster import Forecaster, TrainingReport, data_fingerprint, train
from models.registry import Registry, VersionInfo, parse_ref, spec_digest
from models.spec import ARCHS, Arch, ModelSpec
from tests.model_data import TICKERS, TRAIN_END, WEEKS, tiny, walk_closes

#: An earlier cutoff for the point-in-time lookups.
EARLY_END = WEEKS[69]

Trained = tuple[Forecaster, TrainingReport]


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    return Registry(tmp_path_factory.mktemp("registry") / "ws")


def trained(name: str, train_end: pd.Timestamp = TRAIN_END, **fields: object) -> Trained:
    return train(walk_closes(), dataclasses.replace(tiny(**fields), name=name), train_end)


def predictions(model: Forecaster) -> pd.DataFrame:
    closes = walk_closes()
    return pd.concat([model.forecast(closes, WEEKS[w]) for w in (79, 85, 99)])


def assert_same_model(a: Forecaster, b: Forecaster) -> None:
    assert a.nets.keys() == b.nets.keys()
    for key, net in a.nets.items():
        other = b.nets[key].state_dict()
        for name, tensor in net.state_dict().items():
            assert torch.equal(tensor, other[name]), (key, name)
    assert a.scalers == b.scalers
    assert (a.spec, a.tickers, a.train_start, a.train_end, a.data_fingerprint) == (
        b.spec,
        b.tickers,
        b.train_start,
        b.train_end,
        b.data_fingerprint,
    )
    pd.testing.assert_frame_equal(predictions(a), predictions(b), check_exact=True)


# -- 7. round trip -------------------------------------------------------------------------------


def test_register_list_resolve_alias_and_load(registry: Registry) -> None:
    model, report = trained("rt")
    expected = predictions(model)
    first = registry.register(model, report)
    assert (first.name, first.version, first.ref, first.aliases) == ("rt", 1, "rt/1", ())
    assert model.version == "rt/1"

    listed = first.describe()
    folder = registry.artifact_dir(first)
    weights = [f"weights/{t}.safetensors" for t in TICKERS]
    keys = ("tickers", "window", "mode", "preset", "test_weeks", "features", "loss")
    assert {k: listed[k] for k in keys} == {
        "features": ["close"],
        "loss": "mse",
        "tickers": TICKERS,
        "window": 8,
        "mode": "per_ticker",
        "preset": "small",
        "test_weeks": 20,
    }
    assert (listed["train_start"], listed["train_end"]) == ("2019-01-04", "2020-07-10")
    assert listed["train_end"] == TRAIN_END.date().isoformat()
    assert listed["data_fingerprint"] == data_fingerprint(walk_closes().loc[:TRAIN_END])
    assert listed["weights_sha256"] == files_digest(folder, weights)
    assert listed["code_version"] == code_version()
    assert listed["schema_version"] == SCHEMA_VERSION == 1
    assert listed["test_mse_ratio"] == report.metrics["all"]["mse_ratio"]
    assert sorted(p.relative_to(folder).as_posix() for p in folder.glob("weights/*")) == weights

    # A second registration (another seed) adds version 2 and leaves version 1's files alone.
    v1_bytes = {rel: (folder / rel).read_bytes() for rel in weights}
    other, other_report = trained("rt", seed=1)
    second = registry.register(other, other_report)
    assert second.ref == "rt/2"
    assert registry.artifact_dir(second) != folder
    assert {rel: (folder / rel).read_bytes() for rel in weights} == v1_bytes
    assert [v.ref for v in registry.versions("rt")] == ["rt/1", "rt/2"]
    assert "rt" in registry.names()

    assert registry.resolve("rt").ref == "rt/2"  # the newest
    assert registry.resolve("rt/1").ref == "rt/1"
    assert registry.resolve(" rt/1 ").ref == "rt/1"
    registry.set_alias("rt", 1, "prod")
    assert registry.resolve("rt@prod").ref == "rt/1"
    assert [v.aliases for v in registry.versions("rt")] == [("prod",), ()]
    registry.set_alias("rt", 2, "prod")  # an alias moves
    assert registry.resolve("rt@prod").ref == "rt/2"
    assert [v.aliases for v in registry.versions("rt")] == [(), ("prod",)]

    loaded = registry.load("rt/1")
    assert loaded.version == "rt/1"
    assert_same_model(loaded, model)
    pd.testing.assert_frame_equal(predictions(loaded), expected, check_exact=True)
    assert_same_model(registry.load("rt@prod", tickers=["CCC", "AAA"]), other)
    assert_same_model(registry.load(first), model)


def test_pooled_model_round_trip(registry: Registry) -> None:
    model, report = trained("rt-pooled", mode="pooled")
    info = registry.register(model, report)
    assert sorted(p.name for p in registry.artifact_dir(info).glob("*.safetensors")) == [
        "weights.safetensors"
    ]
    assert_same_model(registry.load("rt-pooled"), model)


@pytest.mark.parametrize("arch", ARCHS)
def test_each_arch_round_trips_and_its_version_names_it(registry: Registry, arch: Arch) -> None:
    model, report = trained(f"rt-{arch}", arch=arch)
    info = registry.register(model, report)
    assert info.tags["arch"] == info.describe()["arch"] == arch
    folder = registry.artifact_dir(info)
    stored = json.loads((folder / "config.json").read_text())["spec"]
    assert stored.get("arch") == (None if arch == "lstm" else arch)  # lstm: the old form
    assert info.tags["spec_sha256"] == spec_digest(stored)
    card = (folder / "model_card.md").read_text()
    title = {"lstm": "LSTM", "lstm_attention": "Attention-LSTM", "transformer": "Transformer"}
    assert card.splitlines()[2].startswith(f"{title[arch]} forecaster of next week's")
    assert f"- Architecture: `{arch}`, " in card
    loaded = registry.load(info.ref)
    assert loaded.spec.arch == arch
    assert all(type(loaded.nets[t]) is type(model.nets[t]) for t in TICKERS)
    assert_same_model(loaded, model)


#: ``ModelSpec.from_preset("paper12-lstm", "paper")`` as foliosim stored it before
#: ``model.arch`` existed (commit e5abca7), and the ``spec_sha256`` it had then.
OLD_PAPER_SPEC = {
    "name": "paper12-lstm",
    "mode": "per_ticker",
    "scaling": "window",
    "window": 24,
    "hidden": 256,
    "layers": 2,
    "dropout": 0.0,
    "optimizer": "adam",
    "lr": 0.001,
    "weight_decay": 0.0,
    "batch": 64,
    "max_epochs": 200,
    "patience": 10,
    "val_fraction": 0.2,
    "seed": 0,
    "threads": 0,
    "preset": "paper",
}
OLD_PAPER_DIGEST = "0f7579c8f411d0bff5de51e65b7e6a0fc3dbc81f22a23d440ee6e98e628a8c76"


def test_lstm_specs_keep_their_stored_form_and_digest_and_others_differ() -> None:
    spec = ModelSpec.from_preset("paper12-lstm", "paper")
    assert spec.arch == "lstm"
    assert spec.to_dict() == OLD_PAPER_SPEC
    assert spec_digest(spec.to_dict()) == OLD_PAPER_DIGEST  # old versions are still reused
    assert ModelSpec.from_dict(OLD_PAPER_SPEC) == spec  # and load as LSTMs
    for arch in ("lstm_attention", "transformer"):
        other = dataclasses.replace(spec, arch=arch)  # every other field the same
        assert other.to_dict() == {**OLD_PAPER_SPEC, "arch": arch}
        assert ModelSpec.from_dict(other.to_dict()) == other
        assert spec_digest(other.to_dict()) != OLD_PAPER_DIGEST


def test_weights_of_one_arch_never_load_as_another(tmp_path: Path) -> None:
    model, report = trained("cross", arch="transformer")
    folder = tmp_path / "v"
    write_version(model, report, folder)
    config = json.loads((folder / "config.json").read_text())
    for claimed in ("lstm", "lstm_attention"):
        config["spec"]["arch"] = claimed
        (folder / "config.json").write_text(json.dumps(config))
        # Without the registry's digests too: the weights do not fit the claimed network.
        with pytest.raises(
            IntegrityError, match=re.escape("AAA.safetensors is not a valid weights file for AAA")
        ):
            read_version(folder)


def test_as_of_picks_the_latest_train_end_strictly_before_the_date(registry: Registry) -> None:
    late = registry.register(*trained("pit"))  # v1, train_end 2020-07-10
    early = registry.register(*trained("pit", EARLY_END))  # v2, train_end 2020-05-01
    tie = registry.register(*trained("pit", seed=1))  # v3, the same train_end as v1
    assert (late.train_end, early.train_end, tie.train_end) == (TRAIN_END, EARLY_END, TRAIN_END)
    day = pd.Timedelta(days=1)
    assert registry.as_of("pit", EARLY_END + day).ref == "pit/2"
    assert registry.as_of("pit", TRAIN_END).ref == "pit/2"  # v1 and v3 saw this week's close
    assert registry.as_of("pit", TRAIN_END + day).ref == "pit/3"  # newest of the tie
    assert registry.as_of(name="pit", date="2030-01-01").ref == "pit/3"
    message = (
        "no version of 'pit' was trained on data ending before 2020-05-01 "
        "(the earliest train_end is 2020-05-01)"
    )
    with pytest.raises(RegistryError, match=re.escape(message)):
        registry.as_of("pit", EARLY_END)
    with pytest.raises(RegistryError, match="no registered model named 'pot'"):
        registry.as_of("pot", TRAIN_END)
    with registry._calls("creating a name without versions") as client:
        client.create_registered_model("bare")  # as a registration that failed half-way
    with pytest.raises(RegistryError, match=re.escape("model 'bare' has no versions; train")):
        registry.as_of("bare", TRAIN_END)


# -- 8. errors -----------------------------------------------------------------------------------


def test_unknown_names_versions_and_aliases(registry: Registry) -> None:
    info = registry.register(*trained("errs"))
    cases = [
        (
            "errz",
            "no registered model named 'errz' in the workspace registry (did you mean 'errs'?)",
        ),
        ("errs/7", "model 'errs' has versions 1..1; there is no version 7"),
        ("errs@prdo", "model 'errs' has no alias 'prdo' (did you mean 'prod'?) (aliases: prod)"),
        ("errs@nope", "model 'errs' has no alias 'nope' (aliases: prod)"),
    ]
    registry.set_alias("errs", info.version, "prod")
    for ref, message in cases:
        with pytest.raises(RegistryError, match=re.escape(message)):
            registry.resolve(ref)
        with pytest.raises(RegistryError, match=re.escape(message)):
            registry.load(ref)
    with pytest.raises(RegistryError, match="there is no version 3"):
        registry.set_alias("errs", 3, "prod")
    for alias in ("latest", "1st", "a b", ""):
        with pytest.raises(RegistryError, match="use letters, digits"):
            registry.set_alias("errs", 1, alias)
    with pytest.raises(TrainingDataError, match="model errs/1 has no model for ZZZ") as err:
        registry.load("errs/1", tickers=["AAA", "ZZZ"])
    assert isinstance(err.value, ModelError)
    assert "it was trained on AAA, BBB, CCC" in str(err.value)
    # A version registered by a foliosim with another schema is refused before reading files.
    registry.client.set_model_version_tag("errs", "1", "schema_version", "2")
    with pytest.raises(RegistryError, match=re.escape("errs/1 has schema version 2; this")):
        registry.load("errs/1")


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("", "expected NAME, NAME/VERSION or NAME@ALIAS"),
        ("/3", "expected NAME, NAME/VERSION or NAME@ALIAS"),
        ("a b", "expected NAME, NAME/VERSION or NAME@ALIAS"),
        ("m/1@prod", "expected NAME, NAME/VERSION or NAME@ALIAS"),
        ("m/1/2", "expected NAME, NAME/VERSION or NAME@ALIAS"),
        ("m@", "expected NAME, NAME/VERSION or NAME@ALIAS"),
        ("m/", "expected NAME, NAME/VERSION or NAME@ALIAS"),
        ("m/0", "version must be a positive integer"),
        ("m/-1", "version must be a positive integer"),
        ("m/x", "version must be a positive integer"),
        ("m/1.5", "version must be a positive integer"),
    ],
)
def test_parse_ref_refuses_bad_references(ref: str, message: str) -> None:
    with pytest.raises(RegistryError, match=re.escape(message)):
        parse_ref(ref)


def test_parse_ref_accepts_the_three_forms() -> None:
    assert parse_ref("paper12-lstm") == ("paper12-lstm", None, None)
    assert parse_ref("paper12-lstm/12") == ("paper12-lstm", 12, None)
    assert parse_ref("a.b_c@prod-2") == ("a.b_c", None, "prod-2")


def test_an_empty_workspace_lists_nothing_and_creates_no_store(tmp_path: Path) -> None:
    empty = Registry(tmp_path / "empty")
    assert empty.names() == []
    with pytest.raises(RegistryError, match="no registered model named 'm' in the workspace"):
        empty.resolve("m")
    with pytest.raises(RegistryError, match="no registered model named 'm' in the workspace"):
        empty.as_of("m", "2024-01-05")
    assert not (tmp_path / "empty").exists()


def test_listing_versions_of_an_empty_workspace_creates_no_store(tmp_path: Path) -> None:
    empty = Registry(tmp_path / "empty")
    assert empty.versions() == []
    assert not (tmp_path / "empty").exists()


@pytest.fixture(scope="module")
def pristine(registry: Registry) -> VersionInfo:
    """Version 1 of ``tamper``, never altered."""
    return registry.register(*trained("tamper"))


@pytest.fixture
def tamper_version(registry: Registry, pristine: VersionInfo) -> Iterator[tuple[VersionInfo, Path]]:
    """A fresh version of ``tamper`` that the test may alter (no other test reads it)."""
    info = registry.register(*trained("tamper"))
    assert info.version > pristine.version
    folder = registry.artifact_dir(info)
    registry.load(info)  # intact before the change
    yield info, folder


def flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))


def edit_json(path: Path, edit: str) -> None:
    payload = json.loads(path.read_text())
    if edit == "scaler":
        payload["scalers"]["AAA"]["in_mean"] += 1e-9
    else:
        payload["schema_version"] = 2
    path.write_text(json.dumps(payload, indent=2) + "\n")


WEIGHTS_CHANGED = "weights in {folder} differ from the registered version (checksum mismatch)"
MANIFEST_CHANGED = (
    "config.json or scaler.json in {folder} differ from the registered version (checksum mismatch)"
)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: flip_last_byte(f / "weights" / "BBB.safetensors"), WEIGHTS_CHANGED),
        (lambda f: edit_json(f / "scaler.json", "scaler"), MANIFEST_CHANGED),
        (lambda f: edit_json(f / "config.json", "schema"), MANIFEST_CHANGED),
        (lambda f: (f / "weights" / "CCC.safetensors").unlink(), "model file missing: {folder}"),
        (lambda f: (f / "scaler.json").unlink(), "model file missing: {folder}/scaler.json"),
        (lambda f: shutil.rmtree(f), "the files of tamper/{version} are missing ({folder})"),
    ],
    ids=["flipped-weights", "scaler-edit", "schema-edit", "no-weights", "no-scaler", "no-folder"],
)
def test_tampered_versions_are_refused(
    registry: Registry,
    pristine: VersionInfo,
    tamper_version: tuple[VersionInfo, Path],
    change: Callable[[Path], object],
    message: str,
) -> None:
    info, folder = tamper_version
    change(folder)
    expected = message.format(folder=folder, version=info.version)
    error = RegistryError if "are missing" in message else IntegrityError
    with pytest.raises(error, match=re.escape(expected)):
        registry.load(info.ref)
    # The other versions of the same name still load.
    assert registry.load(pristine.ref).version == pristine.ref


@pytest.mark.parametrize("arch", ARCHS)
def test_each_arch_refuses_a_changed_weight_byte(registry: Registry, arch: Arch) -> None:
    info = registry.register(*trained(f"tamper-{arch}", arch=arch))
    folder = registry.artifact_dir(info)
    registry.load(info)  # intact before the change
    flip_last_byte(folder / "weights" / "AAA.safetensors")
    with pytest.raises(IntegrityError, match=re.escape(WEIGHTS_CHANGED.format(folder=folder))):
        registry.load(info.ref)


# -- 9. the current directory --------------------------------------------------------------------


def test_nothing_is_written_to_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    workspace = tmp_path / "elsewhere" / "ws"
    fresh = Registry(workspace)
    model, report = trained("cwd")
    info = fresh.register(model, report)
    fresh.set_alias("cwd", 1, "prod")
    assert [v.ref for v in fresh.versions()] == ["cwd/1"]
    assert fresh.as_of("cwd", "2030-01-01") == fresh.resolve("cwd@prod")
    assert_same_model(fresh.load("cwd"), model)
    assert list(cwd.iterdir()) == []  # no mlflow.db, no mlruns, no mlartifacts
    assert (workspace / "mlflow.db").is_file()
    assert fresh.artifact_dir(info).is_relative_to(fresh.workspace / "mlartifacts")
    # A second Registry object on the same workspace sees the same versions.
    assert [v.ref for v in Registry(workspace).versions("cwd")] == ["cwd/1"]
    assert list(cwd.iterdir()) == []


def test_registry_calls_leave_mlflow_global_state_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow
    import mlflow.tracking._model_registry.utils as registry_utils
    import mlflow.tracking._tracking_service.utils as tracking_utils

    # Start from MLflow's defaults; monkeypatch puts back whatever was there.
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        monkeypatch.setenv(var, "placeholder")
        monkeypatch.delenv(var)
    monkeypatch.setattr(tracking_utils, "_tracking_uri", None)
    monkeypatch.setattr(registry_utils, "_registry_uri", None)
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    monkeypatch.chdir(first)
    Registry(tmp_path / "ws").versions()
    monkeypatch.chdir(second)
    # MLflow's default store follows the current directory, as before the call.
    assert str(first) not in mlflow.get_tracking_uri()
    assert "MLFLOW_TRACKING_URI" not in os.environ
    assert "MLFLOW_REGISTRY_URI" not in os.environ
