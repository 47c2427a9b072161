"""Read CLIP weight files into state dicts with OpenAI key names; find open_clip/hub cached weights.

Three file layouts are read, chosen by content rather than by suffix:

* OpenAI TorchScript archives (``ViT-L-14-336px.pt``): ``torch.jit.load(...).state_dict()``, which
  is what open_clip's ``load_openai_model`` does. Loading TorchScript can run code, so an archive is
  loaded only when its SHA-256 is one the caller trusts (a registry checksum, or the digest recorded
  when the file was imported with ``medzsad weights import``); any other archive is refused.
* Plain state dicts (``.pt``/``.pth``/``.bin``) through ``torch.load(weights_only=True)``, unwrapping
  ``{"state_dict": ...}`` / ``{"model": ...}`` and ``module.`` prefixes.
* safetensors.

Key names: open_clip's standard ``CLIP`` class uses exactly OpenAI's names (``visual.conv1.weight``,
``transformer.resblocks.0.attn.in_proj_weight``, ``token_embedding.weight``, ...), so open_clip
checkpoints of that class need no renaming. Only ``CustomTextCLIP`` checkpoints keep the text tower
under ``text.``; :func:`to_openai_keys` strips that prefix when the tower is CLIP's own transformer.

Nothing here downloads: hub-cached weights are found with ``huggingface_hub.try_to_load_from_cache``
and ``hf-hub:`` models are built with the hub forced offline (:func:`offline_hub`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pickle
import struct
import warnings
import zipfile
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from medzsad.errors import ModelError
from medzsad.fileio import sha256_file
from medzsad.weights.registry import FileFormat, WeightEntry

__all__ = [
    "detect_clip_file_format",
    "read_clip_state_dict",
    "to_openai_keys",
    "open_clip_pretrained",
    "find_in_hub_cache",
    "offline_hub",
    "HubModel",
    "hf_hub_model",
]

log = logging.getLogger(__name__)

# Integers stored alongside the weights in OpenAI archives, and the causal mask some exports keep
# (open_clip registers it as a non-persistent buffer): derived constants, not weights.
_OPENAI_METADATA_KEYS = frozenset({"input_resolution", "context_length", "vocab_size", "attn_mask"})
# open_clip's CustomTextCLIP text tower names that map 1:1 onto CLIP's top-level names.
_TEXT_TOWER_PREFIXES = (
    "transformer.resblocks.",
    "token_embedding.",
    "positional_embedding",
    "ln_final.",
    "text_projection",
)
# What ``torch.load(weights_only=True)`` raises for truncated, foreign or pickle-needing files.
TORCH_LOAD_ERRORS: tuple[type[BaseException], ...] = (
    pickle.UnpicklingError,
    RuntimeError,
    EOFError,
    ValueError,
    OSError,
    zipfile.BadZipFile,
    AttributeError,
    TypeError,
)
_HF_WEIGHTS_NAMES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def detect_clip_file_format(path: str | os.PathLike[str]) -> FileFormat:
    """Decide how a CLIP weight file is stored by looking at its bytes.

    Returns:
        ``TORCHSCRIPT`` for zip archives holding ``constants.pkl`` (``torch.jit.save``),
        ``SAFETENSORS`` for a safetensors header, else ``STATE_DICT``.

    Raises:
        ModelError: The file does not exist or cannot be read.
    """
    p = Path(path)
    try:
        with open(p, "rb") as f:
            head = f.read(9)
        if zipfile.is_zipfile(p):
            with zipfile.ZipFile(p) as z:
                if any(n.endswith("/constants.pkl") or n == "constants.pkl" for n in z.namelist()):
                    return FileFormat.TORCHSCRIPT
            return FileFormat.STATE_DICT
    except OSError as e:
        raise ModelError(f"cannot read CLIP weights {p}: {e.strerror or e}") from e
    if p.suffix == ".safetensors" or (
        len(head) == 9 and head[8:9] == b"{" and struct.unpack("<Q", head[:8])[0] > 0
    ):
        return FileFormat.SAFETENSORS
    return FileFormat.STATE_DICT


def _unwrap(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    """The tensor mapping inside a loaded checkpoint (``state_dict``/``model`` wrappers removed)."""
    for _ in range(3):
        if isinstance(obj, Mapping) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
            inner = next(
                (obj[k] for k in ("state_dict", "model", "module") if isinstance(obj.get(k), Mapping)), None
            )
            if inner is None:
                break
            obj = inner
    if not isinstance(obj, Mapping):
        raise ModelError(f"{path} holds a {type(obj).__name__}, not a state dict of CLIP weights")
    not_tensors = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise ModelError(
            f"{path} is not a CLIP state dict: entries {not_tensors[:5]} are not tensors "
            f"(top-level keys {list(obj)[:8]}); give a state dict, a safetensors file or an OpenAI archive"
        )
    return dict(obj)


def to_openai_keys(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename CLIP weights to OpenAI key names.

    Strips ``module.`` (DataParallel) prefixes, drops the integer metadata of OpenAI archives
    (``input_resolution``, ``context_length``, ``vocab_size``) and a stored causal ``attn_mask``,
    and maps open_clip ``CustomTextCLIP`` ``text.*`` names of a CLIP-style text tower back to the
    top level. Keys of open_clip's standard ``CLIP`` class already equal OpenAI's and pass through
    unchanged.

    Raises:
        ModelError: The text tower is not CLIP's transformer (e.g. a Hugging Face BERT tower), which
            has no OpenAI layout; build such models with :func:`hf_hub_model`.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        k = key.removeprefix("module.")
        if k in _OPENAI_METADATA_KEYS:
            continue
        if k.startswith("text."):
            rest = k[len("text.") :]
            if not rest.startswith(_TEXT_TOWER_PREFIXES):
                raise ModelError(
                    f"weight {key!r} belongs to a non-CLIP text tower with no OpenAI key layout; "
                    "load this model through its open_clip hf-hub id instead"
                )
            k = rest
        out[k] = value
    return out


def _load_torchscript(path: Path) -> dict[str, torch.Tensor]:
    try:
        with warnings.catch_warnings():
            # torch >= 2.9 flags torch.jit.load as deprecated; OpenAI only publishes TorchScript.
            warnings.simplefilter("ignore", FutureWarning)
            return dict(torch.jit.load(str(path), map_location="cpu").state_dict())
    except (RuntimeError, ValueError) as e:
        raise ModelError(
            f"{path} looks like a TorchScript archive but cannot be loaded ({str(e).splitlines()[0]}); "
            "the file may be truncated: download it again and re-import it"
        ) from e


def _check_trusted(path: Path, trusted: Collection[str]) -> None:
    """Refuse a TorchScript archive whose SHA-256 is not a trusted one (loading it can run code)."""
    digest = sha256_file(path) if trusted else ""
    if digest not in trusted:
        raise ModelError(
            f"{path} is a TorchScript archive (sha256 {digest or 'not computed'}) that matches no registry "
            "checksum and no imported file; TorchScript can run code when loaded, so it is refused. "
            "Import it for its registry entry ('medzsad weights import NAME FILE' checks the sha256) and "
            "use the entry name, or convert it to safetensors"
        )


def _load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except TORCH_LOAD_ERRORS as e:
        first = str(e).splitlines()[0] if str(e) else ""
        raise ModelError(
            f"{path} is not a readable torch state dict ({type(e).__name__}: {first}); "
            "files that need full pickle are refused (weights_only=True): convert them to safetensors"
        ) from e
    return _unwrap(obj, path)


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelError(f"{path} is not a readable safetensors file ({e}); download it again") from e


def read_clip_state_dict(
    path: str | os.PathLike[str], *, trusted_sha256: Collection[str] = ()
) -> dict[str, torch.Tensor]:
    """Read CLIP weights from an OpenAI archive, a torch state dict or a safetensors file.

    Args:
        path: Weight file.
        trusted_sha256: SHA-256 digests a TorchScript archive may have; an archive whose digest is
            not among them is refused before ``torch.jit.load`` sees it.

    Returns:
        ``{name: tensor}`` with OpenAI key names on CPU; floating tensors are float32 (OpenAI
        archives store float16), integer tensors keep their dtype.

    Raises:
        ModelError: Missing, truncated or unrecognised file (the message names it).
    """
    p = Path(path)
    if not p.is_file():
        raise ModelError(f"CLIP weight file {p} does not exist")
    fmt = detect_clip_file_format(p)
    log.debug("reading CLIP weights %s as %s", p, fmt.value)
    if fmt is FileFormat.TORCHSCRIPT:
        _check_trusted(p, trusted_sha256)
        raw = _load_torchscript(p)
    elif fmt is FileFormat.SAFETENSORS:
        raw = _load_safetensors(p)
    else:
        raw = _load_state_dict(p)
    return {k: (v.float() if v.is_floating_point() else v) for k, v in to_openai_keys(raw).items()}


def _hub_lookup(
    repo_id: str, filenames: tuple[str, ...], cache_dir: str | os.PathLike[str] | None
) -> Path | None:
    """The first of ``filenames`` present in the Hugging Face hub cache for ``repo_id`` (no network)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    for name in filenames:
        hit = try_to_load_from_cache(repo_id, name, cache_dir=os.fspath(cache_dir) if cache_dir else None)
        if isinstance(hit, str) and Path(hit).is_file():
            return Path(hit)
    return None


