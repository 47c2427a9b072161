"""Download registry weights (``medzsad weights fetch``): urllib, progress bar, SHA-256, rename.

Downloads go to a temporary file next to the final one; the file is renamed into place only after
its SHA-256 matched. Network failures raise :class:`~medzsad.errors.ModelError` with the same
offline instructions :func:`medzsad.weights.cache.resolve` gives. Tests use ``file://`` URLs or a
fake ``opener``: nothing here is called against the network in the test suite.
"""

from __future__ import annotations

import logging
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import IO, Any

from medzsad.errors import ModelError
from medzsad.progress import progress_bar
from medzsad.weights.cache import copy_hashing, expected_path, missing_weights_message
from medzsad.weights.import_file import StoredWeights, expected_sha256, store_verified
from medzsad.weights.registry import FileFormat, WeightEntry, get_weight_entry

__all__ = ["Opener", "fetch_weights", "download"]

log = logging.getLogger(__name__)

# ``opener(url, timeout) -> context manager yielding a binary stream with .headers``; urllib by default.
Opener = Callable[[str, float], AbstractContextManager[Any]]

_TIMEOUT_S = 60.0


class _TransferError(ModelError):
    """A download failed in transit (the next URL may work); checksum mismatches are not this."""


def _urlopen(url: str, timeout: float) -> AbstractContextManager[Any]:
    request = urllib.request.Request(url, headers={"User-Agent": "medzsad"})
    return urllib.request.urlopen(request, timeout=timeout)


def _length(response: Any) -> int | None:
    headers = getattr(response, "headers", None)
    value = headers.get("Content-Length") if headers is not None else None
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def download(
    entry: WeightEntry,
    url: str,
    expected: str | None,
    home: str | os.PathLike[str] | None = None,
    opener: Opener | None = None,
) -> StoredWeights:
    """Download ``url`` as the cache file of ``entry`` and verify it.

    Raises:
        ModelError: The transfer failed (with offline instructions) or the digest does not match.
    """
    target = expected_path(entry, home)
    open_url = opener or _urlopen
    try:
        with open_url(url, _TIMEOUT_S) as response:
            stream: IO[bytes] = response
            with progress_bar(_length(response), desc=entry.name, unit="B", unit_scale=True) as bar:
                tmp, found, size = copy_hashing(stream, target.parent, f"{target.suffix}.part", bar)
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise _TransferError(
            f"could not download {entry.name!r} from {url}: {getattr(e, 'reason', e)}\n"
            + missing_weights_message(entry, home)
        ) from e
    return store_verified(entry, tmp, found, size, expected, f"fetch:{url}", home)


def _fetch_hf_hub(entry: WeightEntry) -> StoredWeights:
    """Let open_clip populate the Hugging Face hub cache for an ``hf-hub:`` entry (needs internet)."""
    from medzsad.weights.clip_files import find_in_hub_cache, hf_hub_model  # heavy: open_clip

    hf_hub_model(str(entry.source), offline=False)
    path = find_in_hub_cache(entry)
    if path is None:
        raise ModelError(f"open_clip downloaded {entry.source} but its weights are not in the hub cache")
    return StoredWeights(entry.name, path, "", False, path.stat().st_size)


def fetch_weights(
    name: str,
    sha256: str | None = None,
    home: str | os.PathLike[str] | None = None,
    opener: Opener | None = None,
) -> StoredWeights:
    """Download registry weights into the cache, trying each registry URL in turn.

    Args:
        name: Registry name.
        sha256: Digest to pin when the registry has none.
        home: medzsad data folder (default ``$MEDZSAD_HOME`` or ``~/.cache/medzsad``).
        opener: ``opener(url, timeout_s)`` returning a context manager over a binary stream; tests
            pass a fake, the default is :func:`urllib.request.urlopen`.

    Returns:
        The stored file, its digest and whether it was verified.

    Raises:
        ModelError: Every URL failed (message holds each failure and the offline instructions), or
            the checksum does not match.
    """
    entry = get_weight_entry(name)
    if entry.file_format is FileFormat.HF_HUB:
        return _fetch_hf_hub(entry)
    expected = expected_sha256(entry, sha256)
    failures: list[str] = []
    for url in entry.urls:
        try:
            return download(entry, url, expected, home, opener)
        except _TransferError as e:
            failures.append(f"{url}: {e.__cause__ or e}")
            log.warning("download of %s from %s failed: %s", name, url, e.__cause__ or e)
    raise ModelError(
        f"could not download {name!r} from any known URL ({'; '.join(failures)})\n"
        + missing_weights_message(entry, home)
    )
