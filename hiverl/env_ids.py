"""Which environment ids a hive can play, checked before any process starts.

An id is accepted when gymnasium has it registered and the hive's DQN can play it: discrete
actions and an observation the network takes, a flat ``Box`` of floats (an MLP) or ``uint8``
frame stacks of shape ``(frames, 84, 84)`` (the Nature CNN). ``ALE/...`` ids are Atari games, which the hive
preprocesses into such frame stacks itself (:mod:`game.envs`); any other id is made once (per
process and id, cached) to read its spaces. Nothing an id names is ever imported: ``module:Name``
ids, which ``gymnasium.make`` would import, are refused by their shape before any lookup, and only
registered ids are made (their modules are the registry's, not the caller's).
"""

from __future__ import annotations

import contextlib
import functools
import re
from typing import Any

#: Longest environment id accepted (gymnasium's registered ids are far shorter).
ENV_ID_MAX_CHARS = 100
_ENV_ID_SHAPE = re.compile(r"(?:[A-Za-z0-9_.-]+/)?[A-Za-z0-9_.-]+")
#: Side of the square frames of a frame-stack observation (the Nature CNN's input).
FRAME_SIZE = 84
_EXAMPLES = "e.g. CartPole-v1, Acrobot-v1, MountainCar-v0, ALE/Pong-v5"


def _register_atari() -> None:
    import gymnasium

    try:
        import ale_py
    except ImportError:
        raise ValueError("is an Atari id but ale-py is not installed (pip install hiverl[game])") from None
    gymnasium.register_envs(ale_py)


def _space(space: Any) -> str:
    """A space in a few words, e.g. ``Box(-2.0, 2.0, (1,), float32)``, at most 120 characters."""
    text = str(space)
    return text if len(text) <= 120 else text[:117] + "..."


def observation_problem(space: Any) -> str | None:
    """Why the hive's network cannot take observations from ``space``, or None when it can."""
    import numpy as np
    from gymnasium.spaces import Box

    if isinstance(space, Box):
        shape = tuple(space.shape)
        if len(shape) == 1 and np.issubdtype(space.dtype, np.floating):
            return None
        if space.dtype == np.uint8 and len(shape) == 3 and shape[1:] == (FRAME_SIZE, FRAME_SIZE):
            return None
    return (
        f"has observations {_space(space)}: the hive plays a flat Box of floats or uint8 frame"
        f" stacks of shape (frames, {FRAME_SIZE}, {FRAME_SIZE}) ({_EXAMPLES})"
    )


@functools.lru_cache(maxsize=256)
def unplayable(env_id: str) -> str | None:
    """Why the hive cannot play the registered, non-Atari ``env_id``, or None when it can.

    Makes the env once to read its spaces (cached per id); an env that cannot be made here (a
    missing dependency such as Box2D or MuJoCo) cannot be played either.
    """
    import gymnasium
    from gymnasium.spaces import Discrete

    try:
        env = gymnasium.make(env_id, disable_env_checker=True)
    except Exception as error:  # any failure of the registered constructor
        reason = f"{type(error).__name__}: {error}"
        return f"cannot be made here ({reason[:200]})"
    try:
        actions, observations = env.action_space, env.observation_space
    finally:
        with contextlib.suppress(Exception):
            env.close()
    if not isinstance(actions, Discrete):
        return f"has actions {_space(actions)}: the hive's DQN needs discrete actions ({_EXAMPLES})"
    return observation_problem(observations)


def check_env_id(env_id: str) -> str:
    """``env_id`` if gymnasium has it registered and the hive can play it, else ValueError saying
    why. ``ALE/...`` ids once ale-py registered them (Atari: discrete actions, frame stacks)."""
    if len(env_id) > ENV_ID_MAX_CHARS:
        raise ValueError(f"is {len(env_id)} characters long (at most {ENV_ID_MAX_CHARS})")
    if ":" in env_id:
        raise ValueError(
            "module:Name ids are not accepted (gymnasium would import the module): use a registered id"
        )
    if not _ENV_ID_SHAPE.fullmatch(env_id):
        raise ValueError("is not an environment id like CartPole-v1 or ALE/Pong-v5")
    import gymnasium

    atari = env_id.startswith("ALE/")
    if atari:
        _register_atari()
    if env_id not in gymnasium.registry:
        raise ValueError(f"is not a registered gymnasium environment ({_EXAMPLES})")
    entry_point = str(gymnasium.registry[env_id].entry_point)
    if "jax" in entry_point.lower():
        raise ValueError(
            f"is a JAX environment ({entry_point[:100]}): the hive steps numpy environments ({_EXAMPLES})"
        )
    problem = None if atari else unplayable(env_id)
    if problem:
        raise ValueError(problem)
    return env_id
