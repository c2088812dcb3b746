"""Several processes writing and sampling one memory at once."""

from __future__ import annotations

import multiprocessing as mp

import numpy as np

from replay_memory import MemoryConfig, ReplayMemory
from tests.helpers.replay import MakeMemory, cartpole_batch, sampled_ids, stored_entries

WRITERS = 3
PER_WRITER = 300
BATCH = 10
CAPACITY = 256


def _writer(url: str, config: MemoryConfig, writer: int) -> None:
    with ReplayMemory.open(url, config) as memory:
        for lo in range(0, PER_WRITER, BATCH):
            ids = writer * 10_000 + np.arange(lo, lo + BATCH)
            memory.insert(cartpole_batch(ids, worker=f"w{writer}"))


def _sampler(url: str, config: MemoryConfig, batches: int, out: mp.Queue) -> None:
    rng = np.random.default_rng(0)
    sampled = 0
    with ReplayMemory.open(url, config) as memory:
        for _ in range(batches):
            if len(memory) < 16:
                continue
            batch = memory.sample(16, 0.5, rng=rng)
            sampled_ids(batch)  # raises on a torn row
            memory.update_priorities(batch.indices, batch.generations, rng.uniform(0.1, 2.0, len(batch)))
            sampled += len(batch)
    out.put(sampled)


def test_concurrent_writers_and_samplers(make_memory: MakeMemory, redis_url: str) -> None:
    memory = make_memory(capacity=CAPACITY, alpha=0.6)
    ctx = mp.get_context("fork")
    out: mp.Queue = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(redis_url, memory.config, w)) for w in range(WRITERS)]
    procs += [ctx.Process(target=_sampler, args=(redis_url, memory.config, 60, out)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0] * len(procs)
    sampled = out.get(timeout=5) + out.get(timeout=5)

    # counters consistent
    total = WRITERS * PER_WRITER
    s = memory.stats()
    assert (s.inserted_total, s.size, s.evicted_total, s.sampled_total) == (
        total,
        CAPACITY,
        total - CAPACITY,
        sampled,
    )
    # a client that only samples learns how much the hive wrote (the workers' pace clock)
    with ReplayMemory.open(redis_url, memory.config) as reader:
        assert reader.writes_seen == 0
        reader.sample(16, 0.5)
        assert reader.writes_seen == total
    # nothing duplicated or torn; every slot holds one whole write
    entries = stored_entries(memory)
    ids = [ident for ident, _ in entries.values()]
    assert len(ids) == len(set(ids)) == CAPACITY
    # FIFO: the memory holds the newest CAPACITY writes, so each writer keeps a suffix of its
    # writes, in write order
    shard = memory.shards[0]
    cursor = int(shard.client.hget(shard.keys[0], "cursor"))
    generation = {
        ident: slot + CAPACITY * ((cursor - 1 - slot) // CAPACITY) for slot, (ident, _) in entries.items()
    }
    assert sorted(generation.values()) == list(range(total - CAPACITY, total))
    for w in range(WRITERS):
        kept = sorted(i - w * 10_000 for i in ids if i // 10_000 == w)
        assert kept == list(range(PER_WRITER - len(kept), PER_WRITER))
        gens = [generation[w * 10_000 + k] for k in kept]
        assert gens == sorted(gens)


def test_writes_seen_counts_other_clients_writes_on_every_shard(
    make_memory: MakeMemory, redis_url: str
) -> None:
    first = make_memory(capacity=CAPACITY, shards=2)
    with ReplayMemory.open(redis_url, first.config) as second:
        first.insert(cartpole_batch(np.arange(0, 10)))
        first.insert(cartpole_batch(np.arange(10, 20)))  # round robin: one insert per shard
        assert first.writes_seen == 20
        second.insert(cartpole_batch(np.arange(20, 25)))
        assert second.writes_seen == 15  # one shard seen: the first's 10 there and its own 5
        second.insert(cartpole_batch(np.arange(25, 30)))
        assert second.writes_seen == 30  # both shards seen, every client's writes counted
        assert first.writes_seen == 20  # nothing new until the first's next round trip
