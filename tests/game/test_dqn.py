"""The agent's math on tiny hand-computed examples (no memory involved)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from game.dqn import (
    DQNAgent,
    NStepAccumulator,
    QNetwork,
    double_dqn_targets,
    epsilon_greedy,
    initial_priorities,
    select_device,
    weighted_huber_loss,
)
from hiverl.config_sections import AgentSettings

GAMMA = 0.9


def obs(x: float) -> np.ndarray:
    return np.array([x], dtype=np.float32)


def feed(acc: NStepAccumulator, rewards: list[float], end: str | None) -> list:
    """Push one episode of len(rewards) steps (states 0, 1, 2, ...); end in {None, 'term', 'trunc'}."""
    out = []
    for t, r in enumerate(rewards):
        last = t == len(rewards) - 1
        out += acc.push(
            0,
            obs(t),
            action=t % 2,
            reward=r,
            next_obs=obs(t + 1),
            terminated=last and end == "term",
            truncated=last and end == "trunc",
            episode_id=7,
            step_index=t,
        )
    return out


def test_n_step_returns_mid_episode() -> None:
    acc = NStepAccumulator(num_envs=1, n=3, gamma=GAMMA)
    out = feed(acc, [1.0, 2.0, 3.0, 4.0], end=None)
    # Two windows complete: starting at t=0 and t=1.
    assert [t.step_index for t in out] == [0, 1]
    assert out[0].reward == pytest.approx(1 + 0.9 * 2 + 0.81 * 3)
    assert out[1].reward == pytest.approx(2 + 0.9 * 3 + 0.81 * 4)
    assert out[0].next_obs[0] == 3.0 and out[1].next_obs[0] == 4.0
    assert out[0].discount == pytest.approx(0.9**3)
    assert all(t.n_steps == 3 and not t.terminated and not t.truncated for t in out)


def test_termination_flushes_without_bootstrap() -> None:
    acc = NStepAccumulator(num_envs=1, n=3, gamma=GAMMA)
    out = feed(acc, [1.0, 2.0, 3.0, 4.0], end="term")
    assert [t.step_index for t in out] == [0, 1, 2, 3]
    last_three = out[1:]
    assert [t.n_steps for t in last_three] == [3, 2, 1]
    assert [t.reward for t in last_three] == pytest.approx([2 + 0.9 * 3 + 0.81 * 4, 3 + 0.9 * 4, 4.0])
    assert [t.discount for t in last_three] == [0.0, 0.0, 0.0]
    assert all(t.terminated and not t.truncated for t in last_three)
    assert all(t.next_obs[0] == 4.0 for t in last_three)  # the final observation, not a reset one
    assert all(len(w) == 0 for w in acc.windows)


def test_truncation_bootstraps_with_shorter_horizon() -> None:
    acc = NStepAccumulator(num_envs=1, n=3, gamma=GAMMA)
    out = feed(acc, [1.0, 1.0], end="trunc")
    assert [t.n_steps for t in out] == [2, 1]
    assert [t.discount for t in out] == pytest.approx([0.81, 0.9])
    assert [t.reward for t in out] == pytest.approx([1.9, 1.0])
    assert all(t.truncated and not t.terminated for t in out)


def test_envs_have_separate_windows() -> None:
    acc = NStepAccumulator(num_envs=2, n=2, gamma=GAMMA)
    assert acc.push(0, obs(0), 0, 1.0, obs(1), False, False, 1, 0) == []
    assert acc.push(1, obs(10), 1, 5.0, obs(11), False, False, 2, 0) == []
    (t0,) = acc.push(0, obs(1), 0, 1.0, obs(2), False, False, 1, 1)
    assert t0.reward == pytest.approx(1.9) and t0.episode_id == 1
    (t1,) = acc.push(1, obs(11), 1, 5.0, obs(12), True, False, 2, 1)[:1]
    assert t1.reward == pytest.approx(9.5) and t1.discount == 0.0


def test_double_dqn_target_by_hand() -> None:
    rewards = torch.tensor([1.0, 2.0])
    discounts = torch.tensor([0.5, 0.0])
    next_online = torch.tensor([[1.0, 3.0], [5.0, 0.0]])  # argmax: action 1, action 0
    next_target = torch.tensor([[10.0, 20.0], [30.0, 40.0]])
    y = double_dqn_targets(rewards, discounts, next_online, next_target, double=True)
    assert y.tolist() == pytest.approx([1.0 + 0.5 * 20.0, 2.0 + 0.0])
    y_plain = double_dqn_targets(rewards, torch.tensor([0.5, 0.5]), next_online, next_target, double=False)
    assert y_plain.tolist() == pytest.approx([1.0 + 0.5 * 20.0, 2.0 + 0.5 * 40.0])
    # Double DQN evaluates the online argmax with the target net, not the target's own max.
    y_double = double_dqn_targets(rewards, torch.tensor([0.5, 0.5]), next_online, next_target, double=True)
    assert y_double.tolist() == pytest.approx([11.0, 2.0 + 0.5 * 30.0])


def test_importance_weights_scale_the_loss() -> None:
    q = torch.tensor([0.0, 0.0, 0.0], requires_grad=True)
    targets = torch.tensor([0.5, 3.0, -2.0])
    weights = torch.tensor([1.0, 0.5, 0.0])
    loss = weighted_huber_loss(q, targets, weights, delta=1.0)
    # Huber(0.5) = 0.125, Huber(3) = 2.5, Huber(2) = 1.5
    assert loss.item() == pytest.approx((0.125 + 0.5 * 2.5 + 0.0) / 3)
    loss.backward()
    assert q.grad is not None
    assert q.grad.tolist() == pytest.approx([-0.5 / 3, -0.5 / 3, 0.0])  # zero weight: no gradient


def test_learn_uses_weights_and_reports_td() -> None:
    torch.manual_seed(0)
    settings = AgentSettings(hidden_sizes=(8,), lr=0.1, target_update_interval=1000)
    agent = DQNAgent((2,), 2, settings)
    batch_obs = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    actions = np.array([0, 1])
    rewards = np.array([1.0, -1.0], dtype=np.float32)
    discounts = np.zeros(2, dtype=np.float32)
    before = agent.online(torch.as_tensor(batch_obs)).detach().numpy()
    result = agent.learn(
        batch_obs, actions, rewards, batch_obs, discounts, np.array([1.0, 0.0], dtype=np.float32)
    )
    assert result.td_abs.numpy() == pytest.approx(np.abs(rewards - before[[0, 1], actions]), rel=1e-5)
    after = agent.online(torch.as_tensor(batch_obs)).detach().numpy()
    assert abs(after[0, 0] - 1.0) < abs(before[0, 0] - 1.0)  # the weighted sample moved towards its target
    assert agent.updates == 1
    # The target network only changes on its schedule.
    for p_target, p_online in zip(agent.target.parameters(), agent.online.parameters(), strict=True):
        assert not torch.equal(p_target, p_online)


def test_target_sync_hard_and_soft() -> None:
    batch = (np.ones((4, 2), np.float32), np.zeros(4, np.int64), np.ones(4, np.float32))
    hard = DQNAgent((2,), 2, AgentSettings(hidden_sizes=(8,), target_update_interval=2))
    for _ in range(2):
        hard.learn(batch[0], batch[1], batch[2], batch[0], np.zeros(4, np.float32), np.ones(4, np.float32))
    for p_target, p_online in zip(hard.target.parameters(), hard.online.parameters(), strict=True):
        assert torch.equal(p_target, p_online)
    soft = DQNAgent((2,), 2, AgentSettings(hidden_sizes=(8,), tau=0.5))
    old = [p.clone() for p in soft.target.parameters()]
    soft.learn(batch[0], batch[1], batch[2], batch[0], np.zeros(4, np.float32), np.ones(4, np.float32))
    for p_old, p_target, p_online in zip(
        old, soft.target.parameters(), soft.online.parameters(), strict=True
    ):
        assert torch.allclose(p_target, 0.5 * p_old + 0.5 * p_online)


def test_initial_priorities_match_manual_td() -> None:
    """Ape-X initial priorities: the actor's one network is both online and target (plain max)."""
    torch.manual_seed(1)
    network = QNetwork((3,), 4, (16,), dueling=True)
    o = torch.as_tensor(np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32))
    o2 = torch.as_tensor(np.random.default_rng(1).normal(size=(5, 3)).astype(np.float32))
    a = torch.tensor([0, 1, 2, 3, 0])
    r = torch.arange(5, dtype=torch.float32)
    d = torch.tensor([0.9, 0.0, 0.81, 0.9, 0.0])
    with torch.no_grad():
        q = network(o)[torch.arange(5), a].numpy()
        boot = network(o2).max(dim=1).values.numpy()
    expected = np.abs(r.numpy() + d.numpy() * boot - q) + 0.01
    priorities = initial_priorities(network, o, a, r, d, o2, priority_eps=0.01)
    assert priorities.dtype == np.float32 and priorities.shape == (5,)
    assert priorities == pytest.approx(expected, rel=1e-5)
    assert np.all(priorities >= 0.01)  # never zero: every transition can be sampled


