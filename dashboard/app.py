"""The dashboard web application: server-rendered pages plus the JSON endpoints they poll.

Pages (``/live``, ``/sessions``, ``/train``, ``/watch``) are thin HTML shells; small scripts in
``static/`` fetch the ``/api/*`` endpoints every few seconds and update the charts in place.
Every page and endpoint needs a signed-in user; starting and stopping training needs the admin
role and a CSRF token. A backing service that is down never causes a 500: endpoints answer with
what they have and name what is down (``"down": {service: reason}``), or 503 when they have
nothing.
"""

import datetime as dt
import mimetypes
import time
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, Form, HTTPException, Query, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from dashboard import archive_queries as aq
from dashboard import training_form
from dashboard.archive_queries import ArchiveQueries, Range, SessionFilter
from dashboard.outage import ServiceDown
from dashboard.security import (
    CSRF_FORM_FIELD,
    CSRF_HEADER,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    LoginRateLimiter,
    SessionTable,
    SignedInSession,
    new_token,
    tokens_match,
)
from dashboard.settings import DashboardSettings
from dashboard.status import StatusProbe
from dashboard.telemetry_queries import TelemetryQueries
from dashboard.training import TrainingLauncher, new_session_id
from dashboard.users import User, UserStore
from hiverl.endpoints import Endpoints
from hiverl.telemetry.config import TelemetryConfig

HERE = Path(__file__).parent
VIDEO_SUFFIXES = (".mp4", ".webm", ".gif")
mimetypes.add_type("video/mp4", ".mp4")
mimetypes.add_type("video/webm", ".webm")


@dataclass
class Dashboard:
    """Everything the routes use; built once by :func:`create_app` (tests pass their own parts)."""

    settings: DashboardSettings
    users: UserStore
    sessions: SessionTable
    limiter: LoginRateLimiter
    telemetry: TelemetryQueries
    archive: ArchiveQueries
    launcher: TrainingLauncher
    status: StatusProbe
    run_dirs: tuple[Path, ...]


@dataclass(frozen=True)
class Viewer:
    """The signed-in user of a request and their browser session."""

    user: User
    session: SignedInSession


