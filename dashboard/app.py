"""The dashboard web application: server-rendered pages plus the JSON endpoints they poll.

Pages (``/live``, ``/sessions``, ``/train``, ``/watch``) are thin HTML shells; small scripts in
``static/`` fetch the ``/api/*`` endpoints every few seconds and update the charts in place.
Every page and endpoint needs a signed-in user; starting and stopping training needs the admin
role and a CSRF token. A backing service that is down never causes a 500: endpoints answer with
what they have and name what is down (``"down": {service: reason}``), or 503 when they have
nothing.

The routes live in ``dashboard/routes/`` (one router per area); what they share is injected
from ``dashboard/deps.py``. :func:`create_app` only builds the parts and assembles the app.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from dashboard.archive_queries import ArchiveQueries
from dashboard.deps import HERE, Dashboard, field_errors
from dashboard.outage import QueryRefused
from dashboard.request_body import MAX_REQUEST_BYTES, declared_length
from dashboard.routes import auth, live, media, sessions, train
from dashboard.security import LoginRateLimiter, SessionTable
from dashboard.settings import DashboardSettings
from dashboard.status import StatusProbe
from dashboard.stopping import StopRequester
from dashboard.telemetry_queries import TelemetryQueries
from dashboard.training import TrainingLauncher
from dashboard.users import UserStore
from hiverl.config import quoted
from hiverl.endpoints import Endpoints
from hiverl.telemetry.config import TelemetryConfig

log = logging.getLogger(__name__)

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; media-src 'self'; style-src 'self';"
    " script-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self';"
    " base-uri 'none'"
)


def harden(request: Request, response: Response) -> Response:
    """The security headers every answer carries (errors included); no caching of the API,
    the sign-in form or any page."""
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Frame-Options"] = "DENY"
    html = response.headers.get("content-type", "").startswith("text/html")
    if html or request.url.path.startswith("/api/") or request.url.path in ("/login",):
        response.headers["Cache-Control"] = "no-store"
    return response


def validation_errors(error: RequestValidationError) -> list[tuple[str, str]]:
    """FastAPI's refusals of query and path parameters as ``(field, message)``, each quoting at
    most 200 characters of the input (FastAPI's own answer echoes it whole)."""
    errors = []
    for item in error.errors():
        field = str(item.get("loc", ("", "?"))[-1])
        shown = f" (got {quoted(item['input'])})" if "input" in item else ""
        errors.append((field, f"{field}: {item.get('msg', 'invalid')}{shown}"))
    return errors


def build_dashboard(
    settings: DashboardSettings,
    endpoints: Endpoints,
    limiter: LoginRateLimiter | None,
    launcher: TrainingLauncher | None,
) -> Dashboard:
    """The parts the routes use, wired to ``endpoints`` and configured by ``settings``."""
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
    memory = getattr(defaults, "memory", None)
    return Dashboard(
        settings=settings,
        users=UserStore(settings.users_file),
        sessions=SessionTable(settings.session_idle_s, max_age_s=settings.session_max_age_s),
        limiter=limiter
        or LoginRateLimiter(
            free_failures=settings.login_free_failures,
            address_failures=max(settings.login_address_failures, settings.login_free_failures),
            user_failures=max(settings.login_user_failures, settings.login_free_failures),
        ),
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
        stopper=StopRequester(endpoints.redis_url, timeout_s=settings.service_timeout_s),
        run_dirs=tuple(dict.fromkeys(run_dirs)),
        default_key_prefix=memory.key_prefix if memory is not None else "",
    )


def create_app(
    settings: DashboardSettings | None = None,
    endpoints: Endpoints | None = None,
    *,
    limiter: LoginRateLimiter | None = None,
    launcher: TrainingLauncher | None = None,
) -> FastAPI:
    """Build the application. ``settings``/``endpoints`` default to the environment's."""
    dash = build_dashboard(settings or DashboardSettings(), endpoints or Endpoints(), limiter, launcher)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        dash.launcher.shutdown()
        dash.status.close()
        dash.telemetry.close()
        dash.archive.close()
        dash.stopper.close()

    app = FastAPI(
        title="hiverl dashboard", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )
    app.state.dashboard = dash
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    for area in (auth, live, sessions, train, media):
        app.include_router(area.router)

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        declared = declared_length(request)
        if declared is not None and declared > MAX_REQUEST_BYTES:
            message = f"the body is {declared} bytes long (at most {MAX_REQUEST_BYTES})"
            return harden(request, field_errors(("(body)", message), status_code=413))
        # Route patterns end with ``$``, which also matches before a final newline: without this,
        # ``/api/train/x/stop%0A`` would stop ``x`` (``/media`` checks the parts it was sent itself).
        path = request.scope.get("path", "")
        if path.endswith("\n") and not path.startswith("/media/"):
            message = f"path={quoted(path)} ends with a newline"
            return harden(request, field_errors(("path", message)))
        return harden(request, await call_next(request))

    @app.exception_handler(RequestValidationError)
    async def invalid_parameters(request: Request, error: RequestValidationError) -> Response:
        return field_errors(*validation_errors(error))

    @app.exception_handler(QueryRefused)
    async def query_refused(request: Request, error: QueryRefused) -> Response:
        return field_errors(("(query)", str(error)))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> Response:
        if error.status_code == 401 and not request.url.path.startswith(("/api/", "/media/")):
            return RedirectResponse(f"/login?next={quote(request.url.path, safe='')}", status_code=303)
        return JSONResponse({"detail": error.detail}, error.status_code, headers=error.headers)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, error: Exception) -> Response:
        # Answered outside the middleware stack: the headers are set here.
        log.exception("unexpected error answering %s %s", request.method, request.url.path)
        return harden(request, JSONResponse({"detail": "internal error"}, 500))

    return app
