"""Architectures in the walk-forward: a registered version is reused only by a spec of its arch.

:func:`simulator.walkforward.prepare_models` is how every backtest, replay step and sweep trial
gets its models; here it runs on the tiny hand-made closes of ``tests/model_data.py`` with a
real embedded registry.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from models.net import AttentionLSTM, LSTMForecaster, TransformerForecaster
from models.registry import Registry
from simulator.config import Config, load_config
from simulator.walkforward import UsedModel, prepare_models
from tests.model_data import TRAIN_END, WEEKS, walk_closes


def config(arch: str) -> Config:
    """The tiny model of ``tests/model_data.tiny`` as a ``[model]`` section, up to TRAIN_END."""
    return load_config(
        None,
        [
            "data.start=2019-01-01",
            "data.end=2020-12-31",
            "backtest.start=2020-07-13",
            "backtest.end=2020-12-31",
            "backtest.strategy=lstm_signal",
            "model.name=wf",
            "model.preset=small",
            "model.hidden=8",
            "model.window=8",
            "model.max_epochs=3",
            "model.threads=1",
            f"model.train_end={TRAIN_END.date()}",
            f"model.arch={arch}",
        ],
    )


def test_the_walk_forward_reuses_a_version_of_the_same_arch_only(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "ws")
    closes = walk_closes()
    decisions = pd.DatetimeIndex(WEEKS[80:])
    notes: list[str] = []

    def run(arch: str) -> UsedModel:
        notes.clear()
        (used,) = prepare_models(config(arch), closes, decisions, registry, note=notes.append)
        return used

    first = run("lstm")
    assert (first.trained, first.info.ref) == (True, "wf/1")
    # Make it a version registered before model.arch existed: no arch tag (its stored spec
    # never had an arch). It is still reused by an lstm spec, and loads as an LSTM.
    registry.client.delete_model_version_tag("wf", "1", "arch")
    again = run("lstm")
    assert (again.trained, again.info.ref) == (False, "wf/1")
    assert notes == ["model 1/1: reusing wf/1 (trained up to 2020-07-10)"]
    assert "arch" not in again.info.tags and again.info.describe()["arch"] == "lstm"
    assert type(again.model.nets["AAA"]) is LSTMForecaster

    # Same spec otherwise, same data: each other arch trains its own version.
    kinds = {"transformer": TransformerForecaster, "lstm_attention": AttentionLSTM}
    refs = {}
    for arch in kinds:
        used = run(arch)
        assert used.trained and used.info.tags["arch"] == arch
        assert notes == ["model 1/1: training wf on data up to 2020-07-10"]
        refs[arch] = used.info.ref
    assert refs == {"transformer": "wf/2", "lstm_attention": "wf/3"}
    for arch, ref in refs.items():
        used = run(arch)
        assert (used.trained, used.info.ref) == (False, ref)
        assert type(used.model.nets["AAA"]) is kinds[arch]
    assert [v.ref for v in registry.versions("wf")] == ["wf/1", "wf/2", "wf/3"]
