"""Reference banks on disk: one safetensors file, fp16 features, JSON metadata.

The file holds, per scored axis, ``features`` ``(L, M, D)`` float16, ``positions`` ``(M,)`` float32
and ``anomaly`` ``(L, M)`` float32 (see :class:`~medzsad.model.references.PatchBank`): the first
axis under those plain names, every further axis under ``<name>.<axis>`` (schema 2; a schema-1
file is one axial bank without ``anomaly``). The safetensors header metadata holds a JSON object
(:class:`BankInfo`): schema version, model hash, the axes, the safe ids of the reference studies
and how the bank was built. No PHI: safe ids only. Written atomically (temp file + rename).
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from medzsad.errors import ConfigError, InputError
from medzsad.fileio import atomic_path
from medzsad.model.references import PatchBank

__all__ = [
    "BankInfo",
    "BANK_FILE",
    "SCHEMA_VERSION",
    "save_bank",
    "save_banks",
    "load_bank",
    "load_banks",
    "check_safe_ids",
    "is_bank_file",
]

#: Version of the bank file layout; a newer file is refused (2: one bank per axis, zero-shot values).
SCHEMA_VERSION = 2
#: The bank file inside a profile folder.
BANK_FILE = "references.safetensors"

_META_KEY = "medzsad.references"
_SAFE_ID = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$")
#: The largest header safetensors itself reads (100 MB).
_MAX_HEADER = 100_000_000


@dataclass(frozen=True)
class BankInfo:
    """What a bank file says about itself.

    Attributes:
        model_hash: Hash of the model whose features the bank holds (a bank only fits that model).
        reference_ids: Safe ids of the reference studies, in the order they were chosen.
        seed: Seed the references (and the coreset) were drawn with.
        coreset_ratio: Kept fraction of patches (1.0: no coreset).
        n_patches_full: Patches before the coreset.
        schema_version: File layout version.
        extra: Free-form numbers (e.g. window used when built).
        axes: The scored axes the file holds a bank for, the first one first.
    """

    model_hash: str
    reference_ids: tuple[str, ...]
    seed: int = 0
    coreset_ratio: float = 1.0
    n_patches_full: int = 0
    schema_version: int = SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict)
    axes: tuple[str, ...] = ("axial",)


def check_safe_ids(ids: tuple[str, ...] | list[str], where: str) -> None:
    """Refuse ids that are not safe folder names (``[A-Za-z0-9._-]``, <= 64 characters).

    Raises:
        ConfigError: An unsafe id (the message says which position, never the id itself).
    """
    bad = [i for i, s in enumerate(ids) if not _SAFE_ID.match(s)]
    if bad:
        raise ConfigError(
            f"{where}: reference ids at positions {bad[:5]} are not safe ids; "
            "pass medzsad.ids.safe_study_id(study_id) values"
        )


def _key(name: str, axis_index: int, axis: str) -> str:
    return name if axis_index == 0 else f"{name}.{axis}"


def save_bank(path: str | Path, bank: PatchBank, info: BankInfo) -> Path:
    """Write one bank (the first of ``info.axes``) with ``info`` to ``path`` atomically.

    Raises:
        ConfigError: Unsafe reference ids.
        OutputError: The folder is not writable.
    """
    return save_banks(path, {info.axes[0]: bank}, replace(info, axes=info.axes[:1]))


def save_banks(path: str | Path, banks: Mapping[str, PatchBank], info: BankInfo) -> Path:
    """Write one bank per axis (features as float16) with ``info`` to ``path`` atomically.

    Args:
        path: The ``.safetensors`` file.
        banks: Axis name -> its bank; the axes of ``info.axes``, in that order.
        info: The metadata.

    Raises:
        ConfigError: Unsafe reference ids, or banks for other axes than ``info.axes``.
        OutputError: The folder is not writable.
    """
    from safetensors.torch import save_file

    check_safe_ids(info.reference_ids, str(path))
    if list(banks) != list(info.axes):
        raise ConfigError(f"{path}: banks for axes {list(banks)} but the metadata names {list(info.axes)}")
    tensors: dict[str, torch.Tensor] = {}
    for i, (axis, bank) in enumerate(banks.items()):
        tensors[_key("features", i, axis)] = bank.features.to("cpu", torch.float16).contiguous()
        tensors[_key("positions", i, axis)] = bank.positions.to("cpu", torch.float32).contiguous()
        if bank.anomaly is not None:
            tensors[_key("anomaly", i, axis)] = bank.anomaly.to("cpu", torch.float32).contiguous()
    meta = {
        _META_KEY: json.dumps(
            {**asdict(info), "reference_ids": list(info.reference_ids), "axes": list(info.axes)},
            sort_keys=True,
        )
    }
    target = Path(path)
    with atomic_path(target) as tmp:
        # safetensors writes through a temporary file of its own (mode 0600, whatever the umask) and
        # renames it onto ``tmp``: give the file the mode an ordinary open() gives, as every other
        # file of a profile folder has
        tmp.touch()
        mode = stat.S_IMODE(tmp.stat().st_mode)
        save_file(tensors, str(tmp), metadata=meta)
        os.chmod(tmp, mode)
    return target


def is_bank_file(path: str | Path) -> bool:
    """Whether ``path`` is a bank file written by medzsad; reads its header only, no tensors.

    A safetensors file starts with the 8-byte little-endian length of a JSON header, whose
    ``__metadata__`` holds the medzsad bank metadata. Anything else (another file, another
    safetensors file, an unreadable one) is not a bank file.
    """
    try:
        with open(path, "rb") as fh:
            n = int.from_bytes(fh.read(8), "little")
            if not 0 < n <= _MAX_HEADER:
                return False
            header = json.loads(fh.read(n))
    except (OSError, ValueError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return False
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    return isinstance(meta, dict) and _META_KEY in meta


def load_bank(path: str | Path, *, model_hash: str | None = None) -> tuple[PatchBank, BankInfo]:
    """Read the first axis's bank of a bank file (see :func:`load_banks`)."""
    banks, info = load_banks(path, model_hash=model_hash)
    return banks[info.axes[0]], info


