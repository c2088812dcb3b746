"""KafkaSink against the real Kafka: delivery and order, topic creation, the bounded spool."""

from __future__ import annotations

import collections
import logging
import uuid
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest

from hiverl.events import envelope
from hiverl.services import free_ports
from hiverl.telemetry.kafka_sink import KafkaSink
from hiverl.telemetry.records import decode_events
from hiverl.telemetry.spool import Spool
from tests.helpers.telemetry import fast_config


def consume_all(bootstrap: str, topic: str, expected: int) -> list[dict]:
    """The first ``expected`` events in ``topic`` (records of several events unpacked), each with its
    record's key, partition and ``record`` (offset)."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=5000,
        enable_auto_commit=False,
    )
    out: list[dict] = []
    for message in consumer:
        record = {"key": message.key, "partition": message.partition, "record": message.offset}
        out += [{**record, **event} for event in decode_events(message.value)]
        if len(out) >= expected:
            break
    consumer.close()
    return out


def test_events_arrive_once_and_in_order_per_worker(
    kafka_bootstrap: str, make_topic: Callable[..., str], tmp_path: Path
) -> None:
    topic = make_topic(3)
    with KafkaSink(kafka_bootstrap, fast_config(tmp_path), topics=[topic], spool_name="w") as sink:
        for seq in range(300):
            sink.publish(topic, envelope("episode", session_id="s1", worker_index=seq % 3, seq=seq))
        sink.flush(30)
        assert sink.stats().delivered == 300
    messages = consume_all(kafka_bootstrap, topic, 300)
    assert sorted(m["seq"] for m in messages) == list(range(300))
    by_worker: dict[int, list[int]] = defaultdict(list)
    partitions: dict[bytes, set[int]] = defaultdict(set)
    for m in messages:
        by_worker[m["worker_index"]].append(m["seq"])
        partitions[m["key"]].add(m["partition"])
        assert m["session_id"] == "s1"
        assert m["event_type"] == "episode"
    assert all(seqs == sorted(seqs) for seqs in by_worker.values())
    assert set(partitions) == {b"s1/0", b"s1/1", b"s1/2"}
    assert all(len(p) == 1 for p in partitions.values())  # one worker, one partition: ordered
    # A worker's events share records (what keeps the per-record cost of the Kafka client small):
    # the 300 events were published within a few wake-ups of the sink's thread.
    records = {(m["partition"], m["record"]) for m in messages}
    assert len(records) <= 30
    assert all(list(m["key"]) for m in messages)
    assert len({m["event_id"] for m in messages}) == 300  # every event its own id


def test_a_burst_is_cut_into_records_of_at_most_the_cap(
    kafka_bootstrap: str, make_topic: Callable[..., str], tmp_path: Path
) -> None:
    topic = make_topic(1)
    config = fast_config(tmp_path, linger_ms=200, events_per_record=40)
    n = 40 * 3 + 7
    with KafkaSink(kafka_bootstrap, config, topics=[topic], spool_name="w") as sink:
        for seq in range(n):
            sink.publish(topic, envelope("episode", session_id="s1", worker_index=0, seq=seq))
        sink.flush(30)
    messages = consume_all(kafka_bootstrap, topic, n)
    assert [m["seq"] for m in messages] == list(range(n))
    sizes = collections.Counter(m["record"] for m in messages)
    assert max(sizes.values()) == 40 and len(sizes) >= 4


def test_missing_topics_are_created_with_partitions_and_retention_from_config(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

    topic = f"test-{uuid.uuid4().hex[:12]}"
    config = fast_config(tmp_path, topic_partitions=2, topic_retention_ms=3_600_000)
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        with KafkaSink(kafka_bootstrap, config, topics=[topic], spool_name="w") as sink:
            sink.publish(topic, envelope("episode", session_id="s1", worker_index=0))
            sink.flush(30)
            assert sink.stats().delivered == 1
        [described] = admin.describe_topics([topic])
        assert len(described["partitions"]) == 2
        configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        assert configs["topic"][topic]["retention.ms"]["value"] == "3600000"
    finally:
        admin.delete_topics([topic])
        admin.close()


def test_a_full_spool_drops_the_oldest_counts_and_reports_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    nobody = f"127.0.0.1:{free_ports()[0]}"  # no Kafka there: everything goes to the spool
    config = fast_config(tmp_path, spool_max_bytes=8192, spool_segment_bytes=2048)
    with caplog.at_level(logging.WARNING):
        sink = KafkaSink(nobody, config, topics=["t"], spool_name="w")
        for seq in range(400):
            sink.publish("t", envelope("episode", session_id="s1", worker_index=0, seq=seq))
        sink.flush(10)
        dropped_before = sink.stats().dropped_total
        sink.publish("t", envelope("train_stats", session_id="s1", worker_index=0, seq=400))
        sink.flush(10)
        stats = sink.stats()
        sink.close()
    assert stats.dropped_total > 0
    assert stats.dropped_total + stats.spooled == 401
    assert "dropped" in caplog.text
    spool = Spool(tmp_path / "w", max_bytes=8192, segment_bytes=2048)
    events = []
    while spool.pending:
        batch, position = spool.peek(1000)  # one segment at a time
        events += [event for record in batch for event in decode_events(record.value)]
        spool.commit(position, batch)
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(401 - len(seqs), 401))  # the newest survive, oldest first
    assert events[-1]["telemetry_dropped_total"] == dropped_before > 0  # reported in the stats event


def test_publish_after_close_is_an_error_and_close_is_idempotent(tmp_path: Path) -> None:
    sink = KafkaSink(f"127.0.0.1:{free_ports()[0]}", fast_config(tmp_path), topics=["t"], spool_name="w")
    sink.close()
    sink.close()
    with pytest.raises(RuntimeError, match="closed"):
        sink.publish("t", {"event_type": "episode"})


def test_a_role_process_owns_one_producer_spooling_under_its_role(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a hive's role process sends with: a KafkaSink in the process, its spool named after the
    session and the role (a restarted role delivers what its predecessor spooled)."""
    from game.roles import RoleContext, telemetry_producer

    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{free_ports()[0]}")  # Kafka is away
    monkeypatch.setenv("HIVERL_TELEMETRY_SPOOL_DIR", str(tmp_path))
    context = RoleContext("actor", 1, "s1", {}, "redis://127.0.0.1:1", telemetry=True)
    producer = telemetry_producer(context)
    assert isinstance(producer, KafkaSink)
    with producer:
        for seq in range(50):
            producer.publish("training_log", envelope("episode", session_id="s1", worker_index=1, seq=seq))
        producer.flush(10)
        stats = producer.stats()
        # It knows it waits for Kafka; alone (no trainer), it records the outage in Kafka itself.
        assert producer.outages.down and producer.outages.service == "kafka"
        assert producer.outages.on_ended is not None
    assert stats.spooled == 50 and stats.delivered == 0 and stats.dropped_total == 0
    spool = Spool(tmp_path / "s1-actor-1", max_bytes=config_bytes(), segment_bytes=config_bytes() // 4)
    assert spool.pending == 50


def config_bytes() -> int:
    return fast_config(Path("/unused")).spool_max_bytes


def test_a_restarted_producer_delivers_what_its_predecessor_spooled_in_order(
    kafka_bootstrap: str, make_topic: Callable[..., str], tmp_path: Path
) -> None:
    topic = make_topic(1)
    config = fast_config(tmp_path)
    with KafkaSink(f"127.0.0.1:{free_ports()[0]}", config, topics=[topic], spool_name="w") as offline:
        for seq in range(30):
            offline.publish(topic, envelope("episode", session_id="s1", worker_index=0, seq=seq))
        offline.flush(10)
        assert offline.stats().spooled == 30
    with KafkaSink(kafka_bootstrap, config, topics=[topic], spool_name="w") as online:
        online.publish(topic, envelope("episode", session_id="s1", worker_index=0, seq=30))
        online.flush(30)
        assert online.stats().spooled == 0
    assert [m["seq"] for m in consume_all(kafka_bootstrap, topic, 31)] == list(range(31))  # spool first


def test_hiverl_index_setup_only_puts_the_templates(
    kafka_bootstrap: str, es_url: str, es_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from hiverl.cli import app

    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    monkeypatch.setenv("ELASTICSEARCH_URL", es_url)
    result = CliRunner().invoke(app, ["index", "--setup-only", "--prefix", es_prefix])
    assert result.exit_code == 0, result.output
    import httpx

    names = {t["name"] for t in httpx.get(f"{es_url}/_index_template/{es_prefix}*").json()["index_templates"]}
    assert names == {f"{es_prefix}training_log", f"{es_prefix}memory_monitoring", f"{es_prefix}dead_letter"}
