"""The evaluator: what return does the hive's current mind actually get?

Every ``evaluator.interval_s`` seconds, with the latest published weights (ε = 0, nothing written to
the memory, Atari without episodic life or reward clipping, so returns are true scores; Atari games
run on ale-py's vector env, :func:`game.envs.make_eval_envs`, which needs no OpenCV):

1. play ``evaluator.episodes`` greedy episodes on ``evaluator.envs`` environments at once (each
   environment plays its share of whole episodes, so short episodes are not over-counted);
2. when their mean reaches the solved return (``evaluator.solved_return``, by default the env's
   ``reward_threshold``: 475 for CartPole-v1), play on with the same weights up to
   ``evaluator.solve_episodes`` episodes: solved means their mean is still at or above it;
3. report an ``eval`` event (mean, episodes, weights version, the learner's updates, solved);
4. once solved, with ``stop_when_solved``, raise the board's stop flag: the whole hive finishes;
   when the hive finishes its budget instead, one last round evaluates the final weights.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from game.board import Board
from game.dqn import QNetwork, select_device
from game.envs import AtariVectorEnv, env_spec, make_eval_envs
from game.roles import RoleContext, RoleProcess, StatusCallback
from hiverl.events import EventSink

MAX_EPISODE_STEPS = 108_000  # Atari: 30 minutes of play


def solved_return(env_id: str, configured: float | None) -> float | None:
    """The configured solved return, else the env's registered ``reward_threshold`` (None: none)."""
    if configured is not None:
        return configured
    try:
        threshold = gym.spec(env_id).reward_threshold
    except gym.error.Error:
        return None
    return float(threshold) if threshold is not None else None


def play_greedy(
    network: QNetwork,
    envs: AtariVectorEnv | list[gym.Env[Any, Any]],
    episodes: int,
    seed: int,
    device: torch.device,
) -> list[float]:
    """Returns of ``episodes`` greedy episodes, spread over ``envs`` (env i plays every len(envs)-th).

    Env ``i`` starts the round from ``seed + i``; its later episodes go on from its own generator.
    Returns are in the order the episodes ended.
    """
    if isinstance(envs, AtariVectorEnv):
        return _play_greedy_vector(network, envs, episodes, seed, device)
    quotas = [len(range(i, episodes, len(envs))) for i in range(len(envs))]
    returns: list[float] = []
    active: list[int] = []
    observations: dict[int, Any] = {}
    totals = [0.0] * len(envs)
    steps = [0] * len(envs)
    for i, env in enumerate(envs):
        if quotas[i] > 0:
            observations[i], _ = env.reset(seed=seed + i)
            active.append(i)
    while active:
        batch = torch.as_tensor(np.stack([np.asarray(observations[i]) for i in active]), device=device)
        with torch.no_grad():
            actions = network(batch).argmax(dim=1).cpu().numpy()
        still: list[int] = []
        for i, action in zip(active, actions, strict=True):
            observations[i], reward, terminated, truncated, _ = envs[i].step(int(action))
            totals[i] += float(reward)
            steps[i] += 1
            if terminated or truncated or steps[i] >= MAX_EPISODE_STEPS:
                returns.append(totals[i])
                totals[i], steps[i] = 0.0, 0
                quotas[i] -= 1
                if quotas[i] == 0:
                    continue
                observations[i], _ = envs[i].reset()
            still.append(i)
        active = still
    return returns


def _play_greedy_vector(
    network: QNetwork, envs: AtariVectorEnv, episodes: int, seed: int, device: torch.device
) -> list[float]:
    """:func:`play_greedy` on a vector env that restarts finished games itself (SAME_STEP autoreset).

    The envs step together; one whose quota is played steps on with NOOPs (its results ignored)
    until the last game of the round ends, and the network only sees the envs still playing.
    """
    n = envs.num_envs
    quotas = np.array([len(range(i, episodes, n)) for i in range(n)], dtype=np.int64)
    totals = np.zeros(n, dtype=np.float64)
    steps = np.zeros(n, dtype=np.int64)
    returns: list[float] = []
    observations, _ = envs.reset(seed=seed)
    while quotas.any():
        active = quotas > 0
        actions = np.zeros(n, dtype=np.int64)
        batch = torch.as_tensor(observations[active], device=device)
        with torch.no_grad():
            actions[active] = network(batch).argmax(dim=1).cpu().numpy()
        observations, rewards, terminated, truncated, _ = envs.step(actions)
        totals += rewards
        steps += 1
        ended = active & (terminated | truncated | (steps >= MAX_EPISODE_STEPS))
        for i in np.flatnonzero(ended):
            returns.append(float(totals[i]))
        quotas[ended] -= 1
        totals[ended] = 0.0
        steps[ended] = 0
        cut = ended & ~(terminated | truncated)  # the step cap, not the game, ended these
        if cut.any():
            observations = envs.restart(cut)
    return returns


