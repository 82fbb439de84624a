"""Helpers shared by the test modules, so that no test module imports another."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from simulator import replay
from simulator.backtest import BacktestResult
from simulator.cli import main
from simulator.config import Config, load_config
from simulator.journal import Journal
from strategies.rule import Decision, DecisionRule, History, State, as_decision
from tests.conftest import PAPER12, PAPER_CONFIG

#: examples/paper2023.toml offline on paper12.
CSV = ["data.source=csv", f"data.path={PAPER12}"]
#: ... as a 1/N account (no model).
EQUAL = [*CSV, "backtest.strategy=equal_weight"]
FIRST_WEEK = pd.Timestamp("2022-07-01")
LAST_WEEK = pd.Timestamp("2023-06-23")


# --- decision rules ------------------------------------------------------------------------


class Scripted:
    """A decision rule from a function ``(week, tradable tickers) -> weights``."""

    def __init__(
        self, fn: Callable[[pd.Timestamp, list[str]], Mapping[str, float]], name: str = "scripted"
    ) -> None:
        self.fn = fn
        self.name = name

    def decide(self, week: pd.Timestamp, history: History, state: State) -> Decision:
        return as_decision(self.fn(week, list(history.tradable)))


def ask(
    rule: DecisionRule,
    closes: pd.DataFrame,
    week: pd.Timestamp,
    tickers: list[str],
    state: State | None = None,
) -> dict[str, float]:
    """``rule``'s weights at ``week`` as the engine would ask: the closes cut at ``week``."""
    return dict(decide(rule, closes, week, tickers, state).weights)


def decide(
    rule: DecisionRule,
    closes: pd.DataFrame,
    week: pd.Timestamp,
    tickers: list[str],
    state: State | None = None,
) -> Decision:
    """``rule``'s whole decision at ``week`` (see :func:`ask`)."""
    history = History.cut(closes, week, tickers)
    return as_decision(rule.decide(week, history, state or State(1.0, 1.0)))


# --- the command line ----------------------------------------------------------------------


def cli(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    """Run ``foliosim argv`` in-process; return its exit status."""
    monkeypatch.setattr(sys, "argv", ["foliosim", *argv])
    try:
        main()
    except SystemExit as ex:
        return int(ex.code or 0)
    return 0


def sets(items: list[str]) -> list[str]:
    """``["a=1", "b=2"]`` -> ``["--set", "a=1", "--set", "b=2"]``."""
    return [arg for item in items for arg in ("--set", item)]


#: The lines a command prints to a log while it works (simulator.clikit.Reporter).
PROGRESS = re.compile(
    r"(1/N|backtest \S+|baseline \S+|tear sheet|trials|model \d+/\d+: .*|training .*)"
    r"( \.\.\.|: .* in [\d.]+ s)?"
)


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    """The one line a user error prints on stderr (after the progress lines of the work done
    before it, if any: stderr is a log in tests)."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: "), err
    assert sum(line.startswith("error") for line in lines) == 1, err
    assert all(PROGRESS.fullmatch(line) for line in lines[:-1]), err
    return lines[-1]


def assert_nothing_written(out: Path) -> None:
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]


# --- paper accounts ------------------------------------------------------------------------


def ew_config(*extra: str) -> Config:
    return load_config(PAPER_CONFIG, [*EQUAL, *extra])


def open_new(workspace: Path, name: str, cfg: Config, **kwargs: Any) -> Path:
    """Start account ``name`` in-process; return its journal's path (closed)."""
    with replay.start(workspace, name, cfg, source=str(PAPER_CONFIG), **kwargs) as account:
        return account.journal.path


def advance(workspace: Path, name: str, **kwargs: Any) -> pd.DatetimeIndex:
    """``replay.step`` in-process, closing the account; returns the weeks processed."""
    account, done = replay.step(workspace, name, **kwargs)
    account.close()
    return done


def assert_journal_is_the_backtest(
    journal: Journal, result: BacktestResult, first_week: pd.Timestamp = FIRST_WEEK
) -> None:
    """The weekly returns and the orders of ``journal`` are those of ``result``, exactly."""
    rows = journal.weeks()
    weeks = pd.DatetimeIndex(result.returns.index)
    # The account records the first decision week too (its equity is the start cash).
    assert rows["week"].tolist() == [first_week, *weeks]
    assert rows["seq"].tolist() == list(range(1, len(weeks) + 2))
    equity = pd.Series(rows["equity"].to_numpy(float), index=pd.DatetimeIndex(rows["week"]))
    returns = equity.pct_change().iloc[1:]
    np.testing.assert_array_equal(returns.index, weeks)
    np.testing.assert_array_equal(returns.to_numpy(), result.returns["strategy"].to_numpy())
    assert equity.iloc[-1] == result.summary.final_value

    orders = journal.orders()
    # The account's last week decided too; its orders end only when the next week is stepped.
    assert not (orders["date_submitted"] >= weeks[-1]).any()
    mine = orders.drop(columns="week").reset_index(drop=True)
    theirs = result.orders.reset_index(drop=True)
    assert len(mine) > 0
    pd.testing.assert_frame_equal(mine, theirs, check_exact=True, check_dtype=False)
