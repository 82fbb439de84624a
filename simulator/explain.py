"""``foliosim explain``: why the strategy traded what it traded in one week.

For a decision week of a run directory or a paper account, every forecast behind that week's
orders is attributed to its input weeks (and features) with Integrated Gradients
(:mod:`models.explain`: a flat price history is the baseline, everything in next-week return
units, the attributions summing to the prediction minus the baseline's prediction).

The forecast is recomputed from the model version the run used and the data its config
names; it must equal the forecast the run recorded (to 1e-6), or the explanation would be of
another forecast, and the command refuses with one line saying so.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from simulator.config import Config, load_config
from simulator.errors import ConfigError, DataError, RunDirError
from simulator.features import check_available
from simulator.rundir import check_run_dir, read_predictions, read_run_csv
from simulator.session import Session
from strategies.rule import History

#: The recomputed forecast may differ from the recorded one by float32 rounding only.
MATCH = 1e-6
#: The input weeks named in the plain-words summary, each way.
NAMED = 2
#: What the attributions are measured from, and in.
BASELINE = (
    "a flat price history (every input week at the window's last close), every other feature "
    "at its training-split mean"
)
UNITS = "next-week return (fraction)"


@dataclass(frozen=True)
class Traded:
    """What explain reads of a run or an account: its session (config, plan and the data it
    traded on, loaded once), forecasts, orders and models."""

    label: str
    session: Session
    #: ``week, ticker, model_version, predicted_return, target`` of every forecast.
    forecasts: pd.DataFrame
    #: ``date_submitted, ticker, side, status`` of every order.
    orders: pd.DataFrame
    #: model version ref -> the loaded model (``models.forecaster.Forecaster``).
    load: Callable[[str], Any]

    @property
    def config(self) -> Config:
        return self.session.config


@dataclass(frozen=True)
class TickerExplanation:
    ticker: str
    target: float
    side: str
    version: str
    input_weeks: list[pd.Timestamp]
    features: list[str]
    prediction: float
    baseline_prediction: float
    attributions: np.ndarray  # (window, n_features)
    attention: np.ndarray | None = None  # (window,), attention models only
    #: A Sharpe-loss model's centred score, the one the strategy sized (None: a forecast).
    centred: float | None = None

    def words(self) -> str:
        """The explanation in plain words."""
        per_week = self.attributions.sum(axis=1)
        order = np.argsort(per_week)
        ups = [i for i in order[::-1][:NAMED] if per_week[i] > 0]
        downs = [i for i in order[:NAMED] if per_week[i] < 0]

        def weeks(idx: list[int]) -> str:
            return ", ".join(
                f"{self.input_weeks[i].date()} ({per_week[i] * 1e4:+.2f} bp)" for i in idx
            )

        verb = {"buy": "bought", "sell": "sold"}.get(self.side, self.side)
        if self.centred is None:
            line = (
                f"{self.ticker}: {verb} to a target weight of {self.target:+.1%} on a forecast "
                f"of {self.prediction:+.2%} for next week; a flat price history would have "
                f"given {self.baseline_prediction:+.2%}."
            )
        else:
            line = (
                f"{self.ticker}: {verb} to a target weight of {self.target:+.1%} on a position "
                f"score of {self.prediction:+.2%} (a Sharpe-loss model's score, not a forecast; "
                f"less the week's mean score it was {self.centred:+.2%}, the figure the "
                f"strategy sized); a flat price history would have given "
                f"{self.baseline_prediction:+.2%}."
            )
        if ups:
            line += f" Pushed up most by the weeks of {weeks(ups)}."
        if downs:
            line += f" Pushed down most by the weeks of {weeks(downs)}."
        if len(self.features) == 1:
            line += f" Feature: {self.features[0]} (the model reads nothing else)."
        else:
            shares = np.abs(self.attributions).sum(axis=0)
            top = self.features[int(np.argmax(shares))]
            line += f" The feature that moved it most: {top}."
        if self.attention is not None:
            most = np.argsort(self.attention)[::-1][:NAMED]
            looked = ", ".join(
                f"{self.input_weeks[i].date()} ({self.attention[i]:.0%})" for i in most
            )
            line += (
                f" Its attention fell most on the weeks of {looked}: where the network looked, "
                "not an attribution."
            )
        return line

    def to_json(self) -> dict[str, Any]:
        return {
            "prediction": self.prediction,
            "baseline_prediction": self.baseline_prediction,
            "attributions": self.attributions.tolist(),
            "input_weeks": [w.date().isoformat() for w in self.input_weeks],
            "features": self.features,
            "target": self.target,
            "side": self.side,
            "model_version": self.version,
            "attention": None if self.attention is None else self.attention.tolist(),
            "centred_score": self.centred,
        }


@dataclass(frozen=True)
class WeekExplanation:
    label: str
    week: pd.Timestamp
    tickers: list[TickerExplanation]

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.label,
            "week": self.week.date().isoformat(),
            "baseline": BASELINE,
            "units": UNITS,
            "tickers": {t.ticker: t.to_json() for t in self.tickers},
        }


def from_run(run_dir: Path, workspace: Path) -> Traded:
    """A run directory of a model strategy, its versions loaded from the workspace registry."""
    from simulator.training import open_registry

    check_run_dir(run_dir)
    cfg = load_config(run_dir / "config.toml")
    session = Session.open(cfg, workspace)
    check_models(session, str(run_dir))
    predictions = read_predictions(run_dir)
    orders = read_run_csv(run_dir / "orders.csv")
    orders["date_submitted"] = pd.to_datetime(orders["date_submitted"], format="ISO8601")
    registry = open_registry(workspace, cfg.model.registry_uri)
    tickers = sorted(set(predictions["ticker"]))
    loaded: dict[str, Any] = {}

    def load(ref: str) -> Any:
        if ref not in loaded:
            loaded[ref] = registry.load(ref, tickers)
        return loaded[ref]

    return Traded(f"run {run_dir}", session, predictions, orders, load)


def check_models(session: Session, who: str) -> None:
    """Refuse a run or account whose strategy makes no forecasts to explain."""
    if not session.plan.strategy.uses_models:
        raise ConfigError(
            f"{who} ran {session.config.backtest.strategy}, which makes no forecasts to "
            "explain; explain "
            "works on runs of a model strategy (lstm_signal)"
        )


def decision_week(traded: Traded, day: Any) -> pd.Timestamp:
    """The decision week holding ``day`` (its W-FRI week) that placed orders."""
    placed = traded.orders.dropna(subset=["date_submitted"])
    weeks = pd.DatetimeIndex(sorted(set(placed["date_submitted"])))
    if weeks.empty:
        raise ConfigError(f"{traded.label} placed no orders; there is nothing to explain")
    wanted = pd.Timestamp(day).to_period("W-FRI")
    hits = [w for w in weeks if w.to_period("W-FRI") == wanted]
    if hits:
        return pd.Timestamp(hits[0])
    near = weeks[np.argsort(np.abs((weeks - pd.Timestamp(day)).days))[:2]].sort_values()
    raise ConfigError(
        f"{traded.label} placed no orders in the week of {pd.Timestamp(day).date()}; weeks "
        f"with orders nearby: {', '.join(str(w.date()) for w in near)} (orders run from "
        f"{weeks[0].date()} to {weeks[-1].date()})"
    )


def window_inputs(
    model: Any, closes: pd.DataFrame, panels: Any, week: pd.Timestamp, ticker: str
) -> tuple[pd.Series, np.ndarray | None] | None:
    """``ticker``'s input window up to ``week``: its closes and its other features' raw
    values ``(window, n_extra)``; None when a value is missing (no forecast was made)."""
    last, _, prices, extras, complete = model.inputs(closes, week, [ticker], panels)
    if last != week or not complete[0]:
        return None
    weeks = closes.loc[:week].index[-model.spec.window :]
    return pd.Series(prices[0], index=weeks), None if extras is None else extras[0]


def explain_week(traded: Traded, day: Any, ticker: str | None = None) -> WeekExplanation:
    """Attribute every forecast behind the orders of the decision week holding ``day``."""
    from models.explain import explain_window

    week = decision_week(traded, day)
    placed = traded.orders[traded.orders["date_submitted"] == week]
    sides = placed.groupby("ticker")["side"].agg(lambda s: "/".join(sorted(set(map(str, s)))))
    names = sorted(sides.index)
    if ticker is not None:
        if ticker not in names:
            raise ConfigError(
                f"{traded.label} placed no order for {ticker} in the week of {week.date()}; "
                f"it traded {', '.join(names)}"
            )
        names = [ticker]
    weekly = traded.session.weekly
    closes, panels = traded.session.sight.closes, traded.session.sight.panels()
    forecasts = traded.forecasts[traded.forecasts["week"] == week].set_index("ticker")
    out = []
    for name in names:
        known = name in forecasts.index
        if not known or not math.isfinite(float(forecasts.loc[name, "predicted_return"])):
            raise DataError(
                f"{traded.label} recorded no forecast for {name} in the week of {week.date()} "
                "(it was ordered without one, e.g. closed out); pick another ticker with --ticker"
            )
        row = forecasts.loc[name]
        model = traded.load(str(row["model_version"]))
        check_available(weekly, model.spec.features, f"model {row['model_version']}")
        window = window_inputs(model, closes, panels, week, name)
        if window is None:
            raise DataError(
                f"the data of {traded.label} no longer holds {name}'s {model.spec.window} weeks "
                f"up to {week.date()}; restore the data the run used"
            )
        prices, extras = window
        e = explain_window(
            model.net_for(name), model.scalers[name], prices.to_numpy(float), extras=extras
        )
        recorded = float(row["predicted_return"])
        recomputed = e.prediction
        if model.spec.loss == "sharpe":  # the recorded score is centred over the week's tickers
            week_names = [t for t in forecasts.index if t in model.tickers]
            recomputed = float(
                model.forecast(closes, week, week_names, panels)["predicted_return"][name]
            )
        if abs(recomputed - recorded) > MATCH:
            raise RunDirError(
                f"{name}'s forecast for the week of {week.date()} recomputes to "
                f"{recomputed:+.6%}, but {traded.label} recorded {recorded:+.6%}: the data or "
                "the model differ from the run's; explain it with the data and workspace it used"
            )
        out.append(
            TickerExplanation(
                ticker=name,
                target=float(row.get("target", np.nan)),
                side=str(sides[name]),
                version=str(row["model_version"]),
                input_weeks=list(pd.DatetimeIndex(prices.index)),
                features=list(model.spec.features),
                prediction=e.prediction,
                baseline_prediction=e.baseline_prediction,
                attributions=e.attributions,
                attention=e.attention,
                centred=recorded if model.spec.loss == "sharpe" else None,
            )
        )
    return WeekExplanation(traded.label, week, out)


# --- a run's explanations (explanations.json, the tear sheet's "Explanations" section) -----

#: Positions of the last decision explained in the tear sheet.
TOP_POSITIONS = 3


class _ShuffledSignal:
    """A signal provider answering, at week d, the forecasts made from week pi(d)'s inputs."""

    def __init__(self, real: Any, forecasts: dict[pd.Timestamp, pd.Series]) -> None:
        self.real = real
        self.forecasts = forecasts

    @property
    def train_ends(self) -> list[pd.Timestamp]:
        return list(self.real.train_ends)

    @property
    def inputs(self) -> tuple[str, ...]:
        return tuple(getattr(self.real, "inputs", ()))

    def predict(self, as_of: pd.Timestamp, history: History) -> pd.Series:
        return self.forecasts.get(pd.Timestamp(as_of), pd.Series(dtype=float))

    def version(self, as_of: pd.Timestamp) -> str:
        return str(self.real.version(as_of))


