"""``medzsad profile``: an application built on runs that turns normal studies into a site profile.

- :mod:`~medzsad.site_profile.builder`: score the normals (:func:`medzsad.cohort.launch.run_cohort`)
  and write ``profile.json`` and ``calibration.png``.
- :mod:`~medzsad.site_profile.references`: draw the few-shot references and write their bank.
- :mod:`~medzsad.site_profile.reference_bank`: encode reference studies into a patch bank.
- :mod:`~medzsad.site_profile.folder`: the profile folder, checked before any model is loaded and
  written whole (a staged folder renamed into place) or not at all.
"""
