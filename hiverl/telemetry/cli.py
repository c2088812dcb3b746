"""``hiverl index``: run the indexer (Kafka topics → Elasticsearch), or only set up topics and templates."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Annotated

import typer

from hiverl.endpoints import Endpoints, redact


def index(
    group_id: Annotated[str | None, typer.Option(help="Kafka consumer group (default from config)")] = None,
    prefix: Annotated[str | None, typer.Option(help="index/alias/template name prefix")] = None,
    report_every: Annotated[float, typer.Option(help="seconds between status lines (with lag)")] = 30.0,
    setup_only: Annotated[
        bool,
        typer.Option(
            "--setup-only",
            help="create missing topics, the Kafka users and their ACLs, put index templates, then exit",
        ),
    ] = False,
) -> None:
    """Bulk-index the training_log and memory_monitoring topics into Elasticsearch (exactly once per
    record: ids from topic, partition and offset; offsets committed after each bulk)."""
    from elasticsearch import Elasticsearch

    from hiverl.events import MEMORY_MONITORING_TOPIC, TRAINING_LOG_TOPIC
    from hiverl.telemetry.admin import ensure_topics
    from hiverl.telemetry.config import TelemetryConfig
    from hiverl.telemetry.elastic import ensure_templates
    from hiverl.telemetry.indexer import Indexer
    from hiverl.telemetry.kafka_users import KafkaUserPasswords, ensure_users

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.CRITICAL)  # outages are reported by us
    logging.getLogger("elastic_transport").setLevel(logging.ERROR)
    endpoints = Endpoints()
    overrides: dict[str, object] = {"stats_interval_s": report_every}
    if prefix is not None:
        overrides["index_prefix"] = prefix
    config = TelemetryConfig(**overrides)  # type: ignore[arg-type]
    kafka, security = endpoints.kafka_bootstrap_servers, endpoints.kafka_client_settings()
    topics = [config.kafka_topic(TRAINING_LOG_TOPIC), config.kafka_topic(MEMORY_MONITORING_TOPIC)]
    if setup_only:
        created = ensure_topics(kafka, topics, config, security=security)
        users = ensure_users(kafka, KafkaUserPasswords().given(), config, security)
        es = Elasticsearch(endpoints.elasticsearch_url, request_timeout=30)
        names = ensure_templates(es, config.index_prefix)
        typer.echo(
            f"topics created: {created or 'none (all present)'}; Kafka users: {users.summary()}; "
            f"index templates: {', '.join(names)}"
        )
        return
    typer.echo(
        f"indexing {', '.join(topics)} from {kafka} "
        f"into {redact(endpoints.elasticsearch_url)} (prefix {config.index_prefix!r})"
    )
    indexer = Indexer(kafka, endpoints.elasticsearch_url, config, group_id=group_id, security=security)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        indexer.run(stop)
    except KeyboardInterrupt:
        pass
    finally:
        typer.echo(f"indexer stopped: {indexer.report()}")
        indexer.close()


def register(app: typer.Typer) -> None:
    """Add ``hiverl index`` to the ``hiverl`` app."""
    app.command("index")(index)
