"""``hiverl users add|list|delete|passwd`` (dashboard accounts) and ``hiverl dashboard`` (the server)."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from dashboard.users import UserStore

app = typer.Typer(help="Dashboard user accounts.", no_args_is_help=True)

PASSWORD_ENV = "HIVERL_USER_PASSWORD"


def _store() -> UserStore:
    from dashboard.settings import DashboardSettings
    from dashboard.users import UserStore

    return UserStore(DashboardSettings().users_file)


def _read_password(from_stdin: bool) -> str:
    """The new password: one line of stdin, else $HIVERL_USER_PASSWORD, else a hidden prompt."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if os.environ.get(PASSWORD_ENV):
        return os.environ[PASSWORD_ENV]
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="User name (letters, digits, _ . @ -).")],
    role: Annotated[str, typer.Option(help="admin (start/stop training) or viewer (watch only).")] = "viewer",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin.")
    ] = False,
) -> None:
    """Create a dashboard account (password prompted, or from stdin / $HIVERL_USER_PASSWORD)."""
    from dashboard.users import UserError

    store = _store()
    try:
        user = store.add(name, role, _read_password(password_stdin))
    except UserError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"added {user.name} ({user.role}) to {store.path}")


@app.command("list")
def list_users() -> None:
    """List accounts (names and roles; never hashes)."""
    import datetime as dt

    for user in _store().list():
        created = dt.datetime.fromtimestamp(user.created_at, tz=dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        typer.echo(f"{user.name}\t{user.role}\tcreated {created}")


@app.command("delete")
def delete(name: Annotated[str, typer.Argument(help="User name.")]) -> None:
    """Delete an account (its signed-in browsers are signed out on their next request)."""
    from dashboard.users import UserError

    try:
        _store().delete(name)
    except UserError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"deleted {name}")


@app.command("passwd")
def passwd(
    name: Annotated[str, typer.Argument(help="User name.")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin.")
    ] = False,
) -> None:
    """Set a new password (signs the user out everywhere)."""
    from dashboard.users import UserError

    try:
        _store().set_password(name, _read_password(password_stdin))
    except UserError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"password of {name} changed")


def dashboard(
    host: Annotated[
        str, typer.Option(help="Address to listen on (127.0.0.1: this machine only).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8050,
) -> None:
    """Serve the web dashboard: live charts, the sessions archive, start/stop training, videos."""
    import uvicorn

    from dashboard.app import create_app
    from dashboard.settings import DashboardSettings

    settings = DashboardSettings()
    store = _store()
    if not store.list():
        typer.echo(
            "no dashboard accounts yet: create one with `hiverl users add NAME --role admin`", err=True
        )
    if host not in ("127.0.0.1", "localhost", "::1") and not settings.secure_cookies:
        typer.echo(
            f"warning: listening on {host} over plain HTTP; put it behind HTTPS and set"
            " HIVERL_DASHBOARD_SECURE_COOKIES=true",
            err=True,
        )
    typer.echo(f"hiverl dashboard on http://{host}:{port}/ (accounts in {settings.users_file})")
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info", proxy_headers=False)


def register(root: typer.Typer) -> None:
    """Add the ``dashboard`` command to the ``hiverl`` app."""
    root.command("dashboard")(dashboard)
