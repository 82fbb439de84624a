"""Conventional baselines: minimum-variance, mean-variance and minimum-CVaR portfolios (skfolio
``MeanRisk``).

All three are re-estimated each decision week on a trailing window of weekly returns and obey the
profile's :class:`~strategies.sizing.Limits`, so they can sit beside the index, 1/N and the
LSTM-signal strategy on the same engine, calendar and costs.

Formulation
-----------
With ``n`` names, ``cap = limits.max_weight`` and the weekly sample mean ``mu`` and sample
covariance ``S`` (``ddof=1``) of the window:

- ``min_variance``: minimise ``w' S w``.
- ``mean_variance``: maximise ``mu' w - risk_aversion * w' S w`` (skfolio's utility; the
  same on weekly and annual figures, since both terms scale by 52).
- ``min_cvar``: minimise the weekly historical CVaR at 95% (:data:`CVAR_LEVEL`) of the
  window's portfolio returns ``X w``, the mean loss of its worst 5% of weeks, the boundary
  week counted in part: :func:`strategies.risk.cvar`, the figure the reports and the
  profile's CVaR limit use. skfolio solves it as Rockafellar and Uryasev's linear program
  (minimise ``v + sum(max(-X w - v, 0)) / (0.05 n)`` over ``w`` and ``v``). A linear
  program's optimum need not be unique; the interior-point solver then returns a point
  inside the set of optimal weights (the same one each time), not a vertex.

subject to

- budget: ``sum(w) == b`` with ``b = min(limits.gross, n * cap)`` (:func:`net_budget`). When
  the cap makes ``limits.gross`` unreachable (2 names, cap 1/3, gross 1) the rest stays in
  cash, as in the other rules: every name then sits at the cap and ``b = n * cap``.
- long only (``allow_short=False``): ``0 <= w_i <= cap``; then ``sum(|w|) == b``, the
  profile's gross exposure.
- shorts allowed: ``-cap <= w_i <= cap`` and ``sum(w) == b``: the net exposure is the
  profile's gross, the textbook fully invested portfolio in which shorts finance extra longs.
  ``sum(|w|)`` may then exceed ``limits.gross`` (up to ``n * cap``); ``max_gross`` bounds it
  (``sum(|w|) <= max_gross``, through skfolio's ``max_long`` / ``max_short``).

Why not ``sum(|w|) == limits.gross`` with shorts, as the LSTM-signal rule does: that set is
not convex, and its convex relaxation ``sum(|w|) <= gross`` lets the minimum-variance
portfolio shrink to all cash. Fixing the net exposure is the convex formulation that keeps
both baselines invested; it coincides with the gross one when shorts are off.

The solver is Clarabel (skfolio's default interior-point solver), which is deterministic: on
one machine the same returns give the same weights, bit for bit. A solve on 12 names and 104
weeks takes ~8-10 ms (2 shared CPU cores), most of it skfolio and cvxpy building the problem.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Literal, get_args

import numpy as np
import pandas as pd
from skfolio.exceptions import OptimizationError as _SkfolioOptimizationError
from skfolio.measures import RiskMeasure
from skfolio.optimization import MeanRisk, ObjectiveFunction

from strategies.rule import Decision, History, State
from strategies.sizing import Limits

Kind = Literal["min_variance", "mean_variance", "min_cvar"]
KINDS: tuple[str, ...] = get_args(Kind)
#: What :class:`BaselineRule` does in a week whose optimisation fails.
OnFailure = Literal["cash", "previous", "raise"]
ON_FAILURE: tuple[str, ...] = get_args(OnFailure)

SOLVER = "CLARABEL"
#: Clarabel's duality-gap tolerances (default 1e-8): weights near a flat optimum move like the
#: square root of the gap. 1e-10 costs no time on 12 names; 316 windows of paper12 all
#: solved to full accuracy with it (1e-11 left some "inaccurate").
SOLVER_PARAMS: Mapping[str, float] = {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10}
#: Largest constraint violation accepted from the solver (weights are fractions of value).
_TOL = 1e-6
#: Smallest weekly return variance skfolio's covariance estimators accept.
MIN_VARIANCE = 1e-15
#: Budgets this close to ``n * cap`` leave one point, every name at the cap: no solve needed.
_FULL = 1e-9
#: The confidence level of the ``min_cvar`` baseline's CVaR.
CVAR_LEVEL = 0.95
#: ``min_cvar``'s objective scale. Weekly CVaRs are ~1e-2: times 1e4, Clarabel's default
#: tolerances reach within 6e-8 (relative) of the exact optimum (HiGHS' simplex on the same
#: linear program) on 203 windows of 104 weeks and 12-100 names, long only and with shorts,
#: with and without a gross bound. Measured: at skfolio's default 1 or at 10, windows of 100
#: names with shorts failed; at 100, one came out 8.6e-5 above the optimum; the tightened gaps
#: of :data:`SOLVER_PARAMS` only made some solves slower.
CVAR_SCALE = 1e4


class OptimizationError(RuntimeError):
    """The optimiser found no usable portfolio (solver failure or constraints violated)."""


def net_budget(n: int, limits: Limits) -> float:
    """The net exposure ``sum(w)`` of a baseline over ``n`` names: ``min(gross, n * cap)``.

    >>> net_budget(12, Limits())
    1.0
    >>> round(net_budget(2, Limits()), 6)  # two names capped at 1/3: one third stays in cash
    0.666667
    """
    return min(limits.gross, n * limits.max_weight)


def optimal_weights(
    returns: pd.DataFrame,
    kind: Kind,
    limits: Limits,
    risk_aversion: float = 1.0,
    *,
    max_gross: float | None = None,
) -> pd.Series:
    """Target weights of the minimum-variance, mean-variance or minimum-CVaR portfolio under
    ``limits``.

    See the module docstring for the formulation.

    Parameters
    ----------
    returns
        Weekly returns (fractions), shape ``(n_weeks, n_tickers)``: the estimation window,
        oldest first, at least 2 rows, no NaN. The caller chooses the rows; with missing
        data, keep the weeks in which every chosen ticker has a return (what
        :class:`BaselineRule` does) or drop the tickers that lack them.
    kind
        ``"min_variance"``, ``"mean_variance"`` or ``"min_cvar"``.
    limits
        Cap, gross exposure (the net budget here) and shorts on/off.
    risk_aversion
        ``mean_variance`` only: the weight of the variance in ``mu' w - risk_aversion *
        w' S w``, > 0. The default 1.0 is skfolio's (``gamma = 2`` in ``mu - gamma/2 s^2``).
    max_gross
        With shorts, a bound on ``sum(|w|)`` (at least the net budget); None: only the caps
        bound it. Ignored when shorts are off (``sum(|w|)`` is the budget).

    Returns
    -------
    pd.Series
        Weight per ticker (fraction of portfolio value), indexed like ``returns.columns``.
        Empty for no ticker; every name at ``budget / n`` when that is the only feasible
        point (one name, or a cap that binds everywhere), without a solve.

    Notes
    -----
    The estimates are skfolio's ``EmpiricalPrior``: sample mean and sample covariance
    (``ddof=1``), no shrinkage. A singular covariance (fewer weeks than names, identical
    series) is replaced by skfolio with the nearest positive definite one (eigenvalues
    clipped). The variance objectives are scaled by ``10 / mean(variance)`` and Clarabel's
    gap tolerances tightened (:data:`SOLVER_PARAMS`) so that the weights come within ~1e-6
    of the exact solution (~1e-7 typically); neither changes the solution itself.
    ``min_cvar`` uses the returns themselves (no estimate), its objective scaled by
    :data:`CVAR_SCALE` with Clarabel's default tolerances.

    Raises
    ------
    ValueError
        Bad input: unknown ``kind``, NaN or infinite returns, fewer than 2 rows, duplicate
        tickers, a ticker whose returns have no variance (< 1e-15, skfolio's floor), a
        non-positive ``risk_aversion``, ``max_gross`` below the budget.
    OptimizationError
        The solver failed or its solution breaks a constraint by more than 1e-6. The caller
        decides what to hold instead (see :class:`BaselineRule`, ``on_failure``).

    Examples
    --------
    Two uncorrelated names, B twice as volatile as A: the minimum-variance weights are
    proportional to the inverse variances, 0.8 and 0.2.

    >>> r = pd.DataFrame({"A": [0.01, -0.01, 0.01, -0.01], "B": [0.02, 0.02, -0.02, -0.02]})
    >>> optimal_weights(r, "min_variance", Limits(max_weight=1.0)).round(6).to_dict()
    {'A': 0.8, 'B': 0.2}
    """
    x = _check_returns(returns)
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}; got {kind!r}")
    if not (math.isfinite(risk_aversion) and risk_aversion > 0):
        raise ValueError(f"risk_aversion must be a positive number, got {risk_aversion}")
    n = x.shape[1]
    budget = net_budget(n, limits)
    if max_gross is not None and not max_gross >= budget - _FULL:
        raise ValueError(
            f"max_gross {max_gross} is below the net budget {budget:g} (min(gross, n * cap)); "
            "raise max_gross or lower the gross exposure"
        )
    cap = limits.max_weight
    if n == 0:
        return pd.Series(dtype=float, index=returns.columns)
    if n * cap - budget <= _FULL:  # the only feasible point (n == 1 included)
        w = np.full(n, budget / n)
    else:
        w = _solve(x, kind, limits, budget, risk_aversion, max_gross)
    return pd.Series(w, index=returns.columns, dtype=float)


def _check_returns(returns: pd.DataFrame) -> np.ndarray:
    if not isinstance(returns, pd.DataFrame):
        raise ValueError(
            f"returns must be a DataFrame (weeks x tickers), got {type(returns).__name__}"
        )
    if returns.columns.has_duplicates:
        dupes = sorted({str(c) for c in returns.columns[returns.columns.duplicated()]})
        raise ValueError(f"returns has duplicate tickers: {', '.join(dupes)}")
    if returns.shape[1] and len(returns) < 2:
        raise ValueError(f"returns has {len(returns)} row(s); a covariance needs at least 2 weeks")
    x = returns.to_numpy(dtype=float)
    if not np.isfinite(x).all():
        bad = [str(c) for c in returns.columns[~np.isfinite(x).all(axis=0)]]
        raise ValueError(
            f"returns of {', '.join(bad)} contain NaN or inf; drop those weeks or tickers first"
        )
    if x.shape[1]:
        flat = [str(c) for c in returns.columns[~_moves(x)]]
        if flat:
            raise ValueError(
                f"returns of {', '.join(flat)} have no variance over the window (a price "
                "that never moved); drop those tickers"
            )
    return x


def _moves(x: np.ndarray) -> np.ndarray:
    """Which columns of ``x`` have a sample variance skfolio accepts (>= 1e-15)."""
    return np.asarray(np.var(x, axis=0, ddof=1) >= MIN_VARIANCE)


def _solve(
    x: np.ndarray,
    kind: Kind,
    limits: Limits,
    budget: float,
    risk_aversion: float,
    max_gross: float | None,
) -> np.ndarray:
    """skfolio ``MeanRisk`` on ``x`` (shape ``(n_weeks, n)``), solution checked."""
    cap = limits.max_weight
    lower = -cap if limits.allow_short else 0.0
    max_long = max_short = None
    if limits.allow_short and max_gross is not None:
        if max_gross - budget <= _FULL:
            lower = 0.0  # no room for shorts: the long-only problem
        else:  # long - short == budget and long + short <= max_gross
            max_long, max_short = (max_gross + budget) / 2, (max_gross - budget) / 2
    # Weekly variances are ~1e-3: dividing the objective by a tenth of their mean lets
    # Clarabel get the weights to ~1e-7 instead of ~1e-5 (measured on 5-12 names; at 1 x
    # or 100 x, or with tighter gaps, the errors grow or "inaccurate" stops appear).
    scale = float(np.mean(np.var(x, axis=0, ddof=1))) / 10
    cvar = kind == "min_cvar"
    model = MeanRisk(
        objective_function=(
            ObjectiveFunction.MAXIMIZE_UTILITY
            if kind == "mean_variance"
            else ObjectiveFunction.MINIMIZE_RISK
        ),
        risk_measure=RiskMeasure.CVAR if cvar else RiskMeasure.VARIANCE,
        cvar_beta=CVAR_LEVEL,
        risk_aversion=risk_aversion,
        min_weights=lower,
        max_weights=cap,
        budget=budget,
        max_long=max_long,
        max_short=max_short,
        solver=SOLVER,
        solver_params={} if cvar else dict(SOLVER_PARAMS),
        scale_objective=CVAR_SCALE if cvar else 1.0 / scale if scale > 0 else None,
    )
    try:
        with warnings.catch_warnings():
            # skfolio warns "Solution may be inaccurate" when Clarabel stops at reduced
            # accuracy; such weights are checked against every constraint below instead.
            warnings.filterwarnings(
                "ignore", message="Solution may be inaccurate", category=UserWarning
            )
            # A singular sample covariance (fewer weeks than names, identical series) is
            # expected here; skfolio clips its eigenvalues to the nearest positive definite
            # matrix and says so each time.
            warnings.filterwarnings(
                "ignore",
                message="The covariance matrix is not positive definite",
                category=UserWarning,
            )
            model.fit(x)
    except _SkfolioOptimizationError as err:
        raise OptimizationError(f"{kind}: solver {SOLVER} failed: {err}") from err
    w = np.asarray(model.weights_, dtype=float)
    broken = _violations(w, lower, cap, budget, max_gross if max_long is not None else None)
    if broken:
        raise OptimizationError(f"{kind}: solver {SOLVER} returned weights that break {broken}")
    return np.clip(w, lower, cap) + 0.0  # solver noise (<= 1e-6) out of bounds; no -0.0


def _violations(
    w: np.ndarray, lower: float, cap: float, budget: float, max_gross: float | None
) -> str:
    """The constraints ``w`` breaks by more than :data:`_TOL` (empty if none)."""
    if not np.isfinite(w).all():
        return "finiteness (NaN weights)"
    broken = []
    if (w < lower - _TOL).any() or (w > cap + _TOL).any():
        broken.append(f"the bounds [{lower:g}, {cap:g}] (min {w.min():g}, max {w.max():g})")
    if abs(w.sum() - budget) > _TOL:
        broken.append(f"the budget {budget:g} (sum {w.sum():g})")
    if max_gross is not None and np.abs(w).sum() > max_gross + _TOL:
        broken.append(f"max_gross {max_gross:g} (sum |w| {np.abs(w).sum():g})")
    return "; ".join(broken)


class BaselineRule:
    """The weekly decision of a ``min_variance``, ``mean_variance`` or ``min_cvar`` baseline (a
    ``DecisionRule``).

    At decision week t the candidates are the tickers the engine lets trade
    (``history.tradable``: a bar at t and enough history). The estimation window is the
    ``window`` weekly returns ending at t (``close[k] / close[k-1] - 1`` over consecutive
    calendar weeks of ``history.closes``, which the engine cut at t, so later prices never move
    a decision).

    Missing data: a week's return is missing when the ticker has no bar that week or the
    week before (nothing is filled in). Candidates with fewer than ``min_weeks`` returns in
    the window get weight 0. The others are estimated on the weeks in which all of them have
    a return (complete cases: a positive semi-definite covariance, every name on the same
    weeks); a late listing with 30 returns thus shortens the window of every name to 30
    weeks. If fewer than ``min_weeks`` such weeks remain, the name with the fewest returns
    (ties: the last of them in ``tickers`` order) is dropped and the rest re-estimated. A
    name whose price never moved over those weeks (variance < 1e-15) is not held either.

    A week that ends in cash because no name had enough returns, or whose optimisation failed
    (:class:`OptimizationError`), gets a note in its :class:`~strategies.rule.Decision` (and in
    :attr:`notes`, ``(week, what happened)``) saying what was held instead:

    - ``on_failure="cash"`` (default, recommended): weight 0 everywhere for that week. The
      decision depends on the week's data only, so a replay cut into pieces gives the
      decisions of one run.
    - ``"previous"``: this rule's previous targets on the candidates still tradable (others
      go to cash; all limits still hold). Depends on the rule's history: a resumed replay
      can differ from one run in a failure week.
    - ``"raise"``: the :class:`OptimizationError` propagates.

    Parameters
    ----------
    kind
        ``"min_variance"``, ``"mean_variance"`` or ``"min_cvar"`` (see
        :func:`optimal_weights`).
    limits
        The profile's cap, gross exposure and shorts on/off.
    window
        Weeks of returns in the estimation window (default 104, two years).
    min_weeks
        Returns a ticker needs in the window to be held (default 26), ``2 <= min_weeks <=
        window``.
    risk_aversion, max_gross
        Passed to :func:`optimal_weights`.
    on_failure
        What to hold in a week whose optimisation fails (above).
    """

    def __init__(
        self,
        kind: Kind,
        limits: Limits,
        window: int = 104,
        min_weeks: int = 26,
        *,
        risk_aversion: float = 1.0,
        max_gross: float | None = None,
        on_failure: OnFailure = "cash",
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}; got {kind!r}")
        if on_failure not in ON_FAILURE:
            raise ValueError(
                f"on_failure must be one of {', '.join(ON_FAILURE)}; got {on_failure!r}"
            )
        if not 2 <= min_weeks <= window:
            raise ValueError(
                f"need 2 <= min_weeks <= window, got min_weeks={min_weeks}, window={window}"
            )
        if not (math.isfinite(risk_aversion) and risk_aversion > 0):
            raise ValueError(f"risk_aversion must be a positive number, got {risk_aversion}")
        self.kind: Kind = kind
        self.name: str = kind
        self.limits = limits
        self.window = window
        self.min_weeks = min_weeks
        self.risk_aversion = risk_aversion
        self.max_gross = max_gross
        self.on_failure: OnFailure = on_failure
        self._previous: dict[str, float] = {}
        self.notes: list[tuple[pd.Timestamp, str]] = []

    def decide(self, week: pd.Timestamp, history: History, state: State) -> Decision:
        names = list(history.tradable)
        weights = dict.fromkeys(names, 0.0)
        sample = self.estimation_window(history, names)
        note = ""
        if sample.shape[1] == 0:
            if names:
                note = f"no name with {self.min_weeks} returns: all cash"
        else:
            try:
                solved = optimal_weights(
                    sample,
                    self.kind,
                    self.limits,
                    self.risk_aversion,
                    max_gross=self.max_gross,
                )
                weights.update({str(t): float(w) for t, w in solved.items()})
            except OptimizationError as err:
                if self.on_failure == "raise":
                    raise
                if self.on_failure == "previous":
                    kept = {t: w for t, w in self._previous.items() if t in weights}
                    weights.update(kept)
                    done = f"kept the previous targets of {len(kept)} name(s), rest in cash"
                else:
                    done = "all cash"
                note = f"{err}; {done}"
        if note:
            self.notes.append((week, note))
        self._previous = weights
        return Decision(weights, note=note)

    def estimation_window(self, history: History, names: list[str]) -> pd.DataFrame:
        """The returns :meth:`decide` optimises over candidates ``names`` at the week of
        ``history``.

        Returns
        -------
        pd.DataFrame
            Shape ``(n_weeks, n_kept)``, no NaN: the complete-case weeks of the trailing
            window (oldest first) for the names that pass the missing-data policy (see the
            class docstring). No column when none does.
        """
        known = [t for t in names if t in history.closes.columns]
        # window + 1 closes give the window's returns; the first row's return is undefined.
        block = _weekly_returns(history.closes.iloc[-(self.window + 1) :][known]).iloc[1:]
        counts = block.notna().sum()
        kept = [t for t in known if counts[t] >= self.min_weeks]
        while kept:
            complete = block[kept].dropna()
            if len(complete) >= self.min_weeks:
                return complete.loc[:, _moves(complete.to_numpy())]
            fewest = min(counts[kept])
            kept.remove([t for t in kept if counts[t] == fewest][-1])
        return block[[]].iloc[:0]


def _weekly_returns(closes: pd.DataFrame) -> pd.DataFrame:
    """``close[k] / close[k-1] - 1`` per ticker; NaN unless both weeks have a close."""
    if not isinstance(closes, pd.DataFrame):
        raise ValueError(f"closes must be a DataFrame (weeks x tickers), got {type(closes)}")
    if not isinstance(closes.index, pd.DatetimeIndex):
        raise ValueError("closes must be indexed by week stamps (a DatetimeIndex)")
    if not closes.index.is_monotonic_increasing or closes.index.has_duplicates:
        raise ValueError("closes' week stamps must be unique and ascending; sort_index() it")
    if closes.columns.has_duplicates:
        raise ValueError("closes has duplicate tickers")
    values = closes.to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        wrong = ~np.isnan(values) & ~(np.isfinite(values) & (values > 0))
    if wrong.any():
        bad = ", ".join(str(c) for c in closes.columns[wrong.any(axis=0)])
        raise ValueError(f"closes of {bad} must be positive and finite where present")
    out = np.full_like(values, np.nan)
    out[1:] = values[1:] / values[:-1] - 1.0
    return pd.DataFrame(out, index=closes.index.copy(), columns=closes.columns.copy())
