"""The learner: the hive's one mind, trained on everything every actor writes to the memory.

The loop, one learning step at a time:

1. keep every sampler slot busy (``learner.samplers`` processes, 2 chunks each; :mod:`game.sampling`),
   each chunk requested only when the rate limiter allows it (``learner.samples_per_insert``; the
   sample count goes to the board with the request);
2. take the next prioritized batch, already on the device (:mod:`game.staging`: one upload per
   chunk, observations stacked there); when none is allowed yet, wait for the actors (a solo hive
   plays a vector step itself instead);
3. one Double-DQN step with the importance weights (``game/dqn.py``), never waiting for the GPU;
4. the new priorities, written back ``sample_chunk`` steps at a time by a thread that waits for them;
5. every ``weights_interval`` steps publish the weights to the board (a new version);
6. ``train_stats`` every ``stats_interval_s``; a checkpoint every ``checkpoint_interval`` steps or
   ``checkpoint_interval_s``, whichever comes first.

It ends when the hive has inserted ``total_steps`` transitions and the learner has consumed its
share of them, or on a stop request (SIGTERM, Ctrl-C, the evaluator's "solved", a user): it writes
the queued priorities, checkpoints, publishes its last weights and sets the board's stop flag so
the actors finish too. A restarted learner resumes from the freshest of its checkpoint (networks,
optimizer, counters, RNG states) and the board's weights (:meth:`Learner._restore`); actors keep
playing the last published weights meanwhile.
"""

from __future__ import annotations

import contextlib
import os
import random
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import torch

from game.board import Board, BoardState
from game.checkpoints import ModelStore
from game.dqn import DQNAgent, select_device
from game.envs import env_spec, make_env
from game.hive_memory import OUTAGE_ERRORS, Stopped, memory_config
from game.learner_stats import DeviceMean, UpdateTimer
from game.rate_limiter import hive_rate_limiter
from game.roles import RoleContext, RoleProcess, StatusCallback
from game.sampling import SamplerPool
from game.staging import DeviceBatch, PriorityWriter, Stager
from hiverl.events import EventSink
from replay_memory import ObservationSpec

IDLE_WAIT_S = 0.002
BOARD_SYNC_S = 0.005


