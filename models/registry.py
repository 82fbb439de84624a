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
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlparse

import pandas as pd

from models.artifacts import (
    SCHEMA_VERSION,
    read_config,
    read_metrics,
    read_version,
    write_version,
)
from models.errors import RegistryError, did_you_mean
from models.forecaster import Forecaster, TrainingReport
from models.spec import PAPER_LIMITS, ModelSpec, trained_before

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

    @classmethod
    def pinned(cls, ref: str, tags: dict[str, str], created: dt.datetime) -> VersionInfo:
        """A version known by its ``NAME/V`` ref and tags alone (a paper account pins one by
        these, and reads its files without the store)."""
        name, _, number = ref.rpartition("/")
        if not name or not number.isdigit():
            raise RegistryError(f"{ref!r} is not a version reference NAME/V")
        return cls(name, int(number), (), dict(tags), None, None, created)

    @property
    def ref(self) -> str:
        return f"{self.name}/{self.version}"

    @property
    def tickers(self) -> tuple[str, ...]:
        return tuple(t for t in self.tags.get("tickers", "").split(",") if t)

    def _bad_tag(self, key: str, value: str) -> RegistryError:
        return RegistryError(
            f"{self.ref}: its tag {key} = {value!r} is not a number (the store was edited); "
            f"fix the tag, or retrain and set aliases to the new version"
        )

    @property
    def train_end(self) -> pd.Timestamp:
        value = self.tags.get("train_end", "")
        try:
            return pd.Timestamp(dt.date.fromisoformat(value))
        except ValueError:
            raise RegistryError(
                f"{self.ref}: its tag train_end = {value!r} is not a date YYYY-MM-DD (the store "
                "was edited); fix the tag or retrain"
            ) from None

    def describe(self) -> dict[str, Any]:
        """A JSON-ready summary (``models list --json``)."""
        tags = self.tags

        def number(key: str) -> float | None:
            value = tags.get(key)
            if value in (None, "", "None", "nan"):
                return None
            try:
                return float(value)
            except ValueError:
                raise self._bad_tag(key, value) from None

        def integer(key: str) -> int:
            value = tags.get(key, "0")
            if not value.isdigit():
                raise self._bad_tag(key, value)
            return int(value)

        return {
            "name": self.name,
            "version": self.version,
            "aliases": list(self.aliases),
            "tickers": list(self.tickers),
            "arch": tags.get("arch", "lstm"),  # versions from before architectures: LSTMs
            # ... and versions from before features and losses read closes, on MSE
            "features": tags.get("features", "close").split(","),
            "loss": tags.get("loss", "mse"),
            "mode": tags.get("mode"),
            "preset": tags.get("preset"),
            "window": integer("window"),
            # None for a version whose training run is gone and had no seed tag
            "seed": int(tags["seed"]) if tags.get("seed", "").isdigit() else None,
            "train_start": tags.get("train_start"),
            "train_end": tags.get("train_end"),
            "data_fingerprint": tags.get("data_fingerprint"),
            "weights_sha256": tags.get("weights_sha256"),
            "code_version": tags.get("code_version"),
            "limits": self._limits(),
            "schema_version": integer("schema_version"),
            "test_weeks": integer("test_weeks"),
            "test_mse_ratio": number("test_mse_ratio"),
            "test_hit_rate": number("test_hit_rate"),
            "created": self.created.isoformat(timespec="seconds"),
            "run_id": self.run_id,
        }

    def _limits(self) -> dict[str, Any] | None:
        """The limits a Sharpe version was trained under (its tags; a version registered
        before they were tagged: :data:`~models.spec.PAPER_LIMITS`); None for MSE."""
        tags = self.tags
        if tags.get("loss", "mse") != "sharpe":
            return None
        if "max_weight" not in tags:
            max_weight, gross, allow_short = PAPER_LIMITS
            return {"max_weight": max_weight, "gross": gross, "allow_short": allow_short}
        numbers: dict[str, float] = {}
        for key in ("max_weight", "gross"):
            try:
                numbers[key] = float(tags.get(key, ""))
            except ValueError:
                raise self._bad_tag(key, tags.get(key, "")) from None
        shorts = tags.get("allow_short", "")
        if shorts not in ("true", "false"):
            raise RegistryError(
                f"{self.ref}: its tag allow_short = {shorts!r} is not true or false (the store "
                "was edited); fix the tag or retrain"
            )
        return {**numbers, "allow_short": shorts == "true"}


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


