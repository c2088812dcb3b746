"""Reading a JSON request body within limits: its size (413) and how deep it nests (400).

Python's ``json`` parser recurses once per nesting level, so ``[[[[...`` a thousand levels deep
raises ``RecursionError`` (a 500), and a hundred thousand can take the server down. The body is
read in chunks up to :data:`MAX_BODY_BYTES`, and its nesting is counted (outside strings) before it
is parsed, so an answer is always a 4xx naming ``(body)``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.requests import ClientDisconnect, Request

#: Largest JSON body accepted (the start form's answers are well under 1 KB).
MAX_BODY_BYTES = 64 * 1024
#: Deepest nesting of arrays and objects accepted (the form's answers are one flat object).
MAX_JSON_DEPTH = 16
#: Largest body of any request (sign-in form, CSRF forms, JSON), refused from its Content-Length.
MAX_REQUEST_BYTES = 1024 * 1024

_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")


class BodyRefused(ValueError):
    """A body refused before parsing; ``status`` is the answer's status code."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def json_depth(text: str) -> int:
    """The deepest nesting of ``[``/``{`` in JSON ``text``, strings ignored (an unterminated string
    counts its brackets: an over-count only refuses text the parser would refuse too)."""
    depth = deepest = 0
    for bracket in _BRACKET.findall(_JSON_STRING.sub("", text)):
        if bracket in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def declared_length(request: Request) -> int | None:
    """The request's Content-Length, or None when absent or not a number."""
    value = request.headers.get("content-length", "")
    return int(value) if value.isdigit() and len(value) < 20 else None


async def read_json_body(
    request: Request, max_bytes: int = MAX_BODY_BYTES, max_depth: int = MAX_JSON_DEPTH
) -> Any:
    """The request's JSON body, or :class:`BodyRefused`: 413 above ``max_bytes`` (whether declared
    or sent chunked), 400 when not UTF-8 JSON or nested deeper than ``max_depth``."""
    declared = declared_length(request)
    if declared is not None and declared > max_bytes:
        raise BodyRefused(413, f"the body is {declared} bytes long (at most {max_bytes})")
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_bytes:
                raise BodyRefused(413, f"the body is over {max_bytes} bytes long (at most {max_bytes})")
            chunks.append(chunk)
    except (RuntimeError, ClientDisconnect):  # consumed already (a form) or the client went away
        raise BodyRefused(400, "the body must be JSON (Content-Type: application/json)") from None
    try:
        text = b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError:
        raise BodyRefused(400, "the body is not UTF-8 text") from None
    depth = json_depth(text)
    if depth > max_depth:
        raise BodyRefused(400, f"the body nests {depth} levels deep (at most {max_depth})")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as error:
        raise BodyRefused(400, f"the body is not JSON ({str(error)[:200]})") from None
