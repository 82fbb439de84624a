"""Training forecasters (any :mod:`models.net` architecture) on weekly closes (and the other
features of :mod:`models.features`) and predicting next week's returns.

:func:`train` is the offline entry point (windows, splits, scalers, the training loop, test
metrics); :class:`Forecaster` is what it returns and what the registry loads back: it predicts
next-week returns per ticker from weekly closes up to an as-of date.
"""

from __future__ import annotations

import hashlib
import os
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from models.errors import TrainingDataError, did_you_mean
from models.features import Panels, panel_array, select_panels
from models.metrics import compare
from models.net import WindowNet, make_net
from models.portfolio import describe_limits, fit_sharpe, portfolio_sharpe
from models.spec import ModelSpec
from models.train import FitResult, fit
from models.windows import (
    Scaler,
    Windows,
    check_prices,
    fit_scaler,
    make_windows,
    validation_cut,
)

#: The network key in pooled mode (per-ticker networks are keyed by their ticker).
POOLED = "pooled"

TEST_COLUMNS = ["ticker", "as_of", "target_week", "last_close", "actual_close", "predicted_close"]


@dataclass(frozen=True)
class TrainEvent:
    """Progress of :func:`train`: ``epoch == 0`` when a network starts, ``result`` when done."""

    key: str
    index: int
    total: int
    epoch: int
    max_epochs: int
    train_loss: float = float("nan")
    val_loss: float = float("nan")
    result: FitResult | None = None


TrainProgress = Callable[[TrainEvent], None]


@dataclass(frozen=True)
class TrainingReport:
    """What training produced besides the model.

    Attributes
    ----------
    fits
        network key -> its :class:`~models.train.FitResult` (learning curve, stop reason).
    test
        One row per test window (target week after ``train_end``), columns ``TEST_COLUMNS``.
    metrics
        ``{"per_ticker": {ticker: compare(...)}, "all": compare(...)}`` on the test windows;
        empty dicts when the data ends at ``train_end``.
    splits
        ticker -> counts and first/last target week of its train, validation and test windows.
    """

    fits: dict[str, FitResult]
    test: pd.DataFrame
    metrics: dict[str, Any]
    splits: dict[str, dict[str, Any]]


#: Networks narrower than this train on one thread when ``threads = 0``: their matrix products
#: are too small to split between cores (2 x 32 trains as fast on one thread as on two), and one
#: thread shares a busy machine fairly, where torch's default of every core, with OpenMP threads
#: spinning while they wait for each other, slows to a crawl beside other such processes.
ONE_THREAD_BELOW = 128


#: Caps the threads of ``threads = 0``: a parallel worker (a sweep's trial) sets it to its
#: CPU share.
THREADS_ENV = "FOLIOSIM_THREADS"


def auto_threads(hidden: int) -> int:
    """The thread count of ``threads = 0``: one for a small network, else every usable core
    (at most ``$FOLIOSIM_THREADS``).

    It depends on the network and the machine only, never on the load of the moment, so the
    same spec on the same machine always trains on the same threads (bit-identical weights).

    >>> auto_threads(32)
    1
    """
    if hidden < ONE_THREAD_BELOW:
        return 1
    usable = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    count = len(usable) if usable else os.cpu_count() or 1
    share = os.environ.get(THREADS_ENV, "")  # a sweep's worker: its share of the CPUs
    return min(count, int(share)) if share.isdigit() and int(share) > 0 else count


def set_threads(threads: int, hidden: int = ONE_THREAD_BELOW) -> int:
    """Apply ``torch.set_num_threads`` (0 = :func:`auto_threads`) and return the count used."""
    count = threads or auto_threads(hidden)
    if torch.get_num_threads() != count:
        torch.set_num_threads(count)
    return count


def model_seed(seed: int, key: str) -> int:
    """A per-network seed that does not depend on which other tickers are trained.

    >>> model_seed(0, "AAPL") == model_seed(0, "AAPL") != model_seed(0, "MSFT")
    True
    """
    return (seed * 1_000_003 + zlib.crc32(key.encode())) % 2**63


