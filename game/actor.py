"""An actor: plays its envs with the hive's latest weights and writes what it sees to the memory.

Actors are stateless: a new or restarted actor connects, fetches the current weights and plays.
The loop, one vector step (``actor.envs`` env steps) at a time:

1. weights: when the board's version moved (it is polled with every insert), fetch the new blob;
2. act ε-greedily with this actor's ε (its rung of the Ape-X ladder, or the linear decay over the
   hive's inserted transitions);
3. step the envs; with SAME_STEP autoreset the successor of a finished episode is
   ``infos["final_obs"]``, never the next episode's reset observation;
4. fold the step into the n-step windows; finished episodes become ``episode`` events;
5. every ``actor.insert_batch`` transitions: Ape-X initial priorities from this actor's own copy of
   the network, one insert (on a background thread) and one board round trip that counts the
   inserts and polls version, learner progress and the stop flag;
6. the rate limiter: while the hive's inserts are too far ahead of the learner, wait;
7. every ``stats_interval_s`` a ``train_stats`` event.

In a solo hive (``actors = 0``) the learner's process runs one actor whose network *is* the
learner's online network, so step 1 has nothing to do.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import torch

from game.board import Board, BoardState, Weights
from game.dqn import (
    NStepAccumulator,
    NStepTransition,
    QNetwork,
    epsilon_greedy,
    initial_priorities,
    select_device,
)
from game.envs import env_spec, episode_stats, make_vector_env
from game.hive_memory import memory_config, open_memory
from game.rate_limiter import hive_rate_limiter
from game.roles import RoleContext, RoleProcess
from hiverl.events import EventSink
from replay_memory import ObservationSpec, ReplayMemory, TransitionBatch

RETURN_WINDOW = 100  # episodes in the running mean return
MAX_INSERTS_IN_FLIGHT = 2
LIMITER_POLL_S = 0.02  # how often a held-back actor looks at the board again


def stack_transitions(
    transitions: list[NStepTransition], obs_dtype: str, writer_id: str, priorities: np.ndarray | None
) -> TransitionBatch:
    """Build a replay_memory.TransitionBatch from n-step transitions."""
    return TransitionBatch(
        obs=np.stack([t.obs for t in transitions]).astype(obs_dtype, copy=False),
        actions=np.array([t.action for t in transitions], dtype=np.int64),
        rewards=np.array([t.reward for t in transitions], dtype=np.float32),
        next_obs=np.stack([t.next_obs for t in transitions]).astype(obs_dtype, copy=False),
        discounts=np.array([t.discount for t in transitions], dtype=np.float32),
        terminated=np.array([t.terminated for t in transitions], dtype=bool),
        truncated=np.array([t.truncated for t in transitions], dtype=bool),
        n_steps=np.array([t.n_steps for t in transitions], dtype=np.int32),
        episode_ids=np.array([t.episode_id for t in transitions], dtype=np.int64),
        step_indices=np.array([t.step_index for t in transitions], dtype=np.int64),
        worker_id=writer_id,
        priorities=priorities,
    )


class Actor(RoleProcess):
    """One actor of a hive; :meth:`run` plays until the hive's budget is spent or it is told to stop.

    Args:
        context: role, actor index, session, resolved settings, Redis URL.
        sink: where ``episode`` and ``train_stats`` events go.
        network: play this network instead of fetching published weights (solo hives).
        on_outage: told about each failed Redis call while the actor waits for Redis.
    """

    role = "actor"

    def __init__(
        self,
        context: RoleContext,
        sink: EventSink,
        *,
        network: QNetwork | None = None,
        on_outage: Callable[[str], None] | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> None:
        super().__init__(context, sink, on_outage=on_outage, should_stop=should_stop)
        hive = self.hive
        self.config = hive.for_actor(self.index)
        self.seed = hive.role_seed("actor", self.index)
        self.rng = np.random.default_rng(self.seed)
        torch.manual_seed(self.seed)
        settings = self.config.actor

        # The envs and this actor's copy of the network.
        self.envs = make_vector_env(
            self.config.env_id,
            num_envs=settings.envs,
            seed=self.seed,
            random_action_rate=settings.random_action_rate,
        )
        self.spec = env_spec(self.envs)
        agent = hive.agent
        self.follows_board = network is None
        if network is None:
            self.device = select_device(hive.actor_device)
            network = QNetwork(self.spec.obs_shape, self.spec.n_actions, agent.hidden_sizes, agent.dueling)
            network.to(self.device).requires_grad_(False)
        else:
            self.device = next(network.parameters()).device
        self.network = network
        self.accumulator = NStepAccumulator(settings.envs, agent.n_step, agent.gamma)

        # The memory, the board and the learn/insert ratio.
        spec = ObservationSpec(shape=self.spec.obs_shape, dtype=self.spec.obs_dtype)
        self.memory: ReplayMemory = open_memory(
            context.redis_url, memory_config(hive, spec), self._stopping, self.on_outage
        )
        self.board = Board(context.redis_url, context.session_id, hive.memory.key_prefix)
        self.limiter = hive_rate_limiter(hive)
        self.inserter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="insert")
        self.inserts_in_flight: deque[Future[BoardState]] = deque()

        # Counters (nothing is checkpointed: a restarted actor starts afresh).
        self.env_steps = 0
        self.episodes = 0
        self.returns: deque[float] = deque(maxlen=RETURN_WINDOW)
        self.weights_version = 0
        self.board_state = self._retry(self.board.poll)
        self.waited_s = 0.0  # waiting on Redis or on the rate limiter

    # -- helpers ----------------------------------------------------------------------------------

    def epsilon(self) -> float:
        return self.config.exploration.epsilon(self.index, max(self.hive.actors, 1), self.board_state.inserts)

    def mean_return(self) -> float | None:
        return float(np.mean(self.returns)) if self.returns else None

    def _refresh_weights(self) -> None:
        weights = self._call_weights()
        if weights is not None:
            self.network.load_state_dict(weights.state)
            self.weights_version = weights.version

    def _call_weights(self) -> Weights | None:
        return self._retry(lambda: self.board.fetch(self.weights_version))

    def _insert(self, transitions: list[NStepTransition]) -> None:
        """Step 5: initial priorities from this actor's network; insert and count in the background."""
        batch = stack_transitions(transitions, self.spec.obs_dtype, self.writer_id, None)

        def tensor(array: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(array, device=self.device)

        batch.priorities = initial_priorities(
            self.network,
            tensor(batch.obs),
            tensor(batch.actions),
            tensor(batch.rewards),
            tensor(batch.discounts),
            tensor(batch.next_obs),
            self.hive.agent.priority_eps,
        )

        def write() -> BoardState:
            self._retry(lambda: self.memory.insert(batch))
            return self._retry(lambda: self.board.add_inserts(len(batch)))

        self.inserts_in_flight.append(self.inserter.submit(write))
        self._collect_inserts(block=len(self.inserts_in_flight) > MAX_INSERTS_IN_FLIGHT)

    def _collect_inserts(self, block: bool) -> None:
        while self.inserts_in_flight and (block or self.inserts_in_flight[0].done()):
            tick = time.perf_counter()
            self.board_state = self.inserts_in_flight.popleft().result()
            self.waited_s += time.perf_counter() - tick
            block = False

    def _wait_for_learner(self, n: int) -> None:
        """Step 6: while the hive is too far ahead of the learner, wait (polling the board)."""
        if not self.follows_board:
            return  # solo: the learner in this very loop keeps the ratio
        tick = time.perf_counter()
        while not self.limiter.can_insert(self.board_state.inserts, self.board_state.samples, n):
            if self._stopping() or self.board_state.stop is not None:
                break
            time.sleep(LIMITER_POLL_S)
            self.board_state = self._retry(self.board.poll)
        self.waited_s += time.perf_counter() - tick

    # -- the loop ---------------------------------------------------------------------------------

    def run(self) -> None:
        """Play until the hive has written ``total_steps`` transitions, a stop flag or ``should_stop``."""
        for _ in self.steps():
            pass

    def steps(self) -> Iterator[None]:
        """The loop as a generator: one yield per vector step (a solo hive interleaves learning)."""
        config, settings = self.config, self.config.actor
        num_envs = settings.envs
        obs, _ = self.envs.reset(seed=self.seed)
        episode_ids = np.arange(num_envs, dtype=np.int64)
        next_episode_id = num_envs
        episode_steps = np.zeros(num_envs, dtype=np.int64)
        pending: list[NStepTransition] = []
        last_return: float | None = None
        started = last_stats = time.monotonic()
        steps_at_stats, waited_at_stats = 0, 0.0

        def emit_stats(now: float) -> None:
            nonlocal last_stats, steps_at_stats, waited_at_stats
            elapsed = max(now - last_stats, 1e-9)
            self._event(
                "train_stats",
                env_steps=self.env_steps,
                episodes=self.episodes,
                env_steps_per_s=(self.env_steps - steps_at_stats) / elapsed,
                memory_time_share=(self.waited_s - waited_at_stats) / elapsed,
                memory_writes=self.board_state.inserts,
                epsilon=self.epsilon(),
                weights_version=self.weights_version,
                last_return=last_return,
                mean_return_100=self.mean_return(),
            )
            last_stats, steps_at_stats, waited_at_stats = now, self.env_steps, self.waited_s

        while (
            self.board_state.inserts < self.hive.total_steps
            and self.board_state.stop is None
            and not self._stopping()
        ):
            # Step 1: the latest weights, when the board says they changed.
            if self.follows_board and self.board_state.version > self.weights_version:
                self._refresh_weights()

            # Step 2: act.
            epsilon = self.epsilon()
            actions = epsilon_greedy(
                self.network, torch.as_tensor(np.asarray(obs), device=self.device), epsilon, self.rng
            )

            # Step 3: step the envs (SAME_STEP autoreset: successors of ended episodes in final_obs).
            next_obs, rewards, terminated, truncated, infos = self.envs.step(actions)
            self.env_steps += num_envs

            # Step 4: n-step windows and finished episodes.
            for i in range(num_envs):
                done = bool(terminated[i] or truncated[i])
                successor = infos["final_obs"][i] if done else next_obs[i]
                pending += self.accumulator.push(
                    i,
                    obs[i],
                    int(actions[i]),
                    float(rewards[i]),
                    successor,
                    bool(terminated[i]),
                    bool(truncated[i]),
                    int(episode_ids[i]),
                    int(episode_steps[i]),
                )
                episode_steps[i] += 1
                if done:
                    episode_steps[i] = 0
                    episode_ids[i] = next_episode_id
                    next_episode_id += 1
                    stats = episode_stats(infos, i)
                    if stats is not None:
                        last_return = stats[0]
                        self.returns.append(stats[0])
                        self.episodes += 1
                        self._event(
                            "episode",
                            episode=self.episodes,
                            episode_return=stats[0],
                            episode_length=stats[1],
                            env_steps=self.env_steps,
                            epsilon=epsilon,
                            weights_version=self.weights_version,
                            mean_return_100=self.mean_return(),
                        )
            obs = next_obs

            # Steps 5 and 6: insert with initial priorities; respect the learn/insert ratio.
            if len(pending) >= settings.insert_batch:
                self._wait_for_learner(len(pending))
                self._insert(pending)
                pending = []
            else:
                self._collect_inserts(block=False)

            # Step 7: statistics.
            now = time.monotonic()
            if now - last_stats >= config.stats_interval_s:
                emit_stats(now)
            yield

        # Shutdown: keep what was collected, report the last interval.
        if pending and not self._stopping():
            self._insert(pending)
        while self.inserts_in_flight:
            self._collect_inserts(block=True)
        emit_stats(time.monotonic())
        self.stop_reason = self.board_state.stop
        self.wall_s = time.monotonic() - started

    def close(self) -> None:
        self.inserter.shutdown(wait=True)
        self.envs.close()
        self.memory.close()
        self.board.close()
