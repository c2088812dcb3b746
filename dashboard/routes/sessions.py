"""The sessions table and comparisons: ``/sessions``, ``/api/sessions``, ``/api/compare/*``."""

from __future__ import annotations

import datetime as dt
import math
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from dashboard import archive_queries as aq
from dashboard.archive_queries import Range, SessionFilter
from dashboard.deps import DashDep, ViewerDep, page
from dashboard.outage import ServiceDown
from hiverl.config import quoted

router = APIRouter()


@router.get("/sessions", include_in_schema=False)
def sessions_page(request: Request, dash: DashDep) -> Response:
    return page(request, dash, "sessions.html")


def parse_time(text: str | None, field: str) -> float:
    """ISO date/time (UTC when no zone) or epoch seconds -> epoch seconds."""
    if not text:
        return 0.0
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds) or abs(seconds) > 253_402_300_799:
            raise ValueError(f"{field}={quoted(text)} is not a time between the years 1 and 9999")
        return seconds
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        message = f"{field}={quoted(text)} is not a date (YYYY-MM-DD[THH:MM]) or epoch seconds"
        raise ValueError(message) from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)).timestamp()


def _filter_errors(
    started_after: str | None,
    started_before: str | None,
    hp: list[str],
    result: list[str],
    order: str,
) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """Every refused filter (field and message) and the parsed ones."""
    errors = []
    parsed: dict[str, Any] = {"hp": [], "result": []}
    for field, text in (("started_after", started_after), ("started_before", started_before)):
        try:
            parsed[field] = parse_time(text, field)
        except ValueError as error:
            errors.append({"field": field, "message": str(error)})
    for what, texts in (("hp", hp), ("result", result)):
        for text in texts:
            try:
                parsed[what].append(Range.parse(text, what))
            except ValueError as error:
                errors.append({"field": what, "message": str(error)})
    if order not in ("asc", "desc"):
        errors.append({"field": "order", "message": f"order={quoted(order)}: use asc or desc"})
    return errors, parsed


@router.get("/api/sessions", response_model=None)
def list_sessions(
    viewer: ViewerDep,
    dash: DashDep,
    env_id: str | None = None,
    status: str | None = None,
    tag: Annotated[list[str] | None, Query()] = None,
    started_after: str | None = None,
    started_before: str | None = None,
    hp: Annotated[list[str] | None, Query(description="name:min:max on a config key")] = None,
    result: Annotated[list[str] | None, Query(description="name:min:max on a result")] = None,
    q: str | None = None,
    sort: str = "started_at",
    order: str = "desc",
    limit: Annotated[int, Query(ge=1, le=aq.MAX_SESSIONS)] = 500,
) -> dict[str, Any] | JSONResponse:
    errors, parsed = _filter_errors(started_after, started_before, hp or [], result or [], order)
    if errors:
        return JSONResponse({"detail": errors}, 422)
    session_filter = SessionFilter(
        env_id=env_id or None,
        status=status or None,
        tags=tuple(t for t in tag or [] if t),
        started_after_s=parsed["started_after"] if started_after else None,
        started_before_s=parsed["started_before"] if started_before else None,
        hyperparameters=tuple(parsed["hp"]),
        results=tuple(parsed["result"]),
        text=q or None,
        sort=sort,
        descending=order == "desc",
        limit=limit,
    )
    try:
        rows = dash.archive.rows()
    except ServiceDown as error:
        return JSONResponse({"detail": str(error), "down": {error.service: error.reason}}, 503)
    selected = aq.select(rows, session_filter)
    return {
        "rows": selected,
        "total": len(rows),
        "matched": len(selected),
        "facets": aq.facets(rows),
        "down": {},
    }


@router.get("/api/sessions/{session_id}", response_model=None)
def get_session(viewer: ViewerDep, dash: DashDep, session_id: str) -> dict[str, Any] | JSONResponse:
    try:
        document = dash.archive.get(session_id)
    except ServiceDown as error:
        return JSONResponse({"detail": str(error), "down": {error.service: error.reason}}, 503)
    if document is None:
        return JSONResponse({"detail": f"session_id={quoted(session_id)} is not in the archive"}, 404)
    return document


@router.get("/api/compare/curves", response_model=None)
def compare_curves(
    viewer: ViewerDep,
    dash: DashDep,
    session_id: Annotated[list[str], Query(min_length=1, max_length=20)],
    points: Annotated[int, Query(ge=10, le=2000)] = 200,
) -> dict[str, Any] | JSONResponse:
    """Learning curves, one per session: archived mean return against hive env steps, or
    (archive down) mean episode return from telemetry against seconds since start."""
    down: dict[str, str] = {}
    try:
        return {"x": "env_steps", "curves": dash.archive.curves(session_id), "down": down}
    except ServiceDown as error:
        down[error.service] = error.reason
    try:
        curves = dash.telemetry.learning_curves(session_id, points)
        return {"x": "seconds", "curves": curves, "down": down}
    except ServiceDown as error:
        down[error.service] = error.reason
        return JSONResponse({"detail": "no source of learning curves is up", "down": down}, 503)


@router.get("/api/compare/diff", response_model=None)
def compare_diff(viewer: ViewerDep, dash: DashDep, a: str, b: str) -> dict[str, Any] | JSONResponse:
    """Side-by-side configs of sessions ``a`` and ``b``."""
    try:
        docs = {name: dash.archive.get(session_id) for name, session_id in (("a", a), ("b", b))}
    except ServiceDown as error:
        return JSONResponse({"detail": str(error), "down": {error.service: error.reason}}, 503)
    missing = [f"{name}={quoted(sid)}" for name, sid in (("a", a), ("b", b)) if docs[name] is None]
    if missing:
        return JSONResponse({"detail": f"not in the archive: {', '.join(missing)}"}, 404)
    doc_a, doc_b = docs["a"] or {}, docs["b"] or {}
    return {"a": a, "b": b, "rows": aq.config_diff(doc_a.get("config") or {}, doc_b.get("config") or {})}
