"""The actor's vectorised n-step fold and its initial priorities from acting-time values, checked
against the reference definitions in game/dqn.py (NStepAccumulator, initial_priorities)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from game.acting import NStepFold, Rows, action_values, epsilon_greedy_q, td_priorities
from game.dqn import NStepAccumulator, QNetwork, epsilon_greedy, initial_priorities

GAMMA = 0.9
EPS = 1e-3
CPU = torch.device("cpu")


def play(
    num_envs: int,
    n: int,
    steps: int,
    seed: int,
    network: QNetwork | None = None,
    end_rate: float = 0.08,
) -> tuple[list[Rows], list]:
    """Random episodes (terminations and truncations) fed to both the fold and the reference.

    Observations are [3] floats, unique per (env, step); the reference gets the actor's old
    bookkeeping of episode ids and step indices. Values come from ``network`` (random without one).
    """
    rng = np.random.default_rng(seed)
    fold = NStepFold(num_envs, n, GAMMA)
    reference = NStepAccumulator(num_envs, n, GAMMA)
    episode_ids = np.arange(num_envs)
    episode_steps = np.zeros(num_envs, dtype=np.int64)
    next_id = num_envs

    def values(o: np.ndarray) -> np.ndarray:
        if network is None:
            return rng.normal(size=(len(o), 4)).astype(np.float32)
        return action_values(network, o, CPU)

    obs = rng.normal(size=(num_envs, 3)).astype(np.float32)
    rows: list[Rows] = []
    expected = []
    for _ in range(steps):
        q = values(obs)
        actions = rng.integers(0, 4, num_envs)
        rewards = rng.normal(size=num_envs)
        terminated = rng.random(num_envs) < end_rate
        truncated = rng.random(num_envs) < end_rate / 2  # sometimes both: termination wins
        successors = rng.normal(size=(num_envs, 3)).astype(np.float32)
        done = terminated | truncated
        next_obs = np.where(done[:, None], rng.normal(size=(num_envs, 3)), successors).astype(np.float32)
        final_obs = np.array([successors[i] if done[i] else None for i in range(num_envs)], dtype=object)
        final_values = None
        if (truncated & ~terminated).any():
            final_values = values(successors).max(axis=1)
            final_values[~(truncated & ~terminated)] = np.nan  # must not be used
        fold.push(obs, q, actions, rewards, next_obs, terminated, truncated, final_obs, final_values)
        for i in range(num_envs):
            successor = successors[i] if done[i] else next_obs[i]
            expected += reference.push(
                i,
                obs[i],
                int(actions[i]),
                float(rewards[i]),
                successor,
                bool(terminated[i]),
                bool(truncated[i]),
                int(episode_ids[i]),
                int(episode_steps[i]),
            )
            episode_steps[i] += 1
            if done[i]:
                episode_steps[i], episode_ids[i], next_id = 0, next_id, next_id + 1
        taken = fold.take()
        if taken is not None:
            rows.append(taken)
        obs = next_obs
    fold.resolve(values(obs).max(axis=1))
    taken = fold.take()
    if taken is not None:
        rows.append(taken)
    return rows, expected


@pytest.mark.parametrize("n", [1, 3])
@pytest.mark.parametrize("num_envs", [1, 5])
def test_fold_emits_the_reference_transitions(n: int, num_envs: int) -> None:
    rows_list, expected = play(num_envs, n, steps=300, seed=10 * n + num_envs)
    rows = Rows.concat(rows_list)
    assert len(rows) == len(expected) > 100
    assert rows.terminated.any() and rows.truncated.any() and (rows.n_steps < n).any() == (n > 1)
    order = np.lexsort((rows.step_indices, rows.episode_ids))
    expected.sort(key=lambda t: (t.episode_id, t.step_index))
    for k, t in zip(order, expected, strict=True):
        assert (rows.episode_ids[k], rows.step_indices[k]) == (t.episode_id, t.step_index)
        assert np.array_equal(rows.obs[k], t.obs) and np.array_equal(rows.next_obs[k], t.next_obs)
        assert rows.actions[k] == t.action and rows.n_steps[k] == t.n_steps
        assert (rows.terminated[k], rows.truncated[k]) == (t.terminated, t.truncated)
        assert rows.rewards[k] == pytest.approx(t.reward, rel=1e-6, abs=1e-6)
        assert rows.discounts[k] == pytest.approx(t.discount, rel=1e-6)
    assert rows.rewards.dtype == np.float32 and rows.discounts.dtype == np.float32
    assert rows.n_steps.dtype == np.int32 and rows.actions.dtype == np.int64
    assert np.isfinite(rows.bootstrap).all()
    assert (rows.bootstrap[rows.terminated] == 0).all()


@pytest.mark.parametrize("n", [1, 3])
def test_priorities_from_acting_values_equal_the_reference_with_fixed_weights(n: int) -> None:
    """The old definition ran the network over (s, s') at insert time; the actor now reuses the values
    of its acting forwards. With the same weights throughout they agree (terminal and not)."""
    torch.manual_seed(3)
    network = QNetwork((3,), 4, (16,), dueling=True).requires_grad_(False)
    rows = Rows.concat(play(4, n, steps=200, seed=n, network=network)[0])
    assert (~rows.terminated & ~rows.truncated).sum() > 100 and rows.truncated.any()
    ours = td_priorities(rows.q_taken, rows.rewards, rows.discounts, rows.bootstrap, EPS)
    old = initial_priorities(
        network,
        torch.as_tensor(rows.obs),
        torch.as_tensor(rows.actions),
        torch.as_tensor(rows.rewards),
        torch.as_tensor(rows.discounts),
        torch.as_tensor(np.ascontiguousarray(rows.next_obs)),
        EPS,
    )
    assert ours.dtype == np.float32 and ours.shape == (len(rows),)
    np.testing.assert_allclose(ours, old, rtol=1e-5, atol=1e-6)
    assert (ours >= EPS).all()


def test_values_are_the_ones_computed_while_acting() -> None:
    """Q(s_t, a_t) comes from step t's values, the bootstrap from step t+n's (weights may change)."""
    fold = NStepFold(num_envs=1, n=2, gamma=GAMMA)
    obs = [np.array([[float(t)]], dtype=np.float32) for t in range(5)]
    q = [np.array([[10.0 * t, 10.0 * t + 1]], dtype=np.float32) for t in range(5)]
    no = np.array([False])
    for t in range(3):
        fold.push(obs[t], q[t], np.array([t % 2]), np.array([1.0]), obs[t + 1], no, no)
    # Windows starting at t = 0 (bootstrap from step 2's values) and t = 1 (waits for step 3's).
    assert len(fold) == 1
    first = fold.take()
    assert first is not None and first.q_taken.tolist() == [0.0] and first.bootstrap.tolist() == [21.0]
    fold.push(
        obs[3],
        q[3],
        np.array([1]),
        np.array([1.0]),
        obs[4],
        no,
        np.array([True]),
        [obs[4][0]],
        np.array([99.0]),
    )
    rows = fold.take()
    assert rows is not None
    assert rows.step_indices.tolist() == [1, 2, 3]
    assert rows.q_taken.tolist() == [11.0, 20.0, 31.0]
    assert rows.bootstrap.tolist() == [31.0, 99.0, 99.0]  # step 3's max; then the final obs's value
    assert rows.truncated.tolist() == [False, True, True]
    assert fold.episode_ids.tolist() == [1] and fold.episode_steps.tolist() == [0]


def test_an_ended_episode_needs_its_final_observation_and_truncation_its_value() -> None:
    fold = NStepFold(num_envs=2, n=3, gamma=GAMMA)
    o, q = np.zeros((2, 1), np.float32), np.zeros((2, 2), np.float32)
    yes, no = np.array([True, False]), np.array([False, False])
    with pytest.raises(ValueError, match="final_obs"):
        fold.push(o, q, np.array([0, 0]), np.zeros(2), o, yes, no)
    with pytest.raises(ValueError, match="final_values"):
        NStepFold(2, 3, GAMMA).push(o, q, np.array([0, 0]), np.zeros(2), o, no, yes, [o[0], None])
    with pytest.raises(ValueError):
        NStepFold(0, 3, GAMMA)


def test_epsilon_greedy_from_values_draws_like_the_network_version() -> None:
    torch.manual_seed(0)
    network = QNetwork((2,), 4, (8,), dueling=True)
    o = torch.randn(64, 2)
    q = action_values(network, o.numpy(), CPU)
    for epsilon in (0.0, 0.3, np.linspace(0, 1, 64)):
        ours = epsilon_greedy_q(q, epsilon, np.random.default_rng(5))
        reference = epsilon_greedy(network, o, epsilon, np.random.default_rng(5))
        assert ours.dtype == np.int64 and np.array_equal(ours, reference)
