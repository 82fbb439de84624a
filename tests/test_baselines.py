"""Minimum-variance, mean-variance and minimum-CVaR baselines (strategies.optimize).

- The optimiser against closed forms on returns built to have an exact sample mean and
  covariance, and against the KKT conditions where bounds bind; minimum CVaR against a
  minimax problem solved by hand and against the same linear program solved exactly by
  HiGHS' simplex (scipy).
- Limits: caps, shorts off, a budget the cap makes unreachable, the optional gross bound.
- Failures surface as OptimizationError; the rule's fallbacks are recorded.
- BaselineRule: point in time, eligibility, the missing-data policy, determinism, and a short
  run on the real paper12 data (through the engine too).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import linprog
from skfolio.exceptions import ConvexOptimizationError

import strategies.optimize as optimize
from simulator.config import load_config
from simulator.data import load_daily, make_weekly
from strategies.optimize import (
    BaselineRule,
    OptimizationError,
    net_budget,
    optimal_weights,
)
from strategies.risk import cvar
from strategies.rule import History
from strategies.sizing import Limits
from tests.helpers import ask, decide

LOOSE = 1.0  # a cap that never binds here
WEEKS = pd.date_range("2020-01-03", periods=150, freq="W-FRI")


def exact_returns(mu: np.ndarray, cov: np.ndarray, weeks: int = 104, seed: int = 0) -> pd.DataFrame:
    """Weekly returns whose sample mean is ``mu`` and sample covariance (ddof=1) ``cov``."""
    n = len(mu)
    z = np.random.default_rng(seed).normal(size=(weeks, n))
    z -= z.mean(axis=0)
    z = z @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False))).T  # sample cov = I
    x = mu + z @ np.linalg.cholesky(cov).T
    return pd.DataFrame(x, columns=[f"S{i}" for i in range(n)])


def covariance(vols: list[float], corr: float) -> np.ndarray:
    v = np.asarray(vols)
    c = np.full((len(v), len(v)), corr)
    np.fill_diagonal(c, 1.0)
    return c * np.outer(v, v)


def gmv(cov: np.ndarray, budget: float = 1.0) -> np.ndarray:
    """The global minimum-variance weights ``S^-1 1 / (1' S^-1 1)``, scaled to ``budget``."""
    x = np.linalg.solve(cov, np.ones(len(cov)))
    return budget * x / x.sum()


#: Vols 3-4.2 % a week, correlation 0.2: the GMV portfolio holds every name, each 0.10-0.31.
EVEN = covariance([0.030, 0.032, 0.035, 0.038, 0.042], 0.2)
#: Vols 2-5 %, correlation 0.3: the GMV portfolio puts 0.55 in the least volatile name.
SPREAD = covariance([0.02, 0.025, 0.03, 0.035, 0.05], 0.3)
#: Correlation 0.8: the GMV portfolio shorts the two most volatile names.
HEDGED = covariance([0.02, 0.024, 0.03, 0.05, 0.06], 0.8)
MU = np.array([0.004, 0.001, 0.003, 0.002, 0.005])


def kkt_residual(w: np.ndarray, grad: np.ndarray, lower: float, upper: float) -> float:
    """How far ``w`` is from the KKT conditions of ``min f(w)`` with ``sum(w)`` fixed and
    ``lower <= w <= upper`` (``grad`` the gradient of f at w); 0 at the optimum.

    Names strictly inside the bounds share one multiplier ``g`` (``grad_i == g``); names at
    the upper bound have ``grad_i <= g``, at the lower bound ``grad_i >= g``.
    """
    at_up, at_low = w >= upper - 1e-7, w <= lower + 1e-7
    free = ~(at_up | at_low)
    assert free.any(), "the check needs a name strictly inside its bounds"
    g = float(grad[free].mean())
    return max(
        float(np.abs(grad[free] - g).max()),
        float(np.clip(grad[at_up] - g, 0, None).max(initial=0.0)),
        float(np.clip(g - grad[at_low], 0, None).max(initial=0.0)),
    )


# --- the optimiser -------------------------------------------------------------------------


def test_exact_returns_have_the_covariance_they_are_built_with() -> None:
    r = exact_returns(MU, SPREAD)
    np.testing.assert_allclose(np.cov(r.to_numpy(), rowvar=False), SPREAD, atol=1e-15)
    np.testing.assert_allclose(r.mean().to_numpy(), MU, atol=1e-15)


@pytest.mark.parametrize("allow_short", [False, True])
def test_min_variance_equals_the_closed_form_when_no_bound_binds(allow_short: bool) -> None:
    expected = gmv(EVEN)
    assert (expected > 0.05).all() and (expected < 1 / 3).all()
    w = optimal_weights(exact_returns(MU, EVEN), "min_variance", Limits(1 / 3, 1.0, allow_short))
    assert list(w.index) == ["S0", "S1", "S2", "S3", "S4"]
    np.testing.assert_allclose(w.to_numpy(), expected, atol=1e-6)


def test_min_variance_with_shorts_equals_the_closed_form_with_negative_weights() -> None:
    expected = gmv(HEDGED)
    assert (expected < -0.05).sum() >= 1 and np.abs(expected).max() < LOOSE
    w = optimal_weights(exact_returns(MU, HEDGED), "min_variance", Limits(LOOSE, 1.0, True))
    np.testing.assert_allclose(w.to_numpy(), expected, atol=1e-6)
    assert w.sum() == pytest.approx(1.0, abs=1e-8)


def test_long_only_min_variance_is_the_closed_form_on_the_names_it_holds() -> None:
    cov = HEDGED
    w = optimal_weights(exact_returns(MU, cov), "min_variance", Limits(LOOSE, 1.0, False))
    x = w.to_numpy()
    assert (x >= 0).all()  # exactly: never a short, not even solver noise
    held = x > 1e-6
    assert held.tolist() == [True, True, False, False, False]  # GMV shorts dropped, not clipped
    np.testing.assert_allclose(x[held], gmv(cov[np.ix_(held, held)]), atol=1e-6)
    assert kkt_residual(x, 2 * cov @ x, 0.0, LOOSE) < 1e-8


@pytest.mark.parametrize("allow_short", [False, True])
def test_a_binding_cap_holds_and_the_solution_is_optimal(allow_short: bool) -> None:
    cap = 0.25
    limits = Limits(cap, 1.0, allow_short)
    w = optimal_weights(exact_returns(MU, SPREAD), "min_variance", limits).to_numpy()
    assert gmv(SPREAD).max() > cap + 0.05  # unconstrained, the least volatile name exceeds it
    assert np.abs(w).max() <= cap + 1e-8
    assert w.max() == pytest.approx(cap, abs=1e-7)  # it binds
    assert w.sum() == pytest.approx(1.0, abs=1e-8)
    if not allow_short:
        assert (w >= 0).all()
    lower = -cap if allow_short else 0.0
    assert kkt_residual(w, 2 * SPREAD @ w, lower, cap) < 1e-8


@pytest.mark.parametrize("allow_short", [False, True])
def test_a_budget_the_cap_cannot_reach_leaves_the_rest_in_cash(allow_short: bool) -> None:
    r = exact_returns(MU[:2], SPREAD[:2, :2])
    for kind in ("min_variance", "mean_variance"):
        w = optimal_weights(r, kind, Limits(1 / 3, 1.0, allow_short))
        assert w.tolist() == [1 / 3, 1 / 3]
    assert net_budget(2, Limits()) == pytest.approx(2 / 3)
    one = optimal_weights(r[["S1"]], "min_variance", Limits(0.5, 0.4, allow_short))
    assert one.to_dict() == {"S1": pytest.approx(0.4)}  # one name: the budget, if under cap


def test_a_smaller_gross_is_a_smaller_budget() -> None:
    w = optimal_weights(exact_returns(MU, EVEN), "min_variance", Limits(1 / 3, 0.5, False))
    np.testing.assert_allclose(w.to_numpy(), gmv(EVEN, 0.5), atol=1e-6)


@pytest.mark.parametrize(
    ("risk_aversion", "allow_short"), [(2.0, True), (4.0, True), (10.0, False)]
)
def test_mean_variance_equals_the_closed_form_when_no_bound_binds(
    risk_aversion: float, allow_short: bool
) -> None:
    # max mu'w - l w'Sw s.t. 1'w = 1:  w = S^-1 (mu - g 1) / (2 l), g from the budget.
    inv_mu, inv_one = np.linalg.solve(EVEN, MU), np.linalg.solve(EVEN, np.ones(5))
    g = (inv_mu.sum() - 2 * risk_aversion) / inv_one.sum()
    expected = (inv_mu - g * inv_one) / (2 * risk_aversion)
    assert (expected < 0).any() == allow_short and np.abs(expected).max() < LOOSE
    r = exact_returns(MU, EVEN)
    w = optimal_weights(r, "mean_variance", Limits(LOOSE, 1.0, allow_short), risk_aversion)
    # Clarabel's gap is relative to the objective, here dominated by mu'w at low risk
    # aversion: 2.4e-6 off at l = 2 (geared 1.75x), ~3e-7 at l = 4 and 10.
    np.testing.assert_allclose(w.to_numpy(), expected, atol=1e-5)
    assert np.abs(w.to_numpy() - gmv(EVEN)).max() > 0.05  # the means matter


@pytest.mark.parametrize("allow_short", [False, True])
def test_mean_variance_with_binding_caps_meets_the_kkt_conditions(allow_short: bool) -> None:
    cap, lam = 0.3, 2.0
    w = optimal_weights(
        exact_returns(MU, HEDGED), "mean_variance", Limits(cap, 1.0, allow_short), lam
    ).to_numpy()
    lower = -cap if allow_short else 0.0
    assert ((w >= cap - 1e-7) | (w <= lower + 1e-7)).any()  # some bound binds
    assert w.min() >= lower and w.max() <= cap and w.sum() == pytest.approx(1.0, abs=1e-8)
    assert kkt_residual(w, -MU + 2 * lam * HEDGED @ w, lower, cap) < 1e-8


def test_max_gross_bounds_the_short_side() -> None:
    r = exact_returns(MU, HEDGED)
    free = optimal_weights(r, "min_variance", Limits(LOOSE, 1.0, True))
    assert free.abs().sum() > 1.5
    w = optimal_weights(r, "min_variance", Limits(LOOSE, 1.0, True), max_gross=1.4)
    assert w.abs().sum() == pytest.approx(1.4, abs=1e-6)
    assert w.sum() == pytest.approx(1.0, abs=1e-8)
    long_only = optimal_weights(r, "min_variance", Limits(LOOSE, 1.0, False))
    at_budget = optimal_weights(r, "min_variance", Limits(LOOSE, 1.0, True), max_gross=1.0)
    np.testing.assert_allclose(at_budget.to_numpy(), long_only.to_numpy(), atol=1e-12)


def test_the_solution_is_deterministic_and_the_input_untouched() -> None:
    r = exact_returns(MU, HEDGED)
    before = r.copy()
    a = optimal_weights(r, "mean_variance", Limits(0.3, 1.0, True))
    b = optimal_weights(r.copy(), "mean_variance", Limits(0.3, 1.0, True))
    assert np.array_equal(a.to_numpy(), b.to_numpy())
    pd.testing.assert_frame_equal(r, before)


def test_fewer_weeks_than_names_still_solves() -> None:
    # A singular sample covariance: skfolio repairs it (its warning is silenced at the call).
    r = exact_returns(MU, SPREAD).iloc[:4]
    w = optimal_weights(r, "min_variance", Limits())
    assert w.sum() == pytest.approx(1.0, abs=1e-6) and w.abs().max() <= 1 / 3 + 1e-8


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda r: r.assign(S1=np.nan), "S1 contain NaN"),
        (lambda r: r.iloc[:1], "at least 2 weeks"),
        (lambda r: r.assign(S2=0.01), "S2 have no variance"),
        (lambda r: r.set_axis(["A", "B", "A", "C", "D"], axis=1), "duplicate tickers: A"),
    ],
    ids=["nan", "one-week", "flat-price", "duplicate"],
)
def test_bad_returns_are_refused(
    change: Callable[[pd.DataFrame], pd.DataFrame], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        optimal_weights(change(exact_returns(MU, SPREAD)), "min_variance", Limits())


def test_bad_parameters_are_refused() -> None:
    r = exact_returns(MU, SPREAD)
    with pytest.raises(ValueError, match="kind must be one of min_variance, mean_variance"):
        optimal_weights(r, "max_sharpe", Limits())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="risk_aversion must be a positive"):
        optimal_weights(r, "mean_variance", Limits(), 0.0)
    with pytest.raises(ValueError, match=r"max_gross 0\.8 is below the net budget 1 "):
        optimal_weights(r, "min_variance", Limits(), max_gross=0.8)
    assert optimal_weights(r.iloc[:, :0], "min_variance", Limits()).empty


