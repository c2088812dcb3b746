"""The sections of a session's settings (:class:`hiverl.config.SessionConfig`): the DQN agent, the
learner, how an actor plays, exploration, the evaluator and the replay memory.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, coerce_numbers_to_str=True)


class AgentSettings(_Section):
    """Double DQN hyperparameters of the hive's one network (the learner trains it, actors play it)."""

    gamma: float = Field(default=0.99, gt=0.0, le=1.0, description="Discount factor per env step.")
    n_step: int = Field(default=3, ge=1, le=20, description="Steps aggregated into one stored transition.")
    lr: float = Field(default=1e-3, gt=0.0, le=1.0, description="Adam learning rate.")
    adam_eps: float = Field(default=1e-5, gt=0.0, description="Adam epsilon.")
    batch_size: int = Field(default=64, ge=1, le=4096, description="Transitions per learning step.")
    target_update_interval: int = Field(
        default=64, ge=1, description="Learning steps between hard target-network copies (when tau == 1)."
    )
    tau: float = Field(
        default=1.0, gt=0.0, le=1.0, description="1 = hard copy every interval; <1 = Polyak each step."
    )
    max_grad_norm: float = Field(default=10.0, gt=0.0, description="Global gradient-norm clip.")
    huber_delta: float = Field(default=1.0, gt=0.0, description="Huber loss threshold.")
    hidden_sizes: tuple[int, ...] = Field(
        default=(128, 128), description="MLP layer widths (vector observations)."
    )
    dueling: bool = Field(default=True, description="Dueling value/advantage head.")
    double: bool = Field(default=True, description="Double DQN target (online argmax, target value).")
    priority_eps: float = Field(default=1e-3, gt=0.0, description="Added to |TD| when writing priorities.")
    beta_start: float = Field(
        default=0.4, ge=0.0, le=1.0, description="Importance-sampling exponent at start."
    )
    beta_end: float = Field(
        default=1.0, ge=0.0, le=1.0, description="Importance-sampling exponent at the end."
    )

    @field_validator("hidden_sizes")
    @classmethod
    def _positive_widths(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or any(width < 1 for width in value):
            raise ValueError("must be a non-empty list of positive layer widths")
        return value


class LearnerSettings(_Section):
    """The hive's one learner: how fast it consumes the memory, publishes weights and checkpoints."""

    samples_per_insert: float = Field(
        default=8.0,
        gt=0.0,
        le=4096.0,
        description=(
            "Rate limiter: transitions sampled for learning per transition inserted (Reverb's"
            " SampleToInsertRatio); the learner waits for actors, actors wait for the learner."
        ),
    )
    rate_slack: int = Field(
        default=2_000,
        ge=1,
        description="Inserted transitions by which actors may run ahead of, or behind, the ratio.",
    )
    min_size: int = Field(
        default=1_000, ge=1, description="Transitions in the memory before the learner starts learning."
    )
    sample_chunk: int = Field(
        default=16, ge=1, le=64, description="Batches fetched per sampling round trip to the memory."
    )
    fetch_threads: int = Field(
        default=1, ge=1, le=32, description="Threads fetching sampled chunks ahead of the learner."
    )
    weights_interval: int = Field(
        default=20, ge=1, description="Learning steps between publications of the weights to the actors."
    )
    checkpoint_interval: int = Field(
        default=5_000, ge=1, description="Learning steps between learner checkpoints."
    )


class ActorSettings(_Section):
    """How one actor plays (per-actor values through ``actor_overrides``)."""

    envs: int = Field(default=8, ge=1, le=256, description="Vectorized environments per actor.")
    insert_batch: int = Field(
        default=32, ge=1, description="Transitions buffered before one insert to the memory."
    )
    random_action_rate: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Probability the env replaces the agent's action by a random one.",
    )


class ExplorationSettings(_Section):
    """ε-greedy exploration of the actors: the Ape-X ladder over actor indices, or a linear decay."""

    schedule: Literal["linear", "ladder", "constant"] = Field(
        default="ladder",
        description=(
            "ladder: eps^(1+alpha*i/(N-1)) per actor; linear: decay start->end over the hive's"
            " transitions; constant: start."
        ),
    )
    start: float = Field(
        default=1.0, ge=0.0, le=1.0, description="Initial ε (linear) or the value (constant)."
    )
    end: float = Field(default=0.02, ge=0.0, le=1.0, description="Final ε of the linear decay.")
    decay_steps: int = Field(
        default=8_000, ge=1, description="Transitions written by the hive over which ε decays linearly."
    )
    ladder_epsilon: float = Field(default=0.4, gt=0.0, lt=1.0, description="Base ε of the Ape-X ladder.")
    ladder_alpha: float = Field(default=7.0, ge=0.0, description="Exponent spread of the Ape-X ladder.")

    def epsilon(self, index: int, actors: int, hive_steps: int) -> float:
        """ε of actor ``index`` of ``actors`` once the hive has written ``hive_steps`` transitions."""
        if self.schedule == "constant":
            return self.start
        if self.schedule == "ladder":
            spread = index / (actors - 1) if actors > 1 else 0.0
            return float(self.ladder_epsilon ** (1.0 + self.ladder_alpha * spread))
        fraction = min(1.0, hive_steps / self.decay_steps)
        return self.start + fraction * (self.end - self.start)


class EvaluatorSettings(_Section):
    """Greedy (ε = 0) runs of the hive's latest weights: the ``eval`` events, "best return" and "solved"."""

    enabled: bool = Field(default=True, description="Run the evaluator beside the learner.")
    interval_s: float = Field(default=2.0, gt=0.0, description="Seconds between the starts of two rounds.")
    episodes: int = Field(default=10, ge=1, le=1000, description="Greedy episodes per round.")
    solve_episodes: int = Field(
        default=100,
        ge=1,
        le=1000,
        description="A round whose mean reaches solved_return is extended to this many episodes to confirm.",
    )
    solved_return: float | None = Field(
        default=None, description="Mean return that counts as solved (default: the env's reward_threshold)."
    )
    stop_when_solved: bool = Field(default=True, description="Stop the hive once a round confirms solved.")
    envs: int = Field(default=10, ge=1, le=256, description="Vectorized environments of the evaluator.")


class MemorySettings(_Section):
    """The shared replay memory every actor writes to and the learner samples from."""

    capacity: int = Field(default=500_000, ge=1, description="Transitions kept (FIFO).")
    alpha: float = Field(default=0.6, ge=0.0, le=1.0, description="Priority exponent (0 = uniform).")
    shards: int = Field(default=1, ge=1, description="Redis hash-tag shards.")
    key_prefix: str = Field(
        default="", description="Prepended to every Redis key (isolates tests and benchmarks)."
    )
