"""One run, assembled once (simulator/session.py): the weeks of each kind of run, what a week
sees (every input a rule names, cut at t and owned by it), and one resolve and one load of a
run's data per run."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import simulator.session as session_module
from simulator.backtest import run_backtest
from simulator.config import load_config
from simulator.data import make_weekly
from simulator.errors import DataError, StrategyError
from simulator.features import feature_panels
from simulator.session import Session, Window
from simulator.sight import INPUTS, Sight
from strategies.rule import History, State
from tests.conftest import PAPER12, PAPER_CONFIG, tiny_daily
from tests.helpers import EQUAL, Scripted

#: Six weeks of two tickers: (open, close) of each week.
PRICES = {
    "A": [(10.0, 10.5), (11.0, 11.5), (12.0, 12.5), (13.0, 13.5), (14.0, 14.5), (15.0, 15.5)],
    "B": [(20.0, 19.5), (19.0, 18.5), (18.0, 17.5), (17.0, 16.5), (16.0, 15.5), (15.0, 14.5)],
}


def _weekly() -> Any:
    return make_weekly(tiny_daily(PRICES))


# --- windows ---------------------------------------------------------------------------------


def test_a_period_decides_at_every_week_but_its_last() -> None:
    weekly = _weekly()
    cal = weekly.calendar
    window = Window.period(weekly, cal[1].date(), cal[4].date())
    assert list(window.weeks) == list(cal[1:5])
    assert list(window.decisions) == list(cal[1:4])
    assert (window.first, window.last, window.resume) == (cal[1], cal[4], None)
    with pytest.raises(DataError, match="holds 2 week"):
        Window.period(weekly, cal[4].date(), cal[5].date())


def test_a_pending_step_decides_at_every_week_it_records() -> None:
    cal = _weekly().calendar
    window = Window.pending(cal[2:4], None)
    assert list(window.weeks) == list(window.decisions) == list(cal[2:4])
    assert list(Window.replayed(cal[:3]).decisions) == list(cal[:2])


def test_as_of_is_the_newest_complete_week_on_or_before_the_day() -> None:
    weekly = _weekly()
    cal = weekly.calendar
    window = Window.as_of(weekly, (cal[3] + pd.Timedelta(days=2)).date())
    assert list(window.weeks) == list(window.decisions) == [cal[3]]
    with pytest.raises(DataError, match="no complete week on or before"):
        Window.as_of(weekly, (cal[0] - pd.Timedelta(days=10)).date())


# --- what a week sees -------------------------------------------------------------------------


def test_a_rules_inputs_are_cut_at_the_week_and_owned() -> None:
    weekly = _weekly()
    sight = Sight.of(weekly)
    week = weekly.calendar[2]
    history = sight.at(week, ["A", "B"], ("volume", "index"))
    panels = feature_panels(weekly)
    assert set(history.inputs) == {"volume", "index"}
    for name, frame in history.inputs.items():
        pd.testing.assert_frame_equal(frame, panels[name].loc[:week], check_freq=False)
        values = frame.to_numpy()
        assert not values.flags.writeable
        assert (values.base if values.base is not None else values).size == 3 * 2
    assert history.closes.index[-1] == week


def test_a_user_rule_reads_the_inputs_it_names_through_the_engine(tmp_path: Path) -> None:
    """A rule with ``inputs = ("volume", "range")`` gets, every decision week, exactly the
    rows up to that week of the panels the models read (real paper12 data, a real run)."""
    seen: list[tuple[pd.Timestamp, dict[str, pd.DataFrame]]] = []

    class ReadsVolume(Scripted):
        inputs = ("volume", "range")

        def decide(self, week: pd.Timestamp, history: History, state: State) -> Any:
            seen.append((week, dict(history.inputs)))
            return {}

    cfg = load_config(PAPER_CONFIG, [*EQUAL, "backtest.start=2023-01-06", "report.baselines="])
    rule = ReadsVolume(lambda w, t: {}, name="reads-volume")
    result = run_backtest(cfg, tmp_path, rule=rule)
    weekly = Session.open(cfg, tmp_path).weekly
    panels = feature_panels(weekly)
    assert [w for w, _ in seen] == list(pd.DatetimeIndex(result.decisions["week"].unique()))
    for week, inputs in seen:
        assert set(inputs) == {"volume", "range"}
        for name, frame in inputs.items():
            assert frame.index[-1] == week
            np.testing.assert_array_equal(frame.to_numpy(), panels[name].loc[:week].to_numpy())


def test_an_unknown_or_missing_input_is_one_line(tmp_path: Path) -> None:
    class Unknown(Scripted):
        inputs = ("volumes",)

    cfg = load_config(PAPER_CONFIG, [*EQUAL, "backtest.start=2023-01-06", "report.baselines="])
    with pytest.raises(StrategyError, match=r"reads an unknown input 'volumes'; the inputs are"):
        run_backtest(cfg, tmp_path, rule=Unknown(lambda w, t: {}, name="u"))

    class NotNames(Scripted):
        inputs = "volume"

    with pytest.raises(StrategyError, match="its inputs are a str; give a tuple of names"):
        run_backtest(cfg, tmp_path, rule=NotNames(lambda w, t: {}, name="n"))

    class Volume(Scripted):
        inputs = ("volume",)

    bundled = load_config(None, ["backtest.start=2021-01-01", "report.baselines="])
    with pytest.raises(DataError, match="daily closes only"):
        run_backtest(bundled, tmp_path, rule=Volume(lambda w, t: {}, name="v"))
    assert set(INPUTS) == {"volume", "index", "rate", "range"}


# --- one run, assembled once ----------------------------------------------------------------


def test_a_backtest_resolves_once_and_loads_through_the_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One resolve; the run's data loaded once, and the stress test's whole history once
    (from the first row the source holds), both through the session's one loader."""
    calls: dict[str, list[Any]] = {"resolve": [], "load": []}
    real_resolve, real_load = session_module.resolve, session_module.load_daily

    def resolve(*args: Any, **kwargs: Any) -> Any:
        calls["resolve"].append(args)
        return real_resolve(*args, **kwargs)

    def load_daily(data: Any, *args: Any) -> Any:
        calls["load"].append(data.start)
        return real_load(data, *args)

    monkeypatch.setattr(session_module, "resolve", resolve)
    monkeypatch.setattr(session_module, "load_daily", load_daily)
    cfg = load_config(PAPER_CONFIG, [*EQUAL, "backtest.start=2023-01-06"])
    run_backtest(cfg, tmp_path)
    assert len(calls["resolve"]) == 1
    assert calls["load"] == [cfg.data.start, dt.date(1900, 1, 1)]