class _FailingMeanRisk:
    """Stands in for skfolio's MeanRisk: fails on 104 weeks, else answers weights that sum
    to 0.9 instead of the budget 1."""

    def __init__(self, **kwargs: Any) -> None:
        self.weights_ = np.full(5, 0.18)  # sums to 0.9

    def fit(self, x: np.ndarray) -> _FailingMeanRisk:
        if x.shape[0] == 104:
            raise ConvexOptimizationError("Solver 'CLARABEL' failed")
        return self


def test_solver_failures_raise_optimization_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(optimize, "MeanRisk", _FailingMeanRisk)
    r = exact_returns(MU, SPREAD)
    with pytest.raises(OptimizationError, match="min_variance: solver CLARABEL failed"):
        optimal_weights(r, "min_variance", Limits())
    with pytest.raises(OptimizationError, match=r"break the budget 1 \(sum 0.9\)"):
        optimal_weights(r.iloc[:50], "min_variance", Limits())


# --- minimum CVaR ----------------------------------------------------------------------------


def minimax_returns() -> pd.DataFrame:
    """20 weeks in which A and B both gain 1%, except week 3 (A -10%, B +5%) and week 11
    (A +5%, B -20%). With 20 weeks a tail of 5% is one week, so a portfolio's CVaR 95% is its
    worst loss: max(0.15 wA - 0.05, 0.2 - 0.25 wA) for wA + wB = 1 (the 1% weeks are gains),
    smallest where both are equal: wA = 0.25 / 0.4 = 0.625, a CVaR of 0.04375."""
    r = np.full((20, 2), 0.01)
    r[3] = [-0.10, 0.05]
    r[11] = [0.05, -0.20]
    return pd.DataFrame(r, columns=["A", "B"])


