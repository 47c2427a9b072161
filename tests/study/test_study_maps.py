"""A study's maps: the layer mean is taken in the one batch loop, and later stages use them uncopied.

The maps of a 512x512x300 CT at 518 px are 0.3 GB per axis (0.7 GB with three axes at the default
stride). The batch loop turns the model's layer sum into the layer mean batch by batch, so the
writer uses the array it received as it is: no second copy, and nothing after scoring writes to it
(it may be a shared segment another process still maps). The study frees them once the heat map is
built, before its heaviest steps (lesions, files), though the scored study itself lives on.
"""

from __future__ import annotations

import gc
import weakref
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

from medzsad.config import PipelineConfig, StudyScoreRule
from medzsad.config.single_study import single_study_cohort
from medzsad.io.volume import SourceInfo, Volume
from medzsad.study import finish
from medzsad.study.loading import default_loader, prepare_study_slices
from medzsad.study.outputs import partial_dir
from medzsad.study.postprocess import assemble_heatmap, postprocess, scored_region, slice_scores, study_score
from medzsad.study.reading import StudyRead
from medzsad.study.scorer import ModelScorer
from medzsad.study.scoring import batches, score_batch, score_study
from medzsad.study.types import FinishPlace, PreparedStudy, SeriesSummary, StudyInput, StudyJob
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


def test_the_study_s_maps_are_only_read(prepared, scorer: ModelScorer) -> None:
    scored = score_study(prepared, scorer, 16)
    before = scored.maps.copy()
    scores = slice_scores(scored.image_scores, scored.maps)
    np.testing.assert_array_equal(scores.map_max, before.reshape(len(before), -1).max(axis=1))
    for fusion in ("mean", "geometric", "max"):
        heat = assemble_heatmap(prepared, scored.maps, fusion)
        assert heat.shape == prepared.volume.shape_ijk and float(heat.max()) > 0.0
        region = scored_region(prepared)
        study_score(scores, heat, StudyScoreRule(method="top_volume", volume_ml=1.0), region, 0.064)
    np.testing.assert_array_equal(scored.maps, before)  # the fusion's in-place steps use own copies


def test_scored_hands_its_maps_on_once(prepared, scorer: ModelScorer) -> None:
    scored = score_study(prepared, scorer, 16)
    maps = scored.maps
    assert scored.take_maps() is maps
    with pytest.raises(RuntimeError, match="handed on"):
        _ = scored.maps
    with pytest.raises(RuntimeError, match="handed on"):
        scored.take_maps()


def test_a_study_frees_its_maps_once_the_heat_map_is_built(
    tmp_path: Path, anatomy: tuple[np.ndarray, np.ndarray], scorer: ModelScorer, monkeypatch
) -> None:
    """The maps are gone before the lesions are found and the files written, the writer's peak steps.

    Before, the scored study (a writer process's task arguments) kept them to the end of the study.
    """
    scan = tmp_path / "mni.nii.gz"
    nib.save(nib.Nifti1Image(*anatomy), scan)
    cfg = single_study_cohort(scan, out_dir=tmp_path / "out", smoke=True, formats=["nifti"])
    cfg = cfg.with_overrides(**{"pipeline.axes": list(THREE)})
    seen: dict[str, Any] = {}

    def assemble(prepared: PreparedStudy, maps: np.ndarray, fusion: str = "mean") -> np.ndarray:
        seen["maps"] = weakref.ref(maps)
        seen["map_max"] = maps.reshape(len(maps), -1).max(axis=1)
        return assemble_heatmap(prepared, maps, fusion)

    def post(heat: np.ndarray, *args: Any) -> Any:
        gc.collect()
        seen["alive"] = seen["maps"]() is not None
        return postprocess(heat, *args)

    monkeypatch.setattr(finish, "assemble_heatmap", assemble)
    monkeypatch.setattr(finish, "postprocess", post)
    job = StudyJob(StudyInput("mni", str(scan)), "mni", "i", "c", "mni")
    where = FinishPlace(partial_dir(tmp_path / "out" / "studies", "mni"), True)
    end = finish.run_study(job, cfg, default_loader, scorer, where)
    assert end.status == "done", end.error
    assert seen["alive"] is False
    # slices.csv's map maxima are those of the maps the heat map was built from
    table = pd.read_csv(tmp_path / "out" / "studies" / "mni" / "slices.csv")
    scored = table[~table["skipped"] & table["score"].notna()]
    assert set(scored["axis"]) == set(THREE)
    np.testing.assert_allclose(np.sort(scored["map_max"]), np.sort(seen["map_max"]), rtol=1e-6)
