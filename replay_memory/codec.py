"""Transitions to and from ``hiverl.v1.Transition`` bytes, and observation codecs.

* float observations (CartPole, ...): ``CODEC_RAW``, the C-order little-endian bytes.
* uint8 frame stacks ``[frames, H, W]`` (Atari): ``CODEC_ZSTD_SHARED_FRAMES``. ``obs`` and
  ``next_obs`` of one transition share frames (three of four at n=1); the unique frames are
  stored once, zstd-compressed, in ``obs.data`` and both observations keep the index of their
  frames. On real Pong frames this is about 400 bytes for a 3-step transition (56 KB raw).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

import numpy as np
import zstandard

from proto.hiverl.v1 import transition_pb2 as pb
from replay_memory.batches import TransitionBatch
from replay_memory.config import ObservationSpec
from replay_memory.errors import InvalidPriorityError, InvalidTransitionError, ObservationSpecError

ZSTD_LEVEL = 3
_compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
_decompressor = zstandard.ZstdDecompressor()
DECODE_THREADS = min(8, os.cpu_count() or 1)
PARALLEL_DECODE_MIN_ROWS = 16


def check_priorities(priorities: np.ndarray, field: str = "priorities") -> np.ndarray:
    """Returns priorities as float64, raising if any is NaN, infinite or negative."""
    p = np.asarray(priorities, dtype=np.float64)
    bad = ~np.isfinite(p) | (p < 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InvalidPriorityError(f"{field}[{i}]", float(p.flat[i]), "priorities must be finite and >= 0")
    return p


def validate_batch(batch: TransitionBatch, spec: ObservationSpec) -> int:
    """Checks every array of ``batch`` against ``spec`` and each other; returns B."""
    b = len(batch.actions)
    if b < 1:
        raise InvalidTransitionError("actions", batch.actions.shape, "a batch needs at least one transition")
    for name in ("obs", "next_obs"):
        a = getattr(batch, name)
        if not isinstance(a, np.ndarray) or a.dtype != np.dtype(spec.dtype):
            got = str(a.dtype) if isinstance(a, np.ndarray) else type(a).__name__
            raise ObservationSpecError(f"{name}.dtype", got, f"expected {spec.dtype}")
        if a.shape != (b, *spec.shape):
            raise ObservationSpecError(f"{name}.shape", a.shape, f"expected {(b, *spec.shape)}")
    for name in ("rewards", "discounts", "terminated", "truncated", "n_steps", "episode_ids", "step_indices"):
        a = np.asarray(getattr(batch, name))
        if a.shape != (b,):
            raise InvalidTransitionError(f"{name}.shape", a.shape, f"expected ({b},) like actions")
    actions = np.asarray(batch.actions)
    if actions.shape != (b,) or actions.dtype.kind not in "iu":
        raise InvalidTransitionError("actions", f"{actions.dtype}{actions.shape}", f"int64 of shape ({b},)")
    for name in ("rewards", "discounts"):
        a = np.asarray(getattr(batch, name), dtype=np.float64)
        if not np.isfinite(a).all():
            raise InvalidTransitionError(name, float(a[~np.isfinite(a)][0]), "must be finite")
    if (np.asarray(batch.n_steps) < 1).any():
        raise InvalidTransitionError("n_steps", int(np.asarray(batch.n_steps).min()), "must be >= 1")
    if not isinstance(batch.worker_id, str) or not batch.worker_id:
        raise InvalidTransitionError("worker_id", batch.worker_id, "a non-empty string")
    if batch.priorities is not None:
        p = np.asarray(batch.priorities)
        if p.shape != (b,):
            raise InvalidPriorityError("priorities.shape", p.shape, f"expected ({b},)")
        check_priorities(p)
    return b


def encode_batch(batch: TransitionBatch, spec: ObservationSpec) -> list[bytes]:
    """Serializes a validated batch, one ``Transition`` per row."""
    now = time.time()
    actions = np.asarray(batch.actions).tolist()
    rewards = np.asarray(batch.rewards, dtype=np.float32).tolist()
    discounts = np.asarray(batch.discounts, dtype=np.float32).tolist()
    terminated = np.asarray(batch.terminated, dtype=bool).tolist()
    truncated = np.asarray(batch.truncated, dtype=bool).tolist()
    n_steps = np.asarray(batch.n_steps).tolist()
    episode_ids = np.asarray(batch.episode_ids).tolist()
    step_indices = np.asarray(batch.step_indices).tolist()
    priorities = None if batch.priorities is None else np.asarray(batch.priorities).tolist()
    shape = list(spec.shape)
    out = []
    for i in range(len(actions)):
        obs, next_obs = _encode_pair(batch.obs[i], batch.next_obs[i], spec, shape)
        t = pb.Transition(
            obs=obs,
            discrete_action=actions[i],
            reward=rewards[i],
            next_obs=next_obs,
            discount=discounts[i],
            terminated=terminated[i],
            truncated=truncated[i],
            n_steps=n_steps[i],
            worker_id=batch.worker_id,
            episode_id=episode_ids[i],
            step_index=step_indices[i],
            time=now,
        )
        if priorities is not None:
            t.initial_priority = priorities[i]
        out.append(t.SerializeToString())
    return out


def _encode_pair(
    obs: np.ndarray, next_obs: np.ndarray, spec: ObservationSpec, shape: list[int]
) -> tuple[pb.EncodedArray, pb.EncodedArray]:
    if not spec.is_frame_stack:
        return (
            pb.EncodedArray(dtype=spec.dtype, shape=shape, codec=pb.CODEC_RAW, data=obs.tobytes()),
            pb.EncodedArray(dtype=spec.dtype, shape=shape, codec=pb.CODEC_RAW, data=next_obs.tobytes()),
        )
    unique: dict[bytes, int] = {}
    indices: list[list[int]] = [[], []]
    for which, stack in enumerate((obs, next_obs)):
        for frame in stack:
            indices[which].append(unique.setdefault(frame.tobytes(), len(unique)))
    data = _compressor.compress(b"".join(unique))
    return (
        pb.EncodedArray(
            dtype=spec.dtype,
            shape=shape,
            codec=pb.CODEC_ZSTD_SHARED_FRAMES,
            data=data,
            frame_indices=indices[0],
        ),
        pb.EncodedArray(
            dtype=spec.dtype, shape=shape, codec=pb.CODEC_ZSTD_SHARED_FRAMES, frame_indices=indices[1]
        ),
    )


def parse_transition(payload: bytes, spec: ObservationSpec) -> pb.Transition:
    """Parses and checks one payload; raises :class:`InvalidTransitionError` naming what is wrong."""
    try:
        t = pb.Transition.FromString(payload)
    except Exception as e:  # protobuf raises DecodeError (and others on garbage)
        raise InvalidTransitionError(
            "payload", f"{len(payload)} bytes", f"not a hiverl.v1.Transition ({e})"
        ) from e
    for name in ("obs", "next_obs"):
        if not t.HasField(name):
            raise InvalidTransitionError(name, None, "every transition needs obs and next_obs")
        a = getattr(t, name)
        if a.dtype != spec.dtype:
            raise ObservationSpecError(f"{name}.dtype", a.dtype, f"expected {spec.dtype}")
        if tuple(a.shape) != spec.shape:
            raise ObservationSpecError(f"{name}.shape", tuple(a.shape), f"expected {spec.shape}")
    if t.WhichOneof("action") != "discrete_action":
        raise InvalidTransitionError("action", t.WhichOneof("action"), "a discrete_action is required")
    if t.n_steps < 1:
        raise InvalidTransitionError("n_steps", t.n_steps, "must be >= 1")
    expected = pb.CODEC_ZSTD_SHARED_FRAMES if spec.is_frame_stack else pb.CODEC_RAW
    if t.obs.codec != expected or t.next_obs.codec != expected:
        raise InvalidTransitionError(
            "obs.codec", pb.Codec.Name(t.obs.codec), f"expected {pb.Codec.Name(expected)}"
        )
    # decoding the observations is the final check (sizes, indices, compressed data)
    decode_observations(t, spec)
    return t


def decode_observations(t: pb.Transition, spec: ObservationSpec) -> tuple[np.ndarray, np.ndarray]:
    """``(obs, next_obs)`` of one parsed transition; raises InvalidTransitionError on bad data."""
    dtype = np.dtype(spec.dtype)
    if t.obs.codec == pb.CODEC_RAW:
        if len(t.obs.data) != spec.nbytes or len(t.next_obs.data) != spec.nbytes:
            raise InvalidTransitionError(
                "obs.data", f"{len(t.obs.data)}/{len(t.next_obs.data)} bytes", f"expected {spec.nbytes}"
            )
        return (
            np.frombuffer(t.obs.data, dtype).reshape(spec.shape),
            np.frombuffer(t.next_obs.data, dtype).reshape(spec.shape),
        )
    if t.obs.codec == pb.CODEC_ZSTD_SHARED_FRAMES:
        try:
            raw = _decompressor.decompress(t.obs.data, max_output_size=2 * spec.nbytes)
        except zstandard.ZstdError as e:
            raise InvalidTransitionError(
                "obs.data", f"{len(t.obs.data)} bytes", f"not zstd data ({e})"
            ) from e
        frames = np.frombuffer(raw, dtype).reshape(-1, *spec.shape[1:])
        _check_frame_indices(t, spec, len(raw))
        return frames[list(t.obs.frame_indices)], frames[list(t.next_obs.frame_indices)]
    raise InvalidTransitionError("obs.codec", t.obs.codec, "CODEC_RAW or CODEC_ZSTD_SHARED_FRAMES")


def _check_frame_indices(t: pb.Transition, spec: ObservationSpec, raw_bytes: int) -> int:
    """The number of unique frames in ``raw_bytes`` of decompressed data, checked against the
    transition's frame indices (InvalidTransitionError when they do not fit)."""
    frame_bytes = spec.nbytes // spec.shape[0]
    n_frames = raw_bytes // frame_bytes
    oi, ni = t.obs.frame_indices, t.next_obs.frame_indices
    if (
        raw_bytes % frame_bytes
        or len(oi) != spec.shape[0]
        or len(ni) != spec.shape[0]
        or max(*oi, *ni) >= n_frames
    ):
        raise InvalidTransitionError("obs.frame_indices", [*oi, *ni], f"{n_frames} unique frames decoded")
    return n_frames


