"""The hive's Kafka users and their ACLs, made by ``hiverl index --setup-only`` (idempotent).

A stack's published Kafka listener (EXTERNAL: SASL_PLAINTEXT, SCRAM-SHA-512, compose.yaml) is for
hive roles on other hosts. Each role logs in as its own user, and each user may only write its own
telemetry:

- ``actor``, ``learner``, ``evaluator``: WRITE and DESCRIBE on topic ``training_log``;
- ``monitor``: WRITE and DESCRIBE on topic ``memory_monitoring``.

Nothing else: no reading, no topic creation, no consumer group, no administration. The indexer,
Logstash and this setup stay on the internal listener, whose principal ``User:ANONYMOUS`` is the
broker's super user. The producers are idempotent, yet need no IDEMPOTENT_WRITE on the cluster: since
Kafka 3.0 WRITE on a topic lets a producer have its producer id. Topic names carry the configured
``topic_prefix`` (``HIVERL_TELEMETRY_TOPIC_PREFIX``).

Passwords come from ``KAFKA_ACTOR_PASSWORD``, ``KAFKA_LEARNER_PASSWORD``, ``KAFKA_EVALUATOR_PASSWORD``
and ``KAFKA_MONITOR_PASSWORD`` (or their ``*_FILE``); only the setup one-shot sees them all, a role
gets its own as ``KAFKA_SASL_PASSWORD``. A user without a password here is left as it is.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from hiverl.events import MEMORY_MONITORING_TOPIC, TRAINING_LOG_TOPIC
from hiverl.telemetry.config import TelemetryConfig

#: Each user's one topic (a telemetry family: the topic is ``topic_prefix`` + this).
USER_TOPICS: Final = {
    "actor": TRAINING_LOG_TOPIC,
    "learner": TRAINING_LOG_TOPIC,
    "evaluator": TRAINING_LOG_TOPIC,
    "monitor": MEMORY_MONITORING_TOPIC,
}
#: What each user may do on its topic.
GRANTED_OPERATIONS: Final = ("WRITE", "DESCRIBE")
MECHANISM: Final = "SCRAM-SHA-512"


def password_variable(user: str) -> str:
    """``KAFKA_ACTOR_PASSWORD`` for ``actor``: where the setup reads the user's password."""
    return f"KAFKA_{user.upper()}_PASSWORD"


class KafkaUserPasswords(BaseSettings):
    """Passwords of the hive's Kafka users, for ``hiverl index --setup-only`` (docs/telemetry.md)."""

    model_config = SettingsConfigDict(extra="ignore")

    actor: SecretStr | None = Field(
        default=None, validation_alias="KAFKA_ACTOR_PASSWORD", description="password of Kafka user actor"
    )
    learner: SecretStr | None = Field(
        default=None, validation_alias="KAFKA_LEARNER_PASSWORD", description="password of Kafka user learner"
    )
    evaluator: SecretStr | None = Field(
        default=None,
        validation_alias="KAFKA_EVALUATOR_PASSWORD",
        description="password of Kafka user evaluator",
    )
    monitor: SecretStr | None = Field(
        default=None, validation_alias="KAFKA_MONITOR_PASSWORD", description="password of Kafka user monitor"
    )

    @model_validator(mode="before")
    @classmethod
    def _read_secret_files(cls, data: object) -> object:
        """``KAFKA_ACTOR_PASSWORD_FILE=/run/secrets/kafka_actor`` and friends: the password from a file."""
        if not isinstance(data, dict):
            return data
        for name in (
            "KAFKA_ACTOR_PASSWORD",
            "KAFKA_LEARNER_PASSWORD",
            "KAFKA_EVALUATOR_PASSWORD",
            "KAFKA_MONITOR_PASSWORD",
        ):
            path = os.environ.get(f"{name}_FILE")
            if path and name not in os.environ:
                data[name] = Path(path).read_text().strip()
        return data

    def given(self) -> dict[str, str]:
        """``{user: password}`` of the users whose password is set (and not empty)."""
        passwords = {user: getattr(self, user) for user in USER_TOPICS}
        return {user: p.get_secret_value() for user, p in passwords.items() if p and p.get_secret_value()}


