"""The dashboard's input rules against the real app (real Elasticsearch, MongoDB and Redis): request
bodies within a size and depth, integers bounded and never booleans, only env ids the hive can play,
time ranges checked before Elasticsearch sees them (a bad one never makes it look down), listings
that follow no link out of the run folder, ids matched whole, a stop of an ended session refused,
and error answers that quote at most ~200 characters of the input. Every refusal is a 4xx naming
the field, and no training process starts."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dashboard_helpers import (
    ADMIN,
    VIEWER,
    assert_refused,
    nothing_started,
    seed_events,
    seed_sessions,
    session_document,
    sign_in,
    training_events,
    wait_for,
)
from fastapi.testclient import TestClient

from dashboard import training_form
from dashboard.outage import QueryRefused
from dashboard.request_body import MAX_BODY_BYTES, MAX_JSON_DEPTH, json_depth


def start(client: TestClient, csrf: str, headers: dict[str, str] | None = None, **kwargs: Any) -> Any:
    return client.post("/api/train/start", headers={"X-CSRF-Token": csrf, **(headers or {})}, **kwargs)


# -- request bodies ---------------------------------------------------------------------------------


def test_json_depth_counts_brackets_outside_strings() -> None:
    assert json_depth('{"a": [1, {"b": "[[[[{{{{"}]}') == 3
    assert json_depth('"\\"[[[["') == 0 and json_depth("[]") == 1 and json_depth("1") == 0


def test_deep_or_big_bodies_are_4xx_and_start_nothing(make_app: Any, tmp_path: Path) -> None:
    client = make_app()
    csrf = sign_in(client, ADMIN)
    json_headers = {"X-CSRF-Token": csrf, "Content-Type": "application/json"}
    deep_array = client.post("/api/train/start", content="[" * 1000, headers=json_headers)
    assert "nests 1000 levels deep" in assert_refused(deep_array, "(body)", 400)
    deep_object = '{"a":' * 1000 + "1" + "}" * 1000
    assert_refused(client.post("/api/train/start", content=deep_object, headers=json_headers), "(body)", 400)
    one_too_deep = "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1)
    assert_refused(client.post("/api/train/start", content=one_too_deep, headers=json_headers), "(body)", 400)
    huge = client.post("/api/train/start", content="[" * 100_000, headers=json_headers)
    assert f"at most {MAX_BODY_BYTES}" in assert_refused(huge, "(body)", 413)

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds while reading
        for _ in range(40):
            yield b" " * 4096

    chunked = client.post("/api/train/start", content=chunks(), headers=json_headers)
    assert_refused(chunked, "(body)", 413)
    for text, status in (("{not json", 400), ("\xff\xfe", 400), ('"a string"', 422), ("[1, 2]", 422)):
        assert_refused(client.post("/api/train/start", content=text, headers=json_headers), "(body)", status)
    too_big_for_any_route = client.post("/logout", content=b"x" * (2 * 1024 * 1024), headers=json_headers)
    assert_refused(too_big_for_any_route, "(body)", 413)
    assert nothing_started(client, tmp_path)
    assert client.get("/api/me").status_code == 200  # the server answers on


# -- numbers ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("seed", 10**30),
        ("seed", 10**400),
        ("seed", 2**63),
        ("seed", 2**32),
        ("memory.capacity", 10**30),
        ("memory.capacity", 2**63),
        ("exploration.decay_steps", 2**62),
        ("learner.min_size", 2**62),
        ("total_steps", 2**63),
        ("agent.batch_size", -(2**63) - 1),
    ],
)
def test_huge_integers_are_422_naming_the_field(
    make_app: Any, tmp_path: Path, field: str, value: int
) -> None:
    client = make_app()
    csrf = sign_in(client, ADMIN)
    response = start(client, csrf, json={field: value})
    assert_refused(response, field)
    assert [e["field"] for e in response.json()["detail"]] == [field], response.text
    assert len(response.content) < 1500  # the value is quoted, not echoed whole
    assert nothing_started(client, tmp_path)


def test_booleans_are_refused_on_every_numeric_field(make_app: Any, tmp_path: Path) -> None:
    client = make_app()
    csrf = sign_in(client, ADMIN)
    numeric = [f.name for f in training_form.form_fields() if f.kind in ("int", "float")]
    assert {"seed", "agent.lr", "memory.capacity", "learner.min_size"} <= set(numeric)
    for name in numeric:
        for value in (True, False):
            response = start(client, csrf, json={name: value})
            assert "not true or false" in assert_refused(response, name), (name, response.text)
            assert [e["field"] for e in response.json()["detail"]] == [name]
    not_finite = start(
        client, csrf, content='{"agent.lr": NaN}', headers={"Content-Type": "application/json"}
    )
    assert "finite" in assert_refused(not_finite, "agent.lr")
    assert nothing_started(client, tmp_path)


def test_min_size_above_the_capacity_is_refused(make_app: Any, tmp_path: Path) -> None:
    client = make_app()
    csrf = sign_in(client, ADMIN)
    response = start(client, csrf, json={"learner.min_size": 6000, "memory.capacity": 5000})
    assert "memory.capacity=5000" in assert_refused(response, "learner.min_size")
    assert [e["field"] for e in response.json()["detail"]] == ["learner.min_size"]
    assert nothing_started(client, tmp_path)


# -- environment ids --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "env_id",
    ["Pendulum-v1", "MountainCarContinuous-v0", "CarRacing-v3", "phys2d/CartPole-v1", "tabular/Blackjack-v0"],
)
def test_env_ids_the_hive_cannot_play_are_refused(make_app: Any, tmp_path: Path, env_id: str) -> None:
    client = make_app()
    csrf = sign_in(client, ADMIN)
    response = start(client, csrf, json={"env_id": env_id, "total_steps": 5000})
    assert_refused(response, "env_id")
    assert [e["field"] for e in response.json()["detail"]] == ["env_id"]
    assert nothing_started(client, tmp_path)


# -- time ranges ------------------------------------------------------------------------------------


def test_an_empty_range_is_the_callers_422_and_never_an_outage(
    make_app: Any, es_url: str, es_prefix: str, tmp_path: Path
) -> None:
    first_s = time.time() - 120
    seed_events(es_url, es_prefix, training_events("range-a", first_s, seconds=30, actors=1))
    client = make_app()  # a failure would make Elasticsearch look down for 5 s
    sign_in(client, VIEWER)
    series = "/api/live/series"
    late = client.get(series, params={"session_id": "range-a", "start_ms": 253402300799999})
    assert "must be before end_ms" in assert_refused(late, "start_ms")
    early = client.get(series, params={"session_id": "range-a", "end_ms": int((first_s - 60) * 1000)})
    assert "first event" in assert_refused(early, "end_ms")
    at_zero = client.get(series, params={"session_id": "nobody", "end_ms": 0})
    assert_refused(at_zero, "end_ms")
    good = client.get(series, params={"session_id": "range-a"})
    assert good.status_code == 200 and good.json()["event_count"] > 0, good.text
    assert client.get("/api/live/sessions").json()["down"] == {}
    assert "elasticsearch" not in client.get("/api/status").json()["down"]


def test_a_query_elasticsearch_refuses_does_not_trip_the_outage_guard(
    make_app: Any, es_url: str, es_prefix: str
) -> None:
    seed_events(es_url, es_prefix, training_events("refused-a", time.time() - 60, seconds=5, actors=1))
    client = make_app()
    sign_in(client, VIEWER)
    telemetry = client.app.state.dashboard.telemetry
    with pytest.raises(QueryRefused, match="elasticsearch refused the query: 400"):
        telemetry._search(telemetry.training_index, {"query": {"no_such_query": {}}})
    assert client.get("/api/live/series", params={"session_id": "refused-a"}).status_code == 200
    assert client.get("/api/live/sessions").json()["down"] == {}


# -- video listings ---------------------------------------------------------------------------------


def test_video_listing_follows_no_link_out_of_the_run_folder(
    make_app: Any, dashboard_home: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    (outside / "folder").mkdir(parents=True)
    (outside / "secret.mp4").write_bytes(b"s" * 12345)
    (outside / "folder" / "other.mp4").write_bytes(b"o" * 100)
    videos = dashboard_home / "runs" / "links-a" / "videos"
    videos.mkdir(parents=True)
    (videos / "ok.mp4").write_bytes(b"v" * 10)
    os.symlink(videos / "ok.mp4", videos / "alias.mp4")  # a link inside the folder: served, listed
    os.symlink(outside / "secret.mp4", videos / "escape.mp4")
    os.symlink(outside / "folder", videos / "linked-folder")
    os.symlink(outside, dashboard_home / "runs" / "links-b")  # a whole session folder elsewhere
    client = make_app()
    sign_in(client, VIEWER)
    listing = {s["session_id"]: s["videos"] for s in client.get("/api/videos").json()["sessions"]}
    assert "links-b" not in listing
    assert sorted(v["name"] for v in listing["links-a"]) == ["videos/alias.mp4", "videos/ok.mp4"]
    assert all(v["bytes"] == 10 for v in listing["links-a"])
    for video in listing["links-a"]:
        assert client.get(video["url"]).status_code == 200
    for refused in ("videos/escape.mp4", "videos/linked-folder/other.mp4"):
        assert client.get(f"/media/links-a/{refused}").status_code == 404
    assert client.get("/media/links-b/secret.mp4").status_code == 404


# -- ids, stopping ----------------------------------------------------------------------------------


def test_ids_are_matched_whole(make_app: Any, dashboard_home: Path, tmp_path: Path, redis_url: str) -> None:
    videos = dashboard_home / "runs" / "whole-a" / "videos"
    videos.mkdir(parents=True)
    (videos / "ok.mp4").write_bytes(b"v" * 10)
    client = make_app(redis_url=redis_url)
    csrf = sign_in(client, ADMIN)
    headers = {"X-CSRF-Token": csrf}
    assert_refused(client.post("/api/train/abc%0A/stop", headers=headers), "session_id")
    assert client.get("/media/whole-a/videos/ok.mp4").status_code == 200
    assert_refused(client.get("/media/whole-a/videos/ok.mp4%0a"), "relative")
    assert_refused(client.get("/media/whole-a%0A/videos/ok.mp4"), "session_id")
    assert_refused(client.get("/api/sessions/whole-a%0A"), "path")
    assert nothing_started(client, tmp_path)
    # a newline after a route's last literal part would be dropped by the route's pattern
    session_id = start(client, csrf, json={"total_steps": 5000}).json()["session_id"]
    wait_for(lambda: (tmp_path / "fake.out").exists(), what="the train process to start")
    assert_refused(client.post(f"/api/train/{session_id}/stop%0A", headers=headers), "path")
    time.sleep(0.5)
    assert client.get("/api/train/launched").json()["sessions"][0]["stop_requested_at"] is None
    assert (tmp_path / "fake.out").read_text().startswith("started")


def test_a_stop_of_an_ended_session_is_409(
    make_app: Any, tmp_path: Path, redis_url: str, mongo_uri: str, mongo_db: str
) -> None:
    client = make_app(redis_url=redis_url)
    csrf = sign_in(client, ADMIN)
    headers = {"X-CSRF-Token": csrf}
    started = start(client, csrf, json={"total_steps": 5000})
    assert started.status_code == 201, started.text
    session_id = started.json()["session_id"]
    wait_for(lambda: (tmp_path / "fake.out").exists(), what="the train process to start")
    assert client.post(f"/api/train/{session_id}/stop", headers=headers).status_code == 202
    wait_for(lambda: not client.get("/api/train/launched").json()["sessions"][0]["running"])
    again = client.post(f"/api/train/{session_id}/stop", headers=headers)
    assert again.status_code == 409 and "already ended (exit code 0)" in again.json()["detail"], again.text
    seed_sessions(mongo_uri, mongo_db, [session_document("archived-done", status="finished")])
    archived = client.post("/api/train/archived-done/stop", headers=headers)
    assert archived.status_code == 409 and "already ended (finished)" in archived.json()["detail"]
    assert client.post("/api/train/never-seen/stop", headers=headers).status_code == 404


# -- error answers ----------------------------------------------------------------------------------


def test_error_answers_quote_at_most_about_200_characters(make_app: Any, tmp_path: Path) -> None:
    client = make_app()
    csrf = sign_in(client, ADMIN)
    long_id = start(client, csrf, json={"env_id": "x" * 60_000})
    assert "60000 characters" in assert_refused(long_id, "env_id") and len(long_id.content) < 1500
    huge_id = start(client, csrf, json={"env_id": "x" * 10_000_000})
    assert_refused(huge_id, "(body)", 413)
    assert len(huge_id.content) < 1000
    unknown = start(client, csrf, json={"y" * 50_000: 1})
    assert "50000 characters" in assert_refused(unknown, "yyy") and len(unknown.content) < 1500
    long = "z" * 20_000
    answers = [
        (client.get("/api/live/series", params={"session_id": long}), "session_id", 422),
        (client.get("/api/sessions", params={"started_after": long}), "started_after", 422),
        (client.get("/api/sessions", params={"hp": long}), "hp", 422),
        (client.get("/api/sessions", params={"order": long}), "order", 422),
        (client.get("/api/live/series", params={"session_id": "s", "points": long}), "points", 422),
        (client.get(f"/api/sessions/{long}"), long[:50], 404),
        (client.get("/api/compare/diff", params={"a": long, "b": long}), long[:50], 404),
    ]
    for response, field, status in answers:
        assert response.status_code == status, response.text[:300]
        assert field in response.text and len(response.content) < 2000, (field, len(response.content))
    assert nothing_started(client, tmp_path)
