"""Find the studies and series in a folder, a ``.zip`` export or a DICOMDIR, reading headers only.

DICOM files are grouped by StudyInstanceUID -> SeriesInstanceUID. NIfTI (``.nii``, ``.nii.gz``),
NRRD/MetaImage (``.nrrd``, ``.nhdr``, ``.mha``, ``.mhd``) and 2D images (PNG/JPEG/TIFF/BMP) are each a
study with one series. Files that are not scans or cannot be read are listed in
:attr:`Discovery.skipped` with the reason; they never stop discovery. Pixel data is never read.
"""

from __future__ import annotations

import logging
import os
import time
import zipfile
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from medzsad.errors import InputError
from medzsad.io.dicom_header import HeaderSummary, header_summary, series_from_headers
from medzsad.io.guard import describe, foreign_errors
from medzsad.io.image2d import IMAGE2D_SUFFIXES
from medzsad.io.limits import ReadLimits, current_limits, use_limits
from medzsad.io.nifti import path_id
from medzsad.io.series_ref import SeriesRef, file_series
from medzsad.io.sources import check_member, disk_path, member_path

__all__ = ["Discovery", "StudyRef", "SeriesRef", "SkippedFile", "discover", "VOLUME_SUFFIXES", "PULL_RECORD"]

#: The file ``medzsad pull`` writes into each study folder it completed (:mod:`medzsad.pacs.pull`).
PULL_RECORD = ".medzsad-pull.json"

log = logging.getLogger(__name__)

NIFTI_SUFFIXES = (".nii", ".nii.gz")
ITK_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd")
VOLUME_SUFFIXES = NIFTI_SUFFIXES + ITK_SUFFIXES
# Data halves of detached-header formats and common non-scan files: skipped without opening.
_NOT_SCANS = (
    ".raw",
    ".zraw",
    ".txt",
    ".csv",
    ".json",
    ".xml",
    ".html",
    ".pdf",
    ".md",
    ".yaml",
    ".yml",
    ".ini",
)
_PARALLEL_MIN_FILES = 2000


@dataclass(frozen=True)
class SkippedFile:
    """A file discovery did not use, and why.

    Attributes:
        path: The file (or archive member).
        reason: Why, without the path.
        error: Name of the typed error (:mod:`medzsad.errors`) reading it raised, ``""`` when none.
    """

    path: str
    reason: str
    error: str = ""


@dataclass(frozen=True)
class StudyRef:
    """One study.

    Attributes:
        study_id: StudyInstanceUID for DICOM, the file name without suffix for other files.
        study_uid: StudyInstanceUID (DICOM) or a stable id derived from the path.
        kind: ``dicom``, ``nifti``, ``itk`` or ``image2d``.
        path: The study's root: the common folder of its files, the archive, or the file.
        series: Its series, in SeriesNumber order.
        description: StudyDescription (DICOM) or ``""``.
    """

    study_id: str
    study_uid: str
    kind: str
    path: str
    series: tuple[SeriesRef, ...]
    description: str = ""

    @property
    def files(self) -> tuple[str, ...]:
        """Files on disk that make up the study (an archive counts once)."""
        seen: dict[str, None] = {}
        for s in self.series:
            for f in s.files:
                seen.setdefault(disk_path(f), None)
        return tuple(seen)


@dataclass(frozen=True)
class Discovery:
    """What :func:`discover` found. Iterating yields the studies.

    Attributes:
        root: The path that was searched.
        studies: Studies found, DICOM first (by StudyInstanceUID), then files by path.
        skipped: Files not used, with reasons.
        n_files: Files looked at.
        seconds: Wall time of the search.
    """

    root: str
    studies: tuple[StudyRef, ...]
    skipped: tuple[SkippedFile, ...]
    n_files: int
    seconds: float

    def __iter__(self) -> Iterator[StudyRef]:
        return iter(self.studies)

    def __len__(self) -> int:
        return len(self.studies)

    @property
    def files_per_second(self) -> float:
        """Discovery throughput."""
        return self.n_files / self.seconds if self.seconds > 0 else float("inf")


def _suffix_kind(name: str) -> str:
    low = name.lower()
    if low.endswith(NIFTI_SUFFIXES):
        return "nifti"
    if low.endswith(ITK_SUFFIXES):
        return "itk"
    if low.endswith(IMAGE2D_SUFFIXES):
        return "image2d"
    if low.endswith(".zip"):
        return "zip"
    if os.path.basename(low) == "dicomdir":
        return "dicomdir"
    if low.endswith(_NOT_SCANS):
        return "other"
    return "dicom"


