"""Starting and stopping training: ``/train``, ``/api/train/*``."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from dashboard import training_form
from dashboard.deps import AdminDep, Dashboard, DashDep, ViewerDep, field_errors, page
from dashboard.outage import ServiceDown
from dashboard.request_body import BodyRefused, read_json_body
from dashboard.settings import DashboardSettings
from dashboard.stopping import STOP_REASON, StopOutcome
from dashboard.training import LaunchRefused
from hiverl.config import quoted
from hiverl.session import is_session_id, new_session_id

router = APIRouter()


@router.get("/train", include_in_schema=False)
def train_page(request: Request, dash: DashDep) -> Response:
    return page(request, dash, "train.html", fields=training_form.form_fields())


@router.get("/api/train/form")
def train_form(viewer: ViewerDep) -> dict[str, Any]:
    return {
        "fields": [
            {
                "name": f.name,
                "kind": f.kind,
                "default": f.default,
                "description": f.description,
                "choices": list(f.choices),
            }
            for f in training_form.form_fields()
        ],
        "can_control_training": viewer.user.can_control_training,
    }


def launch_limit_errors(resolved: dict[str, Any], settings: DashboardSettings) -> list[tuple[str, str]]:
    """The resolved settings' fields above this dashboard's launch limits, each naming its limit."""
    checks = (
        ("total_steps", resolved["total_steps"], "max_total_steps", settings.max_total_steps),
        ("actors", resolved["actors"], "max_actors", settings.max_actors),
        ("actor.envs", resolved["actor"]["envs"], "max_envs_per_actor", settings.max_envs_per_actor),
    )
    return [
        (
            field,
            f"{field}={value} is above this dashboard's limit {limit}={bound}"
            f" (HIVERL_DASHBOARD_{limit.upper()})",
        )
        for field, value, limit, bound in checks
        if value > bound
    ]


@router.post("/api/train/start", response_model=None)
async def train_start(request: Request, viewer: AdminDep, dash: DashDep) -> JSONResponse:
    try:
        answers = await read_json_body(request)
    except BodyRefused as error:
        return field_errors(("(body)", str(error)), status_code=error.status)
    if not isinstance(answers, dict):
        return field_errors(("(body)", "body must be a JSON object"))
    try:  # in a worker thread: checking a new env id makes the env once (see hiverl.env_ids)
        settings_json, args = await run_in_threadpool(training_form.validate, answers)
    except training_form.FormError as error:
        return JSONResponse({"detail": error.errors, "message": str(error)}, 422)
    limits = launch_limit_errors(settings_json, dash.settings)
    if limits:
        return field_errors(*limits)
    session_id = new_session_id(settings_json["env_id"])
    try:
        launched = dash.launcher.start(
            session_id, args, started_by=viewer.user.name, max_running=dash.settings.max_concurrent_runs
        )
    except LaunchRefused as error:
        limit = dash.settings.max_concurrent_runs
        return JSONResponse(
            {
                "detail": f"{error.running} sessions started here are running: this dashboard's limit"
                f" max_concurrent_runs={limit} (HIVERL_DASHBOARD_MAX_CONCURRENT_RUNS) allows no more;"
                " stop one first"
            },
            429,
        )
    return JSONResponse({"session_id": session_id, "settings": settings_json, **launched.describe()}, 201)


def _key_prefixes(dash: Dashboard, session_id: str, document: dict[str, Any] | None) -> list[str]:
    """Where the session's board may be: the key prefix its settings name (archive, run folder,
    this dashboard's launch environment), else the prefix ``hiverl train`` would use here."""
    prefixes = []
    configs = [(document or {}).get("config")]
    for root in dash.run_dirs:
        try:
            configs.append(json.loads((root / session_id / "session.json").read_text()).get("config"))
        except (OSError, ValueError, AttributeError):
            continue
    for config in configs:
        prefix = ((config or {}).get("memory") or {}).get("key_prefix") if isinstance(config, dict) else None
        if isinstance(prefix, str):
            prefixes.append(prefix)
    launch_env = dash.launcher.env or {}
    if dash.launcher.get(session_id) is not None and "CONFIG_MEMORY__KEY_PREFIX" in launch_env:
        prefixes.append(launch_env["CONFIG_MEMORY__KEY_PREFIX"])
    prefixes.append(dash.default_key_prefix)
    return list(dict.fromkeys(prefixes))


@router.post("/api/train/{session_id}/stop", response_model=None)
def train_stop(session_id: str, viewer: AdminDep, dash: DashDep) -> JSONResponse:
    """Stop a running session wherever it was started: raise its board's stop flag in Redis (every
    role finishes, the learner checkpoints) and, for a session started here, send SIGINT too."""
    if not is_session_id(session_id) or set(session_id) == {"."}:
        return field_errors(("session_id", f"session_id={quoted(session_id, 80)} is not a session id"))
    down: dict[str, str] = {}
    launched = dash.launcher.get(session_id)
    ours = launched is not None
    if launched is not None and launched.process.poll() is not None:  # its `hiverl train` has exited
        detail = f"session_id={session_id!r} has already ended (exit code {launched.process.poll()})"
        return JSONResponse({"detail": detail, "down": down}, 409)
    document = None
    if not ours:
        try:
            document = dash.archive.get(session_id)
        except ServiceDown as error:
            down[error.service] = error.reason
    try:
        outcome: StopOutcome | None = dash.stopper.request(
            session_id, _key_prefixes(dash, session_id, document)
        )
    except ServiceDown as error:
        down[error.service] = error.reason
        outcome = None
    if ours:  # also Ctrl-C, as in a terminal (a second Stop is a second Ctrl-C)
        described = dash.launcher.stop(session_id).describe()
        return JSONResponse({**described, "board": bool(outcome and outcome.requested), "down": down}, 202)
    if outcome is not None and outcome.found:
        return _stop_answer(session_id, outcome, down)
    if document is not None and document.get("status") == "running":
        if outcome is None:
            detail = f"session_id={session_id!r} is running but Redis does not answer"
            return JSONResponse({"detail": detail, "down": down}, 503)
        detail = f"session_id={session_id!r} is starting (its hive has no board yet): try again in a moment"
        return JSONResponse({"detail": detail, "down": down}, 409)
    if document is not None:  # archived, not running, no board left: it ended
        detail = f"session_id={session_id!r} has already ended ({document.get('status')})"
        return JSONResponse({"detail": detail, "down": down}, 409)
    return JSONResponse(
        {
            "detail": f"session_id={session_id!r} is not running: it was not started from this dashboard"
            " and no hive board in Redis has that session",
            "down": down,
        },
        404,
    )


def _stop_answer(session_id: str, outcome: StopOutcome, down: dict[str, str]) -> JSONResponse:
    """202 when the flag is set now (or was, by an earlier stop); 409 when the hive already ended."""
    reasons = set(outcome.already.values())
    if outcome.requested or reasons == {STOP_REASON}:
        body = {
            "session_id": session_id,
            "stop_requested": True,
            "already_requested": not outcome.requested,
            "down": down,
        }
        return JSONResponse(body, 202)
    ended = ", ".join(sorted(reasons))
    detail = f"session_id={session_id!r} has already ended ({ended})"
    return JSONResponse({"detail": detail, "down": down}, 409)


@router.get("/api/train/launched")
def train_launched(viewer: ViewerDep, dash: DashDep) -> dict[str, Any]:
    return {
        "sessions": [{**s.describe(), "log_tail": s.log_tail(2000)} for s in dash.launcher.sessions()],
        "can_control_training": viewer.user.can_control_training,
    }
