"""Cohort inputs -> a list of studies (manifest rows, files, folders, globs).

Relative manifest paths resolve against the manifest's folder; other relative paths against the
cohort file's folder. A folder given in ``paths``/``globs`` is searched for studies with
:func:`medzsad.io.discovery.discover` (DICOM studies grouped by StudyInstanceUID; NIfTI,
NRRD and MHA files one study each).
"""

from __future__ import annotations

import glob
import hashlib
import logging
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from medzsad.config import CohortConfig
from medzsad.config.pacs import DicomWebInput, DimseInput
from medzsad.errors import ConfigError, InputError, SourceChangedError, UnsupportedInputError
from medzsad.ids import pseudonym_study_id
from medzsad.io.discovery import SkippedFile
from medzsad.io.image2d import IMAGE2D_SUFFIXES
from medzsad.io.study_names import input_name, study_names
from medzsad.study.types import StudyInput

__all__ = ["collect_studies", "input_hash", "VOLUME_SUFFIXES"]

log = logging.getLogger(__name__)

VOLUME_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")


def _strip_suffix(name: str) -> str:
    for s in sorted(VOLUME_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(s):
            return name[: -len(s)]
    return name


def _parse_label(value: object, where: str) -> int | None:
    text = "" if value is None or (isinstance(value, float) and value != value) else str(value).strip()
    if text == "":
        return None
    if text.lower() in ("0", "normal", "false", "0.0"):
        return 0
    if text.lower() in ("1", "abnormal", "anomalous", "true", "1.0"):
        return 1
    raise ConfigError(f"{where}: label must be 0 or 1 (found {text!r})")


def _read_manifest(path: Path) -> list[StudyInput]:
    if not path.is_file():
        demo = f"; the demo's data is written by 'medzsad demo-data {path.parent}'"
        raise ConfigError(
            f"{path}: the manifest (inputs.manifest) does not exist; a relative path is relative to "
            f"the cohort file's folder{demo if path.parent.name == 'demo-data' else ''}"
        )
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read the manifest CSV ({e})") from e
    missing = {"study_id", "path"} - set(table.columns)
    if missing:
        raise ConfigError(
            f"{path}: manifest lacks column(s) {sorted(missing)}; need study_id,path[,label][,mask]"
        )
    extra = set(table.columns) - {"study_id", "path", "label", "mask"}
    if extra:
        raise ConfigError(
            f"{path}: unknown manifest column(s) {sorted(extra)}; allowed: study_id,path,label,mask"
        )
    out = []
    for n, row in enumerate(table.itertuples(index=False), start=2):
        where = f"{path}:{n}"
        sid = str(row.study_id).strip()
        if not sid:
            raise ConfigError(f"{where}: empty study_id")
        p = (path.parent / str(row.path).strip()).resolve()
        mask = str(getattr(row, "mask", "") or "").strip()
        out.append(
            StudyInput(
                study_id=sid,
                path=str(p),
                label=_parse_label(getattr(row, "label", ""), where),
                mask=str((path.parent / mask).resolve()) if mask else None,
            )
        )
    return out


def _from_path(p: Path) -> list[StudyInput]:
    if p.is_file():
        if p.name.lower().endswith(VOLUME_SUFFIXES):
            return [StudyInput(_strip_suffix(p.name), str(p))]
        if p.name.lower().endswith(".zip") or p.name.upper() == "DICOMDIR":
            return _discover_container(p)
        return [StudyInput(p.stem or p.name, str(p))]
    if p.is_dir():
        return _discover_folder(p)
    raise InputError(f"input {p} does not exist; check inputs.paths / inputs.globs in the cohort file")


def _discover_container(path: Path) -> list[StudyInput]:
    """The studies of a ``.zip`` export or a DICOMDIR, as a folder's (one input per study)."""
    return _studies_in(path, input_name(path))


def _discover_folder(folder: Path) -> list[StudyInput]:
    """Studies in a folder: DICOM grouped by StudyInstanceUID, other scan files one each."""
    return _studies_in(folder, input_name(folder))


def _studies_in(root: Path, name: str) -> list[StudyInput]:
    """Studies found under a folder, zip or DICOMDIR ``root``, named by :func:`study_names`."""
    from medzsad.io.discovery import discover

    found = discover(root)
    refs = list(found)
    if not refs:
        raise InputError(_no_study_message(root, [s.reason for s in found.skipped]))
    studies = []
    for ref, sid in zip(refs, study_names(root, name, refs), strict=True):
        if ref.kind == "dicom":
            studies.append(StudyInput(sid, str(root), tuple(ref.files), study_uid=ref.study_uid))
        else:
            studies.append(StudyInput(sid, ref.path))
    if root.is_dir():  # a scan that cannot be read fails as a study, named with its reason
        taken = {s.study_id for s in studies}
        for bad in _unreadable_scans(found.skipped):
            sid = _strip_suffix(os.path.basename(bad.path)) or "file"
            while sid in taken:
                sid += "-file"
            taken.add(sid)
            studies.append(StudyInput(sid, bad.path))
    return studies


#: Names that say a file is meant as a scan (a file without a suffix is one only with DICOM's marker).
_SCAN_NAMES = VOLUME_SUFFIXES + IMAGE2D_SUFFIXES + (".dcm", ".dicom", ".ima")


def _unreadable_scans(skipped: Sequence[SkippedFile]) -> list[SkippedFile]:
    """Files discovery skipped that are scans it could not read, not other files (README, VERSION).

    They used to vanish from the run: no row, no line on the terminal (only ``inspect`` named them).
    A file of a kind medzsad does not read (``UnsupportedInputError``: CIFTI surface data, an
    unknown NIfTI datatype) stays skipped: such files sit beside scans in many exports.
    """
    return [
        s
        for s in skipped
        if s.error
        and s.error != UnsupportedInputError.__name__
        and (s.path.lower().endswith(_SCAN_NAMES) or not s.reason.startswith("not a DICOM file"))
    ]


def _from_pacs(source: DicomWebInput | DimseInput, config: CohortConfig) -> list[StudyInput]:
    """Pull into ``<out>/pacs-cache/<kind>/`` and discover each complete study folder there.

    A study whose pull failed is kept with its error, so it fails (and is listed in errors.csv)
    while the other studies run. Inside :func:`medzsad.pacs.pull.query_only` (a dry run) nothing
    is pulled: each study the PACS names is listed under the id its folder will give it. When the
    PACS is down (its study query fails; a refusal still stops the run), the studies pulled into
    the cache before are the cohort's, with a warning: a finished run reruns offline.
    """
    from medzsad.pacs.pull import pull_studies

    kind = "dicomweb" if isinstance(source, DicomWebInput) else "dimse"
    report = pull_studies(source, config.out_dir / "pacs-cache" / kind, reuse_when_down=True)
    if report.offline:
        log.warning(
            "%s cannot be asked (%s); going on offline with the %d studies pulled from it before into "
            "%s (studies it would find now are not seen until it answers)",
            report.endpoint,
            report.offline[:300],
            len(report.studies),
            report.dest,
        )
    studies: list[StudyInput] = []
    for pulled in report.studies:
        uid = pulled.study_uid
        sid = pseudonym_study_id(kind, uid)  # the cache folder is named by the UID: never the id
        if pulled.ok and not report.dry_run:
            studies += _studies_in(pulled.folder, sid)  # named by the pseudonym, never the folder's UID
        else:
            studies.append(StudyInput(sid, str(pulled.folder), study_uid=uid, error=pulled.error))
    return studies


def _no_study_message(folder: Path, reasons: list[str]) -> str:
    """One line: the folder, how many files were skipped and the commonest reasons, what to run."""
    if not reasons:
        return f"{folder}: no study found: it holds no files; check the input path (-i, or inputs.paths)"
    common = Counter(r.split(" (")[0] for r in reasons).most_common(3)
    why = "; ".join(f"{n} x {reason}" for reason, n in common)
    return (
        f"{folder}: no study found: {len(reasons)} file(s) skipped ({why}); "
        f"run 'medzsad inspect {folder}' to see every file and why it was not used"
    )


def collect_studies(config: CohortConfig) -> list[StudyInput]:
    """All studies of a cohort, in a stable order (manifest order, then paths, then globs).

    Raises:
        ConfigError: Bad manifest, or two studies with the same id.
        InputError: A listed path does not exist, or no study was found.
    """
    inputs = config.inputs
    studies: list[StudyInput] = []
    manifest, listed = None, []
    if inputs.manifest:
        manifest = Path(os.path.normpath(config.resolve(inputs.manifest)))
        listed = _read_manifest(manifest)
        studies += listed
    for p in inputs.paths:
        studies += _from_path(config.resolve(p).resolve())
    for source in (inputs.dicomweb, inputs.dimse):
        if source is not None:
            studies += _from_pacs(source, config)
    for pattern in inputs.globs:
        matches = sorted(glob.glob(str(config.resolve(pattern)), recursive=True))
        if not matches:
            log.warning("glob %s matched nothing", pattern)
        for m in matches:
            studies += _from_path(Path(m).resolve())
    seen: dict[str, StudyInput] = {}
    for s in studies:
        if s.study_id in seen and seen[s.study_id].path != s.path:
            raise ConfigError(
                f"{config.source_file}: two inputs have study id {s.study_id!r} ({seen[s.study_id].path} and "
                f"{s.path}); give unique ids in a manifest"
            )
        seen.setdefault(s.study_id, s)
    if not seen:
        raise InputError(
            f"{config.source_file}: the inputs section found no study; check paths, globs and manifest"
        )
    if manifest is not None:
        _check_manifest_paths(manifest, listed, len(seen))
    return list(seen.values())


def _check_manifest_paths(manifest: Path, listed: list[StudyInput], n_studies: int) -> None:
    """Manifest rows whose input does not exist: each fails as a study, said before any model loads.

    A manifest is data (hundreds of rows from a PACS export list): one missing file is a failed
    study, not a stopped run. A cohort none of whose ``n_studies`` inputs exist cannot start.

    Raises:
        InputError: The manifest lists every study of the cohort and none of their inputs exists.
    """
    missing = [s for s in listed if not Path(s.path).exists()]
    if not missing:
        return
    if len(missing) == n_studies:
        raise InputError(
            f"{manifest}: none of the {n_studies} input(s) listed exists (the first: {missing[0].path}); "
            "paths in a manifest are relative to its folder"
        )
    log.warning(
        "%d of %d studies have no input file (listed in %s); each is recorded as failed in errors.csv "
        "and the others run",
        len(missing),
        n_studies,
        manifest,
    )


def input_hash(study: StudyInput) -> str:
    """sha256 of the study's files (relative names, sizes, modification times) and its id/selection.

    Content is not read (studies can be gigabytes); any rewrite changes size or mtime.

    Raises:
        InputError: The study path does not exist.
        SourceChangedError: A file of the study disappeared since discovery.
    """
    root = Path(study.path)
    if not root.exists():
        raise InputError(f"study {study.study_id}: input {root} does not exist")
    files = [Path(f) for f in study.files] if study.files else ([root] if root.is_file() else _walk(root))
    h = hashlib.sha256(f"{study.study_id}\0{study.study_uid}\0".encode())
    for f in sorted(files):
        try:
            st = f.stat()
        except OSError as e:
            raise SourceChangedError(
                f"study {study.study_id}: {f} cannot be read ({e.strerror or e}); it was deleted or moved "
                "since discovery, or is a broken link"
            ) from e
        rel = os.path.relpath(f, root) if root.is_dir() else f.name
        h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _walk(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]