def create_app(
    settings: DashboardSettings | None = None,
    endpoints: Endpoints | None = None,
    *,
    limiter: LoginRateLimiter | None = None,
    launcher: TrainingLauncher | None = None,
) -> FastAPI:
    """Build the application. ``settings``/``endpoints`` default to the environment's."""
    settings = settings or DashboardSettings()
    endpoints = endpoints or Endpoints()
    from hiverl.config import ConfigError, SessionConfig, load_config

    try:  # where `hiverl train` run here would write (CONFIG_RUN_DIR etc. included)
        defaults = load_config()
    except ConfigError:
        defaults = SessionConfig.model_construct()
    run_dirs = (
        Path(defaults.run_dir),
        Path(defaults.model_dir),
        *([settings.runs_dir] if settings.runs_dir else []),
    )
    dash = Dashboard(
        settings=settings,
        users=UserStore(settings.users_file),
        sessions=SessionTable(settings.session_idle_s),
        limiter=limiter or LoginRateLimiter(),
        telemetry=TelemetryQueries(
            endpoints.elasticsearch_url,
            settings.es_index_prefix
            if settings.es_index_prefix is not None
            else TelemetryConfig(**{}).index_prefix,
            timeout_s=settings.service_timeout_s * 2,
            backoff_s=settings.outage_backoff_s,
        ),
        archive=ArchiveQueries(
            endpoints.mongodb_uri,
            settings.mongo_db,
            timeout_s=settings.service_timeout_s,
            backoff_s=settings.outage_backoff_s,
        ),
        launcher=launcher or TrainingLauncher(Path(defaults.run_dir)),
        status=StatusProbe(endpoints, timeout_s=settings.service_timeout_s),
        run_dirs=tuple(dict.fromkeys(run_dirs)),
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> Any:
        yield
        dash.launcher.shutdown()
        dash.status.close()
        dash.telemetry.close()
        dash.archive.close()

    app = FastAPI(
        title="hiverl dashboard", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )
    app.state.dashboard = dash
    templates = Jinja2Templates(directory=HERE / "templates")
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    # -- response hardening -----------------------------------------------------------------
    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self' data:; media-src 'self'; style-src 'self';"
            " script-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self';"
            " base-uri 'none'"
        )
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["X-Frame-Options"] = "DENY"
        if request.url.path.startswith("/api/") or request.url.path in ("/login",):
            response.headers["Cache-Control"] = "no-store"
        return response

    # -- who is asking ----------------------------------------------------------------------
    def signed_in(request: Request) -> Viewer | None:
        token = request.cookies.get(SESSION_COOKIE)
        session = dash.sessions.get(token)
        if session is None:
            return None
        user = dash.users.get(session.user_name)
        if user is None or user.password_changed_at != session.credential_stamp:
            dash.sessions.end(token)  # deleted user or new password: this sign-in is over
            return None
        return Viewer(user, session)

    def api_viewer(request: Request) -> Viewer:
        viewer = signed_in(request)
        if viewer is None:
            raise HTTPException(401, "sign in first")
        return viewer

    async def checked_csrf(request: Request, viewer: Annotated[Viewer, Depends(api_viewer)]) -> Viewer:
        given = request.headers.get(CSRF_HEADER)
        if given is None and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")
        ):
            given = str((await request.form()).get(CSRF_FORM_FIELD) or "")
        if not tokens_match(viewer.session.csrf_token, given):
            raise HTTPException(403, "CSRF token missing or wrong: reload the page")
        return viewer

    def admin(viewer: Annotated[Viewer, Depends(checked_csrf)]) -> Viewer:
        if not viewer.user.can_control_training:
            raise HTTPException(
                403, f"user {viewer.user.name!r} has role viewer: only admins start or stop training"
            )
        return viewer

    ViewerDep = Annotated[Viewer, Depends(api_viewer)]
    AdminDep = Annotated[Viewer, Depends(admin)]

    def page(request: Request, template: str, **context: Any) -> Response:
        viewer = signed_in(request)
        if viewer is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
        return templates.TemplateResponse(
            request,
            template,
            {
                "user": viewer.user,
                "csrf_token": viewer.session.csrf_token,
                "active": template.removesuffix(".html"),
                **context,
            },
        )

    # -- signing in and out -----------------------------------------------------------------
    def login_page(
        request: Request, error: str | None = None, status_code: int = 200, next_url: str = "/"
    ) -> Response:
        token = new_token()
        response = templates.TemplateResponse(
            request,
            "login.html",
            {"login_csrf": token, "error": error, "next": next_url},
            status_code=status_code,
        )
        response.set_cookie(
            LOGIN_CSRF_COOKIE,
            token,
            httponly=True,
            samesite="strict",
            secure=settings.secure_cookies,
            max_age=3600,
            path="/login",
        )
        return response

    def safe_next(next_url: str | None) -> str:
        if next_url and next_url.startswith("/") and not next_url.startswith("//") and "\\" not in next_url:
            return next_url
        return "/live"

    @app.get("/login", include_in_schema=False)
    def get_login(request: Request, next: str | None = None) -> Response:
        if signed_in(request):
            return RedirectResponse(safe_next(next), status_code=303)
        return login_page(request, next_url=safe_next(next))

    @app.post("/login", include_in_schema=False)
    def post_login(
        request: Request,
        username: Annotated[str, Form()] = "",
        password: Annotated[str, Form()] = "",
        csrf_token: Annotated[str, Form()] = "",
        next: Annotated[str, Form()] = "/live",
    ) -> Response:
        target = safe_next(next)
        if not tokens_match(request.cookies.get(LOGIN_CSRF_COOKIE), csrf_token):
            return login_page(request, "The sign-in form expired: please try again.", 403, target)
        client = request.client.host if request.client else "unknown"
        wait_s = dash.limiter.retry_after(username, client)
        if wait_s > 0:
            response = login_page(
                request, f"Too many failed sign-ins: try again in {int(wait_s) + 1} s.", 429, target
            )
            response.headers["Retry-After"] = str(int(wait_s) + 1)
            return response
        user = dash.users.authenticate(username, password)
        if user is None:
            dash.limiter.failed(username, client)
            return login_page(request, "Wrong user name or password.", 401, target)
        dash.limiter.succeeded(username, client)
        token, _ = dash.sessions.create(user.name, user.password_changed_at)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            token,
            httponly=True,
            samesite="lax",
            secure=settings.secure_cookies,
            path="/",
        )
        response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
        return response

    @app.post("/logout", include_in_schema=False)
    def post_logout(request: Request, viewer: Annotated[Viewer, Depends(checked_csrf)]) -> Response:
        dash.sessions.end(request.cookies.get(SESSION_COOKIE))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    # -- pages ------------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    def home() -> Response:
        return RedirectResponse("/live", status_code=303)

    @app.get("/live", include_in_schema=False)
    def live_page(request: Request) -> Response:
        return page(request, "live.html")

    @app.get("/sessions", include_in_schema=False)
    def sessions_page(request: Request) -> Response:
        return page(request, "sessions.html")

    @app.get("/train", include_in_schema=False)
    def train_page(request: Request) -> Response:
        return page(request, "train.html", fields=training_form.form_fields())

    @app.get("/watch", include_in_schema=False)
    def watch_page(request: Request) -> Response:
        return page(request, "watch.html")

    # -- status bar -------------------------------------------------------------------------
    @app.get("/api/me")
    def me(viewer: ViewerDep) -> dict[str, Any]:
        return {"name": viewer.user.name, "role": viewer.user.role, "csrf_token": viewer.session.csrf_token}

    @app.get("/api/status")
    def status(viewer: ViewerDep) -> dict[str, Any]:
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

    # -- live view --------------------------------------------------------------------------
    @app.get("/api/live/sessions")
    def live_sessions(viewer: ViewerDep) -> dict[str, Any]:
        """Running sessions (archive, telemetry and this dashboard's children) and recent ones."""
        down: dict[str, str] = {}
        merged: dict[str, dict[str, Any]] = {}

        def add(session_id: str, **facts: Any) -> None:
            entry = merged.setdefault(session_id, {"session_id": session_id, "sources": []})
            entry.update({k: v for k, v in facts.items() if v is not None and k != "source"})
            entry["sources"].append(facts["source"])

        recent: list[dict[str, Any]] = []
        try:
            for r in dash.archive.running():
                add(
                    r["session_id"],
                    source="archive",
                    env_id=r["env_id"],
                    status=r["status"],
                    started_at=r["started_at"],
                    actors=r["actors"],
                )
            recent = [
                {
                    "session_id": r["session_id"],
                    "env_id": r["env_id"],
                    "status": r["status"],
                    "started_at": r["started_at"],
                }
                for r in dash.archive.rows(limit=30)
            ]
        except ServiceDown as error:
            down[error.service] = error.reason
        try:
            for s in dash.telemetry.recent_sessions(within_s=120):
                add(
                    s["session_id"],
                    source="telemetry",
                    env_id=s["env_id"],
                    actors=s["actors"],
                    last_event_ms=s["last_event_ms"],
                )
        except ServiceDown as error:
            down[error.service] = error.reason
        for launched in dash.launcher.sessions():
            if launched.process.poll() is None:
                add(
                    launched.session_id,
                    source="dashboard",
                    started_at=launched.started_at,
                    started_by=launched.started_by,
                )
        running = sorted(
            merged.values(), key=lambda s: -(s.get("last_event_ms") or (s.get("started_at") or 0) * 1000)
        )
        return {"running": running, "recent": recent, "down": down}

    @app.get("/api/live/series", response_model=None)
    def live_series(
        viewer: ViewerDep,
        session_id: Annotated[str, Query(min_length=1, max_length=128)],
        start_ms: float | None = None,
        end_ms: float | None = None,
        last_s: Annotated[float | None, Query(gt=0, le=90 * 86400)] = None,
        points: Annotated[int, Query(ge=10, le=2000)] = 300,
    ) -> dict[str, Any] | JSONResponse:
        """Downsampled actor, learner, evaluator and memory series; ``last_s`` means [now - last_s, now]."""
        if last_s is not None:
            end_ms = time.time() * 1000
            start_ms = end_ms - last_s * 1000
        if start_ms is not None and end_ms is not None and start_ms >= end_ms:
            return JSONResponse({"detail": f"start_ms={start_ms} must be before end_ms={end_ms}"}, 422)
        try:
            return {**dash.telemetry.live_series(session_id, start_ms, end_ms, points), "down": {}}
        except ServiceDown as error:
            return JSONResponse({"detail": str(error), "down": {error.service: error.reason}}, 503)

    # -- sessions table and comparisons -------------------------------------------------------
    @app.get("/api/sessions", response_model=None)
    def list_sessions(
        viewer: ViewerDep,
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
        errors = []
        try:
            after = _parse_time(started_after, "started_after")
        except ValueError as error:
            errors.append({"field": "started_after", "message": str(error)})
        try:
            before = _parse_time(started_before, "started_before")
        except ValueError as error:
            errors.append({"field": "started_before", "message": str(error)})
        ranges: dict[str, list[Range]] = {"hp": [], "result": []}
        for what, texts in (("hp", hp or []), ("result", result or [])):
            for text in texts:
                try:
                    ranges[what].append(Range.parse(text, what))
                except ValueError as error:
                    errors.append({"field": what, "message": str(error)})
        if order not in ("asc", "desc"):
            errors.append({"field": "order", "message": f"order={order!r}: use asc or desc"})
        if errors:
            return JSONResponse({"detail": errors}, 422)
        session_filter = SessionFilter(
            env_id=env_id or None,
            status=status or None,
            tags=tuple(t for t in tag or [] if t),
            started_after_s=after if started_after else None,
            started_before_s=before if started_before else None,
            hyperparameters=tuple(ranges["hp"]),
            results=tuple(ranges["result"]),
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

    @app.get("/api/sessions/{session_id}", response_model=None)
    def get_session(viewer: ViewerDep, session_id: str) -> dict[str, Any] | JSONResponse:
        try:
            document = dash.archive.get(session_id)
        except ServiceDown as error:
            return JSONResponse({"detail": str(error), "down": {error.service: error.reason}}, 503)
        if document is None:
            return JSONResponse({"detail": f"session_id={session_id!r} is not in the archive"}, 404)
        return document

    @app.get("/api/compare/curves", response_model=None)
    def compare_curves(
        viewer: ViewerDep,
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

    @app.get("/api/compare/diff", response_model=None)
    def compare_diff(viewer: ViewerDep, a: str, b: str) -> dict[str, Any] | JSONResponse:
        """Side-by-side configs of sessions ``a`` and ``b``."""
        try:
            docs = {name: dash.archive.get(session_id) for name, session_id in (("a", a), ("b", b))}
        except ServiceDown as error:
            return JSONResponse({"detail": str(error), "down": {error.service: error.reason}}, 503)
        missing = [f"{name}={sid!r}" for name, sid in (("a", a), ("b", b)) if docs[name] is None]
        if missing:
            return JSONResponse({"detail": f"not in the archive: {', '.join(missing)}"}, 404)
        doc_a, doc_b = docs["a"] or {}, docs["b"] or {}
        return {"a": a, "b": b, "rows": aq.config_diff(doc_a.get("config") or {}, doc_b.get("config") or {})}

    # -- starting and stopping training -------------------------------------------------------
    @app.get("/api/train/form")
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

    @app.post("/api/train/start", response_model=None)
    async def train_start(request: Request, viewer: AdminDep) -> dict[str, Any] | JSONResponse:
        try:
            answers = await request.json()
        except ValueError:
            return JSONResponse(
                {"detail": [{"field": "(body)", "message": "body must be a JSON object"}]}, 422
            )
        if not isinstance(answers, dict):
            return JSONResponse(
                {"detail": [{"field": "(body)", "message": "body must be a JSON object"}]}, 422
            )
        try:
            settings_json, args = training_form.validate(answers)
        except training_form.FormError as error:
            return JSONResponse({"detail": error.errors, "message": str(error)}, 422)
        session_id = new_session_id(settings_json["env_id"])
        launched = dash.launcher.start(session_id, args, started_by=viewer.user.name)
        return JSONResponse({"session_id": session_id, "settings": settings_json, **launched.describe()}, 201)

    @app.post("/api/train/{session_id}/stop", response_model=None)
    def train_stop(session_id: str, viewer: AdminDep) -> dict[str, Any] | JSONResponse:
        try:
            launched = dash.launcher.stop(session_id)
        except KeyError:
            return JSONResponse(
                {
                    "detail": f"session_id={session_id!r} was not started from this dashboard"
                    " (stop it where it runs)"
                },
                404,
            )
        return JSONResponse(launched.describe(), 202)

    @app.get("/api/train/launched")
    def train_launched(viewer: ViewerDep) -> dict[str, Any]:
        return {
            "sessions": [{**s.describe(), "log_tail": s.log_tail(2000)} for s in dash.launcher.sessions()],
            "can_control_training": viewer.user.can_control_training,
        }

    # -- recorded episodes -------------------------------------------------------------------
    def videos_of(session_dir: Path, session_id: str) -> list[dict[str, Any]]:
        found = []
        for path in sorted(session_dir.rglob("*")):
            if path.suffix.lower() in VIDEO_SUFFIXES and path.is_file():
                stat = path.stat()
                relative = path.relative_to(session_dir).as_posix()
                found.append(
                    {
                        "name": relative,
                        "url": f"/media/{quote(session_id)}/{quote(relative)}",
                        "kind": "image" if path.suffix.lower() == ".gif" else "video",
                        "bytes": stat.st_size,
                        "modified_at": stat.st_mtime,
                    }
                )
        return found

    @app.get("/api/videos")
    def list_videos(viewer: ViewerDep) -> dict[str, Any]:
        """Recorded episodes (``hiverl evaluate --video``) per session, newest first."""
        sessions: dict[str, list[dict[str, Any]]] = {}
        for root in dash.run_dirs:
            if not root.is_dir():
                continue
            for session_dir in root.iterdir():
                if session_dir.is_dir():
                    files = videos_of(session_dir, session_dir.name)
                    if files:
                        sessions.setdefault(session_dir.name, []).extend(files)
        newest_first = {
            sid: sorted(files, key=lambda f: -f["modified_at"]) for sid, files in sessions.items()
        }
        order = sorted(newest_first, key=lambda sid: -newest_first[sid][0]["modified_at"])
        listing = [{"session_id": sid, "videos": newest_first[sid]} for sid in order]
        return {"sessions": listing, "folders": [str(root) for root in dash.run_dirs]}

    @app.get("/media/{session_id}/{relative:path}", include_in_schema=False)
    def media(session_id: str, relative: str, viewer: ViewerDep) -> Response:
        for root in dash.run_dirs:
            base = (root / session_id).resolve()
            candidate = (base / relative).resolve()
            if (
                candidate.is_relative_to(base)
                and base.parent == root.resolve()
                and candidate.suffix.lower() in VIDEO_SUFFIXES
                and candidate.is_file()
            ):
                return FileResponse(candidate)
        raise HTTPException(404, "no such recording")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> Response:
        if error.status_code == 401 and not request.url.path.startswith(("/api/", "/media/")):
            return RedirectResponse(f"/login?next={quote(request.url.path, safe='')}", status_code=303)
        return JSONResponse({"detail": error.detail}, error.status_code, headers=error.headers)

    return app


def _parse_time(text: str | None, field: str) -> float:
    """ISO date/time (UTC when no zone) or epoch seconds -> epoch seconds."""
    if not text:
        return 0.0
    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{field}={text!r} is not a date (YYYY-MM-DD[THH:MM]) or epoch seconds") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)).timestamp()
