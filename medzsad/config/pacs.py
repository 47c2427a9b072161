"""PACS endpoints: ``inputs.dicomweb``, ``inputs.dimse`` and ``output.push``.

Secrets never enter the cohort file: ``auth`` names the environment variable that holds the
password or token, read when a request is made (never logged, written to provenance or the ledger).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

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


class _PullSelection(_Section):
    """Which studies to pull: a list of StudyInstanceUIDs or a study-level query."""

    studies: tuple[str, ...] = ()
    query: dict[str, str] = Field(default_factory=dict)
    parallel: int = Field(default=2, ge=1, le=16)
    retries: int = Field(default=2, ge=0, le=10)

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
