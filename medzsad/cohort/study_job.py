"""One study from its model outputs to a published folder; the runner records the outcome in the ledger."""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medzsad.calibration.operating_point import study_p_value
from medzsad.calibration.study import calibrate_study
from medzsad.cohort.executor import Loaded, Scored
from medzsad.cohort.inputs import StudyInput
from medzsad.cohort.scorer import ScorerInfo, SliceScorer
from medzsad.cohort.stages import PreparedStudy, assemble_heatmap, postprocess, slice_scores, study_score
from medzsad.cohort.study_writer import StudyFiles, StudyResult, publish, write_study_files
from medzsad.config import CohortConfig, OutputKind, study_config_hash
from medzsad.errors import InputError
from medzsad.report.optional import OutputFailure, attempt
from medzsad.report.provenance import build_provenance
from medzsad.report.slicer_bundle_script import write_slicer_script

__all__ = [
    "StudyJob",
    "StudyFinish",
    "ModelFacts",
    "finish_study",
    "FinishPlace",
    "log_failed_outputs",
    "scored_region",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StudyJob:
    """A study with its folder name, hashes and log pseudonym."""

    study: StudyInput
    safe_id: str
    input_hash: str
    config_hash: str
    log_id: str


class _StageError(Exception):
    def __init__(self, stage: str, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.stage = stage
        self.cause = cause


@dataclass(frozen=True)
class StudyFinish:
    """What finishing a study gave; the runner records it in the ledger (in its own thread).

    Attributes:
        status: ``done``, ``failed`` or ``cancelled`` (the run stopped before the study was scored).
        score: Study score when done.
        error: One-line error when failed.
        stage: Stage that failed (``load``, ``score``, ``assemble``, ``postprocess``, ``write``).
        error_type: Exception class name when failed.
        summary: The ledger's ``outputs`` record when done.
        seconds: CPU stages and model time spent on the study (read, preprocess, score, ...).
    """

    status: str
    score: float | None = None
    error: str = ""
    stage: str = ""
    error_type: str = ""
    summary: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def scored_region(prepared: PreparedStudy) -> np.ndarray:
    """``(I, J, K)`` bool: voxels of the slices that were scored (the body for percentile thresholds)."""
    keep = np.zeros(prepared.n_slices, dtype=bool)
    keep[prepared.slice_index] = True
    shape = [1, 1, 1]
    shape[prepared.slice_axis] = prepared.n_slices
    return np.broadcast_to(keep.reshape(shape), prepared.volume.shape_ijk)


def _compute(
    job: StudyJob, loaded: Loaded[PreparedStudy], scored: Scored | None, cfg: CohortConfig, n_layers: int
) -> StudyResult:
    stage = "load"
    try:
        prepared = loaded.result()
        stage = "score"
        if scored is None:
            raise InputError(
                f"study {job.study.study_id}: every slice was skipped as empty; nothing to score"
            )
        scores = slice_scores(scored.image_scores, scored.maps, n_layers)
        prepared.timings_s["score"] = scored.seconds
        stage = "assemble"
        heat = assemble_heatmap(prepared, scores)
        stage = "calibrate"
        t = time.perf_counter()
        calib = calibrate_study(cfg, prepared, heat)
        prepared.timings_s["calibrate"] = time.perf_counter() - t
        stage = "postprocess"
        t = time.perf_counter()
        lesions = postprocess(heat, prepared.volume, calib.threshold.rule, scored_region(prepared))
        score = study_score(scores, heat, cfg.output.study_score)
        prepared.timings_s["postprocess"] = time.perf_counter() - t
        summary = calib.summary()
        p_value, flagged = study_p_value(cfg, score, calib.stratum)  # for per-study objects (the SR)
        if p_value is not None:
            summary.update(p_value=p_value, flagged=flagged)
    except Exception as e:  # recorded per study; the cohort goes on
        raise _StageError(stage, e) from e
    label = job.log_id  # the output folder's name with show_ids, else the hash
    return StudyResult(prepared, scores, heat, lesions, score, label, cfg.model.is_smoke, summary)


@dataclass(frozen=True)
class ModelFacts:
    """What finishing a study needs to know of the model (picklable, sent to writer processes).

    Attributes:
        n_layers: Feature layers summed in the raw maps.
        info: Description, hash and weights for provenance (``None`` for an injected scorer).
    """

    n_layers: int
    info: ScorerInfo | None

    @classmethod
    def of(cls, model: SliceScorer) -> ModelFacts:
        """The facts of ``model``."""
        return cls(int(model.n_layers), getattr(model, "info", None))


def _provenance(job: StudyJob, result: StudyResult, cfg: CohortConfig, model: ModelFacts) -> dict[str, Any]:
    p = result.prepared
    v = p.volume
    info = model.info
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
            "config_hash": study_config_hash(cfg),
            "model_hash": info.model_hash if info is not None else "injected",
        },
        model={"description": info.description, "weights": info.weights} if info is not None else {},
        timings_s=dict(p.timings_s),
        smoke=result.smoke,
    )
    # the operating point ("tau 0.6132 (profile p, n=57 normals, alpha 0.05)" or "uncalibrated")
    record["operating_point"] = result.calibration.get("operating_point", "")
    record["calibration"] = result.calibration
    return record