class Evaluator(RoleProcess):
    """Greedy rounds with the latest weights; see the module docstring."""

    role = "evaluator"

    def __init__(
        self,
        context: RoleContext,
        sink: EventSink,
        *,
        on_status: StatusCallback | None = None,
        on_outage: Callable[[str], None] | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> None:
        super().__init__(context, sink, on_status=on_status, on_outage=on_outage, should_stop=should_stop)
        config = self.config = self.hive
        self.settings = config.evaluator
        self.seed = config.role_seed("evaluator")
        self.envs = make_eval_envs(config.env_id, num_envs=self.settings.envs, seed=self.seed)
        spec = env_spec(self.envs if isinstance(self.envs, AtariVectorEnv) else self.envs[0])
        self.device = select_device(config.actor_device)
        agent = config.agent
        self.network = QNetwork(spec.obs_shape, spec.n_actions, agent.hidden_sizes, agent.dueling).to(
            self.device
        )
        self.network.requires_grad_(False)
        self.board = Board(context.redis_url, context.session_id, config.memory.key_prefix)
        self.threshold = solved_return(config.env_id, self.settings.solved_return)
        self.version = 0
        self.rounds = 0
        self.best_return: float | None = None

    def round(self) -> bool:
        """One evaluation round with the latest weights; True when it confirmed "solved"."""
        # Step 1: the latest weights, then the round's greedy episodes.
        weights = self._retry(lambda: self.board.fetch(self.version))
        if weights is not None:
            self.network.load_state_dict(weights.state)
            self.version = weights.version
        updates = self._retry(self.board.poll).updates
        seed = self.seed + 10_000 * self.rounds
        self.rounds += 1
        returns = play_greedy(self.network, self.envs, self.settings.episodes, seed, self.device)

        # Step 2: a round at the solved return is extended with the same weights to confirm it.
        solved = False
        if self.threshold is not None and np.mean(returns) >= self.threshold:
            more = self.settings.solve_episodes - len(returns)
            if more > 0:
                returns += play_greedy(self.network, self.envs, more, seed + 5_000, self.device)
            solved = float(np.mean(returns)) >= self.threshold

        # Step 3: report.
        mean = float(np.mean(returns))
        self.best_return = mean if self.best_return is None else max(self.best_return, mean)
        self._event(
            "eval",
            eval_return=mean,
            eval_return_min=float(np.min(returns)),
            eval_return_max=float(np.max(returns)),
            eval_episodes=len(returns),
            weights_version=self.version,
            updates=updates,
            solved=solved,
            solved_return=self.threshold,
        )
        return solved

    def run(self) -> None:
        """Evaluate every ``interval_s`` until the hive stops (or, once solved, stop the hive)."""
        self.on_status("started", {"pid": os.getpid(), "solved_return": self.threshold})
        solved_at: float | None = None
        while not self.should_stop():
            state = self._retry(self.board.poll)
            if state.stop is not None:
                if state.stop == "completed" and state.version > self.version:
                    self.round()  # the budget is spent: one last look at the final weights
                break
            if state.version == 0:  # nothing published yet
                time.sleep(0.1)
                continue
            started = time.monotonic()
            if self.round() and solved_at is None:
                solved_at = time.time()
                self.on_status("solved", {"weights_version": self.version, "time": solved_at})
                if self.settings.stop_when_solved:
                    self._retry(lambda: self.board.request_stop("solved"))
                    break
            remaining = self.settings.interval_s - (time.monotonic() - started)
            deadline = time.monotonic() + remaining
            while time.monotonic() < deadline and not self.should_stop():
                time.sleep(min(0.05, max(remaining, 0.0)))
        self.on_status(
            "done", {"rounds": self.rounds, "best_return": self.best_return, "solved": solved_at is not None}
        )

    def close(self) -> None:
        for env in [self.envs] if isinstance(self.envs, AtariVectorEnv) else self.envs:
            env.close()
        self.board.close()
