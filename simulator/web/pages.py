"""The server-rendered pages: accounts, one account, recommendations, models, runs, API docs.

Each page gathers plain data here, in a pool of the app (:mod:`simulator.web.work`), and
renders a Jinja2 template (autoescaped); charts get their data as JSON (``tojson``) and are
drawn by plotly.js in the browser. Files are read through :mod:`simulator.web.files` (regular
files inside their folder, no symbolic link followed).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from importlib import resources
from typing import Annotated, Any

import pandas as pd
from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, StreamingResponse
from jinja2 import Environment, PackageLoader, select_autoescape
from markdown_it import MarkdownIt
from markupsafe import Markup

from models.artifacts import read_metrics
from simulator.errors import FoliosimError
from simulator.htmlkit import num
from simulator.runs import table_cells
from simulator.web.api import (
    ERROR,
    account_doc,
    accounts_json,
    check_recommendation,
    deciding,
    open_account,
    reading,
    recommendation,
    run_rows,
    site_of,
)
from simulator.web.files import open_inside, read_inside, regular_file, size_of, stream
from simulator.web.site import (
    SAFE_NAME,
    WEB_OVERRIDES,
    ApiError,
    Site,
    as_api_error,
    check_name,
    not_found,
)
from strategies.profile import PRESETS

router = APIRouter(include_in_schema=False)

#: Rows of the last orders and the scheduled-action log shown on an account's page.
LOG_ROWS = 50
#: The most of a model card a page shows, in bytes.
CARD_LIMIT = 1 << 20


def templates() -> Environment:
    """The page templates (package data), every value autoescaped."""
    env = Environment(
        loader=PackageLoader("simulator.web", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pct"] = lambda v: num(v, "+.2%")
    env.filters["pct0"] = lambda v: num(v, ".1%")
    env.filters["money"] = lambda v: num(v, ",.2f")
    env.filters["shares"] = lambda v: num(v, ",.0f")
    env.filters["ratio"] = lambda v: num(v, ".3f")
    return env


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    env: Environment = request.app.state.templates
    page = env.get_template(template).render(path=request.url.path, **context)
    return HTMLResponse(page, status_code=status)


def _series(values: pd.Series | Any) -> list[float | None]:
    return [None if not math.isfinite(v) else float(v) for v in values]


def account_view(site: Site, name: str) -> dict[str, Any]:
    """Everything the account's page shows, as plain data."""
    with open_account(site, name) as account:
        doc = account_doc(site, account, LOG_ROWS)
        frame = site.comparison(account)
        journal = account.journal
        last = journal.last()
        seq = journal.count()
        recent = journal.orders(seq) if last is not None else journal.orders().iloc[:0]
        held = journal.holdings(seq) if last is not None else None
    chart: dict[str, Any] = {}
    if frame is not None:
        chart["equity"] = {
            "weeks": [w.date().isoformat() for w in frame.index],
            "account": _series(frame["account"]),
            "equal_weight": _series(frame["equal_weight"]),
            "benchmark": _series(frame["benchmark"]),
            "benchmark_name": account.config.data.benchmark,
        }
        doc["versus"] = {k: frame[k].iloc[-1] / frame[k].iloc[0] - 1 for k in frame.columns}
    positions = []
    if held is not None and last is not None:
        for t, shares, close in zip(held["ticker"], held["shares"], held["close"], strict=True):
            value = shares * close
            positions.append(
                {
                    "ticker": t,
                    "shares": shares,
                    "close": close,
                    "value": value,
                    "weight": value / last.value,
                }
            )
        chart["weights"] = {
            "tickers": [p["ticker"] for p in positions],
            "weights": _series(pd.Series([p["weight"] for p in positions], dtype=float)),
        }
    decided = recent["date_submitted"].dt.strftime("%Y-%m-%d").fillna("")
    doc["last_orders"] = [
        {**row, "decided": day}
        for row, day in zip(
            recent[["ticker", "side", "size", "price", "value", "status", "model_version"]]
            .astype(object)
            .to_dict("records"),
            decided,
            strict=True,
        )
    ]
    doc["position_rows"] = positions
    result: dict[str, Any] = site.public({"doc": doc, "chart": chart, "name": name})
    return result


@router.get("/", response_class=HTMLResponse)
async def accounts_page(request: Request) -> HTMLResponse:
    site = site_of(request)
    rows = await reading(request, accounts_json, site)
    return render(request, "accounts.html", rows=rows, workspace=site.public(str(site.workspace)))


@router.get("/accounts/{name}", response_class=HTMLResponse)
async def account_page(request: Request, name: str) -> HTMLResponse:
    view = await reading(request, account_view, site_of(request), name)
    return render(request, "account.html", charts=bool(view["chart"]), **view)


