"""End to end in a real headless Chromium: sign in, filter the sessions table and see the charts
follow, start a real short hive from the form (`hiverl train`, its events going through Kafka and
the real indexer into Elasticsearch), watch its live view gain points, stop it from the form
(exit 0, archived as stopped, checkpoint saved), play a video.

Screenshots of every page go to ``artifacts/screenshots/`` (git-ignored) for a human to look at.
"""

from __future__ import annotations

import contextlib
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
    real_launcher,
    seed_events,
    seed_sessions,
    session_document,
    skip_to_end,
    training_events,
    wait_for,
)

from dashboard.app import create_app
from dashboard.training import TrainingLauncher
from hiverl.telemetry.config import TelemetryConfig
from hiverl.telemetry.indexer import Indexer
from monitor.service import MemoryMonitor

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
    """``serve(es_url, mongo_uri, launcher=None, **endpoints) -> base URL``: the dashboard served by
    uvicorn on a free port, as `hiverl dashboard` serves it (a fake trainer unless ``launcher``)."""
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(es_url: str, mongo_uri: str, launcher: TrainingLauncher | None = None, **endpoints: str) -> str:
        app = create_app(
            make_settings(dashboard_home, es_prefix, mongo_db),
            make_endpoints(es_url, mongo_uri, **endpoints),
            launcher=launcher or fake_launcher(tmp_path),
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
        thread.join(timeout=60)  # the lifespan stops any training child still running


@pytest.fixture
def server(
    serve: Any,
    tmp_path: Path,
    redis_url: str,
    redis_prefix: str,
    kafka_bootstrap: str,
    es_url: str,
    mongo_uri: str,
    mongo_db: str,
) -> str:
    """The dashboard wired to every real service, starting the real `hiverl train`."""
    launcher = real_launcher(
        tmp_path,
        redis_url=redis_url,
        redis_prefix=redis_prefix,
        kafka=kafka_bootstrap,
        es_url=es_url,
        mongo_uri=mongo_uri,
        mongo_db=mongo_db,
    )
    base: str = serve(es_url, mongo_uri, launcher, redis_url=redis_url, kafka=kafka_bootstrap)
    return base


@pytest.fixture
def indexer(kafka_bootstrap: str, es_url: str, es_prefix: str) -> Iterator[Indexer]:
    """The real indexer (what `hiverl index` runs) in a thread: the shared telemetry topics into
    this test's indices, as a consumer group of its own that starts at the topics' current end."""
    from kafka import KafkaAdminClient

    from hiverl.events import MEMORY_MONITORING_TOPIC, TRAINING_LOG_TOPIC

    group_id = f"{es_prefix}indexer"
    config = TelemetryConfig(index_prefix=es_prefix)  # the test session's topic prefix (conftest)
    skip_to_end(
        kafka_bootstrap,
        group_id,
        [config.kafka_topic(TRAINING_LOG_TOPIC), config.kafka_topic(MEMORY_MONITORING_TOPIC)],
    )
    running = Indexer(kafka_bootstrap, es_url, config, group_id=group_id)
    thread = threading.Thread(target=running.run, name="indexer", daemon=True)
    thread.start()
    yield running
    running.stop()
    thread.join(timeout=30)
    running.close()
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, request_timeout_ms=15000)
    try:
        admin.delete_groups([group_id])  # the group is empty now: it goes
    finally:
        admin.close()


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: install Debian's chromium (scripts/setup.sh)"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@contextlib.contextmanager
def memory_monitor(
    redis_url: str, redis_prefix: str, kafka: str, session_id: str, spool_dir: Path
) -> Iterator[MemoryMonitor]:
    """The memory monitor (what `hiverl monitor` runs) of the hive ``session_id``, in a thread,
    publishing its memory statistics to Kafka every 0.5 s under the session's id."""
    from hiverl.events import MEMORY_MONITORING_TOPIC
    from hiverl.telemetry.kafka_sink import KafkaSink
    from monitor.service import MemorySource, MonitorSettings

    name = f"hive-{session_id}"  # the session's one memory (game.hive_memory.memory_config)
    sink = KafkaSink(
        kafka, TelemetryConfig(spool_dir=spool_dir), spool_name="monitor", topics=(MEMORY_MONITORING_TOPIC,)
    )
    source = MemorySource(redis_url, name, redis_prefix)
    settings = MonitorSettings(name, redis_prefix, interval_s=0.5, session_id=session_id, backoff_max_s=1.0)
    service = MemoryMonitor(source, sink, settings)
    stop = threading.Event()
    thread = threading.Thread(target=service.run, args=(stop,), name="memory-monitor", daemon=True)
    thread.start()
    try:
        yield service
    finally:
        stop.set()
        thread.join(timeout=30)
        source.reset()
        sink.close()


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
    indexer: Indexer,
    tmp_path: Path,
    redis_url: str,
    redis_prefix: str,
    kafka_bootstrap: str,
    mongo_uri: str,
    mongo_db: str,
    dashboard_home: Path,
) -> None:
    # -- seed: archived sessions of two envs, and a recorded episode -------------------------------
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
            session_document("pong-base", env_id="ALE/Pong-v5", lr=1e-4, best_return=-3.0, actors=8,
                             started_at=started[2]),
        ],
    )  # fmt: skip
    video_dir = dashboard_home / "runs" / "cart-lr5e-4" / "videos"
    video_dir.mkdir(parents=True)
    make_video(video_dir / "episode-0.mp4")
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
    with contextlib.ExitStack() as stack:
        stack.callback(context.close)
        # -- sign in ----------------------------------------------------------------------------------
        page.goto(f"{server}/login")
        shot(page, "01-login")
        sign_in(page, server, ADMIN, "/sessions")

        # -- sessions table: filter, and the charts follow -----------------------------------------
        page.wait_for_function("() => document.querySelector('#sessions-count').dataset.matched === '4'")
        page.wait_for_function("() => Number(document.querySelector('#chart-scatter').dataset.points) === 4")
        page.wait_for_function("() => Number(document.querySelector('#chart-curves').dataset.points) > 0")
        shot(page, "02-sessions")
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
        shot(page, "03-sessions-filtered")

        # -- start a real short hive from the form (`hiverl train`, published to Kafka) ------------
        page.goto(f"{server}/train")
        page.fill("input[name=actors]", "-1")
        page.click("#start-training")
        page.wait_for_selector(".field.invalid[data-field=actors]")
        assert "greater than or equal to 0" in page.inner_text(".field[data-field=actors] .field-error")
        shot(page, "04-train-invalid")
        page.fill("input[name=actors]", "1")
        page.fill("input[name=total_steps]", "1000000")  # runs until stopped
        page.fill("input[name='agent.lr']", "0.001")
        page.fill("input[name='learner.min_size']", "64")
        page.click("#start-training")
        page.wait_for_selector("#started-link")
        session_id = page.inner_text("#started-link")
        row = page.locator(f"#launched-table tr[data-session-id='{session_id}']")
        row.wait_for()
        assert "running" in row.inner_text()
        shot(page, "05-train-running")

        # -- its live view gains points (train and monitor -> Kafka -> indexer -> Elasticsearch) ----
        monitor = stack.enter_context(
            memory_monitor(redis_url, redis_prefix, kafka_bootstrap, session_id, tmp_path / "spool")
        )
        page.goto(f"{server}/live?session={session_id}")
        # Generous: a cold `hiverl train` (torch import, learner and actor start) on a busy 2-core machine.
        page.wait_for_function(
            "() => Number(document.querySelector('#live-info').dataset.events || 0) > 0", timeout=120_000
        )
        page.wait_for_function(
            "() => [...document.querySelectorAll('.pill')].some(p => p.dataset.service === 'elasticsearch')"
        )
        first_events = int(page.get_attribute("#live-info", "data-events"))
        first_points = chart_points(page, "chart-return")
        page.wait_for_function(
            f"() => Number(document.querySelector('#chart-return').dataset.points) > {first_points}"
            f" && Number(document.querySelector('#live-info').dataset.events) > {first_events}",
            timeout=60_000,
        )
        page.wait_for_function(  # the learner learns (loss), the actor reports its speed; the memory fills
            "() => ['chart-loss', 'chart-steps', 'chart-memory']"
            ".every(id => Number(document.querySelector('#' + id).dataset.points) > 0)",
            timeout=60_000,
        )
        page.wait_for_function(
            f"() => document.querySelector('#running-list').innerText.includes('{session_id}')"
        )
        shot(page, "06-live")
        assert indexer.stats.indexed > 0  # (the shared topics may carry other sessions too)
        assert monitor.polls > 0

        # -- stop it from the form: it exits cleanly, archived as stopped, with a checkpoint ----------
        page.goto(f"{server}/train")
        row = page.locator(f"#launched-table tr[data-session-id='{session_id}']")
        row.locator("button.stop").click()
        page.wait_for_function(
            f"() => document.querySelector(\"#launched-table tr[data-session-id='{session_id}']\")"
            ".innerText.includes('exited (0)')",
            timeout=120_000,
        )
        shot(page, "07-train-stopped")
        assert (tmp_path / "models" / session_id / "learner.pt").is_file()
        archived = wait_for(lambda: archived_status(mongo_uri, mongo_db, session_id) == "stopped",
                            timeout_s=30, what=f"{session_id} archived as stopped")  # fmt: skip
        assert archived

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


