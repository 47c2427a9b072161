"""Download registry weights (``medzsad weights fetch``): pooch over HTTP(S), SHA-256, rename.

HTTP(S) downloads go through `pooch <https://www.fatiando.org/pooch>`_ (a maintained client:
retries with back-off on failed transfers, progress bar, download into a temporary file that is
moved into place only when complete); ``file://`` URLs and injected ``opener`` callables use
urllib. Either way the file lands in a temporary name next to the final one and is renamed into
place only after its SHA-256 matched. :func:`fetch_all` tries every name and reports every missing
file at once, with the offline instructions :func:`medzsad.weights.cache.resolve` gives. Tests use
``file://`` URLs, a local ``http.server`` on 127.0.0.1 or a fake ``opener``: never the network.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import IO, Any

from medzsad.errors import ModelError
from medzsad.progress import progress_bar
from medzsad.weights.cache import (
    copy_hashing,
    expected_path,
    missing_weights_message,
    removing_new_folders,
    resolve,
)
from medzsad.weights.import_file import StoredWeights, expected_sha256, store_verified
from medzsad.weights.registry import FileFormat, WeightEntry, get_weight_entry

__all__ = ["Opener", "fetch_weights", "fetch_all", "download", "RETRIES"]

log = logging.getLogger(__name__)

# ``opener(url, timeout) -> context manager yielding a binary stream with .headers``; urllib by default.
Opener = Callable[[str, float], AbstractContextManager[Any]]

_TIMEOUT_S = 60.0
#: Extra attempts pooch makes after a failed HTTP(S) transfer (1, 2, 3 ... s apart); the
#: environment variable MEDZSAD_FETCH_RETRIES overrides it (0: fail at once, e.g. known offline).
RETRIES = 3


def _retries() -> int:
    value = os.environ.get("MEDZSAD_FETCH_RETRIES", "")
    return int(value) if value.isdigit() else RETRIES


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
    if opener is None and url.lower().startswith(("http://", "https://")):
        return _download_pooch(entry, url, expected, home)
    open_url = opener or _urlopen
    try:
        with open_url(url, _TIMEOUT_S) as response:
            stream: IO[bytes] = response
            with progress_bar(_length(response), desc=entry.name, unit="B", unit_scale=True) as bar:
                tmp, found, size = copy_hashing(stream, target.parent, f"{target.suffix}.part", bar)
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise _TransferError(" ".join(str(getattr(e, "reason", e)).split())[:160]) from e
    return store_verified(entry, tmp, found, size, expected, f"fetch:{url}", home)


def _download_pooch(
    entry: WeightEntry, url: str, expected: str | None, home: str | os.PathLike[str] | None
) -> StoredWeights:
    """HTTP(S) through pooch (retries; complete files only), then verify and store as :func:`download`."""
    import pooch  # only when downloading
    import requests

    target = expected_path(entry, home)
    staging = target.parent / f".{target.name}.download"
    staging.mkdir(parents=True, exist_ok=True)
    fetcher = pooch.create(
        path=staging,
        base_url="",
        registry={target.name: None},
        urls={target.name: url},
        retry_if_failed=_retries(),
    )
    downloader = pooch.HTTPDownloader(
        progressbar=sys.stderr.isatty(), timeout=_TIMEOUT_S, headers={"User-Agent": "medzsad"}
    )
    # pooch announces each download at INFO on its own logger: follow medzsad's verbosity
    pooch.get_logger().setLevel(logging.INFO if log.isEnabledFor(logging.INFO) else logging.WARNING)
    try:
        got = Path(fetcher.fetch(target.name, downloader=downloader))
    except (requests.exceptions.RequestException, OSError, ValueError) as e:
        shutil.rmtree(staging, ignore_errors=True)
        raise _TransferError(_short_reason(e)) from e
    tmp = target.with_name(f"{target.name}.part-{os.getpid()}")
    os.replace(got, tmp)
    shutil.rmtree(staging, ignore_errors=True)
    found, size = _sha256_of(tmp)
    return store_verified(entry, tmp, found, size, expected, f"fetch:{url}", home)


def _short_reason(error: Exception) -> str:
    """A few words for a failed transfer (the full exception is logged at DEBUG level)."""
    import requests

    log.debug("transfer failed: %r", error)
    if isinstance(error, requests.exceptions.HTTPError) and error.response is not None:
        return f"HTTP {error.response.status_code}"
    if isinstance(error, requests.exceptions.Timeout):
        return "timed out"
    if isinstance(error, requests.exceptions.ConnectionError):
        return "no connection (offline, or the host is unreachable)"
    return " ".join(str(error).split())[:160]


def _sha256_of(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


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
    with removing_new_folders(expected_path(entry, home).parent):
        for url in entry.urls:
            try:
                return download(entry, url, expected, home, opener)
            except _TransferError as e:
                failures.append(f"{url}: {e}")
                log.info("download of %s from %s failed: %s", name, url, e)
        raise ModelError(
            f"could not download {name!r} ({'; '.join(failures)})\n" + missing_weights_message(entry, home)
        )


def fetch_all(
    names: list[str] | tuple[str, ...],
    home: str | os.PathLike[str] | None = None,
    opener: Opener | None = None,
) -> list[StoredWeights]:
    """Fetch every name (already cached files are fetched again only if missing); report all failures.

    Returns:
        The stored files, in the order of ``names``.

    Raises:
        ModelError: One or more files could not be fetched: the message names every one of them, with
            its URL and the ``medzsad weights import`` command for an offline machine.
    """
    stored: list[StoredWeights] = []
    missing: list[tuple[WeightEntry, str]] = []
    for name in names:
        entry = get_weight_entry(name)
        try:
            path = resolve(name, home)
            stored.append(StoredWeights(name, path, "", False, path.stat().st_size))
            continue
        except (ModelError, OSError):
            pass
        try:
            stored.append(fetch_weights(name, home=home, opener=opener))
        except ModelError as e:
            missing.append((entry, str(e).splitlines()[0]))
    if missing:
        raise ModelError(_all_missing_message(missing, home))
    return stored


def _all_missing_message(missing: list[tuple[WeightEntry, str]], home: str | os.PathLike[str] | None) -> str:
    lines = [f"{len(missing)} weight file(s) could not be downloaded:"]
    for entry, why in missing:
        lines.append(f"  - {entry.name}: {why}")
        lines.append(f"      download {entry.urls[0]} on a connected machine, then:")
        lines.append(f"      medzsad weights import {entry.name} /path/to/{entry.filename}")
        lines.append(f"      (cache file: {expected_path(entry, home)})")
    return "\n".join(lines)
