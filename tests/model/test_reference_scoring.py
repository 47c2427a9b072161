"""Scoring with references on the tiny random model: blend arithmetic and the shared smoothing path."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from medzsad.errors import ModelError
from medzsad.model.inference import Detector
from medzsad.model.reference_scoring import ReferenceDetector, bank_from_images
from medzsad.model.references import SearchOptions, reference_distance
from medzsad.model.scoring import gaussian_smooth
from medzsad.model.tiny import tiny_anomalyclip


@pytest.fixture(scope="module")
def detector() -> Detector:
    return Detector(tiny_anomalyclip(image_size=56, seed=1))


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.randn(4, 3, 56, 56, generator=torch.Generator().manual_seed(0))


def test_weight_zero_is_the_zero_shot_output(detector: Detector, images: torch.Tensor) -> None:
    bank = bank_from_images(detector, images[:2])
    ref = ReferenceDetector(detector, bank, weight=0.0).score(images)
    zero = detector.score(images)
    assert torch.equal(ref.maps, zero.maps)
    assert torch.equal(ref.image_scores, zero.image_scores)


def test_references_score_themselves_near_zero(detector: Detector, images: torch.Tensor) -> None:
    bank = bank_from_images(detector, images[:2], torch.tensor([0.3, 0.7]))
    out = ReferenceDetector(detector, bank, weight=1.0).score(images, torch.tensor([0.3, 0.7, 0.3, 0.7]))
    assert float(out.maps[:2].max()) < 0.01  # fp16 storage: cos >= 1 - 1e-3 per layer
    assert float(out.maps[2:].min()) > 0.05  # unseen random images are far from the bank
    assert float(out.image_scores[:2].max()) < 0.01 < float(out.image_scores[2:].min())


def test_weight_one_map_is_upsampled_distance_smoothed_like_zero_shot(
    detector: Detector, images: torch.Tensor
) -> None:
    """Independent recomputation: bilinear upsample of each layer's distance, sum, Gaussian sigma."""
    bank = bank_from_images(detector, images[:1])
    opts = SearchOptions(window=1.0, chunk_bytes=2**16)
    out = ReferenceDetector(detector, bank, weight=1.0, options=opts).score(images, return_layer_maps=True)
    feats = detector.encode(images)
    dist = reference_distance(feats.patch_tokens, torch.full((4,), 0.5), bank, opts)
    side = int(dist.shape[-1] ** 0.5)
    up = F.interpolate(dist.reshape(-1, 1, side, side), size=(56, 56), mode="bilinear", align_corners=False)
    raw = up.reshape(dist.shape[0], 4, 56, 56).sum(0)
    cfg = detector.model.config
    torch.testing.assert_close(out.maps, gaussian_smooth(raw, cfg.sigma), rtol=0, atol=1e-6)
    assert out.layer_maps is not None and out.layer_maps.shape == (dist.shape[0], 4, 56, 56)
    torch.testing.assert_close(out.image_scores, dist.mean(0).amax(1), rtol=0, atol=1e-6)


def test_half_weight_is_the_mean_of_both(detector: Detector, images: torch.Tensor) -> None:
    bank = bank_from_images(detector, images[:1])
    half = ReferenceDetector(detector, bank, weight=0.5).score(images)
    one = ReferenceDetector(detector, bank, weight=1.0).score(images)
    zero = detector.score(images)
    torch.testing.assert_close(half.maps, 0.5 * (one.maps + zero.maps), rtol=0, atol=1e-5)
    torch.testing.assert_close(
        half.image_scores, 0.5 * (one.image_scores + zero.image_scores), rtol=0, atol=1e-6
    )


def test_weight_out_of_range_is_refused(detector: Detector, images: torch.Tensor) -> None:
    bank = bank_from_images(detector, images[:1])
    with pytest.raises(ModelError, match=r"\[0, 1\]"):
        ReferenceDetector(detector, bank, weight=1.5)