def test_min_cvar_is_the_minimax_portfolio_solved_by_hand() -> None:
    r = minimax_returns()
    w = optimal_weights(r, "min_cvar", Limits(max_weight=LOOSE, allow_short=False))
    assert w.to_numpy() == pytest.approx([0.625, 0.375], abs=1e-7)
    x = r.to_numpy()
    assert cvar(x @ w.to_numpy()) == pytest.approx(0.04375, abs=1e-8)
    # Every other split of the budget has a larger CVaR.
    for a in np.linspace(0.0, 1.0, 41):
        if abs(a - 0.625) > 1e-9:
            assert cvar(x @ np.array([a, 1 - a])) > 0.04375 + 1e-6
    # A cap of 0.5 binds: A at the cap, the loss 0.2 - 0.25 x 0.5 = 7.5% in week 11.
    capped = optimal_weights(r, "min_cvar", Limits(max_weight=0.5, allow_short=False))
    assert capped.to_numpy() == pytest.approx([0.5, 0.5], abs=1e-7)


def exact_cvar_lp(
    x: np.ndarray, lower: float, cap: float, budget: float, level: float = 0.95
) -> tuple[np.ndarray, float]:
    """Rockafellar and Uryasev's linear program, solved by HiGHS' simplex: minimise
    ``v + sum(u) / a`` with ``u >= -x w - v``, ``u >= 0``, ``sum(w) = budget`` and
    ``lower <= w <= cap`` (``a = (1 - level) n``). Returns the weights and the optimum."""
    n, m = x.shape
    a = (1 - level) * n
    cost = np.concatenate([np.zeros(m), [1.0], np.full(n, 1.0 / a)])
    rows = np.hstack([-x, -np.ones((n, 1)), -np.eye(n)])  # -x w - v - u <= 0
    total = np.concatenate([np.ones(m), [0.0], np.zeros(n)])[None, :]
    bounds = [(lower, cap)] * m + [(None, None)] + [(0.0, None)] * n
    out = linprog(cost, rows, np.zeros(n), total, [budget], bounds, method="highs")
    assert out.status == 0, out.message
    return out.x[:m], float(out.fun)


