"""Environments: any gymnasium id with discrete actions, Atari with the standard DQN preprocessing.

Atari (``ALE/...`` ids) is built by :func:`make_env` as (inside to outside): the ALE env with
``frameskip=1`` -> :class:`game.atari_frames.AtariFrames` (gymnasium's ``AtariPreprocessing``:
no-op reset up to 30, frame skip 4 with max-pooling of the last two frames, 84x84 grayscale, with
the area resize done in numpy, so no OpenCV) -> episode statistics (true game score) ->
:class:`EpisodicLife` (life loss ends the learning episode, the game continues) ->
:class:`FireReset` -> reward clipping to {-1, 0, 1} ->
:class:`gymnasium.wrappers.FrameStackObservation` (4 frames): observations are ``uint8 [4, 84, 84]``.

An actor's envs step together with ``autoreset_mode=SAME_STEP``: when an env ends, ``step``
already returns the first observation of the next episode and the true last observation is in
``infos["final_obs"]`` -- the actor uses that one as the successor state, so no transition ever
crosses an episode boundary. Finished episodes' statistics are in ``infos["final_info"]``
(:func:`episode_stats`). Atari actors use ale-py's own vector env (:class:`AtariVectorEnv`, the
same preprocessing in C++, about twice the env steps/s of the wrappers above on one core); other ids
a :class:`gymnasium.vector.SyncVectorEnv` of :func:`make_env`. The evaluator's Atari envs are an
:class:`AtariVectorEnv` too, with ``training=False`` (:func:`make_eval_envs`): whole games, true
scores.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from game.atari_frames import AtariFrames


def is_atari(env_id: str) -> bool:
    return env_id.startswith("ALE/")


def _register_atari() -> None:
    import ale_py

    gym.register_envs(ale_py)


class EpisodicLife(gym.Wrapper[Any, Any, Any, Any]):
    """Signal ``terminated`` on every life loss; only reset the game when it is really over.

    The learner then treats a lost life as the end of its value horizon, while the game (and the
    episode statistics recorded inside this wrapper) continue until the last life.
    """

    def __init__(self, env: gym.Env[Any, Any]) -> None:
        super().__init__(env)
        self.lives = 0
        self.game_over = True

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.game_over = bool(terminated or truncated)
        lives = int(self.env.unwrapped.ale.lives())  # type: ignore[attr-defined]
        if 0 < lives < self.lives:
            terminated = True
        self.lives = lives
        return obs, reward, terminated, truncated, info

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        if self.game_over or seed is not None:
            obs, info = self.env.reset(seed=seed, options=options)
        else:  # a life was lost: continue the same game with a no-op step
            obs, _, terminated, truncated, info = self.env.step(0)
            if terminated or truncated:
                obs, info = self.env.reset(seed=seed, options=options)
        self.game_over = False
        self.lives = int(self.env.unwrapped.ale.lives())  # type: ignore[attr-defined]
        return obs, info


class FireReset(gym.Wrapper[Any, Any, Any, Any]):
    """Press FIRE after reset for games that wait for it (Breakout, Pong, ...)."""

    def __init__(self, env: gym.Env[Any, Any]) -> None:
        super().__init__(env)
        meanings = env.unwrapped.get_action_meanings()  # type: ignore[attr-defined]
        if len(meanings) < 3 or meanings[1] != "FIRE":
            raise ValueError(f"FireReset needs FIRE as action 1 (actions: {meanings})")

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        for action in (1, 2):
            obs, _, terminated, truncated, info = self.env.step(action)
            if terminated or truncated:
                obs, info = self.env.reset(seed=seed, options=options)
        return obs, info


class RandomActionInjection(gym.ActionWrapper[Any, Any, Any]):
    """With probability ``rate`` the env executes a uniformly random action instead of the agent's.

    This is environment noise for robustness experiments: the agent still stores its own action.
    """

    def __init__(self, env: gym.Env[Any, Any], rate: float, seed: int) -> None:
        super().__init__(env)
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"random_action_rate must be in [0, 1] (got {rate})")
        self.rate = rate
        self.rng = np.random.default_rng(seed)

    def action(self, action: Any) -> Any:
        if self.rate > 0.0 and self.rng.random() < self.rate:
            return self.env.action_space.sample()
        return action


def make_env(
    env_id: str,
    *,
    seed: int,
    training: bool = True,
    random_action_rate: float = 0.0,
    render_mode: str | None = None,
) -> gym.Env[Any, Any]:
    """One environment with the preprocessing the agent expects.

    Args:
        env_id: gymnasium id; ``ALE/...`` ids get the DQN Atari preprocessing.
        seed: seeds the action space and the random-action injection (the env is seeded on reset).
        training: Atari only: episodic life and reward clipping (off for evaluation).
        random_action_rate: probability of replacing the agent's action by a random one.
        render_mode: e.g. ``"rgb_array"`` for video recording.
    """
    if is_atari(env_id):
        _register_atari()
        env: gym.Env[Any, Any] = gym.make(
            env_id,
            frameskip=1,
            repeat_action_probability=0.0,
            full_action_space=False,
            render_mode=render_mode,
        )
        env = AtariFrames(env, noop_max=30, frame_skip=4, size=84)
        env = gym.wrappers.RecordEpisodeStatistics(env)
        if training:
            env = EpisodicLife(env)
        if "FIRE" in env.unwrapped.get_action_meanings():  # type: ignore[attr-defined]
            env = FireReset(env)
        if training:
            env = gym.wrappers.TransformReward(env, lambda r: float(np.sign(float(r))))
        env = gym.wrappers.FrameStackObservation(env, 4)
    else:
        env = gym.make(env_id, render_mode=render_mode)
        env = gym.wrappers.RecordEpisodeStatistics(env)
    if not isinstance(env.action_space, gym.spaces.Discrete):
        raise ValueError(
            f"env_id {env_id!r}: action space {env.action_space} is not Discrete (DQN needs one)"
        )
    if random_action_rate > 0.0:
        env = RandomActionInjection(env, random_action_rate, seed)
    env.action_space.seed(seed)
    return env


def make_vector_env(
    env_id: str, *, num_envs: int, seed: int, random_action_rate: float = 0.0
) -> SyncVectorEnv | AtariVectorEnv:
    """``num_envs`` training envs stepping in lock-step, with SAME_STEP autoreset (see module doc)."""
    if is_atari(env_id):
        return AtariVectorEnv(env_id, num_envs=num_envs, seed=seed, random_action_rate=random_action_rate)

    def thunk(i: int) -> Callable[[], gym.Env[Any, Any]]:
        return lambda: make_env(env_id, seed=seed + i, training=True, random_action_rate=random_action_rate)

    return SyncVectorEnv([thunk(i) for i in range(num_envs)], autoreset_mode=AutoresetMode.SAME_STEP)


def ale_game(env_id: str) -> str:
    """ale-py's ROM name of an ``ALE/...`` id: ``ALE/SpaceInvaders-v5`` -> ``space_invaders``."""
    name = env_id.removeprefix("ALE/").split("-")[0]
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class AtariVectorEnv:
    """Atari envs on ale-py's vector env, with what the actor expects of a vector env.

    The DQN preprocessing runs in ale-py (no-op reset up to 30, frame skip 4 with max-pooling, 84x84
    grayscale, 4-frame stacks, FIRE on reset; a game is truncated after 108k frames, 30 minutes of
    play). For ``training``, a lost life ends the learning episode (``terminated``) while the game
    goes on (``life_loss_info``) and rewards are clipped to {-1, 0, 1} here, so the true game score
    of every finished game can be reported in ``final_info`` exactly as :func:`make_env`'s
    statistics are. A game is over when the env reset itself: a termination that did not lower the
    lives, or a truncation. Without ``training`` (evaluation) an episode is a whole game and the
    rewards are the game's own: the returns are true scores.
    """

    def __init__(
        self,
        env_id: str,
        *,
        num_envs: int,
        seed: int,
        random_action_rate: float = 0.0,
        training: bool = True,
    ) -> None:
        from ale_py.vector_env import AtariVectorEnv as AleVectorEnv

        if not 0.0 <= random_action_rate <= 1.0:
            raise ValueError(f"random_action_rate must be in [0, 1] (got {random_action_rate})")
        self.env = AleVectorEnv(
            ale_game(env_id),
            num_envs=num_envs,
            num_threads=1,
            repeat_action_probability=0.0,
            autoreset_mode="SameStep",
            episodic_life=False,
            life_loss_info=training,
            reward_clipping=False,
        )
        self.training = training
        self.num_envs = num_envs
        self.single_observation_space = self.env.single_observation_space
        self.single_action_space = self.env.single_action_space
        assert isinstance(self.single_action_space, gym.spaces.Discrete)
        self.n_actions = int(self.single_action_space.n)
        self.seed = seed
        self.rate = random_action_rate
        self.rng = np.random.default_rng(seed)
        self.scores = np.zeros(num_envs, dtype=np.float64)
        self.lengths = np.zeros(num_envs, dtype=np.int64)
        self.lives = np.zeros(num_envs, dtype=np.int64)

    def reset(self, *, seed: int | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """All envs from a new game; env ``i`` seeded with ``seed + i`` (default: the constructor's)."""
        obs, info = self.env.reset(seed=self.seed if seed is None else seed)
        self.scores[:] = 0.0
        self.lengths[:] = 0
        self.lives[:] = info["lives"]
        return obs, info

    def restart(self, mask: np.ndarray) -> np.ndarray:
        """A new game (unseeded: each env's generator goes on) in the envs of ``mask``; all observations."""
        obs, info = self.env.reset(options={"reset_mask": np.asarray(mask, dtype=bool)})
        self.scores[mask] = 0.0
        self.lengths[mask] = 0
        self.lives[mask] = np.asarray(info["lives"], dtype=np.int64)[mask]
        return obs

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if self.rate > 0.0:  # environment noise: the agent still stores its own action
            swap = self.rng.random(self.num_envs) < self.rate
            actions = np.where(swap, self.rng.integers(0, self.n_actions, self.num_envs), actions)
        obs, rewards, terminated, truncated, ale_info = self.env.step(actions)
        info: dict[str, Any] = dict(ale_info)
        self.scores += rewards
        self.lengths += 1
        lives = np.asarray(info["lives"], dtype=np.int64)
        # Training: a termination that lowered the lives is a lost life; otherwise it ends the game.
        game_over = (
            truncated | (terminated & (lives >= self.lives)) if self.training else terminated | truncated
        )
        self.lives = lives
        if game_over.any():
            info["final_info"] = {
                "episode": {"r": self.scores.copy(), "l": self.lengths.copy()},
                "_episode": game_over.copy(),
            }
            self.scores[game_over] = 0.0
            self.lengths[game_over] = 0
        rewards = np.sign(rewards) if self.training else rewards
        return obs, rewards.astype(np.float32), terminated, truncated, info

    def close(self) -> None:
        self.env.close()


def make_eval_envs(env_id: str, *, num_envs: int, seed: int) -> AtariVectorEnv | list[gym.Env[Any, Any]]:
    """The evaluator's ``num_envs`` envs: whole games with true scores (no episodic life or clipping).

    Atari: one :class:`AtariVectorEnv` (``training=False``; ale-py's preprocessing, no OpenCV); other
    ids: a list of :func:`make_env` envs (``training=False``), env ``i`` seeded with ``seed + i``.
    """
    if is_atari(env_id):
        return AtariVectorEnv(env_id, num_envs=num_envs, seed=seed, training=False)
    return [make_env(env_id, seed=seed + i, training=False) for i in range(num_envs)]


@dataclass(frozen=True)
class EnvSpec:
    """What the agent and the memory need to know about an environment."""

    obs_shape: tuple[int, ...]
    obs_dtype: str  # "float32" or "uint8"
    n_actions: int


def env_spec(env: gym.Env[Any, Any] | SyncVectorEnv | AtariVectorEnv) -> EnvSpec:
    """Observation shape/dtype (the memory's ObservationSpec) and action count of ``env``."""
    if isinstance(env, SyncVectorEnv | AtariVectorEnv):
        obs_space = env.single_observation_space
        action_space = env.single_action_space
    else:
        obs_space = env.observation_space
        action_space = env.action_space
    assert isinstance(action_space, gym.spaces.Discrete)
    assert obs_space.shape is not None
    dtype = "uint8" if obs_space.dtype == np.uint8 else "float32"
    return EnvSpec(tuple(int(d) for d in obs_space.shape), dtype, int(action_space.n))


def episode_stats(infos: dict[str, Any], env_index: int) -> tuple[float, int] | None:
    """(return, length) of an episode that ended at this step in env ``env_index``, else None.

    With SAME_STEP autoreset the statistics recorded by :class:`RecordEpisodeStatistics` are in
    ``infos["final_info"]``. For Atari that is the whole game (all lives), unclipped.
    """
    final = infos.get("final_info")
    if not final or "episode" not in final:
        return None
    mask = final.get("_episode")
    if mask is not None and not mask[env_index]:
        return None
    return float(final["episode"]["r"][env_index]), int(final["episode"]["l"][env_index])
