"""Slicer-ready files per study: segmentation (.seg.nrrd), colour tables, window, loader manifest.

The bundle lives in ``<study_dir>/slicer/`` and is described by ``slicer/bundle.json`` (paths
relative to that folder), which :func:`medzsad.report.slicer_bundle_script.slicer_script` turns into
a Slicer Python script. Files:

* ``anomaly.seg.nrrd``: the mask as a Slicer segmentation with one named, coloured segment
  (NRRD, ``space: left-posterior-superior``, ``space directions``/``space origin`` from the scan's
  affine, ``Segment0_*`` keys as written by Slicer's ``vtkMRMLSegmentationStorageNode``).
* ``heatmap.ctbl``: a 256-entry colour table (matplotlib's *inferno*) for the heat map, shown with the
  suggested window ``[threshold, 1]`` so only suspicious voxels are coloured.
* ``mask_labels.ctbl``: a colour table for the NIfTI lesion label map (label ``n`` = "lesion n").
* ``scan.nii.gz``: the scan itself when the source is DICOM (Slicer's volume reader does not sort a
  shuffled series by position); NIfTI/NRRD sources are referenced where they are.
* ``bundle.json`` stores paths relative to ``slicer/`` for files inside the study folder, so the
  cohort folder can be moved or renamed, and absolute paths for files outside it (a NIfTI source).
* The heat map and mask NIfTI files written by :mod:`medzsad.report.nifti_writer` are referenced;
  when none is given they are written into the bundle.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from medzsad.errors import OutputError
from medzsad.fileio import gzip_bytes, write_bytes, write_json, write_text
from medzsad.io.volume import LPS_TO_RAS, Volume
from medzsad.report.nifti_writer import nifti_bytes, write_heatmap, write_mask

__all__ = [
    "SlicerBundle",
    "BUNDLE_DIR",
    "MANIFEST",
    "write_seg_nrrd",
    "write_heat_color_table",
    "write_label_color_table",
    "focus_point",
    "write_slicer_bundle",
    "read_bundle",
    "bundle_relative",
    "BUNDLE_FILES",
    "relative_files",
]

logger = logging.getLogger(__name__)

BUNDLE_DIR = "slicer"
MANIFEST = "bundle.json"
#: Segment colour (RGB in [0, 1]) of the anomaly segment: a saturated orange-red.
ANOMALY_RGB = (1.0, 0.27, 0.13)
_TERMINOLOGY = (
    "Segmentation category and type - DICOM master list"
    "~SCT^49755003^Morphologically Altered Structure~SCT^52988006^Lesion~^^"
    "~Anatomic codes - DICOM master list~^^~^^"
)


@dataclass(frozen=True)
class SlicerBundle:
    """A study's Slicer bundle, with absolute paths.

    Attributes:
        folder: ``<study_dir>/slicer``.
        scan: Scan volume file (NIfTI/NRRD).
        heatmap: Heat map NIfTI (float32, values in [0, 1]).
        heatmap_colors: Colour table for the heat map.
        window: Suggested display range ``(low, high)`` of the heat map.
        segmentation: ``.seg.nrrd`` with the anomaly segment.
        mask_labelmap: Lesion label map NIfTI (uint8).
        mask_colors: Colour table for the label map.
        focus_ras: RAS point (mm) of the highest-scoring lesion's peak, or None without lesions.
        focus_score: Peak heat at ``focus_ras`` or None.
        smoke: Random weights were used (node names in Slicer start with "SMOKE RUN").
    """

    folder: Path
    scan: Path
    heatmap: Path
    heatmap_colors: Path
    window: tuple[float, float]
    segmentation: Path
    mask_labelmap: Path
    mask_colors: Path
    focus_ras: tuple[float, float, float] | None
    focus_score: float | None
    smoke: bool = False


def _nrrd_vector(v: np.ndarray) -> str:
    return "(" + ",".join(f"{float(x):.10g}" for x in v) + ")"


def write_seg_nrrd(
    mask_ijk: np.ndarray,
    affine_ras: np.ndarray,
    path: str | Path,
    *,
    segment_name: str = "anomaly",
    color_rgb: tuple[float, float, float] = ANOMALY_RGB,
) -> Path:
    """Write a binary mask as a Slicer segmentation file (``.seg.nrrd``) with one segment.

    Args:
        mask_ijk: ``(I, J, K)`` mask; non-zero voxels belong to the segment (stored as label 1).
        affine_ras: ``(4, 4)`` voxel -> RAS mm of the scan (nibabel convention).
        path: Destination, conventionally ``*.seg.nrrd`` (written atomically).
        segment_name: Segment name shown in Slicer's Segmentations module.
        color_rgb: Segment colour, RGB in [0, 1].

    Raises:
        OutputError: The mask is not 3-D or the file cannot be written.
    """
    mask = (np.asarray(mask_ijk) > 0).astype(np.uint8)
    if mask.ndim != 3:
        raise OutputError(f"{path}: mask must be (I, J, K), got shape {mask.shape}")
    lps = LPS_TO_RAS @ np.asarray(affine_ras, dtype=np.float64)
    nz = np.argwhere(mask)
    extent = "0 -1 0 -1 0 -1"
    if nz.size:
        lo, hi = nz.min(axis=0), nz.max(axis=0)
        extent = " ".join(f"{a} {b}" for a, b in zip(lo, hi))
    name = segment_name.replace("\n", " ").replace("|", "/")
    header = [
        "NRRD0004",
        "# Slicer segmentation written by medzsad",
        "type: unsigned char",
        "dimension: 3",
        "space: left-posterior-superior",
        f"sizes: {mask.shape[0]} {mask.shape[1]} {mask.shape[2]}",
        "space directions: " + " ".join(_nrrd_vector(lps[:3, c]) for c in range(3)),
        "kinds: domain domain domain",
        "endian: little",
        "encoding: gzip",
        f"space origin: {_nrrd_vector(lps[:3, 3])}",
        "Segment0_Color:=" + " ".join(f"{c:.6g}" for c in color_rgb),
        "Segment0_ColorAutoGenerated:=0",
        f"Segment0_Extent:={extent}",
        "Segment0_ID:=anomaly",
        "Segment0_LabelValue:=1",
        "Segment0_Layer:=0",
        f"Segment0_Name:={name}",
        "Segment0_NameAutoGenerated:=0",
        f"Segment0_Tags:=Segmentation.Status:completed|TerminologyEntry:{_TERMINOLOGY}|",
        "Segmentation_ContainedRepresentationNames:=Binary labelmap|",
        "Segmentation_ConversionParameters:=",
        "Segmentation_MasterRepresentation:=Binary labelmap",
        "Segmentation_ReferenceImageExtentOffset:=0 0 0",
    ]
    # NRRD's fastest axis is the first: i. Fortran order of the (I, J, K) array gives exactly that.
    payload = gzip_bytes(np.asfortranarray(mask).tobytes(order="F"))
    return write_bytes(path, ("\n".join(header) + "\n\n").encode("ascii") + payload)


def _ctbl(rows: list[tuple[int, str, tuple[int, int, int, int]]], title: str) -> str:
    lines = [f"# Color table file {title}", f"# {len(rows)} values"]
    lines += [f"{i} {name} {r} {g} {b} {a}" for i, name, (r, g, b, a) in rows]
    return "\n".join(lines) + "\n"


def write_heat_color_table(path: str | Path) -> Path:
    """Write the heat map colour table (256 entries of *inferno*) in Slicer's ``.ctbl`` format."""
    from matplotlib import colormaps

    cmap = colormaps["inferno"]
    rows = []
    for i in range(256):
        r, g, b, _ = (int(round(255 * c)) for c in cmap(i / 255.0))
        rows.append((i, f"heat_{i:03d}", (r, g, b, 255)))
    return write_text(path, _ctbl(rows, "medzsad-heat"))