@dataclass(frozen=True)
class UsersReport:
    """What :func:`ensure_users` did."""

    users: tuple[str, ...]  # users whose credential was set (created or updated)
    acls_added: int  # grants that were missing
    acls_removed: int  # ACLs of these users that are no grant of theirs (stale)
    authorizer: bool  # False: the broker has no authorizer, so no ACLs were made

    def summary(self) -> str:
        if not self.users:
            return "none (no KAFKA_<USER>_PASSWORD set)"
        text = f"{', '.join(self.users)} ({MECHANISM})"
        if not self.authorizer:
            return f"{text}; no ACLs: the broker has no authorizer, so anyone reaching it may do anything"
        return f"{text}; ACLs: {self.acls_added} added, {self.acls_removed} stale removed"


def wanted_acls(user: str, config: TelemetryConfig) -> set[Any]:
    """The ACLs ``user`` should hold: the grants on its topic, from any host."""
    from kafka.admin import ACL, ACLOperation, ACLPermissionType, ResourcePattern, ResourceType

    topic = ResourcePattern(ResourceType.TOPIC, config.kafka_topic(USER_TOPICS[user]))
    principal = f"User:{user}"
    return {
        ACL(principal, "*", ACLOperation[op], ACLPermissionType.ALLOW, topic) for op in GRANTED_OPERATIONS
    }


def ensure_users(
    bootstrap_servers: str,
    passwords: Mapping[str, str],
    config: TelemetryConfig,
    security: Mapping[str, Any] | None = None,
    timeout_s: float = 10.0,
) -> UsersReport:
    """Set each user's SCRAM-SHA-512 password (creating the user), then make its ACLs exactly its
    grants: missing ones added, any other ACL of the user removed. Running it again changes only the
    passwords' salts. Needs a super user's connection (the internal listener).

    Raises ``ValueError`` for a user not in :data:`USER_TOPICS`, ``RuntimeError`` when the broker
    refuses a credential, and kafka-python's errors when it does not answer."""
    from kafka.admin import (
        ACLFilter,
        ACLOperation,
        ACLPermissionType,
        ACLResourcePatternType,
        KafkaAdminClient,
        ResourcePatternFilter,
        ResourceType,
        UserScramCredentialUpsertion,
    )
    from kafka.errors import SecurityDisabledError

    from hiverl.telemetry.kafka_access import client_security

    unknown = sorted(set(passwords) - set(USER_TOPICS))
    if unknown:
        raise ValueError(f"no such hive Kafka user: {', '.join(unknown)} (users: {', '.join(USER_TOPICS)})")
    users = tuple(user for user in USER_TOPICS if user in passwords)
    if not users:
        return UsersReport((), 0, 0, authorizer=True)
    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap_servers,
        client_id="hiverl-telemetry-admin",
        request_timeout_ms=int(timeout_s * 1000),
        bootstrap_timeout_ms=int(timeout_s * 1000),
        **client_security(security),
    )
    try:
        errors = admin.alter_user_scram_credentials(
            [UserScramCredentialUpsertion(user, MECHANISM, passwords[user]) for user in users]
        )
        refused = {user: error for user, error in errors.items() if error}
        if refused:
            raise RuntimeError(f"Kafka did not set the password of {refused}")
        added = removed = 0
        for user in users:
            everything = ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY)
            of_user = ACLFilter(f"User:{user}", None, ACLOperation.ANY, ACLPermissionType.ANY, everything)
            try:
                held, _ = admin.describe_acls(of_user)
            except SecurityDisabledError:  # a broker without an authorizer (the local dev services)
                return UsersReport(users, 0, 0, authorizer=False)
            wanted = wanted_acls(user, config)
            stale = [acl for acl in held if acl not in wanted]
            if stale:
                admin.delete_acls(stale)
                removed += len(stale)
            missing = [acl for acl in wanted if acl not in held]
            if missing:
                result = admin.create_acls(missing)
                if result["failed"]:
                    raise RuntimeError(f"Kafka did not create ACLs of user {user}: {result['failed']}")
                added += len(missing)
        return UsersReport(users, added, removed, authorizer=True)
    finally:
        admin.close()