def test_the_audits_variants_share_the_one_over_n_and_baseline_runs(tmp_path: Path) -> None:
    """1/N and the ``[report] baselines`` are run once per window: a leaky variant (the same
    config under another plan) reuses them; another window runs its own."""
    cfg = load_config(PAPER_CONFIG, [*EQUAL, "backtest.start=2023-01-06"])
    session = Session.open(cfg, tmp_path)
    window = Window.backtest(session.weekly, cfg)
    baselines = session.baselines(window)
    assert sorted(baselines) == ["mean_variance", "min_variance"]
    other = session.with_plan(session.plan)
    assert other.baselines(window) is baselines
    assert other.one_over_n(window) is session.one_over_n(window)
    shorter = Window.period(session.weekly, window.weeks[0].date(), window.weeks[-2].date())
    assert session.baselines(shorter) is not baselines


def test_a_stress_history_reuses_the_runs_data_only_when_it_is_the_same(tmp_path: Path) -> None:
    """A session whose data start before every file's first row hands its own weekly bars
    as the whole history of all its tickers (what a second load would give, to the bit);
    fewer tickers, a later end or a start that cut rows are loaded again."""
    csv = ["data.source=csv", f"data.path={PAPER12}", "data.tickers=AAPL,MSFT,NVDA"]
    cfg = load_config(PAPER_CONFIG, [*csv, "data.start=1960-01-01"])
    session = Session.open(cfg, tmp_path)
    tickers = list(session.weekly.bars)
    end = cfg.data.end
    assert session.weekly.whole
    reused = session.history(tickers, end)
    assert reused is session.weekly
    fresh = session_module.load_weekly(cfg, tmp_path, through=end, tickers=tickers, whole=True)
    assert list(fresh.bars) == tickers and fresh.calendar.equals(reused.calendar)
    for ticker in tickers:
        pd.testing.assert_frame_equal(fresh.bars[ticker], reused.bars[ticker], check_exact=True)
    pd.testing.assert_series_equal(fresh.benchmark, reused.benchmark, check_exact=True)
    assert session.history(tickers[:2], end) is not session.weekly
    assert session.history(tickers, end + dt.timedelta(days=30)) is not session.weekly
    later = Session.open(load_config(PAPER_CONFIG, [*csv, "data.start=2001-01-01"]), tmp_path)
    assert not later.weekly.whole
    assert later.history(list(later.weekly.bars), end) is not later.weekly
