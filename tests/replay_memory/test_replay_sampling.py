"""Prioritized sampling: frequencies follow P(i) = p_i^a / sum p^a, weights follow the formula."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from replay_memory import ReplayMemory
from tests.helpers.replay import MakeMemory, cartpole_batch, sampled_ids, stored_entries

N_ITEMS = 32
BATCH = N_ITEMS  # a batch may not exceed the memory
DRAWS = 200 * BATCH


def _priorities(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0.05, 3.0, N_ITEMS)


def _draw_counts(memory: object, rng: np.random.Generator, beta: float = 0.4) -> tuple[np.ndarray, list]:
    counts = np.zeros(N_ITEMS, np.int64)
    batches = []
    for _ in range(DRAWS // BATCH):
        batch = memory.sample(BATCH, beta, rng=rng)  # type: ignore[attr-defined]
        counts += np.bincount(sampled_ids(batch), minlength=N_ITEMS)
        batches.append(batch)
    return counts, batches


@pytest.mark.parametrize("alpha", [0.0, 0.6, 1.0])
@pytest.mark.parametrize(("shards", "fanout"), [(1, 64), (2, 4)])  # one wide level; two shards of 3 levels
def test_frequencies_match_priorities(
    make_memory: MakeMemory, alpha: float, shards: int, fanout: int
) -> None:
    rng = np.random.default_rng(7)
    memory = make_memory(capacity=N_ITEMS, alpha=alpha, shards=shards, fanout=fanout)
    p = _priorities(rng)
    memory.insert(cartpole_batch(np.arange(N_ITEMS), priorities=p))
    counts, _ = _draw_counts(memory, rng)
    expected = p**alpha / np.sum(p**alpha) * DRAWS
    assert stats.chisquare(counts, expected).pvalue > 0.001
    # and a clearly different distribution is rejected, so the test has power
    wrong = np.full(N_ITEMS, DRAWS / N_ITEMS) if alpha > 0 else p / p.sum() * DRAWS
    assert stats.chisquare(counts, wrong).pvalue < 0.001


@pytest.mark.parametrize("alpha", [0.0, 0.6, 1.0])
def test_weights_and_probabilities_match_formula(make_memory: MakeMemory, alpha: float) -> None:
    rng = np.random.default_rng(3)
    memory = make_memory(capacity=N_ITEMS, alpha=alpha)
    p = _priorities(rng).astype(np.float32).astype(np.float64)  # stored as float32 in the batch
    memory.insert(cartpole_batch(np.arange(N_ITEMS), priorities=p))
    beta = 0.4
    batch = memory.sample(N_ITEMS, beta, rng=rng)
    ids = sampled_ids(batch)
    probs = p**alpha / np.sum(p**alpha)
    # w_i = (N P(i))^-beta / max_j (N P(j))^-beta, the max over the whole memory
    w = (N_ITEMS * probs) ** -beta
    expected = w / w.max()
    np.testing.assert_allclose(batch.weights, expected[ids], rtol=1e-5)
    np.testing.assert_allclose(batch.probabilities, probs[ids], rtol=1e-9)
    assert batch.weights.dtype == np.float32
    assert np.array_equal(batch.indices, ids)  # ids were written into slots 0..31 in order
    assert np.array_equal(batch.generations, ids)


def test_new_items_take_the_largest_priority_seen(make_memory: MakeMemory) -> None:
    memory = make_memory(capacity=8, alpha=1.0)
    memory.insert(cartpole_batch([0, 1], priorities=np.array([1.0, 5.0])))
    memory.insert(cartpole_batch([2, 3]))  # no priorities: the max seen, 5
    entries = dict(stored_entry for stored_entry in _masses(memory).items())
    assert entries == {0: 1.0, 1: 5.0, 2: 5.0, 3: 5.0}
    stats_ = memory.stats()
    assert stats_.priority_sum == pytest.approx(16.0)
    assert (stats_.priority_min, stats_.priority_max, stats_.max_priority_seen) == (1.0, 5.0, 5.0)


def test_default_priority_of_an_empty_memory_is_one(make_memory: MakeMemory) -> None:
    memory = make_memory(capacity=8, alpha=0.6)
    memory.insert(cartpole_batch([0, 1, 2]))
    assert set(_masses(memory).values()) == {1.0}


def _masses(memory: ReplayMemory) -> dict[int, float]:
    return {ident: mass for ident, mass in stored_entries(memory).values()}
