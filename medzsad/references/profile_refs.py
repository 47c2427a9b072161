"""Few-shot references in site profiles: choose them, build their bank, find it again at review.

``medzsad profile`` with ``profile: {references: K}``: K normal studies, drawn reproducibly by
``reference_seed`` from the sorted safe ids, become references; their bank is written to
``<profile>/references.safetensors`` and the other normals are scored *with* the references (the
same blended map a review cohort with ``model.references: true`` computes) and become the
calibration set. References and calibration studies are disjoint: checked when the profile is
built and again whenever a review cohort loads the bank.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medzsad.calibration.conformal import min_normals
from medzsad.calibration.hashes import model_hash
from medzsad.calibration.operating_point import profile_of
from medzsad.cohort.ids import unique_safe_ids
from medzsad.cohort.inputs import collect_studies
from medzsad.cohort.loading import StudyLoader, default_loader
from medzsad.cohort.reference_scorer import ReferenceScorer
from medzsad.cohort.scorer import ModelScorer, SliceScorer, build_model_scorer
from medzsad.config import CohortConfig
from medzsad.errors import ConfigError
from medzsad.references.bank_io import BankInfo, load_bank, save_bank
from medzsad.references.build import build_reference_bank
from medzsad.references.sampling import ReferenceSplit, check_disjoint, split_references

__all__ = [
    "BANK_FILE",
    "ProfileReferences",
    "with_reference_mode",
    "prepare_profile_references",
    "load_review_references",
]

log = logging.getLogger(__name__)

#: The bank file inside a profile folder.
BANK_FILE = "references.safetensors"


@dataclass(frozen=True)
class ProfileReferences:
    """The references of a profile being built.

    Attributes:
        split: References and calibration studies (safe ids), disjoint.
        scorer: The scorer of the calibration normals (blended map with the bank).
        bank_file: Where the bank was written.
        info: The bank's metadata.
        n_patches: Patches in the bank.
    """

    split: ReferenceSplit
    scorer: ReferenceScorer
    bank_file: Path
    info: BankInfo
    n_patches: int

    def to_json(self) -> dict[str, Any]:
        """The ``references`` entry of ``profile.json`` (safe ids and numbers only)."""
        return {
            "k": len(self.split.references),
            "seed": self.info.seed,
            "ids": list(self.split.references),
            "bank": self.bank_file.name,
            "coreset": self.info.coreset_ratio,
            "n_patches": self.n_patches,
            "n_patches_full": self.info.n_patches_full,
            "weight": self.info.extra.get("weight"),
            "window": self.info.extra.get("window"),
        }


def with_reference_mode(cfg: CohortConfig) -> CohortConfig:
    """A normals cohort with ``profile.references > 0`` scores with references (``model.references``)."""
    if cfg.profile is None or cfg.profile.references == 0 or cfg.model.references:
        return cfg
    return cfg.with_overrides(**{"model.references": True})


def prepare_profile_references(
    cfg: CohortConfig,
    folder: Path,
    *,
    scorer: SliceScorer | None = None,
    loader: StudyLoader | None = None,
) -> ProfileReferences:
    """Draw the references, build and write their bank, and return the calibration scorer.

    Args:
        cfg: The normals cohort (with ``profile.references > 0`` and run options applied).
        folder: The profile folder (created).
        scorer: Zero-shot model to use instead of building one (must be a ``ModelScorer``).
        loader: Study loader.

    Raises:
        ConfigError: Too few normals left for calibration at ``profile.alpha``, or an injected
            scorer that cannot encode features.
    """
    settings = cfg.profile
    if settings is None or settings.references < 1:
        raise ConfigError(f"{cfg.source_file}: profile.references must be >= 1 to build references")
    studies = collect_studies(cfg)
    safe = unique_safe_ids([s.study_id for s in studies])
    split = split_references(
        list(safe.values()),
        settings.references,
        settings.reference_seed,
        min_calibration=min_normals(settings.alpha),
    )
    chosen = set(split.references)
    base = _base_scorer(cfg, scorer)
    built = build_reference_bank(
        cfg,
        [s for s in studies if safe[s.study_id] in chosen],
        base,
        loader or default_loader,
        coreset=settings.reference_coreset,
        seed=settings.reference_seed,
    )
    m = cfg.model
    info = BankInfo(
        model_hash(cfg),
        split.references,
        seed=settings.reference_seed,
        coreset_ratio=settings.reference_coreset,
        n_patches_full=built.n_patches_full,
        extra={"weight": m.reference_weight, "window": m.reference_window, "n_slices": built.n_slices},
    )
    folder.mkdir(parents=True, exist_ok=True)
    bank_file = save_bank(folder / BANK_FILE, built.bank, info)
    ref_scorer = ReferenceScorer(base, built.bank, m.reference_weight, m.reference_window, split.references)
    log.info("profile references: %d studies -> %s", len(split.references), bank_file)
    return ProfileReferences(split, ref_scorer, bank_file, info, built.bank.n_patches)


def _base_scorer(cfg: CohortConfig, scorer: SliceScorer | None) -> ModelScorer:
    if scorer is None:
        return build_model_scorer(cfg)
    if isinstance(scorer, ReferenceScorer):
        return scorer.base
    if not isinstance(scorer, ModelScorer):
        raise ConfigError(
            f"{cfg.source_file}: profile.references needs the cohort's model to encode the references; "
            f"the injected scorer {type(scorer).__name__} cannot"
        )
    return scorer


def _profile_folder(cfg: CohortConfig) -> str:
    named = {
        p
        for p in (
            cfg.output.flag.profile if cfg.output.flag is not None else None,
            cfg.output.threshold.profile,
        )
        if p
    }
    if len(named) != 1:
        raise ConfigError(
            f"{cfg.source_file}: model.references: true takes its references from the profile named by "
            f"output.flag.profile / output.threshold.profile; found {len(named)} profile folders "
            "(name exactly one profile built with profile.references)"
        )
    return named.pop()


def load_review_references(cfg: CohortConfig, base: ModelScorer) -> ReferenceScorer:
    """The reference scorer of a review cohort with ``model.references: true``.

    The bank must have been built with this cohort's model (its hash), and its references must be
    disjoint from the profile's calibration studies.

    Raises:
        ConfigError: No (or more than one) profile named, a profile built without references, a
            bank of another model, or references that are also calibration studies.
        InputError: An unreadable bank file.
    """
    folder = _profile_folder(cfg)
    profile = profile_of(cfg, folder)
    bank_file = cfg.resolve(folder) / BANK_FILE
    if not bank_file.is_file():
        raise ConfigError(
            f"{cfg.source_file}: model.references: true but profile {cfg.resolve(folder)} has no "
            f"{BANK_FILE}; rebuild it with profile: {{references: K}} or set model.references: false"
        )
    bank, info = load_bank(bank_file, model_hash=model_hash(cfg))
    calibration = [c.study_id for s in profile.strata.values() for c in s.studies]
    check_disjoint(info.reference_ids, calibration)
    m = cfg.model
    return ReferenceScorer(base, bank, m.reference_weight, m.reference_window, info.reference_ids)
