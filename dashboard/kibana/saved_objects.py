"""Kibana saved objects of the hiverl telemetry, as code: data views, visualizations, one dashboard.

``python -m dashboard.kibana.saved_objects`` regenerates ``hiverl.ndjson`` (committed; a test keeps
the two equal; it holds the default index prefix). Every id is fixed, so importing again overwrites
instead of duplicating. The field names used here are checked against the event schema
(``hiverl.telemetry.schema``) by the tests. The data views follow the index prefix:
``render(prefix)`` titles them ``<prefix>training_log`` and ``<prefix>memory_monitoring`` (the importer
renders for ``HIVERL_TELEMETRY_INDEX_PREFIX``).

Aggregation order: Kibana nests the bucket aggregations in list order and puts every metric into the
last bucket (``AggConfigs.toDsl``). A parent-pipeline metric (the moving average's ``moving_fn``) must
sit directly under the date histogram, so the date histogram is the LAST bucket: terms (per worker)
-> date histogram -> metrics. tests/dashboard/test_kibana_requests.py builds every panel's request
that way and runs it against Elasticsearch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hiverl.events import MEMORY_MONITORING_TOPIC, TRAINING_LOG_TOPIC
from hiverl.telemetry.schema import DEFAULT_INDEX_PREFIX, TIMESTAMP_FIELD, alias_name

NDJSON_PATH = Path(__file__).with_name("hiverl.ndjson")
TRAINING_DATA_VIEW_ID = "hiverl-training-log"
MEMORY_DATA_VIEW_ID = "hiverl-memory-monitoring"
DASHBOARD_ID = "hiverl-overview"
#: Dashboard defaults: the last hour, refreshed every 10 s.
TIME_FROM, TIME_TO, REFRESH_MS = "now-1h", "now", 10_000
MOVING_AVERAGE_WINDOW = 10
MAX_WORKERS_SHOWN = 32

_SEARCH_REF = "kibanaSavedObjectMeta.searchSourceJSON.index"
#: Object shapes as of Kibana 8.x (the stack runs 9.x, which migrates them on import).
CORE_MIGRATION_VERSION = "8.8.0"
_MIGRATION = {"index-pattern": "8.0.0", "visualization": "8.5.0", "dashboard": "8.7.0"}


def _data_view(view_id: str, family: str, name: str, prefix: str) -> dict[str, Any]:
    return {
        "type": "index-pattern",
        "id": view_id,
        "attributes": {
            "title": alias_name(prefix, family),
            "name": name,
            "timeFieldName": TIMESTAMP_FIELD,
        },
        "references": [],
        "coreMigrationVersion": CORE_MIGRATION_VERSION,
        "typeMigrationVersion": _MIGRATION["index-pattern"],
    }


def _metric(agg_id: str, field: str, kind: str = "avg") -> dict[str, Any]:
    return {"id": agg_id, "enabled": True, "type": kind, "schema": "metric", "params": {"field": field}}


def _moving_average(agg_id: str, field: str) -> dict[str, Any]:
    return {
        "id": agg_id,
        "enabled": True,
        "type": "moving_avg",
        "schema": "metric",
        "params": {
            "metricAgg": "custom",
            "customMetric": {
                "id": f"{agg_id}-metric",
                "enabled": True,
                "type": "avg",
                "params": {"field": field},
            },
            "window": MOVING_AVERAGE_WINDOW,
            "script": "MovingFunctions.unweightedAvg(values)",
        },
    }


def _time_buckets(agg_id: str) -> dict[str, Any]:
    return {
        "id": agg_id,
        "enabled": True,
        "type": "date_histogram",
        "schema": "segment",
        "params": {"field": TIMESTAMP_FIELD, "interval": "auto", "min_doc_count": 1, "extended_bounds": {}},
    }


def _split(agg_id: str, field: str) -> dict[str, Any]:
    """One series per value of ``field`` (per actor: ``worker_index``)."""
    return {
        "id": agg_id,
        "enabled": True,
        "type": "terms",
        "schema": "group",
        "params": {"field": field, "size": MAX_WORKERS_SHOWN, "order": "asc", "orderBy": "_key"},
    }


def _line_params(y_title: str, metrics: list[dict[str, Any]], chart: str = "line") -> dict[str, Any]:
    """``chart``: ``line``, or ``histogram`` (bars, stacked per series)."""
    return {
        "type": chart,
        "addTooltip": True,
        "addLegend": True,
        "legendPosition": "right",
        "times": [],
        "addTimeMarker": False,
        "grid": {"categoryLines": False},
        "categoryAxes": [
            {
                "id": "CategoryAxis-1",
                "type": "category",
                "position": "bottom",
                "show": True,
                "scale": {"type": "linear"},
                "labels": {"show": True, "filter": True, "truncate": 100},
                "title": {},
            }
        ],
        "valueAxes": [
            {
                "id": "ValueAxis-1",
                "name": "LeftAxis-1",
                "type": "value",
                "position": "left",
                "show": True,
                "scale": {"type": "linear", "mode": "normal"},
                "labels": {"show": True, "rotate": 0, "filter": False, "truncate": 100},
                "title": {"text": y_title},
            }
        ],
        "seriesParams": [
            {
                "show": True,
                "type": chart,
                "mode": "stacked" if chart == "histogram" else "normal",
                "data": {"label": m["type"] + " " + _field_of(m), "id": m["id"]},
                "valueAxis": "ValueAxis-1",
                "drawLinesBetweenPoints": True,
                "lineWidth": 2,
                "showCircles": True,
                "interpolate": "linear",
            }
            for m in metrics
        ],
    }


def _field_of(agg: dict[str, Any]) -> str:
    params = agg["params"]
    return str(params.get("field") or params.get("customMetric", {}).get("params", {}).get("field", ""))


def _visualization(
    vis_id: str,
    title: str,
    view_id: str,
    query: str,
    y_title: str,
    metrics: list[dict[str, Any]],
    per_worker: bool,
    *,
    split: str | None = None,
    chart: str = "line",
) -> dict[str, Any]:
    """A chart over time; ``per_worker``: one series per actor (``split``: per value of that field)."""
    # buckets outermost first, the date histogram last (see the module docstring), then the metrics
    split = split or ("worker_index" if per_worker else None)
    buckets = [_split(f"{len(metrics) + 2}", split)] if split else []
    aggs = [*buckets, _time_buckets(f"{len(metrics) + 1}"), *metrics]
    search_source = {
        "query": {"query": query, "language": "kuery"},
        "filter": [],
        "indexRefName": _SEARCH_REF,
    }
    return {
        "type": "visualization",
        "id": vis_id,
        "attributes": {
            "title": title,
            "description": "",
            "uiStateJSON": "{}",
            "version": 1,
            "visState": json.dumps(
                {"title": title, "type": chart, "aggs": aggs, "params": _line_params(y_title, metrics, chart)}
            ),
            "kibanaSavedObjectMeta": {"searchSourceJSON": json.dumps(search_source)},
        },
        "references": [{"name": _SEARCH_REF, "type": "index-pattern", "id": view_id}],
        "coreMigrationVersion": CORE_MIGRATION_VERSION,
        "typeMigrationVersion": _MIGRATION["visualization"],
    }


def visualizations() -> list[dict[str, Any]]:
    """The dashboard's charts: training per worker, then the replay memory (whole memory, shard -1)."""
    # The learner's statistics carry no worker index (one learner); the actors' do.
    episodes = 'event_type : "episode"'
    learner = 'event_type : "train_stats" and role : "learner"'
    actors = 'event_type : "train_stats" and role : "actor"'
    memory = 'event_type : "memory_stats" and shard : -1'
    outages = 'event_type : "outage"'
    t, m = TRAINING_DATA_VIEW_ID, MEMORY_DATA_VIEW_ID
    return [
        _visualization(
            "hiverl-episode-return",
            "Episode return per actor",
            t,
            episodes,
            "return",
            [_metric("1", "episode_return")],
            per_worker=True,
        ),
        _visualization(
            "hiverl-episode-return-ma",
            f"Episode return, moving average ({MOVING_AVERAGE_WINDOW})",
            t,
            episodes,
            "return",
            [_moving_average("1", "episode_return")],
            per_worker=True,
        ),
        _visualization(
            "hiverl-loss", "Learner loss", t, learner, "loss", [_metric("1", "loss")], per_worker=False
        ),
        _visualization(
            "hiverl-epsilon", "ε per actor", t, actors, "ε", [_metric("1", "epsilon")], per_worker=True
        ),
        _visualization(
            "hiverl-env-steps-per-s",
            "Env steps/s per actor",
            t,
            actors,
            "steps/s",
            [_metric("1", "env_steps_per_s")],
            per_worker=True,
        ),
        _visualization(
            "hiverl-updates-per-s",
            "Learner updates/s",
            t,
            learner,
            "updates/s",
            [_metric("1", "updates_per_s")],
            per_worker=False,
        ),
        _visualization(
            "hiverl-memory-size",
            "Replay memory size",
            m,
            memory,
            "transitions",
            [_metric("1", "size", "max"), _metric("2", "capacity", "max")],
            per_worker=False,
        ),
        _visualization(
            "hiverl-memory-bytes",
            "Replay memory bytes",
            m,
            memory,
            "bytes",
            [_metric("1", "bytes_used", "max"), _metric("2", "redis_used_memory", "max")],
            per_worker=False,
        ),
        _visualization(
            "hiverl-memory-rates",
            "Insert and sample rates",
            m,
            memory,
            "transitions/s",
            [_metric("1", "insert_rate"), _metric("2", "sample_rate")],
            per_worker=False,
        ),
        _visualization(
            "hiverl-memory-priorities",
            "Priority statistics",
            m,
            memory,
            "priority p^α",
            [_metric("1", "priority_min"), _metric("2", "priority_mean"), _metric("3", "priority_max")],
            per_worker=False,
        ),
        # Each role records one event per outage once it is over, at its end: the bars stand where the
        # outages ended, as high as the seconds the roles waited (summed over the roles).
        _visualization(
            "hiverl-outages",
            "Outages: seconds the roles waited, per service",
            t,
            outages,
            "seconds waited",
            [_metric("1", "outage_duration_s", "sum")],
            per_worker=False,
            split="service",
            chart="histogram",
        ),
    ]


