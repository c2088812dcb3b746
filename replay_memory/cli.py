"""Command-line interface (placeholder until its issue lands)."""

import typer

app = typer.Typer(help="Inspect, save and load the shared replay memory.", no_args_is_help=True)