def data_fingerprint(closes: pd.DataFrame, panels: Panels | None = None) -> str:
    """sha256 of weekly closes (tickers sorted, week stamps and float64 values), and of the
    other features' panels given (each cut to the closes' weeks; none: the closes' digest).

    >>> f = pd.DataFrame({"A": [1.0, 2.0]}, index=pd.to_datetime(["2024-01-05", "2024-01-12"]))
    >>> data_fingerprint(f)[:12]
    'cab6be508705'
    """
    digest = hashlib.sha256()
    given = dict(panels or {})
    frames = [("", closes)] + [(name, given[name].reindex(closes.index)) for name in sorted(given)]
    for name, frame in frames:
        if name:
            digest.update(b"\1feature " + name.encode() + b"\0")
        for ticker in sorted(frame.columns):
            col = frame[ticker].dropna()
            digest.update(str(ticker).encode() + b"\0")
            digest.update(col.index.to_numpy(dtype="datetime64[ns]").astype(np.int64).tobytes())
            digest.update(col.to_numpy(dtype=np.float64).tobytes())
    return digest.hexdigest()


@dataclass
class Forecaster:
    """Trained networks with their scalers: next-week return predictions per ticker.

    Attributes
    ----------
    nets
        ticker -> network (per-ticker mode) or ``{POOLED: network}``.
    scalers
        ticker -> :class:`~models.windows.Scaler` fitted on that model's training split.
    train_start, train_end
        First input week and last target week the networks saw (validation included).
    version
        ``NAME/VERSION`` once registered or loaded from the registry, else None.
    """

    spec: ModelSpec
    tickers: tuple[str, ...]
    nets: dict[str, WindowNet]
    scalers: dict[str, Scaler]
    train_start: pd.Timestamp
    train_end: pd.Timestamp
    data_fingerprint: str
    version: str | None = None

    def net_for(self, ticker: str) -> WindowNet:
        return self.nets[POOLED] if self.spec.mode == "pooled" else self.nets[ticker]

    def check_tickers(self, tickers: Sequence[str]) -> None:
        """Refuse tickers this model was not trained on."""
        unknown = [t for t in tickers if t not in self.tickers]
        if unknown:
            who = self.version or self.spec.name
            raise TrainingDataError(
                f"model {who} has no model for {unknown[0]}"
                f"{did_you_mean(unknown[0], self.tickers)}; it was trained on "
                f"{', '.join(self.tickers)}. Train a model on these tickers or drop them"
            )

    def inputs(
        self,
        closes: pd.DataFrame,
        as_of: Any,
        tickers: Sequence[str] | None = None,
        features: Panels | None = None,
    ) -> tuple[pd.Timestamp, list[str], np.ndarray, np.ndarray | None, np.ndarray]:
        """The input windows of a forecast at ``as_of`` (see :meth:`forecast`).

        Returns ``(week, names, prices (n, window), extras (n, window, n_extra) or None,
        complete (n,))``: the window's last week, the tickers, their closes and other
        features' raw values over the ``window`` weeks up to ``week``, and whether each
        ticker has every value of its window (only those get a forecast).
        """
        stamp = pd.Timestamp(as_of)
        names = list(tickers) if tickers is not None else [t for t in self.tickers if t in closes]
        self.check_tickers(names)
        missing = [t for t in names if t not in closes.columns]
        if missing:
            raise TrainingDataError(f"no prices for {missing[0]} in the data given")
        past = closes.loc[:stamp, names]
        if past.empty:
            raise TrainingDataError(f"no weekly closes on or before {stamp.date()}")
        week = past.index[-1]
        if (stamp - week).days > 7:
            raise TrainingDataError(
                f"the data ends at {week.date()}, more than a week before the as-of date "
                f"{stamp.date()}; load data up to {stamp.date()}"
            )
        window = past.tail(self.spec.window).to_numpy(dtype=np.float64).T  # (tickers, window)
        enough = len(past) >= self.spec.window
        complete = np.isfinite(window).all(axis=1) if enough else np.zeros(len(names), bool)
        extras = None
        if len(self.spec.features) > 1:
            rows = past.tail(self.spec.window)
            per_ticker = [panel_array(features, self.spec.features, rows, t) for t in names]
            # (tickers, window, n_extra); rows after as_of are never read
            extras = np.stack([a for a in per_ticker if a is not None])
            if enough:
                complete &= np.isfinite(extras).all(axis=(1, 2))
        return week, names, window, extras, complete

    def predict_windows(
        self, names: Sequence[str], prices: np.ndarray, extras: np.ndarray | None
    ) -> np.ndarray:
        """Predicted next-week returns of complete windows (``(n, window)`` closes and
        ``(n, window, n_extra)`` other features), one per name.

        With the Sharpe loss the network's outputs are position scores: they are centred over
        the names given (as the loss centres a week's tickers) and put in return units with
        the scaler's return deviation, so the sizing rule turns them into the weights the
        network was trained to hold.
        """
        out = np.empty(len(names))
        for i, ticker in enumerate(names):
            rows = prices[i : i + 1]
            more = None if extras is None else extras[i : i + 1]
            net, scaler = self.net_for(ticker), self.scalers[ticker]
            if self.spec.loss == "sharpe":
                out[i] = _outputs(net, scaler, rows, more)[0]
            else:
                out[i] = _predict_prices(net, scaler, rows, more)[0] / rows[0, -1] - 1.0
        if self.spec.loss == "sharpe" and len(names):
            out = centred_scores(out, self.scalers[names[0]])
        return out

    def forecast(
        self,
        closes: pd.DataFrame,
        as_of: Any,
        tickers: Sequence[str] | None = None,
        features: Panels | None = None,
    ) -> pd.DataFrame:
        """Predicted next-week close and return per ticker from data up to ``as_of``.

        Parameters
        ----------
        closes
            Weekly closes ``(n_weeks, n_tickers)`` indexed by week stamp; NaN = no bar.
            Rows after ``as_of`` are ignored, so passing more data changes nothing.
        as_of
            The decision date; the window ends at the last week stamp on or before it.
        tickers
            Default: the model's tickers present in ``closes``.
        features
            The raw panels of the model's features besides ``close``
            (:mod:`models.features`), on ``closes``' weeks; rows after ``as_of`` are ignored.

        Returns
        -------
        DataFrame indexed by ticker with ``week`` (the window's last week), ``last_close``,
        ``predicted_close`` and ``predicted_return`` (a fraction). A ticker without every
        value of its ``window`` weeks up to ``week`` gets NaN predictions. A Sharpe-loss
        model's ``predicted_return`` is its centred position score (:meth:`predict_windows`).
        """
        week, names, window, extras, complete = self.inputs(closes, as_of, tickers, features)
        predicted = np.full(len(names), np.nan)
        if complete.any():
            ok = np.flatnonzero(complete)
            predicted[ok] = self.predict_windows(
                [names[i] for i in ok], window[ok], None if extras is None else extras[ok]
            )
        last = window[:, -1] if window.size else np.full(len(names), np.nan)
        return pd.DataFrame(
            {
                "week": week,
                "last_close": last,
                "predicted_close": last * (1.0 + predicted),
                "predicted_return": predicted,
            },
            index=pd.Index(names, name="ticker"),
        )

    def predict(
        self,
        closes: pd.DataFrame,
        as_of: Any,
        tickers: Sequence[str] | None = None,
        features: Panels | None = None,
    ) -> pd.Series:
        """Predicted next-week returns (fractions) per ticker; see :meth:`forecast`."""
        return self.forecast(closes, as_of, tickers, features)["predicted_return"]