def _decompress_many(blobs: list[bytes], max_size: int) -> list[bytes | memoryview | None]:
    """Decompress many zstd frames; ``None`` where one is corrupt.

    Decompressing is much of the cost of sampling frame stacks, so a batch is decompressed by zstd's
    C threads, outside the GIL, when it is large enough to pay for them; a batch with a bad frame
    falls back to one frame at a time to find it.
    """
    if len(blobs) >= PARALLEL_DECODE_MIN_ROWS and DECODE_THREADS > 1:
        try:
            frames: list[bytes | bytearray | memoryview] = list(blobs)
            segments = _decompressor.multi_decompress_to_buffer(frames, threads=DECODE_THREADS)
            # Segments expose the buffer protocol (no copy); the stubs do not declare it.
            return [memoryview(segments[k]) for k in range(len(segments))]  # type: ignore[arg-type]
        except zstandard.ZstdError:
            pass
    out: list[bytes | memoryview | None] = []
    for blob in blobs:
        try:
            out.append(_decompressor.decompress(blob, max_output_size=max_size))
        except zstandard.ZstdError:
            out.append(None)
    return out


def _parse_rows(
    payloads: Sequence[bytes | None], spec: ObservationSpec
) -> tuple[list[tuple[int, pb.Transition]], list[int]]:
    """Parse every payload; ``(index, transition)`` of the ones of this memory's spec, and the rest."""
    expected = pb.CODEC_ZSTD_SHARED_FRAMES if spec.is_frame_stack else pb.CODEC_RAW
    parsed: list[tuple[int, pb.Transition]] = []
    bad: list[int] = []
    for i, payload in enumerate(payloads):
        try:
            if payload is None:
                raise InvalidTransitionError("payload", None, "missing")
            t = pb.Transition.FromString(payload)
            o, nx = t.obs, t.next_obs
            if o.codec != expected or nx.codec != expected:
                raise InvalidTransitionError("obs.codec", o.codec, "not this memory's codec")
            if spec.is_frame_stack:
                if o.dtype != spec.dtype or tuple(o.shape) != spec.shape:
                    raise InvalidTransitionError("obs", None, "not this memory's spec")
            elif len(o.data) != spec.nbytes or len(nx.data) != spec.nbytes:
                raise InvalidTransitionError("obs", None, "raw observation of the wrong size")
        except Exception:
            bad.append(i)
            continue
        parsed.append((i, t))
    return parsed, bad


