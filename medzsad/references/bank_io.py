"""Reference banks on disk: one safetensors file, fp16 features, JSON metadata.

The file holds ``features`` ``(L, M, D)`` float16 and ``positions`` ``(M,)`` float32 (see
:class:`~medzsad.model.references.PatchBank`) and, in the safetensors header metadata, a JSON
object (:class:`BankInfo`): schema version, model hash, the safe ids of the reference studies and
how the bank was built. No PHI: safe ids only. Written atomically (temp file + rename).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from medzsad.errors import ConfigError, InputError
from medzsad.fileio import atomic_path
from medzsad.model.references import PatchBank

__all__ = ["BankInfo", "BANK_FILE", "SCHEMA_VERSION", "save_bank", "load_bank", "check_safe_ids"]

#: Version of the bank file layout; a newer file is refused.
SCHEMA_VERSION = 1
#: The bank file inside a profile folder.
BANK_FILE = "references.safetensors"

_META_KEY = "medzsad.references"
_SAFE_ID = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$")


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
    """

    model_hash: str
    reference_ids: tuple[str, ...]
    seed: int = 0
    coreset_ratio: float = 1.0
    n_patches_full: int = 0
    schema_version: int = SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict)


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


def save_bank(path: str | Path, bank: PatchBank, info: BankInfo) -> Path:
    """Write ``bank`` (features as float16) with ``info`` to ``path`` atomically.

    Raises:
        ConfigError: Unsafe reference ids.
        OutputError: The folder is not writable.
    """
    from safetensors.torch import save_file

    check_safe_ids(info.reference_ids, str(path))
    tensors = {
        "features": bank.features.to("cpu", torch.float16).contiguous(),
        "positions": bank.positions.to("cpu", torch.float32).contiguous(),
    }
    meta = {
        _META_KEY: json.dumps({**asdict(info), "reference_ids": list(info.reference_ids)}, sort_keys=True)
    }
    target = Path(path)
    with atomic_path(target) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return target


def load_bank(path: str | Path, *, model_hash: str | None = None) -> tuple[PatchBank, BankInfo]:
    """Read a bank file.

    Args:
        path: The ``.safetensors`` file.
        model_hash: When given, the bank must have been built with this model.

    Returns:
        ``(bank with float16 features on the CPU, info)``.

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
    return _bank(tensors, p), info


def _info(raw: dict[str, Any], p: Path) -> BankInfo:
    version = int(raw.get("schema_version", -1))
    if version > SCHEMA_VERSION:
        raise InputError(
            f"reference bank {p} has schema version {version}; this medzsad reads <= {SCHEMA_VERSION}: "
            "upgrade medzsad"
        )
    try:
        info = BankInfo(**{**raw, "reference_ids": tuple(raw["reference_ids"])})
    except (TypeError, KeyError) as e:
        raise InputError(f"reference bank {p}: malformed metadata ({e})") from e
    check_safe_ids(info.reference_ids, str(p))
    return info


def _bank(tensors: dict[str, torch.Tensor], p: Path) -> PatchBank:
    feats, pos = tensors.get("features"), tensors.get("positions")
    if feats is None or pos is None or feats.ndim != 3 or pos.ndim != 1 or feats.shape[1] != pos.shape[0]:
        shapes = {k: tuple(v.shape) for k, v in tensors.items()}
        raise InputError(
            f"reference bank {p}: expected features (L, M, D) and positions (M,), found {shapes}"
        )
    if bool((pos[1:] < pos[:-1]).any()):
        raise InputError(f"reference bank {p}: positions are not sorted; the file was not written by medzsad")
    return PatchBank(feats, pos)
