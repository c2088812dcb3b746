"""``hiverl monitor``: poll the replay memory and publish memory_monitoring events."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer


def monitor(
    interval: Annotated[float, typer.Option(help="seconds between polls")] = 5.0,
    memory: Annotated[str, typer.Option(help="replay memory name")] = "hive",
    key_prefix: Annotated[str, typer.Option(help="key prefix of the replay memory")] = "",
    session_id: Annotated[str | None, typer.Option(help="session_id of the events")] = None,
    jsonl: Annotated[
        Path | None, typer.Option(help="also append every event to this JSON-lines file")
    ] = None,
    max_polls: Annotated[
        int | None, typer.Option(help="stop after this many polls (default: run forever)")
    ] = None,
    retry_max: Annotated[
        float, typer.Option(help="longest wait (s) between attempts while Redis or the memory is missing")
    ] = 30.0,
) -> None:
    """Poll every shard of the replay memory and publish its statistics to Kafka (memory_monitoring).

    Survives Redis restarts (reconnects with backoff) and Kafka outages (events wait in a disk spool)."""
    from hiverl.endpoints import Endpoints, redact
    from hiverl.events import MEMORY_MONITORING_TOPIC, EventSink, FanoutSink, JsonlSink
    from hiverl.redis_access import ACCESS_ERRORS, exit_denied
    from hiverl.telemetry.kafka_sink import KafkaSink
    from hiverl.threads import limit_threads
    from monitor.service import MemoryMonitor, MemorySource, MonitorSettings

    limit_threads(1)  # a poller: one thread of each pool is plenty, the cores are the hive's
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.CRITICAL)  # outages are reported by us
    settings = MonitorSettings(
        memory_name=memory,
        key_prefix=key_prefix,
        interval_s=interval,
        session_id=session_id,
        backoff_max_s=retry_max,
    )
    endpoints = Endpoints()
    kafka = KafkaSink(
        endpoints.kafka_bootstrap_servers, spool_name=f"monitor-{memory}", topics=(MEMORY_MONITORING_TOPIC,)
    )
    sink: EventSink = FanoutSink(JsonlSink(jsonl), kafka) if jsonl else kafka
    source = MemorySource(endpoints.redis_url, memory, key_prefix)
    service = MemoryMonitor(source, sink, settings)
    typer.echo(f"monitoring memory {memory!r} on {redact(endpoints.redis_url)} every {interval}s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        service.run(stop, max_polls=max_polls)
    except KeyboardInterrupt:
        pass
    except ACCESS_ERRORS as error:
        exit_denied(error, endpoints.redis_url)
    finally:
        source.reset()
        sink.close()
        typer.echo(
            f"monitor stopped after {service.polls} polls ({service.failures} failed); {kafka.stats()}"
        )


def register(app: typer.Typer) -> None:
    """Add ``hiverl monitor`` to the ``hiverl`` app."""
    app.command("monitor")(monitor)
