"""A study's maps: the layer mean is taken in the one batch loop, and later stages use them uncopied.

The maps of a 512x512x300 CT at 518 px are 0.3 GB per axis (0.7 GB with three axes at the default
stride). The batch loop turns the model's layer sum into the layer mean batch by batch, so the
writer uses the array it received as it is: no second copy, and nothing after scoring writes to it
(it may be a shared segment another process still maps).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medzsad.config import PipelineConfig, StudyScoreRule
from medzsad.io.volume import SourceInfo, Volume
from medzsad.study.loading import prepare_study_slices
from medzsad.study.postprocess import assemble_heatmap, scored_region, slice_scores, study_score
from medzsad.study.reading import StudyRead
from medzsad.study.scorer import ModelScorer
from medzsad.study.scoring import batches, score_batch, score_study
from medzsad.study.types import SeriesSummary, StudyInput
from medzsad.transforms.clip_input import clip_normalise
from medzsad.transforms.preset import load_preset

THREE = ("axial", "coronal", "sagittal")


@pytest.fixture(scope="module")
def prepared(anatomy: tuple[np.ndarray, np.ndarray], scorer: ModelScorer):
    """The MNI152 crop (4 mm) cut on three axes at the default stride, as a run cuts it."""
    volume = Volume(*anatomy, "MR", SourceInfo(paths=(), kind="nifti"))
    summary = SeriesSummary("uid", "", "MR", "", 1, "mr-brain")
    read = StudyRead(volume, summary, load_preset("mr-brain"), THREE[1:], PipelineConfig().axis_stride)
    return prepare_study_slices(StudyInput("s", "s"), read, scorer)


def test_the_batch_loop_gives_the_mean_over_the_feature_layers(prepared, scorer: ModelScorer) -> None:
    images, positions = next(batches(prepared, 8))
    with torch.no_grad():
        raw = scorer.score(clip_normalise(images, scorer.mean, scorer.std), positions).maps.numpy()
    assert float(raw.max()) > 1.0  # a sum over the 2 layers: the mean is not the model's own output
    scores, maps = score_batch(scorer, images, positions)
    want = np.clip(raw.astype(np.float32) / np.float32(2), np.float32(0), np.float32(1))
    assert maps.dtype == np.float32 and scores.shape == (8,)
    np.testing.assert_array_equal(maps, want)  # bit for bit: the same division as before, per batch


def test_the_study_s_maps_are_used_uncopied_and_never_written(prepared, scorer: ModelScorer) -> None:
    scored = score_study(prepared, scorer, 16)
    before = scored.maps.copy()
    scores = slice_scores(scored.image_scores, scored.maps)
    assert np.shares_memory(scores.maps, scored.maps)  # no second copy of the study's maps
    for fusion in ("mean", "geometric", "max"):
        heat = assemble_heatmap(prepared, scores, fusion)
        assert heat.shape == prepared.volume.shape_ijk and float(heat.max()) > 0.0
        region = scored_region(prepared)
        study_score(scores, heat, StudyScoreRule(method="top_volume", volume_ml=1.0), region, 0.064)
    np.testing.assert_array_equal(scored.maps, before)  # the fusion's in-place steps use own copies
