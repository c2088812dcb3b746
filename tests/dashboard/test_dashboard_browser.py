"""End to end in a real headless Chromium: sign in, watch a live session gain points, filter the
sessions table and see the charts follow, start and stop a session from the form, play a video.

Screenshots of every page go to ``artifacts/screenshots/`` (git-ignored) for a human to look at.
"""

from __future__ import annotations

import datetime as dt
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from dashboard_helpers import (
    ADMIN,
    DEAD_URL,
    VIEWER,
    fake_launcher,
    make_endpoints,
    make_settings,
    seed_events,
    seed_sessions,
    session_document,
    training_events,
)

from dashboard.app import create_app

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def serve(dashboard_home: Path, tmp_path: Path, es_prefix: str, mongo_db: str) -> Iterator[Any]:
    """``serve(es_url, mongo_uri) -> base URL``: the dashboard served by uvicorn on a free port,
    as `hiverl dashboard` serves it."""
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(es_url: str, mongo_uri: str) -> str:
        app = create_app(
            make_settings(dashboard_home, es_prefix, mongo_db),
            make_endpoints(es_url, mongo_uri),
            launcher=fake_launcher(tmp_path),
        )
        port = free_port()
        uv = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
        )
        thread = threading.Thread(target=uv.run, name="dashboard-server", daemon=True)
        thread.start()
        servers.append((uv, thread))
        deadline = time.monotonic() + 30
        while not uv.started:
            assert time.monotonic() < deadline, "dashboard server did not start"
            time.sleep(0.05)
        return f"http://127.0.0.1:{port}"

    yield start
    for uv, thread in servers:
        uv.should_exit = True
        thread.join(timeout=30)


@pytest.fixture
def server(serve: Any, es_url: str, mongo_uri: str) -> str:
    base: str = serve(es_url, mongo_uri)
    return base


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: install Debian's chromium (scripts/setup.sh)"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Publisher(threading.Thread):
    """A running session's telemetry: one second of events indexed every 0.5 s."""

    def __init__(self, es_url: str, prefix: str, session_id: str) -> None:
        super().__init__(name="event-publisher", daemon=True)
        self.es_url, self.prefix, self.session_id = es_url, prefix, session_id
        self.stop_event = threading.Event()
        self.step = 110  # continues the 110 s of history seeded before

    def run(self) -> None:
        while not self.stop_event.is_set():
            events = training_events(self.session_id, time.time(), seconds=1, workers=2, first_step=self.step)
            seed_events(self.es_url, self.prefix, events)
            self.step += 1
            self.stop_event.wait(0.5)


def shot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def sign_in(page: Any, base: str, user: tuple[str, str], next_path: str = "/live") -> None:
    page.goto(f"{base}{next_path}")
    assert "/login" in page.url  # anonymous: sent to the sign-in page
    page.fill("input[name=username]", user[0])
    page.fill("input[name=password]", user[1])
    page.click("#sign-in")
    page.wait_for_url(f"{base}{next_path}*")


def chart_points(page: Any, canvas_id: str) -> int:
    return int(page.get_attribute(f"#{canvas_id}", "data-points") or 0)


