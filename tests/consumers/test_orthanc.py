"""A real PACS: our SEG and Parametric Map with their source series go into Orthanc and come back.

Orthanc is started by the test with its own configuration (temporary storage, DICOM server off,
HTTP on a free port with remote access refused, the DICOMweb plugin loaded), fed by STOW-RS,
queried by QIDO-RS and read back by WADO-RS, then stopped by its pid.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from io import BytesIO
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

PLUGIN_CANDIDATES = (
    "/usr/share/orthanc/plugins/libOrthancDicomWeb.so",
    "/usr/lib/orthanc/libOrthancDicomWeb.so",
)
DICOM_PART = 'multipart/related; type="application/dicom"'


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _plugin() -> str:
    for p in PLUGIN_CANDIDATES:
        if Path(p).is_file():
            return p
    found = sorted(Path("/usr/lib").glob("**/libOrthancDicomWeb.so*"))
    if not found:
        pytest.fail("libOrthancDicomWeb.so not found; .ci/run installs orthanc-dicomweb")
    return str(found[0])


def _request(url: str, *, data: bytes | None = None, headers: dict[str, str] | None = None):
    req = urllib.request.Request(url, data=data, headers=headers or {}, method="POST" if data else "GET")
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.headers.get("Content-Type", ""), resp.read()


@pytest.fixture
def orthanc(tmp_path: Path, require_tool: Callable[[str], str]) -> Iterator[str]:
    exe = require_tool("Orthanc")
    port = _free_port()
    config = {
        "Name": "medzsad-test",
        "StorageDirectory": str(tmp_path / "db"),
        "IndexDirectory": str(tmp_path / "db"),
        "HttpPort": port,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomServerEnabled": False,
        "DicomPort": _free_port(),
        "OrthancExplorerEnabled": False,
        "HttpCompressionEnabled": False,
        "ConcurrentJobs": 1,
        "HttpThreadsCount": 4,
        "Plugins": [_plugin()],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False, "Host": "127.0.0.1"},
    }
    cfg = tmp_path / "orthanc.json"
    cfg.write_text(json.dumps(config))
    log = open(tmp_path / "orthanc.log", "wb")  # noqa: SIM115 (closed in finally)
    proc = subprocess.Popen([exe, str(cfg)], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"Orthanc exited with {proc.returncode}: {(tmp_path / 'orthanc.log').read_text()}"
                )
            try:
                _, body = _request(f"{base}/plugins")
                if "dicom-web" in json.loads(body):
                    break
                pytest.fail(f"Orthanc started without the DICOMweb plugin: {body!r}")
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline:
                    pytest.fail("Orthanc did not answer on loopback within 60 s")
                time.sleep(0.2)
        yield base
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()


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
