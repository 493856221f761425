"""The console's access token.

The console shows customer recordings, so even on 127.0.0.1 every page and the audio route need
the token: from ``?token=`` once (then kept in an HttpOnly, SameSite=Strict cookie so forms from
other sites cannot post reviews with it), from the cookie, or from an ``Authorization: Bearer``
header for scripts.
"""

from __future__ import annotations

import logging
import os
import secrets
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

log = logging.getLogger(__name__)

TOKEN_ENV = "CALLQA_REVIEW_TOKEN"
TOKEN_COOKIE = "callqa_review_token"


def resolve_token(given: str | None) -> tuple[str, bool]:
    """The token to require and whether it was generated here (then it must be printed)."""
    token = given or os.environ.get(TOKEN_ENV)
    if token:
        return token, False
    return secrets.token_urlsafe(24), True


def _presented(request: Request) -> tuple[str | None, str]:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip(), "header"
    if "token" in request.query_params:
        return request.query_params["token"], "query"
    cookie = request.cookies.get(TOKEN_COOKIE)
    if cookie:
        return cookie, "cookie"
    return None, ""


def gate(request: Request, token: str) -> Response | None:
    """``None`` to let the request through, else the refusal (or the redirect that drops ``?token=``)."""
    presented, how = _presented(request)
    if presented is None:
        return _refuse(401, "This review console needs its access token. Open the address that "
                            "`callqa serve` printed (it ends in ?token=…), or ask whoever runs the console for it.")
    if not secrets.compare_digest(presented.encode(), token.encode()):
        log.warning("refused %s %s: wrong token (from %s)", request.method, request.url.path, how)
        return _refuse(403, "The access token is wrong or from an earlier run of the console. Open the address "
                            "that `callqa serve` printed this time.")
    if how == "query" and request.method == "GET":
        # keep the token out of the address bar, history and Referer: cookie it and drop it
        query = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
        response = RedirectResponse(same_site_location(request.url.path, urlencode(query)), status_code=303)
        remember(response, TOKEN_COOKIE, token)
        return response
    request.state.token_via = how
    return None


def same_site_location(path: str, query: str = "") -> str:
    """A relative redirect target (never built from the ``Host`` header, which a client chooses),
    that cannot turn into another site: ``//evil.example`` or ``/\\evil`` collapse to one ``/``."""
    path = "/" + path.lstrip("/\\")
    return f"{path}?{query}" if query else path


def remember(response: Response, name: str, value: str) -> None:
    response.set_cookie(name, value, httponly=True, samesite="strict", max_age=30 * 24 * 3600)


def _refuse(status: int, message: str) -> Response:
    title = "Sign-in needed" if status == 401 else "Access refused"
    body = f"<!doctype html><meta charset=utf-8><title>{title}</title><h1>{title}</h1><p>{message}</p>"
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return HTMLResponse(body, status_code=status, headers=headers)
