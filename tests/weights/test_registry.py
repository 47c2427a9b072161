from __future__ import annotations

import subprocess
import sys

import pytest

from medzsad.errors import ModelError
from medzsad.weights.registry import (
    DEFAULT_CLIP_WEIGHTS,
    DEFAULT_PROMPT_WEIGHTS,
    FileFormat,
    WeightEntry,
    WeightKind,
    get_weight_entry,
    list_weight_entries,
)


def test_names_are_unique_arch_dot_tag():
    names = [e.name for e in list_weight_entries()]
    assert len(names) == len(set(names))
    for name in names:
        arch, tag = name.split(".")
        assert arch and tag and name == name.lower()


def test_required_entries_present():
    names = {e.name for e in list_weight_entries()}
    assert {
        "clip_vitl14_336.openai",
        "clip_vitb16.openai",
        "clip_vitl14.openai",
        "biomedclip.hf",
        "anomalyclip_vitl14_336.mvtec",
        "anomalyclip_vitl14_336.visa",
    } <= names
    assert get_weight_entry(DEFAULT_CLIP_WEIGHTS).architecture == "ViT-L-14-336"


@pytest.mark.parametrize("name", ["clip_vitl14_336.openai", "clip_vitb16.openai", "clip_vitl14.openai"])
def test_openai_sha256_is_the_url_folder(name):
    entry = get_weight_entry(name)
    assert entry.file_format is FileFormat.TORCHSCRIPT
    assert entry.urls[0].split("/")[-2] == entry.sha256
    assert entry.urls[0].endswith("/" + entry.filename)
    assert entry.source == (entry.architecture, "openai")


def test_default_prompt_is_the_mvtec_trained_checkpoint():
    entry = get_weight_entry(DEFAULT_PROMPT_WEIGHTS)
    assert entry.kind is WeightKind.PROMPT
    assert entry.file_format is FileFormat.OFFICIAL_PROMPT
    # The MVTec-trained prompts live in the *_visa folder (trained on MVTec, evaluated on VisA).
    assert entry.urls[0] == (
        "https://github.com/zqhang/AnomalyCLIP/raw/main/checkpoints/9_12_4_multiscale_visa/epoch_15.pth"
    )
    visa = get_weight_entry("anomalyclip_vitl14_336.visa")
    assert "/9_12_4_multiscale/epoch_15.pth" in visa.urls[0]
    for e in (entry, visa):
        assert e.sha256 is None and "checksum" in e.note
        md = e.metadata
        assert (md["n_ctx"], md["depth"], md["t_n_ctx"], md["image_size"]) == (12, 9, 4, 518)
        assert md["dpam_layer_reference"] == 20 and md["dpam_layers"] == 19
        assert tuple(md["feature_layers"]) == (24,)
        assert md["clip_weights"] == DEFAULT_CLIP_WEIGHTS


def test_metadata_is_read_only():
    entry = get_weight_entry(DEFAULT_PROMPT_WEIGHTS)
    with pytest.raises(TypeError):
        entry.metadata["n_ctx"] = 3  # type: ignore[index]


def test_list_by_kind():
    prompts = list_weight_entries("prompt")
    assert prompts and all(e.kind is WeightKind.PROMPT for e in prompts)
    assert all(e.kind is WeightKind.CLIP for e in list_weight_entries(WeightKind.CLIP))


def test_unknown_name_suggests_close_match():
    with pytest.raises(ModelError, match=r"clip_vitl14_336\.openai") as err:
        get_weight_entry("clip_vitl14_336.opena")
    assert "weights list" in str(err.value)


def test_invalid_entry_rejected():
    with pytest.raises(ModelError, match="64 lower-case hex"):
        WeightEntry("a.b", "clip", "x", "f.pt", "state_dict", (), "ABC", "l", "d")
    with pytest.raises(ModelError, match="arch.tag"):
        WeightEntry("nodot", "clip", "x", "f.pt", "state_dict", (), None, "l", "d")
    with pytest.raises(ModelError, match="plain file name"):
        WeightEntry("a.b", "clip", "x", "../f.pt", "state_dict", (), None, "l", "d")


def test_registry_imports_no_torch():
    code = "import sys, medzsad.weights.registry, medzsad.weights.cache; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
