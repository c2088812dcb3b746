"""The dashboard keeps working, shows what it has and names what is down, when Elasticsearch or
MongoDB is unreachable: no 500s, pages render, the status bar reports the outage."""

from __future__ import annotations

import time
from typing import Any

from dashboard_helpers import (
    ADMIN,
    DEAD_URL,
    VIEWER,
    seed_events,
    seed_sessions,
    session_document,
    sign_in,
    training_events,
)

DEAD_MONGO = "mongodb://127.0.0.1:9/"
EVERY_GET = [
    "/live",
    "/sessions",
    "/train",
    "/watch",
    "/api/status",
    "/api/live/sessions",
    "/api/live/series?session_id=s",
    "/api/sessions",
    "/api/sessions/s",
    "/api/compare/curves?session_id=s",
    "/api/compare/diff?a=s&b=t",
    "/api/train/form",
    "/api/train/launched",
    "/api/videos",
]


def test_everything_down_still_answers_and_names_the_outage(make_client: Any, es_prefix: str) -> None:
    client = make_client(DEAD_URL, es_prefix, DEAD_MONGO, "nowhere")
    csrf = sign_in(client, ADMIN)  # accounts live in a local file: signing in needs no service
    for path in EVERY_GET:
        response = client.get(path)
        assert response.status_code in (200, 503), (path, response.status_code, response.text)
        if response.status_code == 503:
            assert set(response.json()["down"]) <= {"elasticsearch", "mongodb"} and response.json()["down"]
    status = client.get("/api/status").json()
    assert {name: s["up"] for name, s in status["services"].items()} == {
        "redis": False,
        "kafka": False,
        "elasticsearch": False,
        "mongodb": False,
    }
    assert status["latest_session"] is None and set(status["down"]) == {"mongodb", "elasticsearch"}
    live = client.get("/api/live/sessions").json()
    assert live["running"] == [] and set(live["down"]) == {"mongodb", "elasticsearch"}
    assert client.get("/api/sessions").json()["down"].keys() == {"mongodb"}
    assert client.get("/api/live/series?session_id=s").json()["down"].keys() == {"elasticsearch"}
    # training needs neither: the form still validates and starts
    started = client.post("/api/train/start", json={"actors": 1}, headers={"X-CSRF-Token": csrf})
    assert started.status_code == 201
    assert (
        client.post(
            f"/api/train/{started.json()['session_id']}/stop", headers={"X-CSRF-Token": csrf}
        ).status_code
        == 202
    )


def test_mongodb_down_keeps_live_telemetry(make_client: Any, es_url: str, es_prefix: str) -> None:
    seed_events(es_url, es_prefix, training_events("s-live", time.time() - 60, seconds=30))
    client = make_client(es_url, es_prefix, DEAD_MONGO, "nowhere")
    sign_in(client, VIEWER)
    series = client.get("/api/live/series", params={"session_id": "s-live"})
    assert series.status_code == 200 and series.json()["event_count"] == 30 * (2 * 2 + 1) + 3
    live = client.get("/api/live/sessions").json()
    assert [s["session_id"] for s in live["running"]] == ["s-live"] and list(live["down"]) == ["mongodb"]
    status = client.get("/api/status").json()
    assert status["latest_session"]["session_id"] == "s-live"  # from telemetry while the archive is down
    curves = client.get("/api/compare/curves", params={"session_id": "s-live"}).json()
    assert (
        curves["x"] == "seconds"
        and len(curves["curves"]["s-live"]) > 5
        and list(curves["down"]) == ["mongodb"]
    )
    assert client.get("/api/sessions").status_code == 503


def test_elasticsearch_down_keeps_the_archive(
    make_client: Any, es_prefix: str, mongo_uri: str, mongo_db: str
) -> None:
    seed_sessions(mongo_uri, mongo_db, [session_document("s-archived", status="running")])
    client = make_client(DEAD_URL, es_prefix, mongo_uri, mongo_db)
    sign_in(client, VIEWER)
    assert [r["session_id"] for r in client.get("/api/sessions").json()["rows"]] == ["s-archived"]
    live = client.get("/api/live/sessions").json()
    assert [s["session_id"] for s in live["running"]] == ["s-archived"] and list(live["down"]) == [
        "elasticsearch"
    ]
    curves = client.get("/api/compare/curves", params={"session_id": "s-archived"}).json()
    assert curves["x"] == "env_steps" and curves["curves"]["s-archived"]
    series = client.get("/api/live/series", params={"session_id": "s-archived"})
    assert series.status_code == 503 and "elasticsearch" in series.json()["down"]


def test_archive_server_stopped_and_restarted(make_client: Any, es_prefix: str, private_mongo: Any) -> None:
    seed_sessions(private_mongo.url, "hiverl_dash", [session_document("s-before")])
    client = make_client(DEAD_URL, es_prefix, private_mongo.url, "hiverl_dash", outage_backoff_s=0.0)
    sign_in(client, VIEWER)
    assert client.get("/api/sessions").json()["matched"] == 1
    private_mongo.stop()
    try:
        down = client.get("/api/sessions")
        assert down.status_code == 503 and "mongodb" in down.json()["down"]
        assert client.get("/sessions").status_code == 200
        assert client.get("/api/status").json()["services"]["mongodb"]["up"] is False
    finally:
        private_mongo.start()
    assert client.get("/api/sessions").json()["matched"] == 1  # the dashboard recovers by itself
