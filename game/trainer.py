"""A hive on one machine: one learner, N actors and an evaluator as processes, supervised and displayed.

The trainer (the ``hiverl train`` process) spawns the learner first, then the actors and the
evaluator; relays their telemetry to the event sink (JSON lines in the run folder, plus e.g. Kafka
from a sink factory); records the session in an optional archive
(:class:`hiverl.events.SessionRecorder`); restarts a process that crashed (the learner resumes from
its checkpoint, an actor just reconnects); shows a live table; and stops cleanly on Ctrl-C: the
learner checkpoints before it exits.

Run folder ``<run_dir>/<session>/``: ``session.json`` (id, seeds, resolved config, git commit,
package versions, status) and ``events.jsonl``. Model store: ``<model_dir>/<session>/``.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import pickle
import platform
import secrets
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from game.checkpoints import atomic_write_bytes
from game.roles import Role, RoleContext, run_role
from hiverl.config import ConfigError, SessionConfig, config_from_dict
from hiverl.endpoints import Endpoints, redact
from hiverl.events import EventSink, FanoutSink, JsonlSink, SessionRecorder

SinkFactory = Callable[[SessionConfig, str], EventSink]
HEARTBEAT_S = 10.0
PROGRESS_LINE_S = 5.0  # without a terminal: one progress line this often
STOP_GRACE_S = 120.0


def new_session_id() -> str:
    """``YYYYmmdd-HHMMSS-xxxx``: sortable and unique enough for one machine."""
    return f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def ensure_redis(console: Console | None = None) -> str:
    """The Redis URL to use: ``REDIS_URL`` when set, else the project's local Redis (started if down)."""
    import redis

    url = Endpoints().redis_url
    if os.environ.get("REDIS_URL") or os.environ.get("HIVERL_REDIS_URL"):
        return url
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1.0).ping()
        return url
    except redis.RedisError:
        pass
    from hiverl.services import RedisServer

    server = RedisServer()
    if console is not None:
        console.print(f"[dim]starting the project's local Redis on port {server.port}[/dim]")
    server.start()
    return server.url


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
            check=False,
        )
    except OSError:
        return None
    return out.stdout.strip() or None


