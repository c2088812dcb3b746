"""Sampled chunks onto the learning step's device: one upload per chunk, no host sync per update.

On CUDA every sampler slot (:mod:`game.sampling`) is page-locked once (``cudaHostRegister``), so a
chunk's frames and packed columns reach the GPU in one asynchronous copy; the observations are
stacked from their unique frames there, still uint8 (the network scales them), and a CUDA event
says when the copy is done and the slot may be written again. Where a slot cannot be page-locked,
the chunk goes through a page-locked bounce buffer from torch's caching host allocator instead. On a
CPU the chunk is read in place: the stacked observations are copies, the small columns are cloned,
and the slot is released at once. On the ``meta`` device nothing but shapes is computed: what is
left is the host's own share of the work, which ``bench/gpu_proxies.py`` measures as a CPU proxy of
the GPU path.
"""

from __future__ import annotations

import ctypes
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from game.hive_memory import open_memory, retrying
from game.sampling import Chunk, SamplerPool
from replay_memory import MemoryConfig, ReplayMemory


@dataclass(frozen=True)
class DeviceBatch:
    """One learning step's batch on the device (B rows); ``indices``/``generations`` stay on the host
    for the priority write-back."""

    obs: torch.Tensor  # [B, *obs_shape], uint8 frame stacks or float32
    actions: torch.Tensor  # [B] int64
    rewards: torch.Tensor  # [B] float32
    next_obs: torch.Tensor  # [B, *obs_shape]
    discounts: torch.Tensor  # [B] float32
    weights: torch.Tensor  # [B] float32 importance weights
    indices: np.ndarray  # [B] int64
    generations: np.ndarray  # [B] int64

    def __len__(self) -> int:
        return len(self.indices)


class Stager:
    """Turns the pool's chunks into :class:`DeviceBatch` es of ``batch_size`` rows on ``device``."""

    def __init__(
        self, pool: SamplerPool, device: torch.device, obs_shape: tuple[int, ...], batch_size: int
    ) -> None:
        self.pool = pool
        self.device = device
        self.obs_shape = obs_shape
        self.batch_size = batch_size
        self.cuda = device.type == "cuda"
        self.uploading: deque[tuple[Chunk, torch.cuda.Event]] = deque()
        self.registered: list[int] = []
        if self.cuda:
            self._page_lock_slots()

    def _page_lock_slots(self) -> None:
        cudart = torch.cuda.cudart()
        for slots in self.pool.slots:
            for buffer in slots:
                pointer = ctypes.addressof(ctypes.c_char.from_buffer(buffer))
                if int(cudart.cudaHostRegister(pointer, len(buffer), 0)) == 0:
                    self.registered.append(pointer)
        self.page_locked = len(self.registered) == sum(len(slots) for slots in self.pool.slots)

    def stage(self, chunk: Chunk) -> list[DeviceBatch]:
        """The chunk's batches, in order; the slot is released (now on a CPU, once uploaded on CUDA)."""
        region = torch.frombuffer(chunk.region, dtype=torch.uint8)
        if self.cuda:
            if not self.page_locked:
                region = torch.empty(region.shape, dtype=torch.uint8, pin_memory=True).copy_(region)
            region = region.to(self.device, non_blocking=True)
            uploaded = torch.cuda.Event()
            uploaded.record()
            self.uploading.append((chunk, uploaded))
        elif self.device.type == "meta":  # shapes only: the host's share of the work (a CPU proxy)
            region = region.to(self.device)
        frames_bytes = chunk.frames.nbytes
        dtype = torch.float32 if chunk.frames.dtype == np.float32 else torch.uint8
        frames = region[:frames_bytes].view(dtype).reshape(chunk.frames.shape)
        offset = chunk.columns.ctypes.data - chunk.frames.ctypes.data
        columns = (
            region[offset : offset + chunk.columns.nbytes].view(torch.float32).reshape(chunk.columns.shape)
        )
        channels = self.pool.channels
        obs, next_obs = (
            frames.index_select(0, columns[:, part].reshape(-1).long()).reshape(len(chunk), *self.obs_shape)
            for part in (slice(0, channels), slice(channels, 2 * channels))
        )
        actions = columns[:, -4].long()
        rewards, discounts, weights = (columns[:, k] for k in (-3, -2, -1))
        if not self.cuda:  # views of the slot (or shapes only): keep copies, then the slot is free
            rewards, discounts, weights = rewards.clone(), discounts.clone(), weights.clone()
            self.pool.release(chunk)
        return [
            DeviceBatch(
                obs[lo:hi],
                actions[lo:hi],
                rewards[lo:hi],
                next_obs[lo:hi],
                discounts[lo:hi],
                weights[lo:hi],
                chunk.indices[lo:hi],
                chunk.generations[lo:hi],
            )
            for lo, hi in ((k, k + self.batch_size) for k in range(0, len(chunk), self.batch_size))
        ]

    def reclaim(self) -> None:
        """Release the slots whose uploads are done (CUDA; the oldest first)."""
        while self.uploading and self.uploading[0][1].query():
            self.pool.release(self.uploading.popleft()[0])

    def close(self) -> None:
        """Wait for the uploads, release their slots and unlock the pages."""
        for chunk, uploaded in self.uploading:
            uploaded.synchronize()
            self.pool.release(chunk)
        self.uploading.clear()
        if self.registered:
            cudart = torch.cuda.cudart()
            for pointer in self.registered:
                cudart.cudaHostUnregister(pointer)
            self.registered.clear()


