"""Atomic file writes, used by every layer that writes files (reports, evaluation, training).

Each write goes to ``<name>.tmp-<pid>`` in the same folder, is fsynced, then ``os.replace``d.

A reader (or a run restarted after SIGKILL) sees either the old file, the complete new file, or
nothing; never a half-written one. A cohort run records the temporary names it creates in its
ledger and removes only those (:mod:`medzsad.cohort.runner`): a user's own ``*.tmp-*`` files stay.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, cast

import pandas as pd

from medzsad.errors import OutputError

__all__ = [
    "atomic_path",
    "ensure_dir",
    "write_bytes",
    "write_text",
    "write_json",
    "write_csv",
    "Compression",
    "gzip_bytes",
    "gzip_file",
    "fsync_dir",
]

TEMP_MARK = ".tmp-"


def fsync_dir(path: str | Path) -> None:
    """Flush a directory entry (a rename inside it) to disk; a no-op where unsupported."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def ensure_dir(path: str | Path) -> Path:
    """Create ``path`` (and its parents) if missing; returns it.

    Raises:
        OutputError: The folder cannot be created (permissions, a file in the way).
    """
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create folder {folder}: {e}; check the parent is writable") from e
    return folder


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is fsynced and renamed onto ``path``.

    Raises:
        OutputError: The folder is not writable or the rename fails (the temp file is removed).
    """
    target = Path(path)
    tmp = target.with_name(f"{target.name}{TEMP_MARK}{os.getpid()}")
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise OutputError(
            f"cannot write {target}: {e.strerror or e}; check the folder exists and is writable"
        ) from e
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write bytes atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 text atomically (LF line endings)."""
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any) -> Path:
    """Write JSON atomically (sorted keys, 2-space indent, NaN written as ``null``)."""
    text = json.dumps(_nan_to_none(obj), indent=2, sort_keys=True, allow_nan=False)
    return write_text(path, text + "\n")


def write_csv(path: str | Path, table: pd.DataFrame) -> Path:
    """Write a table as CSV atomically (no index column, LF line endings)."""
    buf = io.StringIO()
    table.to_csv(buf, index=False, lineterminator="\n")
    return write_text(path, buf.getvalue())


#: ``"fast"`` (gzip written by ISA-L, ~10x less CPU than zlib level 6 at a similar size) or a zlib
#: gzip level 0..9.
Compression = int | Literal["fast"]


def gzip_file(buf: io.BytesIO, compression: Compression = "fast") -> gzip.GzipFile:
    """A gzip writer on ``buf`` with mtime 0 and no file name (the same bytes for the same data).

    Raises:
        OutputError: ``compression`` is neither ``"fast"`` nor 0..9.
    """
    if compression == "fast":
        try:
            from isal import igzip  # ISA-L: a dependency; zlib level 1 only if its wheel is missing
        except ImportError:
            return gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=1, mtime=0)
        # isal's GzipFile subclasses gzip.GzipFile
        return cast(
            gzip.GzipFile, igzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=1, mtime=0)
        )
    if isinstance(compression, bool) or not isinstance(compression, int) or not 0 <= compression <= 9:
        raise OutputError(f"gzip compression must be 'fast' or a level 0..9, got {compression!r}")
    return gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=compression, mtime=0)


def gzip_bytes(data: bytes, compression: Compression = "fast") -> bytes:
    """Gzip with a zero timestamp and no file name, so equal inputs give byte-identical files."""
    buf = io.BytesIO()
    with gzip_file(buf, compression) as gz:
        gz.write(data)
    return buf.getvalue()


def _nan_to_none(obj: Any) -> Any:
    if isinstance(obj, float) and obj != obj:
        return None
    if isinstance(obj, dict):
        return {str(k): _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_nan_to_none(v) for v in obj]
    return obj


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Lower-case hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
