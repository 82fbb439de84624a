"""The server-rendered pages: accounts, one account, recommendations, models, runs, API docs.

Each page gathers plain data here and renders a Jinja2 template (autoescaped); charts get
their data as JSON (``tojson``) and are drawn by plotly.js in the browser.
"""

from __future__ import annotations

import datetime as dt
import math
from importlib import resources
from typing import Annotated, Any

import pandas as pd
from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape

from simulator import replay
from simulator.htmlkit import num
from simulator.web.api import ERROR, account_doc, open_account, recommendation, site_of
from simulator.web.site import SAFE_NAME, ApiError, Site, check_name, not_found

router = APIRouter(include_in_schema=False)

#: Rows of the last orders and the scheduled-action log shown on an account's page.
LOG_ROWS = 50


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
    return {"doc": doc, "chart": chart, "name": name}


@router.get("/", response_class=HTMLResponse)
def accounts_page(request: Request) -> HTMLResponse:
    site = site_of(request)
    rows = replay.list_accounts(site.workspace)
    return render(request, "accounts.html", rows=rows, workspace=str(site.workspace))


@router.get("/accounts/{name}", response_class=HTMLResponse)
def account_page(request: Request, name: str) -> HTMLResponse:
    view = account_view(site_of(request), name)
    return render(request, "account.html", charts=bool(view["chart"]), **view)


@router.get("/recommend", response_class=HTMLResponse)
def recommend_page(
    request: Request,
    config: str = "",
    profile: str = "",
    as_of: Annotated[dt.date | None, Query()] = None,
    set_: Annotated[list[str] | None, Query(alias="set")] = None,
) -> HTMLResponse:
    from strategies.profile import PRESETS

    site = site_of(request)
    overrides = [s for s in (set_ or []) if s.strip()]
    doc = recommendation(site, config, profile, as_of, overrides) if config else None
    chart = {}
    if doc is not None:
        chart["weights"] = {
            "tickers": [p["ticker"] for p in doc["positions"]],
            "weights": [p["weight"] for p in doc["positions"]],
        }
    return render(
        request,
        "recommend.html",
        configs=site.configs(),
        presets=list(PRESETS),
        config=config,
        profile=profile,
        overrides=overrides,
        doc=doc,
        chart=chart,
        charts=doc is not None,
    )


@router.get("/models", response_class=HTMLResponse)
def models_page(request: Request) -> HTMLResponse:
    from simulator.training import open_registry

    registry = open_registry(site_of(request).workspace)
    versions = [v.describe() for v in registry.versions()]
    return render(request, "models.html", versions=versions, registry=registry.uri)


@router.get("/models/{name}/{version}", response_class=HTMLResponse)
def model_page(request: Request, name: str, version: str) -> HTMLResponse:
    from models.artifacts import read_metrics
    from simulator.training import open_registry

    check_name("model", name)
    if not version.isdigit():
        raise ApiError(400, "bad_name", f"model version {version!r}: use a number")
    registry = open_registry(site_of(request).workspace)
    found = {(v.name, v.version): v for v in registry.versions()}
    info = found.get((name, int(version)))
    if info is None:
        raise not_found(f"no model version {name}/{version} in the registry")
    folder = registry.artifact_dir(info)
    card = folder / "model_card.md"
    metrics = read_metrics(folder)
    return render(
        request,
        "model.html",
        info=info.describe(),
        ref=info.ref,
        card=card.read_text(encoding="utf-8") if card.is_file() else "",
        test=metrics.get("test", {}),
    )


@router.get("/runs", response_class=HTMLResponse)
def runs_page(request: Request) -> HTMLResponse:
    from simulator.runs import list_runs, table_cells

    folder = site_of(request).settings.runs
    rows = list_runs(folder) if folder.is_dir() else []
    shown = [
        {
            "cells": table_cells(row),
            "link": SAFE_NAME.fullmatch(row["run"]) is not None
            and (folder / row["run"] / "tearsheet.html").is_file(),
            "run": row["run"],
        }
        for row in rows
    ]
    return render(request, "runs.html", rows=shown, folder=str(folder))


@router.get("/runs/{name}/tearsheet.html")
def tearsheet(request: Request, name: str) -> FileResponse:
    from simulator.runs import run_dirs

    check_name("run", name)
    folder = site_of(request).settings.runs
    found = {p.name: p for p in run_dirs(folder)} if folder.is_dir() else {}
    if name not in found or not (found[name] / "tearsheet.html").is_file():
        raise not_found(f"no run directory {name!r} with a tear sheet in {folder}")
    return FileResponse(found[name] / "tearsheet.html", media_type="text/html")


@router.get("/docs", response_class=HTMLResponse)
def api_docs(request: Request) -> HTMLResponse:
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
                    "body": "requestBody" in op,
                    "responses": {k: v.get("description", "") for k, v in op["responses"].items()},
                }
            )
    return render(request, "docs.html", endpoints=endpoints, error=ERROR["description"])


def plotly_js() -> FileResponse:
    """plotly.min.js from the plotly package (no CDN)."""
    path = resources.files("plotly") / "package_data" / "plotly.min.js"
    return FileResponse(str(path), media_type="text/javascript")
