"""A study's ``provenance.json`` record and its ledger summary, from what was computed and built."""

from __future__ import annotations

from typing import Any

import numpy as np

from medzsad.config import CohortConfig
from medzsad.report.provenance import build_provenance
from medzsad.study.outputs import StudyFiles, StudyResult
from medzsad.study.scorer import ScorerInfo
from medzsad.study.types import StudyJob

__all__ = ["study_provenance", "study_summary", "study_warnings"]


def study_warnings(result: StudyResult) -> list[str]:
    """What a user must know about how the study was read (studies.csv, the page, the terminal).

    The series fallback (``no axial series; used coronal #3 ...``), then the loader's warnings:
    missing slices, irregular spacing, tilt, duplicate copies, frames without patient positions.
    """
    p = result.prepared
    fallback = [p.series.fallback] if p.series is not None and p.series.fallback else []
    return fallback + list(p.volume.warnings)


def study_provenance(
    job: StudyJob, result: StudyResult, cfg: CohortConfig, info: ScorerInfo | None
) -> dict[str, Any]:
    """The provenance record: study, input files and geometry, settings, hashes, the built model."""
    p = result.prepared
    v = p.volume
    record = build_provenance(
        study={
            "study_id": job.study.study_id,
            "safe_id": job.safe_id,
            "log_id": job.log_id,
            "series": p.series.to_dict() if p.series is not None else {},
        },
        inputs={
            "path": job.study.path,
            "n_files": len(v.source.paths),
            "files": list(v.source.paths[:2000]),
            "kind": v.source.kind,
            "study_uid": v.source.study_uid,
            "series_uid": v.source.series_uid,
            "frame_of_reference_uid": v.source.frame_of_reference_uid,
            "sop_instance_uids": list(v.source.sop_instance_uids[:2000]),
            "modality": v.modality,
            "shape_ijk": list(v.shape_ijk),
            "affine_ras": np.round(v.affine_ras, 6).tolist(),
            "warnings": list(v.warnings),
        },
        config=cfg.model_dump(mode="json", exclude={"base_dir", "source_file"}),
        hashes={
            "input_hash": job.input_hash,
            "config_hash": job.config_hash,
            "model_hash": info.model_hash if info is not None else "injected",
        },
        model={"description": info.description, "weights": info.weights} if info is not None else {},
        timings_s=dict(p.timings_s),
        smoke=result.smoke,
    )
    record["warnings"] = study_warnings(result)
    # the operating point ("tau 0.6132 (profile p, n=57 normals, alpha 0.05)" or "uncalibrated")
    record["operating_point"] = result.calibration.get("operating_point", "")
    record["calibration"] = result.calibration
    return record


def study_summary(result: StudyResult, files: StudyFiles) -> dict[str, Any]:
    """The ledger's record of a done study (the cohort tables are built from it)."""
    p = result.prepared
    return {
        "score": result.score,
        "slices": int(p.n_slices),
        "scored_slices": int(sum(len(a.slice_index) for a in p.axes)),
        "lesion_count": len(result.lesions.lesions),
        "lesion_volume_ml": round(float(sum(les.volume_ml for les in result.lesions.lesions)), 6),
        "threshold": result.lesions.threshold,
        "series_uid": p.volume.source.series_uid,
        "series_description": p.volume.source.series_description,
        "modality": p.series.modality if p.series is not None else p.volume.modality,
        "files": files.written,
        "output_failures": [f.to_dict() for f in files.failed],
        "warnings": study_warnings(result),
        "notes": list(files.skipped),
        **result.calibration,
    }
