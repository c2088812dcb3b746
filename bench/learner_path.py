"""The learner's data path, measured without its network: shared by ``bench/gpu_proxies.py`` (the CPU
proxies of the GPU path) and ``bench/pong_gpu.py`` (its sampling phase).

* :func:`pong_transitions` / :func:`fill_memory`: a memory of real Pong frames (random play).
* :func:`measure_sampling`: batches per second one process receives from the memory through the
  learner's sampler processes (:class:`game.sampling.SamplerPool`), staged onto ``device`` or not.
* :func:`measure_learner_host`: the learner's loop with a stand-in for the network step (the step's
  own compute is the GPU's): fetch wait, staging, priorities, and its wall milliseconds per update.
  On the ``meta`` device the staging computes shapes only, as if a GPU did the stacking: that is
  the host's own share of a GPU learner's update; on ``cpu`` the frames are stacked here too.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from game.envs import make_env
from game.learner_stats import UpdateTimer
from game.sampling import SamplerPool
from game.staging import DeviceBatch, PriorityWriter, Stager
from replay_memory import MemoryConfig, ReplayMemory, TransitionBatch
from replay_memory.codec import encode_batch

SAMPLE_BATCH = 256  # transitions per batch, as the Pong learner's


def pong_transitions(count: int, seed: int, n_step: int = 3) -> TransitionBatch:
    """``count`` 3-step transitions of real Pong frames (random play), stored like the actors' ones."""
    env = make_env("ALE/Pong-v5", seed=seed)
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    stacks, episode_ids, steps = [np.asarray(obs)], [0], [0]
    episode = 0
    while len(stacks) < count + n_step:
        obs, _, terminated, truncated, _ = env.step(int(rng.integers(6)))
        if terminated or truncated:
            obs, _ = env.reset()
            episode += 1
        stacks.append(np.asarray(obs))
        episode_ids.append(episode)
        steps.append(0 if terminated or truncated else steps[-1] + 1)
    env.close()
    frames = np.stack(stacks)
    return TransitionBatch(
        obs=frames[:count],
        actions=rng.integers(6, size=count),
        rewards=np.zeros(count, np.float32),
        next_obs=frames[n_step : count + n_step],
        discounts=np.full(count, 0.99**n_step, np.float32),
        terminated=np.zeros(count, bool),
        truncated=np.zeros(count, bool),
        n_steps=np.full(count, n_step, np.int32),
        episode_ids=np.asarray(episode_ids[:count], np.int64),
        step_indices=np.asarray(steps[:count], np.int64),
        worker_id="bench-pong",
    )


def fill_memory(redis_url: str, config: MemoryConfig, count: int, seed: int) -> float:
    """Insert ``count`` Pong transitions (a pool of real frames, encoded once, inserted in cycles);
    returns the seconds it took."""
    pool = pong_transitions(min(count, 2_048), seed)
    payloads = encode_batch(pool, config.observation)
    started = time.perf_counter()
    with ReplayMemory.open(redis_url, config) as memory:
        done = 0
        while done < count:
            part = payloads[: min(len(payloads), count - done, 512)]
            done += memory.insert_encoded(part)
            payloads = payloads[len(part) :] + payloads[: len(part)]  # rotate through the pool
    return time.perf_counter() - started


class _Feed:
    """The learner's steps 1-2 and 4 (:mod:`game.learner`) with no rate limiter: every slot busy."""

    def __init__(
        self,
        redis_url: str,
        config: MemoryConfig,
        *,
        chunk: int,
        samplers: int,
        device: str,
        batch_size: int = SAMPLE_BATCH,
    ) -> None:
        self.pool = SamplerPool(redis_url, config, rows=batch_size * chunk, samplers=samplers, seed=12345)
        self.stager = Stager(self.pool, torch.device(device), config.observation.shape, batch_size)
        self.ready: list[DeviceBatch] = []
        self.cuda = device.startswith("cuda")

    def next_batch(self, beta: float, timer: UpdateTimer) -> DeviceBatch:
        self.stager.reclaim()
        while self.pool.can_request:
            self.pool.request(beta)
        timer.lap("other")
        if not self.ready:
            chunk = self.pool.next_chunk()
            assert chunk is not None
            timer.lap("fetch_wait")
            self.ready = self.stager.stage(chunk)
            timer.lap("stage")
        return self.ready.pop(0)

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def close(self) -> None:
        self.stager.close()
        self.pool.close()


