"""Environment construction: Atari preprocessing on real Pong frames, autoreset, action noise."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from game.envs import (
    AtariVectorEnv,
    EpisodicLife,
    RandomActionInjection,
    ale_game,
    env_spec,
    episode_stats,
    make_env,
    make_vector_env,
)


def test_pong_preprocessing_shapes_and_dtypes() -> None:
    env = make_env("ALE/Pong-v5", seed=0)
    spec = env_spec(env)
    assert spec == type(spec)((4, 84, 84), "uint8", 6)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8
    frames = [obs]
    rewards: list[float] = []
    for _ in range(40):
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        frames.append(obs)
        rewards.append(float(reward))
        assert not (terminated or truncated)
    assert all(f.shape == (4, 84, 84) and f.dtype == np.uint8 for f in frames)
    last = frames[-1]
    # Stacked frames shift by one each step: the newest frame becomes the previous one next step.
    assert np.array_equal(frames[-2][1:], last[:-1])
    assert last.max() > last.min()  # real pixels, not a blank screen
    assert set(np.unique(rewards)) <= {-1.0, 0.0, 1.0}  # clipped rewards
    env.close()


def test_pong_vector_env_and_evaluation_env() -> None:
    envs = make_vector_env("ALE/Pong-v5", num_envs=2, seed=3)
    obs, _ = envs.reset(seed=3)
    assert obs.shape == (2, 4, 84, 84) and obs.dtype == np.uint8
    obs, rewards, *_ = envs.step(np.array([0, 1]))
    assert obs.shape == (2, 4, 84, 84) and rewards.shape == (2,)
    envs.close()
    evaluation = make_env("ALE/Pong-v5", seed=0, training=False, render_mode="rgb_array")
    evaluation.reset(seed=0)
    assert np.asarray(evaluation.render()).shape == (210, 160, 3)
    assert not any(isinstance(w, EpisodicLife) for w in _wrappers(evaluation))
    evaluation.close()


def _wrappers(env: gym.Env) -> list[gym.Env]:
    found: list[gym.Env] = []
    while isinstance(env, gym.Wrapper):
        found.append(env)
        env = env.env
    return found


def test_episodic_life_ends_learning_episode_but_not_the_game() -> None:
    env = make_env("ALE/Breakout-v5", seed=1)
    life = next(w for w in _wrappers(env) if isinstance(w, EpisodicLife))
    env.reset(seed=1)
    lives_at_start = life.lives
    assert lives_at_start == 5
    terminated = False
    for _ in range(3000):
        _, _, terminated, truncated, _ = env.step(0)  # NOOP: the ball is lost quickly
        if terminated or truncated:
            break
    assert terminated
    assert not life.game_over  # one life lost, the game goes on
    env.reset()
    assert life.lives == lives_at_start - 1  # reset continued the same game
    env.close()


def test_same_step_autoreset_gives_true_final_observation() -> None:
    envs = make_vector_env("CartPole-v1", num_envs=2, seed=0)
    assert isinstance(envs, gym.vector.SyncVectorEnv)
    obs, _ = envs.reset(seed=0)
    seen = 0
    for _ in range(200):
        obs, _, terminated, _truncated, infos = envs.step(envs.action_space.sample())
        for i in range(2):
            if terminated[i]:
                seen += 1
                final = infos["final_obs"][i]
                # The final state is outside CartPole's bounds; the returned obs is a fresh reset.
                assert abs(final[0]) > 2.4 or abs(final[2]) > 0.2095
                assert np.all(np.abs(obs[i]) <= 0.05)
                stats = episode_stats(infos, i)
                assert stats is not None and stats[0] == stats[1] >= 1
            else:
                assert episode_stats(infos, i) is None
    assert seen >= 5


def test_random_action_injection_rate() -> None:
    env = RandomActionInjection(gym.make("CartPole-v1"), rate=0.3, seed=0)
    env.action_space.seed(0)
    replaced = np.mean([env.action(0) != 0 for _ in range(4000)])
    assert replaced == pytest.approx(0.3 / 2, abs=0.02)  # half the random actions equal the chosen one
    never = RandomActionInjection(gym.make("CartPole-v1"), rate=0.0, seed=0)
    assert all(never.action(1) == 1 for _ in range(100))
    with pytest.raises(ValueError, match="random_action_rate"):
        RandomActionInjection(gym.make("CartPole-v1"), rate=1.5, seed=0)


def test_continuous_action_space_is_rejected() -> None:
    with pytest.raises(ValueError, match="not Discrete"):
        make_env("Pendulum-v1", seed=0)


def test_atari_actors_use_ales_vector_env_with_the_actors_contract() -> None:
    envs = make_vector_env("ALE/Breakout-v5", num_envs=2, seed=5, random_action_rate=0.0)
    assert isinstance(envs, AtariVectorEnv) and ale_game("ALE/SpaceInvaders-v5") == "space_invaders"
    assert env_spec(envs) == type(env_spec(envs))((4, 84, 84), "uint8", 4)
    obs, _ = envs.reset(seed=5)
    assert obs.shape == (2, 4, 84, 84) and obs.dtype == np.uint8
    rng = np.random.default_rng(0)
    life_losses, games = 0, []
    for _ in range(3000):
        obs, rewards, terminated, truncated, infos = envs.step(rng.integers(0, 4, 2))
        assert set(np.unique(rewards)) <= {-1.0, 0.0, 1.0}  # clipped for learning
        for i in range(2):
            if terminated[i] or truncated[i]:
                assert infos["final_obs"][i].shape == (4, 84, 84)  # the true successor of the last step
                stats = episode_stats(infos, i)
                if stats is None:
                    life_losses += 1  # a lost life ends the learning episode, not the game
                else:
                    games.append(stats)
        if len(games) >= 2:
            break
    envs.close()
    # Breakout has 5 lives: every finished game came after 4 lost lives per game, and its score is
    # the true (unclipped) game score over all lives.
    assert len(games) >= 2 and life_losses >= 4 * len(games)
    assert all(score >= 0 and float(score).is_integer() and length > 20 for score, length in games)


def test_atari_vector_env_random_action_injection() -> None:
    def last_frames(rate: float) -> np.ndarray:
        envs = make_vector_env("ALE/Pong-v5", num_envs=2, seed=1, random_action_rate=rate)
        obs, _ = envs.reset(seed=1)
        for _ in range(60):  # the agent always asks for NOOP
            obs, *_ = envs.step(np.zeros(2, dtype=np.int64))
        envs.close()
        return obs

    # Same seed, same requests: only the injected random actions can move the agent's paddle.
    assert np.array_equal(last_frames(0.0), last_frames(0.0))
    assert not np.array_equal(last_frames(0.0), last_frames(1.0))
    with pytest.raises(ValueError, match="random_action_rate"):
        make_vector_env("ALE/Pong-v5", num_envs=1, seed=1, random_action_rate=1.5)
