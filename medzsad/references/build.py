"""Build a reference bank from normal studies through the cohort's own loading path.

Each reference study is loaded and preprocessed exactly as a scored study is (same loader, same
preset), its slices are encoded by the cohort's model in batches, and every patch is stored with
its slice's body coordinate. A coreset (greedy k-center per body-coordinate bin) bounds the size.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import NamedTuple

from medzsad.cohort.inputs import StudyInput
from medzsad.cohort.loading import StudyLoader
from medzsad.cohort.reference_scorer import slice_positions
from medzsad.cohort.scorer import ModelScorer
from medzsad.config import CohortConfig
from medzsad.errors import InputError
from medzsad.model.reference_scoring import bank_from_images
from medzsad.model.references import PatchBank, coreset_bank, merge_banks

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
    banks = []
    n_slices = 0
    batch = cfg.model.batch_size
    for i, study in enumerate(studies):
        prepared = loader(study, cfg, scorer)
        n = int(prepared.images.shape[0])
        if n == 0:
            raise InputError(f"reference study {i + 1} of {len(studies)} has no scored slice (all empty)")
        pos = slice_positions(prepared.volume.affine_ras, prepared.slice_axis, prepared.slice_index)
        for start in range(0, n, batch):
            images = prepared.images[start : start + batch]
            banks.append(bank_from_images(scorer.detector, images, pos[start : start + batch]))
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
