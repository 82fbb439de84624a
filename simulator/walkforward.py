"""Walk-forward models for the LSTM-signal strategy: which registry versions, trained when,
and the signal provider that answers with them.

:func:`prepare_models` gets every model a backtest needs from the registry, training and
registering the ones it lacks: one model trained up to ``model.train_end``, then, with
``model.retrain_every = K``, one more every K decision weeks, each trained on every week up to
its retrain week. A version is reused when the registry already holds one of the same spec
(``spec_sha256``) trained on the same data (``data_fingerprint`` of the closes up to its
train_end); training is deterministic, so a reused version is the model training would give.

:class:`RegistrySignal` is the signal provider the strategy sees: at decision week t it
answers with the model whose train_end is strictly before t (point-in-time selection), from
the weekly closes the engine cut at t.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from models.features import FEATURES, select_panels
from models.forecaster import Forecaster, TrainProgress, data_fingerprint, train
from models.registry import Registry, VersionInfo, spec_digest
from models.spec import trained_before
from simulator.config import Config
from simulator.data.weekly import WeeklyData
from simulator.errors import ConfigError, LookAheadError
from simulator.features import check_available, feature_panels
from simulator.training import model_spec, open_registry
from strategies.rule import History

#: The forecast columns of :meth:`RegistrySignal.predictions`.
FORECAST_COLUMNS = [
    "week",
    "ticker",
    "model_version",
    "last_close",
    "predicted_close",
    "predicted_return",
]
#: The columns of predictions.csv (:meth:`LstmRun.predictions`).
PREDICTION_COLUMNS = [*FORECAST_COLUMNS, "target", "actual_close"]

#: Called with a line of news for the user: "training ...", "reusing ...".
Note = Callable[[str], None]


@dataclass(frozen=True)
class UsedModel:
    """A registry version a backtest uses, loaded, and whether this run trained it."""

    model: Forecaster
    info: VersionInfo
    trained: bool

    @property
    def train_end(self) -> pd.Timestamp:
        return self.model.train_end


def retrain_ends(first_end: pd.Timestamp, decisions: pd.DatetimeIndex, every: int) -> list[Any]:
    """The train_end of each model of a walk-forward backtest.

    The first model is trained up to ``first_end``; with ``every = K > 0`` one more is trained
    at the close of every K-th decision week (on every week up to it) and used from the next
    decision on, so each model makes K decisions (the last one possibly fewer).

    >>> weeks = pd.date_range("2024-01-05", periods=7, freq="W-FRI")
    >>> [d.strftime("%m-%d") for d in retrain_ends(pd.Timestamp("2023-12-29"), weeks, 3)]
    ['12-29', '01-19', '02-09']
    """
    ends = [pd.Timestamp(first_end)]
    if every > 0:
        ends += [decisions[i] for i in range(every - 1, len(decisions) - 1, every)]
    return ends


def prepare_models(
    cfg: Config,
    closes: pd.DataFrame,
    decisions: pd.DatetimeIndex,
    registry: Registry,
    progress: TrainProgress | None = None,
    note: Note | None = None,
    *,
    weekly: WeeklyData | None = None,
) -> list[UsedModel]:
    """The models of a backtest of ``cfg``, oldest first (see the module docstring).

    Parameters
    ----------
    closes
        The backtest's weekly closes ``(n_weeks, n_tickers)``; models are trained on the rows
        up to their train_end and must cover every column.
    decisions
        The decision weeks; the first model must end before the first of them.
    weekly
        The weekly bars ``closes`` came from: the feature panels of a model that reads more
        than closes (:mod:`simulator.features`) are built from them.
    """
    say = note or (lambda _line: None)
    tickers = [str(t) for t in closes.columns]
    first = pd.Timestamp(decisions[0])
    if cfg.model.version:
        info = registry.resolve(cfg.model.version)
        if not trained_before(info.train_end, first):
            raise LookAheadError(
                f"model.version {info.ref} was trained on data up to {info.train_end.date()}, "
                f"not before the first decision week {first.date()}; pick a version trained "
                "earlier, or start the backtest later"
            )
        say(f"using {info.ref} (trained up to {info.train_end.date()})")
        pinned = registry.load(info, tickers)
        _check_inputs(weekly, pinned.spec.features, f"model {info.ref}")
        return [UsedModel(pinned, info, trained=False)]

    first_end = pd.Timestamp(cfg.model_train_end())
    if not trained_before(first_end, first):
        raise ConfigError(
            f"model.train_end ({first_end.date()}) is not before the first decision week "
            f"{first.date()}: the model would trade weeks it was trained on. Set an earlier "
            "model.train_end or a later backtest.start"
        )
    spec = model_spec(cfg)
    _check_inputs(weekly, spec.features, f"model {spec.name}")
    # The feature panels, built only for a model that reads more than closes.
    panels = feature_panels(weekly) if weekly is not None and len(spec.features) > 1 else None
    inputs = select_panels(panels, spec.features)
    digest = spec_digest(spec.to_dict())
    known = {
        (v.tags.get("spec_sha256"), v.tags.get("data_fingerprint")): v
        for v in registry.versions()
        if v.name == spec.name
    }
    source: dict[str, Any] = cfg.model_dump(mode="json", exclude_none=True)
    ends = retrain_ends(first_end, decisions, cfg.model.retrain_every)
    used = []
    for k, end in enumerate(ends, start=1):
        fingerprint = data_fingerprint(closes.loc[:end], inputs)
        found = known.get((digest, fingerprint))
        # The last week the model sees: the last week ending on or before train_end.
        seen = closes.index[closes.index <= end]
        upto = seen[-1].date() if len(seen) else end.date()
        if found is not None:
            say(f"model {k}/{len(ends)}: reusing {found.ref} (trained up to {upto})")
            used.append(UsedModel(registry.load(found, tickers), found, trained=False))
            continue
        with training_lock(registry, digest, fingerprint):
            # Another process (a sweep's trial) may have trained it while this one waited.
            again = [
                v
                for v in registry.versions()
                if v.name == spec.name
                and (v.tags.get("spec_sha256"), v.tags.get("data_fingerprint"))
                == (digest, fingerprint)
            ]
            if again:
                found = again[-1]
                say(f"model {k}/{len(ends)}: reusing {found.ref} (trained up to {upto})")
                used.append(UsedModel(registry.load(found, tickers), found, trained=False))
                continue
            say(f"model {k}/{len(ends)}: training {spec.name} on data up to {upto}")
            model, report = train(closes, spec, end, progress, features=panels)
            stored = {**source, "model": {**source["model"], "train_end": end.date().isoformat()}}
            info = registry.register(model, report, stored)
        used.append(UsedModel(model, info, trained=True))
    return used


def _check_inputs(weekly: WeeklyData | None, features: Sequence[str], who: str) -> None:
    """Refuse a model whose features the data cannot give (:func:`simulator.features.
    check_available`)."""
    if len(features) > 1:
        if weekly is None:
            raise ConfigError(f"{who} reads {', '.join(features)}: it needs the weekly bars")
        check_available(weekly, features, who)


@contextlib.contextmanager
def training_lock(registry: Registry, digest: str, fingerprint: str) -> Iterator[None]:
    """Hold the lock of one model to train (a spec on some data), so that processes that need
    the same model at once (a sweep's trials) train it once: the others wait, then reuse it.

    The lock is a file in the workspace (``locks/train-*.lock``): processes that share the
    registry share the workspace (on a cluster, a shared folder)."""
    folder = registry.workspace / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"train-{digest[:16]}-{fingerprint[:16]}.lock"
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class RegistrySignal:
    """The signal provider of the LSTM-signal strategy (``strategies.signal.SignalProvider``).

    Parameters
    ----------
    models
        The models to choose from; at week t the one with the latest train_end before t.
    allow_later
        Where no model ended before t, use the earliest one instead of refusing. Only a paper
        account started with ``--allow-later-model`` does this, and it says so.
    weekly
        The weekly bars of the closes it will be given: checked to hold the inputs its
        models read. In a run a model reads them from the history the engine cut at its
        as-of week (:meth:`predict`); :attr:`panels` keeps them whole for the explanations
        made after the run.
    """

    def __init__(
        self,
        models: Sequence[UsedModel],
        allow_later: bool = False,
        weekly: WeeklyData | None = None,
    ) -> None:
        if not models:
            raise ValueError("a signal needs at least one model")
        for m in models:
            _check_inputs(weekly, m.model.spec.features, f"model {m.info.ref}")
        reads = any(len(m.model.spec.features) > 1 for m in models)
        self.panels = feature_panels(weekly) if weekly is not None and reads else None
        self.allow_later = allow_later
        self.models = sorted(models, key=lambda m: m.train_end)
        self.forecasts: list[pd.DataFrame] = []

    @property
    def train_ends(self) -> list[pd.Timestamp]:
        return [m.train_end for m in self.models]

    def model_at(self, as_of: pd.Timestamp) -> UsedModel:
        """The model with the latest train_end strictly before ``as_of``."""
        chosen = None
        for m in self.models:
            if trained_before(m.train_end, as_of):
                chosen = m
        if chosen is None and self.allow_later:
            chosen = self.models[0]
        if chosen is None:
            raise LookAheadError(
                f"no model was trained on data ending before {as_of.date()} (the earliest "
                f"ends {self.models[0].train_end.date()})"
            )
        return chosen

    @property
    def inputs(self) -> tuple[str, ...]:
        """The features besides the closes its models read (the engine cuts them at each
        decision week into ``history.inputs``, see :mod:`simulator.sight`)."""
        read = {f for m in self.models for f in m.model.spec.features}
        return tuple(f for f in FEATURES if f != "close" and f in read)

    def predict(self, as_of: pd.Timestamp, history: History) -> pd.Series:
        """Predicted next-week returns from ``history`` (its closes and inputs, the rows up
        to ``as_of``; every ticker of the data a column); the forecast table is kept in
        :attr:`forecasts`."""
        used = self.model_at(as_of)
        closes = history.closes
        tickers = [str(t) for t in closes.columns]
        table = used.model.forecast(closes.loc[:as_of], as_of, tickers, dict(history.inputs))
        self.forecasts.append(table.assign(decision=as_of, model_version=used.info.ref))
        return table["predicted_return"]

    def version(self, as_of: pd.Timestamp) -> str:
        return self.model_at(as_of).info.ref

    def predictions(self) -> pd.DataFrame:
        """Every forecast made so far, one row per decision week and ticker."""
        if not self.forecasts:
            return pd.DataFrame(columns=FORECAST_COLUMNS)
        frame = pd.concat(self.forecasts).rename_axis("ticker").reset_index()
        frame = frame.drop(columns="week").rename(columns={"decision": "week"})
        return frame[FORECAST_COLUMNS].reset_index(drop=True)


@dataclass
class LstmRun:
    """The LSTM-signal side of one backtest: its models and signal provider."""

    models: list[UsedModel]
    provider: RegistrySignal
    registry: Registry

    def predictions(
        self, closes: pd.DataFrame, weeks: pd.DatetimeIndex, decisions: pd.DataFrame
    ) -> pd.DataFrame:
        """Each forecast with its target weight (from the engine's decision log
        ``decisions``) and the close its target week really had.

        ``actual_close`` is the ticker's close in the calendar week after the decision (NaN
        when it has no bar then); it is read here, after the run, never by the strategy.
        """
        frame = self.provider.predictions()
        targets = decisions.loc[decisions["ticker"] != "", ["week", "ticker", "target"]]
        frame = frame.merge(targets, on=["week", "ticker"], how="left")
        frame["target"] = frame["target"].fillna(0.0)
        following = closes.reindex(weeks).shift(-1)
        actual = following.rename_axis(index="week").reset_index()
        actual = actual.melt(id_vars="week", var_name="ticker", value_name="actual_close")
        frame = frame.merge(actual, on=["week", "ticker"], how="left")
        return frame[PREDICTION_COLUMNS]

    def record(self, predictions: pd.DataFrame, orders: pd.DataFrame) -> dict[str, Any]:
        """The content of models.json: versions used, their records, as-traded metrics."""
        used, versions = [], []
        for m in self.models:
            mine = predictions[predictions["model_version"] == m.info.ref]
            weeks = sorted(set(mine["week"]))
            used.append(
                {
                    "version": m.info.ref,
                    "arch": m.model.spec.arch,
                    "train_start": m.model.train_start.date().isoformat(),
                    "train_end": m.train_end.date().isoformat(),
                    "trained_by_this_run": m.trained,
                    "first_decision": weeks[0].date().isoformat() if weeks else None,
                    "last_decision": weeks[-1].date().isoformat() if weeks else None,
                    "decisions": len(weeks),
                    "orders": int((orders["model_version"] == m.info.ref).sum()),
                }
            )
            stored = self.registry.metrics(m.info)
            versions.append(
                {
                    "version": m.info.ref,
                    "spec": m.model.spec.to_dict(),
                    "tags": m.info.tags,
                    "test": stored.get("test", {}),
                    "training": stored.get("training", {}),
                    "splits": stored.get("splits", {}),
                }
            )
        if any(m.model.spec.loss == "sharpe" for m in self.models):
            # Position scores, not forecasts: their error against the naive forecast means
            # nothing, so none is given.
            traded: dict[str, Any] = {"per_ticker": {}, "all": {}, "scores": True}
        else:
            traded = as_traded_metrics(predictions)
        return {"used": used, "versions": versions, "as_traded": traded}


def as_traded_metrics(predictions: pd.DataFrame) -> dict[str, Any]:
    """Forecast errors over the weeks the strategy traded, model next to the naive forecast.

    Only rows with a forecast and a realised next close count. Returns ``{"per_ticker":
    {ticker: compare(...)}, "all": compare(...)}`` (empty when no row counts).
    """
    from models.metrics import compare

    rows = predictions.dropna(subset=["predicted_close", "actual_close", "last_close"])

    def one(part: pd.DataFrame) -> dict[str, Any]:
        return compare(
            part["last_close"].to_numpy(float),
            part["actual_close"].to_numpy(float),
            part["predicted_close"].to_numpy(float),
        )

    if rows.empty:
        return {"per_ticker": {}, "all": {}}
    per = {str(t): one(part) for t, part in rows.groupby("ticker", sort=False)}
    return {"per_ticker": per, "all": one(rows)}


def run_lstm(
    cfg: Config,
    weekly: WeeklyData,
    decisions: pd.DatetimeIndex,
    workspace: Path,
    progress: TrainProgress | None = None,
    note: Note | None = None,
) -> LstmRun:
    """Prepare the models of ``cfg`` and the signal provider that answers with them."""
    registry = open_registry(workspace, cfg.model.registry_uri)
    closes = weekly.closes()
    models = prepare_models(cfg, closes, decisions, registry, progress, note, weekly=weekly)
    return LstmRun(models, RegistrySignal(models, weekly=weekly), registry)