def test_networks_shapes_and_dueling() -> None:
    mlp = QNetwork((4,), 2, (32, 32), dueling=True)
    assert mlp(torch.zeros(3, 4)).shape == (3, 2)
    cnn = QNetwork((4, 84, 84), 6, (), dueling=True)
    assert cnn(torch.zeros(2, 4, 84, 84, dtype=torch.uint8)).shape == (2, 6)
    plain = QNetwork((4,), 3, (8,), dueling=False)
    assert plain.value is None and plain(torch.zeros(1, 4)).shape == (1, 3)
    # Dueling: the mean advantage is removed, so Q's mean over actions equals V(s).
    with torch.no_grad():
        x = torch.randn(5, 4)
        features = mlp.torso(x)
        assert mlp(x).mean(1) == pytest.approx(mlp.value(features).squeeze(1), abs=1e-5)  # type: ignore[misc]


def test_epsilon_greedy_rates() -> None:
    torch.manual_seed(0)
    network = QNetwork((2,), 4, (8,), dueling=True)
    rng = np.random.default_rng(0)
    o = torch.zeros((4000, 2))
    greedy = epsilon_greedy(network, o, 0.0, rng)
    assert greedy.dtype == np.int64 and greedy.shape == (4000,)
    assert len(set(greedy.tolist())) == 1
    mixed = epsilon_greedy(network, o, 0.5, rng)
    # Random actions hit the greedy one a quarter of the time: P(greedy) = 0.5 + 0.5 / 4.
    assert np.mean(mixed == greedy[0]) == pytest.approx(0.625, abs=0.03)
    assert set(epsilon_greedy(network, o, 1.0, rng).tolist()) == {0, 1, 2, 3}


def test_epsilon_greedy_per_env_epsilon() -> None:
    """ε may be one value per env (the Ape-X ladder inside one vector env)."""
    torch.manual_seed(0)
    network = QNetwork((2,), 4, (8,), dueling=False)
    rng = np.random.default_rng(1)
    o = torch.zeros((2, 2))
    greedy = int(epsilon_greedy(network, o[:1], 0.0, rng)[0])
    picks = np.stack([epsilon_greedy(network, o, np.array([0.0, 1.0]), rng) for _ in range(2000)])
    assert np.all(picks[:, 0] == greedy)  # ε = 0: always greedy
    assert np.mean(picks[:, 1] == greedy) == pytest.approx(0.25, abs=0.04)  # ε = 1: uniform


def test_select_device() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert select_device("auto").type == expected
    assert select_device("cpu").type == "cpu"
