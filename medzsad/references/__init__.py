"""Few-shot normal references around the pure-torch core in :mod:`medzsad.model.references`.

- :mod:`~medzsad.references.bank_io`: bank files (safetensors, fp16, safe ids of the references).
- :mod:`~medzsad.references.sampling`: the seeded draw of references, disjoint from calibration.
- :mod:`~medzsad.references.positions`: the body coordinate of slices.

Building a bank from studies is part of ``medzsad profile`` (:mod:`medzsad.site_profile`); a
review cohort loads it in :func:`medzsad.study.build.load_review_references`.

See ``docs/references.md``.
"""
