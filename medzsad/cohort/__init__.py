"""Runs: a cohort's studies through an executor, with a ledger, cohort tables, metrics and push.

- :mod:`~medzsad.cohort.launch`: :func:`~medzsad.cohort.launch.run_cohort`, the one entry point
  (settings, preflight); :mod:`~medzsad.cohort.runner` executes the run.
- :mod:`~medzsad.cohort.options`: run options, per-study outcomes, the run summary.
- :mod:`~medzsad.cohort.inputs`: the cohort's inputs -> studies; input hashes.
- :mod:`~medzsad.cohort.planning`: what to run or skip; what a killed run left.
- :mod:`~medzsad.cohort.ledger`, :mod:`~medzsad.cohort.recording`, :mod:`~medzsad.cohort.run_lock`:
  the resume ledger and the calling thread's bookkeeping.
- :mod:`~medzsad.cohort.executors`: where studies run (``local``, ``ray``); each calls
  :mod:`medzsad.study` and nothing else for a study's work.
- :mod:`~medzsad.cohort.tables`, :mod:`~medzsad.cohort.metrics`: studies.csv, errors.csv,
  metrics.json and report.html, from the ledger.
- :mod:`~medzsad.cohort.push`, :mod:`~medzsad.cohort.push_records`: results to a PACS, sent once.
"""
