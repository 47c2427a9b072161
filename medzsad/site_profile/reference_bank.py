"""Build a reference bank from normal studies through the study's own loading and batching.

Each reference study is loaded and preprocessed exactly as a scored study is (same loader, same
preset), its slices are encoded by the cohort's model in the same batches
(:func:`medzsad.study.scoring.encode_study`), and every patch is stored with its slice's body
coordinate. A coreset (greedy k-center per body-coordinate bin) bounds the size.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import NamedTuple

from medzsad.config import CohortConfig
from medzsad.errors import InputError
from medzsad.model.references import PatchBank, coreset_bank, merge_banks
from medzsad.study.loading import InputSpec, StudyLoader
from medzsad.study.scorer import ModelScorer
from medzsad.study.scoring import encode_study
from medzsad.study.types import StudyInput

__all__ = ["BuiltBank", "build_reference_bank"]

log = logging.getLogger(__name__)


class BuiltBank(NamedTuple):
    """A bank and how it was made.

    Attributes:
        bank: The (possibly reduced) bank, fp16 on the CPU.
        n_patches_full: Patches before the coreset.
        n_slices: Reference slices encoded.
    """

    bank: PatchBank
    n_patches_full: int
    n_slices: int


def build_reference_bank(
    cfg: CohortConfig,
    studies: Sequence[StudyInput],
    scorer: ModelScorer,
    loader: StudyLoader,
    *,
    coreset: float = 1.0,
    seed: int = 0,
) -> BuiltBank:
    """Encode the reference studies' scored slices into one bank.

    Args:
        cfg: The cohort (pipeline, batch size).
        studies: The reference studies.
        scorer: The cohort's zero-shot model.
        loader: Loads and preprocesses a study (the cohort's loader).
        coreset: Kept fraction of patches (1.0 keeps all).
        seed: Seed of the coreset.

    Raises:
        InputError: A reference study cannot be read or has no scored slice (a reference must be
            usable; the message names its position, not its id).
    """
    banks: list[PatchBank] = []
    n_slices = 0
    spec = InputSpec.of(scorer)
    for i, study in enumerate(studies):
        prepared = loader(study, cfg, spec)
        n = int(prepared.images.shape[0])
        if n == 0:
            raise InputError(f"reference study {i + 1} of {len(studies)} has no scored slice (all empty)")
        banks += encode_study(prepared, scorer, cfg.model.batch_size)
        n_slices += n
    full = merge_banks(banks)
    bank = coreset_bank(full, coreset, seed=seed) if coreset < 1.0 else full
    log.info(
        "reference bank: %d studies, %d slices, %d patches (%d after coreset), %.1f MiB",
        len(studies),
        n_slices,
        full.n_patches,
        bank.n_patches,
        bank.nbytes / 2**20,
    )
    return BuiltBank(bank, full.n_patches, n_slices)
