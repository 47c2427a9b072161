"""Top-level weight functions for the API and CLI: list, locate, and load by name or path.

``load_clip_weights`` and ``load_prompt_weights`` accept either a registry name
(``clip_vitl14_336.openai``) or a file path, and return the tensors with what is known about them;
``medzsad.model`` then builds the network from those tensors.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

from medzsad.errors import ModelError
from medzsad.weights.cache import ManifestRecord, find_cached, read_manifest, resolve, weights_root
from medzsad.weights.clip_files import read_clip_state_dict
from medzsad.weights.prompt_checkpoint import read_prompt_weights
from medzsad.weights.registry import WeightEntry, WeightKind, list_weight_entries
from medzsad.weights.resolution import ResolvedWeights, WeightSource
from medzsad.weights.resolution import resolve as resolve_weights

__all__ = [
    "CacheStatus",
    "WeightStatus",
    "ClipWeights",
    "PromptWeights",
    "list_weights",
    "weights_path",
    "load_clip_weights",
    "load_prompt_weights",
]

log = logging.getLogger(__name__)


class CacheStatus(str, Enum):
    """Where a registry file was found."""

    CACHED = "cached"  # in $MEDZSAD_HOME/weights
    EXTERNAL = "external"  # in the open_clip or Hugging Face cache
    MISSING = "missing"


@dataclass(frozen=True)
class WeightStatus:
    """One row of ``medzsad weights list``.

    Attributes:
        entry: The registry entry.
        status: Cached, found in another cache, or missing.
        path: The file when found, else where it is expected.
        record: Manifest record (digest, verified) when imported or fetched by medzsad.
    """

    entry: WeightEntry
    status: CacheStatus
    path: Path
    record: ManifestRecord | None


@dataclass(frozen=True)
class ClipWeights:
    """CLIP weights ready for ``medzsad.model.build``.

    Attributes:
        state_dict: OpenAI key names, float32 floating tensors, CPU.
        path: File they were read from.
        entry: Registry entry when loaded by name, else ``None``.
    """

    state_dict: dict[str, torch.Tensor]
    path: Path
    entry: WeightEntry | None


@dataclass(frozen=True)
class PromptWeights:
    """Prompt-learner weights with the hyper-parameters they were trained with.

    Attributes:
        state_dict: Prompt-learner tensors as stored (float32 parameters, int32 token ids).
        config: Model configuration: from a medzsad checkpoint's JSON, else the registry metadata
            (``model_config``, ``n_ctx``, ``depth``, ``t_n_ctx``, ``feature_layers``, ...), else ``{}``.
        path: File they were read from.
        sha256: SHA-256 of that file.
        entry: Registry entry when loaded by name, else ``None``.
    """

    state_dict: dict[str, torch.Tensor]
    config: dict[str, Any]
    path: Path
    sha256: str
    entry: WeightEntry | None


def list_weights(home: str | os.PathLike[str] | None = None, external: bool = False) -> list[WeightStatus]:
    """Every registry entry with its cache status.

    Args:
        home: medzsad data folder (default ``$MEDZSAD_HOME`` or ``~/.cache/medzsad``).
        external: Also ask the Hugging Face hub cache (imports open_clip; slower).
    """
    records = read_manifest(home)
    own_root = weights_root(home)
    rows = []
    for entry in list_weight_entries():
        found = find_cached(entry, home, external=external)
        if found is None:
            status, path = CacheStatus.MISSING, own_root / entry.name / entry.filename
        elif own_root in found.parents:
            status, path = CacheStatus.CACHED, found
        else:
            status, path = CacheStatus.EXTERNAL, found
        rows.append(WeightStatus(entry, status, path, records.get(entry.name)))
    return rows


def weights_path(name: str, home: str | os.PathLike[str] | None = None) -> Path:
    """The local file of registry weights ``name`` (see :func:`medzsad.weights.cache.resolve`)."""
    return resolve(name, home)


def _resolved(
    name_or_path: str | os.PathLike[str] | ResolvedWeights,
    home: str | os.PathLike[str] | None,
    kind: WeightKind,
) -> ResolvedWeights:
    if isinstance(name_or_path, ResolvedWeights):
        return name_or_path
    return resolve_weights(name_or_path, home=home, kind=kind)


def load_clip_weights(
    name_or_path: str | os.PathLike[str] | ResolvedWeights, home: str | os.PathLike[str] | None = None
) -> ClipWeights:
    """CLIP weights from a registry name, a file (OpenAI archive, state dict, safetensors) or a name.

    ``name_or_path`` may already be resolved by :func:`medzsad.weights.resolution.resolve`.

    Raises:
        ModelError: Unknown name, missing file (with import instructions), a prompt entry, an
            ``hf-hub`` entry (build those with ``medzsad.weights.clip_files.hf_hub_model``), or an
            unreadable file.
    """
    res = _resolved(name_or_path, home, WeightKind.CLIP)
    entry = res.entry
    if entry is not None and entry.kind is not WeightKind.CLIP:
        raise ModelError(f"{entry.name!r} holds {entry.kind.value} weights, not CLIP weights")
    if res.source is WeightSource.HUB:
        raise ModelError(
            f"{res.name!r} is an open_clip hf-hub model ({res.hub_id}) with its own text tower; "
            "it is built whole by open_clip, not from an OpenAI-layout state dict"
        )
    if res.path is None:
        raise ModelError(f"{res.name!r} names no weight file (random weights are built, not loaded)")
    sd = read_clip_state_dict(res.path, trusted_sha256=_trusted_digests(entry, home))
    log.info("loaded %d CLIP tensors from %s", len(sd), res.path)
    return ClipWeights(sd, res.path, entry)


def _trusted_digests(entry: WeightEntry | None, home: str | os.PathLike[str] | None) -> set[str]:
    """SHA-256 digests a CLIP TorchScript archive may have: registry checksums and imported files.

    For a registry name, that entry's checksum and the digest recorded when it was imported; for a
    file path, those of every CLIP entry (the file is then one of the known archives).
    """
    entries = [entry] if entry is not None else list_weight_entries(WeightKind.CLIP)
    manifest = read_manifest(home)
    out = {e.sha256 for e in entries if e.sha256}
    out |= {manifest[e.name].sha256 for e in entries if e.name in manifest}
    return out


def load_prompt_weights(
    name_or_path: str | os.PathLike[str] | ResolvedWeights, home: str | os.PathLike[str] | None = None
) -> PromptWeights:
    """Prompt weights from a registry name or a file (official ``.pth`` or medzsad checkpoint).

    ``name_or_path`` may already be resolved by :func:`medzsad.weights.resolution.resolve`.

    Raises:
        ModelError: Unknown name, missing file (with import instructions), a CLIP entry, or an
            unreadable checkpoint.
    """
    res = _resolved(name_or_path, home, WeightKind.PROMPT)
    entry = res.entry
    if entry is not None and entry.kind is not WeightKind.PROMPT:
        raise ModelError(f"{entry.name!r} holds {entry.kind.value} weights, not prompt weights")
    if res.path is None:
        raise ModelError(f"{res.name!r} names no prompt checkpoint file")
    ckpt = read_prompt_weights(res.path)
    config = ckpt.config or (dict(entry.metadata) if entry is not None else {})
    return PromptWeights(ckpt.state_dict, config, ckpt.tensors_path, ckpt.sha256, entry)
