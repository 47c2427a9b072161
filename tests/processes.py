"""Processes of a test's own session, read from /proc (Linux): what a run left behind."""

from __future__ import annotations

from pathlib import Path


def session_processes(sid: int) -> dict[int, str]:
    """``pid -> state`` of the live processes of session ``sid`` (zombies left out)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        state, _ppid, _pgrp, session = stat.rsplit(")", 1)[1].split()[:4]
        if int(session) == sid and state not in ("Z", "X"):
            found[int(entry.name)] = state
    return found
