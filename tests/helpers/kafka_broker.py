"""A private Kafka broker configured by compose.yaml's kafka service itself, on free local ports.

The broker's ``server.properties`` is made from the service's ``KAFKA_*`` environment (interpolated
with .env.example) by the rule both of its images apply (docker/local/kafka/run.sh and apache/kafka's
own: ``KAFKA_`` dropped, lower case, ``___`` -> ``-``, ``__`` -> ``_``, ``_`` -> ``.``). Only where
the broker runs changes: each listener moves to a free port of 127.0.0.1, the controller voter with
it, and the log directory to the server's home. Listeners, SASL, the authorizer and its super users
are the compose file's, so a test of this broker tests the stack's Kafka settings.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from hiverl.services import KafkaServer
from hiverl.services.base import run_checked
from hiverl.services.catalog import HOST, REPO_ROOT
from tests.test_compose import env_example, interpolate, load

#: Read by the images' start scripts as JVM options, never as broker properties.
JVM_VARIABLES = frozenset({"KAFKA_HEAP_OPTS", "KAFKA_OPTS", "KAFKA_JVM_PERFORMANCE_OPTS", "KAFKA_LOG4J_OPTS"})


def compose_kafka_environment() -> dict[str, str]:
    """The kafka service's environment as `docker compose` gives it (with .env.example's values)."""
    service: dict[str, Any] = interpolate(load("compose.yaml"), env_example())["services"]["kafka"]
    return {str(name): str(value) for name, value in service["environment"].items()}


def property_name(variable: str) -> str:
    """``KAFKA_LISTENER_NAME_EXTERNAL_SCRAM___SHA___512_SASL_JAAS_CONFIG`` ->
    ``listener.name.external.scram-sha-512.sasl.jaas.config``."""
    key = variable.removeprefix("KAFKA_").lower()
    return key.replace("___", "-").replace("__", "\0").replace("_", ".").replace("\0", "_")


def broker_properties(environment: dict[str, str]) -> dict[str, str]:
    """The ``server.properties`` the images write for ``environment``."""
    return {
        property_name(name): value
        for name, value in environment.items()
        if name.startswith("KAFKA_") and name not in JVM_VARIABLES
    }


def _listeners_on(value: str, ports: dict[str, int]) -> str:
    """``NAME://host:port,...`` with each listener at ``HOST:ports[NAME]``."""
    listeners = []
    for listener in value.split(","):
        name = listener.split("://")[0]
        listeners.append(f"{name}://{HOST}:{ports[name]}")
    return ",".join(listeners)


class ComposeKafka(KafkaServer):
    """compose.yaml's broker on 127.0.0.1: ``url`` is the INTERNAL listener (no login, super user),
    ``external_url`` the published SASL one."""

    def __init__(self, home: Path, internal_port: int, external_port: int, controller_port: int) -> None:
        super().__init__(internal_port, home, controller_port=controller_port, heap="384m")
        self.external_port = external_port
        self.environment_of_service = compose_kafka_environment()

    @property
    def external_url(self) -> str:
        return f"{HOST}:{self.external_port}"

    @property
    def ports(self) -> tuple[int, ...]:
        return (self.port, self.external_port, self.controller_port)

    def properties(self) -> dict[str, str]:
        """The compose service's properties, moved to this server's ports and home."""
        settings = broker_properties(self.environment_of_service)
        ports = {"INTERNAL": self.port, "EXTERNAL": self.external_port, "CONTROLLER": self.controller_port}
        settings["listeners"] = _listeners_on(settings["listeners"], ports)
        settings["advertised.listeners"] = _listeners_on(settings["advertised.listeners"], ports)
        node, _, _ = settings["controller.quorum.voters"].partition("@")
        settings["controller.quorum.voters"] = f"{node}@{HOST}:{self.controller_port}"
        settings["log.dirs"] = str(self.data_dir)
        return settings

    def prepare(self) -> None:
        """As run.sh: the properties, the image's log4j2 file, storage formatted with CLUSTER_ID."""
        properties = self.config_dir / "server.properties"
        properties.write_text("".join(f"{k}={v}\n" for k, v in self.properties().items()))
        log4j = (REPO_ROOT / "docker" / "local" / "kafka" / "log4j2.properties").read_text()
        (self.config_dir / "log4j2.properties").write_text(log4j)
        cluster_id = self.environment_of_service["CLUSTER_ID"]
        if not re.fullmatch(r"[A-Za-z0-9_-]{22}", cluster_id):
            raise ValueError(f"CLUSTER_ID {cluster_id!r} is not 22 characters of base64url")
        run_checked(
            [*self._jvm(), self.spec.storage_tool_class, "format", "--ignore-formatted",
             f"--cluster-id={cluster_id}", "-c", str(properties)],
            "formatting Kafka's KRaft storage",
        )  # fmt: skip
