"""The whole stack on a real Docker engine: ``docker compose up --scale game=N`` as a user runs it.

``compose.yaml`` with ``compose.cpu.yaml`` (no GPU here) and ``compose.test.yaml`` (locally built
server images, nothing published on the host, a small CartPole hive), in a compose project of its
own with its own volumes, removed at the end. ``scripts/stack.sh images`` installs and starts the
engine and Compose when missing and builds the server images; the project's images are built from
their real Dockerfiles. Everything is asked from inside the stack (``tests/stack/probe.py`` in the
dashboard container): no traffic leaves the stack's network.

The tests run in order on one stack, as a user's day with it goes:
1. ``up --scale game=4``: four actors, each with its own index, and one learner train one session;
   the evaluator's return rises.
2. A graceful stop of the hive: Elasticsearch holds exactly the events written (through Kafka and
   the indexer), memory_monitoring documents arrived, the session is archived, the dashboard
   shows it; started again, the learner resumes.
3. ``--scale game=6`` while it runs: two more actors, playing the current weights.
4. ``docker kill`` of an actor (compose brings it back) and a crash of an actor and of the learner
   (the restart policy brings them back; the learner resumes from its checkpoint).
5. ``down`` then ``up``: the session continues from the volumes; nothing the indexer got is lost.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

REPO = Path(__file__).resolve().parents[2]
PROBE = (Path(__file__).with_name("probe.py")).read_text()
SESSION = "stack-test"  # CONFIG_SESSION_ID of tests/stack/stack.env
ADMIN = "admin"
pytestmark = [pytest.mark.stack, pytest.mark.slow, pytest.mark.timeout(3600)]

T = TypeVar("T")


class Stack:
    """One compose project of the stack test (its own name, containers, network and volumes)."""

    def __init__(self, project: str) -> None:
        self.project = project
        self.files = ["compose.yaml", "compose.cpu.yaml", "compose.test.yaml"]
        self.history: list[str] = []
        self.kills: list[
            float
        ] = []  # when a process was killed with SIGKILL (its last events may miss Kafka)

    def compose(
        self, *args: str, timeout: float = 900, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        command = ["docker", "compose", "-p", self.project, "--env-file", "tests/stack/stack.env"]
        for name in self.files:
            command += ["-f", name]
        command += list(args)
        self.history.append(" ".join(args))
        done = subprocess.run(
            command, cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False,
            env={"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "HOME": str(Path.home())},
        )  # fmt: skip
        if check and done.returncode != 0:
            pytest.fail(
                f"docker compose {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
            )
        return done

    def probe(self, *args: str) -> Any:
        """Run tests/stack/probe.py in the dashboard container; its JSON answer.

        The dashboard's own users may only raise the stop flag (Redis) and read (Elasticsearch): the
        probe reads the board and the leases as the operators' Redis user and refreshes the indices
        as the indexers' user, whose URLs it gets through the environment (names only on argv)."""
        settings = _stack_settings()
        urls = {
            "PROBE_REDIS_URL": f"redis://{settings['REDIS_USER']}:{settings['REDIS_PASSWORD']}@redis:6379/0",
            "PROBE_ELASTICSEARCH_URL": (
                f"http://{settings['HIVERL_ES_USER']}:{settings['HIVERL_ES_PASSWORD']}@elasticsearch:9200"
            ),
        }
        done = subprocess.run(
            ["docker", "exec", "-i", *(f"--env={name}" for name in urls), self.container("dashboard"),
             "python", "-", *args],
            input=PROBE, capture_output=True, text=True, timeout=180, check=False, env={**os.environ, **urls},
        )  # fmt: skip
        if done.returncode != 0:
            raise AssertionError(f"probe {args} failed:\n{done.stderr[-3000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    def container(self, service: str, number: int = 1) -> str:
        return f"{self.project}-{service}-{number}"

    def inspect(self, container: str, template: str) -> str:
        done = subprocess.run(
            ["docker", "inspect", "-f", template, container], capture_output=True, text=True, check=True
        )
        return done.stdout.strip()

    def crash(self, container: str, pattern: str) -> None:
        """kill -9 the container's main process (as a crash would): the restart policy applies.

        The container stops with it, and so does this ``docker exec`` (status 137): not checked."""
        self.kills.append(time.time())
        subprocess.run(
            ["docker", "exec", container, "python", "-c",
             "import os, signal, sys\n"
             "for pid in os.listdir('/proc'):\n"
             "    if pid.isdigit() and int(pid) != os.getpid():\n"
             "        try: cmd = open(f'/proc/{pid}/cmdline', 'rb').read().replace(b'\\0', b' ').decode()\n"
             "        except OSError: continue\n"
             f"        if {pattern!r} in cmd and 'python' in cmd: os.kill(int(pid), signal.SIGKILL)\n"],
            check=False, capture_output=True, timeout=60,
        )  # fmt: skip

    def logs(self) -> str:
        return self.compose("logs", "--no-color", "--tail", "60", check=False, timeout=120).stdout


def wait_for(what: str, check: Callable[[], T | None], timeout_s: float, every_s: float = 5.0) -> T:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` (and the last value)."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while True:
        try:
            last = check()
        except AssertionError as error:  # the probe's container may be restarting
            last = error
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout_s:.0f} s; last: {str(last)[:3000]}")
        time.sleep(every_s)


def _stack_settings() -> dict[str, str]:
    """The variables of tests/stack/stack.env."""
    lines = (REPO / "tests" / "stack" / "stack.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if re.match(r"[A-Z][A-Z0-9_]*=", line))


def _image_ids() -> set[str]:
    """Ids of the project's images as the stack test tags them (tests/stack/stack.env)."""
    tag = next(
        line.split("=", 1)[1].strip()
        for line in (REPO / "tests" / "stack" / "stack.env").read_text().splitlines()
        if line.startswith("HIVERL_IMAGE_TAG=")
    )
    ids = set()
    for name in ("hiverl-game", "hiverl-monitor", "hiverl-dashboard"):
        done = subprocess.run(
            ["docker", "image", "inspect", "-f", "{{.Id}}", f"{name}:{tag}"], capture_output=True, text=True
        )
        if done.returncode == 0:
            ids.add(done.stdout.strip())
    return ids


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    # The engine, Compose and the server images: installed and built when missing, else reused.
    setup = subprocess.run(
        ["bash", "scripts/stack.sh", "images"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=2400,
        check=False,
    )
    if setup.returncode != 0:
        pytest.fail(f"the stack cannot run on this machine:\n{setup.stderr[-4000:]}")
    stack = Stack(f"hiverl-stack-{uuid.uuid4().hex[:8]}")
    before = _image_ids()
    stack.compose("build", timeout=2400)
    # The images this build replaced (gigabytes each for the game's) would pile up, untagged.
    replaced = before - _image_ids()
    if replaced:
        subprocess.run(["docker", "rmi", *sorted(replaced)], capture_output=True, check=False)
    try:
        yield stack
    finally:
        print(stack.logs()[-20000:])
        stack.compose("down", "-v", "--remove-orphans", "--timeout", "30", check=False, timeout=600)


def _actor_indices(events: dict[str, Any]) -> set[int]:
    return {int(i) for i, a in events["actors"].items() if a["episodes"] > 0}


def test_up_scale_4_trains_one_session_with_four_actors_and_one_learner(stack: Stack) -> None:
    stack.compose("up", "-d", "--scale", "game=4", timeout=1200)

    def learning() -> dict[str, Any] | None:
        events = stack.probe("events", SESSION)
        evals = [e["eval_return"] for e in events["evals"]]
        if (
            _actor_indices(events) == {0, 1, 2, 3}
            and len(evals) >= 3
            and max(evals[1:]) >= max(100.0, evals[0] + 50)
        ):
            return events
        return None

    events = wait_for("4 actors playing and the eval return rising to 100", learning, 900)
    # Each actor holds its own index, in its own container (host name), for the whole session.
    hosts = [tuple(a["hosts"]) for a in events["actors"].values()]
    assert all(len(h) == 1 for h in hosts) and len(set(hosts)) == 4, hosts
    board = stack.probe("board", SESSION)
    assert sorted(board["leases"]) == ["0", "1", "2", "3"], board
    assert len(set(board["leases"].values())) == 4, board
    # One learner trains on what all of them insert.
    assert int(board["board"]["updates"]) > 0 and int(board["board"]["inserts"]) > 0, board
    assert {e["host"] for e in events["learner"]} and len({e["host"] for e in events["learner"]}) == 1


def test_events_indexed_memory_monitored_session_archived_and_shown(stack: Stack) -> None:
    # A graceful stop of everything that writes events: each flushes its telemetry and the learner
    # checkpoints and archives the session.
    before = stack.probe("board", SESSION)
    stack.compose("stop", "game", "evaluator", "learner", "monitor", timeout=600)

    def all_indexed() -> dict[str, Any] | None:
        es = stack.probe("es", SESSION)
        return es if es["counts"]["training_log"] == es["written"] and not es["missing"] else None

    es = wait_for("every event written indexed in Elasticsearch", all_indexed, 180)
    assert es["unexpected"] == 0 and es["distinct_indexed"] == es["written"], es
    assert es["counts"]["memory_monitoring"] > 0, es

    archived = wait_for("the session in the archive", lambda: stack.probe("archive", SESSION), 120)
    assert archived["status"] == "stopped" and archived["env_id"] == "CartPole-v1", archived
    assert archived["num_workers"] == 4 and archived["totals"]["env_steps"] > 0, archived
    assert archived["totals"]["updates"] >= int(before["board"]["updates"]), archived
    assert archived["results"]["best_return"] >= 100, archived

    page = stack.probe("dashboard", SESSION, ADMIN)
    assert page["login"] == 200 and page["signed_in"] == 303, page
    assert page["live"] == 200 and page["sessions_page"] == 200, page
    assert page["archived"] and page["archived_status"] == 200, page

    # Started again, the learner resumes from its checkpoint: updates go on from there.
    stack.compose("start", "learner", "evaluator", "monitor", "game", timeout=600)
    stopped_at = int(before["board"]["updates"])

    def resumed() -> dict[str, Any] | None:
        events = stack.probe("events", SESSION)
        latest = events["learner"][-1] if events["learner"] else {}
        return events if latest.get("updates", 0) > stopped_at + 100 else None

    wait_for("the learner training again from its checkpoint", resumed, 300)
    page = stack.probe("dashboard", SESSION, ADMIN)
    assert SESSION in page["running"], page


def test_scaling_to_6_adds_actors_that_play_the_current_weights(stack: Stack) -> None:
    version = int(stack.probe("board", SESSION)["board"]["version"])
    stack.compose("up", "-d", "--no-recreate", "--scale", "game=6", timeout=600)

    def six() -> dict[str, Any] | None:
        events = stack.probe("events", SESSION)
        return events if {4, 5} <= _actor_indices(events) else None

    events = wait_for("actors 4 and 5 playing", six, 300)
    for index in ("4", "5"):
        first_weights = events["actors"][index]["weights"][0][1]
        assert first_weights >= version, (index, first_weights, version)
    board = stack.probe("board", SESSION)
    assert sorted(board["leases"], key=int) == ["0", "1", "2", "3", "4", "5"], board


def test_killed_actor_and_crashed_learner_recover(stack: Stack) -> None:
    # docker kill is a deliberate stop to Docker (no restart policy): `up` brings the replica back
    # (same container, same host name, same index).
    killed = stack.container("game", 2)
    killed_at = time.time()
    stack.kills.append(killed_at)
    subprocess.run(["docker", "kill", killed], check=True, capture_output=True)
    assert stack.inspect(killed, "{{.State.Running}}") == "false"
    stack.compose("up", "-d", "--no-recreate", "--scale", "game=6", timeout=600)
    host = stack.inspect(killed, "{{.Config.Hostname}}")

    def back() -> dict[str, Any] | None:
        events = stack.probe("events", SESSION)
        mine = [a for a in events["actors"].values() if host in a["hosts"]]
        return events if mine and mine[0]["last_time"] > killed_at + 5 else None

    wait_for("the killed actor playing again", back, 300)

    # A crash (kill -9 of the process): the restart policy restarts the container.
    crashed = stack.container("game", 3)
    stack.crash(crashed, "hiverl actor")
    wait_for(
        "the crashed actor restarted", lambda: int(stack.inspect(crashed, "{{.RestartCount}}")) >= 1, 120, 2
    )

    learner = stack.container("learner")
    checkpoints_before = int(stack.probe("board", SESSION)["board"]["updates"])
    crashed_at = time.time()
    stack.crash(learner, "hiverl learner")
    wait_for("the learner restarted", lambda: int(stack.inspect(learner, "{{.RestartCount}}")) >= 1, 120, 2)

    def learner_resumed() -> dict[str, Any] | None:
        events = stack.probe("events", SESSION)
        after = [e for e in events["learner"] if e["event_time"] > crashed_at]
        return {"after": after} if len(after) >= 3 else None

    after = wait_for("the restarted learner training", learner_resumed, 300)["after"]
    # Resumed from its checkpoint (every 500 updates), not from scratch.
    assert after[0]["updates"] >= checkpoints_before - 500, (after[0], checkpoints_before)
    assert after[-1]["updates"] > after[0]["updates"]
    starts = [
        line
        for line in stack.compose("logs", "--no-color", "learner").stdout.splitlines()
        if "learner started" in line
    ]
    assert starts and "'resumed_from': None" not in starts[-1], starts


def test_down_then_up_continues_the_session_with_nothing_lost(stack: Stack) -> None:
    before_board = stack.probe("board", SESSION)
    stack.compose("down", "--timeout", "60", timeout=900)  # containers gone, volumes kept
    down_at = time.time()
    stack.compose("up", "-d", "--scale", "game=6", timeout=1200)

    def continued() -> dict[str, Any] | None:
        events = stack.probe("events", SESSION)
        after = [e for e in events["learner"] if e["event_time"] > down_at]
        playing = [i for i, a in events["actors"].items() if a["last_time"] > down_at]
        return events if len(after) >= 3 and len(playing) == 6 else None

    events = wait_for("the session continuing after down and up", continued, 600)
    after = [e for e in events["learner"] if e["event_time"] > down_at]
    assert after[0]["updates"] >= int(before_board["board"]["updates"]) - 500, (after[0], before_board)
    assert after[0]["weights_version"] >= int(before_board["board"]["version"]) - 50, (after[0], before_board)
    # The replay memory survived in Redis' volume: the inserts counter went on.
    board = stack.probe("board", SESSION)
    assert int(board["board"]["inserts"]) >= int(before_board["board"]["inserts"]), (board, before_board)

    # A last graceful stop; then Elasticsearch holds every event written except what a process
    # killed with SIGKILL had not handed to Kafka yet (its last second), never one twice.
    stack.compose("stop", "game", "evaluator", "learner", "monitor", timeout=600)

    def settled() -> dict[str, Any] | None:
        es = stack.probe("es", SESSION)
        return (
            es if es["counts"]["training_log"] == es["distinct_indexed"] and len(es["missing"]) < 50 else None
        )

    es = wait_for("Elasticsearch caught up", settled, 180)
    assert es["unexpected"] == 0, es
    assert es["distinct_indexed"] + len(es["missing"]) == es["written"], es
    for worker_id, event_time in es["missing"]:
        assert any(0 <= kill - event_time < 5 for kill in stack.kills), (worker_id, event_time, stack.kills)
    archived = stack.probe("archive", SESSION)
    assert archived["status"] == "stopped" and archived["num_workers"] == 6, archived
