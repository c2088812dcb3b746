"""Telemetry benchmark: producer throughput, overhead on a worker's step, event → searchable latency.

Runs against the local services (``hiverl services up``; addresses from the environment), in unique
topics and a unique index prefix that are deleted afterwards. Prints a table, then as the LAST line one
JSON object with ``producer_events_per_s``, ``overhead_pct``, ``latency_p50_s``, ``latency_p95_s``.

1. throughput: ``N`` events through ``KafkaSink.publish`` until every one is acknowledged by Kafka;
2. overhead, through :class:`KafkaSink` (each role process's own producer; its background thread
   packs and sends under the process's GIL): the process's CPU for telemetry (building and publishing
   events in the worker's thread, everything the sink's and kafka-python's threads do) over the CPU
   of the worker's steps, for a worker-like step (CartPole ``env.step`` + forward pass of a 4-64-64-2
   MLP) at a real worker's rate (one ``episode`` event per episode with random actions,
   ``train_stats`` every 100 steps); side by side with the sink as it was before records were packed
   (one event per record, a round every 100 ms), the baseline of the ≤ 2 % target;
3. latency: ``hiverl index``'s indexer runs in its own process; events published at a steady rate are
   watched for in Elasticsearch (no forced refresh), latency = first seen searchable − published.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from hiverl.endpoints import Endpoints
from hiverl.events import TRAINING_LOG_TOPIC, envelope
from hiverl.telemetry.config import TelemetryConfig
from hiverl.telemetry.kafka_sink import KafkaSink
from hiverl.telemetry.records import serialize_event
from hiverl.telemetry.schema import alias_name


# -- 1. producer throughput ---------------------------------------------------------------------------
def producer_throughput(bootstrap: str, topic: str, config: TelemetryConfig, events: int) -> dict[str, float]:
    """Events per second from the first publish() to the last acknowledgement."""
    template = envelope(
        "episode",
        session_id="bench",
        worker_index=0,
        worker_id="bench-0",
        env_id="CartPole-v1",
        episode=0,
        episode_return=21.0,
        episode_length=21,
        env_steps=0,
        updates=0,
        epsilon=0.1,
    )
    with KafkaSink(bootstrap, config, topics=[topic], spool_name="bench-throughput") as sink:
        sink.publish(topic, template)  # connect and create the topic outside the measurement
        sink.flush(60)
        start = time.perf_counter()
        for i in range(events):
            template["episode"] = i
            template["worker_index"] = i % 8
            sink.publish(topic, template)
        publish_s = time.perf_counter() - start
        sink.flush(300)
        total_s = time.perf_counter() - start
        delivered = sink.stats().delivered - 1
    return {
        "events": events,
        "delivered": delivered,
        "publish_us": publish_s / events * 1e6,
        "events_per_s": delivered / total_s,
    }


def client_floor(bootstrap: str, topic: str, config: TelemetryConfig, records: int = 20_000) -> float:
    """kafka-python's own cost: process CPU (µs) per record of a bare ``KafkaProducer.send`` with the
    sink's producer settings, flushed every 150 records as the sink's chunks are (``topic`` must
    exist). The part of the overhead no code of ours can remove while the producer runs in the
    role's process."""
    from kafka import KafkaProducer

    value = serialize_event(
        envelope("episode", session_id="bench", worker_index=0, worker_id="bench-0", env_id="CartPole-v1",
                 episode=0, episode_return=21.0, episode_length=21, env_steps=0, updates=0, epsilon=0.1)
    )  # fmt: skip
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        compression_type=config.kafka_compression(),
        linger_ms=min(config.linger_ms, 5),
        batch_size=config.batch_size_bytes,
        **Endpoints().kafka_client_settings(),
    )
    try:
        for _ in range(500):  # warm up: metadata, connection
            producer.send(topic, value=value, key=b"bench/0", partition=0)
        producer.flush()
        cpu = time.process_time()
        for i in range(records):
            producer.send(topic, value=value, key=b"bench/0", partition=0)
            if i % 150 == 149:
                producer.flush()
        producer.flush()
        return (time.process_time() - cpu) / records * 1e6
    finally:
        producer.close()


