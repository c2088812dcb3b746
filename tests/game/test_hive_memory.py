"""The roles' seam to the memory on the real Redis: retrying() (an outage is a wait, never a crash;
only a stop ends it). The learner's sampler processes and priority writer: tests/game/test_sampling.py."""

from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest
import redis

from game.hive_memory import Stopped, retrying
from hiverl.services import RedisServer, free_ports


def test_retrying_waits_out_an_outage(private_redis: RedisServer) -> None:
    client = redis.Redis.from_url(private_redis.url, socket_connect_timeout=0.5, socket_timeout=2)
    client.set("k", "v")
    private_redis.stop()
    stopped_at = time.time()
    outages: list[str] = []
    recovered: list[tuple[float, float]] = []
    result: dict[str, object] = {}

    def call() -> None:
        result["value"] = retrying(
            lambda: client.get("k"), lambda: False, outages.append, lambda *span: recovered.append(span)
        )

    thread = threading.Thread(target=call)
    thread.start()
    time.sleep(1.0)
    assert thread.is_alive() and outages  # waiting, and saying so
    assert "Redis unavailable" in outages[0] and "retrying in" in outages[0]
    assert not recovered
    private_redis.start()  # AOF: the data is back
    started_at = time.time()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert result["value"] == b"v"
    # The end of the wait is told once: from the first failure to the success after the restart.
    ((first_failure, success),) = recovered
    assert stopped_at <= first_failure < stopped_at + 1.0 and started_at <= success < started_at + 10.0
    assert retrying(
        lambda: client.get("k"), lambda: False, outages.append, lambda *span: recovered.append(span)
    )
    assert len(recovered) == 1  # a call that never failed has no wait to end
    client.close()


def test_only_a_stop_ends_the_wait() -> None:
    port = free_ports()[0]  # nothing listens there
    attempts: list[float] = []

    def connect() -> None:
        attempts.append(time.monotonic())
        socket.create_connection(("127.0.0.1", port), timeout=1).close()

    outages: list[str] = []
    started = time.monotonic()
    with pytest.raises(Stopped):
        retrying(connect, lambda: time.monotonic() > started + 1.0, outages.append)
    assert 0.9 < time.monotonic() - started < 5.0
    # Retried with backoff (0.1, 0.2, 0.4 s, ...) until the stop came; each failure reported.
    assert len(attempts) >= 3 and len(outages) == len(attempts)
    gaps = np.diff(attempts)
    assert gaps[1] > gaps[0] * 1.5
