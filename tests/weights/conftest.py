"""Fixtures of the weights tests: a temporary MEDZSAD_HOME, test registry entries, a tiny CLIP."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from medzsad.weights import registry
from medzsad.weights.registry import FileFormat, WeightEntry, WeightKind

# tests/weights/conftest.py -> parents[2] is the repository; shared/ sits beside it.
_REPO = Path(__file__).resolve().parents[2]

TINY_CLIP_CFG = {
    "embed_dim": 64,
    "quick_gelu": True,
    "vision_cfg": {"image_size": 56, "layers": 2, "width": 128, "head_width": 64, "patch_size": 14},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 1, "layers": 2},
}


def weights_shared_fixtures() -> Path:
    """``<root>/shared/fixtures`` (or ``$MEDZSAD_SHARED_FIXTURES``)."""
    env = os.environ.get("MEDZSAD_SHARED_FIXTURES")
    for candidate in ([Path(env)] if env else []) + [
        _REPO / ".." / "shared" / "fixtures",
        _REPO / "shared" / "fixtures",
    ]:
        if candidate.is_dir():
            return candidate.resolve()
    raise FileNotFoundError(
        f"shared fixtures not found beside {_REPO}; clone the repo with shared/ beside it"
    )


@pytest.fixture(scope="session")
def tiny_a_prompt_dir() -> Path:
    """The ``tiny_a`` reference folder (official ``prompt_learner.pth`` + same tensors as safetensors)."""
    return weights_shared_fixtures() / "anomalyclip_reference" / "tiny_a"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty MEDZSAD_HOME; ``$HOME`` is moved too so the open_clip/HF caches look empty."""
    medzsad_home = tmp_path / "medzsad_home"
    monkeypatch.setenv("MEDZSAD_HOME", str(medzsad_home))
    monkeypatch.setenv("HOME", str(tmp_path / "user_home"))
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf_hub"))
    return medzsad_home


@pytest.fixture
def add_entry(monkeypatch: pytest.MonkeyPatch) -> Callable[..., WeightEntry]:
    """Register a temporary entry (removed after the test)."""

    def _add(
        name: str,
        sha256: str | None,
        urls: tuple[str, ...] = ("https://example.invalid/w.pt",),
        filename: str = "w.pt",
        kind: WeightKind = WeightKind.CLIP,
        file_format: FileFormat = FileFormat.STATE_DICT,
    ) -> WeightEntry:
        entry = WeightEntry(
            name=name,
            kind=kind,
            architecture="tiny",
            filename=filename,
            file_format=file_format,
            urls=urls,
            sha256=sha256,
            license="test",
            description="test weights",
        )
        monkeypatch.setitem(registry._BY_NAME, name, entry)
        monkeypatch.setattr(registry, "_ENTRIES", (*registry._ENTRIES, entry))
        return entry

    return _add


@pytest.fixture(scope="session")
def tiny_clip() -> torch.nn.Module:
    """A tiny random-init open_clip ``CLIP`` (2 + 2 blocks), float32, eval mode."""
    from open_clip.model import CLIP

    torch.manual_seed(0)
    return CLIP(**TINY_CLIP_CFG).eval()


@pytest.fixture
def tmp_fixture_pth(tmp_path: Path, tiny_a_prompt_dir: Path) -> Path:
    """A copy of the official-format ``prompt_learner.pth`` of ``tiny_a``, named like the release."""
    dst = tmp_path / "downloads" / "epoch_15.pth"
    dst.parent.mkdir()
    dst.write_bytes((tiny_a_prompt_dir / "prompt_learner.pth").read_bytes())
    return dst