def _frame_stack_rows(
    parsed: list[tuple[int, pb.Transition]], spec: ObservationSpec, bad: list[int], out: memoryview | None
) -> tuple[list[pb.Transition], np.ndarray, np.ndarray, np.ndarray]:
    """Decompress the rows at once; their unique frames joined, and each row's frame indices into
    them. Rows whose data does not decode are added to ``bad``."""
    raws = _decompress_many([t.obs.data for _, t in parsed], 2 * spec.nbytes)
    good: list[pb.Transition] = []
    pieces: list[bytes | memoryview] = []
    indices: list[list[int]] = []
    offset = 0
    for (i, t), raw in zip(parsed, raws, strict=True):
        try:
            if raw is None:
                raise InvalidTransitionError("obs.data", None, "not zstd data")
            n_frames = _check_frame_indices(t, spec, len(raw))
        except Exception:
            bad.append(i)
            continue
        indices.append([offset + k for k in (*t.obs.frame_indices, *t.next_obs.frame_indices)])
        pieces.append(raw)
        offset += n_frames
        good.append(t)
    frames = _join(pieces, spec.dtype, out).reshape(offset, *spec.shape[1:])
    both = np.array(indices, dtype=np.int64).reshape(len(good), 2 * spec.shape[0])
    return good, frames, both[:, : spec.shape[0]], both[:, spec.shape[0] :]


