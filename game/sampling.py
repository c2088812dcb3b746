"""Prioritized chunks for the learner, sampled and decoded in processes of their own.

Decoding a chunk of 512 Pong transitions (parsing every row, checking and joining its unique frames)
holds the GIL for ~10 ms of one core; in the learner's process that time would come out of the
learning step, and no number of threads would help. So ``learner.samplers`` sampler processes each
own a memory client and sample chunks ahead of the learner. A sampler writes a chunk into a *slot*
(a file both processes map, in ``/dev/shm`` where it has room): the unique frames, then the per-row
columns the learning step needs packed as float32 (frame indices, action, reward, discount, weight:
all exact in float32). The slot ids, generations and probabilities come through the pipe. The
learner reads the slot without a copy; on a GPU the slots are page-locked once, so each chunk is one
asynchronous upload (:mod:`game.learner_device`).

A slot is written again only after the learner released it; chunks are handed out in request order.
A sampler unlinks its slot files once it has mapped them (the learner mapped them before starting
it), so the memory goes with the processes however they end.
"""

from __future__ import annotations

import contextlib
import mmap
import multiprocessing as mp
import os
import shutil
import signal
import tempfile
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from typing import Any

import numpy as np

from game.hive_memory import Stopped, open_memory, retrying
from hiverl.redis_access import ACCESS_ERRORS
from replay_memory import MemoryConfig, SampledBatch

#: Per-row float32 columns after the frames: obs frames (C), next_obs frames (C), action, reward,
#: discount, importance weight.
EXTRA_COLUMNS = 4
POLL_S = 0.05  # how often a wait for a chunk looks at the stop flag and the samplers' health


class SamplerError(RuntimeError):
    """A sampler process failed (its traceback is the message) or died."""


@dataclass(frozen=True)
class Chunk:
    """One sampled chunk in its slot. ``frames`` ``[F, *frame_shape]`` and ``columns`` ``[N, 2C+4]``
    are views of the slot, valid until :meth:`SamplerPool.release`."""

    sampler: int
    slot: int
    frames: np.ndarray
    columns: np.ndarray
    indices: np.ndarray  # [N] int64 global slot ids in the memory
    generations: np.ndarray  # [N] int64
    probabilities: np.ndarray  # [N] float64
    region: memoryview  # the slot's bytes in use (frames and columns), for one upload

    def __len__(self) -> int:
        return len(self.indices)


def slot_layout(config: MemoryConfig, rows: int) -> tuple[np.dtype[Any], tuple[int, ...], int, int]:
    """``(frame dtype, frame shape, channels C, bytes of a slot)`` for chunks of ``rows`` rows."""
    spec = config.observation
    channels = spec.shape[0] if spec.is_frame_stack else 1
    frame_shape = spec.shape[1:] if spec.is_frame_stack else spec.shape
    dtype = np.dtype(spec.dtype)
    frame_bytes = int(np.prod(frame_shape)) * dtype.itemsize
    frames_bytes = 2 * channels * rows * frame_bytes  # at most every frame of obs and next_obs unique
    columns_bytes = rows * (2 * channels + EXTRA_COLUMNS) * 4
    return dtype, frame_shape, channels, _aligned(frames_bytes) + columns_bytes


