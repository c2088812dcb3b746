"""Command-line interface (placeholder until its issue lands)."""

import typer

app = typer.Typer(help="Dashboard user accounts.", no_args_is_help=True)


def register(root: typer.Typer) -> None:
    """Add the ``dashboard`` command to the ``hiverl`` app."""
