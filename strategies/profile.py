"""Investor profiles (seed 000): limits that shape any strategy's weekly targets.

A :class:`Profile` fixes the sizing limits (single-stock cap, gross exposure, shorts), the
tickers never to hold, an optional volatility target and an optional drawdown stop. The
limits go into the strategy's own sizing rule (:mod:`strategies.sizing`); :class:`ProfileGuard`
wraps the strategy's decision and enforces the rest, recording every week where a limit bound:

- ``excluded``: an excluded ticker that could have traded is left out before sizing;
- ``name_vol``: a ticker whose own volatility over the trailing ``vol_window`` weeks
  (annualised weekly returns up to t, :func:`name_volatility`) is above ``max_name_vol``, or
  cannot be measured (fewer than ``min(vol_window, MIN_NAME_WEEKS)`` returns), is left out
  before sizing: a conservative or moderate investor never holds a name rated high risk by
  its own record, however the portfolio as a whole is scaled;
- ``cap``: the sizing rule capped a weight at ``max_weight`` (read from its output; the cap
  itself is applied inside the sizing rule);
- ``vol_target``: the target portfolio's volatility over the trailing ``vol_window`` weeks
  (ex ante: the weekly returns the stocks had, at today's target weights, annualised with
  52 weeks) is above ``vol_target``; every weight is scaled down by ``vol_target / vol``, the
  rest stays in cash;
- ``cvar_limit``: the target portfolio's weekly historical CVaR at 95% over the trailing
  ``cvar_window`` weeks (ex ante, the same weekly returns at today's weights;
  :func:`strategies.risk.portfolio_cvar`) is above ``max_cvar_95``; every weight is scaled
  down by ``max_cvar_95 / cvar``, exactly as for the volatility target. The historical CVaR
  scales with the weights (``CVaR(s w) = s CVaR(w)`` for ``s > 0``), so the scaled portfolio's
  CVaR is the limit; with both limits the weights end up scaled by ``min(1, vol_target / vol,
  max_cvar_95 / cvar)`` (the volatility target is applied first);
- ``drawdown_stop``: the account's equity fell ``max_drawdown`` or more below its peak since
  trading last (re)started; the strategy goes to cash until the next retrain (the first week a
  new model decides), or ``resume_after`` weeks when no retrain comes.

Everything the guard reads at week t is known at the close of t: the history the engine cut
at t and the equity up to t (``observe`` is called by the engine before each decision).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from strategies.risk import ex_ante_returns, portfolio_cvar
from strategies.rule import Decision, DecisionRule, History, State, as_decision, rule_inputs
from strategies.sizing import Limits

BOUND_COLUMNS = ["week", "reason", "ticker", "detail"]
REASONS = ("excluded", "name_vol", "cap", "vol_target", "cvar_limit", "drawdown_stop")
#: Weekly returns a ticker needs in the trailing window for its volatility to be measured.
MIN_NAME_WEEKS = 8


@dataclass(frozen=True)
class Profile:
    """An investor's limits (see the module docstring).

    Attributes
    ----------
    name
        ``conservative``, ``moderate``, ``aggressive`` (the presets) or ``custom``.
    limits
        Single-stock cap, gross exposure and shorts, used by the sizing rule.
    horizon_weeks
        The investor's horizon; the trailing window of ``recommend``'s risk figures.
    vol_target
        Annualised volatility above which exposure is scaled down (None: off).
    max_drawdown
        Drawdown (a positive fraction, 0.2 = 20%) that sends the strategy to cash (None: off).
    exclude
        Tickers never held.
    max_name_vol
        Annualised volatility of a ticker's own weekly returns over the trailing
        ``vol_window`` weeks above which it is not held that week (None: off).
    max_cvar_95
        Weekly historical CVaR at 95% (a positive loss fraction, 0.03 = 3% a week) of the
        target portfolio over the trailing ``cvar_window`` weeks above which exposure is
        scaled down (None: off).
    vol_window, cvar_window
        Trailing weeks of returns of the volatility measures (26) and of the CVaR limit (52:
        a 95% tail of 2.6 weeks).
    """

    name: str = "custom"
    limits: Limits = field(default_factory=Limits)
    horizon_weeks: int = 52
    vol_target: float | None = None
    max_drawdown: float | None = None
    exclude: frozenset[str] = frozenset()
    vol_window: int = 26
    resume_after: int = 13
    max_name_vol: float | None = None
    max_cvar_95: float | None = None
    cvar_window: int = 52

    def __post_init__(self) -> None:
        if self.vol_target is not None and not 0 < self.vol_target <= 2:
            raise ValueError(f"vol_target must be in (0, 2], got {self.vol_target}")
        if self.max_name_vol is not None and not 0 < self.max_name_vol <= 5:
            raise ValueError(f"max_name_vol must be in (0, 5], got {self.max_name_vol}")
        if self.max_drawdown is not None and not 0 < self.max_drawdown < 1:
            raise ValueError(f"max_drawdown must be in (0, 1), got {self.max_drawdown}")
        if self.max_cvar_95 is not None and not 0 < self.max_cvar_95 <= 1:
            raise ValueError(f"max_cvar_95 must be in (0, 1], got {self.max_cvar_95}")
        if self.vol_window < 4 or self.cvar_window < 4:
            raise ValueError("vol_window >= 4 and cvar_window >= 4")
        if self.resume_after < 1 or self.horizon_weeks < 1:
            raise ValueError("resume_after >= 1 and horizon_weeks >= 1")


#: The built-in profiles. ``aggressive`` is the paper's rules. The per-name ceilings: 35% is
#: the analytics' "high risk" volatility (``simulator.analytics.HIGH_VOLATILITY``), so a
#: conservative investor holds no name rated high risk by its volatility; a moderate one
#: leaves out the names more volatile than 50% (TSLA and SHOP throughout 2022-23 on paper12).
PRESETS: dict[str, Profile] = {
    "conservative": Profile(
        "conservative",
        Limits(0.15, 0.6, False),
        horizon_weeks=156,
        vol_target=0.10,
        max_name_vol=0.35,
    ),
    "moderate": Profile(
        "moderate",
        Limits(0.25, 1.0, False),
        horizon_weeks=104,
        vol_target=0.15,
        max_name_vol=0.50,
    ),
    "aggressive": Profile("aggressive", Limits(1 / 3, 1.0, True), horizon_weeks=52),
}


def preset(name: str, **changes: object) -> Profile:
    """A preset with some fields changed (``max_weight``, ``gross`` and ``allow_short`` change
    its limits)."""
    base = PRESETS[name]
    limit_keys = {"max_weight", "gross", "allow_short"}
    limits = replace(base.limits, **{k: v for k, v in changes.items() if k in limit_keys})  # type: ignore[arg-type]
    rest = {k: v for k, v in changes.items() if k not in limit_keys}
    return replace(base, limits=limits, **rest)  # type: ignore[arg-type]


def portfolio_volatility(closes: pd.DataFrame, weights: Mapping[str, float], window: int) -> float:
    """Annualised volatility the ``weights`` would have had over the last ``window`` weekly
    returns of ``closes`` (rows up to the decision week; a missing return counts as 0;
    :func:`strategies.risk.ex_ante_returns`)."""
    if not any(weights.values()):
        return 0.0
    path = ex_ante_returns(closes, weights, window).to_numpy()
    if len(path) < 2:
        return 0.0
    return float(np.std(path, ddof=1) * math.sqrt(52))


def name_volatility(closes: pd.DataFrame, names: Collection[str], window: int) -> dict[str, float]:
    """Each ticker's annualised volatility over the last ``window`` weekly returns of
    ``closes`` (rows up to the decision week; returns across a missing close are skipped),
    NaN with fewer than ``min(window, MIN_NAME_WEEKS)`` returns.

    >>> closes = pd.DataFrame({"A": [100.0, 110.0, 99.0] * 4})
    >>> round(name_volatility(closes, ["A"], 26)["A"], 4)
    0.6459
    """
    returns = closes[list(names)].pct_change(fill_method=None).iloc[1:].tail(window)
    least = min(window, MIN_NAME_WEEKS)
    out = {}
    for name in names:
        r = returns[name].dropna().to_numpy(dtype=float)
        vol = float(np.std(r, ddof=1) * math.sqrt(52)) if len(r) >= least else math.nan
        out[name] = vol
    return out


class ProfileGuard:
    """The profile's wrapper around a decision rule (itself a ``DecisionRule``; see the module
    docstring).

    Parameters
    ----------
    inner
        The strategy's rule, already sizing with ``profile.limits``.
    resets
        Weeks on which a new model starts deciding (a drawdown stop ends there); None when the
        strategy never retrains (the stop then ends after ``profile.resume_after`` weeks).
    """

    def __init__(
        self,
        inner: DecisionRule,
        profile: Profile,
        resets: Collection[pd.Timestamp] | None = None,
    ) -> None:
        self.inner = inner
        self.name: str = inner.name
        self.profile = profile
        self.resets = frozenset(resets) if resets is not None else None
        self.rows: list[tuple[pd.Timestamp, str, str, str]] = []
        self._peak = -math.inf
        self._stopped_at: int | None = None  # index of the observed week the stop began
        self._seen = 0
        self._stop_week: pd.Timestamp | None = None

    def observe(self, week: pd.Timestamp, value: float) -> None:
        """The account's equity at the close of ``week`` (called for every week, in order)."""
        i = self._seen
        self._seen += 1
        stop = self.profile.max_drawdown
        if stop is None:
            return
        if self._stopped_at is not None:
            ends = (
                week in self.resets
                if self.resets is not None
                else i - self._stopped_at >= self.profile.resume_after
            )
            if not ends:
                return
            self._stopped_at = None
            self._peak = value
        self._peak = max(self._peak, value)
        if value <= self._peak * (1.0 - stop):
            self._stopped_at = i
            detail = f"equity {value:.2f} is {1 - value / self._peak:.2%} below its peak"
            self.rows.append((week, "drawdown_stop", "", detail))
            self._stop_week = week

    @property
    def inputs(self) -> tuple[str, ...]:
        """The inputs its inner rule reads (:func:`strategies.rule.rule_inputs`)."""
        return rule_inputs(self.inner)

    @property
    def stopped(self) -> bool:
        return self._stopped_at is not None

    def decide(self, week: pd.Timestamp, history: History, state: State) -> Decision:
        p = self.profile
        tickers = history.tradable
        allowed = [t for t in tickers if t not in p.exclude]
        for t in tickers:
            if t in p.exclude:
                self.rows.append((week, "excluded", t, "excluded by the profile"))
        if p.max_name_vol is not None and allowed:
            ceiling = p.max_name_vol
            vols = name_volatility(history.closes, allowed, p.vol_window)
            for t in allowed:
                if math.isnan(vols[t]):
                    least = min(p.vol_window, MIN_NAME_WEEKS)
                    detail = f"fewer than {least} weekly returns to measure its volatility"
                    self.rows.append((week, "name_vol", t, detail))
                elif vols[t] > ceiling:
                    detail = f"trailing volatility {vols[t]:.2%} > ceiling {ceiling:.2%}"
                    self.rows.append((week, "name_vol", t, detail))
            allowed = [t for t in allowed if vols[t] <= ceiling]  # NaN compares False
        if self.stopped:
            if self._stop_week != week:  # the week it fired has its row from observe()
                self.rows.append((week, "drawdown_stop", "", "in cash until trading resumes"))
            return Decision({}, note="drawdown stop: in cash")
        decision = as_decision(self.inner.decide(week, history.restrict(allowed), state))
        weights = dict(decision.weights)
        cap = p.limits.max_weight
        for t, w in weights.items():
            if abs(w) >= cap - 1e-9:
                self.rows.append((week, "cap", t, f"|weight| {abs(w):.4f} at the cap {cap:.4f}"))
        if p.vol_target is not None:
            vol = portfolio_volatility(history.closes, weights, p.vol_window)
            weights = self._scale_down(
                week, weights, vol, p.vol_target, "vol_target", "trailing volatility", "target"
            )
        if p.max_cvar_95 is not None:
            tail = portfolio_cvar(history.closes, weights, p.cvar_window)
            weights = self._scale_down(
                week, weights, tail, p.max_cvar_95, "cvar_limit", "trailing CVaR 95%", "limit"
            )
        return replace(decision, weights=weights)

    def _scale_down(
        self,
        week: pd.Timestamp,
        weights: dict[str, float],
        measured: float,
        limit: float,
        reason: str,
        what: str,
        bound: str,
    ) -> dict[str, float]:
        """``weights`` scaled by ``limit / measured`` when the measure is over its limit (a
        risk measure that scales with the weights then equals the limit), the bound recorded."""
        if not measured > limit:  # NaN (too little history) leaves the weights alone
            return weights
        scale = limit / measured
        detail = f"{what} {measured:.2%} > {bound} {limit:.2%}: x{scale:.4f}"
        self.rows.append((week, reason, "", detail))
        return {t: w * scale for t, w in weights.items()}

    @property
    def bounds(self) -> pd.DataFrame:
        """One row per limit that bound: ``week, reason, ticker, detail``."""
        return pd.DataFrame(self.rows, columns=BOUND_COLUMNS)
