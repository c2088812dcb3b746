"""``hiverl memory``: inspect, save and load the shared replay memory.

The Redis address comes from ``REDIS_URL`` (see :class:`hiverl.endpoints.Endpoints`); the
memory is picked by ``--name`` and opened with the configuration stored in Redis.
"""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="Inspect, save and load the shared replay memory.", no_args_is_help=True)

NameOption = typer.Option("hive", "--name", help="Name of the memory (its Redis namespace).")
PrefixOption = typer.Option("", "--key-prefix", help="Key prefix the memory was created with.")


def _url() -> str:
    from hiverl.endpoints import Endpoints

    return Endpoints().redis_url


def _fail(e: Exception) -> typer.Exit:
    from hiverl.endpoints import redact

    typer.echo(f"error: {redact(str(e))}", err=True)
    return typer.Exit(code=1)


@app.command()
def stats(name: str = NameOption, key_prefix: str = PrefixOption) -> None:
    """Print size, capacity, bytes, priority sum/min/max and the insert/sample counters."""
    from redis import RedisError

    from replay_memory import ReplayMemory, ReplayMemoryError

    try:
        with ReplayMemory.attach(_url(), name, key_prefix) as memory:
            s = memory.stats()
            cfg = memory.config
    except (ReplayMemoryError, OSError, RedisError) as e:
        raise _fail(e) from e
    rows = [
        ("memory", f"{cfg.name} ({cfg.shards} shard{'s' if cfg.shards > 1 else ''}, alpha={cfg.alpha})"),
        ("observation", f"{cfg.observation.dtype}{list(cfg.observation.shape)}"),
        ("size", f"{s.size} / {s.capacity} ({100 * s.size / s.capacity:.1f} %)"),
        ("bytes", f"{s.bytes_used} ({s.bytes_used / max(s.size, 1):.0f} per transition)"),
        ("priority mass sum", f"{s.priority_sum:.6g}"),
        ("priority mass min", f"{s.priority_min:.6g}"),
        ("priority mass max", f"{s.priority_max:.6g}"),
        ("max priority seen", f"{s.max_priority_seen:.6g}"),
        ("inserted", str(s.inserted_total)),
        ("sampled", str(s.sampled_total)),
        ("evicted", str(s.evicted_total)),
        ("corrupt dropped", str(s.corrupt_dropped)),
    ]
    for key, value in rows:
        typer.echo(f"{key:<18} {value}")


@app.command()
def save(
    file: Path = typer.Argument(..., help="Snapshot file to write."),
    name: str = NameOption,
    key_prefix: str = PrefixOption,
) -> None:
    """Export a consistent snapshot of the memory (contents, priorities, counters) to FILE."""
    from redis import RedisError

    from replay_memory import ReplayMemory, ReplayMemoryError
    from replay_memory.snapshot import save as save_snapshot

    try:
        with ReplayMemory.attach(_url(), name, key_prefix) as memory:
            n = save_snapshot(memory, file)
    except (ReplayMemoryError, OSError, RedisError) as e:
        raise _fail(e) from e
    typer.echo(f"saved {n} transitions of memory {name!r} to {file}")


@app.command()
def load(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="Snapshot file to read."),
    name: str = typer.Option("", "--name", help="Load under this name (default: the saved one)."),
    key_prefix: str = PrefixOption,
    replace: bool = typer.Option(False, "--replace", help="Overwrite an existing non-empty memory."),
    shards: int = typer.Option(0, "--shards", help="Re-shard into this many shards (default: as saved)."),
    capacity: int = typer.Option(0, "--capacity", help="New total capacity (default: as saved)."),
) -> None:
    """Recreate the memory saved in FILE (same configuration, or re-sharded / resized)."""
    from redis import RedisError

    from replay_memory import ReplayMemoryError
    from replay_memory.snapshot import load as load_snapshot

    try:
        config = load_snapshot(
            _url(),
            file,
            key_prefix=key_prefix,
            replace=replace,
            name=name or None,
            shards=shards or None,
            capacity=capacity or None,
        )
    except (ReplayMemoryError, OSError, RedisError) as e:
        raise _fail(e) from e
    typer.echo(f"loaded memory {config.name!r} from {file}")
