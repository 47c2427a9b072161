from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from medzsad.errors import ModelError
from medzsad.weights.cache import sha256_file
from medzsad.weights.import_file import import_weights
from medzsad.weights.manage import load_prompt_weights
from medzsad.weights.prompt_checkpoint import (
    load_prompt_checkpoint,
    read_official_prompt_checkpoint,
    read_prompt_weights,
    save_prompt_checkpoint,
)

CONFIG = {"backbone": "tiny", "n_ctx": 12, "depth": 9, "t_n_ctx": 4, "feature_layers": [2, 4, 6, 8]}


@pytest.fixture(scope="module")
def official(tiny_a_prompt_dir):
    return read_official_prompt_checkpoint(tiny_a_prompt_dir / "prompt_learner.pth")


def test_official_checkpoint_matches_fixture_tensors(official, tiny_a_prompt_dir):
    cfg = json.loads((tiny_a_prompt_dir / "config.json").read_text())
    assert set(official) == set(cfg["prompt_learner_parameters"]) | set(cfg["prompt_learner_buffers"])
    assert official["ctx_pos"].shape == (1, 1, 12, 64) and official["ctx_pos"].dtype == torch.float32
    assert official["compound_prompts_text.0"].shape == (4, 64)
    assert official["tokenized_prompts_pos"].dtype == torch.int32
    assert official["tokenized_prompts_pos"].shape == (1, 1, 77)
    reference = load_file(str(tiny_a_prompt_dir / "prompt_learner.safetensors"))
    for k, v in official.items():
        # the fixture stores the projections as float16 holding the exact same values
        assert torch.equal(v, reference[k].to(v.dtype)), k


def test_round_trip_bit_exact(official, tmp_path):
    written = save_prompt_checkpoint(tmp_path / "ckpt", official, CONFIG)
    assert written.tensors_path == tmp_path / "ckpt.safetensors"
    assert (tmp_path / "ckpt.json").is_file()
    loaded = load_prompt_checkpoint(tmp_path / "ckpt")
    assert loaded.config == CONFIG and loaded.sha256 == sha256_file(written.tensors_path)
    assert set(loaded.state_dict) == set(official)
    for k, v in official.items():
        got = loaded.state_dict[k]
        assert got.dtype == v.dtype and got.shape == v.shape
        assert got.numpy().tobytes() == v.numpy().tobytes(), k  # bit-exact, NaN payloads included
    header = json.loads((tmp_path / "ckpt.json").read_text())
    assert header["format"] == "medzsad.prompt_learner" and header["format_version"] == 1
    assert header["tensors_sha256"] == loaded.sha256 and header["tensors_file"] == "ckpt.safetensors"
    assert not list(tmp_path.glob(".tmp-*"))
    with safe_open(str(written.tensors_path), framework="pt") as f:
        assert f.metadata() == {"format": "medzsad.prompt_learner/1"}


def test_round_trip_again_is_byte_identical(official, tmp_path):
    first = save_prompt_checkpoint(tmp_path / "a.safetensors", official, CONFIG)
    again = save_prompt_checkpoint(
        tmp_path / "b.json", load_prompt_checkpoint(tmp_path / "a.json").state_dict, CONFIG
    )
    assert first.sha256 == again.sha256
    assert (tmp_path / "a.safetensors").read_bytes() == (tmp_path / "b.safetensors").read_bytes()


@pytest.mark.parametrize("form", ["dir", "stem", "json", "safetensors"])
def test_path_forms(official, tmp_path, form):
    save_prompt_checkpoint(tmp_path, official, CONFIG)
    assert (tmp_path / "prompt_learner.safetensors").is_file()
    arg = {
        "dir": tmp_path,
        "stem": tmp_path / "prompt_learner",
        "json": tmp_path / "prompt_learner.json",
        "safetensors": tmp_path / "prompt_learner.safetensors",
    }[form]
    assert torch.equal(load_prompt_checkpoint(arg).state_dict["ctx_neg"], official["ctx_neg"])


def test_shared_storage_tensors_are_saved(tmp_path):
    base = torch.arange(8, dtype=torch.float32)
    save_prompt_checkpoint(tmp_path, {"a": base, "b": base[:4]}, {})
    sd = load_prompt_checkpoint(tmp_path).state_dict
    assert torch.equal(sd["b"], base[:4]) and torch.equal(sd["a"], base)


