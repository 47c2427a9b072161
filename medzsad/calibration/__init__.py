"""Calibration on a site's normal studies: conformal p-values, flags and thresholds with guarantees.

The maths is pure numpy and lives in small modules:

- :mod:`~medzsad.calibration.conformal`: conformal p-values, the conformal quantile (tau), the
  number of normals an ``alpha`` needs, Benjamini–Hochberg.
- :mod:`~medzsad.calibration.lesion_stat`: the lesion statistic of a heat map (the largest
  threshold at which a big-enough connected component survives).
- :mod:`~medzsad.calibration.strata`: the stratum of a study (modality, manufacturer, model, preset).
- :mod:`~medzsad.calibration.hashes`: the model and pipeline hashes a profile is valid for.
- :mod:`~medzsad.calibration.profile_io`: ``profile.json`` (schema-versioned) read and write.
- :mod:`~medzsad.calibration.operating_point`: a review cohort's flags and thresholds from a
  profile, the checks that refuse a profile, and :func:`~medzsad.calibration.operating_point.describe`
  (the one sentence stating an operating point).
- :mod:`~medzsad.calibration.plot`: ``calibration.png``.

The per-study calibration step is :mod:`medzsad.study.calibrate`; building a profile from normal
studies (``medzsad profile``) is the application :mod:`medzsad.site_profile`. Nothing here imports
them: this package takes what it needs as arguments.

See ``docs/calibration.md`` for the guarantee in plain words.
"""