class PriorityWriter:
    """New priorities back to the memory, ``chunk`` learning steps per round trip, on a thread.

    Each step's |TD| is copied off the device without waiting (into page-locked memory, with an
    event); the writer thread waits for those copies, so the learning loop never waits for the GPU.
    A batch sampled meanwhile may miss a few steps' updates, as in Ape-X's learner.
    """

    def __init__(
        self,
        redis_url: str,
        config: MemoryConfig,
        *,
        chunk: int,
        priority_eps: float,
        should_stop: Callable[[], bool],
        on_outage: Callable[[str], None],
    ) -> None:
        self.redis_url = redis_url
        self.config = config
        self.chunk = chunk
        self.priority_eps = priority_eps
        self.should_stop = should_stop
        self.on_outage = on_outage
        self.memory: ReplayMemory | None = None
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="priorities")
        self.writes: deque[Future[int]] = deque()
        self.buffer: list[tuple[np.ndarray, np.ndarray, torch.Tensor, torch.cuda.Event | None]] = []

    def add(self, indices: np.ndarray, generations: np.ndarray, td_abs: torch.Tensor) -> None:
        """Queue one step's new priorities (|TD| ``[B]`` on any device); raises a failed write's error."""
        while self.writes and self.writes[0].done():
            self.writes.popleft().result()
        copied: torch.cuda.Event | None = None
        if td_abs.device.type == "cuda":
            host = torch.empty(td_abs.shape, dtype=td_abs.dtype, pin_memory=True)
            host.copy_(td_abs, non_blocking=True)
            copied = torch.cuda.Event()
            copied.record()
            td_abs = host
        self.buffer.append((indices, generations, td_abs, copied))
        if len(self.buffer) >= self.chunk:
            self.flush()

    def flush(self) -> None:
        """Send what is queued to the writer thread."""
        if self.buffer:
            self.writes.append(self.thread.submit(self._write, self.buffer))
            self.buffer = []

    def _write(
        self, steps: list[tuple[np.ndarray, np.ndarray, torch.Tensor, torch.cuda.Event | None]]
    ) -> int:
        for *_, copied in steps:
            if copied is not None:
                copied.synchronize()  # this thread waits for the GPU, the learner does not
        indices = np.concatenate([step[0] for step in steps])
        generations = np.concatenate([step[1] for step in steps])
        priorities = (
            np.concatenate([step[2].numpy() for step in steps]).astype(np.float64) + self.priority_eps
        )
        if self.memory is None:
            self.memory = open_memory(self.redis_url, self.config, self.should_stop, self.on_outage)
        memory = self.memory
        return retrying(
            lambda: memory.update_priorities(indices, generations, priorities),
            self.should_stop,
            self.on_outage,
        )

    def drain(self) -> None:
        """Write everything queued and wait for it (before a checkpoint or the end)."""
        self.flush()
        while self.writes:
            self.writes.popleft().result()

    def close(self) -> None:
        try:
            self.drain()
        finally:
            self.thread.shutdown(wait=True)
            if self.memory is not None:
                self.memory.close()
