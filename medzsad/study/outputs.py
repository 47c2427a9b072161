"""Write one study's outputs into a partial folder, then publish it with one rename.

``studies/<safe-id>.partial-<pid>/`` receives heatmap.nii.gz, mask.nii.gz, slices.csv,
lesions.csv, overlay.png and provenance.json (each written atomically); the folder is then renamed
to ``studies/<safe-id>/``. Only after that does the runner mark the study done in the ledger.

The core outputs (heat map, mask, tables, provenance) raise on failure and fail the study; the
optional ones (overlay, DICOM SEG, Parametric Map, Slicer bundle) fail on their own and are listed
in :attr:`StudyFiles.failed` (and in provenance.json).
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd

from medzsad.analysis.lesions import LesionResult
from medzsad.config import OutputConfig, OutputKind
from medzsad.errors import OutputError
from medzsad.fileio import fsync_dir, write_bytes, write_csv, write_json
from medzsad.io.dicom_objects import MEDZSAD_NIFTI_DESCRIP
from medzsad.report.lesions import lesions_table
from medzsad.report.nifti_writer import write_heatmap, write_mask
from medzsad.report.optional import OutputFailure, attempt
from medzsad.report.overlay import HEAT_FLOOR as OVERLAY_HEAT_FLOOR
from medzsad.report.overlay import ORTHO_LESIONS, OverlaySpec, ortho_points, render_overlay, slice_level
from medzsad.report.review_outputs import REVIEW_FORMATS, not_applicable, write_review_outputs
from medzsad.report.sr_writer import SR_FILE, SrEvidence, write_dicom_sr
from medzsad.study.postprocess import SliceScores, slice_positions_mm
from medzsad.study.types import PreparedStudy

__all__ = [
    "StudyResult",
    "StudyFiles",
    "slices_table",
    "overlay_slices",
    "write_study_files",
    "publish",
    "partial_dir",
    "PARTIAL_MARK",
]

log = logging.getLogger(__name__)

PARTIAL_MARK = ".partial-"


@dataclass(frozen=True)
class StudyResult:
    """Everything computed for one study.

    Attributes:
        prepared: The loaded study.
        scores: Slice scores and maps.
        heat: ``(I, J, K)`` float32 heat map in [0, 1] in the source grid.
        lesions: Label map and lesions.
        score: Study score.
        label: Study label shown in the overlay (hashed id unless ids are shown).
        smoke: Random weights were used.
        calibration: Stratum, operating point text and calibration numbers
            (:meth:`medzsad.study.calibrate.StudyCalibration.summary`).
    """

    prepared: PreparedStudy
    scores: SliceScores
    heat: np.ndarray
    lesions: LesionResult
    score: float
    label: str
    smoke: bool
    calibration: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StudyFiles:
    """What :func:`write_study_files` wrote.

    Attributes:
        written: Output kind (or relative path of a review file) -> file name in the study folder.
        failed: Optional outputs whose writer raised (the study is still done).
        skipped: Asked outputs not written though their writer did not fail, with why: not
            applicable to the source (``dicom-seg: not applicable: ...`` for a NIfTI file or a
            radiograph), or an SR whose SEG failed; the study's notes, not failures.
    """

    written: dict[str, str]
    failed: tuple[OutputFailure, ...] = ()
    skipped: tuple[str, ...] = ()


def slices_table(result: StudyResult) -> pd.DataFrame:
    """One row per source slice of every scored axis: axis, index, position (mm), score, map max, skipped."""
    p = result.prepared
    parts = []
    for axis in p.axes:
        n = axis.n_slices
        score = np.full(n, np.nan)
        map_max = np.full(n, np.nan)
        score[axis.slice_index] = result.scores.image_scores[axis.rows]
        map_max[axis.slice_index] = result.scores.map_max[axis.rows]
        parts.append(
            pd.DataFrame(
                {
                    "axis": axis.axis,
                    "slice_index": np.arange(n),
                    "position_mm": np.round(slice_positions_mm(p.volume, axis.slice_axis, n), 4),
                    "score": score.astype(np.float32),
                    "map_max": map_max.astype(np.float32),
                    "skipped": axis.skipped.astype(bool),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def _truth_mask(result: StudyResult) -> np.ndarray | None:
    """The manifest's ground-truth mask when it is in the scan's grid (outlined on the overlay)."""
    path = result.prepared.study.mask
    if not path:
        return None
    try:
        data = np.asanyarray(nib.load(path).dataobj)  # type: ignore[attr-defined]  # nibabel stubs
    except Exception as e:  # an unreadable mask costs the outline, not the overlay
        log.warning("ground-truth mask unreadable for the overlay (%s); not outlined", type(e).__name__)
        return None
    return data if data.shape[:3] == result.heat.shape else None


def overlay_slices(
    scores: np.ndarray, slice_index: np.ndarray, affine_ras: np.ndarray, axis: int, k: int
) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """The ``k`` highest-scoring slices and their scores, in slice-position order.

    Slice-position order is the order of the RAS coordinate the panel titles give (inferior to
    superior for axial slices, posterior to anterior for coronal, right to left for sagittal),
    whatever the voxel order of the scan.

    Args:
        scores: ``(n,)`` slice scores of one axis.
        slice_index: ``(n,)`` their indices along ``axis``.
        affine_ras: Voxel -> RAS of the scan.
        axis: Voxel axis of the slices.
        k: How many.
    """
    top = np.argsort(-np.asarray(scores), kind="stable")[:k]
    level = [slice_level(affine_ras, axis, int(slice_index[i])) for i in top]
    order = [int(top[i]) for i in np.argsort(level, kind="stable")]
    return tuple(int(slice_index[i]) for i in order), tuple(float(scores[i]) for i in order)


def _overlay(result: StudyResult, k: int) -> bytes:
    p = result.prepared
    primary = p.primary
    scores = result.scores.image_scores[primary.rows]
    slices, slice_scores = overlay_slices(
        scores, primary.slice_index, p.volume.affine_ras, primary.slice_axis, k
    )
    threshold = float(result.lesions.threshold)
    spec = OverlaySpec(
        slice_axis=primary.slice_axis,
        slices=slices,
        slice_scores=slice_scores,
        window=p.window,
        title=f"{result.label}   study score {result.score:.3f}   lesions {len(result.lesions.lesions)}"
        + (f"\n{result.calibration['operating_point']}" if result.calibration.get("operating_point") else ""),
        smoke=result.smoke,
        heat_floor=min(OVERLAY_HEAT_FLOOR, threshold) if np.isfinite(threshold) else OVERLAY_HEAT_FLOOR,
        threshold=threshold if np.isfinite(threshold) else None,
        ortho=ortho_points(result.heat, result.lesions.labels, result.lesions.lesions, ORTHO_LESIONS),
        patient_geometry=p.volume.source.patient_geometry,
    )
    scan = np.asarray(p.volume.data, dtype=np.float32)
    affine = p.volume.affine_ras
    return render_overlay(
        scan, result.heat, affine, spec, lesions=result.lesions.labels, truth=_truth_mask(result)
    )


def _write_sr(folder: Path, result: StudyResult, provenance: dict[str, Any], seg_path: Path) -> Path:
    """The study's TID 1500 report; p-value and flag come from the result when a site profile gave them."""
    # the study's own operating point, as its calibration step stated it (tau and profile, or the rule)
    source = str(result.calibration.get("operating_point", ""))
    model = provenance.get("model") or {}
    evidence = SrEvidence(
        score=float(result.score),
        threshold=float(result.lesions.threshold),
        threshold_source=source,
        lesions=tuple(result.lesions.lesions),
        model=str(model.get("description", "")) or ("smoke run, random weights" if result.smoke else ""),
        weights=str(model.get("weights", "")),
        p_value=result.calibration.get("p_value"),
        flag=result.calibration.get("flagged"),
        flag_rule=str(result.calibration.get("flag_rule", "")),
        smoke=result.smoke,
    )
    return write_dicom_sr(result.prepared.volume, evidence, seg_path, folder / SR_FILE).path


