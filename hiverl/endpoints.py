"""Where the hive's services are: one place for every address, read from the environment.

The defaults are the ports of the project's own local services (``hiverl services up``), which
deliberately avoid the standard ports so they never collide with a server the user already runs.
Credentials are part of the URLs and come from the environment, a ``.env`` file or a secret file
(``*_FILE`` variables, as Docker secrets); they are never logged: use :func:`redact` before
printing a URL.

Kafka's credentials are separate settings (a bootstrap list has no place for them):
``KAFKA_SECURITY_PROTOCOL`` (``PLAINTEXT`` inside a stack's own network, ``SASL_PLAINTEXT`` through
its published listener), ``KAFKA_SASL_MECHANISM``, ``KAFKA_SASL_USERNAME`` and ``KAFKA_SASL_PASSWORD``
(or ``KAFKA_SASL_PASSWORD_FILE``); :meth:`Endpoints.kafka_client_settings` turns them into the
arguments of every Kafka client the project creates.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REDIS_PORT = 16379
KAFKA_PORT = 19092
KAFKA_CONTROLLER_PORT = 19093
ELASTICSEARCH_PORT = 19200
MONGODB_PORT = 27117


class Endpoints(BaseSettings):
    """Addresses of Redis, Kafka, Elasticsearch and the MongoDB archive."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    redis_url: str = Field(
        default=f"redis://127.0.0.1:{REDIS_PORT}/0",
        validation_alias=AliasChoices("REDIS_URL", "HIVERL_REDIS_URL"),
        description="Redis URL of the replay memory; several comma-separated URLs for a Redis Cluster.",
    )
    kafka_bootstrap_servers: str = Field(
        default=f"127.0.0.1:{KAFKA_PORT}",
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "HIVERL_KAFKA_BOOTSTRAP_SERVERS"),
        description="Comma-separated host:port list of Kafka brokers.",
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT",
        validation_alias=AliasChoices("KAFKA_SECURITY_PROTOCOL", "HIVERL_KAFKA_SECURITY_PROTOCOL"),
        description="PLAINTEXT inside a stack's network; SASL_PLAINTEXT (SASL_SSL): log in as a Kafka user.",
    )
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = Field(
        default="SCRAM-SHA-512",
        validation_alias=AliasChoices("KAFKA_SASL_MECHANISM", "HIVERL_KAFKA_SASL_MECHANISM"),
        description="SASL mechanism of the login (the stack's published listener takes SCRAM-SHA-512).",
    )
    kafka_sasl_username: str = Field(
        default="",
        validation_alias=AliasChoices("KAFKA_SASL_USERNAME", "HIVERL_KAFKA_SASL_USERNAME"),
        description="Kafka user of this process: actor, learner, evaluator or monitor (docs/telemetry.md).",
    )
    kafka_sasl_password: SecretStr = Field(
        default=SecretStr(""),
        validation_alias=AliasChoices("KAFKA_SASL_PASSWORD", "HIVERL_KAFKA_SASL_PASSWORD"),
        description="Password of KAFKA_SASL_USERNAME (never logged).",
    )
    elasticsearch_url: str = Field(
        default=f"http://127.0.0.1:{ELASTICSEARCH_PORT}",
        validation_alias=AliasChoices("ELASTICSEARCH_URL", "HIVERL_ELASTICSEARCH_URL"),
        description="Elasticsearch URL (credentials may be embedded).",
    )
    mongodb_uri: str = Field(
        default=f"mongodb://127.0.0.1:{MONGODB_PORT}/",
        validation_alias=AliasChoices("MONGODB_URI", "HIVERL_MONGODB_URI"),
        description="MongoDB connection URI of the session archive.",
    )

    @model_validator(mode="before")
    @classmethod
    def _read_secret_files(cls, data: object) -> object:
        """``MONGODB_URI_FILE=/run/secrets/mongo_uri`` and friends: read the value from a file."""
        import os

        if not isinstance(data, dict):
            return data
        for name in (
            "REDIS_URL",
            "KAFKA_BOOTSTRAP_SERVERS",
            "KAFKA_SASL_PASSWORD",
            "ELASTICSEARCH_URL",
            "MONGODB_URI",
        ):
            path = os.environ.get(f"{name}_FILE")
            if path and name not in os.environ:
                data[name] = Path(path).read_text().strip()
        return data

    @model_validator(mode="after")
    def _sasl_needs_a_login(self) -> Endpoints:
        # Fails at start-up: a process that could never log in should say so before it runs.
        if self.kafka_security_protocol.startswith("SASL_") and not (
            self.kafka_sasl_username and self.kafka_sasl_password.get_secret_value()
        ):
            raise ValueError(
                f"KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs KAFKA_SASL_USERNAME and "
                "KAFKA_SASL_PASSWORD (or KAFKA_SASL_PASSWORD_FILE)"
            )
        return self

    def kafka_client_settings(self) -> dict[str, Any]:
        """Keyword arguments of kafka-python's clients for the security settings (holds the password:
        pass it on, never log it)."""
        if self.kafka_security_protocol == "PLAINTEXT":
            return {"security_protocol": "PLAINTEXT"}
        return {
            "security_protocol": self.kafka_security_protocol,
            "sasl_mechanism": self.kafka_sasl_mechanism,
            "sasl_plain_username": self.kafka_sasl_username,
            "sasl_plain_password": self.kafka_sasl_password.get_secret_value(),
        }


_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<userinfo>[^@/]+)@", re.IGNORECASE)


def redact(url: str) -> str:
    """Return ``url`` with any ``user:password@`` replaced by ``***@`` (safe to log or print)."""
    return _CREDENTIALS.sub(lambda m: f"{m['scheme']}***@", url)