def write_label_color_table(path: str | Path, n_labels: int = 255) -> Path:
    """Write a label colour table: 0 background (transparent), ``n`` = ``lesion_n`` (tab20 cycle)."""
    from matplotlib import colormaps

    cmap = colormaps["tab20"]
    rows = [(0, "background", (0, 0, 0, 0))]
    for n in range(1, n_labels + 1):
        r, g, b, _ = (int(round(255 * c)) for c in cmap((n - 1) % 20))
        rows.append((n, f"lesion_{n}", (r, g, b, 255)))
    return write_text(path, _ctbl(rows, "medzsad-lesions"))


def focus_point(
    heat_ijk: np.ndarray, mask_ijk: np.ndarray, affine_ras: np.ndarray
) -> tuple[tuple[float, float, float], float] | None:
    """RAS point and heat of the peak of the highest-scoring lesion (26-connected component).

    Args:
        heat_ijk: ``(I, J, K)`` float heat map in [0, 1].
        mask_ijk: ``(I, J, K)`` mask; non-zero voxels are lesion voxels.
        affine_ras: ``(4, 4)`` voxel -> RAS mm.

    Returns:
        ``((R, A, S), peak_heat)``, or None when the mask is empty.
    """
    labels, n = ndimage.label(np.asarray(mask_ijk) > 0, structure=np.ones((3, 3, 3), bool))
    if n == 0:
        return None
    heat = np.where(labels > 0, np.asarray(heat_ijk, dtype=np.float64), -np.inf)
    ijk = np.unravel_index(int(np.argmax(heat)), heat.shape)
    ras = np.asarray(affine_ras, dtype=np.float64) @ np.array([*ijk, 1.0])
    return (float(ras[0]), float(ras[1]), float(ras[2])), float(heat[ijk])


