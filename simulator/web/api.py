"""The JSON API: the command line's reads and the account step, over HTTP.

``GET /api/accounts`` (``replay list --json``), ``GET /api/accounts/{name}`` (``replay status
--json`` with the scheduled-action log), ``POST /api/accounts/{name}/step`` (``replay step``;
bearer token), ``GET /api/recommend`` (``recommend --json``), ``GET /api/models`` (``models
list --json``) and ``GET /api/runs`` (``runs list --json``). Errors are ``{"error": {"status",
"code", "message"}}`` with the HTTP status of their kind (see :mod:`simulator.web.app`).

Each route does its work through a pool (:mod:`simulator.web.work`): reads in one, the
decisions of a step or a recommendation in another, each within the server's time limit. No
answer holds an absolute server path (:meth:`simulator.web.site.Site.public`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from simulator import accounts as paper
from simulator import stepping
from simulator.config import load_config
from simulator.recommend import recommend as make_recommendation
from simulator.runs import list_runs
from simulator.summary import nan_to_none
from simulator.training import open_registry
from simulator.web.files import regular_file
from simulator.web.scheduler import read_log
from simulator.web.security import check_token
from simulator.web.site import WEB_OVERRIDES, ApiError, Site, check_overrides
from simulator.web.work import Pool
from strategies.profile import PRESETS

T = TypeVar("T")

router = APIRouter(prefix="/api", tags=["api"])
bearer = HTTPBearer(
    auto_error=False,
    description="The token `foliosim serve` printed at start, or FOLIOSIM_TOKEN.",
)

#: The error documented for every endpoint.
ERROR = {"description": "A JSON error: {error: {status, code, message}}"}


def site_of(request: Request) -> Site:
    site: Site = request.app.state.site
    return site


async def reading(request: Request, fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in the pool of reads (503 when full, 504 over the time limit)."""
    pool: Pool = request.app.state.reads
    return await pool.run(fn, *args)


async def deciding(request: Request, fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in the pool of decisions: work that runs a strategy's code (503 at once
    when every worker is busy, 504 over the time limit)."""
    pool: Pool = request.app.state.decisions
    return await pool.run(fn, *args)


async def authorized(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    """The dependency of every mutating endpoint: 401 without the server's token."""
    check_token(request, site_of(request).settings.token)


