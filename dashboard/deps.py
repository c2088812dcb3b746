"""What the routes share, injected with ``Depends``: the dashboard's parts, who is asking, page rendering.

:func:`create_app <dashboard.app.create_app>` builds one :class:`Dashboard` and keeps it in
``app.state``; routes ask for it (``DashDep``), for the signed-in user (``ViewerDep``) or for an
admin whose request carries the CSRF token (``AdminDep``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, HTTPException, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from dashboard.archive_queries import ArchiveQueries
from dashboard.security import (
    CSRF_FORM_FIELD,
    CSRF_HEADER,
    SESSION_COOKIE,
    LoginRateLimiter,
    SessionTable,
    SignedInSession,
    tokens_match,
)
from dashboard.settings import DashboardSettings
from dashboard.status import StatusProbe
from dashboard.stopping import StopRequester
from dashboard.telemetry_queries import TelemetryQueries
from dashboard.training import TrainingLauncher
from dashboard.users import User, UserStore

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")

#: Header the pages' timer-driven polls send: such a request does not count as activity.
BACKGROUND_HEADER = "X-Hiverl-Background"
#: Endpoints only ever polled by a timer (the status bar): never activity either.
BACKGROUND_PATHS = frozenset({"/api/status"})


@dataclass
class Dashboard:
    """Everything the routes use; built once by :func:`dashboard.app.create_app`."""

    settings: DashboardSettings
    users: UserStore
    sessions: SessionTable
    limiter: LoginRateLimiter
    telemetry: TelemetryQueries
    archive: ArchiveQueries
    launcher: TrainingLauncher
    status: StatusProbe
    stopper: StopRequester
    run_dirs: tuple[Path, ...]
    default_key_prefix: str = ""  # memory.key_prefix of `hiverl train` run with the dashboard's env


@dataclass(frozen=True)
class Viewer:
    """The signed-in user of a request and their browser session."""

    user: User
    session: SignedInSession


def get_dashboard(request: Request) -> Dashboard:
    dash: Dashboard = request.app.state.dashboard
    return dash


DashDep = Annotated[Dashboard, Depends(get_dashboard)]


def is_background(request: Request) -> bool:
    """A timer's poll rather than the user's doing: it must not keep an idle session alive."""
    return request.url.path in BACKGROUND_PATHS or request.headers.get(BACKGROUND_HEADER) == "1"


def signed_in(request: Request, dash: Dashboard) -> Viewer | None:
    """The request's user, or None (no, expired or ended session; deleted user; new password)."""
    token = request.cookies.get(SESSION_COOKIE)
    session = dash.sessions.get(token, touch=not is_background(request))
    if session is None:
        return None
    user = dash.users.get(session.user_name)
    if user is None or user.password_changed_at != session.credential_stamp:
        dash.sessions.end(token)  # deleted user or new password: this sign-in is over
        return None
    return Viewer(user, session)


def api_viewer(request: Request, dash: DashDep) -> Viewer:
    viewer = signed_in(request, dash)
    if viewer is None:
        raise HTTPException(401, "sign in first")
    return viewer


ViewerDep = Annotated[Viewer, Depends(api_viewer)]


async def checked_csrf(request: Request, viewer: ViewerDep) -> Viewer:
    given = request.headers.get(CSRF_HEADER)
    if given is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        given = str((await request.form()).get(CSRF_FORM_FIELD) or "")
    if not tokens_match(viewer.session.csrf_token, given):
        raise HTTPException(403, "CSRF token missing or wrong: reload the page")
    return viewer


CsrfViewerDep = Annotated[Viewer, Depends(checked_csrf)]


def admin(viewer: CsrfViewerDep) -> Viewer:
    if not viewer.user.can_control_training:
        raise HTTPException(
            403, f"user {viewer.user.name!r} has role viewer: only admins start or stop training"
        )
    return viewer


AdminDep = Annotated[Viewer, Depends(admin)]


def page(request: Request, dash: Dashboard, template: str, **context: Any) -> Response:
    """A signed-in page, or a redirect to the sign-in form that comes back here."""
    viewer = signed_in(request, dash)
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


def field_errors(*errors: tuple[str, str], status_code: int = 422) -> JSONResponse:
    """A 4xx naming each refused field: ``{"detail": [{"field", "message"}]}``."""
    return JSONResponse(
        {"detail": [{"field": field, "message": message} for field, message in errors]}, status_code
    )
