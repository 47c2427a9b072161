"""overlay.png by radiology conventions: heat above a floor only, outlines, positions, no pyplot state;
slices in position order and an orthogonal view through each top lesion's peak (issue 21)."""

from __future__ import annotations

import ast
import io
from pathlib import Path

import numpy as np
from PIL import Image

import medzsad.report.display as display
import medzsad.report.overlay as overlay
from medzsad.analysis.lesions import find_lesions
from medzsad.report.display import display_point, plane_axis
from medzsad.report.overlay import (
    LESION_COLOUR,
    TRUTH_COLOUR,
    OverlaySpec,
    display_orientation,
    display_slice,
    ortho_points,
    render_overlay,
    slice_position_text,
)
from medzsad.study.outputs import overlay_slices

AFFINE = np.diag([-1.0, 1.0, 2.0, 1.0])  # i runs to patient left (RAS x decreasing)
SPEC = OverlaySpec(2, (4,), (0.9,), (0.0, 100.0), "study", heat_floor=0.3, threshold=0.5)


def _scan() -> np.ndarray:
    g = np.indices((40, 40, 9)).astype(np.float32)
    return np.where((g[0] - 20) ** 2 + (g[1] - 20) ** 2 < 300, 60.0, 0.0)


def _rgb(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def _has_colour(img: np.ndarray, hex_colour: str, tol: int = 30) -> bool:
    rgb = np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)])
    return bool((np.abs(img - rgb).max(axis=-1) <= tol).sum() > 20)


def test_heat_below_the_floor_is_not_drawn() -> None:
    scan = _scan()
    nothing = render_overlay(scan, np.zeros_like(scan), AFFINE, SPEC)
    below = render_overlay(scan, np.full_like(scan, 0.29), AFFINE, SPEC)
    above = render_overlay(scan, np.full_like(scan, 0.31), AFFINE, SPEC)
    assert below == nothing  # transparent: the scan alone shows
    assert above != nothing


def test_lesion_and_truth_outlines_in_their_own_colours() -> None:
    scan = _scan()
    lesion = np.zeros(scan.shape, np.uint8)
    lesion[10:16, 10:16, 3:6] = 1
    truth = np.zeros(scan.shape, np.uint8)
    truth[24:32, 24:32, 3:6] = 1
    plain = _rgb(render_overlay(scan, np.zeros_like(scan), AFFINE, SPEC))
    both = _rgb(render_overlay(scan, np.zeros_like(scan), AFFINE, SPEC, lesions=lesion, truth=truth))
    assert not _has_colour(plain, LESION_COLOUR) and not _has_colour(plain, TRUTH_COLOUR)
    assert _has_colour(both, LESION_COLOUR) and _has_colour(both, TRUTH_COLOUR)
    # the lesion sits at low i = patient right: drawn on the left half of the panel
    cyan = np.abs(both - np.array([0, 229, 255])).max(axis=-1) <= 30
    truth_px = np.abs(both - np.array([57, 255, 20])).max(axis=-1) <= 30
    assert np.argwhere(cyan)[:, 1].mean() < np.argwhere(truth_px)[:, 1].mean()


def test_slice_position_in_mm_with_direction_letters() -> None:
    affine = np.diag([1.0, 1.0, 2.5, 1.0])
    affine[:3, 3] = [0.0, 0.0, -10.0]
    assert slice_position_text(affine, 2, 0, (4, 4, 9)) == "I 10.0 mm"
    assert slice_position_text(affine, 2, 6, (4, 4, 9)) == "S 5.0 mm"
    assert slice_position_text(np.diag([-1.0, 1.0, 1.0, 1.0]), 0, 3, (4, 4, 4)) == "L 3.0 mm"


def test_overlay_module_sets_no_global_matplotlib_state() -> None:
    tree = ast.parse(Path(overlay.__file__).read_text())
    calls = [ast.unparse(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)]
    imports = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    imports += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert "matplotlib.use" not in calls
    assert not any("pyplot" in name for name in imports)


CROSSHAIR = "#ffe600"


def test_panels_are_in_slice_position_order_not_score_order() -> None:
    scores = np.array([0.2, 0.9, 0.5, 0.8, 0.1])
    index = np.array([0, 1, 2, 3, 4])
    # k runs inferior -> superior: the panels go up the body
    up = overlay_slices(scores, index, np.diag([1.0, 1.0, 2.0, 1.0]), 2, 3)
    assert up == ((1, 2, 3), (0.9, 0.5, 0.8))
    # stored feet-last (k runs superior -> inferior): the same anatomy order, reversed indices
    down = overlay_slices(scores, index, np.diag([1.0, 1.0, -2.0, 1.0]), 2, 3)
    assert down == ((3, 2, 1), (0.8, 0.5, 0.9))


def test_orthogonal_view_through_each_lesion_peak_with_a_crosshair() -> None:
    scan = _scan()
    heat = np.zeros(scan.shape, np.float32)
    heat[10:16, 10:16, 3:6] = 0.6
    heat[12, 13, 4] = 0.95  # the first lesion's peak
    heat[25:30, 25:30, 2:5] = 0.7
    found = find_lesions(heat, AFFINE, 0.5, 0.0)
    points = ortho_points(heat, found.labels, found.lesions, 3)
    assert [p.ijk for p in points] == [(12, 13, 4), (25, 25, 2)]  # strongest first, each at its peak
    assert points[0].label.startswith("lesion 1 peak 0.950")
    none = ortho_points(heat * 0, np.zeros_like(found.labels), (), 3)
    assert len(none) == 1 and "no lesion" in none[0].label
    plain = _rgb(render_overlay(scan, heat, AFFINE, SPEC, lesions=found.labels))
    spec = OverlaySpec(2, (4,), (0.9,), (0.0, 100.0), "study", heat_floor=0.3, threshold=0.5, ortho=points)
    ortho = render_overlay(scan, heat, AFFINE, spec, lesions=found.labels)
    img = _rgb(ortho)
    assert not _has_colour(plain, CROSSHAIR) and _has_colour(img, CROSSHAIR)
    assert img.shape[0] > plain.shape[0]  # two rows of three planes below the slices
    assert ortho == render_overlay(scan, heat, AFFINE, spec, lesions=found.labels)  # deterministic


def test_a_voxel_lands_under_its_crosshair_in_every_plane_and_voxel_order() -> None:
    rng = np.random.default_rng(0)
    vol = np.zeros((7, 9, 5))
    ijk = (2, 6, 3)
    vol[ijk] = 1.0
    for perm in ((0, 1, 2), (2, 0, 1), (1, 2, 0)):
        flips = rng.integers(0, 2, 3)
        affine = np.eye(4)
        affine[:3, :3] = np.eye(3)[:, list(perm)] * np.where(flips, -1.0, 1.0) * [1.0, 2.0, 3.0]
        for normal in (0, 1, 2):
            axis = plane_axis(affine, normal)
            shown = display_slice(vol, affine, axis, ijk[axis])
            o = display_orientation(affine, axis)
            assert shown[display_point(ijk, axis, vol.shape, o)] == 1.0


def test_display_module_sets_no_global_matplotlib_state() -> None:
    tree = ast.parse(Path(display.__file__).read_text())
    imports = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    imports += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert not any("matplotlib" in name for name in imports)
