"""Model settings: the architecture JSON is the only default; one image-size check, by the real patch."""

from __future__ import annotations

from pathlib import Path

import pytest

from medzsad.config import load_cohort
from medzsad.errors import ModelError
from medzsad.study.build import build_scorer
from medzsad.study.hashing import study_config_hash


def _cohort(tmp_path: Path, model: str) -> Path:
    f = tmp_path / "c.yaml"
    f.write_text(
        f"name: m\ninputs:\n  paths: [{tmp_path}]\nmodel:\n  device: cpu\n"
        "  clip_weights: random\n  prompt_weights: random\n" + model
    )
    return f


def test_image_size_512_with_vit_b16_builds_and_518_is_rejected(tmp_path: Path) -> None:
    cfg = load_cohort(_cohort(tmp_path, "  backbone: ViT-B-16\n  image_size: 512\n"))
    scorer = build_scorer(cfg)
    model = scorer.detector.model
    assert scorer.image_size == 512 and model.config.backbone == "ViT-B-16"
    # the rest comes from the ViT-B-16 architecture JSON, not from the ViT-L one
    assert model.config.feature_layers == (12,) and model.config.dpam_layers == 9
    assert scorer.n_layers == len(model.config.feature_layers)
    bad = load_cohort(_cohort(tmp_path, "  backbone: ViT-B-16\n  image_size: 518\n"))
    with pytest.raises(
        ModelError, match=r"518 is not a multiple of the ViT-B-16 patch size 16; use 512 or 528"
    ):
        build_scorer(bad)


def test_unset_settings_come_from_the_architecture_and_n_layers_from_the_model(tmp_path: Path) -> None:
    cfg = load_cohort(_cohort(tmp_path, "  tiny: true\n"))
    scorer = build_scorer(cfg)
    # anomalyclip_tiny.json: image_size 112, feature_layers [2, 4, 6, 8]
    assert scorer.image_size == 112 and scorer.n_layers == 4
    over = load_cohort(_cohort(tmp_path, "  tiny: true\n  image_size: 56\n  feature_layers: [2, 4]\n"))
    scorer = build_scorer(over)
    assert scorer.image_size == 56 and scorer.n_layers == 2


def test_config_hash_is_of_the_effective_settings(tmp_path: Path) -> None:
    implicit = load_cohort(_cohort(tmp_path, ""))
    explicit = load_cohort(
        _cohort(
            tmp_path,
            "  backbone: ViT-L-14-336\n  image_size: 518\n  feature_layers: [24]\n  dpam_layers: 19\n",
        )
    )
    assert study_config_hash(implicit) == study_config_hash(explicit)
    other = load_cohort(_cohort(tmp_path, "  image_size: 336\n"))
    assert study_config_hash(other) != study_config_hash(implicit)
