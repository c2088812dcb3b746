"""Every Kibana panel's request, built the way Kibana builds it, run on the real Elasticsearch.

The telemetry is a real short hive's: ``game.trainer.Trainer`` (one actor, a learner, the evaluator)
writes its events, the memory monitor polls the hive's replay memory beside it, its own Redis is
stopped for a moment and started again (so its roles record ``outage`` events), and the events are
indexed with the project's index templates, index names and document ids into a test-prefixed index.

How Kibana builds a visualization's request (``AggConfigs.getRequestAggs`` / ``AggConfigs.toDsl`` in
``src/platform/plugins/shared/data/common/search/aggs/agg_configs.ts``): the enabled aggregations in
list order with the metrics moved behind the buckets (a stable sort); every bucket aggregation nests
under the previous one; every metric lands in the last bucket; a parent-pipeline metric (``moving_avg``,
sent as ``moving_fn``) with a custom metric brings that metric as a sibling (``parentAggs``) and points
``buckets_path`` at it. Elasticsearch accepts a parent-pipeline aggregation only directly under a
``date_histogram``/``histogram``. The integ-test distribution used here lacks the ``aggregations``
module (``Unknown aggregation type [moving_fn]``), so for such a panel the same request runs with that
one aggregation swapped for its parent metric, and the nesting rule is asserted on the request itself.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dashboard.kibana import saved_objects as so
from hiverl.telemetry.schema import FAMILIES, TIMESTAMP_FIELD, alias_name

PARENT_PIPELINE = {"moving_avg": "moving_fn", "derivative": "derivative", "cumulative_sum": "cumulative_sum"}
BUCKET_SCHEMAS = {"segment", "group", "split", "bucket"}


# -- Kibana's request builder, for the aggregation types the saved objects use ----------------------


def _metric_dsl(agg: dict[str, Any]) -> dict[str, Any]:
    return {agg["type"]: {"field": agg["params"]["field"]}}


def _agg_dsl(agg: dict[str, Any], interval: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(this aggregation's DSL, its parentAggs) as Kibana's AggConfig.toDsl writes them."""
    kind, params = agg["type"], agg["params"]
    if kind == "date_histogram":
        dsl = {
            "date_histogram": {
                "field": params["field"],
                "fixed_interval": interval,
                "time_zone": "UTC",
                "min_doc_count": params.get("min_doc_count", 1),
                "extended_bounds": params.get("extended_bounds", {}),
            }
        }
        return dsl, {}
    if kind == "terms":
        order = {"_key": params["order"]} if params.get("orderBy") == "_key" else {"_count": params["order"]}
        return {"terms": {"field": params["field"], "size": params["size"], "order": order}}, {}
    if kind in PARENT_PIPELINE:
        custom = params["customMetric"]
        body: dict[str, Any] = {"buckets_path": custom["id"]}
        if kind == "moving_avg":
            body |= {"window": params["window"], "script": params["script"]}
        return {PARENT_PIPELINE[kind]: body}, {custom["id"]: _metric_dsl(custom)}
    return _metric_dsl(agg), {}


def kibana_aggs(vis_state: dict[str, Any], interval: str) -> dict[str, Any]:
    """The ``aggs`` of the search request Kibana sends for ``vis_state`` (see the module docstring)."""
    enabled = [a for a in vis_state["aggs"] if a.get("enabled", True)]
    ordered = sorted(enabled, key=lambda a: 0 if a["schema"] in BUCKET_SCHEMAS else 1)
    top: dict[str, Any] = {}
    level = top
    for i, agg in enumerate(ordered):
        dsl, parents = _agg_dsl(agg, interval)
        level[agg["id"]] = dsl
        level.update(parents)
        if agg["schema"] in BUCKET_SCHEMAS and i < len(ordered) - 1:
            level = dsl.setdefault("aggs", {})
    return top


def kql_to_query(kql: str) -> list[dict[str, Any]]:
    """The KQL the saved objects use (``field : value`` joined by ``and``) as Kibana sends it."""
    clauses = []
    for part in re.split(r"\s+and\s+", kql.strip()):
        field, _, value = (s.strip() for s in part.partition(":"))
        if value.startswith('"'):
            clauses.append({"match_phrase": {field: value.strip('"')}})
        else:
            clauses.append({"match": {field: json.loads(value)}})
    return clauses


def parent_pipelines(aggs: dict[str, Any], parent: str | None = None) -> Iterator[tuple[str, str | None]]:
    """(parent-pipeline type, the type of the bucket aggregation it sits directly under)."""
    for body in aggs.values():
        kind = next(k for k in body if k != "aggs")
        if kind in PARENT_PIPELINE.values():
            yield kind, parent
        yield from parent_pipelines(body.get("aggs", {}), kind)


