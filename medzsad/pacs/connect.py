"""A client for a configured PACS endpoint; the networking library is imported only when used."""

from __future__ import annotations

from medzsad.config.pacs import DicomWebEndpoint, DimseEndpoint
from medzsad.pacs.client import PacsClient

__all__ = ["open_client"]


def open_client(endpoint: DicomWebEndpoint | DimseEndpoint) -> PacsClient:
    """A DICOMweb or DIMSE client for ``endpoint`` (``dicomweb-client`` / ``pynetdicom`` load here)."""
    if isinstance(endpoint, DicomWebEndpoint):
        from medzsad.pacs.dicomweb import DicomWebClient

        return DicomWebClient(endpoint)
    from medzsad.pacs.dimse import DimseClient

    return DimseClient(endpoint)
