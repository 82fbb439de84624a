"""The leak audit: deliberate leaks inflate results, are labelled LEAKED, and exist only here."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from examples.momentum_rule import MomentumRule
from simulator.audit import LEAKED, _PeekNextClose, run_audit
from simulator.config import Config, load_config
from simulator.errors import ConfigError
from simulator.sight import Sight
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

    leaky = _PeekNextClose(Spy(), Sight(closes))
    leaky.decide(weeks[1], History.cut(closes, weeks[1], ["A"]), State(1.0, 1.0))
    assert seen == [(weeks[2], weeks[2])]  # asked about t+1, with its close


def test_a_leak_inflates_a_short_horizon_rule_and_is_labelled(tmp_path: Path) -> None:
    """One-week momentum is noise honestly; told next week's close, it cannot miss."""
    cfg = load_config(MOMENTUM, [*YEAR, "backtest.fill=close"])
    honest = run_audit(cfg, tmp_path, ["honest"])[0]
    table, results = run_audit(cfg, tmp_path)  # the config's rule: 12-week momentum
    assert list(table["variant"]) == [
        "honest", "peek_next_close", "train_through_test", "scaler_full", "early_stop_on_test"
    ]  # fmt: skip
    assert table.loc[0, "total_return"] == honest.loc[0, "total_return"]
    assert results["peek_next_close"].summary.strategy_name == (
        f"momentum [{LEAKED}: peek_next_close]"
    )
    for row in (2, 3, 4):
        assert "needs a strategy that trades on models" in table.loc[row, "note"]
    # 1-week momentum: the leak knows each week's winners before it trades them.
    import simulator.audit as audit

    class OneWeek(MomentumRule):
        name = "one-week"

        def __init__(self) -> None:
            super().__init__(lookback=1, top=3)

    from simulator.backtest import run_backtest
    from simulator.session import Session

    session = Session.open(cfg, tmp_path, rule=OneWeek)
    fair = run_backtest(session, tmp_path).summary.series["strategy"].total_return
    leaky = session.with_plan(audit._peeking(session.plan, session.sight))
    leaked = run_backtest(leaky, tmp_path)
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


def test_scaler_end_fits_the_scalers_on_the_test_weeks_too() -> None:
    """The scaler_full leak: the scaler is the one fitted on every window, test weeks included."""
    from models.forecaster import train
    from models.windows import fit_scaler, make_windows
    from tests.model_data import TRAIN_END, WEEKS, tiny, walk_closes

    closes = walk_closes()[["AAA"]]
    honest, _ = train(closes, tiny(max_epochs=1), TRAIN_END)
    leaky, report = train(closes, tiny(max_epochs=1), TRAIN_END, scaler_end=WEEKS[-1])
    every = make_windows(closes["AAA"], 8)
    assert leaky.scalers["AAA"] == fit_scaler("window", every.inputs, every.target, "AAA")
    assert leaky.scalers["AAA"] != honest.scalers["AAA"]
    assert report.splits["AAA"]["test"]["first"] == WEEKS[80].date().isoformat()  # as honest


def test_validate_through_chooses_the_epoch_on_the_test_weeks() -> None:
    from models.forecaster import train
    from tests.model_data import TRAIN_END, WEEKS, tiny, walk_closes

    closes = walk_closes()[["AAA"]]
    _, honest = train(closes, tiny(max_epochs=1), TRAIN_END)
    _, report = train(closes, tiny(max_epochs=1), TRAIN_END, validate_through=WEEKS[90])
    split = report.splits["AAA"]
    assert split["validation"] == {"n": 11, "first": "2020-07-17", "last": "2020-09-25"}
    assert (
        split["train"]["n"]
        == honest.splits["AAA"]["train"]["n"] + (honest.splits["AAA"]["validation"]["n"])
    )  # every seen window is trained on


def test_model_leaks_run_on_the_lstm_strategy_and_are_labelled(tmp_path: Path) -> None:
    from tests.conftest import PAPER_CONFIG, PAPER_FAST

    sets = [*PAPER_FAST, "data.tickers=AAPL,MSFT,PEP", *YEAR[:2], "report.baselines="]
    cfg = load_config(PAPER_CONFIG, sets)
    table, results = run_audit(cfg, tmp_path, ["honest", "scaler_full", "early_stop_on_test"])
    assert list(table["variant"]) == ["honest", "scaler_full", "early_stop_on_test"]
    for variant in ("scaler_full", "early_stop_on_test"):
        assert results[variant].summary.strategy_name == f"lstm_signal [{LEAKED}: {variant}]"
        assert table.set_index("variant").loc[variant, "weeks"] == results["honest"].summary.weeks
    # Pinned to a registered version, the walk-forward leaks have no models of their own.
    pinned = load_config(PAPER_CONFIG, [*sets, "model.version=paper-small/1"])
    notes = run_audit(pinned, tmp_path, ["scaler_full"])[0]
    assert "pins model.version" in notes.loc[0, "note"]
