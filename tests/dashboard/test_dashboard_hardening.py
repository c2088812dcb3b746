"""Hostile input against the real app (real Elasticsearch, MongoDB and Redis): refused with a 4xx
naming the field, with the security headers, and no training process started; sign-in throttling
under parallel guesses and spraying; session lifetimes; launch limits; stopping any running hive."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from dashboard_helpers import (
    ADMIN,
    VIEWER,
    assert_refused,
    nothing_started,
    sign_in,
    wait_for,
)
from fastapi.testclient import TestClient

from dashboard.security import LoginRateLimiter, SessionTable

REPO = Path(__file__).resolve().parents[2]


# -- environment ids --------------------------------------------------------------------------------


def test_env_ids_must_be_registered_and_short(make_app: Any, tmp_path: Path) -> None:
    client = make_app()
    csrf = sign_in(client, ADMIN)
    hostile = ("os:system", "gymnasium.envs.classic_control:CartPoleEnv", "x" * 300, "Nope-v0", "../../x")
    for env_id in hostile:
        response = client.post("/api/train/start", json={"env_id": env_id}, headers={"X-CSRF-Token": csrf})
        body = assert_refused(response, "env_id")
        assert [e["field"] for e in response.json()["detail"]] == ["env_id"], body
        assert "File name too long" not in body
    long_id = client.post("/api/train/start", json={"env_id": "x" * 300}, headers={"X-CSRF-Token": csrf})
    assert "at most 100" in long_id.json()["detail"][0]["message"]
    module = client.post("/api/train/start", json={"env_id": "os:system"}, headers={"X-CSRF-Token": csrf})
    assert "module:Name" in module.json()["detail"][0]["message"]
    assert nothing_started(client, tmp_path)


def test_the_cli_settings_refuse_the_same_env_ids() -> None:
    from hiverl.config import ConfigError, load_config

    assert load_config(None, {"env_id": "Acrobot-v1"}).env_id == "Acrobot-v1"
    assert load_config(None, {"env_id": "ALE/Pong-v5"}).env_id == "ALE/Pong-v5"
    for env_id in ("os:system", "y" * 101, "NotAnEnv-v0"):
        with pytest.raises(ConfigError, match="env_id"):
            load_config(None, {"env_id": env_id})


# -- sign-in throttling -----------------------------------------------------------------------------


def _login_token(client: TestClient) -> str:
    page = client.get("/login")
    return page.text.split('name="csrf_token" value="')[1].split('"')[0]


def test_parallel_wrong_passwords_get_at_most_the_limit_of_401s(
    make_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dashboard.users import UserStore

    authenticate = UserStore.authenticate

    def slow(self: UserStore, name: str, password: str) -> Any:
        time.sleep(0.3)  # the production hash's cost: every guess is in flight at once
        return authenticate(self, name, password)

    monkeypatch.setattr(UserStore, "authenticate", slow)
    client = make_app(limiter=LoginRateLimiter(free_failures=3, base_lockout_s=60))
    app = client.app
    barrier = threading.Barrier(10)
    codes: list[int] = []

    def guess() -> None:
        own = TestClient(app, base_url="http://127.0.0.1", follow_redirects=False)  # own cookies
        token = _login_token(own)
        barrier.wait()
        data = {"username": "ada", "password": "wrong-guess", "csrf_token": token}
        codes.append(own.post("/login", data=data).status_code)

    threads = [threading.Thread(target=guess) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(codes) == [401] * 3 + [429] * 7, codes


def test_spraying_names_from_one_address_is_throttled(make_app: Any) -> None:
    limiter = LoginRateLimiter(free_failures=3, base_lockout_s=60, address_failures=5, user_failures=5)
    client = make_app(limiter=limiter)

    def attempt(user: str, password: str, forwarded: str | None = None) -> int:
        client.cookies.clear()
        token = _login_token(client)
        headers = {"X-Forwarded-For": forwarded} if forwarded else {}
        data = {"username": user, "password": password, "csrf_token": token}
        return client.post("/login", data=data, headers=headers).status_code

    assert [attempt(f"user{i}", "wrong-guess") for i in range(5)] == [401] * 5
    assert attempt("user99", "wrong-guess") == 429
    assert attempt(ADMIN[0], ADMIN[1]) == 429  # the whole address waits, right password or not
    # X-Forwarded-For is client-written text: without a trusted proxy it changes nothing
    assert attempt(VIEWER[0], VIEWER[1], forwarded="10.9.9.9") == 429


def test_forwarded_for_is_honoured_only_behind_a_trusted_proxy(make_app: Any) -> None:
    limiter = LoginRateLimiter(free_failures=2, base_lockout_s=60, address_failures=4, user_failures=6)
    client = make_app(limiter=limiter, trusted_proxy_hops=1)

    def attempt(user: str, password: str, forwarded: str) -> int:
        client.cookies.clear()  # signed out: the sign-in form again
        token = _login_token(client)
        data = {"username": user, "password": password, "csrf_token": token}
        return client.post("/login", data=data, headers={"X-Forwarded-For": forwarded}).status_code

    # one client behind the proxy locks out only itself, not every user of the proxy
    assert [attempt("ada", "wrong-guess", "10.0.0.1") for _ in range(2)] == [401, 401]
    assert attempt(ADMIN[0], ADMIN[1], "10.0.0.1") == 429
    assert attempt(ADMIN[0], ADMIN[1], "10.0.0.2") == 303
    # the proxy appends the peer: a client-written entry on the left is not the address
    assert attempt("vic", "wrong-guess", "10.0.0.1, 10.0.0.3") == 401
    # one name guessed from many addresses: throttled across addresses
    codes = [attempt("vic", "wrong-guess", f"10.1.0.{i}") for i in range(8)]
    assert codes[:5] == [401] * 5 and set(codes[5:]) == {429}, codes


# -- numbers and paths ------------------------------------------------------------------------------


def test_non_finite_and_huge_numbers_are_4xx_naming_the_field(make_app: Any) -> None:
    client = make_app()
    sign_in(client, VIEWER)
    for field in ("start_ms", "end_ms"):
        for value in ("nan", "inf", "-inf", "1e308", "-1"):
            response = client.get("/api/live/series", params={"session_id": "s", field: value})
            assert_refused(response, field)
    assert_refused(client.get("/api/live/series", params={"session_id": "s", "last_s": "nan"}), "last_s")
    for value in ("nan", "inf", "1e308"):
        response = client.get("/api/sessions", params={"started_after": value})
        assert_refused(response, "started_after")
    assert_refused(client.get("/api/sessions", params={"hp": "agent.lr:nan:"}), "hp")


def test_media_paths_with_nul_or_overlong_names_are_4xx(make_app: Any) -> None:
    client = make_app()
    sign_in(client, VIEWER)
    assert_refused(client.get("/media/s/episode%00.mp4"), "relative")
    assert_refused(client.get("/media/s%00x/episode.mp4"), "session_id")
    overlong = client.get("/media/s/" + "a" * 300 + ".mp4")  # one name longer than the file system allows
    assert overlong.status_code == 404 and "content-security-policy" in overlong.headers


# -- launch limits ----------------------------------------------------------------------------------


def test_launch_limits_are_named_in_the_refusal(make_app: Any, tmp_path: Path) -> None:
    client = make_app(max_total_steps=1_000_000, max_actors=4, max_envs_per_actor=16, max_concurrent_runs=1)
    csrf = sign_in(client, ADMIN)
    headers = {"X-CSRF-Token": csrf}
    huge = client.post("/api/train/start", json={"total_steps": 10**11}, headers=headers)
    assert "max_total_steps=1000000" in assert_refused(huge, "total_steps")
    wide = client.post("/api/train/start", json={"actors": 256, "actor.envs": 256}, headers=headers)
    errors = {e["field"]: e["message"] for e in wide.json()["detail"]}
    assert wide.status_code == 422 and set(errors) == {"actors", "actor.envs"}
    assert "max_actors=4" in errors["actors"] and "max_envs_per_actor=16" in errors["actor.envs"]
    assert nothing_started(client, tmp_path)
    first = client.post("/api/train/start", json={"total_steps": 5000}, headers=headers)
    assert first.status_code == 201, first.text
    second = client.post("/api/train/start", json={"total_steps": 5000}, headers=headers)
    assert second.status_code == 429 and "max_concurrent_runs=1" in second.json()["detail"]
    assert len(client.get("/api/train/launched").json()["sessions"]) == 1
    stopped = client.post(f"/api/train/{first.json()['session_id']}/stop", headers=headers)
    assert stopped.status_code == 202
    wait_for(lambda: not any(s["running"] for s in client.get("/api/train/launched").json()["sessions"]))
    third = client.post("/api/train/start", json={"total_steps": 5000}, headers=headers)
    assert third.status_code == 201, third.text


# -- sessions ---------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_sessions_end_at_their_absolute_lifetime_and_background_polls_are_no_activity() -> None:
    clock = Clock()
    table = SessionTable(idle_s=60.0, clock=clock, max_age_s=100.0)
    token, session = table.create("ada", 1.0)
    for _ in range(3):
        clock.now += 30.0
        assert table.get(token) is session  # active...
    clock.now += 30.0
    assert session.created_at == 1000.0 and table.get(token) is None  # ...but 120 s old
    token, session = table.create("ada", 1.0)
    clock.now += 40.0
    assert table.get(token, touch=False) is session
    clock.now += 40.0
    assert table.get(token, touch=False) is None  # 80 s without activity


def _signed_in_for(client: TestClient, poll: Any, limit_s: float) -> float:
    """Seconds from now until ``poll()`` gets a 401 (polling every 0.2 s), at most ``limit_s``."""
    start = time.monotonic()
    while time.monotonic() - start < limit_s:
        if poll().status_code == 401:
            break
        time.sleep(0.2)
    return time.monotonic() - start


def test_idle_tab_signs_out_and_pages_are_not_cached(make_app: Any) -> None:
    client = make_app(session_idle_s=2.0)
    sign_in(client, VIEWER)
    page = client.get("/live")
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    # the status bar's timer and the charts' background polls keep polling: not activity
    background = {"X-Hiverl-Background": "1"}
    status_polls = _signed_in_for(client, lambda: client.get("/api/status"), 6.0)
    assert 1.5 < status_polls < 4.0, status_polls
    assert client.get("/api/me").status_code == 401
    sign_in(client, VIEWER)
    chart_polls = _signed_in_for(client, lambda: client.get("/api/me", headers=background), 6.0)
    assert 1.5 < chart_polls < 4.0, chart_polls
    sign_in(client, VIEWER)  # a user's requests do keep the session
    assert _signed_in_for(client, lambda: client.get("/api/me"), 3.0) >= 3.0


def test_active_sessions_end_at_the_absolute_lifetime(make_app: Any) -> None:
    client = make_app(session_max_age_s=2.0)
    sign_in(client, VIEWER)
    active = _signed_in_for(client, lambda: client.get("/api/me"), 6.0)  # active all along
    assert 1.5 < active < 4.0, active
    assert client.get("/live").status_code == 303


# -- stopping any running session -------------------------------------------------------------------


def test_live_page_offers_stop_to_admins_only(make_app: Any) -> None:
    admin = make_app()
    sign_in(admin, ADMIN)
    assert 'id="live-stop"' in admin.get("/live").text
    viewer = make_app()
    sign_in(viewer, VIEWER)
    assert 'id="live-stop"' not in viewer.get("/live").text


def test_unknown_session_is_404_and_viewers_cannot_stop(make_app: Any, redis_url: str) -> None:
    client = make_app(redis_url=redis_url)
    csrf = sign_in(client, ADMIN)
    missing = client.post("/api/train/nobody-runs-this/stop", headers={"X-CSRF-Token": csrf})
    assert missing.status_code == 404 and "not running" in missing.json()["detail"]
    for bad in ("...", "a%20b", "x" * 65):
        assert_refused(client.post(f"/api/train/{bad}/stop", headers={"X-CSRF-Token": csrf}), "session_id")
    viewer = make_app(redis_url=redis_url)
    viewer_csrf = sign_in(viewer, VIEWER)
    assert viewer.post("/api/train/x/stop", headers={"X-CSRF-Token": viewer_csrf}).status_code == 403


def test_a_cli_run_is_stopped_from_the_dashboard(
    make_app: Any, dashboard_home: Path, tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    """`hiverl train` started in a terminal (not by the dashboard) stops through the hive's board."""
    session_id = f"cli-stop-{os.getpid()}-{int(time.time())}"
    runs = dashboard_home / "runs"  # a folder the dashboard reads (its runs_dir)
    command = [
        sys.executable, "-m", "hiverl.cli", "train", "--no-live",
        "--env", "CartPole-v1", "--actors", "1", "--steps", "1000000", "--session", session_id,
        "--set", f"memory.key_prefix={redis_prefix}",
        "--set", f"run_dir={runs}",
        "--set", f"model_dir={tmp_path / 'models'}",
        "--set", "stats_interval_s=0.5",
        "--set", "learner.min_size=100",
        "--set", "memory.capacity=5000",
        "--set", "agent.hidden_sizes=[32]",
        "--set", "device=cpu",
        "--set", "torch_threads=1",
    ]  # fmt: skip
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "REDIS_URL": redis_url,
        "HIVERL_TRAIN_MONITOR": "0",
        "HIVERL_TRAIN_INDEX": "0",
    }
    env.pop("COLUMNS", None)
    log = tmp_path / "train.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
    try:
        client = make_app(redis_url=redis_url)
        csrf = sign_in(client, ADMIN)
        events = runs / session_id / "events.jsonl"
        wait_for(  # the actor plays: stopping during start-up would test something else
            lambda: process.poll() is not None or (events.exists() and '"episode"' in events.read_text()),
            240,
            "the first episode",
        )
        assert process.poll() is None, log.read_text()
        stopped = client.post(f"/api/train/{session_id}/stop", headers={"X-CSRF-Token": csrf})
        assert stopped.status_code == 202, stopped.text
        assert stopped.json()["stop_requested"] is True
        assert process.wait(timeout=180) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    session = json.loads((runs / session_id / "session.json").read_text())
    assert session["status"] == "stopped", log.read_text()
    assert (tmp_path / "models" / session_id / "learner.pt").exists()  # checkpoint saved on the way out
    again = client.post(f"/api/train/{session_id}/stop", headers={"X-CSRF-Token": csrf})
    assert again.status_code == 202 and again.json()["already_requested"] is True
