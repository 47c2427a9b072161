"""Few-shot references in site profiles: choose them and build their bank.

``medzsad profile`` with ``profile: {references: K}``: K normal studies, drawn reproducibly by
``reference_seed`` from the sorted safe ids, become references; their bank is written to
``<profile>/references.safetensors`` and the other normals are scored *with* the references (the
same blended map a review cohort with ``model.references: true`` computes,
:func:`medzsad.study.build.load_review_references`) and become the calibration set. References and
calibration studies are disjoint: checked when the profile is built and again whenever a review
cohort loads the bank.

A reference that cannot be read is left out like any normal study that fails to load (the run
that scores the normals counts it in ``n_failed`` and errors.csv), its error is logged with its
path hidden as a run hides it, and the next of the other normals, in a seeded order, takes its
place: the same normals, seed and failures give the same references.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medzsad.calibration.conformal import min_normals
from medzsad.calibration.hashes import model_hash
from medzsad.cohort.inputs import collect_studies
from medzsad.cohort.recording import shown_error
from medzsad.config import CohortConfig
from medzsad.errors import ConfigError
from medzsad.ids import hashed_id, unique_safe_ids
from medzsad.model.site_units import NormalStats
from medzsad.references.bank_io import BANK_FILE, BankInfo, save_banks
from medzsad.references.sampling import ReferenceSplit, split_references
from medzsad.site_profile.reference_bank import (
    BuiltBank,
    EncodedReferences,
    build_reference_bank,
    encode_references,
)
from medzsad.study.build import build_model_scorer
from medzsad.study.loading import StudyLoader, default_loader
from medzsad.study.scorer import ModelScorer, ReferenceScorer, SliceScorer
from medzsad.study.types import StudyFinish, StudyInput, StudyJob

__all__ = ["ProfileReferences", "with_reference_mode", "prepare_profile_references"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProfileReferences:
    """The references of a profile being built.

    Attributes:
        split: References and calibration studies (safe ids), disjoint.
        scorer: The scorer of the calibration normals (blended map with the bank).
        bank_file: Where the bank was written.
        info: The bank's metadata.
        n_patches: Patches in the bank (all axes).
        stats: Axis name -> the site's statistics of the map terms (maps in site units), or None.
    """

    split: ReferenceSplit
    scorer: ReferenceScorer
    bank_file: Path
    info: BankInfo
    n_patches: int
    stats: dict[str, NormalStats] | None = None

    def to_json(self) -> dict[str, Any]:
        """The ``references`` entry of ``profile.json`` (safe ids and numbers only).

        With maps in site units it holds ``normalisation``: per axis, the body-level bins'
        centre and scale of the zero-shot residual and of the reference distance.
        """
        out: dict[str, Any] = {
            "k": len(self.split.references),
            "seed": self.info.seed,
            "ids": list(self.split.references),
            "bank": self.bank_file.name,
            "axes": list(self.info.axes),
            "coreset": self.info.coreset_ratio,
            "n_patches": self.n_patches,
            "n_patches_full": self.info.n_patches_full,
            "weight": self.info.extra.get("weight"),
            "window": self.info.extra.get("window"),
            "site_normalised": self.stats is not None,
        }
        if self.stats is not None:
            out["normalisation"] = {axis: st.to_dict() for axis, st in self.stats.items()}
        return out


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
    studies: Sequence[StudyInput] | None = None,
) -> ProfileReferences:
    """Draw the references, build and write their bank, and return the calibration scorer.

    Args:
        cfg: The normals cohort (with ``profile.references > 0`` and run options applied).
        folder: The folder the bank is written in (created): the profile build's staged folder.
        scorer: Zero-shot model to use instead of building one (must be a ``ModelScorer``).
        loader: Study loader.
        studies: The cohort's studies when already listed (else listed here; a PACS input is
            queried again).

    Raises:
        ConfigError: Too few normals left for calibration at ``profile.alpha`` (also once the
            references that cannot be read are left out: the message says how many are needed),
            or an injected scorer that cannot encode features.
    """
    settings = cfg.profile
    if settings is None or settings.references < 1:
        raise ConfigError(f"{cfg.source_file}: profile.references must be >= 1 to build references")
    studies = collect_studies(cfg) if studies is None else studies
    safe = unique_safe_ids([s.study_id for s in studies])
    need, k = min_normals(settings.alpha), settings.references
    split = split_references(list(safe.values()), k, settings.reference_seed, min_calibration=need)
    if cfg.model.site_normalised and k < 2:
        raise ConfigError(
            f"{cfg.source_file}: profile.references: {k} cannot give maps in site "
            "units (each reference is compared with the others); use references >= 2 or "
            "model.site_normalised: false"
        )
    by_safe = {safe[s.study_id]: s for s in studies}
    candidates = [by_safe[i] for i in (*split.references, *_spares(split, settings.reference_seed))]
    base = _base_scorer(cfg, scorer)
    encoded = encode_references(
        cfg, candidates, k, base, loader or default_loader, max_failures=len(studies) - k - need
    )
    _report_failures(cfg, encoded, safe, len(studies))
    used = tuple(safe[s.study_id] for s in encoded.studies)
    split = ReferenceSplit(used, tuple(i for i in safe.values() if i not in set(used)))
    built = build_reference_bank(
        cfg,
        encoded,
        base,
        coreset=settings.reference_coreset,
        seed=settings.reference_seed,
        site_stats=cfg.model.site_normalised,
    )
    return _write_references(cfg, folder, split, base, built)


def _spares(split: ReferenceSplit, seed: int) -> list[str]:
    """The normals that take a failed reference's place, in a seeded order of the sorted safe ids.

    Like the draw itself, the order depends only on the set of ids and the seed.
    """
    rest = sorted(split.calibration)
    return [rest[int(i)] for i in np.random.default_rng([seed, 1]).permutation(len(rest))]


def _report_failures(cfg: CohortConfig, encoded: EncodedReferences, safe: dict[str, str], n: int) -> None:
    """Log each reference left out (its path hidden as a run hides it); refuse when too few remain.

    Raises:
        ConfigError: Fewer than ``profile.references`` references could be encoded without leaving
            calibration too few normals (the message says how many normals are needed).
    """
    settings = cfg.profile
    assert settings is not None  # noqa: S101 - checked by prepare_profile_references
    for f in encoded.failed:
        sid = f.study.study_id
        job = StudyJob(f.study, safe[sid], "", "", safe[sid] if cfg.output.show_ids else hashed_id(sid))
        shown = shown_error(cfg, job, StudyFinish.failure(f.error, "load"))
        log.warning(
            "study %s, drawn as a reference, is left out (counted as failed; another normal takes its place "
            "if enough remain): %s",
            job.log_id,
            shown[:400],
        )
    k, need = settings.references, min_normals(settings.alpha)
    if len(encoded.studies) < k:
        left = n - len(encoded.failed)
        raise ConfigError(
            f"{cfg.source_file}: {len(encoded.failed)} normal studies drawn as references cannot be read "
            f"(see the warnings), {left} of {n} are left; profile.references: {k} and alpha "
            f"{settings.alpha:g} need {k + need} ({k} references + ceil(1/alpha) - 1 = {need} for "
            f"calibration): add {k + need - left} normal studies, lower profile.references or raise "
            "profile.alpha (nothing was scored)"
        )


def _write_references(
    cfg: CohortConfig, folder: Path, split: ReferenceSplit, base: ModelScorer, built: BuiltBank
) -> ProfileReferences:
    """Write the bank file and make the scorer of the calibration normals."""
    m, settings = cfg.model, cfg.profile
    assert settings is not None  # noqa: S101 - checked by prepare_profile_references
    info = BankInfo(
        model_hash(cfg),
        split.references,
        seed=settings.reference_seed,
        coreset_ratio=settings.reference_coreset,
        n_patches_full=built.n_patches_full,
        extra={"weight": m.reference_weight, "window": m.reference_window, "n_slices": built.n_slices},
        axes=tuple(built.banks),
    )
    folder.mkdir(parents=True, exist_ok=True)
    bank_file = save_banks(folder / BANK_FILE, built.banks, info)
    ref_scorer = ReferenceScorer(
        base, built.banks, m.reference_weight, m.reference_window, split.references, stats=built.stats
    )
    log.info("profile references: %d studies -> %s", len(split.references), bank_file)
    return ProfileReferences(split, ref_scorer, bank_file, info, built.n_patches, built.stats)


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
