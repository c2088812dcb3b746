"""ProcessSink: a :class:`~hiverl.telemetry.KafkaSink` in a child process, for training workers.

kafka-python is pure Python: serializing, batching and acknowledging one record costs tens of µs of
CPU under the worker's GIL. A worker therefore publishes through this sink instead: ``publish()``
appends to a bounded in-memory queue (O(1), never blocks, drops and counts its oldest when full), a
feeder thread writes the queued events every ``linger_ms`` as JSON lines to the stdin of a child process
(:func:`main`), and the child runs a :class:`KafkaSink` with its spool.
The child is a plain subprocess (works inside daemonic multiprocessing workers too) and flushes and
exits when its stdin closes, so a crashed worker loses at most what was still in its own queue.

Wire format, parent → child: ``topic \\t json`` per event; control lines ``!flush <timeout_s>``,
``!stats``, ``!close``. Child → parent: one JSON line (the :class:`SinkStats`) per control line.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from typing import IO, Any

from hiverl.events import MEMORY_MONITORING_TOPIC, TRAINING_LOG_TOPIC
from hiverl.telemetry.config import TelemetryConfig
from hiverl.telemetry.kafka_sink import ClosingSink, KafkaSink, SinkStats, default_spool_name, serialize_event

log = logging.getLogger(__name__)


_CHILD_COMMAND = "import sys; from hiverl.telemetry.process_sink import main; main(sys.argv[1:])"


class ProcessSink(ClosingSink):
    """An :class:`hiverl.events.EventSink` whose Kafka producer runs in a child process."""

    def __init__(
        self,
        bootstrap_servers: str,
        config: TelemetryConfig | None = None,
        *,
        spool_name: str | None = None,
        topics: Sequence[str] = (TRAINING_LOG_TOPIC, MEMORY_MONITORING_TOPIC),
    ) -> None:
        """Start the child process and the feeder thread (nothing here waits for Kafka).

        Arguments as :class:`KafkaSink`; the spool belongs to the child."""
        if not bootstrap_servers.strip():
            raise ValueError("bootstrap_servers is empty; expected host:port[,host:port...]")
        self.config = config or TelemetryConfig()
        name = spool_name or default_spool_name()
        command = [
            sys.executable, "-c", _CHILD_COMMAND,
            bootstrap_servers, name, ",".join(topics), self.config.model_dump_json(),
        ]  # fmt: skip
        self._proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=1 << 16)
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._stdin: IO[bytes] = self._proc.stdin
        self._replies: queue.Queue[dict[str, Any]] = queue.Queue()
        self._queue: collections.deque[tuple[str, dict[str, Any]]] = collections.deque()
        self._lock = threading.Lock()  # the queue and counters
        self._pipe_lock = threading.Lock()  # writes to the child and waiting for its reply
        self._wake = threading.Event()
        self._dropped = 0
        self._in_flight = 0  # taken from the queue, not yet written to the child
        self._closed = False
        self._child_broken = False
        threading.Thread(target=self._read_replies, args=(self._proc.stdout,), daemon=True).start()
        self._feeder = threading.Thread(target=self._feed, name="hiverl-process-sink", daemon=True)
        self._feeder.start()
        atexit.register(self._close_at_exit)  # an interpreter exit without close() still flushes

    # -- the caller's side ---------------------------------------------------------------------------
    def publish(self, topic: str, event: Mapping[str, Any]) -> None:
        """Enqueue ``event``: O(1), no I/O. A full queue drops (and counts) its oldest event."""
        if self._closed:
            raise RuntimeError("publish() on a closed ProcessSink")
        with self._lock:
            if len(self._queue) >= self.config.queue_max_events:
                self._queue.popleft()
                self._dropped += 1
            self._queue.append((topic, dict(event)))

    def flush(self, timeout_s: float = 10.0) -> None:
        """Hand every queued event to the child and wait (at most ``timeout_s``) until the child has them
        acknowledged by Kafka or in its disk spool."""
        deadline = time.monotonic() + timeout_s
        while (self._queue or self._in_flight) and time.monotonic() < deadline and self._feeder.is_alive():
            self._wake.set()
            time.sleep(0.002)
        self._request(f"!flush {max(deadline - time.monotonic(), 0.0):.3f}", deadline - time.monotonic() + 5)

    def stats(self) -> SinkStats:
        """The child's counters, plus what waits in (or was dropped from) this process's queue."""
        reply = self._request("!stats", 10.0)
        with self._lock:
            queued, dropped = len(self._queue), self._dropped
        if reply is None:
            return SinkStats(0, 0, 0, queued, dropped, online=False)
        stats = SinkStats(**reply)
        return replace(stats, queued=stats.queued + queued, dropped_total=stats.dropped_total + dropped)

    def close(self, timeout_s: float = 30.0) -> None:
        """Flush, then let the child close its producer and exit (undelivered events stay spooled)."""
        if self._closed:
            return
        atexit.unregister(self._close_at_exit)
        self.flush(timeout_s)
        self._closed = True
        self._request("!close", timeout_s)
        with contextlib.suppress(OSError):
            self._stdin.close()
        try:
            self._proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            log.warning("telemetry child process %d did not exit; killing it", self._proc.pid)
            self._proc.kill()

    # -- the feeder thread and the pipe ------------------------------------------------------------
    def _feed(self) -> None:
        wait_s = max(self.config.linger_ms, 5) / 1000
        while not self._closed or self._queue:
            self._wake.wait(wait_s)
            self._wake.clear()
            with self._lock:
                batch = list(self._queue)
                self._queue.clear()
                self._in_flight = len(batch)
            if batch:
                lines = b"".join(b"%s\t%s\n" % (t.encode(), serialize_event(e)) for t, e in batch)
                if not self._write(lines):
                    with self._lock:
                        self._dropped += len(batch)
            self._in_flight = 0

    def _write(self, data: bytes) -> bool:
        with self._pipe_lock:
            if self._child_broken:
                return False
            try:
                self._stdin.write(data)
                self._stdin.flush()
                return True
            except (BrokenPipeError, ValueError, OSError):
                self._child_broken = True
                log.error("telemetry child process exited (status %s); events are dropped", self._proc.poll())
                return False

    def _request(self, line: str, timeout_s: float) -> dict[str, Any] | None:
        with self._pipe_lock:
            if self._child_broken:
                return None
            try:
                self._stdin.write(line.encode() + b"\n")
                self._stdin.flush()
            except (BrokenPipeError, ValueError, OSError):
                self._child_broken = True
                return None
            try:
                return self._replies.get(timeout=max(timeout_s, 0.1))
            except queue.Empty:
                return None

    def _read_replies(self, stdout: IO[bytes]) -> None:
        for line in stdout:
            self._replies.put(json.loads(line))


def _child_main(bootstrap: str, spool_name: str, topics: str, config_json: str) -> None:
    """The child: read events and control lines from stdin, publish through a KafkaSink."""
    # Ctrl-C in a terminal reaches the whole process group: the parent decides when this child ends
    # (EOF on stdin after its last events), so the child must not die mid-flush.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    config = TelemetryConfig.model_validate_json(config_json)
    sink = KafkaSink(bootstrap, config, spool_name=spool_name, topics=[t for t in topics.split(",") if t])
    out = sys.stdout.buffer

    def reply() -> None:
        out.write(json.dumps(asdict(sink.stats())).encode() + b"\n")
        out.flush()

    for raw in sys.stdin.buffer:
        if raw.startswith(b"!"):
            command, _, argument = raw.decode().strip().partition(" ")
            if command == "!flush":
                sink.flush(float(argument or 10))
            if command == "!close":
                sink.close()
                reply()
                return
            reply()
            continue
        topic, _, value = raw.rstrip(b"\n").partition(b"\t")
        try:
            sink.publish(topic.decode(), json.loads(value))
        except ValueError:
            log.error("telemetry child: undecodable line dropped (%d bytes)", len(raw))
    sink.close()  # stdin closed: the parent is gone


def main(argv: list[str]) -> None:
    """Entry point of the child process: ``bootstrap spool_name topics config_json``."""
    _child_main(*argv[:4])
    sys.stdout.flush()
    os._exit(0)  # kafka-python's daemon threads: do not wait for them
