"""Next week's allocation for an investor profile, with the reasons (``foliosim recommend``).

As of a complete week t (default: the newest complete week in the data), the strategy of the
config (any strategy the run plan builds: 1/N, the LSTM signal, the optimisers or a user's
rule) decides exactly as it would in a backtest at the close of t, for an account in cash: the
same history cut at t, the same tradable tickers, the same checks (:meth:`simulator.session.
Session.decide_once`). The LSTM-signal strategy asks the registered version of ``model.name``
with the latest train_end strictly before t, or the version given
(:class:`simulator.walkforward.AsOf`); the profile's limits size
and guard the weights. Beside each position: the rule's score (the LSTM's predicted return),
the per-stock analytics over the trailing 52 weeks (:mod:`simulator.analytics`) and their risk
level in plain words; for the portfolio: its volatility over the trailing 26 weeks at these
weights, its weekly VaR and CVaR over the trailing 52 weeks at these weights (historical,
Gaussian and Cornish-Fisher, 95% and 99%: :mod:`strategies.risk`), the cash left, and every
limit that bound. Nothing after the close of t is read, so
later prices change nothing.

Two lines say why the weights are what they are (:func:`rule_line`, :func:`cash_line`): the
strategy's rule as it applied this week (the LSTM-signal rule centres its predictions across
the names when every one is predicted to rise, so the lowest predicted risers are shorted),
and what the cash is made of (short sales' proceeds are cash: with shorts it may pass 100%).

The drawdown stop needs an account's equity: it is not applied here (``foliosim replay``
applies it); the output says so when the profile has one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from simulator.analytics import data_analytics, risk_words, to_json_rows
from simulator.config import Config, ProfileConfig, read_toml
from simulator.errors import ConfigError
from simulator.model_sources import AsOf
from simulator.plan import StrategySpec
from simulator.results import check_excluded
from simulator.session import Session, Window
from simulator.summary import nan_to_none
from strategies.profile import PRESETS, Profile, portfolio_volatility
from strategies.risk import ex_ante_figures
from strategies.sizing import Limits, signal_scores

#: Trailing weeks of the per-stock figures.
ANALYTICS_WEEKS = 52


class _Doc(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ProfileLimits(_Doc):
    """The profile the allocation was sized and guarded by (docs/profiles.md)."""

    name: str
    max_weight: float
    gross: float
    allow_short: bool
    vol_target: float | None
    max_drawdown: float | None
    max_name_vol: float | None
    max_cvar_95: float | None
    exclude: list[str]
    horizon_weeks: int | None


class Position(_Doc):
    """One position of the allocation: its weight (a fraction of the portfolio), the rule's
    score (a model strategy's predicted return, which it also shows as such), its risk level
    and per-stock analytics over the trailing 52 weeks, and the risk in words."""

    ticker: str
    weight: float
    score: float | None
    predicted_return: float | None = None
    risk: str
    in_words: str
    analytics: dict[str, Any]


class Bound(_Doc):
    """A limit of the profile that bound this week."""

    reason: str
    ticker: str
    detail: str


class Recommendation(_Doc):
    """Next week's allocation (``recommend --json``; the web app's recommendation page and
    ``GET /api/recommend``; ``foliosim.recommend``). Weights and figures are fractions."""

    as_of: str
    strategy: str
    data_warnings: list[str] | None = None
    model_version: str | None = None
    model_train_end: str | None = None
    profile: ProfileLimits
    rule: str
    positions: list[Position]
    gross_exposure: float
    cash_weight: float
    cash_note: str
    expected_volatility: float
    expected_risk: dict[str, Any]
    bounds: list[Bound]
    notes: list[str]

    def to_json(self) -> dict[str, Any]:
        """The document as ``recommend --json`` prints it: the optional keys only when set
        (data warnings, a model strategy's version and predicted returns)."""
        return self.model_dump(exclude_unset=True)


def choose_profile(cfg: Config, name: str | None) -> Profile:
    """``--profile``: a preset name, a TOML file with a ``[profile]`` table, or (None) the
    config's own ``[profile]``; without any, ``[strategy]``'s limits as a custom profile."""
    if name:
        if name in PRESETS:
            table: dict[str, Any] = {"name": name}
        else:
            table = _profile_file(Path(name))
        try:
            section = ProfileConfig.model_validate(table)
        except ValueError as err:
            raise ConfigError(f"--profile {name}: {str(err).splitlines()[-1].strip()}") from None
        cfg = cfg.model_copy(update={"profile": section})
    return cfg.decision_profile()


def _profile_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        known = ", ".join(PRESETS)
        raise ConfigError(f"--profile {path}: not a preset ({known}) nor a TOML file")
    try:
        raw = read_toml(path)  # the config files' reader: size, nesting and TOML checked
    except ConfigError as err:
        raise ConfigError(f"--profile {err}") from None
    table = raw.get("profile", raw)
    if not isinstance(table, dict):
        raise ConfigError(f"--profile {path}: expected a [profile] table")
    return table


def recommend(
    cfg: Config | Session,
    workspace: Path,
    profile_name: str | None = None,
    as_of: dt.date | None = None,
    model: str | None = None,
) -> Recommendation:
    """The recommendation (see the module docstring); ``cfg`` a config, or the session of
    one (its plan's profile is then the one used)."""
    if isinstance(cfg, Session):
        session = cfg
    else:
        session = Session.open(cfg, workspace, profile=choose_profile(cfg, profile_name))
    plan, weekly = session.plan, session.weekly
    profile = plan.profile or session.config.decision_profile()
    window = Window.as_of(weekly, as_of or dt.date.today())
    week = window.last
    check_excluded(profile, weekly.tickers)
    closes = session.sight.closes.loc[:week]
    doc: dict[str, Any] = {"as_of": week.date().isoformat(), "strategy": plan.name}
    if weekly.warnings:
        doc["data_warnings"] = list(weekly.warnings)
    if model and not plan.strategy.uses_models:
        raise ConfigError(
            f"--model names an LSTM version, but the config's strategy is '{plan.name}'; "
            "drop --model"
        )
    models = AsOf(model)
    built = session.strategy_rule(window, models)
    if models.info is not None:
        info = models.info
        doc.update(model_version=info.ref, model_train_end=info.train_end.date().isoformat())
    decision, _log = session.decide_once(built, window)
    weights = {t: float(w) for t, w in decision.weights.items()}
    scores = {str(t): float(r) for t, r in decision.scores.items()}
    stocks = data_analytics(weekly, session.config.report.risk_free, week, ANALYTICS_WEEKS)
    figures = {row["ticker"]: row for row in to_json_rows(stocks)}
    positions = []
    for t in sorted(weights, key=lambda t: -abs(weights[t])):
        if not weights[t]:
            continue
        row = pd.Series(stocks.loc[t], name=t)
        positions.append(
            {
                "ticker": t,
                "weight": weights[t],
                "score": scores.get(t),
                **({"predicted_return": scores.get(t)} if plan.strategy.uses_models else {}),
                "risk": figures[t]["risk"],
                "in_words": risk_words(row),
                "analytics": {k: v for k, v in figures[t].items() if k != "ticker"},
            }
        )
    gross = sum(abs(w) for w in weights.values())
    measured, figures_now = ex_ante_figures(closes, weights, profile.cvar_window)
    guard_rows = built.guard.rows if built.guard is not None else []
    doc.update(
        {
            "profile": {
                "name": profile.name,
                "max_weight": profile.limits.max_weight,
                "gross": profile.limits.gross,
                "allow_short": profile.limits.allow_short,
                "vol_target": profile.vol_target,
                "max_drawdown": profile.max_drawdown,
                "max_name_vol": profile.max_name_vol,
                "max_cvar_95": profile.max_cvar_95,
                "exclude": sorted(profile.exclude),
                "horizon_weeks": profile.horizon_weeks,
            },
            "rule": rule_line(plan.strategy, scores, plan.limits, len(positions)),
            "positions": positions,
            "gross_exposure": gross,
            "cash_weight": 1.0 - sum(weights.values()),
            "cash_note": cash_line(weights),
            "expected_volatility": portfolio_volatility(closes, weights, profile.vol_window),
            "expected_risk": nan_to_none(
                {"window": profile.cvar_window, "weeks": measured, **figures_now}
            ),
            "bounds": [{"reason": r, "ticker": t, "detail": d} for _w, r, t, d in guard_rows],
            "notes": (
                ["the drawdown stop needs an account's equity: use foliosim replay to apply it"]
                if profile.max_drawdown is not None
                else []
            ),
        }
    )
    return Recommendation.model_validate(doc)


#: What each optimiser minimises or maximises (strategies/optimize.py), in a phrase.
_OPTIMISERS = {
    "min_variance": "the weights of least variance",
    "mean_variance": "the weights of best mean less risk aversion x variance",
    "min_cvar": "the weights of least weekly CVaR 95%",
}


def _within(limits: Limits) -> str:
    shorts = "" if limits.allow_short else ", shorts off"
    return (
        f"scaled to gross {limits.gross:.0%}, each name capped at {limits.max_weight:.0%}{shorts}"
    )


def rule_line(
    spec: StrategySpec, scores: Mapping[str, float], limits: Limits, names: int | None = None
) -> str:
    """The strategy's rule as it applied this week, in one line.

    ``names`` is the number of names held (default: ``len(scores)``). For the LSTM-signal
    rule ``scores`` are the predicted returns of the tradable names (NaN: no prediction);
    which of its two cases applied is read from :func:`strategies.sizing.signal_scores`
    itself, so the line cannot disagree with the rule.

    >>> from textwrap import wrap
    >>> from simulator.plan import STRATEGIES
    >>> line = rule_line(STRATEGIES["lstm_signal"], {"A": 0.01, "B": 0.02, "C": 0.03}, Limits())
    >>> for part in wrap(line, 90):
    ...     print(part)
    LSTM signal: all 3 names are predicted to rise, so the predictions are centred across the
    names ((r - mean) / std, mean +2.00%): names above the mean are bought, those below it
    shorted (the lowest predicted risers most); scaled to gross 100%, each name capped at 33%
    """
    if spec.one_over_n:
        return (
            f"1/N: the same weight on each of the {names if names is not None else len(scores)} "
            f"names held, whatever the data say (no forecast); {_within(limits)}"
        )
    if spec.optimiser:
        what = _OPTIMISERS.get(spec.name, "its optimal weights")
        return f"{spec.name}: {what} of the trailing weekly returns; net {_within(limits)}"
    if not spec.uses_models:
        return f"{spec.name} (a user rule): its own scores as weights; {_within(limits)}"
    predicted = np.array([v for v in scores.values() if np.isfinite(v)], dtype=float)
    n = len(predicted)
    if n == 0:
        return "LSTM signal: no name has a prediction this week, so all is cash"
    if np.array_equal(signal_scores(predicted), predicted):  # the predictions as they are
        falling = int((predicted < 0).sum())
        if not falling:
            return (
                f"LSTM signal: all {n} names are predicted to rise alike, so each is weighted "
                f"by its predicted return; {_within(limits)}"
            )
        held = "short the predicted fallers" if limits.allow_short else "no weight for fallers"
        return (
            f"LSTM signal: {falling} of {n} names are predicted to fall, so each name is weighted "
            f"by its predicted return: long the predicted risers, {held}; {_within(limits)}"
        )
    below = "shorted" if limits.allow_short else "given no weight (shorts off)"
    return (
        f"LSTM signal: all {n} names are predicted to rise, so the predictions are centred "
        f"across the names ((r - mean) / std, mean {float(predicted.mean()):+.2%}): names "
        f"above the mean are bought, those below it {below} (the lowest predicted risers "
        f"most); {_within(limits)}"
    )


def cash_line(weights: Mapping[str, float]) -> str:
    """What the cash weight is made of: 100% less the longs, plus the short sales' proceeds.

    >>> cash_line({"A": 0.48, "B": -0.52})[:61]
    'cash 104.0% = 100% - 48.0% held long + 52.0% from short sales'
    """
    long = sum(w for w in weights.values() if w > 0)
    short = -sum(w for w in weights.values() if w < 0)
    line = f"cash {1.0 - long + short:.1%} = 100% - {long:.1%} held long"
    if short > 0:
        line += (
            f" + {short:.1%} from short sales (a short sale's proceeds are held as cash until "
            "the shares are bought back)"
        )
    return line
