"""Hostile rules (issue 24): what a rule receives reaches no later week, and what it does to
its copy, how it answers, and how it fails stay its own.

- No memory the history a rule gets reaches holds a later week: no numpy ``.base`` reaches
  the engine's table (the hole: a rule walking ``history.closes.to_numpy().base`` read the
  week after its decision), in a backtest, a paper account's step and ``recommend --as-of``.
  An engine run's rule reads its run's own tape (simulator.sight.Tape), whose rows after the
  week are not yet written; anything else gets a copy of its rows only.
- A rule that makes its copy writable and flattens it no longer switches a profile's
  volatility target off.
- ``foliosim check-rule`` catches rules that read the engine's table through a caller's frame
  or the garbage collector, and passes the momentum example and the built-in strategies (the
  LSTM rule on its registered models); ``foliosim audit`` runs it for a user's rule.
- A rule without ``name``, with a ``name`` that raises, with a text score, calling
  ``sys.exit`` or sleeping forever gets one line, never a traceback or a silent exit 0; a rule
  failing in the middle of a step says which weeks were recorded.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from models.registry import Registry
from simulator import accounts
from simulator.backtest import run_backtest
from simulator.config import load_config
from simulator.deadline import DeadlineExceeded, deadline
from simulator.errors import StrategyError
from simulator.journal import Journal
from simulator.recommend import recommend
from simulator.sight import Sight
from strategies.rule import History, owned_frame
from tests.conftest import PAPER_CONFIG, PAPER_FAST, REPO, PaperModel
from tests.helpers import CSV, advance, cli, error_line, sets

#: Half a year of the paper's test period, no baselines: short runs.
HALF = [*CSV, "backtest.start=2023-01-06", "backtest.end=2023-06-23", "report.baselines="]

RULES = '''
import gc
import sys
import time
import warnings

import numpy as np
import pandas as pd

from strategies.rule import Decision

SEEN = []


def root(array):
    while isinstance(array.base, np.ndarray):
        array = array.base
    return array


def held(array):
    """How many values the memory behind ``array`` holds: finite prices, or dates."""
    flat = np.asarray(root(array)).reshape(-1)
    if flat.dtype.kind == "f":
        return int(np.isfinite(flat).sum())
    return int(np.count_nonzero(flat))


def next_week_best(table, week, names):
    """The three names with the best return over the week after ``week`` (a leak)."""
    later = table.index[table.index > week]
    if later.empty or week not in table.index:
        return first_three(names)
    ahead = table.loc[later[0], names] / table.loc[week, names] - 1.0
    best = ahead.dropna().sort_values(ascending=False).index[:3]
    return {str(t): 1 / 3 for t in best}


def first_three(names):
    return {t: 1 / 3 for t in sorted(names)[:3]}


def first_four(names):
    """At the moderate profile's cap of 0.25."""
    return {t: 0.25 for t in sorted(names)[:4]}


class Reach:
    """Records how much memory its history reaches."""

    name = "reach"

    def decide(self, week, history, state):
        closes = history.closes
        prices = [held(closes.to_numpy())] + [held(closes[c].to_numpy()) for c in closes.columns]
        own = int(np.isfinite(closes.to_numpy()).sum())
        SEEN.append((str(week.date()), len(closes), own, max(prices), held(closes.index.asi8)))
        return first_three(history.tradable)


class BasePeek:
    """The hole of issue 24: the base of its closes was the engine's whole table. When the
    memory it reaches holds more prices than its history, it trades otherwise."""

    name = "base-peek"

    def decide(self, week, history, state):
        values = history.closes.to_numpy()
        if held(values) > np.isfinite(values).sum():
            return {t: 1 / 3 for t in sorted(history.tradable)[-3:]}
        return first_three(history.tradable)


class Flatten:
    """Makes its closes writable and flattens them (a volatility target read them)."""

    name = "flatten"

    def decide(self, week, history, state):
        base = root(history.closes.to_numpy())
        base.setflags(write=True)
        base[...] = 1.0
        return first_four(history.tradable)


class Plain:
    """Flatten's answers, without the flattening."""

    name = "plain"

    def decide(self, week, history, state):
        return first_four(history.tradable)


class FramePeek:
    """Finds the engine's table in a caller's frame."""

    name = "frame-peek"

    def decide(self, week, history, state):
        frame = sys._getframe(1)
        while frame is not None:
            for value in list(frame.f_locals.values()):
                table = getattr(value, "closes", None)
                if isinstance(table, pd.DataFrame) and len(table) > len(history.closes):
                    return next_week_best(table, week, list(history.tradable))
            frame = frame.f_back
        return first_three(history.tradable)


