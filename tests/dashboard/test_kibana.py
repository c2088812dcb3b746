"""The Kibana saved objects: fixed ids, every reference resolves, every field exists in the mapping."""

from __future__ import annotations

import json
import re
from typing import Any

from dashboard.kibana import saved_objects as so
from hiverl.telemetry.schema import DEFAULT_INDEX_PREFIX, FAMILIES, alias_name, mapping


def objects() -> list[dict[str, Any]]:
    return [json.loads(line) for line in so.NDJSON_PATH.read_text(encoding="utf-8").splitlines() if line]


def test_the_committed_ndjson_is_the_generated_one() -> None:
    assert so.NDJSON_PATH.read_text(encoding="utf-8") == so.render(), (
        "run python -m dashboard.kibana.saved_objects"
    )


def test_ids_are_fixed_and_unique_and_every_reference_resolves() -> None:
    objs = objects()
    ids = {(o["type"], o["id"]) for o in objs}
    assert len(ids) == len(objs)
    for o in objs:
        for ref in o["references"]:
            assert (ref["type"], ref["id"]) in ids, f"{o['id']} references missing {ref}"
    dashboard = next(o for o in objs if o["type"] == "dashboard")
    ref_names = {r["name"] for r in dashboard["references"]}
    panels = json.loads(dashboard["attributes"]["panelsJSON"])
    assert {p["panelRefName"] for p in panels} == ref_names
    assert len(panels) == sum(o["type"] == "visualization" for o in objs)
    for o in objs:
        if o["type"] == "visualization":
            source = json.loads(o["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])
            assert source["indexRefName"] in {r["name"] for r in o["references"]}


def test_data_views_cover_both_index_families_by_alias() -> None:
    views = {o["attributes"]["title"]: o for o in objects() if o["type"] == "index-pattern"}
    assert set(views) == {alias_name(DEFAULT_INDEX_PREFIX, f) for f in FAMILIES}
    assert all(v["attributes"]["timeFieldName"] == "@timestamp" for v in views.values())


def fields_used(vis: dict[str, Any]) -> set[str]:
    state = json.loads(vis["attributes"]["visState"])
    used = set()
    for agg in state["aggs"]:
        params = agg["params"]
        if "field" in params:
            used.add(params["field"])
        if "customMetric" in params:
            used.add(params["customMetric"]["params"]["field"])
    query = json.loads(vis["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])["query"]["query"]
    used |= set(re.findall(r"([A-Za-z_@][\w.]*)\s*:", query))
    return used


def test_every_field_a_visualization_uses_exists_in_its_data_views_mapping() -> None:
    objs = objects()
    family_of_view = {
        o["id"]: o["attributes"]["title"].removeprefix(DEFAULT_INDEX_PREFIX)
        for o in objs
        if o["type"] == "index-pattern"
    }
    checked = 0
    for vis in (o for o in objs if o["type"] == "visualization"):
        [view] = [r["id"] for r in vis["references"] if r["type"] == "index-pattern"]
        properties = mapping(family_of_view[view])["properties"]
        for field in fields_used(vis):
            assert field in properties, (
                f"{vis['id']} uses {field!r}, not in the {family_of_view[view]} mapping"
            )
            checked += 1
    assert checked >= 20


def test_the_dashboard_shows_what_the_issue_asks_for_with_time_range_and_refresh() -> None:
    objs = objects()
    used = set().union(*(fields_used(o) for o in objs if o["type"] == "visualization"))
    wanted = {
        "episode_return",
        "loss",
        "epsilon",
        "env_steps_per_s",
        "updates_per_s",
        "size",
        "bytes_used",
        "insert_rate",
        "sample_rate",
        "priority_min",
        "priority_mean",
        "priority_max",
        "worker_index",
        "outage_duration_s",  # the roles' outages, per service
        "service",
    }
    assert wanted <= used
    aggs = [
        a["type"]
        for o in objs
        if o["type"] == "visualization"
        for a in json.loads(o["attributes"]["visState"])["aggs"]
    ]
    assert "moving_avg" in aggs
    [dashboard] = [o for o in objs if o["type"] == "dashboard"]
    attrs = dashboard["attributes"]
    assert attrs["timeRestore"] is True and attrs["timeFrom"].startswith("now-")
    assert attrs["refreshInterval"]["pause"] is False and attrs["refreshInterval"]["value"] > 0
