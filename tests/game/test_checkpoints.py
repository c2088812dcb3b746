"""The model store: round trips, and no torn checkpoint when the writer is killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from game.checkpoints import ModelStore, load_checkpoint


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    store = ModelStore(tmp_path, "s1")
    assert store.load() is None
    store.save({"counters": {"updates": 5}, "weights": torch.arange(4.0)})
    first = store.load()
    assert first is not None and first["counters"]["updates"] == 5
    assert torch.equal(first["weights"], torch.arange(4.0))
    store.save({"counters": {"updates": 9}, "weights": torch.ones(2)})
    for path in (store.learner_path, store.latest_path):  # the learner's file and the "latest" name
        state = load_checkpoint(path)
        assert state["counters"]["updates"] == 9 and torch.equal(state["weights"], torch.ones(2))
    assert sorted(p.name for p in (tmp_path / "s1").iterdir()) == ["latest.pt", "learner.pt"]


def test_rejects_foreign_files(tmp_path: Path) -> None:
    path = tmp_path / "x.pt"
    torch.save({"format": 99}, path)
    with pytest.raises(ValueError, match="checkpoint format 99"):
        load_checkpoint(path)


WRITER = """
import sys, torch
from game.checkpoints import ModelStore
store = ModelStore(sys.argv[1], "s")
step = 0
while True:
    step += 1
    # ~2 MB per checkpoint so a kill often lands mid-write
    store.save({"counters": {"updates": step}, "weights": torch.full((500_000,), float(step))})
    print(step, flush=True)
"""


def test_kill_9_never_leaves_a_torn_checkpoint(tmp_path: Path) -> None:
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    for round_ in range(2):
        writer = subprocess.Popen(
            [sys.executable, str(script), str(tmp_path)], stdout=subprocess.PIPE, env=env
        )
        assert writer.stdout is not None
        writer.stdout.readline()  # at least one complete checkpoint exists
        time.sleep(0.05 + 0.1 * round_)
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        store = ModelStore(tmp_path, "s")
        for state in (store.load(), load_checkpoint(store.latest_path)):
            assert state is not None
            step = state["counters"]["updates"]
            assert step >= 1
            assert torch.all(state["weights"] == float(step))  # complete and self-consistent
