"""Kafka topic administration: create the telemetry topics at start-up when they are missing."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from hiverl.telemetry.config import TelemetryConfig

log = logging.getLogger(__name__)


def ensure_topics(
    bootstrap_servers: str,
    topics: Sequence[str],
    config: TelemetryConfig,
    timeout_s: float = 10.0,
    security: Mapping[str, Any] | None = None,
) -> list[str]:
    """Create each of ``topics`` that does not exist yet, with ``config.topic_partitions``
    partitions, ``config.topic_replication_factor`` replicas and ``retention.ms`` =
    ``config.topic_retention_ms``. Existing topics are left as they are. Returns the created names.

    ``security``: kafka-python's security arguments (default: the environment's). A user sees only
    the topics its ACLs cover: one it may not see counts as missing, and creating it raises
    ``TopicAuthorizationFailedError`` naming that topic.

    Raises kafka-python's errors (e.g. ``KafkaTimeoutError``) when Kafka does not answer."""
    from kafka.admin import KafkaAdminClient
    from kafka.errors import TopicAlreadyExistsError, TopicAuthorizationFailedError

    from hiverl.telemetry.kafka_access import client_security

    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap_servers,
        client_id="hiverl-telemetry-admin",
        request_timeout_ms=int(timeout_s * 1000),
        bootstrap_timeout_ms=int(timeout_s * 1000),
        **client_security(security),
    )
    try:
        existing = set(admin.list_topics())
        missing = [t for t in dict.fromkeys(topics) if t not in existing]
        created: list[str] = []
        for topic in missing:
            options = {
                "num_partitions": config.topic_partitions,
                "replication_factor": config.topic_replication_factor,
                "configs": {"retention.ms": str(config.topic_retention_ms)},
            }
            try:
                admin.create_topics(
                    {topic: options}, timeout_ms=int(timeout_s * 1000), wait_for_metadata=True
                )
                created.append(topic)
                log.info("created Kafka topic %s (%d partitions)", topic, config.topic_partitions)
            except TopicAlreadyExistsError:  # another process won the race
                pass
            except TopicAuthorizationFailedError:  # kafka-python's message is the whole request
                raise TopicAuthorizationFailedError({topic}) from None
        return created
    finally:
        admin.close()