def _summary(result: StudyResult, files: StudyFiles, failed: list[OutputFailure]) -> dict[str, Any]:
    p = result.prepared
    return {
        "score": result.score,
        "slices": int(p.n_slices),
        "scored_slices": int(len(p.slice_index)),
        "lesion_count": len(result.lesions.lesions),
        "lesion_volume_ml": round(float(sum(les.volume_ml for les in result.lesions.lesions)), 6),
        "threshold": result.lesions.threshold,
        "series_uid": p.volume.source.series_uid,
        "series_description": p.volume.source.series_description,
        "modality": p.volume.modality,
        "files": files.written,
        "output_failures": [f.to_dict() for f in failed],
        **result.calibration,
    }


def log_failed_outputs(log_id: str, failed: list[dict[str, str]], show_ids: bool) -> None:
    """Log the optional outputs of a study that failed (``OutputFailure.to_dict`` records)."""
    for f in failed:
        # messages name files: shown with show_ids only, never text-replaced (docs/privacy.md)
        shown = f["message"][:300] if show_ids else "message hidden (--show-ids shows it)"
        log.warning(
            "study %s: optional output %s failed (study kept): %s: %s",
            log_id,
            f["output"],
            f["error_type"],
            shown,
        )


def finish_study(
    job: StudyJob,
    loaded: Loaded[PreparedStudy],
    scored: Scored | None,
    cfg: CohortConfig,
    model: ModelFacts,
    where: FinishPlace,
) -> StudyFinish:
    """Post-process, write and publish one scored study (in a writer process or a Ray actor).

    Module level, so it pickles by name; it has no ledger access.

    Every exception of the study (bad input, geometry, model, disk) becomes a ``failed``
    :class:`StudyFinish` with its stage; only ``KeyboardInterrupt``/``SystemExit`` propagate.
    """
    studies_dir = cfg.out_dir / "studies"
    partial = where.partial
    stage = "load"
    try:
        result = _compute(job, loaded, scored, cfg, model.n_layers)
        stage = "write"
        t = time.perf_counter()
        files = write_study_files(partial, result, cfg.output, _provenance(job, result, cfg, model))
        publish(partial, studies_dir / job.safe_id, may_replace=where.may_replace)
        failed = list(files.failed)
        if OutputKind.SLICER in cfg.output.outputs and "slicer" not in {f.output for f in failed}:
            # the loader script holds absolute paths: rewrite it for the published folder
            # (before the ledger says done, so a kill here still redoes the study)
            attempt("slicer", lambda: write_slicer_script(studies_dir / job.safe_id), failed)
        result.prepared.timings_s["write"] = time.perf_counter() - t
    except Exception as e:  # one bad study must never stop the others
        cause = e.cause if isinstance(e, _StageError) else e
        stage = e.stage if isinstance(e, _StageError) else stage
        message = " ".join(str(cause).split()) or type(cause).__name__
        shutil.rmtree(partial, ignore_errors=True)
        log.debug("traceback of study %s", job.log_id, exc_info=cause if cfg.output.show_ids else None)
        return StudyFinish("failed", error=message, stage=stage, error_type=type(cause).__name__)
    seconds = float(sum(result.prepared.timings_s.values()))
    return StudyFinish("done", score=result.score, summary=_summary(result, files, failed), seconds=seconds)


@dataclass(frozen=True)
class FinishPlace:
    """Where a writer puts a study, decided by the main process (which owns the ledger).

    Attributes:
        partial: The study's partial folder (named with the main process's pid).
        may_replace: An existing published folder of the same name is medzsad's own.
    """

    partial: Path
    may_replace: bool