def load_banks(path: str | Path, *, model_hash: str | None = None) -> tuple[dict[str, PatchBank], BankInfo]:
    """Read a bank file.

    Args:
        path: The ``.safetensors`` file.
        model_hash: When given, the bank must have been built with this model.

    Returns:
        ``(axis name -> bank with float16 features on the CPU, info)``.

    Raises:
        InputError: Missing, unreadable or malformed file, or a newer schema.
        ConfigError: The bank was built with another model.
    """
    from safetensors import SafetensorError, safe_open

    p = Path(path)
    if not p.is_file():
        raise InputError(
            f"reference bank {p} does not exist; build it with `medzsad profile` (profile.references)"
        )
    try:
        with safe_open(str(p), framework="pt") as fh:
            meta = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 (safe_open is not a dict)
        raw = json.loads(meta[_META_KEY])
    except (OSError, KeyError, ValueError, SafetensorError) as e:
        raise InputError(f"reference bank {p} is not a medzsad bank file ({type(e).__name__}: {e})") from e
    info = _info(raw, p)
    if model_hash is not None and info.model_hash != model_hash:
        raise ConfigError(
            f"reference bank {p} was built with model {info.model_hash[:12]}, this cohort uses "
            f"{model_hash[:12]}; rebuild the profile with this model"
        )
    return {axis: _bank(tensors, i, axis, p) for i, axis in enumerate(info.axes)}, info


def _info(raw: dict[str, Any], p: Path) -> BankInfo:
    version = int(raw.get("schema_version", -1))
    if version > SCHEMA_VERSION:
        raise InputError(
            f"reference bank {p} has schema version {version}; this medzsad reads <= {SCHEMA_VERSION}: "
            "upgrade medzsad"
        )
    try:
        axes = tuple(str(a) for a in raw.get("axes", ("axial",)))
        info = BankInfo(**{**raw, "reference_ids": tuple(raw["reference_ids"]), "axes": axes})
    except (TypeError, KeyError) as e:
        raise InputError(f"reference bank {p}: malformed metadata ({e})") from e
    if not info.axes:
        raise InputError(f"reference bank {p}: malformed metadata (no axis)")
    check_safe_ids(info.reference_ids, str(p))
    return info


def _bank(tensors: dict[str, torch.Tensor], i: int, axis: str, p: Path) -> PatchBank:
    feats, pos = tensors.get(_key("features", i, axis)), tensors.get(_key("positions", i, axis))
    anomaly = tensors.get(_key("anomaly", i, axis))
    if feats is None or pos is None or feats.ndim != 3 or pos.ndim != 1 or feats.shape[1] != pos.shape[0]:
        shapes = {k: tuple(v.shape) for k, v in tensors.items()}
        raise InputError(
            f"reference bank {p}: expected features (L, M, D) and positions (M,) for axis {axis}, "
            f"found {shapes}"
        )
    if anomaly is not None and tuple(anomaly.shape) != tuple(feats.shape[:2]):
        raise InputError(f"reference bank {p}: anomaly of shape {tuple(anomaly.shape)} for axis {axis}")
    if bool((pos[1:] < pos[:-1]).any()):
        raise InputError(f"reference bank {p}: positions are not sorted; the file was not written by medzsad")
    return PatchBank(feats, pos, anomaly)