@pytest.mark.parametrize(
    "limits", [Limits(1 / 3, 1.0, False), Limits(1 / 3, 1.0, True), Limits(0.15, 0.6, False)]
)
def test_min_cvar_reaches_the_exact_optimum_of_its_linear_program(limits: Limits) -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_t(4, size=(104, 12)) * 0.03 + 0.002
    returns = pd.DataFrame(x, columns=[f"S{i}" for i in range(12)])
    w = optimal_weights(returns, "min_cvar", limits).to_numpy()
    lower = -limits.max_weight if limits.allow_short else 0.0
    exact_w, optimum = exact_cvar_lp(x, lower, limits.max_weight, limits.gross)
    # The LP's optimum is our historical CVaR of the optimal portfolio.
    assert cvar(x @ exact_w) == pytest.approx(optimum, rel=1e-9)
    assert cvar(x @ w) == pytest.approx(optimum, rel=1e-8)
    np.testing.assert_allclose(w, exact_w, atol=1e-6)
    assert w.sum() == pytest.approx(limits.gross, abs=1e-9)
    assert w.min() >= lower and w.max() <= limits.max_weight


# --- the weekly rule -----------------------------------------------------------------------


def hand_closes(seed: int = 1) -> pd.DataFrame:
    """150 weeks of 5 random-walk closes: C misses weeks 60-61, E lists at week 120."""
    rng = np.random.default_rng(seed)
    steps = rng.normal(0.002, 0.03, size=(len(WEEKS), 5)) * np.array([1, 1.5, 2, 1, 2.5])
    closes = pd.DataFrame(
        100 * np.exp(np.cumsum(steps, axis=0)), index=WEEKS, columns=list("ABCDE")
    )
    closes.iloc[60:62, 2] = np.nan
    closes.iloc[:120, 4] = np.nan
    return closes


