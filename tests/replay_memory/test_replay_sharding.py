"""Scale-out: shards on two independent Redis servers and on a real Redis Cluster."""

from __future__ import annotations

import numpy as np
import redis
from scipy import stats

from replay_memory import ReplayMemory
from replay_memory.snapshot import load, save
from tests.helpers.replay import MakeMemory, cartpole_batch, sampled_ids, stored_entries


def test_two_servers_sample_in_proportion_to_shard_mass(
    make_memory: MakeMemory, two_redis_urls: list[str]
) -> None:
    memory = make_memory(url=",".join(two_redis_urls), capacity=32, alpha=1.0, shards=2)
    for lo in range(0, 32, 8):  # inserts alternate between the shards
        memory.insert(cartpole_batch(np.arange(lo, lo + 8)))
    entries = stored_entries(memory)
    assert sorted(entries) == list(range(32))
    # each shard's keys live on its own server
    for k, url in enumerate(two_redis_urls):
        keys = [key.decode() for key in redis.Redis.from_url(url).scan_iter("*")]
        assert keys and all(f"{{mem:{k}}}" in key for key in keys)
    # shard 0 holds 3/4 of the priority mass
    slots = np.arange(32)
    memory.update_priorities(slots, slots % 16, np.where(slots < 16, 3.0, 1.0))  # generations are per shard
    rng = np.random.default_rng(11)
    in_shard0, draws = 0, 0
    counts = np.zeros(32, np.int64)
    for _ in range(150):
        batch = memory.sample(32, 0.4, rng=rng)
        sampled_ids(batch)
        in_shard0 += int((batch.indices < 16).sum())
        draws += len(batch)
        counts += np.bincount(batch.indices, minlength=32)
        np.testing.assert_allclose(batch.probabilities, np.where(batch.indices < 16, 3 / 64, 1 / 64))
        np.testing.assert_allclose(
            batch.weights, np.where(batch.indices < 16, (1 / 3) ** 0.4, 1.0), rtol=1e-6
        )
    assert stats.binomtest(in_shard0, draws, 0.75).pvalue > 0.001
    assert stats.binomtest(in_shard0, draws, 0.5).pvalue < 0.001
    assert stats.chisquare(counts, np.where(slots < 16, 3.0, 1.0) / 64 * draws).pvalue > 0.001


def test_memory_on_a_redis_cluster(redis_cluster_url: str, tmp_path) -> None:
    from replay_memory import MemoryConfig

    config = MemoryConfig(name="clustered", capacity=120, alpha=0.6, shards=6)
    with ReplayMemory.open(redis_cluster_url, config) as memory:
        for lo in range(0, 180, 10):
            memory.insert(cartpole_batch(np.arange(lo, lo + 10)))
        s = memory.stats()
        assert (s.size, s.inserted_total, s.evicted_total, s.shards) == (120, 180, 60, 6)
        ids = sorted(ident for ident, _ in stored_entries(memory).values())
        assert ids == list(range(60, 180))  # FIFO per shard, whole batches round-robin
        batch = memory.sample(64, 0.4, rng=np.random.default_rng(0))
        sampled_ids(batch)
        assert memory.update_priorities(batch.indices, batch.generations, np.full(64, 2.0)) == 64
        # the shards' hash tags are spread over the cluster's nodes
        nodes = {memory.shards[0].client.get_node_from_key(shard.keys[0]).name for shard in memory.shards}
        assert len(nodes) >= 2
        before = stored_entries(memory)
        save(memory, tmp_path / "cluster.snapshot")
    load(redis_cluster_url, tmp_path / "cluster.snapshot", name="clustered2")
    with ReplayMemory.attach(redis_cluster_url, "clustered2") as copy:
        assert stored_entries(copy) == before
