"""The LSTM-signal strategy: exact sizing, the decision rule, point-in-time models, and a real
backtrader run of the paper config checked against a vectorised recomputation.

Hand-made cases are computed by hand in the comments (../shared/docs/DESIGN.md, "The
LSTM-signal strategy");
the backtests reuse the session's registered paper model (tests/conftest.py) and never train.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest

from simulator.backtest import run_backtest
from simulator.config import Config, load_config
from simulator.data import WeeklyData, load_daily, make_weekly
from simulator.engine import RuleRun
from simulator.errors import LookAheadError
from simulator.results import BacktestResult
from simulator.session import Window
from simulator.sight import Sight
from simulator.walkforward import (
    PREDICTION_COLUMNS,
    RegistrySignal,
    UsedModel,
    as_traded_metrics,
    retrain_ends,
)
from strategies.rule import History, State
from strategies.signal import SignalRule
from strategies.sizing import Limits, signal_scores, signal_weights
from tests.conftest import PAPER_CONFIG, PAPER_FAST, PaperModel

TIGHT = 1e-12
THIRD = 1 / 3


def weights(predicted: dict[str, float], limits: Limits | None = None) -> dict[str, float]:
    out = signal_weights(pd.Series(predicted, dtype=float), limits or Limits())
    assert list(out.index) == list(predicted)  # same tickers, same order
    return {str(k): float(v) for k, v in out.items()}


def approx(expected: dict[str, float]) -> Any:
    return pytest.approx(expected, abs=TIGHT)


def near(expected: Any) -> Any:
    """Equal up to floating-point rounding of hand-computed metrics."""
    return pytest.approx(expected, rel=1e-12, abs=1e-15)


# -- 1. sizing: exact weights for hand-made predictions -----------------------------------------


def test_mixed_signs_are_proportional_and_the_cap_hands_excess_on_in_proportion() -> None:
    # Some prediction < 0, so raw weights are the predictions: sum |r| = 0.10, scaled to gross 1:
    # A 0.5, B -0.2, C 0.1, D 0.2. A is 1/6 over the cap; the uncapped B, C, D (sizes
    # 0.2 : 0.1 : 0.2, sum 0.5) get 1/6 * size / 0.5: B -(0.2 + 1/15) = -4/15,
    # C 0.1 + 1/30 = 2/15, D 4/15. Gross stays 5/15 + 4/15 + 2/15 + 4/15 = 1.
    w = weights({"A": 0.05, "B": -0.02, "C": 0.01, "D": 0.02})
    assert w == approx({"A": THIRD, "B": -4 / 15, "C": 2 / 15, "D": 4 / 15})
    assert sum(abs(v) for v in w.values()) == pytest.approx(1.0, abs=TIGHT)


def test_cap_redistribution_repeats_until_no_name_is_over() -> None:
    # scaled: A 0.6, B -0.3, C 0.05, D 0.05. Round 1: A capped, excess 0.6 - 1/3 = 4/15 to
    # B, C, D by 0.3 : 0.05 : 0.05 (sum 0.4): B 0.3 + 0.2 = 0.5, C = D = 0.05 + 1/30 = 1/12.
    # Round 2: B is 1/6 over; C and D (1/12 each) take 1/12 each -> 1/6.
    w = weights({"A": 0.06, "B": -0.03, "C": 0.005, "D": 0.005})
    assert w == approx({"A": THIRD, "B": -THIRD, "C": 1 / 6, "D": 1 / 6})


def test_all_positive_predictions_use_z_scores_so_the_book_is_long_short() -> None:
    # mean 0.03, deviations -0.02, -0.01, 0.01, 0.02; population std = sqrt(2.5e-4)
    # = 0.005 * sqrt(10), so z = (-4, -2, 2, 4) / sqrt(10) (seed eq. 7), which sum to 0.
    r = np.array([0.01, 0.02, 0.04, 0.05])
    z = signal_scores(r)
    assert z == pytest.approx(np.array([-4, -2, 2, 4]) / math.sqrt(10), abs=TIGHT)
    assert z.sum() == pytest.approx(0.0, abs=TIGHT)
    # scaled to gross 1: z / sum|z| = (-2, -1, 1, 2) / 6; nobody is over 1/3.
    w = weights(dict(zip("ABCD", r, strict=True)))
    assert w == approx({"A": -THIRD, "B": -1 / 6, "C": 1 / 6, "D": THIRD})
    assert sum(w.values()) == pytest.approx(0.0, abs=TIGHT)  # net zero: long/short
    assert sum(abs(v) for v in w.values()) == pytest.approx(1.0, abs=TIGHT)


def test_all_positive_z_scores_then_caps_shift_the_excess_to_the_weaker_shorts() -> None:
    # mean 0.03, deviations -0.02, -0.01, 0, 0.03 (sum |.| = 0.06): -1/3, -1/6, 0, 1/2.
    # D is 1/6 over; the names still under the cap with a weight, A (1/3) and B (1/6), get
    # 1/6 * (2/3, 1/3): A -4/9, B -2/9; A is now 1/9 over and B alone takes it: B -1/3.
    # C (z = 0) gets nothing. Net -1/3: the cap breaks the z-scores' zero sum.
    w = weights({"A": 0.01, "B": 0.02, "C": 0.03, "D": 0.06})
    assert w == approx({"A": -THIRD, "B": -THIRD, "C": 0.0, "D": THIRD})


def test_several_names_capped_in_one_round() -> None:
    # scaled: A 0.45, B -0.4, C 0.1, D 0.05. A and B over together: excess
    # (0.45 - 1/3) + (0.4 - 1/3) = 11/60, to C and D by 0.1 : 0.05:
    # C 0.1 + 11/90 = 2/9, D 0.05 + 11/180 = 1/9. Gross 1/3 + 1/3 + 2/9 + 1/9 = 1.
    w = weights({"A": 0.045, "B": -0.04, "C": 0.01, "D": 0.005})
    assert w == approx({"A": THIRD, "B": -THIRD, "C": 2 / 9, "D": 1 / 9})


def test_when_every_name_is_capped_the_rest_stays_in_cash() -> None:
    # gross 1.5 over 4 names, sum |r| = 0.10: A 0.6, B -0.45, C 0.3, D 0.15. Round 1: A, B
    # capped, excess 0.38333 to C, D (2 : 1): C 0.5556, D 0.2778; round 2: C capped, D takes
    # 0.2222 -> 0.5; round 3: D capped with nobody left. All at 1/3: 4/3 invested, 1/6 cash.
    w = weights({"A": 0.04, "B": -0.03, "C": 0.02, "D": 0.01}, Limits(gross=1.5))
    assert w == approx({"A": THIRD, "B": -THIRD, "C": THIRD, "D": THIRD})
    assert sum(abs(v) for v in w.values()) == pytest.approx(4 / 3, abs=TIGHT)


def test_one_name_is_bought_or_shorted_up_to_the_cap() -> None:
    # One name: no z-score (std undefined), r itself; scaled to 1, capped at 1/3, 2/3 cash.
    assert weights({"A": 0.02}) == approx({"A": THIRD})
    assert weights({"A": -0.02}) == approx({"A": -THIRD})
    assert weights({"A": -0.02}, Limits(allow_short=False)) == approx({"A": 0.0})
    assert weights({"A": 0.02}, Limits(max_weight=1.0)) == approx({"A": 1.0})


def test_two_names_all_positive_give_z_of_plus_minus_one() -> None:
    # mean 0.02, deviations -0.01, +0.01, std 0.01: z = -1, +1 -> scaled -0.5, +0.5, both over
    # the cap in the same round, nobody free: -1/3, +1/3, the other 1/3 in cash.
    assert signal_scores(np.array([0.01, 0.03])) == pytest.approx([-1.0, 1.0], abs=TIGHT)
    assert weights({"A": 0.01, "B": 0.03}) == approx({"A": -THIRD, "B": THIRD})


def test_two_names_mixed_signs() -> None:
    # 0.03 : -0.01 -> 0.75, -0.25; A's excess 5/12 goes to B -> -2/3, over the cap too:
    # both at 1/3, 1/3 in cash.
    assert weights({"A": 0.03, "B": -0.01}) == approx({"A": THIRD, "B": -THIRD})
    # without the cap binding: proportional.
    w = weights({"A": 0.03, "B": -0.01}, Limits(max_weight=1.0))
    assert w == approx({"A": 0.75, "B": -0.25})


def test_shorts_off_zeroes_the_fallers_and_rescales_the_risers() -> None:
    # mixed signs: raw = r; B's -0.02 becomes 0; longs 0.03 : 0.01 : 0.02 (sum 0.06) give
    # A 1/2, C 1/6, D 1/3 without a cap.
    p = {"A": 0.03, "B": -0.02, "C": 0.01, "D": 0.02}
    assert weights(p, Limits(allow_short=False, max_weight=1.0)) == approx(
        {"A": 0.5, "B": 0.0, "C": 1 / 6, "D": THIRD}
    )
    # cap 1/3: A's 1/6 goes to C, D by 1/6 : 1/3 -> C 2/9, D 4/9; D's 1/9 goes to C -> 1/3.
    assert weights(p, Limits(allow_short=False)) == approx(
        {"A": THIRD, "B": 0.0, "C": THIRD, "D": THIRD}
    )


def test_shorts_off_with_all_positive_predictions_keeps_only_above_average_names() -> None:
    # z ∝ (-2, -1, 1, 2); the negative z-scores become 0 -> C 1/3, D 2/3 (no cap);
    # with the cap D's 1/3 excess goes to C, which caps too: 2/3 invested, 1/3 cash.
    p = {"A": 0.01, "B": 0.02, "C": 0.04, "D": 0.05}
    assert weights(p, Limits(allow_short=False, max_weight=1.0)) == approx(
        {"A": 0.0, "B": 0.0, "C": THIRD, "D": 2 / 3}
    )
    assert weights(p, Limits(allow_short=False)) == approx(
        {"A": 0.0, "B": 0.0, "C": THIRD, "D": THIRD}
    )


def test_nan_prediction_gets_zero_and_is_left_out_of_mean_and_std() -> None:
    # Without C the case is the z-score one above: mean 0.03 and std over A, B, D, E only.
    # (Counting C as 0 would give mean 0.024 and other weights.)
    w = weights({"A": 0.01, "B": 0.02, "C": math.nan, "D": 0.04, "E": 0.05})
    assert w == approx({"A": -THIRD, "B": -1 / 6, "C": 0.0, "D": 1 / 6, "E": THIRD})
    # NaN does not make the book "mixed": the other names are all positive -> z-scores.
    # A 0.01, B 0.03 -> z -1, +1 -> -1/3, +1/3 after the cap.
    assert weights({"A": 0.01, "B": math.nan, "C": 0.03}) == approx(
        {"A": -THIRD, "B": 0.0, "C": THIRD}
    )
    assert weights({"A": math.nan, "B": math.nan}) == approx({"A": 0.0, "B": 0.0})


def test_equal_positive_predictions_give_equal_long_weights() -> None:
    # std 0: z undefined, r used as it is -> 1/4 each.
    assert weights(dict.fromkeys("ABCD", 0.02)) == approx(dict.fromkeys("ABCD", 0.25))
    # two names: 1/2 each, capped at 1/3, 1/3 in cash.
    assert weights(dict.fromkeys("AB", 0.02)) == approx(dict.fromkeys("AB", THIRD))
    # "equal" up to rounding noise (0.1 + 0.2 != 0.3): still equal, not z = -1, +1.
    w = weights({"A": 0.1 + 0.2, "B": 0.3, "C": 0.3})
    assert w == approx(dict.fromkeys("ABC", THIRD))
    # all predicted flat: nothing to buy, all cash.
    assert weights(dict.fromkeys("ABC", 0.0)) == approx(dict.fromkeys("ABC", 0.0))


def test_gross_and_max_weight_variants() -> None:
    p = {"A": 0.05, "B": -0.02, "C": 0.01, "D": 0.02}  # raw shares 0.5, -0.2, 0.1, 0.2
    # gross 0.5: 0.25, -0.1, 0.05, 0.1, all under 1/3.
    assert weights(p, Limits(gross=0.5)) == approx({"A": 0.25, "B": -0.1, "C": 0.05, "D": 0.1})
    # no binding cap: plain proportions, and at gross 2 twice them.
    assert weights(p, Limits(max_weight=1.0)) == approx({"A": 0.5, "B": -0.2, "C": 0.1, "D": 0.2})
    assert weights(p, Limits(gross=2.0, max_weight=1.0)) == approx(
        {"A": 1.0, "B": -0.4, "C": 0.2, "D": 0.4}
    )
    # cap 0.4: A's 0.1 goes to B, C, D by 0.2 : 0.1 : 0.2 -> B -0.24, C 0.12, D 0.24.
    assert weights(p, Limits(max_weight=0.4)) == approx(
        {"A": 0.4, "B": -0.24, "C": 0.12, "D": 0.24}
    )
    # cap 0.25: A's 0.25 -> B -0.3, C 0.15, D 0.3; B, D over by 0.05 each -> C 0.25.
    assert weights(p, Limits(max_weight=0.25)) == approx(dict(A=0.25, B=-0.25, C=0.25, D=0.25))


# -- 2. the decision rule with a hand-written signal provider ----------------------------------

W1, W2 = pd.Timestamp("2024-01-05"), pd.Timestamp("2024-01-12")


class DictSignal:
    """A signal provider from a table: week -> predictions, week -> version."""

    def __init__(self, table: dict[pd.Timestamp, dict[str, float]], versions: dict[str, str]):
        self.table = table
        self.versions = versions
        self.asked: list[tuple[pd.Timestamp, pd.Timestamp]] = []

    def predict(self, as_of: pd.Timestamp, history: History) -> pd.Series:
        self.asked.append((as_of, history.closes.index[-1]))
        return pd.Series(self.table[as_of], dtype=float)

    def version(self, as_of: pd.Timestamp) -> str:
        return self.versions[str(as_of.date())]

    @property
    def train_ends(self) -> list[pd.Timestamp]:
        return []


#: Closes of six tickers over the two decision weeks (the rule reads only the predictions).
SIX = pd.DataFrame(1.0, index=pd.DatetimeIndex([W1, W2]), columns=list("ABCDEF"))


def test_signal_rule_sizes_only_the_tradable_tickers() -> None:
    provider = DictSignal(
        {
            # D is predicted to crash but is not eligible at W1: it neither trades nor turns
            # the book into the mixed-sign case.
            W1: {"A": 0.01, "B": 0.02, "C": 0.04, "D": -0.5, "E": 0.05},
            # E has a bar but no prediction (absent from the provider's answer).
            W2: {"A": 0.03, "B": -0.01, "C": 0.02, "D": 0.04},
        },
        {"2024-01-05": "m/1", "2024-01-12": "m/2"},
    )
    eligible = {W1: frozenset("ABCE"), W2: frozenset("ABDE")}
    run = RuleRun(SignalRule(provider, Limits()), Sight(SIX), eligible, Limits())

    # W1: A, B, C, E are all positive -> z ∝ (-2, -1, 1, 2) -> -1/3, -1/6, 1/6, 1/3.
    # F has a bar but is not eligible (too little history) and gets no target at all.
    got = run(W1, ["A", "B", "C", "D", "E", "F"], State(1.0, 1.0))
    assert list(got.weights) == ["A", "B", "C", "E"]
    assert got.weights == approx({"A": -THIRD, "B": -1 / 6, "C": 1 / 6, "E": THIRD})
    assert got.tag == "m/1"

    # W2: C is not eligible and D has no bar (not passed in). A 0.03, B -0.01, E NaN:
    # mixed -> 0.75, -0.25 -> capped at +-1/3; E gets 0.
    got = run(W2, ["A", "B", "C", "E"], State(1.0, 1.0))
    assert list(got.weights) == ["A", "B", "E"]
    assert got.weights == approx({"A": THIRD, "B": -THIRD, "E": 0.0})
    assert got.tag == "m/2"

    # The provider was asked with the history the engine cut at each week.
    assert provider.asked == [(W1, W1), (W2, W2)]

    d = run.log
    assert list(d.columns) == ["week", "ticker", "score", "target", "note"]
    assert list(zip(d["week"], d["ticker"], strict=True)) == [
        (W1, "A"),
        (W1, "B"),
        (W1, "C"),
        (W1, "E"),
        (W2, "A"),
        (W2, "B"),
        (W2, "E"),
    ]
    assert d["score"].tolist()[:6] == [0.01, 0.02, 0.04, 0.05, 0.03, -0.01]
    assert math.isnan(d["score"].iloc[6])
    expected = [-THIRD, -1 / 6, 1 / 6, THIRD, THIRD, -THIRD, 0.0]
    assert d["target"].tolist() == pytest.approx(expected, abs=TIGHT)
    assert (d["note"] == "").all()


def test_signal_rule_with_no_tradable_ticker_holds_cash() -> None:
    provider = DictSignal({W1: {"A": 0.02}}, {"2024-01-05": "m/1"})
    run = RuleRun(SignalRule(provider, Limits()), Sight(SIX), {W1: frozenset()}, Limits())
    assert run(W1, ["A"], State(1.0, 1.0)).weights == {}
    assert run.log.empty


# -- 3. walk-forward retraining dates ----------------------------------------------------------

FIRST_END = pd.Timestamp("2023-12-29")
DECISIONS = pd.date_range("2024-01-05", periods=7, freq="W-FRI")  # d0 .. d6


def d(*i: int) -> list[pd.Timestamp]:
    return [DECISIONS[k] for k in i]


@pytest.mark.parametrize(
    ("every", "expected"),
    [
        (0, [FIRST_END]),  # one model for the whole run
        # a new model at the close of every decision but the last (nobody would use it)
        (1, [FIRST_END, *d(0, 1, 2, 3, 4, 5)]),
        # d0 d1 d2 | d3 d4 d5 | d6: trained at d2 (used from d3) and d5 (used at d6)
        (3, [FIRST_END, *d(2, 5)]),
        (6, [FIRST_END, *d(5)]),  # the second model makes the 7th decision only
        (7, [FIRST_END]),  # K = number of decisions: the first model makes them all
        (50, [FIRST_END]),
    ],
)
def test_retrain_ends(every: int, expected: list[pd.Timestamp]) -> None:
    ends = retrain_ends(FIRST_END, DECISIONS, every)
    assert ends == expected
    assert all(isinstance(e, pd.Timestamp) for e in ends)


# -- shared: the real paper data and one backtest of the session model --------------------------


@pytest.fixture(scope="module")
def weekly(paper_model: PaperModel, tmp_path_factory: pytest.TempPathFactory) -> WeeklyData:
    cfg = paper_model.config
    ws = tmp_path_factory.mktemp("weekly-ws")
    return make_weekly(load_daily(cfg.data, cfg.report.risk_free, ws))


def _with(cfg: Config, **backtest: Any) -> Config:
    """``cfg`` with backtest fields changed (data and model untouched: no training)."""
    return cfg.model_copy(update={"backtest": cfg.backtest.model_copy(update=backtest)})


@pytest.fixture(scope="module")
def lstm_close(
    paper_model: PaperModel, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BacktestResult]:
    """The paper config with cheat-on-close fills on the session model (reused, not trained)."""
    cfg = _with(paper_model.config, fill="close")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FOLIOSIM_WORKSPACE", str(tmp_path_factory.mktemp("lstm-close-ws")))
        result = run_backtest(cfg, paper_model.workspace)
    assert [m.version for m in result.summary.models] == [paper_model.ref]
    assert result.summary.models[0].trained_by_this_run is False
    yield result


# -- 4. point-in-time model selection on the session model --------------------------------------


def _used(paper_model: PaperModel) -> UsedModel:
    from models.registry import Registry

    registry = Registry(paper_model.workspace)
    info = registry.resolve(paper_model.ref)
    return UsedModel(registry.load(paper_model.ref), info, trained=False)


def test_registry_signal_uses_only_models_trained_before_the_decision(
    paper_model: PaperModel, weekly: WeeklyData
) -> None:
    used = _used(paper_model)
    assert used.train_end == pd.Timestamp("2022-06-24")
    closes = weekly.closes()
    signal = RegistrySignal([used])

    # as_of == train_end: the model saw the target of that week's window -> look-ahead.
    for early in ["2022-06-24", "2022-06-17", "2020-01-03"]:
        with pytest.raises(LookAheadError, match="before"):
            signal.model_at(pd.Timestamp(early))
        with pytest.raises(LookAheadError):
            signal.predict(pd.Timestamp(early), History.cut(closes, pd.Timestamp(early), []))
    with pytest.raises(LookAheadError):
        signal.version(pd.Timestamp("2022-06-24"))

    as_of = pd.Timestamp("2022-07-01")
    assert signal.model_at(as_of) is used
    assert signal.version(as_of) == paper_model.ref
    got = signal.predict(as_of, History.cut(closes, as_of, []))
    # the same as the forecaster on the closes up to as_of, and later rows change nothing
    expected = used.model.predict(closes.loc[:as_of], as_of, list(closes.columns))
    pd.testing.assert_series_equal(got, expected, rtol=0, atol=0)
    pd.testing.assert_series_equal(
        got, used.model.predict(closes, as_of, list(closes.columns)), rtol=0, atol=0
    )
    assert got.notna().all() and len(got) == 12

    frame = signal.predictions()
    assert (frame["week"] == as_of).all()
    assert (frame["model_version"] == paper_model.ref).all()
    assert frame["ticker"].tolist() == list(closes.columns)
    row = int(closes.index.searchsorted(as_of))
    assert closes.index[row] == as_of
    assert frame["last_close"].tolist() == closes.iloc[row].to_list()
    assert frame["predicted_return"].tolist() == pytest.approx(got.tolist(), abs=0)


def test_registry_signal_picks_the_latest_model_before_each_week(
    paper_model: PaperModel, weekly: WeeklyData
) -> None:
    first = _used(paper_model)
    # A second version as walk-forward retraining would make it, trained up to 2022-09-30
    # (the same networks, re-dated; selection looks only at train_end).
    later_end = pd.Timestamp("2022-09-30")
    tags = {**first.info.tags, "train_end": later_end.date().isoformat()}
    second = UsedModel(
        dataclasses.replace(first.model, train_end=later_end),
        dataclasses.replace(first.info, version=first.info.version + 1, tags=tags),
        trained=False,
    )
    signal = RegistrySignal([second, first])  # any order
    assert signal.model_at(pd.Timestamp("2022-07-01")) is first
    assert signal.model_at(later_end) is first  # trained on later_end itself: not yet usable
    assert signal.model_at(pd.Timestamp("2022-10-07")) is second
    assert signal.version(pd.Timestamp("2022-10-07")) == second.info.ref != paper_model.ref


# -- 5. fill=close: the engine's returns are the weights times the next week's returns ----------


def test_close_fill_returns_equal_weights_times_next_week_returns(
    paper_model: PaperModel, weekly: WeeklyData, lstm_close: BacktestResult
) -> None:
    result = lstm_close
    weeks = Window.backtest(weekly, result.config).weeks
    tickers = weekly.tickers
    assert result.returns.index.tolist() == weeks[1:].tolist()
    assert result.summary.fill == "close"

    # weights.csv-style long table -> (week, ticker); omitted rows are 0
    w = (
        result.weights.pivot(index="date", columns="ticker", values="weight")
        .reindex(index=weeks, columns=tickers)
        .fillna(0.0)
    )
    closes = weekly.closes().ffill().reindex(weeks)[tickers]
    asset_returns = closes / closes.shift(1) - 1.0
    # r(t+1) = sum_i w_i(t) * (close_i(t+1) / close_i(t) - 1); cash earns 0, no commission
    vectorised = (w.shift(1).iloc[1:] * asset_returns.iloc[1:]).sum(axis=1)
    np.testing.assert_allclose(
        result.returns["strategy"].to_numpy(), vectorised.to_numpy(), rtol=0, atol=1e-9
    )
    assert (result.orders["status"] == "Completed").all()
    assert (result.orders["commission"] == 0.0).all()


def test_close_fill_positions_match_the_target_weights_up_to_whole_shares(
    weekly: WeeklyData, lstm_close: BacktestResult
) -> None:
    result = lstm_close
    assert result.predictions is not None
    weeks = Window.backtest(weekly, result.config).weeks
    decisions = weeks[:-1]
    tickers = weekly.tickers
    held = (
        result.weights.pivot(index="date", columns="ticker", values="weight")
        .reindex(index=decisions, columns=tickers)
        .fillna(0.0)
    )
    target = (
        result.predictions.pivot(index="week", columns="ticker", values="target")
        .reindex(index=decisions, columns=tickers)
        .astype(float)
    )
    assert target.notna().all().all()
    # Each target is rounded toward zero to whole shares sized at the close of the decision
    # week, on the portfolio value V(t) at that close: |held - target| < close / V(t).
    values = (1.0 + result.returns["strategy"]).cumprod() * result.config.backtest.cash
    value = pd.concat([pd.Series([result.config.backtest.cash], index=weeks[:1]), values])
    closes = weekly.closes().reindex(decisions)[tickers]
    one_share = closes.div(value.reindex(decisions), axis=0)
    gap = (held - target).abs()
    assert (gap <= one_share + 1e-12).all().all(), gap.max().max()
    # toward zero: never more exposure than the target, never the opposite side
    assert (held.abs() <= target.abs() + 1e-12).all().all()
    assert (held * target >= 0).all().all()

    # gross 1 up to rounding; no name above the 1/3 cap
    gross = held.abs().sum(axis=1)
    assert (gross <= 1.0 + 1e-12).all()
    assert (gross >= 1.0 - one_share.sum(axis=1) - 1e-12).all()
    assert (held.abs() <= THIRD + 1e-12).all().all()
    assert (target.abs().sum(axis=1) - 1.0).abs().max() < 1e-12
    assert (target.abs() <= THIRD + 1e-12).all().all()


def test_predictions_table_is_the_sizing_of_the_forecasts(
    paper_model: PaperModel, weekly: WeeklyData, lstm_close: BacktestResult
) -> None:
    p = lstm_close.predictions
    assert p is not None
    assert list(p.columns) == PREDICTION_COLUMNS
    weeks = Window.backtest(weekly, lstm_close.config).weeks
    assert sorted(set(p["week"])) == weeks[:-1].tolist()
    assert (p["model_version"] == paper_model.ref).all()
    closes = weekly.closes()
    for week, part in p.groupby("week"):
        stamp = pd.Timestamp(str(week))
        predicted = part.set_index("ticker")["predicted_return"]
        expected = signal_weights(predicted, Limits())
        assert part["target"].to_numpy() == pytest.approx(expected.to_numpy(), abs=TIGHT)
        names = [str(t) for t in part["ticker"]]
        row = int(closes.index.searchsorted(stamp))
        assert closes.index[row] == stamp
        assert part["last_close"].to_list() == closes.iloc[row][names].to_list()
        assert part["actual_close"].to_list() == closes.iloc[row + 1][names].to_list()


# -- 6. orders carry the model version --------------------------------------------------------


def test_lstm_orders_carry_the_model_version_and_equal_weight_orders_none(
    paper_model: PaperModel, lstm_close: BacktestResult
) -> None:
    orders = lstm_close.orders
    assert len(orders) > 0
    assert (orders["model_version"] == paper_model.ref).all()
    assert lstm_close.summary.models[0].orders == len(orders)

    cfg = _with(paper_model.config, strategy="equal_weight")
    one_over_n = run_backtest(cfg, paper_model.workspace)
    assert len(one_over_n.orders) > 0
    assert (one_over_n.orders["model_version"] == "").all()
    assert one_over_n.predictions is None
    # the 1/N run is the same engine run as the LSTM run's equal_weight column
    pd.testing.assert_series_equal(
        one_over_n.returns["strategy"],
        lstm_close.returns["equal_weight"],
        check_names=False,
        rtol=0,
        atol=0,
    )


# -- time contract with a pinned version ------------------------------------------------------


def test_a_pinned_version_trained_up_to_the_first_decision_is_refused(
    paper_model: PaperModel,
) -> None:
    cfg = load_config(
        PAPER_CONFIG,
        [*PAPER_FAST, f"model.version={paper_model.ref}", "backtest.start=2022-06-24"],
    )
    with pytest.raises(LookAheadError, match="2022-06-24"):
        run_backtest(cfg, paper_model.workspace)


def test_a_run_on_data_cut_after_its_end_trades_exactly_as_the_full_run(
    paper_model: PaperModel, lstm_close: BacktestResult
) -> None:
    # No look-ahead: with the prices after 2022-08-26 absent, the first 8 weeks are the same.
    cfg = load_config(
        PAPER_CONFIG,
        [
            *PAPER_FAST,
            f"model.version={paper_model.ref}",
            "backtest.fill=close",
            "backtest.end=2022-08-26",
            "data.end=2022-08-26",
        ],
    )
    short = run_backtest(cfg, paper_model.workspace)
    assert len(short.returns) == 8
    full = lstm_close.returns.loc[short.returns.index, "strategy"]
    pd.testing.assert_series_equal(short.returns["strategy"], full, rtol=0, atol=1e-12)
    assert short.predictions is not None and lstm_close.predictions is not None
    cut = lstm_close.predictions[lstm_close.predictions["week"] <= pd.Timestamp("2022-08-19")]
    cols = ["week", "ticker", "predicted_close", "target"]
    pd.testing.assert_frame_equal(
        short.predictions[cols].reset_index(drop=True), cut[cols].reset_index(drop=True)
    )


# -- 7. as-traded forecast metrics ------------------------------------------------------------


def _frame(rows: list[tuple[str, str, float, float, float]]) -> pd.DataFrame:
    """Predictions rows ``(week, ticker, last_close, predicted_close, actual_close)``."""
    frame = pd.DataFrame(
        rows, columns=["week", "ticker", "last_close", "predicted_close", "actual_close"]
    )
    frame["week"] = pd.to_datetime(frame["week"])
    frame["model_version"] = "m/1"
    frame["predicted_return"] = frame["predicted_close"] / frame["last_close"] - 1
    frame["target"] = 0.0
    return frame[PREDICTION_COLUMNS]


def test_as_traded_metrics_by_hand() -> None:
    nan = math.nan
    frame = _frame(
        [
            ("2024-01-05", "A", 100.0, 105.0, 110.0),  # predicted +5%, was +10%
            ("2024-01-05", "B", 50.0, 50.0, 55.0),  # predicted flat, was +10%
            ("2024-01-12", "A", 110.0, 121.0, 99.0),  # predicted +10%, was -10%
            ("2024-01-12", "B", 55.0, 49.5, 44.0),  # predicted -10%, was -20%
            ("2024-01-19", "A", 99.0, 100.0, nan),  # not realised yet: left out
            ("2024-01-19", "B", 44.0, nan, 46.0),  # no forecast: left out
        ]
    )
    m = as_traded_metrics(frame)
    assert list(m["per_ticker"]) == ["A", "B"]
    a, b, both = m["per_ticker"]["A"], m["per_ticker"]["B"], m["all"]
    assert (a["n"], b["n"], both["n"]) == (2, 2, 4)

    # A, prices: errors 105 - 110 = -5, 121 - 99 = 22
    assert a["model"]["price"] == near(
        {
            "mse": (25 + 484) / 2,
            "mae": 13.5,
            "rmse": math.sqrt(254.5),
            "mape": (5 / 110 + 22 / 99) / 2 * 100,
            "hit_rate": 0.5,  # up/up right, up/down wrong
        },
    )
    # A, returns: predicted 0.05, 0.10; actual 0.10, -0.10: errors -0.05, 0.20
    assert a["model"]["return"] == near(
        {
            "mse": (0.0025 + 0.04) / 2,
            "mae": 0.125,
            "rmse": math.sqrt(0.02125),
            "mape": (0.5 + 2.0) / 2 * 100,
            "hit_rate": 0.5,
        },
    )
    # naive (return 0): price errors -10, 11; return errors -0.10, 0.10; no direction
    naive_price = dict(a["naive"]["price"])
    assert naive_price.pop("hit_rate") is None
    assert naive_price == near(
        {
            "mse": 110.5,
            "mae": 10.5,
            "rmse": math.sqrt(110.5),
            "mape": (10 / 110 + 11 / 99) / 2 * 100,
        },
    )
    assert a["naive"]["return"]["hit_rate"] is None
    assert a["naive"]["return"]["mse"] == near(0.01)
    assert a["naive"]["return"]["mape"] == near(100.0)
    assert a["mse_ratio"] == near(0.02125 / 0.01)

    # B: price errors -5, 5.5; returns predicted 0, -0.10 vs 0.10, -0.20: errors -0.1, 0.1
    assert b["model"]["price"]["mse"] == near((25 + 30.25) / 2)
    assert b["model"]["price"]["mape"] == near((5 / 55 + 5.5 / 44) / 2 * 100)
    assert b["model"]["return"]["mse"] == near(0.01)
    assert b["model"]["return"]["mape"] == near((1.0 + 0.5) / 2 * 100)
    assert b["model"]["return"]["hit_rate"] == 1.0  # week 1 predicted no move: not counted
    assert b["naive"]["return"]["mse"] == near((0.01 + 0.04) / 2)
    assert b["naive"]["price"]["mse"] == near((25 + 121) / 2)
    assert b["mse_ratio"] == near(0.01 / 0.025)

    # all four rows: model return errors -0.05, 0.2, -0.1, 0.1; naive -0.1, 0.1, -0.1, 0.2
    assert both["model"]["return"]["mse"] == near(0.0625 / 4)
    assert both["naive"]["return"]["mse"] == near(0.07 / 4)
    assert both["mse_ratio"] == near(25 / 28)
    assert both["model"]["price"]["mse"] == near(564.25 / 4)
    assert both["model"]["price"]["mae"] == near(37.5 / 4)
    assert both["model"]["return"]["hit_rate"] == near(2 / 3)


def test_as_traded_metrics_without_a_realised_forecast_is_empty() -> None:
    frame = _frame([("2024-01-05", "A", 100.0, 101.0, math.nan)])
    assert as_traded_metrics(frame) == {"per_ticker": {}, "all": {}}
