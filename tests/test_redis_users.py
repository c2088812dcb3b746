"""Each role signs in to Redis as its own least-privilege user (docker/redis/start.sh), for real.

A private redis-server is started through docker/redis/start.sh, as in the compose stack, with
every user; the test adds one user of its own that may only read ``ACL LOG`` (a ``redis-server``
first on PATH appends it to the ACL file the script wrote), so Redis itself says what it refused.

1. A short CartPole hive with each role in its own process, signed in as its own user: the learner
   (``hiverl learner``), an actor through the containers' entry point (``python -m game.worker_index
   run -- hiverl actor``), the evaluator, the memory monitor; the dashboard's status ping and its
   stop request (``dashboard.stopping``) end the hive. Training progressed and ``ACL LOG`` is empty.
2. What no role may do is refused (NOPERM), and Redis logs the refusal.
3. Wrong credentials are no outage: the actor's entry point, a role and the health check end at once
   with one line naming the user and the variable (never the password), touching nothing.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from hiverl.services import free_ports
from hiverl.services.catalog import CATALOG
from hiverl.session import board_key

REPO = Path(__file__).resolve().parents[1]
START = REPO / "docker" / "redis" / "start.sh"
HIVERL = str(Path(sys.executable).with_name("hiverl"))
ROLES = ("learner", "actor", "evaluator", "monitor", "dashboard")
PASSWORDS = {role: f"{role}-pass_1.~" for role in ROLES}
ADMIN_PASSWORD = "admin-pass_1"
READER_PASSWORD = "acl-log-reader-pass"
SESSION = "acl-hive"
MEMORY = f"hive-{SESSION}"

# Appends the test's ACL LOG reader to the file start.sh wrote, then runs the real server.
_SERVER_WRAPPER = """#!/bin/sh
previous=""
for argument; do
  if [ "$previous" = "--aclfile" ]; then
    # as the roles, the reader may name its connection where Redis knows CLIENT SETINFO
    extra=$(grep -q "client|setinfo" "$argument" && echo " +client|setinfo" || true)
    echo "user acl-reader on >{password} -@all +acl|log$extra" >> "$argument"
  fi
  previous="$argument"