def partial_dir(studies_dir: Path, safe_id: str) -> Path:
    """The temporary folder of a study being written by this process."""
    return studies_dir / f"{safe_id}{PARTIAL_MARK}{os.getpid()}"


def write_study_files(
    folder: Path,
    result: StudyResult,
    output: OutputConfig,
    provenance: dict[str, Any],
    published_dir: Path | None = None,
) -> StudyFiles:
    """Write the outputs ``output`` chooses into ``folder`` (created empty).

    Args:
        folder: The study's partial folder.
        result: What was computed.
        output: The cohort's ``output`` section.
        provenance: The provenance record (written as provenance.json).
        published_dir: The name ``folder`` will be renamed to (the Slicer script states it).

    Raises:
        OutputError: A core output (heat map, mask, tables, provenance) cannot be written.
    """
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    written = _write_core(folder, result, output)
    failed: list[OutputFailure] = []
    skipped: list[str] = []
    if OutputKind.OVERLAY in output.outputs:
        png = attempt(
            OutputKind.OVERLAY.value,
            lambda: write_bytes(folder / "overlay.png", _overlay(result, output.overlay_slices)),
            failed,
        )
        if png is not None:
            written["overlay"] = png.name
    if {k.value for k in output.outputs} & REVIEW_FORMATS:
        skipped = _write_review(folder, result, output, provenance, published_dir, written, failed)
        provenance = {**provenance, "review_skipped": skipped}
    if OutputKind.PROVENANCE in output.outputs:
        provenance = {**provenance, "output_failures": [f.to_dict() for f in failed]}
        written["provenance"] = write_json(folder / "provenance.json", provenance).name
    fsync_dir(folder)
    return StudyFiles(written, tuple(failed), tuple(skipped))


