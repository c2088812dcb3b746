"""What the stack test asks from inside the stack: run by ``python - <command> [args]`` in the
dashboard container (its environment names every service by its compose name; the runs volume is
mounted), it prints one JSON line. Nothing here is imported by the test process itself.

Commands:
  events SESSION               per-role line counts, actors' hosts and weights, evals, learner stats
  es SESSION                   Elasticsearch: documents of the session per family, and which of the
                               run folder's events are missing from it (worker_id, event_time)
  board SESSION                the hive's board (weights version, updates, inserts) and index leases
  archive SESSION              the session's archive document (status, totals, results)
  dashboard SESSION USER       signs in (password from DASHBOARD_ADMIN_PASSWORD) and reads the pages

``board`` and ``es`` sign in with PROBE_REDIS_URL and PROBE_ELASTICSEARCH_URL (the operators' and the
indexers' users, given by the test) when set: the dashboard's own users may not read the leases or
refresh an index.
"""

from __future__ import annotations

import glob
import json
import os
import re
import sys
from collections import defaultdict
from collections.abc import Callable
from typing import Any

RUNS = "/var/lib/hiverl/runs"


def _events(session: str) -> dict[str, list[dict[str, Any]]]:
    by_file: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(glob.glob(f"{RUNS}/{session}/events*.jsonl")):
        rows = []
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if line.strip() and line.endswith("\n"):
                    rows.append(json.loads(line))
        by_file[os.path.basename(path)] = rows
    return by_file


def events(session: str) -> dict[str, Any]:
    files = _events(session)
    actors: dict[int, dict[str, Any]] = defaultdict(
        lambda: {"episodes": 0, "hosts": [], "weights": [], "last_time": 0.0}
    )
    evals: list[dict[str, Any]] = []
    learner: list[dict[str, Any]] = []
    for rows in files.values():
        for e in rows:
            role = e.get("role")
            if role == "actor" and e["event_type"] == "episode":
                a = actors[int(e.get("worker_index", 0))]
                a["episodes"] += 1
                if e["host"] not in a["hosts"]:
                    a["hosts"].append(e["host"])
                a["weights"].append([e["event_time"], e.get("weights_version") or 0])
                a["last_time"] = max(a["last_time"], e["event_time"])
            elif e["event_type"] == "eval":
                evals.append({k: e.get(k) for k in ("event_time", "eval_return", "weights_version")})
            elif role == "learner" and e["event_type"] == "train_stats":
                learner.append({k: e.get(k) for k in ("event_time", "updates", "weights_version", "host")})
    evals.sort(key=lambda e: e["event_time"])
    learner.sort(key=lambda e: e["event_time"])
    for a in actors.values():
        a["weights"] = sorted(a["weights"])[-200:]
    return {
        "lines": {name: len(rows) for name, rows in files.items()},
        "actors": {str(i): a for i, a in sorted(actors.items())},
        "evals": evals,
        "learner": learner[-400:],
    }


def _es() -> Any:
    from elasticsearch import Elasticsearch

    # the indexers' user (it refreshes indices); the dashboard's own may only read
    url = os.environ.get("PROBE_ELASTICSEARCH_URL") or os.environ["ELASTICSEARCH_URL"]
    return Elasticsearch(url, request_timeout=30)


def es(session: str) -> dict[str, Any]:
    from elasticsearch.helpers import scan

    prefix = os.environ.get("HIVERL_TELEMETRY_INDEX_PREFIX", "hiverl-")
    client = _es()
    counts = {}
    for family in ("training_log", "memory_monitoring"):
        alias = f"{prefix}{family}"
        client.indices.refresh(index=alias, ignore_unavailable=True, allow_no_indices=True)
        counts[family] = int(
            client.count(
                index=alias,
                query={"term": {"session_id": session}},
                ignore_unavailable=True,
                allow_no_indices=True,
            )["count"]
        )
    indexed = {
        (hit["_source"]["worker_id"], hit["_source"]["event_time"])
        for hit in scan(
            client,
            index=f"{prefix}training_log",
            query={"query": {"term": {"session_id": session}}, "_source": ["worker_id", "event_time"]},
        )
    }
    written = [(e["worker_id"], e["event_time"]) for rows in _events(session).values() for e in rows]
    missing = sorted(set(written) - indexed)
    return {
        "counts": counts,
        "written": len(written),
        "distinct_indexed": len(indexed),
        "missing": missing,
        "unexpected": len(indexed - set(written)),
    }


def board(session: str) -> dict[str, Any]:
    import redis

    from game.worker_index import slot_key
    from hiverl.session import board_key

    # the operators' user: the dashboard's own may only raise the stop flag
    url = os.environ.get("PROBE_REDIS_URL") or os.environ["REDIS_URL"]
    client = redis.Redis.from_url(url, decode_responses=False)
    raw: dict[bytes, bytes] = client.hgetall(board_key(session))  # type: ignore[assignment]
    state = {k.decode(): v.decode() for k, v in raw.items() if k != b"weights"}
    leases = {}
    for index in range(16):
        holder = client.get(slot_key(session, index))
        if isinstance(holder, bytes):
            leases[str(index)] = holder.decode()
    return {"board": state, "leases": leases}


def archive(session: str) -> dict[str, Any]:
    from pymongo import MongoClient

    client: MongoClient[dict[str, Any]] = MongoClient(
        os.environ["MONGODB_URI"], serverSelectionTimeoutMS=10000
    )
    with client:
        doc = client[os.environ.get("HIVERL_ARCHIVE_DATABASE", "hiverl")]["sessions"].find_one(
            {"_id": session}
        )
    if doc is None:
        return {}
    return {k: doc.get(k) for k in ("status", "num_workers", "totals", "results", "env_id")} | {
        "updated_at": str(doc.get("updated_at"))
    }


def dashboard(session: str, user: str) -> dict[str, Any]:
    import httpx

    with httpx.Client(base_url="http://127.0.0.1:8050", timeout=30, follow_redirects=False) as web:
        form = web.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        signed = web.post(
            "/login",
            data={
                "username": user,
                "password": os.environ["HIVERL_USER_PASSWORD"],
                "csrf_token": token.group(1) if token else "",
                "next": "/live",
            },
        )
        live = web.get("/live")
        sessions_page = web.get("/sessions")
        archived = web.get("/api/sessions")
        running = web.get("/api/live/sessions")
    return {
        "login": form.status_code,
        "signed_in": signed.status_code,
        "live": live.status_code,
        "sessions_page": sessions_page.status_code,
        "archived": session in archived.text,
        "archived_status": archived.status_code,
        "running": [s.get("session_id") for s in running.json().get("running", [])]
        if running.status_code == 200
        else running.status_code,
    }


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    handlers: dict[str, Callable[..., dict[str, Any]]] = {
        "events": events,
        "es": es,
        "board": board,
        "archive": archive,
        "dashboard": dashboard,
    }
    print(json.dumps(handlers[command](*args), default=str))