# -- 2. overhead on a worker's step ---------------------------------------------------------------------
def overhead(
    bootstrap: str, topic: str, config: TelemetryConfig, steps: int, rounds: int
) -> dict[str, float]:
    """Telemetry's share of a worker's CPU at a real worker's event rate, with ``config``'s sink.

    Blocks of ``steps`` worker-like steps (CartPole ``env.step`` + forward pass of a 4-64-64-2 MLP,
    random actions as early in training: one ``episode`` event per episode, ``train_stats`` every 100
    steps) alternate without and with telemetry. Measured per thread, so the figure is stable on a
    busy machine: the step's CPU is the main thread's (``time.thread_time``) in the blocks without
    telemetry; telemetry's CPU is the main thread's time building and publishing the events plus every
    other thread's CPU (the sink's and kafka-python's: process time minus the main thread's) from the
    first block to the final flush, idle rounds during the blocks without events included."""
    import gymnasium as gym
    import torch

    torch.set_num_threads(1)
    net = torch.nn.Sequential(
        torch.nn.Linear(4, 64),
        torch.nn.ReLU(),
        torch.nn.Linear(64, 64),
        torch.nn.ReLU(),
        torch.nn.Linear(64, 2),
    )
    env = gym.make("CartPole-v1")
    env.action_space.seed(0)
    obs, _ = env.reset(seed=0)

    def publish(sink: KafkaSink, event_type: str, **fields: Any) -> float:
        """Build and publish one event; returns the main thread's CPU s it took."""
        before = time.thread_time()
        sink.publish(topic, envelope(event_type, session_id="bench", worker_index=0, **fields))
        return time.thread_time() - before

    def steps_block(sink: KafkaSink | None) -> tuple[float, float, int]:
        """(main thread CPU s of the steps, main thread CPU s building and publishing events, events)."""
        nonlocal obs
        ret, length, episode, events, publish_cpu = 0.0, 0, 0, 0, 0.0
        start = time.thread_time()
        for step in range(steps):
            with torch.no_grad():  # the agent's forward pass; actions explore (ε = 1, early training)
                net(torch.as_tensor(obs).unsqueeze(0))
            obs, reward, terminated, truncated, _ = env.step(int(env.action_space.sample()))
            ret, length = ret + float(reward), length + 1
            if terminated or truncated:
                obs, _ = env.reset()
                if sink is not None:
                    publish_cpu += publish(sink, "episode", episode=episode, episode_return=ret,
                                           episode_length=length, env_steps=step)  # fmt: skip
                events += 1
                ret, length, episode = 0.0, 0, episode + 1
            if step % 100 == 0:
                if sink is not None:
                    publish_cpu += publish(sink, "train_stats", env_steps=step, loss=0.1, mean_q=1.0,
                                           epsilon=1.0, env_steps_per_s=1e4, updates_per_s=1e3)  # fmt: skip
                events += 1
        return time.thread_time() - start - publish_cpu, publish_cpu, events

    with KafkaSink(bootstrap, config, topics=[topic], spool_name="bench-overhead") as sink:
        sink.publish(topic, envelope("episode", session_id="bench", worker_index=0))
        sink.flush(60)
        steps_block(None)  # warm up
        base, telemetry = [], []
        process_start, main_start = time.process_time(), time.thread_time()
        for _ in range(rounds):
            base.append(steps_block(None))
            telemetry.append(steps_block(sink))
        sink.flush(60)  # the last events' sending belongs to the measurement
        others_cpu = (time.process_time() - process_start) - (time.thread_time() - main_start)
    step_cpu = statistics.median(b[0] for b in base) / steps
    events = sum(t[2] for t in telemetry)
    telemetry_cpu = others_cpu + sum(t[1] for t in telemetry)
    event_cpu = telemetry_cpu / events
    return {
        "steps_per_event": steps * rounds / events,
        "step_cpu_us": step_cpu * 1e6,
        "event_cpu_us": event_cpu * 1e6,
        "publish_us": sum(t[1] for t in telemetry) / events * 1e6,
        "overhead_pct": telemetry_cpu / (steps * rounds * step_cpu) * 100,
        "worst_case_overhead_pct": event_cpu / step_cpu * 100,
    }