def _mse(predicted: pd.Series, realised: pd.Series) -> float:
    both = pd.concat([predicted, realised], axis=1).dropna()
    return float(((both.iloc[:, 0] - both.iloc[:, 1]) ** 2).mean()) if len(both) else math.nan


class _Windows:
    """Every decision week's input windows, read once for all the features shuffled in turn
    (they depend on a model through its window and features only)."""

    def __init__(self, closes: pd.DataFrame, tickers: list[str], panels: Any) -> None:
        self.closes, self.tickers, self.panels = closes, tickers, panels
        self.read: dict[tuple[Any, ...], Any] = {}

    def of(self, model: Any, week: pd.Timestamp) -> Any:
        key = (week, model.spec.window, model.spec.features)
        if key not in self.read:
            self.read[key] = model.inputs(self.closes, week, self.tickers, self.panels)
        return self.read[key]


def _shuffled_forecasts(
    provider: Any,
    windows: _Windows,
    weeks: pd.DatetimeIndex,
    order: np.ndarray,
    feature: str,
) -> dict[pd.Timestamp, pd.Series]:
    """Each decision week d's forecasts (by week d's model) with ``feature``'s input windows
    taken from week pi(d) = ``weeks[order]``, every other feature's from week d."""
    out: dict[pd.Timestamp, pd.Series] = {}
    for week, source in zip(weeks, weeks[order], strict=True):
        model = provider.model_at(week).model
        _, names, prices, extras, complete = windows.of(model, week)
        _, _, s_prices, s_extras, s_complete = windows.of(model, source)
        if feature == "close":
            prices = s_prices
        else:
            k = model.spec.features.index(feature) - 1
            assert extras is not None and s_extras is not None
            extras = extras.copy()  # the read windows are shared by every feature's shuffle
            extras[..., k] = s_extras[..., k]
        ok = np.flatnonzero(complete & s_complete)
        predicted = np.full(len(names), np.nan)
        if len(ok):
            predicted[ok] = model.predict_windows(
                [names[i] for i in ok], prices[ok], None if extras is None else extras[ok]
            )
        out[week] = pd.Series(predicted, index=pd.Index(names, name="ticker"))
    return out


