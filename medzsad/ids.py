"""Study ids: file-system-safe folder names and hashed ids for logs (no PHI in logs)."""

from __future__ import annotations

import hashlib
import re

__all__ = ["safe_study_id", "hashed_id", "unique_safe_ids", "pseudonym_study_id"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
MAX_LEN = 64


def hashed_id(study_id: str) -> str:
    """A short stable pseudonym of a study id for logs: ``s-`` + 10 hex digits of its sha256."""
    return "s-" + hashlib.sha256(study_id.encode("utf-8")).hexdigest()[:10]


def pseudonym_study_id(folder_name: str, study_uid: str) -> str:
    """The id of one of several DICOM studies found in one folder: ``<folder>-<10 hex of sha256(UID)>``.

    The StudyInstanceUID is an identifier (DICOM PS3.15 de-identification replaces it); it is never
    used as a visible study id, folder name or ledger key.
    """
    return f"{folder_name}-{hashlib.sha256(study_uid.encode('utf-8')).hexdigest()[:10]}"


def safe_study_id(study_id: str) -> str:
    """A folder name for a study id.

    Keeps ``[A-Za-z0-9._-]``, replaces other runs of characters with ``_``, removes leading dots,
    turns ``..`` into ``_``, and cuts to 64 characters. When anything was changed, a short hash of
    the original id is appended so that two different ids cannot end up in the same folder.
    """
    s = _UNSAFE.sub("_", study_id)
    s = s.replace("..", "_").lstrip(".")
    changed = s != study_id or len(s) > MAX_LEN
    if not s:
        s = "study"
        changed = True
    if changed:
        s = s[: MAX_LEN - 9] + "-" + hashlib.sha256(study_id.encode("utf-8")).hexdigest()[:8]
    return s


def unique_safe_ids(study_ids: list[str]) -> dict[str, str]:
    """Safe ids for many studies; ids equal up to letter case also get a hash (case-insensitive disks).

    Raises:
        ValueError: The same study id appears twice.
    """
    seen: set[str] = set()
    dup = sorted({s for s in study_ids if s in seen or seen.add(s)})  # type: ignore[func-returns-value]
    if dup:
        raise ValueError(f"duplicate study ids: {dup[:5]}")
    out = {sid: safe_study_id(sid) for sid in study_ids}
    folded: dict[str, list[str]] = {}
    for sid, safe in out.items():
        folded.setdefault(safe.lower(), []).append(sid)
    for group in folded.values():
        if len(group) > 1:
            for sid in group:
                h = hashlib.sha256(sid.encode("utf-8")).hexdigest()[:8]
                out[sid] = out[sid][: MAX_LEN - 9] + "-" + h
    return out