class GcPeek:
    """Finds the longest table of closes among every object the garbage collector knows."""

    name = "gc-peek"

    def decide(self, week, history, state):
        names = list(history.tradable)
        with warnings.catch_warnings():  # some objects warn when looked at (torch's)
            warnings.simplefilter("ignore")
            tables = [
                obj
                for obj in gc.get_objects()
                if isinstance(obj, pd.DataFrame)
                and isinstance(obj.index, pd.DatetimeIndex)
                and len(obj.columns) == len(history.closes.columns)
                and set(names) <= set(obj.columns)
            ]
        if not tables:
            return first_three(names)
        return next_week_best(max(tables, key=len), week, names)


class Nameless:
    def decide(self, week, history, state):
        return first_three(history.tradable)


class NameRaises:
    @property
    def name(self):
        raise RuntimeError("no name today")

    def decide(self, week, history, state):
        return first_three(history.tradable)


class TextScore:
    name = "text-score"

    def decide(self, week, history, state):
        return Decision(first_three(history.tradable), scores={history.tradable[0]: "high"})


class Exits:
    name = "exits"

    def decide(self, week, history, state):
        sys.exit(0)


class Sleeps:
    name = "sleeps"

    def decide(self, week, history, state):
        while True:
            try:
                time.sleep(3600)
            except Exception:  # a rule that swallows what it can
                pass


class LateFailure:
    name = "late-failure"

    def decide(self, week, history, state):
        if week >= pd.Timestamp("2023-02-03"):
            raise RuntimeError("gave up")
        return first_three(history.tradable)
