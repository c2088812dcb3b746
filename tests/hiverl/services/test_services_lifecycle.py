"""Start/stop/status of private servers: idempotent, no stray processes, clear errors."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import psutil
import pytest
from typer.testing import CliRunner

from hiverl.services import MongoServer, RedisServer, ServiceError, free_ports
from hiverl.services import distributions as dist
from hiverl.services.catalog import CATALOG


def _alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            pass
    return alive


def test_start_is_idempotent_and_stop_leaves_no_process(tmp_path: Path) -> None:
    server = RedisServer(free_ports()[0], tmp_path, persistent=False)
    server.start()
    status = server.status()
    assert status.running and status.healthy and status.version and status.version >= "7"
    pid = status.pid
    assert pid is not None
    assert server.start().status().pid == pid  # second start: a no-op
    server.stop()
    assert _alive([pid]) == []
    stopped = server.status()
    assert (stopped.running, stopped.healthy, stopped.pid) == (False, False, None)
    server.stop()  # stopping a stopped server is a no-op


def test_a_second_handle_on_the_same_home_finds_and_stops_the_server(tmp_path: Path) -> None:
    """What `hiverl services down` does from another shell: the pidfile leads to the process group."""
    port = free_ports()[0]
    first = MongoServer(port, tmp_path).start()
    pid = first.status().pid
    assert pid is not None
    second = MongoServer(port, tmp_path)
    assert second.status().pid == pid
    second.stop()
    assert _alive([pid]) == []
    assert not first.is_healthy()


def test_restart_keeps_the_data(private_mongo: MongoServer) -> None:
    from pymongo import MongoClient

    client: MongoClient[dict[str, Any]] = MongoClient(private_mongo.url, serverSelectionTimeoutMS=2000)
    with client:
        client.db.c.insert_one({"k": 1})
    private_mongo.restart()
    client = MongoClient(private_mongo.url, serverSelectionTimeoutMS=2000)
    with client:
        assert client.db.c.find_one({}, {"_id": 0}) == {"k": 1}


def test_failed_start_raises_with_the_log_tail_and_leaves_no_process(tmp_path: Path) -> None:
    bad_config = tmp_path / "bad.conf"
    bad_config.write_text("this-is-not-a-redis-directive yes\n")
    server = RedisServer(free_ports()[0], tmp_path / "home", config_file=bad_config, startup_timeout=20)
    with pytest.raises(
        ServiceError, match=r"(?s)redis exited with status \d+.*this-is-not-a-redis-directive"
    ):
        server.start()
    assert server.status().pid is None


def test_a_taken_port_is_reported_clearly(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        with pytest.raises(ServiceError, match=f"port 127.0.0.1:{port} is already in use"):
            RedisServer(port, tmp_path).start()


def test_invalid_arguments_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"port must be in 1\.\.65535, got 0"):
        RedisServer(0, tmp_path)
    with pytest.raises(ValueError, match="backend must be 'mongod' or 'ferretdb', got 'postgres'"):
        MongoServer(1234, tmp_path, backend="postgres")


def test_fetch_is_a_no_op_when_the_cache_is_complete() -> None:
    """`hiverl services fetch` on a warm cache downloads nothing (the completion markers stay untouched)."""
    markers = [dist.kafka_dist() / dist.COMPLETE, dist.elasticsearch_dist() / dist.COMPLETE]
    if dist.mongod_path() is None:
        markers.append(dist.ferretdb_dist() / dist.COMPLETE)
    missing = [str(m) for m in markers if not m.exists()]
    assert not missing, f"run `hiverl services fetch` first; missing {missing}"
    before = [m.stat().st_mtime_ns for m in markers]
    for name in CATALOG.names:
        dist.fetch(name)
    assert [m.stat().st_mtime_ns for m in markers] == before


def test_cli_status_and_logs_of_the_shared_redis(redis_url: str) -> None:
    from hiverl.services.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["status", "redis"])
    assert result.exit_code == 0, result.output
    assert "healthy" in result.output and str(CATALOG.redis.port) in result.output
    assert runner.invoke(app, ["logs", "redis", "-n", "3"]).exit_code == 0
    unknown = runner.invoke(app, ["status", "postgres"])
    assert unknown.exit_code != 0 and "unknown service" in unknown.output


@pytest.mark.parametrize(
    ("fixture", "env_var", "address"),
    [
        ("redis_url", "REDIS_URL", "redis://127.0.0.1:{port}/0"),
        ("mongo_uri", "MONGODB_URI", "mongodb://127.0.0.1:{port}/"),
        ("es_url", "ELASTICSEARCH_URL", "http://127.0.0.1:{port}"),
    ],
)
def test_an_unreachable_service_fails_the_test_and_names_the_command(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, fixture: str, env_var: str, address: str
) -> None:
    """Under CI=true a fixture whose server is down fails the test (an error, never a skip)."""
    pytester.makeconftest((Path(__file__).parents[2] / "conftest.py").read_text())
    pytester.makepyfile(f"def test_uses_it({fixture}):\n    pass\n")
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv(env_var, address.format(port=free_ports()[0]))
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-p", "no:xdist")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*not reachable at*Start the local services with `hiverl services up`*"])