def bars(closes: pd.DataFrame, week: pd.Timestamp) -> list[str]:
    """What the engine passes with min_history 1: the tickers with a bar that week."""
    return [str(t) for t, close in closes.loc[week].items() if pd.notna(close)]


def run(rule: BaselineRule, closes: pd.DataFrame, weeks: pd.DatetimeIndex) -> list[dict]:
    return [ask(rule, closes, w, bars(closes, w)) for w in weeks]


def window_of(rule: BaselineRule, closes: pd.DataFrame, week: pd.Timestamp) -> pd.DataFrame:
    names = list("ABCDE")
    return rule.estimation_window(History.cut(closes, week, names), names)


@pytest.mark.parametrize("kind", ["min_variance", "mean_variance", "min_cvar"])
def test_rule_is_point_in_time(kind: optimize.Kind) -> None:
    closes = hand_closes()
    cut = 100
    later = closes.copy()
    later.iloc[cut + 1 :] *= np.random.default_rng(5).uniform(0.5, 1.5, later.iloc[cut + 1 :].shape)
    deleted = closes.iloc[: cut + 1]
    weeks = WEEKS[cut - 20 : cut + 1]
    results = [run(BaselineRule(kind, Limits()), c, weeks) for c in (closes, later, deleted)]
    assert results[0] == results[1] == results[2]  # exactly equal, week by week
    assert run(BaselineRule(kind, Limits()), later, WEEKS[cut + 1 :][:3]) != (
        run(BaselineRule(kind, Limits()), closes, WEEKS[cut + 1 :][:3])
    )


def test_rule_weights_are_the_optimiser_on_the_trailing_window() -> None:
    closes = hand_closes()
    week = WEEKS[110]
    rule = BaselineRule("min_variance", Limits(), window=52)
    got = ask(rule, closes, week, bars(closes, week))  # E, listed at week 120, has no bar yet
    window = (closes / closes.shift(1) - 1).loc[WEEKS[59] : week, list("ABCD")]
    assert len(window) == 52 and window.index[-1] == week
    expected = optimal_weights(window.dropna(), "min_variance", Limits())
    assert len(window.dropna()) == 49  # C's gap removes 3 returns (weeks 60, 61, 62)
    assert got == expected.to_dict()
    assert list(got) == list("ABCD")


def test_rule_holds_only_the_tradable_tickers() -> None:
    closes = hand_closes()
    rule = BaselineRule("mean_variance", Limits(allow_short=False))
    out = ask(rule, closes, WEEKS[130], ["A", "B"])  # what the engine lets trade that week
    assert set(out) == {"A", "B"}
    assert sum(out.values()) == pytest.approx(2 / 3)  # two names under the 1/3 cap


def test_names_with_too_few_returns_are_not_held_then_join() -> None:
    closes = hand_closes()
    rule = BaselineRule("min_variance", Limits(), min_weeks=26)
    young = WEEKS[120 + 25]  # E has 25 returns
    assert ask(rule, closes, young, bars(closes, young))["E"] == 0.0
    assert len(window_of(rule, closes, young)) == 104 - 3  # C's gap only
    grown = WEEKS[120 + 26]
    assert ask(rule, closes, grown, bars(closes, grown))["E"] != 0.0
    sample = window_of(rule, closes, grown)
    assert list(sample.columns) == list("ABCDE") and len(sample) == 26  # complete cases
    assert not rule.notes


def test_too_few_complete_weeks_drop_the_name_with_fewest_returns() -> None:
    closes = hand_closes()
    closes.iloc[80:110, 0] = np.nan  # A: returns only in weeks 111.. of the window
    rule = BaselineRule("min_variance", Limits(), 60, 30)
    week = WEEKS[145]  # window: weeks 86..145
    counts = (closes / closes.shift(1) - 1).loc[WEEKS[86] : week].notna().sum()
    assert counts["A"] == 35 and counts["E"] == 25  # E too young; A alone is enough
    sample = window_of(rule, closes, week)
    assert list(sample.columns) == list("ABCD") and len(sample) == 35
    tight = BaselineRule("min_variance", Limits(), 60, 36)
    assert list(window_of(tight, closes, week).columns) == list("BCD")


