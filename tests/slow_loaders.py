"""Study loaders that misbehave on purpose (module level, so they pickle into worker processes).

Importable from any test module (``pythonpath = ["tests"]``) and from the run's worker processes,
which get the main process's ``sys.path``.
"""

from __future__ import annotations

import time

from medzsad.study.loading import default_loader

#: A study whose path contains this never finishes loading with :func:`sleeping_loader`.
SLEEP_MARK = "sleep-marker"


def sleeping_loader(study, config, spec, allocate=None):  # type: ignore[no-untyped-def]
    """:func:`~medzsad.study.loading.default_loader`, except that a marked study sleeps for an hour."""
    if SLEEP_MARK in study.path:
        time.sleep(3600)  # a decoder that never returns
    return default_loader(study, config, spec, allocate)
