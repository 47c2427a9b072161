"""The cohort scorer with references: each slice meets the reference patches of its own body level."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from tiny_model import TINY_MODEL

from medzsad.cohort.inputs import collect_studies
from medzsad.config import load_cohort
from medzsad.model.reference_scoring import bank_from_images
from medzsad.study.build import build_scorer
from medzsad.study.loading import InputSpec, default_loader
from medzsad.study.scorer import ReferenceScorer
from medzsad.study.scoring import score_study
from medzsad.transforms.clip_input import clip_normalise


def test_slices_are_compared_at_their_own_level(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    g = np.indices((24, 24, 10)).astype(np.float32)
    head = (((g - 11.5) / 10.0) ** 2).sum(0) <= 1.0
    data = np.where(head, 400 + 80 * rng.standard_normal(head.shape) + 30 * g[2], 0).astype(np.float32)
    nib.save(nib.Nifti1Image(data, np.diag([1.5, 1.5, -3.0, 1.0])), tmp_path / "n.nii.gz")
    (tmp_path / "m.csv").write_text("study_id,path\nn0,n.nii.gz\n")
    (tmp_path / "c.yaml").write_text(f"name: r\ninputs:\n  manifest: {tmp_path / 'm.csv'}\n{TINY_MODEL}")
    cfg = load_cohort(tmp_path / "c.yaml")
    base = build_scorer(cfg)
    prepared = default_loader(collect_studies(cfg)[0], cfg, InputSpec.of(base))
    pos = torch.from_numpy(prepared.positions)  # loading gives every slice its body coordinate
    assert len(pos) >= 6 and float(pos.min()) == 0.0 and float(pos.max()) == 1.0
    x = clip_normalise(prepared.images, base.mean, base.std)  # a study holds model-size slices
    right = bank_from_images(base.detector, x, pos)
    wrong = bank_from_images(base.detector, x, 1.0 - pos)  # levels mirrored
    # the one batch loop every executor uses carries the positions (batches of 4)
    own = score_study(prepared, ReferenceScorer(base, right, 1.0, 0.05, ("n0",)), 4)
    other = score_study(prepared, ReferenceScorer(base, wrong, 1.0, 0.05, ("n0",)), 4)
    assert float(own.maps.max()) < 0.01  # every slice found itself (maps: the mean over the layers)
    assert float(other.maps.max()) > 0.05  # compared with the mirrored level instead
    zero = score_study(prepared, base, 4)
    assert not np.allclose(zero.maps, own.maps)
    assert torch.is_tensor(pos) and pos.dtype == torch.float32
