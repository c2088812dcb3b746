"""What the learner reports about itself without slowing down: where an update's time goes on the
host, and running means that stay on the device until they are read (a read is a GPU sync, so it
happens once per ``train_stats``, never per update)."""

from __future__ import annotations

import time

import torch

#: The phases of one update, in loop order (host time; on a GPU, time the host waited for it shows
#: in the phase that waited).
PHASES = ("fetch_wait", "stage", "step", "priorities", "publish", "other")


class UpdateTimer:
    """Host milliseconds per update, by phase: :meth:`lap` charges the time since the last lap."""

    def __init__(self) -> None:
        self.totals = dict.fromkeys(PHASES, 0.0)
        self.updates = 0
        self._mark = time.perf_counter()

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.totals[phase] += now - self._mark
        self._mark = now

    def count(self) -> None:
        """One update is done (call after its last lap)."""
        self.updates += 1

    def report(self) -> dict[str, float | None]:
        """``update_ms_<phase>`` for every phase since the last report (None without updates); resets."""
        report: dict[str, float | None] = {
            f"update_ms_{phase}": (1000 * total / self.updates if self.updates else None)
            for phase, total in self.totals.items()
        }
        self.totals = dict.fromkeys(PHASES, 0.0)
        self.updates = 0
        return report


class DeviceMean:
    """The mean of scalar tensors, summed where they are; :meth:`read` syncs once and resets."""

    def __init__(self) -> None:
        self.total: torch.Tensor | None = None
        self.count = 0

    def add(self, value: torch.Tensor) -> None:
        self.total = value.detach().clone() if self.total is None else self.total + value.detach()
        self.count += 1

    def read(self) -> float | None:
        if self.total is None:
            return None
        mean = float(self.total) / self.count
        self.total, self.count = None, 0
        return mean