def test_no_name_with_enough_returns_means_cash() -> None:
    closes = hand_closes()
    rule = BaselineRule("min_variance", Limits(), 104, 26)
    decision = decide(rule, closes, WEEKS[10], bars(closes, WEEKS[10]))
    assert decision.weights == dict.fromkeys("ABCD", 0.0)
    assert decision.note == "no name with 26 returns: all cash"
    assert rule.notes == [(WEEKS[10], "no name with 26 returns: all cash")]


def test_rule_is_deterministic_and_does_not_mutate_closes() -> None:
    closes = hand_closes()
    before = closes.copy()
    a = run(BaselineRule("mean_variance", Limits()), closes, WEEKS[120:130])
    b = run(BaselineRule("mean_variance", Limits()), closes, WEEKS[120:130])
    assert a == b and sum(len(w) for w in a) == 10 * 5
    pd.testing.assert_frame_equal(closes, before)


@pytest.mark.parametrize(
    ("on_failure", "done"),
    [("cash", "all cash"), ("previous", "kept the previous targets of 5 name(s), rest in cash")],
    ids=["cash", "previous"],
)
@pytest.mark.parametrize("kind", ["min_variance", "min_cvar"])
def test_a_failed_week_falls_back_and_is_noted(
    monkeypatch: pytest.MonkeyPatch, on_failure: optimize.OnFailure, done: str, kind: optimize.Kind
) -> None:
    closes = hand_closes()
    bad = WEEKS[140]
    solve = optimize.optimal_weights

    def flaky(returns: pd.DataFrame, *args: Any, **kwargs: Any) -> pd.Series:
        if returns.index[-1] == bad:
            raise OptimizationError(f"{kind}: solver CLARABEL failed")
        return solve(returns, *args, **kwargs)

    monkeypatch.setattr(optimize, "optimal_weights", flaky)
    rule = BaselineRule(kind, Limits(), on_failure=on_failure)
    before, failed = run(rule, closes, WEEKS[139:141])
    assert failed == (before if on_failure == "previous" else dict.fromkeys("ABCDE", 0.0))
    assert rule.notes == [(bad, f"{kind}: solver CLARABEL failed; {done}")]
    raising = BaselineRule(kind, Limits(), on_failure="raise")
    with pytest.raises(OptimizationError, match="CLARABEL failed"):
        ask(raising, closes, bad, bars(closes, bad))


def test_a_failed_min_cvar_week_is_spent_in_cash_with_a_note_in_decisions_csv(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from simulator.backtest import run_backtest
    from simulator.report import write_run
    from tests.conftest import REPO

    bad = pd.Timestamp("2023-03-10")
    solve = optimize.optimal_weights

    def flaky(returns: pd.DataFrame, *args: Any, **kwargs: Any) -> pd.Series:
        if returns.index[-1] == bad:  # the window of the decision at the close of `bad`
            raise OptimizationError("min_cvar: solver CLARABEL failed")
        return solve(returns, *args, **kwargs)

    monkeypatch.setattr(optimize, "optimal_weights", flaky)
    sets = ["backtest.strategy=min_cvar", "backtest.start=2023-02-03", "backtest.end=2023-04-28"]
    cfg = load_config(REPO / "examples" / "paper12_equal_weight.toml", sets)
    out = write_run(run_backtest(cfg, tmp_path), tmp_path / "run", tearsheet=False)
    decisions = pd.read_csv(out / "decisions.csv", parse_dates=["week"])
    noted = decisions["note"].notna()
    assert decisions.loc[noted, ["week", "note"]].values.tolist() == [
        [bad, "min_cvar: solver CLARABEL failed; all cash"]
    ]
    assert decisions.loc[noted, "ticker"].isna().all()  # a week's note has no ticker
    targets = decisions[~noted]
    assert (targets.loc[targets["week"] == bad, "target"] == 0.0).sum() == 12
    invested = targets[targets["week"] != bad].groupby("week")["target"].sum()
    assert len(invested) == 11 and np.allclose(invested, 1.0, atol=1e-9)


def test_rule_refuses_bad_arguments() -> None:
    closes = hand_closes()
    with pytest.raises(ValueError, match="kind must be one of"):
        BaselineRule("risk_parity", Limits())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="need 2 <= min_weeks <= window"):
        BaselineRule("min_variance", Limits(), window=20, min_weeks=26)
    with pytest.raises(ValueError, match="on_failure must be one of cash, previous, raise"):
        BaselineRule("min_variance", Limits(), on_failure="skip")  # type: ignore[arg-type]
    rule = BaselineRule("min_variance", Limits())
    with pytest.raises(ValueError, match="closes of B must be positive"):
        ask(rule, closes.assign(B=-1.0), WEEKS[130], ["A", "B"])
    with pytest.raises(ValueError, match="unique and ascending"):
        optimize._weekly_returns(closes.iloc[::-1])


