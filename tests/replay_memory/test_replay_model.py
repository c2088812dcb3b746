"""A random sequence of operations agrees with a plain-Python reference model."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers.replay import MakeMemory, cartpole_batch, sampled_ids, stored_entries

CAPACITY = 12
_names = itertools.count()


class Reference:
    """The memory's semantics, one slot at a time."""

    def __init__(self, capacity: int, alpha: float) -> None:
        self.capacity, self.alpha = capacity, alpha
        self.slots: dict[int, tuple[int, float]] = {}  # slot -> (id, mass)
        self.cursor = 0
        self.max_priority = 1.0
        self.evicted = 0

    def mass(self, p: float) -> float:
        return 1.0 if self.alpha == 0 else p**self.alpha

    def insert(self, ids: list[int], priorities: list[float] | None) -> None:
        if priorities is not None:
            self.max_priority = max(self.max_priority, *priorities)
        for k, ident in enumerate(ids):
            slot = self.cursor % self.capacity
            self.evicted += slot in self.slots
            p = self.max_priority if priorities is None else priorities[k]
            self.slots[slot] = (ident, self.mass(p))
            self.cursor += 1

    def update(self, slots: list[int], generations: list[int], priorities: list[float]) -> int:
        applied = 0
        for slot, gen, p in zip(slots, generations, priorities, strict=True):
            if gen >= self.cursor - self.capacity:
                self.slots[slot] = (self.slots[slot][0], self.mass(p))
                self.max_priority = max(self.max_priority, p)
                applied += 1
        return applied


priority = st.floats(0.0, 10.0, width=32)
op = st.one_of(
    st.tuples(
        st.just("insert"), st.integers(1, 7), st.one_of(st.none(), st.lists(priority, min_size=7, max_size=7))
    ),
    st.tuples(st.just("sample"), st.integers(1, 6), st.none()),
    st.tuples(st.just("update"), st.integers(1, 6), st.lists(priority, min_size=6, max_size=6)),
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    alpha=st.sampled_from([0.0, 0.6, 1.0]), ops=st.lists(op, min_size=1, max_size=12), seed=st.integers(0, 99)
)
def test_random_operations_match_reference(
    make_memory: MakeMemory, alpha: float, ops: list, seed: int
) -> None:
    memory = make_memory(name=f"model{next(_names)}", capacity=CAPACITY, alpha=alpha)
    ref = Reference(CAPACITY, alpha)
    rng = np.random.default_rng(seed)
    seen: list[tuple[int, int]] = []  # (slot, generation) pairs handed out by sample, live or stale
    next_id = 0
    for kind, n, prios in ops:
        if kind == "insert":
            ids = list(range(next_id, next_id + n))
            next_id += n
            p = None if prios is None else np.array(prios[:n], np.float32)
            memory.insert(cartpole_batch(ids, priorities=p))
            ref.insert(ids, None if p is None else p.astype(np.float64).tolist())
        elif kind == "sample":
            live_mass = sum(m for _, m in ref.slots.values())
            if n > len(ref.slots) or live_mass == 0:
                continue
            batch = memory.sample(n, 0.5, rng=rng)
            for slot, ident, gen in zip(batch.indices, sampled_ids(batch), batch.generations, strict=True):
                assert ref.slots[int(slot)][0] == ident
                assert ref.slots[int(slot)][1] > 0
                seen.append((int(slot), int(gen)))
        elif kind == "update" and seen:
            pick = rng.integers(len(seen), size=n)
            slots = [seen[i][0] for i in pick]
            gens = [seen[i][1] for i in pick]
            p = np.array(prios[:n], np.float32).astype(np.float64)
            applied = memory.update_priorities(np.array(slots), np.array(gens), p)
            assert applied == ref.update(slots, gens, p.tolist())
        got = stored_entries(memory)
        assert got.keys() == ref.slots.keys()
        for slot, (ident, mass) in ref.slots.items():
            assert got[slot][0] == ident
            assert np.isclose(got[slot][1], mass, rtol=1e-12, atol=0)
    s = memory.stats()
    assert (s.size, s.inserted_total, s.evicted_total) == (len(ref.slots), ref.cursor, ref.evicted)
    masses = [m for _, m in ref.slots.values()]
    assert np.isclose(s.priority_sum, sum(masses), rtol=1e-9)
    assert s.priority_max == max(masses, default=0.0)
    assert s.priority_min == min([m for m in masses if m > 0], default=0.0)
    assert s.max_priority_seen == ref.max_priority
