"""One status vocabulary: today's words, older trainers' words, and the one session id format."""

from __future__ import annotations

import re

import pytest

from hiverl.archive.document import validate_document
from hiverl.session import SESSION_ID_PATTERN, new_session_id
from hiverl.status import TERMINAL_STATUSES, RoleState, SessionStatus


@pytest.mark.parametrize(
    ("word", "status"),
    [
        ("running", SessionStatus.RUNNING),
        ("finished", SessionStatus.FINISHED),
        ("stopped", SessionStatus.STOPPED),
        ("crashed", SessionStatus.CRASHED),
        ("completed", SessionStatus.FINISHED),  # an older trainer's words
        ("solved", SessionStatus.FINISHED),
        ("failed", SessionStatus.CRASHED),
    ],
)
def test_every_word_reads_as_one_status(word: str, status: SessionStatus) -> None:
    assert SessionStatus.parse(word) is status
    assert word in SessionStatus.words()


def test_unknown_words_are_refused_and_only_running_is_not_final() -> None:
    with pytest.raises(ValueError, match="status='paused' is not one of running, finished"):
        SessionStatus.parse("paused")
    assert TERMINAL_STATUSES == (SessionStatus.FINISHED, SessionStatus.STOPPED, SessionStatus.CRASHED)
    assert [state for state in RoleState if state.ended] == [RoleState.DONE, RoleState.FAILED]


def test_an_archived_document_with_an_older_status_loads_in_todays_words() -> None:
    now = "2026-01-01T00:00:00+00:00"
    document = validate_document(
        {"session_id": "old-1", "status": "failed", "started_at": now, "ended_at": now,
         "heartbeat_at": now, "updated_at": now, "env_id": "CartPole-v1"}
    )  # fmt: skip
    assert document.status is SessionStatus.CRASHED
    assert document.model_dump(mode="json")["status"] == "crashed"


def test_session_ids_have_one_format() -> None:
    made = new_session_id("ALE/Pong-v5")
    assert re.fullmatch(r"ale-pong-v5-\d{8}-\d{6}-[0-9a-f]{6}", made), made
    assert re.fullmatch(SESSION_ID_PATTERN, new_session_id("x" * 200))
    assert new_session_id().startswith("session-")
