"""What every role process of a hive shares: its context, its event pipe, its entry point.

A hive is one learner, N actors and an evaluator. On one machine ``hiverl train`` spawns each as a
process (:func:`run_role`), which sends its events to Kafka through its own producer and to the
trainer through its pipe; in containers each runs alone (``hiverl learner``, ``hiverl actor``,
``hiverl evaluator``).

Outages: a role waits out Redis (:meth:`RoleProcess._retry`) and its producer spools while Kafka is
away. Each keeps an :class:`~hiverl.outages.OutageWatch`: the trainer hears of each failure
(lifecycle ``outage``) and of the end of the wait (``recovered``), and once it is over the role
records one ``outage`` event (service, start, end, duration) in ``training_log``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event as EventType
from typing import Any, Literal, TypeVar

from game.hive_memory import retrying
from hiverl.config import SessionConfig, config_from_dict
from hiverl.events import TRAINING_LOG_TOPIC, Event, EventSink, FanoutSink, envelope
from hiverl.outages import OUTAGE_EVENT, Outage, OutageWatch
from hiverl.threads import limit_threads, thread_counts

Role = Literal["learner", "actor", "evaluator"]
PLAYER_NICENESS = 5  # scheduling priority of actors and the evaluator below the learner
StatusCallback = Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True)
class RoleContext:
    """Everything a role process needs (picklable: passed through multiprocessing spawn)."""

    role: Role
    index: int  # the actor's index; 0 for the learner and the evaluator
    session_id: str
    config: Mapping[str, Any]  # the hive's resolved SessionConfig as JSON types
    redis_url: str
    telemetry: bool = False  # the role sends its events to Kafka itself (telemetry_producer)

    def settings(self) -> SessionConfig:
        return config_from_dict(self.config)

    @property
    def name(self) -> str:
        return f"actor {self.index}" if self.role == "actor" else self.role

    @property
    def slug(self) -> str:
        """``learner``, ``actor-<index>``, ``evaluator``: for file and spool names."""
        return f"actor-{self.index}" if self.role == "actor" else self.role


def writer_id(role: Role, index: int) -> str:
    """This process's ``worker_id`` as ``role`` (host-pid-role; ``a<index>`` for an actor)."""
    suffix = f"a{index}" if role == "actor" else role
    return f"{socket.gethostname()}-{os.getpid()}-{suffix}"


def role_event(
    event_type: str, context: RoleContext, role: Role, index: int, env_id: str, **fields: Any
) -> Event:
    """An event of ``role`` (an actor's carries its index) in ``context``'s session."""
    return envelope(
        event_type,
        session_id=context.session_id,
        worker_index=index if role == "actor" else None,
        worker_id=writer_id(role, index),
        env_id=env_id,
        role=role,
        **fields,
    )


def telemetry_producer(context: RoleContext, outages: OutageWatch | None = None) -> EventSink:
    """The role process's one Kafka producer (:class:`hiverl.telemetry.KafkaSink`).

    Its spool is named after the session and the role, so a restarted role delivers what its
    predecessor spooled while Kafka was away; ``outages`` hears of Kafka going away and coming back
    (without one, the producer records its Kafka outages in Kafka itself). Close it before the
    process ends: that flushes it.
    """
    from hiverl.endpoints import Endpoints
    from hiverl.telemetry.kafka_sink import KafkaSink

    endpoints = Endpoints()
    producer = KafkaSink(
        endpoints.kafka_bootstrap_servers,
        spool_name=f"{context.session_id}-{context.slug}",
        # A role writes training_log only: its Kafka user (actor, learner, evaluator) may see no other.
        topics=(TRAINING_LOG_TOPIC,),
        client_id=f"hiverl-{context.slug}",
        outages=outages,
        security=endpoints.kafka_client_settings(),
    )
    if outages is None:  # a role alone (a container): its Kafka outages go to Kafka with the spool
        env_id = context.settings().env_id

        def record(outage: Outage) -> None:
            event = role_event(OUTAGE_EVENT, context, context.role, context.index, env_id, **outage.fields())
            with contextlib.suppress(RuntimeError):  # the producer was closed meanwhile
                producer.publish(TRAINING_LOG_TOPIC, event)

        producer.outages.on_ended = record
    return producer