def _versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in ("hiverl", "torch", "gymnasium", "ale-py", "numpy", "redis"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


@dataclass
class RoleView:
    """What the trainer knows about one role process (from its messages)."""

    role: Role
    index: int
    state: str = "starting"  # starting, running, waiting for Redis, done, restarting, failed
    pid: int | None = None
    restarts: int = 0
    env_steps: int = 0
    updates: int = 0
    episodes: int = 0
    env_steps_per_s: float = 0.0
    updates_per_s: float = 0.0
    last_return: float | None = None
    mean_return_100: float | None = None
    epsilon: float | None = None
    loss: float | None = None
    memory_time_share: float | None = None
    weights_version: int | None = None
    eval_return: float | None = None
    best_eval_return: float | None = None
    solved_at_s: float | None = None  # seconds from the first env step to "solved"
    resumed_from: int | None = None
    error: str | None = None
    in_learner: bool = False  # a solo hive's actor: it runs inside the learner's process
    history: list[dict[str, Any]] = field(default_factory=list)  # lifecycle messages, in order

    @property
    def name(self) -> str:
        return f"actor {self.index}" if self.role == "actor" else self.role


@dataclass
class TrainingResult:
    session_id: str
    status: str  # completed, solved, stopped, failed
    wall_s: float
    views: list[RoleView]
    run_folder: Path
    model_folder: Path
    first_step_time: float | None  # Unix time of the hive's first env step
    solved_s: float | None  # seconds from the first env step to the evaluator's "solved"


class Trainer:
    """Runs one session; see the module docstring.

    Args:
        config: resolved settings (``session_id`` None -> a new one).
        redis_url: the memory's Redis (see :func:`ensure_redis`).
        sink_factory: extra telemetry sink (e.g. Kafka), called once with (config, session_id).
        recorder: session archive; ``start``/``heartbeat``/``finish`` are called from this process.
        resume: continue an existing session (its session.json must exist).
        live: show the live table (only on a terminal).
        on_message: test hook called with every (kind, role, index, payload) message.
    """

    def __init__(
        self,
        config: SessionConfig,
        *,
        redis_url: str,
        sink_factory: SinkFactory | None = None,
        recorder: SessionRecorder | None = None,
        resume: bool = False,
        console: Console | None = None,
        live: bool = True,
        on_message: Callable[[str, str, int, dict[str, Any]], None] | None = None,
    ) -> None:
        self.session_id = config.session_id or new_session_id()
        self.config = config.model_copy(update={"session_id": self.session_id})
        self.redis_url = redis_url
        self.run_folder = self.config.run_dir / self.session_id
        self.model_folder = self.config.model_dir / self.session_id
        session_file = self.run_folder / "session.json"
        if resume and not session_file.exists():
            raise ConfigError(f"--resume {self.session_id}: no session.json in {self.run_folder}")
        if not resume and session_file.exists():
            raise ConfigError(f"session {self.session_id} already exists in {self.run_folder}; use --resume")
        self.resume = resume
        self.console = console or Console()
        self.live = live and self.console.is_terminal
        self.recorder = recorder
        self.on_message = on_message
        self.run_folder.mkdir(parents=True, exist_ok=True)
        jsonl = JsonlSink(self.run_folder / "events.jsonl")
        self.sink: EventSink = (
            FanoutSink(jsonl, sink_factory(self.config, self.session_id)) if sink_factory else jsonl
        )
        roles: list[tuple[Role, int]] = [("learner", 0)]
        roles += [("actor", i) for i in range(self.config.actors)]
        if self.config.evaluator.enabled:
            roles.append(("evaluator", 0))
        self.views: dict[tuple[Role, int], RoleView] = {key: RoleView(*key) for key in roles}
        if self.config.actors == 0:
            self.views[("actor", 0)] = RoleView("actor", 0, state="in learner", in_learner=True)
        self._ctx = mp.get_context("spawn")
        self._connections: dict[tuple[Role, int], Connection] = {}  # role -> its pipe's read end
        self._stop = self._ctx.Event()
        self._procs: dict[tuple[Role, int], Any] = {}
        self._started_at = datetime.now(UTC)
        self.first_step_time: float | None = None
        self.solved_time: float | None = None

    @staticmethod
    def load_session(run_dir: Path, session_id: str) -> SessionConfig:
        """The resolved settings stored by an earlier run of ``session_id``."""
        path = Path(run_dir) / session_id / "session.json"
        if not path.exists():
            raise ConfigError(f"--resume {session_id}: no session.json in {path.parent}")
        return config_from_dict(json.loads(path.read_text())["config"])

    @property
    def learner(self) -> RoleView:
        return self.views[("learner", 0)]

    # -- session document -------------------------------------------------------------------------

    def session_document(self, status: str, **extra: Any) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "status": status,
            "env_id": self.config.env_id,
            "actors": self.config.actors,
            "started_at": self._started_at.isoformat(),
            "updated_at": datetime.now(UTC).isoformat(),
            "seeds": {
                "learner": self.config.seed,
                "actors": [self.config.actor_seed(i) for i in range(self.config.actors)],
            },
            "config": self.config.to_json_dict(),
            "git_commit": _git_commit(),
            "versions": _versions(),
            "redis_url": redact(self.redis_url),
            "run_folder": str(self.run_folder),
            "model_folder": str(self.model_folder),
            **extra,
        }

    def _write_session(self, document: dict[str, Any]) -> None:
        path = self.run_folder / "session.json"
        atomic_write_bytes(path, json.dumps(document, indent=2, default=str).encode())

    # -- processes --------------------------------------------------------------------------------

    def _spawn(self, key: tuple[Role, int]) -> None:
        role, index = key
        context = RoleContext(role, index, self.session_id, self.config.to_json_dict(), self.redis_url)
        old = self._connections.pop(key, None)
        if old is not None:
            old.close()
        reader, writer = self._ctx.Pipe(duplex=False)
        process = self._ctx.Process(
            target=run_role, args=(context, writer, self._stop), name=f"hiverl-{role}-{index}"
        )
        process.start()
        writer.close()  # the child holds the write end; EOF on the read end means it is gone
        self._connections[key] = reader
        self._procs[key] = process
        self.views[key].pid = process.pid

    def pid(self, role: Role, index: int = 0) -> int | None:
        process = self._procs.get((role, index))
        return process.pid if process is not None else None

    def _on_event(self, event: dict[str, Any]) -> None:
        role = event.get("role")
        index = int(event.get("worker_index", 0)) if role == "actor" else 0
        view = next((v for (r, i), v in self.views.items() if r == role and i == index), None)
        kind = event.get("event_type")
        if view is None:
            return
        if kind == "train_stats":
            for name in (
                "env_steps", "updates", "episodes", "env_steps_per_s", "updates_per_s",
                "last_return", "mean_return_100", "epsilon", "loss", "memory_time_share",
                "weights_version",
            ):  # fmt: skip
                if name in event:
                    setattr(view, name, event[name])
            if view.state == "waiting for Redis":
                view.state = "running"
        elif kind == "episode":
            if self.first_step_time is None:  # the first episode's start is the hive's first env step
                self.first_step_time = float(event["event_time"]) - float(
                    event.get("episode_duration_s") or 0.0
                )
        elif kind == "eval":
            view.eval_return = event["eval_return"]
            view.weights_version = event.get("weights_version")
            best = view.best_eval_return
            view.best_eval_return = view.eval_return if best is None else max(best, view.eval_return)
            if event.get("solved") and self.solved_time is None:
                self.solved_time = float(event["event_time"])

    def _handle(self, message: tuple[Any, ...]) -> None:
        if message[0] == "event":
            _, topic, event = message
            self.sink.publish(topic, event)
            self._on_event(event)
            return
        kind, role, index, payload = message
        if not isinstance(payload, dict):
            payload = {"text": str(payload)}
        view = self.views[(role, index)]
        view.history.append({"kind": kind, **payload})
        if kind == "started":
            view.state = "running"
            view.resumed_from = payload.get("resumed_from")
            plays = role == "actor" or (role == "learner" and self.config.actors == 0)
            if plays and self.first_step_time is None:  # the hive's first env step comes next
                self.first_step_time = time.time()
        elif kind == "outage":
            view.state = "waiting for Redis"
        elif kind == "done":
            view.state = "done"
            if role == "learner":
                view.updates = payload["updates"]
                view.updates_per_s = payload["updates_this_run"] / max(payload["wall_s"], 1e-9)
                view.memory_time_share = payload["memory_time_share"]
        elif kind == "error":
            view.error = payload["text"]
        if self.on_message is not None:
            self.on_message(kind, role, index, payload)

    def _drain(self, timeout_s: float) -> None:
        """Handle every message that arrives within ``timeout_s`` (then whatever is already there)."""
        while self._connections:
            ready = wait(list(self._connections.values()), timeout=timeout_s)
            if not ready:
                return
            timeout_s = 0.0
            for key, connection in list(self._connections.items()):
                if connection not in ready:
                    continue
                try:
                    message = connection.recv()
                except (EOFError, OSError, pickle.UnpicklingError):
                    # The process exited (or was killed mid-message): its channel is done.
                    connection.close()
                    del self._connections[key]
                    continue
                self._handle(message)

    def _supervise(self, stopping: bool) -> None:
        for key, process in list(self._procs.items()):
            view = self.views[key]
            if process.is_alive() or view.state in ("done", "failed"):
                continue
            self._drain(0.05)  # the exit may race with its last messages
            if view.state == "done":
                continue
            if process.exitcode == 0:
                view.state = "done"
            elif not stopping and view.restarts < self.config.max_restarts:
                view.restarts += 1
                view.state = "restarting"
                how = "from its checkpoint" if key[0] == "learner" else "with the current weights"
                self.console.print(
                    f"[yellow]{view.name} exited with code {process.exitcode}; restarting "
                    f"({view.restarts}/{self.config.max_restarts}) {how}[/yellow]"
                )
                self._spawn(key)
            else:
                view.state = "failed"
                self.console.print(f"[red]{view.name} failed (exit code {process.exitcode})[/red]")
                if view.error:
                    self.console.print(view.error)
        # Once the learner is finished there is nothing left to act or evaluate for; once every actor
        # has failed there is nothing left to learn from.
        actors = [view for view in self.views.values() if view.role == "actor" and not view.in_learner]
        if actors and all(view.state == "failed" for view in actors):
            self._stop.set()
        if self.learner.state in ("done", "failed"):
            self._stop.set()
            for view in self.views.values():
                if view.in_learner:
                    view.state = self.learner.state

    # -- main loop --------------------------------------------------------------------------------

    def run(self) -> TrainingResult:
        """Run the session until the learner finishes (budget, solved, Ctrl-C) and every process exited."""
        started = time.monotonic()
        document = self.session_document("running", resumed=self.resume)
        self._write_session(document)
        if self.recorder is not None:
            self.recorder.start(document)
        self._spawn(("learner", 0))
        others = [key for key, view in self.views.items() if key[0] != "learner" and not view.in_learner]
        stopping = False
        status = "completed"
        last_heartbeat = last_line = time.monotonic()
        live = (
            Live(self.table(), console=self.console, refresh_per_second=2, transient=False)
            if self.live
            else None
        )
        stop_deadline = float("inf")
        try:
            if live is not None:
                live.start()
            while any(view.state not in ("done", "failed") for view in self.views.values()):
                try:
                    self._drain(0.25)
                    if others and self.learner.state != "starting":
                        # Actors and evaluator start once the learner has published its weights.
                        for key in others:
                            self._spawn(key)
                        others = []
                    self._supervise(stopping)
                    now = time.monotonic()
                    if live is not None:
                        live.update(self.table())
                    elif now - last_line >= PROGRESS_LINE_S:
                        last_line = now
                        self.console.print(self.progress_line(now - started))
                    if self.recorder is not None and now - last_heartbeat >= HEARTBEAT_S:
                        last_heartbeat = now
                        self.recorder.heartbeat(self.session_id, self._progress())
                    if now > stop_deadline:
                        for process in self._procs.values():
                            if process.is_alive():
                                process.kill()
                except KeyboardInterrupt:
                    # A second Ctrl-C means: do not wait for checkpoints. One that follows the first
                    # within a second is the same keypress delivered twice (to the process and to
                    # its group, as `timeout` does) and is not a second request.
                    if stopping and time.monotonic() > stop_deadline - STOP_GRACE_S + 1.0:
                        for process in self._procs.values():
                            if process.is_alive():
                                process.kill()
                    if not stopping:
                        stop_deadline = time.monotonic() + STOP_GRACE_S
                    stopping, status = True, "stopped"
                    self._stop.set()
                    self.console.print("[yellow]stopping: the learner is saving its checkpoint...[/yellow]")
        finally:
            if live is not None:
                live.update(self.table())
                live.stop()
            for process in self._procs.values():
                process.join(timeout=10)
            self._drain(0.05)
            learner_status = next(
                (h.get("status") for h in reversed(self.learner.history) if h["kind"] == "done"), None
            )
            if status == "completed" and learner_status == "solved":
                status = "solved"
            if any(view.state == "failed" for view in self.views.values()):
                status = "failed"
            wall = time.monotonic() - started
            final = self.session_document(status, resumed=self.resume, wall_s=wall, **self._progress())
            self._write_session(final)
            # Flush first: the archive rebuilds the final results from the run folder's events.
            self.sink.flush()
            if self.recorder is not None:
                self.recorder.finish(self.session_id, status, self._progress() | {"wall_s": wall})
            self.sink.close()
        solved_s = (
            self.solved_time - self.first_step_time
            if self.solved_time is not None and self.first_step_time is not None
            else None
        )
        return TrainingResult(
            self.session_id,
            status,
            wall,
            list(self.views.values()),
            self.run_folder,
            self.model_folder,
            self.first_step_time,
            solved_s,
        )

    def stop(self) -> None:
        """Ask every process to finish; the learner checkpoints (what Ctrl-C does)."""
        self._stop.set()

    def _progress(self) -> dict[str, Any]:
        actors = [view for view in self.views.values() if view.role == "actor"]
        evaluator = self.views.get(("evaluator", 0))
        return {
            "env_steps": sum(view.env_steps for view in actors),
            "updates": self.learner.updates,
            "best_eval_return": evaluator.best_eval_return if evaluator is not None else None,
            "solved": self.solved_time is not None,
            "roles_status": [
                {k: v for k, v in asdict(view).items() if k != "history"} for view in self.views.values()
            ],
        }

    # -- display ----------------------------------------------------------------------------------

    def progress_line(self, elapsed_s: float) -> str:
        """One line of progress for logs and CI (no terminal): time, steps, updates, returns."""
        progress = self._progress()
        evaluator = self.views.get(("evaluator", 0))
        eval_text = _fmt(evaluator.eval_return if evaluator else None, ".1f")
        return (
            f"[{elapsed_s:6.0f} s] env steps {progress['env_steps']:,} · updates {self.learner.updates:,}"
            f" ({_fmt(self.learner.updates_per_s, '.0f')}/s) · eval return {eval_text}"
            f" · loss {_fmt(self.learner.loss, '.4f')}"
        )

    def table(self, title: str | None = None) -> Table:
        """Per-process progress, readable at 80 columns (logs, CI): steps (the learner's are its
        updates) and their rate, mean return (the evaluator's: last and best), ε, loss, memory wait."""
        from rich import box

        table = Table(title=title or f"hive {self.session_id} · {self.config.env_id}", box=box.SIMPLE_HEAD)
        table.pad_edge = False
        for column in ("role", "state", "steps", "per s", "return (best)", "ε", "loss", "mem"):
            table.add_column(column, justify="left" if column in ("role", "state") else "right", no_wrap=True)
        for view in self.views.values():
            if view.role == "evaluator":
                returns = f"{_fmt(view.eval_return, '.1f')} ({_fmt(view.best_eval_return, '.1f')})"
            else:
                returns = _fmt(view.mean_return_100, ".1f")
            learner = view.role == "learner"
            table.add_row(
                "eval" if view.role == "evaluator" else view.name,
                view.state + (f" ↻{view.restarts}" if view.restarts else ""),
                f"{view.updates:,}" if view.role != "actor" else f"{view.env_steps:,}",
                _fmt(
                    view.updates_per_s if learner else view.env_steps_per_s if view.role == "actor" else None,
                    ".0f",
                ),
                returns,
                _fmt(view.epsilon, ".2f"),
                _fmt(view.loss, ".3g"),
                _fmt(None if view.memory_time_share is None else 100 * view.memory_time_share, ".0f", "%"),
            )
        return table


def _fmt(value: float | None, spec: str, suffix: str = "") -> str:
    if value is None or value != value:  # None or NaN
        return "-"
    return f"{value:{spec}}{suffix}"
