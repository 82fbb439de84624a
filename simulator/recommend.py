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

The drawdown stop needs an account's equity: it is not applied here (``foliosim replay``
applies it); the output says so when the profile has one.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict

from simulator.analytics import data_analytics, risk_words, to_json_rows
from simulator.config import Config, ProfileConfig, read_toml
from simulator.errors import ConfigError
from simulator.model_sources import AsOf
from simulator.results import check_excluded
from simulator.session import Session, Window
from simulator.summary import nan_to_none
from strategies.profile import PRESETS, Profile, portfolio_volatility
from strategies.risk import ex_ante_figures

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
    positions: list[Position]
    gross_exposure: float
    cash_weight: float
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
            "positions": positions,
            "gross_exposure": gross,
            "cash_weight": 1.0 - sum(weights.values()),
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