done
exec {server} "$@"
"""


@dataclass
class AclRedis:
    """A redis-server started by docker/redis/start.sh on a free port."""

    port: int
    acl_file: Path

    def url(self, user: str, password: str | None = None) -> str:
        secret = password if password is not None else PASSWORDS.get(user, ADMIN_PASSWORD)
        return f"redis://{user}:{secret}@127.0.0.1:{self.port}/0"

    def client(self, user: str, password: str | None = None) -> redis.Redis:
        return redis.Redis.from_url(self.url(user, password), socket_timeout=10)

    def acl_log(self) -> list[dict[str, Any]]:
        with self.client("acl-reader", READER_PASSWORD) as reader:
            entries: list[dict[str, Any]] = reader.acl_log()
            return entries

    def keys(self) -> dict[bytes, Any]:
        """Every key with its value (the admin user may read all), to show nothing changed."""
        with self.client("hiverl") as admin:
            dump: dict[bytes, Any] = {}
            for key in admin.scan_iter(count=1000):
                kind = admin.type(key)
                dump[key] = admin.hgetall(key) if kind == b"hash" else admin.dump(key)
            return dump


def start_script_env(tmp_path: Path, port: int) -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"],
        "REDIS_USER": "hiverl",
        "REDIS_PASSWORD": ADMIN_PASSWORD,
        **{f"REDIS_{role.upper()}_PASSWORD": password for role, password in PASSWORDS.items()},
        "REDIS_CONF": str(CATALOG.redis.config_file),
        "REDIS_DATA": str(tmp_path),
        "REDIS_PORT": str(port),
        "REDIS_BIND": "127.0.0.1",
        "REDIS_ACL_FILE": str(tmp_path / "users.acl"),
    }


@pytest.fixture
def acl_redis(tmp_path: Path) -> Iterator[AclRedis]:
    import shutil

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    server = shutil.which("redis-server")
    assert server, "redis-server is missing: run scripts/setup.sh"
    wrapper = bin_dir / "redis-server"
    wrapper.write_text(_SERVER_WRAPPER.format(password=READER_PASSWORD, server=server))
    wrapper.chmod(0o755)
    data = tmp_path / "redis"
    data.mkdir()
    port = free_ports()[0]
    env = start_script_env(data, port)
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    process = subprocess.Popen(["sh", str(START)], env=env, stdout=subprocess.DEVNULL)
    target = AclRedis(port, data / "users.acl")
    try:
        wait_for("Redis to answer", lambda: _answers(target), 20)
        yield target
    finally:
        process.terminate()
        process.wait(10)


def _answers(target: AclRedis) -> bool:
    try:
        with target.client("hiverl") as admin:
            return bool(admin.ping())
    except redis.ConnectionError:
        return False


def wait_for(what: str, check: Callable[[], Any], timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}", pytrace=False)


def test_the_script_writes_one_user_per_role_with_mode_600(acl_redis: AclRedis) -> None:
    lines = acl_redis.acl_file.read_text().splitlines()
    assert stat.S_IMODE(acl_redis.acl_file.stat().st_mode) == 0o600
    users = [line.split()[1] for line in lines]
    assert users == ["default", "hiverl", *ROLES, "acl-reader"]
    assert lines[0] == "user default off"
    with acl_redis.client("hiverl") as admin:
        assert admin.ping()
    for role in ROLES:
        with acl_redis.client(role) as client:
            assert client.ping(), role


_FAKE_SERVER = """#!/bin/sh
if [ "$1" = "--version" ]; then echo "Redis server v={version} sha=00000000:0 malloc=libc bits=64 build=0"; fi
"""


@pytest.mark.parametrize(
    ("version", "granted"), [("7.0.15", False), ("7.2.0", True), ("7.4.7", True), ("8.2.1", True)]
)
def test_client_setinfo_is_granted_where_redis_knows_it(tmp_path: Path, version: str, granted: bool) -> None:
    """redis-py names each connection with CLIENT SETINFO: Redis >= 7.2 would log every refusal, an
    older one rejects the rule. A stand-in redis-server says the version and exits."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "redis-server"
    fake.write_text(_FAKE_SERVER.format(version=version))
    fake.chmod(0o755)
    env = start_script_env(tmp_path, 6379)
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    done = subprocess.run(["sh", str(START)], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    for line in (tmp_path / "users.acl").read_text().splitlines()[2:]:
        assert ("+client|setinfo" in line) == granted, line


@pytest.mark.parametrize("role", ROLES)
def test_the_script_names_a_missing_or_bad_password(tmp_path: Path, role: str) -> None:
    variable = f"REDIS_{role.upper()}_PASSWORD"
    for value, message in (("", f"{variable} is not set"), ("pass@word:1", f"{variable} may only contain")):
        env = start_script_env(tmp_path, free_ports()[0]) | {variable: value}
        done = subprocess.run(["sh", str(START)], env=env, capture_output=True, text=True, timeout=30)
        assert done.returncode == 2 and message in done.stderr, done.stderr
        assert "pass@word" not in done.stderr
        assert not (tmp_path / "users.acl").exists()


# -- 1. a hive, each role as its own user ---------------------------------------------------------------


def _hive_settings(tmp_path: Path) -> Path:
    path = tmp_path / "hive.yaml"
    settings = {
        "env_id": "CartPole-v1",
        "total_steps": 1_000_000,  # never reached: the dashboard's stop request ends the hive
        "actors": 1,
        "seed": 3,
        "torch_threads": 1,
        "stats_interval_s": 0.5,
        "run_dir": str(tmp_path / "runs"),
        "model_dir": str(tmp_path / "models"),
        "memory": {"capacity": 20_000, "shards": 2},  # two shards: the sampler's mass script too
        "agent": {"hidden_sizes": [32], "batch_size": 32},
        "learner": {"min_size": 200, "samples_per_insert": 1, "sample_chunk": 2, "weights_interval": 5},
        "actor": {"envs": 2, "insert_batch": 32},
        "evaluator": {"interval_s": 0.5, "episodes": 2, "envs": 2},
    }
    path.write_text(yaml.safe_dump(settings))
    return path


def _role_env(target: AclRedis, user: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "REDIS_URL": target.url(user),
        "CONFIG_SESSION_ID": SESSION,
        "CONFIG_MEMORY__KEY_PREFIX": "",  # the stacks' keys, which the users' patterns name
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


def _start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)


def _events(path: Path, event_type: str) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]
    return [row for row in rows if row.get("event_type") == event_type]


