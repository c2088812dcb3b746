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
    outages: list[str] = []
    result: dict[str, object] = {}

    def call() -> None:
        result["value"] = retrying(lambda: client.get("k"), lambda: False, outages.append)

    thread = threading.Thread(target=call)
    thread.start()
    time.sleep(1.0)
    assert thread.is_alive() and outages  # waiting, and saying so
    assert "Redis unavailable" in outages[0] and "retrying in" in outages[0]
    private_redis.start()  # AOF: the data is back
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert result["value"] == b"v"
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
