"""Command-line interface (placeholder until its issue lands)."""

import typer

app = typer.Typer(
    help="The session archive: list, show, compare, export, import, delete.", no_args_is_help=True
)
