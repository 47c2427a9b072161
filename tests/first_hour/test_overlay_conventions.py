"""overlay.png by radiology conventions: heat above a floor only, outlines, positions, no pyplot state."""

from __future__ import annotations

import ast
import io
from pathlib import Path

import numpy as np
from PIL import Image

import medzsad.report.overlay as overlay
from medzsad.report.overlay import (
    LESION_COLOUR,
    TRUTH_COLOUR,
    OverlaySpec,
    render_overlay,
    slice_position_text,
)

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
