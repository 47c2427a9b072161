"""The fork server's first preload module: it dies with the run's main process.

Named first in ``set_forkserver_preload`` by :class:`~medzsad.cohort.executors.local.worker_pool.WorkerPool`
(then :mod:`medzsad.study.loading`, the workers' heavy imports); importing it in any other
process does nothing (:func:`medzsad.process_death.forkserver_dies_with_the_run`).

The test-only fault hook (:data:`~medzsad.process_death.FAULT_ENV`) item ``slow-exit`` makes the
fork server's own exit take 30 s, as a loaded machine's interpreter shutdown did: the fork server
must not need to exit by itself for the run's processes to end.
"""

from __future__ import annotations

import atexit
import os
import time

from medzsad.process_death import FAULT_ENV, forkserver_dies_with_the_run

forkserver_dies_with_the_run()
if "slow-exit" in os.environ.get(FAULT_ENV, "").split(","):
    atexit.register(time.sleep, 30)
