"""Outputs opened by their real consumers: dciodvfy/dcentvfy, 3D Slicer's MRML storage, Orthanc.

One session fixture runs the review writers on a tiny shuffled CT series and keeps every file the
consumer tests open. The mask is the blob mask restricted to voxels brighter than the series
median, so each mask voxel is tied to the intensity of the source voxel it came from.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from medzsad.io.volume import Volume
from medzsad.report.nifti_writer import write_heatmap, write_mask
from medzsad.report.review_outputs import ReviewOutputs, write_review_outputs
from medzsad.report.seg_writer import write_dicom_seg

FORMATS = ("nifti", "dicom-seg", "dicom-pmap", "slicer", "png", "html")


def _series_lib() -> ModuleType:
    name = "medzsad_tests_dicom_series"
    if name in sys.modules:
        return sys.modules[name]
    path = Path(__file__).parents[1] / "report_outputs" / "dicom_series.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[name] = module
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def _require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed; .ci/run installs it (apt-get install dicom3tools orthanc ...)")
    return path


@pytest.fixture(scope="session")
def require_tool() -> Callable[[str], str]:
    """``require_tool(name)``: path of a consumer executable; fails (never skips) when missing."""
    return _require_tool


@dataclass(frozen=True)
class DicomStudy:
    """A DICOM study run through the review writers."""

    series: object  # dicom_series.Series
    volume: Volume
    heat: np.ndarray
    mask: np.ndarray
    study_dir: Path
    outputs: ReviewOutputs
    heat_nifti: Path
    mask_nifti: Path
    extra_segs: dict[str, Path]
    enhanced_source: Path


@pytest.fixture(scope="session")
def series_lib() -> ModuleType:
    return _series_lib()


@pytest.fixture(scope="session")
def dicom_study(tmp_path_factory: pytest.TempPathFactory, series_lib: ModuleType) -> DicomStudy:
    root = tmp_path_factory.mktemp("consumers")
    series = series_lib.write_ct_series(root / "source", seed=7)
    volume = series_lib.volume_from_series(series)
    heat, blob = series_lib.blob_mask(volume.shape_ijk)
    mask = (blob.astype(bool) & (volume.data > np.median(volume.data))).astype(np.uint8)
    study = root / "study"
    study.mkdir()
    heat_nifti = write_heatmap(study / "heatmap.nii.gz", heat, volume.affine_ras)
    mask_nifti = write_mask(study / "mask.nii.gz", mask, volume.affine_ras)
    outputs = write_review_outputs(
        study, volume, heat, mask, FORMATS, threshold=0.5, heatmap_nifti=heat_nifti, mask_nifti=mask_nifti
    )
    extra = root / "extra"
    mf_volume = series_lib.multiframe_volume(volume, root / "enhanced_ct.dcm")
    extra_segs = {
        "keep_empty": write_dicom_seg(
            mask, volume, extra / "keep.dcm", threshold=0.5, keep_empty_frames=True
        ).path,
        "empty_mask": write_dicom_seg(np.zeros_like(mask), volume, extra / "empty.dcm", threshold=0.5).path,
        "multiframe_source": write_dicom_seg(mask, mf_volume, extra / "mf.dcm", threshold=0.5).path,
    }
    enhanced = Path(mf_volume.source.paths[0])
    return DicomStudy(
        series, volume, heat, mask, study, outputs, heat_nifti, mask_nifti, extra_segs, enhanced
    )


# --- a real PACS for the PACS tests (issue 13): Orthanc with DICOMweb and DIMSE on loopback ---

ORTHANC_AE = "ORTHANC"
CLIENT_AE = "MEDZSAD"


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _dicomweb_plugin() -> str:
    for p in ("/usr/share/orthanc/plugins/libOrthancDicomWeb.so", "/usr/lib/orthanc/libOrthancDicomWeb.so"):
        if Path(p).is_file():
            return p
    found = sorted(Path("/usr/lib").glob("**/libOrthancDicomWeb.so*"))
    if not found:
        pytest.fail("libOrthancDicomWeb.so not found; .ci/run installs orthanc-dicomweb")
    return str(found[0])


class OrthancServer:
    """Orthanc with temporary storage: HTTP (DICOMweb) and DIMSE on loopback ports, started by the test.

    DIMSE answers C-FIND/C-GET/C-MOVE/C-STORE only for AE ``MEDZSAD`` from 127.0.0.1; C-MOVE sends
    to ``MEDZSAD`` at 127.0.0.1:``client_port``. ``stop()`` and
    ``start()`` keep the storage and ports, so a test can take the PACS down and bring it back.
    """

    def __init__(self, root: Path, exe: str) -> None:
        self.root, self.exe = root, exe
        self.http_port, self.dicom_port = _free_port(), _free_port()
        self.client_port = _free_port()  # where a C-MOVE sends to (our storage SCP)
        self.proc: object = None
        self.config = root / "orthanc.json"
        import json

        self.config.write_text(
            json.dumps(
                {
                    "Name": "medzsad-pacs-test",
                    "StorageDirectory": str(root / "db"),
                    "IndexDirectory": str(root / "db"),
                    "HttpPort": self.http_port,
                    "RemoteAccessAllowed": False,
                    "AuthenticationEnabled": False,
                    "DicomServerEnabled": True,
                    "DicomAet": ORTHANC_AE,
                    "DicomPort": self.dicom_port,
                    "DicomCheckCalledAet": True,
                    "DicomCheckModalityHost": True,
                    "DicomAlwaysAllowEcho": False,
                    "DicomAlwaysAllowStore": False,
                    "DicomModalities": {
                        "medzsad": {
                            "AET": CLIENT_AE,
                            "Host": "127.0.0.1",
                            "Port": self.client_port,
                            "AllowEcho": True,
                            "AllowFind": True,
                            "AllowGet": True,
                            "AllowMove": True,
                            "AllowStore": True,
                        }
                    },
                    "OrthancExplorerEnabled": False,
                    "HttpCompressionEnabled": False,
                    "ConcurrentJobs": 1,
                    "HttpThreadsCount": 4,
                    "Plugins": [_dicomweb_plugin()],
                    "DicomWeb": {
                        "Enable": True,
                        "Root": "/dicom-web/",
                        "EnableWado": False,
                        "Host": "127.0.0.1",
                    },
                }
            )
        )

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb(self) -> str:
        return f"{self.base}/dicom-web"

    def get(self, path: str, accept: str = "application/json") -> bytes:
        import urllib.request

        req = urllib.request.Request(f"{self.base}{path}", headers={"Accept": accept})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return bytes(resp.read())

    def upload(self, files: list[Path]) -> None:
        """Store files through Orthanc's REST API (POST /instances)."""
        import urllib.request

        for f in files:
            req = urllib.request.Request(f"{self.base}/instances", data=f.read_bytes(), method="POST")
            with urllib.request.urlopen(req, timeout=30) as resp:
                resp.read()

    def start(self) -> None:
        import subprocess
        import time
        import urllib.error

        log = open(self.root / "orthanc.log", "ab")  # noqa: SIM115 (the process keeps it)
        self.proc = proc = subprocess.Popen(
            [self.exe, str(self.config)], stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"Orthanc exited with {proc.returncode}: {(self.root / 'orthanc.log').read_text()}"
                )
            try:
                if b"dicom-web" in self.get("/plugins"):
                    return
            except (urllib.error.URLError, ConnectionError):
                pass
            if time.monotonic() > deadline:
                pytest.fail("Orthanc did not answer on loopback within 60 s")
            time.sleep(0.1)

    def stop(self) -> None:
        import os
        import signal
        import subprocess

        proc = self.proc
        if not isinstance(proc, subprocess.Popen) or proc.poll() is not None:
            return
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture
def orthanc_pacs(tmp_path: Path, require_tool: Callable[[str], str]):
    """A running :class:`OrthancServer` (stopped after the test)."""
    (tmp_path / "orthanc").mkdir()
    server = OrthancServer(tmp_path / "orthanc", require_tool("Orthanc"))
    server.start()
    try:
        yield server
    finally:
        server.stop()