def dashboard(vis: list[dict[str, Any]]) -> dict[str, Any]:
    """Two charts per row, training first; last hour, auto-refresh every 10 s."""
    panels, references = [], []
    for i, v in enumerate(vis):
        ref = f"panel_{i}"
        panels.append(
            {
                "version": CORE_MIGRATION_VERSION,
                "type": "visualization",
                "gridData": {"x": 24 * (i % 2), "y": 15 * (i // 2), "w": 24, "h": 15, "i": str(i)},
                "panelIndex": str(i),
                "embeddableConfig": {},
                "panelRefName": ref,
            }
        )
        references.append({"name": ref, "type": "visualization", "id": v["id"]})
    return {
        "type": "dashboard",
        "id": DASHBOARD_ID,
        "attributes": {
            "title": "hiverl: hive training and replay memory",
            "description": "Episode returns, training statistics per worker, and the shared replay memory.",
            "panelsJSON": json.dumps(panels),
            "optionsJSON": json.dumps({"useMargins": True, "hidePanelTitles": False}),
            "version": 1,
            "timeRestore": True,
            "timeFrom": TIME_FROM,
            "timeTo": TIME_TO,
            "refreshInterval": {"pause": False, "value": REFRESH_MS},
            "kibanaSavedObjectMeta": {
                "searchSourceJSON": json.dumps({"query": {"query": "", "language": "kuery"}, "filter": []})
            },
        },
        "references": references,
        "coreMigrationVersion": CORE_MIGRATION_VERSION,
        "typeMigrationVersion": _MIGRATION["dashboard"],
    }


def saved_objects(prefix: str = DEFAULT_INDEX_PREFIX) -> list[dict[str, Any]]:
    """Every object, referenced ones first (Kibana resolves references within one import); the data
    views read the aliases of ``prefix`` (``HIVERL_TELEMETRY_INDEX_PREFIX`` of the stack)."""
    vis = visualizations()
    return [
        _data_view(TRAINING_DATA_VIEW_ID, TRAINING_LOG_TOPIC, "hiverl training log", prefix),
        _data_view(MEMORY_DATA_VIEW_ID, MEMORY_MONITORING_TOPIC, "hiverl memory monitoring", prefix),
        *vis,
        dashboard(vis),
    ]


def render(prefix: str = DEFAULT_INDEX_PREFIX) -> str:
    """The NDJSON text for ``prefix``: one object per line, keys sorted (stable diffs)."""
    objects = saved_objects(prefix)
    return "".join(json.dumps(o, sort_keys=True, ensure_ascii=False) + "\n" for o in objects)


if __name__ == "__main__":
    NDJSON_PATH.write_text(render(), encoding="utf-8")
    print(f"wrote {NDJSON_PATH} ({len(saved_objects())} objects)")