def test_a_hive_runs_with_each_role_as_its_own_user(acl_redis: AclRedis, tmp_path: Path) -> None:
    from dashboard.status import _ping_redis
    from dashboard.stopping import STOP_REASON, StopRequester
    from game.worker_index import slot_key

    config = _hive_settings(tmp_path)
    logs = tmp_path / "logs"
    logs.mkdir()
    runs = tmp_path / "runs" / SESSION
    monitor_events = tmp_path / "monitor.jsonl"
    monitor = ["--memory", MEMORY, "--session-id", SESSION, "--interval", "0.5", "--retry-max", "1"]
    role_flags = ["--config", str(config)]
    processes = {
        "learner": _start(
            [HIVERL, "learner", *role_flags], _role_env(acl_redis, "learner"), logs / "learner"
        ),
        "actor": _start(
            [sys.executable, "-m", "game.worker_index", "run", "--", HIVERL, "actor", *role_flags],
            _role_env(acl_redis, "actor", HIVERL_WORKER_HOLDER="acl-actor", HIVERL_ACTORS_SETTLE_S="1"),
            logs / "actor",
        ),
        "evaluator": _start(
            [HIVERL, "evaluator", *role_flags], _role_env(acl_redis, "evaluator"), logs / "evaluator"
        ),
        "monitor": _start(
            [HIVERL, "monitor", *monitor, "--jsonl", str(monitor_events)],
            _role_env(acl_redis, "monitor"),
            logs / "monitor",
        ),
    }

    def log_tail() -> str:
        return "\n".join(f"--- {name}\n{(logs / name).read_text()[-3000:]}" for name in processes)

    try:
        with acl_redis.client("hiverl") as admin:

            def progressed() -> bool:
                for name, process in processes.items():
                    assert process.poll() is None, f"{name} ended early:\n{log_tail()}"
                board = admin.hgetall(board_key(SESSION))
                return (
                    int(board.get(b"updates", 0)) > 0
                    and bool(_events(runs / "events-evaluator.jsonl", "eval"))
                    and bool(_events(monitor_events, "memory_stats"))
                    and admin.get(slot_key(SESSION, 0)) == b"acl-actor"
                )

            wait_for("the learner's updates, an eval and a memory_stats event", progressed, 150)
            # corrupt entries: the learner's sampler drops them (the drop script), its priority
            # updates then skip dropped slots and the actors' inserts clear them (their SREM branch)
            for shard in (0, 1):
                data = f"{{{MEMORY}:{shard}}}:data"
                admin.hset(data, mapping={slot: b"not a transition" for slot in admin.hkeys(data)[:300]})

            def dropped() -> int:
                return sum(int(admin.hget(f"{{{MEMORY}:{k}}}:meta", "corrupt_dropped") or 0) for k in (0, 1))

            wait_for("the learner to drop corrupt entries", dropped, 60)
            # the dashboard: its status ping and its stop request, through its own code
            dashboard_url = acl_redis.url("dashboard")
            _ping_redis(dashboard_url, timeout_s=5)
            stopper = StopRequester(dashboard_url, timeout_s=5)
            try:
                outcome = stopper.request(SESSION, [""])
                assert outcome.requested == (board_key(SESSION),)
                assert stopper.request("no-such-session", [""]).found is False
            finally:
                stopper.close()
            for name in ("learner", "actor", "evaluator"):
                assert processes[name].wait(90) == 0, f"{name} failed:\n{log_tail()}"
            processes["monitor"].send_signal(signal.SIGTERM)
            assert processes["monitor"].wait(30) == 0, log_tail()

            board = {k.decode(): v for k, v in admin.hgetall(board_key(SESSION)).items() if k != b"weights"}
            assert board["stop"] == STOP_REASON.encode()
            assert int(board["updates"]) > 0 and int(board["inserts"]) >= 200 and int(board["samples"]) > 0
            assert admin.hget(f"{{{MEMORY}:0}}:meta", "inserted_total") is not None
            assert admin.get(slot_key(SESSION, 0)) is None  # the actor's lease was released
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait(10)
    assert _events(runs / "events-evaluator.jsonl", "eval")
    assert acl_redis.acl_log() == [], log_tail()


# -- 2. what no role may do --------------------------------------------------------------------------