# --- real data -----------------------------------------------------------------------------


def test_paper12_weekly_weights_meet_the_limits(paper12: Path, tmp_path: Path) -> None:
    from simulator.engine import run_engine
    from simulator.results import eligibility
    from simulator.session import Window

    sets = [
        "data.source=csv",
        f"data.path={paper12}",
        "data.benchmark=IXIC",
        "data.start=2020-06-01",
        "data.end=2023-06-30",
        "backtest.start=2022-12-30",
        "backtest.end=2023-06-23",
    ]
    cfg = load_config(None, sets)
    weekly = make_weekly(load_daily(cfg.data, 0.0, tmp_path))
    closes = weekly.closes()
    weeks = Window.backtest(weekly, cfg).weeks
    assert len(weeks) == 26
    eligible = eligibility(weekly, weeks, 26)
    for kind in ("min_variance", "mean_variance", "min_cvar"):
        for limits in (Limits(), Limits(0.25, 1.0, False)):
            rule = BaselineRule(kind, limits)
            for week in weeks[:-1]:
                tradable = [t for t in weekly.tickers if eligible.loc[week, t]]
                w = np.array(list(ask(rule, closes, week, tradable).values()))
                assert len(w) == 12
                assert np.abs(w).max() <= limits.max_weight + 1e-8
                assert w.sum() == pytest.approx(1.0, abs=1e-6)
                assert limits.allow_short or w.min() >= 0
            assert not rule.notes
    # And through the engine, long only: every order fills, the weights are held.
    limits = Limits(0.25, 1.0, False)
    rule = BaselineRule("min_variance", limits)
    result = run_engine(
        weekly,
        weeks,
        weeks[:-1],
        rule,
        cash=10_000_000,
        fill="close",
        min_history=26,
        limits=limits,
    )
    assert (result.orders["status"] == "Completed").all()
    decided = result.decisions
    last = decided[decided["week"] == weeks[-2]].set_index("ticker")["target"]
    held = result.weights.loc[weeks[-2]].reindex(last.index)
    np.testing.assert_allclose(held.to_numpy(), last.to_numpy(), atol=1e-3)  # whole shares


def test_baseline_strategy_backtests_and_replays_identically(tmp_path: Path) -> None:
    """``backtest.strategy = "min_variance"`` runs through the engine; a paper account of the
    same config stepped in pieces records exactly its weekly returns."""

    from simulator import accounts, stepping
    from simulator.backtest import run_backtest
    from simulator.config import load_config
    from tests.conftest import REPO

    sets = ["backtest.strategy=min_variance", "backtest.start=2023-03-01"]
    cfg = load_config(REPO / "examples" / "paper12_equal_weight.toml", sets)
    result = run_backtest(cfg, tmp_path)
    assert result.summary.strategy_name == "min_variance"
    # Fully invested with shorts funding longs, every order fills (see the engine's _fund).
    assert (result.orders["status"] == "Completed").all()
    assert result.summary.orders_rejected == 0
    accounts.start(tmp_path, "mv", cfg, source="test").close()
    for weeks in (3, 1, None):
        until = cfg.backtest.end if weeks is None else None
        account, _ = stepping.step(tmp_path, "mv", weeks=weeks, until=until)
        account.close()
    with accounts.open_account(tmp_path, "mv") as account:
        equity = account.journal.weeks().set_index("week")["equity"]
    assert equity.pct_change().iloc[1:].tolist() == result.returns["strategy"].tolist()
    assert result.summary.end == equity.index[-1].date()


# --- baselines beside the strategy ([report] baselines) ------------------------------------

SHORT_RUN = ["backtest.start=2023-01-06", "backtest.end=2023-06-23"]


def backtest_of(tmp_path: Path, *sets: str) -> Any:
    from simulator.backtest import run_backtest
    from tests.conftest import REPO

    cfg = load_config(REPO / "examples" / "paper12_equal_weight.toml", [*SHORT_RUN, *sets])
    return run_backtest(cfg, tmp_path)


