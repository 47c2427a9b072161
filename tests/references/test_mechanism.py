"""Mechanism: with random weights, the reference map finds inserted lesions from appearance alone.

And with both terms in site units the *default* blend (w = 0.5) finds them too, where the raw blend
is dominated by the random zero-shot term (bench/detection_mechanism.py has the full figures).

A slab of the MNI template (4 mm) with independent noise and intensity jitter; one normal study is
the reference, another gets a bright and a dark sphere. The reference map's voxel AUROC over brain
voxels must be high and clearly above the zero-shot random map's (bench/references_mechanism.py
reports the full-size numbers).
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from medzsad.datasets.demo_data import Sphere, add_spheres, mni_template
from medzsad.io.volume import SourceInfo, Volume
from medzsad.model.inference import Detector
from medzsad.model.reference_scoring import ReferenceDetector, SiteUnitsDetector, bank_from_images
from medzsad.model.references import SearchOptions, merge_banks
from medzsad.model.site_units import leave_one_out_stats
from medzsad.model.tiny import tiny_anomalyclip
from medzsad.references.positions import body_coordinates
from medzsad.transforms.pipeline import PreparedSlices, prepare_slices
from medzsad.transforms.preset import load_preset


def _prepare(data: np.ndarray, aff: np.ndarray, det: Detector) -> tuple[PreparedSlices, torch.Tensor]:
    vol = Volume(data, aff, "MR", SourceInfo(paths=(), kind="nifti"))
    p = prepare_slices(vol, load_preset("mr-brain"), det.image_size, det.mean, det.std)
    return p, torch.from_numpy(body_coordinates(aff, p.source_axis, p.slice_index))


def _slab() -> tuple[np.ndarray, np.ndarray]:
    """12 axial slices of the MNI152 template (4 mm) through the lesions, with their affine."""
    mni, aff = mni_template(4)
    aff = aff.copy()
    aff[:3, 3] += aff[:3, 2] * 20
    return mni[:, :, 20:32], aff


def _normal(mni: np.ndarray, seed: int) -> np.ndarray:
    """A normal study: the template with intensity jitter and noise (i.i.d. over seeds)."""
    rng = np.random.default_rng(seed)
    return np.clip(mni * rng.uniform(0.9, 1.1) + rng.normal(0, 15, mni.shape), 0, None).astype(np.float32)


def test_reference_map_finds_lesions_random_zero_shot_does_not() -> None:
    mni, aff = _slab()
    det = Detector(tiny_anomalyclip(112, seed=0))

    def normal(seed: int) -> np.ndarray:
        return _normal(mni, seed)

    ref, ref_pos = _prepare(normal(1), aff, det)
    bank = bank_from_images(det, ref.images, ref_pos)
    spheres = (Sphere((30.0, -10.0, 20.0), 10.0, 0.4), Sphere((-25.0, 20.0, 10.0), 9.0, -0.4))
    img, mask = add_spheres(normal(2), aff, spheres, relative=True)
    study, pos = _prepare(img, aff, det)
    region = mni > 0.15 * mni.max()
    assert mask[region].sum() > 50

    zero = study.to_volume(det.score(study.images).maps.numpy())
    rd = ReferenceDetector(det, bank, weight=1.0, options=SearchOptions(window=0.1))
    refmap = study.to_volume(rd.score(study.images, pos).maps.numpy())
    auc_zero = roc_auc_score(mask[region], zero[region])
    auc_ref = roc_auc_score(mask[region], refmap[region])
    assert auc_ref > 0.9
    assert auc_ref > auc_zero + 0.2


def test_default_blend_in_site_units_finds_the_lesions_the_raw_blend_misses() -> None:
    """w = 0.5 means what it says once both terms are in units of the site's normal anatomy."""
    mni, aff = _slab()
    det = Detector(tiny_anomalyclip(112, seed=0))

    def normal(seed: int) -> np.ndarray:
        return _normal(mni, seed)

    banks = []
    for seed in (1, 3):  # K = 2 references: each is compared with the other for the statistics
        ref, ref_pos = _prepare(normal(seed), aff, det)
        banks.append(bank_from_images(det, ref.images, ref_pos))
    stats = leave_one_out_stats(banks, SearchOptions(window=0.1))
    bank = merge_banks(banks)
    spheres = (Sphere((30.0, -10.0, 20.0), 10.0, 0.4), Sphere((-25.0, 20.0, 10.0), 9.0, -0.4))
    img, mask = add_spheres(normal(2), aff, spheres, relative=True)
    study, pos = _prepare(img, aff, det)
    region = mni > 0.15 * mni.max()
    raw = ReferenceDetector(det, bank, weight=0.5, options=SearchOptions(window=0.1))
    units = SiteUnitsDetector(det, bank, stats, weight=0.5, options=SearchOptions(window=0.1))
    auc = {}
    for name, scorer in (("raw", raw), ("units", units)):
        heat = study.to_volume(scorer.score(study.images, pos).maps.numpy())
        auc[name] = roc_auc_score(mask[region], heat[region])
    assert auc["units"] > 0.9, auc  # K = 4 on whole volumes: bench/RESULTS.md
    assert auc["units"] > auc["raw"] + 0.2, auc
