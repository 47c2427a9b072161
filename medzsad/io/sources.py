"""File access for discovery and loading: plain files and members of a ``.zip`` archive.

A member of an archive is named ``<archive path>!/<member name>`` (the ``jar:`` URL convention),
so a series found in a PACS export ``.zip`` can be loaded without unpacking it.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import IO

from medzsad.errors import ArchiveError
from medzsad.io.limits import check_bytes, current_limits

__all__ = ["ARCHIVE_SEP", "split_member", "member_path", "open_binary", "disk_path", "check_member"]

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


def check_member(archive: str, info: zipfile.ZipInfo) -> None:
    """Refuse an encrypted member, or one whose declared size is over the decompression limit.

    ``zipfile`` never inflates past the declared ``file_size`` (and checks the CRC), so checking the
    declaration bounds the memory and time of reading the member.

    Raises:
        ArchiveError: The member is encrypted.
        ResourceLimitError: ``file_size`` over ``ReadLimits.max_decompressed_bytes``.
    """
    where = member_path(archive, info.filename)
    if info.flag_bits & 0x1:
        raise ArchiveError(f"{where}: the zip member is encrypted; unpack the archive with its password")
    check_bytes(
        info.file_size, current_limits().max_decompressed_bytes, where, "zip file_size", "uncompressed data"
    )


def open_binary(path: str | os.PathLike[str]) -> IO[bytes]:
    """Open a file or an archive member for reading bytes (a member is streamed, not read whole).

    Raises:
        OSError: The file or member cannot be opened (``KeyError`` of a missing member is turned
            into ``FileNotFoundError``).
        ArchiveError: A broken archive, an encrypted member or an unsupported compression method.
        ResourceLimitError: The member's declared size is over the decompression limit.
    """
    archive, member = split_member(path)
    if member is None:
        return Path(archive).open("rb")
    try:
        with zipfile.ZipFile(archive) as zf:
            info = zf.getinfo(member)
            check_member(archive, info)
            # the member keeps the archive file open after the ZipFile is closed (reference count)
            return zf.open(info)
    except KeyError as e:
        raise FileNotFoundError(f"{archive}: no member {member!r}") from e
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError, ValueError) as e:
        raise ArchiveError(f"{archive}: cannot read member {member!r} ({type(e).__name__}: {e})") from e
