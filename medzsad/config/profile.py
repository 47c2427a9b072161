"""``profile:``: how ``medzsad profile`` builds a site profile from a cohort of normal studies."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from medzsad.config._base import _Section

StratumField = Literal["modality", "manufacturer", "model_name", "preset"]


class ProfileConfig(_Section):
    """Settings of a calibration profile (used by ``medzsad profile``; ignored by ``medzsad run``).

    Attributes:
        strata: Fields the normals are split by; each stratum is calibrated on its own normals.
        alpha: The smallest level the profile must support: every stratum needs at least
            ``ceil(1/alpha) - 1`` normals (the build stops with the count missing otherwise).
        references: ``K > 0``: K of the normals (drawn by ``reference_seed``) become few-shot
            references (docs/references.md); the others are scored with them and calibrate.
        reference_seed: Seed of the reference draw and of the coreset.
        reference_coreset: Kept fraction of the references' patches (greedy k-center; 1 keeps all).
    """

    strata: tuple[StratumField, ...] = ()
    alpha: float = Field(default=0.05, gt=0, lt=1)
    references: int = Field(default=0, ge=0)
    reference_seed: int = 0
    reference_coreset: float = Field(default=1.0, gt=0, le=1)

    @field_validator("strata")
    @classmethod
    def _unique(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(v)) != len(v):
            raise ValueError(f"profile.strata lists a field twice: {list(v)}")
        return v
