"""Which DICOM objects are scans that can be scored, from the header alone.

Only image storage classes that hold pixels are *candidates* for scoring. Derived and non-image
objects never are, whatever their slice count or thickness (a DICOM SEG's thin frames would
otherwise rank first): segmentations, Parametric Maps, RT objects (Dose, Structure Set, Plan,
Image, Records), structured reports and key-object selections, presentation states, waveforms,
encapsulated documents, registrations and fiducials; and any object medzsad wrote itself (its SEG,
Parametric Map and SR carry Manufacturer (0008,0070) ``medzsad``, see
:mod:`medzsad.report.seg_writer`), so that results pushed to a PACS and pulled again are not
analysed as scans. Secondary captures are images without acquisition geometry: they stay
candidates, ranked after every other image (:mod:`medzsad.io.series_selection`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from pydicom.uid import UID

from medzsad.io.dicom_common import tag_str

__all__ = [
    "ObjectRole",
    "ObjectClass",
    "CANDIDATE_ROLES",
    "classify_object",
    "is_lossy",
    "sop_name",
    "MEDZSAD_MANUFACTURER",
    "MEDZSAD_NIFTI_DESCRIP",
]

#: Manufacturer (0008,0070) medzsad writes into its SEG, Parametric Map and SR (report.seg_writer).
MEDZSAD_MANUFACTURER = "medzsad"
#: Starts of the NIfTI ``descrip`` medzsad writes into its heat maps and masks (study.outputs).
MEDZSAD_NIFTI_DESCRIP = ("medzsad anomaly heat map", "medzsad SMOKE RUN")

_SOP = "1.2.840.10008.5.1.4.1.1."
#: SOP classes of objects that are never scored, with what they are.
_DERIVED_EXACT = {
    _SOP + "66": "a raw-data object",
    _SOP + "66.4": "a segmentation",
    _SOP + "66.5": "a surface segmentation",
    _SOP + "66.7": "a label map segmentation",
    _SOP + "67": "a real-world value mapping",
    _SOP + "30": "a parametric map (derived values, not a scan)",
    _SOP + "88.59": "a key object selection",
}
#: SOP class families (UID prefixes) of objects that are never scored.
_DERIVED_FAMILIES: tuple[tuple[str, str], ...] = (
    (_SOP + "66.", "a registration or fiducials object"),
    (_SOP + "481.", "an RT object"),
    (_SOP + "88.", "a structured report"),
    (_SOP + "11.", "a presentation state"),
    (_SOP + "9.", "a waveform"),
    (_SOP + "104.", "an encapsulated document"),
    (_SOP + "90.", "a content assessment"),
    (_SOP + "200.", "a protocol object"),
    ("1.2.840.10008.5.1.4.34.", "an RT object"),
    ("1.2.840.10008.5.1.4.38.", "a hanging protocol"),
    ("1.2.840.10008.5.1.4.39.", "a color palette"),
)
#: Modality values of derived or non-image objects (used when the SOP class is private or missing).
_DERIVED_MODALITIES = {
    "SEG": "a segmentation",
    "RTDOSE": "an RT object",
    "RTSTRUCT": "an RT object",
    "RTPLAN": "an RT object",
    "RTIMAGE": "an RT object",
    "RTRECORD": "an RT object",
    "RTSEGANN": "an RT object",
    "SR": "a structured report",
    "KO": "a key object selection",
    "PR": "a presentation state",
    "REG": "a registration",
    "FID": "a fiducials object",
    "RWV": "a real-world value mapping",
    "DOC": "an encapsulated document",
    "PLAN": "a plan",
    "ECG": "a waveform",
    "HD": "a waveform",
}
_SECONDARY_CAPTURE = _SOP + "7"
#: Transfer syntaxes whose compression loses information (JPEG baseline/extended, JPEG-LS near
#: lossless, JPEG 2000 and HTJ2K irreversible, MPEG/HEVC video).
_LOSSY_SYNTAXES = frozenset(
    {
        "1.2.840.10008.1.2.4.50",
        "1.2.840.10008.1.2.4.51",
        "1.2.840.10008.1.2.4.81",
        "1.2.840.10008.1.2.4.91",
        "1.2.840.10008.1.2.4.203",
        "1.2.840.10008.1.2.4.100",
        "1.2.840.10008.1.2.4.101",
        "1.2.840.10008.1.2.4.102",
        "1.2.840.10008.1.2.4.103",
        "1.2.840.10008.1.2.4.104",
        "1.2.840.10008.1.2.4.105",
        "1.2.840.10008.1.2.4.106",
        "1.2.840.10008.1.2.4.107",
        "1.2.840.10008.1.2.4.108",
    }
)


class ObjectRole(str, Enum):
    """What an object is to series selection."""

    IMAGE = "image"  #: an acquired or reconstructed image: a candidate
    SECONDARY = "secondary"  #: a secondary capture: a candidate ranked after every other image
    DERIVED = "derived"  #: SEG, Parametric Map, RT, SR, KO, PR, ...: never a candidate
    MEDZSAD = "medzsad"  #: written by medzsad: never a candidate
    NO_PIXELS = "no_pixels"  #: an image class whose file holds no pixels (header-only copy)
    NOT_IMAGE = "not_image"  #: anything else without pixels


#: Roles of the objects that can be chosen for scoring.
CANDIDATE_ROLES = frozenset({ObjectRole.IMAGE, ObjectRole.SECONDARY})


@dataclass(frozen=True)
class ObjectClass:
    """The role of an object and, for a non-candidate, why it is never scored."""

    role: ObjectRole
    reason: str = ""

    @property
    def candidate(self) -> bool:
        """True when the object can be chosen for scoring."""
        return self.role in CANDIDATE_ROLES


def sop_name(sop_class_uid: str) -> str:
    """The SOP class's name (``CT Image Storage``), else the UID, else ``unknown SOP class``."""
    if not sop_class_uid:
        return "unknown SOP class"
    name = UID(sop_class_uid).name
    return name if name and name != sop_class_uid else sop_class_uid


