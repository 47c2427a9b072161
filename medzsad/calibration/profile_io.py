"""``profile.json``: a site profile of normal studies, schema-versioned, numbers only (no PHI).

Layout (schema 2; schema 1 had no ``references.normalisation`` and is still read)::

    {"schema_version": 1, "kind": "medzsad-profile", "name": "site-normals",
     "created": "2026-11-30T08:00:00+00:00", "medzsad_version": "0.1.0",
     "model_hash": "...", "pipeline_hash": "...",
     "strata_fields": ["modality"], "min_lesion_ml": 0.1, "alpha_min": 0.05, "n_failed": 0,
     "strata": {"modality=CT": {"values": {"modality": "CT"}, "studies": [
         {"id": "<safe id>", "score": 0.91, "lesion_statistic": 0.63}, ...]}},
     "references": {"k": 4, "ids": [...], "bank": "references.safetensors", "axes": ["axial"],
         "weight": 0.5, "window": 0.1, "site_normalised": true,
         "normalisation": {"axial": {"bins": 10, "n_patches": 9000,
             "zero_shot": {"centre": [...], "scale": [...]},
             "distance": {"centre": [...], "scale": [...]}}}}}

``references`` is written by ``medzsad profile`` with ``profile.references`` (the few-shot
references, docs/references.md); ``normalisation`` holds the statistics of maps in the site's
normal units (``model.site_normalised``), per scored axis. Both are kept as they are in
:attr:`Profile.extra` (this module does not interpret them).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medzsad.errors import ConfigError
from medzsad.fileio import write_json

__all__ = [
    "SCHEMA_VERSION",
    "PROFILE_FILE",
    "PROFILE_KIND",
    "CalibrationStudy",
    "Stratum",
    "Profile",
    "write_profile",
    "load_profile",
]

#: Version of the ``profile.json`` layout this medzsad writes and reads (2: site-unit statistics).
SCHEMA_VERSION = 2
PROFILE_FILE = "profile.json"
#: ``profile.json``'s ``kind``: what says a file is a medzsad profile.
PROFILE_KIND = "medzsad-profile"


@dataclass(frozen=True)
class CalibrationStudy:
    """One calibration normal: its safe id, study score and lesion statistic."""

    study_id: str
    score: float
    lesion_statistic: float


@dataclass(frozen=True)
class Stratum:
    """The calibration normals of one stratum.

    Attributes:
        key: Stratum key (``"all"`` for an unstratified profile).
        values: The stratum field values (``{"modality": "CT"}``).
        studies: Its calibration studies.
    """

    key: str
    values: dict[str, str]
    studies: tuple[CalibrationStudy, ...]

    @property
    def n(self) -> int:
        """Number of calibration normals."""
        return len(self.studies)

    @property
    def scores(self) -> np.ndarray:
        """``(n,)`` float64 study scores."""
        return np.array([s.score for s in self.studies], dtype=np.float64)

    @property
    def lesion_statistics(self) -> np.ndarray:
        """``(n,)`` float64 lesion statistics."""
        return np.array([s.lesion_statistic for s in self.studies], dtype=np.float64)


@dataclass(frozen=True)
class Profile:
    """A site profile (see the module docstring for the file layout).

    Attributes:
        name: The normals cohort's name.
        model_hash: Model hash it is valid for (:func:`medzsad.calibration.hashes.model_hash`).
        pipeline_hash: Pipeline hash it is valid for.
        strata_fields: Fields the normals were split by.
        min_lesion_ml: Minimum lesion volume the lesion statistics were computed with.
        alpha_min: The smallest alpha every stratum was checked to support at build time.
        strata: Stratum key -> its calibration normals.
        created: ISO 8601 UTC creation time.
        medzsad_version: Version that wrote it.
        n_failed: Normals that failed to score (left out).
        path: The folder it was read from or written to.
        schema_version: Layout version.
    """

    name: str
    model_hash: str
    pipeline_hash: str
    strata_fields: tuple[str, ...]
    min_lesion_ml: float
    alpha_min: float
    strata: dict[str, Stratum]
    created: str
    medzsad_version: str
    n_failed: int = 0
    path: Path | None = None
    schema_version: int = SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def references(self) -> dict[str, Any] | None:
        """The ``references`` entry (``None`` for a profile built without references)."""
        refs = self.extra.get("references")
        return refs if isinstance(refs, dict) else None

    @property
    def normalisation(self) -> dict[str, Any] | None:
        """Per axis, the statistics of maps in site units (``None`` when the profile has none)."""
        norm = (self.references or {}).get("normalisation")
        return norm if isinstance(norm, dict) and norm else None

    @property
    def n_studies(self) -> int:
        """Calibration normals over all strata."""
        return sum(s.n for s in self.strata.values())

    def stratum(self, key: str) -> Stratum:
        """The stratum ``key``.

        Raises:
            ConfigError: The profile has no such stratum (the message lists the ones it has).
        """
        try:
            return self.strata[key]
        except KeyError:
            raise ConfigError(
                f"{self.path or self.name}: the study's stratum {key!r} is not in profile "
                f"{self.name!r} (it has: {', '.join(sorted(self.strata)) or 'none'}); add normals of this "
                "stratum to the profile cohort and rebuild it with medzsad profile, or review these "
                "studies with a profile of their own scanner/protocol"
            ) from None

    def to_json(self) -> dict[str, Any]:
        """The ``profile.json`` object."""
        return {
            "schema_version": self.schema_version,
            "kind": PROFILE_KIND,
            "name": self.name,
            "created": self.created,
            "medzsad_version": self.medzsad_version,
            "model_hash": self.model_hash,
            "pipeline_hash": self.pipeline_hash,
            "strata_fields": list(self.strata_fields),
            "min_lesion_ml": self.min_lesion_ml,
            "alpha_min": self.alpha_min,
            "n_studies": self.n_studies,
            "n_failed": self.n_failed,
            "strata": {
                k: {
                    "values": dict(s.values),
                    "n": s.n,
                    "studies": [
                        {"id": c.study_id, "score": c.score, "lesion_statistic": c.lesion_statistic}
                        for c in s.studies
                    ],
                }
                for k, s in sorted(self.strata.items())
            },
            **self.extra,
        }


def write_profile(folder: str | Path, profile: Profile) -> Path:
    """Write ``<folder>/profile.json`` atomically; returns its path."""
    d = Path(folder)
    d.mkdir(parents=True, exist_ok=True)
    return write_json(d / PROFILE_FILE, profile.to_json())


def _number(v: Any, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise ValueError(f"{where} must be a finite number (got {v!r})")
    return float(v)


#: Mappings of ``profile.json`` kept in :attr:`Profile.extra`: the reference bank's description and
#: the settings the model and pipeline hashes cover (named in a refusal; ``run -i --profile``).
_EXTRA_MAPPINGS = ("references", "settings")


def _parse(data: Any, path: Path) -> Profile:
    strata = {}
    for key, s in data["strata"].items():
        studies = tuple(
            CalibrationStudy(
                str(c["id"]),
                _number(c["score"], f"strata.{key}.score"),
                _number(c["lesion_statistic"], f"strata.{key}.lesion_statistic"),
            )
            for c in s["studies"]
        )
        strata[str(key)] = Stratum(str(key), {str(a): str(b) for a, b in s["values"].items()}, studies)
    return Profile(
        name=str(data["name"]),
        model_hash=str(data["model_hash"]),
        pipeline_hash=str(data["pipeline_hash"]),
        strata_fields=tuple(str(f) for f in data["strata_fields"]),
        min_lesion_ml=_number(data["min_lesion_ml"], "min_lesion_ml"),
        alpha_min=_number(data["alpha_min"], "alpha_min"),
        strata=strata,
        created=str(data["created"]),
        medzsad_version=str(data["medzsad_version"]),
        n_failed=int(data.get("n_failed", 0)),
        extra={k: dict(data[k]) for k in _EXTRA_MAPPINGS if isinstance(data.get(k), dict)},
        path=path.parent,
        schema_version=int(data["schema_version"]),
    )


def load_profile(path: str | Path) -> Profile:
    """Read a profile folder (or its ``profile.json``).

    Raises:
        ConfigError: Missing or unreadable, not a medzsad profile, written by a newer schema, or a
            field missing or malformed (the message names the file and says what to do).
    """
    p = Path(path).expanduser()
    f = p / PROFILE_FILE if p.is_dir() or p.suffix != ".json" else p
    try:
        data = json.loads(f.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(
            f"{f}: cannot read the profile ({e.strerror}); build one with: medzsad profile NORMALS.yaml"
        ) from e
    except json.JSONDecodeError as e:
        raise ConfigError(f"{f}: not valid JSON ({e.msg}, line {e.lineno}); rebuild the profile") from e
    if not isinstance(data, dict) or data.get("kind") != PROFILE_KIND:
        raise ConfigError(f"{f}: not a medzsad profile (kind {PROFILE_KIND!r} expected); check the path")
    version = data.get("schema_version")
    if not isinstance(version, int) or version < 1:
        raise ConfigError(
            f"{f}: schema_version {version!r} is not a valid profile schema; rebuild the profile"
        )
    if version > SCHEMA_VERSION:
        raise ConfigError(
            f"{f}: written by a newer medzsad (profile schema {version}, this medzsad reads up to "
            f"{SCHEMA_VERSION}); upgrade medzsad or rebuild the profile with this version"
        )
    try:
        return _parse(data, f)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ConfigError(f"{f}: malformed profile ({type(e).__name__}: {e}); rebuild the profile") from e