def _join(pieces: Sequence[bytes | memoryview], dtype: str, out: memoryview | None) -> np.ndarray:
    """The pieces one after the other in one writable array: in ``out`` when it has room (a caller's
    shared memory: no copy after this one), else in a new buffer."""
    size = sum(len(piece) for piece in pieces)
    if out is None or len(out) < size:
        return np.frombuffer(bytearray().join(pieces), dtype)
    at = 0
    for piece in pieces:
        out[at : at + len(piece)] = piece
        at += len(piece)
    return np.frombuffer(out, dtype, count=size // np.dtype(dtype).itemsize)


def decode_rows(
    payloads: Sequence[bytes | None], spec: ObservationSpec, frames_out: memoryview | None = None
) -> tuple[dict[str, np.ndarray], list[int]]:
    """Decodes sampled payloads into the columns of a :class:`SampledBatch`; returns
    ``(arrays, bad_rows)``. Rows that are missing or corrupt are listed in ``bad_rows`` and left out.

    Observations come as unique ``frames`` and each row's ``obs_frames`` / ``next_obs_frames``
    (see :class:`SampledBatch`): a frame stack's unique frames are decompressed once and never
    stacked here; a flat observation is one frame. With ``frames_out`` (bytes) the frames are
    written there when they fit.
    """
    parsed, bad = _parse_rows(payloads, spec)
    if spec.is_frame_stack:
        good, frames, obs_frames, next_obs_frames = _frame_stack_rows(parsed, spec, bad, frames_out)
        bad.sort()
    else:
        good = [t for _, t in parsed]
        pieces = [t.obs.data for t in good] + [t.next_obs.data for t in good]
        frames = _join(pieces, spec.dtype, frames_out).reshape(2 * len(good), *spec.shape)
        obs_frames = np.arange(len(good), dtype=np.int64)[:, None]
        next_obs_frames = obs_frames + len(good)
    arrays = {
        "frames": frames,
        "obs_frames": obs_frames,
        "next_obs_frames": next_obs_frames,
        "actions": np.fromiter((t.discrete_action for t in good), np.int64, len(good)),
        "rewards": np.fromiter((t.reward for t in good), np.float32, len(good)),
        "discounts": np.fromiter((t.discount for t in good), np.float32, len(good)),
    }
    return arrays, bad
