"""What an actor does around each env step, vectorised over its envs: ε-greedy actions from the values
of one forward pass, n-step windows, and the Ape-X initial priorities of what it stores.

Ape-X (Horgan et al., 2018) computes a transition's initial priority in the actor from values it has
anyway: Q(s_t, a_t) from the forward pass that chose a_t, and the bootstrap max_a Q(s_{t+m}, a) from
the forward that acts in s_{t+m}, m steps later. Priorities then cost no forward pass of their own.
Each value comes from the weights the actor held when it computed it (a weights refresh may fall
between the two), not from one network at insert time as in :func:`game.dqn.initial_priorities`,
the reference definition: with fixed weights both give the same numbers. Only the final observation
of a truncated episode is never acted upon; the actor evaluates those few in one small extra forward
in the rare step where an episode hits its time limit. A terminated window has discount 0 and needs
no bootstrap.

:class:`NStepFold` is :class:`game.dqn.NStepAccumulator` (the reference) for all envs at once: the
same transitions, as columns, plus each one's Q(s_t, a_t) and bootstrap value.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from replay_memory import TransitionBatch


@torch.no_grad()
def action_values(network: nn.Module, obs: np.ndarray, device: torch.device) -> np.ndarray:
    """[E, *obs_shape] observations -> [E, A] action values on the host (one forward pass)."""
    return network(torch.as_tensor(np.asarray(obs), device=device)).cpu().numpy()


def epsilon_greedy_q(q: np.ndarray, epsilon: float | np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """[E, A] action values -> [E] int64 actions, random with probability ε (scalar or [E]).

    The same draws from ``rng`` as :func:`game.dqn.epsilon_greedy`, which takes the network instead.
    """
    greedy = q.argmax(axis=1)
    explore = rng.random(len(greedy)) < epsilon
    random_actions = rng.integers(0, q.shape[1], size=len(greedy))
    return np.where(explore, random_actions, greedy).astype(np.int64)


def td_priorities(
    q_taken: np.ndarray,
    rewards: np.ndarray,
    discounts: np.ndarray,
    bootstrap: np.ndarray,
    priority_eps: float,
) -> np.ndarray:
    """Ape-X initial priorities [B]: |R + discount * bootstrap - Q(s, a)| + eps, as float32.

    Args:
        q_taken: [B] Q(s_t, a_t) computed when a_t was chosen.
        rewards: [B] n-step discounted returns.
        discounts: [B] γ^m, 0 where the episode terminated.
        bootstrap: [B] max_a Q(s_{t+m}, a) (any finite value where the discount is 0).
        priority_eps: added so that every transition can be sampled.
    """
    q_taken, rewards, discounts, bootstrap = (
        np.asarray(a, dtype=np.float32) for a in (q_taken, rewards, discounts, bootstrap)
    )
    return (np.abs(rewards + discounts * bootstrap - q_taken) + np.float32(priority_eps)).astype(np.float32)


@dataclass
class Rows:
    """n-step transitions of several envs as columns (the fields of :class:`NStepTransition`),
    with the values the actor computed while acting, for the initial priorities."""

    obs: np.ndarray
    actions: np.ndarray  # int64
    rewards: np.ndarray  # float32 discounted m-step returns (summed in float64)
    next_obs: np.ndarray
    discounts: np.ndarray  # float32 γ^m, 0 where terminated
    terminated: np.ndarray  # bool
    truncated: np.ndarray  # bool
    n_steps: np.ndarray  # int32
    episode_ids: np.ndarray  # int64
    step_indices: np.ndarray  # int64
    q_taken: np.ndarray  # float32 Q(s_t, a_t)
    bootstrap: np.ndarray  # float32 max_a Q(s_{t+m}, a); 0 where terminated

    def __len__(self) -> int:
        return len(self.actions)

    @staticmethod
    def concat(parts: Sequence[Rows]) -> Rows:
        if len(parts) == 1:
            return parts[0]
        return Rows(
            **{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in dataclasses.fields(Rows)}
        )

    def batch(self, obs_dtype: str, worker_id: str, priorities: np.ndarray | None) -> TransitionBatch:
        """The memory's :class:`replay_memory.TransitionBatch` of these rows."""
        return TransitionBatch(
            obs=self.obs.astype(obs_dtype, copy=False),
            actions=self.actions,
            rewards=self.rewards,
            next_obs=self.next_obs.astype(obs_dtype, copy=False),
            discounts=self.discounts,
            terminated=self.terminated,
            truncated=self.truncated,
            n_steps=self.n_steps,
            episode_ids=self.episode_ids,
            step_indices=self.step_indices,
            worker_id=worker_id,
            priorities=priorities,
        )


