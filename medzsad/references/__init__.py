"""Few-shot normal references around the pure-torch core in :mod:`medzsad.model.references`.

- :mod:`~medzsad.references.bank_io`: bank files (safetensors, fp16, safe ids of the references).
- :mod:`~medzsad.references.sampling`: the seeded draw of references, disjoint from calibration.
- :mod:`~medzsad.references.positions`: the body coordinate of slices.
- :mod:`~medzsad.references.build`: a bank from studies through the cohort loader.
- :mod:`~medzsad.references.profile_refs`: references in site profiles and review cohorts.

See ``docs/references.md``.
"""
