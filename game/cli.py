"""``hiverl train`` and ``hiverl evaluate``: run a hive on this machine, replay a checkpoint."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from game.roles import Role

MONITOR_ENV = "HIVERL_TRAIN_MONITOR"  # --monitor/--no-monitor
INDEX_ENV = "HIVERL_TRAIN_INDEX"  # --index/--no-index


def _cli_overrides(
    env: str | None,
    actors: int | None,
    envs_per_actor: int | None,
    steps: int | None,
    seed: int | None,
    device: str | None,
    session: str | None,
    assignments: list[str] | None,
) -> dict[str, Any]:
    from hiverl.config import deep_update, parse_assignments

    overrides: dict[str, Any] = parse_assignments(assignments or [])
    flags = {
        "env_id": env,
        "actors": actors,
        "total_steps": steps,
        "seed": seed,
        "device": device,
        "session_id": session,
    }
    deep_update(overrides, {k: v for k, v in flags.items() if v is not None})
    if envs_per_actor is not None:
        deep_update(overrides, {"actor": {"envs": envs_per_actor}})
    return overrides


def train(
    env: Annotated[
        str | None, typer.Option("--env", help="gymnasium id, e.g. CartPole-v1, ALE/Pong-v5.")
    ] = None,
    actors: Annotated[
        int | None,
        typer.Option(help="Actor processes feeding the one learner (0: one process acts and learns)."),
    ] = None,
    envs_per_actor: Annotated[
        int | None, typer.Option(help="Vectorized envs per actor (actor.envs).")
    ] = None,
    steps: Annotated[int | None, typer.Option(help="Env steps of the whole hive (total_steps).")] = None,
    seed: Annotated[int | None, typer.Option(help="Base seed.")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda, cuda:N.")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="TOML or YAML settings file.")] = None,
    session: Annotated[str | None, typer.Option(help="Session id (default: a new one).")] = None,
    resume: Annotated[
        str | None, typer.Option(help="Continue session SESSION from its checkpoints and counters.")
    ] = None,
    assignments: Annotated[
        list[str] | None,
        typer.Option("--set", help="Any setting, e.g. --set agent.lr=0.001 --set actor_overrides.0.seed=5."),
    ] = None,
    live: Annotated[bool, typer.Option(help="Live per-worker table.")] = True,
    telemetry: Annotated[
        bool, typer.Option(help="Publish events to Kafka (spooled on disk while it is down).")
    ] = True,
    archive: Annotated[
        bool, typer.Option(help="Record the session in the MongoDB archive (spooled while it is down).")
    ] = True,
    monitor: Annotated[
        bool,
        typer.Option(
            envvar=MONITOR_ENV,
            help="Run the memory monitor beside the hive (memory_monitoring; with --telemetry).",
        ),
    ] = True,
    index: Annotated[
        bool,
        typer.Option(
            envvar=INDEX_ENV,
            help="Run the indexer beside the hive: Kafka -> Elasticsearch (with --telemetry).",
        ),
    ] = True,
    monitor_interval: Annotated[
        float, typer.Option(min=0.1, help="Seconds between the memory monitor's polls.")
    ] = 2.0,
    index_wait: Annotated[
        float, typer.Option(min=0, help="At the end, wait at most this long (s) for the indexer.")
    ] = 120.0,
    print_config: Annotated[bool, typer.Option(help="Print the resolved settings and exit.")] = False,
) -> None:
    """Train a hive: one learner and N actors sharing one prioritized replay memory on Redis.

    With telemetry on (the default), the memory monitor and the indexer run beside the hive, so
    Elasticsearch and the dashboard fill live; at the end the command waits until the session's
    events are indexed and prints where to look.

    Settings resolve as defaults < --config file < CONFIG_* env vars < flags (see docs/training.md).
    """
    from rich.console import Console
    from rich.syntax import Syntax

    from game.trainer import Trainer, ensure_redis
    from hiverl.config import ConfigError, config_from_dict, deep_update, load_config
    from hiverl.endpoints import redact
    from hiverl.status import SessionStatus

    # soft_wrap: without a terminal (a log, CI) a progress line stays one line at any length
    console = Console(soft_wrap=True)
    try:
        overrides = _cli_overrides(env, actors, envs_per_actor, steps, seed, device, session, assignments)
        if resume is not None:
            stored = Trainer.load_session(
                load_config(config, {k: v for k, v in overrides.items() if k == "run_dir"}).run_dir, resume
            ).to_json_dict()
            deep_update(stored, overrides)
            stored["session_id"] = resume
            resolved = config_from_dict(stored)
        else:
            resolved = load_config(config, overrides)
    except ConfigError as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(2) from None
    console.print(Syntax(resolved.to_yaml(), "yaml", theme="ansi_dark", background_color="default"))
    if print_config:
        return
    from hiverl.threads import limit_threads

    limit_threads(resolved.torch_threads)  # this process runs the monitor and indexer threads
    redis_url = ensure_redis(console)
    # Ctrl-C (and the dashboard's Stop, which sends SIGINT) must reach the trainer even when it was
    # started with SIGINT ignored, as every background job of a shell script is.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    trainer = Trainer(
        resolved,
        redis_url=redis_url,
        resume=resume is not None,
        console=console,
        live=live,
        telemetry=telemetry,
        recorder=_archive_recorder() if archive else None,
    )
    console.print(
        f"session [bold]{trainer.session_id}[/bold] · memory {redact(redis_url)} · "
        f"runs {trainer.run_folder} · models {trainer.model_folder}"
    )
    pipeline = (
        _live_pipeline(trainer, redis_url, monitor, index, monitor_interval)
        if telemetry and (monitor or index)
        else None
    )
    try:
        if pipeline is not None:
            pipeline.start()
        result = trainer.run()
        console.print(trainer.table(title=f"summary · {result.status} · {result.wall_s:.0f} s"))
        if result.solved_s is not None:
            console.print(f"solved {result.solved_s:.1f} s after the first env step")
        counts = None
        if pipeline is not None:
            if index:
                console.print("[dim]waiting for the indexer to index the session's events...[/dim]")
            try:
                counts = pipeline.finish(
                    timeout_s=index_wait,
                    on_wait=lambda c: console.print(
                        f"[dim]  indexed {_counts_text(c)}[/dim]", highlight=False
                    ),
                )
            except KeyboardInterrupt:  # Ctrl-C while waiting: stop waiting, say what is there
                counts = pipeline.counts()
    finally:
        if pipeline is not None:
            pipeline.close()
    _where_to_look(console, result.session_id, result.run_folder, telemetry, index, counts)
    if result.status == SessionStatus.CRASHED:
        raise typer.Exit(1)


def _live_pipeline(trainer: Any, redis_url: str, monitor: bool, index: bool, interval_s: float) -> Any:
    """The memory monitor and the indexer for this session (started by the caller)."""
    from hiverl.endpoints import Endpoints
    from hiverl.telemetry.pipeline import LivePipeline

    endpoints = Endpoints()
    return LivePipeline(
        trainer.session_id,
        f"hive-{trainer.session_id}",  # the session's memory (game.hive_memory.memory_config)
        trainer.config.memory.key_prefix,
        trainer.run_folder,
        redis_url=redis_url,
        kafka_bootstrap=endpoints.kafka_bootstrap_servers,
        elasticsearch_url=endpoints.elasticsearch_url,
        monitor=monitor,
        index=index,
        monitor_interval_s=interval_s,
    )


def _counts_text(counts: Any) -> str:
    def part(indexed: int | None, written: int) -> str:
        return f"{'?' if indexed is None else indexed} of {written}"

    return (
        f"training_log {part(counts.training_indexed, counts.training_written)} · "
        f"memory_monitoring {part(counts.memory_indexed, counts.memory_written)}"
    )


def _where_to_look(
    console: Any, session_id: str, run_folder: Path, telemetry: bool, index: bool, counts: Any
) -> None:
    """The closing lines: the session, what Elasticsearch holds of it, the dashboard, the files."""
    from hiverl.endpoints import Endpoints, redact
    from hiverl.telemetry.config import TelemetryConfig

    lines = [f"session     {session_id}", f"events      {run_folder / 'events.jsonl'}"]
    if not telemetry:
        lines.append("indexed     nothing: --no-telemetry (events stay in the run folder)")
    elif counts is None:
        lines.append("indexed     not watched (--no-monitor --no-index); run `hiverl index`")
    else:
        prefix = TelemetryConfig().index_prefix
        lines.append(f"indexed     {_counts_text(counts)}")
        state = (
            "all indexed"
            if counts.complete
            else "indexing goes on with `hiverl index`"
            if not index
            else "not all indexed yet: `hiverl index` indexes the rest"
        )
        lines.append(f"            {state}; indices {prefix}training_log, {prefix}memory_monitoring")
        lines.append(f"            at {redact(Endpoints().elasticsearch_url)}")
    lines.append("dashboard   hiverl dashboard  ->  http://127.0.0.1:8050/live")
    lines.append("            (first time: hiverl users add NAME); archive: hiverl sessions list")
    lines.append(f"resume      hiverl train --resume {session_id}")
    console.print("[bold]where to look[/bold]")
    for line in lines:
        console.print(line, highlight=False, markup=False, soft_wrap=True)


def _archive_recorder() -> Any:
    """The session archive on MongoDB (documents are spooled locally while it is unreachable)."""
    from hiverl.archive.recorder import ArchiveRecorder
    from hiverl.archive.store import SessionArchive

    return ArchiveRecorder(SessionArchive())


def evaluate(
    checkpoint: Annotated[Path, typer.Option(help="A learner.pt or latest.pt checkpoint.")],
    episodes: Annotated[int, typer.Option(min=1, help="Greedy episodes to play.")] = 10,
    video: Annotated[Path | None, typer.Option(help="Record the first episode to this .mp4.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the evaluation envs.")] = 12345,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda.")] = "auto",
) -> None:
    """Play greedy episodes with a checkpoint; print the returns (and record a video)."""
    from rich.console import Console
    from rich.table import Table

    from game.evaluate import evaluate_checkpoint

    console = Console()
    if not checkpoint.exists():
        console.print(f"[red]checkpoint {checkpoint} does not exist[/red]")
        raise typer.Exit(2)
    result = evaluate_checkpoint(checkpoint, episodes=episodes, video=video, seed=seed, device=device)
    table = Table(title=f"{result.env_id} · {checkpoint}")
    table.add_column("episode", justify="right")
    table.add_column("return", justify="right")
    table.add_column("length", justify="right")
    for i, (ret, length) in enumerate(zip(result.returns, result.lengths, strict=True)):
        table.add_row(str(i), f"{ret:.1f}", str(length))
    console.print(table)
    console.print(f"mean return {result.mean_return:.2f} ± {result.std_return:.2f} over {episodes} episodes")
    if video is not None:
        console.print(f"video: {video}")


def _run_alone(role: Role, index: int, config: Path | None, assignments: list[str] | None) -> None:
    """Run one role of a hive in this process (one container per role; see compose.yaml)."""
    import threading

    from rich.console import Console

    from game.roles import RoleContext, run_in_process, telemetry_producer
    from game.run_archive import RunArchive
    from hiverl.config import ConfigError, load_config, parse_assignments
    from hiverl.endpoints import Endpoints
    from hiverl.events import FanoutSink, JsonlSink
    from hiverl.redis_access import ACCESS_ERRORS, check_access, exit_denied
    from hiverl.status import SessionStatus

    console = Console()
    try:
        resolved = load_config(config, parse_assignments(assignments or []))
        if resolved.session_id is None:
            raise ConfigError(f"session_id: required for a single {role} (set CONFIG_SESSION_ID)")
        if role == "actor":
            resolved.for_actor(index)  # index within the hive's actors
    except ConfigError as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(2) from None
    redis_url = Endpoints().redis_url
    try:
        check_access(redis_url)  # refused credentials end the role here, before it writes anything
    except ACCESS_ERRORS as error:
        exit_denied(error, redis_url)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    context = RoleContext(
        role, index, resolved.session_id, resolved.to_json_dict(), redis_url, telemetry=True
    )
    name = context.slug
    sink = FanoutSink(
        JsonlSink(resolved.run_dir / resolved.session_id / f"events-{name}.jsonl"),
        telemetry_producer(context),
    )

    # The learner owns the session: session.json and the archive record (see game/run_archive.py).
    run_archive = RunArchive(resolved) if role == "learner" else None
    ended: list[SessionStatus] = []

    def on_status(kind: str, payload: dict[str, Any]) -> None:
        console.print(f"{name} {kind}: {payload}")
        if kind == "done" and "status" in payload:
            ended.append(SessionStatus.parse(str(payload["status"])))

    if run_archive is not None:
        run_archive.start()
    try:
        run_in_process(context, sink, on_status, stop.is_set)
    except ACCESS_ERRORS as error:  # a command this role's user may not run: no retry can help
        exit_denied(error, redis_url)
    finally:
        sink.close()  # every event is in the role's file before the archive is rebuilt from them
        if run_archive is not None:
            run_archive.finish(ended[-1] if ended else SessionStatus.CRASHED)


ConfigOption = Annotated[Path | None, typer.Option("--config", help="TOML or YAML settings file.")]
SetOption = Annotated[list[str] | None, typer.Option("--set", help="Any setting, KEY=VALUE.")]


def learner(config: ConfigOption = None, assignments: SetOption = None) -> None:
    """Run the LEARNER of a hive in this process (CONFIG_SESSION_ID names the hive; memory at REDIS_URL).

    It resumes from the session's checkpoint when there is one; SIGTERM or Ctrl-C checkpoints and exits.
    """
    _run_alone("learner", 0, config, assignments)


def actor(
    index: Annotated[
        int, typer.Option(envvar="HIVERL_ACTOR_INDEX", min=0, help="This actor's index in the hive.")
    ],
    config: ConfigOption = None,
    assignments: SetOption = None,
) -> None:
    """Run ONE ACTOR of a hive in this process: it plays the learner's latest weights (stateless)."""
    _run_alone("actor", index, config, assignments)


def evaluator(config: ConfigOption = None, assignments: SetOption = None) -> None:
    """Run the EVALUATOR of a hive in this process: greedy rounds with the latest weights -> eval events."""
    _run_alone("evaluator", 0, config, assignments)


def register(app: typer.Typer) -> None:
    """Add this component's top-level commands to the ``hiverl`` app."""
    app.command("train")(train)
    app.command("evaluate")(evaluate)
    app.command("learner")(learner)
    app.command("actor")(actor)
    app.command("evaluator")(evaluator)
