"""A real PACS: our SEG and Parametric Map with their source series go into Orthanc and come back.

Orthanc is started by the test with its own configuration (conftest's ``OrthancServer``: temporary
storage, HTTP and DICOM on free loopback ports with remote access refused, the DICOMweb plugin
loaded), fed by STOW-RS, queried by QIDO-RS and read back by WADO-RS, then stopped by its pid.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from io import BytesIO
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

DICOM_PART = 'multipart/related; type="application/dicom"'


def _request(url: str, *, data: bytes | None = None, headers: dict[str, str] | None = None):
    req = urllib.request.Request(url, data=data, headers=headers or {}, method="POST" if data else "GET")
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.headers.get("Content-Type", ""), resp.read()


@pytest.fixture
def orthanc(orthanc_pacs) -> str:
    """Base URL of a running Orthanc (conftest's :class:`OrthancServer`)."""
    return str(orthanc_pacs.base)


def _stow(base: str, files: list[Path]) -> dict:
    boundary = uuid.uuid4().hex
    body = b"".join(
        f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + f.read_bytes() + b"\r\n"
        for f in files
    )
    body += f"--{boundary}--\r\n".encode()
    headers = {
        "Content-Type": f"{DICOM_PART}; boundary={boundary}",
        "Accept": "application/dicom+json",
    }
    _, answer = _request(f"{base}/dicom-web/studies", data=body, headers=headers)
    return json.loads(answer)


def _multipart_parts(content_type: str, body: bytes) -> list[bytes]:
    params = dict(p.strip().split("=", 1) for p in content_type.split(";")[1:] if "=" in p)
    boundary = params["boundary"].strip('"').encode()
    parts = []
    for chunk in body.split(b"--" + boundary)[1:]:
        if chunk.startswith(b"--"):
            break
        _, _, payload = chunk.partition(b"\r\n\r\n")
        parts.append(payload[:-2] if payload.endswith(b"\r\n") else payload)
    return parts


def _wado(base: str, study: str, series: str, sop: str) -> pydicom.Dataset:
    url = f"{base}/dicom-web/studies/{study}/series/{series}/instances/{sop}"
    content_type, body = _request(url, headers={"Accept": f"{DICOM_PART}; transfer-syntax=*"})
    parts = _multipart_parts(content_type, body)
    assert len(parts) == 1
    return pydicom.dcmread(BytesIO(parts[0]))


def test_seg_and_source_series_round_trip_through_orthanc(orthanc: str, dicom_study) -> None:
    sources = sorted(dicom_study.series.folder.glob("*.dcm"))
    seg_path, pmap_path = dicom_study.outputs.seg.path, dicom_study.outputs.parametric_map.path
    answer = _stow(orthanc, [*sources, seg_path, pmap_path])
    assert answer.get("00081198", {}).get("Value", []) == [], answer["00081198"]  # FailedSOPSequence
    assert len(answer["00081199"]["Value"]) == len(sources) + 2  # ReferencedSOPSequence

    study_uid = dicom_study.series.study_uid
    _, body = _request(
        f"{orthanc}/dicom-web/studies/{study_uid}/series", headers={"Accept": "application/json"}
    )
    modality = {s["0020000E"]["Value"][0]: s["00080060"]["Value"][0] for s in json.loads(body)}
    seg = pydicom.dcmread(seg_path)
    pmap = pydicom.dcmread(pmap_path)
    assert modality == {
        dicom_study.series.series_uid: "CT",
        seg.SeriesInstanceUID: "SEG",
        pmap.SeriesInstanceUID: "OT",
    }

    back = _wado(orthanc, study_uid, seg.SeriesInstanceUID, seg.SOPInstanceUID)
    assert back == seg  # every data element, pixel data included
    np.testing.assert_array_equal(
        hd.seg.Segmentation.from_dataset(back).pixel_array, hd.seg.segread(seg_path).pixel_array
    )
    back_pm = _wado(orthanc, study_uid, pmap.SeriesInstanceUID, pmap.SOPInstanceUID)
    assert back_pm == pmap
    src = pydicom.dcmread(sources[0])
    assert _wado(orthanc, study_uid, src.SeriesInstanceUID, src.SOPInstanceUID).PixelData == src.PixelData
