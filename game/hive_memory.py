"""The roles' typed seam to the shared memory: opening it, riding out Redis outages, prefetching.

* :func:`open_memory` opens (creating if missing) the session's memory from the settings.
* :func:`retrying` runs one Redis call and, while Redis is unreachable or loading its data after a
  restart, waits with exponential backoff (0.1 s doubling to 5 s) and tries again: an outage is a
  pause, never a crash, and never uses up a restart. Only a stop request ends the wait.
* :class:`SampleFetcher` keeps the learner fed: sampled chunks are fetched ahead by
  ``fetch_threads`` threads (each with its own client; zstd decompression runs outside the GIL),
  and new priorities are written by one more thread, ``chunk`` learning steps per round trip.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

import numpy as np
import redis

from hiverl.config import SessionConfig
from replay_memory import MemoryConfig, ObservationSpec, ReplayMemory, SampledBatch

T = TypeVar("T")

#: Errors that mean "Redis is not reachable right now" (BusyLoadingError is a ConnectionError).
OUTAGE_ERRORS: tuple[type[Exception], ...] = (redis.ConnectionError, redis.TimeoutError, OSError)
BACKOFF_START_S = 0.1
BACKOFF_MAX_S = 5.0


class Stopped(Exception):
    """A stop was requested while waiting for Redis to come back."""


def retrying(
    call: Callable[[], T],
    should_stop: Callable[[], bool],
    on_outage: Callable[[str], None] | None = None,
) -> T:
    """``call()``; on an outage error wait with backoff and retry until it succeeds or a stop comes.

    ``on_outage`` gets a one-line description of each failure (for a log or a status line).
    Raises :class:`Stopped` when ``should_stop()`` turns true during an outage.
    """
    delay = BACKOFF_START_S
    while True:
        try:
            return call()
        except OUTAGE_ERRORS as error:
            if on_outage is not None:
                on_outage(f"Redis unavailable ({type(error).__name__}: {error}); retrying in {delay:.1f} s")
            deadline = time.monotonic() + delay
            while time.monotonic() < deadline:
                if should_stop():
                    raise Stopped from error
                time.sleep(min(0.05, delay))
            delay = min(delay * 2, BACKOFF_MAX_S)


def memory_config(config: SessionConfig, spec: ObservationSpec) -> MemoryConfig:
    """The session's memory: one per session, named after it."""
    settings = config.memory
    return MemoryConfig(
        name=f"hive-{config.session_id}",
        capacity=settings.capacity,
        alpha=settings.alpha,
        shards=settings.shards,
        observation=spec,
        key_prefix=settings.key_prefix,
    )


def open_memory(
    redis_url: str, config: MemoryConfig, should_stop: Callable[[], bool], on_outage: Callable[[str], None]
) -> ReplayMemory:
    """Open the memory, waiting for Redis if it is not up yet."""
    return retrying(lambda: ReplayMemory.open(redis_url, config), should_stop, on_outage)


def split_batch(batch: SampledBatch, parts: int) -> list[SampledBatch]:
    """Cut a SampledBatch of parts*B rows into ``parts`` SampledBatches of B rows (sharing its frames).

    Importance weights are normalised over the whole memory, so a slice keeps them exact.
    """
    if parts == 1:
        return [batch]
    size = len(batch) // parts
    return [batch.rows(i * size, (i + 1) * size) for i in range(parts)]


