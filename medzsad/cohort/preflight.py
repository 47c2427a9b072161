"""What can stop a run, checked before any model is loaded and before anything is written.

A run that cannot start should say so in seconds and leave no trace: an output path that is a
file or an output folder that cannot be created (:func:`check_output_folder`), weights that are not
in the cache or a device that is not there (:func:`check_model`). The run's entry point
(:func:`medzsad.cohort.launch.run_cohort`) checks the output folder, then finds the studies (an
input that does not exist or holds no study is an input error), then the model; only the device
check imports torch.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from medzsad.config import CohortConfig
from medzsad.errors import OutputError
from medzsad.weights.resolution import resolve_model_weights

__all__ = ["check_output_folder", "check_model"]


def check_output_folder(out: Path) -> None:
    """The output folder exists as a folder, or can be created: nothing is created here.

    Raises:
        OutputError: The path (or one of its parents) is a file, or the nearest existing parent
            cannot be written.
    """
    probe = out
    while not probe.exists():
        if probe.is_symlink():  # a dangling link
            raise OutputError(f"{probe}: the output folder is a broken symbolic link; choose another --out")
        probe = probe.parent
    if not probe.is_dir():
        parent = f"{probe}, a parent of the output folder {out},"
        what = f"the output folder {out}" if probe == out else parent
        raise OutputError(
            f"{what} is a file, not a folder ({os.strerror(errno.EEXIST)}); choose another --out "
            "(or output.dir), or move the file away"
        )
    if not os.access(probe, os.W_OK | os.X_OK):
        raise OutputError(
            f"{probe}: cannot create or write the output folder there (permission denied); choose a "
            "writable --out (or output.dir), or fix the folder's permissions"
        )


def check_model(cfg: CohortConfig) -> None:
    """The weights the model section names are available, and its device is on this machine.

    Raises:
        ModelError: A weight file is not available (the message names the import command) or the
            device asked for is not here.
    """
    m = cfg.model
    resolve_model_weights(m.clip_weights, m.prompt_weights, cfg.base_dir, cfg.source_file)
    from medzsad.study.devices import resolve_device  # imports torch: the last, slowest check

    resolve_device(m.device)