def _pretrained_candidates(
    arch: str, tag: str, cache_dir: str | os.PathLike[str] | None
) -> list[tuple[str, Any]]:
    """``(description, locator)`` pairs where open_clip would keep ``arch``/``tag`` weights."""
    import open_clip

    cfg = open_clip.pretrained.get_pretrained_cfg(arch, tag)
    if not cfg:
        raise ModelError(
            f"open_clip has no pretrained tag {tag!r} for {arch!r}; "
            f"known tags: {open_clip.list_pretrained_tags_by_model(arch)}"
        )
    out: list[tuple[str, Any]] = []
    if cfg.get("hf_hub"):
        repo_id, filename = os.path.split(cfg["hf_hub"])
        names = (filename,) if filename else _HF_WEIGHTS_NAMES
        out.append((f"Hugging Face hub cache {repo_id}", (repo_id, names)))
    if cfg.get("url"):
        folder = Path(cache_dir) if cache_dir else Path.home() / ".cache" / "clip"
        out.append((str(folder / os.path.basename(cfg["url"])), folder / os.path.basename(cfg["url"])))
    return out


def open_clip_pretrained(arch: str, tag: str, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The weight file of an open_clip pretrained tag, if open_clip or the hub already cached it.

    Looks where ``open_clip.pretrained.download_pretrained`` would put it (the Hugging Face hub cache
    for ``hf_hub`` tags, ``cache_dir`` or ``~/.cache/clip`` for URL tags) and never downloads.

    Raises:
        ModelError: Unknown tag, or not cached (the message lists where it looked).
    """
    looked = []
    for description, locator in _pretrained_candidates(arch, tag, cache_dir):
        looked.append(description)
        if isinstance(locator, Path):
            if locator.is_file():
                return locator
        else:
            hit = _hub_lookup(locator[0], locator[1], cache_dir)
            if hit is not None:
                return hit
    raise ModelError(
        f"open_clip weights {arch}/{tag} are not cached (looked in: {'; '.join(looked)}); fetch them on "
        "a connected machine, or use 'medzsad weights import' with the downloaded file"
    )


def find_in_hub_cache(entry: WeightEntry) -> Path | None:
    """Cached weights of ``entry`` outside the medzsad cache (open_clip/hub caches), or ``None``."""
    if isinstance(entry.source, tuple):
        try:
            return open_clip_pretrained(*entry.source)
        except ModelError:
            return None
    if isinstance(entry.source, str) and entry.source.startswith("hf-hub:"):
        return _hub_lookup(entry.source[len("hf-hub:") :], _HF_WEIGHTS_NAMES, None)
    return None


@contextlib.contextmanager
def offline_hub(enabled: bool = True) -> Iterator[None]:
    """Force the Hugging Face hub offline inside the block, restoring the previous state after.

    ``huggingface_hub`` reads ``HF_HUB_OFFLINE`` once at import, so the module constant is switched
    as well as the environment variable; both are restored in ``finally``.
    """
    if not enabled:
        yield
        return
    import huggingface_hub.constants as hf_constants

    old_env = os.environ.get("HF_HUB_OFFLINE")
    old_const = hf_constants.HF_HUB_OFFLINE
    os.environ["HF_HUB_OFFLINE"] = "1"
    hf_constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        hf_constants.HF_HUB_OFFLINE = old_const
        if old_env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = old_env


@dataclass(frozen=True)
class HubModel:
    """An open_clip model built from an ``hf-hub:`` id.

    Attributes:
        model: The open_clip model (eval mode, float32, CPU).
        preprocess: Its validation transform (PIL image -> ``(3, S, S)`` float32, normalised).
        model_cfg: The ``model_cfg`` of the repository's ``open_clip_config.json`` (``{}`` if absent).
    """

    model: torch.nn.Module
    preprocess: Any
    model_cfg: dict[str, Any]


def hf_hub_model(
    hf_id: str, cache_dir: str | os.PathLike[str] | None = None, offline: bool = True
) -> HubModel:
    """Build an open_clip ``hf-hub:`` model from the hub cache (``offline=False`` may download).

    Raises:
        ModelError: Not cached (with instructions), or open_clip cannot build it (e.g. the text tower
            needs ``transformers``).
    """
    import open_clip

    model_name = hf_id if hf_id.startswith("hf-hub:") else f"hf-hub:{hf_id}"
    repo_id = model_name[len("hf-hub:") :]
    config_path = _hub_lookup(repo_id, ("open_clip_config.json",), cache_dir)
    if offline and (config_path is None or _hub_lookup(repo_id, _HF_WEIGHTS_NAMES, cache_dir) is None):
        raise ModelError(
            f"{model_name} is not in the Hugging Face hub cache ({cache_dir or 'default HF cache'}); on a "
            f"connected machine run open_clip.create_model_and_transforms('{model_name}') and copy its "
            "~/.cache/huggingface/hub folder here (set HF_HOME if it lives elsewhere)"
        )
    try:
        with offline_hub(offline):
            model, _, preprocess = open_clip.create_model_and_transforms(
                model_name, cache_dir=str(cache_dir) if cache_dir else None
            )
    except (RuntimeError, OSError, ImportError, ValueError) as e:
        raise ModelError(f"open_clip could not build {model_name}: {e}") from e
    cfg: dict[str, Any] = {}
    config_path = config_path or _hub_lookup(repo_id, ("open_clip_config.json",), cache_dir)
    if config_path is not None:
        cfg = dict(json.loads(config_path.read_text(encoding="utf-8")).get("model_cfg", {}))
    return HubModel(model=model.float().eval(), preprocess=preprocess, model_cfg=cfg)
