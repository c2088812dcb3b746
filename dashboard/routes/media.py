"""Recorded episodes: ``/watch``, ``/api/videos`` and the files, ``/media/{session}/{file}``."""

from __future__ import annotations

import mimetypes
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, Response

from dashboard.deps import DashDep, ViewerDep, field_errors, page
from hiverl.config import quoted

router = APIRouter()

VIDEO_SUFFIXES = (".mp4", ".webm", ".gif")
mimetypes.add_type("video/mp4", ".mp4")
mimetypes.add_type("video/webm", ".webm")
#: Longest media path part accepted (file names are at most 255 bytes on common file systems).
MAX_PATH_CHARS = 1024


@router.get("/watch", include_in_schema=False)
def watch_page(request: Request, dash: DashDep) -> Response:
    return page(request, dash, "watch.html")


def _inside(path: Path, base: Path) -> Path | None:
    """The file ``path`` resolves to when that is a file inside ``base`` (resolved), else None."""
    try:
        target = path.resolve()
        return target if target.is_relative_to(base) and target.is_file() else None
    except OSError:  # a link loop, a name too long: not a recording
        return None


def videos_of(session_dir: Path, session_id: str) -> list[dict[str, Any]]:
    """The recordings ``/media`` serves from ``session_dir``: the walk follows no link to a folder,
    and a file that resolves outside the folder (a link out of it) is not listed."""
    found = []
    base = session_dir.resolve()
    paths = (Path(folder) / name for folder, _, names in os.walk(session_dir) for name in names)
    for path in sorted(paths):
        target = _inside(path, base) if path.suffix.lower() in VIDEO_SUFFIXES else None
        if target is not None:
            stat = target.stat()
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
        resolved_root = root.resolve()
        for session_dir in root.iterdir():
            # a session folder that is a link elsewhere is not served (/media), so not listed
            if session_dir.is_dir() and session_dir.resolve().parent == resolved_root:
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
        return f"{name}={quoted(value)} contains a control character (NUL, newline...)"
    return None


@router.get("/media/{session_id}/{relative:path}", include_in_schema=False)
def media(request: Request, session_id: str, relative: str, viewer: ViewerDep, dash: DashDep) -> Response:
    # The parts as sent: the route's pattern drops a final newline from ``relative``.
    session_id, _, relative = request.scope["path"].split("/media/", 1)[-1].partition("/")
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