def _derived_kind(sop_class_uid: str, modality: str) -> str:
    if sop_class_uid in _DERIVED_EXACT:
        return _DERIVED_EXACT[sop_class_uid]
    for prefix, what in _DERIVED_FAMILIES:
        if sop_class_uid.startswith(prefix):
            return what
    return _DERIVED_MODALITIES.get(modality.upper(), "")


def classify_object(sop_class_uid: str, modality: str, manufacturer: str, has_pixels: bool) -> ObjectClass:
    """The :class:`ObjectClass` of one object from its header.

    Args:
        sop_class_uid: SOPClassUID (0008,0016).
        modality: Modality (0008,0060).
        manufacturer: Manufacturer (0008,0070).
        has_pixels: The header declares an image (Rows (0028,0010) and Columns (0028,0011)).

    Returns:
        The role, and for objects that are never scored a reason naming the class and the tag.
    """
    name = sop_name(sop_class_uid)
    if manufacturer.strip().lower() == MEDZSAD_MANUFACTURER:
        return ObjectClass(
            ObjectRole.MEDZSAD,
            f"written by medzsad ({tag_str('Manufacturer')} '{manufacturer.strip()}', {name}): "
            "an output of an earlier run, never scored",
        )
    derived = _derived_kind(sop_class_uid, modality)
    if derived:
        return ObjectClass(ObjectRole.DERIVED, f"{name} is {derived}, not a scan; never scored")
    if not has_pixels:
        if "Image Storage" in name:
            return ObjectClass(
                ObjectRole.NO_PIXELS,
                f"{name} without pixel data (no {tag_str('Rows')}/{tag_str('Columns')}): a header-only "
                "copy; export the images with their pixel data",
            )
        return ObjectClass(ObjectRole.NOT_IMAGE, f"{name} holds no image (no {tag_str('Rows')}); not a scan")
    if sop_class_uid == _SECONDARY_CAPTURE or sop_class_uid.startswith(_SECONDARY_CAPTURE + "."):
        return ObjectClass(ObjectRole.SECONDARY)
    return ObjectClass(ObjectRole.IMAGE)


def is_lossy(transfer_syntax: str, lossy_flag: str) -> bool:
    """True for pixels that went through lossy compression.

    Args:
        transfer_syntax: TransferSyntaxUID (0002,0010) of the file.
        lossy_flag: LossyImageCompression (0028,2110): ``01`` once compressed lossily.
    """
    return transfer_syntax in _LOSSY_SYNTAXES or lossy_flag.strip() == "01"
