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
from medzsad.errors import PacsError, PacsRefusedError
from medzsad.ids import pseudonym_study_id
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
    port = server.http_port  # nor to the same server spelt otherwise (issue 22 item 13)
    for spelling in (f"http://localhost:{port}/dicom-web/", f"HTTP://LOCALHOST:{port}//dicom-web"):
        assert main(["push", str(out), "--dicomweb", spelling]) == 0
        assert "0 objects sent, 3 sent before" in capsys.readouterr().out, spelling
    assert main(["run", str(cfg), "--quiet"]) == 0  # a rerun neither recomputes nor resends
    with SentRecords(out / "ledger.sqlite") as records:
        assert records.n_sent() == 3
    dimse = f"127.0.0.1:{server.dicom_port}:ORTHANC"
    assert main(["push", str(out), "--dimse", dimse, "--what", "seg,sr"]) == 0  # C-STORE: another endpoint
    assert "2 objects sent, 0 sent before" in capsys.readouterr().out
    assert main(["push", str(out), "--dimse", dimse, "--what", "seg,sr"]) == 0
    assert "0 objects sent, 2 sent before" in capsys.readouterr().out
    assert (
        main(["push", str(out), "--dimse", f"localhost:{server.dicom_port}:ORTHANC ", "--what", "seg,sr"])
        == 0
    )
    assert "0 objects sent, 2 sent before" in capsys.readouterr().out
    series = json.loads(server.get(f"/dicom-web/studies/{sr.StudyInstanceUID}/series"))
    assert sorted(s["00080060"]["Value"][0] for s in series) == ["CT", "OT", "SEG", "SR"]


def test_orthanc_stopped_mid_pull_gives_typed_error_and_rerun_completes(loaded, tmp_path: Path) -> None:
    server, ct = loaded
    study_uid = str(pydicom.dcmread(ct[0]).StudyInstanceUID)
    src = DicomWebInput(url=server.dicomweb, studies=(study_uid,), parallel=1, retries=0, timeout_s=5)
    for wrong, side in (({"calling_ae": "STRANGER"}, "calling AE"), ({"ae_title": "WRONG"}, "called AE")):
        peer = {"host": "127.0.0.1", "port": server.dicom_port, "ae_title": "ORTHANC", **wrong}
        with pytest.raises(
            PacsRefusedError, match="rejected the association"
        ) as refused:  # typed, pull stops
            pull_studies(DimseInput(**peer, studies=(study_uid,), retries=0), tmp_path / "refused")
        assert refused.value.side == side and study_uid in str(refused.value)
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


# --- issue 22: query keys, refusals, dry runs, endpoint spelling, fast and quiet failures ---------


def test_misspelt_or_series_level_query_keys_are_refused_before_any_request(
    loaded, tmp_path: Path, capsys
) -> None:
    """``--query ModalitesInStudy=CT`` pulled the whole archive; ``Modality=CT`` matched nothing."""
    server, _ = loaded
    for key, hint in (
        ("ModalitesInStudy", "did you mean ModalitiesInStudy?"),
        ("Modality", "use ModalitiesInStudy"),
    ):
        dest = tmp_path / key
        assert main(["pull", str(dest), "--dicomweb", server.dicomweb, "--query", f"{key}=CT"]) == 2
        assert hint in capsys.readouterr().err
        assert not dest.exists()  # refused before anything was asked or written
    cohort = tmp_path / "c.yaml"
    cohort.write_text(
        f"name: c\ninputs:\n  dicomweb: {{url: {server.dicomweb}, query: {{ModalitesInStudy: CT}}}}\n"
    )
    assert main(["pull", str(tmp_path / "c"), "--cohort", str(cohort)]) == 2


def test_dry_run_only_queries(loaded, tmp_path: Path, capsys) -> None:
    from medzsad.cohort.inputs import collect_studies
    from medzsad.config import load_cohort
    from medzsad.pacs.pull import query_only

    server, ct = loaded
    study_uid = str(pydicom.dcmread(ct[0]).StudyInstanceUID)
    capsys.readouterr()
    dest = tmp_path / "dest"
    words = ["--dicomweb", server.dicomweb, "--query", "ModalitiesInStudy=CT", "--dry-run"]
    assert main(["pull", str(dest), *words]) == 0
    out = capsys.readouterr().out
    assert f"would pull {study_uid}  {len(ct)} instances (0 here already)" in out
    assert f"{len(ct)} instances would be fetched" in out and "nothing was retrieved" in out
    assert not dest.exists()
    # a cohort read under query_only (what 'run --dry-run' needs) names the study and pulls nothing
    cfg = _cohort(tmp_path, server)
    with query_only():
        studies = collect_studies(load_cohort(cfg))
    expected = [(pseudonym_study_id("dimse", study_uid), study_uid)]  # never the UID as its id
    assert [(s.study_id, s.study_uid) for s in studies] == expected
    assert not list((tmp_path / "run").rglob("*.dcm"))


