"""Import an already downloaded weight file into the cache (for machines without internet).

The file is copied next to its final place, hashed during the copy, checked against the registry
SHA-256 (or a value the user pins with ``--sha256``), read as a checkpoint of the registry's format
(prompt checkpoints; a checksum says which bytes, not what kind of file) and only then renamed into
place, so a wrong or truncated file never lands under the name :func:`medzsad.weights.cache.resolve`
returns. A refused file leaves nothing behind: no temporary file and no folder the import created.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from medzsad.errors import ModelError
from medzsad.weights.cache import copy_hashing, expected_path, record_in_manifest, removing_new_folders
from medzsad.weights.registry import FileFormat, WeightEntry, get_weight_entry

__all__ = ["StoredWeights", "import_weights", "expected_sha256", "store_verified"]

log = logging.getLogger(__name__)

_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


@dataclass(frozen=True)
class StoredWeights:
    """Result of an import or fetch.

    Attributes:
        name: Registry name.
        path: Final file in the cache.
        sha256: SHA-256 of that file.
        verified: True when the digest matched a known (registry or pinned) value.
        size_bytes: File size.
    """

    name: str
    path: Path
    sha256: str
    verified: bool
    size_bytes: int


def expected_sha256(entry: WeightEntry, pinned: str | None) -> str | None:
    """The digest a file for ``entry`` must have: the registry value, a pinned one, or ``None``.

    Raises:
        ModelError: ``pinned`` is not 64 hex digits, or contradicts the registry value.
    """
    if pinned is not None:
        if not _HEX64.match(pinned):
            raise ModelError(f"--sha256 {pinned!r} is not a SHA-256 digest (64 hexadecimal digits)")
        pinned = pinned.lower()
        if entry.sha256 is not None and pinned != entry.sha256:
            raise ModelError(
                f"--sha256 {pinned} contradicts the registry checksum of {entry.name!r} "
                f"({entry.sha256}); drop --sha256 or check which file you mean"
            )
    return pinned or entry.sha256


def _source_of(origin: str) -> str:
    """The user's file or URL in an ``import:<path>``/``fetch:<url>`` origin (what messages name)."""
    return origin.partition(":")[2] or origin


def _check_format(entry: WeightEntry, tmp: Path, source: str) -> None:
    """Make sure the stored bytes are the kind of file ``entry`` holds (checksum or not).

    A digest only proves the bytes are the ones the user meant, not that they are a checkpoint of
    the right kind; prompt checkpoints are small, so reading one costs little.
    """
    if entry.file_format is not FileFormat.OFFICIAL_PROMPT:
        return
    # torch is imported here so that importing this module (the CLI's parser) stays torch-free
    from medzsad.weights.prompt_checkpoint import read_official_prompt_checkpoint

    try:
        read_official_prompt_checkpoint(tmp, shown_as=source)
    except ModelError as e:
        trained = source.lower().endswith((".json", ".safetensors"))  # medzsad train's own files
        hint = (
            "; a prompt file written by medzsad train is used where it is, not imported: give it "
            "as model.prompt_weights: PATH in the cohort file (train and evaluate: --prompts PATH)"
            if trained
            else ""
        )
        raise ModelError(
            f"{e}; {entry.name!r} needs the official AnomalyCLIP prompt checkpoint: download "
            f"{entry.filename} from {entry.urls[0]}{hint}"
        ) from e


def store_verified(
    entry: WeightEntry,
    tmp: Path,
    found_sha: str,
    size: int,
    expected: str | None,
    origin: str,
    home: str | os.PathLike[str] | None,
) -> StoredWeights:
    """Check a hashed temporary file, then rename it into the cache and record it in the manifest.

    The checksum (when one is known) and the file format (prompt checkpoints) are both checked.

    Raises:
        ModelError: Digest mismatch, or a file of the wrong kind (the temporary file is deleted; the
            message names ``origin``'s file or URL, never the temporary file).
    """
    source = _source_of(origin)
    try:
        if expected is not None and found_sha != expected:
            raise ModelError(
                f"checksum mismatch for {entry.name!r} from {source}: expected SHA-256 {expected}, "
                f"found {found_sha} ({size} bytes). The file is corrupt, truncated or a different file; "
                f"download it again from {entry.urls[0]}"
            )
        _check_format(entry, tmp, source)
        target = expected_path(entry, home)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    verified = expected is not None
    record_in_manifest(entry, found_sha, verified, size, origin, home)
    if verified:
        log.info("stored %s at %s (sha256 verified)", entry.name, target)
    else:
        log.warning(
            "stored %s at %s; no published checksum, recorded sha256 %s UNVERIFIED",
            entry.name,
            target,
            found_sha,
        )
    return StoredWeights(entry.name, target, found_sha, verified, size)


def import_weights(
    name: str,
    path: str | os.PathLike[str],
    sha256: str | None = None,
    home: str | os.PathLike[str] | None = None,
) -> StoredWeights:
    """Copy a downloaded weight file into the cache, verifying its SHA-256.

    Args:
        name: Registry name (``clip_vitl14_336.openai``).
        path: The downloaded file.
        sha256: Digest to pin when the registry has none (or to double-check the registry's).
        home: medzsad data folder (default ``$MEDZSAD_HOME`` or ``~/.cache/medzsad``).

    Returns:
        Where the file now lives, its digest and whether that digest was verified.

    Raises:
        ModelError: Unknown name, unreadable source, ``hf-hub`` entry, checksum mismatch, or a file
            that is not a checkpoint of the entry's format (e.g. no ``prompt_learner`` key).
    """
    entry = get_weight_entry(name)
    if entry.file_format is FileFormat.HF_HUB:
        raise ModelError(
            f"{name!r} is read from the Hugging Face hub cache, not imported as one file: copy the "
            f"hub cache folder of {entry.source} (~/.cache/huggingface/hub) to this machine, or run "
            f"'medzsad weights fetch {name}' where there is internet access"
        )
    src = Path(path).expanduser()
    if not src.is_file():
        raise ModelError(
            f"cannot import {name!r}: {src} is not a file; give the path of the downloaded {entry.filename}"
        )
    expected = expected_sha256(entry, sha256)
    target = expected_path(entry, home)
    with removing_new_folders(target.parent):
        try:
            with open(src, "rb") as f:
                tmp, found, size = copy_hashing(f, target.parent, suffix=Path(entry.filename).suffix)
        except OSError as e:
            raise ModelError(
                f"cannot import {name!r} from {src}: {e.strerror or e}; check the file and free space"
            ) from e
        return store_verified(entry, tmp, found, size, expected, f"import:{src.resolve()}", home)
