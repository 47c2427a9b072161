from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from medzsad.errors import ModelError
from medzsad.fileio import sha256_file
from medzsad.weights.clip_files import (
    detect_clip_file_format,
    find_in_hub_cache,
    offline_hub,
    open_clip_pretrained,
    read_clip_state_dict,
    to_openai_keys,
)
from medzsad.weights.manage import load_clip_weights
from medzsad.weights.registry import FileFormat, get_weight_entry

from .conftest import TINY_CLIP_CFG


def _openai_like_archive(model: torch.nn.Module, path: Path) -> None:
    """torch.jit.save of an fp16 module with CLIP's parameter names + OpenAI's metadata buffer."""
    import copy

    half = copy.deepcopy(model).half()
    half.register_buffer("input_resolution", torch.tensor(56))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace_module(
            half, {"encode_image": torch.zeros(1, 3, 56, 56, dtype=torch.half)}, check_trace=False
        )
        torch.jit.save(traced, str(path))


@pytest.fixture(scope="module")
def clip_files(tiny_clip, tmp_path_factory):
    root = tmp_path_factory.mktemp("clip_files")
    sd = {k: v.clone() for k, v in tiny_clip.state_dict().items()}
    torch.save(sd, root / "plain.pt")
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in sd.items()}}, root / "wrapped.pth")
    save_file(sd, str(root / "weights.safetensors"))
    save_file(sd, str(root / "no_suffix_safetensors"))
    _openai_like_archive(tiny_clip, root / "ViT-tiny.pt")
    return root, sd


def test_format_detection(clip_files):
    root, _ = clip_files
    assert detect_clip_file_format(root / "ViT-tiny.pt") is FileFormat.TORCHSCRIPT
    assert detect_clip_file_format(root / "plain.pt") is FileFormat.STATE_DICT
    assert detect_clip_file_format(root / "weights.safetensors") is FileFormat.SAFETENSORS
    assert detect_clip_file_format(root / "no_suffix_safetensors") is FileFormat.SAFETENSORS


def test_three_formats_give_identical_state_dicts(clip_files):
    root, sd = clip_files
    plain = read_clip_state_dict(root / "plain.pt")
    wrapped = read_clip_state_dict(root / "wrapped.pth")
    safe = read_clip_state_dict(root / "weights.safetensors")
    assert set(plain) == set(wrapped) == set(safe) == set(sd)
    for k in sd:
        assert plain[k].dtype == torch.float32
        assert torch.equal(plain[k], sd[k]) and torch.equal(wrapped[k], sd[k]) and torch.equal(safe[k], sd[k])


def test_torchscript_archive_reads_openai_layout(clip_files):
    root, sd = clip_files
    ts = read_clip_state_dict(root / "ViT-tiny.pt", trusted_sha256={sha256_file(root / "ViT-tiny.pt")})
    # metadata and the causal mask are dropped; fp16 storage comes back as float32
    assert set(ts) == set(sd)
    for k in sd:
        assert ts[k].dtype == torch.float32
        assert torch.equal(ts[k], sd[k].half().float()), k


def test_state_dict_builds_the_model(clip_files):
    from medzsad.model.build import build_clip
    from medzsad.model.config import AnomalyCLIPConfig

    root, sd = clip_files
    cfg = AnomalyCLIPConfig(
        backbone="tiny", clip_cfg=TINY_CLIP_CFG, image_size=56, feature_layers=(2,), dpam_layers=1
    )
    archive = root / "ViT-tiny.pt"
    clip = build_clip(cfg, read_clip_state_dict(archive, trusted_sha256={sha256_file(archive)}))
    assert torch.equal(clip.visual.conv1.weight, sd["visual.conv1.weight"].half().float())


def test_load_clip_weights_by_path_and_name(clip_files, home, add_entry):
    from medzsad.weights.import_file import import_weights

    root, sd = clip_files
    by_path = load_clip_weights(root / "weights.safetensors")
    assert by_path.entry is None and torch.equal(by_path.state_dict["text_projection"], sd["text_projection"])
    add_entry("tinyclip.test", None, filename="ViT-tiny.pt", file_format=FileFormat.TORCHSCRIPT)
    import_weights("tinyclip.test", root / "ViT-tiny.pt")
    by_name = load_clip_weights("tinyclip.test")
    assert by_name.entry is not None and by_name.entry.name == "tinyclip.test"
    assert set(by_name.state_dict) == set(sd)
    with pytest.raises(ModelError, match="not CLIP weights"):
        load_clip_weights("anomalyclip_vitl14_336.mvtec")
    with pytest.raises(ModelError, match="medzsad weights import clip_vitb16.openai"):
        load_clip_weights("clip_vitb16.openai")
    with pytest.raises(ModelError, match="hf-hub"):
        load_clip_weights("biomedclip.hf")