# -- 3. end-to-end latency -----------------------------------------------------------------------------
def _run_indexer(bootstrap: str, es_url: str, prefix: str, topic: str, stop: Any) -> None:
    import logging

    from hiverl.telemetry.indexer import Indexer

    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    config = TelemetryConfig(index_prefix=prefix, stats_interval_s=3600)
    indexer = Indexer(
        bootstrap, es_url, config, topics={TRAINING_LOG_TOPIC: topic}, group_id=f"bench-{prefix}"
    )
    stop_event = threading.Event()

    def relay() -> None:
        stop.wait()
        stop_event.set()

    threading.Thread(target=relay, daemon=True).start()
    indexer.run(stop_event)
    indexer.close()


def latency(
    bootstrap: str,
    es_url: str,
    prefix: str,
    topic: str,
    config: TelemetryConfig,
    rate_hz: float,
    duration_s: float,
) -> dict[str, float]:
    """Seconds from publish() to searchable, at ``rate_hz`` events per second for ``duration_s``."""
    from elasticsearch import Elasticsearch

    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    indexer = ctx.Process(target=_run_indexer, args=(bootstrap, es_url, prefix, topic, stop))
    indexer.start()
    es = Elasticsearch(es_url, request_timeout=10)
    alias = alias_name(prefix, TRAINING_LOG_TOPIC)
    published: dict[int, float] = {}
    seen: dict[int, float] = {}
    with KafkaSink(bootstrap, config, topics=[topic], spool_name="bench-latency") as sink:
        sink.publish(topic, envelope("episode", session_id="warmup", worker_index=0, episode=-1))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not _searchable(es, alias, -1):  # indexer up and templates in
            time.sleep(0.2)
        n = int(rate_hz * duration_s)
        start = time.monotonic()
        for i in range(n):
            while time.monotonic() < start + i / rate_hz:
                _poll(es, alias, seen)
                time.sleep(0.02)
            published[i] = time.time()
            sink.publish(topic, envelope("episode", session_id="bench", worker_index=i % 4, episode=i))
        end = time.monotonic() + 30
        while len(seen) < n and time.monotonic() < end:
            _poll(es, alias, seen)
            time.sleep(0.05)
    stop.set()
    indexer.join(30)
    es.close()
    lat = sorted(seen[i] - published[i] for i in published if i in seen)
    if not lat:
        return {"events": n, "seen": 0, "p50_s": float("nan"), "p95_s": float("nan")}
    return {
        "events": n,
        "seen": len(lat),
        "p50_s": lat[len(lat) // 2],
        "p95_s": lat[int(len(lat) * 0.95) - 1],
    }


def _searchable(es: Any, alias: str, episode: int) -> bool:
    try:
        return int(es.count(index=alias, query={"term": {"episode": episode}})["count"]) > 0
    except Exception:
        return False


def _poll(es: Any, alias: str, seen: dict[int, float]) -> None:
    try:
        low = max(seen) - 200 if seen else 0
        hits = es.search(
            index=alias, size=1000, source=["episode"], query={"range": {"episode": {"gte": max(low, 0)}}}
        )["hits"]["hits"]
    except Exception:
        return
    now = time.time()
    for hit in hits:
        seen.setdefault(int(hit["_source"]["episode"]), now)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=50_000, help="events for the throughput run")
    parser.add_argument("--steps", type=int, default=20_000, help="worker steps per overhead block")
    parser.add_argument("--rounds", type=int, default=4, help="alternating overhead blocks")
    parser.add_argument("--rate", type=float, default=50.0, help="events/s in the latency run")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of the latency run")
    args = parser.parse_args()

    import logging

    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    endpoints = Endpoints()
    bootstrap, es_url = endpoints.kafka_bootstrap_servers, endpoints.elasticsearch_url
    run = uuid.uuid4().hex[:10]
    topics = [f"bench-{run}-{name}" for name in ("throughput", "overhead", "latency")]
    prefix = f"bench-{run}-"
    with tempfile.TemporaryDirectory() as spool:
        config = TelemetryConfig(spool_dir=Path(spool), index_prefix=prefix)
        try:
            thr = producer_throughput(bootstrap, topics[0], config, args.events)
            before = config.model_copy(update={"linger_ms": 100, "events_per_record": 1})
            old = overhead(bootstrap, topics[1], before, args.steps, args.rounds)
            ovh = overhead(bootstrap, topics[1], config, args.steps, args.rounds)
            floor_us = client_floor(bootstrap, topics[1], config)
            lat = latency(bootstrap, es_url, prefix, topics[2], config, args.rate, args.duration)
        finally:
            _cleanup(bootstrap, es_url, topics, prefix)

    rows = [
        ("producer throughput", f"{thr['events_per_s']:,.0f} events/s", "≥ 20,000"),
        ("publish() cost in the caller", f"{thr['publish_us']:.2f} µs/event", ""),
        ("worker step (CartPole + MLP), worker CPU", f"{ovh['step_cpu_us']:.1f} µs", ""),
        ("steps per event (worker rate, ε = 1)", f"{ovh['steps_per_event']:.1f}", ""),
        ("before: telemetry CPU per event", f"{old['event_cpu_us']:.1f} µs", "(1 event/record, 100 ms)"),
        ("before: telemetry overhead", f"{old['overhead_pct']:.2f} %", "baseline"),
        (
            "telemetry CPU per event",
            f"{ovh['event_cpu_us']:.1f} µs",
            f"({config.events_per_record}/record, {config.linger_ms} ms)",
        ),
        ("  of it: building + publish()", f"{ovh['publish_us']:.1f} µs", ""),
        ("telemetry overhead", f"{ovh['overhead_pct']:.2f} %", "≤ 2 %"),
        ("  kafka-python alone, CPU per record", f"{floor_us:.1f} µs", "(information)"),
        ("  worst case: one event per step", f"{ovh['worst_case_overhead_pct']:.1f} %", "(information)"),
        ("event → searchable p50", f"{lat['p50_s']:.2f} s", ""),
        ("event → searchable p95", f"{lat['p95_s']:.2f} s", "≤ 5 s"),
        ("latency events seen", f"{lat['seen']}/{lat['events']}", ""),
    ]
    print(f"{'measure':36} {'value':>22}  target")
    for name, value, target in rows:
        print(f"{name:36} {value:>22}  {target}")
    print(
        json.dumps(
            {
                "producer_events_per_s": round(thr["events_per_s"], 1),
                "overhead_pct": round(ovh["overhead_pct"], 3),
                "event_cpu_us": round(ovh["event_cpu_us"], 2),
                "before_overhead_pct": round(old["overhead_pct"], 3),
                "before_event_cpu_us": round(old["event_cpu_us"], 2),
                "kafka_python_us_per_record": round(floor_us, 2),
                "worst_case_overhead_pct": round(ovh["worst_case_overhead_pct"], 2),
                "latency_p50_s": round(lat["p50_s"], 3),
                "latency_p95_s": round(lat["p95_s"], 3),
                "latency_events_seen": lat["seen"],
            }
        )
    )


def _cleanup(bootstrap: str, es_url: str, topics: list[str], prefix: str) -> None:
    import contextlib

    from elasticsearch import Elasticsearch
    from kafka.admin import KafkaAdminClient

    from hiverl.telemetry.elastic import delete_templates

    with contextlib.suppress(Exception):
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, **Endpoints().kafka_client_settings())
        existing = set(admin.list_topics())
        admin.delete_topics([t for t in topics if t in existing])
        admin.close()
    with contextlib.suppress(Exception), Elasticsearch(es_url) as es:
        es.options(ignore_status=404).indices.delete(index=f"{prefix}*", expand_wildcards="all")
        delete_templates(es, prefix)


if __name__ == "__main__":
    main()