'''


@pytest.fixture
def rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The hostile rules above as the module ``hostile_rules`` in the current folder."""
    (tmp_path / "hostile_rules.py").write_text(RULES, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("hostile_rules", None)
    import hostile_rules

    hostile_rules.SEEN.clear()
    yield hostile_rules
    sys.modules.pop("hostile_rules", None)


def half(rule: str, *extra: str) -> Any:
    return load_config(PAPER_CONFIG, [*HALF, f"backtest.strategy=hostile_rules:{rule}", *extra])


def assert_reached_only_its_weeks(seen: list[tuple[str, int, int, int, int]]) -> None:
    """No memory a history reached held more prices than the history, or more dates."""
    assert seen
    for week, rows, prices, reached, dates in seen:
        assert reached <= prices and dates <= rows, (week, rows, prices, reached, dates)


# --- the history a rule receives ------------------------------------------------------------


def test_a_history_owns_its_rows_and_is_read_only() -> None:
    index = pd.date_range("2024-01-05", periods=6, freq="W-FRI")
    table = pd.DataFrame({"A": np.arange(6.0) + 1, "B": np.arange(6.0) + 10}, index=index)
    history = History.cut(table, index[2], ["A", "B"])
    values = history.closes.to_numpy()
    assert values.base is not None and values.base.size == 6  # 3 weeks x 2 tickers, no more
    assert history.closes.index.asi8.base is None or history.closes.index.asi8.base.size == 3
    with pytest.raises(ValueError, match="read-only"):
        history.closes.iloc[0, 0] = 99.0
    # A copy made writable on purpose changes the rule's copy only.
    mine = values.base
    mine.setflags(write=True)
    mine[...] = 0.0
    assert table.to_numpy().sum() == pytest.approx(sum(range(1, 7)) + sum(range(10, 16)))
    restricted = history.restrict(["A"])
    assert restricted.tradable == ("A",)
    assert restricted.closes.to_numpy().base is not values.base
    assert owned_frame(table).to_numpy().base.size == table.size


def test_an_engine_runs_tape_holds_no_later_week_and_cannot_be_written() -> None:
    """What an engine run hands its rule (simulator.sight.Tape): the rows up to the week, in
    memory that holds nothing later yet and cannot be made writable; a week before one
    already read is cut from a copy."""
    index = pd.date_range("2024-01-05", periods=6, freq="W-FRI", name="date")
    table = pd.DataFrame({"A": np.arange(6.0) + 1, "B": np.arange(6.0) + 10}, index=index)
    tape = Sight(table).tape()
    early = tape.at(index[1], ["A", "B"])
    values = early.closes.to_numpy()
    assert early.closes.index.tolist() == index[:2].tolist()
    assert values.tolist() == [[1.0, 10.0], [2.0, 11.0]]
    memory = values
    while isinstance(memory.base, np.ndarray):
        memory = memory.base
    assert np.isfinite(memory).sum() == 4  # weeks 3..6 are not written yet
    with pytest.raises(ValueError, match="WRITEABLE"):
        memory.setflags(write=True)
    later = tape.at(index[3], ["A"])
    assert later.closes["A"].tolist() == [1.0, 2.0, 3.0, 4.0]
    assert early.closes.shape == (2, 2)  # what a rule kept is still its rows
    again = tape.at(index[2], ["A"])  # an earlier week: a copy of its rows only
    assert again.closes.to_numpy().base.size == 6
    assert again.closes["B"].tolist() == [10.0, 11.0, 12.0]


def test_a_rule_reaches_no_later_week_in_a_backtest(rules: Any) -> None:
    run_backtest(half("Reach"), Path("ws"))
    assert_reached_only_its_weeks(rules.SEEN)
    assert len(rules.SEEN) == 24


def test_the_base_of_the_closes_no_longer_reaches_the_table(rules: Any) -> None:
    """Regression: BasePeek traded differently when the base reached past its week."""
    peek = run_backtest(half("BasePeek"), Path("ws"))
    plain = run_backtest(half("Reach"), Path("ws"))
    assert peek.returns["strategy"].to_numpy().tolist() == pytest.approx(
        plain.returns["strategy"].to_numpy().tolist(), abs=0
    )


def test_a_rule_reaches_no_later_week_in_a_paper_step(rules: Any, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    with accounts.start(ws, "reach", half("Reach"), source="test"):
        pass
    advance(ws, "reach", weeks=5, today=dt.date(2023, 7, 1))
    assert_reached_only_its_weeks(rules.SEEN)
    assert len(rules.SEEN) == 5


def test_recommend_as_of_reaches_no_later_week(rules: Any, tmp_path: Path) -> None:
    recommend(half("Reach"), tmp_path / "ws", as_of=dt.date(2023, 3, 3))
    assert rules.SEEN and rules.SEEN[-1][0] == "2023-03-03"
    assert_reached_only_its_weeks(rules.SEEN)


def test_flattening_its_copy_does_not_switch_the_volatility_target_off(rules: Any) -> None:
    moderate = ["profile.name=moderate", "profile.max_name_vol=0"]
    flat = run_backtest(half("Flatten", *moderate), Path("ws"))
    plain = run_backtest(half("Plain", *moderate), Path("ws"))
    assert flat.bounds is not None and plain.bounds is not None

    def bound(result: Any) -> int:
        return int(result.bounds.loc[result.bounds["reason"] == "vol_target", "week"].nunique())

    assert bound(plain) > 0
    assert bound(flat) == bound(plain)
    assert flat.returns["strategy"].tolist() == plain.returns["strategy"].tolist()


# --- the look-ahead check --------------------------------------------------------------------


def check(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, dict[str, Any]]:
    code = cli(["check-rule", *argv, "--json"], monkeypatch)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, json.loads(captured.out)


@pytest.mark.slow
@pytest.mark.cpu_seconds(400)
@pytest.mark.parametrize("rule", ["FramePeek", "GcPeek"])
def test_check_rule_catches_a_rule_that_reaches_the_engines_table(
    rule: str,
    rules: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The leak is real: on the full data the rule trades on next week's returns.
    leaky = run_backtest(half(rule), Path("ws"))
    honest = run_backtest(half("Plain"), Path("ws"))
    assert leaky.summary.series["strategy"].total_return > (
        honest.summary.series["strategy"].total_return + 0.2
    )
    argv = [
        str(PAPER_CONFIG),
        "--weeks",
        "2",
        *sets([*HALF, f"backtest.strategy=hostile_rules:{rule}"]),
    ]
    code, doc = check(argv, monkeypatch, capsys)
    assert code == 1
    assert doc["passed"] is False
    assert doc["cuts"] == ["2023-01-20", "2023-06-16"]
    # Each cut's own week changed, naming the tickers the leak bought.
    changed = {c["week"] for c in doc["changes"]}
    assert {"2023-01-20", "2023-06-16"} <= changed
    first = next(c for c in doc["changes"] if c["week"] == "2023-01-20")
    bought = {t["ticker"] for t in first["tickers"] if t["what"] == "target" and t["full"] > 0}
    assert len(bought) == 3


@pytest.mark.slow
@pytest.mark.cpu_seconds(400)
@pytest.mark.parametrize(
    "strategy",
    [
        "examples.momentum_rule:MomentumRule",
        "equal_weight",
        "min_variance",
        "mean_variance",
        "min_cvar",
    ],
)
def test_check_rule_passes_honest_rules(
    strategy: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(REPO)
    quarter = [*HALF, "backtest.start=2023-03-31", f"backtest.strategy={strategy}"]
    code, doc = check([str(PAPER_CONFIG), "--weeks", "2", *sets(quarter)], monkeypatch, capsys)
    assert doc["passed"] is True, doc
    assert code == 0
    assert doc["changes"] == [] and doc["failures"] == []
    # Every decision of both cut runs was compared: 12 tickers x (3 + 12) decision weeks.
    assert doc["cuts"] == ["2023-04-14", "2023-06-16"]
    assert doc["compared"] == 12 * (3 + 12)


@pytest.mark.slow
@pytest.mark.cpu_seconds(600)
def test_check_rule_passes_the_lstm_rule_on_its_registered_models(
    paper_model: PaperModel,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("FOLIOSIM_WORKSPACE", str(paper_model.workspace))
    registry = Registry(paper_model.workspace)
    before = [v.ref for v in registry.versions()]
    argv = [str(PAPER_CONFIG), "--weeks", "2", *sets(PAPER_FAST)]
    code, doc = check(argv, monkeypatch, capsys)
    assert doc["passed"] is True, doc
    assert code == 0
    assert doc["compared"] > 0
    # The cut runs picked the registered version: nothing was trained or registered.
    assert [v.ref for v in registry.versions()] == before


@pytest.mark.slow
@pytest.mark.cpu_seconds(400)
def test_audit_runs_the_check_for_a_users_rule(
    rules: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["audit", str(PAPER_CONFIG), "--variant", "honest", "--json"]
    argv += sets([*HALF, "backtest.strategy=hostile_rules:FramePeek"])
    code = cli(argv, monkeypatch)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    doc = json.loads(captured.out)
    assert code == 1
    assert doc["check_rule"]["passed"] is False
    assert doc["check_rule"]["strategy"] == "frame-peek"


# --- how a rule answers and fails ----------------------------------------------------------


@pytest.mark.parametrize(("rule", "name"), [("Nameless", "Nameless"), ("NameRaises", "NameRaises")])
def test_a_rule_without_a_usable_name_is_named_after_its_class(
    rule: str, name: str, rules: Any
) -> None:
    result = run_backtest(half(rule), Path("ws"))
    assert result.summary.strategy_name == name


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("TextScore", r"score 'high' of \w+ is not a number"),
        ("Exits", r"called sys\.exit\(0\); a rule returns its weights"),
        ("LateFailure", r"raised RuntimeError: gave up"),
    ],
)
def test_a_rule_that_answers_badly_or_exits_is_one_line(
    rule: str,
    message: str,
    rules: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "run"
    argv = ["backtest", str(PAPER_CONFIG), "--out", str(out)]
    code = cli([*argv, *sets([*HALF, f"backtest.strategy=hostile_rules:{rule}"])], monkeypatch)
    line = error_line(capsys)
    assert code == 2
    assert line.startswith("error: strategy ")
    assert pd.Series([line]).str.contains(message).all(), line
    assert line.endswith("fix the rule (nothing was written)")
    assert not out.exists()


def test_a_rule_that_never_answers_is_stopped_by_its_time_limit(
    rules: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clock = time.monotonic()
    argv = ["backtest", str(PAPER_CONFIG), "--out", str(tmp_path / "run")]
    extra = [*HALF, "backtest.strategy=hostile_rules:Sleeps", "backtest.rule_timeout=1.5"]
    code = cli([*argv, *sets(extra)], monkeypatch)
    line = error_line(capsys)
    assert code == 2
    assert "gave no answer within 1.5 s (backtest.rule_timeout)" in line
    assert time.monotonic() - clock < 60


def test_a_deadline_keeps_an_outer_alarm() -> None:
    """pytest-timeout arms SIGALRM too: the rule's limit must not eat it."""
    import signal

    fired: list[int] = []
    previous = signal.signal(signal.SIGALRM, lambda *_: fired.append(1))
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.6)
        with pytest.raises(DeadlineExceeded), deadline(1.0):
            time.sleep(5)
        assert fired == [1]  # the outer alarm fell due inside and was handed on
        signal.setitimer(signal.ITIMER_REAL, 30.0)
        with deadline(0.5):
            pass
        left, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 25 < left <= 30  # re-armed with the time it had left
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_a_rule_failing_mid_step_says_which_weeks_were_recorded(rules: Any, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    with accounts.start(ws, "late", half("LateFailure"), source="test"):
        pass
    with pytest.raises(StrategyError) as caught:
        advance(ws, "late", weeks=6, today=dt.date(2023, 7, 1))
    message = str(caught.value)
    assert "week of 2023-02-03: raised RuntimeError: gave up" in message
    assert "nothing was written" not in message
    assert "4 week(s) of this step were recorded (2023-01-06..2023-01-27)" in message
    journal = Journal.open(ws / "replay" / "late.sqlite", "test")
    try:
        assert journal.weeks()["week"].max() == pd.Timestamp("2023-01-27")
    finally:
        journal.close()
