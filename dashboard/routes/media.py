"""Recorded episodes: ``/watch``, ``/api/videos`` and the files, ``/media/{session}/{file}``."""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, Response

from dashboard.deps import DashDep, ViewerDep, field_errors, page

router = APIRouter()

VIDEO_SUFFIXES = (".mp4", ".webm", ".gif")
mimetypes.add_type("video/mp4", ".mp4")
mimetypes.add_type("video/webm", ".webm")
#: Longest media path part accepted (file names are at most 255 bytes on common file systems).
MAX_PATH_CHARS = 1024


@router.get("/watch", include_in_schema=False)
def watch_page(request: Request, dash: DashDep) -> Response:
    return page(request, dash, "watch.html")


def videos_of(session_dir: Path, session_id: str) -> list[dict[str, Any]]:
    found = []
    for path in sorted(session_dir.rglob("*")):
        if path.suffix.lower() in VIDEO_SUFFIXES and path.is_file():
            stat = path.stat()
            relative = path.relative_to(session_dir).as_posix()
            found.append(
                {
                    "name": relative,
                    "url": f"/media/{quote(session_id)}/{quote(relative)}",
                    "kind": "image" if path.suffix.lower() == ".gif" else "video",
                    "bytes": stat.st_size,
                    "modified_at": stat.st_mtime,
                }
            )
    return found


@router.get("/api/videos")
def list_videos(viewer: ViewerDep, dash: DashDep) -> dict[str, Any]:
    """Recorded episodes (``hiverl evaluate --video``) per session, newest first."""
    sessions: dict[str, list[dict[str, Any]]] = {}
    for root in dash.run_dirs:
        if not root.is_dir():
            continue
        for session_dir in root.iterdir():
            if session_dir.is_dir():
                files = videos_of(session_dir, session_dir.name)
                if files:
                    sessions.setdefault(session_dir.name, []).extend(files)
    newest_first = {sid: sorted(files, key=lambda f: -f["modified_at"]) for sid, files in sessions.items()}
    order = sorted(newest_first, key=lambda sid: -newest_first[sid][0]["modified_at"])
    listing = [{"session_id": sid, "videos": newest_first[sid]} for sid in order]
    return {"sessions": listing, "folders": [str(root) for root in dash.run_dirs]}


def _path_error(name: str, value: str) -> str | None:
    if len(value) > MAX_PATH_CHARS:
        return f"{name} is {len(value)} characters long (at most {MAX_PATH_CHARS})"
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        return f"{name}={value!r} contains a control character (NUL, newline...)"
    return None


@router.get("/media/{session_id}/{relative:path}", include_in_schema=False)
def media(session_id: str, relative: str, viewer: ViewerDep, dash: DashDep) -> Response:
    given = (("session_id", session_id), ("relative", relative))
    errors = [(name, error) for name, value in given if (error := _path_error(name, value))]
    if errors:
        return field_errors(*errors)
    for root in dash.run_dirs:
        try:
            base = (root / session_id).resolve()
            candidate = (base / relative).resolve()
            found = (
                candidate.is_relative_to(base)
                and base.parent == root.resolve()
                and candidate.suffix.lower() in VIDEO_SUFFIXES
                and candidate.is_file()
            )
        except OSError:  # e.g. a name too long for the file system: no such recording either
            continue
        if found:
            return FileResponse(candidate)
    raise HTTPException(404, "no such recording")
