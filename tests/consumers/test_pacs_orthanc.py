"""PACS in and out against a real Orthanc (DICOMweb + DIMSE on loopback, started by the tests).

Two small studies (CT 64x64x8 and MR 48x48x6) are stored in Orthanc; medzsad pulls the CT one by
query over DICOMweb and over DIMSE (C-FIND + C-GET), runs a cohort on it (tiny random model),
pushes SEG + Parametric Map + SR back, reads them back identical, and a second push sends nothing.
Orthanc stopped mid-pull gives a typed error; after a restart the pull completes.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from io import BytesIO
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from tiny_model import TINY_MODEL

from medzsad.cli import main
from medzsad.cohort.push_records import SentRecords
from medzsad.config.pacs import DicomWebInput, DimseInput
from medzsad.datasets.demo_dicom import SeriesSpec, write_dicom_series
from medzsad.errors import PacsError
from medzsad.pacs.dicomweb import DicomWebClient
from medzsad.pacs.pull import COMPLETE_MARK, pull_studies


def _series(folder: Path, modality: str, shape: tuple[int, int, int], seed: str) -> list[Path]:
    rng = np.random.default_rng(len(seed))
    g = np.indices(shape).astype(np.float32)
    c = (np.array(shape, dtype=np.float32) - 1) / 2
    r = (((g - c[:, None, None, None]) / (np.array(shape)[:, None, None, None] * 0.42)) ** 2).sum(0)
    data = np.where(r <= 1.0, 1400.0 + 60.0 * rng.standard_normal(shape), 0.0)
    data[tuple(slice(int(n * 0.55), int(n * 0.55) + 3) for n in shape)] = 2600.0  # a bright blob
    affine = np.array([[0.8, 0, 0, -25.0], [0, 0.8, 0, -25.0], [0, 0, 2.5, -10.0], [0, 0, 0, 1.0]])
    spec = SeriesSpec(modality, f"pacs-{seed}", f"pacs-{seed}", patient_id=f"PACS-{seed}",
                      rescale_intercept=-1024.0 if modality == "CT" else 0.0)  # fmt: skip
    return write_dicom_series(data, affine, folder, spec)


@pytest.fixture
def loaded(orthanc_pacs, tmp_path: Path):
    """Orthanc holding a CT study (64x64x8) and an MR study (48x48x6); returns (server, ct files)."""
    ct = _series(tmp_path / "src" / "ct", "CT", (64, 64, 8), "ct")
    mr = _series(tmp_path / "src" / "mr", "MR", (48, 48, 6), "mr")
    orthanc_pacs.upload([*ct, *mr])
    return orthanc_pacs, ct


def _by_sop(files: list[Path]) -> dict[str, pydicom.Dataset]:
    return {str(d.SOPInstanceUID): d for d in (pydicom.dcmread(f) for f in files)}


def _wado(server, ds: pydicom.Dataset) -> pydicom.Dataset:
    client = DicomWebClient(DicomWebInput(url=server.dicomweb, studies=(str(ds.StudyInstanceUID),)))
    got: list[pydicom.Dataset] = []
    refs = [r for r in client.list_instances(str(ds.StudyInstanceUID)) if r.sop_uid == ds.SOPInstanceUID]
    assert len(refs) == 1
    client.retrieve(refs, got.append)
    buf = BytesIO()
    got[0].save_as(buf, enforce_file_format=True)
    return pydicom.dcmread(BytesIO(buf.getvalue()))


def test_pull_by_query_over_dicomweb_and_dimse(loaded, tmp_path: Path, capsys) -> None:
    server, ct = loaded
    source = _by_sop(ct)
    study_uid = next(iter(source.values())).StudyInstanceUID
    web = DicomWebInput(url=server.dicomweb, query={"ModalitiesInStudy": "CT"})
    move = DimseInput(
        host="127.0.0.1",
        port=server.dicom_port,
        ae_title="ORTHANC",
        query={"ModalitiesInStudy": "CT"},
        retrieve="move",
        move_port=server.client_port,
        move_bind="127.0.0.1",
    )
    dimse = DimseInput(
        host="127.0.0.1", port=server.dicom_port, ae_title="ORTHANC", query={"ModalitiesInStudy": "CT"}
    )
    for name, src in (("web", web), ("dimse", dimse), ("move", move)):
        report = pull_studies(src, tmp_path / name)
        assert [s.study_uid for s in report.studies] == [study_uid], name  # the MR study is not pulled
        assert report.failed == ()
        folder = report.studies[0].folder
        pulled = _by_sop(sorted(folder.glob("*.dcm")))
        assert pulled.keys() == source.keys()
        for sop, ds in pulled.items():
            assert ds == source[sop], (name, sop)  # every data element, pixel data included
        again = pull_studies(src, tmp_path / name)
        assert again.studies[0].n_fetched == 0  # complete: nothing fetched twice
        # a partial study (two instances lost, no completion mark): only those two are fetched,
        # instance by instance (IMAGE-level C-GET / C-MOVE, WADO-RS)
        (folder / COMPLETE_MARK).unlink()
        lost = sorted(folder.glob("*.dcm"))[2:4]
        for f in lost:
            f.unlink()
        resumed = pull_studies(src, tmp_path / name)
        assert resumed.failed == () and resumed.studies[0].n_fetched == 2, name
        assert _by_sop(sorted(folder.glob("*.dcm"))) == source
    # the command: same query over DIMSE into another folder
    dimse_words = ["--dimse", f"127.0.0.1:{server.dicom_port}:ORTHANC", "--query", "ModalitiesInStudy=CT"]
    assert main(["pull", str(tmp_path / "cli"), *dimse_words]) == 0
    assert f"{study_uid}  {len(ct)} instances ({len(ct)} fetched now)  ok" in capsys.readouterr().out
    assert _by_sop(sorted((tmp_path / "cli" / str(study_uid)).glob("*.dcm"))) == source


def _cohort(tmp_path: Path, server) -> Path:
    out = tmp_path / "run"
    cfg = tmp_path / "cohort.yaml"
    cfg.write_text(
        f"""name: pacs-e2e