class _AuthOrthanc:
    """The loopback Orthanc of the other tests, with HTTP basic authentication switched on."""

    def __init__(self, server) -> None:
        self.server = server
        server.stop()
        config = json.loads(server.config.read_text())
        config.update(AuthenticationEnabled=True, RegisteredUsers={"reader": "right-password"})
        server.config.write_text(json.dumps(config))
        import base64
        import urllib.request

        token = base64.b64encode(b"reader:right-password").decode()
        opener = urllib.request.build_opener()
        opener.addheaders = [("Authorization", f"Basic {token}")]
        urllib.request.install_opener(opener)  # the fixture's readiness probe authenticates
        server.start()


def test_wrong_credentials_and_unknown_ae_titles_fail_at_once_with_their_own_exit_code(
    loaded, tmp_path: Path, monkeypatch, capsys
) -> None:
    import urllib.request

    server, ct = loaded
    study_uid = str(pydicom.dcmread(ct[0]).StudyInstanceUID)
    try:
        _AuthOrthanc(server)
        monkeypatch.setenv("MEDZSAD_TEST_PW", "wrong-password")
        calls: list[str] = []
        from medzsad.pacs import dicomweb

        real_errors = dicomweb.DicomWebClient._errors

        def counting(self, doing, study_uid="", send=False):  # type: ignore[no-untyped-def]
            calls.append(doing)
            return real_errors(self, doing, study_uid, send)

        monkeypatch.setattr(dicomweb.DicomWebClient, "_errors", counting)
        uids = [study_uid, "1.2.3.4", "1.2.3.5", "1.2.3.6"]  # a 4-study pull
        words = ["--dicomweb", server.dicomweb, "--user", "reader", "--password-env", "MEDZSAD_TEST_PW"]
        code = main(["pull", str(tmp_path / "dest"), *words, *(w for u in uids for w in ("--study", u))])
        err = capsys.readouterr().err
        assert code == 7, err
        assert len(calls) == 1  # one request, one failed login: no retries, no other study tried
        assert f"{server.dicomweb}, study {study_uid}" in err and "HTTP 401" in err and "credentials" in err
        monkeypatch.setenv("MEDZSAD_TEST_PW", "right-password")
        assert main(["pull", str(tmp_path / "dest"), *words, "--study", study_uid]) == 0
    finally:
        urllib.request.install_opener(None)
    dimse = f"127.0.0.1:{server.dicom_port}"
    for address, side in ((f"{dimse}:ORTHANC:STRANGER", "calling"), (f"{dimse}:WRONG", "called")):
        code = main(
            ["pull", str(tmp_path / "ae"), "--dimse", address, "--study", study_uid, "--study", "1.2.3"]
        )
        err = capsys.readouterr().err
        assert code == 7, err
        (line,) = [ln for ln in err.splitlines() if ln.startswith("medzsad: error:")]
        assert "rejected the association" in line and f"(the {side} AE)" in line


_TIMED_PULL = """
import sys, time
t0 = time.monotonic()
from medzsad.cli import main
code = main(sys.argv[1:])
print(f"RESULT {code} {time.monotonic() - t0:.2f} {'torch' in sys.modules} {'monai' in sys.modules}")
"""