def _walk(root: str, skipped: list[SkippedFile]) -> Iterator[str]:
    """Regular files under ``root``; symbolic links to folders are not followed (no loops).

    Entries that cannot be examined (symlink loops, dangling links, permission errors) and
    special files (sockets, FIFOs, devices) are recorded in ``skipped``.
    """
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as e:
            log.warning("cannot list a folder (%s)", e.strerror)
            skipped.append(SkippedFile(folder, f"cannot list the folder ({e.strerror or e})"))
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                elif entry.is_file():
                    yield entry.path
                elif entry.is_symlink():
                    skipped.append(SkippedFile(entry.path, _link_reason(entry.path)))
                else:
                    skipped.append(SkippedFile(entry.path, "not a regular file (socket, FIFO or device)"))
            except OSError as e:
                skipped.append(SkippedFile(entry.path, f"cannot examine the entry ({e.strerror or e})"))


def _link_reason(path: str) -> str:
    try:
        os.stat(path)
    except OSError as e:
        return f"symbolic link that cannot be followed ({e.strerror or e}: a loop or a dangling link)"
    return "symbolic link to a folder (not followed, so that links cannot make loops)"


def _read_headers(paths: list[str], workers: int, limits: ReadLimits) -> list[HeaderSummary | SkippedFile]:
    one = partial(_header_or_skip, limits=limits)
    if workers > 1 and len(paths) >= _PARALLEL_MIN_FILES:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(one, paths, chunksize=256))
    return [one(p) for p in paths]


def _header_or_skip(path: str, limits: ReadLimits | None = None) -> HeaderSummary | SkippedFile:
    try:
        with use_limits(limits), foreign_errors(path, "read the DICOM header"):
            return header_summary(path)
    except InputError as e:
        return SkippedFile(path, str(e).removeprefix(f"{path}: "), type(e).__name__)


def _zip_members(archive: str, skipped: list[SkippedFile]) -> list[str]:
    limits = current_limits()
    try:
        with foreign_errors(archive, "list the zip archive"), zipfile.ZipFile(archive) as zf:
            infos = [i for i in zf.infolist() if not i.is_dir()]
    except InputError as e:
        skipped.append(SkippedFile(archive, f"not a readable zip archive ({describe(e.__cause__ or e)})"))
        return []
    if len(infos) > limits.max_archive_members:
        skipped.append(
            SkippedFile(archive, f"{len(infos)} members, over the limit of {limits.max_archive_members}")
        )
        return []
    out = []
    for info in infos:
        where = member_path(archive, info.filename)
        kind = _suffix_kind(info.filename)
        if kind == "dicomdir":
            continue
        if kind != "dicom":
            skipped.append(SkippedFile(where, f"{kind} file inside an archive; unpack it to use it"))
            continue
        try:
            check_member(archive, info)
        except InputError as e:
            skipped.append(SkippedFile(where, str(e).removeprefix(f"{where}: ")))
            continue
        out.append(where)
    return out


def _dicomdir_files(dicomdir: str, skipped: list[SkippedFile]) -> list[str]:
    """Files a DICOMDIR lists, read in record order (never by following record offsets).

    pydicom's ``FileSet`` follows the Offset of the Next/Lower-Level Directory Record, which loops
    forever on cyclic offsets; every record with a ReferencedFileID is taken instead, at most
    ``ReadLimits.max_dicomdir_records``, and only files inside the DICOMDIR's folder.
    """
    from medzsad.io.dicom_common import read_dataset

    limits = current_limits()
    folder = os.path.realpath(os.path.dirname(dicomdir))
    try:
        with foreign_errors(dicomdir, "read the DICOMDIR"):
            records = list(read_dataset(dicomdir, header_only=True).get("DirectoryRecordSequence") or [])
            ids = [r.get("ReferencedFileID") for r in records[: limits.max_dicomdir_records]]
    except InputError as e:
        skipped.append(
            SkippedFile(dicomdir, f"not a readable DICOMDIR ({str(e).removeprefix(dicomdir + ': ')})")
        )
        return []
    out = []
    for ref in ids:
        if not ref:
            continue
        parts = [ref] if isinstance(ref, str) else [str(x) for x in ref]
        if any("\x00" in x for x in parts):
            skipped.append(SkippedFile(dicomdir, f"ReferencedFileID {parts!r} holds a NUL byte; not read"))
            continue
        target = os.path.realpath(os.path.join(folder, *parts))
        if os.path.commonpath([folder, target]) != folder:
            skipped.append(SkippedFile(target, "listed in the DICOMDIR but outside its folder; not read"))
            continue
        out.append(target)
    return list(dict.fromkeys(out))


