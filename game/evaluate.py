"""Greedy evaluation of a checkpoint, optionally recorded to an mp4."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from game.checkpoints import load_checkpoint
from game.dqn import QNetwork, select_device
from game.envs import make_env
from hiverl.config import config_from_dict


@dataclass
class EvaluationResult:
    env_id: str
    returns: list[float]  # true game scores (unclipped, all lives for Atari)
    lengths: list[int]

    @property
    def mean_return(self) -> float:
        return float(np.mean(self.returns))

    @property
    def std_return(self) -> float:
        return float(np.std(self.returns))


def evaluate_checkpoint(
    path: str | Path,
    *,
    episodes: int = 10,
    video: str | Path | None = None,
    seed: int = 12345,
    device: str = "auto",
    max_steps: int = 108_000,
) -> EvaluationResult:
    """Play ``episodes`` greedy episodes (ε = 0) with the online network of the checkpoint.

    Args:
        path: checkpoint file written by a worker.
        episodes: number of episodes.
        video: write the first episode's rgb frames to this mp4 (imageio-ffmpeg).
        seed: seed of the first episode (episode k uses seed + k).
        max_steps: cap on agent steps per episode (Atari: 108k = 30 min of play).
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1 (got {episodes})")
    torch_device = select_device(device)
    state = load_checkpoint(path, map_location=torch_device)
    config = config_from_dict(state["config"])
    network = QNetwork(
        tuple(state["obs_shape"]), int(state["n_actions"]), config.agent.hidden_sizes, config.agent.dueling
    ).to(torch_device)
    network.load_state_dict(state["agent"]["online"])
    network.eval()
    env = make_env(
        state["env_id"], seed=seed, training=False, render_mode="rgb_array" if video is not None else None
    )
    returns: list[float] = []
    lengths: list[int] = []
    frames: list[Any] = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        total, steps, done = 0.0, 0, False
        while not done and steps < max_steps:
            if video is not None and episode == 0:
                frames.append(np.asarray(env.render()))
            with torch.no_grad():
                q = network(torch.as_tensor(np.asarray(obs)[None], device=torch_device))
            obs, reward, terminated, truncated, _ = env.step(int(q.argmax(dim=1).item()))
            total += float(reward)
            steps += 1
            done = bool(terminated or truncated)
        returns.append(total)
        lengths.append(steps)
    env.close()
    if video is not None and frames:
        import imageio.v2 as imageio

        Path(video).parent.mkdir(parents=True, exist_ok=True)
        fps = int(env.metadata.get("render_fps") or 30)
        imageio.mimwrite(str(video), frames, fps=fps, macro_block_size=1)
    return EvaluationResult(str(state["env_id"]), returns, lengths)