class OutageReporter:
    """What :func:`run_in_process` gives a role as ``on_outage``: lifecycle messages to the trainer.

    Called with a text (a plain ``on_outage``) it sends ``outage`` with that text; a role's
    :class:`~hiverl.outages.OutageWatch` calls :meth:`failed` (``outage`` with the service
    and since when) and :meth:`recovered` (``recovered``: the wait is over).
    """

    def __init__(self, on_status: StatusCallback) -> None:
        self.on_status = on_status

    def __call__(self, text: str) -> None:
        self.on_status("outage", {"text": text})

    def failed(self, outage: Outage, text: str) -> None:
        self.on_status("outage", {"text": text, **outage.facts()})

    def recovered(self, outage: Outage) -> None:
        self.on_status("recovered", outage.facts())


class PipeSink:
    """EventSink that forwards events to the trainer process, for its live table and the run folder.

    Each process has its own pipe (not a queue shared by all): a process killed mid-write can only
    break its own channel, never block the others. Kafka gets the events from the role's own
    producer (:func:`telemetry_producer`), not through the trainer. Threads of the role (an insert
    thread, the producer's) send too: :meth:`send` writes one message at a time.
    """

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._lock = threading.Lock()

    def send(self, message: tuple[Any, ...]) -> None:
        # A pipe closed during shutdown must not stop the role: telemetry is best effort.
        with self._lock, contextlib.suppress(ValueError, OSError):
            self.connection.send(message)

    def publish(self, topic: str, event: Mapping[str, Any]) -> None:
        self.send(("event", topic, dict(event)))

    def flush(self, timeout_s: float = 10.0) -> None:
        pass

    def close(self) -> None:
        pass


T = TypeVar("T")


