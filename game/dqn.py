"""Double DQN with a dueling head, n-step returns and prioritized replay: the hive's mathematics.

Read top to bottom:

1. networks: an MLP torso for vector observations, the Nature CNN for 84x84 pixel stacks, and a
   (dueling) Q head;
2. n-step returns: how an actor turns its env steps into stored transitions;
3. targets and loss: the Double-DQN bootstrap target and the importance-weighted Huber loss;
   acting ε-greedily and the actors' initial (Ape-X) priorities, as pure functions;
4. the agent (the learner's): one learning step on a prioritized sample, target-network updates,
   and its checkpointable state.

All hyperparameters come from :class:`hiverl.config_sections.AgentSettings`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from hiverl.config_sections import AgentSettings


def select_device(name: str) -> torch.device:
    """``auto`` -> CUDA when present, else CPU; anything else is passed to :class:`torch.device`."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


# ---------------------------------------------------------------------------------------------
# 1. Networks
# ---------------------------------------------------------------------------------------------


class NatureCNN(nn.Module):
    """Mnih et al. (2015) torso: [B, C, 84, 84] uint8 frames -> [B, 512] features."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(in_channels, 32, kernel_size=8, stride=4),
            nn.ReLU(),
            nn.Conv2d(32, 64, kernel_size=4, stride=2),
            nn.ReLU(),
            nn.Conv2d(64, 64, kernel_size=3, stride=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(64 * 7 * 7, 512),
            nn.ReLU(),
        )
        self.out_features = 512

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.layers(frames.float() / 255.0)  # uint8 on the wire, scaled on the device


class MLP(nn.Module):
    """[B, D] float observations -> [B, hidden_sizes[-1]] features (ReLU)."""

    def __init__(self, in_features: int, hidden_sizes: tuple[int, ...]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_features
        for size in hidden_sizes:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        self.layers = nn.Sequential(*layers)
        self.out_features = width

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.layers(obs.float().flatten(1))


class QNetwork(nn.Module):
    """Q(s, ·) for discrete actions; ``dueling`` splits the head into V(s) + A(s, a) - mean_a A(s, a)."""

    def __init__(
        self, obs_shape: tuple[int, ...], n_actions: int, hidden_sizes: tuple[int, ...], dueling: bool
    ) -> None:
        super().__init__()
        self.torso: NatureCNN | MLP
        if len(obs_shape) == 3:
            self.torso = NatureCNN(obs_shape[0])
        else:
            self.torso = MLP(int(np.prod(obs_shape)), hidden_sizes)
        self.dueling = dueling
        self.advantage = nn.Linear(self.torso.out_features, n_actions)
        self.value = nn.Linear(self.torso.out_features, 1) if dueling else None

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """[B, *obs_shape] -> [B, n_actions] action values."""
        features = self.torso(obs)
        advantage = self.advantage(features)
        if self.value is None:
            return advantage
        return self.value(features) + advantage - advantage.mean(dim=1, keepdim=True)


# ---------------------------------------------------------------------------------------------
# 2. n-step returns (computed by an actor before inserting into the memory)
# ---------------------------------------------------------------------------------------------


class NStepTransition(NamedTuple):
    """One stored transition: s_t, a_t, R = sum_{k<m} γ^k r_{t+k}, s_{t+m}, discount for s_{t+m}."""

    obs: np.ndarray
    action: int
    reward: float  # discounted m-step return
    next_obs: np.ndarray
    discount: float  # γ^m, or 0.0 when the episode terminated within the m steps
    terminated: bool
    truncated: bool
    n_steps: int  # m: n, or fewer at the end of an episode
    episode_id: int
    step_index: int  # t: env step within the episode


@dataclass
class _Pending:
    obs: np.ndarray
    action: int
    reward: float
    step_index: int


class NStepAccumulator:
    """Per-environment sliding windows that turn single steps into n-step transitions.

    A window emits its oldest step once it holds ``n`` steps. When an episode ends every pending
    step is emitted with the rewards it has: on termination the discount is 0 (no bootstrap); on
    truncation (time limit) the episode did not end in the MDP, so the discount is γ^m and the
    learner bootstraps from the final observation.
    """

    def __init__(self, num_envs: int, n: int, gamma: float) -> None:
        if num_envs < 1 or n < 1 or not 0.0 < gamma <= 1.0:
            raise ValueError(f"need num_envs >= 1, n >= 1, 0 < gamma <= 1 (got {num_envs}, {n}, {gamma})")
        self.n = n
        self.gamma = gamma
        self.windows: list[deque[_Pending]] = [deque() for _ in range(num_envs)]

    def _emit(
        self,
        window: deque[_Pending],
        next_obs: np.ndarray,
        terminated: bool,
        truncated: bool,
        episode_id: int,
    ) -> NStepTransition:
        first = window[0]
        ret = 0.0
        for k, pending in enumerate(window):
            ret += (self.gamma**k) * pending.reward
        m = len(window)
        window.popleft()
        return NStepTransition(
            obs=first.obs,
            action=first.action,
            reward=ret,
            next_obs=next_obs,
            discount=0.0 if terminated else self.gamma**m,
            terminated=terminated,
            truncated=truncated,
            n_steps=m,
            episode_id=episode_id,
            step_index=first.step_index,
        )

    def push(
        self,
        env_index: int,
        obs: np.ndarray,
        action: int,
        reward: float,
        next_obs: np.ndarray,
        terminated: bool,
        truncated: bool,
        episode_id: int,
        step_index: int,
    ) -> list[NStepTransition]:
        """Record one env step (s, a, r, s') of env ``env_index``; return the transitions it completes.

        ``next_obs`` must be the true successor state (the final observation when the episode ended,
        never the reset observation of the next episode).
        """
        window = self.windows[env_index]
        window.append(_Pending(obs, int(action), float(reward), step_index))
        out: list[NStepTransition] = []
        if terminated or truncated:
            while window:
                out.append(self._emit(window, next_obs, terminated, truncated and not terminated, episode_id))
        elif len(window) == self.n:
            out.append(self._emit(window, next_obs, False, False, episode_id))
        return out


# ---------------------------------------------------------------------------------------------
# 3. Targets and loss
# ---------------------------------------------------------------------------------------------


def double_dqn_targets(
    rewards: torch.Tensor,
    discounts: torch.Tensor,
    next_q_online: torch.Tensor,
    next_q_target: torch.Tensor,
    double: bool = True,
) -> torch.Tensor:
    """y = R + discount * Q_target(s', argmax_a Q_online(s', a))   (plain DQN: max_a Q_target(s', a)).

    Args:
        rewards: [B] n-step discounted returns.
        discounts: [B] γ^m, 0 where the episode terminated.
        next_q_online: [B, A] online-network values at s'.
        next_q_target: [B, A] target-network values at s'.
    Returns:
        [B] bootstrap targets (no gradient).
    """
    if double:
        best = next_q_online.argmax(dim=1, keepdim=True)
        bootstrap = next_q_target.gather(1, best).squeeze(1)
    else:
        bootstrap = next_q_target.max(dim=1).values
    return (rewards + discounts * bootstrap).detach()


def weighted_huber_loss(
    q_taken: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor, delta: float
) -> torch.Tensor:
    """mean_i w_i * Huber_delta(Q(s_i, a_i) - y_i); the weights correct prioritized sampling bias."""
    per_sample = F.huber_loss(q_taken, targets, reduction="none", delta=delta)
    return (weights * per_sample).mean()


@torch.no_grad()
def epsilon_greedy(
    network: nn.Module, obs: torch.Tensor, epsilon: float | np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """[E, *obs_shape] observations -> [E] int64 actions, random with probability ε (scalar or [E])."""
    q = network(obs)
    greedy = q.argmax(dim=1).cpu().numpy()
    explore = rng.random(len(greedy)) < epsilon
    random_actions = rng.integers(0, q.shape[1], size=len(greedy))
    return np.where(explore, random_actions, greedy).astype(np.int64)


@torch.no_grad()
def initial_priorities(
    network: nn.Module,
    obs: torch.Tensor,
    actions: torch.Tensor,
    rewards: torch.Tensor,
    discounts: torch.Tensor,
    next_obs: torch.Tensor,
    priority_eps: float,
) -> np.ndarray:
    """Ape-X initial priorities [B]: |R + discount * max_a Q(s', a) - Q(s, a)| + eps, with the actor's
    own copy of the network standing in for both online and target (actors hold no target)."""
    both = network(torch.cat([obs, next_obs]))
    q_taken = both[: len(obs)].gather(1, actions.unsqueeze(1)).squeeze(1)
    targets = rewards + discounts * both[len(obs) :].max(dim=1).values
    return ((targets - q_taken).abs() + priority_eps).cpu().numpy().astype(np.float32)


# ---------------------------------------------------------------------------------------------
# 4. The agent
# ---------------------------------------------------------------------------------------------


@dataclass
class LearnResult:
    """Outcome of one learning step, left on the learner's device: reading it is a host sync, so the
    learner reads the priorities on another thread and the loss only when it reports."""

    loss: torch.Tensor  # [] the importance-weighted Huber loss
    td_abs: torch.Tensor  # [B] |y - Q(s, a)| measured in this step, the new priorities
    q_mean: torch.Tensor  # [] mean Q(s, a) of the batch


Batch = torch.Tensor | np.ndarray


class DQNAgent:
    """Online and target Q-networks, Adam, and the Double-DQN update."""

    def __init__(
        self,
        obs_shape: tuple[int, ...],
        n_actions: int,
        settings: AgentSettings,
        device: torch.device | str = "cpu",
    ) -> None:
        if n_actions < 2:
            raise ValueError(f"n_actions must be >= 2 (got {n_actions})")
        self.settings = settings
        self.n_actions = n_actions
        self.device = torch.device(device)
        cuda = self.device.type == "cuda"
        if cuda:
            torch.backends.cudnn.benchmark = True  # fixed input shapes: let cuDNN pick the fastest convs
        self.online = QNetwork(obs_shape, n_actions, settings.hidden_sizes, settings.dueling).to(self.device)
        self.target = QNetwork(obs_shape, n_actions, settings.hidden_sizes, settings.dueling).to(self.device)
        self.target.load_state_dict(self.online.state_dict())
        self.target.requires_grad_(False)
        # One kernel for every parameter: fused on CUDA, foreach on a CPU (fewer Python calls on
        # small networks).
        self.optimizer = torch.optim.Adam(
            self.online.parameters(),
            lr=settings.lr,
            eps=settings.adam_eps,
            fused=cuda or None,
            foreach=None if cuda else True,
        )
        self.updates = 0

    def _tensor(self, array: Batch, dtype: torch.dtype | None = None) -> torch.Tensor:
        if isinstance(array, np.ndarray):  # arrays decoded from the memory may be read-only views
            array = np.require(array, requirements="W")
        return torch.as_tensor(array, dtype=dtype, device=self.device)

    def _q_and_targets(
        self, obs: Batch, actions: Batch, rewards: Batch, next_obs: Batch, discounts: Batch
    ) -> tuple[torch.Tensor, torch.Tensor]:
        obs_t = self._tensor(obs)
        next_t = self._tensor(next_obs)
        actions_t = self._tensor(actions, torch.int64).unsqueeze(1)
        if self.settings.double:
            # One forward pass of the online network over s and s' (half the per-call overhead).
            both = self.online(torch.cat([obs_t, next_t]))
            q_all, next_online = both[: len(obs_t)], both[len(obs_t) :].detach()
        else:
            q_all, next_online = self.online(obs_t), None
        q_taken = q_all.gather(1, actions_t).squeeze(1)
        with torch.no_grad():
            next_target = self.target(next_t)
            targets = double_dqn_targets(
                self._tensor(rewards, torch.float32),
                self._tensor(discounts, torch.float32),
                next_online if next_online is not None else next_target,
                next_target,
                double=self.settings.double,
            )
        return q_taken, targets

    # One learning step on a prioritized sample ----------------------------------------------
    def learn(
        self, obs: Batch, actions: Batch, rewards: Batch, next_obs: Batch, discounts: Batch, weights: Batch
    ) -> LearnResult:
        """Minimise the IS-weighted Huber TD loss once; return the loss and the new |TD| per sample.

        Takes tensors on the agent's device (or arrays, copied there) of B rows: ``obs``/``next_obs``
        ``[B, *obs_shape]``, ``actions`` ``[B]`` int, ``rewards``/``discounts``/``weights`` ``[B]``.
        Nothing here waits for the device.
        """
        q_taken, targets = self._q_and_targets(obs, actions, rewards, next_obs, discounts)
        weights_t = self._tensor(weights, torch.float32)
        loss = weighted_huber_loss(q_taken, targets, weights_t, self.settings.huber_delta)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.online.parameters(), self.settings.max_grad_norm)
        self.optimizer.step()
        self.updates += 1
        # Target network: hard copy every interval or Polyak averaging every step.
        self._update_target()
        q_detached = q_taken.detach()
        return LearnResult(loss=loss.detach(), td_abs=(targets - q_detached).abs(), q_mean=q_detached.mean())

    @torch.no_grad()
    def _update_target(self) -> None:
        tau = self.settings.tau
        if tau >= 1.0:
            if self.updates % self.settings.target_update_interval == 0:
                self.target.load_state_dict(self.online.state_dict())
            return
        for target_param, param in zip(self.target.parameters(), self.online.parameters(), strict=True):
            target_param.lerp_(param, tau)

    # Checkpointable state -------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "online": self.online.state_dict(),
            "target": self.target.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "updates": self.updates,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.online.load_state_dict(state["online"])
        self.target.load_state_dict(state["target"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.updates = int(state["updates"])
