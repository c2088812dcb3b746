"""Starting and stopping training sessions from the dashboard, through ``hiverl train`` itself.

A session started here is exactly the session a user would start in a terminal: the dashboard
runs ``hiverl train <flags> --session <id>`` as a child process in its own process group, and
stops it the way a user does, with SIGINT (Ctrl-C) to the group, so the learner saves its
checkpoint and the archive records the session as stopped.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any


class LaunchRefused(RuntimeError):
    """A start refused because ``running`` sessions started here already run (the limit)."""

    def __init__(self, running: int) -> None:
        super().__init__(f"{running} sessions started here are running")
        self.running = running


@dataclass
class LaunchedSession:
    """A ``hiverl train`` process started by this dashboard."""

    session_id: str
    argv: list[str]
    process: subprocess.Popen[bytes]
    log_path: Path
    started_by: str
    started_at: float
    stop_requested_at: float | None = None

    def describe(self) -> dict[str, Any]:
        code = self.process.poll()
        return {
            "session_id": self.session_id,
            "pid": self.process.pid,
            "running": code is None,
            "exit_code": code,
            "started_by": self.started_by,
            "started_at": self.started_at,
            "stop_requested_at": self.stop_requested_at,
            "command": " ".join(self.argv[self.argv.index("train") :] if "train" in self.argv else self.argv),
        }

    def log_tail(self, max_bytes: int = 4000) -> str:
        try:
            with self.log_path.open("rb") as log:
                log.seek(max(0, self.log_path.stat().st_size - max_bytes))
                return log.read().decode("utf-8", errors="replace")
        except OSError:
            return ""


class TrainingLauncher:
    """Runs ``hiverl train`` children; one per session id, each logging to ``runs/<id>/``."""

    def __init__(
        self, runs_dir: Path, command: Sequence[str] | None = None, env: dict[str, str] | None = None
    ):
        self.runs_dir = Path(runs_dir)
        # The same interpreter and package as the dashboard: no PATH lookup surprises.
        self.command = list(command) if command else [sys.executable, "-m", "hiverl.cli", "train"]
        self.env = env
        self._sessions: dict[str, LaunchedSession] = {}
        self._lock = threading.Lock()

    def start(
        self,
        session_id: str,
        train_args: Sequence[str],
        started_by: str,
        max_running: int | None = None,
    ) -> LaunchedSession:
        """Start ``hiverl train *train_args --session session_id --no-live``; with ``max_running``,
        refuse (:class:`LaunchRefused`) when that many children run already (checked atomically)."""
        with self._lock:
            if session_id in self._sessions and self._sessions[session_id].process.poll() is None:
                raise ValueError(f"session_id={session_id!r} is already running")
            running = sum(1 for s in self._sessions.values() if s.process.poll() is None)
            if max_running is not None and running >= max_running:
                raise LaunchRefused(running)
            log_dir = self.runs_dir / session_id
            log_dir.mkdir(parents=True, exist_ok=True)
            log_path = log_dir / "dashboard-launch.log"
            argv = [*self.command, *train_args, "--session", session_id, "--no-live"]
            log: IO[bytes] = log_path.open("ab")
            try:
                process = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group: SIGINT reaches every role process too
                    env={**os.environ, **(self.env or {})},
                )
            finally:
                log.close()
            launched = LaunchedSession(session_id, argv, process, log_path, started_by, time.time())
            self._sessions[session_id] = launched
            return launched

    def stop(self, session_id: str) -> LaunchedSession:
        """Send SIGINT to the session's process group (checkpoints are saved on the way out)."""
        with self._lock:
            launched = self._sessions.get(session_id)
        if launched is None:
            raise KeyError(session_id)
        if launched.process.poll() is None:
            launched.stop_requested_at = time.time()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(launched.process.pid, signal.SIGINT)
        return launched

    def get(self, session_id: str) -> LaunchedSession | None:
        with self._lock:
            return self._sessions.get(session_id)

    def sessions(self) -> list[LaunchedSession]:
        with self._lock:
            return sorted(self._sessions.values(), key=lambda s: -s.started_at)

    def shutdown(self, timeout_s: float = 30.0) -> None:
        """Stop every running child and wait for it (the dashboard is going away)."""
        running = [s for s in self.sessions() if s.process.poll() is None]
        for launched in running:
            self.stop(launched.session_id)
        deadline = time.monotonic() + timeout_s
        for launched in running:
            try:
                launched.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(launched.process.pid, signal.SIGKILL)
                launched.process.wait()
