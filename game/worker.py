"""One game worker: plays its envs, writes n-step transitions to the hive memory, learns from it.

The loop, per vector step (``envs_per_worker`` env steps):

1. act ε-greedily with the worker's own ε (linear decay or its rung of the Ape-X ladder);
   ``pace`` says what the decay counts: own env steps, or every transition the hive writes;
2. step the envs; with SAME_STEP autoreset the successor of a finished episode is
   ``infos["final_obs"]``, never the next episode's reset observation;
3. fold the step into the n-step windows; finished episodes become ``episode`` events;
4. every ``insert_batch`` transitions: initial priorities from the worker's own |TD| (Ape-X), one
   insert into the shared memory;
5. every ``train_interval`` steps of the pace clock, once the memory holds ``learning_starts``
   transitions: ``updates_per_train`` times sample a prioritized batch, take one Double-DQN step
   with the importance weights, write the new priorities back;
6. periodically a ``train_stats`` event and a checkpoint (and a last ``train_stats`` at the end).

On stop (the hive's stop event, SIGTERM) the worker inserts what it buffered, checkpoints and
reports ``done``. A worker that finds its own checkpoint resumes from it (counters, networks,
optimizer, RNG states); a new worker of a session warm-starts from the session's latest checkpoint.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import signal
import socket
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event as EventType
from typing import Any

import numpy as np
import torch

from game.checkpoints import ModelStore
from game.dqn import DQNAgent, NStepAccumulator, NStepTransition, select_device
from game.envs import env_spec, episode_stats, make_vector_env
from hiverl.config import SessionConfig, config_from_dict
from hiverl.events import TRAINING_LOG_TOPIC, EventSink, envelope

RETURN_WINDOW = 100  # episodes in the running mean return


@dataclass(frozen=True)
class WorkerContext:
    """Everything a worker process needs (picklable: passed through multiprocessing spawn)."""

    index: int
    session_id: str
    config: Mapping[str, Any]  # the hive's resolved SessionConfig as JSON types
    redis_url: str


class PipeSink:
    """EventSink that forwards events to the trainer process, which publishes them to the real sink.

    Each worker has its own pipe (not a queue shared by all workers): a worker killed mid-write
    can only break its own channel, never block the others.
    """

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def publish(self, topic: str, event: Mapping[str, Any]) -> None:
        # A pipe closed during shutdown must not stop the worker: telemetry is best effort.
        with contextlib.suppress(ValueError, OSError):
            self.connection.send(("event", topic, dict(event)))

    def flush(self, timeout_s: float = 10.0) -> None:
        pass

    def close(self) -> None:
        pass


class MemoryPipeline:
    """Talks to the memory from one background thread so learning overlaps with Redis round trips.

    Inserts and priority updates are queued (fire and forget; errors surface on the next call).
    Samples come ``chunk`` batches per round trip, and the next chunk is requested as soon as the
    current one is handed out, so it is fetched while the learner computes; the priorities of
    ``chunk`` learning steps are written together, also one round trip. A batch therefore may
    miss the priority updates of the last ``2 * chunk`` learning steps (Ape-X's learner prefetches
    the same way); importance weights are normalised over the whole memory, so slicing a chunk keeps
    them exact. All calls run in order on one thread, so the memory client is never used
    concurrently. ``blocked_s`` counts only the time the worker's main thread waited.
    """

    def __init__(self, memory: Any, batch_size: int, chunk: int, seed: int) -> None:
        self.memory = memory
        self.batch_size = batch_size
        self.chunk = chunk
        self.rng = np.random.default_rng(seed)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="memory")
        self.pending: deque[Future[Any]] = deque()
        self.next_chunk: Future[Any] | None = None
        self.ready: deque[Any] = deque()
        self.priority_buffer: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.blocked_s = 0.0

    def _check(self) -> None:
        while self.pending and self.pending[0].done():
            self.pending.popleft().result()  # re-raises a failed insert or update here

    def _wait(self, future: Future[Any]) -> Any:
        tick = time.perf_counter()
        try:
            return future.result()
        finally:
            self.blocked_s += time.perf_counter() - tick

    def insert(self, batch: Any) -> None:
        self._check()
        self.pending.append(self.executor.submit(self.memory.insert, batch))

    def update_priorities(self, indices: np.ndarray, generations: np.ndarray, priorities: np.ndarray) -> None:
        """Queue new priorities; they are written ``chunk`` learning steps at a time, one round trip."""
        self._check()
        self.priority_buffer.append((indices, generations, priorities))
        if len(self.priority_buffer) >= self.chunk:
            self._flush_priorities()

    def _flush_priorities(self) -> None:
        if not self.priority_buffer:
            return
        columns = zip(*self.priority_buffer, strict=True)
        indices, generations, priorities = (np.concatenate(column) for column in columns)
        self.priority_buffer.clear()
        update = self.executor.submit(self.memory.update_priorities, indices, generations, priorities)
        self.pending.append(update)

    @property
    def writes_seen(self) -> int:
        """Transitions written to the memory by the whole hive, as of this worker's last round trip."""
        return self.memory.writes_seen

    def size(self) -> int:
        return int(self._wait(self.executor.submit(len, self.memory)))

    def sample(self, beta: float) -> Any:
        """One prioritized batch of ``batch_size`` (from the prefetched chunk; prefetch the next)."""
        if not self.ready:
            current = self.next_chunk or self._request_chunk(beta)
            self.next_chunk = self._request_chunk(beta)
            self.ready.extend(_split(self._wait(current), self.chunk))
        return self.ready.popleft()

    def _request_chunk(self, beta: float) -> Future[Any]:
        return self.executor.submit(self.memory.sample, self.batch_size * self.chunk, beta, self.rng)

    def drain(self) -> None:
        """Write queued priorities, wait for every queued call, drop prefetched samples (checkpoint, exit)."""
        self._flush_priorities()
        if self.next_chunk is not None:
            self._wait(self.next_chunk)
            self.next_chunk = None
        self.ready.clear()
        while self.pending:
            self._wait(self.pending.popleft())

    def close(self) -> None:
        try:
            self.drain()
        finally:
            self.executor.shutdown(wait=True)
            self.memory.close()


