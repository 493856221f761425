"""The review console: a small server-rendered FastAPI app over the results store.

Routes: ``/`` → ``/queue``; ``/queue`` the flagged-call queue; ``/calls/{call_id}`` a call with its
audio, transcript, verdicts and evidence; ``POST /calls/{call_id}/reviews`` a human review;
``/audio/{call_id}`` the call's recording (Range requests, so the player can seek);
``/calibration`` machine-vs-human agreement (``?format=csv`` for the table as CSV).
"""

from __future__ import annotations

import logging
import mimetypes
from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Form, Request
from fastapi.responses import FileResponse, HTMLResponse, PlainTextResponse, RedirectResponse, Response

from pipelines.review import calibration, queries
from pipelines.review.auth import gate, remember
from pipelines.review.web import render
from pipelines.store import Store

log = logging.getLogger(__name__)

REVIEWER_COOKIE = "callqa_reviewer"
AUDIO_TYPES = {".flac": "audio/flac", ".mp3": "audio/mpeg", ".wav": "audio/wav", ".ogg": "audio/ogg",
               ".opus": "audio/ogg", ".m4a": "audio/mp4", ".webm": "audio/webm"}


def create_app(store: Store, token: str) -> FastAPI:
    """The console for one store; every route requires ``token`` (see :mod:`pipelines.review.auth`)."""
    app = FastAPI(title="callqa review console", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.store = store

    @app.middleware("http")
    async def require_token(request: Request, call_next):
        refusal = gate(request, token)
        return refusal if refusal is not None else await call_next(request)

    @app.get("/", include_in_schema=False)
    def home() -> Response:
        return RedirectResponse("/queue", status_code=303)

    @app.get("/queue", response_class=HTMLResponse)
    def queue(sort: str = "severity", rule: str = "", agent: str = "") -> Response:
        try:
            items = queries.flagged_queue(store, sort=sort, rule=rule or None, agent=agent or None)
        except queries.ReviewError as exc:
            return _error(400, str(exc))
        agents, rules = queries.queue_choices(store)
        return HTMLResponse(render(
            "queue.html.j2", items=items, sort=sort, rule=rule, agent=agent, agents=agents, rules=rules,
            sorts=queries.SORTS,
        ))

    @app.get("/calls/{call_id}", response_class=HTMLResponse)
    def call_page(call_id: str, request: Request) -> Response:
        view = queries.call_view(store, call_id)
        if view is None:
            return _error(404, f"No call {call_id!r} in this store. Go back to the queue and pick a call from it.")
        reviewer = request.cookies.get(REVIEWER_COOKIE, "")
        return HTMLResponse(render("call.html.j2", view=view, reviewer=reviewer,
                                   audio_ok=_audio_file(view.call.source) is not None))

    @app.post("/calls/{call_id}/reviews")
    def post_review(call_id: str, request: Request, rule_id: str = Form(...), human_verdict: str = Form(...),
                    reviewer: str = Form(""), note: str = Form("")) -> Response:
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
        source = queries.audio_path(store, call_id)
        if source is None:
            return PlainTextResponse(f"no call {call_id!r} in this store", status_code=404)
        path = _audio_file(str(source))
        if path is None:
            log.warning("audio for call %s is missing at %s", call_id, source)
            return PlainTextResponse(
                f"the recording of call {call_id} is not at {source} any more — restore the file or "
                "re-register the call with its new location", status_code=404,
            )
        media_type = AUDIO_TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return FileResponse(path, media_type=media_type)

    @app.get("/calibration")
    def calibration_page(format: str = "html") -> Response:
        pairs = calibration.current_pairs(store)
        rows = calibration.agreement(pairs)
        if format == "csv":
            return Response(calibration.to_csv(rows), media_type="text/csv; charset=utf-8",
                            headers={"Content-Disposition": 'attachment; filename="calibration.csv"'})
        return HTMLResponse(render("calibration.html.j2", rows=rows, total=calibration.overall(pairs),
                                   cases=calibration.disagreements(store, rows)))

    return app


def _audio_file(source: str | None) -> Path | None:
    if not source:
        return None
    path = Path(source)
    return path if path.is_file() else None


def _seg(text: str) -> str:
    return quote(text, safe="")


def _error(status: int, message: str) -> HTMLResponse:
    return HTMLResponse(render("error.html.j2", status=status, message=message), status_code=status)
