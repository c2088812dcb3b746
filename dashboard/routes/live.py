"""The live view and the status bar: ``/live``, ``/api/status``, ``/api/live/*``."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from dashboard.deps import Dashboard, DashDep, ViewerDep, field_errors, page
from dashboard.outage import QueryRefused, ServiceDown
from dashboard.telemetry_queries import MAX_EPOCH_MS, RangeError

router = APIRouter()

EpochMs = Annotated[
    float | None,
    Query(ge=0, le=MAX_EPOCH_MS, allow_inf_nan=False, description="Epoch milliseconds."),
]


@router.get("/", include_in_schema=False)
def home() -> Response:
    return RedirectResponse("/live", status_code=303)


@router.get("/live", include_in_schema=False)
def live_page(request: Request, dash: DashDep) -> Response:
    return page(request, dash, "live.html")


@router.get("/api/status")
def status(viewer: ViewerDep, dash: DashDep) -> dict[str, Any]:
    down: dict[str, str] = {}
    latest = None
    try:
        latest = dash.archive.latest()
    except ServiceDown as error:
        down[error.service] = error.reason
        try:
            recent = dash.telemetry.recent_sessions(within_s=24 * 3600)
            latest = recent[0] if recent else None
        except ServiceDown as es_error:
            down[es_error.service] = es_error.reason
    return {
        "services": dash.status.services(),
        "device": dash.status.device,
        "latest_session": latest,
        "down": down,
        "server_time_ms": time.time() * 1000,
    }


class _Merged:
    """Running sessions as several sources see them, merged by session id."""

    def __init__(self) -> None:
        self.by_id: dict[str, dict[str, Any]] = {}

    def add(self, session_id: str, source: str, **facts: Any) -> None:
        entry = self.by_id.setdefault(session_id, {"session_id": session_id, "sources": []})
        entry.update({k: v for k, v in facts.items() if v is not None})
        entry["sources"].append(source)

    def newest_first(self) -> list[dict[str, Any]]:
        return sorted(
            self.by_id.values(),
            key=lambda s: -(s.get("last_event_ms") or (s.get("started_at") or 0) * 1000),
        )


def _from_archive(dash: Dashboard, merged: _Merged) -> list[dict[str, Any]]:
    for r in dash.archive.running():
        merged.add(
            r["session_id"],
            "archive",
            env_id=r["env_id"],
            status=r["status"],
            started_at=r["started_at"],
            actors=r["actors"],
        )
    return [
        {
            "session_id": r["session_id"],
            "env_id": r["env_id"],
            "status": r["status"],
            "started_at": r["started_at"],
        }
        for r in dash.archive.rows(limit=30)
    ]


def _from_telemetry(dash: Dashboard, merged: _Merged) -> None:
    for s in dash.telemetry.recent_sessions(within_s=120):
        merged.add(
            s["session_id"],
            "telemetry",
            env_id=s["env_id"],
            actors=s["actors"],
            last_event_ms=s["last_event_ms"],
        )


@router.get("/api/live/sessions")
def live_sessions(viewer: ViewerDep, dash: DashDep) -> dict[str, Any]:
    """Running sessions (archive, telemetry and this dashboard's children) and recent ones."""
    down: dict[str, str] = {}
    merged = _Merged()
    recent: list[dict[str, Any]] = []
    try:
        recent = _from_archive(dash, merged)
    except ServiceDown as error:
        down[error.service] = error.reason
    try:
        _from_telemetry(dash, merged)
    except ServiceDown as error:
        down[error.service] = error.reason
    for launched in dash.launcher.sessions():
        if launched.process.poll() is None:
            merged.add(
                launched.session_id,
                "dashboard",
                started_at=launched.started_at,
                started_by=launched.started_by,
            )
    return {"running": merged.newest_first(), "recent": recent, "down": down}


@router.get("/api/live/series", response_model=None)
def live_series(
    viewer: ViewerDep,
    dash: DashDep,
    session_id: Annotated[str, Query(min_length=1, max_length=128)],
    start_ms: EpochMs = None,
    end_ms: EpochMs = None,
    last_s: Annotated[float | None, Query(gt=0, le=90 * 86400, allow_inf_nan=False)] = None,
    points: Annotated[int, Query(ge=10, le=2000)] = 300,
) -> dict[str, Any] | JSONResponse:
    """Downsampled actor, learner, evaluator and memory series; ``last_s`` means [now - last_s, now].

    A range that is empty once the defaults are filled in (``start_ms`` after the session's last
    event, ``end_ms`` before its first) is this request's 422, checked before Elasticsearch sees it.
    """
    if last_s is not None:
        end_ms = time.time() * 1000
        start_ms = end_ms - last_s * 1000
    try:
        return {**dash.telemetry.live_series(session_id, start_ms, end_ms, points), "down": {}}
    except RangeError as error:
        return field_errors((error.field, str(error)))
    except QueryRefused as error:
        return field_errors(("(query)", str(error)))
    except ServiceDown as error:
        return JSONResponse({"detail": str(error), "down": {error.service: error.reason}}, 503)