BOARD = board_key(SESSION)
META = f"{{{MEMORY}:0}}:meta"
LEASE = f"hiverl:{{{SESSION}}}:worker-index:0"
OUTSIDE = ("user:42", "hiverl:{other}:config", "{hive")
Call = Callable[[redis.Redis], Any]


def _on(key: str, command: str, *args: Any) -> Call:
    """``command key *args`` (EVAL: ``EVAL *args``, whose keys name ``key``)."""
    if command == "EVAL":
        return lambda client: client.execute_command("EVAL", *args)
    return lambda client: client.execute_command(command, key, *args)


EVERY_ROLE_REFUSED: dict[str, Call] = {
    "FLUSHALL": lambda c: c.flushall(),
    "FLUSHDB": lambda c: c.flushdb(),
    "CONFIG GET": lambda c: c.config_get("*"),
    "CONFIG SET": lambda c: c.config_set("appendonly", "no"),
    "KEYS": lambda c: c.keys("*"),
    "SCAN": lambda c: c.scan(0),
    "SCRIPT FLUSH": lambda c: c.script_flush(),
    "ACL LIST": lambda c: c.acl_list(),
    "SHUTDOWN": lambda c: c.execute_command("SHUTDOWN", "NOSAVE"),
    "BGSAVE": lambda c: c.bgsave(),
    "CLIENT LIST": lambda c: c.client_list(),
    **{f"GET {key}": _on(key, "GET") for key in OUTSIDE},
    **{f"SET {key}": _on(key, "SET", "x") for key in OUTSIDE},
    **{f"EVAL on {key}": _on(key, "EVAL", "return 1", 1, key) for key in OUTSIDE},
    "DEL the board": lambda c: c.delete(BOARD),
    "SET over the board": lambda c: c.set(BOARD, "x"),
    "DEL the memory": lambda c: c.delete(META),
    "RENAME the memory": lambda c: c.rename(META, "{hive-x:0}:meta"),
    "EXPIRE the memory": lambda c: c.expire(META, 1),
}

ROLE_REFUSED: dict[str, dict[str, Call]] = {
    "monitor": {
        "SET in the memory": lambda c: c.set(META, "x"),
        "HSET in the memory": lambda c: c.hset(META, "cursor", 0),
        "EVAL writing the memory": lambda c: c.eval("return redis.call('HSET', KEYS[1], 'a', 1)", 1, META),
        "EVALSHA on the memory (read-write keys)": lambda c: c.evalsha("0" * 40, 1, META),
        "reading the board": lambda c: c.hmget(BOARD, "version"),
        "reading a lease": lambda c: c.get(LEASE),
        "DEL a lease": lambda c: c.delete(LEASE),
    },
    "actor": {
        "HDEL the board's stop": lambda c: c.hdel(BOARD, "stop"),
        "HSET the board's weights": lambda c: c.hset(BOARD, "weights", b"x"),
        "EVAL deleting the board": lambda c: c.eval("return redis.call('DEL', KEYS[1])", 1, BOARD),
        "HDEL in the memory": lambda c: c.hdel(META, "config"),
    },
    "evaluator": {
        "reading the memory": lambda c: c.hget(META, "config"),
        "HSET the board's weights": lambda c: c.hset(BOARD, "weights", b"x"),
        "reading a lease": lambda c: c.get(LEASE),
        "DEL a lease": lambda c: c.delete(LEASE),
        "INFO": lambda c: c.info(),
    },
    "dashboard": {
        "reading the memory": lambda c: c.hget(META, "config"),
        "HDEL the board's stop": lambda c: c.hdel(BOARD, "stop"),
        "HSET the board's weights": lambda c: c.hset(BOARD, "weights", b"x"),
        "EVAL deleting the board": lambda c: c.eval("return redis.call('DEL', KEYS[1])", 1, BOARD),
        "DEL a lease": lambda c: c.delete(LEASE),
    },
    "learner": {
        "EVAL deleting the board": lambda c: c.eval("return redis.call('DEL', KEYS[1])", 1, BOARD),
        "taking a lease": lambda c: c.set(LEASE, "x"),
        "DEL a lease": lambda c: c.delete(LEASE),
    },
}