def centred_scores(outputs: np.ndarray, scaler: Scaler) -> np.ndarray:
    """A Sharpe-loss network's raw outputs for one week's tickers -> the scores the strategy
    sizes: less their mean (as the loss centres a week), in return units (the scaler's return
    deviation).

    >>> centred_scores(np.array([1.0, 3.0]), Scaler("window", 0.0, 1.0, 0.0, 0.02)).tolist()
    [-0.02, 0.02]
    """
    return (outputs - outputs.mean()) * scaler.out_std


def _outputs(
    net: WindowNet, scaler: Scaler, prices: np.ndarray, extras: np.ndarray | None = None
) -> np.ndarray:
    """The network's raw outputs for ``(n, window)`` windows."""
    with torch.inference_mode():
        return net(torch.from_numpy(scaler.inputs(prices, extras=extras))).numpy()


def _predict_prices(
    net: WindowNet, scaler: Scaler, prices: np.ndarray, extras: np.ndarray | None = None
) -> np.ndarray:
    """Predicted next-week closes for ``(n, window)`` windows of prices."""
    if len(prices) == 0:
        return np.empty(0)
    return scaler.price(prices, _outputs(net, scaler, prices, extras))


def _extras(w: Windows, spec: ModelSpec) -> np.ndarray:
    """The other features' windows of ``w`` (a model with ``spec.features`` beyond close)."""
    if w.extras is None:
        raise TrainingDataError(f"{w.ticker}: no values of {', '.join(spec.features[1:])}")
    return w.extras


