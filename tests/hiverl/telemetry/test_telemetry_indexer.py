"""Kafka → Elasticsearch through the indexer, against the real services, with outages."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hiverl.events import MEMORY_MONITORING_TOPIC, TRAINING_LOG_TOPIC, envelope
from hiverl.outages import OutageWatch
from hiverl.services import ElasticsearchServer, KafkaServer
from hiverl.telemetry.kafka_sink import KafkaSink
from hiverl.telemetry.schema import DEAD_LETTER_FAMILY, FIELDS_BY_NAME, alias_name, daily_index
from tests.helpers.telemetry import count, fast_config, running_indexer, search_all, wait_until


def short_run(sink: KafkaSink, topics: dict[str, str], workers: int = 2, episodes: int = 3) -> int:
    """A tiny hive: each worker plays CartPole with a random policy and reports like a real worker
    (one event per episode, train_stats per episode); plus one memory_stats. Returns events sent."""
    import gymnasium as gym

    sent = 0
    for worker in range(workers):
        env = gym.make("CartPole-v1")
        steps = 0
        for episode in range(episodes):
            env.reset(seed=worker * 100 + episode)
            ret, length, done = 0.0, 0, False
            while not done:
                _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
                ret, length, steps = ret + float(reward), length + 1, steps + 1
                done = terminated or truncated
            common: dict[str, Any] = {
                "session_id": "run-1",
                "worker_index": worker,
                "worker_id": f"host-{worker}",
                "env_id": "CartPole-v1",
                "env_steps": steps,
                "updates": steps // 4,
                "epsilon": 0.9,
            }
            sink.publish(
                topics[TRAINING_LOG_TOPIC],
                envelope(
                    "episode",
                    **common,
                    episode=episode,
                    episode_return=ret,
                    episode_length=length,
                    terminated=bool(terminated),
                ),
            )
            sink.publish(
                topics[TRAINING_LOG_TOPIC],
                envelope(
                    "train_stats",
                    **common,
                    loss=0.5 / (episode + 1),
                    mean_q=1.0,
                    env_steps_per_s=1000.0,
                    updates_per_s=250.0,
                    learning_rate=1e-3,
                ),
            )
            sent += 2
        env.close()
    sink.publish(
        topics[MEMORY_MONITORING_TOPIC],
        envelope(
            "memory_stats",
            session_id="run-1",
            worker_id="monitor-hive",
            memory_name="hive",
            shard=-1,
            shards=1,
            size=10,
            capacity=100,
            fill_ratio=0.1,
            bytes_used=1000,
            inserted_total=10,
            sampled_total=0,
            evicted_total=0,
            priority_sum=10.0,
            priority_min=1.0,
            priority_max=1.0,
        ),
    )
    return sent + 1


def test_a_short_run_becomes_searchable_with_the_right_fields(
    kafka_bootstrap: str, make_topic: Callable[..., str], es_url: str, es_prefix: str, tmp_path: Path
) -> None:
    from elasticsearch import Elasticsearch

    topics = {TRAINING_LOG_TOPIC: make_topic(2), MEMORY_MONITORING_TOPIC: make_topic(1)}
    config = fast_config(tmp_path, es_prefix)
    training, memory = (
        alias_name(es_prefix, TRAINING_LOG_TOPIC),
        alias_name(es_prefix, MEMORY_MONITORING_TOPIC),
    )
    with running_indexer(kafka_bootstrap, es_url, config, topics, f"g-{uuid.uuid4().hex}") as indexer:
        with KafkaSink(kafka_bootstrap, config, topics=list(topics.values()), spool_name="w") as sink:
            sent = short_run(sink, topics)
        wait_until(lambda: count(es_url, training) + count(es_url, memory) == sent, 60, "every event indexed")
        wait_until(lambda: indexer.lag() == 0, 30, "lag 0")
        assert "lag=0" in indexer.report()
    hits = search_all(es_url, training)
    assert len(hits) == sent - 1
    assert len({hit["_id"] for hit in hits}) == sent - 1
    for hit in hits:
        assert hit["_id"] == hit["_source"]["event_id"]  # the producer's id: a re-send overwrites
        assert hit["_index"].startswith(f"{es_prefix}{TRAINING_LOG_TOPIC}-")  # the daily index
        assert hit["_source"]["@timestamp"] == int(hit["_source"]["event_time"] * 1000)
    with Elasticsearch(es_url) as es:
        mapped = next(iter(es.indices.get_mapping(index=training).values()))["mappings"]["properties"]
        for name in ("episode_return", "session_id", "worker_index", "@timestamp", "loss", "terminated"):
            assert mapped[name]["type"] == FIELDS_BY_NAME[name].es_type
        episodes = es.search(
            index=training,
            query={
                "bool": {
                    "filter": [
                        {"term": {"session_id": "run-1"}},
                        {"term": {"event_type": "episode"}},
                        {"range": {"episode_return": {"gte": 1}}},
                    ]
                }
            },
            size=0,
        )
        assert episodes["hits"]["total"]["value"] == 6
        per_worker = es.search(index=training, size=0, aggs={"w": {"terms": {"field": "worker_index"}}})
        assert sorted(b["key"] for b in per_worker["aggregations"]["w"]["buckets"]) == [0, 1]
        [mem] = search_all(es_url, memory)
        assert mem["_source"]["fill_ratio"] == 0.1


def test_malformed_messages_are_dead_lettered_while_indexing_goes_on(
    kafka_bootstrap: str, make_topic: Callable[..., str], es_url: str, es_prefix: str, tmp_path: Path
) -> None:
    from kafka import KafkaProducer

    topic = make_topic(1)
    good = [
        envelope("episode", session_id="s", worker_index=0, episode=i, episode_return=1.0) for i in range(5)
    ]
    bad = [
        b"not json at all",
        b"[1, 2, 3]",
        json.dumps({**good[0], "episode_return": "high"}).encode(),  # wrong type (caught by the schema)
        json.dumps({**good[0], "episode": 2**70}).encode(),  # too big for a long (caught by Elasticsearch)
    ]
    # records of several events, as KafkaSink packs them: each event carries its event_id
    packed = [{**good[0], "episode": 10 + i, "event_id": f"p-{i}"} for i in range(3)]
    packed[2]["episode"] = 2**70  # this element alone is rejected by Elasticsearch
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    for value in [
        bad[0],  # offset 0
        json.dumps(good[0]).encode(),
        bad[1],  # 2: three elements that are not objects
        bad[2],  # 3
        *[json.dumps(g).encode() for g in good[1:]],
        bad[3],  # 8
        json.dumps(packed).encode(),  # 9: two indexed, element 2 rejected
        json.dumps(good[:2]).encode(),  # 10: several events without event_id (one id for all in Logstash)
        b"[]",  # 11
        json.dumps(packed[:2]).encode(),  # 12: sent again (a spool replay): overwrites, no duplicates
    ]:
        producer.send(topic, value)
    # A malformed record stamped three days ago (as a redelivery of an old record would be): its dead
    # letter is filed under the record's day, so delivering it again overwrites it.
    old_ms = int((time.time() - 3 * 86400) * 1000)
    producer.send(topic, b"old and broken", timestamp_ms=old_ms)
    producer.flush()
    producer.close()
    config = fast_config(tmp_path, es_prefix)
    with running_indexer(
        kafka_bootstrap, es_url, config, {TRAINING_LOG_TOPIC: topic}, f"g-{uuid.uuid4().hex}"
    ) as ix:
        wait_until(
            lambda: ix.stats.indexed == 9 and ix.stats.dead_lettered == 11, 60, "9 indexed, 11 dead letters"
        )
    indexed = search_all(es_url, alias_name(es_prefix, TRAINING_LOG_TOPIC))
    assert sorted(h["_source"]["episode"] for h in indexed) == [0, 1, 2, 3, 4, 10, 11]
    assert {h["_id"] for h in indexed if "event_id" in h["_source"]} == {"p-0", "p-1"}
    dead_letters = search_all(es_url, alias_name(es_prefix, "dead_letter"))
    by_element = {(h["_source"]["offset"], h["_source"]["element"]): h for h in dead_letters}
    assert sorted(by_element, key=str) == sorted(
        [(0, None), (2, 0), (2, 1), (2, 2), (3, None), (8, None), (9, 2), (10, 0), (10, 1), (11, None),
         (13, None)],
        key=str,
    )  # fmt: skip
    assert by_element[(2, 1)]["_id"].endswith("-2-1") and by_element[(2, 1)]["_source"]["raw"] == "2"
    assert "RejectedByElasticsearch" in by_element[(9, 2)]["_source"]["error"]
    assert "event_id" in by_element[(10, 0)]["_source"]["error"]
    assert "empty array" in by_element[(11, None)]["_source"]["error"]
    dead = {offset: h["_source"] for (offset, element), h in by_element.items() if element is None}
    old_day = daily_index(es_prefix, DEAD_LETTER_FAMILY, old_ms / 1000)
    assert any(h["_index"] == old_day for h in search_all(es_url, alias_name(es_prefix, "dead_letter")))
    assert "JSONDecodeError" in dead[0]["error"] and dead[0]["raw"] == "not json at all"
    assert "episode_return" in dead[3]["error"] and "'high'" in dead[3]["error"]
    assert "RejectedByElasticsearch" in dead[8]["error"]
    assert dead[13]["raw"] == "old and broken"


@pytest.mark.slow  # restarts a Kafka broker
def test_kafka_outage_every_event_arrives_exactly_once(
    private_kafka: KafkaServer, es_url: str, es_prefix: str, tmp_path: Path
) -> None:
    topic = f"test-{uuid.uuid4().hex[:12]}"
    config = fast_config(tmp_path, es_prefix)
    alias = alias_name(es_prefix, TRAINING_LOG_TOPIC)
    seq = 0

    def publish(sink: KafkaSink, n: int) -> None:
        nonlocal seq
        for _ in range(n):
            sink.publish(topic, envelope("episode", session_id="s", worker_index=seq % 3, episode=seq))
            seq += 1

    outages = OutageWatch("kafka", settle_s=1.0)
    with KafkaSink(private_kafka.url, config, topics=[topic], spool_name="w", outages=outages) as sink:
        publish(sink, 150)
        sink.flush(30)
        with running_indexer(
            private_kafka.url, es_url, config, {TRAINING_LOG_TOPIC: topic}, "g-outage"
        ) as ix:
            wait_until(lambda: count(es_url, alias) == 150, 60, "the first 150 events indexed")
            assert not outages.down and outages.current is None
            stopped = time.time()
            private_kafka.stop()
            publish(sink, 150)  # Kafka is down: these wait in the disk spool
            sink.flush(30)
            assert sink.stats().spooled > 0
            assert outages.down and not sink.stats().online  # the producer knows it waits for Kafka
            started = time.time()
            private_kafka.start()
            publish(sink, 150)
            wait_until(lambda: count(es_url, alias) >= 450, 120, "all 450 events indexed after the restart")
            wait_until(lambda: ix.lag() == 0, 30, "lag 0")
            wait_until(lambda: bool(outages.ended), 30, "the producer's outage recorded")
            assert sink.stats().online  # online again once Kafka answered
        assert sink.stats().dropped_total == 0
    # The producer's view of the outage: from a failed delivery while Kafka was down to the first
    # connection after it came back.
    (outage,) = outages.ended
    assert stopped < outage.start < started and outage.end is not None and started < outage.end < started + 60
    assert outage.recovered and outage.failures >= 1
    hits = search_all(es_url, alias)
    episodes = [h["_source"]["episode"] for h in hits]
    assert len(episodes) == 450
    assert sorted(episodes) == list(range(450))  # each exactly once


@pytest.mark.slow  # restarts Elasticsearch (about a minute)
def test_elasticsearch_outage_nothing_lost_no_duplicates(
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
    private_elasticsearch: ElasticsearchServer,
    tmp_path: Path,
) -> None:
    topic = make_topic(2)
    prefix = f"t{uuid.uuid4().hex[:10]}-"
    config = fast_config(tmp_path, prefix)
    es_url = private_elasticsearch.url
    alias = alias_name(prefix, TRAINING_LOG_TOPIC)

    with (
        KafkaSink(kafka_bootstrap, config, topics=[topic], spool_name="w") as sink,
        running_indexer(
            kafka_bootstrap, es_url, config, {TRAINING_LOG_TOPIC: topic}, f"g-{uuid.uuid4().hex}"
        ) as ix,
    ):
        for i in range(100):
            sink.publish(topic, envelope("episode", session_id="s", worker_index=i % 2, episode=i))
        wait_until(lambda: count(es_url, alias) == 100, 60, "the first 100 indexed")
        private_elasticsearch.stop()
        for i in range(100, 300):
            sink.publish(topic, envelope("episode", session_id="s", worker_index=i % 2, episode=i))
        sink.flush(30)
        wait_until(lambda: ix.stats.bulk_failures > 0, 60, "the indexer noticing the outage")
        assert ix.outages.watch["elasticsearch"].down
        private_elasticsearch.start()
        started = time.time()
        wait_until(lambda: count(es_url, alias) >= 300, 120, "all 300 indexed after the restart")
        wait_until(lambda: ix.lag() == 0, 30, "lag 0")
        # Its own wait is over: once it settled, the indexer indexes it as an outage event.
        wait_until(lambda: count(es_url, alias) == 301, 60, "the indexer's outage indexed")
    hits = [h["_source"] for h in search_all(es_url, alias)]
    episodes = [h["episode"] for h in hits if h["event_type"] == "episode"]
    assert sorted(episodes) == list(range(300))  # nothing lost, nothing twice
    (outage,) = [h for h in hits if h["event_type"] == "outage"]
    assert (outage["role"], outage["session_id"], outage["service"]) == (
        "indexer",
        "indexer",
        "elasticsearch",
    )
    assert outage["outage_start"] < started < outage["outage_end"] and outage["outage_recovered"] is True
    import httpx

    httpx.delete(f"{es_url}/{prefix}*", params={"expand_wildcards": "all"})


class _RenamedTopics:
    """Routes the hive's topics to this test's unique topics (the sink itself is the real KafkaSink)."""

    def __init__(self, sink: KafkaSink, topics: dict[str, str]) -> None:
        self.sink, self.topics = sink, topics

    def publish(self, topic: str, event: Any) -> None:
        self.sink.publish(self.topics[topic], event)

    def flush(self, timeout_s: float = 10.0) -> None:
        self.sink.flush(timeout_s)

    def close(self) -> None:
        self.sink.close()


@pytest.mark.slow  # a real hive: a learner, two actors and the evaluator
def test_a_real_short_hive_run_becomes_searchable(
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
    es_url: str,
    es_prefix: str,
    redis_url: str,
    redis_prefix: str,
    tmp_path: Path,
) -> None:
    from game.trainer import Trainer
    from hiverl.config import load_config

    topics = {TRAINING_LOG_TOPIC: make_topic(2), MEMORY_MONITORING_TOPIC: make_topic(1)}
    config = fast_config(tmp_path / "spool", es_prefix)
    session = load_config(overrides={
        "actors": 2, "seed": 1, "total_steps": 1500, "run_dir": str(tmp_path / "runs"),
        "model_dir": str(tmp_path / "models"), "memory": {"key_prefix": redis_prefix, "capacity": 5000},
        "agent": {"hidden_sizes": [32], "batch_size": 32}, "learner": {"min_size": 200, "sample_chunk": 4},
        "stats_interval_s": 0.5, "evaluator": {"interval_s": 0.5, "episodes": 2},
    })  # fmt: skip
    factory = lambda _config, _session: _RenamedTopics(  # noqa: E731
        KafkaSink(kafka_bootstrap, config, topics=list(topics.values()), spool_name="trainer"), topics
    )
    result = Trainer(session, redis_url=redis_url, sink_factory=factory, live=False).run()
    training = alias_name(es_prefix, TRAINING_LOG_TOPIC)
    with running_indexer(kafka_bootstrap, es_url, config, topics, f"g-{uuid.uuid4().hex}") as indexer:
        wait_until(lambda: indexer.lag() == 0 and indexer.stats.indexed > 0, 60, "the hive's events indexed")
        assert indexer.stats.dead_lettered == 0  # every event the hive sends follows the schema
    hits = [h["_source"] for h in search_all(es_url, training)]
    episodes = [h for h in hits if h["event_type"] == "episode"]
    assert episodes and {h["worker_index"] for h in episodes} <= {0, 1}
    # every actor reports its statistics at least once (at its end), under its own index
    assert {h["worker_index"] for h in hits if h.get("role") == "actor"} == {0, 1}
    assert all(h["session_id"] == result.session_id and h["env_id"] == "CartPole-v1" for h in hits)
    assert all(h["episode_return"] > 0 and h["episode_length"] > 0 for h in episodes)
    stats_roles = {h.get("role") for h in hits if h["event_type"] == "train_stats"}
    assert stats_roles == {"learner", "actor"}
    # The evaluator's rounds are indexed too (a short run may end before its first round).
    assert all(h["eval_episodes"] >= 2 for h in hits if h["event_type"] == "eval")
