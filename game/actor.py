"""An actor: plays its envs with the hive's latest weights and writes what it sees to the memory.

Actors are stateless: a new or restarted actor connects, fetches the current weights and plays.
The loop, one vector step (``actor.envs`` env steps) at a time:

1. weights: when the board's version moved (it is polled with every insert), fetch the new blob;
2. act ε-greedily with this actor's ε (its rung of the Ape-X ladder, or the linear decay over the
   hive's inserted transitions);
3. step the envs; with SAME_STEP autoreset the successor of a finished episode is
   ``infos["final_obs"]``, never the next episode's reset observation;
4. fold the step into the n-step windows of all envs at once (:class:`game.acting.NStepFold`);
   finished episodes become ``episode`` events;
5. every ``actor.insert_batch`` transitions: Ape-X initial priorities from the values computed while
   acting (Q(s_t, a_t) from the forward of step t, max_a Q(s_{t+n}, a) from the forward of step
   t+n; see :mod:`game.acting`), one insert (encoded and written on a background thread) and one
   board round trip that counts the inserts and polls version, learner progress and the stop flag;
6. the rate limiter: while the hive's inserts are too far ahead of the learner, wait;
7. every ``stats_interval_s`` a ``train_stats`` event.

``stage_s`` adds up the seconds the loop spends in each step (``bench/acting.py`` reports them).

In a solo hive (``actors = 0``) the learner's process runs one actor whose network *is* the
learner's online network, so step 1 has nothing to do.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

from game.acting import NStepFold, Rows, action_values, epsilon_greedy_q, td_priorities
from game.board import Board, BoardState, Weights
from game.dqn import QNetwork, select_device
from game.envs import env_spec, episode_stats, make_vector_env
from game.hive_memory import memory_config, open_memory
from game.rate_limiter import hive_rate_limiter
from game.roles import RoleContext, RoleProcess
from hiverl.events import EventSink
from replay_memory import ObservationSpec, ReplayMemory

RETURN_WINDOW = 100  # episodes in the running mean return
MAX_INSERTS_IN_FLIGHT = 2
LIMITER_POLL_S = 0.02  # how often a held-back actor looks at the board again
#: The loop's steps in ``Actor.stage_s``: the acting forward and ε-greedy, the env step, the
#: bootstrap values of truncated episodes' final observations and the priorities, the n-step fold
#: and episode events, building and handing over an insert, and waiting (inserts in flight, limiter).
STAGES = ("act", "env", "priorities", "fold", "insert", "wait")


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
        self.fold = NStepFold(settings.envs, agent.n_step, agent.gamma)

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
        self.stage_s = dict.fromkeys(STAGES, 0.0)

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

    def _clock(self, stage: str, since: float) -> float:
        """Add the time since ``since`` to ``stage``; return now."""
        now = time.perf_counter()
        self.stage_s[stage] += now - since
        return now

    def _final_values(
        self, infos: dict[str, Any], terminated: np.ndarray, truncated: np.ndarray
    ) -> np.ndarray | None:
        """max_a Q(final_obs, a) where an episode was truncated (never acted on: one small forward)."""
        cut = np.flatnonzero(truncated & ~terminated)
        if not len(cut):
            return None
        values = np.zeros(len(terminated), dtype=np.float32)
        final = np.stack([np.asarray(infos["final_obs"][i]) for i in cut])
        values[cut] = action_values(self.network, final, self.device).max(axis=1)
        return values

    def _insert(self, rows: Rows) -> None:
        """Step 5: initial priorities from the values computed while acting; insert and count in the
        background (the memory validates and encodes on that thread)."""
        tick = time.perf_counter()
        priorities = td_priorities(
            rows.q_taken, rows.rewards, rows.discounts, rows.bootstrap, self.hive.agent.priority_eps
        )
        tick = self._clock("priorities", tick)
        batch = rows.batch(self.spec.obs_dtype, self.writer_id, priorities)

        def write() -> BoardState:
            self._retry(lambda: self.memory.insert(batch))
            return self._retry(lambda: self.board.add_inserts(len(batch)))

        self.inserts_in_flight.append(self.inserter.submit(write))
        self._clock("insert", tick)
        self._collect_inserts(block=len(self.inserts_in_flight) > MAX_INSERTS_IN_FLIGHT)

    def _collect_inserts(self, block: bool) -> None:
        while self.inserts_in_flight and (block or self.inserts_in_flight[0].done()):
            tick = time.perf_counter()
            self.board_state = self.inserts_in_flight.popleft().result()
            waited = time.perf_counter() - tick
            self.waited_s += waited
            self.stage_s["wait"] += waited
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
        waited = time.perf_counter() - tick
        self.waited_s += waited
        self.stage_s["wait"] += waited

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
                last_return=self.returns[-1] if self.returns else None,
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

            # Step 2: act; the values also give the initial priorities (step 5).
            tick = time.perf_counter()
            epsilon = self.epsilon()
            q = action_values(self.network, obs, self.device)
            actions = epsilon_greedy_q(q, epsilon, self.rng)
            tick = self._clock("act", tick)

            # Step 3: step the envs (SAME_STEP autoreset: successors of ended episodes in final_obs).
            next_obs, rewards, terminated, truncated, infos = self.envs.step(actions)
            self.env_steps += num_envs
            tick = self._clock("env", tick)
            final_values = self._final_values(infos, terminated, truncated)
            tick = self._clock("priorities", tick)

            # Step 4: n-step windows and finished episodes.
            final_obs = infos.get("final_obs")
            self.fold.push(obs, q, actions, rewards, next_obs, terminated, truncated, final_obs, final_values)
            for i in np.flatnonzero(np.logical_or(terminated, truncated)):
                self._episode_ended(infos, int(i), epsilon)
            obs = next_obs
            self._clock("fold", tick)

            # Steps 5 and 6: insert with initial priorities; respect the learn/insert ratio.
            if len(self.fold) >= settings.insert_batch:
                self._wait_for_learner(len(self.fold))
                self._insert_ready()
            else:
                self._collect_inserts(block=False)

            # Step 7: statistics.
            now = time.monotonic()
            if now - last_stats >= config.stats_interval_s:
                emit_stats(now)
            yield

        # Shutdown: keep what was collected (the last full windows bootstrap from the current
        # observations), report the last interval.
        if not self._stopping():
            self.fold.resolve(action_values(self.network, obs, self.device).max(axis=1))
            self._insert_ready()
        while self.inserts_in_flight:
            self._collect_inserts(block=True)
        emit_stats(time.monotonic())
        self.stop_reason = self.board_state.stop
        self.wall_s = time.monotonic() - started

    def _insert_ready(self) -> None:
        rows = self.fold.take()
        if rows is not None:
            self._insert(rows)

    def _episode_ended(self, infos: dict[str, Any], env: int, epsilon: float) -> None:
        """An episode of env ``env`` ended at this step: an ``episode`` event when the game is over."""
        stats = episode_stats(infos, env)
        if stats is None:
            return
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

    def close(self) -> None:
        self.inserter.shutdown(wait=True)
        self.envs.close()
        self.memory.close()
        self.board.close()
