"""Worker index leases on a real Redis: distinct under races, stable across restarts, taken over on expiry."""

from __future__ import annotations

import multiprocessing as mp
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from game.worker_index import (
    WorkerIndexError,
    WorkerLease,
    claim_worker_index,
    holder_of,
    main,
    release,
    try_claim,
)


@pytest.fixture
def redis_target(redis_url: str, redis_prefix: str) -> tuple[str, str]:
    """(url, key prefix) on the shared test Redis; the prefix's keys are deleted afterwards."""
    return redis_url, redis_prefix


def _race(url: str, prefix: str, holder: str, barrier: Any, results: Any) -> None:
    client = redis.Redis.from_url(url)
    barrier.wait()
    try:
        results.put(
            (
                holder,
                claim_worker_index(
                    client, hive="race", workers=4, holder=holder, wait_s=0, key_prefix=prefix
                ),
            )
        )
    except WorkerIndexError:
        results.put((holder, None))


def test_racing_replicas_get_distinct_indices(redis_target: tuple[str, str]) -> None:
    url, prefix = redis_target
    context = mp.get_context("fork")
    barrier, results = context.Barrier(6), context.Queue()
    processes = [
        context.Process(target=_race, args=(url, prefix, f"replica-{i}", barrier, results)) for i in range(6)
    ]
    for process in processes:
        process.start()
    claims = dict(results.get(timeout=30) for _ in processes)
    for process in processes:
        process.join(10)
    won = sorted(index for index in claims.values() if index is not None)
    assert won == [0, 1, 2, 3], claims  # four slots, each exactly once
    assert sum(index is None for index in claims.values()) == 2
    client = redis.Redis.from_url(url)
    for holder, index in claims.items():
        if index is not None:
            assert holder_of(client, hive="race", index=index, key_prefix=prefix) == holder
            assert release(client, hive="race", index=index, holder=holder, key_prefix=prefix)


def test_restarted_holder_gets_its_own_index_back(redis_target: tuple[str, str]) -> None:
    url, prefix = redis_target
    client = redis.Redis.from_url(url)
    common: dict[str, Any] = {"hive": "restart", "workers": 3, "key_prefix": prefix}
    assert try_claim(client, holder="a", **common) == 0
    assert try_claim(client, holder="b", **common) == 1
    assert try_claim(client, holder="b", **common) == 1  # same container name after a restart
    assert not release(client, hive="restart", index=1, holder="a", key_prefix=prefix)  # not a's
    assert release(client, hive="restart", index=0, holder="a", key_prefix=prefix)
    assert try_claim(client, holder="c", **common) == 0  # the lowest free slot
    assert try_claim(client, holder="d", **common) == 2
    assert try_claim(client, holder="e", **common) is None


def test_lease_is_renewed_and_expires_to_a_standby(redis_target: tuple[str, str]) -> None:
    url, prefix = redis_target
    client = redis.Redis.from_url(url)
    lease = WorkerLease(client, hive="standby", workers=1, holder="first", lease_s=2.0, key_prefix=prefix)
    with lease:
        assert lease.index == 0
        time.sleep(2.6)  # longer than the lease (renewed every 0.67 s): only the renewals keep it
        assert holder_of(client, hive="standby", index=0, key_prefix=prefix) == "first"
        assert (
            try_claim(client, hive="standby", workers=1, holder="second", lease_s=1.0, key_prefix=prefix)
            is None
        )
    # released on exit: the standby gets it at once
    assert (
        claim_worker_index(
            client, hive="standby", workers=1, holder="second", lease_s=1.0, wait_s=0, key_prefix=prefix
        )
        == 0
    )
    # "second" crashes (no renewals): after the lease ends a waiting standby takes over
    taken = claim_worker_index(
        client, hive="standby", workers=1, holder="third", lease_s=1.0, wait_s=10, key_prefix=prefix
    )
    assert taken == 0
    assert holder_of(client, hive="standby", index=0, key_prefix=prefix) == "third"