def swap_parent_pipelines(aggs: dict[str, Any]) -> dict[str, Any]:
    """The same request with each parent-pipeline aggregation replaced by its parent metric."""
    out: dict[str, Any] = {}
    for name, body in aggs.items():
        kind = next(k for k in body if k != "aggs")
        if kind in PARENT_PIPELINE.values():
            out[name] = aggs[body[kind]["buckets_path"]]
        else:
            out[name] = {**body, **({"aggs": swap_parent_pipelines(body["aggs"])} if "aggs" in body else {})}
    return out


def bucket_values(response_aggs: dict[str, Any]) -> list[float]:
    """Every non-null metric value found in the innermost buckets."""
    values: list[float] = []
    for value in response_aggs.values():
        if not isinstance(value, dict):
            continue
        if "buckets" in value:
            for bucket in value["buckets"]:
                values += bucket_values(bucket)
        elif value.get("value") is not None:
            values.append(float(value["value"]))
    return values


# -- telemetry of a real short hive ----------------------------------------------------------------


@pytest.fixture(scope="module")
def hive_events(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """Events of a real hive (learner, one actor, evaluator) whose Redis was away for a moment, and of
    the memory monitor beside it."""
    from game.trainer import Trainer
    from hiverl.config import load_config
    from hiverl.events import JsonlSink
    from hiverl.services import RedisServer, free_ports
    from monitor.service import MemoryMonitor, MemorySource, MonitorSettings

    root = tmp_path_factory.mktemp("kibana-hive")
    redis_server = RedisServer(free_ports()[0], root / "redis", persistent=True).start()
    session = f"kibana-{uuid.uuid4().hex[:8]}"
    config = load_config(
        overrides={
            "session_id": session,
            "actors": 1,
            "total_steps": 4000,
            "seed": 1,
            "run_dir": str(root / "runs"),
            "model_dir": str(root / "models"),
            "memory": {"key_prefix": "", "capacity": 10_000},
            "stats_interval_s": 0.5,
            "evaluator": {"interval_s": 1.0, "episodes": 2},
            "agent": {"hidden_sizes": [32, 32]},
            "learner": {"min_size": 300},
        }
    )
    monitor_sink = JsonlSink(root / "memory.jsonl")
    monitor = MemoryMonitor(
        MemorySource(redis_server.url, f"hive-{session}", ""),
        monitor_sink,
        MonitorSettings(memory_name=f"hive-{session}", interval_s=0.5, backoff_max_s=0.5),
    )

    def bounce() -> None:  # Redis away for two seconds while the actor is still playing its steps
        time.sleep(0.2)
        redis_server.stop()
        time.sleep(2.0)
        redis_server.start()

    bouncer = threading.Thread(target=bounce)

    def on_message(kind: str, role: str, index: int, payload: dict[str, Any]) -> None:
        if kind == "started" and role == "actor" and not bouncer.is_alive() and bouncer.ident is None:
            bouncer.start()

    stop = threading.Event()
    thread = threading.Thread(target=monitor.run, args=(stop,), daemon=True)
    thread.start()
    try:
        result = Trainer(config, redis_url=redis_server.url, live=False, on_message=on_message).run()
        bouncer.join(30)
        stop.set()
        thread.join(30)
        for _ in range(2):  # the final memory as well (and a rate, which takes two polls)
            time.sleep(0.5)
            monitor.poll_once()
    finally:
        stop.set()
        thread.join(30)
        monitor_sink.close()
        redis_server.stop()
    assert result.status == "finished", result.status
    lines = [*(result.run_folder / "events.jsonl").read_text().splitlines()]
    lines += (root / "memory.jsonl").read_text().splitlines()
    events = [json.loads(line) for line in lines if line]
    assert {e["topic"] for e in events} == set(FAMILIES), "both families of telemetry"
    assert any(e["event_type"] == "outage" for e in events), "the roles recorded Redis's outage"
    return events


@pytest.fixture(scope="module")
def telemetry(es_url: str, hive_events: list[dict[str, Any]]) -> Iterator[tuple[str, Any, dict[str, Any]]]:
    """(index prefix, client, time range): the hive's events indexed as `hiverl index` indexes them."""
    from elasticsearch import Elasticsearch, helpers

    from hiverl.telemetry.elastic import delete_templates, ensure_templates
    from hiverl.telemetry.schema import daily_index, document_id, validate_event

    prefix = f"test-{uuid.uuid4().hex[:12]}-"
    es = Elasticsearch(es_url, request_timeout=60)
    ensure_templates(es, prefix)
    actions: list[dict[str, Any]] = []
    offsets = dict.fromkeys(FAMILIES, 0)
    for raw in hive_events:
        topic = raw.pop("topic")
        event = validate_event(raw, topic)
        event[TIMESTAMP_FIELD] = int(event["event_time"] * 1000)
        actions.append(
            {
                "_index": daily_index(prefix, topic, event["event_time"]),
                "_id": document_id(topic, 0, offsets[topic]),
                "_source": event,
            }
        )
        offsets[topic] += 1
    helpers.bulk(es, actions, refresh="wait_for")
    times = [a["_source"]["event_time"] for a in actions]
    span = {"gte": int(min(times) * 1000), "lte": int(max(times) * 1000) + 1, "format": "epoch_millis"}
    try:
        yield prefix, es, span
    finally:
        es.options(ignore_status=404).indices.delete(index=f"{prefix}*", expand_wildcards="all")
        delete_templates(es, prefix)
        es.close()


def _interval(span: dict[str, Any]) -> str:
    """Kibana's auto interval: about 50 buckets over the time range, at least 1 s."""
    return f"{max(1, round((span['lte'] - span['gte']) / 1000 / 50))}s"


VISUALIZATIONS = [o for o in so.saved_objects() if o["type"] == "visualization"]
VIEWS = {o["id"]: o for o in so.saved_objects() if o["type"] == "index-pattern"}


@pytest.mark.parametrize("vis", VISUALIZATIONS, ids=[v["id"] for v in VISUALIZATIONS])
def test_every_panel_request_succeeds_with_buckets(
    vis: dict[str, Any], telemetry: tuple[str, Any, dict[str, Any]]
) -> None:
    prefix, es, span = telemetry
    state = json.loads(vis["attributes"]["visState"])
    source = json.loads(vis["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])
    [view_id] = [r["id"] for r in vis["references"] if r["type"] == "index-pattern"]
    family = VIEWS[view_id]["attributes"]["title"].removeprefix(so.DEFAULT_INDEX_PREFIX)
    aggs = kibana_aggs(state, _interval(span))
    # the nesting rule: a parent-pipeline aggregation sits directly under the date histogram
    pipelines = list(parent_pipelines(aggs))
    assert all(parent == "date_histogram" for _, parent in pipelines), (vis["id"], pipelines)
    if pipelines:  # the integ-test distribution lacks the aggregations module: its parent metric
        aggs = swap_parent_pipelines(aggs)
    query = {
        "bool": {
            "filter": [
                *kql_to_query(source["query"]["query"]),
                {"range": {VIEWS[view_id]["attributes"]["timeFieldName"]: span}},
            ]
        }
    }
    response = es.search(index=alias_name(prefix, family), size=0, query=query, aggs=aggs)
    outer = response["aggregations"]
    assert any(v.get("buckets") for v in outer.values() if isinstance(v, dict)), (vis["id"], outer)
    assert bucket_values(outer), f"{vis['id']}: no metric value in any bucket"


def test_the_builder_catches_the_old_metrics_first_order() -> None:
    """metrics -> date histogram -> terms puts moving_fn under terms, which Elasticsearch rejects."""
    [ma] = [v for v in VISUALIZATIONS if v["id"] == "hiverl-episode-return-ma"]
    state = json.loads(ma["attributes"]["visState"])
    metrics = [a for a in state["aggs"] if a["schema"] == "metric"]
    date = [a for a in state["aggs"] if a["type"] == "date_histogram"]
    terms = [a for a in state["aggs"] if a["type"] == "terms"]
    old = {**state, "aggs": [*metrics, *date, *terms]}
    assert [parent for _, parent in parent_pipelines(kibana_aggs(old, "1s"))] == ["terms"]
    assert [parent for _, parent in parent_pipelines(kibana_aggs(state, "1s"))] == ["date_histogram"]


def test_data_views_follow_the_index_prefix() -> None:
    objects = [json.loads(line) for line in so.render("lab-").splitlines()]
    titles = sorted(o["attributes"]["title"] for o in objects if o["type"] == "index-pattern")
    assert titles == sorted(alias_name("lab-", f) for f in FAMILIES)


def test_the_importer_uploads_the_prefixed_objects(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import httpx

    from dashboard.kibana import importer

    seen: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/saved_objects/_import":
            seen.append(request.read())
            return httpx.Response(200, json={"success": True, "successCount": 13})
        return httpx.Response(200, json={})

    client = httpx.Client(base_url="http://kibana", transport=httpx.MockTransport(handler))
    assert importer.import_saved_objects(client, prefix="lab-") == 13
    assert b'"title": "lab-training_log"' in seen[0] and b'"title": "hiverl-training_log"' not in seen[0]
