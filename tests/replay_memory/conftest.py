"""Fixtures of the replay-memory tests: memories on the project's Redis, private servers, a cluster.

The transitions they write come from :mod:`tests.helpers.replay`.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest
import redis

from replay_memory import MemoryConfig, ObservationSpec, ReplayMemory
from tests.helpers.replay import MakeMemory


@pytest.fixture
def make_memory(redis_url: str, redis_prefix: str) -> Iterator[MakeMemory]:
    """Opens memories on the project's Redis (or ``url=``) under this test's key prefix."""
    opened: list[ReplayMemory] = []

    def make(url: str | None = None, **fields: object) -> ReplayMemory:
        fields.setdefault("name", "mem")
        fields.setdefault("capacity", 64)
        fields.setdefault("observation", ObservationSpec((4,), "float32"))
        memory = ReplayMemory.open(url or redis_url, MemoryConfig(key_prefix=redis_prefix, **fields))  # type: ignore[arg-type]
        opened.append(memory)
        return memory

    yield make
    for memory in opened:
        memory.close()


@pytest.fixture
def two_redis_urls(tmp_path: Path) -> Iterator[list[str]]:
    """Two independent private Redis servers (no persistence)."""
    from hiverl.services import RedisServer, free_ports

    servers = [RedisServer(p, tmp_path / f"redis{i}", persistent=False) for i, p in enumerate(free_ports(2))]
    try:
        for s in servers:
            s.start()
        yield [s.url for s in servers]
    finally:
        for s in servers:
            s.stop()


def _free_cluster_ports(n: int) -> list[int]:
    from hiverl.services import free_ports

    for _ in range(20):
        ports = free_ports(n)
        if all(p < 50000 for p in ports):  # the cluster bus listens on port + 10000
            return ports
    raise RuntimeError("no free ports below 50000 for a Redis cluster")


@pytest.fixture(scope="module")
def redis_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real 3-node Redis Cluster (masters only) on free ports, joined with redis-cli."""
    home = tmp_path_factory.mktemp("cluster")
    ports = _free_cluster_ports(3)
    procs = []
    try:
        for port in ports:
            d = home / str(port)
            d.mkdir()
            procs.append(
                subprocess.Popen(
                    [
                        shutil.which("redis-server") or "redis-server",
                        "--port",
                        str(port),
                        "--bind",
                        "127.0.0.1",
                        "--dir",
                        str(d),
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                        "--daemonize",
                        "no",
                        "--logfile",
                        str(d / "log"),
                    ],
                )
            )
        for port in ports:
            _wait(partial(_ping, port))
        subprocess.run(
            ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports),
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        for port in ports:
            _wait(partial(_cluster_ok, port))
        yield f"redis://127.0.0.1:{ports[0]}/0"
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=20)


def _ping(port: int) -> bool:
    return bool(redis.Redis(port=port).ping())


def _cluster_ok(port: int) -> bool:
    info = redis.Redis(port=port).execute_command("CLUSTER INFO")
    if isinstance(info, dict):
        return info.get("cluster_state") == "ok"
    return b"cluster_state:ok" in info


def _wait(check: Callable[[], object], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except redis.RedisError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError("server did not become ready")
        time.sleep(0.1)
