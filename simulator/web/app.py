"""The FastAPI app of ``foliosim serve``, and the server that runs it.

:func:`create_app` builds the app over a workspace (:class:`~simulator.web.site.Settings`);
:func:`serve` binds the address first (a port in use is one ``error:`` line), prints the
address and the token, and runs uvicorn until interrupted (SIGTERM or Ctrl-C: requests get
:data:`GRACE` seconds to end, then the process leaves, abandoning work stuck in threads).
Errors have the HTTP status of their kind, as JSON under ``/api`` and as a page elsewhere,
and never show an absolute server path (:meth:`~simulator.web.site.Site.public`):

- 400: a malformed name, a bad query value or config (``ConfigError``), an override the app
  does not take;
- 401: no token or a wrong one; 403: a cross-site request; 415: a body that is not JSON;
- 404: an unknown account, run, model version, config or page;
- 409: the account is being changed right now (its lock is held: ``AccountBusyError``);
- 413: a request body over the limit (:class:`BodyLimit`);
- 422: a valid request the data or the journal cannot serve (other foliosim errors);
- 502: Yahoo could not be reached (``--live``); nothing was recorded;
- 503: every worker of its kind is busy; 504: over the time limit (:mod:`simulator.web.work`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import simulator
from simulator.errors import ConfigError, FoliosimError
from simulator.web import api, pages
from simulator.web.scheduler import Scheduler
from simulator.web.security import add_headers, allowed_hosts, check_request
from simulator.web.site import ApiError, Settings, Site, as_api_error
from simulator.web.work import Pool

#: Seconds SIGTERM or Ctrl-C leaves requests and a scheduled step to end before the server
#: stops (work stuck past it is abandoned: a step loses at most its week, see replay.md).
GRACE = 3.0
#: Reads that may wait for a free worker.
READ_QUEUE = 256


def _wants_json(request: Request) -> bool:
    path = request.url.path
    return path.startswith("/api/") or path in ("/api", "/openapi.json")


def error_response(request: Request, err: ApiError) -> Response:
    """``err`` as JSON under /api, else as a page (both with its status); its message names
    no absolute server path."""
    headers = {"WWW-Authenticate": "Bearer"} if err.status == 401 else None
    site: Site = request.app.state.site
    err = ApiError(err.status, err.code, site.public(err.message))
    if _wants_json(request):
        body = {"error": {"status": err.status, "code": err.code, "message": err.message}}
        return JSONResponse(body, status_code=err.status, headers=headers)
    return pages.render(request, "error.html", status=err.status, error=err)


class BodyTooLarge(HTTPException):
    """A request body over the limit, found while it streams in."""


class BodyLimit:
    """413 for a request body over ``limit`` bytes: at once when its ``Content-Length`` says
    so, else as soon as the bytes read pass it (a chunked body has no length)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    def _refusal(self) -> ApiError:
        return ApiError(
            413,
            "too_large",
            f"the request body is over the server's limit of {self.limit:,} bytes",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = Headers(scope=scope).get("content-length")
        if length is not None and (not length.strip().isdigit() or int(length) > self.limit):
            err = (
                self._refusal()
                if length.strip().isdigit()
                else ApiError(400, "bad_request", "Content-Length is not a number")
            )
            response = error_response(Request(scope), err)
            response.headers["Connection"] = "close"
            await response(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise BodyTooLarge(413, self._refusal().message)
            return message

        await self.app(scope, limited, send)


def create_app(settings: Settings) -> FastAPI:
    """The app over ``settings.workspace`` (see the module docstring)."""
    site = Site(settings)
    scheduler = Scheduler(settings.workspace, settings.tick_seconds, on_step=site.warm)
    limit = settings.time_limit

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        folder = settings.workspace / "replay"
        for path in sorted(folder.glob("*.sqlite")) if folder.is_dir() else []:
            site.warm(path.stem)
        if settings.schedule:
            scheduler.start()
        try:
            yield
        finally:
            scheduler.stop(timeout=GRACE)
            site.warmer.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        title="foliosim",
        version=simulator.__version__,
        description="Paper accounts, recommendations, models and runs of a foliosim "
        "workspace. Mutating endpoints need `Authorization: Bearer TOKEN`.",
        docs_url=None,  # Swagger UI and ReDoc load from a CDN: /docs is rendered here
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.site = site
    app.state.scheduler = scheduler
    app.state.reads = Pool("reads", settings.read_workers, READ_QUEUE, limit)
    app.state.decisions = Pool("decisions", settings.decision_workers, 0, limit)
    app.state.templates = pages.templates()
    hosts = allowed_hosts(settings.host)

    app.add_middleware(BodyLimit, limit=settings.body_limit)

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Response:
        problem = check_request(request, hosts)
        response = error_response(request, problem) if problem else await call_next(request)
        add_headers(response, request.url.path)
        return response

    @app.exception_handler(ApiError)
    async def on_api_error(request: Request, err: ApiError) -> Response:
        return error_response(request, err)

    @app.exception_handler(FoliosimError)
    async def on_foliosim_error(request: Request, err: FoliosimError) -> Response:
        return error_response(request, as_api_error(err))

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, err: RequestValidationError) -> Response:
        first = err.errors()[0] if err.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        message = f"{where or 'request'}: {first.get('msg', 'invalid')}"
        return error_response(request, ApiError(422, "invalid", message))

    @app.exception_handler(HTTPException)
    async def on_http(request: Request, err: HTTPException) -> Response:
        message = "no such page" if err.status_code == 404 else str(err.detail)
        code = {404: "not_found", 413: "too_large"}.get(err.status_code, "http_error")
        return error_response(request, ApiError(err.status_code, code, message))

    static = resources.files("simulator.web") / "static"
    app.mount("/static/app", StaticFiles(directory=str(static)), name="static")

    @app.get("/static/vendor/plotly.min.js", include_in_schema=False)
    def plotly() -> FileResponse:
        return pages.plotly_js()

    app.include_router(api.router)
    app.include_router(pages.router)
    return app


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``; a port in use is one ConfigError line."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port} ({err.strerror}); choose another --port, or stop "
            "the program that uses it"
        ) from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def server_config(app: FastAPI) -> uvicorn.Config:
    """How uvicorn runs the app: in-flight requests get :data:`GRACE` seconds at shutdown."""
    return uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=int(GRACE),
    )


def serve(settings: Settings, sock: socket.socket) -> None:
    """Run the app on ``sock`` until interrupted (SIGTERM, Ctrl-C).

    uvicorn stops on the signal: requests get :data:`GRACE` seconds, and the scheduler as
    many; then it raises the signal again, which ends the process. Should it return instead,
    the process leaves at once: work past its time limit may still hold threads that Python
    would wait for at exit."""
    # The scheduler's news (what it steps, trains and pins) goes to the terminal too.
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    news = logging.getLogger("foliosim.serve")
    news.addHandler(handler)
    news.setLevel(logging.INFO)
    server = uvicorn.Server(server_config(create_app(settings)))
    server.run(sockets=[sock])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0 if server.started else 1)
