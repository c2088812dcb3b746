"""Where the hive's services are: one place for every address, read from the environment.

The defaults are the ports of the project's own local services (``hiverl services up``), which
deliberately avoid the standard ports so they never collide with a server the user already runs.
Credentials are part of the URLs and come from the environment, a ``.env`` file or a secret file
(``*_FILE`` variables, as Docker secrets); they are never logged: use :func:`redact` before
printing a URL.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import AliasChoices, Field, model_validator
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
        for name in ("REDIS_URL", "KAFKA_BOOTSTRAP_SERVERS", "ELASTICSEARCH_URL", "MONGODB_URI"):
            path = os.environ.get(f"{name}_FILE")
            if path and name not in os.environ:
                data[name] = Path(path).read_text().strip()
        return data


_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<userinfo>[^@/]+)@", re.IGNORECASE)


def redact(url: str) -> str:
    """Return ``url`` with any ``user:password@`` replaced by ``***@`` (safe to log or print)."""
    return _CREDENTIALS.sub(lambda m: f"{m['scheme']}***@", url)
