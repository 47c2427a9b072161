"""The cohort's model section loads real weight files (not only the tiny smoke model)."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from medzsad.config import parse_cohort
from medzsad.errors import ModelError
from medzsad.model.tiny import tiny_anomalyclip
from medzsad.study.build import build_scorer
from medzsad.weights.prompt_checkpoint import save_prompt_checkpoint


def _cohort(tmp_path, clip: str, prompts: str):
    text = f"""
name: w
inputs: {{paths: [x.nii.gz]}}
model:
  backbone: tiny
  clip_weights: {clip}
  prompt_weights: {prompts}
  image_size: 112
  feature_layers: [2, 4, 6, 8]
  dpam_layers: 6
  device: cpu
"""
    return parse_cohort(text, "w.yaml", tmp_path)


def test_weight_files_by_path_build_the_same_model(tmp_path):
    reference = tiny_anomalyclip(seed=7)
    save_file(
        {k: v.contiguous() for k, v in reference.clip.state_dict().items()}, tmp_path / "clip.safetensors"
    )
    save_prompt_checkpoint(
        tmp_path / "prompts.json", reference.prompt_learner.state_dict(), reference.config.to_dict()
    )
    scorer = build_scorer(_cohort(tmp_path, "clip.safetensors", "prompts.json"))
    x = torch.randn(2, 3, 112, 112, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = reference(x)
    got = scorer.score(x, torch.full((2,), 0.5))  # zero-shot: positions are not used
    torch.testing.assert_close(got.maps, expected.maps, atol=1e-6, rtol=0)
    torch.testing.assert_close(got.image_scores, expected.image_scores, atol=1e-6, rtol=0)
    assert scorer.info.weights["clip"]["path"].endswith("clip.safetensors")
    assert not scorer.info.smoke


def test_missing_registry_weights_fail_fast_with_the_import_command(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDZSAD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HOME", str(tmp_path))
    cfg = parse_cohort("name: w\ninputs: {paths: [x.nii.gz]}\nmodel: {device: cpu}\n", "w.yaml", tmp_path)
    with pytest.raises(ModelError, match="medzsad weights import clip_vitl14_336.openai") as e:
        build_scorer(cfg)
    # both missing files are named at once, so an offline user fixes everything in one go
    assert "medzsad weights import anomalyclip_vitl14_336.mvtec" in str(e.value)
