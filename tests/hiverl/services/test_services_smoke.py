"""Smoke tests of the four shared services, each in its own namespace from the fixtures."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import redis

from hiverl.services.catalog import CATALOG
from tests.helpers.services import elasticsearch_check, kafka_check, mongo_check, redis_check


def test_redis_set_get_and_lua(redis_url: str, redis_prefix: str) -> None:
    redis_check(redis_url, redis_prefix)


def test_redis_prefix_keys_are_removed_after_the_test(redis_url: str, redis_prefix: str) -> None:
    # The fixture's own cleanup is exercised by the previous test; here: the prefix is unique and empty.
    with redis.Redis.from_url(redis_url) as client:
        assert list(client.scan_iter(match=f"{redis_prefix}*")) == []


def test_kafka_produce_consume_1000_with_committed_offsets(
    kafka_bootstrap: str, make_topic: Callable[..., str]
) -> None:
    topic = make_topic(partitions=3)
    kafka_check(kafka_bootstrap, topic, group=f"{topic}-group")


def test_make_topic_names_are_unique(make_topic: Callable[..., str]) -> None:
    assert len({make_topic(), make_topic()}) == 2


def test_elasticsearch_mapping_bulk_refresh_search(es_url: str, es_prefix: str) -> None:
    elasticsearch_check(es_url, f"{es_prefix}smoke")


def test_elasticsearch_index_template_and_alias(es_url: str, es_prefix: str) -> None:
    """Index templates and aliases (used by the telemetry indexer) work on the integ-test-zip."""
    from elasticsearch import Elasticsearch

    with Elasticsearch(es_url, request_timeout=10) as es:
        es.indices.put_index_template(
            name=f"{es_prefix}logs",
            index_patterns=[f"{es_prefix}logs-*"],
            template={
                "settings": {"number_of_shards": 1, "number_of_replicas": 0},
                "mappings": {"properties": {"loss": {"type": "float"}, "worker": {"type": "keyword"}}},
                "aliases": {f"{es_prefix}logs": {}},
            },
        )
        es.index(index=f"{es_prefix}logs-2026.11.24", document={"loss": 0.5, "worker": "w1"}, refresh=True)
        mapping = es.indices.get_mapping(index=f"{es_prefix}logs-2026.11.24")
        assert mapping[f"{es_prefix}logs-2026.11.24"]["mappings"]["properties"]["worker"]["type"] == "keyword"
        hits = es.search(index=f"{es_prefix}logs", query={"term": {"worker": "w1"}})["hits"]["hits"]
        assert [h["_source"]["loss"] for h in hits] == [0.5]


def test_elasticsearch_disk_watermarks_are_free_bytes_not_a_share(es_url: str) -> None:
    """A nearly full large disk (2 % free is gigabytes) must not stop the node allocating shards."""
    with httpx.Client(base_url=es_url, trust_env=False) as http:
        nodes = http.get("/_nodes/settings", params={"flat_settings": "true"}).raise_for_status().json()
    (node,) = nodes["nodes"].values()
    prefix = "cluster.routing.allocation.disk.watermark."
    watermarks = {k: v for k, v in CATALOG.elasticsearch.settings if k.startswith(prefix)}
    assert set(watermarks) == {f"{prefix}low", f"{prefix}high", f"{prefix}flood_stage"}
    assert not any(value.endswith("%") for value in watermarks.values())
    assert {k: v for k, v in node["settings"].items() if k.startswith(prefix)} == watermarks


def test_es_prefix_cleanup_removes_indices_and_templates(es_url: str) -> None:
    """Run the fixture's cleanup by hand on a namespace and check nothing is left."""
    import uuid

    from elasticsearch import Elasticsearch

    prefix = f"test-{uuid.uuid4().hex[:12]}-"
    with Elasticsearch(es_url, request_timeout=10) as es:
        es.indices.put_index_template(name=f"{prefix}t", index_patterns=[f"{prefix}t-*"])
        es.index(index=f"{prefix}t-1", document={"a": 1})
        with httpx.Client(base_url=es_url, trust_env=False) as http:
            http.delete(f"/{prefix}*", params={"expand_wildcards": "all"}).raise_for_status()
            http.delete(f"/_index_template/{prefix}t").raise_for_status()
        assert not es.indices.exists(index=f"{prefix}t-1")
        assert not es.indices.exists_index_template(name=f"{prefix}t")


def test_mongo_insert_find_update_index(mongo_uri: str, mongo_db: str) -> None:
    mongo_check(mongo_uri, mongo_db)
