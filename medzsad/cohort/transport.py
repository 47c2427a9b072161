"""Objects between the main process and its workers: a pipe for the message, shared memory for arrays.

A study crosses process boundaries twice (a loaded study to the main process, about 1.3 GB for a
512x512x300 CT at 518 px; a scored study to a writer, about 0.7 GB). Pickled through a pipe, each
byte is copied into the kernel and out again in 64 KiB reads: ~2 CPU s per study in the main
process, which is serial and so caps the whole pipeline. Here an object is pickled with protocol 5;
its out-of-band buffers (NumPy arrays) of at least :data:`SHARED_MIN_BYTES` are copied once into a
file in ``/dev/shm`` and the receiver maps that file (no copy) and unlinks it at once, so the memory
is freed when the last array using it is. Smaller buffers, and every buffer when ``/dev/shm`` is
missing or full (checked with ``posix_fallocate`` before writing, so a small container ``/dev/shm``
gives a pipe transfer, not a ``SIGBUS``), go through the pipe.

Segment names start with the sending pool's prefix ``medzsad-shm-<owner pid>-<token>``: a pool
removes what is left of its own segments when it closes (a worker that crashed mid-send), and
:func:`sweep_stale` removes those of owners that no longer run (a run killed with ``kill -9``).
"""

from __future__ import annotations

import contextlib
import itertools
import mmap
import os
import pickle
import secrets
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

__all__ = ["SHARED_MIN_BYTES", "new_prefix", "send", "recv", "remove_segments", "sweep_stale"]

#: Buffers at least this large go through shared memory.
SHARED_MIN_BYTES = 1 << 20

_ROOT = "medzsad-shm-"
_counter = itertools.count()


def shm_dir() -> Path | None:
    """``/dev/shm`` when it is a writable directory (Linux), else ``None`` (pipe only)."""
    d = Path("/dev/shm")
    return d if d.is_dir() and os.access(d, os.W_OK) else None


def new_prefix() -> str:
    """A fresh segment-name prefix for one pool, carrying this process's pid."""
    return f"{_ROOT}{os.getpid()}-{secrets.token_hex(4)}"


def _to_shared(raw: memoryview, prefix: str) -> str | None:
    """Copy ``raw`` into a new shared-memory file; its path, or ``None`` when that is not possible."""
    d = shm_dir()
    if d is None:
        return None
    path = str(d / f"{prefix}-{os.getpid()}-{next(_counter)}")
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    except OSError:
        return None
    try:
        os.posix_fallocate(fd, 0, raw.nbytes)  # ENOSPC now rather than SIGBUS while copying
        with mmap.mmap(fd, raw.nbytes) as mm:
            mm[:] = raw.cast("B")
    except (OSError, ValueError):
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(path)
        return None
    os.close(fd)
    return path


def _from_shared(path: str, nbytes: int) -> mmap.mmap:
    """Map a segment written by :func:`_to_shared` and unlink its name (the mapping stays)."""
    fd = os.open(path, os.O_RDWR)
    try:
        return mmap.mmap(fd, nbytes)
    finally:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(path)


def send(conn: Connection, obj: object, prefix: str | None) -> None:
    """Send ``obj``: large arrays through shared memory named with ``prefix`` (``None``: pipe only)."""
    buffers: list[pickle.PickleBuffer] = []
    head = pickle.dumps(obj, protocol=5, buffer_callback=buffers.append)
    raws = [b.raw() for b in buffers]
    refs: list[tuple[int, str | None]] = []
    for r in raws:
        path = _to_shared(r, prefix) if prefix is not None and r.nbytes >= SHARED_MIN_BYTES else None
        refs.append((r.nbytes, path))
    try:
        conn.send_bytes(pickle.dumps((head, refs)))
        for r, (_n, path) in zip(raws, refs):
            if path is None:
                conn.send_bytes(r)
    except BaseException:
        for _n, path in refs:  # never received: nobody else will remove them
            if path is not None:
                with contextlib.suppress(OSError):
                    os.unlink(path)
        raise


def recv(conn: Connection) -> Any:
    """The object :func:`send` sent; arrays are writable (mapped segments or received buffers)."""
    head, refs = pickle.loads(conn.recv_bytes())
    buffers: list[Any] = []
    for n, path in refs:
        if path is not None:
            buffers.append(_from_shared(path, n))
            continue
        b = bytearray(n)
        if n:
            conn.recv_bytes_into(b)
        else:
            conn.recv_bytes()
        buffers.append(b)
    return pickle.loads(head, buffers=buffers)


def remove_segments(prefix: str) -> int:
    """Unlink every segment whose name starts with ``prefix``; how many were removed."""
    d = shm_dir()
    if d is None:
        return 0
    n = 0
    for p in d.glob(f"{prefix}-*"):
        with contextlib.suppress(OSError):
            p.unlink()
            n += 1
    return n


def sweep_stale() -> int:
    """Unlink segments whose owner process is gone (a run killed before it could clean up)."""
    d = shm_dir()
    if d is None or not Path("/proc/self").exists():  # liveness is read from /proc
        return 0
    n = 0
    for p in d.glob(f"{_ROOT}*"):
        pid = p.name[len(_ROOT) :].split("-", 1)[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            with contextlib.suppress(OSError):
                p.unlink()
                n += 1
    return n