def _limit_tags(spec: ModelSpec) -> dict[str, str]:
    """A Sharpe model's limits as tags (``max_weight``, ``gross``, ``allow_short``); none for
    an MSE model, which has no limits of its own."""
    if spec.loss != "sharpe":
        return {}
    return {
        "max_weight": repr(spec.max_weight),
        "gross": repr(spec.gross),
        "allow_short": "true" if spec.allow_short else "false",
    }


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
            if urlparse(self.uri).scheme in ("", "file"):
                raise RegistryError(
                    f"registry URI {self.uri!r} is a folder path, MLflow's file store, which "
                    "foliosim does not use; give sqlite:///PATH.db (a database file) or "
                    "http(s)://HOST of a tracking server"
                )
            database = self._database()
            if database is not None:
                if database.exists():
                    check_store(database, self._fix(database))
                else:
                    self._create_store(database)
            from mlflow import MlflowClient
            from mlflow.exceptions import MlflowException

            try:
                self._client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
            except MlflowException as err:
                raise RegistryError(f"cannot open the model registry {self.uri}: {err}") from None
        return self._client

    def _fix(self, database: Path) -> str:
        if self.embedded:
            return f"move it away (mv {database} {database}.broken) or restore it from a backup"
        return "check --registry-uri (or model.registry_uri): it must name an MLflow store"

    def _database(self) -> Path | None:
        """The SQLite file of a local store, None for a server or an in-memory store."""
        if self.embedded:
            return self.workspace / "mlflow.db"
        if urlparse(self.uri).scheme == "sqlite" and self.uri.startswith("sqlite:///"):
            database = unquote(self.uri[len("sqlite:///") :]).split("?")[0]
            if database and database != ":memory:":
                return Path(database).resolve()
        return None

    @contextlib.contextmanager
    def _store_lock(self) -> Iterator[None]:
        """Hold ``<store>.lock`` (waiting for another process) while the store is created or
        written: concurrent processes then create it once and register one at a time."""
        database = self._database()
        if database is None:
            yield
            return
        lock = database.with_name(database.name + ".lock")
        try:
            database.parent.mkdir(parents=True, exist_ok=True)
            handle = open(lock, "a+")  # noqa: SIM115 (closed by the with below)
        except OSError as err:
            raise RegistryError(
                f"cannot lock the model registry {database} ({err.strerror}); its folder must "
                "be writable"
            ) from None
        with handle:
            deadline = time.monotonic() + LOCK_WAIT_S
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise RegistryError(
                            f"another foliosim process has held the model registry {database} "
                            f"for over {LOCK_WAIT_S} s; run the command again when it is done"
                        ) from None
                    time.sleep(0.1)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _create_store(self, database: Path) -> None:
        """Create and migrate a new store in a temporary file, then rename it into place, under
        the store's lock: a failure (a full disk) or a kill leaves no half-made store, and
        concurrent first uses create it once."""
        from mlflow.exceptions import MlflowException
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
        from sqlalchemy.exc import SQLAlchemyError

        logging.getLogger("mlflow").setLevel(logging.WARNING)  # MLflow set its own at import
        with self._store_lock():
            if database.exists():
                check_store(database, self._fix(database))
                return  # another process made it while this one waited
            tmp = database.with_name(f".{database.name}.{os.getpid()}.tmp")
            uri = f"sqlite:///{tmp}"
            root = self._artifact_root() or self.workspace / "mlartifacts"
            try:
                tmp.unlink(missing_ok=True)
                SqlAlchemyStore(uri, root.as_uri())
                SqlAlchemyStore._engine_map.pop(uri).dispose()
                check_store(tmp, "")
                os.replace(tmp, database)
            except (MlflowException, SQLAlchemyError, OSError) as err:
                reason = " ".join(str(getattr(err, "orig", None) or err).split())[:200]
                raise RegistryError(
                    f"could not create the model registry {database} ({reason}); nothing was "
                    "left behind: free some disk space or fix the folder, and run again"
                ) from None
            finally:
                engine = SqlAlchemyStore._engine_map.pop(uri, None)
                if engine is not None:
                    engine.dispose()
                for leftover in (tmp, tmp.with_name(tmp.name + "-journal")):
                    leftover.unlink(missing_ok=True)

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
        from sqlalchemy.exc import SQLAlchemyError

        try:
            yield client
        except MlflowException as err:
            message = " ".join(str(err.message).split())
            raise RegistryError(f"{what} failed in {self.uri}: {message}") from None
        except SQLAlchemyError as err:
            reason = " ".join(str(getattr(err, "orig", None) or err).split())[:200]
            raise RegistryError(
                f"{what} failed in {self.uri}: the store's database refused it ({reason})"
            ) from None
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

    def ui_command(self, program: str = "mlflow") -> str:
        """The shell command that opens MLflow's UI on this store (``program``: how the
        shell runs mlflow)."""
        return f"{program} ui --backend-store-uri {self.uri}"

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
        clean_scratch(scratch)
        # The folder is locked while this process uses it: a later registration removes it,
        # and fails this run, only once the lock is free (this process died).
        holder = Path(tempfile.mkdtemp(prefix=f"version-{os.getpid()}-", dir=scratch))
        held = os.open(holder, os.O_RDONLY)
        fcntl.flock(held, fcntl.LOCK_EX)
        folder = holder / "files"
        try:
            written = write_version(model, report, folder, source)
            # The tag repeats config.json's code version (no second git call, never different).
            written = {**written, "code_version": read_config(folder)["code_version"]}
            _ = self.client  # creates the store first, under the lock: before taking it here
            with self._store_lock(), self._calls(f"registering {name}") as client:
                self._fail_leftovers(client)
                experiment = client.get_experiment_by_name(name)
                if experiment is not None:
                    experiment_id = experiment.experiment_id
                else:
                    root = self._artifact_root()
                    location = (root / name).as_uri() if root is not None else None
                    experiment_id = client.create_experiment(name, artifact_location=location)
                run = client.create_run(
                    experiment_id, run_name=f"train-{name}", tags={OWNER_TAG: holder.name}
                )
                run_id = run.info.run_id
                try:
                    params: dict[str, str] = {"arch": model.spec.arch}
                    params.update((k, str(v)) for k, v in model.spec.to_dict().items())
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
                            name, description=f"foliosim forecaster {name}"
                        )
                    version = client.create_model_version(
                        name,
                        source=f"models:/{logged.model_id}",
                        run_id=run_id,
                        tags=tags,
                        model_id=logged.model_id,
                        description=f"{model.spec.mode} {model.spec.preset} {model.spec.arch}, "
                        f"trained up to {tags['train_end']}",
                    )
                except BaseException:
                    client.set_terminated(run_id, "FAILED")
                    raise
                client.set_terminated(run_id, "FINISHED")
        finally:
            shutil.rmtree(holder, ignore_errors=True)
            os.close(held)
        info = self.get(name, int(version.version))
        model.version = info.ref
        return info

    def _fail_leftovers(self, client: MlflowClient) -> None:
        """Mark FAILED the training runs left RUNNING, and the logged models left PENDING, by
        registrations that were killed.

        Only in a local store, whose writers all hold its lock: with the lock held here, no
        registration is under way, so every foliosim run still RUNNING is a dead one's.
        """
        if self._database() is None:
            return
        experiments = [e.experiment_id for e in client.search_experiments()]
        if not experiments:
            return
        dead_runs: set[str] = set()
        for run in client.search_runs(experiments, "attributes.status = 'RUNNING'"):
            if OWNER_TAG in run.data.tags or self.embedded:
                client.set_terminated(run.info.run_id, "FAILED")
                dead_runs.add(run.info.run_id)
        from mlflow.entities import LoggedModelStatus

        # MLflow's SQL store keeps the status as a number, so a filter on 'PENDING' finds
        # nothing: every model is read and the pending ones picked here.
        token = None
        while True:
            page = client.search_logged_models(experiments, page_token=token)
            for logged in page:
                pending = logged.status == LoggedModelStatus.PENDING
                if pending and (logged.source_run_id in dead_runs or self.embedded):
                    client.finalize_logged_model(logged.model_id, LoggedModelStatus.FAILED)
            token = page.token
            if not token:
                break

    @staticmethod
    def _version_tags(
        model: Forecaster, report: TrainingReport, written: dict[str, str]
    ) -> dict[str, str]:
        overall = report.metrics.get("all") or {}
        hit = overall.get("model", {}).get("return", {}).get("hit_rate") if overall else None
        return {
            "tickers": ",".join(model.tickers),
            "arch": model.spec.arch,
            "features": ",".join(model.spec.features),
            "loss": model.spec.loss,
            "mode": model.spec.mode,
            "preset": model.spec.preset,
            "window": str(model.spec.window),
            "seed": str(model.spec.seed),
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
            **_limit_tags(model.spec),
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
        """Every version of ``name`` (or of every model), by name, oldest first per name.

        A fixed number of store calls whatever the count of versions: the models with their
        aliases, then their versions (paged), and for versions registered before their seed
        was tagged, one search of their training runs for its ``seed`` parameter (put in their
        ``tags`` as ``seed``).
        """
        if self.embedded and not (self.workspace / "mlflow.db").exists():
            if name is not None:
                self._check_name(name, [])
            return []  # nothing registered yet: do not create a store just to list it
        with self._calls("listing versions") as client:
            models = {m.name: m for m in client.search_registered_models()}
            if name is not None:
                self._check_name(name, sorted(models))
            wanted = [name] if name is not None else sorted(models)
            if not wanted:
                return []
            where = f"name = '{name}'" if name is not None else None
            found: list[Any] = []
            token = None
            while True:
                page = client.search_model_versions(where, max_results=1000, page_token=token)
                found.extend(page)
                token = page.token
                if not token:
                    break
            out = []
            for model_name in wanted:
                aliases = self._alias_map(models[model_name].aliases)
                mine = [mv for mv in found if mv.name == model_name]
                mine.sort(key=lambda v: int(v.version))
                out += [self._info(mv, aliases) for mv in mine]
            return self._with_seeds(client, out)

    @staticmethod
    def _with_seeds(client: MlflowClient, versions: list[VersionInfo]) -> list[VersionInfo]:
        """``versions``, those without a ``seed`` tag given their training run's ``seed``
        parameter (one search; a run that is gone leaves the version without one)."""
        untagged = {v.run_id for v in versions if "seed" not in v.tags and v.run_id}
        if not untagged:
            return versions
        experiments = [e.experiment_id for e in client.search_experiments()]
        seeds: dict[str, str] = {}
        ids = sorted(untagged)
        for start in range(0, len(ids), 100):
            chunk = ", ".join(f"'{i}'" for i in ids[start : start + 100])
            for run in client.search_runs(experiments, f"attributes.run_id IN ({chunk})"):
                if "seed" in run.data.params:
                    seeds[run.info.run_id] = run.data.params["seed"]
        return [
            replace(v, tags={**v.tags, "seed": seeds[v.run_id]})
            if "seed" not in v.tags and v.run_id in seeds
            else v
            for v in versions
        ]

    def _check_name(self, name: str, names: list[str]) -> None:
        if name not in names:
            where = "the workspace registry" if self.embedded else self.uri
            raise RegistryError(
                f"no registered model named {name!r} in {where}{did_you_mean(name, names)}; "
                "train one with `foliosim train CONFIG`"
            )

    @staticmethod
    def _alias_map(aliases: dict[str, str]) -> dict[int, tuple[str, ...]]:
        """A registered model's ``{alias: version}`` as ``{version: aliases}``."""
        found: dict[int, list[str]] = {}
        for alias, version in aliases.items():
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
        found = [v for v in every if trained_before(v.train_end, when)]
        if not every:  # a registered name whose versions were all deleted
            raise RegistryError(
                f"model {name!r} has no versions; train one with `foliosim train CONFIG`"
            )
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
        self._check_location(info, location)
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

    def metrics(self, info: VersionInfo) -> dict[str, Any]:
        """The version's training, split and test records (its ``metrics.json``)."""
        return read_metrics(self.artifact_dir(info))

    def _check_location(self, info: VersionInfo, location: str) -> None:
        """Refuse files kept anywhere but this registry's own places: a local store's files
        lie in the workspace or beside its database, a server's on that server (an edited
        store could otherwise make foliosim read or download from any path or host)."""
        local = _local_path(location)
        if local is not None:
            database = self._database()
            roots = [self.workspace, *([database.parent] if database is not None else [])]
            if database is not None and any(
                local.resolve().is_relative_to(root.resolve()) for root in roots
            ):
                return
        else:
            parsed, server = urlparse(location), urlparse(self.uri)
            if server.scheme in ("http", "https") and (
                (parsed.scheme == "mlflow-artifacts" and parsed.netloc in ("", server.netloc))
                or (parsed.scheme, parsed.netloc) == (server.scheme, server.netloc)
            ):
                return
        where = "the workspace" if self.embedded else f"the registry {self.uri}"
        raise RegistryError(
            f"the files of {info.ref} are registered at {location!r}, outside {where}; "
            "refusing to read them (the store was edited?). Retrain the model"
        )

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


#: The tag naming the scratch folder of the registration that made a run.
OWNER_TAG = "foliosim.scratch"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return True


def clean_scratch(scratch: Path, max_age_s: float = 600.0) -> list[Path]:
    """Remove the ``version-<pid>-*`` folders of registrations that were killed; returns them.

    A folder is left alone while its owner holds its lock, and while its owner's process is
    alive and the folder is younger than ``max_age_s`` (between creating it and locking it).
    """
    removed = []
    for folder in sorted(scratch.glob("version-*")):
        try:
            fd = os.open(folder, os.O_RDONLY)
        except OSError:
            continue  # gone already, or not a folder
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # its owner is alive and using it
            pid_text = folder.name.split("-")[1]
            young = time.time() - folder.stat().st_mtime < max_age_s
            if young and (not pid_text.isdigit() or _alive(int(pid_text))):
                continue  # maybe between its creation and its lock (or an older foliosim's)
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
        finally:
            os.close(fd)
    return removed


#: Seconds a process waits for another one's hold on the store (a registration takes ~1 s).
LOCK_WAIT_S = 120


def check_store(database: Path, fix: str) -> None:
    """Refuse a local store file that is not a complete MLflow database: not SQLite at all,
    truncated or corrupt, or half-migrated (left by an interrupted creation). ``fix`` ends
    the error."""
    import sqlite3

    with open(database, "rb") as handle:
        header = handle.read(16)
    if header != b"SQLite format 3\x00":
        raise RegistryError(f"{database} is not an MLflow store (not an SQLite database); {fix}")
    try:
        conn = sqlite3.connect(f"file:{quote(str(database))}?mode=ro", uri=True)
        try:
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        finally:
            conn.close()
    except sqlite3.DatabaseError as err:
        raise RegistryError(f"{database} is damaged ({err}); {fix}") from None
    if check != "ok":
        raise RegistryError(f"{database} is damaged (SQLite: {check}); {fix}")
    half = sorted(t for t in tables if t.startswith("_alembic_tmp_"))
    if half or not {"alembic_version", "experiments", "registered_models"} <= tables:
        raise RegistryError(
            f"{database} is a half-created MLflow store (an interrupted migration); {fix}"
        )


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
