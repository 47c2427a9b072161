"""The local weight cache: ``$MEDZSAD_HOME/weights/<name>/<filename>`` plus a JSON manifest.

``$MEDZSAD_HOME`` defaults to ``~/.cache/medzsad``. The manifest
(``$MEDZSAD_HOME/weights/manifest.json``) records, per stored file, its SHA-256, whether that digest
was checked against a known value, and where the file came from. Every write is atomic (temporary
file in the same folder, then :func:`os.replace`), so an interrupted import never leaves a
half-written file under the final name.

:func:`resolve` is the one place that turns a registry name into a file, and the one place that
explains, when the file is absent, exactly where to put it and which command imports it (the way
TotalSegmentator documents offline installs).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from medzsad.errors import ModelError
from medzsad.fileio import sha256_file
from medzsad.weights.registry import FileFormat, WeightEntry, get_weight_entry

__all__ = [
    "ENV_HOME",
    "ManifestRecord",
    "medzsad_home",
    "weights_root",
    "expected_path",
    "read_manifest",
    "record_in_manifest",
    "resolve",
    "find_cached",
    "missing_weights_message",
    "sha256_file",
    "copy_hashing",
    "atomic_write_text",
    "removing_new_folders",
]

log = logging.getLogger(__name__)

ENV_HOME = "MEDZSAD_HOME"
MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1
_CHUNK = 1 << 20


@dataclass(frozen=True)
class ManifestRecord:
    """What the manifest knows about one stored weight file.

    Attributes:
        name: Registry name.
        filename: File name inside ``weights/<name>/``.
        sha256: SHA-256 of the stored file (lower-case hex).
        verified: True when ``sha256`` matched a registry or user-pinned value at import time.
        size_bytes: Size of the stored file.
        origin: ``import:<path>`` or ``fetch:<url>``.
        stored_utc: ISO 8601 time of the import.
    """

    name: str
    filename: str
    sha256: str
    verified: bool
    size_bytes: int
    origin: str
    stored_utc: str


def medzsad_home(home: str | os.PathLike[str] | None = None) -> Path:
    """The medzsad data folder: ``home`` if given, else ``$MEDZSAD_HOME``, else ``~/.cache/medzsad``."""
    if home is not None:
        return Path(home).expanduser()
    env = os.environ.get(ENV_HOME)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "medzsad"


def weights_root(home: str | os.PathLike[str] | None = None) -> Path:
    """``<home>/weights``."""
    return medzsad_home(home) / "weights"


def expected_path(entry: WeightEntry, home: str | os.PathLike[str] | None = None) -> Path:
    """Where the cache keeps ``entry``: ``<home>/weights/<name>/<filename>``."""
    return weights_root(home) / entry.name / entry.filename


@contextlib.contextmanager
def _temp_in(folder: Path, suffix: str) -> Iterator[tuple[IO[bytes], Path]]:
    """A temporary file in ``folder`` (same file system, so ``os.replace`` is atomic); removed on error."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=suffix)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f, tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def removing_new_folders(folder: Path) -> Iterator[None]:
    """Run a block that may create ``folder``; if the block fails, remove what it created there.

    The folders among ``folder`` and its parents that do not exist on entry are removed, innermost
    first, when the block raises and they are empty by then; folders that existed are never touched.
    A refused import or download thus leaves no empty ``weights/<name>/`` folder behind.
    """
    new = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        yield
    except BaseException:
        for p in new:
            with contextlib.suppress(OSError):  # not empty (someone else wrote there) or already gone
                p.rmdir()
        raise


