"""Loading a study: discover -> choose preset -> select series -> read -> preprocess for the model.

:class:`StudyLoader` is the seam; :func:`default_loader` reads with :mod:`medzsad.cohort.reading`
and prepares slices with :mod:`medzsad.cohort.slicing`. It runs in the executor's prefetch thread,
so it must not touch the ledger or the model (only its ``image_size``/``mean``/``std``).
"""

from __future__ import annotations

import time
from typing import Protocol

from medzsad.cohort.inputs import StudyInput
from medzsad.cohort.reading import read_study
from medzsad.cohort.scorer import SliceScorer
from medzsad.cohort.slicing import prepare_study_slices
from medzsad.cohort.stages import PreparedStudy
from medzsad.config import CohortConfig
from medzsad.errors import PacsError

__all__ = ["StudyLoader", "default_loader"]


class StudyLoader(Protocol):
    """Loads and preprocesses one study (CPU work, run ahead of scoring)."""

    def __call__(self, study: StudyInput, config: CohortConfig, scorer: SliceScorer) -> PreparedStudy:
        """Return the study ready for :func:`medzsad.cohort.stages.score_slices`."""
        ...


def default_loader(study: StudyInput, config: CohortConfig, scorer: SliceScorer) -> PreparedStudy:
    """Read the study's volume and cut it into normalised slices for ``scorer``.

    Raises:
        InputError: The study cannot be read or has no usable series.
        PacsError: The study's pull from a PACS failed (its folder is incomplete).
    """
    if study.error:
        raise PacsError(study.error, study_uid=study.study_uid)
    t0 = time.perf_counter()
    read = read_study(study, config.pipeline)
    t1 = time.perf_counter()
    prepared = prepare_study_slices(study, read, scorer)
    t2 = time.perf_counter()
    prepared.timings_s.update(read=t1 - t0, preprocess=t2 - t1)
    return prepared