class RoleProcess:
    """What every role shares: its context and settings, where its events and lifecycle messages
    go, how it waits out a Redis outage, and when it stops.

    Args:
        context: role, index, session, resolved settings, Redis URL.
        sink: where the role's events go.
        on_status: lifecycle messages (``started``, ``checkpoint``, ``done``, ...) with a payload dict.
        on_outage: told about each failed Redis call while the role waits for Redis (an
            :class:`OutageReporter` also hears when the wait is over).
        should_stop: polled by the loops and by every wait for Redis; True finishes cleanly.

    ``self.on_outage`` is what the role hands its helpers (threads, sampler processes) that wait for
    Redis themselves: their failures count in the role's :attr:`outages` too.
    """

    role: Role

    def __init__(
        self,
        context: RoleContext,
        sink: EventSink,
        *,
        on_status: StatusCallback | None = None,
        on_outage: Callable[[str], None] | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> None:
        self.context = context
        self.hive = context.settings()
        limit_threads(self.hive.torch_threads)  # before the role's first tensor op
        self.index = context.index if self.role == "actor" else 0
        self.sink = sink
        self.on_status = on_status or (lambda _kind, _payload: None)
        tell = on_outage or (lambda _text: None)
        reporter = tell if isinstance(tell, OutageReporter) else None
        self.outages = OutageWatch(
            "redis",
            on_failure=reporter.failed if reporter else lambda _outage, text: tell(text),
            on_recovered=reporter.recovered if reporter else None,
            on_ended=self._record_outage,
        )
        self.on_outage: Callable[[str], None] = self.outages.failed
        self.should_stop = should_stop
        self.stop_reason: str | None = None  # set when the role finishes; ends every wait for Redis
        self.writer_id = writer_id(self.role, self.index)

    def _stopping(self) -> bool:
        return self.should_stop() or self.stop_reason is not None

    def _retry(self, call: Callable[[], T]) -> T:
        """``call()``, waiting out Redis outages (see :func:`game.hive_memory.retrying`); a call that
        succeeds ends an outage, whichever of the role's waits saw it."""
        result = retrying(call, self._stopping, self.on_outage)
        self.outages.succeeded()
        return result

    def _record_outage(self, outage: Outage) -> None:
        """The ``outage`` event of one outage the role waited through (or stopped in)."""
        self._event(OUTAGE_EVENT, **outage.fields())

    def end_outages(self) -> None:
        """At the role's end: record the outage not yet recorded (one going on ends now)."""
        self.outages.close()

    def announce(self) -> None:
        """The ``started`` event: this process's id and the threads it runs with (measured)."""
        self._event("started", pid=os.getpid(), **thread_counts())

    def _event(self, event_type: str, **fields: Any) -> None:
        event = role_event(event_type, self.context, self.role, self.index, self.hive.env_id, **fields)
        event["worker_id"] = self.writer_id
        self.sink.publish(TRAINING_LOG_TOPIC, event)


def run_in_process(
    context: RoleContext, sink: EventSink, on_status: StatusCallback, should_stop: Callable[[], bool]
) -> None:
    """Run one role in this process until it finishes or ``should_stop()``.

    Whatever way the role ends, the outage it was waiting in (if any) is recorded before it returns.
    """
    from game.hive_memory import Stopped

    on_outage = OutageReporter(on_status)
    roles: list[RoleProcess] = []
    try:
        if context.role == "learner":
            from game.actor import Actor
            from game.learner import Learner

            learner = Learner(
                context, sink, on_status=on_status, on_outage=on_outage, should_stop=should_stop
            )
            roles.append(learner)
            learner.announce()
            # A solo hive (no actors): the learner's process plays too, with the online network itself.
            solo = (
                Actor(
                    context, sink, network=learner.agent.online, on_outage=on_outage, should_stop=should_stop
                )
                if context.settings().actors == 0
                else None
            )
            if solo is not None:
                roles.append(solo)
            try:
                learner.run(solo.steps() if solo is not None else None)
            finally:
                learner.close()
                if solo is not None:
                    solo.close()
        elif context.role == "actor":
            from game.actor import Actor

            actor = Actor(context, sink, on_outage=on_outage, should_stop=should_stop)
            roles.append(actor)
            actor.announce()
            try:
                on_status("started", {"env_steps": 0})
                actor.run()
                on_status("done", {"env_steps": actor.env_steps, "episodes": actor.episodes})
            finally:
                actor.close()
        else:
            from game.evaluator import Evaluator

            evaluator = Evaluator(
                context, sink, on_status=on_status, on_outage=on_outage, should_stop=should_stop
            )
            roles.append(evaluator)
            evaluator.announce()
            try:
                evaluator.run()
            finally:
                evaluator.close()
    except Stopped:
        on_status("done", {"stopped_during_outage": True})
    finally:
        for role in roles:
            role.end_outages()


def kafka_outages(
    context: RoleContext, publish: Callable[[Event], None], on_status: StatusCallback
) -> OutageWatch:
    """The watch of the role process's producer on Kafka: the trainer hears of it, and once Kafka is
    back the outage is recorded as an event (delivered with what was spooled meanwhile)."""
    env_id = context.settings().env_id
    reporter = OutageReporter(on_status)

    def record(outage: Outage) -> None:
        publish(role_event(OUTAGE_EVENT, context, context.role, context.index, env_id, **outage.fields()))

    return OutageWatch("kafka", on_failure=reporter.failed, on_recovered=reporter.recovered, on_ended=record)


def run_role(context: RoleContext, connection: Connection, stop: EventType) -> None:
    """Process entry point: run one role; messages to the trainer go through ``connection``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the trainer handles Ctrl-C and sets ``stop``
    if context.role != "learner":
        # The learner is the hive's critical path: where cores are scarce, actors (held back by the
        # rate limiter anyway) and the evaluator yield the CPU to it.
        os.nice(PLAYER_NICENESS)
    terminate = threading.Event()  # SIGTERM stops this process only, not the hive
    signal.signal(signal.SIGTERM, lambda *_: terminate.set())

    pipe = PipeSink(connection)

    def on_status(kind: str, payload: dict[str, Any]) -> None:
        pipe.send((kind, context.role, context.index, payload))

    def record(event: Event) -> None:  # the producer's outages, through the role's sink like the rest
        sink.publish(TRAINING_LOG_TOPIC, event)

    kafka = kafka_outages(context, record, on_status) if context.telemetry else None
    producer = telemetry_producer(context, kafka) if context.telemetry else None
    sink: EventSink = pipe if producer is None else FanoutSink(pipe, producer)
    try:
        run_in_process(context, sink, on_status, lambda: stop.is_set() or terminate.is_set())
    except BaseException:
        on_status("error", {"text": traceback.format_exc()})
        raise
    finally:
        if kafka is not None:
            kafka.close()  # an outage still going on is recorded (and spooled) before the close
        if producer is not None:
            producer.close()  # to Kafka, or to the role's spool, before the process ends
        connection.close()