@router.get("/recommend", response_class=HTMLResponse)
async def recommend_page(
    request: Request,
    config: str = "",
    profile: str = "",
    as_of: str = "",
    set_: Annotated[list[str] | None, Query(alias="set")] = None,
) -> HTMLResponse:
    """The form and, with a config, its recommendation. ``set`` may repeat and each value may
    hold several overrides, one per line (the form's text box). A request the app refuses or
    cannot serve gets the form back, filled in as sent, with the message beside it and the
    error's status."""
    site = site_of(request)
    overrides = [line.strip() for s in set_ or [] for line in s.splitlines() if line.strip()]
    configs = await reading(request, site.run_configs)
    folders = await reading(request, site.data_folders)
    doc = None
    problem: ApiError | None = None
    try:
        day = _as_of(as_of)
        check_recommendation(profile, overrides, folders)
        if config:
            doc = await deciding(request, recommendation, site, config, profile, day, overrides)
    except (ApiError, FoliosimError) as err:
        problem = as_api_error(err)
        problem = ApiError(problem.status, problem.code, site.public(problem.message))
    chart = {}
    if doc is not None:
        chart["weights"] = {
            "tickers": [p["ticker"] for p in doc["positions"]],
            "weights": [p["weight"] for p in doc["positions"]],
        }
    return render(
        request,
        "recommend.html",
        status=problem.status if problem is not None else 200,
        configs=configs,
        presets=list(PRESETS),
        allowed=WEB_OVERRIDES,
        folders=site.public(sorted(set(folders.values()))),
        config=config,
        profile=profile,
        as_of=as_of,
        overrides=overrides,
        doc=doc,
        problem=problem,
        chart=chart,
        charts=doc is not None,
    )


def _as_of(text: str) -> dt.date | None:
    """The form's ``as_of`` (empty: the newest complete week); 400 for anything but a date."""
    if not text.strip():
        return None
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise ApiError(
            400, "bad_request", f"as of {text[:40]!r}: give a date as YYYY-MM-DD, or leave it empty"
        ) from None


def models_view(site: Site) -> dict[str, Any]:
    """The registry's versions with their seeds and tags (listed again only when the store
    changed: :class:`simulator.web.listing.ModelListing`)."""
    registry, found = site.models.versions(site.workspace)
    versions = [v.describe() for v in found]
    view: dict[str, Any] = site.public({"versions": versions, "registry": registry.uri})
    return view


@router.get("/models", response_class=HTMLResponse)
async def models_page(request: Request) -> HTMLResponse:
    view = await reading(request, models_view, site_of(request))
    return render(request, "models.html", **view)


def card_html(text: str) -> Markup:
    """A model card's Markdown as HTML, with raw HTML off: a ``<script>`` or any tag in the
    card is shown as text, never passed through; links only to safe schemes (markdown-it's
    check refuses ``javascript:`` and the like)."""
    renderer = MarkdownIt("commonmark", {"html": False}).enable("table")
    return Markup(renderer.render(text))  # html off: every tag of the card is escaped


def model_view(site: Site, name: str, version: int) -> dict[str, Any]:
    registry, versions = site.models.versions(site.workspace)
    found = {(v.name, v.version): v for v in versions}
    info = found.get((name, version))
    if info is None:
        raise not_found(f"no model version {name}/{version} in the registry")
    folder = registry.artifact_dir(info)
    card = read_inside(folder, "model_card.md", limit=CARD_LIMIT)
    metrics = read_metrics(folder)
    view: dict[str, Any] = site.public(
        {
            "info": info.describe(),
            "ref": info.ref,
            "card": card or "",
            "test": metrics.get("test", {}),
        }
    )
    view["card_html"] = card_html(view["card"])
    return view


@router.get("/models/{name}/{version}", response_class=HTMLResponse)
async def model_page(request: Request, name: str, version: str) -> HTMLResponse:
    check_name("model", name)
    if not version.isdigit() or len(version) > 9:
        raise ApiError(400, "bad_name", f"model version {version[:20]!r}: use a number")
    view = await reading(request, model_view, site_of(request), name, int(version))
    return render(request, "model.html", **view)


def runs_view(site: Site) -> list[dict[str, Any]]:
    """The rows of the runs page; a run links to its tear sheet, a sweep to its report
    (sweep.html), where that is a regular file inside its directory."""
    folder = site.settings.runs
    shown = []
    for row in run_rows(site):
        page = "sweep.html" if row.get("kind") == "sweep" else "tearsheet.html"
        shown_file = SAFE_NAME.fullmatch(row["run"]) and regular_file(folder, row["run"], page)
        link = f"/runs/{row['run']}/{page}" if shown_file else ""
        shown.append({"cells": table_cells(row), "link": link, "run": row["run"]})
    return shown


@router.get("/runs", response_class=HTMLResponse)
async def runs_page(request: Request) -> HTMLResponse:
    site = site_of(request)
    shown = await reading(request, runs_view, site)
    return render(request, "runs.html", rows=shown, folder=site.public(str(site.settings.runs)))


