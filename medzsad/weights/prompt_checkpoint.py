"""AnomalyCLIP prompt-learner checkpoints: the official ``.pth`` and medzsad's own format.

* Official (``zqhang/AnomalyCLIP`` ``train.py``): ``torch.save({"prompt_learner": state_dict})``,
  read with ``torch.load(weights_only=True)``.
* medzsad: ``<name>.safetensors`` (the tensors, dtypes kept: float32 parameters, int32 token ids)
  plus ``<name>.json`` (format name and version, the SHA-256 of the tensors file and the model
  config the prompts were trained with). Both files are written atomically; a round trip is
  bit-exact.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from medzsad.errors import ModelError
from medzsad.fileio import sha256_file
from medzsad.weights.cache import atomic_write_text
from medzsad.weights.clip_files import TORCH_LOAD_ERRORS

__all__ = [
    "PROMPT_FORMAT",
    "PROMPT_FORMAT_VERSION",
    "PromptCheckpoint",
    "read_official_prompt_checkpoint",
    "save_prompt_checkpoint",
    "load_prompt_checkpoint",
    "read_prompt_weights",
]

log = logging.getLogger(__name__)

PROMPT_FORMAT = "medzsad.prompt_learner"
PROMPT_FORMAT_VERSION = 1
DEFAULT_STEM = "prompt_learner"


@dataclass(frozen=True)
class PromptCheckpoint:
    """A prompt checkpoint in memory.

    Attributes:
        state_dict: Prompt-learner tensors on CPU (``ctx_pos``/``ctx_neg`` (1,1,n_ctx,W) float32,
            ``compound_prompts_text.i`` (t_n_ctx,W) float32, buffers incl. ``tokenized_prompts_*``
            (1,1,77) int32).
        config: Model configuration stored with the tensors (``{}`` for official checkpoints).
        tensors_path: The file the tensors came from.
        sha256: SHA-256 of that file.
    """

    state_dict: dict[str, torch.Tensor]
    config: dict[str, Any]
    tensors_path: Path
    sha256: str


def read_official_prompt_checkpoint(
    path: str | os.PathLike[str], shown_as: str | None = None
) -> dict[str, torch.Tensor]:
    """Read an official AnomalyCLIP checkpoint (``epoch_15.pth``).

    Args:
        path: ``.pth`` written by the reference ``train.py``.
        shown_as: How error messages name the file (default ``path``): an import checks the cache's
            temporary copy but names the user's file.

    Returns:
        The ``prompt_learner`` state dict as stored (dtypes unchanged), tensors on CPU.

    Raises:
        ModelError: Missing or corrupt file, a file needing full pickle, no ``prompt_learner`` key,
            or entries that are not tensors.
    """
    p = Path(path)
    shown = shown_as or str(p)
    if not p.is_file():
        raise ModelError(f"prompt checkpoint {shown} does not exist")
    try:
        obj = torch.load(str(p), map_location="cpu", weights_only=True)
    except TORCH_LOAD_ERRORS as e:
        first = str(e).splitlines()[0] if str(e) else ""
        raise ModelError(
            f"{shown} is not a readable AnomalyCLIP checkpoint ({type(e).__name__}: {first}); it may be "
            "truncated (download it again) or need full pickle, which is refused (weights_only=True)"
        ) from e
    if not isinstance(obj, Mapping) or "prompt_learner" not in obj:
        keys = list(obj)[:8] if isinstance(obj, Mapping) else type(obj).__name__
        raise ModelError(
            f"{shown} is not an official AnomalyCLIP checkpoint: expected a dict with key 'prompt_learner', "
            f"found {keys}"
        )
    sd = obj["prompt_learner"]
    if not isinstance(sd, Mapping) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ModelError(f"{shown}: 'prompt_learner' is not a state dict of tensors")
    return dict(sd)


def _paths(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """``(<stem>.safetensors, <stem>.json)`` for a folder, a stem, or either file."""
    p = Path(path)
    if p.is_dir():
        p = p / DEFAULT_STEM
    elif p.suffix in (".safetensors", ".json"):
        p = p.with_suffix("")
    return p.with_name(p.name + ".safetensors"), p.with_name(p.name + ".json")


def save_prompt_checkpoint(
    path: str | os.PathLike[str], state_dict: Mapping[str, torch.Tensor], config: Mapping[str, Any]
) -> PromptCheckpoint:
    """Write prompt weights in medzsad's format: ``<stem>.safetensors`` + ``<stem>.json``.

    Args:
        path: A folder (files ``prompt_learner.*`` inside), a stem, or a ``.safetensors``/``.json`` path.
        state_dict: Prompt-learner tensors; saved with their dtypes, bit for bit.
        config: JSON-serialisable model configuration (e.g. ``AnomalyCLIPConfig.to_dict()``).

    Returns:
        What was written (tensors as saved, config, tensors path and SHA-256).

    Raises:
        ModelError: Non-tensor entries, a config that is not JSON, or a write failure.
    """
    tensors_path, json_path = _paths(path)
    bad = [k for k, v in state_dict.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ModelError(f"cannot save prompt checkpoint {tensors_path}: entries {bad[:5]} are not tensors")
    try:
        config_text = json.dumps(dict(config), sort_keys=True)
    except (TypeError, ValueError) as e:
        raise ModelError(
            f"cannot save prompt checkpoint {json_path}: config is not JSON-serialisable ({e})"
        ) from e
    # clone(): safetensors refuses tensors that share storage (e.g. views of one parameter).
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}
    tmp = tensors_path.with_name(f".tmp-{os.getpid()}-{tensors_path.name}")
    try:
        tensors_path.parent.mkdir(parents=True, exist_ok=True)
        # One metadata key only: safetensors writes its metadata map in hash order, so two keys
        # would make the bytes (and the recorded SHA-256) differ between identical saves.
        save_file(tensors, str(tmp), metadata={"format": f"{PROMPT_FORMAT}/{PROMPT_FORMAT_VERSION}"})
        digest = sha256_file(tmp)
        os.replace(tmp, tensors_path)
        header = {
            "format": PROMPT_FORMAT,
            "format_version": PROMPT_FORMAT_VERSION,
            "tensors_file": tensors_path.name,
            "tensors_sha256": digest,
            "config": json.loads(config_text),
        }
        atomic_write_text(json_path, json.dumps(header, indent=1, sort_keys=True) + "\n")
    except OSError as e:
        raise ModelError(f"cannot write prompt checkpoint {tensors_path}: {e.strerror or e}") from e
    finally:
        tmp.unlink(missing_ok=True)
    log.info("saved prompt checkpoint %s (%d tensors)", tensors_path, len(tensors))
    return PromptCheckpoint(tensors, json.loads(config_text), tensors_path, digest)


def _read_header(json_path: Path) -> dict[str, Any]:
    try:
        header = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelError(f"cannot read prompt checkpoint header {json_path}: {e}") from e
    if not isinstance(header, dict) or header.get("format") != PROMPT_FORMAT:
        raise ModelError(
            f"{json_path} is not a medzsad prompt checkpoint header (format != {PROMPT_FORMAT!r})"
        )
    version = header.get("format_version")
    if not isinstance(version, int) or version > PROMPT_FORMAT_VERSION:
        raise ModelError(
            f"{json_path} has format_version {version!r}; this medzsad reads up to {PROMPT_FORMAT_VERSION}: "
            "upgrade medzsad"
        )
    return header


def load_prompt_checkpoint(path: str | os.PathLike[str]) -> PromptCheckpoint:
    """Read a checkpoint written by :func:`save_prompt_checkpoint`, verifying its SHA-256.

    Args:
        path: The folder, the stem, or either of the two files.

    Raises:
        ModelError: Missing files, a foreign or newer header, or a tensors file whose SHA-256
            differs from the one recorded (modified or truncated).
    """
    tensors_path, json_path = _paths(path)
    if not json_path.is_file():
        raise ModelError(
            f"prompt checkpoint header {json_path} does not exist (expected next to {tensors_path})"
        )
    header = _read_header(json_path)
    tensors_path = json_path.with_name(str(header.get("tensors_file", tensors_path.name)))
    if not tensors_path.is_file():
        raise ModelError(f"prompt checkpoint tensors {tensors_path} named in {json_path} do not exist")
    digest = sha256_file(tensors_path)
    if digest != header.get("tensors_sha256"):
        raise ModelError(
            f"{tensors_path} does not match its header {json_path}: SHA-256 expected "
            f"{header.get('tensors_sha256')}, found {digest}; the file was modified or truncated"
        )
    try:
        tensors = load_file(str(tensors_path), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelError(f"{tensors_path} is not a readable safetensors file ({e})") from e
    return PromptCheckpoint(tensors, dict(header.get("config") or {}), tensors_path, digest)


def read_prompt_weights(path: str | os.PathLike[str]) -> PromptCheckpoint:
    """Read prompt weights in either format: official ``.pth`` or medzsad ``.json``/``.safetensors``/folder.

    Returns:
        The checkpoint; ``config`` is ``{}`` for official files (their hyper-parameters are in the
        registry entry's ``metadata``).
    """
    p = Path(path)
    if p.suffix in (".pth", ".pt"):
        sd = read_official_prompt_checkpoint(p)
        return PromptCheckpoint(sd, {}, p, sha256_file(p))
    return load_prompt_checkpoint(p)