class SampleFetcher:
    """Prefetched prioritized batches for the learner, and its priority write-back.

    The learner asks :meth:`request` for one more chunk (``chunk`` batches of ``batch_size``) when
    its rate limiter allows; chunks arrive in request order from :meth:`next_batch`. A batch may
    miss the priority updates of the chunks in flight (Ape-X's learner prefetches the same way).
    ``blocked_s`` counts only the time the learner's own thread waited.
    """

    def __init__(
        self,
        redis_url: str,
        config: MemoryConfig,
        *,
        batch_size: int,
        chunk: int,
        threads: int,
        seed: int,
        should_stop: Callable[[], bool],
        on_outage: Callable[[str], None],
    ) -> None:
        self.redis_url = redis_url
        self.config = config
        self.batch_size = batch_size
        self.chunk = chunk
        self.should_stop = should_stop
        self.on_outage = on_outage
        self.seed_sequence = np.random.SeedSequence(seed)
        self._local = threading.local()
        self._memories: list[ReplayMemory] = []
        self._lock = threading.Lock()
        self.fetchers = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="sample")
        self.writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="priorities")
        self.in_flight: deque[Future[SampledBatch]] = deque()
        self.ready: deque[SampledBatch] = deque()
        self.writes: deque[Future[int]] = deque()
        self.priority_buffer: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.blocked_s = 0.0

    @property
    def request_size(self) -> int:
        """Transitions one :meth:`request` samples."""
        return self.batch_size * self.chunk

    def _memory(self) -> tuple[ReplayMemory, np.random.Generator]:
        """This thread's own client and generator (ReplayMemory is not thread-safe)."""
        memory = getattr(self._local, "memory", None)
        if memory is None:
            memory = open_memory(self.redis_url, self.config, self.should_stop, self.on_outage)
            with self._lock:
                self._memories.append(memory)
                child = self.seed_sequence.spawn(1)[0]
            self._local.memory = memory
            self._local.rng = np.random.default_rng(child)
        return memory, self._local.rng

    def _sample(self, beta: float) -> SampledBatch:
        memory, rng = self._memory()
        return retrying(lambda: memory.sample(self.request_size, beta, rng), self.should_stop, self.on_outage)

    def request(self, beta: float) -> None:
        """Fetch one more chunk in the background."""
        self.in_flight.append(self.fetchers.submit(self._sample, beta))

    @property
    def pending(self) -> int:
        """Batches requested or ready but not yet handed out."""
        return len(self.ready) + self.chunk * len(self.in_flight)

    def next_batch(self) -> SampledBatch | None:
        """The next batch in request order (waiting for its chunk), or None when nothing was requested."""
        if not self.ready:
            if not self.in_flight:
                return None
            tick = time.perf_counter()
            try:
                chunk = self.in_flight.popleft().result()
            finally:
                self.blocked_s += time.perf_counter() - tick
            self.ready.extend(split_batch(chunk, self.chunk))
        return self.ready.popleft()

    def update_priorities(self, indices: np.ndarray, generations: np.ndarray, priorities: np.ndarray) -> None:
        """Queue new priorities; written ``chunk`` learning steps at a time, in order, one round trip."""
        while self.writes and self.writes[0].done():
            self.writes.popleft().result()  # re-raises a failed write here
        self.priority_buffer.append((indices, generations, priorities))
        if len(self.priority_buffer) >= self.chunk:
            self._flush_priorities()

    def _write(self, indices: np.ndarray, generations: np.ndarray, priorities: np.ndarray) -> int:
        memory, _ = self._memory()
        return retrying(
            lambda: memory.update_priorities(indices, generations, priorities),
            self.should_stop,
            self.on_outage,
        )

    def _flush_priorities(self) -> None:
        if not self.priority_buffer:
            return
        indices, generations, priorities = (
            np.concatenate(c) for c in zip(*self.priority_buffer, strict=True)
        )
        self.priority_buffer.clear()
        self.writes.append(self.writer.submit(self._write, indices, generations, priorities))

    def drain(self) -> None:
        """Write every queued priority and wait for the writes (before a checkpoint or exit)."""
        self._flush_priorities()
        while self.writes:
            self.writes.popleft().result()

    def close(self) -> None:
        try:
            self.drain()
        finally:
            for future in self.in_flight:
                future.cancel()
            self.fetchers.shutdown(wait=True, cancel_futures=True)
            self.writer.shutdown(wait=True)
            for memory in self._memories:
                memory.close()
