"""AnomalyCLIP model behaviour on a tiny random backbone (no weights, no network)."""

from __future__ import annotations

import pytest
import torch
from open_clip.model import CLIP

from medzsad.errors import ModelError
from medzsad.model.build import build_anomalyclip, build_clip, clip_model_config, normalize_clip_keys
from medzsad.model.config import AnomalyCLIPConfig, list_architectures, load_architecture
from medzsad.model.inference import Detector
from medzsad.model.tiny import tiny_anomalyclip


@pytest.fixture(scope="module")
def detector() -> Detector:
    return Detector(tiny_anomalyclip(image_size=112, seed=3))


def test_scores_and_maps_have_documented_shapes_and_ranges(detector):
    x = torch.randn(3, 3, 112, 112, generator=torch.Generator().manual_seed(0))
    r = detector.score(x, return_layer_maps=True)
    assert r.image_scores.shape == (3,) and r.maps.shape == (3, 112, 112)
    assert r.layer_maps is not None and r.layer_maps.shape == (4, 3, 112, 112)
    assert torch.all((r.image_scores >= 0) & (r.image_scores <= 1))
    assert torch.all((r.layer_maps >= 0) & (r.layer_maps <= 1))
    assert float(r.maps.max()) <= 4.0 and float(r.maps.min()) >= 0.0
    assert r.maps.dtype == torch.float32


def test_batch_results_equal_single_image_results(detector):
    x = torch.randn(5, 3, 112, 112, generator=torch.Generator().manual_seed(1))
    batch = detector.score(x)
    singles = [detector.score(x[i : i + 1]) for i in range(5)]
    torch.testing.assert_close(batch.maps, torch.cat([s.maps for s in singles]), atol=1e-6, rtol=0)
    torch.testing.assert_close(
        batch.image_scores, torch.cat([s.image_scores for s in singles]), atol=1e-6, rtol=0
    )


def test_backbone_parameters_never_change_across_calls(detector):
    before = {k: v.clone() for k, v in detector.model.state_dict().items()}
    for size in (1, 4):
        detector.score(torch.randn(size, 3, 112, 112))
    after = detector.model.state_dict()
    assert before.keys() == after.keys()
    for k in before:
        assert torch.equal(before[k], after[k]), k
    assert not any(p.requires_grad for p in detector.model.clip.parameters())


def test_positional_embedding_resized_once_at_build():
    model = tiny_anomalyclip(image_size=168, seed=0)
    pos = model.clip.visual.positional_embedding
    assert pos.shape == (1 + 12 * 12, 128)
    with pytest.raises(ModelError, match="built for 12x12"):
        model(torch.randn(1, 3, 112, 112))


def test_text_features_are_cached_and_normalised(detector):
    t1 = detector.text_features()
    t2 = detector.text_features()
    assert t1 is t2
    torch.testing.assert_close(t1.norm(dim=-1), torch.ones(2))


def test_reduced_precision_needs_cuda():
    with pytest.raises(ModelError, match="needs a CUDA device"):
        Detector(tiny_anomalyclip(), device="cpu", precision="fp16")
    with pytest.raises(ModelError, match="not one of"):
        Detector(tiny_anomalyclip(), precision="int8")


def test_wrong_input_shape_is_a_model_error(detector):
    with pytest.raises(ModelError, match=r"\(B, 3, 112, 112\)"):
        detector.score(torch.randn(2, 1, 112, 112))


def _fp16_exact(sd):
    return {k: (v.half().float() if v.is_floating_point() else v) for k, v in sd.items()}


