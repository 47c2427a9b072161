"""The fast inference engine: SDPA attentions, pruned last block, batch invariance, autocast, compile."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from medzsad.errors import ModelError
from medzsad.model.attention import project_qkv, query_key_attention, value_value_attention
from medzsad.model.dpam_vision import DPAMVisionEncoder
from medzsad.model.inference import Detector
from medzsad.model.precision import precision_deviation, spearman
from medzsad.model.tiny import tiny_anomalyclip


def _explicit_attention(attn: nn.MultiheadAttention, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference arithmetic (AnomalyCLIP ``Attention.forward``), written out with matmul + softmax."""
    bsz, length, width = h.shape
    heads = attn.num_heads
    qkv = torch.nn.functional.linear(h, attn.in_proj_weight, attn.in_proj_bias)
    q, k, v = qkv.reshape(bsz, length, 3, heads, width // heads).permute(2, 0, 3, 1, 4)
    scale = (width // heads) ** -0.5
    a_qk = ((q @ k.transpose(-2, -1)) * scale).softmax(dim=-1)
    a_vv = ((v @ v.transpose(-2, -1)) * scale).softmax(dim=-1)
    out = [(a @ v).transpose(1, 2).reshape(bsz, length, width) for a in (a_vv, a_qk)]
    return attn.out_proj(out[0]), attn.out_proj(out[1])


def _reference_encoder(enc: DPAMVisionEncoder, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The previous engine: every block on every token, explicit attention, DPAM to the last block."""
    v = enc.visual
    x = enc._embed(x)
    dpam, taps = None, []
    for idx, blk in enumerate(v.transformer.resblocks):
        if idx < enc.first_dpam:
            x = blk(x)
            tapped = x
        else:
            vv, qk = _explicit_attention(blk.attn, blk.ln_1(x))
            dpam = (x if dpam is None else dpam) + vv
            x = x + qk
            x = x + blk.mlp(blk.ln_2(x))
            tapped = dpam
        if idx + 1 in enc.feature_layers:
            taps.append(tapped)
    return x[:, 0, :] @ v.proj, [v.ln_post(t) @ v.proj for t in taps]


@pytest.fixture(scope="module")
def small():
    """The tiny model at its native 56 px (4x4 tokens): cheap enough for many calls."""
    return tiny_anomalyclip(image_size=56, seed=3)


def _images(n: int, seed: int) -> torch.Tensor:
    return torch.randn(n, 3, 56, 56, generator=torch.Generator().manual_seed(seed))


def test_sdpa_paths_equal_the_reference_formula_with_its_scale():
    torch.manual_seed(0)
    attn = nn.MultiheadAttention(96, 3, batch_first=True).eval()
    nn.init.normal_(attn.in_proj_weight, std=0.5)  # large logits: a wrong scale shows clearly
    h = torch.randn(2, 17, 96)
    want_vv, want_qk = _explicit_attention(attn, h)
    with torch.no_grad():
        qkv = project_qkv(attn, h)
        got_vv, got_qk = value_value_attention(attn, qkv), query_key_attention(attn, qkv)
    torch.testing.assert_close(got_vv, want_vv, atol=2e-6, rtol=1e-5)
    torch.testing.assert_close(got_qk, want_qk, atol=2e-6, rtol=1e-5)


@pytest.mark.parametrize(
    ("dpam_layers", "feature_layers"),
    [(6, (2, 4, 6, 8)), (6, (3, 5)), (0, (2, 8)), (2, (8,))],
    ids=["default-taps", "dpam-stops-after-block-5", "no-dpam-last-tapped", "dpam-last-only"],
)
def test_pruned_forward_equals_the_full_forward(dpam_layers, feature_layers):
    """Class-token-only last block and the DPAM stream cut after the last tap change nothing."""
    model = tiny_anomalyclip(image_size=56, seed=5, dpam_layers=dpam_layers, feature_layers=feature_layers)
    x = _images(3, 4)
    with torch.no_grad():
        want_img, want_taps = _reference_encoder(model.vision, x)
    got = model.encode_image(x)
    torch.testing.assert_close(got.image_features, want_img, atol=1e-5, rtol=1e-5)
    assert len(got.patch_tokens) == len(want_taps) == len(feature_layers)
    for g, w in zip(got.patch_tokens, want_taps, strict=True):
        torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-5)


def test_results_identical_for_every_batch_composition(small):
    """Scores, maps and layer maps of an image are bit-identical whatever batch it is scored in."""
    det = Detector(small)
    x = _images(6, 11)
    whole = det.score(x, return_layer_maps=True)
    assert whole.layer_maps is not None
    for groups in ([[i] for i in range(6)], [[0, 1], [2, 3, 4, 5]], [[5, 0, 3], [4, 1, 2]]):
        for idx in groups:
            part = det.score(x[idx], return_layer_maps=True)
            assert part.layer_maps is not None
            assert torch.equal(part.image_scores, whole.image_scores[idx]), groups
            assert torch.equal(part.maps, whole.maps[idx]), groups
            assert torch.equal(part.layer_maps, whole.layer_maps[:, idx]), groups


def test_bf16_autocast_on_cpu_stays_close_to_fp32(small):
    dev = precision_deviation(small, _images(3, 7), "bf16", "cpu")
    assert 0 < dev.max_abs_score < 0.02, dev  # bf16 has 8 mantissa bits: it does change something
    assert 0 < dev.max_abs_map < 0.05, dev
    assert dev.min_spearman_map > 0.99, dev


def test_fp16_needs_cuda_and_bf16_runs_on_cpu(small):
    with pytest.raises(ModelError, match="fp16"):
        Detector(small, precision="fp16")
    det = Detector(small, precision="bf16")
    assert det.score(_images(1, 0)).maps.dtype == torch.float32


def test_spearman_is_rank_correlation():
    a = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert spearman(a, a**3) == pytest.approx(1.0)
    assert spearman(a, -a) == pytest.approx(-1.0)
    assert spearman(a, torch.tensor([1.0, 3.0, 2.0, 4.0])) == pytest.approx(0.8)


def test_compile_option_compiles_the_vision_encoder(monkeypatch, small):
    """``compile=True`` routes the vision forward through ``torch.compile`` (static shapes)."""
    calls = []

    def fake_compile(module, **kw):
        calls.append((module, kw))
        return lambda x: module(x)

    monkeypatch.setattr(torch, "compile", fake_compile)
    x = _images(2, 2)
    eager = Detector(small).score(x)
    det = Detector(small, compile=True)
    assert calls == [(small.vision, {"mode": None, "dynamic": False})]
    got = det.score(x)
    assert torch.equal(got.maps, eager.maps) and torch.equal(got.image_scores, eager.image_scores)


def test_cohort_model_compile_key_reaches_the_detector(tmp_path, monkeypatch):
    from medzsad.config import parse_cohort
    from medzsad.study.build import build_scorer

    compiled = []
    monkeypatch.setattr(torch, "compile", lambda module, **kw: compiled.append(kw) or module)
    text = (
        "name: c\ninputs: {paths: [x.nii.gz]}\n"
        "model: {tiny: true, clip_weights: random, prompt_weights: random, image_size: 56, device: cpu, "
        "dpam_layers: 6, feature_layers: [2, 4, 6, 8], compile: true}\n"
    )
    scorer = build_scorer(parse_cohort(text, "c.yaml", tmp_path))
    assert scorer.detector.compiled and compiled == [{"mode": None, "dynamic": False}]
    plain = parse_cohort(text.replace(", compile: true", ""), "c.yaml", tmp_path)
    assert plain.model.compile is False
