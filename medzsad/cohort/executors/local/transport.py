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

The main process passes studies on: a volume it received from a loader goes on to a writer
unchanged. It receives with ``keep_names=True``: the segment's name stays while the mapping lives,
and sending an array that is exactly such a segment (or one made by :func:`shared_empty`, as the
study's maps are) gives the receiver a new hard link to the same file instead of a copy. The rule
of every zero-copy channel applies: an array must not be modified after it was sent.
:func:`discard` frees part of such a segment once it will not be read again (a study's model
input, batch by batch as it is scored).

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
import weakref
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "SHARED_MIN_BYTES",
    "new_prefix",
    "send",
    "recv",
    "shared_empty",
    "set_process_prefix",
    "process_prefix",
    "remove_segments",
    "sweep_stale",
    "discard",
]

#: Buffers at least this large go through shared memory.
SHARED_MIN_BYTES = 1 << 20

_ROOT = "medzsad-shm-"
_counter = itertools.count()


class _Segment(mmap.mmap):
    """A mapped segment whose name is kept while it is mapped (so that it can be forwarded)."""


#: Segments of this process that can be forwarded (or freed in parts, :func:`discard`):
#: start address -> (path, bytes, the mapping).
_forwardable: dict[int, tuple[str, int, weakref.ref[_Segment]]] = {}


def _address(buf: Any) -> int:
    return int(np.frombuffer(buf, dtype=np.uint8).ctypes.data)


def _forget(address: int, path: str) -> None:
    _forwardable.pop(address, None)
    with contextlib.suppress(OSError):
        os.unlink(path)


def _keep(seg: _Segment, path: str, nbytes: int) -> None:
    address = _address(seg)
    _forwardable[address] = (path, nbytes, weakref.ref(seg))
    weakref.finalize(seg, _forget, address, path)


def shm_dir() -> Path | None:
    """``/dev/shm`` when it is a writable directory (Linux), else ``None`` (pipe only)."""
    d = Path("/dev/shm")
    return d if d.is_dir() and os.access(d, os.W_OK) else None


_process_prefix: str | None = None


def set_process_prefix(prefix: str | None) -> None:
    """The prefix a worker process allocates its shared arrays with (:func:`process_prefix`)."""
    global _process_prefix
    _process_prefix = prefix


def process_prefix() -> str | None:
    """This worker process's pool prefix (``None`` in the main process: nothing to send)."""
    return _process_prefix


def new_prefix() -> str:
    """A fresh segment-name prefix for one pool, carrying this process's pid."""
    return f"{_ROOT}{os.getpid()}-{secrets.token_hex(4)}"


def _new_path(prefix: str) -> str | None:
    d = shm_dir()
    return None if d is None else str(d / f"{prefix}-{os.getpid()}-{next(_counter)}")


def _create(prefix: str, nbytes: int) -> tuple[str, _Segment] | None:
    """A new segment of ``nbytes`` mapped read-write, or ``None`` (no /dev/shm, or it is full)."""
    path = _new_path(prefix)
    if path is None:
        return None
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    except OSError:
        return None
    try:
        os.posix_fallocate(fd, 0, nbytes)  # ENOSPC now rather than SIGBUS while writing
        return path, _Segment(fd, nbytes)
    except (OSError, ValueError):
        with contextlib.suppress(OSError):
            os.unlink(path)
        return None
    finally:
        os.close(fd)


def _to_shared(raw: memoryview, prefix: str) -> str | None:
    """A segment holding ``raw``: a hard link when ``raw`` is a kept segment, else a copy."""
    kept = _forwardable.get(_address(raw))
    if kept is not None and kept[1] == raw.nbytes:
        path = _new_path(prefix)
        if path is not None:
            with contextlib.suppress(OSError):
                os.link(kept[0], path)
                return path
    made = _create(prefix, raw.nbytes)
    if made is None:
        return None
    path, seg = made
    with seg:
        seg[:] = raw.cast("B")
    return path


def _from_shared(path: str, nbytes: int, keep_name: bool) -> _Segment:
    """Map a segment; its name is unlinked now, or when the mapping goes (``keep_name``)."""
    fd = os.open(path, os.O_RDWR)
    try:
        seg = _Segment(fd, nbytes)
    finally:
        os.close(fd)
        if not keep_name:
            with contextlib.suppress(OSError):
                os.unlink(path)
    if keep_name:
        _keep(seg, path, nbytes)
    return seg


def shared_empty(shape: tuple[int, ...], dtype: Any, prefix: str | None) -> np.ndarray | None:
    """An uninitialised array in a new segment that :func:`send` forwards without a copy.

    ``None`` when ``prefix`` is ``None`` or the array is small, or without a usable /dev/shm.
    """
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    if prefix is None or nbytes < SHARED_MIN_BYTES:
        return None
    made = _create(prefix, nbytes)
    if made is None:
        return None
    path, seg = made
    _keep(seg, path, nbytes)
    return np.frombuffer(seg, dtype=dtype).reshape(shape)


def discard(arr: np.ndarray) -> int:
    """Free the whole memory pages inside ``arr``, a part of a shared segment of this process.

    The segment is one received with ``keep_names`` or made by :func:`shared_empty`; its pages are
    freed for every process that maps it. For data that is never read again (a study's model
    input once scored): those bytes read as zeros afterwards. Anything else (a private array, a
    strided view, less than a page) is left as it is.

    Returns:
        The bytes freed.
    """
    remove = getattr(mmap, "MADV_REMOVE", None)  # Linux
    if remove is None or arr.nbytes == 0 or not arr.flags.c_contiguous:
        return 0
    start = int(arr.ctypes.data)
    end = start + arr.nbytes
    for address, (_path, nbytes, ref) in list(_forwardable.items()):  # a finalizer may pop one
        seg = ref()
        if seg is None or not address <= start < end <= address + nbytes:
            continue
        lo = -(-(start - address) // mmap.PAGESIZE) * mmap.PAGESIZE
        hi = (end - address) // mmap.PAGESIZE * mmap.PAGESIZE
        if hi <= lo:
            return 0
        try:
            seg.madvise(remove, lo, hi - lo)  # punches a hole in the /dev/shm file: the memory is freed
        except OSError:
            return 0
        return hi - lo
    return 0


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


def recv(conn: Connection, keep_names: bool = False) -> Any:
    """The object :func:`send` sent; arrays are writable (mapped segments or received buffers).

    ``keep_names``: keep each segment's name while it is mapped, so that sending one of these
    arrays on links the segment instead of copying it.
    """
    head, refs = pickle.loads(conn.recv_bytes())
    buffers: list[Any] = []
    for n, path in refs:
        if path is not None:
            buffers.append(_from_shared(path, n, keep_names))
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
