"""The hive's board on the real Redis: counters, the stop flag, and versioned weights that are never
torn and never go back, with a publisher process and fetching threads running at the same time."""

from __future__ import annotations

import multiprocessing as mp
import threading
import time
from typing import Any

import pytest
import torch

from game.board import Board, decode_state, encode_state
from hiverl.services import RedisServer
from hiverl.session import board_key

PUBLICATIONS = 150


def weights_for(version: int) -> dict[str, torch.Tensor]:
    """A state dict whose every tensor encodes ``version`` (about 1 MB: a torn read would show)."""
    return {
        "torso.0.weight": torch.full((256, 512), float(version)),
        "torso.0.bias": torch.full((512,), float(version)),
        "head.weight": torch.full((2, 512), -float(version)),
    }


def test_counters_and_stop_flag(redis_url: str, redis_prefix: str) -> None:
    board = Board(redis_url, "s1", redis_prefix)
    assert board.key == board_key("s1", redis_prefix) == f"{redis_prefix}hiverl:{{s1}}:board"
    empty = board.poll()
    assert (empty.version, empty.updates, empty.inserts, empty.samples, empty.stop) == (0, 0, 0, 0, None)
    assert board.fetch(newer_than=0) is None  # nothing published yet
    assert board.add_inserts(32).inserts == 32
    other = Board(redis_url, "s1", redis_prefix)  # a second actor counts into the same hash
    assert other.add_inserts(8).inserts == 40
    state = board.set_samples(256)
    assert (state.inserts, state.samples) == (40, 256)
    board.request_stop("solved")
    other.request_stop("requested")  # the first reason wins
    assert other.poll().stop == "solved"
    board.clear_stop()
    assert board.poll().stop is None
    assert Board(redis_url, "s2", redis_prefix).poll().inserts == 0  # one board per session
    board.delete()
    assert board.poll().inserts == 0
    board.close()
    other.close()


def test_versions_go_up_and_a_fetch_only_returns_newer_weights(redis_url: str, redis_prefix: str) -> None:
    learner = Board(redis_url, "s", redis_prefix)
    actor = Board(redis_url, "s", redis_prefix)
    assert learner.publish(weights_for(1), updates=10) == 1
    fetched = actor.fetch(newer_than=0)
    assert fetched is not None and fetched.version == 1
    assert all(torch.equal(fetched.state[k], v) for k, v in weights_for(1).items())
    assert actor.fetch(newer_than=1) is None and actor.fetch(newer_than=5) is None
    assert learner.publish(weights_for(2), updates=20) == 2
    state = actor.poll()
    assert (state.version, state.updates) == (2, 20)
    # A restarted learner (a new client) publishes above the stored version.
    restarted = Board(redis_url, "s", redis_prefix)
    assert restarted.publish(weights_for(3), updates=20) == 3
    latest = actor.fetch(newer_than=2)
    assert latest is not None and latest.version == 3
    assert torch.equal(latest.state["head.weight"], weights_for(3)["head.weight"])
    for board in (learner, actor, restarted):
        board.close()


def test_state_codec_round_trip() -> None:
    state = {"a": torch.arange(6.0).reshape(2, 3), "b": torch.tensor([1, 2], dtype=torch.int64)}
    decoded = decode_state(encode_state(state))
    assert decoded.keys() == state.keys()
    assert all(torch.equal(decoded[k], v) for k, v in state.items())


def _publish_many(redis_url: str, prefix: str, count: int, ready: Any) -> None:
    board = Board(redis_url, "race", prefix)
    ready.wait()
    for k in range(1, count + 1):
        version = board.publish(weights_for(k), updates=k)
        assert version == k  # the only publisher: its k-th publication is version k
    board.close()


def test_concurrent_fetches_never_see_torn_or_older_weights(redis_url: str, redis_prefix: str) -> None:
    """A learner process publishes as fast as it can while three actor threads fetch: every fetched
    blob is exactly the tensors published under the version it came with, and each actor's versions
    only go up."""
    context = mp.get_context("spawn")
    ready = context.Event()
    publisher = context.Process(target=_publish_many, args=(redis_url, redis_prefix, PUBLICATIONS, ready))
    publisher.start()
    seen: dict[int, list[int]] = {}
    failures: list[str] = []
    done = threading.Event()

    def actor(number: int) -> None:
        board = Board(redis_url, "race", redis_prefix)
        have = 0
        versions: list[int] = []
        try:
            while not done.is_set() or have < PUBLICATIONS:
                weights = board.fetch(newer_than=have)
                if weights is None:
                    if done.is_set() and board.poll().version == have:
                        break
                    continue
                if weights.version <= have:
                    failures.append(f"actor {number}: version {weights.version} after {have}")
                expected = weights_for(weights.version)
                if weights.state.keys() != expected.keys() or not all(
                    torch.equal(weights.state[k], v) for k, v in expected.items()
                ):
                    failures.append(f"actor {number}: torn or mismatched blob under v{weights.version}")
                have = weights.version
                versions.append(have)
        finally:
            seen[number] = versions
            board.close()

    threads = [threading.Thread(target=actor, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    ready.set()
    publisher.join(timeout=120)
    done.set()
    for thread in threads:
        thread.join(timeout=60)
    assert publisher.exitcode == 0
    assert not failures, failures[:5]
    for number, versions in seen.items():
        assert versions == sorted(set(versions)), number  # strictly increasing
        assert versions[-1] == PUBLICATIONS, number  # everyone ends on the newest weights
    # The fetchers really ran beside the publisher: they saw intermediate versions, not just the last.
    assert sum(len(v) for v in seen.values()) > 3


def test_board_survives_a_redis_restart(private_redis: RedisServer) -> None:
    board = Board(private_redis.url, "persist")
    board.publish(weights_for(7), updates=70)
    board.add_inserts(1234)
    board.set_samples(5678)
    before = board.poll()
    private_redis.stop()  # SIGTERM: Redis writes its AOF
    private_redis.start()
    deadline = time.monotonic() + 30
    while True:
        try:
            after = board.poll()  # redis-py reconnects by itself
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    assert after == before
    weights = board.fetch(newer_than=0)
    assert weights is not None and weights.version == before.version
    assert torch.equal(weights.state["torso.0.bias"], weights_for(7)["torso.0.bias"])
    board.close()


@pytest.mark.parametrize("prefix", ["", "bench:"])
def test_board_key_has_one_hash_tag(prefix: str) -> None:
    key = board_key("20260101-000000-abcd", prefix)
    assert key.startswith(prefix) and key.count("{") == 1 and "{20260101-000000-abcd}" in key
