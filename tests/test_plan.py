"""The run plan and user-written strategies.

- One factory: the built-in names are the config's, a user rule is ``module:Class`` or an
  object passed from Python, and a rule that cannot be imported or built is one line.
- ``recommend`` allocates as the backtest decides, for every strategy: 1/N, the optimisers
  (regression: it gave 1/N for them), the LSTM signal and a user rule.
- The momentum example (examples/momentum_rule.py): its weekly returns equal a vectorised
  computation of the same rule; it runs through backtest, replay and recommend from the
  command line; from Python it gives the config's result.
- A rule that raises, answers NaN, weights an unknown ticker or breaks the cap stops the run
  with one line naming the rule and the week, exit 2, nothing written.
"""

from __future__ import annotations

import datetime as dt
import json
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from examples.momentum_rule import MomentumRule
from simulator import accounts
from simulator.backtest import run_backtest
from simulator.config import BUILTIN_STRATEGIES, load_config
from simulator.errors import ConfigError, StrategyError
from simulator.journal import Journal
from simulator.plan import STRATEGIES, resolve
from simulator.recommend import recommend
from tests.conftest import PAPER12, PAPER_CONFIG, REPO, PaperModel
from tests.helpers import (
    CSV,
    advance,
    assert_journal_is_the_backtest,
    assert_nothing_written,
    cli,
    error_line,
    sets,
)

MOMENTUM = REPO / "examples" / "momentum.toml"
#: The momentum example over the paper's test year, on the paper12 folder beside the checkout.
YEAR = [
    f"data.path={PAPER12}",
    "backtest.start=2022-07-01",
    "backtest.end=2023-06-23",
    "report.baselines=",
]
AS_OF = pd.Timestamp("2023-01-13")


def test_the_factory_knows_exactly_the_configs_strategy_names() -> None:
    assert set(STRATEGIES) == set(BUILTIN_STRATEGIES)
    for name in BUILTIN_STRATEGIES:
        assert resolve(load_config(None, [f"backtest.strategy={name}"])).name == name


