"""A hive on one machine: one learner, N actors and an evaluator as processes, supervised and displayed.

The trainer (the ``hiverl train`` process) spawns the learner first, then the actors and the
evaluator (each sends its telemetry to Kafka through its own producer); writes the events they
pipe to it to the run folder (JSON lines) for its live table and the archive; records the
session in an optional archive (:class:`hiverl.events.SessionRecorder`); restarts a process that
crashed (the learner resumes from its checkpoint or the board's newer weights, an actor just
reconnects); shows a live table; and stops cleanly on Ctrl-C: the learner checkpoints before it
exits.

Run folder ``<run_dir>/<session>/``: ``session.json`` (id, seeds, resolved config, git commit,
package versions, status) and ``events.jsonl``. Model store: ``<model_dir>/<session>/``.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from game.hive_progress import HiveProgress, Periodic, RoleView
from game.roles import Role, RoleContext, run_role
from game.run_archive import session_document, write_session_file
from hiverl.config import ConfigError, SessionConfig, config_from_dict
from hiverl.endpoints import Endpoints, redact
from hiverl.events import EventSink, FanoutSink, JsonlSink, SessionRecorder
from hiverl.session import new_session_id
from hiverl.status import RoleState, SessionStatus

SinkFactory = Callable[[SessionConfig, str], EventSink]
HEARTBEAT_S = 10.0
PROGRESS_LINE_S = 5.0  # without a terminal: one progress line this often
DRAIN_MAX_S = 1.0  # the longest the loop handles messages before it shows progress again
STOP_GRACE_S = 120.0


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


@dataclass
class TrainingResult:
    session_id: str
    status: SessionStatus
    wall_s: float
    views: list[RoleView]
    run_folder: Path
    model_folder: Path
    first_step_time: float | None  # Unix time of the hive's first env step
    solved_s: float | None  # seconds from the first env step to the evaluator's "solved"

    @property
    def solved(self) -> bool:
        return self.solved_s is not None


class Trainer:
    """Runs one session; see the module docstring.

    Args:
        config: resolved settings (``session_id`` None -> a new one).
        redis_url: the memory's Redis (see :func:`ensure_redis`).
        telemetry: each role process sends its events to Kafka through its own producer.
        sink_factory: an extra sink in this process for every role's events (tests), called once
            with (config, session_id).
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
        telemetry: bool = False,
        sink_factory: SinkFactory | None = None,
        recorder: SessionRecorder | None = None,
        resume: bool = False,
        console: Console | None = None,
        live: bool = True,
        on_message: Callable[[str, str, int, dict[str, Any]], None] | None = None,
    ) -> None:
        self.session_id = config.session_id or new_session_id(config.env_id)
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
        self.telemetry = telemetry
        self.console = console or Console()
        self.live = live and self.console.is_terminal
        self.recorder = recorder
        self.on_message = on_message
        self.run_folder.mkdir(parents=True, exist_ok=True)
        jsonl = JsonlSink(self.run_folder / "events.jsonl")
        self.sink: EventSink = (
            FanoutSink(jsonl, sink_factory(self.config, self.session_id)) if sink_factory else jsonl
        )
        self.hive = HiveProgress(
            self.session_id, self.config.env_id, self.config.actors, self.config.evaluator.enabled
        )
        self._ctx = mp.get_context("spawn")
        self._connections: dict[tuple[Role, int], Connection] = {}  # role -> its pipe's read end
        self._stop = self._ctx.Event()
        self._procs: dict[tuple[Role, int], Any] = {}
        self._started_at = datetime.now(UTC)
        self._stopping = False  # Ctrl-C: the processes are asked to finish
        self._stop_deadline = float("inf")  # then killed after this (monotonic) time

    @staticmethod
    def load_session(run_dir: Path, session_id: str) -> SessionConfig:
        """The resolved settings stored by an earlier run of ``session_id``."""
        path = Path(run_dir) / session_id / "session.json"
        if not path.exists():
            raise ConfigError(f"--resume {session_id}: no session.json in {path.parent}")
        return config_from_dict(json.loads(path.read_text())["config"])

    @property
    def views(self) -> dict[tuple[Role, int], RoleView]:
        return self.hive.views

    @property
    def learner(self) -> RoleView:
        return self.hive.learner

    def table(self, title: str | None = None) -> Table:
        return self.hive.table(title)

    # -- session document -------------------------------------------------------------------------

    def session_document(self, status: SessionStatus, **extra: Any) -> dict[str, Any]:
        return session_document(
            self.config,
            status,
            started_at=self._started_at.isoformat(),
            run_folder=self.run_folder,
            redis_url=redact(self.redis_url),
            model_folder=str(self.model_folder),
            **extra,
        )

    def _write_session(self, document: dict[str, Any]) -> None:
        write_session_file(self.run_folder, document)

    # -- processes --------------------------------------------------------------------------------

    def _spawn(self, key: tuple[Role, int]) -> None:
        role, index = key
        context = RoleContext(
            role, index, self.session_id, self.config.to_json_dict(), self.redis_url, self.telemetry
        )
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

    def _kill_all(self) -> None:
        for process in self._procs.values():
            if process.is_alive():
                process.kill()

    def _handle(self, message: tuple[Any, ...]) -> None:
        if message[0] == "event":
            _, topic, event = message
            self.sink.publish(topic, event)
            self.hive.on_event(event)
            return
        kind, role, index, payload = message
        if not isinstance(payload, dict):
            payload = {"text": str(payload)}
        self.hive.on_lifecycle(kind, role, index, payload)
        if self.on_message is not None:
            self.on_message(kind, role, index, payload)

    def _drain(self, timeout_s: float, max_s: float = float("inf")) -> None:
        """Handle every message that arrives within ``timeout_s`` (then whatever is already there, for
        at most ``max_s`` more: the main loop's stream of messages never holds up the display)."""
        until = time.monotonic() + timeout_s + max_s
        while self._connections and time.monotonic() < until:
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

    def _supervise(self) -> None:
        for key, process in list(self._procs.items()):
            view = self.views[key]
            if process.is_alive() or view.state.ended:
                continue
            self._drain(0.05)  # the exit may race with its last messages
            if view.state == RoleState.DONE:
                continue
            if process.exitcode == 0:
                view.state = RoleState.DONE
            elif not self._stopping and view.restarts < self.config.max_restarts:
                view.restarts += 1
                view.state = RoleState.RESTARTING
                how = "from its latest weights" if key[0] == "learner" else "with the current weights"
                self.console.print(
                    f"[yellow]{view.name} exited with code {process.exitcode}; restarting "
                    f"({view.restarts}/{self.config.max_restarts}) {how}[/yellow]"
                )
                self._spawn(key)
            else:
                view.state = RoleState.FAILED
                self.console.print(f"[red]{view.name} failed (exit code {process.exitcode})[/red]")
                if view.error:
                    self.console.print(view.error)
        # Once the learner is finished there is nothing left to act or evaluate for; once every actor
        # has failed there is nothing left to learn from.
        actors = [view for view in self.hive.actors if not view.in_learner]
        if actors and all(view.state == RoleState.FAILED for view in actors):
            self._stop.set()
        if self.learner.state.ended:
            self._stop.set()
            self.hive.follow_learner()

    # -- main loop --------------------------------------------------------------------------------

    def run(self) -> TrainingResult:
        """Run the session until the learner finishes (budget, solved, Ctrl-C) and every process exited."""
        started = time.monotonic()
        document = self.session_document(SessionStatus.RUNNING, resumed=self.resume)
        self._write_session(document)
        if self.recorder is not None:
            self.recorder.start(document)
        self._spawn(("learner", 0))
        # Actors and evaluator start once the learner has published its weights.
        waiting = [key for key, view in self.views.items() if key[0] != "learner" and not view.in_learner]
        ticks = Periodic(started)
        live = (
            Live(self.table(), console=self.console, refresh_per_second=2, transient=False)
            if self.live
            else None
        )
        try:
            if live is not None:
                live.start()
            while not self.hive.ended:
                try:
                    self._drain(0.25, DRAIN_MAX_S)
                    if waiting and self.learner.state != RoleState.STARTING:
                        for key in waiting:
                            self._spawn(key)
                        waiting = []
                    self._supervise()
                    self._tick(live, ticks)
                except KeyboardInterrupt:
                    self._interrupted()
        finally:
            if live is not None:
                live.update(self.table())
                live.stop()
            status, wall = self._wind_down(started)
        return TrainingResult(
            self.session_id,
            status,
            wall,
            list(self.views.values()),
            self.run_folder,
            self.model_folder,
            self.hive.first_step_time,
            self.hive.solved_s,
        )

    def _tick(self, live: Live | None, ticks: Periodic) -> None:
        """Display, heartbeat, and the kill once a stop outlived its grace period."""
        now = time.monotonic()
        for line in self.hive.outage_news():  # a service went away or came back: say so at once
            self.console.print(f"[yellow]{line}[/yellow]", highlight=False)
        if live is not None:
            live.update(self.table())
        elif ticks.due("line", now, PROGRESS_LINE_S):
            self.console.print(self.hive.progress_line(now - ticks.started))
        if self.recorder is not None and ticks.due("heartbeat", now, HEARTBEAT_S):
            self.recorder.heartbeat(self.session_id, self.hive.progress())
        if now > self._stop_deadline:
            self._kill_all()

    def _interrupted(self) -> None:
        """Ctrl-C: ask every process to finish (the learner checkpoints); a second one kills them."""
        # A second Ctrl-C means: do not wait for checkpoints. One that follows the first within a
        # second is the same keypress delivered twice (to the process and to its group, as `timeout`
        # does) and is not a second request.
        if self._stopping and time.monotonic() > self._stop_deadline - STOP_GRACE_S + 1.0:
            self._kill_all()
        if not self._stopping:
            self._stop_deadline = time.monotonic() + STOP_GRACE_S
        self._stopping = True
        self._stop.set()
        self.console.print("[yellow]stopping: the learner is saving its checkpoint...[/yellow]")

    def _final_status(self) -> SessionStatus:
        if any(view.state == RoleState.FAILED for view in self.views.values()):
            return SessionStatus.CRASHED
        if self._stopping or self.hive.learner_stop_reason() == "stopped":
            return SessionStatus.STOPPED
        return SessionStatus.FINISHED

    def _wind_down(self, started: float) -> tuple[SessionStatus, float]:
        """Wait for the processes, then record the end: session.json, telemetry, the archive."""
        for process in self._procs.values():
            process.join(timeout=10)
        self._drain(0.05)
        status = self._final_status()
        wall = time.monotonic() - started
        progress = self.hive.progress() | {"wall_s": wall}
        self._write_session(self.session_document(status, resumed=self.resume, **progress))
        self._flush_and_archive(status, progress)
        self.sink.close()
        return status, wall

    def _flush_and_archive(self, status: SessionStatus, progress: dict[str, Any]) -> None:
        """Flush every event to the run folder, then archive the end of the session.

        One step because the archive's final results are rebuilt from the run folder's
        ``events.jsonl``: archiving before the flush would miss the session's last events.
        """
        self.sink.flush()
        if self.recorder is not None:
            self.recorder.finish(self.session_id, status, progress)

    def stop(self) -> None:
        """Ask every process to finish; the learner checkpoints (what Ctrl-C does)."""
        self._stop.set()