def _first_input_week(weeks: pd.DatetimeIndex, w: Windows, window: int) -> pd.Timestamp:
    """The first week of ``w``'s first window (``window - 1`` rows before its as-of week)."""
    position = int(weeks.searchsorted(w.as_of[0]))
    return pd.Timestamp(weeks[position - window + 1])


def _span(w: Windows) -> dict[str, Any]:
    if len(w) == 0:
        return {"n": 0, "first": None, "last": None}
    return {
        "n": len(w),
        "first": w.target_week[0].date().isoformat(),
        "last": w.target_week[-1].date().isoformat(),
    }


def train(
    closes: pd.DataFrame,
    spec: ModelSpec,
    train_end: Any,
    progress: TrainProgress | None = None,
    *,
    features: Panels | None = None,
    scaler_end: Any = None,
    validate_through: Any = None,
) -> tuple[Forecaster, TrainingReport]:
    """Train the networks of ``spec`` on weekly closes (and features) up to ``train_end``.

    Parameters
    ----------
    closes
        Weekly closes ``(n_weeks, n_tickers)``, adjusted, indexed by week stamp, NaN where a
        ticker has no bar. Windows whose target week is after ``train_end`` form the test
        split (scored, never trained on); the last ``spec.val_fraction`` of the others
        (chronologically) is the validation split; the rest is the training split, the only
        rows the scalers see.
    train_end
        The last week whose close the model may see.
    features
        The raw panels of ``spec.features`` besides ``close`` (:mod:`models.features`), each
        ``(n_weeks, n_tickers)`` on the closes' weeks. A window needs each value of its weeks.
    scaler_end
        A deliberate leak for the leak audit only (``foliosim audit``'s ``scaler_full``): fit
        the scalers on every window whose target week is up to this date, test weeks included,
        instead of on the training split. No config field reaches it.
    validate_through
        The audit's other leak (``early_stop_on_test``): every seen window is trained on, and
        early stopping and the choice of the best epoch use the test windows whose target week
        is up to this date.
    """
    check_prices(closes)
    if closes.shape[1] == 0:
        raise TrainingDataError("no tickers to train on")
    end = pd.Timestamp(train_end)
    set_threads(spec.threads, spec.hidden)
    tickers = [str(t) for t in closes.columns]
    if spec.loss == "sharpe" and len(tickers) < 2:
        raise TrainingDataError(
            f"model.loss = 'sharpe' sizes a portfolio of the universe's tickers each week, and "
            f"the data has one ({tickers[0]}); add tickers or use model.loss = 'mse'"
        )
    windows = {
        t: make_windows(
            closes[t].rename(t), spec.window, panel_array(features, spec.features, closes, t)
        )
        for t in tickers
    }
    seen = {t: w.take(np.asarray(w.target_week <= end)) for t, w in windows.items()}
    test = {t: w.take(np.asarray(w.target_week > end)) for t, w in windows.items()}
    for t in tickers:
        if len(seen[t]) < 2:
            have = int(closes[t].loc[:end].notna().sum())
            raise TrainingDataError(
                f"{t}: {have} weekly closes up to train_end {end.date()}, too few for "
                f"{spec.window}-week windows with a validation split; drop {t}, "
                "start the data earlier or set a later model.train_end"
            )

    if spec.mode == "pooled":
        all_weeks = pd.DatetimeIndex(np.concatenate([seen[t].target_week for t in tickers]))
        pooled_cut = validation_cut(all_weeks, spec.val_fraction)
        cuts = dict.fromkeys(tickers, pooled_cut)
    else:
        cuts = {t: validation_cut(seen[t].target_week, spec.val_fraction) for t in tickers}
    train_part = {t: seen[t].take(np.asarray(seen[t].target_week < cuts[t])) for t in tickers}
    val_part = {t: seen[t].take(np.asarray(seen[t].target_week >= cuts[t])) for t in tickers}
    if validate_through is not None:  # the audit's leak: the epoch is chosen on test weeks
        val_end = pd.Timestamp(validate_through)
        train_part = seen
        val_part = {t: test[t].take(np.asarray(test[t].target_week <= val_end)) for t in tickers}
    fit_on = train_part
    if scaler_end is not None:  # the audit's leak: the scalers see the test weeks
        leak_end = pd.Timestamp(scaler_end)
        fit_on = {t: w.take(np.asarray(w.target_week <= leak_end)) for t, w in windows.items()}
    for t in tickers:
        if len(train_part[t]) < 2 and spec.mode == "per_ticker":
            raise TrainingDataError(
                f"{t}: {len(train_part[t])} training window(s) before the validation split, "
                "too few to fit a scaler; start the data earlier or set a later model.train_end"
            )

    if spec.mode == "pooled" and spec.scaling == "window":
        extras = None
        if len(spec.features) > 1:
            extras = np.concatenate([_extras(fit_on[t], spec) for t in tickers])
        shared = fit_scaler(
            "window",
            np.concatenate([fit_on[t].inputs for t in tickers]),
            np.concatenate([fit_on[t].target for t in tickers]),
            "pooled",
            extras,
            spec.features,
        )
        scalers = dict.fromkeys(tickers, shared)
    else:
        scalers = {
            t: fit_scaler(
                spec.scaling,
                fit_on[t].inputs,
                fit_on[t].target,
                t,
                fit_on[t].extras,
                spec.features,
            )
            for t in tickers
        }

    def tensors(parts: dict[str, Windows], names: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        x = np.concatenate(
            [scalers[t].inputs(parts[t].inputs, extras=parts[t].extras) for t in names]
        )
        y = np.concatenate([scalers[t].target(parts[t].inputs, parts[t].target) for t in names])
        return torch.from_numpy(x), torch.from_numpy(y)

    def weeks(parts: dict[str, Windows]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The Sharpe loss's form: ``(x (weeks, tickers, ...), mask, returns)`` by decision
        week (every ticker's windows with a decision in ``parts``)."""
        stamps = pd.DatetimeIndex(sorted(set().union(*(set(parts[t].as_of) for t in tickers))))
        shape = (len(stamps), len(tickers), spec.window)
        x = np.zeros(shape + ((len(spec.features),) if len(spec.features) > 1 else ()), np.float32)
        mask = np.zeros(shape[:2], bool)
        returns = np.zeros(shape[:2], np.float32)
        for j, t in enumerate(tickers):
            w = parts[t]
            rows = stamps.get_indexer(w.as_of)
            x[rows, j] = scalers[t].inputs(w.inputs, extras=w.extras)
            mask[rows, j] = True
            returns[rows, j] = w.target / w.inputs[:, -1] - 1.0
        return torch.from_numpy(x), torch.from_numpy(mask), torch.from_numpy(returns)

    groups = {POOLED: tickers} if spec.mode == "pooled" else {t: [t] for t in tickers}
    nets: dict[str, WindowNet] = {}
    fits: dict[str, FitResult] = {}
    total = len(groups)
    for index, (key, names) in enumerate(groups.items()):
        seed = model_seed(spec.seed, key)
        torch.manual_seed(seed)
        net = make_net(spec)
        generator = torch.Generator().manual_seed(seed)
        if progress is not None:
            progress(TrainEvent(key, index, total, 0, spec.max_epochs))

        def on_epoch(epoch: int, tl: float, vl: float, key: str = key, index: int = index) -> None:
            if progress is not None:
                progress(TrainEvent(key, index, total, epoch, spec.max_epochs, tl, vl))

        if spec.loss == "sharpe":
            result = fit_sharpe(net, weeks(train_part), weeks(val_part), spec, generator, on_epoch)
        else:
            result = fit(
                net, tensors(train_part, names), tensors(val_part, names), spec, generator,
                on_epoch,
            )  # fmt: skip
        nets[key], fits[key] = net, result
        if progress is not None:
            progress(TrainEvent(key, index, total, result.epochs, spec.max_epochs, result=result))

    model = Forecaster(
        spec=spec,
        tickers=tuple(tickers),
        nets=nets,
        scalers=scalers,
        train_start=min(
            _first_input_week(pd.DatetimeIndex(closes.index), seen[t], spec.window) for t in tickers
        ),
        train_end=max(seen[t].target_week[-1] for t in tickers),
        data_fingerprint=data_fingerprint(closes.loc[:end], select_panels(features, spec.features)),
    )
    rows = []
    per_ticker: dict[str, Any] = {}
    sharpe = spec.loss == "sharpe"
    for t in tickers:
        w = test[t]
        if sharpe:  # scores, centred week by week below: not forecasts to score
            predicted = _outputs(model.net_for(t), scalers[t], w.inputs, w.extras)
        else:
            predicted = _predict_prices(model.net_for(t), scalers[t], w.inputs, w.extras)
        if len(w) and not sharpe:
            per_ticker[t] = compare(w.inputs[:, -1], w.target, predicted)
        rows.append(
            pd.DataFrame(
                {
                    "ticker": t,
                    "as_of": w.as_of,
                    "target_week": w.target_week,
                    "last_close": w.inputs[:, -1],
                    "actual_close": w.target,
                    "predicted_close": predicted,
                }
            )
        )
    test_frame = pd.concat(rows, ignore_index=True)
    metrics: dict[str, Any] = {"per_ticker": per_ticker, "all": {}}
    if sharpe:
        # Each test week's scores centred over its tickers and put in return units, as
        # Forecaster.forecast does; the portfolio's Sharpe ratio over the test weeks.
        if len(test_frame):
            scores = test_frame.groupby("as_of")["predicted_close"].transform(
                lambda v: centred_scores(v.to_numpy(), scalers[tickers[0]])
            )
            test_frame["predicted_close"] = test_frame["last_close"] * (1.0 + scores)
        test_weeks = weeks(test)
        metrics["portfolio"] = {
            "test_sharpe": portfolio_sharpe(nets[POOLED], spec, *test_weeks),
            "test_weeks": len(test_weeks[1]),
            "limits": describe_limits(spec),
        }
    elif len(test_frame):
        metrics["all"] = compare(
            test_frame["last_close"].to_numpy(),
            test_frame["actual_close"].to_numpy(),
            test_frame["predicted_close"].to_numpy(),
        )
    splits = {
        t: {
            "train": _span(train_part[t]),
            "validation": _span(val_part[t]),
            "test": _span(test[t]),
        }
        for t in tickers
    }
    return model, TrainingReport(fits, test_frame, metrics, splits)