@pytest.mark.parametrize("role", ROLES)
def test_what_no_role_may_do_is_refused(acl_redis: AclRedis, role: str) -> None:
    with acl_redis.client("hiverl") as admin:
        admin.hset(BOARD, mapping={"version": 1, "stop": "x"})
        admin.hset(META, "config", "{}")
        admin.set(LEASE, "someone", px=60_000)
        for key in OUTSIDE:
            admin.set(key, "theirs")
        before = acl_redis.keys()
    refused = {**EVERY_ROLE_REFUSED, **ROLE_REFUSED[role]}
    allowed = []
    with acl_redis.client(role) as client:
        for what, call in refused.items():
            try:
                call(client)
            except redis.exceptions.NoPermissionError:
                continue
            allowed.append(what)
    assert allowed == [], f"{role} may {allowed}"
    assert acl_redis.keys() == before
    denied = acl_redis.acl_log()
    assert denied and {entry["username"] for entry in denied} == {role}
    assert {entry["reason"] for entry in denied} <= {"command", "key"}


# -- 3. wrong credentials end a role at once -------------------------------------------------------------


def _run(command: list[str], env: dict[str, str], timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout_s, cwd=REPO)


def _assert_one_line_denial(
    done: subprocess.CompletedProcess[str], user: str, variable: str, secret: str
) -> str:
    assert done.returncode == 77, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert f"user {user!r}" in lines[0] and variable in lines[0], lines[0]
    assert secret not in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    return lines[0]


def test_a_wrong_password_ends_the_actor_at_once_and_changes_nothing(
    acl_redis: AclRedis, tmp_path: Path
) -> None:
    with acl_redis.client("hiverl") as admin:
        admin.hset(BOARD, mapping={"version": 1, "inserts": 5})
        admin.hset(META, "config", "{}")
        admin.set(f"hiverl:{{{SESSION}}}:worker-index:1", "another-actor", px=60_000)
    before = acl_redis.keys()
    wrong = "not-the-actors-pass"
    env = _role_env(
        acl_redis, "actor", REDIS_URL=acl_redis.url("actor", wrong), HIVERL_WORKER_HOLDER="acl-actor"
    )
    config = ["--config", str(_hive_settings(tmp_path))]

    started = time.monotonic()
    done = _run([sys.executable, "-m", "game.worker_index", "run", "--", HIVERL, "actor", *config], env)
    assert time.monotonic() - started < 20
    line = _assert_one_line_denial(done, "actor", "REDIS_URL", wrong)
    assert "invalid username-password pair" in line
    check = _run([sys.executable, "-m", "game.worker_index", "check"], env)
    _assert_one_line_denial(check, "actor", "REDIS_URL", wrong)

    # the role itself (its access check runs before it writes anything), the URL from a secret file
    secret = tmp_path / "redis_url"
    secret.write_text(acl_redis.url("actor", wrong))
    from_file = {k: v for k, v in env.items() if k != "REDIS_URL"} | {"REDIS_URL_FILE": str(secret)}
    role = _run([HIVERL, "actor", "--index", "0", *config], from_file)
    _assert_one_line_denial(role, "actor", "REDIS_URL_FILE", wrong)
    assert not (tmp_path / "runs").exists()
    assert acl_redis.keys() == before


def test_a_role_signed_in_as_another_roles_user_ends_with_one_line(
    acl_redis: AclRedis, tmp_path: Path
) -> None:
    """The monitor's user may sign in and PING but not read the board: NOPERM ends the evaluator."""
    with acl_redis.client("hiverl") as admin:
        admin.hset(BOARD, mapping={"version": 0})
    before = acl_redis.keys()
    env = _role_env(acl_redis, "monitor")
    done = _run([HIVERL, "evaluator", "--config", str(_hive_settings(tmp_path))], env, timeout_s=120)
    line = _assert_one_line_denial(done, "monitor", "REDIS_URL", PASSWORDS["monitor"])
    assert "no permissions to run the 'hmget' command" in line and "own user" in line
    # the monitor with a wrong password stops polling at once instead of retrying
    wrong = _role_env(acl_redis, "monitor", REDIS_URL=acl_redis.url("monitor", "wrong-pass"))
    monitor = _run([HIVERL, "monitor", "--memory", MEMORY, "--max-polls", "1"], wrong)
    _assert_one_line_denial(monitor, "monitor", "REDIS_URL", "wrong-pass")
    assert acl_redis.keys() == before
