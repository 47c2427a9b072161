"""One study, start to finish: load, score, post-process, calibrate, write, publish.

This is the only implementation of a study; executors decide where its parts run:

- :func:`load` (CPU, may crash): read, select, slice (an executor may run it in a worker process);
- :func:`medzsad.study.scoring.score_batch` / :func:`~medzsad.study.scoring.score_study` (the model);
- :func:`finish_study` (CPU, may crash): post-process, calibrate, write into the partial folder and
  publish it with one rename; it has no ledger access and returns a :class:`StudyFinish`;
- :func:`run_study`: all of it in one process (the Ray actor).

Every exception of a study (bad input, geometry, model, disk) becomes a ``failed``
:class:`StudyFinish` with its stage; only ``KeyboardInterrupt``/``SystemExit`` propagate.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass

from medzsad.analysis.lesions import voxel_volume_ml
from medzsad.config import CohortConfig
from medzsad.errors import keep_traceback, traceback_text
from medzsad.study.calibrate import calibrate_study
from medzsad.study.loading import Allocate, InputSpec, ModelInputSpec, StudyLoader
from medzsad.study.outputs import StudyResult, publish, write_study_files
from medzsad.study.postprocess import assemble_heatmap, postprocess, scored_region, slice_scores, study_score
from medzsad.study.provenance import study_provenance, study_summary
from medzsad.study.scorer import ScorerInfo, SliceScorer
from medzsad.study.scoring import nothing_to_score, score_study
from medzsad.study.types import (
    Failed,
    FinishPlace,
    Loaded,
    PreparedStudy,
    Ready,
    Scored,
    StudyFinish,
    StudyJob,
)

__all__ = ["ModelFacts", "load", "finish_study", "run_study"]


@dataclass(frozen=True)
class ModelFacts:
    """What finishing a study needs to know of the model (picklable, sent to writer processes).

    Attributes:
        info: The built model's description, hash and weights (``None`` for an injected scorer).
    """

    info: ScorerInfo | None

    @classmethod
    def of(cls, model: SliceScorer) -> ModelFacts:
        """The facts of ``model``."""
        return cls(getattr(model, "info", None))


class _StageError(Exception):
    def __init__(self, stage: str, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.stage = stage
        self.cause = cause


def load(
    loader: StudyLoader,
    job: StudyJob,
    cfg: CohortConfig,
    spec: ModelInputSpec,
    allocate: Allocate | None = None,
) -> Loaded[PreparedStudy]:
    """Load one study; a failure is kept (``Failed``) for :func:`finish_study` to record."""
    try:
        return Ready(loader(job.study, cfg, spec, allocate))
    except Exception as e:  # recorded by finish_study as the study's failure at "load"
        keep_traceback(e)  # a worker process sends ``Failed`` without the frames
        return Failed(e)


def _compute(
    job: StudyJob, loaded: Loaded[PreparedStudy], scored: Scored | None, cfg: CohortConfig
) -> StudyResult:
    stage = loaded.stage if isinstance(loaded, Failed) else "load"
    try:
        prepared = loaded.result()
        stage = "score"
        if scored is None:
            raise nothing_to_score(job.study.study_id)
        # the maps leave ``scored`` here, so that they are freed once the heat map is built: they are
        # the study's largest array, and ``scored`` stays alive to the end (a writer task's argument)
        maps = scored.take_maps()
        scores = slice_scores(scored.image_scores, maps)
        prepared.timings_s["score"] = scored.seconds
        stage = "assemble"
        heat = assemble_heatmap(prepared, maps, cfg.pipeline.fusion)
        del maps
        region = scored_region(prepared)
        voxel_ml = voxel_volume_ml(prepared.volume.affine_ras)
        score = study_score(scores, heat, cfg.output.study_score, region, voxel_ml)
        stage = "calibrate"
        t = time.perf_counter()
        calib = calibrate_study(cfg, prepared, heat, score)
        prepared.timings_s["calibrate"] = time.perf_counter() - t
        stage = "postprocess"
        t = time.perf_counter()
        lesions = postprocess(heat, prepared.volume, calib.threshold.rule, region)
        prepared.timings_s["postprocess"] = time.perf_counter() - t
    except Exception as e:  # recorded per study; the cohort goes on
        raise _StageError(stage, e) from e
    # the overlay names the study as its folder and the review page do (inside the output folder);
    # the hash of the id is for channels that leave it (logs), so --show-ids changes no file
    label = job.safe_id
    return StudyResult(prepared, scores, heat, lesions, score, label, cfg.model.is_smoke, calib.summary())


def finish_study(
    job: StudyJob,
    loaded: Loaded[PreparedStudy],
    scored: Scored | None,
    cfg: CohortConfig,
    model: ModelFacts,
    where: FinishPlace,
) -> StudyFinish:
    """Post-process, calibrate, write and publish one scored study (see the module docstring).

    Module level, so it pickles by name; it has no ledger access.

    Args:
        job: The study.
        loaded: Its load (``Failed`` when loading raised).
        scored: Its model outputs (``None`` when loading failed or no slice was scored).
        cfg: The cohort.
        model: The model's description.
        where: The partial folder to write and whether the published folder may be replaced.
    """
    final = cfg.out_dir / "studies" / job.safe_id
    stage = "load"
    try:
        result = _compute(job, loaded, scored, cfg)
        stage = "write"
        t = time.perf_counter()
        record = study_provenance(job, result, cfg, model.info)
        files = write_study_files(where.partial, result, cfg.output, record, published_dir=final)
        publish(where.partial, final, may_replace=where.may_replace)
        result.prepared.timings_s["write"] = time.perf_counter() - t
    except Exception as e:  # one bad study must never stop the others
        cause = e.cause if isinstance(e, _StageError) else e
        stage = e.stage if isinstance(e, _StageError) else stage
        shutil.rmtree(where.partial, ignore_errors=True)
        # logged by the runner, in the main process (a writer process has no log handler)
        return StudyFinish.failure(cause, stage, traceback_text(cause) if cfg.output.show_ids else "")
    seconds = float(sum(result.prepared.timings_s.values()))
    summary = study_summary(result, files)
    shown = files.failed if cfg.output.show_ids else ()
    traceback = "\n".join(f"optional output {f.output}:\n{f.traceback}" for f in shown)
    return StudyFinish("done", score=result.score, summary=summary, seconds=seconds, traceback=traceback)


def run_study(
    job: StudyJob, cfg: CohortConfig, loader: StudyLoader, scorer: SliceScorer, where: FinishPlace
) -> StudyFinish:
    """The whole study in this process: :func:`load`, score in ``model.batch_size`` batches, finish."""
    loaded = load(loader, job, cfg, InputSpec.of(scorer))
    scored: Scored | None = None
    try:
        prepared = loaded.result()
        if int(prepared.images.shape[0]) > 0:
            scored = score_study(prepared, scorer, cfg.model.batch_size)
            loaded = Ready(prepared.without_images())
    except Exception as e:  # a failed load is in ``loaded``; a failed model call fails the study
        if not isinstance(loaded, Failed):
            loaded = Failed(e, stage="score")
    return finish_study(job, loaded, scored, cfg, ModelFacts.of(scorer), where)
