"""One run per output directory: an exclusive lock on ``<out>/.medzsad.lock``."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from medzsad.errors import OutputError

__all__ = ["run_lock"]


@contextlib.contextmanager
def run_lock(out_dir: Path) -> Iterator[None]:
    """Hold an exclusive, non-blocking lock on the output folder for the whole run.

    The lock is released by the OS when the process dies (even by SIGKILL), so a killed run never
    blocks its restart.

    Raises:
        OutputError: Another medzsad run holds the lock.
    """
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; single-run use is the user's responsibility
        yield
        return
    path = out_dir / ".medzsad.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            raise OutputError(
                f"{out_dir} is in use by another medzsad run (lock {path}); "
                "wait for it or choose another --out"
            ) from e
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