@pytest.mark.parametrize("profile", ["", "profile.name=conservative"])
def test_baseline_columns_are_the_baselines_own_runs(tmp_path: Path, profile: str) -> None:
    """A baseline column holds exactly the returns of a run with that optimiser as the
    strategy: the same engine, universe, limits and investor profile."""
    extra = [profile] if profile else []
    kinds = ["min_variance", "mean_variance", "min_cvar"]
    beside = backtest_of(tmp_path, f"report.baselines={','.join(kinds)}", *extra)
    assert beside.returns.columns.tolist() == ["strategy", "equal_weight", "benchmark", *kinds]
    for kind in kinds:
        alone = backtest_of(tmp_path, f"backtest.strategy={kind}", *extra)
        assert beside.returns[kind].tolist() == alone.returns["strategy"].tolist()
        assert beside.summary.series[kind] == alone.summary.series["strategy"]
        assert beside.summary.baselines[kind].model_dump() == {
            "orders_filled": alone.summary.orders_filled,
            "orders_rejected": alone.summary.orders_rejected,
            "final_value": alone.summary.final_value,
        }
        # Whole-share rounding of shorts no longer costs a buy to a margin reject.
        assert alone.summary.orders_rejected == 0
    # The strategy and its statistics are those of a run without baselines.
    plain = backtest_of(tmp_path, *extra)
    assert beside.returns[plain.returns.columns].equals(plain.returns)
    assert set(beside.summary.confidence) == {"strategy", *(f"over_{k}" for k in kinds)}
    assert beside.summary.risk is not None
    assert list(beside.summary.risk.series) == ["strategy", "equal_weight", "benchmark", *kinds]
    if profile:  # conservative: no shorts, cap 0.15 also for the baselines
        alone = backtest_of(tmp_path, "backtest.strategy=min_variance", *extra)
        held = alone.weights[alone.weights["date"] < alone.weights["date"].max()]
        assert held["weight"].between(0.0, 0.15).all()  # after each decision's close fills


def test_baselines_reach_returns_csv_table2_and_the_tear_sheet(tmp_path: Path) -> None:
    from simulator.metrics import summarize
    from simulator.report import table2, write_run, write_tearsheet

    result = backtest_of(
        tmp_path, "backtest.strategy=min_variance", "report.baselines=mean_variance"
    )
    run_dir = write_run(result, tmp_path / "run")
    returns = pd.read_csv(run_dir / "returns.csv", index_col="date", parse_dates=True)
    assert returns.columns.tolist() == [
        "strategy",
        "equal_weight",
        "benchmark",
        "mean_variance",
    ]
    table = table2(result.summary)
    assert table.columns.tolist() == ["IXIC", "1/N", "mean_variance", "min_variance"]
    rf = result.risk_free
    assert table.at["Volatility (%)", "mean_variance"] == (
        summarize(returns["mean_variance"], rf)["volatility"] * 100
    )
    page = write_tearsheet(run_dir).read_text(encoding="utf-8")
    table_html = page[page.index('<table id="table2">') :].split("</table>")[0]
    heads = [h.split("</th>")[0] for h in table_html.split("<th>")[1:]]
    assert heads == ["Metric", "IXIC", "1/N", "mean_variance", "min_variance"]
    assert "Returns and risk: IXIC, 1/N, mean_variance and min_variance" in page
    assert "min_variance minus mean_variance (weekly difference of returns)" in page


def test_a_paper_accounts_report_has_the_same_baseline_columns(tmp_path: Path) -> None:
    from simulator import account_report, accounts, stepping
    from simulator.backtest import run_backtest
    from tests.conftest import REPO

    sets = [*SHORT_RUN, "report.baselines=min_variance", "profile.name=moderate"]
    cfg = load_config(REPO / "examples" / "paper12_equal_weight.toml", sets)
    result = run_backtest(cfg, tmp_path)
    accounts.start(tmp_path, "acct", cfg, source="test").close()
    stepping.step(tmp_path, "acct", weeks=None, until=cfg.backtest.end)[0].close()
    with accounts.open_account(tmp_path, "acct") as account:
        report = account_report.account_result(account, workspace=tmp_path)
    assert report.returns.equals(result.returns)
    assert report.summary.baselines == result.summary.baselines
    # The same weekly VaR and CVaR of every series in the account's report.
    assert report.summary.risk is not None
    assert report.summary.risk == result.summary.risk


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["report.baselines=min_variance,min_variance"], "names a baseline twice"),
        (
            ["report.baselines=max_sharpe"],
            "Input should be 'min_variance', 'mean_variance' or 'min_cvar'",
        ),
        (
            ["backtest.strategy=mean_variance", "report.baselines=mean_variance"],
            "report.baselines lists mean_variance, the strategy itself",
        ),
    ],
)
def test_bad_baseline_lists_are_refused(sets: list[str], message: str) -> None:
    from simulator.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        load_config(None, sets)


def test_baselines_read_from_a_comma_list_or_nothing() -> None:
    assert load_config(None, ["report.baselines=mean_variance, min_variance"]).report.baselines == (
        "mean_variance",
        "min_variance",
    )
    assert load_config(None, ["report.baselines="]).report.baselines == ()
