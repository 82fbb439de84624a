"""A model version as plain files, written and read back without pickle.

Layout of a version folder::

    config.json            schema version, spec, feature spec, tickers, training window,
                           data fingerprint, code version, network -> weights file
    weights.safetensors    pooled mode; per-ticker mode: weights/<TICKER>.safetensors
    scaler.json            ticker -> scaler statistics (fitted on the training split)
    metrics.json           test metrics (model and naive), learning curves, splits
    test_predictions.csv   every test window: last, actual and predicted close
    model_card.md          a readable summary
    plots/                 learning curves and predicted-vs-actual PNGs

``weights_sha256`` is one digest over every weights file; ``manifest_sha256`` covers
``config.json`` and ``scaler.json``. The registry keeps both as tags, and :func:`read_version`
refuses a folder whose files do not match them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd
import safetensors.torch
from safetensors import SafetensorError

from models.errors import IntegrityError, SpecError
from models.features import DESCRIPTIONS
from models.forecaster import POOLED, Forecaster, TrainingReport
from models.net import FEEDFORWARD, WindowNet, make_net
from models.portfolio import describe_limits
from models.spec import HEADS, ModelSpec
from models.windows import Scaler

SCHEMA_VERSION = 1
INPUTS = ("weekly_adjusted_close",)
TARGET = "next_week_adjusted_close"
MANIFEST_FILES = ("config.json", "scaler.json")


def feature_spec(spec: ModelSpec) -> dict[str, Any]:
    """What a network expects as input: checked when a version is loaded."""
    return {
        "inputs": [*INPUTS, *(f"weekly_{f}" for f in spec.features[1:])],
        "window": spec.window,
        "target": TARGET,
        "scaling": spec.scaling,
        "frequency": "weekly (W-FRI), stamped on the week's last trading day",
    }


def code_version() -> str:
    """The installed foliosim version, with the git commit when run from a checkout."""
    try:
        version = metadata.version("foliosim")
    except metadata.PackageNotFoundError:
        version = "unknown"
    root = Path(__file__).resolve().parent.parent
    if (root / ".git").exists():
        try:
            sha = subprocess.run(
                ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
                capture_output=True, text=True, timeout=5, check=True,
            ).stdout.strip()  # fmt: skip
            dirty = subprocess.run(
                ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                capture_output=True, text=True, timeout=5, check=True,
            ).stdout.strip()  # fmt: skip
            version += f"+g{sha}" + (".dirty" if dirty else "")
        except (OSError, subprocess.SubprocessError):
            pass
    return version


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def files_digest(folder: Path, names: list[str]) -> str:
    """One sha256 over ``(name, sha256(file))`` pairs, names sorted."""
    digest = hashlib.sha256()
    for name in sorted(names):
        path = folder / name
        if not path.is_file():
            raise IntegrityError(f"model file missing: {path}")
        digest.update(f"{name}\0{file_sha256(path)}\n".encode())
    return digest.hexdigest()


def weight_files(model: Forecaster) -> dict[str, str]:
    """Network key -> weights file, relative to the version folder."""
    if model.spec.mode == "pooled":
        return {POOLED: "weights.safetensors"}
    return {t: f"weights/{t}.safetensors" for t in model.tickers}


def _fit_summary(report: TrainingReport) -> dict[str, Any]:
    return {
        key: {
            "epochs": fit.epochs,
            "best_epoch": fit.best_epoch,
            "best_val_loss": fit.best_val_loss,
            "stop_reason": fit.stop_reason,
            "seconds": round(fit.seconds, 3),
            "n_train": fit.n_train,
            "n_val": fit.n_val,
            "train_loss": list(fit.train_loss),
            "val_loss": list(fit.val_loss),
        }
        for key, fit in report.fits.items()
    }


#: How the model card names each architecture.
ARCH_TITLES = {"lstm": "LSTM", "lstm_attention": "Attention-LSTM", "transformer": "Transformer"}


def architecture(spec: ModelSpec) -> str:
    """The network of ``spec`` in words, for the model card.

    >>> architecture(ModelSpec("m", arch="lstm_attention", hidden=64))
    '2 x 64 LSTM, dropout 0.0, additive attention over the 24 weeks, one linear head'
    """
    if spec.arch == "transformer":
        return (
            f"{spec.layers} encoder layers, d_model {spec.hidden}, {HEADS} heads, feed-forward "
            f"{FEEDFORWARD * spec.hidden}, sinusoidal positions, dropout {spec.dropout}, one "
            "linear head on the last week"
        )
    size = f"{spec.layers} x {spec.hidden} LSTM, dropout {spec.dropout}"
    if spec.arch == "lstm_attention":
        return f"{size}, additive attention over the {spec.window} weeks, one linear head"
    return f"{size}, one linear head"


def _fmt(value: Any, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}g}"


def _purpose(spec: ModelSpec) -> str:
    if spec.loss == "sharpe":
        return "position scores (a portfolio trained for its Sharpe ratio)"
    return "forecaster of next week's adjusted close"


def _loss(spec: ModelSpec) -> str:
    if spec.loss == "sharpe":
        return (
            "Sharpe loss (the weekly Sharpe ratio of the portfolio its scores size into, "
            f"{describe_limits(spec)}; models.portfolio)"
        )
    return "MSE loss"


def model_card(
    model: Forecaster, report: TrainingReport, source: dict[str, Any] | None = None
) -> str:
    """A markdown summary: data, architecture, training, test metrics against naive."""
    spec = model.spec
    lines = [
        f"# {spec.name}",
        "",
        f"{ARCH_TITLES[spec.arch]} {_purpose(spec)} from the last {spec.window} weeks of "
        f"{', '.join(DESCRIPTIONS[f] for f in spec.features)} (foliosim). Research use: it is "
        "not investment advice.",
        "",
        "## Data",
        f"- Tickers: {', '.join(model.tickers)}",
        f"- Training window: {model.train_start.date()} .. {model.train_end.date()} "
        "(validation carved from its end; scalers fitted on the training split only)",
        f"- Data fingerprint (sha256 of the training closes): `{model.data_fingerprint}`",
    ]
    if source and "data" in source:
        data = source["data"]
        lines.append(f"- Source: {data.get('source')} {data.get('path') or ''}".rstrip())
    lines += [
        "",
        "## Model",
        f"- Architecture: `{spec.arch}`, {architecture(spec)}",
        f"- Mode: {spec.mode}; preset: {spec.preset}",
        f"- Scaling: {spec.scaling}; optimiser {spec.optimizer} (lr {spec.lr}, weight decay "
        f"{spec.weight_decay}), batch {spec.batch}, {_loss(spec)}",
        f"- Inputs: {', '.join(spec.features)} (each standardised on the training split)",
        f"- Early stopping: patience {spec.patience}, at most {spec.max_epochs} epochs, "
        f"validation fraction {spec.val_fraction}, seed {spec.seed}",
        "",
        "## Training",
        "| network | epochs | best epoch | best val loss | stop reason |",
        "|---|---|---|---|---|",
    ]
    for key, fit in report.fits.items():
        lines.append(
            f"| {key} | {fit.epochs} | {fit.best_epoch} | {_fmt(fit.best_val_loss)} | "
            f"{fit.stop_reason} |"
        )
    lines += ["", "## Test split (weeks after the training window)"]
    per = report.metrics.get("per_ticker", {})
    portfolio = report.metrics.get("portfolio")
    if portfolio is not None:
        lines.append(
            f"The scores are not forecasts, so no forecast error is given. The sized portfolio "
            f"over the {portfolio['test_weeks']} test weeks: annualised Sharpe ratio "
            f"{_fmt(portfolio['test_sharpe'], 3)} ({portfolio['limits']}, no costs)."
        )
    elif not per:
        lines.append("No test weeks: the data ends at the training window's end.")
    else:
        lines += [
            "Errors on weekly returns. MSE ratio = model MSE / naive MSE (naive: next close = "
            "last close); below 1 means the model beats the naive forecast.",
            "",
            "| ticker | weeks | MSE ratio | model RMSE | naive RMSE | model MAE | hit rate |",
            "|---|---|---|---|---|---|---|",
        ]
        for t, m in per.items():
            lines.append(
                f"| {t} | {m['n']} | {_fmt(m['mse_ratio'])} | "
                f"{_fmt(m['model']['return']['rmse'])} | {_fmt(m['naive']['return']['rmse'])} | "
                f"{_fmt(m['model']['return']['mae'])} | {_fmt(m['model']['return']['hit_rate'])} |"
            )
        ratio = report.metrics["all"]["mse_ratio"]
        beats = sum(1 for m in per.values() if (m["mse_ratio"] or 1) < 1)
        verdict = "beats" if ratio is not None and ratio < 1 else "does not beat"
        lines += [
            "",
            f"Over all tickers the model {verdict} the naive forecast (MSE ratio "
            f"{_fmt(ratio)}); it has the lower error for {beats} of {len(per)} tickers. "
            "A ratio near 1 means the predictions carry little information about next "
            "week's return.",
        ]
    return "\n".join(lines) + "\n"


def write_version(
    model: Forecaster,
    report: TrainingReport,
    folder: Path,
    source: dict[str, Any] | None = None,
) -> dict[str, str]:
    """Write every file of a version into ``folder`` (created; must not exist).

    Returns ``{"weights_sha256": ..., "manifest_sha256": ...}``.
    """
    from models import plots  # matplotlib: only needed when a version is written

    folder.mkdir(parents=True)
    weights = weight_files(model)
    for key, rel in weights.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().contiguous() for k, v in model.nets[key].state_dict().items()}
        safetensors.torch.save_file(tensors, str(path), metadata={"network": key})
    config = {
        "schema_version": SCHEMA_VERSION,
        "name": model.spec.name,
        "spec": model.spec.to_dict(),
        "feature_spec": feature_spec(model.spec),
        "tickers": list(model.tickers),
        "networks": weights,
        "train_start": model.train_start.date().isoformat(),
        "train_end": model.train_end.date().isoformat(),
        "data_fingerprint": model.data_fingerprint,
        "code_version": code_version(),
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "source_config": source or {},
    }
    _write_json(folder / "config.json", config)
    _write_json(
        folder / "scaler.json",
        {
            "schema_version": SCHEMA_VERSION,
            "fitted_on": "training split only",
            "scalers": {t: s.to_dict() for t, s in model.scalers.items()},
        },
    )
    _write_json(
        folder / "metrics.json",
        {
            "schema_version": SCHEMA_VERSION,
            "test": report.metrics,
            "training": _fit_summary(report),
            "splits": report.splits,
        },
    )
    test = report.test.copy()
    for col in ("as_of", "target_week"):
        test[col] = pd.DatetimeIndex(test[col]).strftime("%Y-%m-%d")
    test.to_csv(folder / "test_predictions.csv", index=False, float_format="%.10g")
    (folder / "model_card.md").write_text(model_card(model, report, source), encoding="utf-8")
    for key, fit in report.fits.items():
        plots.learning_curve(
            fit,
            f"{model.spec.name} {key}: loss per epoch",
            folder / "plots" / f"learning_{key}.png",
        )
    for t in model.tickers:
        rows = report.test[report.test["ticker"] == t]
        if len(rows):
            plots.predicted_vs_actual(
                rows,
                f"{model.spec.name} {t}: test weeks",
                folder / "plots" / f"predicted_vs_actual_{t}.png",
            )
    return {
        "weights_sha256": files_digest(folder, list(weights.values())),
        "manifest_sha256": files_digest(folder, list(MANIFEST_FILES)),
    }


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    path.write_text(json.dumps(payload, indent=2, allow_nan=True) + "\n", encoding="utf-8")


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise IntegrityError(f"model file missing: {path}")
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise IntegrityError(f"model file {path} is not valid JSON ({err})") from None
    if not isinstance(payload, dict):
        raise IntegrityError(f"model file {path} does not hold a JSON object")
    return payload


def read_config(folder: Path) -> dict[str, Any]:
    """``config.json`` of a version folder, schema-checked."""
    config = _read_json(folder / "config.json")
    schema = config.get("schema_version")
    if schema != SCHEMA_VERSION:
        raise IntegrityError(
            f"{folder / 'config.json'} has schema version {schema!r}; this foliosim reads "
            f"schema {SCHEMA_VERSION}. Retrain the model with this version"
        )
    return config


def read_metrics(folder: Path) -> dict[str, Any]:
    """``metrics.json`` of a version folder: test metrics and each network's training record
    (the keys ``models show`` prints), checked."""
    path = folder / "metrics.json"
    metrics = _read_json(path)
    training = metrics.get("training")
    needed = ("epochs", "best_epoch", "best_val_loss", "stop_reason")
    if (
        not isinstance(metrics.get("test"), dict)
        or not isinstance(training, dict)
        or not all(isinstance(v, dict) and all(k in v for k in needed) for v in training.values())
    ):
        raise IntegrityError(
            f"model file {path} lacks its test metrics or training records; retrain the model"
        )
    return metrics


def read_version(
    folder: Path,
    weights_sha256: str | None = None,
    manifest_sha256: str | None = None,
) -> Forecaster:
    """Load a version folder written by :func:`write_version`, verifying it first.

    The digests (from the registry's tags) are checked before anything is parsed; the
    feature spec must be the one this code computes; weights are read with safetensors.
    """
    if manifest_sha256 is not None and files_digest(folder, list(MANIFEST_FILES)) != (
        manifest_sha256
    ):
        raise IntegrityError(
            f"config.json or scaler.json in {folder} differ from the registered version "
            "(checksum mismatch); the files were changed after registration. Retrain"
        )
    config = read_config(folder)
    try:
        spec = ModelSpec.from_dict(config["spec"])
        tickers = tuple(str(t) for t in config["tickers"])
        networks = {str(k): str(v) for k, v in config["networks"].items()}
        train_start = pd.Timestamp(config["train_start"])
        train_end = pd.Timestamp(config["train_end"])
        fingerprint = str(config["data_fingerprint"])
    except (KeyError, TypeError, ValueError, SpecError) as err:
        raise IntegrityError(f"{folder / 'config.json'} is malformed ({err})") from None
    if config.get("feature_spec") != feature_spec(spec):
        raise IntegrityError(
            f"{folder / 'config.json'}: feature spec {config.get('feature_spec')} is not the one "
            f"this foliosim computes ({feature_spec(spec)}); retrain the model"
        )
    if weights_sha256 is not None and files_digest(folder, list(networks.values())) != (
        weights_sha256
    ):
        raise IntegrityError(
            f"weights in {folder} differ from the registered version (checksum mismatch); "
            "the files were changed after registration. Retrain"
        )
    raw_scalers = _read_json(folder / "scaler.json").get("scalers", {})
    try:
        scalers = {t: Scaler.from_dict(raw_scalers[t]) for t in tickers}
    except (KeyError, TypeError, ValueError) as err:
        raise IntegrityError(f"{folder / 'scaler.json'} is malformed ({err})") from None
    nets: dict[str, WindowNet] = {}
    for key, rel in networks.items():
        path = folder / rel
        if not path.is_file():
            raise IntegrityError(f"model file missing: {path}")
        net = make_net(spec)
        try:
            state = safetensors.torch.load_file(str(path))
            net.load_state_dict(state, strict=True)
        except (SafetensorError, RuntimeError, OSError) as err:
            raise IntegrityError(f"{path} is not a valid weights file for {key} ({err})") from None
        net.eval()
        nets[key] = net
    return Forecaster(spec, tickers, nets, scalers, train_start, train_end, fingerprint)
