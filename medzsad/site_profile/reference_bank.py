"""Build a reference bank from normal studies through the study's own loading and batching.

Each reference study is loaded and preprocessed exactly as a scored study is (same loader, same
preset, same axes), its slices are encoded by the cohort's model in the same batches
(:func:`medzsad.study.scoring.encode_study`), and every patch is stored with its slice's body
coordinate and zero-shot value, one bank per scored axis. A coreset (greedy k-center per
body-coordinate bin) bounds the size. For maps in site units, each axis's statistics come from
the references alone, each compared with the others
(:func:`medzsad.model.site_units.leave_one_out_stats`).
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

__all__ = ["BuiltBank", "build_reference_bank"]

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


def build_reference_bank(
    cfg: CohortConfig,
    studies: Sequence[StudyInput],
    scorer: ModelScorer,
    loader: StudyLoader,
    *,
    coreset: float = 1.0,
    seed: int = 0,
    site_stats: bool = False,
) -> BuiltBank:
    """Encode the reference studies' scored slices into one bank per axis.

    Args:
        cfg: The cohort (pipeline, batch size, reference window).
        studies: The reference studies.
        scorer: The cohort's zero-shot model.
        loader: Loads and preprocesses a study (the cohort's loader).
        coreset: Kept fraction of patches (1.0 keeps all).
        seed: Seed of the coreset.
        site_stats: Also compute the statistics of maps in site units (needs >= 2 studies).

    Raises:
        InputError: A reference study cannot be read or has no scored slice (a reference must be
            usable; the message names its position, not its id).
        ModelError: ``site_stats`` with fewer than two references.
    """
    per_study: dict[str, list[PatchBank]] = {}
    n_slices = 0
    spec = InputSpec.of(scorer)
    for i, study in enumerate(studies):
        prepared = loader(study, cfg, spec)
        n = int(prepared.images.shape[0])
        if n == 0:
            raise InputError(f"reference study {i + 1} of {len(studies)} has no scored slice (all empty)")
        for axis, bank in encode_study(prepared, scorer, cfg.model.batch_size).items():
            per_study.setdefault(axis, []).append(bank)
        n_slices += n
    full = {axis: merge_banks(banks) for axis, banks in per_study.items()}
    kept = {axis: coreset_bank(b, coreset, seed=seed) if coreset < 1.0 else b for axis, b in full.items()}
    stats = None
    if site_stats:
        options, device = SearchOptions(window=cfg.model.reference_window), scorer.detector.device
        stats = {
            axis: leave_one_out_stats(banks, options, coreset=coreset, seed=seed, device=device)
            for axis, banks in per_study.items()
        }
    built = BuiltBank(kept, sum(b.n_patches for b in full.values()), n_slices, stats)
    log.info(
        "reference bank: %d studies, %s, %d slices, %d patches (%d after coreset), %.1f MiB",
        len(studies),
        "+".join(kept),
        n_slices,
        built.n_patches_full,
        built.n_patches,
        built.nbytes / 2**20,
    )
    return built
