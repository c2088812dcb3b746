"""A local server process the project starts, watches and stops: the common part of all four.

A :class:`LocalServer` owns one home directory (``data/``, ``logs/``, ``config/`` and a pidfile)
and one process group: the server is started in a new session, so stopping it signals the whole
group (launcher scripts, forked JVMs) and leaves nothing behind. The pidfile records the pid and
the process's start time, so a later command (``hiverl services down`` from another shell) finds
the same process and never signals a recycled pid.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

import psutil

from hiverl.services.catalog import HOST

LOG_TAIL_LINES = 40


class ServiceError(RuntimeError):
    """A local service could not be fetched, started or stopped; the message says why and what to do."""


@dataclass(frozen=True)
class ServerStatus:
    """What ``status()`` reports about one server."""

    name: str
    running: bool
    """The server's process (from its pidfile) is alive."""
    healthy: bool
    """It answers its health check (a client round trip)."""
    version: str | None
    port: int
    pid: int | None
    url: str


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a text file ('' when it does not exist)."""
    if not path.exists():
        return ""
    with path.open("rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - 256 * 1024))
        text = f.read().decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def port_is_free(port: int, host: str = HOST) -> bool:
    """True when nothing listens on ``host:port`` (a bind succeeds)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_ports(count: int = 1, host: str = HOST) -> list[int]:
    """``count`` distinct ports the kernel reports free right now (bind to port 0, then release)."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _listener_of(port: int) -> str:
    """Best-effort description of the process listening on ``port`` (for error messages)."""
    with contextlib.suppress(psutil.Error, OSError):
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
                proc = psutil.Process(conn.pid)
                return f"pid {conn.pid} ({' '.join(proc.cmdline())[:120]})"
    return "an unknown process"


class LocalServer(ABC):
    """One server process on 127.0.0.1 with its own home directory.

    Subclasses say how to prepare the home directory, which command to run, and how to check
    health; this class starts the process in its own process group, waits until it is healthy
    (or fails with the log tail), and stops it with SIGTERM then SIGKILL.

    Args:
        port: TCP port of the client protocol (bound on 127.0.0.1).
        home: directory for ``data/``, ``logs/``, ``config/`` and the pidfile; created on start.
        startup_timeout: seconds ``start()`` waits for health before it fails.
        stop_timeout: seconds ``stop()`` waits after SIGTERM before it sends SIGKILL.
    """

    name: str = "server"
    default_startup_timeout: float = 60.0
    default_stop_timeout: float = 20.0

    def __init__(
        self,
        port: int,
        home: Path | str,
        *,
        startup_timeout: float | None = None,
        stop_timeout: float | None = None,
    ) -> None:
        if not 0 < port < 65536:
            raise ValueError(f"port must be in 1..65535, got {port!r}")
        self.port = port
        self.home = Path(home).absolute()
        self.startup_timeout = self.default_startup_timeout if startup_timeout is None else startup_timeout
        self.stop_timeout = self.default_stop_timeout if stop_timeout is None else stop_timeout
        if self.startup_timeout <= 0 or self.stop_timeout <= 0:
            raise ValueError(
                "startup_timeout and stop_timeout must be > 0 s, "
                f"got {self.startup_timeout}, {self.stop_timeout}"
            )
        self._popen: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    # --- what subclasses provide -----------------------------------------------------------------

    @property
    @abstractmethod
    def url(self) -> str:
        """The address clients use (``redis://...``, ``host:port``, ``http://...``, ``mongodb://...``)."""

    @property
    def ports(self) -> tuple[int, ...]:
        """Every port the server binds (checked free before start)."""
        return (self.port,)

    @abstractmethod
    def ensure_fetched(self) -> None:
        """Raise :class:`ServiceError` (saying ``hiverl services fetch``) if the distribution is missing."""

    @abstractmethod
    def command(self) -> list[str]:
        """The argv of the server process."""

    def environment(self) -> Mapping[str, str]:
        """Environment of the server process (default: this process's)."""
        return os.environ

    def prepare(self) -> None:  # noqa: B027 -- an optional hook, not an abstract method
        """Write config files, format storage, ... before the process starts (default: nothing)."""

    @abstractmethod
    def probe(self) -> str:
        """One health check round trip; returns the server's version or raises on any failure."""

    # --- paths -----------------------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def config_dir(self) -> Path:
        return self.home / "config"

    @property
    def log_file(self) -> Path:
        """The process's stdout and stderr."""
        return self.logs_dir / f"{self.name}.out"

    @property
    def pidfile(self) -> Path:
        return self.home / f"{self.name}.pid"

    # --- lifecycle -------------------------------------------------------------------------------

    def pid(self) -> int | None:
        """The pid of the running server started from this home, or None (stale pidfiles are removed)."""
        if self._popen is not None and self._popen.poll() is not None:
            self._popen = None
        try:
            pid_text, created_text = self.pidfile.read_text().split()
            pid, created = int(pid_text), float(created_text)
        except (FileNotFoundError, ValueError):
            return None
        try:
            proc = psutil.Process(pid)
            if abs(proc.create_time() - created) < 0.01 and proc.status() != psutil.STATUS_ZOMBIE:
                return pid
        except psutil.Error:
            pass
        self.pidfile.unlink(missing_ok=True)
        return None

    def is_healthy(self) -> bool:
        """True when the health check succeeds right now."""
        try:
            self.probe()
        except Exception:
            return False
        return True

    def status(self) -> ServerStatus:
        """Whether it runs, its version (when healthy), port and pid."""
        pid = self.pid()
        version: str | None = None
        with contextlib.suppress(Exception):
            version = self.probe()
        return ServerStatus(
            self.name, pid is not None, version is not None, version, self.port, pid, self.url
        )

    def start(self) -> Self:
        """Start the server (a no-op when it already runs) and wait until it is healthy.

        Raises:
            ServiceError: the distribution is missing, a port is taken by another process, the
                process exited, or it was not healthy within ``startup_timeout`` seconds; the
                message includes the tail of the server's log.
        """
        with self._lock:
            if self.pid() is not None:
                self._wait_healthy()
                return self
            self.ensure_fetched()
            for port in self.ports:
                if not port_is_free(port):
                    raise ServiceError(
                        f"{self.name}: port {HOST}:{port} is already in use by {_listener_of(port)}; "
                        f"stop that process or choose another port"
                    )
            for d in (self.data_dir, self.logs_dir, self.config_dir):
                d.mkdir(parents=True, exist_ok=True)
            self.prepare()
            with self.log_file.open("ab") as log:
                log.write(f"\n--- hiverl: starting {self.name} at {time.strftime('%FT%T%z')}\n".encode())
                log.flush()
                self._popen = subprocess.Popen(
                    self.command(),
                    cwd=self.home,
                    env=dict(self.environment()),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            created = psutil.Process(self._popen.pid).create_time()
            self.pidfile.write_text(f"{self._popen.pid} {created}\n")
            try:
                self._wait_healthy()
            except ServiceError:
                self._kill_group(self._popen.pid, grace=5.0)
                self.pidfile.unlink(missing_ok=True)
                raise
            return self

    def stop(self) -> None:
        """Stop the server: SIGTERM to its process group, SIGKILL after ``stop_timeout`` seconds.

        A no-op when it is not running. Returns once no process of the group is left.
        """
        with self._lock:
            pid = self.pid()
            if pid is not None:
                self._kill_group(pid, grace=self.stop_timeout)
            self.pidfile.unlink(missing_ok=True)

    def restart(self) -> Self:
        """Stop, then start (data is kept)."""
        self.stop()
        return self.start()

    def logs(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last ``lines`` lines of the server's output."""
        return tail(self.log_file, lines)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(port={self.port}, home={str(self.home)!r})"

    # --- internals -------------------------------------------------------------------------------

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self._popen is not None and self._popen.poll() is not None:
                raise ServiceError(
                    f"{self.name} exited with status {self._popen.returncode} while starting "
                    f"(log: {self.log_file}):\n{self.logs()}"
                )
            if self._popen is None and self.pid() is None:  # started by another command, now gone
                raise ServiceError(
                    f"{self.name} exited while starting (log: {self.log_file}):\n{self.logs()}"
                )
            try:
                self.probe()
                return
            except Exception as e:
                last_error = e
            time.sleep(0.25)
        raise ServiceError(
            f"{self.name} was not healthy on port {self.port} after {self.startup_timeout:.0f} s "
            f"(last error: {last_error}; log: {self.log_file}):\n{self.logs()}"
        )

    def _kill_group(self, pgid: int, grace: float) -> None:
        """SIGTERM the process group, wait up to ``grace`` seconds, then SIGKILL whatever is left."""
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            if self._group_gone(pgid, wait):
                break
        if self._popen is not None and self._popen.pid == pgid:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._popen.wait(timeout=5)
            self._popen = None
        if not self._group_gone(pgid, 1.0):
            raise ServiceError(f"{self.name}: processes of group {pgid} survived SIGKILL")

    def _group_gone(self, pgid: int, timeout: float) -> bool:
        """Wait until no live (non-zombie) process is left in the process group."""
        deadline = time.monotonic() + timeout
        while True:
            if self._popen is not None and self._popen.pid == pgid:
                self._popen.poll()  # reap our own child so it does not linger as a zombie
            members = []
            for proc in psutil.process_iter(["pid", "status"]):
                with contextlib.suppress(psutil.Error, OSError):
                    if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                        members.append(proc.pid)
            if not members:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)


def run_checked(
    argv: Sequence[str], what: str, *, cwd: Path | None = None, env: Mapping[str, str] | None = None
) -> str:
    """Run a preparation command; raise :class:`ServiceError` with its output when it fails."""
    result = subprocess.run(
        list(argv),
        cwd=cwd,
        env=None if env is None else dict(env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        output = "\n".join((result.stdout + result.stderr).splitlines()[-LOG_TAIL_LINES:])
        raise ServiceError(f"{what} failed (exit {result.returncode}): {' '.join(argv)}\n{output}")
    return result.stdout
