"""overlay.png for a one-slice volume (a radiograph, a single-frame DICOM, a 2D NIfTI): the in-plane
panel with heat and outlines as for a volume; no orthogonal view, whose planes would be one voxel thick."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image

from medzsad.analysis.lesions import find_lesions
from medzsad.cli import main
from medzsad.report.overlay import (
    LESION_COLOUR,
    ORTHO_LESIONS,
    TRUTH_COLOUR,
    OrthoPoint,
    OverlaySpec,
    ortho_points,
    render_overlay,
)

AFFINE = np.diag([-0.5, 0.5, 1.0, 1.0])
SHAPE = (117, 96, 1)  # the (1, 117) coronal plane of the bug report


def _scan() -> np.ndarray:
    g = np.indices(SHAPE).astype(np.float32)
    return np.where((g[0] - 58) ** 2 + (g[1] - 48) ** 2 < 1600, 60.0, 0.0)


def _image(png: bytes) -> np.ndarray:
    Image.open(io.BytesIO(png)).verify()  # a whole, valid PNG
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def _has_colour(img: np.ndarray, hex_colour: str, tol: int = 30) -> bool:
    rgb = np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)])
    return bool((np.abs(img - rgb).max(axis=-1) <= tol).sum() > 20)


def _spec(ortho: tuple[OrthoPoint, ...] = ()) -> OverlaySpec:
    return OverlaySpec(2, (0,), (0.9,), (0.0, 100.0), "study", heat_floor=0.3, threshold=0.5, ortho=ortho)


def test_a_one_slice_volume_with_lesions_renders_its_slice_with_heat_and_outlines() -> None:
    scan = _scan()
    heat = np.zeros(SHAPE, np.float32)
    heat[30:45, 30:45] = 0.7
    heat[36, 37] = 0.95
    heat[70:80, 55:70] = 0.6
    found = find_lesions(heat, AFFINE, 0.5, 0.0)
    truth = np.zeros(SHAPE, np.uint8)
    truth[65:85, 50:75] = 1
    points = ortho_points(heat, found.labels, found.lesions, ORTHO_LESIONS)  # as the study writer does
    assert [p.ijk for p in points] == [(36, 37, 0), (70, 55, 0)]
    png = render_overlay(scan, heat, AFFINE, _spec(points), lesions=found.labels, truth=truth)
    img = _image(png)
    assert _has_colour(img, LESION_COLOUR) and _has_colour(img, TRUTH_COLOUR)
    # the orthogonal views are left out: the figure is the slice alone, without lesions as with them
    alone = render_overlay(scan, heat, AFFINE, _spec(), lesions=found.labels, truth=truth)
    assert png == alone
    assert png == render_overlay(scan, heat, AFFINE, _spec(points), lesions=found.labels, truth=truth)


def test_a_one_slice_volume_without_lesions_shows_no_view_through_the_hottest_voxel() -> None:
    scan = _scan()
    heat = np.full(SHAPE, 0.2, np.float32)
    points = ortho_points(heat, np.zeros(SHAPE, np.int32), (), ORTHO_LESIONS)
    assert len(points) == 1 and "no lesion" in points[0].label
    png = render_overlay(scan, heat, AFFINE, _spec(points))
    assert _image(png).shape[0] > 0
    assert png == render_overlay(scan, heat, AFFINE, _spec())


def test_a_single_column_plane_draws_no_contour() -> None:
    """Slices cut across the thick axis of a one-slice volume are one voxel wide: no outline, no error."""
    scan = _scan()
    lesion = np.zeros(SHAPE, np.uint8)
    lesion[30:45, 30:45] = 1
    spec = OverlaySpec(1, (35,), (0.9,), (0.0, 100.0), "study")
    assert _image(render_overlay(scan, scan / 60, AFFINE, spec, lesions=lesion, truth=lesion)).size


def test_a_2d_nifti_through_the_cli_writes_its_overlay(tmp_path: Path) -> None:
    src = tmp_path / "two_d.nii.gz"
    nib.save(nib.Nifti1Image(_scan(), AFFINE), src)
    out = tmp_path / "out"
    assert main(["run", "-i", str(src), "-o", str(out), "--smoke", "--fast", "--device", "cpu", "-q"]) == 0
    with (out / "errors.csv").open(newline="") as f:
        assert list(csv.DictReader(f)) == []
    [overlay] = (out / "studies").glob("*/overlay.png")
    assert _image(overlay.read_bytes()).size


def test_an_image_without_patient_position_gets_no_letters_and_no_slice_position(monkeypatch) -> None:
    """A radiograph placed at the origin (as SimpleITK reads it): letters and 'S 0.0 mm' would be invented."""
    from dataclasses import replace

    from matplotlib.axes import Axes

    texts: list[str] = []

    def spy(method: str) -> None:
        real = getattr(Axes, method)

        def recorded(self: Axes, *args: object, **kwargs: object) -> object:
            texts.append(str(args[-1]) if args else "")
            return real(self, *args, **kwargs)

        monkeypatch.setattr(Axes, method, recorded)

    spy("text")  # the orientation letters
    spy("set_title")  # the slice position
    heat = np.full(SHAPE, 0.6, np.float32)
    render_overlay(_scan(), heat, AFFINE, _spec())
    placed = list(texts)
    texts.clear()
    render_overlay(_scan(), heat, AFFINE, replace(_spec(), patient_geometry=False))
    assert {"A", "P", "R", "L"} <= set(placed) and any("mm)" in t for t in placed)  # a placed slice
    assert not {"A", "P", "R", "L", "S", "I"} & set(texts)
    assert any("as stored, no patient position" in t for t in texts) and not any("mm)" in t for t in texts)
