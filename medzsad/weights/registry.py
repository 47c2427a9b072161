"""Registry of known weight files: names, URLs, checksums and licences (no torch import).

Names follow ``arch.tag`` (``anomalyclip_vitl14_336.mvtec``): the part before the dot names the
architecture the weights fit, the tag names the training source. The architecture itself (layer
counts, widths) is *not* stored here: it lives in open_clip's model configs and in
``medzsad/model/configs/*.json``, and each entry only points at it (``architecture`` and
``metadata["model_config"]``), the way open_clip keeps ``model_configs/*.json`` apart from
``pretrained.py``.

This module imports nothing heavy, so ``medzsad weights list`` answers instantly.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import Any

from medzsad.errors import ModelError

__all__ = [
    "WeightKind",
    "FileFormat",
    "WeightEntry",
    "DEFAULT_CLIP_WEIGHTS",
    "DEFAULT_PROMPT_WEIGHTS",
    "get_weight_entry",
    "list_weight_entries",
]

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_NAME_RE = re.compile(r"^[a-z0-9_]+\.[a-z0-9_]+$")


class WeightKind(str, Enum):
    """What a weight file holds."""

    CLIP = "clip"
    PROMPT = "prompt"


class FileFormat(str, Enum):
    """How a weight file is stored (decides the reader in :mod:`medzsad.weights.clip_files`)."""

    TORCHSCRIPT = "torchscript"  # OpenAI CLIP archive (torch.jit.save of the whole model)
    STATE_DICT = "state_dict"  # torch.save of a state dict (.pt/.pth/.bin)
    SAFETENSORS = "safetensors"
    OFFICIAL_PROMPT = "official_prompt"  # torch.save({"prompt_learner": state_dict}) of AnomalyCLIP
    HF_HUB = "hf_hub"  # an open_clip ``hf-hub:`` repository (config + weights)


@dataclass(frozen=True)
class WeightEntry:
    """One known weight file.

    Attributes:
        name: Registry name ``arch.tag`` (lower case, one dot).
        kind: ``clip`` backbone or AnomalyCLIP ``prompt`` learner.
        architecture: open_clip model name the weights fit (``ViT-L-14-336``) or an ``hf-hub:`` id.
        filename: File name inside the cache folder ``$MEDZSAD_HOME/weights/<name>/``.
        file_format: Storage format of that file.
        urls: Download locations, tried in order by ``medzsad weights fetch``.
        sha256: Lower-case hex SHA-256 of the file, or ``None`` when the publisher gives none (then
            ``weights import``/``fetch`` record the digest of the file they stored, marked unverified).
        size_bytes: File size when known.
        license: Licence of the weights as published.
        description: One line for ``medzsad weights list``.
        source: Where else the file may already be: ``(open_clip arch, pretrained tag)`` for the
            open_clip/Hugging Face caches, an ``hf-hub:`` id, or ``None``.
        metadata: Extra facts (for prompts: the hyper-parameters the checkpoint was trained with and
            the name of the matching ``medzsad/model/configs`` file).
        note: Caveats shown by ``medzsad weights list --verbose`` and in error messages.
    """

    name: str
    kind: WeightKind
    architecture: str
    filename: str
    file_format: FileFormat
    urls: tuple[str, ...]
    sha256: str | None
    license: str
    description: str
    size_bytes: int | None = None
    source: tuple[str, str] | str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    note: str = ""

    def __post_init__(self) -> None:
        problems = []
        if not _NAME_RE.match(self.name):
            problems.append(f"name {self.name!r} is not 'arch.tag' in lower case")
        if self.sha256 is not None and not _SHA256_RE.match(self.sha256):
            problems.append(f"sha256 {self.sha256!r} is not 64 lower-case hex digits")
        if "/" in self.filename or "\\" in self.filename or not self.filename:
            problems.append(f"filename {self.filename!r} must be a plain file name")
        if problems:
            raise ModelError(f"invalid weight registry entry {self.name!r}: " + "; ".join(problems))
        object.__setattr__(self, "kind", WeightKind(self.kind))
        object.__setattr__(self, "file_format", FileFormat(self.file_format))
        object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))

    @property
    def arch(self) -> str:
        """The ``arch`` half of the name."""
        return self.name.split(".", 1)[0]

    @property
    def tag(self) -> str:
        """The ``tag`` half of the name."""
        return self.name.split(".", 1)[1]


_OPENAI_BASE = "https://openaipublic.azureedge.net/clip/models"
_ANOMALYCLIP_RAW = "https://github.com/zqhang/AnomalyCLIP/raw/main/checkpoints"
_ANOMALYCLIP_RAW2 = "https://raw.githubusercontent.com/zqhang/AnomalyCLIP/main/checkpoints"
_BIOMEDCLIP = "microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224"

# The hex folder of an OpenAI CLIP URL is the SHA-256 of the file (OpenAI's clip.py and open_clip's
# ``download_pretrained_from_url`` verify it that way).
_OPENAI_SHA = {
    "ViT-L-14-336px.pt": "3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02",
    "ViT-B-16.pt": "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f",
    "ViT-L-14.pt": "b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836",
}


def _openai_clip(name: str, arch: str, filename: str, what: str) -> WeightEntry:
    sha = _OPENAI_SHA[filename]
    return WeightEntry(
        name=name,
        kind=WeightKind.CLIP,
        architecture=arch,
        filename=filename,
        file_format=FileFormat.TORCHSCRIPT,
        urls=(f"{_OPENAI_BASE}/{sha}/{filename}",),
        sha256=sha,
        license="MIT (OpenAI CLIP)",
        description=f"OpenAI CLIP {what}, TorchScript archive",
        source=(arch, "openai"),
    )


# Hyper-parameters of the released AnomalyCLIP prompts (train.sh of zqhang/AnomalyCLIP:
# --image_size 518 --depth 9 --n_ctx 12 --t_n_ctx 4; test.py calls DAPM_replace(DPAM_layer=20),
# i.e. the last 19 vision blocks use DPAM). The checkpoints were trained while all four tapped
# layers (--features_list 6 12 18 24) returned the same tokens; upstream now tests with layer 24
# only, so that is the default here. [6, 12, 18, 24] stays available as the
# "anomalyclip_vitl14_336_multilayer" architecture.
_ANOMALYCLIP_HPARAMS: dict[str, Any] = {
    "model_config": "anomalyclip_vitl14_336",
    "backbone": "ViT-L-14-336",
    "clip_weights": "clip_vitl14_336.openai",
    "image_size": 518,
    "n_ctx": 12,
    "depth": 9,
    "t_n_ctx": 4,
    "feature_layers": (24,),
    "trained_features_list": (6, 12, 18, 24),
    "dpam_layer_reference": 20,
    "dpam_layers": 19,
    "epochs": 15,
}

_UNPUBLISHED_SHA = (
    "The authors publish no checksum: 'medzsad weights import/fetch' records the SHA-256 of the "
    "file it stores (marked unverified); pin one with --sha256."
)


def _anomalyclip(name: str, folder: str, trained_on: str, tested_on: str) -> WeightEntry:
    return WeightEntry(
        name=name,
        kind=WeightKind.PROMPT,
        architecture="ViT-L-14-336",
        filename="epoch_15.pth",
        file_format=FileFormat.OFFICIAL_PROMPT,
        urls=(f"{_ANOMALYCLIP_RAW}/{folder}/epoch_15.pth", f"{_ANOMALYCLIP_RAW2}/{folder}/epoch_15.pth"),
        sha256=None,
        license="MIT (zqhang/AnomalyCLIP)",
        description=f"AnomalyCLIP prompts trained on {trained_on} (checkpoints/{folder}/epoch_15.pth)",
        metadata={**_ANOMALYCLIP_HPARAMS, "trained_on": trained_on, "evaluated_on": tested_on},
        note=_UNPUBLISHED_SHA,
    )


_ENTRIES: tuple[WeightEntry, ...] = (
    _openai_clip("clip_vitl14_336.openai", "ViT-L-14-336", "ViT-L-14-336px.pt", "ViT-L/14 at 336 px"),
    _openai_clip("clip_vitb16.openai", "ViT-B-16", "ViT-B-16.pt", "ViT-B/16"),
    _openai_clip("clip_vitl14.openai", "ViT-L-14", "ViT-L-14.pt", "ViT-L/14"),
    WeightEntry(
        name="biomedclip.hf",
        kind=WeightKind.CLIP,
        architecture=f"hf-hub:{_BIOMEDCLIP}",
        filename="open_clip_pytorch_model.bin",
        file_format=FileFormat.HF_HUB,
        urls=(f"https://huggingface.co/{_BIOMEDCLIP}/resolve/main/open_clip_pytorch_model.bin",),
        sha256=None,
        license="MIT (Microsoft BiomedCLIP)",
        description="BiomedCLIP ViT-B/16 + PubMedBERT (open_clip hf-hub; text tower needs transformers)",
        source=f"hf-hub:{_BIOMEDCLIP}",
        note="Read from the Hugging Face hub cache; the PubMedBERT text tower needs 'transformers'.",
    ),
    _anomalyclip(
        "anomalyclip_vitl14_336.mvtec",
        "9_12_4_multiscale_visa",
        "MVTec AD",
        "VisA and the medical benchmarks (the weights for medical use)",
    ),
    _anomalyclip("anomalyclip_vitl14_336.visa", "9_12_4_multiscale", "VisA", "MVTec AD"),
)

_BY_NAME: dict[str, WeightEntry] = {e.name: e for e in _ENTRIES}

DEFAULT_CLIP_WEIGHTS = "clip_vitl14_336.openai"
DEFAULT_PROMPT_WEIGHTS = "anomalyclip_vitl14_336.mvtec"


def list_weight_entries(kind: WeightKind | str | None = None) -> list[WeightEntry]:
    """Known weights in registry order, optionally only one ``kind`` (``clip`` or ``prompt``)."""
    if kind is None:
        return list(_ENTRIES)
    wanted = WeightKind(kind)
    return [e for e in _ENTRIES if e.kind is wanted]


def get_weight_entry(name: str) -> WeightEntry:
    """The registry entry called ``name``.

    Raises:
        ModelError: Unknown name; the message lists the closest known names.
    """
    try:
        return _BY_NAME[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_BY_NAME), n=3, cutoff=0.4)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ModelError(
            f"unknown weights {name!r}.{hint} Known: {', '.join(_BY_NAME)} (see 'medzsad weights list')."
        ) from None
