"""Who a Kafka client of the project is, the telemetry producer, and one clear line when Kafka
refuses a client.

Every Kafka client the project creates takes kafka-python's security arguments from
:meth:`hiverl.endpoints.Endpoints.kafka_client_settings` (:func:`client_security`).

A refusal is not an outage: a wrong password or a topic outside the user's ACLs stays refused however
often a client retries, until someone changes the password or the ACLs. :func:`refusal` tells one
from the other and says it in one line that names the user and the variable to check;
:class:`RefusalLog` logs it once (an ERROR), and once more when Kafka accepts the user again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from hiverl.telemetry.config import TelemetryConfig
from hiverl.telemetry.kafka_login import check_login
from hiverl.telemetry.kafka_users import USER_TOPICS, password_variable
from hiverl.telemetry.records import Record

log = logging.getLogger(__name__)


def client_security(security: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``security`` as given, else the environment's (``KAFKA_SECURITY_PROTOCOL`` and friends)."""
    if security is not None:
        return dict(security)
    from hiverl.endpoints import Endpoints

    return Endpoints().kafka_client_settings()


def open_producer(
    bootstrap_servers: str, client_id: str, config: TelemetryConfig, security: Mapping[str, Any]
) -> Any:
    """The :class:`~hiverl.telemetry.kafka_sink.KafkaSink`'s kafka-python producer: idempotent, every
    record acknowledged by all replicas, compressed; it fails within seconds when Kafka does not answer."""
    from kafka import KafkaProducer

    return KafkaProducer(
        bootstrap_servers=bootstrap_servers,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        compression_type=config.kafka_compression(),
        # The sink's thread already batches (it wakes every linger_ms and sends what queued up); a
        # short producer linger just lets one chunk's records share a request.
        linger_ms=min(config.linger_ms, 5),
        batch_size=config.batch_size_bytes,
        delivery_timeout_ms=config.delivery_timeout_ms,
        request_timeout_ms=min(30_000, config.delivery_timeout_ms - 505),
        max_block_ms=2_000,
        bootstrap_timeout_ms=3_000,
        reconnect_backoff_max_ms=1_000,
        **security,
    )


def send_and_wait(producer: Any, records: Sequence[Record], timeout_s: float) -> tuple[set[int], Any]:
    """Send ``records`` with ``producer`` and wait (at most ``timeout_s``) for every ack. Returns the
    indices of those not acknowledged, and the last refusal among the failures (None if none): a
    refused topic fails its records alone, the other topics' are still sent."""
    from kafka.errors import AuthorizationError, TopicAuthorizationFailedError

    def refusal_of(exc: AuthorizationError, topic: str) -> AuthorizationError:
        # A produce response's error does not say its topic; the record does.
        return (
            TopicAuthorizationFailedError({topic}) if isinstance(exc, TopicAuthorizationFailedError) else exc
        )

    futures: list[tuple[int, Any]] = []
    failed: set[int] = set()
    refused = None
    for i, (topic, key, value, _) in enumerate(records):
        try:  # partition: murmur2(key)
            futures.append((i, producer.send(topic, value=value, key=key)))
        except AuthorizationError as exc:  # a topic the user may not write
            refused = refusal_of(exc, topic)
            failed.add(i)
        except Exception as exc:  # metadata or buffer timeout: Kafka is not answering
            log.debug("send failed: %s", exc)
            failed.update(range(i, len(records)))
            break
    # Every future resolves within delivery_timeout_ms (acknowledged or expired); wait for all at
    # once, then read the outcomes (get() only for a rare straggler).
    deadline = time.monotonic() + timeout_s
    try:
        producer.flush(timeout=timeout_s)
    except Exception as exc:  # flush timing out: the loop below waits per record
        log.debug("flush: %s", exc)
    for i, future in futures:
        if not future.is_done:
            try:
                future.get(timeout=max(deadline - time.monotonic(), 0.1))
            except Exception:
                failed.add(i)
        if future.failed():
            failed.add(i)
            if isinstance(future.exception, AuthorizationError):
                refused = refusal_of(future.exception, records[i].topic)
    return failed, refused


def user_of(security: Mapping[str, Any]) -> str:
    """The Kafka user a client with ``security`` is (``ANONYMOUS`` without a login)."""
    if security.get("security_protocol", "PLAINTEXT") in ("SASL_PLAINTEXT", "SASL_SSL"):
        return str(security.get("sasl_plain_username") or "")
    return "ANONYMOUS"


def _login_refused(bootstrap: str, user: str, detail: str) -> str:
    setup = (
        f"; `hiverl index --setup-only` gives user {user} the password in {password_variable(user)}"
        if user in USER_TOPICS
        else f"; the hive's users are {', '.join(USER_TOPICS)}"
    )
    return (
        f"Kafka {bootstrap} refused the login of user {user!r} ({detail}): check KAFKA_SASL_USERNAME and "
        f"KAFKA_SASL_PASSWORD (or KAFKA_SASL_PASSWORD_FILE){setup}"
    )


def _not_allowed(bootstrap: str, user: str, what: str) -> str:
    if user == "ANONYMOUS":
        who = f"Kafka {bootstrap} refused a client without a login"
        check = "this listener needs one: set KAFKA_SECURITY_PROTOCOL and KAFKA_SASL_USERNAME"
    else:
        who = f"Kafka {bootstrap} refused user {user!r}"
        grant = f" (user {user} may write {USER_TOPICS[user]} only)" if user in USER_TOPICS else ""
        check = f"its ACLs do not allow it{grant}: check KAFKA_SASL_USERNAME"
    return f"{who} {what}: {check}"


def refusal(
    exc: BaseException, bootstrap: str, security: Mapping[str, Any], topics: Sequence[str] = ()
) -> str | None:
    """One line on how Kafka refused a client with ``security`` (``exc`` is what the client raised
    while connecting to ``bootstrap`` or using ``topics``), or None when ``exc`` is no refusal.

    kafka-python raises a timeout for a refused login too: with a SASL login, a failure that names
    no refusal is checked with one login of :func:`check_login` (none when no broker answers)."""
    import kafka.errors as errors

    user = user_of(security)
    if isinstance(exc, errors.TopicAuthorizationFailedError):
        refused = sorted(exc.args[0]) if exc.args and isinstance(exc.args[0], (set, frozenset)) else topics
        what = f"access to topic {', '.join(refused)}" if refused else "access to a topic"
        return _not_allowed(bootstrap, user, what)
    if isinstance(exc, errors.AuthorizationError):
        return _not_allowed(bootstrap, user, f"({exc.__class__.__name__})")
    login_errors = (errors.SaslAuthenticationFailedError, errors.UnsupportedSaslMechanismError)
    if isinstance(exc, (*login_errors, errors.IllegalSaslStateError)):
        return _login_refused(bootstrap, user, exc.__class__.__name__)
    if user == "ANONYMOUS":
        return None
    try:
        detail = check_login(bootstrap, security)
    except Exception:  # no broker answers (or not as Kafka does): an outage, as far as we can tell
        return None
    return _login_refused(bootstrap, user, detail) if detail is not None else None


class RefusalLog:
    """Logs each new refusal once as an ERROR (a refusal repeated is silent), and as INFO when it is over."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self.current = ""  # the refusal in force ('' when none)

    def refused(self, text: str, consequence: str) -> None:
        if text != self.current:
            self.logger.error("%s. %s", text, consequence)
            self.current = text

    def accepted(self, bootstrap: str) -> None:
        if self.current:
            self.logger.info("Kafka %s accepts this client again", bootstrap)
            self.current = ""
