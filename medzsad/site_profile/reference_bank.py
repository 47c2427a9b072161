"""Build a reference bank from normal studies through the study's own loading and batching.

Each reference study is loaded and preprocessed exactly as a scored study is (same loader, same
preset, same axes), its slices are encoded by the cohort's model in the same batches
(:func:`medzsad.study.scoring.encode_study`), and every patch is stored with its slice's body
coordinate and zero-shot value, one bank per scored axis. A coreset (greedy k-center per
body-coordinate bin) bounds the size. For maps in site units, each axis's statistics come from
the references alone, each compared with the others
(:func:`medzsad.model.site_units.leave_one_out_stats`). A candidate that cannot be read is left
out, as a normal study that fails to load is, and the next candidate is encoded in its place
(:func:`encode_references`).

The references are read in the main process, one after the other: without the worker process,
``executor.study_timeout_s`` and ``worker_memory_gb`` that a run's studies get.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import NamedTuple

from medzsad.config import CohortConfig
from medzsad.errors import InputError
from medzsad.model.references import PatchBank, SearchOptions, coreset_bank, merge_banks
from medzsad.model.site_units import NormalStats, leave_one_out_stats
from medzsad.study.loading import InputSpec, StudyLoader
from medzsad.study.scorer import ModelScorer
from medzsad.study.scoring import encode_study
from medzsad.study.types import StudyInput

__all__ = ["BuiltBank", "EncodedReferences", "FailedReference", "build_reference_bank", "encode_references"]

log = logging.getLogger(__name__)


class BuiltBank(NamedTuple):
    """A bank per axis and how it was made.

    Attributes:
        banks: Axis name -> the (possibly reduced) bank, fp16 on the CPU; the primary axis first.
        n_patches_full: Patches before the coreset (all axes).
        n_slices: Reference slices encoded (all axes).
        stats: Axis name -> the site's statistics of the two map terms, or ``None`` (not asked).
    """

    banks: dict[str, PatchBank]
    n_patches_full: int
    n_slices: int
    stats: dict[str, NormalStats] | None = None

    @property
    def n_patches(self) -> int:
        """Patches kept (all axes)."""
        return sum(b.n_patches for b in self.banks.values())

    @property
    def nbytes(self) -> int:
        """Bytes of the banks."""
        return sum(b.nbytes for b in self.banks.values())


class FailedReference(NamedTuple):
    """A reference candidate that could not be used: the study and why (its loading error)."""

    study: StudyInput
    error: Exception


class EncodedReferences(NamedTuple):
    """The reference studies encoded, and the candidates left out.

    Attributes:
        studies: The studies encoded, in the order they were tried.
        banks: One ``axis name -> bank`` per study of ``studies`` (full, no coreset).
        n_slices: Slices encoded (all studies).
        failed: Candidates that could not be read or had no scored slice, in the order tried.
    """

    studies: tuple[StudyInput, ...]
    banks: tuple[dict[str, PatchBank], ...]
    n_slices: int
    failed: tuple[FailedReference, ...]


def encode_references(
    cfg: CohortConfig,
    candidates: Sequence[StudyInput],
    k: int,
    scorer: ModelScorer,
    loader: StudyLoader,
    *,
    max_failures: int,
) -> EncodedReferences:
    """Encode the first ``k`` candidates that load, in order; a candidate that does not is left out.

    A candidate that cannot be read, or has no scored slice, is skipped like any normal study
    that fails to load (its error is kept), and the next candidate takes its place. Encoding stops
    after ``k`` studies, after ``max_failures + 1`` failures, or when the candidates run out (the
    caller checks how many were encoded). An error of the model itself is raised.

    Args:
        cfg: The cohort (pipeline, batch size).
        candidates: The reference studies in draw order, then the spares in the order to use them.
        k: References wanted.
        scorer: The cohort's zero-shot model.
        loader: Loads and preprocesses a study (the cohort's loader).
        max_failures: Failures the caller can afford (each leaves one normal fewer for calibration).
    """
    spec = InputSpec.of(scorer)
    studies: list[StudyInput] = []
    banks: list[dict[str, PatchBank]] = []
    failed: list[FailedReference] = []
    n_slices = 0
    for study in candidates:
        if len(studies) == k or len(failed) > max_failures:
            break
        try:  # as a run does (medzsad.study.finish.load): any loading error fails this study only
            prepared = loader(study, cfg, spec)
            if int(prepared.images.shape[0]) == 0:
                raise InputError("the study has no scored slice (every slice is empty)")
        except Exception as e:
            failed.append(FailedReference(study, e))
            continue
        banks.append(encode_study(prepared, scorer, cfg.model.batch_size))
        studies.append(study)
        n_slices += int(prepared.images.shape[0])
    return EncodedReferences(tuple(studies), tuple(banks), n_slices, tuple(failed))


def build_reference_bank(
    cfg: CohortConfig,
    encoded: EncodedReferences,
    scorer: ModelScorer,
    *,
    coreset: float = 1.0,
    seed: int = 0,
    site_stats: bool = False,
) -> BuiltBank:
    """One bank per axis from the encoded reference studies (:func:`encode_references`).

    Args:
        cfg: The cohort (reference window).
        encoded: The encoded reference studies (at least one).
        scorer: The cohort's zero-shot model (its device runs the statistics).
        coreset: Kept fraction of patches (1.0 keeps all).
        seed: Seed of the coreset.
        site_stats: Also compute the statistics of maps in site units (needs >= 2 studies).

    Raises:
        ModelError: ``site_stats`` with fewer than two references.
    """
    per_axis: dict[str, list[PatchBank]] = {}
    for study_banks in encoded.banks:
        for axis, bank in study_banks.items():
            per_axis.setdefault(axis, []).append(bank)
    full = {axis: merge_banks(banks) for axis, banks in per_axis.items()}
    kept = {axis: coreset_bank(b, coreset, seed=seed) if coreset < 1.0 else b for axis, b in full.items()}
    stats = None
    if site_stats:
        options, device = SearchOptions(window=cfg.model.reference_window), scorer.detector.device
        stats = {
            axis: leave_one_out_stats(banks, options, coreset=coreset, seed=seed, device=device)
            for axis, banks in per_axis.items()
        }
    built = BuiltBank(kept, sum(b.n_patches for b in full.values()), encoded.n_slices, stats)
    log.info(
        "reference bank: %d studies, %s, %d slices, %d patches (%d after coreset), %.1f MiB",
        len(encoded.studies),
        "+".join(kept),
        encoded.n_slices,
        built.n_patches_full,
        built.n_patches,
        built.nbytes / 2**20,
    )
    return built
