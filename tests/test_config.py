"""Config parsing: defaults, overrides, and one precise message per bad field."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from simulator.config import load_config
from simulator.errors import ConfigError


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
    ],
)
def test_bad_values_name_the_field(overrides: list[str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_config(None, overrides)


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
