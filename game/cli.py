"""Command-line interface (placeholder until its issue lands)."""

import typer


def register(app: typer.Typer) -> None:
    """Add this component's top-level commands to the ``hiverl`` app."""