class Learner(RoleProcess):
    """The hive's learner; :meth:`run` trains until the budget is spent or a stop comes.

    Args:
        context: session, resolved settings, Redis URL (role ``learner``).
        sink: where ``train_stats`` events go.
        on_status: lifecycle messages (``started``, ``checkpoint``, ``done``) with a payload dict.
        on_outage: told about each failed Redis call while the learner waits for Redis.
        should_stop: polled every step; True finishes the run cleanly.
    """

    role = "learner"

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
        seed = config.role_seed("learner")
        self.rng = np.random.default_rng(seed)
        random.seed(seed)
        torch.manual_seed(seed)

        probe = make_env(config.env_id, seed=seed)
        self.spec = env_spec(probe)
        probe.close()
        self.device = select_device(config.device)
        self.agent = DQNAgent(self.spec.obs_shape, self.spec.n_actions, config.agent, self.device)
        self.store = ModelStore(config.model_dir, context.session_id)

        settings = config.learner
        self.limiter = hive_rate_limiter(config)
        self.memory_config = memory_config(
            config, ObservationSpec(shape=self.spec.obs_shape, dtype=self.spec.obs_dtype)
        )
        self.request_size = config.agent.batch_size * settings.sample_chunk
        self.limiter.check(self.request_size, config.actor.insert_batch)
        self.pool = SamplerPool(
            context.redis_url,
            self.memory_config,
            rows=self.request_size,
            samplers=settings.samplers,
            seed=seed + 1,
            threads=config.torch_threads,
            should_stop=self._stopping,
            on_outage=self.on_outage,
        )
        self.stager = Stager(self.pool, self.device, self.spec.obs_shape, config.agent.batch_size)
        self.priorities = PriorityWriter(
            context.redis_url,
            self.memory_config,
            chunk=settings.sample_chunk,
            priority_eps=config.agent.priority_eps,
            should_stop=self._stopping,
            on_outage=self.on_outage,
        )
        self.ready: deque[DeviceBatch] = deque()
        self.timer = UpdateTimer()
        self.board = Board(context.redis_url, context.session_id, config.memory.key_prefix)
        self.resumed_from = self._restore()
        self.checkpointed_at, self.checkpointed_updates = time.monotonic(), self.agent.updates
        self.board_state = self._retry(self.board.poll)
        self.samples = self.board_state.samples  # the board's count outlives a learner restart
        self.weights_version = 0
        self._synced = 0.0
        self._sync: Future[BoardState] | None = None
        self._publishing: Future[int] | None = None
        self._board_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="board")

    # -- helpers ----------------------------------------------------------------------------------

    def _beta(self) -> float:
        agent = self.config.agent
        fraction = min(1.0, self.board_state.inserts / self.config.total_steps)
        return agent.beta_start + (agent.beta_end - agent.beta_start) * fraction

    def _publish(self, wait: bool = False) -> None:
        """Publish the online network's weights as a new version, on the board thread: the copy to
        the host and the upload wait there, not in the loop (a snapshot on the device is taken now).
        One publication in flight at a time; a newer one waits for the last."""
        if self._publishing is not None:
            self.weights_version = self._publishing.result()
        state = {name: tensor.detach().clone() for name, tensor in self.agent.online.state_dict().items()}
        updates = self.agent.updates
        self._publishing = self._board_thread.submit(self._retry, lambda: self.board.publish(state, updates))
        if wait:
            self.weights_version = self._publishing.result()
            self._publishing = None

    # -- checkpoints ------------------------------------------------------------------------------

    def _restore(self) -> int | None:
        """Resume from the freshest of the checkpoint and the board's weights; the learning steps
        done, or None for a new session.

        The checkpoint has everything (both networks, Adam, the counters, the RNG states) but is
        only written every ``checkpoint_interval`` steps or ``checkpoint_interval_s``; the board has
        the online network of at most ``weights_interval`` steps ago. When the board's are newer they
        are loaded into both networks (a target update) with the checkpoint's optimizer state, and
        the step count continues from theirs: a restarted learner never goes back to older weights.
        """
        state = self.store.load(map_location=self.device)
        if state is not None:
            self.agent.load_state_dict(state["agent"])
            self.rng.bit_generator.state = state["rng"]["numpy"]
            torch.set_rng_state(state["rng"]["torch"])
            version, internal, gauss = state["rng"]["python"]
            random.setstate((version, tuple(internal), gauss))
        published = self._retry(lambda: self.board.fetch(newer_than=0))
        if published is not None and published.updates > self.agent.updates:
            self.agent.online.load_state_dict(published.state)
            self.agent.target.load_state_dict(published.state)
            self.agent.updates = published.updates
        elif state is None:
            return None
        return self.agent.updates

    def _drain(self) -> None:
        """Write the queued priorities (given up only when a stop comes during a Redis outage)."""
        with contextlib.suppress(Stopped):
            self.priorities.drain()

    def checkpoint_due(self, now: float) -> bool:
        """``checkpoint_interval`` steps or ``checkpoint_interval_s`` since the last checkpoint."""
        settings = self.config.learner
        return (
            self.agent.updates >= self.checkpointed_updates + settings.checkpoint_interval
            or now - self.checkpointed_at >= settings.checkpoint_interval_s
        )

    def checkpoint(self) -> None:
        self._drain()  # the priorities of every step taken so far are in the memory
        version, internal, gauss = random.getstate()
        path = self.store.save(
            {
                "session_id": self.context.session_id,
                "env_id": self.config.env_id,
                "obs_shape": list(self.spec.obs_shape),
                "obs_dtype": self.spec.obs_dtype,
                "n_actions": self.spec.n_actions,
                "config": self.config.to_json_dict(),
                "agent": self.agent.state_dict(),
                "counters": {"updates": self.agent.updates, "samples": self.samples},
                "rng": {
                    "numpy": self.rng.bit_generator.state,
                    "torch": torch.get_rng_state(),
                    "python": [version, list(internal), gauss],
                },
            }
        )
        self.checkpointed_at, self.checkpointed_updates = time.monotonic(), self.agent.updates
        self.on_status("checkpoint", {"updates": self.agent.updates, "path": str(path)})

    # -- the loop ---------------------------------------------------------------------------------

    def _sync_board(self) -> None:
        """Tell the board the sample count and read the actors' inserts, without waiting: one round
        trip in flight at a time, on the board thread, at most every ``BOARD_SYNC_S``."""
        if self._publishing is not None and self._publishing.done():
            self.weights_version = self._publishing.result()
            self._publishing = None
        if self._sync is not None:
            if not self._sync.done():
                return
            self.board_state = self._sync.result()
            self._sync = None
        now = time.monotonic()
        if now - self._synced < BOARD_SYNC_S:
            return
        samples, self._synced = self.samples, now
        self._sync = self._board_thread.submit(self._retry, lambda: self.board.set_samples(samples))

    def _request_allowed_chunks(self) -> None:
        """Step 1: keep the samplers busy as far as the rate limiter allows (on the last known counts;
        the board is synced in the background)."""
        self._sync_board()
        self.stager.reclaim()
        while self.pool.can_request and self.limiter.can_sample(
            self.board_state.inserts, self.samples, self.request_size
        ):
            self.samples += self.request_size
            self.pool.request(self._beta())

    @property
    def pending(self) -> int:
        """Batches requested or ready but not yet learned from."""
        return len(self.ready) + self.config.learner.sample_chunk * len(self.pool.in_flight)

    def _next_batch(self) -> DeviceBatch:
        """Step 2: the next batch on the device (``pending`` must be > 0)."""
        if not self.ready:
            chunk = self.pool.next_chunk()
            assert chunk is not None
            self.timer.lap("fetch_wait")
            self.ready.extend(self.stager.stage(chunk))
            self.timer.lap("stage")
        return self.ready.popleft()

    def _budget_spent(self) -> bool:
        return self.board_state.inserts >= self.config.total_steps and not self.limiter.can_sample(
            self.board_state.inserts, self.samples, self.request_size
        )

    def run(self, play: Iterator[None] | None = None) -> None:
        """Train until the budget is spent or a stop comes; ``play`` is a solo hive's own actor."""
        config = self.config
        if self.board_state.stop is not None:  # a resumed session trains again
            self._retry(self.board.clear_stop)
            self.board_state = self._retry(self.board.poll)
        self._publish(wait=True)  # actors joining now play the current weights at once
        self.on_status(
            "started",
            {"pid": os.getpid(), "resumed_from": self.resumed_from, "weights_version": self.weights_version},
        )
        started = last_stats = time.monotonic()
        updates_at_start = updates_at_stats = self.agent.updates
        blocked_at_stats = 0.0
        loss, q_mean = DeviceMean(), DeviceMean()
        solo_playing = play is not None
        status = "completed"

        def emit_stats(now: float) -> None:
            nonlocal last_stats, updates_at_stats, blocked_at_stats
            elapsed = max(now - last_stats, 1e-9)
            consumed = self.board_state.inserts - self.limiter.min_size
            self._event(
                "train_stats",
                updates=self.agent.updates,
                updates_per_s=(self.agent.updates - updates_at_stats) / elapsed,
                loss=loss.read(),
                mean_q=q_mean.read(),
                memory_time_share=(self.pool.blocked_s - blocked_at_stats) / elapsed,
                memory_writes=self.board_state.inserts,
                learner_samples=self.samples,
                samples_per_insert=self.samples / consumed if consumed > 0 else None,
                weights_version=self.weights_version,
                learning_rate=config.agent.lr,
                **self.timer.report(),
            )
            last_stats, updates_at_stats, blocked_at_stats = now, self.agent.updates, self.pool.blocked_s

        while True:
            if self.should_stop():
                status = "stopped"
                break
            if self.board_state.stop is not None:
                status = self.board_state.stop
                break
            if self._budget_spent() and not self.pending and not solo_playing:
                break

            # Step 1: keep the samplers busy as far as the rate limiter allows.
            self._request_allowed_chunks()

            # Step 2: the next batch; nothing allowed yet -> play (solo) or wait for the actors.
            if not self.pending:
                if play is not None and solo_playing:
                    solo_playing = next(play, StopIteration) is not StopIteration
                else:
                    time.sleep(IDLE_WAIT_S)
                continue
            self.timer.lap("other")
            batch = self._next_batch()

            # Step 3: one Double-DQN step with the importance weights (queued on the device).
            result = self.agent.learn(
                batch.obs, batch.actions, batch.rewards, batch.next_obs, batch.discounts, batch.weights
            )
            loss.add(result.loss)
            q_mean.add(result.q_mean)
            self.timer.lap("step")

            # Step 4: the new priorities back to the memory (read off the device by the writer thread).
            self.priorities.add(batch.indices, batch.generations, result.td_abs)
            self.timer.lap("priorities")

            # Step 5: publish the weights.
            if self.agent.updates % config.learner.weights_interval == 0:
                self._publish()
                self.timer.lap("publish")
            self.timer.count()

            # Step 6: statistics and checkpoints.
            now = time.monotonic()
            if now - last_stats >= config.stats_interval_s:
                emit_stats(now)
            if self.checkpoint_due(now):
                self.checkpoint()

        # Shutdown: every priority written, a checkpoint, the last weights, and the actors told.
        self.checkpoint()
        if self._publishing is not None:
            with contextlib.suppress(Stopped, *OUTAGE_ERRORS):  # the last one below is what counts
                self._publishing.result()
        self.stop_reason = status
        with contextlib.suppress(*OUTAGE_ERRORS):  # the checkpoint holds them; Redis may be gone
            self.board.set_samples(self.samples)
            self.board.publish(self.agent.online.state_dict(), self.agent.updates)
            if status == "completed":
                self.board.request_stop("completed")
        emit_stats(time.monotonic())
        wall = time.monotonic() - started
        self.on_status(
            "done",
            {
                "status": status,
                "updates": self.agent.updates,
                "updates_this_run": self.agent.updates - updates_at_start,
                "wall_s": wall,
                "memory_time_share": self.pool.blocked_s / wall if wall > 0 else 0.0,
            },
        )

    def close(self) -> None:
        self._board_thread.shutdown(wait=True, cancel_futures=True)
        with contextlib.suppress(Stopped, *OUTAGE_ERRORS):
            self.priorities.close()
        self.stager.close()
        self.pool.close()
        self.board.close()
