"""The id a discovered study gets: one rule, used by ``medzsad run`` (its inputs) and ``medzsad inspect``.

- the only DICOM study of an input: the input's name (a folder's name, a zip's name without
  ``.zip``, a DICOMDIR's folder name);
- several DICOM studies: each in a subfolder of its own (a PACS export's layout) is named by the
  subfolder's path under the input, ``patient-a/ct-2024`` -> ``patient-a-ct-2024``; one that shares
  its folder is ``<folder or input name>-<10 hex digits of sha256(StudyInstanceUID)>``: the UID is
  an identifier and never a visible id, so a folder named after it (``medzsad pull DEST`` writes
  ``DEST/<StudyInstanceUID>/``) gives ``study-<10 hex digits>`` (or ``<rest of the name>-<hex>``);
- a volume file (NIfTI, NRRD, ...): its file name without the suffix, as discovery names it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from medzsad.ids import pseudonym_study_id
from medzsad.io.discovery import StudyRef

__all__ = ["input_name", "study_names"]


def input_name(path: Path) -> str:
    """The name of an input the studies in it are named after."""
    if path.name.upper() == "DICOMDIR":
        return path.parent.name or "DICOMDIR"
    if path.is_file() and path.name.lower().endswith(".zip"):
        return path.name[: -len(".zip")] or path.name
    return path.name


def _subfolder(root: Path, files: tuple[str, ...]) -> str:
    """The study's folder under ``root`` (``patient-a-ct-2024``), or ``""`` (at the root, elsewhere)."""
    if not root.is_dir() or not files:
        return ""
    try:
        rel = Path(os.path.commonpath([os.path.dirname(f) for f in files])).relative_to(root)
    except ValueError:  # other drives, or not under root
        return ""
    return "" if rel == Path(".") else "-".join(rel.parts)


def study_names(root: Path, name: str, studies: Sequence[StudyRef]) -> list[str]:
    """The id of each discovered study of the input ``root`` named ``name`` (see the module doc).

    A study whose files share their folder with another study's is named by a pseudonym of its
    StudyInstanceUID, after that folder.
    """
    dicom = [s for s in studies if s.kind == "dicom"]
    folders = [_subfolder(root, s.files) for s in dicom] if len(dicom) > 1 else []
    out = []
    for s in studies:
        if s.kind != "dicom":
            out.append(s.study_id)
        elif len(dicom) == 1:
            out.append(
                _no_uid(name, s.study_uid) if len(studies) == 1 else pseudonym_study_id(name, s.study_uid)
            )
        else:
            folder = folders[dicom.index(s)]
            unique = folder and folders.count(folder) == 1
            out.append(
                _no_uid(folder, s.study_uid) if unique else pseudonym_study_id(folder or name, s.study_uid)
            )
    return out


def _no_uid(name: str, study_uid: str) -> str:
    """``name``, or a pseudonym when a folder named it after the study's UID (``medzsad pull`` does)."""
    if not study_uid or study_uid not in name:
        return name
    return pseudonym_study_id(name.replace(study_uid, "").strip("-_. ") or "study", study_uid)