class StepRequest(BaseModel):
    """What to step: ``weeks`` (default 1), or every week ``until`` a date; ``live`` first
    downloads the newest prices from Yahoo (as ``replay step --live``). Its examples are the
    ones ``/docs`` shows (each validates: tests/test_web.py)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"weeks": 2}, {"until": "2023-06-23"}, {"live": True}, {}],
        },
    )

    weeks: (
        Annotated[
            int,
            Field(ge=1, le=2600, description="How many weeks to step (default 1; not with until)."),
        ]
        | None
    ) = None
    until: Annotated[
        dt.date | None,
        Field(description="Step every complete week up to this date (YYYY-MM-DD)."),
    ] = None
    live: Annotated[
        bool,
        Field(description="First download the newest prices from Yahoo (replay step --live)."),
    ] = False


def account_doc(site: Site, account: paper.Account, log_entries: int = 50) -> dict[str, Any]:
    """``replay status --json`` of ``account`` with its schedule log (newest last)."""
    # The journal is a server path: not the client's business.
    doc: dict[str, Any] = paper.status(account).model_dump(mode="json", exclude={"journal"})
    doc["schedule_log"] = read_log(site.workspace, account.name, log_entries)
    return doc


def open_account(site: Site, name: str) -> paper.Account:
    """Account ``name``; a malformed name is refused (400) before any file is touched."""
    paper.journal_path(site.workspace, name)
    return paper.open_account(site.workspace, name)


def account_json(site: Site, name: str) -> dict[str, Any]:
    with open_account(site, name) as acct:
        doc: dict[str, Any] = site.public(account_doc(site, acct))
        return doc


def accounts_json(site: Site) -> list[dict[str, Any]]:
    listed = paper.list_accounts(site.workspace)
    rows: list[dict[str, Any]] = site.public([r.model_dump(mode="json") for r in listed])
    return rows


#: The errors of every endpoint: too busy, too slow.
BUSY: dict[int | str, dict[str, Any]] = {503: ERROR, 504: ERROR}


@router.get(
    "/accounts", summary="Every paper account (replay list --json)", responses={500: ERROR, **BUSY}
)
async def accounts(request: Request) -> list[dict[str, Any]]:
    return await reading(request, accounts_json, site_of(request))


@router.get(
    "/accounts/{name}",
    summary="One paper account (replay status --json) with its scheduled-action log",
    responses={400: ERROR, 404: ERROR, 422: ERROR, **BUSY},
)
async def account(request: Request, name: str) -> dict[str, Any]:
    return await reading(request, account_json, site_of(request), name)


@router.post(
    "/accounts/{name}/step",
    summary="Step a paper account (replay step); needs the bearer token",
    dependencies=[Depends(authorized)],
    responses={
        400: ERROR,
        401: ERROR,
        403: ERROR,
        404: ERROR,
        409: {"description": "Another process or request is changing the account right now"},
        415: ERROR,
        422: ERROR,
        413: ERROR,
        502: {"description": "--live: Yahoo could not be reached; nothing was recorded"},
        **BUSY,
    },
)
async def step(
    request: Request, name: str, body: Annotated[StepRequest | None, Body()] = None
) -> dict[str, Any]:
    ask = body or StepRequest()
    if ask.weeks is not None and ask.until is not None:
        raise ApiError(400, "bad_request", "give weeks or until, not both")
    return await deciding(request, step_account, site_of(request), name, ask)


def step_account(site: Site, name: str, ask: StepRequest) -> dict[str, Any]:
    """``replay step`` of account ``name`` as ``ask`` says, and the account after it."""
    count = ask.weeks if ask.weeks is not None else (None if (ask.until or ask.live) else 1)
    paper.journal_path(site.workspace, name)
    acct, done = stepping.step(
        site.workspace, name, weeks=count, until=ask.until, live=ask.live, note=lambda _l: None
    )
    acct.close()
    if len(done):
        site.warm(name)
    recorded = [w.date().isoformat() for w in done]
    return {"account": name, "recorded": recorded, "status": account_json(site, name)}


@router.get(
    "/recommend",
    summary="Next week's allocation for a profile (recommend --json)",
    responses={400: ERROR, 404: ERROR, 422: ERROR, **BUSY},
)
async def recommend(
    request: Request,
    config: Annotated[
        str, Query(description="One of the configs the server lists (/recommend), by its path.")
    ],
    profile: Annotated[
        str | None,
        Query(description="conservative, moderate or aggressive (default: the config's own)."),
    ] = None,
    as_of: Annotated[dt.date | None, Query(description="Decide at the close of this week.")] = None,
    set_: Annotated[
        list[str] | None,
        Query(
            alias="set",
            description="Overrides, as --set (repeatable): the limits "
            + ", ".join(f"`{key}`" for key in WEB_OVERRIDES)
            + "; `data.source=csv` (or `bundled`); `data.path=` a CSV folder one of the "
            "server's configs reads.",
        ),
    ] = None,
) -> dict[str, Any]:
    site = site_of(request)
    check_recommendation(profile, set_ or [], await reading(request, site.data_folders))
    return await deciding(request, recommendation, site, config, profile, as_of, set_)


def check_recommendation(
    profile: str | None, overrides: list[str], folders: dict[str, str] | None = None
) -> None:
    """400 for a profile that is not a preset (a profile file is a path: the app reads no
    file a request names) or an override the app does not take (it would choose code, a
    download or a file: :func:`simulator.web.site.check_overrides` with the CSV folders of
    the server's configs)."""
    if profile and profile not in PRESETS:
        raise ApiError(400, "bad_request", f"profile {profile!r}: use one of {', '.join(PRESETS)}")
    check_overrides(overrides, folders)


def recommendation(
    site: Site,
    config: str,
    profile: str | None,
    as_of: dt.date | None,
    overrides: list[str] | None,
) -> dict[str, Any]:
    """``recommend --json`` of one of the server's configs (:meth:`Site.config_path`)."""
    folders = site.data_folders()
    check_recommendation(profile, overrides or [], folders)
    cfg = load_config(site.config_path(config), overrides or [])
    if cfg.data.path and any(o.partition("=")[0].strip() == "data.path" for o in overrides or []):
        # What the loader made of the value is what is read: one of the configs' folders.
        check_overrides([f"data.path={cfg.data.path}"], folders)
    doc = make_recommendation(cfg, site.workspace, profile or None, as_of).to_json()
    result: dict[str, Any] = site.public(nan_to_none(doc))
    return result


def models_json(site: Site) -> dict[str, Any]:
    registry = open_registry(site.workspace)
    doc = {"registry": registry.uri, "versions": [v.describe() for v in registry.versions()]}
    result: dict[str, Any] = site.public(doc)
    return result


@router.get(
    "/models",
    summary="The registry's versions (models list --json)",
    responses={422: ERROR, **BUSY},
)
async def models(request: Request) -> dict[str, Any]:
    return await reading(request, models_json, site_of(request))


def run_rows(site: Site) -> list[dict[str, Any]]:
    """``runs list --json`` of the run folder: the run directories that are real folders in
    it with a regular summary.json, and the sweeps with a regular sweep.json (a symbolic link
    is not followed), without their paths."""
    folder = site.settings.runs
    rows = list_runs(folder) if folder.is_dir() else []
    kept = []
    for row in rows:
        path = row.pop("path", None)  # a server path: not the client's business
        name = Path(path).name if isinstance(path, str) else str(row.get("run", ""))
        marker = "sweep.json" if row.get("kind") == "sweep" else "summary.json"
        if regular_file(folder, name, marker):
            kept.append(row)
    result: list[dict[str, Any]] = site.public(nan_to_none(kept))
    return result


@router.get(
    "/runs", summary="The run directories (runs list --json)", responses={422: ERROR, **BUSY}
)
async def runs(request: Request) -> list[dict[str, Any]]:
    return await reading(request, run_rows, site_of(request))