def test_dashboard_in_a_real_browser(
    server: str,
    browser: Any,
    es_url: str,
    es_prefix: str,
    mongo_uri: str,
    mongo_db: str,
    dashboard_home: Path,
) -> None:
    # -- seed: archived sessions (two envs) and a running session publishing telemetry ----------
    started = [dt.datetime.now(dt.UTC) - dt.timedelta(hours=h) for h in range(6)]  # distinct: stable order
    seed_sessions(
        mongo_uri,
        mongo_db,
        [
            session_document("cart-lr1e-4", lr=1e-4, best_return=150.0, tags=["sweep"],
                             curve=((0, 9), (5000, 80)), started_at=started[5]),
            session_document("cart-lr5e-4", lr=5e-4, best_return=480.0, tags=["sweep"],
                             curve=((0, 12), (5000, 300)), started_at=started[4]),
            session_document("cart-lr1e-2", lr=1e-2, best_return=60.0, status="crashed",
                             curve=((0, 8), (5000, 20)), started_at=started[3]),
            session_document("pong-base", env_id="ALE/Pong-v5", lr=1e-4, best_return=-3.0, workers=8,
                             started_at=started[2]),
            session_document("e2e-live", status="running", started_at=started[0]),
        ],
    )  # fmt: skip
    seed_events(es_url, es_prefix, training_events("e2e-live", time.time() - 120, seconds=110, workers=2))
    video_dir = dashboard_home / "runs" / "cart-lr5e-4" / "videos"
    video_dir.mkdir(parents=True)
    make_video(video_dir / "episode-0.mp4")
    publisher = Publisher(es_url, es_prefix, "e2e-live")
    publisher.start()
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    # HTTP errors the test provokes (422 for the invalid form) are logged as "Failed to load
    # resource"; anything else (a script exception, a CSP violation) is a defect.
    page.on(
        "console",
        lambda m: (
            errors.append(m.text) if m.type == "error" and "Failed to load resource" not in m.text else None
        ),
    )
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        # -- sign in, then the live view gains points ---------------------------------------------
        page.goto(f"{server}/login")
        shot(page, "01-login")
        sign_in(page, server, ADMIN, "/live?session=e2e-live")
        page.wait_for_function("() => Number(document.querySelector('#live-info').dataset.events || 0) > 0")
        page.wait_for_function(
            "() => [...document.querySelectorAll('.pill')].some(p => p.dataset.service === 'elasticsearch')"
        )
        first_events = int(page.get_attribute("#live-info", "data-events"))
        first_points = chart_points(page, "chart-return")
        assert first_points > 0 and chart_points(page, "chart-memory") > 0
        page.wait_for_function(
            f"() => Number(document.querySelector('#live-info').dataset.events) > {first_events}",
            timeout=20_000,
        )
        assert int(page.get_attribute("#live-info", "data-events")) > first_events
        assert chart_points(page, "chart-loss") > 0 and chart_points(page, "chart-steps") > 0
        assert "e2e-live" in page.inner_text("#running-list")
        shot(page, "02-live")

        # -- sessions table: filter, and the charts follow -----------------------------------------
        page.goto(f"{server}/sessions")
        page.wait_for_function("() => document.querySelector('#sessions-count').dataset.matched === '5'")
        page.wait_for_function("() => Number(document.querySelector('#chart-scatter').dataset.points) === 5")
        page.wait_for_function("() => Number(document.querySelector('#chart-curves').dataset.points) > 0")
        shot(page, "03-sessions")
        all_curve_points = chart_points(page, "chart-curves")
        page.select_option("select[name=tag]", "sweep")
        page.wait_for_function("() => document.querySelector('#sessions-count').dataset.matched === '2'")
        page.wait_for_function("() => Number(document.querySelector('#chart-scatter').dataset.points) === 2")
        page.wait_for_function(
            f"() => Number(document.querySelector('#chart-curves').dataset.points) !== {all_curve_points}"
        )
        assert chart_points(page, "chart-curves") == 4  # two sessions with two points each
        rows = page.locator("#sessions-table tbody tr")
        assert sorted(rows.nth(i).get_attribute("data-session-id") for i in range(rows.count())) == [
            "cart-lr1e-4",
            "cart-lr5e-4",
        ]
        page.wait_for_function("() => document.querySelectorAll('#diff-table tbody tr').length > 0")
        assert "agent.lr" in page.inner_text("#diff-table")
        page.select_option("select[name=hp_name]", "agent.lr")
        page.fill("input[name=hp_min]", "0.0003")
        page.wait_for_function("() => document.querySelector('#sessions-count').dataset.matched === '1'")
        shot(page, "04-sessions-filtered")

        # -- start and stop a session from the form -----------------------------------------------
        page.goto(f"{server}/train")
        page.fill("input[name=workers]", "0")
        page.click("#start-training")
        page.wait_for_selector(".field.invalid[data-field=workers]")
        assert "greater than or equal to 1" in page.inner_text(".field[data-field=workers] .field-error")
        shot(page, "05-train-invalid")
        page.fill("input[name=workers]", "2")
        page.fill("input[name='agent.lr']", "0.001")
        page.click("#start-training")
        page.wait_for_selector("#started-link")
        session_id = page.inner_text("#started-link")
        row = page.locator(f"#launched-table tr[data-session-id='{session_id}']")
        row.wait_for()
        assert "running" in row.inner_text()
        shot(page, "06-train-running")
        row.locator("button.stop").click()
        page.wait_for_function(
            f"() => document.querySelector(\"#launched-table tr[data-session-id='{session_id}']\")"
            ".innerText.includes('exited (0)')"
        )
        shot(page, "07-train-stopped")

        # -- watch a recorded episode ---------------------------------------------------------------
        page.goto(f"{server}/watch")
        page.wait_for_function("() => document.querySelector('#player').src.includes('/media/cart-lr5e-4/')")
        page.wait_for_function("() => document.querySelector('#player').readyState >= 2", timeout=15_000)
        shot(page, "08-watch")
        assert not errors, errors

        # -- a viewer sees the form disabled --------------------------------------------------------
        viewer_page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
        sign_in(viewer_page, server, VIEWER, "/train")
        viewer_page.wait_for_selector(".pill[data-service=mongodb]")
        assert viewer_page.is_disabled("#start-training")
        assert "only admins" in viewer_page.inner_text("#viewer-note")
        shot(viewer_page, "09-train-viewer")
    finally:
        publisher.stop_event.set()
        publisher.join(timeout=10)
        context.close()


def make_video(path: Path) -> None:
    """A 1 s H.264 clip of a moving bar (what `hiverl evaluate --video` writes is an mp4 too)."""
    import imageio.v2 as imageio
    import numpy as np

    writer: Any
    with imageio.get_writer(path, fps=20, codec="libx264", macro_block_size=1) as writer:
        for i in range(20):
            frame = np.full((120, 160, 3), 240, dtype=np.uint8)
            frame[50:70, i * 7 : i * 7 + 20] = (37, 99, 235)
            writer.append_data(frame)


def test_browser_says_what_is_down(serve: Any, browser: Any) -> None:
    base = serve(DEAD_URL, "mongodb://127.0.0.1:9/")
    page = browser.new_context(viewport={"width": 1400, "height": 800}).new_page()
    sign_in(page, base, VIEWER, "/sessions")
    page.wait_for_function("() => document.querySelector('#sessions-count').textContent.includes('MongoDB')")
    page.wait_for_selector(".pill.down[data-service=elasticsearch]")
    notice = page.inner_text("#notice")
    assert "elasticsearch" in notice and "mongodb" in notice
    shot(page, "10-sessions-archive-down")
    page.goto(f"{base}/live?session=anything")
    page.wait_for_function(
        "() => document.querySelector('#live-info').textContent.includes('Elasticsearch is down')"
    )
    shot(page, "11-live-elasticsearch-down")