def _classify(
    files: Iterable[str], skipped: list[SkippedFile], via_dicomdir: bool
) -> tuple[list[str], list[str]]:
    """Split files into DICOM candidates and other scan files; record the rest as skipped."""
    dicom, others = [], []
    for f in files:
        kind = _suffix_kind(f)
        if kind == "zip":
            dicom += _zip_members(f, skipped)
        elif kind == "dicomdir" and not via_dicomdir:
            skipped.append(SkippedFile(f, "DICOMDIR index (the files it lists are found by the folder walk)"))
        elif kind == "other" and os.path.basename(f) == PULL_RECORD:
            skipped.append(SkippedFile(f, "medzsad pull's record of a complete study (not a scan)"))
        elif kind == "other":
            skipped.append(SkippedFile(f, "not a scan file (suffix)"))
        elif kind == "dicom" or via_dicomdir:
            dicom.append(f)
        else:
            others.append(f)
    return dicom, others


def _strip_suffix(name: str) -> str:
    low = name.lower()
    for s in sorted(VOLUME_SUFFIXES + IMAGE2D_SUFFIXES, key=len, reverse=True):
        if low.endswith(s):
            return name[: -len(s)]
    return name


def _file_study(path: str, skipped: list[SkippedFile]) -> StudyRef | None:
    kind = _suffix_kind(path)
    try:
        with foreign_errors(path, f"read the {kind} header"):
            series = file_series(path, kind)
    except InputError as e:
        skipped.append(SkippedFile(path, str(e).removeprefix(f"{path}: "), type(e).__name__))
        return None
    return StudyRef(_strip_suffix(os.path.basename(path)), path_id(path), kind, path, (series,))


def _dicom_studies(headers: list[HeaderSummary]) -> list[StudyRef]:
    by_study: dict[str, list[HeaderSummary]] = {}
    for h in headers:
        by_study.setdefault(h.study_uid, []).append(h)
    studies = []
    for uid in sorted(by_study):
        hs = by_study[uid]
        series = series_from_headers(hs)
        roots = {disk_path(h.path) for h in hs}
        common = os.path.commonpath(sorted(roots))
        root = common if len(roots) > 1 or not os.path.isfile(common) else os.path.dirname(common)
        if len(roots) == 1 and next(iter(roots)).lower().endswith(".zip"):
            root = next(iter(roots))
        studies.append(StudyRef(uid, uid, "dicom", root, series, hs[0].study_description))
    return studies


def discover(
    path: str | os.PathLike[str], *, workers: int = 1, limits: ReadLimits | None = None
) -> Discovery:
    """Find studies under ``path`` without reading pixel data.

    Args:
        path: A folder (searched recursively), a ``.zip`` archive, a DICOMDIR file, or one scan file.
        workers: Processes for reading DICOM headers (used from 2000 files on; 1 = in-process).
        limits: Size limits (default :func:`~medzsad.io.limits.current_limits`).

    Returns:
        :class:`Discovery`; iterate it for the studies. A file that cannot be used, whatever is
        wrong with it, is listed in :attr:`Discovery.skipped` with the reason: it never stops discovery.

    Raises:
        InputError: ``path`` does not exist.
    """
    root = os.path.abspath(os.fspath(path))
    if not os.path.exists(root):
        raise InputError(f"{root}: no such file or folder")
    with use_limits(limits) as in_force:
        return _discover(root, workers, in_force)


def _discover(root: str, workers: int, limits: ReadLimits) -> Discovery:
    t0 = time.perf_counter()
    skipped: list[SkippedFile] = []
    if os.path.isdir(root):
        files = list(_walk(root, skipped))
        dicom, others = _classify(files, skipped, via_dicomdir=False)
    elif not os.path.isfile(root):  # a FIFO, socket or device: opening it could block forever
        files, dicom, others = [], [], []
        skipped.append(SkippedFile(root, "not a regular file (socket, FIFO or device)"))
    elif _suffix_kind(root) == "dicomdir":
        files = _dicomdir_files(root, skipped)
        missing = [f for f in files if not os.path.isfile(f)]
        skipped += [SkippedFile(f, "listed in the DICOMDIR but missing on disk") for f in missing]
        files = [f for f in files if os.path.isfile(f)]
        dicom, others = _classify(files, skipped, via_dicomdir=True)
    else:
        files = [root]
        dicom, others = _classify(files, skipped, via_dicomdir=False)
    headers: list[HeaderSummary] = []
    for item in _read_headers(dicom, workers, limits):
        if isinstance(item, SkippedFile):
            skipped.append(item)
        else:
            headers.append(item)
    studies = _dicom_studies(headers)
    for f in sorted(others):
        s = _file_study(f, skipped)
        if s is not None:
            studies.append(s)
    candidates = set(dicom) | set(others)
    n_files = len(candidates) + sum(1 for s in skipped if s.path not in candidates)
    seconds = time.perf_counter() - t0
    log.info(
        "discovered %d studies in %d files (%d skipped) in %.2fs",
        len(studies),
        n_files,
        len(skipped),
        seconds,
    )
    return Discovery(str(Path(root)), tuple(studies), tuple(skipped), n_files, seconds)
