"""Entry point the cohort runner calls for the radiology review outputs of one study.

Formats handled here (others, such as ``nifti`` and ``png``, have their own writers; ``html`` is
per cohort, see :func:`medzsad.report.html_report.write_report_html`):

* ``dicom-seg``: ``<study_dir>/dicom/anomaly_seg.dcm`` (BINARY DICOM SEG of the mask).
* ``dicom-pmap``: ``<study_dir>/dicom/heatmap_pmap.dcm`` (DICOM Parametric Map of the heat map).
* ``slicer``: ``<study_dir>/slicer/`` bundle plus ``slicer/load_in_slicer.py``.

The DICOM objects are written only for DICOM-sourced studies with patient geometry; for other
sources (NIfTI, 2D images, DICOM radiographs and ultrasound without ImagePositionPatient) they are
"not applicable": skipped with that reason (in :attr:`ReviewOutputs.skipped` and the log), never a
failure, and the study carries on. Each
format fails on its own: a writer that raises is recorded in :attr:`ReviewOutputs.failed` (see
:mod:`medzsad.report.optional`) and the other formats are still written.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import medzsad
from medzsad.io.volume import Volume
from medzsad.report.optional import OutputFailure, attempt
from medzsad.report.seg_writer import SegWriteResult, write_dicom_seg, write_heatmap_parametric_map
from medzsad.report.slicer_bundle import BUNDLE_DIR, SlicerBundle, write_slicer_bundle
from medzsad.report.slicer_bundle_script import write_slicer_script

__all__ = [
    "ReviewOutputs",
    "REVIEW_FORMATS",
    "SEG_FILE",
    "PMAP_FILE",
    "write_review_outputs",
    "not_applicable",
]

logger = logging.getLogger(__name__)

#: Formats this module writes; any other name in ``formats`` is left to the other writers.
REVIEW_FORMATS = frozenset({"dicom-seg", "dicom-pmap", "slicer"})
SEG_FILE = Path("dicom") / "anomaly_seg.dcm"
PMAP_FILE = Path("dicom") / "heatmap_pmap.dcm"


@dataclass(frozen=True)
class ReviewOutputs:
    """What :func:`write_review_outputs` wrote.

    Attributes:
        seg: The DICOM SEG, or None.
        parametric_map: The DICOM Parametric Map, or None.
        slicer: The Slicer bundle, or None.
        slicer_script: The written loader script, or None.
        skipped: ``"format: not applicable: reason"`` for each requested format that does not apply
            to the source (:func:`not_applicable`).
        failed: Each requested format whose writer raised.
    """

    seg: SegWriteResult | None = None
    parametric_map: SegWriteResult | None = None
    slicer: SlicerBundle | None = None
    slicer_script: Path | None = None
    skipped: tuple[str, ...] = field(default_factory=tuple)
    failed: tuple[OutputFailure, ...] = field(default_factory=tuple)

    def files(self) -> list[Path]:
        """Every file written (for provenance and the review page)."""
        out = [r.path for r in (self.seg, self.parametric_map) if r is not None]
        if self.slicer is not None:
            out += [self.slicer.segmentation, self.slicer.heatmap_colors, self.slicer.mask_colors]
        if self.slicer_script is not None:
            out.append(self.slicer_script)
        return out


def write_review_outputs(
    study_dir: str | Path,
    volume: Volume,
    heat_ijk: np.ndarray,
    mask_ijk: np.ndarray,
    formats: Iterable[str],
    *,
    threshold: float,
    heatmap_nifti: str | Path | None = None,
    mask_nifti: str | Path | None = None,
    keep_empty_frames: bool = False,
    smoke: bool = False,
    published_dir: str | Path | None = None,
) -> ReviewOutputs:
    """Write the requested review outputs of one study; each fails on its own.

    Args:
        study_dir: The study's output folder (created if missing).
        volume: The scan, in the grid of ``heat_ijk`` and ``mask_ijk``.
        heat_ijk: ``(I, J, K)`` float heat map, values in [0, 1].
        mask_ijk: ``(I, J, K)`` uint8 mask or lesion label map (0 background).
        formats: Output format names (e.g. ``["nifti", "dicom-seg", "slicer", "png", "html"]``).
        threshold: Heat threshold that made the mask.
        heatmap_nifti: The study's heat map NIfTI if already written (the Slicer bundle links it).
        mask_nifti: The study's mask NIfTI if already written.
        keep_empty_frames: Keep SEG frames without anomaly.
        smoke: Random weights were used: DICOM descriptions and Slicer names say SMOKE RUN.
        published_dir: The study folder's final name when ``study_dir`` is a partial folder that
            will be renamed (the Slicer script names it for runs without ``__file__``).

    Returns:
        What was written, skipped (not applicable to the source) and failed (the writer raised: a
        ``DicomError``, ``GeometryError``, ``OutputError`` or any other exception).
    """
    wanted = {str(f).lower() for f in formats} & REVIEW_FORMATS
    root = Path(study_dir)
    root.mkdir(parents=True, exist_ok=True)
    failed: list[OutputFailure] = []
    opts = _DicomOptions(threshold, keep_empty_frames, smoke)
    seg, pmap, skipped = _write_dicom(root, volume, heat_ijk, mask_ijk, wanted, opts, failed)
    bundle = script = None
    if "slicer" in wanted:
        bundle = attempt(
            "slicer",
            lambda: write_slicer_bundle(
                root, volume, heat_ijk, mask_ijk, threshold=threshold, heatmap_nifti=heatmap_nifti,
                mask_nifti=mask_nifti, smoke=smoke,
            ),
            failed,
        )  # fmt: skip
        home = Path(published_dir) / BUNDLE_DIR if published_dir is not None else None
        if bundle is not None:
            script = attempt("slicer", lambda: write_slicer_script(root, home=home), failed)
    return ReviewOutputs(seg, pmap, bundle, script, skipped, tuple(failed))


def not_applicable(volume: Volume) -> str:
    """Why DICOM SEG, Parametric Map and SR do not apply to ``volume``'s source (``""``: they do).

    They reference DICOM images placed in the patient: a NIfTI/NRRD file or a 2D image file is no
    DICOM source, and a DICOM image without ImagePositionPatient (0020,0032) (a radiograph, an
    ultrasound, a secondary capture) has no patient geometry for their frames to lie on.
    """
    src = volume.source
    if src.kind != "dicom":
        kind = {"nifti": "a NIfTI file", "itk": "an NRRD/MetaImage file", "image2d": "a 2D image file"}
        return f"not applicable: the source is {kind.get(src.kind, repr(src.kind))}, not DICOM"
    if not src.patient_geometry:
        return (
            "not applicable: the source DICOM image has no patient geometry (no ImagePositionPatient "
            "(0020,0032); a radiograph, ultrasound or secondary capture)"
        )
    return ""


@dataclass(frozen=True)
class _DicomOptions:
    threshold: float
    keep_empty_frames: bool
    smoke: bool


def _write_dicom(
    root: Path,
    volume: Volume,
    heat_ijk: np.ndarray,
    mask_ijk: np.ndarray,
    wanted: set[str],
    opts: _DicomOptions,
    failed: list[OutputFailure],
) -> tuple[SegWriteResult | None, SegWriteResult | None, tuple[str, ...]]:
    """The SEG and Parametric Map (DICOM sources with patient geometry only; others are skipped)."""
    why = not_applicable(volume)
    if why:
        skipped = tuple(f"{fmt}: {why}" for fmt in sorted(wanted & {"dicom-seg", "dicom-pmap"}))
        for line in skipped:
            logger.info("skipping %s", line)
        return None, None, skipped
    seg = pmap = None
    if "dicom-seg" in wanted:
        seg = attempt(
            "dicom-seg",
            lambda: write_dicom_seg(
                mask_ijk,
                volume,
                root / SEG_FILE,
                threshold=opts.threshold,
                keep_empty_frames=opts.keep_empty_frames,
                algorithm_version=medzsad.__version__,
                smoke=opts.smoke,
            ),
            failed,
        )
    if "dicom-pmap" in wanted:
        pmap = attempt(
            "dicom-pmap",
            lambda: write_heatmap_parametric_map(
                heat_ijk, volume, root / PMAP_FILE, threshold=opts.threshold, smoke=opts.smoke
            ),
            failed,
        )
    return seg, pmap, ()