def measure_sampling(
    redis_url: str,
    config: MemoryConfig,
    *,
    chunk: int,
    samplers: int,
    seconds: float,
    beta: float,
    device: str | None = None,
) -> dict[str, Any]:
    """Batches of 256 per second one process receives from the memory through ``samplers`` sampler
    processes, every slot kept busy: each chunk staged onto ``device`` (uploaded and stacked there),
    or with ``device`` None only received and released (what the samplers and the memory deliver).
    Priorities are not written back. The first round (processes, connections, scripts) is warm-up.
    A memory holding fewer than one chunk of 256-batches is sampled in smaller batches."""
    with ReplayMemory.open(redis_url, config) as memory:
        stored = len(memory)
    batch_size = min(SAMPLE_BATCH, stored // chunk)
    if batch_size < 1:
        return {"sample_batches_per_s": None, "sample_batch_size": 0, "sample_memory_size": stored}
    feed = _Feed(
        redis_url, config, chunk=chunk, samplers=samplers, device=device or "meta", batch_size=batch_size
    )
    timer = UpdateTimer()

    def next_batches() -> int:
        if device is not None:
            feed.next_batch(beta, timer)
            return 1
        while feed.pool.can_request:
            feed.pool.request(beta)
        received = feed.pool.next_chunk()
        assert received is not None
        feed.pool.release(received)
        return chunk

    try:
        warm_up = 0
        while warm_up < 2 * len(feed.pool.free) * chunk:  # every slot once
            warm_up += next_batches()
        feed.sync()
        batches, waited_before = 0, feed.pool.blocked_s
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            batches += next_batches()
        feed.sync()
        elapsed = time.perf_counter() - started
        waited = feed.pool.blocked_s - waited_before
    finally:
        feed.close()
    return {
        "sample_batches_per_s": batches / elapsed,
        "sample_transitions_per_s": batches * batch_size / elapsed,
        "sample_batch_size": batch_size,
        "sample_memory_size": stored,
        "sample_chunk": chunk,
        "sample_samplers": samplers,
        "sample_device": device,
        "sample_seconds": elapsed,
        "sample_wait_share": waited / elapsed,  # of a consumer that does nothing else
    }


def measure_learner_host(
    redis_url: str, config: MemoryConfig, *, chunk: int, samplers: int, seconds: float, device: str
) -> dict[str, Any]:
    """The learner's loop around a stand-in step (|TD| from the rewards: the network's compute is not
    what this measures): wall ms per update and where it goes, by the learner's own phases."""
    feed = _Feed(redis_url, config, chunk=chunk, samplers=samplers, device=device)
    writer = PriorityWriter(
        redis_url, config, chunk=chunk, priority_eps=0.01, should_stop=lambda: False, on_outage=print
    )
    timer = UpdateTimer()
    try:

        def update() -> None:
            batch = feed.next_batch(0.4, timer)
            td_abs = (batch.rewards - batch.weights * batch.discounts).abs()  # touches the device batch
            if td_abs.device.type == "meta":  # shapes only: the values the writer sends are made up
                td_abs = torch.ones(td_abs.shape)
            timer.lap("step")
            writer.add(batch.indices, batch.generations, td_abs)
            timer.lap("priorities")
            timer.count()

        for _ in range(2 * len(feed.pool.free) * chunk):  # warm-up
            update()
        writer.drain()
        feed.sync()
        timer.report()
        updates = 0
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            update()
            updates += 1
        writer.drain()
        feed.sync()
        elapsed = time.perf_counter() - started
        phases = timer.report()
    finally:
        writer.close()
        feed.close()
    return {
        "learner_host_ms_per_update": 1000 * elapsed / updates,
        "learner_host_updates_per_s": updates / elapsed,
        "learner_host_phases_ms": {name.removeprefix("update_ms_"): value for name, value in phases.items()},
        "learner_host_device": device,
    }
