"""Investor profiles (seed 000): limits that shape any strategy's weekly targets.

A :class:`Profile` fixes the sizing limits (single-stock cap, gross exposure, shorts), the
tickers never to hold, an optional volatility target and an optional drawdown stop. The
limits go into the strategy's own sizing rule (:mod:`strategies.sizing`); :class:`ProfileGuard`
wraps the strategy's decision and enforces the rest, recording every week where a limit bound:

- ``excluded``: an excluded ticker that could have traded is left out before sizing;
- ``cap``: the sizing rule capped a weight at ``max_weight`` (read from its output; the cap
  itself is applied inside the sizing rule);
- ``vol_target``: the target portfolio's volatility over the trailing ``vol_window`` weeks
  (ex ante: the weekly returns the stocks had, at today's target weights, annualised with
  52 weeks) is above ``vol_target``; every weight is scaled down by ``vol_target / vol``, the
  rest stays in cash;
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

from strategies.rule import Decision, DecisionRule, History, State, as_decision
from strategies.sizing import Limits

BOUND_COLUMNS = ["week", "reason", "ticker", "detail"]
REASONS = ("excluded", "cap", "vol_target", "drawdown_stop")


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
    """

    name: str = "custom"
    limits: Limits = field(default_factory=Limits)
    horizon_weeks: int = 52
    vol_target: float | None = None
    max_drawdown: float | None = None
    exclude: frozenset[str] = frozenset()
    vol_window: int = 26
    resume_after: int = 13

    def __post_init__(self) -> None:
        if self.vol_target is not None and not 0 < self.vol_target <= 2:
            raise ValueError(f"vol_target must be in (0, 2], got {self.vol_target}")
        if self.max_drawdown is not None and not 0 < self.max_drawdown < 1:
            raise ValueError(f"max_drawdown must be in (0, 1), got {self.max_drawdown}")
        if self.vol_window < 4 or self.resume_after < 1 or self.horizon_weeks < 1:
            raise ValueError("vol_window >= 4, resume_after >= 1 and horizon_weeks >= 1")


#: The built-in profiles. ``aggressive`` is the paper's rules.
PRESETS: dict[str, Profile] = {
    "conservative": Profile(
        "conservative", Limits(0.15, 0.6, False), horizon_weeks=156, vol_target=0.10
    ),
    "moderate": Profile("moderate", Limits(0.25, 1.0, False), horizon_weeks=104, vol_target=0.15),
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
    returns of ``closes`` (rows up to the decision week; a missing return counts as 0)."""
    names = [t for t, w in weights.items() if w]
    if not names:
        return 0.0
    returns = closes[names].pct_change(fill_method=None).iloc[1:].tail(window)
    if len(returns) < 2:
        return 0.0
    w = np.array([weights[t] for t in names], dtype=float)
    path = returns.fillna(0.0).to_numpy(dtype=float) @ w
    return float(np.std(path, ddof=1) * math.sqrt(52))


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
    def stopped(self) -> bool:
        return self._stopped_at is not None

    def decide(self, week: pd.Timestamp, history: History, state: State) -> Decision:
        p = self.profile
        tickers = history.tradable
        allowed = [t for t in tickers if t not in p.exclude]
        for t in tickers:
            if t in p.exclude:
                self.rows.append((week, "excluded", t, "excluded by the profile"))
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
            if vol > p.vol_target:
                scale = p.vol_target / vol
                weights = {t: w * scale for t, w in weights.items()}
                detail = f"trailing volatility {vol:.2%} > target {p.vol_target:.2%}: x{scale:.4f}"
                self.rows.append((week, "vol_target", "", detail))
        return replace(decision, weights=weights)

    @property
    def bounds(self) -> pd.DataFrame:
        """One row per limit that bound: ``week, reason, ticker, detail``."""
        return pd.DataFrame(self.rows, columns=BOUND_COLUMNS)
