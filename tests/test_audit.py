"""The leak audit: deliberate leaks inflate results, are labelled LEAKED, and exist only here."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from examples.momentum_rule import MomentumRule
from simulator.audit import LEAKED, _PeekNextClose, run_audit
from simulator.config import Config, load_config
from simulator.errors import ConfigError
from strategies.rule import History, State
from tests.conftest import REPO
from tests.helpers import cli, error_line

MOMENTUM = REPO / "examples" / "momentum.toml"
YEAR = ["backtest.start=2022-07-01", "backtest.end=2023-06-23", "report.baselines="]


def test_peek_next_close_hands_the_rule_the_next_weeks_history() -> None:
    weeks = pd.date_range("2024-01-05", periods=4, freq="W-FRI")
    closes = pd.DataFrame({"A": [1.0, 2.0, 3.0, 4.0]}, index=weeks)
    seen: list[tuple[pd.Timestamp, pd.Timestamp]] = []

    class Spy:
        name = "spy"

        def decide(self, week: pd.Timestamp, history: History, state: State) -> dict[str, float]:
            seen.append((week, history.closes.index[-1]))
            return {}

    leaky = _PeekNextClose(Spy(), closes)
    leaky.decide(weeks[1], History.cut(closes, weeks[1], ["A"]), State(1.0, 1.0))
    assert seen == [(weeks[2], weeks[2])]  # asked about t+1, with its close


def test_a_leak_inflates_a_short_horizon_rule_and_is_labelled(tmp_path: Path) -> None:
    """One-week momentum is noise honestly; told next week's close, it cannot miss."""
    cfg = load_config(MOMENTUM, [*YEAR, "backtest.fill=close"])
    honest = run_audit(cfg, tmp_path, ["honest"])[0]
    table, results = run_audit(cfg, tmp_path)  # the config's rule: 12-week momentum
    assert list(table["variant"]) == ["honest", "peek_next_close", "train_through_test"]
    assert table.loc[0, "total_return"] == honest.loc[0, "total_return"]
    assert results["peek_next_close"].summary.strategy_name == (
        f"momentum [{LEAKED}: peek_next_close]"
    )
    assert "needs a strategy that trades on models" in table.loc[2, "note"]
    # 1-week momentum: the leak knows each week's winners before it trades them.
    import simulator.audit as audit

    class OneWeek(MomentumRule):
        name = "one-week"

        def __init__(self) -> None:
            super().__init__(lookback=1, top=3)

    from simulator.plan import resolve

    plan = resolve(cfg, rule=OneWeek)
    from simulator.backtest import run_backtest
    from simulator.data import load_daily, make_weekly

    closes = make_weekly(load_daily(cfg.data, cfg.report.risk_free, tmp_path)).closes()
    fair = run_backtest(plan, tmp_path).summary.series["strategy"].total_return
    leaked = run_backtest(audit._leaky(plan, "peek_next_close", plan.strategy, closes), tmp_path)
    assert leaked.summary.series["strategy"].total_return > fair + 1.0  # > 100 points more


def test_no_config_field_switches_a_leak_on() -> None:
    fields = str(Config.model_json_schema())
    for leak in ("peek", "leak", "through_test", "scaler_full"):
        assert leak not in fields


def test_audit_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(REPO)
    argv = ["audit", str(MOMENTUM), "--set", "report.baselines=", "--set", YEAR[0]]
    assert cli([*argv, "--variant", "honest", "--variant", "peek_next_close"], monkeypatch) == 0
    out = capsys.readouterr().out
    assert "peek_next_close (LEAKED)" in out and "rows marked LEAKED used the future" in out
    assert cli([*argv, "--variant", "crystal_ball"], monkeypatch) == 2
    assert "unknown audit variant(s) crystal_ball" in error_line(capsys)
    with pytest.raises(ConfigError):
        run_audit(load_config(MOMENTUM), tmp_path, ["crystal_ball"])
