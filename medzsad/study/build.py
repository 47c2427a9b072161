"""Build the scorer of a cohort's ``model`` section: weights resolved once, references from the profile.

The weight names are resolved once (:func:`medzsad.weights.resolution.resolve`, files relative to
the cohort file), the architecture JSON gives every setting the cohort does not override
(:mod:`medzsad.weights.architecture`), and the number of summed layers and the description are
read from the built model. With ``model.references: true`` the scorer blends in the reference bank
of the profile the cohort names (built by ``medzsad profile``).
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from medzsad.calibration.hashes import model_hash
from medzsad.calibration.operating_point import profile_of, site_statistics
from medzsad.calibration.profile_io import Profile
from medzsad.config import CohortConfig
from medzsad.errors import ConfigError, ModelError
from medzsad.model.anomalyclip import AnomalyCLIP
from medzsad.model.inference import Detector
from medzsad.model.site_units import NormalStats
from medzsad.references.bank_io import BANK_FILE, load_banks
from medzsad.references.sampling import check_disjoint
from medzsad.study.devices import resolve_device
from medzsad.study.scorer import ModelScorer, ReferenceScorer, ScorerInfo, describe_model
from medzsad.weights.architecture import default_architecture
from medzsad.weights.model_loading import ModelSpec, load_anomalyclip
from medzsad.weights.resolution import resolve_model_weights

__all__ = ["build_scorer", "build_model_scorer", "load_review_references"]

log = logging.getLogger(__name__)


def _build_model(config: CohortConfig) -> tuple[AnomalyCLIP, ScorerInfo]:
    m = config.model
    clip, prompts = resolve_model_weights(
        m.clip_weights, m.prompt_weights, config.base_dir, config.source_file
    )
    spec = ModelSpec(
        prompts=prompts,
        clip=clip,
        architecture=default_architecture(prompts=m.prompt_weights, backbone=m.backbone, tiny=m.tiny),
        backbone=m.backbone,
        image_size=m.image_size,
        feature_layers=m.feature_layers,
        dpam_layers=m.dpam_layers,
        seed=m.seed,
    )
    try:
        model = load_anomalyclip(spec)
    except ModelError as e:
        raise ModelError(f"{config.source_file}: model: {e}") from e
    weights: dict[str, Any] = {"clip": clip.describe(), "prompts": prompts.describe(), "seed": m.seed}
    arch = {"tiny": True, **model.config.to_dict()} if m.tiny else model.config.to_dict()
    desc = describe_model(model.config, tiny=m.tiny)
    if m.is_smoke:
        desc += " (SMOKE RUN - random weights)"
    payload = json.dumps({"arch": arch, "weights": weights}, sort_keys=True, default=str)
    digest = hashlib.sha256(payload.encode()).hexdigest()
    info = ScorerInfo(desc, digest, weights, m.is_smoke, (m.clip_weights, m.prompt_weights))
    return model, info


def build_scorer(config: CohortConfig) -> ModelScorer:
    """Build the detector of a cohort's ``model`` section on its device.

    With ``model.references: true`` the scorer blends in the reference bank of the cohort's profile
    (:func:`load_review_references`).

    Raises:
        ModelError: Weights missing (with the ``medzsad weights`` command to fix it), bad
            architecture, or unavailable device.
        ConfigError: ``model.references`` without a profile built with references.
    """
    scorer = build_model_scorer(config)
    return load_review_references(config, scorer) if config.model.references else scorer


def build_model_scorer(config: CohortConfig) -> ModelScorer:
    """The zero-shot scorer of a cohort's ``model`` section (references not applied).

    Raises:
        ModelError: See :func:`build_scorer`.
    """
    device = resolve_device(config.model.device)
    model, info = _build_model(config)
    detector = Detector(model, device=device, precision=config.model.precision, compile=config.model.compile)
    log.info("model: %s on %s (%s)", info.description, device, config.model.precision)
    return ModelScorer(detector, len(model.config.feature_layers), info)


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
    disjoint from the profile's calibration studies. With ``model.site_normalised`` (the default)
    the maps are in site units, with the statistics the profile holds per axis.

    Raises:
        ConfigError: No (or more than one) profile named, a profile built without references, a
            bank of another model, references that are also calibration studies, or maps in site
            units asked of a profile without their statistics.
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
    banks, info = load_banks(bank_file, model_hash=model_hash(cfg))
    calibration = [c.study_id for s in profile.strata.values() for c in s.studies]
    check_disjoint(info.reference_ids, calibration)
    m = cfg.model
    stats = _site_stats(cfg, profile, tuple(banks)) if m.site_normalised else None
    return ReferenceScorer(
        base, banks, m.reference_weight, m.reference_window, info.reference_ids, stats=stats
    )


def _site_stats(cfg: CohortConfig, profile: Profile, axes: tuple[str, ...]) -> dict[str, NormalStats]:
    """The profile's statistics of maps in site units, one per axis of its bank.

    Raises:
        ConfigError: The profile has none, or not for every axis, or they are malformed.
    """
    data = site_statistics(cfg, profile, axes)
    try:
        return {axis: NormalStats.from_dict(stats) for axis, stats in data.items()}
    except ModelError as e:
        raise ConfigError(
            f"{cfg.source_file}: profile {profile.path}: {e}; rebuild the profile with this medzsad, "
            "or set model.site_normalised: false"
        ) from e
