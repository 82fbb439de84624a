"""The model registry: MLflow Model Registry holding plain-file versions.

Embedded default: an SQLite store ``<workspace>/mlflow.db`` and artifact folder
``<workspace>/mlartifacts``, created on first use. Any MLflow tracking URI (a shared server,
another SQLite file) can replace it. MLflow's telemetry is switched off before MLflow is
imported, and every call names its store explicitly, so nothing lands in the current
directory.

A training run logs parameters, learning curves (one metric step per epoch), test metrics and
the plots; its logged model holds the version's files (see :mod:`models.artifacts`); the
registered version carries the tags that describe it. Versions are never overwritten: each
registration adds one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

import pandas as pd

from models.artifacts import SCHEMA_VERSION, read_config, read_version, write_version
from models.errors import RegistryError, did_you_mean
from models.forecaster import Forecaster, TrainingReport

if TYPE_CHECKING:
    from mlflow import MlflowClient

_URI_VARS = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
_REF = re.compile(r"(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]*)(?:/(?P<version>[^@/]+)|@(?P<alias>.+))?")
_ALIAS = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")


@dataclass(frozen=True)
class VersionInfo:
    """One registered version, as the registry describes it (no files read)."""

    name: str
    version: int
    aliases: tuple[str, ...]
    tags: dict[str, str]
    run_id: str | None
    model_id: str | None
    created: dt.datetime

    @property
    def ref(self) -> str:
        return f"{self.name}/{self.version}"

    @property
    def tickers(self) -> tuple[str, ...]:
        return tuple(t for t in self.tags.get("tickers", "").split(",") if t)

    @property
    def train_end(self) -> pd.Timestamp:
        return pd.Timestamp(self.tags["train_end"])

    def describe(self) -> dict[str, Any]:
        """A JSON-ready summary (``models list --json``)."""
        tags = self.tags

        def number(key: str) -> float | None:
            value = tags.get(key)
            return float(value) if value not in (None, "", "None") else None

        return {
            "name": self.name,
            "version": self.version,
            "aliases": list(self.aliases),
            "tickers": list(self.tickers),
            "mode": tags.get("mode"),
            "preset": tags.get("preset"),
            "window": int(tags.get("window", "0")),
            "train_start": tags.get("train_start"),
            "train_end": tags.get("train_end"),
            "data_fingerprint": tags.get("data_fingerprint"),
            "weights_sha256": tags.get("weights_sha256"),
            "code_version": tags.get("code_version"),
            "schema_version": int(tags.get("schema_version", "0")),
            "test_weeks": int(tags.get("test_weeks", "0")),
            "test_mse_ratio": number("test_mse_ratio"),
            "test_hit_rate": number("test_hit_rate"),
            "created": self.created.isoformat(timespec="seconds"),
            "run_id": self.run_id,
        }


def parse_ref(ref: str) -> tuple[str, int | None, str | None]:
    """``NAME``, ``NAME/VERSION`` or ``NAME@ALIAS`` -> ``(name, version, alias)``.

    >>> parse_ref("paper12-lstm/3"), parse_ref("paper12-lstm@prod")
    (('paper12-lstm', 3, None), ('paper12-lstm', None, 'prod'))
    """
    match = _REF.fullmatch(ref.strip())
    if not match:
        raise RegistryError(
            f"model reference {ref!r}: expected NAME, NAME/VERSION or NAME@ALIAS "
            "(e.g. paper12-lstm/3)"
        )
    version = match["version"]
    if version is not None and not (version.isdigit() and int(version) > 0):
        raise RegistryError(f"model reference {ref!r}: version must be a positive integer")
    return match["name"], int(version) if version else None, match["alias"]


def spec_digest(spec: dict[str, Any]) -> str:
    """sha256 of a spec's canonical JSON, to find versions trained with the same spec."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def _local_path(uri: str) -> Path | None:
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return Path(unquote(parsed.path) if parsed.scheme else uri)
    return None