def test_openai_and_open_clip_state_dicts_give_identical_outputs():
    config = load_architecture("anomalyclip_tiny")
    torch.manual_seed(11)
    reference = CLIP(**clip_model_config(config))
    open_clip_sd = _fp16_exact(reference.state_dict())
    # OpenAI archives: float16 tensors, extra metadata entries, 'module.' prefixes in some exports
    openai_sd = {f"module.{k}": v.half() if v.is_floating_point() else v for k, v in open_clip_sd.items()}
    openai_sd["module.input_resolution"] = torch.tensor(56)
    openai_sd["module.context_length"] = torch.tensor(77)
    openai_sd["module.vocab_size"] = torch.tensor(49408)
    # open_clip CustomTextCLIP layout puts the text tower under 'text.'
    custom_sd = {}
    for k, v in open_clip_sd.items():
        custom_sd[k if k.startswith(("visual.", "logit_")) else f"text.{k}"] = v
    x = torch.randn(2, 3, 112, 112, generator=torch.Generator().manual_seed(5))
    outs = []
    for sd in (open_clip_sd, openai_sd, custom_sd):
        model = build_anomalyclip(config, normalize_clip_keys(sd), seed=0)
        outs.append(Detector(model).score(x))
    for other in outs[1:]:
        assert torch.equal(outs[0].maps, other.maps)
        assert torch.equal(outs[0].image_scores, other.image_scores)


def test_weights_that_do_not_fit_raise_model_error():
    config = load_architecture("anomalyclip_tiny")
    sd = CLIP(**clip_model_config(config)).state_dict()
    sd.pop("visual.proj")
    with pytest.raises(ModelError, match="missing"):
        build_clip(config, sd)
    sd2 = CLIP(**clip_model_config(config)).state_dict()
    sd2["visual.conv1.weight"] = torch.zeros(3, 3, 3, 3)
    with pytest.raises(ModelError, match="do not fit"):
        build_clip(config, sd2)


def test_prompt_checkpoint_shape_mismatch_is_reported():
    model = tiny_anomalyclip()
    sd = model.prompt_learner.state_dict()
    sd["ctx_pos"] = torch.zeros(1, 1, 7, 64)
    with pytest.raises(ModelError, match="ctx_pos"):
        build_anomalyclip(model.config, None, sd, seed=0)


def test_shipped_architectures_validate():
    names = list_architectures()
    assert {"anomalyclip_vitl14_336", "anomalyclip_tiny", "anomalyclip_vitl14_336_multilayer"} <= set(names)
    default = load_architecture("anomalyclip_vitl14_336")
    assert (default.image_size, default.n_ctx, default.depth, default.t_n_ctx) == (518, 12, 9, 4)
    assert default.dpam_layers == 19 and default.feature_layers == (24,)
    assert load_architecture("anomalyclip_vitl14_336_multilayer").feature_layers == (6, 12, 18, 24)
    with pytest.raises(ModelError, match="unknown AnomalyCLIP config keys"):
        AnomalyCLIPConfig.from_dict({"n_ctxx": 3})
    with pytest.raises(ModelError, match="t_n_ctx"):
        AnomalyCLIPConfig(n_ctx=2, t_n_ctx=4)


def test_vitl14_336_builds_at_518_with_dpam_on_last_19_blocks():
    """The real default architecture (random weights): grid 37x37, 19 DPAM blocks out of 24."""
    cfg = load_architecture("anomalyclip_vitl14_336")
    clip = build_clip(cfg)
    assert clip.visual.positional_embedding.shape == (1 + 37 * 37, 1024)
    model = build_anomalyclip(cfg, seed=0)
    assert model.vision.first_dpam == 5
    assert len(model.prompt_learner.deep_prompts) == 8
    assert model.prompt_learner.ctx_pos.shape == (1, 1, 12, 768)


def test_dpam_changes_tapped_tokens_but_not_global_feature():
    """DPAM only alters the second stream: the class token of the original stream is unchanged."""
    x = torch.randn(1, 3, 112, 112, generator=torch.Generator().manual_seed(2))
    with_dpam = tiny_anomalyclip(seed=4, dpam_layers=6)
    without = tiny_anomalyclip(seed=4, dpam_layers=0)
    a, b = with_dpam.encode_image(x), without.encode_image(x)
    torch.testing.assert_close(a.image_features, b.image_features, atol=1e-5, rtol=1e-5)
    assert torch.equal(a.patch_tokens[0], b.patch_tokens[0])  # block 2 is before the DPAM blocks
    assert (a.patch_tokens[-1] - b.patch_tokens[-1]).abs().max() > 1e-3
