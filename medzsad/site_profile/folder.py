"""The profile folder: checked before any model is loaded, written whole or not at all.

:func:`check_profile_folder` runs before anything is read or scored. It refuses a path that is a
file (or lies under one), a folder that cannot be created, the normals' run folder (or a folder
holding it), a folder in an input folder (as a run's output folder is), and an existing folder
holding anything but a medzsad profile: a ``profile.json`` that is not a medzsad profile, or files
of other names. Rebuilding a profile replaces the previous one; it never replaces a user's files.

:func:`staged_folder` gives the build a hidden folder beside the profile folder,
``.<name>.partial-<pid>``, for its files (``references.safetensors``, ``profile.json``,
``calibration.png``). When all are written the folder is renamed into place (a previous profile is
moved aside first, then removed). A build that fails leaves no half-written profile, and a previous
profile stays until the new one is complete. A staged folder left by a killed build (its process
is gone) is removed by the next build into the same place.
"""

from __future__ import annotations

import contextlib
import glob
import json
import logging
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from medzsad.calibration.profile_io import PROFILE_FILE, PROFILE_KIND
from medzsad.cohort.preflight import nearest_folder
from medzsad.config import CohortConfig
from medzsad.errors import ConfigError, OutputError
from medzsad.fileio import TEMP_MARK, fsync_dir
from medzsad.references.bank_io import BANK_FILE, is_bank_file
from medzsad.study.outputs import PARTIAL_MARK

__all__ = ["PLOT_FILE", "PROFILE_FILES", "check_profile_folder", "foreign_entries", "staged_folder"]

log = logging.getLogger(__name__)

#: The calibration plot of a profile folder.
PLOT_FILE = "calibration.png"
#: Every file a profile build writes into its folder.
PROFILE_FILES = (PROFILE_FILE, PLOT_FILE, BANK_FILE)
_OLD = ".old-"  # a previous profile, set aside while the new one is renamed into place
_SAFETENSORS_TEMP = re.compile(r"^\.tmp[A-Za-z0-9]{6}$")
_OURS_TEMP = re.compile(rf"^({'|'.join(re.escape(f) for f in PROFILE_FILES)}){re.escape(TEMP_MARK)}\d+$")


def _is_profile_json(path: Path) -> bool:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("kind") == PROFILE_KIND


def foreign_entries(folder: Path) -> list[str]:
    """Names in ``folder`` that a profile build did not write (sorted); ``[]`` for a profile folder.

    A profile's files are ``profile.json`` (its ``kind`` says it is a medzsad profile), with it
    ``calibration.png``, a medzsad bank ``references.safetensors`` (also without ``profile.json``:
    what a failed build of an older medzsad left) and the temporary files of these names that a
    killed build of an older medzsad left (``profile.json.tmp-<pid>``). Links are never a profile's.
    """
    entries = sorted(folder.iterdir())
    profile = folder / PROFILE_FILE
    is_profile = profile.is_file() and not profile.is_symlink() and _is_profile_json(profile)
    foreign = []
    for p in entries:
        if p.is_symlink() or not p.is_file():
            ours = False
        elif p.name == PROFILE_FILE:
            ours = is_profile
        elif p.name == PLOT_FILE:
            ours = is_profile
        elif p.name == BANK_FILE:
            ours = is_bank_file(p)
        else:
            ours = bool(_OURS_TEMP.match(p.name))
        if not ours:
            foreign.append(p.name)
    return foreign


def _refuse_foreign(folder: Path, shown: Path) -> None:
    foreign = foreign_entries(folder)
    if not foreign:
        return
    names = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
    why = (
        f"its {PROFILE_FILE} is not a medzsad profile"
        if PROFILE_FILE in foreign
        else "they are not files of a medzsad profile"
    )
    raise OutputError(
        f"{shown}: the profile folder holds {names}, which building the profile would replace, and {why}: "
        "choose another -o (an empty or new folder, or an earlier profile's), or move those files away"
    )


