"""The sections of a session's settings (:class:`hiverl.config.SessionConfig`): the DQN agent, the
learner, how an actor plays, exploration, the evaluator and the replay memory.

Every number is bounded by what the code and the archive can hold and by what makes sense: counts
of steps at most :data:`MAX_STEPS`, the memory at most :data:`MAX_CAPACITY` transitions, seeds at
most :data:`MAX_SEED`, intervals at most :data:`MAX_INTERVAL_S` seconds; floats are finite, and
``true``/``false`` are refused where a number goes (:func:`refuse_booleans`).
"""

from __future__ import annotations

import types
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

#: Largest count of env steps, transitions or learning steps: a million env steps a second for
#: eleven days (far below int64, which Redis counters and the archive hold, and exact in JSON).
MAX_STEPS = 10**12
#: Largest replay memory, in transitions (the memory's slot indices are 32-bit: ``replay_memory``).
MAX_CAPACITY = 2**31
#: Most shards of the replay memory (``replay_memory``).
MAX_SHARDS = 1024
#: Largest base seed: every role's derived seed (base + up to 777,777 + an env index) stays a
#: 32-bit signed int, which ale-py's vector env requires.
MAX_SEED = 2**31 - 2**20 - 1
#: Longest interval in seconds (a day).
MAX_INTERVAL_S = 86_400.0
#: Widest hidden layer and most hidden layers of the MLP.
MAX_WIDTH = 16_384
MAX_LAYERS = 16


def _takes_numbers(annotation: Any) -> bool:
    """Whether a field of this type holds numbers (int, float, optional or in a tuple)."""
    if annotation in (int, float):
        return True
    if get_origin(annotation) in (Union, types.UnionType, tuple):
        return any(_takes_numbers(arg) for arg in get_args(annotation) if arg is not Ellipsis)
    return False


def refuse_booleans(model: type[BaseModel], value: Any, info: ValidationInfo) -> Any:
    """``value`` unless it is a boolean (or holds one) given where a number goes: pydantic would
    read ``true`` as 1."""
    field = model.model_fields.get(info.field_name or "")
    if field is None or not _takes_numbers(field.annotation):
        return value
    items = value if isinstance(value, list | tuple) else [value]
    if any(isinstance(item, bool) for item in items):
        raise ValueError("must be a number, not true or false")
    return value


class _Section(BaseModel):
    model_config = ConfigDict(
        extra="forbid", validate_assignment=True, coerce_numbers_to_str=True, allow_inf_nan=False
    )

    @field_validator("*", mode="before")
    @classmethod
    def _no_booleans(cls, value: Any, info: ValidationInfo) -> Any:
        return refuse_booleans(cls, value, info)


class AgentSettings(_Section):
    """Double DQN hyperparameters of the hive's one network (the learner trains it, actors play it)."""

    gamma: float = Field(default=0.99, gt=0.0, le=1.0, description="Discount factor per env step.")
    n_step: int = Field(default=3, ge=1, le=20, description="Steps aggregated into one stored transition.")
    lr: float = Field(default=1e-3, gt=0.0, le=1.0, description="Adam learning rate.")
    adam_eps: float = Field(default=1e-5, gt=0.0, le=1.0, description="Adam epsilon.")
    batch_size: int = Field(default=64, ge=1, le=4096, description="Transitions per learning step.")
    target_update_interval: int = Field(
        default=64,
        ge=1,
        le=MAX_STEPS,
        description="Learning steps between hard target-network copies (when tau == 1).",
    )
    tau: float = Field(
        default=1.0, gt=0.0, le=1.0, description="1 = hard copy every interval; <1 = Polyak each step."
    )
    max_grad_norm: float = Field(default=10.0, gt=0.0, description="Global gradient-norm clip.")
    huber_delta: float = Field(default=1.0, gt=0.0, description="Huber loss threshold.")
    hidden_sizes: tuple[int, ...] = Field(
        default=(128, 128),
        description=f"MLP layer widths (vector observations): 1 to {MAX_LAYERS} layers of 1 to {MAX_WIDTH}.",
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
        if len(value) > MAX_LAYERS or any(width > MAX_WIDTH for width in value):
            raise ValueError(f"must be at most {MAX_LAYERS} layers of at most {MAX_WIDTH} units each")
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
        le=MAX_STEPS,
        description="Inserted transitions by which actors may run ahead of, or behind, the ratio.",
    )
    min_size: int = Field(
        default=1_000,
        ge=1,
        le=MAX_CAPACITY,
        description="Transitions in the memory before the learner starts learning (at most memory.capacity).",
    )
    sample_chunk: int = Field(
        default=16, ge=1, le=64, description="Batches fetched per sampling round trip to the memory."
    )
    samplers: int = Field(
        default=1,
        ge=1,
        le=32,
        description="Processes sampling and decoding chunks ahead of the learner (each holds 2 chunks).",
    )
    weights_interval: int = Field(
        default=20,
        ge=1,
        le=MAX_STEPS,
        description="Learning steps between publications of the weights to the actors.",
    )
    checkpoint_interval: int = Field(
        default=5_000, ge=1, le=MAX_STEPS, description="Learning steps between learner checkpoints."
    )
    checkpoint_interval_s: float = Field(
        default=60.0,
        gt=0.0,
        le=86_400.0,
        description="Seconds between learner checkpoints, whichever of the two comes first.",
    )


class ActorSettings(_Section):
    """How one actor plays (per-actor values through ``actor_overrides``)."""

    envs: int = Field(default=8, ge=1, le=256, description="Vectorized environments per actor.")
    insert_batch: int = Field(
        default=32, ge=1, le=4096, description="Transitions buffered before one insert to the memory."
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
        default=8_000,
        ge=1,
        le=MAX_STEPS,
        description="Transitions written by the hive over which ε decays linearly.",
    )
    ladder_epsilon: float = Field(default=0.4, gt=0.0, lt=1.0, description="Base ε of the Ape-X ladder.")
    ladder_alpha: float = Field(
        default=7.0, ge=0.0, le=100.0, description="Exponent spread of the Ape-X ladder."
    )

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
    interval_s: float = Field(
        default=2.0, gt=0.0, le=MAX_INTERVAL_S, description="Seconds between the starts of two rounds."
    )
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

    capacity: int = Field(
        default=500_000,
        ge=2,
        le=MAX_CAPACITY,
        description="Transitions kept (FIFO): at least 2 per shard, a multiple of shards.",
    )
    alpha: float = Field(default=0.6, ge=0.0, le=1.0, description="Priority exponent (0 = uniform).")
    shards: int = Field(default=1, ge=1, le=MAX_SHARDS, description="Redis hash-tag shards.")
    key_prefix: str = Field(
        default="", description="Prepended to every Redis key (isolates tests and benchmarks)."
    )
