"""Atari frame stacks: shared-frame zstd codec round-trips and stays under 2 KB per transition."""

from __future__ import annotations

import numpy as np
import pytest

from replay_memory import ObservationSpec, TransitionBatch
from tests.helpers.replay import MakeMemory

N_STEP = 3


@pytest.fixture(scope="module")
def pong_stacks() -> np.ndarray:
    """[T, 4, 84, 84] uint8 stacked observations of real Pong play (random actions)."""
    import ale_py
    import gymnasium
    from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation

    gymnasium.register_envs(ale_py)
    env = gymnasium.make("ALE/Pong-v5", frameskip=1, repeat_action_probability=0.0)
    env = FrameStackObservation(AtariPreprocessing(env, frame_skip=4), 4)
    obs, _ = env.reset(seed=0)
    rng = np.random.default_rng(0)
    stacks = [obs]
    for _ in range(200):
        obs, *_ = env.step(int(rng.integers(6)))
        stacks.append(obs)
    env.close()
    return np.stack(stacks)


def _batch(stacks: np.ndarray) -> TransitionBatch:
    b = len(stacks) - N_STEP
    ids = np.arange(b)
    return TransitionBatch(
        obs=stacks[:b],
        actions=ids % 6,
        rewards=ids.astype(np.float32),
        next_obs=stacks[N_STEP:],
        discounts=np.full(b, 0.99**N_STEP, np.float32),
        terminated=np.zeros(b, bool),
        truncated=np.zeros(b, bool),
        n_steps=np.full(b, N_STEP, np.int32),
        episode_ids=np.zeros(b, np.int64),
        step_indices=ids,
        worker_id="atari",
    )


def test_atari_round_trip_and_size(make_memory: MakeMemory, pong_stacks: np.ndarray) -> None:
    memory = make_memory(capacity=256, observation=ObservationSpec((4, 84, 84), "uint8"))
    batch = _batch(pong_stacks)
    memory.insert(batch)
    sample = memory.sample(64, 0.4, rng=np.random.default_rng(0))
    ids = sample.rewards.astype(np.int64)
    np.testing.assert_array_equal(sample.obs, batch.obs[ids])
    np.testing.assert_array_equal(sample.next_obs, batch.next_obs[ids])
    np.testing.assert_array_equal(sample.actions, ids % 6)
    # Redis's own accounting of the stored transitions (SAMPLES 0: every field counted)
    shard = memory.shards[0]
    data_bytes = shard.client.memory_usage(shard.keys[1], samples=0)
    per_transition = data_bytes / len(batch)
    assert per_transition <= 2048, per_transition
    assert per_transition < pong_stacks[0].nbytes * 2 / 50  # >50x smaller than the raw pair


def stacks(arrays: dict[str, np.ndarray], spec: ObservationSpec) -> tuple[np.ndarray, np.ndarray]:
    """Decoded columns' observations, stacked from their unique frames."""
    rows, frames = len(arrays["actions"]), arrays["frames"]
    return (
        frames[arrays["obs_frames"]].reshape(rows, *spec.shape),
        frames[arrays["next_obs_frames"]].reshape(rows, *spec.shape),
    )


@pytest.mark.parametrize("threads", [1, 4])
def test_batch_decode_drops_only_the_corrupt_row(
    pong_stacks: np.ndarray, threads: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sampled rows are decompressed as one batch (zstd threads); one bad row costs only itself."""
    from proto.hiverl.v1 import transition_pb2 as pb
    from replay_memory import codec

    monkeypatch.setattr(codec, "DECODE_THREADS", threads)
    spec = ObservationSpec(shape=(4, 84, 84), dtype="uint8")
    batch = _batch(pong_stacks[:40])
    payloads: list[bytes | None] = list(codec.encode_batch(batch, spec))
    assert len(payloads) >= codec.PARALLEL_DECODE_MIN_ROWS
    clean, none_bad = codec.decode_rows(payloads, spec)
    assert none_bad == []
    obs, next_obs = stacks(clean, spec)
    np.testing.assert_array_equal(obs, batch.obs)
    np.testing.assert_array_equal(next_obs, batch.next_obs)
    # Each row's unique frames are decoded once: 8 per row at most, 7 here (n=3 shares one).
    assert len(clean["frames"]) < 8 * len(batch)

    broken = pb.Transition.FromString(payloads[7])  # type: ignore[arg-type]
    broken.obs.data = b"\x28\xb5\x2f\xfd not really zstd"
    payloads[7] = broken.SerializeToString()
    payloads[20] = None

    arrays, bad = codec.decode_rows(payloads, spec)

    assert bad == [7, 20]
    keep = [i for i in range(len(payloads)) if i not in bad]
    obs, next_obs = stacks(arrays, spec)
    np.testing.assert_array_equal(obs, batch.obs[keep])
    np.testing.assert_array_equal(next_obs, batch.next_obs[keep])
    np.testing.assert_array_equal(arrays["actions"], batch.actions[keep])