def check_profile_folder(folder: Path, cfg: CohortConfig) -> Path:
    """Check that the profile can be written at ``folder``; returns its real path. Nothing is created.

    Args:
        folder: The profile folder (``-o``), as given.
        cfg: The normals cohort: its run folder may not be the profile folder nor lie inside it,
            and the profile folder may not lie in an input folder (its plot would be read as a study).

    Raises:
        ConfigError: The profile folder is, or lies inside, a folder named in ``inputs.paths``.
        OutputError: The path (or a parent) is a file or a broken link, the nearest existing folder
            cannot be written, the profile folder is or holds the run folder, or it holds files that
            are not a medzsad profile's (named).
    """
    probe = nearest_folder(folder, "profile folder", "-o")
    real = folder.resolve()
    writable = real.parent if probe == folder else probe
    if not os.access(writable, os.W_OK | os.X_OK):
        raise OutputError(
            f"{writable}: cannot write the profile folder {folder} there (permission denied); choose a "
            "writable -o, or fix the folder's permissions"
        )
    run = cfg.out_dir.resolve()
    if real == run or real in run.parents:
        raise OutputError(
            f"{folder}: the profile folder would be (or hold) the normals' run folder {cfg.out_dir}; "
            "choose another -o (the default is <output.dir>/profile)"
        )
    for p in cfg.inputs.paths:
        inputs = cfg.resolve(p).resolve()
        if inputs.is_dir() and (real == inputs or inputs in real.parents):
            raise ConfigError(
                f"{folder}: the profile folder lies in the input folder {inputs}; its calibration.png "
                "would be read as a study by the next run: choose an -o outside it"
            )
    if probe == folder:
        _refuse_foreign(real, folder)
    return real


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process (PermissionError)
        return True
    return True


def _stale_stage(p: Path, pid: int) -> bool:
    """A staged or set-aside folder of a killed build: its process is gone, it holds only a build's files."""
    if p.is_symlink() or not p.is_dir() or (pid != os.getpid() and _alive(pid)):
        return False
    # safetensors writes through a temporary file of its own (``.tmpXXXXXX``, the tempfile crate)
    return all(_SAFETENSORS_TEMP.match(name) for name in foreign_entries(p))


def _remove_stale(real: Path) -> None:
    """Remove the staged (and set-aside) folders of killed builds into ``real``, and only those."""
    mine = re.compile(rf"^\.{re.escape(real.name)}(?:{re.escape(PARTIAL_MARK)}|{re.escape(_OLD)})(\d+)$")
    for p in sorted(real.parent.glob(f".{glob.escape(real.name)}.*")):
        m = mine.match(p.name)
        if m and _stale_stage(p, int(m.group(1))):
            log.info("removing the unfinished profile folder of an interrupted build: %s", p.name)
            shutil.rmtree(p, ignore_errors=True)


def _publish(stage: Path, real: Path, shown: Path) -> None:
    """Rename ``stage`` into place at ``real``; an earlier profile there is moved aside, then removed."""
    if real.exists() or real.is_symlink():
        if not real.is_dir() or real.is_symlink():
            raise OutputError(f"{shown}: a file appeared at the profile folder during the build; remove it")
        _refuse_foreign(real, shown)  # files added while the normals were scored
    old = real.with_name(f".{real.name}{_OLD}{os.getpid()}")
    try:
        if real.exists():
            os.rename(real, old)
            try:
                os.rename(stage, real)
            except OSError:
                os.rename(old, real)  # the previous profile stays
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(stage, real)
    except OSError as e:
        raise OutputError(
            f"{shown}: cannot move the new profile into place ({e.strerror or e}); check the folder's "
            "permissions"
        ) from e
    fsync_dir(real.parent)


@contextlib.contextmanager
def staged_folder(real: Path, shown: Path | None = None) -> Iterator[Path]:
    """Yield the (not yet created) folder to write the profile's files in; on success it becomes ``real``.

    Args:
        real: The profile folder's real path (from :func:`check_profile_folder`).
        shown: The path messages name (the ``-o`` as given); default ``real``.

    Raises:
        OutputError: The new profile cannot be moved into place (the previous one is kept).
    """
    shown = shown or real
    _remove_stale(real)
    stage = real.with_name(f".{real.name}{PARTIAL_MARK}{os.getpid()}")
    if stage.exists() or stage.is_symlink():
        raise OutputError(f"{stage}: a folder of that name is in the way of the profile build; move it away")
    try:
        yield stage
        _publish(stage, real, shown)
    finally:
        if stage.is_dir() and not stage.is_symlink():
            shutil.rmtree(stage, ignore_errors=True)
