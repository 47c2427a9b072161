"""One road from a weight name to what it stands for: ``random``, a registry file, a file, a hub id.

:func:`resolve` is called once, where a name enters (a cohort file, a command option), and its
typed :class:`ResolvedWeights` travels on to the loaders (:mod:`medzsad.weights.manage`,
:mod:`medzsad.weights.model_loading`) and into provenance. Torch-free.

A name is read as:

* ``random``: random initialisation (smoke runs and tests);
* ``hf-hub:<org>/<model>``: an open_clip Hugging Face hub model (read from the local hub cache);
* a registry name ``arch.tag`` (lower case, one dot, no file suffix, not an existing path);
* anything else: a file path, relative to ``base_dir`` (the cohort file's folder) when relative.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from medzsad.errors import ModelError
from medzsad.weights.registry import FileFormat, WeightEntry, WeightKind, get_weight_entry

__all__ = [
    "WeightSource",
    "FileIdentity",
    "ResolvedWeights",
    "RANDOM",
    "is_registry_name",
    "resolve",
    "resolve_model_weights",
]

#: Use random weights (smoke tests with the tiny architecture; never for real results).
RANDOM = "random"
_HUB_PREFIX = "hf-hub:"
#: Suffixes of weight files: a name ending in one is a file, never a registry name.
FILE_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".json", ".ckpt")
_REGISTRY_NAME = re.compile(r"[a-z0-9_]+\.[a-z0-9_]+")


class WeightSource(str, Enum):
    """What a weight name stands for."""

    RANDOM = "random"
    REGISTRY = "registry"
    FILE = "file"
    HUB = "hf-hub"


@dataclass(frozen=True)
class FileIdentity:
    """Which file was read (for provenance and the model hash; no content hash, that is slow).

    Attributes:
        path: Absolute path.
        size: Size in bytes.
        mtime_ns: Modification time in nanoseconds.
    """

    path: Path
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path) -> FileIdentity:
        """The identity of an existing file."""
        st = path.stat()
        return cls(path.resolve(), st.st_size, st.st_mtime_ns)


@dataclass(frozen=True)
class ResolvedWeights:
    """A weight name, resolved.

    Attributes:
        name: The name as given.
        source: What it stands for.
        path: The local file (registry and file sources), else None.
        hub_id: The ``hf-hub:`` id (hub sources, also registry entries stored on the hub), else None.
        entry: The registry entry when the name is a registry name, else None.
        identity: Path, size and modification time of ``path``, else None.
    """

    name: str
    source: WeightSource
    path: Path | None = None
    hub_id: str | None = None
    entry: WeightEntry | None = None
    identity: FileIdentity | None = None

    def describe(self) -> dict[str, Any] | str:
        """Provenance form: the name for random/hub weights, else name, path, size and mtime."""
        if self.identity is None:
            return self.name
        return {
            "name": self.name,
            "path": str(self.identity.path),
            "size": self.identity.size,
            "mtime_ns": self.identity.mtime_ns,
        }


def is_registry_name(name: str | os.PathLike[str], base_dir: str | os.PathLike[str] | None = None) -> bool:
    """True for ``arch.tag`` names that are not an existing path and do not end like a weight file."""
    text = os.fspath(name)
    if _REGISTRY_NAME.fullmatch(text) is None or text.endswith(FILE_SUFFIXES):
        return False
    return not _as_path(text, base_dir).exists()


def _as_path(text: str, base_dir: str | os.PathLike[str] | None) -> Path:
    p = Path(text).expanduser()
    return p if p.is_absolute() or base_dir is None else Path(base_dir) / p


def resolve(
    name: str | os.PathLike[str],
    base_dir: str | os.PathLike[str] | None = None,
    *,
    home: str | os.PathLike[str] | None = None,
    need_file: bool = True,
    kind: WeightKind | None = None,
) -> ResolvedWeights:
    """Resolve a weight name (see the module docstring for the rules); never downloads.

    Args:
        name: ``random``, an ``hf-hub:`` id, a registry name or a file path.
        base_dir: Folder relative file paths are taken from (default: the current directory).
        home: medzsad data folder of the cache (default ``$MEDZSAD_HOME`` or ``~/.cache/medzsad``).
        need_file: Look the registry file up in the caches (else ``path`` stays None for registry
            names; for listing what a name means without the file).
        kind: The kind of weights expected; a registry entry of another kind is an error.

    Raises:
        ModelError: Unknown registry name, an entry of another ``kind``, a missing cached file (the
            message names the ``medzsad weights import``/``fetch`` command) or a missing file path.
    """
    text = os.fspath(name)
    if text == RANDOM:
        return ResolvedWeights(text, WeightSource.RANDOM)
    if text.startswith(_HUB_PREFIX):
        return ResolvedWeights(text, WeightSource.HUB, hub_id=text)
    if is_registry_name(text, base_dir):
        entry = get_weight_entry(text)
        if kind is not None and entry.kind is not kind:
            want = "CLIP" if kind is WeightKind.CLIP else kind.value
            raise ModelError(f"{entry.name!r} holds {entry.kind.value} weights, not {want} weights")
        if entry.file_format is FileFormat.HF_HUB:
            return ResolvedWeights(text, WeightSource.HUB, hub_id=entry.architecture, entry=entry)
        if not need_file:
            return ResolvedWeights(text, WeightSource.REGISTRY, entry=entry)
        from medzsad.weights.cache import resolve as cached_file

        path = cached_file(entry.name, home)
        return ResolvedWeights(text, WeightSource.REGISTRY, path, None, entry, FileIdentity.of(path))
    path = _as_path(text, base_dir)
    if not path.exists():
        where = f" (relative to {base_dir})" if base_dir is not None and not Path(text).is_absolute() else ""
        raise ModelError(
            f"weight file {path} does not exist{where}; give an existing file, a registry name "
            "('medzsad weights list'), or random"
        )
    return ResolvedWeights(text, WeightSource.FILE, path, None, None, FileIdentity.of(path))


def resolve_model_weights(
    clip_weights: str, prompt_weights: str, base_dir: str | os.PathLike[str], source: str
) -> tuple[ResolvedWeights, ResolvedWeights]:
    """Resolve a model section's CLIP and prompt weight names once; every problem in one error.

    Args:
        clip_weights: ``model.clip_weights``.
        prompt_weights: ``model.prompt_weights``.
        base_dir: The cohort file's folder (relative files).
        source: The cohort file, named first in each problem.

    Raises:
        ModelError: One line per weight that cannot be had, each with the command that fixes it.
    """
    found: list[ResolvedWeights] = []
    problems: list[str] = []
    for name, kind in ((clip_weights, WeightKind.CLIP), (prompt_weights, WeightKind.PROMPT)):
        try:
            found.append(resolve(name, base_dir, kind=kind))
        except ModelError as e:
            problems.append(f"{source}: model: {e}")
    if problems:
        raise ModelError("\n".join(problems))
    return found[0], found[1]
