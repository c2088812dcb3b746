"""Evaluation envs and Atari frames without OpenCV: the evaluator plays whole Atari games on ale-py's
vector env (true scores), and :func:`game.envs.make_env` resizes frames in numpy as OpenCV would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from game.atari_frames import AtariFrames, area_weights
from game.dqn import QNetwork
from game.envs import AtariVectorEnv, episode_stats, make_eval_envs
from game.evaluator import play_greedy

ROOT = Path(__file__).resolve().parents[2]


def test_area_weights_average_whole_input() -> None:
    weights = area_weights(210, 84)
    assert weights.shape == (84, 210)
    assert np.allclose(weights.sum(axis=1), 1.0)  # each output pixel is an average
    assert np.allclose(weights.sum(axis=0), 84 / 210)  # each input pixel counts as much as any other
    assert np.array_equal(area_weights(4, 2), np.array([[0.5, 0.5, 0, 0], [0, 0, 0.5, 0.5]], np.float32))


def test_atari_frames_match_gymnasium_atari_preprocessing() -> None:
    """Same seed and actions: the same rewards and ends, frames within one grey level of OpenCV's."""
    import ale_py

    gym.register_envs(ale_py)

    def make(numpy_frames: bool) -> gym.Env:
        env = gym.make("ALE/Breakout-v5", frameskip=1, repeat_action_probability=0.0)
        if numpy_frames:
            return AtariFrames(env, noop_max=30, frame_skip=4, size=84)
        return gym.wrappers.AtariPreprocessing(env, noop_max=30, frame_skip=4, screen_size=84)

    ours, theirs = make(True), make(False)
    assert ours.observation_space == theirs.observation_space
    rng = np.random.default_rng(0)
    differing, games = 0, 0
    a, _ = ours.reset(seed=4)
    b, _ = theirs.reset(seed=4)
    for _ in range(1500):
        assert a.shape == b.shape == (84, 84) and a.dtype == b.dtype == np.uint8
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
        differing += int(np.count_nonzero(a != b))
        action = int(rng.integers(4))
        a, reward_a, *end_a, _ = ours.step(action)
        b, reward_b, *end_b, _ = theirs.step(action)
        assert (reward_a, end_a) == (reward_b, end_b)
        if any(end_a):
            games += 1
            a, _ = ours.reset()
            b, _ = theirs.reset()
    assert games >= 1  # resets after a game over were compared too
    assert differing < 1500 * 84 * 84 * 0.001  # rounding of the last bit only, on rare pixels
    ours.close()
    theirs.close()


def test_atari_eval_envs_play_whole_games_with_true_scores() -> None:
    envs = make_eval_envs("ALE/Breakout-v5", num_envs=2, seed=7)
    assert isinstance(envs, AtariVectorEnv) and not envs.training
    envs.reset()
    rng = np.random.default_rng(7)
    games: list[tuple[float, int]] = []
    totals = np.zeros(2)
    for _ in range(20_000):
        _, rewards, terminated, truncated, infos = envs.step(rng.integers(0, 4, 2))
        totals += rewards
        for i in map(int, np.flatnonzero(terminated | truncated)):
            stats = episode_stats(infos, i)
            assert stats is not None  # every end is a game over: no life-loss terminations
            assert stats[0] == totals[i]  # the rewards are the game's own: they sum to its score
            games.append(stats)
            totals[i] = 0.0
        if len(games) >= 2:
            break
    envs.close()
    # Five lives of random play: hundreds of steps per game.
    assert len(games) >= 2 and all(length > 100 and score >= 0 for score, length in games)


def test_cartpole_eval_envs_are_single_envs() -> None:
    envs = make_eval_envs("CartPole-v1", num_envs=3, seed=1)
    assert isinstance(envs, list) and len(envs) == 3
    network = _network((4,), 2)
    returns = play_greedy(network, envs, 4, seed=1, device=torch.device("cpu"))
    assert len(returns) == 4 and all(1 <= r <= 500 for r in returns)


def test_evaluator_plays_pong_without_opencv() -> None:
    """The evaluator's Atari round in a fresh interpreter: true Pong scores, and neither it nor
    :func:`make_env`'s Atari preprocessing imports cv2."""
    code = """
import json, sys
import torch
from game.envs import make_env, make_eval_envs, env_spec
from game.evaluator import play_greedy
from game.dqn import QNetwork
torch.manual_seed(0)
envs = make_eval_envs("ALE/Pong-v5", num_envs=2, seed=3)
spec = env_spec(envs)
network = QNetwork(spec.obs_shape, spec.n_actions, (512,), True)
first = play_greedy(network, envs, 3, 3, torch.device("cpu"))
again = play_greedy(network, envs, 3, 3, torch.device("cpu"))
envs.close()
probe = make_env("ALE/Pong-v5", seed=0)  # the learner's probe: the training preprocessing
assert env_spec(probe) == spec and probe.reset(seed=0)[0].shape == (4, 84, 84)
probe.close()
print(json.dumps({"returns": first, "again": again, "cv2": "cv2" in sys.modules}))
"""
    completed = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["cv2"] is False
    returns = result["returns"]
    # Whole games of Pong: one side reached 21, so the score is an integer in [-21, 21], not +-1.
    assert len(returns) == 3
    assert all(-21 <= r <= 21 and float(r).is_integer() for r in returns)
    assert any(abs(r) > 1 for r in returns)
    assert sorted(result["again"]) == sorted(returns)  # a round's seeds make it repeatable


def _network(obs_shape: tuple[int, ...], n_actions: int) -> QNetwork:
    torch.manual_seed(0)
    return QNetwork(obs_shape, n_actions, (32,), False)
