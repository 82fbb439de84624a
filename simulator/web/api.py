"""The JSON API: the command line's reads and the account step, over HTTP.

``GET /api/accounts`` (``replay list --json``), ``GET /api/accounts/{name}`` (``replay status
--json`` with the scheduled-action log), ``POST /api/accounts/{name}/step`` (``replay step``;
bearer token), ``GET /api/recommend`` (``recommend --json``), ``GET /api/models`` (``models
list --json``) and ``GET /api/runs`` (``runs list --json``). Errors are ``{"error": {"status",
"code", "message"}}`` with the HTTP status of their kind (see :mod:`simulator.web.app`).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from simulator import replay
from simulator.summary import nan_to_none
from simulator.web.scheduler import read_log
from simulator.web.security import check_token
from simulator.web.site import ApiError, Site

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


def authorized(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    """The dependency of every mutating endpoint: 401 without the server's token."""
    check_token(request, site_of(request).settings.token)


class StepRequest(BaseModel):
    """What to step: ``weeks`` (default 1), or every week ``until`` a date; ``live`` first
    downloads the newest prices from Yahoo (as ``replay step --live``)."""

    model_config = ConfigDict(extra="forbid")

    weeks: Annotated[int, Field(ge=1, le=2600)] | None = None
    until: dt.date | None = None
    live: bool = False


def account_doc(site: Site, account: replay.Account, log_entries: int = 50) -> dict[str, Any]:
    """``replay status --json`` of ``account`` with its schedule log (newest last)."""
    doc = replay.status(account)
    doc.pop("journal")  # a server path: not the client's business
    doc["schedule_log"] = read_log(site.workspace, account.name, log_entries)
    return doc


def open_account(site: Site, name: str) -> replay.Account:
    """Account ``name``; a malformed name is refused (400) before any file is touched."""
    replay.journal_path(site.workspace, name)
    return replay.open_account(site.workspace, name)


@router.get("/accounts", summary="Every paper account (replay list --json)", responses={500: ERROR})
def accounts(request: Request) -> list[dict[str, Any]]:
    return replay.list_accounts(site_of(request).workspace)


@router.get(
    "/accounts/{name}",
    summary="One paper account (replay status --json) with its scheduled-action log",
    responses={400: ERROR, 404: ERROR, 422: ERROR},
)
def account(request: Request, name: str) -> dict[str, Any]:
    site = site_of(request)
    with open_account(site, name) as acct:
        return account_doc(site, acct)


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
        502: {"description": "--live: Yahoo could not be reached; nothing was recorded"},
    },
)
def step(
    request: Request, name: str, body: Annotated[StepRequest | None, Body()] = None
) -> dict[str, Any]:
    site = site_of(request)
    ask = body or StepRequest()
    if ask.weeks is not None and ask.until is not None:
        raise ApiError(400, "bad_request", "give weeks or until, not both")
    count = ask.weeks if ask.weeks is not None else (None if (ask.until or ask.live) else 1)
    replay.journal_path(site.workspace, name)
    acct, done = replay.step(
        site.workspace, name, weeks=count, until=ask.until, live=ask.live, note=lambda _l: None
    )
    acct.close()
    if len(done):
        site.warm(name)
    recorded = [w.date().isoformat() for w in done]
    with open_account(site, name) as acct:
        return {"account": name, "recorded": recorded, "status": account_doc(site, acct)}


@router.get(
    "/recommend",
    summary="Next week's allocation for a profile (recommend --json)",
    responses={400: ERROR, 404: ERROR, 422: ERROR},
)
def recommend(
    request: Request,
    config: Annotated[
        str, Query(description="A .toml file inside the server's folder, relative to it.")
    ],
    profile: Annotated[
        str | None,
        Query(description="conservative, moderate or aggressive (default: the config's own)."),
    ] = None,
    as_of: Annotated[dt.date | None, Query(description="Decide at the close of this week.")] = None,
    set_: Annotated[
        list[str] | None,
        Query(alias="set", description="SECTION.KEY=VALUE overrides, as --set (repeatable)."),
    ] = None,
) -> dict[str, Any]:
    return recommendation(site_of(request), config, profile, as_of, set_ or [])


def recommendation(
    site: Site, config: str, profile: str | None, as_of: dt.date | None, overrides: list[str]
) -> dict[str, Any]:
    """``recommend --json`` of a config of the server's folder; a profile must be a preset
    (a profile file is a path: the API does not read arbitrary files)."""
    from simulator.config import load_config
    from simulator.recommend import recommend as make
    from strategies.profile import PRESETS

    if profile and profile not in PRESETS:
        raise ApiError(400, "bad_request", f"profile {profile!r}: use one of {', '.join(PRESETS)}")
    cfg = load_config(site.config_path(config), overrides)
    doc = make(cfg, site.workspace, profile or None, as_of)
    result: dict[str, Any] = nan_to_none(doc)
    return result


@router.get(
    "/models", summary="The registry's versions (models list --json)", responses={422: ERROR}
)
def models(request: Request) -> dict[str, Any]:
    from simulator.training import open_registry

    registry = open_registry(site_of(request).workspace)
    return {"registry": registry.uri, "versions": [v.describe() for v in registry.versions()]}


@router.get("/runs", summary="The run directories (runs list --json)", responses={422: ERROR})
def runs(request: Request) -> list[dict[str, Any]]:
    from simulator.runs import list_runs

    folder = site_of(request).settings.runs
    rows = list_runs(folder) if folder.is_dir() else []
    for row in rows:
        row.pop("path", None)  # a server path: not the client's business
    result: list[dict[str, Any]] = nan_to_none(rows)
    return result