def test_a_user_rule_is_resolved_from_its_config_name() -> None:
    plan = resolve(load_config(MOMENTUM, YEAR))
    assert plan.name == "momentum" and plan.strategy.user
    assert not plan.strategy.uses_models
    assert plan.limits.allow_short is False  # [strategy] of the example


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("lstm_signl", "unknown strategy (did you mean 'lstm_signal'?)"),
        ("examples.nowhere:Rule", "cannot import 'examples.nowhere'"),
        ("examples.momentum_rule:Momentum", "has no 'Momentum' (did you mean 'MomentumRule'?)"),
        ("examples.momentum_rule:pd", "DataFrame"),  # a module object, not a rule: no decide
    ],
)
def test_a_strategy_that_cannot_be_built_is_one_line(
    value: str, message: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(REPO)
    out = REPO.parent / "never-written"
    argv = ["backtest", str(MOMENTUM), "--out", str(out), *sets(YEAR[:1])]
    code = cli([*argv, "--set", f"backtest.strategy={value}"], monkeypatch)
    line = error_line(capsys)
    assert code == 2
    if value.endswith(":pd"):
        assert "has no decide(week, history, state) method" in line
    else:
        assert message in line
    assert not out.exists()


# --- momentum: the rule, vectorised ----------------------------------------------------------


def vectorised_momentum(closes: pd.DataFrame, decisions: pd.DatetimeIndex) -> pd.Series:
    """The example's weekly returns with close fills and fractional shares, computed on the
    whole frame at once: 12-week returns, the top 3 (ties by name) at 1/3, held a week."""
    closes = closes[sorted(closes.columns)]  # rank(method="first") breaks ties by name
    momentum = closes / closes.shift(12) - 1.0
    ranks = momentum.rank(axis=1, ascending=False, method="first")
    weights = (ranks <= 3).astype(float) / 3.0
    following = closes.shift(-1) / closes - 1.0
    earned = (weights * following).sum(axis=1).reindex(decisions)
    return pd.Series(earned.to_numpy(), index=closes.index[closes.index.get_indexer(decisions) + 1])


def test_momentum_returns_equal_the_vectorised_rule(tmp_path: Path) -> None:
    # $1e12: whole shares cost less than 1e-9 of a week's return.
    cfg = load_config(
        MOMENTUM,
        [f"data.path={PAPER12}", "backtest.fill=close", "backtest.cash=1e12", "report.baselines="],
    )
    result = run_backtest(cfg, tmp_path / "ws", rule=None)
    from simulator.data import load_daily, make_weekly

    closes = make_weekly(load_daily(cfg.data, 0.0, tmp_path / "ws")).closes()
    weeks = pd.DatetimeIndex(result.returns.index)
    first = closes.index[closes.index.get_indexer([weeks[0]])[0] - 1]
    window = closes.loc[: weeks[-1]]
    assert not window.loc[first - pd.Timedelta(weeks=13) :].isna().any().any()  # no gaps
    decisions = pd.DatetimeIndex([first, *weeks[:-1]])
    expected = vectorised_momentum(window, decisions)
    assert len(weeks) == 233
    np.testing.assert_allclose(result.returns["strategy"], expected.to_numpy(), rtol=0, atol=1e-9)
    # The decision log holds the rule's scores and targets, three names at 1/3 every week.
    log = result.decisions
    held = log[log["target"] > 0].groupby("week")["target"].agg(["count", "sum"])
    assert (held["count"] == 3).all() and np.allclose(held["sum"], 1.0)


def test_momentum_from_python_equals_the_config(tmp_path: Path) -> None:
    cfg = load_config(MOMENTUM, YEAR)
    by_name = run_backtest(cfg, tmp_path / "a")
    by_object = run_backtest(
        cfg.model_copy(
            update={"backtest": cfg.backtest.model_copy(update={"strategy": "equal_weight"})}
        ),
        tmp_path / "b",
        rule=MomentumRule(),
    )
    pd.testing.assert_frame_equal(by_name.returns, by_object.returns, check_exact=True)
    assert by_object.summary.strategy_name == "momentum"


# --- momentum through the command line -------------------------------------------------------


def test_momentum_through_backtest_replay_and_recommend(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.chdir(REPO)  # as README says: from the repository root
    out = tmp_path / "run"
    assert cli(["backtest", str(MOMENTUM), "--out", str(out), *sets(YEAR)], monkeypatch) == 0
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["strategy_name"] == "momentum"
    decisions = pd.read_csv(out / "decisions.csv", parse_dates=["week"])
    assert (out / "tearsheet.html").is_file()

    name = ["--account", "mom"]
    assert cli(["replay", "start", str(MOMENTUM), *name, *sets(YEAR)], monkeypatch) == 0
    assert cli(["replay", "step", *name, "--weeks", "20"], monkeypatch) == 0
    assert cli(["replay", "step", *name, "--until", "2023-06-23"], monkeypatch) == 0
    capsys.readouterr()
    from simulator.workspace import workspace_dir

    result = run_backtest(load_config(MOMENTUM, YEAR), workspace_dir())
    journal = Journal.open(workspace_dir() / "replay" / "mom.sqlite", "test")
    try:
        assert_journal_is_the_backtest(journal, result, pd.Timestamp("2022-07-01"))
    finally:
        journal.close()

    args = ["recommend", str(MOMENTUM), "--as-of", str(AS_OF.date()), *sets(YEAR)]
    assert cli(args, monkeypatch) == 0  # the table, with each position's score
    text = capsys.readouterr().out
    assert "score" in text and "predicted return" not in text
    args.append("--json")
    assert cli(args, monkeypatch) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["strategy"] == "momentum"
    got = {p["ticker"]: p["weight"] for p in doc["positions"]}
    week = decisions[(decisions["week"] == AS_OF) & (decisions["target"] != 0)]
    assert got == dict(zip(week["ticker"], week["target"], strict=True))
    assert len(got) == 3 and all(w == pytest.approx(1 / 3) for w in got.values())
    assert {p["ticker"]: p["score"] for p in doc["positions"]} == pytest.approx(
        dict(zip(week["ticker"], week["score"], strict=True)), rel=1e-9
    )


# --- recommend == the backtest's decision, for every strategy -------------------------------


def backtest_targets(cfg_sets: list[str], tmp: Path, week: pd.Timestamp) -> dict[str, float]:
    result = run_backtest(load_config(PAPER_CONFIG, cfg_sets), tmp)
    log = result.decisions
    row = log[(log["week"] == week) & (log["ticker"] != "") & (log["target"] != 0)]
    return dict(zip(row["ticker"], row["target"].astype(float), strict=True))


@pytest.mark.parametrize("strategy", ["equal_weight", "min_variance", "mean_variance"])
def test_recommend_allocates_as_the_backtest_decides(strategy: str, tmp_path: Path) -> None:
    """Regression: recommend gave 1/N for the optimisers while saying their names."""
    cfg_sets = [
        *CSV,
        f"backtest.strategy={strategy}",
        "report.baselines=",
        "backtest.end=2023-02-03",
    ]
    expected = backtest_targets(cfg_sets, tmp_path / "bt", AS_OF)
    cfg = load_config(PAPER_CONFIG, cfg_sets)
    doc = recommend(cfg, tmp_path / "ws", "aggressive", AS_OF.date()).to_json()
    got = {p["ticker"]: p["weight"] for p in doc["positions"]}
    assert doc["strategy"] == strategy
    assert got == expected  # the very floats
    is_1n = np.allclose(list(got.values()), 1 / 12) and len(got) == 12
    assert is_1n == (strategy == "equal_weight")


def test_recommend_lstm_allocates_as_the_backtest_decides(
    paper_model: PaperModel, tmp_path: Path
) -> None:
    pinned = [
        *CSV,
        "model.preset=small",
        "model.name=paper-small",
        f"model.version={paper_model.ref}",
    ]
    cfg_sets = [*pinned, "report.baselines=", "backtest.end=2023-02-03"]
    expected = backtest_targets(cfg_sets, paper_model.workspace, AS_OF)
    doc = recommend(
        load_config(PAPER_CONFIG, cfg_sets), paper_model.workspace, "aggressive", AS_OF.date()
    ).to_json()
    got = {p["ticker"]: p["weight"] for p in doc["positions"]}
    assert got == expected
    assert doc["model_version"] == paper_model.ref
    assert all(p["predicted_return"] == p["score"] for p in doc["positions"])


# --- rules that break the rules --------------------------------------------------------------

BAD_RULES = """
import math


class Raises:
    name = "raiser"

    def decide(self, week, history, state):
        if week.year == 2022 and week.month == 9:
            raise RuntimeError("no data for " + str(week.date()))
        return {}


class Nan:
    name = "nanny"

    def decide(self, week, history, state):
        return {history.tradable[0]: math.nan}


class Unknown:
    name = "stranger"

    def decide(self, week, history, state):
        return {"ZZZZ": 0.1}


class Greedy:
    name = "greedy"

    def decide(self, week, history, state):
        return {history.tradable[0]: 0.5}
"""


@pytest.mark.parametrize(
    ("cls", "message"),
    [
        (
            "Raises",
            "strategy 'raiser', decision of the week of 2022-09-02: raised RuntimeError: "
            "no data for 2022-09-02",
        ),
        (
            "Nan",
            "strategy 'nanny', decision of the week of 2022-07-01: weight nan of TSLA is "
            "not a finite number",
        ),
        (
            "Unknown",
            "strategy 'stranger', decision of the week of 2022-07-01: weight 0.1 on "
            "'ZZZZ', which is not tradable this week",
        ),
        (
            "Greedy",
            "strategy 'greedy', decision of the week of 2022-07-01: weight 0.5 of TSLA "
            "breaks the cap of 0.3333 per ticker",
        ),
    ],
)
def test_a_rule_that_breaks_the_rules_is_one_line_and_writes_nothing(
    cls: str,
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    module = f"bad_rules_{cls.lower()}"
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(BAD_RULES), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "bad-run"
    argv = ["backtest", str(PAPER_CONFIG), "--out", str(out), *sets([*CSV, "report.baselines="])]
    code = cli([*argv, "--set", f"backtest.strategy={module}:{cls}"], monkeypatch)
    line = error_line(capsys)
    assert code == 2
    assert line.startswith(f"error: {message}")
    assert line.endswith("; fix the rule (nothing was written)")
    assert_nothing_written(out)
    # ... and the same rule from Python is a StrategyError.
    with pytest.raises(StrategyError, match="fix the rule"):
        cfg = load_config(PAPER_CONFIG, [*CSV, f"backtest.strategy={module}:{cls}"])
        run_backtest(cfg, tmp_path / "ws")


def test_a_replay_step_of_a_broken_rule_records_no_week_of_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "bad_rules_replay.py").write_text(textwrap.dedent(BAD_RULES), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = load_config(PAPER_CONFIG, [*CSV, "backtest.strategy=bad_rules_replay:Raises"])
    ws = tmp_path / "ws"
    with accounts.start(ws, "bad", cfg, source="test"):
        pass
    with pytest.raises(StrategyError, match="week of 2022-09-02: raised RuntimeError"):
        advance(ws, "bad", weeks=None, today=dt.date(2023, 7, 1))
    journal = Journal.open(ws / "replay" / "bad.sqlite", "test")
    try:  # the weeks before it are kept, each whole; the failing week is not there
        assert journal.weeks()["week"].max() == pd.Timestamp("2022-08-26")
    finally:
        journal.close()


def test_a_rule_name_that_is_not_a_plain_name_is_refused() -> None:
    class Evil(MomentumRule):
        name = "<script>alert(1)</script>"

    with pytest.raises(ConfigError, match="must be 1-64 letters"):
        resolve(load_config(None), rule=Evil)
    with pytest.raises(ConfigError, match="taken by a built-in"):
        resolve(load_config(None), rule=type("X", (MomentumRule,), {"name": "equal_weight"}))


def test_a_volatility_target_does_not_hide_a_weight_over_the_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The moderate profile scales exposure down to 15% volatility; the rule's own 0.5 is still
    over the profile's 0.25 cap, and is refused before the guard scales it."""
    (tmp_path / "bad_rules_vol.py").write_text(textwrap.dedent(BAD_RULES), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    # Without the per-name volatility ceiling, which would leave TSLA out before the rule.
    sets_ = [*CSV, "backtest.strategy=bad_rules_vol:Greedy", "profile.name=moderate"]
    sets_.append("profile.max_name_vol=0")
    with pytest.raises(StrategyError, match=r"weight 0\.5 of TSLA breaks the cap of 0\.25 per"):
        run_backtest(load_config(PAPER_CONFIG, sets_), tmp_path / "ws")


def test_the_momentum_rule_takes_the_plans_limits(tmp_path: Path) -> None:
    cfg = load_config(MOMENTUM, [*YEAR, "profile.name=conservative"])
    result = run_backtest(cfg, tmp_path / "ws")
    held = result.decisions[result.decisions["target"] > 0]
    assert held["target"].max() <= 0.15 + 1e-12
    # conservative: cap 0.15, gross 0.6 -> min(1/3, 0.15, 0.2) = 0.15 each before the guard
    # scales to the 10% volatility target; the guard saw three names at the cap every week.
    assert result.bounds is not None
    caps = result.bounds[result.bounds["reason"] == "cap"]
    assert set(caps["detail"]) == {"|weight| 0.1500 at the cap 0.1500"}
    assert (caps.groupby("week").size() == 3).all()