def _split(batch: Any, parts: int) -> list[Any]:
    """Cut a SampledBatch of parts*B rows into ``parts`` SampledBatches of B rows."""
    if parts == 1:
        return [batch]
    size = len(batch.indices) // parts
    columns = {f.name: getattr(batch, f.name) for f in dataclasses.fields(batch)}
    return [
        type(batch)(**{name: value[i * size : (i + 1) * size] for name, value in columns.items()})
        for i in range(parts)
    ]


def memory_name(session_id: str, index: int, shared: bool) -> str:
    """Name of the memory worker ``index`` uses: the hive's, or its own for private baselines."""
    return f"hive-{session_id}" if shared else f"hive-{session_id}-w{index}"


def stack_transitions(
    transitions: list[NStepTransition], obs_dtype: str, worker_id: str, priorities: np.ndarray | None
) -> Any:
    """Build a replay_memory.TransitionBatch from n-step transitions."""
    from replay_memory import TransitionBatch

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
        worker_id=worker_id,
        priorities=priorities,
    )


StatusCallback = Callable[[str, dict[str, Any]], None]


class Worker:
    """State and loop of one worker; :func:`run_worker` is the process entry point of a hive.

    Args:
        context: worker index, session, resolved hive settings, Redis URL.
        sink: where telemetry events go (the trainer's pipe, or e.g. a Kafka sink directly).
        on_status: lifecycle messages (``started``, ``checkpoint``, ``done``) with a payload dict.
    """

    def __init__(
        self, context: WorkerContext, sink: EventSink, on_status: StatusCallback | None = None
    ) -> None:
        from replay_memory import MemoryConfig, ObservationSpec, ReplayMemory

        self.context = context
        self.index = context.index
        self.on_status = on_status
        self.sink = sink
        hive = config_from_dict(context.config)
        self.hive = hive
        self.config: SessionConfig = hive.for_worker(self.index)
        self.settings = self.config.agent
        self.worker_id = f"{socket.gethostname()}-{os.getpid()}"
        torch.set_num_threads(self.config.torch_threads)

        # Counters (checkpointed).
        self.env_steps = 0
        self.episodes = 0
        self.returns: deque[float] = deque(maxlen=RETURN_WINDOW)
        self.seed = self.config.seed + 1000 * self.index
        self.rng = np.random.default_rng(self.seed)
        random.seed(self.seed)
        torch.manual_seed(self.seed)

        self.envs = make_vector_env(
            self.config.env_id,
            num_envs=self.config.envs_per_worker,
            seed=self.seed,
            random_action_rate=self.config.random_action_rate,
        )
        self.spec = env_spec(self.envs)
        self.device = select_device(self.config.device)
        self.agent = DQNAgent(self.spec.obs_shape, self.spec.n_actions, self.settings, self.device)
        self.accumulator = NStepAccumulator(
            self.config.envs_per_worker, self.settings.n_step, self.settings.gamma
        )
        self.store = ModelStore(self.config.model_dir, context.session_id)

        memory_settings = hive.memory
        memory = ReplayMemory.open(
            context.redis_url,
            MemoryConfig(
                name=memory_name(context.session_id, self.index, memory_settings.shared),
                capacity=memory_settings.capacity,
                alpha=memory_settings.alpha,
                shards=memory_settings.shards,
                observation=ObservationSpec(shape=self.spec.obs_shape, dtype=self.spec.obs_dtype),
                key_prefix=memory_settings.key_prefix,
            ),
        )
        self.memory = MemoryPipeline(
            memory, self.settings.batch_size, self.settings.sample_chunk, self.seed + 1
        )
        self._pace_reference = 0  # the memory's write count at the last look (pace = memory)
        self.resumed_from: int | None = None
        self.warm_started = False
        self._restore()

    # -- checkpoints ------------------------------------------------------------------------------

    def _restore(self) -> None:
        own = self.store.load_worker(self.index, map_location=self.device)
        if own is not None:
            self.agent.load_state_dict(own["agent"])
            counters = own["counters"]
            self.env_steps = int(counters["env_steps"])
            self.episodes = int(counters["episodes"])
            self.returns.extend(float(r) for r in own["returns"])
            self.rng.bit_generator.state = own["rng"]["numpy"]
            self.memory.rng.bit_generator.state = own["rng"]["sample"]
            torch.set_rng_state(own["rng"]["torch"])
            random.setstate(_as_python_random_state(own["rng"]["python"]))
            self.resumed_from = self.env_steps
            return
        latest = self.store.load_latest(map_location=self.device)
        if latest is not None and latest.get("env_id") == self.config.env_id:
            # A new worker joining the session: start from the hive's latest networks and optimizer,
            # with its own fresh counters.
            self.agent.load_state_dict(latest["agent"])
            self.agent.updates = 0
            self.warm_started = True

    def checkpoint(self) -> None:
        self.memory.drain()  # quiesce the memory thread: its sampling RNG state is saved too
        state = {
            "session_id": self.context.session_id,
            "env_id": self.config.env_id,
            "obs_shape": list(self.spec.obs_shape),
            "obs_dtype": self.spec.obs_dtype,
            "n_actions": self.spec.n_actions,
            "config": self.config.to_json_dict(),
            "agent": self.agent.state_dict(),
            "counters": {
                "env_steps": self.env_steps,
                "episodes": self.episodes,
                "updates": self.agent.updates,
            },
            "returns": list(self.returns),
            "rng": {
                "numpy": self.rng.bit_generator.state,
                "sample": self.memory.rng.bit_generator.state,
                "torch": torch.get_rng_state(),
                "python": _python_random_state(),
            },
        }
        path = self.store.save(self.index, state)
        self._message("checkpoint", {"env_steps": self.env_steps, "path": str(path)})

    # -- telemetry --------------------------------------------------------------------------------

    def _message(self, kind: str, payload: dict[str, Any]) -> None:
        if self.on_status is not None:
            self.on_status(kind, payload)

    def _event(self, event_type: str, **fields: Any) -> None:
        self.sink.publish(
            TRAINING_LOG_TOPIC,
            envelope(
                event_type,
                session_id=self.context.session_id,
                worker_index=self.index,
                worker_id=self.worker_id,
                env_id=self.config.env_id,
                **fields,
            ),
        )

    def epsilon(self) -> float:
        clock = self.env_steps if self.config.pace == "worker" else self.memory.writes_seen
        return self.config.exploration.epsilon(self.index, self.hive.workers, clock)

    def _pace_advance(self, own_steps: int) -> int:
        """How far the pace clock moved: the worker's own new env steps, or the memory's new writes.

        On the memory clock the first reply only sets the reference: a worker that joins (or resumes)
        a hive owes no learning for what was written before it came.
        """
        if self.config.pace == "worker":
            return own_steps
        seen = self.memory.writes_seen
        advance = own_steps if self._pace_reference == 0 else max(seen - self._pace_reference, 0)
        self._pace_reference = seen
        return advance

    def mean_return(self) -> float | None:
        return float(np.mean(self.returns)) if self.returns else None

    # -- the loop ---------------------------------------------------------------------------------

    def run(self, should_stop: Callable[[], bool]) -> None:
        config, settings = self.config, self.settings
        self._message(
            "started",
            {"pid": os.getpid(), "resumed_from": self.resumed_from, "warm_started": self.warm_started},
        )
        num_envs = config.envs_per_worker
        obs, _ = self.envs.reset(seed=self.seed + 7919 * self.episodes)
        episode_ids = np.array([self.episodes * num_envs + i for i in range(num_envs)], dtype=np.int64)
        next_episode_id = int(episode_ids.max()) + 1
        episode_steps = np.zeros(num_envs, dtype=np.int64)
        pending: list[NStepTransition] = []
        min_size = max(settings.learning_starts, settings.batch_size * settings.sample_chunk)
        learning = False
        last_loss: float | None = None
        last_return: float | None = None
        started = last_stats = time.monotonic()
        updates_at_start = self.agent.updates
        steps_at_stats, updates_at_stats, memory_at_stats = self.env_steps, self.agent.updates, 0.0
        next_checkpoint = (self.env_steps // config.checkpoint_interval + 1) * config.checkpoint_interval
        vector_steps = 0
        # The pace clock decides the learning phases; on pace=worker it is the worker's env steps, so a
        # resumed worker keeps the phase boundaries it had.
        pace_clock = self.env_steps

        def emit_stats(now: float, epsilon: float) -> None:
            """A ``train_stats`` event for the time since the last one (rates over that interval)."""
            nonlocal last_stats, steps_at_stats, updates_at_stats, memory_at_stats
            elapsed = max(now - last_stats, 1e-9)
            self._event(
                "train_stats",
                env_steps=self.env_steps,
                updates=self.agent.updates,
                episodes=self.episodes,
                env_steps_per_s=(self.env_steps - steps_at_stats) / elapsed,
                updates_per_s=(self.agent.updates - updates_at_stats) / elapsed,
                memory_time_share=(self.memory.blocked_s - memory_at_stats) / elapsed,
                memory_writes=self.memory.writes_seen,
                loss=last_loss,
                epsilon=epsilon,
                last_return=last_return,
                mean_return_100=self.mean_return(),
            )
            last_stats, steps_at_stats = now, self.env_steps
            updates_at_stats, memory_at_stats = self.agent.updates, self.memory.blocked_s

        while self.env_steps < config.total_steps and not should_stop():
            # Step 1: act.
            epsilon = self.epsilon()
            actions = self.agent.act(obs, epsilon, self.rng)

            # Step 2: step the envs (SAME_STEP autoreset: successors of ended episodes in final_obs).
            next_obs, rewards, terminated, truncated, infos = self.envs.step(actions)
            self.env_steps += num_envs
            vector_steps += 1

            # Step 3: n-step windows and finished episodes.
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
                            mean_return_100=self.mean_return(),
                        )
            obs = next_obs

            # Step 4: insert with the worker's own TD errors as initial priorities (Ape-X).
            if len(pending) >= settings.insert_batch:
                self._insert(pending)
                pending = []

            # Step 5: learn from the hive's memory, a phase per train_interval steps of the pace clock.
            previous_clock, pace_clock = pace_clock, pace_clock + self._pace_advance(num_envs)
            phases = pace_clock // settings.train_interval - previous_clock // settings.train_interval
            if not learning and vector_steps % 16 == 1:
                learning = self.memory.size() >= min_size
            if learning:
                beta = settings.beta_start + (settings.beta_end - settings.beta_start) * min(
                    1.0, self.env_steps / config.total_steps
                )
                for _ in range(phases * settings.updates_per_train):
                    last_loss = self._learn(beta)

            # Step 6: statistics and checkpoints.
            now = time.monotonic()
            if now - last_stats >= config.stats_interval_s:
                emit_stats(now, epsilon)
            if self.env_steps >= next_checkpoint:
                self.checkpoint()
                next_checkpoint += config.checkpoint_interval

        # Shutdown: keep what was collected, report the last interval's statistics, checkpoint.
        if pending:
            self._insert(pending)
        self.memory.drain()
        if self.env_steps > steps_at_stats:
            emit_stats(time.monotonic(), self.epsilon())
        self.checkpoint()
        wall = time.monotonic() - started
        self._message(
            "done",
            {
                "env_steps": self.env_steps,
                "updates": self.agent.updates,
                "updates_this_run": self.agent.updates - updates_at_start,
                "episodes": self.episodes,
                "mean_return_100": self.mean_return(),
                "last_return": last_return,
                "wall_s": wall,
                "memory_time_share": self.memory.blocked_s / wall if wall > 0 else 0.0,
            },
        )
        self.envs.close()
        self.memory.close()

    def _insert(self, transitions: list[NStepTransition]) -> None:
        """Insert with Ape-X initial priorities: the worker's own |TD| + eps for this very batch."""
        batch = stack_transitions(transitions, self.spec.obs_dtype, self.worker_id, None)
        td = self.agent.td_errors(batch.obs, batch.actions, batch.rewards, batch.next_obs, batch.discounts)
        batch.priorities = (td + self.settings.priority_eps).astype(np.float32)
        self.memory.insert(batch)

    def _learn(self, beta: float) -> float:
        """One prioritized learning step with importance weights; new priorities written back."""
        sample = self.memory.sample(beta)
        result = self.agent.learn(
            sample.obs, sample.actions, sample.rewards, sample.next_obs, sample.discounts, sample.weights
        )
        priorities = (result.td_abs + self.settings.priority_eps).astype(np.float32)
        self.memory.update_priorities(sample.indices, sample.generations, priorities)
        return result.loss


def _python_random_state() -> list[Any]:
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]


def _as_python_random_state(stored: list[Any]) -> tuple[Any, ...]:
    return (stored[0], tuple(stored[1]), stored[2])


def run_worker(context: WorkerContext, connection: Connection, stop: EventType) -> None:
    """Process entry point: run one worker until its budget is spent or the hive stops.

    Messages to the trainer go through ``connection`` (this worker's own pipe).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the trainer handles Ctrl-C and sets ``stop``
    terminate = threading.Event()  # SIGTERM stops this worker only (checkpointing), not the hive
    signal.signal(signal.SIGTERM, lambda *_: terminate.set())

    def on_status(kind: str, payload: dict[str, Any]) -> None:
        with contextlib.suppress(ValueError, OSError):  # pipe closed during shutdown
            connection.send((kind, context.index, payload))

    try:
        worker = Worker(context, PipeSink(connection), on_status)
        worker.run(lambda: stop.is_set() or terminate.is_set())
    except BaseException:
        on_status("error", {"text": traceback.format_exc()})
        raise
    finally:
        connection.close()
