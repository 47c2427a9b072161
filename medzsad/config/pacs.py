"""PACS endpoints: ``inputs.dicomweb``, ``inputs.dimse`` and ``output.push``.

Secrets never enter the cohort file: ``auth`` names the environment variable that holds the
password or token, read when a request is made (never logged, written to provenance or the ledger).
"""

from __future__ import annotations

import difflib
import re
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydicom.datadict import keyword_dict, keyword_for_tag

from medzsad.config._base import _Section

__all__ = [
    "HttpAuth",
    "DicomWebEndpoint",
    "DimseTls",
    "DimseEndpoint",
    "DicomWebInput",
    "DimseInput",
    "PushConfig",
    "PUSH_KINDS",
    "STUDY_QUERY_KEYS",
    "check_study_query",
]

#: What ``output.push`` / ``medzsad push --what`` can send: the SEG, the Parametric Map, the SR.
PushKind = Literal["seg", "pmap", "sr"]
PUSH_KINDS: tuple[PushKind, ...] = ("seg", "pmap", "sr")


class HttpAuth(_Section):
    """HTTP authentication of a DICOMweb server.

    Attributes:
        kind: ``basic`` (user name + password) or ``bearer`` (token).
        username: User name (basic).
        password_env: Environment variable holding the password (basic).
        token_env: Environment variable holding the token (bearer).
    """

    kind: Literal["basic", "bearer"]
    username: str | None = None
    password_env: str | None = None
    token_env: str | None = None

    @model_validator(mode="after")
    def _complete(self) -> HttpAuth:
        if self.kind == "basic" and not (self.username and self.password_env):
            raise ValueError("auth kind basic needs username and password_env")
        if self.kind == "bearer" and not self.token_env:
            raise ValueError("auth kind bearer needs token_env (the name of an environment variable)")
        return self


class DicomWebEndpoint(_Section):
    """A DICOMweb server (QIDO-RS, WADO-RS, STOW-RS).

    Attributes:
        url: Base URL of the DICOMweb service, e.g. ``https://pacs.example/dicom-web``.
        auth: Basic or bearer authentication, or none.
        ca_bundle: CA bundle (PEM) to verify the server's TLS certificate.
        verify_tls: Verify the TLS certificate (keep ``true`` outside tests).
        timeout_s: Seconds a request may take (connect and each read).
    """

    url: str
    auth: HttpAuth | None = None
    ca_bundle: str | None = None
    verify_tls: bool = True
    timeout_s: float = Field(default=60.0, gt=0)


class DimseTls(_Section):
    """TLS of a DIMSE association.

    Attributes:
        ca_file: CA certificate(s) (PEM) the peer's certificate is checked against.
        cert_file: Our client certificate (PEM), when the peer asks for one.
        key_file: Its private key (PEM).
    """

    ca_file: str
    cert_file: str | None = None
    key_file: str | None = None


class DimseEndpoint(_Section):
    """A DICOM (DIMSE) peer.

    Attributes:
        host: Host name or address.
        port: TCP port.
        ae_title: The peer's AE title (called AE).
        calling_ae: Our AE title; the peer must know it (C-GET answers on the same association).
        tls: TLS settings, or none.
        timeout_s: Seconds to wait for the association and for each answer.
        retrieve: ``get`` (C-GET: answers on our association) or ``move`` (C-MOVE: the peer opens
            an association to our storage SCP; for PACS without C-GET).
        move_port: Port of our storage SCP for C-MOVE; the peer must know ``calling_ae`` at it.
        move_bind: Address that storage SCP listens on.
    """

    host: str
    port: int = Field(ge=1, le=65535)
    ae_title: str = Field(min_length=1, max_length=16)
    calling_ae: str = Field(default="MEDZSAD", min_length=1, max_length=16)
    tls: DimseTls | None = None
    timeout_s: float = Field(default=60.0, gt=0)
    retrieve: Literal["get", "move"] = "get"
    move_port: int | None = Field(default=None, ge=1, le=65535)
    move_bind: str = "0.0.0.0"  # noqa: S104 (the PACS connects from another host)

    @model_validator(mode="after")
    def _move_needs_port(self) -> DimseEndpoint:
        if self.retrieve == "move" and self.move_port is None:
            raise ValueError("retrieve: move needs move_port (the port of our storage SCP the PACS sends to)")
        return self