def copy_hashing(
    source: IO[bytes], folder: Path, suffix: str = "", progress: Any | None = None
) -> tuple[Path, str, int]:
    """Copy a byte stream into a temporary file in ``folder``, hashing it on the way.

    Args:
        source: Readable binary stream.
        folder: Destination folder (created if needed).
        suffix: Suffix of the temporary file name.
        progress: Optional object with ``update(n_bytes)`` (e.g. a tqdm bar).

    Returns:
        ``(temporary path, sha256 hex, size in bytes)``; the caller renames or deletes the file.
    """
    digest = hashlib.sha256()
    size = 0
    with _temp_in(folder, suffix) as (out, tmp):
        for block in iter(lambda: source.read(_CHUNK), b""):
            out.write(block)
            digest.update(block)
            size += len(block)
            if progress is not None:
                progress.update(len(block))
    return tmp, digest.hexdigest(), size


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file and :func:`os.replace`."""
    with _temp_in(path.parent, ".tmp") as (out, tmp):
        out.write(text.encode("utf-8"))
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


def read_manifest(home: str | os.PathLike[str] | None = None) -> dict[str, ManifestRecord]:
    """Every manifest record by registry name (empty when no manifest exists yet).

    Raises:
        ModelError: The manifest exists but is not valid JSON of the expected form.
    """
    path = weights_root(home) / MANIFEST_NAME
    if not path.is_file():
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return {name: ManifestRecord(**rec) for name, rec in raw["entries"].items()}
    except (ValueError, KeyError, TypeError) as e:
        raise ModelError(
            f"weight manifest {path} is unreadable ({e}); delete it and re-import the weights "
            "with 'medzsad weights import NAME FILE'"
        ) from e


def record_in_manifest(
    entry: WeightEntry,
    sha256: str,
    verified: bool,
    size_bytes: int,
    origin: str,
    home: str | os.PathLike[str] | None = None,
) -> ManifestRecord:
    """Add or replace the manifest record of ``entry`` (atomic rewrite of the manifest)."""
    record = ManifestRecord(
        name=entry.name,
        filename=entry.filename,
        sha256=sha256,
        verified=verified,
        size_bytes=size_bytes,
        origin=origin,
        stored_utc=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    records = read_manifest(home)
    records[entry.name] = record
    payload = {
        "format_version": MANIFEST_VERSION,
        "entries": {name: asdict(rec) for name, rec in sorted(records.items())},
    }
    atomic_write_text(weights_root(home) / MANIFEST_NAME, json.dumps(payload, indent=1) + "\n")
    return record


def _open_clip_url_cache(entry: WeightEntry) -> list[Path]:
    """Where open_clip/OpenAI ``clip`` keep URL downloads (``~/.cache/clip/<basename>``); no import."""
    if not isinstance(entry.source, tuple):
        return []
    return [Path.home() / ".cache" / "clip" / url.rsplit("/", 1)[-1] for url in entry.urls]


def find_cached(
    entry: WeightEntry, home: str | os.PathLike[str] | None = None, external: bool = False
) -> Path | None:
    """The file holding ``entry`` if it is on this machine, else ``None``.

    Looks in the medzsad cache, then in open_clip's URL download folder (``~/.cache/clip``). With
    ``external=True`` it also asks the Hugging Face hub cache (imports open_clip; slower).
    """
    own = expected_path(entry, home)
    if own.is_file():
        return own
    for candidate in _open_clip_url_cache(entry):
        if candidate.is_file():
            return candidate
    if external and entry.source is not None:
        # Imported here: it pulls in open_clip, which 'weights list' must not pay for.
        from medzsad.weights.clip_files import find_in_hub_cache

        return find_in_hub_cache(entry)
    return None


def missing_weights_message(entry: WeightEntry, home: str | os.PathLike[str] | None = None) -> str:
    """The multi-line explanation of a missing weight file: where, what to download, what to run."""
    target = expected_path(entry, home)
    lines = [
        f"weights {entry.name!r} ({entry.description}) are not on this machine.",
        f"  expected file: {target}",
    ]
    looked = [str(p) for p in _open_clip_url_cache(entry)]
    if entry.source is not None:
        looked.append(f"the Hugging Face hub cache ({entry.source})")
    if looked:
        lines.append(f"  also looked in: {', '.join(looked)}")
    if entry.file_format is FileFormat.HF_HUB:
        lines += [
            f"  With internet access: medzsad weights fetch {entry.name}",
            "  Offline: on a connected machine run 'medzsad weights fetch "
            f"{entry.name}' (or open_clip.create_model_and_transforms('{entry.source}')), then copy its "
            "Hugging Face cache folder (~/.cache/huggingface/hub) here; set HF_HOME if it is elsewhere.",
        ]
    else:
        lines += [
            f"  With internet access: medzsad weights fetch {entry.name}",
            f"  Offline: download {entry.urls[0]} on a connected machine, copy it here, then run",
            f"    medzsad weights import {entry.name} /path/to/{entry.filename}",
            f"  (set {ENV_HOME} to keep the cache somewhere other than {medzsad_home(home)}).",
        ]
    if entry.note:
        lines.append(f"  Note: {entry.note}")
    return "\n".join(lines)


def resolve(name: str, home: str | os.PathLike[str] | None = None) -> Path:
    """The local file of the registry weights ``name``; never downloads.

    Args:
        name: Registry name (``clip_vitl14_336.openai``).
        home: medzsad data folder (default ``$MEDZSAD_HOME`` or ``~/.cache/medzsad``).

    Returns:
        Path of an existing file (medzsad cache first, then the open_clip and Hugging Face caches).

    Raises:
        ModelError: Unknown name, or the file is absent; the message names the expected path, the
            download URL and the exact ``medzsad weights import``/``fetch`` command.
    """
    entry = get_weight_entry(name)
    found = find_cached(entry, home, external=True)
    if found is None:
        raise ModelError(missing_weights_message(entry, home))
    log.debug("weights %s resolved to %s", name, found)
    return found
