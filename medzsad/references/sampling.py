"""Which normal studies become references: a seeded draw, disjoint from the calibration set.

A study used both as a reference and for calibration would score lower than an unseen normal
study (its patches are in the bank), which would make the calibrated false-alarm rate optimistic;
hence :func:`check_disjoint` wherever both sets meet.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from medzsad.errors import ConfigError

__all__ = ["ReferenceSplit", "split_references", "check_disjoint"]


class ReferenceSplit(NamedTuple):
    """Normal studies split into references and calibration studies.

    Attributes:
        references: Safe ids of the references, in draw order.
        calibration: Safe ids of the rest, in the input order.
    """

    references: tuple[str, ...]
    calibration: tuple[str, ...]


def split_references(ids: Sequence[str], k: int, seed: int, *, min_calibration: int = 1) -> ReferenceSplit:
    """Draw ``k`` references from ``ids`` reproducibly; the rest is the calibration set.

    The draw depends only on the set of ids and ``seed`` (ids are sorted first), not on the order
    in which studies were listed or finished.

    Args:
        ids: Safe ids of the normal studies (unique).
        k: Number of references (``>= 1``).
        seed: Seed of the draw.
        min_calibration: Studies that must remain for calibration.

    Raises:
        ConfigError: Duplicate ids, ``k < 1``, or too few studies left for calibration.
    """
    if len(set(ids)) != len(ids):
        raise ConfigError("normal studies have duplicate ids; references and calibration would overlap")
    if k < 1:
        raise ConfigError(f"profile.references must be >= 1, got {k}")
    if len(ids) - k < min_calibration:
        raise ConfigError(
            f"profile.references={k} leaves {len(ids) - k} of {len(ids)} normal studies for calibration; "
            f"{min_calibration} are needed: add {min_calibration - (len(ids) - k)} normal studies "
            "or lower references"
        )
    ordered = sorted(ids)
    picked = np.random.default_rng(seed).choice(len(ordered), size=k, replace=False)
    refs = tuple(ordered[int(i)] for i in picked)
    chosen = set(refs)
    split = ReferenceSplit(refs, tuple(s for s in ids if s not in chosen))
    check_disjoint(split.references, split.calibration)
    return split


def check_disjoint(references: Sequence[str], calibration: Sequence[str]) -> None:
    """Refuse a calibration set that shares a study with the references.

    Raises:
        ConfigError: The shared ids (safe ids) are named.
    """
    shared = sorted(set(references) & set(calibration))
    if shared:
        raise ConfigError(
            f"{len(shared)} studies are both references and calibration studies ({shared[:5]}); "
            "a reference used for calibration breaks the false-alarm guarantee: rebuild the profile"
        )
