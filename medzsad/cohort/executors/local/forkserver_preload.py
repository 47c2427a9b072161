"""The fork server's preload: it dies with the run, then imports what every worker needs.

Named in ``set_forkserver_preload`` by :class:`~medzsad.cohort.executors.local.worker_pool.WorkerPool`;
the fork server imports it once, before it forks any worker. Importing it elsewhere only imports
:mod:`medzsad.study.loading`: ``forkserver_dies_with_the_run``
(:mod:`~medzsad.cohort.executors.local.process_life`) acts in the fork server alone.

The test-only fault hook (:data:`~medzsad.cohort.executors.local.worker_pool.FAULT_ENV`) item
``slow-exit`` makes the fork server's own exit take 30 s, as a loaded machine's interpreter
shutdown did: the fork server must not need to exit by itself for the run's processes to end.
"""

from __future__ import annotations

import atexit
import os
import time

from medzsad.cohort.executors.local.process_life import forkserver_dies_with_the_run
from medzsad.cohort.executors.local.worker_pool import FAULT_ENV

forkserver_dies_with_the_run()
if "slow-exit" in os.environ.get(FAULT_ENV, "").split(","):
    atexit.register(time.sleep, 30)

import medzsad.study.loading  # noqa: E402,F401 - torch, MONAI and the readers: paid once, in the server