inputs:
  dimse: {{host: 127.0.0.1, port: {server.dicom_port}, ae_title: ORTHANC, query: {{ModalitiesInStudy: CT}}}}
pipeline:
  skip_empty_slices: false
{TINY_MODEL}output:
  dir: {out}
  formats: [dicom-seg, dicom-pmap, dicom-sr]
  threshold: {{method: percentile, value: 97.0, min_lesion_ml: 0.0}}
  push: {{dicomweb: {{url: {server.dicomweb}}}, backoff_s: 0.1}}
"""
    )
    return cfg


def _errors(tool: str, files: list[Path]) -> list[str]:
    proc = subprocess.run([tool, *map(str, files)], capture_output=True, text=True, timeout=120)
    return [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.startswith("Error")]


def test_run_from_pacs_pushes_seg_pmap_sr_back_once(
    loaded, tmp_path: Path, capsys, require_tool: Callable[[str], str]
) -> None:
    server, ct = loaded
    cfg = _cohort(tmp_path, server)
    assert main(["run", str(cfg), "--quiet"]) == 0
    out = tmp_path / "run"
    studies = pd.read_csv(out / "studies.csv", keep_default_na=False)
    assert list(studies["status"]) == ["done"]
    study = out / "studies" / studies.loc[0, "safe_id"]
    objects = [study / "dicom" / n for n in ("anomaly_seg.dcm", "heatmap_pmap.dcm", "anomaly_sr.dcm")]
    for f in objects:  # read back from Orthanc: identical to what was written
        local = pydicom.dcmread(f)
        assert _wado(server, local) == local, f.name
    sr = pydicom.dcmread(objects[2])
    assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
    assert _errors(require_tool("dciodvfy"), [objects[2]]) == []
    assert _errors(require_tool("dcentvfy"), [*ct, objects[0], objects[2]]) == []
    with SentRecords(out / "ledger.sqlite") as records:
        assert records.n_sent() == 3

    capsys.readouterr()
    assert main(["push", str(out), "--dicomweb", server.dicomweb]) == 0  # a second push sends nothing
    assert "0 objects sent, 3 sent before" in capsys.readouterr().out
    assert main(["run", str(cfg), "--quiet"]) == 0  # a rerun neither recomputes nor resends
    with SentRecords(out / "ledger.sqlite") as records:
        assert records.n_sent() == 3
    dimse = f"127.0.0.1:{server.dicom_port}:ORTHANC"
    assert main(["push", str(out), "--dimse", dimse, "--what", "seg,sr"]) == 0  # C-STORE: another endpoint
    assert "2 objects sent, 0 sent before" in capsys.readouterr().out
    assert main(["push", str(out), "--dimse", dimse, "--what", "seg,sr"]) == 0
    assert "0 objects sent, 2 sent before" in capsys.readouterr().out
    series = json.loads(server.get(f"/dicom-web/studies/{sr.StudyInstanceUID}/series"))
    assert sorted(s["00080060"]["Value"][0] for s in series) == ["CT", "OT", "SEG", "SR"]


def test_orthanc_stopped_mid_pull_gives_typed_error_and_rerun_completes(loaded, tmp_path: Path) -> None:
    server, ct = loaded
    study_uid = str(pydicom.dcmread(ct[0]).StudyInstanceUID)
    src = DicomWebInput(url=server.dicomweb, studies=(study_uid,), parallel=1, retries=0, timeout_s=5)
    for wrong in ({"calling_ae": "STRANGER"}, {"ae_title": "WRONG"}):  # DIMSE refusals are typed too
        peer = {"host": "127.0.0.1", "port": server.dicom_port, "ae_title": "ORTHANC", **wrong}
        report = pull_studies(DimseInput(**peer, studies=(study_uid,), retries=0), tmp_path / "refused")
        assert "rejected the association" in report.failed[0].error and study_uid in report.failed[0].error
    written: list[Path] = []

    def stop_after_three(path: Path) -> None:
        written.append(path)
        if len(written) == 3:
            server.stop()

    report = pull_studies(src, tmp_path / "cache", on_instance=stop_after_three)
    (failed,) = report.failed
    assert failed.study_uid == study_uid and failed.n_fetched == 3
    assert study_uid in failed.error and server.dicomweb in failed.error and "cannot connect" in failed.error
    assert not (failed.folder / COMPLETE_MARK).exists()
    with pytest.raises(PacsError) as info:  # the client's error is typed and names study and endpoint
        DicomWebClient(src).list_instances(study_uid)
    assert info.value.study_uid == study_uid and info.value.endpoint == server.dicomweb

    server.start()
    again = pull_studies(src, tmp_path / "cache")
    assert again.failed == () and again.studies[0].n_fetched == len(ct) - 3  # only the missing ones
    assert _by_sop(sorted(again.studies[0].folder.glob("*.dcm"))) == _by_sop(ct)