def test_a_failing_pull_answers_in_about_a_second_in_one_line_without_torch(loaded, tmp_path: Path) -> None:
    import socket
    import sys

    server, ct = loaded
    study_uid = str(pydicom.dcmread(ct[0]).StudyInstanceUID)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    cases = (
        (["--dicomweb", f"http://127.0.0.1:{closed}/dicom-web"], 3),  # down: every study failed
        (["--dimse", f"127.0.0.1:{closed}:ORTHANC"], 3),
        (["--dimse", f"127.0.0.1:{server.dicom_port}:WRONG"], 7),  # refused by the real Orthanc
    )
    for words, expected in cases:
        argv = ["pull", str(tmp_path / "d"), *words, "--study", study_uid, "--study", "1.2.3"]
        proc = subprocess.run(
            [sys.executable, "-c", _TIMED_PULL, *argv], capture_output=True, text=True, timeout=120
        )
        (result,) = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")]
        _, code, seconds, torch, monai = result.split()
        assert (int(code), torch, monai) == (expected, "False", "False"), proc.stdout + proc.stderr
        assert float(seconds) < 3.0, result
        assert "pynetdicom" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_a_finished_pacs_cohort_reruns_offline_while_the_pacs_is_down(loaded, tmp_path: Path, caplog) -> None:
    """Issue 22 item 14: a rerun of a finished run does not exit 4 because the PACS is down."""
    server, ct = loaded
    out = tmp_path / "run"
    cfg = tmp_path / "cohort.yaml"
    dimse = (
        f"{{host: 127.0.0.1, port: {server.dicom_port}, ae_title: ORTHANC, query: {{ModalitiesInStudy: CT}}}}"
    )
    cfg.write_text(
        f"name: offline\ninputs:\n  dimse: {dimse}\npipeline:\n  skip_empty_slices: false\n{TINY_MODEL}"
        f"output:\n  dir: {out}\n  formats: [nifti, html, dicom-seg]\n"
        f"  push: {{dicomweb: {{url: {server.dicomweb}}}, backoff_s: 0.1}}\n"
    )
    assert main(["run", str(cfg), "--quiet"]) == 0
    first = pd.read_csv(out / "studies.csv", keep_default_na=False)
    assert list(first["status"]) == ["done"]
    server.stop()
    for name in ("studies.csv", "errors.csv", "report.html"):
        (out / name).unlink()
    caplog.clear()
    assert main(["run", str(cfg), "--quiet"]) == 0  # was exit 4: the study query failed
    again = pd.read_csv(out / "studies.csv", keep_default_na=False)
    pd.testing.assert_frame_equal(again, first)  # regenerated from the ledger, the same table
    assert (out / "errors.csv").is_file() and first.loc[0, "study_id"] in (out / "report.html").read_text()
    endpoint = f"ORTHANC@127.0.0.1:{server.dicom_port}"
    (warning,) = [r.getMessage() for r in caplog.records if "offline" in r.getMessage()]
    assert endpoint in warning and "1 studies pulled from it before" in warning
    # a study a pull left incomplete cannot be finished offline: it fails, the done one stays done
    (out / "pacs-cache" / "dimse" / "1.2.826.0.1.3680043.8.498.77").mkdir()
    assert main(["run", str(cfg), "--quiet"]) == 3
    errors = pd.read_csv(out / "errors.csv", keep_default_na=False)
    assert (
        list(errors["error_type"]) == ["PacsError"]
        and "not completely pulled before" in errors.loc[0, "message"]
    )
    # 'medzsad pull' is asked to ask the PACS: there a failed query stays exit 4
    assert main(["pull", str(tmp_path / "p"), "--dimse", f"127.0.0.1:{server.dicom_port}:ORTHANC",
                 "--query", "ModalitiesInStudy=CT"]) == 4  # fmt: skip


def test_dimse_pulls_a_study_stored_in_jpeg_2000_and_rle(orthanc_pacs, tmp_path: Path) -> None:
    """A PACS sends a compressed instance as stored when its syntax is offered; Orthanc cannot transcode."""
    from pydicom.uid import JPEG2000Lossless, RLELossless

    files = _series(tmp_path / "src" / "j2k", "CT", (32, 32, 4), "j2k")
    for i, f in enumerate(files):
        ds = pydicom.dcmread(f)
        ds.compress(JPEG2000Lossless if i % 2 == 0 else RLELossless)
        ds.save_as(f, enforce_file_format=True)
    orthanc_pacs.upload(files)
    source = _by_sop(files)
    study_uid = str(next(iter(source.values())).StudyInstanceUID)
    for name, retrieve in (("get", "get"), ("move", "move")):
        src = DimseInput(
            host="127.0.0.1",
            port=orthanc_pacs.dicom_port,
            ae_title="ORTHANC",
            studies=(study_uid,),
            retrieve=retrieve,
            move_port=orthanc_pacs.client_port,
            move_bind="127.0.0.1",
        )
        report = pull_studies(src, tmp_path / name)
        assert report.failed == (), (name, report.failed)  # 0xC000 before: 'Cannot transcode'
        pulled = _by_sop(sorted(report.studies[0].folder.glob("*.dcm")))
        assert pulled.keys() == source.keys()
        for sop, ds in pulled.items():
            assert ds.file_meta.TransferSyntaxUID == source[sop].file_meta.TransferSyntaxUID  # as stored
            assert np.array_equal(ds.pixel_array, source[sop].pixel_array), (name, sop)
