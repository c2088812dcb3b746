"""Each smoke check fails when its server is stopped, and works again after a restart (private servers)."""

from __future__ import annotations

import contextlib
import uuid

import psutil
import pytest
from elastic_transport import ConnectionError as ESConnectionError
from kafka.errors import KafkaError
from pymongo.errors import ServerSelectionTimeoutError
from redis.exceptions import ConnectionError as RedisConnectionError

from hiverl.services import ElasticsearchServer, KafkaServer, MongoServer, RedisServer
from tests.helpers.services import create_topic, elasticsearch_check, kafka_check, mongo_check, redis_check


def test_redis_check_fails_when_stopped_and_data_survives_restart(private_redis: RedisServer) -> None:
    redis_check(private_redis.url, "a:")
    private_redis.stop()
    with pytest.raises(RedisConnectionError):
        redis_check(private_redis.url, "b:")
    private_redis.start()
    import redis

    with redis.Redis.from_url(private_redis.url) as client:
        assert client.get("a:counter") == b"12"  # persisted in the append-only file


def test_kafka_check_fails_when_stopped(private_kafka: KafkaServer) -> None:
    topic = f"outage-{uuid.uuid4().hex[:8]}"
    create_topic(private_kafka.url, topic, partitions=2)
    kafka_check(private_kafka.url, topic, group=f"{topic}-group")
    tree = _process_tree(private_kafka.status().pid)
    private_kafka.stop()
    assert _alive(tree) == []
    with pytest.raises(KafkaError):
        kafka_check(private_kafka.url, topic, group=f"{topic}-group-2")


def _process_tree(pid: int | None) -> list[int]:
    assert pid is not None
    root = psutil.Process(pid)
    return [root.pid, *(child.pid for child in root.children(recursive=True))]


def _alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
    return alive


def test_elasticsearch_check_fails_when_stopped(private_elasticsearch: ElasticsearchServer) -> None:
    elasticsearch_check(private_elasticsearch.url, f"outage-{uuid.uuid4().hex[:8]}")
    tree = _process_tree(private_elasticsearch.status().pid)
    assert len(tree) >= 2  # the CLI launcher and the server JVM it forks
    private_elasticsearch.stop()
    assert _alive(tree) == []
    with pytest.raises(ESConnectionError):
        elasticsearch_check(private_elasticsearch.url, f"outage-{uuid.uuid4().hex[:8]}")


def test_mongo_check_fails_when_stopped(private_mongo: MongoServer) -> None:
    mongo_check(private_mongo.url, "first")
    private_mongo.stop()
    with pytest.raises(ServerSelectionTimeoutError):
        mongo_check(private_mongo.url, "second")
