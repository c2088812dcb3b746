"""``hiverl train`` is the whole system: the memory monitor and the indexer run beside the hive, and
at the end Elasticsearch holds exactly the session's events; and a CLI run in tests leaves the
user's defaults (archive database, topics, indices, Redis keys) untouched."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from hiverl.events import MEMORY_MONITORING_TOPIC, TRAINING_LOG_TOPIC
from hiverl.telemetry.records import decode_events
from hiverl.telemetry.schema import DEFAULT_INDEX_PREFIX, alias_name

REPO = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.slow
USER_DATABASE = "hiverl"  # ArchiveSettings' default


def _es_count(es_url: str, index: str, session_id: str | None = None) -> int:
    from elasticsearch import Elasticsearch

    with Elasticsearch(es_url, request_timeout=10, max_retries=0) as es:
        es.indices.refresh(index=index, ignore_unavailable=True, allow_no_indices=True)
        query = {"term": {"session_id": session_id}} if session_id else {"match_all": {}}
        return int(
            es.count(index=index, query=query, ignore_unavailable=True, allow_no_indices=True)["count"]
        )


def _end_offsets(bootstrap: str) -> dict[Any, int]:
    """End offsets of the user's (default-named) telemetry topics."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    try:
        parts = [
            TopicPartition(topic, p)
            for topic in (TRAINING_LOG_TOPIC, MEMORY_MONITORING_TOPIC)
            for p in consumer.partitions_for_topic(topic) or ()
        ]
        return dict(consumer.end_offsets(parts)) if parts else {}
    finally:
        consumer.close()


def _sessions_written_since(bootstrap: str, offsets: dict[Any, int]) -> set[str]:
    """The session ids of the records appended to the user's topics after ``offsets``."""
    from kafka import KafkaConsumer

    ends = _end_offsets(bootstrap)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, request_timeout_ms=15000, consumer_timeout_ms=3000)
    sessions: set[str] = set()
    try:
        for tp, end in ends.items():
            start = offsets.get(tp, 0)
            if end <= start:
                continue
            consumer.assign([tp])
            consumer.seek(tp, start)
            for record in consumer:
                sessions.update(event.get("session_id") for event in decode_events(record.value))
                if record.offset >= end - 1:
                    break
    finally:
        consumer.close()
    return sessions


def test_train_runs_monitor_and_indexer_and_leaves_user_defaults_alone(
    tmp_path: Path,
    redis_url: str,
    redis_prefix: str,
    kafka_bootstrap: str,
    es_url: str,
    es_prefix: str,
    mongo_uri: str,
) -> None:
    import redis
    from pymongo import MongoClient

    from tests.helpers.telemetry import delete_topics

    session = f"pipeline-{uuid.uuid4().hex[:8]}"
    before = _end_offsets(kafka_bootstrap)
    env = {
        **os.environ,  # the test session's scoped archive database, spools and key prefix
        "PYTHONPATH": str(REPO),
        "HIVERL_TELEMETRY_TOPIC_PREFIX": es_prefix,
        "HIVERL_TELEMETRY_INDEX_PREFIX": es_prefix,
        "HIVERL_TELEMETRY_INDEXER_GROUP_ID": f"{es_prefix}indexer",
    }
    env.pop("COLUMNS", None)
    command = [
        sys.executable, "-m", "hiverl.cli", "train", "--no-live",
        "--env", "CartPole-v1", "--actors", "1", "--steps", "3000", "--session", session,
        "--monitor-interval", "1",
        "--set", f"memory.key_prefix={redis_prefix}",
        "--set", f"run_dir={tmp_path / 'runs'}",
        "--set", f"model_dir={tmp_path / 'models'}",
        "--set", "stats_interval_s=0.5",
        "--set", "learner.min_size=500",
        "--set", "agent.hidden_sizes=[32]",
        "--set", "device=cpu",
        "--set", "torch_threads=1",
    ]  # fmt: skip
    try:
        done = subprocess.run(
            command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=420, check=False
        )
        output = done.stdout + done.stderr
        assert done.returncode == 0, output
        run = tmp_path / "runs" / session
        events = [line for line in (run / "events.jsonl").read_text().splitlines() if line.strip()]
        memory = [line for line in (run / "memory.jsonl").read_text().splitlines() if line.strip()]
        training_docs = _es_count(es_url, alias_name(es_prefix, TRAINING_LOG_TOPIC), session)
        memory_docs = _es_count(es_url, alias_name(es_prefix, MEMORY_MONITORING_TOPIC), session)
        # Exactly the session's training_log events, and the monitor's memory_monitoring documents.
        assert len(events) > 0 and training_docs == len(events), output
        assert memory_docs == len(memory) > 0, output
        # Where to look: session, counts, dashboard command and URL.
        assert "where to look" in output and session in output
        assert f"training_log {len(events)} of {len(events)}" in output
        assert "hiverl dashboard" in output and "http://127.0.0.1:8050" in output
        # Without a terminal: the summary table fits 80 columns.
        table = [line for line in done.stdout.splitlines() if line[:1] in "┏┃┡│└"]
        assert table and max(len(line) for line in table) <= 80, "\n".join(table)
        # The archive got it in the test session's database, never in the user's.
        client: MongoClient[dict[str, Any]] = MongoClient(mongo_uri, serverSelectionTimeoutMS=5000)
        with client:
            assert client[os.environ["HIVERL_ARCHIVE_DATABASE"]]["sessions"].count_documents(
                {"session_id": session}
            )
            assert client[USER_DATABASE]["sessions"].count_documents({"session_id": session}) == 0
        # Nothing of it under the user's names: topics, indices, Redis keys.
        assert session not in _sessions_written_since(kafka_bootstrap, before)
        for family in (TRAINING_LOG_TOPIC, MEMORY_MONITORING_TOPIC):
            assert _es_count(es_url, alias_name(DEFAULT_INDEX_PREFIX, family), session) == 0
        with redis.Redis.from_url(redis_url) as r:
            keys = [k.decode() for k in r.scan_iter(match=f"*{session}*", count=1000)]
        assert keys and all(k.startswith(redis_prefix) for k in keys), keys
    finally:
        delete_topics(kafka_bootstrap, es_prefix)
