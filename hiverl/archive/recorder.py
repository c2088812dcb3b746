"""The archive's recorder of ``hiverl train`` sessions: the trainer's documents as archive documents.

The trainer (``game/trainer.py``) calls its :class:`hiverl.events.SessionRecorder` with the
``session.json`` document at start, ``{"env_steps", "updates", "best_eval_return", "solved",
"roles_status": [...]}`` progress at each heartbeat, and a :class:`~hiverl.status.SessionStatus`
at the end. :class:`ArchiveRecorder` wraps a :class:`~hiverl.archive.store.SessionArchive` and
translates:

* start: the archive start document (host, GPUs, packages, git commit, full config);
* heartbeat: totals (the actors' env steps and episodes, the learner's updates), per-actor
  results (the archive's ``worker_results``), the best return (the evaluator's best eval return;
  without an evaluator the best last return of any actor), ``solved``, the hive's last-100 mean
  return (episode-weighted mean of the actors' own last-100 means) and one learning-curve point
  per heartbeat;
* finish: the whole document rebuilt from the run folder's ``events.jsonl`` (exact best/final
  returns, steps to the solve threshold, the full learning curve) when the folder is readable,
  else from the last progress.

Progress of older trainers (``workers_status`` instead of ``roles_status``) is still understood.

Usage (``hiverl train``): ``Trainer(config, ..., recorder=ArchiveRecorder(SessionArchive()))``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hiverl.archive.facts import start_document
from hiverl.archive.runs import document_from_run
from hiverl.archive.store import SessionArchive
from hiverl.status import SessionStatus

log = logging.getLogger(__name__)

#: Fields of the rebuilt run document that replace the archive's at finish.
_FROM_RUN = ("num_workers", "totals", "results", "learning_curve", "worker_results", "checkpoints")


def progress_update(progress: Mapping[str, Any], best_so_far: float | None = None) -> dict[str, Any]:
    """The archive update for the trainer's ``{"env_steps", "updates", "roles_status": [...]}`` progress.

    The actors' rows become ``worker_results``; the learner's updates are added to the totals.
    ``best_so_far`` (the best return seen by earlier heartbeats) is kept if nothing beat it.
    """
    roles: Sequence[Mapping[str, Any]] | None = progress.get("roles_status")
    if roles is None:  # an older trainer: every row is a worker that learns too
        actors: Sequence[Mapping[str, Any]] = progress.get("workers_status") or []
        learner: Mapping[str, Any] = {}
        evaluator: Mapping[str, Any] | None = None
    else:
        actors = [r for r in roles if r.get("role") == "actor"]
        learner = next((r for r in roles if r.get("role") == "learner"), {})
        evaluator = next((r for r in roles if r.get("role") == "evaluator"), None)
    worker_results: list[dict[str, Any]] = []
    weighted, weight = 0.0, 0
    best = best_so_far
    for i, w in enumerate(actors):
        episodes = int(w.get("episodes") or 0)
        mean100 = w.get("mean_return_100")
        last = w.get("last_return")
        if isinstance(mean100, int | float) and episodes:
            weighted += float(mean100) * min(episodes, 100)
            weight += min(episodes, 100)
        if evaluator is None and isinstance(last, int | float):
            best = float(last) if best is None else max(best, float(last))
        worker_results.append(
            {
                "worker_index": int(w.get("index", i)),
                "status": str(w.get("state") or ""),
                "restarts": int(w.get("restarts") or 0),
                "totals": {
                    "env_steps": int(w.get("env_steps") or 0),
                    "episodes": episodes,
                    "updates": int(w.get("updates") or 0),
                },
                "results": {
                    "final_return": last if isinstance(last, int | float) else None,
                    "last100_mean_return": mean100 if isinstance(mean100, int | float) else None,
                },
            }
        )
    if evaluator is not None:  # the best return is the evaluator's
        evaluated = progress.get("best_eval_return", evaluator.get("best_eval_return"))
        if isinstance(evaluated, int | float):
            best = float(evaluated) if best is None else max(best, float(evaluated))
    env_steps = int(progress.get("env_steps") or sum(r["totals"]["env_steps"] for r in worker_results))
    learner_updates = max(int(progress.get("updates") or 0), int(learner.get("updates") or 0))
    results: dict[str, Any] = {"best_return": best}
    if evaluator is not None or progress.get("solved"):
        results["solved"] = bool(progress.get("solved"))
    if weight:
        results["last100_mean_return"] = weighted / weight
    wall = progress.get("wall_s")
    if isinstance(wall, int | float) and wall > 0:
        results["wall_clock_s"] = float(wall)
        results["env_steps_per_s"] = env_steps / float(wall)
    return {
        "totals": {
            "env_steps": env_steps,
            "episodes": sum(r["totals"]["episodes"] for r in worker_results),
            "updates": sum(r["totals"]["updates"] for r in worker_results) + learner_updates,
        },
        "results": results,
        "worker_results": worker_results,
    }


class ArchiveRecorder:
    """A :class:`hiverl.events.SessionRecorder` for the trainer's documents, backed by ``archive``."""

    def __init__(self, archive: SessionArchive, *, tags: Sequence[str] = (), name: str = "") -> None:
        self.archive = archive
        self.tags = list(tags)
        self.name = name
        self._run_folders: dict[str, Path] = {}
        self._curves: dict[str, tuple[list[int], list[float]]] = {}
        self._best: dict[str, float | None] = {}

    def start(self, document: Mapping[str, Any]) -> None:
        """``document``: the trainer's session document (session_id, config, started_at, ...)."""
        session_id = str(document["session_id"])
        start = start_document(
            document.get("config") or {}, session_id=session_id, name=self.name, tags=self.tags
        )
        if document.get("started_at"):
            start["started_at"] = start["heartbeat_at"] = start["updated_at"] = document["started_at"]
        if document.get("run_folder"):
            self._run_folders[session_id] = Path(str(document["run_folder"]))
        self._curves[session_id] = ([], [])
        self._best[session_id] = None
        self.archive.start(start)

    def _update(self, session_id: str, progress: Mapping[str, Any]) -> dict[str, Any]:
        update = progress_update(progress, self._best.get(session_id))
        self._best[session_id] = update["results"]["best_return"]
        mean = update["results"].get("last100_mean_return")
        steps, means = self._curves.setdefault(session_id, ([], []))
        if mean is not None and (not steps or update["totals"]["env_steps"] >= steps[-1]):
            steps.append(update["totals"]["env_steps"])
            means.append(mean)
            update["learning_curve"] = {"env_steps": list(steps), "mean_return": list(means)}
        return update

    def heartbeat(self, session_id: str, update: Mapping[str, Any]) -> None:
        """``update``: the trainer's progress (``env_steps``, ``updates``, ``roles_status``, ...)."""
        self.archive.heartbeat(session_id, self._update(session_id, update))

    def finish(self, session_id: str, status: str, update: Mapping[str, Any]) -> None:
        """``status``: a final :class:`~hiverl.status.SessionStatus` (an older trainer's word is read too)."""
        final = self._update(session_id, update)
        folder = self._run_folders.pop(session_id, None)
        if folder is not None and (folder / "session.json").exists():
            try:
                rebuilt = document_from_run(folder).model_dump(mode="python")
                final = {key: rebuilt[key] for key in _FROM_RUN}
            except (OSError, ValueError, KeyError) as exc:
                log.warning(
                    "could not rebuild %s from %s (%s); using the last progress", session_id, folder, exc
                )
        self._curves.pop(session_id, None)
        self._best.pop(session_id, None)
        self.archive.finish(session_id, SessionStatus.parse(status), final)
