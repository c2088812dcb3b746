"""Every endpoint against the real Elasticsearch and MongoDB services: access control, CSRF,
the sign-in rate limit, input validation, and the data each endpoint serves."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import pytest
from dashboard_helpers import (
    ADMIN,
    VIEWER,
    seed_events,
    seed_sessions,
    session_document,
    sign_in,
    training_events,
    wait_for,
)
from fastapi.testclient import TestClient

from dashboard.security import LOGIN_CSRF_COOKIE, SESSION_COOKIE, LoginRateLimiter

PAGES = ["/live", "/sessions", "/train", "/watch"]
GET_ENDPOINTS = [
    "/api/me",
    "/api/status",
    "/api/live/sessions",
    "/api/live/series?session_id=x",
    "/api/sessions",
    "/api/sessions/x",
    "/api/compare/curves?session_id=x",
    "/api/compare/diff?a=x&b=y",
    "/api/train/form",
    "/api/train/launched",
    "/api/videos",
    "/media/x/episode.mp4",
]
POST_ENDPOINTS = ["/api/train/start", "/api/train/x/stop", "/logout"]


@pytest.fixture
def client(make_client: Any, es_url: str, es_prefix: str, mongo_uri: str, mongo_db: str) -> TestClient:
    client: TestClient = make_client(es_url, es_prefix, mongo_uri, mongo_db)
    return client


# -- access control ---------------------------------------------------------------------------------


def test_anonymous_gets_nothing(client: TestClient) -> None:
    for path in [*PAGES, "/"]:
        response = client.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/login") or response.headers["location"] == "/live"
    for path in GET_ENDPOINTS:
        response = client.get(path)
        assert response.status_code == 401, path
        assert "sessions" not in response.json() and response.json()["detail"] == "sign in first"
    for path in POST_ENDPOINTS[:2]:
        assert client.post(path, json={}).status_code == 401, path
    assert client.get("/static/vendor/chart.umd.min.js").status_code == 200  # assets are public


def test_sign_in_sets_a_hardened_session_cookie_and_sign_out_ends_it(client: TestClient) -> None:
    login = client.get("/login")
    assert login.status_code == 200 and "Sign in" in login.text
    assert "httponly" in login.headers["set-cookie"].lower()
    csrf = sign_in(client, ADMIN)
    cookie = next(c for c in client.cookies.jar if c.name == SESSION_COOKIE)
    assert cookie.has_nonstandard_attr("HttpOnly")
    raw = client.get("/login")  # already signed in: redirected, no new cookie
    assert raw.status_code == 303
    me = client.get("/api/me").json()
    assert me == {"name": "ada", "role": "admin", "csrf_token": csrf}
    page = client.get("/live")
    assert page.status_code == 200 and "ada" in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    assert page.headers["x-frame-options"] == "DENY"
    # signing out needs the CSRF token too
    assert client.post("/logout", data={"csrf_token": "wrong"}).status_code == 403
    assert client.post("/logout", data={"csrf_token": csrf}).status_code == 303
    assert client.get("/api/me").status_code == 401


def test_session_cookie_flags(client: TestClient) -> None:
    page = client.get("/login")
    token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    response = client.post("/login", data={"username": ADMIN[0], "password": ADMIN[1], "csrf_token": token})
    set_cookie = next(
        h for h in response.headers.get_list("set-cookie") if h.startswith(SESSION_COOKIE)
    ).lower()
    assert "httponly" in set_cookie and "samesite=lax" in set_cookie and "path=/" in set_cookie


def test_sign_in_refuses_wrong_password_and_missing_login_csrf(client: TestClient) -> None:
    page = client.get("/login")
    token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    wrong = client.post("/login", data={"username": "ada", "password": "nope-nope", "csrf_token": token})
    assert wrong.status_code == 401 and "Wrong user name or password" in wrong.text
    client.cookies.delete(LOGIN_CSRF_COOKIE, path="/login")
    forged = client.post("/login", data={"username": ADMIN[0], "password": ADMIN[1], "csrf_token": token})
    assert forged.status_code == 403 and SESSION_COOKIE not in forged.headers.get("set-cookie", "")
    assert client.get("/api/me").status_code == 401


def test_sign_in_is_rate_limited_per_user_and_address(
    make_client: Any, es_url: str, es_prefix: str, mongo_uri: str, mongo_db: str
) -> None:
    client = make_client(
        es_url, es_prefix, mongo_uri, mongo_db, limiter=LoginRateLimiter(free_failures=3, base_lockout_s=60)
    )

    def attempt(user: str, password: str) -> Any:
        page = client.get("/login")
        token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
        return client.post("/login", data={"username": user, "password": password, "csrf_token": token})

    assert [attempt("ada", "bad-password").status_code for _ in range(3)] == [401, 401, 401]
    locked = attempt("ada", ADMIN[1])  # even the right password waits out the lockout
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) >= 60
    assert "Too many failed sign-ins" in locked.text
    assert attempt("vic", VIEWER[1]).status_code == 303  # other users are not locked out


def test_viewer_watches_but_cannot_start_or_stop(client: TestClient) -> None:
    csrf = sign_in(client, VIEWER)
    for path in PAGES:
        assert client.get(path).status_code == 200, path
    train = client.get("/train")
    assert "only admins start or stop training" in train.text
    refused = client.post("/api/train/start", json={"actors": 1}, headers={"X-CSRF-Token": csrf})
    assert refused.status_code == 403 and "role viewer" in refused.json()["detail"]
    stop = client.post("/api/train/x/stop", headers={"X-CSRF-Token": csrf})
    assert stop.status_code == 403
    assert client.get("/api/train/form").json()["can_control_training"] is False


def test_state_changes_need_the_csrf_token(client: TestClient) -> None:
    csrf = sign_in(client, ADMIN)
    missing = client.post("/api/train/start", json={"actors": 1})
    assert missing.status_code == 403 and "CSRF" in missing.json()["detail"]
    wrong = client.post("/api/train/start", json={"actors": 1}, headers={"X-CSRF-Token": csrf + "x"})
    assert wrong.status_code == 403
    assert client.get("/api/train/launched").json()["sessions"] == []


def test_deleted_user_and_new_password_end_sessions(client: TestClient, dashboard_home: Path) -> None:
    from dashboard.users import UserStore

    sign_in(client, VIEWER)
    store = UserStore(dashboard_home / "users.json")
    store.set_password("vic", "another-password")
    assert client.get("/api/me").status_code == 401
    sign_in(client, ("vic", "another-password"))
    store.delete("vic")
    assert client.get("/api/me").status_code == 401


# -- starting and stopping training -----------------------------------------------------------------


def test_invalid_hyperparameters_are_refused_with_the_field_named(client: TestClient) -> None:
    csrf = sign_in(client, ADMIN)
    headers = {"X-CSRF-Token": csrf}
    response = client.post(
        "/api/train/start", json={"actors": -1, "actor.envs": 0, "agent.lr": "fast"}, headers=headers
    )
    assert response.status_code == 422
    errors = {e["field"]: e["message"] for e in response.json()["detail"]}
    assert set(errors) == {"actors", "actor.envs", "agent.lr"}
    assert "greater than or equal to 0" in errors["actors"] and "(got -1)" in errors["actors"]
    assert "greater than or equal to 1" in errors["actor.envs"] and "(got 0)" in errors["actor.envs"]
    assert "fast" in errors["agent.lr"]
    too_many = client.post("/api/train/start", json={"actors": 257}, headers=headers)
    assert (
        too_many.status_code == 422 and "less than or equal to 256" in too_many.json()["detail"][0]["message"]
    )
    removed = client.post("/api/train/start", json={"workers": 2}, headers=headers)  # the old name
    assert removed.status_code == 422 and removed.json()["detail"][0]["field"] == "workers"
    unknown = client.post("/api/train/start", json={"agent.lrr": 1}, headers=headers)
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["field"] == "agent.lrr"
    schedule = client.post("/api/train/start", json={"exploration.schedule": "random"}, headers=headers)
    assert schedule.status_code == 422 and schedule.json()["detail"][0]["field"] == "exploration.schedule"
    not_object = client.post("/api/train/start", json=[1, 2], headers=headers)
    assert not_object.status_code == 422
    assert client.get("/api/train/launched").json()["sessions"] == []


def test_admin_starts_and_stops_a_session_with_sigint(client: TestClient, tmp_path: Path) -> None:
    csrf = sign_in(client, ADMIN)
    form = client.get("/api/train/form").json()
    assert {f["name"] for f in form["fields"]} >= {
        "env_id",
        "actors",
        "actor.envs",
        "agent.lr",
        "agent.gamma",
    }
    started = client.post(
        "/api/train/start",
        json={
            "env_id": "CartPole-v1",
            "actors": 2,
            "actor.envs": 4,
            "agent.lr": "0.001",
            "total_steps": 5000,
        },
        headers={"X-CSRF-Token": csrf},
    )
    assert started.status_code == 201, started.text
    body = started.json()
    session_id = body["session_id"]
    assert session_id.startswith("cartpole-v1-") and body["running"]
    assert body["settings"]["agent"]["lr"] == 0.001 and body["settings"]["actors"] == 2
    assert body["settings"]["actor"]["envs"] == 4
    out = tmp_path / "fake.out"
    args = wait_for(lambda: out.exists() and out.read_text(), what="the train process to start")
    # the validated, typed values are passed on as `hiverl train --set` assignments
    assert "--set agent.lr=0.001" in args and "--set actors=2" in args and "--set total_steps=5000" in args
    assert "--set actor.envs=4" in args
    assert f"--session {session_id}" in args and "--no-live" in args
    launched = client.get("/api/train/launched").json()["sessions"]
    assert [s["session_id"] for s in launched] == [session_id] and launched[0]["started_by"] == "ada"
    live = client.get("/api/live/sessions").json()
    assert session_id in [s["session_id"] for s in live["running"]]
    stopped = client.post(f"/api/train/{session_id}/stop", headers={"X-CSRF-Token": csrf})
    assert stopped.status_code == 202
    wait_for(lambda: out.read_text() == "stopped by SIGINT", what="SIGINT to reach the train process")
    final = wait_for(
        lambda: [s for s in client.get("/api/train/launched").json()["sessions"] if not s["running"]]
    )
    assert final[0]["exit_code"] == 0
    unknown = client.post("/api/train/not-mine/stop", headers={"X-CSRF-Token": csrf})
    assert unknown.status_code == 404 and "not started from this dashboard" in unknown.json()["detail"]


# -- live view (Elasticsearch) ----------------------------------------------------------------------


def test_live_series_are_downsampled_per_actor(client: TestClient, es_url: str, es_prefix: str) -> None:
    start = time.time() - 600
    seed_events(es_url, es_prefix, training_events("live-a", start, seconds=400, actors=3))
    seed_events(es_url, es_prefix, training_events("other", start, seconds=20, actors=1))
    sign_in(client, VIEWER)
    response = client.get("/api/live/series", params={"session_id": "live-a", "points": 50})
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["event_count"] == 400 * (3 * 2 + 1) + 40  # actors' episodes and stats, learner, evaluator
    returns = data["workers"]["episode_return"]
    assert set(returns) == {"0", "1", "2"}
    for worker, series in returns.items():
        assert 20 <= len(series) <= 51  # 400 episodes downsampled into about 50 buckets
        times = [t for t, _ in series]
        assert times == sorted(times)
        # bucket means of returns 10 + t + 100 w over a growing t
        assert series[0][1] == pytest.approx(10 + 100 * int(worker) + 3.5, abs=5)
        assert series[-1][1] > series[0][1] + 300
    moving = data["workers"]["episode_return_ma"]["0"]
    assert len(moving) == len(returns["0"]) and moving[-1][1] < returns["0"][-1][1]  # lags a rising curve
    assert data["workers"]["env_steps_per_s"]["1"][0][1] == pytest.approx(501.0)
    assert set(data["workers"]["env_steps_per_s"]) == {"0", "1", "2"}  # the learner plays no env
    # The learner's stats (no worker_index) are their own series.
    assert set(data["workers"]["loss"]) == {"learner"}
    assert data["workers"]["loss"]["learner"][-1][1] < data["workers"]["loss"]["learner"][0][1]
    assert data["workers"]["updates_per_s"]["learner"][0][1] == pytest.approx(50.0)
    # The evaluator's greedy return (20 + t every 10 s) rises over the session.
    evals = data["eval"]["eval_return"]
    assert 20 <= len(evals) <= 41 and evals[0][1] == pytest.approx(20.0, abs=10)
    assert evals[-1][1] > evals[0][1] + 300
    memory = data["memory"]
    assert memory["insert_rate"][0][1] == pytest.approx(1000.0)  # shard -1 only, no double count
    assert memory["size"][-1][1] > memory["size"][0][1]
    recent = client.get(
        "/api/live/series", params={"session_id": "live-a", "last_s": 300, "points": 30}
    ).json()
    assert recent["event_count"] < data["event_count"] and recent["start_ms"] > data["start_ms"]
    middle = {"start_ms": int((start + 100) * 1000), "end_ms": int((start + 199.99) * 1000)}
    window = client.get("/api/live/series", params={"session_id": "live-a", **middle}).json()
    assert window["event_count"] == 100 * 7 + 10  # seconds 100..199 of the session, every event type
    assert all(middle["start_ms"] <= t <= middle["end_ms"] for t, _ in window["workers"]["epsilon"]["2"])
    assert all(middle["start_ms"] <= t <= middle["end_ms"] for t, _ in window["eval"]["eval_return"])
    empty = client.get("/api/live/series", params={"session_id": "nothing-here"}).json()
    assert empty["event_count"] == 0 and empty["workers"]["episode_return"] == {}
    assert empty["eval"]["eval_return"] == []
    bad = client.get("/api/live/series", params={"session_id": "live-a", "points": 5})
    assert bad.status_code == 422 and "points" in bad.text
    reversed_range = client.get(
        "/api/live/series", params={"session_id": "live-a", "start_ms": 2, "end_ms": 1}
    )
    assert reversed_range.status_code == 422 and "start_ms" in reversed_range.text


def test_live_series_carry_the_outages_that_overlap_the_range(
    client: TestClient, es_url: str, es_prefix: str
) -> None:
    from hiverl.events import envelope
    from hiverl.outages import Outage

    start = time.time() - 600
    down, up = start + 200, start + 214

    def outage(session: str, role: str, index: int | None, begin: float, end: float, **more: Any) -> Any:
        fields = Outage("redis", begin, end, failures=6).fields()
        event = envelope("outage", session_id=session, worker_index=index, role=role, **fields | more)
        event["event_time"] = end + 6  # recorded once it settled
        return event

    seed_events(
        es_url,
        es_prefix,
        [
            *training_events("live-o", start, seconds=400, actors=2),
            outage("live-o", "learner", None, down, up),
            outage("live-o", "actor", 0, down + 0.2, up - 0.3),
            outage("live-o", "actor", 1, down + 0.1, up + 0.4, service="kafka"),
            outage("other", "learner", None, down, up),  # another session's
            outage("indexer", "indexer", None, start + 300, start + 310, service="elasticsearch"),
            outage("indexer", "indexer", None, time.time() - 20, time.time() - 15, service="kafka"),
        ],
    )
    sign_in(client, VIEWER)
    data = client.get("/api/live/series", params={"session_id": "live-o"}).json()
    outages = data["outages"]
    assert [(o["role"], o["worker_index"], o["service"]) for o in outages] == [
        ("learner", None, "redis"),
        ("actor", 1, "kafka"),
        ("actor", 0, "redis"),
        ("indexer", None, "elasticsearch"),  # the indexer's own waits show in every session
        ("indexer", None, "kafka"),
    ]
    assert outages[0]["start_ms"] == pytest.approx(down * 1000) and outages[0]["end_ms"] == pytest.approx(
        up * 1000
    )
    assert outages[0]["duration_s"] == pytest.approx(14.0) and outages[0]["recovered"] is True
    # A range that only overlaps the outage (it was recorded after the range's end) still shows it.
    window = {"start_ms": int((down + 5) * 1000), "end_ms": int((down + 10) * 1000)}
    inside = client.get("/api/live/series", params={"session_id": "live-o", **window}).json()
    assert {o["role"] for o in inside["outages"]} == {"learner", "actor"}
    before = {"start_ms": int(start * 1000), "end_ms": int((down - 1) * 1000)}
    assert client.get("/api/live/series", params={"session_id": "live-o", **before}).json()["outages"] == []
    # The indexer is no session of its own (its last outage was recorded seconds ago).
    sessions = client.get("/api/live/sessions").json()
    assert "indexer" not in {s["session_id"] for s in sessions["running"]}


def test_live_sessions_merge_archive_and_telemetry(
    client: TestClient, es_url: str, es_prefix: str, mongo_uri: str, mongo_db: str
) -> None:
    seed_events(es_url, es_prefix, training_events("from-telemetry", time.time() - 30, seconds=20))
    seed_sessions(mongo_uri, mongo_db, [session_document("from-archive", status="running")])
    sign_in(client, VIEWER)
    data = client.get("/api/live/sessions").json()
    running = {s["session_id"]: s for s in data["running"]}
    assert running["from-telemetry"]["sources"] == ["telemetry"] and running["from-telemetry"]["actors"] == 2
    assert (
        running["from-archive"]["sources"] == ["archive"]
        and running["from-archive"]["env_id"] == "CartPole-v1"
    )
    assert data["down"] == {}
    status = client.get("/api/status").json()
    assert status["services"]["elasticsearch"]["up"] and status["services"]["mongodb"]["up"]
    assert status["latest_session"]["session_id"] == "from-archive"
    assert status["device"]["kind"] in ("cpu", "cuda") and status["device"]["name"]


# -- sessions table (MongoDB) -----------------------------------------------------------------------


@pytest.fixture
def archive(mongo_uri: str, mongo_db: str) -> list[dict[str, Any]]:
    now = dt.datetime.now(dt.UTC)
    documents = [
        session_document(
            "s-low-lr", lr=1e-4, best_return=120.0, tags=["sweep"], started_at=now - dt.timedelta(days=3)
        ),
        session_document(
            "s-mid-lr", lr=5e-4, best_return=300.0, tags=["sweep"], started_at=now - dt.timedelta(days=2)
        ),
        session_document(
            "s-high-lr", lr=1e-2, best_return=40.0, status="crashed", started_at=now - dt.timedelta(days=1)
        ),
        session_document(
            "s-pong", env_id="ALE/Pong-v5", lr=1e-4, best_return=-5.0, actors=8, status="stopped"
        ),
    ]
    seed_sessions(mongo_uri, mongo_db, documents)
    return documents


def ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [r["session_id"] for r in response.json()["rows"]]


def test_sessions_table_filters_and_sorts(client: TestClient, archive: list[dict[str, Any]]) -> None:
    sign_in(client, VIEWER)
    everything = client.get("/api/sessions").json()
    assert everything["total"] == 4 and everything["matched"] == 4
    assert [r["session_id"] for r in everything["rows"]] == ["s-pong", "s-high-lr", "s-mid-lr", "s-low-lr"]
    facets = everything["facets"]
    assert facets["env_ids"] == ["ALE/Pong-v5", "CartPole-v1"] and facets["tags"] == ["sweep"]
    assert "agent.lr" in facets["hyperparameters"] and "best_return" in facets["results"]
    row = everything["rows"][0]
    assert row["config"]["agent.lr"] == 1e-4 and row["results"]["best_return"] == -5.0 and row["actors"] == 8
    assert ids(client.get("/api/sessions", params={"env_id": "ALE/Pong-v5"})) == ["s-pong"]
    assert ids(client.get("/api/sessions", params={"status": "crashed"})) == ["s-high-lr"]
    assert ids(client.get("/api/sessions", params={"tag": "sweep", "order": "asc"})) == [
        "s-low-lr",
        "s-mid-lr",
    ]
    two_days_ago = (dt.datetime.now(dt.UTC) - dt.timedelta(days=2, hours=12)).strftime("%Y-%m-%dT%H:%M")
    assert set(ids(client.get("/api/sessions", params={"started_after": two_days_ago}))) == {
        "s-mid-lr",
        "s-high-lr",
        "s-pong",
    }
    assert ids(
        client.get("/api/sessions", params={"hp": "agent.lr:0.0002:0.02", "sort": "config.agent.lr"})
    ) == [
        "s-high-lr",
        "s-mid-lr",
    ]
    assert ids(
        client.get("/api/sessions", params={"result": "best_return:100:", "sort": "results.best_return"})
    ) == [
        "s-mid-lr",
        "s-low-lr",
    ]
    assert ids(client.get("/api/sessions", params={"hp": "actors::4", "result": "best_return::200"})) == [
        "s-high-lr",
        "s-low-lr",
    ]
    assert ids(client.get("/api/sessions", params={"q": "pong"})) == ["s-pong"]


def test_sessions_table_refuses_bad_filters_naming_them(
    client: TestClient, archive: list[dict[str, Any]]
) -> None:
    sign_in(client, VIEWER)
    for params, field in [
        ({"hp": "agent.lr:fast:"}, "hp"),
        ({"hp": "agent.lr:1:0"}, "hp"),
        ({"result": "best_return"}, "result"),
        ({"started_after": "yesterday"}, "started_after"),
        ({"order": "sideways"}, "order"),
    ]:
        response = client.get("/api/sessions", params=params)
        assert response.status_code == 422, params
        assert response.json()["detail"][0]["field"] == field


def test_session_detail_curves_and_diff(client: TestClient, archive: list[dict[str, Any]]) -> None:
    sign_in(client, VIEWER)
    detail = client.get("/api/sessions/s-mid-lr").json()
    assert detail["session_id"] == "s-mid-lr" and detail["config"]["agent"]["lr"] == 5e-4
    assert client.get("/api/sessions/missing").status_code == 404
    curves = client.get(
        "/api/compare/curves", params={"session_id": ["s-low-lr", "s-pong", "missing"]}
    ).json()
    assert curves["x"] == "env_steps"
    assert (
        curves["curves"]["s-low-lr"] == [[0, 10.0], [1000, 50.0], [2000, 120.0]]
        and curves["curves"]["missing"] == []
    )
    diff = client.get("/api/compare/diff", params={"a": "s-low-lr", "b": "s-pong"}).json()
    differs = {r["key"]: (r["a"], r["b"]) for r in diff["rows"] if r["differs"]}
    assert differs == {
        "env_id": ("CartPole-v1", "ALE/Pong-v5"),
        "actors": (2, 8),
        "session_id": ("s-low-lr", "s-pong"),
    }
    assert any(r["key"] == "agent.gamma" and not r["differs"] for r in diff["rows"])
    assert client.get("/api/compare/diff", params={"a": "s-low-lr", "b": "missing"}).status_code == 404


# -- recorded episodes ------------------------------------------------------------------------------


def test_videos_are_listed_and_served_without_path_traversal(
    make_client: Any, es_url: str, es_prefix: str, mongo_uri: str, mongo_db: str, dashboard_home: Path
) -> None:
    runs = dashboard_home / "runs"
    (runs / "s-video" / "videos").mkdir(parents=True)
    (runs / "s-video" / "videos" / "episode-0.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100)
    (runs / "s-video" / "secret.txt").write_text("not a video")
    (dashboard_home / "users.json").touch()
    client = make_client(es_url, es_prefix, mongo_uri, mongo_db)
    sign_in(client, VIEWER)
    listing = client.get("/api/videos").json()
    session = next(s for s in listing["sessions"] if s["session_id"] == "s-video")
    assert [v["name"] for v in session["videos"]] == ["videos/episode-0.mp4"]
    video = client.get(session["videos"][0]["url"])
    assert (
        video.status_code == 200
        and video.headers["content-type"] == "video/mp4"
        and len(video.content) == 112
    )
    partial = client.get(session["videos"][0]["url"], headers={"Range": "bytes=0-9"})
    assert partial.status_code == 206 and len(partial.content) == 10  # seeking in the player works
    for path in [
        "/media/s-video/secret.txt",
        "/media/s-video/../../users.json",
        "/media/..%2F..%2Fusers.json/x.mp4",
    ]:
        assert client.get(path).status_code == 404, path


def test_launch_arguments_mean_the_same_to_hiverl_train() -> None:
    """What the form validated is exactly what `hiverl train` resolves from the dashboard's argv
    (its `--set` values go through `parse_assignments` and `load_config`, as in game/cli.py)."""
    from dashboard import training_form
    from hiverl.config import load_config, parse_assignments

    answers = {
        "env_id": "Acrobot-v1",
        "actors": "3",
        "actor.envs": "2",
        "agent.lr": "0.00025",
        "exploration.schedule": "ladder",
    }
    settings, args = training_form.validate(answers)
    assert args[::2] == ["--set"] * (len(args) // 2)
    resolved = load_config(None, parse_assignments(args[1::2])).to_json_dict()
    assert resolved == settings
    assert (
        resolved["agent"]["lr"] == 0.00025
        and resolved["actors"] == 3
        and resolved["env_id"] == "Acrobot-v1"
        and resolved["actor"]["envs"] == 2
    )


def test_real_hiverl_train_started_and_stopped_from_the_dashboard(
    make_client: Any, es_url: str, es_prefix: str, mongo_uri: str, mongo_db: str, tmp_path: Path,
    redis_url: str, redis_prefix: str,
) -> None:  # fmt: skip
    """The real `hiverl train`: it runs, and Stop (SIGINT) ends it as "stopped" with checkpoints saved."""
    import json

    from dashboard.training import TrainingLauncher

    launcher = TrainingLauncher(
        tmp_path / "runs",
        env={
            "REDIS_URL": redis_url,
            "CONFIG_RUN_DIR": str(tmp_path / "runs"),
            "CONFIG_MODEL_DIR": str(tmp_path / "models"),
            "CONFIG_MEMORY__KEY_PREFIX": redis_prefix,
        },
    )
    client = make_client(es_url, es_prefix, mongo_uri, mongo_db, launcher=launcher)
    csrf = sign_in(client, ADMIN)
    answers = {"actors": 1, "total_steps": 1_000_000, "learner.min_size": 100, "memory.capacity": 5000}
    started = client.post("/api/train/start", json=answers, headers={"X-CSRF-Token": csrf})
    assert started.status_code == 201, started.text
    session_id = started.json()["session_id"]
    events = tmp_path / "runs" / session_id / "events.jsonl"
    try:  # wait until the actor plays (stopping during its start-up would test something else)
        wait_for(lambda: events.exists() and '"episode"' in events.read_text(), 180, "the first episode")
    finally:
        stopped = client.post(f"/api/train/{session_id}/stop", headers={"X-CSRF-Token": csrf})
    assert stopped.status_code == 202
    final = wait_for(
        lambda: [s for s in client.get("/api/train/launched").json()["sessions"] if not s["running"]],
        120,
        "exit",
    )
    assert final[0]["exit_code"] == 0, final[0]["log_tail"]
    session = json.loads((tmp_path / "runs" / session_id / "session.json").read_text())
    assert session["status"] == "stopped"
    assert (tmp_path / "models" / session_id / "learner.pt").exists()  # the checkpoint saved on the way out
