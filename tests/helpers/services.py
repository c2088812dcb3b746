"""One round trip per service through the Python client the project uses.

Each check raises (a client error) when its server is down, with short timeouts so an outage
test fails fast; each asserts what the server stored, not just that a call returned.
"""

from __future__ import annotations

from typing import Any

N_KAFKA_MESSAGES = 1_000


def redis_check(url: str, prefix: str) -> None:
    """SET/GET, then a Lua script that atomically increments and reads back a counter."""
    import redis

    with redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5) as client:
        client.set(f"{prefix}greeting", b"hello hive")
        assert client.get(f"{prefix}greeting") == b"hello hive"
        add_and_read = client.register_script(
            "local v = redis.call('INCRBY', KEYS[1], ARGV[1]) return {v, redis.call('GET', KEYS[2])}"
        )
        assert add_and_read(keys=[f"{prefix}counter", f"{prefix}greeting"], args=[5]) == [5, b"hello hive"]
        assert add_and_read(keys=[f"{prefix}counter", f"{prefix}greeting"], args=[7]) == [12, b"hello hive"]


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    finally:
        admin.close()


def kafka_check(bootstrap: str, topic: str, group: str) -> None:
    """Produce 1,000 keyed messages, consume them in a consumer group, commit, and check the offsets."""
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=5,
        request_timeout_ms=10000,
        bootstrap_timeout_ms=5000,
    )
    try:
        for i in range(N_KAFKA_MESSAGES):
            producer.send(topic, key=str(i % 10).encode(), value=f"message {i}".encode())
        producer.flush(timeout=30)
    finally:
        producer.close()

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=15000,
    )
    try:
        consumer.subscribe([topic])
        seen: list[bytes] = []
        for record in consumer:
            seen.append(record.value)
            if len(seen) == N_KAFKA_MESSAGES:
                break
        consumer.commit()
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        committed = sum(consumer.committed(tp) or 0 for tp in partitions)
    finally:
        consumer.close()
    assert sorted(seen) == sorted(f"message {i}".encode() for i in range(N_KAFKA_MESSAGES))
    assert committed == N_KAFKA_MESSAGES


def elasticsearch_check(url: str, index: str) -> None:
    """Create an index with a mapping, bulk-index documents, refresh, and search them."""
    from elasticsearch import Elasticsearch, helpers

    with Elasticsearch(url, request_timeout=10, max_retries=0) as es:
        es.indices.create(
            index=index,
            mappings={
                "properties": {
                    "worker": {"type": "keyword"},
                    "episode": {"type": "integer"},
                    "reward": {"type": "float"},
                    "note": {"type": "text"},
                }
            },
        )
        docs = [
            {"worker": f"w{i % 3}", "episode": i, "reward": float(i), "note": "cart pole balanced"}
            for i in range(30)
        ]
        ok, errors = helpers.bulk(es, ({"_index": index, "_source": d} for d in docs), raise_on_error=False)
        assert (ok, errors) == (30, [])
        es.indices.refresh(index=index)
        result = es.search(
            index=index,
            query={"bool": {"filter": [{"term": {"worker": "w1"}}, {"range": {"reward": {"gte": 10}}}]}},
            size=100,
        )
        episodes = sorted(hit["_source"]["episode"] for hit in result["hits"]["hits"])
        assert episodes == [i for i in range(10, 30) if i % 3 == 1]
        assert es.search(index=index, query={"match": {"note": "pole"}})["hits"]["total"]["value"] == 30
        assert (
            es.indices.get_mapping(index=index)[index]["mappings"]["properties"]["worker"]["type"]
            == "keyword"
        )


def mongo_check(uri: str, db_name: str) -> None:
    """insert/find/update and a unique index through pymongo."""
    from pymongo import ASCENDING, MongoClient
    from pymongo.errors import DuplicateKeyError

    client: MongoClient[dict[str, Any]] = MongoClient(
        uri, serverSelectionTimeoutMS=2000, connectTimeoutMS=2000
    )
    with client:
        sessions = client[db_name]["sessions"]
        sessions.create_index([("session_id", ASCENDING)], unique=True)
        sessions.insert_many(
            [{"session_id": f"s{i}", "episodes": i, "env": "CartPole-v1"} for i in range(10)]
        )
        assert sessions.count_documents({"episodes": {"$gte": 5}}) == 5
        result = sessions.update_one(
            {"session_id": "s3"}, {"$set": {"status": "done"}, "$inc": {"episodes": 100}}
        )
        assert result.modified_count == 1
        assert sessions.find_one({"session_id": "s3"}, {"_id": 0}) == {
            "session_id": "s3",
            "episodes": 103,
            "env": "CartPole-v1",
            "status": "done",
        }
        try:
            sessions.insert_one({"session_id": "s3"})
        except DuplicateKeyError:
            pass
        else:
            raise AssertionError("the unique index on session_id did not reject a duplicate")
        names = {ix["name"] for ix in sessions.list_indexes()}
        assert "session_id_1" in names