def run_explanations(
    provider: Any,
    closes: pd.DataFrame,
    predictions: pd.DataFrame,
    rerun: Callable[[Any], float],
    strategy_return: float,
    seed: int,
) -> dict[str, Any]:
    """The content of explanations.json for a model strategy's run.

    - ``positions``: Integrated Gradients (:func:`models.explain.explain_window`) of the
      forecasts behind the :data:`TOP_POSITIONS` largest target weights of the last decision.
    - ``permutation``: per feature the models read, the forecast MSE (on next-week returns,
      over every forecast with a realised next close) and the strategy's total return when
      that feature's inputs are shuffled across the decision weeks: week d's forecast is made
      (by week d's model) from that feature's input window of week pi(d) and every other
      feature's of week d, every ticker with the same permutation pi (seeded by ``seed``),
      and the strategy is run again on those forecasts by ``rerun`` (provider -> total return)
      through the same engine, limits and profile.
    """
    from models.explain import explain_window

    weeks = pd.DatetimeIndex(sorted(set(predictions["week"])))
    last = predictions[predictions["week"] == weeks[-1]]
    last = last[np.isfinite(last["predicted_return"]) & (last["target"] != 0)]
    top = last.reindex(last["target"].abs().sort_values(ascending=False).index)
    model = provider.model_at(weeks[-1]).model
    features = list(model.spec.features)
    positions = []
    for _, row in top.head(TOP_POSITIONS).iterrows():
        ticker = str(row["ticker"])
        window = window_inputs(model, closes, provider.panels, weeks[-1], ticker)
        if window is None:
            continue
        prices, extras = window
        e = explain_window(
            model.net_for(ticker), model.scalers[ticker], prices.to_numpy(float), extras=extras
        )
        positions.append(
            {
                "ticker": ticker,
                "target": float(row["target"]),
                "prediction": e.prediction,
                "baseline_prediction": e.baseline_prediction,
                "input_weeks": [w.date().isoformat() for w in prices.index],
                "attributions": e.attributions.tolist(),
                "attention": None if e.attention is None else e.attention.tolist(),
            }
        )
    keyed = predictions.set_index(["week", "ticker"])
    realised = keyed["actual_close"] / keyed["last_close"] - 1.0
    order = np.random.default_rng(seed).permutation(len(weeks))
    tickers = sorted(set(predictions["ticker"]))
    rows = []
    windows = _Windows(closes, tickers, provider.panels)
    for feature in features:
        shuffled = _shuffled_forecasts(provider, windows, weeks, order, feature)
        table = pd.concat(shuffled, names=["week", "ticker"])
        rows.append(
            {
                "feature": feature,
                "mse": _mse(keyed["predicted_return"], realised),
                "mse_shuffled": _mse(table, realised),
                "strategy_return": strategy_return,
                "strategy_return_shuffled": rerun(_ShuffledSignal(provider, shuffled)),
            }
        )
    return {
        "week": weeks[-1].date().isoformat(),
        "baseline": BASELINE,
        "units": UNITS,
        "features": features,
        "positions": positions,
        "permutation": {"seed": seed, "weeks": len(weeks), "features": rows},
    }