#: Keys of a study-level query: the Patient and Study levels of the Study Root model (PS3.4
#: C.6.2.1.2, Tables C.6-5 and C.6-6) and QIDO-RS's study search (PS3.18 Table 10.6.1-5).
STUDY_QUERY_KEYS = frozenset(
    {
        "PatientName", "PatientID", "IssuerOfPatientID", "OtherPatientIDs", "OtherPatientNames",
        "PatientBirthDate", "PatientBirthTime", "PatientSex", "EthnicGroup", "PatientComments",
        "NumberOfPatientRelatedStudies", "NumberOfPatientRelatedSeries",
        "NumberOfPatientRelatedInstances", "StudyInstanceUID", "StudyDate", "StudyTime",
        "AccessionNumber", "StudyID", "StudyDescription", "ModalitiesInStudy", "SOPClassesInStudy",
        "ReferringPhysicianName", "NameOfPhysiciansReadingStudy", "AdmittingDiagnosesDescription",
        "PatientAge", "PatientSize", "PatientWeight", "Occupation", "AdditionalPatientHistory",
        "OtherStudyNumbers", "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances",
        "TimezoneOffsetFromUTC", "InstitutionName", "InstitutionalDepartmentName",
    }
)  # fmt: skip
#: Keys of the series and image levels, with the study-level key that means what was wanted.
_LOWER_LEVEL = {
    "Modality": "ModalitiesInStudy",
    "SOPClassUID": "SOPClassesInStudy",
}
_LOWER_LEVEL_KEYS = frozenset(
    {
        "Modality", "SeriesInstanceUID", "SeriesNumber", "SeriesDescription", "SeriesDate", "SeriesTime",
        "BodyPartExamined", "ProtocolName", "PerformedProcedureStepStartDate", "SOPInstanceUID",
        "SOPClassUID", "InstanceNumber", "ImageType", "ContentDate", "ContentTime", "Laterality",
        "NumberOfSeriesRelatedInstances", "Manufacturer", "StationName", "ImageComments",
    }
)  # fmt: skip


def _as_keyword(key: str) -> str | None:
    """The DICOM keyword of ``key`` (a keyword, or a tag as ``00080061`` or ``(0008,0061)``)."""
    if key in keyword_dict:
        return key
    digits = re.sub(r"[(),\s]", "", key)
    if re.fullmatch(r"[0-9A-Fa-f]{8}", digits):
        try:
            return keyword_for_tag(int(digits, 16)) or None
        except (KeyError, ValueError):
            return None
    return None


_COMMON_KEYS = "StudyDate, ModalitiesInStudy, PatientID, AccessionNumber, StudyDescription"


def _suggest(key: str) -> str:
    close = difflib.get_close_matches(key, sorted(STUDY_QUERY_KEYS), n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else f"; study-level keys are e.g. {_COMMON_KEYS}"


def check_study_query(query: dict[str, str]) -> dict[str, str]:
    """A study-level query with every key checked, as DICOM keywords (before any network call).

    A misspelt key (``ModalitesInStudy``) would be ignored by a PACS, which then answers with the
    whole archive; a series-level key (``Modality``) matches nothing at the study level. Both are
    refused with what was probably meant.

    Raises:
        ValueError: A key that is not a DICOM keyword or tag, or not a study-level key.
    """
    out: dict[str, str] = {}
    for key, value in query.items():
        keyword = _as_keyword(str(key).strip())
        if keyword is None:
            raise ValueError(f"query key {key!r} is not a DICOM keyword{_suggest(str(key))}")
        if keyword not in STUDY_QUERY_KEYS:
            level = "a series- or image-level" if keyword in _LOWER_LEVEL_KEYS else "not a study-level"
            meant = _LOWER_LEVEL.get(keyword)
            hint = f"; use {meant}" if meant else _suggest(keyword)
            raise ValueError(
                f"query key {key!r} is {level} key: studies are searched at the study level, where it "
                f"matches nothing{hint}"
            )
        out[keyword] = str(value)
    return out


class _PullSelection(_Section):
    """Which studies to pull: a list of StudyInstanceUIDs or a study-level query."""

    studies: tuple[str, ...] = ()
    query: dict[str, str] = Field(default_factory=dict)
    parallel: int = Field(default=2, ge=1, le=16)
    retries: int = Field(default=2, ge=0, le=10)

    @field_validator("query")
    @classmethod
    def _known_keys(cls, v: dict[str, str]) -> dict[str, str]:
        return check_study_query(v)

    @model_validator(mode="after")
    def _one_selection(self) -> _PullSelection:
        if bool(self.studies) == bool(self.query):
            raise ValueError("give either studies: [StudyInstanceUID, ...] or query: {...}, not both")
        return self


class DicomWebInput(DicomWebEndpoint, _PullSelection):
    """``inputs.dicomweb``: studies pulled over DICOMweb into ``<output dir>/pacs-cache/``.

    Attributes:
        studies: StudyInstanceUIDs to pull.
        query: QIDO-RS study-level query, e.g. ``{ModalitiesInStudy: CT, StudyDate: 20260101-20260131}``.
        parallel: Studies fetched at the same time.
        retries: Extra attempts per request after a connection error or a 5xx answer.
    """


class DimseInput(DimseEndpoint, _PullSelection):
    """``inputs.dimse``: studies pulled with C-FIND + C-GET into ``<output dir>/pacs-cache/``."""


class PushConfig(_Section):
    """``output.push``: send each finished study's DICOM outputs to a PACS.

    Attributes:
        dicomweb: STOW-RS destination.
        dimse: C-STORE destination.
        what: Objects to send (``seg``, ``pmap``, ``sr``); those not written are skipped.
        retries: Extra attempts after a failed send.
        backoff_s: First wait between attempts (doubles each time).
    """

    dicomweb: DicomWebEndpoint | None = None
    dimse: DimseEndpoint | None = None
    what: tuple[PushKind, ...] = PUSH_KINDS
    retries: int = Field(default=3, ge=0, le=10)
    backoff_s: float = Field(default=1.0, ge=0)

    @model_validator(mode="after")
    def _one_destination(self) -> PushConfig:
        if (self.dicomweb is None) == (self.dimse is None):
            raise ValueError("output.push needs exactly one of dicomweb: {url: ...} or dimse: {host: ...}")
        return self
