"""What can stop a run, checked before any model is loaded and before anything is written.

A run that cannot start should say so in seconds and leave no trace: an output path that is a
file or an output folder that cannot be created, or an existing folder whose files medzsad would
replace although it did not write them (:func:`check_output_folder`), an output folder that is an
input folder or lies inside one (:func:`check_output_outside_inputs`), weights that are not in the
cache or a device that is not there (:func:`check_model`). The run's entry point
(:func:`medzsad.cohort.launch.run_cohort`) checks the output folder, then finds the studies (an
input that does not exist or holds no study is an input error), then the model; only the device
check imports torch.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from medzsad.cohort.ledger import LEDGER_FILE
from medzsad.config import CohortConfig
from medzsad.errors import ConfigError, OutputError
from medzsad.weights.resolution import resolve_model_weights

__all__ = [
    "check_output_folder",
    "check_output_outside_inputs",
    "check_model",
    "nearest_folder",
    "remove_unstarted",
    "TABLE_FILES",
]

#: The cohort files a run writes (and replaces) at the top of its output folder.
TABLE_FILES = ("studies.csv", "errors.csv", "metrics.json", "report.html")


def nearest_folder(path: Path, what: str, option: str) -> Path:
    """The nearest existing folder at or above ``path``, which is to be created there (not here).

    Args:
        path: The folder a command will write.
        what: Its name in messages (``output folder``).
        option: The option that sets it (``--out (or output.dir)``).

    Raises:
        OutputError: A broken symbolic link on the way, or a file at ``path`` or at a parent.
    """
    probe = path
    while not probe.exists():
        if probe.is_symlink():  # a dangling link
            raise OutputError(f"{probe}: the {what} is a broken symbolic link; choose another {option}")
        probe = probe.parent
    if not probe.is_dir():
        shown = f"the {what} {path}" if probe == path else f"{probe}, a parent of the {what} {path},"
        raise OutputError(
            f"{shown} is a file, not a folder ({os.strerror(errno.EEXIST)}); choose another {option}, "
            "or move the file away"
        )
    return probe


def check_output_folder(out: Path) -> None:
    """The output folder exists as a folder, or can be created: nothing is created here.

    A run replaces ``studies.csv``, ``errors.csv``, ``metrics.json`` and ``report.html`` at the top
    of its folder. In an existing folder with no run ledger, files of those names are the user's
    own (a table of the cohort is often named ``studies.csv``), so the run is refused, naming them,
    instead of overwriting them. (A study folder medzsad did not create is kept and only that
    study fails: :mod:`medzsad.study.outputs`.)

    Raises:
        OutputError: The path (or one of its parents) is a file, the nearest existing parent
            cannot be written, or the folder holds table files that medzsad did not write.
    """
    probe = nearest_folder(out, "output folder", "--out (or output.dir)")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise OutputError(
            f"{probe}: cannot create or write the output folder there (permission denied); choose a "
            "writable --out (or output.dir), or fix the folder's permissions"
        )
    if probe == out:
        _check_not_foreign(out)


def _check_not_foreign(out: Path) -> None:
    """Refuse an existing folder without a run ledger that holds a file a run would replace."""
    if (out / LEDGER_FILE).exists():
        return  # one of medzsad's run folders: its tables and study folders are medzsad's
    clashes = [name for name in TABLE_FILES if (out / name).exists() or (out / name).is_symlink()]
    if clashes:
        raise OutputError(
            f"{out}: the output folder holds {', '.join(clashes)}, which a run would replace, and it is "
            f"not a medzsad run folder (no {LEDGER_FILE}): choose another --out (or output.dir), or "
            "move those files away"
        )


def check_output_outside_inputs(cfg: CohortConfig) -> None:
    """The output folder is not an input folder and does not lie inside one.

    A run writes scans (heat maps, masks, DICOM SEG) into its output folder; inside an input
    folder the next run would read them back as studies and rename the real ones.

    Raises:
        ConfigError: The output folder is, or is inside, a folder named in ``inputs.paths``.
    """
    out = cfg.out_dir.resolve()
    for p in cfg.inputs.paths:
        folder = cfg.resolve(p).resolve()
        if folder.is_dir() and (out == folder or folder in out.parents):
            where = "is the input folder" if out == folder else f"lies inside the input folder {folder}"
            beside = folder.parent / f"{folder.name}-medzsad"
            raise ConfigError(
                f"{cfg.out_dir}: the output folder {where}; its results would be read as studies by "
                f"the next run. Choose an --out (or output.dir) outside it, e.g. {beside}"
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


#: What a run leaves in a folder it created before its model failed to build (nothing was scored).
_UNSTARTED = {
    LEDGER_FILE,
    f"{LEDGER_FILE}-wal",
    f"{LEDGER_FILE}-shm",
    f"{LEDGER_FILE}-journal",
    ".medzsad.lock",
}


def remove_unstarted(out: Path) -> None:
    """Remove ``out``, a folder this run created, when the run stopped before any study was written.

    The model is loaded after the ledger is opened; weights that fail to load (a file of the wrong
    kind in the cache) then left an empty run folder although the run never started. Only a folder
    holding nothing but the ledger, the lock and an empty ``studies/`` is removed.
    """
    try:
        names = {p.name for p in out.iterdir()}
        studies = out / "studies"
        if names - _UNSTARTED - {"studies"} or (studies.is_dir() and any(studies.iterdir())):
            return
        shutil.rmtree(out)
    except OSError:  # what cannot be inspected or removed is left as it is
        return
