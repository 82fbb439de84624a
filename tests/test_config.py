"""Config parsing: defaults, overrides, and one precise message per bad field."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from models.spec import ARCHS, HEADS
from simulator.config import load_config
from simulator.errors import ConfigError
from tests.conftest import REPO


def test_defaults_and_typed_overrides() -> None:
    cfg = load_config(
        None, ["data.tickers=aapl,msft", "backtest.cash=1e6", "strategy.allow_short=false"]
    )
    assert cfg.data.tickers == ("AAPL", "MSFT")
    assert cfg.backtest.cash == 1_000_000.0
    assert cfg.strategy.allow_short is False
    assert cfg.backtest.fill == "next_open"


def test_resolved_config_round_trips_through_toml(tmp_path: Path) -> None:
    cfg = load_config(None, ["report.risk_free=0.02", "backtest.fill=close"])
    path = tmp_path / "c.toml"
    path.write_text(cfg.to_toml())
    assert load_config(path) == cfg
    assert tomllib.loads(cfg.to_toml())["backtest"]["fill"] == "close"


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["backtest.fil=close"], r"unknown field 'backtest\.fil' \(did you mean 'fill'\?\)"),
        (["dat.source=csv"], r"unknown section 'dat' \(did you mean 'data'\?\)"),
        (["backtest.fill=open"], r"backtest\.fill: Input should be 'next_open' or 'close'"),
        (["backtest.cash=-5"], r"backtest\.cash: Input should be greater than or equal to 1000"),
        (["data.source=csv"], r"source 'csv' needs data\.path"),
        (["backtest.start=2005-01-01"], r"backtest\.start \(2005-01-01\) must lie within"),
        (["backtest.fill=open"], r"\(got 'open'\)"),
        (["data.tickers=A,A"], r"data\.tickers: duplicate tickers: A"),
        (["report.risk_free=4.5"], r"not an annual fraction"),
        (["sourcedata"], r"expected section\.key=value"),
        (
            ["model.arch=transformr"],
            r"config: model\.arch: unknown architecture 'transformr' \(did you mean "
            r"'transformer'\?\): use one of lstm, lstm_attention, transformer$",
        ),
        (
            ["model.arch=transformer", "model.hidden=30"],
            r"config: model\.hidden must be a multiple of 4 with arch 'transformer' \(d_model is "
            r"split over 4 attention heads\) \(got 30\)$",
        ),
    ],
)
def test_bad_values_name_the_field(overrides: list[str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_config(None, overrides)


@pytest.mark.parametrize(
    "path",
    [*sorted((REPO / "examples").glob("*.toml")), REPO / "simulator" / "configs" / "demo.toml"],
    ids=lambda p: p.name,
)
def test_every_shipped_config_takes_each_arch(path: Path) -> None:
    assert load_config(path).model.spec().arch == "lstm"
    for arch in ARCHS:
        spec = load_config(path, [f"model.arch={arch}"]).model.spec()
        assert spec.arch == arch
        if arch == "transformer":
            assert spec.hidden % HEADS == 0


def test_arch_presets_and_explicit_sizes() -> None:
    """The paper transformer's d_model is 128 (docs/config.md); an explicit size wins."""
    sizes = {
        (preset, arch): load_config(None, [f"model.preset={preset}", f"model.arch={arch}"])
        .model.spec()
        .hidden
        for preset in ("paper", "small")
        for arch in ARCHS
    }
    assert sizes == {
        ("paper", "lstm"): 256,
        ("paper", "lstm_attention"): 256,
        ("paper", "transformer"): 128,
        ("small", "lstm"): 32,
        ("small", "lstm_attention"): 32,
        ("small", "transformer"): 32,
    }
    explicit = load_config(None, ["model.arch=transformer", "model.hidden=256"])
    assert explicit.model.spec().hidden == 256


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[data\nsource = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("[backtest]\nstrategyy = 'equal_weight'\n")
    with pytest.raises(ConfigError, match=r"backtest\.strategyy: unknown field \(did you mean"):
        load_config(unknown)