#: Rows of observations still in the envs' arrays: (array [k, *shape], row indices into it).
_Piece = tuple[np.ndarray, np.ndarray]
_COLUMNS = tuple(f.name for f in dataclasses.fields(Rows) if f.name not in ("obs", "next_obs"))


@dataclass
class _Chunk:
    """Rows not taken yet: their observations are gathered only by :meth:`NStepFold.take`."""

    columns: dict[str, np.ndarray]
    obs: list[_Piece]
    next_obs: list[_Piece]


def _gather(pieces: list[_Piece], rows: int) -> np.ndarray:
    """One array of the pieces' rows, in order: each observation is copied once."""
    first = pieces[0][0]
    out = np.empty((rows, *first.shape[1:]), dtype=first.dtype)
    lo = 0
    for array, index in pieces:
        np.take(array, index, axis=0, out=out[lo : lo + len(index)], mode="clip")  # "raise" buffers
        lo += len(index)
    return out


class NStepFold:
    """n-step windows of ``num_envs`` envs that step together, one call per vector step.

    Emits exactly the transitions of :class:`game.dqn.NStepAccumulator`: a window emits its oldest
    step once it holds ``n`` steps; when an episode ends every pending step is emitted with the
    rewards it has (discount 0 on termination; γ^m on truncation, bootstrapping from the final
    observation). It also numbers the episodes (env i starts with episode i, each new episode takes
    the next number in env order) and their steps.

    The last ``n`` steps live in ring buffers: observation arrays by reference (the envs return a
    fresh array every step; nothing here writes to one), actions, rewards and Q(s, a) in ``[n, E]``
    arrays. Observations are copied once, into the arrays :meth:`take` returns. A full window's
    bootstrap is the max of the values the next call brings, so its row is ready one step later;
    rows of ended episodes are ready at once.
    """

    def __init__(self, num_envs: int, n: int, gamma: float) -> None:
        if num_envs < 1 or n < 1 or not 0.0 < gamma <= 1.0:
            raise ValueError(f"need num_envs >= 1, n >= 1, 0 < gamma <= 1 (got {num_envs}, {n}, {gamma})")
        self.num_envs, self.n, self.gamma = num_envs, n, gamma
        self.powers = gamma ** np.arange(n + 1, dtype=np.float64)
        self._obs: list[np.ndarray] = [np.empty(0)] * n
        self._actions = np.zeros((n, num_envs), dtype=np.int64)
        self._rewards = np.zeros((n, num_envs), dtype=np.float64)
        self._q = np.zeros((n, num_envs), dtype=np.float32)
        self._steps = np.zeros((n, num_envs), dtype=np.int64)
        self._t = 0  # vector steps pushed; the newest step is in slot (_t - 1) % n
        self.length = np.zeros(num_envs, dtype=np.int64)  # steps of each env's current episode held (<= n)
        self.episode_ids = np.arange(num_envs, dtype=np.int64)
        self.episode_steps = np.zeros(num_envs, dtype=np.int64)
        self.next_episode_id = num_envs
        self._ready: list[_Chunk] = []
        self._ready_count = 0
        self._waiting: tuple[np.ndarray, _Chunk] | None = None  # (env indices, rows) missing bootstrap

    def __len__(self) -> int:
        """Rows ready to be taken."""
        return self._ready_count

    def push(
        self,
        obs: np.ndarray,
        q: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        next_obs: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
        final_obs: Sequence[np.ndarray | None] | np.ndarray | None = None,
        final_values: np.ndarray | None = None,
    ) -> None:
        """Record one vector step.

        Args:
            obs: [E, ...] the observations acted on; kept by reference, never written to.
            q: [E, A] their action values (the forward that chose ``actions``).
            actions, rewards, terminated, truncated: [E] what the envs did.
            next_obs: [E, ...] the envs' next observations (reset observations where an episode ended).
            final_obs: per env, the true last observation where an episode ended (``infos["final_obs"]``).
            final_values: [E] max_a Q(final_obs, a), needed where an episode was truncated, not terminated.
        """
        n = self.n
        q = np.asarray(q)
        self.resolve(q.max(axis=1))  # the values of obs bootstrap the windows completed last step
        slot = self._t % n
        self._t += 1
        self._obs[slot] = np.asarray(obs)
        self._actions[slot] = actions
        self._rewards[slot] = rewards
        self._q[slot] = q[np.arange(self.num_envs), actions]
        self._steps[slot] = self.episode_steps
        np.minimum(self.length + 1, n, out=self.length)
        self.episode_steps += 1
        done = np.logical_or(terminated, truncated)
        for env in np.flatnonzero(done):
            self._flush(int(env), slot, bool(terminated[env]), final_obs, final_values)
        full = np.flatnonzero(~done & (self.length == n))
        if len(full):
            start = (slot + 1) % n  # the oldest slot (the newest when n = 1)
            order = (start + np.arange(n)) % n
            k = len(full)
            columns = {
                "actions": self._actions[start, full],
                "rewards": (self.powers[:n] @ self._rewards[order][:, full]).astype(np.float32),
                "discounts": np.full(k, self.powers[n], dtype=np.float32),
                "terminated": np.zeros(k, dtype=bool),
                "truncated": np.zeros(k, dtype=bool),
                "n_steps": np.full(k, n, dtype=np.int32),
                "episode_ids": self.episode_ids[full],
                "step_indices": self._steps[start, full],
                "q_taken": self._q[start, full],
                "bootstrap": np.full(k, np.nan, dtype=np.float32),
            }
            self._waiting = (
                full,
                _Chunk(columns, [(self._obs[start], full)], [(np.asarray(next_obs), full)]),
            )

    def _flush(
        self,
        env: int,
        slot: int,
        terminated: bool,
        final_obs: Sequence[np.ndarray | None] | np.ndarray | None,
        final_values: np.ndarray | None,
    ) -> None:
        """An episode of ``env`` ended in ``slot``: emit all its held steps, oldest first; new episode."""
        m = int(self.length[env])
        slots = (slot - m + 1 + np.arange(m)) % self.n  # oldest first
        if final_obs is None or final_obs[env] is None:
            raise ValueError(f"env {env} ended: final_obs[{env}] (its true last observation) is needed")
        if not terminated and final_values is None:
            raise ValueError(f"env {env} was truncated: final_values (max_a Q(final_obs, a)) are needed")
        returns = np.empty(m, dtype=np.float64)
        acc = 0.0
        for i in range(m - 1, -1, -1):  # R_i = r_i + γ R_{i+1}
            acc = self._rewards[slots[i], env] + self.gamma * acc
            returns[i] = acc
        horizons = np.arange(m, 0, -1)
        bootstrap = 0.0 if terminated else final_values[env]  # type: ignore[index]
        columns = {
            "actions": self._actions[slots, env],
            "rewards": returns.astype(np.float32),
            "discounts": np.zeros(m, np.float32) if terminated else self.powers[horizons].astype(np.float32),
            "terminated": np.full(m, terminated),
            "truncated": np.full(m, not terminated),
            "n_steps": horizons.astype(np.int32),
            "episode_ids": np.full(m, self.episode_ids[env], dtype=np.int64),
            "step_indices": self._steps[slots, env],
            "q_taken": self._q[slots, env],
            "bootstrap": np.full(m, bootstrap, dtype=np.float32),
        }
        row = np.array([env])
        last = np.asarray(final_obs[env])[None]
        self._add_ready(
            _Chunk(columns, [(self._obs[s], row) for s in slots], [(last, np.zeros(m, dtype=np.int64))])
        )
        self.length[env] = 0
        self.episode_steps[env] = 0
        self.episode_ids[env] = self.next_episode_id
        self.next_episode_id += 1

    def _add_ready(self, chunk: _Chunk) -> None:
        self._ready.append(chunk)
        self._ready_count += len(chunk.columns["actions"])

    def resolve(self, values: np.ndarray) -> None:
        """Complete the rows waiting for their bootstrap: ``values`` [E] = max_a Q(s, a) of the envs'
        current observations (:meth:`push` does this itself; call it once more before a last take)."""
        if self._waiting is not None:
            envs, chunk = self._waiting
            chunk.columns["bootstrap"] = np.asarray(values, dtype=np.float32)[envs]
            self._waiting = None
            self._add_ready(chunk)

    def take(self) -> Rows | None:
        """The ready rows in one :class:`Rows` (None when there are none); they are handed over."""
        if not self._ready:
            return None
        chunks, count = self._ready, self._ready_count
        self._ready, self._ready_count = [], 0
        columns = {name: np.concatenate([c.columns[name] for c in chunks]) for name in _COLUMNS}
        return Rows(
            obs=_gather([piece for c in chunks for piece in c.obs], count),
            next_obs=_gather([piece for c in chunks for piece in c.next_obs], count),
            **columns,
        )
