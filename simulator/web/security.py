"""The app's security rules, in one place.

- **Host.** A request must name this server in its ``Host`` header (``127.0.0.1``,
  ``localhost``, ``[::1]`` or the address it was bound to, unless bound to every interface):
  a page elsewhere cannot reach the server through a DNS name it rebinds to 127.0.0.1.
- **Token.** Every mutating endpoint needs ``Authorization: Bearer TOKEN``
  (:func:`require_token`, compared in constant time); the token is printed at start or taken
  from ``FOLIOSIM_TOKEN``. Without it: 401.
- **Cross-site requests.** A POST, any ``/api`` request and a page that runs a decision
  (``/recommend`` with a config), that a browser marks as coming
  from another site (``Sec-Fetch-Site: cross-site`` or ``same-site``: another port of
  localhost is the same site) or whose ``Origin`` is not this server is refused with 403; a
  POST with a body must be ``application/json`` (415), which an HTML form cannot send.
  Browsers never attach a bearer token on their own, so a forged request has no token either.
- **Headers.** Every response has ``X-Content-Type-Options: nosniff``, ``Referrer-Policy:
  no-referrer`` and a Content-Security-Policy that allows only this server's own scripts (no
  inline script), and no framing; a tear sheet is served sandboxed (no script at all).
"""

from __future__ import annotations

import hmac
import os
import secrets

from starlette.requests import Request
from starlette.responses import Response

from simulator.errors import ConfigError
from simulator.web.site import ApiError

TOKEN_VAR = "FOLIOSIM_TOKEN"
#: The hosts a request may name besides the bound address.
LOOPBACK = ("127.0.0.1", "localhost", "::1")
#: The policy of the app's pages: its own scripts only; plotly sets inline styles.
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
#: A tear sheet is a file from a run directory: no script, its own inline styles and images.
TEARSHEET_POLICY = (
    "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:; "
    "frame-ancestors 'none'"
)


def server_token() -> tuple[str, bool]:
    """The token: ``FOLIOSIM_TOKEN`` when set (True), else a new random one (False)."""
    given = os.environ.get(TOKEN_VAR, "")
    if given:
        if len(given) < 16:
            raise ConfigError(
                f"{TOKEN_VAR} is {len(given)} characters long; use at least 16 (or unset it "
                "and use the token printed at start)"
            )
        return given, True
    return secrets.token_urlsafe(24), False


def allowed_hosts(bound: str) -> set[str] | None:
    """The host names a request may carry (None: any, when bound to every interface)."""
    if bound in ("0.0.0.0", "::", ""):
        return None
    return {*LOOPBACK, bound.strip("[]")}


def _host_name(header: str) -> str:
    """``Host`` without its port: ``[::1]:8765`` -> ``::1``, ``localhost:80`` -> ``localhost``."""
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def check_request(request: Request, hosts: set[str] | None) -> ApiError | None:
    """The error a request gets before any route (host, cross-site rules), or None."""
    host = request.headers.get("host", "")
    if hosts is not None and _host_name(host).lower() not in hosts:
        return ApiError(
            400, "bad_host", f"unknown Host {host!r}: open the server by the address it printed"
        )
    api = request.url.path.startswith("/api/") or request.url.path == "/openapi.json"
    post = request.method not in ("GET", "HEAD", "OPTIONS")
    # A page that runs a decision: another site must not make the server work for it.
    decides = request.url.path == "/recommend" and bool(request.query_params.get("config"))
    if not (api or post or decides):
        return None  # a page may be opened from a link anywhere
    site = request.headers.get("sec-fetch-site", "")
    if site in ("cross-site", "same-site"):
        return ApiError(403, "cross_site", f"refused: a {site} request")
    origin = request.headers.get("origin")
    if origin is not None and origin != f"{request.url.scheme}://{host}":
        return ApiError(403, "cross_site", f"refused: a request from origin {origin!r}")
    length = request.headers.get("content-length", "").strip()
    has_body = (length.isdigit() and int(length) > 0) or "transfer-encoding" in request.headers
    if post and has_body:
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/json":
            return ApiError(
                415, "unsupported_media_type", "send the request body as application/json"
            )
    return None


def check_token(request: Request, token: str) -> None:
    """Raise 401 unless the request carries ``Authorization: Bearer <token>``."""
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given:
        raise ApiError(
            401,
            "unauthorized",
            "this endpoint changes the workspace: send the token printed by `foliosim serve` "
            f"(or set in {TOKEN_VAR}) as 'Authorization: Bearer TOKEN'",
        )
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise ApiError(401, "unauthorized", "wrong token: use the one `foliosim serve` printed")


def add_headers(response: Response, path: str) -> None:
    """The security headers of every response (see the module docstring)."""
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Cross-Origin-Resource-Policy"] = "same-origin"
    # A sweep's report is a file from a sweep directory too: served as a tear sheet is.
    policy = TEARSHEET_POLICY if path.endswith(("/tearsheet.html", "/sweep.html")) else PAGE_POLICY
    response.headers["Content-Security-Policy"] = policy
