"""The review console: a small server-rendered FastAPI app over the results store.

Routes: ``/`` → ``/queue``; ``/queue`` the flagged-call queue; ``/calls/{call_id}`` a call with its
audio, transcript, verdicts and evidence; ``POST /calls/{call_id}/reviews`` a human review;
``/audio/{call_id}`` the call's recording (Range requests, so the player can seek);
``/calibration`` machine-vs-human agreement (``?format=csv`` for the table as CSV).

Protection, besides the token (:mod:`pipelines.review.auth`): a review POST must carry the CSRF
token of the reviewer's session and must not come from another origin (a page on another
127.0.0.1 port is same-*site* for the browser, so SameSite cookies alone do not stop it); every
response carries a Content-Security-Policy, ``X-Frame-Options``, ``nosniff`` and ``no-store``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import mimetypes
import secrets
from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Form, Request
from fastapi.responses import FileResponse, HTMLResponse, PlainTextResponse, RedirectResponse, Response

from pipelines.review import calibration, queries
from pipelines.review.auth import gate, remember
from pipelines.review.web import render
from pipelines.results.store import Store

log = logging.getLogger(__name__)

REVIEWER_COOKIE = "callqa_reviewer"
SESSION_COOKIE = "callqa_session"
AUDIO_TYPES = {".flac": "audio/flac", ".mp3": "audio/mpeg", ".wav": "audio/wav", ".ogg": "audio/ogg",
               ".opus": "audio/ogg", ".m4a": "audio/mp4", ".webm": "audio/webm", ".aac": "audio/aac",
               ".amr": "audio/amr", ".wma": "audio/x-ms-wma", ".mp4": "audio/mp4"}
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def security_headers(nonce: str) -> dict[str, str]:
    """Headers on every response: scripts only with this response's nonce, nothing from other
    origins, no framing, no MIME sniffing, and nothing kept in caches (pages hold transcripts)."""
    csp = (f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'unsafe-inline'; img-src 'self' data:; "
           "media-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
    return {
        "Content-Security-Policy": csp, "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store", "Referrer-Policy": "same-origin", "Cross-Origin-Resource-Policy": "same-origin",
    }


def foreign_origin(request: Request) -> str | None:
    """Why a state-changing request comes from another origin, or ``None`` when it does not.

    Browsers send ``Sec-Fetch-Site`` and ``Origin`` on POSTs; scripts (curl, Bearer token) send
    neither and are judged by their token alone."""
    site = request.headers.get("sec-fetch-site")
    if site and site not in ("same-origin", "none"):
        return f"Sec-Fetch-Site: {site}"
    origin = request.headers.get("origin")
    if origin is not None:
        host = request.headers.get("host", "")
        if origin not in (f"http://{host}", f"https://{host}"):
            return f"Origin: {origin}"
    return None


def create_app(store: Store, token: str, redact: bool = False) -> FastAPI:
    """The console for one store; every route requires ``token`` (see :mod:`pipelines.review.auth`).
    With ``redact`` transcripts, evidence quotes, flags and search hits show personal numbers as
    placeholders (``[电话]``), for reviewers who must not see them."""
    app = FastAPI(title="callqa review console", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.store = store
    csrf_key = secrets.token_bytes(32)

    def csrf_for(session: str) -> str:
        return hmac.new(csrf_key, session.encode(), hashlib.sha256).hexdigest()

    @app.middleware("http")
    async def require_token(request: Request, call_next):
        refusal = gate(request, token)
        if refusal is not None:
            return refusal
        if request.method not in SAFE_METHODS:
            foreign = foreign_origin(request)
            if foreign:
                log.warning("refused %s %s from another origin (%s)", request.method, request.url.path, foreign)
                return _error(403, "This request came from another web page, not from this console, and was refused "
                                   "(cross-site request). Open the call in the console and save the review there.")
        session = request.cookies.get(SESSION_COOKIE) or ""
        fresh = not session
        request.state.session = session or secrets.token_urlsafe(24)
        response = await call_next(request)
        if fresh:
            response.set_cookie(SESSION_COOKIE, request.state.session, httponly=True, samesite="strict")
        return response

    @app.middleware("http")
    async def add_security_headers(request: Request, call_next):
        request.state.nonce = secrets.token_urlsafe(16)
        response = await call_next(request)
        for name, value in security_headers(request.state.nonce).items():
            response.headers.setdefault(name, value)
        return response

    @app.get("/", include_in_schema=False)
    def home() -> Response:
        return RedirectResponse("/queue", status_code=303)

    @app.get("/queue", response_class=HTMLResponse)
    def queue(sort: str = "severity", rule: str = "", agent: str = "", assignee: str = "", page: int = 1) -> Response:
        try:
            result = queries.queue_page(store, sort=sort, rule=rule or None, agent=agent or None,
                                        assignee=assignee or None, page=page)
        except queries.ReviewError as exc:
            return _error(400, str(exc))
        agents, rules = queries.queue_choices(store)
        return HTMLResponse(render(
            "queue.html.j2", items=result.items, page=result, sort=sort, rule=rule, agent=agent, agents=agents,
            rules=rules, sorts=queries.SORTS, assignee=assignee, assignees=queries.assignees(store),
        ))

    @app.get("/search", response_class=HTMLResponse)
    def search_page(q: str = "", role: str = "", agent: str = "", period: str = "", by_sound: str = "") -> Response:
        from pipelines.results.search import period_bounds, search

        hits = []
        if role not in ("", "agent", "customer"):
            return _error(400, "role must be agent or customer")
        if q.strip():
            from pipelines.results.period import PeriodError

            try:
                since, until = period_bounds(period.strip()) if period.strip() else (None, None)
            except PeriodError as exc:
                return _error(400, str(exc))
            hits = search(store.engine, q[:200], role=role or None, agent=agent or None, since=since, until=until,
                          by_sound=bool(by_sound), limit=500)
            if redact:
                from dataclasses import replace

                from pipelines.results.redaction import redact_text

                hits = [replace(h, text=redact_text(h.text)) for h in hits]
        agents, _ = queries.queue_choices(store)
        return HTMLResponse(render("search.html.j2", q=q, role=role, agent=agent, period=period, by_sound=bool(by_sound),
                                   hits=hits, agents=agents))

    @app.get("/calls/{call_id}", response_class=HTMLResponse)
    def call_page(call_id: str, request: Request) -> Response:
        view = queries.call_view(store, call_id)
        if view is None:
            return _error(404, f"No call {call_id!r} in this store. Go back to the queue and pick a call from it.")
        if redact:
            view = queries.redacted_view(view)
        reviewer = request.cookies.get(REVIEWER_COOKIE, "")
        audio = queries.servable_audio(store, call_id)
        return HTMLResponse(render("call.html.j2", view=view, reviewer=reviewer, audio_ok=audio.path is not None,
                                   audio_message=audio.message, csrf=csrf_for(request.state.session),
                                   nonce=request.state.nonce))

    @app.post("/calls/{call_id}/reviews")
    def post_review(call_id: str, request: Request, rule_id: str = Form(...), human_verdict: str = Form(...),
                    reviewer: str = Form(""), note: str = Form(""), csrf: str = Form("")) -> Response:
        by_script = getattr(request.state, "token_via", "") == "header"  # a Bearer token is never sent by a browser on its own
        if not by_script and not hmac.compare_digest(csrf.encode(), csrf_for(request.state.session).encode()):
            log.warning("refused review of %s %s: missing or stale CSRF token", call_id, rule_id)
            return _error(403, "The review was not saved: the form is out of date or did not come from this console. "
                               "Reload the call page and save the review again.")
        reviewer = reviewer.strip() or request.cookies.get(REVIEWER_COOKIE, "")
        if queries.call_view(store, call_id) is None:
            return _error(404, f"No call {call_id!r} in this store; the review was not saved.")
        try:
            queries.save_review(store, call_id, rule_id, human_verdict, reviewer, note)
        except queries.ReviewError as exc:
            return _error(400, f"The review was not saved: {exc}.")
        response = RedirectResponse(f"/calls/{_seg(call_id)}#rule-{_seg(rule_id)}", status_code=303)
        remember(response, REVIEWER_COOKIE, reviewer.strip())
        return response

    @app.get("/audio/{call_id}")
    def audio(call_id: str) -> Response:
        # the file is looked up from the store by id; nothing from the request becomes a path
        found = queries.servable_audio(store, call_id)
        if found.path is None:
            return PlainTextResponse(found.message, status_code=found.status)
        return FileResponse(found.path, media_type=_audio_type(found.path))

    @app.get("/calls/{call_id}/clip")
    def coaching_clip(call_id: str, rule: str = "") -> Response:
        """A coaching clip around a rule's evidence, as a WAV download, with personal numbers beeped
        out (clips are handed to trainees)."""
        found = queries.servable_audio(store, call_id)
        if found.path is None:
            return PlainTextResponse(found.message, status_code=found.status)
        view = queries.call_view(store, call_id)
        chosen = next((r for r in view.rules if r.rule_id == rule), None) if view else None
        if chosen is None:
            return _error(404, f"Call {call_id!r} has no result for rule {rule!r}; pick a rule on the call page.")
        data = queries.redacted_clip(store, call_id, found.path, chosen)
        name = f"{call_id}_{rule}.wav".replace('"', "")
        return Response(data, media_type="audio/wav",
                        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{_seg(name)}"})

    @app.get("/calibration")
    def calibration_page(format: str = "html") -> Response:
        pairs = calibration.current_pairs(store)
        rows = calibration.agreement(pairs)
        if format == "csv":
            return Response(calibration.to_csv(rows), media_type="text/csv; charset=utf-8",
                            headers={"Content-Disposition": 'attachment; filename="calibration.csv"'})
        parts = {name: calibration.overall(part) if part else None
                 for name, part in calibration.pairs_by_sample(store).items()}
        return HTMLResponse(render("calibration.html.j2", rows=rows, total=calibration.overall(pairs),
                                   cases=calibration.disagreements(store, rows), parts=parts))

    return app


def _audio_type(path: Path) -> str:
    """An audio content type, never one a browser would render as a page."""
    guessed = AUDIO_TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0] or ""
    return guessed if guessed.startswith("audio/") else "application/octet-stream"


def _seg(text: str) -> str:
    return quote(text, safe="")


def _error(status: int, message: str) -> HTMLResponse:
    return HTMLResponse(render("error.html.j2", status=status, message=message), status_code=status)
