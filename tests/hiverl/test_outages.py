"""OutageWatch: failures and successes (from any thread) become outages with a start, an end and one
record each; a failure soon after a recovery continues the outage instead of starting another."""

from __future__ import annotations

import threading
import time
from typing import Any

from hiverl.events import TRAINING_LOG_TOPIC, envelope
from hiverl.outages import Outage, OutageWatch
from hiverl.telemetry.schema import validate_event


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def watch(clock: Clock, settle_s: float = 0.2) -> tuple[OutageWatch, dict[str, list[Any]]]:
    seen: dict[str, list[Any]] = {"failure": [], "recovered": [], "ended": []}
    w = OutageWatch(
        "redis",
        on_failure=lambda outage, text: seen["failure"].append((outage, text)),
        on_recovered=seen["recovered"].append,
        on_ended=seen["ended"].append,
        settle_s=settle_s,
        clock=clock,
    )
    return w, seen


def wait_for(condition: Any, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert condition()


def test_an_outage_starts_at_the_first_failure_and_ends_at_the_first_success() -> None:
    clock = Clock()
    w, seen = watch(clock)
    w.succeeded()  # no outage: nothing happens
    assert not w.down and w.current is None and not any(seen.values())
    w.failed("refused")
    clock.now += 2.0
    w.failed("refused again")
    assert w.down and [text for _, text in seen["failure"]] == ["refused", "refused again"]
    assert all(outage.start == 1000.0 for outage, _ in seen["failure"])
    clock.now += 3.5
    w.succeeded()
    w.succeeded()  # only the first success ends it
    assert not w.down and len(seen["recovered"]) == 1
    assert seen["recovered"][0].end == 1005.5 and not seen["ended"]  # recorded once it settled
    wait_for(lambda: seen["ended"])
    (outage,) = seen["ended"]
    assert (outage.start, outage.end, outage.failures, outage.recovered) == (1000.0, 1005.5, 2, True)
    fields = outage.fields()
    assert fields == {
        "service": "redis",
        "outage_start": 1000.0,
        "outage_end": 1005.5,
        "outage_duration_s": 5.5,
        "outage_failures": 2,
        "outage_recovered": True,
    }
    # The event a role makes of it follows the schema.
    validate_event(
        envelope("outage", session_id="s", role="actor", worker_index=0, **fields), TRAINING_LOG_TOPIC
    )
    assert w.current is None and w.ended == [outage]


def test_a_failure_while_it_settles_continues_the_same_outage() -> None:
    clock = Clock()
    w, seen = watch(clock, settle_s=0.3)
    w.failed("a")
    clock.now += 1.0
    w.succeeded()  # one wait got through...
    clock.now += 1.0
    w.failed("b")  # ...another one still fails (or its report came late): the same outage
    assert w.down and len(seen["recovered"]) == 1
    time.sleep(0.5)
    assert not seen["ended"]  # still going on: nothing recorded
    clock.now += 2.0
    w.succeeded()
    wait_for(lambda: seen["ended"])
    time.sleep(0.4)
    (outage,) = seen["ended"]
    assert (outage.start, outage.end, outage.failures) == (1000.0, 1004.0, 2)
    w.failed("c")  # after it was recorded: a new outage
    assert w.current is not None and w.current.start == 1004.0 and w.current.failures == 1


def test_close_records_what_is_left_an_outage_going_on_ends_not_recovered() -> None:
    clock = Clock()
    w, seen = watch(clock, settle_s=60.0)
    w.failed("a")
    clock.now += 1.0
    w.succeeded()
    w.close()  # over but not settled: recorded now, recovered
    assert [(o.end, o.recovered) for o in seen["ended"]] == [(1001.0, True)]
    w.failed("b")
    clock.now += 4.0
    w.close()  # still down when the component ends
    assert [(o.start, o.end, o.recovered) for o in seen["ended"][1:]] == [(1001.0, 1005.0, False)]
    w.close()  # nothing left
    assert len(seen["ended"]) == 2


def test_many_threads_reporting_make_one_outage() -> None:
    w, seen = watch(Clock(), settle_s=0.2)
    barrier = threading.Barrier(8)

    def wait_out() -> None:
        barrier.wait()
        for _ in range(50):
            w.failed("x")
        w.succeeded()

    threads = [threading.Thread(target=wait_out) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wait_for(lambda: seen["ended"])
    time.sleep(0.3)
    outages: list[Outage] = seen["ended"]
    assert len(outages) == 1 and outages[0].failures == 400
