"""The learn/insert ratio, declared once (Reverb's ``SampleToInsertRatio``).

The learner may sample ``n`` more transitions only while it stays within ``slack`` inserted
transitions of ``samples = samples_per_insert * (inserts - min_size)``; an actor may insert only
while the inserts do not run more than ``slack`` ahead of what the learner has consumed. So a slow
learner holds the actors back (no data it will never see is collected) and a fast learner waits for
data (it does not overfit a memory nobody is filling). Both counters live on the hive's board
(:mod:`game.board`), so every process applies the same rule to the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

from hiverl.config import SessionConfig


@dataclass(frozen=True)
class RateLimiter:
    """Samples per insert, kept within ``slack`` inserted transitions of the target ratio.

    Args:
        samples_per_insert: transitions sampled for learning per transition inserted (> 0).
        min_size: inserts before any sampling.
        slack: inserted transitions by which either side may lead; at least one sampling request
            (``sample_request / samples_per_insert``) plus one insert, or the two could wait on each
            other forever.
    """

    samples_per_insert: float
    min_size: int
    slack: int

    def check(self, sample_request: int, insert_request: int) -> None:
        """Raise ValueError when ``slack`` is too small for these request sizes (deadlock)."""
        need = sample_request / self.samples_per_insert + insert_request
        if self.slack < need:
            raise ValueError(
                f"learner.rate_slack: {self.slack} is too small: one sampling request of {sample_request}"
                f" at samples_per_insert={self.samples_per_insert} plus one insert of {insert_request}"
                f" needs at least {need:.0f}"
            )

    def lead(self, inserts: int, samples: int) -> float:
        """How far inserts are ahead of what the learner consumed, in transitions (< 0: behind)."""
        return (inserts - self.min_size) - samples / self.samples_per_insert

    def can_sample(self, inserts: int, samples: int, n: int) -> bool:
        """May the learner sample ``n`` more transitions now?"""
        return inserts >= self.min_size and self.lead(inserts, samples + n) >= -self.slack

    def can_insert(self, inserts: int, samples: int, n: int) -> bool:
        """May an actor insert ``n`` more transitions now?"""
        return inserts + n <= self.min_size or self.lead(inserts + n, samples) <= self.slack


def hive_rate_limiter(config: SessionConfig) -> RateLimiter:
    """The session's limiter, the same in every process: sampling starts once one sampling request
    (``batch_size * sample_chunk`` transitions) fits in the memory, and never before ``min_size``."""
    learner = config.learner
    first_request = config.agent.batch_size * learner.sample_chunk
    return RateLimiter(learner.samples_per_insert, max(learner.min_size, first_request), learner.rate_slack)
