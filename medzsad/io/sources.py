"""File access for discovery and loading: plain files and members of a ``.zip`` archive.

A member of an archive is named ``<archive path>!/<member name>`` (the ``jar:`` URL convention),
so a series found in a PACS export ``.zip`` can be loaded without unpacking it.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path
from typing import IO

__all__ = ["ARCHIVE_SEP", "split_member", "member_path", "open_binary", "disk_path"]

ARCHIVE_SEP = "!/"


def member_path(archive: str | os.PathLike[str], member: str) -> str:
    """The name of ``member`` inside ``archive``."""
    return f"{os.fspath(archive)}{ARCHIVE_SEP}{member}"


def split_member(path: str | os.PathLike[str]) -> tuple[str, str | None]:
    """``(archive, member)`` for an archive member name, else ``(path, None)``.

    Only a prefix that is an existing ``.zip`` file counts as an archive, so a folder whose name
    contains ``!/`` is still read as a plain path.
    """
    text = os.fspath(path)
    idx = text.find(ARCHIVE_SEP)
    while idx != -1:
        head = text[:idx]
        if head.lower().endswith(".zip") and os.path.isfile(head):
            return head, text[idx + len(ARCHIVE_SEP) :]
        idx = text.find(ARCHIVE_SEP, idx + 1)
    return text, None


def disk_path(path: str | os.PathLike[str]) -> str:
    """The file on disk that holds ``path`` (the archive for an archive member)."""
    return split_member(path)[0]


def open_binary(path: str | os.PathLike[str]) -> IO[bytes]:
    """Open a file or an archive member for reading bytes.

    Raises:
        OSError: The file or member cannot be opened (``KeyError`` of a missing member is turned
            into ``FileNotFoundError``; a broken archive into ``OSError``).
    """
    archive, member = split_member(path)
    if member is None:
        return Path(archive).open("rb")
    try:
        with zipfile.ZipFile(archive) as zf:
            return io.BytesIO(zf.read(member))
    except KeyError as e:
        raise FileNotFoundError(f"{archive}: no member {member!r}") from e
    except zipfile.BadZipFile as e:
        raise OSError(f"{archive}: not a readable zip archive ({e})") from e