#: The pages the run folder serves, by file name: the marker file that makes a directory one
#: of its kind (a run's summary.json, a sweep's sweep.json), the kind (in a bad name's 400)
#: and what a 404 says is missing.
RUN_FILES = {
    "tearsheet.html": ("summary.json", "run", "run directory {name!r} with a tear sheet"),
    "sweep.html": ("sweep.json", "sweep", "sweep {name!r} with a report"),
}


def open_run_file(site: Site, name: str, page: str) -> int:
    """A descriptor of ``page`` (a key of :data:`RUN_FILES`) of run ``name``: a regular file
    in a real directory of the run folder that holds its regular marker file (404 for a
    symbolic link, whichever part it is)."""
    marker, _, missing = RUN_FILES[page]
    fd = open_inside(site.settings.runs, name, page)
    if fd is None or not regular_file(site.settings.runs, name, marker):
        if fd is not None:
            os.close(fd)
        raise not_found(f"no {missing.format(name=name)} in the run folder")
    return fd


async def run_file(request: Request, name: str, page: str) -> StreamingResponse:
    """``page`` of run ``name`` (:func:`open_run_file`), streamed from its descriptor."""
    check_name(RUN_FILES[page][1], name)
    fd = await reading(request, open_run_file, site_of(request), name, page)
    return StreamingResponse(
        stream(fd), media_type="text/html", headers={"Content-Length": str(size_of(fd))}
    )


@router.get("/runs/{name}/tearsheet.html")
async def tearsheet(request: Request, name: str) -> StreamingResponse:
    return await run_file(request, name, "tearsheet.html")


@router.get("/runs/{name}/sweep.html")
async def sweep_report(request: Request, name: str) -> StreamingResponse:
    return await run_file(request, name, "sweep.html")


@router.get("/docs", response_class=HTMLResponse)
async def api_docs(request: Request) -> HTMLResponse:
    """The JSON API from its OpenAPI schema: per endpoint its parameters and, for a JSON body,
    its fields and example bodies (the request model's own examples, so the page cannot drift
    from what the API validates)."""
    schema = request.app.openapi()
    endpoints = []
    for path, methods in schema["paths"].items():
        for method, op in methods.items():
            endpoints.append(
                {
                    "method": method.upper(),
                    "path": path,
                    "summary": op.get("summary", ""),
                    "secured": bool(op.get("security")),
                    "parameters": [
                        {
                            "name": p["name"],
                            "in": p["in"],
                            "required": p.get("required", False),
                            "description": p.get("description", ""),
                        }
                        for p in op.get("parameters", [])
                    ],
                    "body": request_body(schema, op),
                    "responses": {k: v.get("description", "") for k, v in op["responses"].items()},
                }
            )
    return render(request, "docs.html", endpoints=endpoints, error=ERROR["description"])


def request_body(schema: dict[str, Any], op: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON body of operation ``op`` of the OpenAPI ``schema``: whether it is required,
    its fields (name, type, description) and its examples as JSON text; None without one."""
    body = op.get("requestBody")
    if body is None:
        return None
    shape = _resolve(schema, body.get("content", {}).get("application/json", {}).get("schema", {}))
    fields = [
        {"name": name, "type": _type_of(spec), "description": _description(spec)}
        for name, spec in shape.get("properties", {}).items()
    ]
    examples = [json.dumps(e) for e in shape.get("examples", [])]
    return {"required": bool(body.get("required")), "fields": fields, "examples": examples}


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """``node`` with its ``$ref`` followed (the first object of an ``anyOf``: an optional
    body is ``anyOf: [model, null]``)."""
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
        found: dict[str, Any] = schema["components"]["schemas"][ref.rsplit("/", 1)[-1]]
        return found
    for option in node.get("anyOf", []):
        if option.get("type") != "null":
            return _resolve(schema, option)
    return node


def _type_of(spec: dict[str, Any]) -> str:
    """A field's JSON type in words: ``integer 1..2600 or null``, ``string (date) or null``."""
    kinds = []
    for option in spec.get("anyOf", [spec]):
        kind = str(option.get("type", "any"))
        if "format" in option:
            kind += f" ({option['format']})"
        if "minimum" in option or "maximum" in option:
            low, high = option.get("minimum"), option.get("maximum")
            kind += f" {'' if low is None else f'{low:g}'}..{'' if high is None else f'{high:g}'}"
        kinds.append(kind)
    return " or ".join(kinds)


def _description(spec: dict[str, Any]) -> str:
    """A field's description (pydantic puts an optional field's inside its ``anyOf``)."""
    found = [spec.get("description")] + [o.get("description") for o in spec.get("anyOf", [])]
    return next((str(d) for d in found if d), "")


def plotly_js() -> FileResponse:
    """plotly.min.js from the plotly package (no CDN)."""
    path = resources.files("plotly") / "package_data" / "plotly.min.js"
    return FileResponse(str(path), media_type="text/javascript")
