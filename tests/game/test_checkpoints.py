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
    assert store.load_worker(0) is None and store.load_latest() is None
    store.save(0, {"counters": {"env_steps": 5}, "weights": torch.arange(4.0)})
    store.save(1, {"counters": {"env_steps": 9}, "weights": torch.ones(2)})
    zero = store.load_worker(0)
    assert zero is not None and zero["counters"]["env_steps"] == 5
    assert torch.equal(zero["weights"], torch.arange(4.0))
    latest = store.load_latest()
    assert latest is not None and latest["worker_index"] == 1  # the most recent save, any worker
    assert sorted(p.name for p in (tmp_path / "s1").iterdir()) == ["latest.pt", "worker-0.pt", "worker-1.pt"]


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
    store.save(0, {"counters": {"env_steps": step}, "weights": torch.full((500_000,), float(step))})
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
        for state in (store.load_worker(0), store.load_latest()):
            assert state is not None
            step = state["counters"]["env_steps"]
            assert step >= 1
            assert torch.all(state["weights"] == float(step))  # complete and self-consistent