def _aligned(nbytes: int, to: int = 64) -> int:
    return -(-nbytes // to) * to


def _slot_folder(total_bytes: int) -> Path:
    """Shared memory (``/dev/shm``) when it has room for the slots, else the temporary folder."""
    shm = Path("/dev/shm")
    if shm.is_dir():
        stats = os.statvfs(shm)
        if stats.f_bavail * stats.f_frsize > 2 * total_bytes:
            return Path(tempfile.mkdtemp(prefix="hiverl-samplers-", dir=shm))
    return Path(tempfile.mkdtemp(prefix="hiverl-samplers-"))


def _map(path: Path, size: int) -> mmap.mmap:
    with path.open("r+b") as file:
        return mmap.mmap(file.fileno(), size)


def write_chunk(slot: mmap.mmap, batch: SampledBatch, channels: int) -> tuple[int, int]:
    """Write ``batch``'s frames (unless they were decoded there) and packed columns into ``slot``;
    returns (frames, bytes used)."""
    frames = np.ascontiguousarray(batch.frames)
    at_start = np.frombuffer(slot, np.uint8, count=frames.nbytes)
    if not np.shares_memory(frames, at_start):
        at_start[:] = frames.reshape(-1).view(np.uint8)
    offset = _aligned(frames.nbytes)
    rows = len(batch)
    width = 2 * channels + EXTRA_COLUMNS
    columns = np.frombuffer(slot, np.float32, count=rows * width, offset=offset).reshape(rows, width)
    columns[:, :channels] = batch.obs_frames
    columns[:, channels : 2 * channels] = batch.next_obs_frames
    columns[:, -4] = batch.actions
    columns[:, -3] = batch.rewards
    columns[:, -2] = batch.discounts
    columns[:, -1] = batch.weights
    return len(frames), offset + columns.nbytes


def _sampler_main(
    redis_url: str,
    config: MemoryConfig,
    rows: int,
    paths: list[Path],
    seed: np.random.SeedSequence,
    threads: int,
    conn: Connection,
    stop: EventType,
) -> None:
    """One sampler process: answer each ("sample", slot, beta) with one chunk written into that slot."""
    from hiverl.threads import limit_threads

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the learner stops us (stop event, then close)
    limit_threads(threads)
    _, _, channels, size = slot_layout(config, rows)
    frames_bytes = size - rows * (2 * channels + EXTRA_COLUMNS) * 4
    slots = [_map(path, size) for path in paths]
    for path in paths:  # both sides have them mapped: a learner killed with -9 leaves nothing behind
        path.unlink(missing_ok=True)
    rng = np.random.default_rng(seed)

    def on_outage(text: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            conn.send(("outage", text))

    try:
        memory = open_memory(redis_url, config, stop.is_set, on_outage)
        while True:
            message = conn.recv()
            if message[0] == "close":
                break
            _, slot, beta = message
            frames_out = memoryview(slots[slot])[:frames_bytes]
            batch = retrying(lambda: memory.sample(rows, beta, rng, frames_out), stop.is_set, on_outage)  # noqa: B023
            n_frames, used = write_chunk(slots[slot], batch, channels)
            conn.send(("chunk", slot, n_frames, used, batch.indices, batch.generations, batch.probabilities))
    except (Stopped, EOFError, KeyboardInterrupt):
        pass
    except ACCESS_ERRORS as error:  # the learner ends with the error itself: one line, not a traceback
        with contextlib.suppress(OSError, ValueError):
            conn.send(("denied", error))
    except Exception:
        with contextlib.suppress(OSError, ValueError):
            conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()


class SamplerPool:
    """``samplers`` processes sampling chunks of ``rows`` transitions; see the module docstring.

    Args:
        redis_url, config: the memory.
        rows: transitions per chunk (``batch_size * sample_chunk``).
        samplers: sampler processes (>= 1).
        slots_per_sampler: chunks each sampler may hold at once (written ahead, or lent out).
        seed: seeds every sampler's draws (each its own child of it).
        threads: the thread budget of each sampler process.
        should_stop: polled while waiting for a chunk; True raises :class:`Stopped`.
        on_outage: told about each failed Redis call of a sampler.
    """

    def __init__(
        self,
        redis_url: str,
        config: MemoryConfig,
        *,
        rows: int,
        samplers: int,
        seed: int,
        threads: int = 1,
        slots_per_sampler: int = 2,
        should_stop: Callable[[], bool] = lambda: False,
        on_outage: Callable[[str], None] = lambda _text: None,
    ) -> None:
        if rows < 1 or samplers < 1 or slots_per_sampler < 1:
            raise ValueError(
                f"rows, samplers, slots_per_sampler must be >= 1 ({rows}, {samplers}, {slots_per_sampler})"
            )
        self.rows = rows
        self.should_stop = should_stop
        self.on_outage = on_outage
        self.dtype, self.frame_shape, self.channels, self.slot_bytes = slot_layout(config, rows)
        self.folder = _slot_folder(self.slot_bytes * samplers * slots_per_sampler)
        context = mp.get_context("spawn")
        self._stop = context.Event()
        self.connections: list[Connection] = []
        self.processes: list[Any] = []
        self.slots: list[list[mmap.mmap]] = []
        self.free: deque[tuple[int, int]] = deque()
        self.in_flight: deque[tuple[int, int]] = deque()
        self.blocked_s = 0.0
        children = np.random.SeedSequence(seed).spawn(samplers)
        for k in range(samplers):
            paths = [self.folder / f"sampler-{k}-slot-{s}" for s in range(slots_per_sampler)]
            for path in paths:
                with path.open("wb") as file:
                    file.truncate(self.slot_bytes)
            self.slots.append([_map(path, self.slot_bytes) for path in paths])
            reader, writer = context.Pipe(duplex=True)
            process = context.Process(
                target=_sampler_main,
                args=(redis_url, config, rows, paths, children[k], threads, writer, self._stop),
                name=f"hiverl-sampler-{k}",
                daemon=True,
            )
            process.start()
            writer.close()
            self.connections.append(reader)
            self.processes.append(process)
        # Round robin: the first slot of every sampler, then the second, ...
        self.free.extend((k, s) for s in range(slots_per_sampler) for k in range(samplers))

    @property
    def can_request(self) -> bool:
        """A slot is free for one more request."""
        return bool(self.free)

    def request(self, beta: float) -> None:
        """Ask the next free sampler for one more chunk (``can_request`` must be true)."""
        sampler, slot = self.free.popleft()
        try:
            self.connections[sampler].send(("sample", slot, float(beta)))
        except OSError as error:
            raise SamplerError(f"sampler {sampler} died ({error})") from error
        self.in_flight.append((sampler, slot))

    def next_chunk(self) -> Chunk | None:
        """The oldest requested chunk (waiting for it), or None when nothing was requested."""
        if not self.in_flight:
            return None
        sampler, slot = self.in_flight.popleft()
        connection = self.connections[sampler]
        tick = time.perf_counter()
        try:
            while True:
                if not connection.poll(POLL_S):
                    if self.should_stop():
                        raise Stopped("stopped while waiting for a sampled chunk")
                    if not self.processes[sampler].is_alive():
                        raise SamplerError(
                            f"sampler {sampler} died (exit code {self.processes[sampler].exitcode})"
                        )
                    continue
                try:
                    message = connection.recv()
                except (EOFError, OSError) as error:
                    raise SamplerError(f"sampler {sampler} died ({error!r})") from error
                if message[0] == "outage":
                    self.on_outage(message[1])
                elif message[0] == "denied":
                    raise message[1]
                elif message[0] == "error":
                    raise SamplerError(f"sampler {sampler} failed:\n{message[1]}")
                else:
                    return self._chunk(sampler, slot, message)
        finally:
            self.blocked_s += time.perf_counter() - tick

    def _chunk(self, sampler: int, slot: int, message: tuple[Any, ...]) -> Chunk:
        _, written, n_frames, used, indices, generations, probabilities = message
        assert written == slot, (written, slot)  # each sampler answers in request order
        buffer = self.slots[sampler][slot]
        frames = np.frombuffer(buffer, self.dtype, count=n_frames * int(np.prod(self.frame_shape)))
        width = 2 * self.channels + EXTRA_COLUMNS
        offset = _aligned(frames.nbytes)
        columns = np.frombuffer(buffer, np.float32, count=len(indices) * width, offset=offset)
        return Chunk(
            sampler,
            slot,
            frames.reshape(n_frames, *self.frame_shape),
            columns.reshape(len(indices), width),
            indices,
            generations,
            probabilities,
            memoryview(buffer)[:used],
        )

    def release(self, chunk: Chunk) -> None:
        """The learner is done with ``chunk``'s slot: it may be written again."""
        self.free.append((chunk.sampler, chunk.slot))

    def close(self) -> None:
        """Stop the samplers and remove their slots."""
        self._stop.set()
        for connection in self.connections:
            with contextlib.suppress(OSError, ValueError):
                connection.send(("close",))
        for process in self.processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join(timeout=5)
        for connection in self.connections:
            connection.close()
        for slots in self.slots:
            for buffer in slots:
                with contextlib.suppress(BufferError):  # a view still held: the mapping goes with it
                    buffer.close()
        shutil.rmtree(self.folder, ignore_errors=True)
