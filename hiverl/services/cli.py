"""Command-line interface (placeholder until its issue lands)."""

import typer

app = typer.Typer(
    help="Run the local Redis, Kafka, Elasticsearch and MongoDB-protocol servers.", no_args_is_help=True
)