def test_untrusted_torchscript_is_never_jit_loaded(clip_files, home, add_entry, monkeypatch):
    """Issue 16: a clip_weights file path that is a TorchScript archive needs a known sha256."""
    from medzsad.weights import clip_files as cf
    from medzsad.weights.import_file import import_weights

    root, sd = clip_files
    archive = root / "ViT-tiny.pt"
    loaded = []
    real = cf._load_torchscript
    monkeypatch.setattr(cf, "_load_torchscript", lambda p: loaded.append(p) or real(p))
    with pytest.raises(ModelError, match="TorchScript archive .* is refused"):
        read_clip_state_dict(archive)
    with pytest.raises(ModelError, match="matches no registry checksum"):
        load_clip_weights(archive)  # a file path: not an imported or registry file
    assert loaded == []
    add_entry("tinyclip.known", None, filename="ViT-tiny.pt", file_format=FileFormat.TORCHSCRIPT)
    import_weights("tinyclip.known", archive)  # records the digest of the imported file
    assert set(load_clip_weights(archive).state_dict) == set(sd)  # the same bytes by path: trusted
    tampered = root / "tampered.pt"
    tampered.write_bytes(archive.read_bytes() + b"\0")
    with pytest.raises(ModelError, match="is refused"):
        load_clip_weights(tampered)
    assert loaded == [archive]


def test_to_openai_keys():
    t = torch.zeros(1)
    out = to_openai_keys(
        {
            "module.visual.proj": t,
            "text.transformer.resblocks.0.ln_1.weight": t,
            "text.token_embedding.weight": t,
            "context_length": torch.tensor(77),
            "attn_mask": t,
            "logit_scale": t,
        }
    )
    assert set(out) == {
        "visual.proj",
        "transformer.resblocks.0.ln_1.weight",
        "token_embedding.weight",
        "logit_scale",
    }
    with pytest.raises(ModelError, match="non-CLIP text tower"):
        to_openai_keys({"text.transformer.encoder.layer.0.attention.self.query.weight": t})


def test_bad_files_are_model_errors(tmp_path, clip_files):
    root, _ = clip_files
    with pytest.raises(ModelError, match="does not exist"):
        read_clip_state_dict(tmp_path / "absent.pt")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes((root / "plain.pt").read_bytes()[:5000])
    with pytest.raises(ModelError, match=str(truncated)):
        read_clip_state_dict(truncated)
    ts_truncated = tmp_path / "ts_truncated.pt"
    data = (root / "ViT-tiny.pt").read_bytes()
    ts_truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError):
        read_clip_state_dict(ts_truncated)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not a header}")
    with pytest.raises(ModelError, match="safetensors"):
        read_clip_state_dict(garbage)
    not_sd = tmp_path / "list.pt"
    torch.save({"epoch": 1, "weights": [1, 2]}, not_sd)
    with pytest.raises(ModelError, match="not tensors"):
        read_clip_state_dict(not_sd)


def test_pickle_needing_file_refused(tmp_path):
    import argparse

    path = tmp_path / "custom.pt"
    torch.save({"args": argparse.Namespace(lr=1e-3)}, path)
    with pytest.raises(ModelError, match="weights_only"):
        read_clip_state_dict(path)


def test_open_clip_pretrained_cache_only(home, tmp_path):
    with pytest.raises(ModelError, match="not cached"):
        open_clip_pretrained("ViT-B-16", "openai")
    with pytest.raises(ModelError, match="no pretrained tag"):
        open_clip_pretrained("ViT-B-16", "no_such_tag")
    url_cache = tmp_path / "clip_cache"
    url_cache.mkdir()
    (url_cache / "ViT-B-16.pt").write_bytes(b"x")
    assert open_clip_pretrained("ViT-B-16", "openai", cache_dir=url_cache) == url_cache / "ViT-B-16.pt"


def test_open_clip_pretrained_finds_hub_cache(home, tmp_path):
    import huggingface_hub.constants

    hub = Path(huggingface_hub.constants.HF_HUB_CACHE)
    repo = hub / "models--timm--vit_large_patch14_clip_336.openai"
    commit = "a" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    (snap / "open_clip_model.safetensors").write_bytes(b"x")
    found = open_clip_pretrained("ViT-L-14-336", "openai")
    assert found == snap / "open_clip_model.safetensors"
    assert find_in_hub_cache(get_weight_entry("clip_vitl14_336.openai")) == found


def test_offline_hub_is_scoped(monkeypatch):
    import os

    import huggingface_hub.constants as c

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    before = c.HF_HUB_OFFLINE
    with pytest.raises(RuntimeError):
        with offline_hub():
            assert c.HF_HUB_OFFLINE is True and os.environ["HF_HUB_OFFLINE"] == "1"
            raise RuntimeError("boom")
    assert c.HF_HUB_OFFLINE == before and "HF_HUB_OFFLINE" not in os.environ


def test_hf_hub_model_not_cached_is_model_error(home):
    from medzsad.weights.clip_files import hf_hub_model

    with pytest.raises(ModelError, match="not in the Hugging Face hub cache"):
        hf_hub_model("hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224")


def test_missing_path_is_reported_as_a_file(home, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelError, match="does not exist"):
        load_clip_weights("weights.safetensors")
    with pytest.raises(ModelError, match="unknown weights"):
        load_clip_weights("clip_vitl14_336.openia")
