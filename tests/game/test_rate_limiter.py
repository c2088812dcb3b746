"""The learn/insert ratio (game/rate_limiter.py): its bounds, its deadlock check, and that a learner
and actors that each obey it keep the ratio within the slack, whatever order they run in."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from game.rate_limiter import RateLimiter


def test_no_sampling_before_min_size_and_inserts_free_until_then() -> None:
    limiter = RateLimiter(samples_per_insert=4.0, min_size=100, slack=50)
    assert not limiter.can_sample(inserts=99, samples=0, n=1)
    assert limiter.can_insert(inserts=0, samples=0, n=100)  # filling up to min_size is always allowed
    assert limiter.can_insert(inserts=60, samples=0, n=40)
    # Past min_size without any sampling the actors may lead by the slack, not more.
    assert limiter.can_insert(inserts=100, samples=0, n=50)
    assert not limiter.can_insert(inserts=100, samples=0, n=51)


def test_sampling_bounds() -> None:
    limiter = RateLimiter(samples_per_insert=4.0, min_size=100, slack=50)
    # At min_size the learner may run ahead by slack inserts' worth of samples: 50 * 4 = 200.
    assert limiter.can_sample(inserts=100, samples=0, n=200)
    assert not limiter.can_sample(inserts=100, samples=0, n=201)
    # 10 more inserts buy 40 more samples.
    assert limiter.can_sample(inserts=110, samples=200, n=40)
    assert not limiter.can_sample(inserts=110, samples=200, n=41)
    assert limiter.lead(inserts=110, samples=200) == pytest.approx(-40.0)
    # Inserting is held back while the learner is far behind, allowed again once it catches up.
    assert not limiter.can_insert(inserts=150, samples=0, n=1)
    assert limiter.can_insert(inserts=150, samples=4, n=1)


def test_fractional_ratio() -> None:
    limiter = RateLimiter(samples_per_insert=0.5, min_size=10, slack=20)
    assert limiter.lead(inserts=30, samples=10) == pytest.approx(0.0)  # 20 inserts, 10 samples
    assert limiter.can_sample(inserts=30, samples=10, n=10)  # uses 20 inserts of slack
    assert not limiter.can_sample(inserts=30, samples=10, n=11)


def test_check_rejects_a_slack_that_could_deadlock() -> None:
    RateLimiter(samples_per_insert=8.0, min_size=1000, slack=160).check(
        sample_request=1024, insert_request=32
    )
    with pytest.raises(ValueError, match=r"learner\.rate_slack: 159 is too small.*at least 160"):
        RateLimiter(8.0, 1000, 159).check(sample_request=1024, insert_request=32)


@settings(max_examples=60, deadline=None)
@given(
    samples_per_insert=st.sampled_from([0.25, 1.0, 4.0, 8.0, 16.0]),
    min_size=st.integers(1, 500),
    sample_request=st.integers(1, 512),
    insert_request=st.integers(1, 64),
    extra_slack=st.integers(0, 100),
    schedule=st.lists(st.booleans(), min_size=50, max_size=400),
)
def test_greedy_learner_and_actors_stay_within_the_slack_and_never_deadlock(
    samples_per_insert: float,
    min_size: int,
    sample_request: int,
    insert_request: int,
    extra_slack: int,
    schedule: list[bool],
) -> None:
    """Whoever runs next (``schedule``), the one that may not move waits, the other one can move,
    and the lead of inserts over consumed samples stays within [-slack, slack]."""
    need = sample_request / samples_per_insert + insert_request
    limiter = RateLimiter(samples_per_insert, min_size, int(need) + 1 + extra_slack)
    limiter.check(sample_request, insert_request)
    inserts = samples = 0
    for learner_turn in schedule:
        can_sample = limiter.can_sample(inserts, samples, sample_request)
        can_insert = limiter.can_insert(inserts, samples, insert_request)
        assert can_sample or can_insert, (inserts, samples)  # someone can always go on
        if (learner_turn and can_sample) or not can_insert:
            samples += sample_request
        else:
            inserts += insert_request
        if samples:
            assert inserts >= min_size
            assert -limiter.slack <= limiter.lead(inserts, samples) <= limiter.slack
        else:
            assert limiter.lead(inserts, samples) <= limiter.slack
