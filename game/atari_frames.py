"""Atari frames as gymnasium's ``AtariPreprocessing`` makes them, without OpenCV.

:func:`game.envs.make_env` builds its single Atari envs on :class:`AtariFrames`, so that training
(the learner's probe env, the benchmarks) and evaluation run where OpenCV is not installed (the
offline GPU bundle of ``scripts/gpu_bundle.sh``).
"""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np


def area_weights(size_in: int, size_out: int) -> np.ndarray:
    """``[size_out, size_in]`` weights of an area-averaging resize along one axis (OpenCV's INTER_AREA).

    Output pixel ``i`` averages the input interval ``[i * s, (i + 1) * s)``, ``s = size_in / size_out``,
    each input pixel weighted by the length of its overlap with it.
    """
    scale = size_in / size_out
    starts = np.arange(size_out)[:, None] * scale
    pixels = np.arange(size_in)[None, :]
    overlap = np.minimum(starts + scale, pixels + 1) - np.maximum(starts, pixels)
    return (np.clip(overlap, 0.0, None) / scale).astype(np.float32)


class AtariFrames(gym.Wrapper[Any, Any, Any, Any]):
    """gymnasium's ``AtariPreprocessing`` (grayscale, not scaled, no life-loss termination) in numpy.

    No-op reset (1 to ``noop_max`` NOOPs), ``frame_skip`` repeats of each action with the max of the
    last two frames, and an area resize to ``size`` x ``size``: the same steps and observations as
    the gymnasium wrapper (the resize matches OpenCV's INTER_AREA to within 1 grey level), without
    importing OpenCV, so training and evaluation run where it is not installed.
    """

    def __init__(
        self, env: gym.Env[Any, Any], *, noop_max: int = 30, frame_skip: int = 4, size: int = 84
    ) -> None:
        super().__init__(env)
        if frame_skip < 1 or noop_max < 0:
            raise ValueError(f"frame_skip must be >= 1 and noop_max >= 0 (got {frame_skip}, {noop_max})")
        if frame_skip > 1 and getattr(env.unwrapped, "_frameskip", None) != 1:
            raise ValueError("AtariFrames skips frames itself: make the ALE env with frameskip=1")
        if noop_max > 0 and env.unwrapped.get_action_meanings()[0] != "NOOP":  # type: ignore[attr-defined]
            raise ValueError("no-op resets need NOOP as action 0")
        shape = env.observation_space.shape
        assert shape is not None
        self.noop_max = noop_max
        self.frame_skip = frame_skip
        self.buffers = np.zeros((2, shape[0], shape[1]), dtype=np.uint8)  # the last two grey frames
        self.rows = area_weights(shape[0], size)
        self.columns = np.ascontiguousarray(area_weights(shape[1], size).T)
        self.observation_space = gym.spaces.Box(0, 255, (size, size), dtype=np.uint8)

    @property
    def ale(self) -> Any:
        return self.env.unwrapped.ale  # type: ignore[attr-defined]

    def step(self, action: Any) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        total, terminated, truncated = 0.0, False, False
        info: dict[str, Any] = {}
        for t in range(self.frame_skip):
            _, reward, terminated, truncated, info = self.env.step(action)
            total += float(reward)
            if terminated or truncated:
                break  # as in gymnasium: the observation keeps the frames grabbed before
            if t >= self.frame_skip - 2:  # the second-last frame to buffer 1, the last to buffer 0
                self.ale.getScreenGrayscale(self.buffers[self.frame_skip - 1 - t])
        return self._observation(), total, terminated, truncated, info

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        _, info = self.env.reset(seed=seed, options=options)
        noops = int(self.env.unwrapped.np_random.integers(1, self.noop_max + 1)) if self.noop_max > 0 else 0
        for _ in range(noops):
            _, _, terminated, truncated, step_info = self.env.step(0)
            info.update(step_info)
            if terminated or truncated:
                _, info = self.env.reset(seed=seed, options=options)
        self.ale.getScreenGrayscale(self.buffers[0])
        self.buffers[1].fill(0)
        return self._observation(), info

    def _observation(self) -> np.ndarray:
        if self.frame_skip > 1:  # in place, as gymnasium's wrapper does
            np.maximum(self.buffers[0], self.buffers[1], out=self.buffers[0])
        resized = self.rows @ self.buffers[0].astype(np.float32) @ self.columns
        return np.rint(resized).astype(np.uint8)
