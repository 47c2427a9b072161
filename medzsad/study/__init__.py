"""One study, start to finish, with no ledger and no processes: the only implementation of a study.

- :mod:`~medzsad.study.types`: the values a study passes through (input, loaded study, outcome).
- :mod:`~medzsad.study.reading` / :mod:`~medzsad.study.loading`: discover, choose the preset and
  the series, read, cut slices for the model (where the model input is allocated is injected).
- :mod:`~medzsad.study.scorer` / :mod:`~medzsad.study.build`: the scorer protocol, zero-shot and
  reference scorers, building one from a cohort's ``model`` section.
- :mod:`~medzsad.study.scoring`: the one batch loop (every batch carries its body positions).
- :mod:`~medzsad.study.postprocess`, :mod:`~medzsad.study.calibrate`: heat map on the source grid,
  study score, calibration, lesions.
- :mod:`~medzsad.study.outputs`, :mod:`~medzsad.study.provenance`: the study folder's files.
- :mod:`~medzsad.study.finish`: load, finish and the whole study in one call.

Every executor (:mod:`medzsad.cohort.executors`) and the profile builder
(:mod:`medzsad.site_profile`) call this package and nothing else for a study's work.
"""