def archived_status(mongo_uri: str, mongo_db: str, session_id: str) -> str | None:
    """The archive's status of ``session_id`` (None while it is not archived)."""
    from pymongo import MongoClient

    client: MongoClient[dict[str, Any]] = MongoClient(mongo_uri, serverSelectionTimeoutMS=5000)
    with client:
        document = client[mongo_db]["sessions"].find_one({"session_id": session_id}, {"status": 1})
    return None if document is None else str(document["status"])


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


def test_the_live_page_shades_the_sessions_outages(
    serve: Any, browser: Any, es_url: str, es_prefix: str, mongo_uri: str
) -> None:
    """The live page draws each outage of the session as a band over every chart and lists it."""
    from hiverl.events import envelope
    from hiverl.outages import Outage

    start = time.time() - 300
    down, up = start + 100, start + 130
    outages = []
    for role, index in (("learner", None), ("actor", 0), ("actor", 1)):
        fields = Outage("redis", down + (index or 0), up - (index or 0), failures=8).fields()
        outages.append(envelope("outage", session_id="shaded", worker_index=index, role=role, **fields))
        outages[-1]["event_time"] = up + 6
    seed_events(es_url, es_prefix, [*training_events("shaded", start, seconds=250, actors=2), *outages])
    base = serve(es_url, mongo_uri)
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    sign_in(page, base, VIEWER, "/live?session=shaded")
    page.wait_for_function("() => document.querySelector('#live-outages').dataset.outages === '1'")
    listed = page.inner_text("#live-outages")
    assert "Redis unreachable" in listed and "(30.0 s)" in listed, listed
    assert "learner, actor 0, actor 1 waited" in listed, listed
    # The band is painted: down a column inside the outage the plot is red-tinted, outside it is not
    # (but where a series' line or dot crosses it).
    shares = page.evaluate(
        """([down, up]) => Object.fromEntries(['chart-return', 'chart-loss', 'chart-memory'].map((id) => {
             const chart = Chart.getChart(document.getElementById(id));
             const area = chart.chartArea;
             const reddish = (ms) => {
               const x = Math.round(chart.scales.x.getPixelForValue(ms) * devicePixelRatio);
               let red = 0;
               for (let i = 1; i <= 20; i++) {
                 const y = Math.round((area.top + (area.bottom - area.top) * i / 21) * devicePixelRatio);
                 const [r, g, b] = chart.ctx.getImageData(x, y, 1, 1).data;
                 if (r > g + 10 && r > b + 10) red++;
               }
               return red / 20;
             };
             return [id, { inside: reddish((down + up) / 2), outside: reddish(down - 40000) }];
           }))""",
        [down * 1000, up * 1000],
    )
    for chart, share in shares.items():
        assert share["inside"] >= 0.7 and share["outside"] <= 0.3, (chart, share)
    shot(page, "12-live-outage")
    assert not errors, errors