def test_modified_tensors_file_detected(official, tmp_path):
    written = save_prompt_checkpoint(tmp_path, official, CONFIG)
    data = bytearray(written.tensors_path.read_bytes())
    data[-1] ^= 0x01
    written.tensors_path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="SHA-256 expected"):
        load_prompt_checkpoint(tmp_path)


def test_header_errors(official, tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        load_prompt_checkpoint(tmp_path / "absent")
    save_prompt_checkpoint(tmp_path, official, CONFIG)
    header_path = tmp_path / "prompt_learner.json"
    header = json.loads(header_path.read_text())
    header_path.write_text(json.dumps({**header, "format_version": 99}))
    with pytest.raises(ModelError, match="upgrade medzsad"):
        load_prompt_checkpoint(tmp_path)
    header_path.write_text(json.dumps({**header, "format": "something.else"}))
    with pytest.raises(ModelError, match="not a medzsad prompt checkpoint"):
        load_prompt_checkpoint(tmp_path)
    header_path.write_text("{broken")
    with pytest.raises(ModelError, match="cannot read"):
        load_prompt_checkpoint(tmp_path)


def test_save_rejects_bad_input(tmp_path):
    with pytest.raises(ModelError, match="not JSON"):
        save_prompt_checkpoint(tmp_path, {"a": torch.zeros(1)}, {"x": object()})
    with pytest.raises(ModelError, match="not tensors"):
        save_prompt_checkpoint(tmp_path, {"a": 1.0}, {})  # type: ignore[dict-item]
    assert not list(tmp_path.iterdir())


def test_official_errors(tmp_path, tiny_a_prompt_dir):
    with pytest.raises(ModelError, match="does not exist"):
        read_official_prompt_checkpoint(tmp_path / "absent.pth")
    no_key = tmp_path / "no_key.pth"
    torch.save({"model": {"w": torch.zeros(1)}}, no_key)
    with pytest.raises(ModelError, match="'prompt_learner'") as err:
        read_official_prompt_checkpoint(no_key)
    assert "model" in str(err.value)
    not_dict = tmp_path / "tensor.pth"
    torch.save(torch.zeros(2), not_dict)
    with pytest.raises(ModelError, match="prompt_learner"):
        read_official_prompt_checkpoint(not_dict)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes((tiny_a_prompt_dir / "prompt_learner.pth").read_bytes()[:3000])
    with pytest.raises(ModelError, match="truncated"):
        read_official_prompt_checkpoint(truncated)
    bad_values = tmp_path / "bad_values.pth"
    torch.save({"prompt_learner": {"ctx_pos": [1, 2]}}, bad_values)
    with pytest.raises(ModelError, match="not a state dict"):
        read_official_prompt_checkpoint(bad_values)


def test_read_prompt_weights_dispatch(official, tmp_path, tiny_a_prompt_dir):
    pth = read_prompt_weights(tiny_a_prompt_dir / "prompt_learner.pth")
    assert pth.config == {} and pth.sha256 == sha256_file(tiny_a_prompt_dir / "prompt_learner.pth")
    save_prompt_checkpoint(tmp_path, official, CONFIG)
    own = read_prompt_weights(tmp_path / "prompt_learner.json")
    assert own.config == CONFIG
    for k in official:
        assert torch.equal(pth.state_dict[k], own.state_dict[k])


def test_load_prompt_weights_by_registry_name(home, tmp_fixture_pth, official):
    with pytest.raises(ModelError, match="medzsad weights import anomalyclip_vitl14_336.mvtec"):
        load_prompt_weights("anomalyclip_vitl14_336.mvtec")
    import_weights("anomalyclip_vitl14_336.mvtec", tmp_fixture_pth)
    weights = load_prompt_weights("anomalyclip_vitl14_336.mvtec")
    assert weights.entry is not None and weights.config["n_ctx"] == 12
    assert weights.config["model_config"] == "anomalyclip_vitl14_336"
    assert all(torch.equal(weights.state_dict[k], v) for k, v in official.items())
    with pytest.raises(ModelError, match="not prompt weights"):
        load_prompt_weights("clip_vitl14_336.openai")
