"""A hive on one machine: N worker processes sharing one replay memory, supervised and displayed.

The trainer (the ``hiverl train`` process) spawns the workers, relays their telemetry to the event
sink (JSON lines in the run folder, plus e.g. Kafka from a sink factory), records the session in an
optional archive (:class:`hiverl.events.SessionRecorder`), restarts a worker that crashed (it
resumes from its own checkpoint), shows a live table, and stops cleanly on Ctrl-C: the workers
checkpoint before they exit.

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
from game.worker import WorkerContext, run_worker
from hiverl.config import ConfigError, SessionConfig, config_from_dict
from hiverl.endpoints import Endpoints, redact
from hiverl.events import EventSink, FanoutSink, JsonlSink, SessionRecorder

SinkFactory = Callable[[SessionConfig, str], EventSink]
HEARTBEAT_S = 10.0
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
class WorkerView:
    """What the trainer knows about one worker (from its messages)."""

    index: int
    state: str = "starting"  # starting, running, done, restarting, failed
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
    resumed_from: int | None = None
    last_checkpoint_steps: int | None = None
    error: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)  # lifecycle messages, in order


@dataclass
class TrainingResult:
    session_id: str
    status: str  # completed, stopped, failed
    wall_s: float
    workers: list[WorkerView]
    run_folder: Path
    model_folder: Path


class Trainer:
    """Runs one session; see the module docstring.

    Args:
        config: resolved settings (``session_id`` None -> a new one).
        redis_url: the memory's Redis (see :func:`ensure_redis`).
        sink_factory: extra telemetry sink (e.g. Kafka), called once with (config, session_id).
        recorder: session archive; ``start``/``heartbeat``/``finish`` are called from this process.
        resume: continue an existing session (its session.json must exist).
        live: show the live table (only on a terminal).
        on_message: test hook called with every (kind, worker_index, payload) message.
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
        on_message: Callable[[str, int, dict[str, Any]], None] | None = None,
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
        self.views = [WorkerView(i) for i in range(self.config.workers)]
        self._ctx = mp.get_context("spawn")
        self._connections: dict[int, Connection] = {}  # worker index -> its pipe's read end
        self._stop = self._ctx.Event()
        self._procs: dict[int, Any] = {}
        self._started_at = datetime.now(UTC)

    @staticmethod
    def load_session(run_dir: Path, session_id: str) -> SessionConfig:
        """The resolved settings stored by an earlier run of ``session_id``."""
        path = Path(run_dir) / session_id / "session.json"
        if not path.exists():
            raise ConfigError(f"--resume {session_id}: no session.json in {path.parent}")
        return config_from_dict(json.loads(path.read_text())["config"])

    # -- session document -------------------------------------------------------------------------

    def session_document(self, status: str, **extra: Any) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "status": status,
            "env_id": self.config.env_id,
            "workers": self.config.workers,
            "started_at": self._started_at.isoformat(),
            "updated_at": datetime.now(UTC).isoformat(),
            "seeds": [self.config.seed + 1000 * i for i in range(self.config.workers)],
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

    def _spawn(self, index: int) -> None:
        context = WorkerContext(index, self.session_id, self.config.to_json_dict(), self.redis_url)
        old = self._connections.pop(index, None)
        if old is not None:
            old.close()
        reader, writer = self._ctx.Pipe(duplex=False)
        process = self._ctx.Process(
            target=run_worker, args=(context, writer, self._stop), name=f"hiverl-worker-{index}"
        )
        process.start()
        writer.close()  # the child holds the write end; EOF on the read end means it is gone
        self._connections[index] = reader
        self._procs[index] = process
        self.views[index].pid = process.pid

    def worker_pid(self, index: int) -> int | None:
        process = self._procs.get(index)
        return process.pid if process is not None else None

    def _handle(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "event":
            _, topic, event = message
            self.sink.publish(topic, event)
            if event.get("event_type") == "train_stats":
                view = self.views[event["worker_index"]]
                for name in (
                    "env_steps", "updates", "episodes", "env_steps_per_s", "updates_per_s",
                    "last_return", "mean_return_100", "epsilon", "loss", "memory_time_share",
                ):  # fmt: skip
                    setattr(view, name, event.get(name))
            return
        _, index, payload = message
        if not isinstance(payload, dict):
            payload = {"text": str(payload)}
        view = self.views[index]
        view.history.append({"kind": kind, **payload})
        if kind == "started":
            view.state, view.pid, view.resumed_from = "running", payload["pid"], payload["resumed_from"]
        elif kind == "checkpoint":
            view.last_checkpoint_steps = payload["env_steps"]
        elif kind == "done":
            view.state = "done"
            for name in ("env_steps", "updates", "episodes", "mean_return_100", "last_return"):
                setattr(view, name, payload[name])
            # The summary shows averages over this process's run, not the last interval's rates.
            wall = max(payload["wall_s"], 1e-9)
            steps_this_run = payload["env_steps"] - (view.resumed_from or 0)
            view.env_steps_per_s = steps_this_run / wall
            view.updates_per_s = payload.get("updates_this_run", payload["updates"]) / wall
            view.memory_time_share = payload["memory_time_share"]
        elif kind == "error":
            view.error = payload["text"]
        if self.on_message is not None:
            self.on_message(kind, index, payload)

    def _drain(self, timeout_s: float) -> None:
        """Handle every message that arrives within ``timeout_s`` (then whatever is already there)."""
        while self._connections:
            ready = wait(list(self._connections.values()), timeout=timeout_s)
            if not ready:
                return
            timeout_s = 0.0
            for index, connection in list(self._connections.items()):
                if connection not in ready:
                    continue
                try:
                    message = connection.recv()
                except (EOFError, OSError, pickle.UnpicklingError):
                    # The worker exited (or was killed mid-message): its channel is done.
                    connection.close()
                    del self._connections[index]
                    continue
                self._handle(message)

    def _supervise(self, stopping: bool) -> None:
        for index, process in list(self._procs.items()):
            view = self.views[index]
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
                self.console.print(
                    f"[yellow]worker {index} exited with code {process.exitcode}; restarting "
                    f"({view.restarts}/{self.config.max_restarts}) from its checkpoint[/yellow]"
                )
                self._spawn(index)
            else:
                view.state = "failed"
                self.console.print(f"[red]worker {index} failed (exit code {process.exitcode})[/red]")
                if view.error:
                    self.console.print(view.error)

    # -- main loop --------------------------------------------------------------------------------

    def run(self) -> TrainingResult:
        """Run the session to the end of every worker's budget, or until Ctrl-C."""
        started = time.monotonic()
        document = self.session_document("running", resumed=self.resume)
        self._write_session(document)
        if self.recorder is not None:
            self.recorder.start(document)
        for index in range(self.config.workers):
            self._spawn(index)
        stopping = False
        status = "completed"
        last_heartbeat = time.monotonic()
        live = (
            Live(self.table(), console=self.console, refresh_per_second=2, transient=False)
            if self.live
            else None
        )
        stop_deadline = float("inf")
        try:
            if live is not None:
                live.start()
            while any(view.state not in ("done", "failed") for view in self.views):
                try:
                    self._drain(0.25)
                    self._supervise(stopping)
                    if live is not None:
                        live.update(self.table())
                    if self.recorder is not None and time.monotonic() - last_heartbeat >= HEARTBEAT_S:
                        last_heartbeat = time.monotonic()
                        self.recorder.heartbeat(self.session_id, self._progress())
                    if time.monotonic() > stop_deadline:
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
                    self.console.print("[yellow]stopping: workers are saving checkpoints...[/yellow]")
        finally:
            if live is not None:
                live.update(self.table())
                live.stop()
            for process in self._procs.values():
                process.join(timeout=10)
            self._drain(0.05)
            if any(view.state == "failed" for view in self.views):
                status = "failed"
            wall = time.monotonic() - started
            final = self.session_document(status, resumed=self.resume, wall_s=wall, **self._progress())
            self._write_session(final)
            # Flush first: the archive rebuilds the final results from the run folder's events.
            self.sink.flush()
            if self.recorder is not None:
                self.recorder.finish(self.session_id, status, self._progress() | {"wall_s": wall})
            self.sink.close()
        return TrainingResult(self.session_id, status, wall, self.views, self.run_folder, self.model_folder)

    def stop(self) -> None:
        """Ask every worker to checkpoint and exit (what Ctrl-C does)."""
        self._stop.set()

    def _progress(self) -> dict[str, Any]:
        return {
            "env_steps": sum(view.env_steps for view in self.views),
            "workers_status": [
                {k: v for k, v in asdict(view).items() if k != "history"} for view in self.views
            ],
        }

    # -- display ----------------------------------------------------------------------------------

    def table(self, title: str | None = None) -> Table:
        """Per-worker progress: env steps/s, updates/s, episodes, returns, ε, loss."""
        table = Table(title=title or f"hive {self.session_id} · {self.config.env_id}")
        for column in (
            "worker", "state", "env steps", "steps/s", "updates/s", "episodes",
            "last return", "mean return", "ε", "loss", "mem time",
        ):  # fmt: skip
            table.add_column(column, justify="right")
        for view in self.views:
            table.add_row(
                str(view.index),
                view.state + (f" ({view.restarts} restarts)" if view.restarts else ""),
                f"{view.env_steps:,}",
                _fmt(view.env_steps_per_s, ".0f"),
                _fmt(view.updates_per_s, ".0f"),
                str(view.episodes),
                _fmt(view.last_return, ".1f"),
                _fmt(view.mean_return_100, ".1f"),
                _fmt(view.epsilon, ".3f"),
                _fmt(view.loss, ".4f"),
                _fmt(None if view.memory_time_share is None else 100 * view.memory_time_share, ".0f", "%"),
            )
        return table


def _fmt(value: float | None, spec: str, suffix: str = "") -> str:
    if value is None or value != value:  # None or NaN
        return "-"
    return f"{value:{spec}}{suffix}"
