"""``hiverl services fetch|up|down|status|logs``: the project's local servers from the shell."""

from __future__ import annotations

import logging
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from hiverl.services.base import LocalServer, ServerStatus, ServiceError
from hiverl.services.catalog import CATALOG, cache_dir, home_dir

app = typer.Typer(
    help="Run the local Redis, Kafka, Elasticsearch and MongoDB-protocol servers.", no_args_is_help=True
)
console = Console(width=None if sys.stdout.isatty() else 120)  # no truncated URLs in logs
Names = Annotated[
    list[str] | None,
    typer.Argument(help=f"Services (default: all): {', '.join(CATALOG.names)}.", show_default=False),
]


def _names(names: list[str] | None) -> list[str]:
    chosen = names or list(CATALOG.names)
    unknown = [n for n in chosen if n not in CATALOG.names]
    if unknown:
        raise typer.BadParameter(
            f"unknown service(s) {', '.join(unknown)}; choose from {', '.join(CATALOG.names)}"
        )
    return chosen


def _servers(names: list[str] | None) -> list[LocalServer]:
    from hiverl.services.servers import shared_server

    return [shared_server(n) for n in _names(names)]


def _table(statuses: list[ServerStatus]) -> Table:
    table = Table(title=f"hiverl services (home {home_dir() / 'services'})")
    for column in ("service", "state", "version", "url", "pid"):
        table.add_column(column)
    for s in statuses:
        state = (
            "[green]healthy" if s.healthy else ("[yellow]running, unhealthy" if s.running else "[red]stopped")
        )
        table.add_row(s.name, state, s.version or "-", s.url, str(s.pid or "-"))
    return table


def _quiet_clients() -> None:
    """Health probes retry while servers boot; the clients' connection warnings are noise here."""
    for name in ("kafka", "pymongo", "elastic_transport", "httpx"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


@app.command()
def fetch(names: Names = None) -> None:
    """Download or build what is missing into the cache ($HIVERL_CACHE); a second run downloads nothing."""
    from hiverl.services import distributions

    failed = False
    for name in _names(names):
        console.print(f"[bold]{name}[/]: fetching into {cache_dir()} ...")
        try:
            console.print(f"  {distributions.fetch(name)}")
        except ServiceError as e:
            console.print(f"  {e}", style="red", markup=False)
            failed = True
    if failed:
        raise typer.Exit(1)


@app.command()
def up(names: Names = None) -> None:
    """Start the services (all by default) concurrently and wait until each is healthy; idempotent.

    Fetches a missing distribution first (like `fetch`).
    """
    from hiverl.services import distributions

    _quiet_clients()
    servers = _servers(names)
    errors: dict[str, str] = {}

    def start(server: LocalServer) -> None:
        try:
            distributions.fetch(server.name)  # instant when cached; downloads/builds only what is missing
            server.start()
        except (ServiceError, OSError) as e:
            errors[server.name] = str(e)

    with (
        console.status(f"starting {', '.join(s.name for s in servers)} ..."),
        ThreadPoolExecutor(len(servers)) as pool,
    ):
        list(pool.map(start, servers))
    for name, message in errors.items():
        console.print(f"[red bold]{name} failed to start:[/]")
        console.print(message, markup=False, highlight=False)
    console.print(_table([s.status() for s in servers]))
    if errors:
        raise typer.Exit(1)


@app.command()
def down(names: Names = None) -> None:
    """Stop the services (SIGTERM, then SIGKILL after a grace period); leaves no process behind."""
    servers = _servers(names)
    failed = False
    for server in reversed(servers):
        try:
            server.stop()
            console.print(f"{server.name}: stopped")
        except ServiceError as e:
            console.print(f"{server.name}: {e}", style="red", markup=False)
            failed = True
    if failed:
        raise typer.Exit(1)


@app.command()
def status(names: Names = None) -> None:
    """Show each service's state, version, URL and pid; exit 1 unless all shown are healthy."""
    _quiet_clients()
    servers = _servers(names)
    with ThreadPoolExecutor(len(servers)) as pool:
        statuses = list(pool.map(lambda s: s.status(), servers))
    console.print(_table(statuses))
    if not all(s.healthy for s in statuses):
        raise typer.Exit(1)


@app.command()
def logs(
    name: Annotated[str, typer.Argument(help=f"One of {', '.join(CATALOG.names)}.")],
    lines: Annotated[int, typer.Option("-n", "--lines", min=1, help="How many lines from the end.")] = 50,
) -> None:
    """Print the last lines of a service's output."""
    (server,) = _servers([name])
    console.print(f"[dim]{server.log_file}[/]")
    print(server.logs(lines))