def _scan_file(volume: Volume, folder: Path) -> Path:
    src = volume.source
    if src.kind in ("nifti", "itk") and src.paths and Path(src.paths[0]).is_file():
        return Path(src.paths[0]).resolve()
    data = np.asarray(volume.data)
    if np.issubdtype(data.dtype, np.floating) and np.array_equal(data, np.round(data)):
        if data.size == 0 or (data.min() >= -32768 and data.max() <= 32767):
            data = data.astype(np.int16)
    path = folder / "scan.nii.gz"
    write_bytes(path, nifti_bytes(data, volume.affine_ras, description="medzsad scan for Slicer"))
    return path


def bundle_relative(path: Path, folder: Path) -> str:
    """Relative to the bundle for files inside the study folder (it can move), else absolute."""
    target, study = path.resolve(), folder.resolve().parent
    if target.is_relative_to(study):
        return os.path.relpath(target, folder.resolve())
    return str(target)


#: The bundle's files (SlicerBundle fields), as the manifest and the loader script name them.
BUNDLE_FILES = ("scan", "heatmap", "heatmap_colors", "segmentation", "mask_labelmap", "mask_colors")


def relative_files(b: SlicerBundle) -> dict[str, str]:
    """Every bundle file by name, as :func:`bundle_relative` spells it (the folder can move)."""
    return {k: bundle_relative(getattr(b, k), b.folder) for k in BUNDLE_FILES}


