"""The live telemetry pipeline beside a hive on this machine: the memory monitor and the indexer.

``hiverl train`` starts both as child processes (``hiverl monitor`` and ``hiverl index``, each in
its own process group so a Ctrl-C for the trainer does not stop them before they drained), which
is what compose runs beside the game replicas: Elasticsearch and the dashboard fill while the hive
trains. When training ends, :meth:`LivePipeline.finish` stops the monitor (it flushes its events
to Kafka), waits until Elasticsearch holds every event the session wrote (as many
``training_log`` documents as ``events.jsonl`` lines, as many ``memory_monitoring`` documents as
the monitor published) and stops the indexer.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from hiverl.events import MEMORY_MONITORING_TOPIC, TRAINING_LOG_TOPIC
from hiverl.telemetry.config import TelemetryConfig
from hiverl.telemetry.schema import alias_name


def _parent_death_signal() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child get SIGTERM when the trainer dies (Linux), so none is
    left behind; libc is loaded here, in the parent, so the child only makes the call."""
    try:
        import ctypes

        prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def preexec() -> None:
        prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG

    return preexec


def count_lines(path: Path) -> int:
    """Complete, non-empty lines of a JSON-lines file (0 if it does not exist)."""
    if not path.exists():
        return 0
    with path.open("rb") as handle:
        return sum(1 for line in handle if line.strip() and line.endswith(b"\n"))


@dataclass
class IndexedCounts:
    """What the session wrote and what Elasticsearch holds of it (``None``: not checked)."""

    training_written: int
    training_indexed: int | None
    memory_written: int
    memory_indexed: int | None

    @property
    def complete(self) -> bool:
        return self.training_indexed == self.training_written and (self.memory_indexed == self.memory_written)


class LivePipeline:
    """``hiverl monitor`` and ``hiverl index`` as child processes of one training session.

    Args:
        session_id: the session; the monitor's events carry it.
        memory_name: the session's replay memory (``hive-<session_id>``).
        key_prefix: the memory's Redis key prefix (``memory.key_prefix``).
        log_dir: where ``monitor.log``, ``indexer.log`` and ``memory.jsonl`` (the monitor's
            events) go: the session's run folder.
        redis_url, kafka_bootstrap, elasticsearch_url: the services (children get them by env).
        monitor, index: start that process.
        monitor_interval_s: seconds between the monitor's polls.
        config: the telemetry settings (topic and index prefixes; default from the environment).
    """

    def __init__(
        self,
        session_id: str,
        memory_name: str,
        key_prefix: str,
        log_dir: Path,
        *,
        redis_url: str,
        kafka_bootstrap: str,
        elasticsearch_url: str,
        monitor: bool = True,
        index: bool = True,
        monitor_interval_s: float = 5.0,
        config: TelemetryConfig | None = None,
    ) -> None:
        self.session_id = session_id
        self.memory_name = memory_name
        self.key_prefix = key_prefix
        self.log_dir = log_dir
        self.redis_url = redis_url
        self.kafka_bootstrap = kafka_bootstrap
        self.elasticsearch_url = elasticsearch_url
        self.want_monitor = monitor
        self.want_index = index
        self.monitor_interval_s = monitor_interval_s
        self.config = config or TelemetryConfig()
        self.memory_jsonl = log_dir / "memory.jsonl"
        self.events_jsonl = log_dir / "events.jsonl"
        self.monitor_process: subprocess.Popen[bytes] | None = None
        self.indexer_process: subprocess.Popen[bytes] | None = None
        self._logs: list[IO[bytes]] = []

    # -- processes ----------------------------------------------------------------------------------
    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = (self.log_dir / f"{name}.log").open("ab")
        self._logs.append(log)
        env = {
            **os.environ,
            "REDIS_URL": self.redis_url,
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap,
            "ELASTICSEARCH_URL": self.elasticsearch_url,
            "PYTHONUNBUFFERED": "1",
        }
        return subprocess.Popen(
            [sys.executable, "-m", "hiverl.cli", *args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # Ctrl-C goes to the trainer; we stop these in order
            preexec_fn=_parent_death_signal(),
        )

    def start(self) -> None:
        """Start the indexer and the monitor (the monitor waits for the memory to appear)."""
        if self.want_index:
            self.indexer_process = self._spawn("indexer", ["index", "--report-every", "10"])
        if self.want_monitor:
            self.monitor_process = self._spawn(
                "monitor",
                [
                    "monitor",
                    "--memory", self.memory_name,
                    "--key-prefix", self.key_prefix,
                    "--session-id", self.session_id,
                    "--interval", str(self.monitor_interval_s),
                    "--retry-max", str(min(2.0, self.monitor_interval_s)),
                    "--jsonl", str(self.memory_jsonl),
                ],
            )  # fmt: skip

    @staticmethod
    def _stop(process: subprocess.Popen[bytes] | None, timeout_s: float = 40.0) -> int | None:
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        return process.returncode

    def stop_monitor(self) -> None:
        """Stop the monitor; it flushes its last events to Kafka (or its spool) first."""
        self._stop(self.monitor_process)

    def close(self) -> None:
        """Stop both processes (idempotent)."""
        self._stop(self.monitor_process)
        self._stop(self.indexer_process)
        for log in self._logs:
            log.close()
        self._logs = []

    # -- what Elasticsearch holds -------------------------------------------------------------------
    def counts(self, es: Any = None) -> IndexedCounts:
        """Events the session wrote (files) and documents of it in Elasticsearch (after a refresh)."""
        indexed: dict[str, int | None] = {}
        own = es is None
        if own:
            from elasticsearch import Elasticsearch

            es = Elasticsearch(self.elasticsearch_url, request_timeout=10, max_retries=0)
        try:
            for family in (TRAINING_LOG_TOPIC, MEMORY_MONITORING_TOPIC):
                alias = alias_name(self.config.index_prefix, family)
                try:
                    es.indices.refresh(index=alias, ignore_unavailable=True, allow_no_indices=True)
                    response = es.count(
                        index=alias,
                        query={"term": {"session_id": self.session_id}},
                        ignore_unavailable=True,
                        allow_no_indices=True,
                    )
                    indexed[family] = int(response["count"])
                except Exception:  # not created yet, or Elasticsearch down
                    indexed[family] = None
        finally:
            if own:
                es.close()
        return IndexedCounts(
            count_lines(self.events_jsonl),
            indexed[TRAINING_LOG_TOPIC],
            count_lines(self.memory_jsonl),
            indexed[MEMORY_MONITORING_TOPIC],
        )

    def finish(
        self, timeout_s: float = 120.0, on_wait: Callable[[IndexedCounts], None] | None = None
    ) -> IndexedCounts:
        """Stop the monitor, wait (at most ``timeout_s``) until everything is indexed, stop the indexer.

        Without the indexer it does not wait: the counts say what is in Elasticsearch now."""
        self.stop_monitor()
        from elasticsearch import Elasticsearch

        with Elasticsearch(self.elasticsearch_url, request_timeout=10, max_retries=0) as es:
            counts = self.counts(es)
            deadline = time.monotonic() + timeout_s
            last_note = time.monotonic()
            while (
                self.indexer_process is not None
                and not counts.complete
                and time.monotonic() < deadline
                and self.indexer_process.poll() is None
            ):
                time.sleep(1.0)
                counts = self.counts(es)
                if on_wait is not None and time.monotonic() - last_note >= 5.0:
                    last_note = time.monotonic()
                    on_wait(counts)
        with contextlib.suppress(Exception):
            self.close()
        return counts
