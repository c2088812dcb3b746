"""Signing in and out, and who is signed in (``/login``, ``/logout``, ``/api/me``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from dashboard.deps import CsrfViewerDep, Dashboard, DashDep, ViewerDep, signed_in, templates
from dashboard.security import LOGIN_CSRF_COOKIE, SESSION_COOKIE, new_token, tokens_match

router = APIRouter()

#: Longest client address kept as a rate-limit key (an X-Forwarded-For entry is client-supplied text).
MAX_ADDRESS_CHARS = 64


def client_address(request: Request, trusted_proxy_hops: int) -> str:
    """The address the sign-in rate limit keys on: the TCP peer, or with ``trusted_proxy_hops``
    proxies in front, the entry the outermost trusted proxy appended to ``X-Forwarded-For``."""
    peer = request.client.host if request.client else "unknown"
    if trusted_proxy_hops <= 0:
        return peer
    entries = [
        part.strip()
        for header in request.headers.getlist("x-forwarded-for")
        for part in header.split(",")
        if part.strip()
    ]
    if len(entries) < trusted_proxy_hops:  # not the chain of proxies we were told of: the peer
        return peer
    return entries[-trusted_proxy_hops][:MAX_ADDRESS_CHARS]


def login_page(
    request: Request,
    dash: Dashboard,
    error: str | None = None,
    status_code: int = 200,
    next_url: str = "/",
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
        secure=dash.settings.secure_cookies,
        max_age=3600,
        path="/login",
    )
    return response


def safe_next(next_url: str | None) -> str:
    """A local path to go to after signing in (never another site)."""
    if next_url and next_url.startswith("/") and not next_url.startswith("//") and "\\" not in next_url:
        return next_url
    return "/live"


@router.get("/login", include_in_schema=False)
def get_login(request: Request, dash: DashDep, next: str | None = None) -> Response:
    if signed_in(request, dash):
        return RedirectResponse(safe_next(next), status_code=303)
    return login_page(request, dash, next_url=safe_next(next))


@router.post("/login", include_in_schema=False)
def post_login(
    request: Request,
    dash: DashDep,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/live",
) -> Response:
    target = safe_next(next)
    if not tokens_match(request.cookies.get(LOGIN_CSRF_COOKIE), csrf_token):
        return login_page(request, dash, "The sign-in form expired: please try again.", 403, target)
    client = client_address(request, dash.settings.trusted_proxy_hops)
    wait_s = dash.limiter.attempt(username, client)  # counted as a failure until the password is right
    if wait_s > 0:
        response = login_page(
            request, dash, f"Too many failed sign-ins: try again in {int(wait_s) + 1} s.", 429, target
        )
        response.headers["Retry-After"] = str(int(wait_s) + 1)
        return response
    user = dash.users.authenticate(username, password)
    if user is None:
        return login_page(request, dash, "Wrong user name or password.", 401, target)
    dash.limiter.succeeded(username, client)
    token, _ = dash.sessions.create(user.name, user.password_changed_at)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="lax",
        secure=dash.settings.secure_cookies,
        path="/",
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout", include_in_schema=False)
def post_logout(request: Request, dash: DashDep, viewer: CsrfViewerDep) -> Response:
    dash.sessions.end(request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/api/me")
def me(viewer: ViewerDep) -> dict[str, Any]:
    return {"name": viewer.user.name, "role": viewer.user.role, "csrf_token": viewer.session.csrf_token}