def write_slicer_bundle(
    study_dir: str | Path,
    volume: Volume,
    heat_ijk: np.ndarray,
    mask_ijk: np.ndarray,
    *,
    threshold: float,
    heatmap_nifti: str | Path | None = None,
    mask_nifti: str | Path | None = None,
    smoke: bool = False,
) -> SlicerBundle:
    """Write ``<study_dir>/slicer/`` and its ``bundle.json``.

    Args:
        study_dir: The study's output folder.
        volume: The scan the heat map was computed on.
        heat_ijk: ``(I, J, K)`` float heat map in [0, 1].
        mask_ijk: ``(I, J, K)`` mask or lesion label map (0 background).
        threshold: Heat threshold of the mask; the suggested heat window is ``[threshold, 1]``.
        heatmap_nifti: Existing heat map NIfTI to reference (written into the bundle if None).
        mask_nifti: Existing mask NIfTI to reference (written into the bundle if None).
        smoke: Random weights were used (recorded; Slicer node names say SMOKE RUN).

    Returns:
        The bundle with absolute paths.

    Raises:
        OutputError: A shape differs from the scan's or a file cannot be written.
    """
    folder = Path(study_dir) / BUNDLE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    for what, arr in (("heat map", heat_ijk), ("mask", mask_ijk)):
        if tuple(np.shape(arr)) != volume.shape_ijk:
            raise OutputError(f"{folder}: {what} shape {np.shape(arr)} != scan shape {volume.shape_ijk}")
    affine = volume.affine_ras
    heat_path = Path(heatmap_nifti) if heatmap_nifti else None
    mask_path = Path(mask_nifti) if mask_nifti else None
    if heat_path is None:
        heat_path = write_heatmap(folder / "heatmap.nii.gz", heat_ijk, affine)
    if mask_path is None:
        mask_path = write_mask(folder / "mask.nii.gz", mask_ijk, affine)
    focus = focus_point(heat_ijk, mask_ijk, affine)
    bundle = SlicerBundle(
        folder=folder.resolve(),
        scan=_scan_file(volume, folder).resolve(),
        heatmap=heat_path.resolve(),
        heatmap_colors=write_heat_color_table(folder / "heatmap.ctbl").resolve(),
        window=(float(min(threshold, 0.99)), 1.0),
        segmentation=write_seg_nrrd(mask_ijk, affine, folder / "anomaly.seg.nrrd").resolve(),
        mask_labelmap=mask_path.resolve(),
        mask_colors=write_label_color_table(folder / "mask_labels.ctbl").resolve(),
        focus_ras=None if focus is None else focus[0],
        focus_score=None if focus is None else focus[1],
        smoke=smoke,
    )
    _write_manifest(bundle)
    logger.debug("wrote Slicer bundle in %s", folder)  # a path: debug only (docs/privacy.md)
    return bundle


def _write_manifest(b: SlicerBundle) -> None:
    doc = {
        "format": "medzsad-slicer-bundle/1",
        "files": relative_files(b),
        "heatmap_window": list(b.window),
        "focus_ras": None if b.focus_ras is None else list(b.focus_ras),
        "focus_score": b.focus_score,
        "smoke_run": b.smoke,
    }
    write_json(b.folder / MANIFEST, doc)


def _run_folder_message(run: Path) -> str:
    """A run folder was given where a study folder is wanted: name the studies that have a bundle."""
    studies = sorted(p.name for p in (run / "studies").iterdir() if (p / BUNDLE_DIR / MANIFEST).is_file())
    if not studies:
        return (
            f"{run} is a run folder and none of its studies has a Slicer bundle; run the cohort with "
            "the 'slicer' output (output.outputs or --formats slicer)"
        )
    shown = "\n".join(f"  medzsad slicer {run / 'studies' / s}" for s in studies[:20])
    more = f"\n  ... and {len(studies) - 20} more" if len(studies) > 20 else ""
    return f"{run} is a run folder; give one of its {len(studies)} studies:\n{shown}{more}"


def read_bundle(study_dir: str | Path) -> SlicerBundle:
    """Read ``<study_dir>/slicer/bundle.json`` (or ``study_dir`` itself if it is the bundle folder).

    Raises:
        OutputError: No such folder, no manifest, an unreadable one, or a referenced file is missing.
    """
    root = Path(study_dir)
    if not root.is_dir():
        raise OutputError(f"{root}: no such study output folder; give a folder under <run>/studies/")
    folder = root if (root / MANIFEST).is_file() else root / BUNDLE_DIR
    manifest = folder / MANIFEST
    if not manifest.is_file() and (root / "studies").is_dir():
        raise OutputError(_run_folder_message(root))
    try:
        doc = json.loads(manifest.read_text(encoding="utf-8"))
        files = {k: (folder / v).resolve() for k, v in doc["files"].items()}
        window = (float(doc["heatmap_window"][0]), float(doc["heatmap_window"][1]))
    except (OSError, ValueError, KeyError, TypeError, IndexError) as e:
        raise OutputError(
            f"{manifest}: no readable Slicer bundle manifest ({e}); run the study with "
            "output formats including 'slicer'"
        ) from e
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise OutputError(f"{manifest}: bundle files are missing: {', '.join(missing)}; re-run the study")
    focus = doc.get("focus_ras")
    return SlicerBundle(
        folder=folder.resolve(),
        window=window,
        focus_ras=None if focus is None else (float(focus[0]), float(focus[1]), float(focus[2])),
        focus_score=doc.get("focus_score"),
        smoke=bool(doc.get("smoke_run", False)),
        **files,
    )
