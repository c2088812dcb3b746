"""Helpers for the telemetry tests: a fast-reacting config, a background indexer, ES queries.

Imported by name (pytest puts this folder on ``sys.path``)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from hiverl.telemetry.config import TelemetryConfig
from hiverl.telemetry.indexer import Indexer


def fast_config(spool_dir: Path, prefix: str = "hiverl-", **overrides: Any) -> TelemetryConfig:
    """Short timeouts and backoffs so outages are noticed and recovered from within seconds."""
    settings: dict[str, Any] = {
        "spool_dir": spool_dir,
        "index_prefix": prefix,
        "linger_ms": 5,
        "delivery_timeout_ms": 3000,
        "reconnect_backoff_max_s": 1.0,
        "stats_interval_s": 1.0,
        "topic_partitions": 2,
        **overrides,
    }
    return TelemetryConfig(**settings)


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll ``condition`` until true; fail naming ``what`` after ``timeout_s`` (a bound, not a speed test)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if condition():
                return
        time.sleep(0.3)
    pytest.fail(f"timed out after {timeout_s}s waiting for {what}")


@contextlib.contextmanager
def running_indexer(
    bootstrap: str, es_url: str, config: TelemetryConfig, topics: Mapping[str, str], group_id: str
) -> Iterator[Indexer]:
    """An :class:`Indexer` running in a thread; stopped and closed on exit."""
    indexer = Indexer(bootstrap, es_url, config, topics=topics, group_id=group_id)
    stop = threading.Event()
    thread = threading.Thread(target=indexer.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield indexer
    finally:
        stop.set()
        thread.join(30)
        indexer.close()


def search_all(es_url: str, index: str, size: int = 10_000) -> list[dict[str, Any]]:
    """Every document of ``index`` (after a refresh), as hits with ``_id`` and ``_source``."""
    from elasticsearch import Elasticsearch

    with Elasticsearch(es_url, request_timeout=30) as es:
        es.indices.refresh(index=index)
        return list(es.search(index=index, size=size, query={"match_all": {}})["hits"]["hits"])


def count(es_url: str, index: str) -> int:
    from elasticsearch import Elasticsearch

    with Elasticsearch(es_url, request_timeout=10, max_retries=0) as es:
        es.indices.refresh(index=index)
        return int(es.count(index=index)["count"])


def delete_topics(kafka_bootstrap: str, prefix: str) -> None:
    """Delete every Kafka topic whose name starts with ``prefix`` (a test's own)."""
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, request_timeout_ms=15000)
    try:
        topics = [t for t in admin.list_topics() if t.startswith(prefix)]
        if topics:
            admin.delete_topics(topics)
    finally:
        admin.close()
