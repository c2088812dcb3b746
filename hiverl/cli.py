"""The ``hiverl`` command: one entry point for every component.

Each component owns its commands (``<component>/cli.py``); this module only assembles them, so a
reader of ``replay_memory/`` finds the memory's commands there. Heavy imports (torch, gymnasium)
happen inside the commands, so ``hiverl --help`` stays fast.
"""

from __future__ import annotations

import typer

from dashboard import cli as dashboard_cli
from game import cli as game_cli
from hiverl.archive import cli as archive_cli
from hiverl.services import cli as services_cli
from hiverl.telemetry import cli as telemetry_cli
from monitor import cli as monitor_cli
from replay_memory import cli as memory_cli

app = typer.Typer(
    name="hiverl",
    help="Shared-experience deep reinforcement learning: many workers, one prioritized replay memory.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(services_cli.app, name="services")
app.add_typer(memory_cli.app, name="memory")
app.add_typer(archive_cli.app, name="sessions")
app.add_typer(dashboard_cli.app, name="users")
game_cli.register(app)
monitor_cli.register(app)
telemetry_cli.register(app)
dashboard_cli.register(app)

if __name__ == "__main__":
    app()