class Registry:
    """The model registry of a workspace, or of an MLflow tracking URI.

    Parameters
    ----------
    workspace
        The foliosim workspace; the embedded store lives here, and remote artifacts are cached
        here.
    uri
        An MLflow tracking URI; empty for the embedded SQLite store.
    """

    def __init__(self, workspace: Path, uri: str = "") -> None:
        self.workspace = workspace.resolve()
        self.embedded = not uri
        if self.embedded:
            self.uri = f"sqlite:///{self.workspace / 'mlflow.db'}"
        else:
            self.uri = uri
        self._client: MlflowClient | None = None

    # -- MLflow plumbing ---------------------------------------------------------------------

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
            for name in ("mlflow", "alembic"):
                logging.getLogger(name).setLevel(logging.WARNING)
            if self.embedded:
                self.workspace.mkdir(parents=True, exist_ok=True)
            from mlflow import MlflowClient
            from mlflow.exceptions import MlflowException

            try:
                self._client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
            except MlflowException as err:
                raise RegistryError(f"cannot open the model registry {self.uri}: {err}") from None
        return self._client

    @contextlib.contextmanager
    def _calls(self, what: str) -> Iterator[MlflowClient]:
        """Run MLflow calls with this store as the process's tracking and registry URI.

        Some MLflow calls resolve ``models:/`` URIs through the global URI (default: an
        ``mlflow.db`` in the current directory), so it is pointed here for their duration.
        """
        client = self.client
        import mlflow
        import mlflow.tracking._model_registry.utils as registry_utils
        import mlflow.tracking._tracking_service.utils as tracking_utils
        from mlflow.exceptions import MlflowException

        # set_*_uri also export MLFLOW_*_URI into os.environ, so the exact previous state
        # (module globals and environment) is put back afterwards, not a resolved default.
        saved_globals = (tracking_utils._tracking_uri, registry_utils._registry_uri)
        saved_env = {var: os.environ.get(var) for var in _URI_VARS}
        mlflow.set_tracking_uri(self.uri)
        mlflow.set_registry_uri(self.uri)
        try:
            yield client
        except MlflowException as err:
            raise RegistryError(f"{what} failed in {self.uri}: {err.message}") from None
        finally:
            tracking_utils._tracking_uri, registry_utils._registry_uri = saved_globals
            for var, value in saved_env.items():
                if value is None:
                    os.environ.pop(var, None)
                else:
                    os.environ[var] = value

    def _artifact_root(self) -> Path | None:
        """Where new experiments keep their files; None lets a tracking server decide.

        MLflow's own default for a database store is ``./mlruns`` in the current directory, so
        a local store keeps them beside its database file instead.
        """
        scheme = urlparse(self.uri).scheme
        if scheme in ("http", "https", "databricks"):
            return None
        if scheme == "sqlite" and self.uri.startswith("sqlite:///"):
            # sqlite:///relative.db or sqlite:////absolute.db (SQLAlchemy's convention)
            database = unquote(self.uri[len("sqlite:///") :]).split("?")[0]
            if database and database != ":memory:":
                return Path(database).resolve().parent / "mlartifacts"
        return self.workspace / "mlartifacts"

    def ui_command(self) -> str:
        """The shell command that opens MLflow's UI on this store."""
        return f"mlflow ui --backend-store-uri {self.uri}"

    # -- writing -----------------------------------------------------------------------------

    def register(
        self,
        model: Forecaster,
        report: TrainingReport,
        source: dict[str, Any] | None = None,
    ) -> VersionInfo:
        """Log a training run and add one version of ``model.spec.name``; returns it."""
        from mlflow.entities import Metric, Param

        name = model.spec.name
        scratch = self.workspace / "tmp"
        scratch.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix="version-", dir=scratch)) / "files"
        try:
            written = write_version(model, report, folder, source)
            # The tag repeats config.json's code version (no second git call, never different).
            written = {**written, "code_version": read_config(folder)["code_version"]}
            with self._calls(f"registering {name}") as client:
                experiment = client.get_experiment_by_name(name)
                if experiment is not None:
                    experiment_id = experiment.experiment_id
                else:
                    root = self._artifact_root()
                    location = (root / name).as_uri() if root is not None else None
                    experiment_id = client.create_experiment(name, artifact_location=location)
                run = client.create_run(experiment_id, run_name=f"train-{name}")
                run_id = run.info.run_id
                try:
                    params = {k: str(v) for k, v in model.spec.to_dict().items()}
                    params.update(
                        tickers=",".join(model.tickers),
                        train_start=model.train_start.date().isoformat(),
                        train_end=model.train_end.date().isoformat(),
                    )
                    now = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
                    metrics = [
                        Metric(f"{key}/{kind}_loss", value, now, epoch)
                        for key, fit in report.fits.items()
                        for kind, curve in (("train", fit.train_loss), ("val", fit.val_loss))
                        for epoch, value in enumerate(curve, start=1)
                    ]
                    metrics += [
                        Metric(f"test/{metric_name}", value, now, 0)
                        for metric_name, value in _flat_test_metrics(report).items()
                    ]
                    client.log_batch(run_id, params=[Param(k, v) for k, v in params.items()])
                    for start in range(0, len(metrics), 900):
                        client.log_batch(run_id, metrics=metrics[start : start + 900])
                    for rel in ("config.json", "metrics.json", "model_card.md"):
                        client.log_artifact(run_id, str(folder / rel))
                    client.log_artifacts(run_id, str(folder / "plots"), "plots")
                    tags = self._version_tags(model, report, written)
                    logged = client.create_logged_model(
                        experiment_id, name=name, source_run_id=run_id, tags=tags
                    )
                    client.log_model_artifacts(logged.model_id, str(folder))
                    client.finalize_logged_model(logged.model_id, "READY")
                    if not client.search_registered_models(f"name = '{name}'"):
                        client.create_registered_model(
                            name, description=f"foliosim LSTM forecaster {name}"
                        )
                    version = client.create_model_version(
                        name,
                        source=f"models:/{logged.model_id}",
                        run_id=run_id,
                        tags=tags,
                        model_id=logged.model_id,
                        description=f"{model.spec.mode} {model.spec.preset} LSTM, "
                        f"trained up to {tags['train_end']}",
                    )
                except BaseException:
                    client.set_terminated(run_id, "FAILED")
                    raise
                client.set_terminated(run_id, "FINISHED")
        finally:
            shutil.rmtree(folder.parent, ignore_errors=True)
        info = self.get(name, int(version.version))
        model.version = info.ref
        return info

    @staticmethod
    def _version_tags(
        model: Forecaster, report: TrainingReport, written: dict[str, str]
    ) -> dict[str, str]:
        overall = report.metrics.get("all") or {}
        hit = overall.get("model", {}).get("return", {}).get("hit_rate") if overall else None
        return {
            "tickers": ",".join(model.tickers),
            "mode": model.spec.mode,
            "preset": model.spec.preset,
            "window": str(model.spec.window),
            "train_start": model.train_start.date().isoformat(),
            "train_end": model.train_end.date().isoformat(),
            "data_fingerprint": model.data_fingerprint,
            "spec_sha256": spec_digest(model.spec.to_dict()),
            "code_version": written["code_version"],
            "schema_version": str(SCHEMA_VERSION),
            "weights_sha256": written["weights_sha256"],
            "manifest_sha256": written["manifest_sha256"],
            "test_weeks": str(report.test["target_week"].nunique()),
            "test_mse_ratio": str(overall.get("mse_ratio")),
            "test_hit_rate": str(hit),
        }

    def set_alias(self, name: str, version: int, alias: str) -> VersionInfo:
        """Point ``NAME@alias`` at a version (moving it if it pointed elsewhere)."""
        if not _ALIAS.fullmatch(alias) or alias.lower() == "latest":
            raise RegistryError(
                f"alias {alias!r}: use letters, digits, '_' or '-', starting with a letter "
                "('latest' is reserved)"
            )
        self.get(name, version)
        with self._calls(f"setting alias {alias}") as client:
            client.set_registered_model_alias(name, alias, str(version))
        return self.get(name, version)

    # -- reading -----------------------------------------------------------------------------

    def names(self) -> list[str]:
        if self.embedded and not (self.workspace / "mlflow.db").exists():
            return []  # nothing registered yet: do not create a store just to list it
        with self._calls("listing models") as client:
            return sorted(m.name for m in client.search_registered_models())

    def versions(self, name: str | None = None) -> list[VersionInfo]:
        """Every version of ``name`` (or of every model), oldest first per name."""
        names = self.names()
        if name is not None:
            self._check_name(name, names)
            names = [name]
        if not names:
            return []  # also: no store is created just to find it empty
        out: list[VersionInfo] = []
        with self._calls("listing versions") as client:
            for model_name in names:
                aliases = self._aliases(client, model_name)
                found = client.search_model_versions(f"name = '{model_name}'")
                for mv in sorted(found, key=lambda v: int(v.version)):
                    out.append(self._info(mv, aliases))
        return out

    def _check_name(self, name: str, names: list[str]) -> None:
        if name not in names:
            where = "the workspace registry" if self.embedded else self.uri
            raise RegistryError(
                f"no registered model named {name!r} in {where}{did_you_mean(name, names)}; "
                "train one with `foliosim train CONFIG`"
            )

    @staticmethod
    def _aliases(client: MlflowClient, name: str) -> dict[int, tuple[str, ...]]:
        found: dict[int, list[str]] = {}
        for alias, version in client.get_registered_model(name).aliases.items():
            found.setdefault(int(version), []).append(alias)
        return {v: tuple(sorted(a)) for v, a in found.items()}

    @staticmethod
    def _info(mv: Any, aliases: dict[int, tuple[str, ...]]) -> VersionInfo:
        return VersionInfo(
            name=mv.name,
            version=int(mv.version),
            aliases=aliases.get(int(mv.version), ()),
            tags=dict(mv.tags),
            run_id=mv.run_id,
            model_id=mv.model_id or _logged_model_id(mv.source),
            created=dt.datetime.fromtimestamp(mv.creation_timestamp / 1000, dt.UTC),
        )

    def get(self, name: str, version: int) -> VersionInfo:
        return self._pick(self.versions(name), name, version)

    @staticmethod
    def _pick(versions: list[VersionInfo], name: str, version: int) -> VersionInfo:
        found = {v.version: v for v in versions}
        if version not in found:
            have = f"versions 1..{max(found)}" if found else "no versions"
            raise RegistryError(f"model {name!r} has {have}; there is no version {version}")
        return found[version]

    def resolve(self, ref: str) -> VersionInfo:
        """``NAME`` (the newest version), ``NAME/VERSION`` or ``NAME@ALIAS``."""
        name, version, alias = parse_ref(ref)
        found = self.versions(name)
        if not found:
            raise RegistryError(f"model {name!r} has no versions yet")
        if version is not None:
            return self._pick(found, name, version)
        if alias is not None:
            for info in found:
                if alias in info.aliases:
                    return info
            known = sorted({a for info in found for a in info.aliases})
            listed = ", ".join(known) if known else "none"
            raise RegistryError(
                f"model {name!r} has no alias {alias!r}{did_you_mean(alias, known)} "
                f"(aliases: {listed}); set one with `foliosim models alias {name}/N {alias}`"
            )
        return found[-1]

    def as_of(self, name: str, date: Any) -> VersionInfo:
        """The version of ``name`` with the latest ``train_end`` strictly before ``date``
        (the newest such version when several share it): point-in-time selection."""
        when = pd.Timestamp(date)
        every = self.versions(name)
        found = [v for v in every if v.train_end < when]
        if not found:
            earliest = min(v.train_end for v in every)
            raise RegistryError(
                f"no version of {name!r} was trained on data ending before {when.date()} "
                f"(the earliest train_end is {earliest.date()}); train one with an earlier "
                "model.train_end"
            )
        return max(found, key=lambda v: (v.train_end, v.version))

    def artifact_dir(self, info: VersionInfo) -> Path:
        """A local folder holding the version's files (downloaded for a remote store)."""
        if info.model_id is None:
            raise RegistryError(f"{info.ref} has no logged model; it was not made by foliosim")
        with self._calls(f"locating {info.ref}") as client:
            location = client.get_logged_model(info.model_id).artifact_location
        local = _local_path(location)
        if local is not None:
            if not local.is_dir():
                raise RegistryError(
                    f"the files of {info.ref} are missing ({local}); the workspace was moved "
                    "or cleaned. Retrain, or point FOLIOSIM_WORKSPACE at the original folder"
                )
            return local
        cache = self.workspace / "model-cache" / info.name / str(info.version)
        if not cache.is_dir():
            import mlflow.artifacts

            partial = Path(tempfile.mkdtemp(prefix="download-", dir=self.workspace))
            with self._calls(f"downloading {info.ref}"):
                mlflow.artifacts.download_artifacts(
                    artifact_uri=location, dst_path=str(partial), tracking_uri=self.uri
                )
            cache.parent.mkdir(parents=True, exist_ok=True)
            os.replace(partial, cache)
        return cache

    def load(self, ref: str | VersionInfo, tickers: list[str] | None = None) -> Forecaster:
        """Load a version, verified against its registered checksums.

        ``tickers``: refuse the version unless it has a model for each of them.
        """
        info = self.resolve(ref) if isinstance(ref, str) else ref
        schema = info.tags.get("schema_version")
        if schema != str(SCHEMA_VERSION):
            raise RegistryError(
                f"{info.ref} has schema version {schema}; this foliosim reads schema "
                f"{SCHEMA_VERSION}. Retrain it"
            )
        model = read_version(
            self.artifact_dir(info),
            weights_sha256=info.tags.get("weights_sha256", ""),
            manifest_sha256=info.tags.get("manifest_sha256", ""),
        )
        model.version = info.ref
        if tickers is not None:
            model.check_tickers(tickers)
        return model


def _logged_model_id(source: str | None) -> str | None:
    """The logged model id in a version's ``models:/<id>`` source (MLflow's SQL store does not
    fill ``ModelVersion.model_id``).

    >>> _logged_model_id("models:/m-0123"), _logged_model_id("runs:/abc/model")
    ('m-0123', None)
    """
    if source and source.startswith("models:/m-") and "/" not in source[len("models:/") :]:
        return source[len("models:/") :]
    return None


def _flat_test_metrics(report: TrainingReport) -> dict[str, float]:
    """``{"AAPL/mse_ratio": ..., "AAPL/model_return_rmse": ...}`` with finite values only."""
    out: dict[str, float] = {}
    groups = dict(report.metrics.get("per_ticker", {}))
    if report.metrics.get("all"):
        groups["all"] = report.metrics["all"]
    for who, m in groups.items():
        if m.get("mse_ratio") is not None:
            out[f"{who}/mse_ratio"] = float(m["mse_ratio"])
        for forecaster in ("model", "naive"):
            for kind in ("price", "return"):
                for metric, value in m[forecaster][kind].items():
                    if value is not None and value == value:  # skip None and NaN
                        out[f"{who}/{forecaster}_{kind}_{metric}"] = float(value)
    return out
