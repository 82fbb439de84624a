"""Next week's allocation for an investor profile, with the reasons (``foliosim recommend``).

As of a complete week t (default: the newest complete week in the data), the strategy of the
config (any strategy the run plan builds: 1/N, the LSTM signal, the optimisers or a user's
rule) decides exactly as it would in a backtest at the close of t, for an account in cash: the
same history cut at t, the same tradable tickers, the same checks (:meth:`simulator.plan.
RunPlan.decide_once`). The LSTM-signal strategy asks the registered version of ``model.name``
with the latest train_end strictly before t (or the version given); the profile's limits size
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
from typing import TYPE_CHECKING, Any

import pandas as pd

from simulator.analytics import data_analytics, risk_words, to_json_rows
from simulator.backtest import check_excluded
from simulator.config import Config, ProfileConfig, read_toml
from simulator.data import load_daily, make_weekly
from simulator.data.weekly import last_complete_week
from simulator.errors import ConfigError, DataError
from simulator.plan import Resources, resolve
from simulator.summary import nan_to_none
from strategies.profile import PRESETS, Profile, portfolio_volatility
from strategies.risk import ex_ante_figures

if TYPE_CHECKING:
    from simulator.walkforward import RegistrySignal

#: Trailing weeks of the per-stock figures.
ANALYTICS_WEEKS = 52


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
    profile = cfg.investor_profile()
    if profile is None:
        profile = Profile("custom", cfg.strategy.limits())
    return profile


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
    cfg: Config,
    workspace: Path,
    profile_name: str | None = None,
    as_of: dt.date | None = None,
    model: str | None = None,
) -> dict[str, Any]:
    """The recommendation as one JSON-ready document (see the module docstring)."""
    profile = choose_profile(cfg, profile_name)
    weekly = make_weekly(load_daily(cfg.data, cfg.report.risk_free, workspace))
    day = pd.Timestamp(as_of or dt.date.today())
    week = last_complete_week(weekly.calendar, day)
    if week is None:
        raise DataError(f"no complete week on or before {day.date()} in the data")
    check_excluded(profile, weekly.tickers)
    closes = weekly.closes().loc[:week]
    plan = resolve(cfg, profile=profile)
    doc: dict[str, Any] = {"as_of": week.date().isoformat(), "strategy": plan.name}
    if weekly.warnings:
        doc["data_warnings"] = list(weekly.warnings)

    def signal() -> RegistrySignal:
        from simulator.training import open_registry
        from simulator.walkforward import RegistrySignal, UsedModel

        registry = open_registry(workspace, cfg.model.registry_uri)
        ref = model or cfg.model.version
        info = registry.resolve(ref) if ref else registry.as_of(cfg.model.name, week)
        if info.train_end >= week:
            raise ConfigError(
                f"{info.ref} was trained on data up to {info.train_end.date()}, not before "
                f"{week.date()}: a recommendation as of that week cannot use it"
            )
        has_bar = closes.loc[week].notna()
        present = [t for t in weekly.tickers if bool(has_bar[t])]
        used = UsedModel(registry.load(info, present), info, False)
        doc.update(model_version=info.ref, model_train_end=info.train_end.date().isoformat())
        return RegistrySignal([used], weekly=weekly)

    if model and not plan.strategy.uses_models:
        raise ConfigError(
            f"--model names an LSTM version, but the config's strategy is '{plan.name}'; "
            "drop --model"
        )
    built = plan.strategy_rule(Resources(signal=signal, decisions=pd.DatetimeIndex([week])))
    decision, _log = plan.decide_once(built, weekly, week)
    weights = {t: float(w) for t, w in decision.weights.items()}
    scores = {str(t): float(r) for t, r in decision.scores.items()}
    stocks = data_analytics(weekly, cfg.report.risk_free, week, ANALYTICS_WEEKS)
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
    return doc


def config_weights(
    cfg: Config, workspace: Path, as_of: dt.date | None
) -> tuple[pd.Timestamp, dict[str, float]]:
    """The config's allocation for the week after ``as_of`` (default: the newest complete week),
    decided as ``foliosim recommend`` decides it, and the week it is decided at."""
    doc = recommend(cfg, workspace, None, as_of, None)
    weights = {str(p["ticker"]): float(p["weight"]) for p in doc["positions"]}
    return pd.Timestamp(doc["as_of"]), weights