def test_lost_lease_is_reported(redis_target: tuple[str, str]) -> None:
    url, prefix = redis_target
    client = redis.Redis.from_url(url)
    with WorkerLease(client, hive="lost", workers=2, holder="me", lease_s=1.0, key_prefix=prefix) as lease:
        client.set(f"{prefix}hiverl:{{lost}}:worker-index:{lease.index}", "intruder")
        assert lease.lost.wait(5)
    assert holder_of(client, hive="lost", index=lease.index, key_prefix=prefix) == "intruder"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hive": "", "workers": 2}, "hive=''"),
        ({"hive": "a{b}", "workers": 2}, "hive='a{b}'"),
        ({"hive": "h", "workers": 0}, "workers=0"),
        ({"hive": "h", "workers": 2, "lease_s": 0.5}, "lease_s=0.5"),
    ],
)
def test_bad_arguments_name_the_field(
    redis_target: tuple[str, str], kwargs: dict[str, Any], message: str
) -> None:
    client = redis.Redis.from_url(redis_target[0])
    with pytest.raises(WorkerIndexError, match=message.replace("{", r"\{").replace("}", r"\}")):
        try_claim(client, holder="x", **kwargs)


def test_replicas_run_their_command_with_distinct_indices(
    redis_target: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three `run` supervisors (as `--scale game=3`): each child sees its own HIVERL_ACTOR_INDEX and
    the live hive size as CONFIG_ACTORS; the configured CONFIG_ACTORS (1) is no cap."""
    url, prefix = redis_target
    replicas = 3
    env = {
        **os.environ,
        "REDIS_URL": url,
        "CONFIG_SESSION_ID": "cli-hive",
        "CONFIG_ACTORS": "1",
        "CONFIG_MEMORY__KEY_PREFIX": prefix,
        "HIVERL_ACTORS_SETTLE_S": "1",
    }
    release_file = tmp_path / "release"
    child = (
        "import os, pathlib, time\n"
        f"pathlib.Path({str(tmp_path)!r}, os.environ['HIVERL_WORKER_HOLDER']).write_text("
        "os.environ['HIVERL_ACTOR_INDEX'] + ' ' + os.environ['CONFIG_ACTORS'])\n"
        f"while not pathlib.Path({str(release_file)!r}).exists(): time.sleep(0.05)\n"
    )
    supervisors = [
        subprocess.Popen(
            [sys.executable, "-m", "game.worker_index", "run", "--", sys.executable, "-c", child],
            env={**env, "HIVERL_WORKER_HOLDER": f"replica-{i}"},
        )
        for i in range(replicas)
    ]

    def seen() -> list[str]:
        paths = [tmp_path / f"replica-{i}" for i in range(replicas)]
        return sorted(p.read_text() for p in paths if p.exists())

    try:
        # a child started before the last claim landed is restarted with the settled size
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and seen() != ["0 3", "1 3", "2 3"]:
            time.sleep(0.2)
        assert seen() == ["0 3", "1 3", "2 3"]
        # the health check, in this process with the replicas' environment
        for name in ("REDIS_URL", "CONFIG_SESSION_ID", "CONFIG_ACTORS", "CONFIG_MEMORY__KEY_PREFIX"):
            monkeypatch.setenv(name, env[name])
        monkeypatch.setenv("HIVERL_WORKER_HOLDER", "replica-2")
        assert main(["check"]) == 0
        monkeypatch.setenv("HIVERL_WORKER_HOLDER", "stranger")
        assert main(["check"]) == 1
    finally:
        release_file.touch()
        codes = [supervisor.wait(30) for supervisor in supervisors]
    assert codes == [0] * replicas
    # every lease was released on exit
    client = redis.Redis.from_url(url)
    holders = [holder_of(client, hive="cli-hive", index=i, key_prefix=prefix) for i in range(replicas)]
    assert holders == [None] * replicas
