"""Wrap every error of a third-party reader into medzsad's typed errors, at the call.

pydicom, nibabel, SimpleITK, Pillow, zipfile, zlib and struct raise whatever they raise on a hostile
file: ``ValueError``, ``HeaderDataError``, ``RecursionError`` (sequences nested thousands deep),
``DecompressionBombError``, ``NotImplementedError`` (unsupported zip compression), even
``BaseException``-derived panics of Rust decoders (pyo3's ``PanicException``, which ``except
Exception`` misses). :func:`foreign_errors` turns each into an :class:`~medzsad.errors.InputError`
subclass that names the file and what was being done, chained with ``from``. Only
``KeyboardInterrupt``, ``SystemExit`` and ``GeneratorExit`` pass through unchanged, and medzsad's
own errors keep their type.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from medzsad.errors import DecoderError, InputError, MedzsadError, ResourceLimitError

__all__ = ["foreign_errors", "PASS_THROUGH", "describe", "quiet_library_log"]

log = logging.getLogger(__name__)
_QUIET_LOCK = threading.Lock()
_QUIET_DEPTH: dict[str, tuple[int, int]] = {}

#: Exceptions never wrapped: the user or the interpreter is stopping the process.
PASS_THROUGH: tuple[type[BaseException], ...] = (KeyboardInterrupt, SystemExit, GeneratorExit)


def describe(e: BaseException, limit: int = 300) -> str:
    """``Type: first line of the message`` (cut to ``limit`` characters) for an error message."""
    text = str(e).strip().splitlines()
    first = text[-1] if text and type(e).__name__ == "RuntimeError" else (text[0] if text else "")
    first = first.replace("\x00", "")
    if len(first) > limit:
        first = first[: limit - 3] + "..."
    return f"{type(e).__name__}: {first}" if first else type(e).__name__


@contextmanager
def foreign_errors(path: str, what: str, error: type[InputError] = InputError) -> Iterator[None]:
    """Turn any error raised inside the block into ``error`` (a medzsad :class:`InputError`).

    Args:
        path: The file being read, for the message.
        what: What was being done, as a verb phrase, e.g. ``read the NIfTI header``.
        error: The :class:`InputError` subclass to raise.

    Raises:
        InputError: ``error`` for ordinary failures; :class:`ResourceLimitError` for ``MemoryError``
            and Pillow's decompression-bomb error; :class:`DecoderError` for ``RecursionError`` and
            ``BaseException``-derived decoder panics. MedzsadError subclasses pass unchanged.
    """
    try:
        yield
    except MedzsadError:
        raise
    except PASS_THROUGH:
        raise
    except MemoryError as e:
        raise ResourceLimitError(
            f"{path}: ran out of memory trying to {what}; the file claims more data than this machine has"
        ) from e
    except RecursionError as e:
        raise DecoderError(
            f"{path}: cannot {what}: nesting too deep (RecursionError); the file is corrupt or hostile"
        ) from e
    except Exception as e:  # noqa: BLE001 - every library error becomes a typed one here
        if type(e).__name__ == "DecompressionBombError":
            raise ResourceLimitError(f"{path}: cannot {what}: too large ({describe(e)})") from e
        raise error(f"{path}: cannot {what} ({describe(e)})") from e
    except BaseException as e:  # noqa: BLE001 - decoder panics (pyo3 PanicException) derive from it
        raise DecoderError(f"{path}: cannot {what}: the decoder crashed ({describe(e)})") from e


@contextmanager
def quiet_library_log(name: str) -> Iterator[None]:
    """Silence a library's logger (and its children) inside the block, unless medzsad logs at DEBUG.

    pydicom logs a failed decode at ERROR with a traceback, pynetdicom a refused association at
    ERROR; medzsad turns both into one typed error line, so theirs would only surround it. Nested
    and concurrent blocks restore the logger's own level when the last one ends.
    """
    if log.isEnabledFor(logging.DEBUG):
        yield
        return
    logger = logging.getLogger(name)
    with _QUIET_LOCK:
        depth, level = _QUIET_DEPTH.get(name, (0, logger.level))
        _QUIET_DEPTH[name] = (depth + 1, level)
        logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        with _QUIET_LOCK:
            depth, level = _QUIET_DEPTH[name]
            if depth == 1:
                del _QUIET_DEPTH[name]
                logger.setLevel(level)
            else:
                _QUIET_DEPTH[name] = (depth - 1, level)