def _write_review(
    folder: Path,
    result: StudyResult,
    output: OutputConfig,
    provenance: dict[str, Any],
    published_dir: Path | None,
    written: dict[str, str],
    failed: list[OutputFailure],
) -> list[str]:
    """DICOM SEG / Parametric Map / Slicer bundle, then the SR on the SEG; returns what was skipped."""
    res = write_review_outputs(
        folder,
        result.prepared.volume,
        result.heat,
        result.lesions.labels,
        sorted({k.value for k in output.outputs} & REVIEW_FORMATS),
        threshold=result.lesions.threshold,
        heatmap_nifti=folder / "heatmap.nii.gz" if "heatmap" in written else None,
        mask_nifti=folder / "mask.nii.gz" if "mask" in written else None,
        keep_empty_frames=output.keep_empty_frames,
        smoke=result.smoke,
        published_dir=published_dir,
    )
    files = list(res.files())
    failed += res.failed
    skipped = list(res.skipped)
    if OutputKind.DICOM_SR in output.outputs:
        seg = res.seg
        if seg is not None:
            sr = attempt(
                OutputKind.DICOM_SR.value, lambda: _write_sr(folder, result, provenance, seg.path), failed
            )
            files += [sr] if sr is not None else []
        elif why := not_applicable(result.prepared.volume):
            skipped.append(f"dicom-sr: {why}")
        else:
            skipped.append("dicom-sr: not written: no DICOM SEG to reference (the SEG failed)")
    for f in files:
        rel = Path(os.path.relpath(f, folder)).as_posix()
        written[rel] = rel
    return skipped


def _write_core(folder: Path, result: StudyResult, output: OutputConfig) -> dict[str, str]:
    """Heat map, mask and the two tables; any failure raises (the study fails)."""
    outputs = output.outputs
    affine = result.prepared.volume.affine_ras
    heat_desc, smoke_desc = MEDZSAD_NIFTI_DESCRIP  # input discovery recognises them as our own output
    desc = f"{smoke_desc} random weights" if result.smoke else heat_desc
    written: dict[str, str] = {}
    if OutputKind.HEATMAP in outputs:
        heat_path = write_heatmap(
            folder / "heatmap.nii.gz",
            result.heat,
            affine,
            description=desc,
            dtype=output.heatmap_dtype,
            compression=output.compression,
        )
        written["heatmap"] = heat_path.name
    if OutputKind.MASK in outputs:
        labels = result.lesions.labels
        written["mask"] = write_mask(
            folder / "mask.nii.gz",
            labels if output.mask_values == "labels" else (labels > 0).astype(np.uint8),
            affine,
            description=desc,
            compression=output.compression,
        ).name
    if OutputKind.SLICES in outputs:
        table = slices_table(result).assign(smoke_run=result.smoke)  # every table says it, as studies.csv
        written["slices"] = write_csv(folder / "slices.csv", table).name
    if OutputKind.LESIONS in outputs:
        table = lesions_table(result.lesions, result.prepared.volume).assign(smoke_run=result.smoke)
        written["lesions"] = write_csv(folder / "lesions.csv", table).name
    return written


def publish(partial: Path, final: Path, *, may_replace: bool = True) -> None:
    """Rename the complete partial folder onto its final name (replacing an older one of ours).

    Args:
        partial: The complete folder.
        final: ``studies/<safe-id>``.
        may_replace: ``final`` was created by medzsad (see :meth:`Ledger.owns_study_folder`); a
            folder of the same name that medzsad did not create is never removed.

    Raises:
        OutputError: ``final`` exists and is not medzsad's, or the rename fails.
    """
    if (final.exists() or final.is_symlink()) and not may_replace:
        raise OutputError(
            f"{final} exists and was not created by medzsad; it is left untouched. Move it away, "
            "rename the study (a manifest id) or choose another output folder"
        )
    try:
        if final.is_symlink():
            final.unlink()
        elif final.exists():
            shutil.rmtree(final)
        os.replace(partial, final)
    except OSError as e:
        raise OutputError(f"cannot move {partial} to {final}: {e.strerror or e}") from e
    fsync_dir(final.parent)
