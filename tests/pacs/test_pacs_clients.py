"""PACS clients without a PACS: typed errors for down, slow, 4xx/5xx and wrong-study servers; auth.

Small loopback HTTP servers stand in for broken DICOMweb servers; every failure must be a
:class:`PacsError` naming the endpoint (and the study when there is one), never a raw requests or
socket exception.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pydicom
import pytest
from pydicom.dataset import Dataset

from medzsad.config.pacs import DicomWebInput, DimseInput, HttpAuth
from medzsad.errors import ConfigError, InputError, OutputError, PacsError, PacsSendError
from medzsad.pacs.auth import display_url, http_session
from medzsad.pacs.client import InstanceRef, with_retries
from medzsad.pacs.dicomweb import DicomWebClient
from medzsad.pacs.dimse import DimseClient
from medzsad.pacs.pull import pull_studies

STUDY = "1.2.3.4"


class _Handler(BaseHTTPRequestHandler):
    status = 200
    body = b"[]"
    seen_auth: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        type(self).seen_auth.append(self.headers.get("Authorization", ""))
        self.send_response(self.status)
        self.send_header("Content-Type", "application/dicom+json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[tuple[str, type[_Handler]]]:
    handler = type("H", (_Handler,), {"seen_auth": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/dicom-web", handler
    finally:
        server.shutdown()
        server.server_close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _web(url: str, **kw: object) -> DicomWebClient:
    return DicomWebClient(DicomWebInput(url=url, studies=(STUDY,), **kw))  # type: ignore[arg-type]


def test_pacs_errors_are_input_errors_and_send_errors_output_errors() -> None:
    assert issubclass(PacsError, InputError)
    assert issubclass(PacsSendError, PacsError) and issubclass(PacsSendError, OutputError)


def test_server_down_is_a_typed_error_naming_endpoint_and_study() -> None:
    url = f"http://127.0.0.1:{_closed_port()}/dicom-web"
    with pytest.raises(PacsError, match="cannot connect") as info:
        _web(url).list_instances(STUDY)
    assert info.value.endpoint == url and info.value.study_uid == STUDY
    assert url in str(info.value) and STUDY in str(info.value)
    with pytest.raises(PacsError, match="cannot be reached") as dimse:
        DimseClient(
            DimseInput(host="127.0.0.1", port=_closed_port(), ae_title="PACS", studies=(STUDY,), timeout_s=2)
        ).list_instances(STUDY)
    assert dimse.value.study_uid == STUDY and "PACS@127.0.0.1" in dimse.value.endpoint


def test_slow_server_times_out_with_a_typed_error() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # accepts the connection, never answers
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/dicom-web"
        with pytest.raises(PacsError, match=r"no answer within 0.3 s") as info:
            _web(url, timeout_s=0.3).find_studies({"ModalitiesInStudy": "CT"})
        assert info.value.endpoint == url
        port = listener.getsockname()[1]
        silent = DimseInput(host="127.0.0.1", port=port, ae_title="SLOW", studies=(STUDY,), timeout_s=0.5)
        with pytest.raises(PacsError, match=r"no answer within 0.5 s") as dimse:
            DimseClient(silent).list_instances(STUDY)
        assert dimse.value.study_uid == STUDY
    finally:
        listener.close()


@pytest.mark.parametrize(
    ("status", "text"), [(500, "HTTP 500"), (404, "HTTP 404"), (401, "check the credentials")]
)
def test_http_error_status_is_a_typed_error(http_server, status: int, text: str) -> None:
    url, handler = http_server
    handler.status, handler.body = status, b"{}"
    with pytest.raises(PacsError, match=text) as info:
        _web(url).list_instances(STUDY)
    assert info.value.study_uid == STUDY


def test_server_answering_with_another_study_is_refused(http_server) -> None:
    url, handler = http_server
    other = {"0020000D": {"vr": "UI", "Value": ["9.9.9"]}, "0020000E": {"vr": "UI", "Value": ["9.9.9.1"]},
             "00080018": {"vr": "UI", "Value": ["9.9.9.1.1"]}}  # fmt: skip
    handler.body = json.dumps([other]).encode()
    with pytest.raises(PacsError, match="got study 9.9.9"):
        _web(url).list_instances(STUDY)


class _WrongStudyClient:
    endpoint = "fake://pacs"

    def find_studies(self, query: dict[str, str]) -> list[str]:
        return [STUDY]

    def list_instances(self, study_uid: str) -> list[InstanceRef]:
        return [InstanceRef(study_uid, "1.2.3.4.1", "1.2.3.4.1.1")]

    def retrieve(self, refs, sink, *, whole_study: bool = False) -> None:
        ds = Dataset()
        ds.StudyInstanceUID, ds.SOPInstanceUID = "5.6.7", "1.2.3.4.1.1"
        sink(ds)

    def store(self, files) -> None:
        raise AssertionError("not called")


def test_pull_of_a_study_answered_with_another_fails_that_study_only(tmp_path) -> None:
    src = DicomWebInput(url="http://unused", studies=(STUDY,), retries=0)
    report = pull_studies(src, tmp_path, client=_WrongStudyClient())  # type: ignore[arg-type]
    (failed,) = report.failed
    assert "asked for study 1.2.3.4" in failed.error and "another study" in failed.error
    assert list(failed.folder.glob("*.dcm")) == []  # nothing of the wrong study is kept


def test_retries_wait_with_exponential_backoff() -> None:
    waits: list[float] = []
    calls = iter([PacsError("down"), PacsError("down"), "ok"])

    def action() -> str:
        item = next(calls)
        if isinstance(item, Exception):
            raise item
        return item

    assert with_retries(action, retries=3, backoff_s=0.5, what="x", sleep=waits.append) == "ok"
    assert waits == [0.5, 1.0]
    with pytest.raises(PacsError):
        with_retries(
            lambda: (_ for _ in ()).throw(PacsError("always")),
            retries=2,
            backoff_s=1,
            what="x",
            sleep=waits.append,
        )


def test_bearer_token_comes_from_the_environment_and_is_never_logged(
    http_server, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    url, handler = http_server
    secret = "s3cr3t-token-value"
    monkeypatch.setenv("MEDZSAD_TEST_TOKEN", secret)
    src = DicomWebInput(
        url=url, query={"PatientID": "X"}, auth=HttpAuth(kind="bearer", token_env="MEDZSAD_TEST_TOKEN")
    )
    caplog.set_level(logging.DEBUG)
    assert DicomWebClient(src).find_studies({"PatientID": "X"}) == []
    assert handler.seen_auth == [f"Bearer {secret}"]
    assert secret not in caplog.text and secret not in src.model_dump_json()


def test_missing_secret_variable_is_a_config_error_without_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEDZSAD_NO_SUCH_VAR", raising=False)
    auth = HttpAuth(kind="basic", username="u", password_env="MEDZSAD_NO_SUCH_VAR")
    with pytest.raises(ConfigError, match="MEDZSAD_NO_SUCH_VAR"):
        http_session(DicomWebInput(url="https://u:p@pacs.example/dicom-web", studies=(STUDY,), auth=auth))
    assert display_url("https://u:p@pacs.example:8443/dicom-web") == "https://pacs.example:8443/dicom-web"


def test_ca_bundle_is_used_to_verify_tls(tmp_path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("")
    session = http_session(
        DicomWebInput(url="https://pacs/dicom-web", studies=(STUDY,), ca_bundle=str(bundle))
    )
    assert session.verify == str(bundle)


def test_stored_dataset_sink_writes_files_named_by_sop(tmp_path) -> None:
    """A fake PACS that answers correctly: the pull writes <dest>/<study>/<sop>.dcm and a completion mark."""

    class Good(_WrongStudyClient):
        def retrieve(self, refs, sink, *, whole_study: bool = False) -> None:
            for r in refs:
                ds = Dataset()
                ds.StudyInstanceUID, ds.SOPInstanceUID = r.study_uid, r.sop_uid
                ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
                ds.file_meta = pydicom.dataset.FileMetaDataset()
                ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
                sink(ds)

    report = pull_studies(DicomWebInput(url="http://unused", studies=(STUDY,)), tmp_path, client=Good())  # type: ignore[arg-type]
    assert report.failed == ()
    (f,) = report.studies[0].folder.glob("*.dcm")
    assert f.name == "1.2.3.4.1.1.dcm" and pydicom.dcmread(f).StudyInstanceUID == STUDY


def test_pull_is_bounded_in_parallelism_and_logs_no_study_uid(
    tmp_path, caplog: pytest.LogCaptureFixture
) -> None:
    lock = threading.Lock()
    together = threading.Barrier(3, timeout=30)  # three studies at once, or the barrier breaks
    state = {"now": 0, "peak": 0}

    class Slow(_WrongStudyClient):
        def list_instances(self, study_uid: str) -> list[InstanceRef]:
            with lock:
                state["now"] += 1
                state["peak"] = max(state["peak"], state["now"])
            if study_uid != uids[0]:  # the first study is asked for alone (a refusal stops there)
                together.wait()
            with lock:
                state["now"] -= 1
            raise PacsError(
                f"fake://pacs, study {study_uid}: HTTP 503", endpoint=self.endpoint, study_uid=study_uid
            )

    uids = tuple(f"1.2.3.{i}" for i in range(10))
    caplog.set_level(logging.WARNING)
    report = pull_studies(
        DicomWebInput(url="http://unused", studies=uids, parallel=3, retries=0), tmp_path, client=Slow()
    )  # type: ignore[arg-type]
    assert len(report.failed) == 10 and state["peak"] == 3
    assert "HTTP 503" in caplog.text and not any(uid in caplog.text for uid in uids)


def test_pull_command_with_a_cohort_file_reports_each_study(tmp_path, capsys) -> None:
    from medzsad.cli import main

    url = f"http://127.0.0.1:{_closed_port()}/dicom-web"
    cohort = tmp_path / "c.yaml"
    cohort.write_text(f'name: c\ninputs:\n  dicomweb: {{url: "{url}", studies: ["{STUDY}"], retries: 0}}\n')
    assert main(["pull", str(tmp_path / "dest"), "--cohort", str(cohort)]) == 3  # a study failed
    out = capsys.readouterr().out
    assert f"{STUDY}  0 instances (0 fetched now)  FAILED: {url}, study {STUDY}" in out
    plain = tmp_path / "plain.yaml"
    plain.write_text("name: p\ninputs: {paths: [x]}\n")
    assert main(["pull", str(tmp_path / "dest"), "--cohort", str(plain)]) == 2  # no PACS input: config error
    assert main(["pull", str(tmp_path / "dest"), "--dimse", "pacs:104"]) == 2  # malformed address
    assert "host:port:AE_TITLE" in capsys.readouterr().err


def test_garbage_answer_to_a_retrieve_is_a_typed_error(http_server) -> None:
    url, handler = http_server
    handler.body = b"this is not a DICOM multipart answer"
    ref = InstanceRef(STUDY, "1.2.3.4.1", "1.2.3.4.1.1")
    with pytest.raises(PacsError, match=r"WADO-RS instance 1\.2\.3\.4\.1\.1") as info:
        _web(url).retrieve([ref], lambda ds: None)
    assert info.value.study_uid == STUDY


def test_basic_auth_password_comes_from_the_environment(http_server, monkeypatch: pytest.MonkeyPatch) -> None:
    import base64

    url, handler = http_server
    monkeypatch.setenv("MEDZSAD_TEST_PASSWORD", "pa55")
    auth = HttpAuth(kind="basic", username="reader", password_env="MEDZSAD_TEST_PASSWORD")
    assert DicomWebClient(DicomWebInput(url=url, studies=(STUDY,), auth=auth)).find_studies({}) == []
    assert handler.seen_auth == ["Basic " + base64.b64encode(b"reader:pa55").decode()]


def test_command_line_endpoints_become_the_cohort_configs() -> None:
    from medzsad.pacs.endpoints import EndpointArgs, pull_source, push_destination

    move = pull_source(EndpointArgs(dimse="pacs:104:PACS:ME", move_port=11112), (STUDY,))
    assert isinstance(move, DimseInput)
    assert (move.host, move.port, move.ae_title, move.calling_ae, move.retrieve, move.move_port) == (
        "pacs", 104, "PACS", "ME", "move", 11112,
    )  # fmt: skip
    web = push_destination(EndpointArgs(dicomweb="https://pacs/dicom-web", token_env="TOK"), ("seg",))
    assert web.dicomweb is not None and web.dicomweb.auth == HttpAuth(kind="bearer", token_env="TOK")
    assert web.what == ("seg",)
    with pytest.raises(ConfigError, match="what"):
        push_destination(EndpointArgs(dicomweb="https://pacs/dicom-web"), ("seg", "nifti"))
    with pytest.raises(ConfigError, match="exactly one"):
        pull_source(EndpointArgs(), (STUDY,))


class _RejectedThenClosed:
    """An ``AE`` whose peer sends A-ASSOCIATE-RJ and closes at once, and pynetdicom loses the race.

    Seen against Orthanc about once in 100 associations: the RJ PDU arrives (``EVT_PDU_RECV``), the
    connection closes before the association reads the reject, and it ends aborted, not rejected.
    """

    def __init__(self, source: int, diagnostic: int) -> None:
        self.source, self.diagnostic = source, diagnostic

    def __call__(self, ae_title: str = "") -> _RejectedThenClosed:
        return self

    def add_requested_context(self, *args: object, **kw: object) -> None:
        pass

    def associate(self, host: str, port: int, evt_handlers: list, **kw: object) -> object:
        from types import SimpleNamespace

        from pynetdicom import evt
        from pynetdicom.pdu import A_ASSOCIATE_RJ

        rj = A_ASSOCIATE_RJ()
        rj.result, rj.source, rj.reason_diagnostic = 1, self.source, self.diagnostic
        events = [(evt.EVT_CONN_OPEN, SimpleNamespace()), (evt.EVT_PDU_RECV, SimpleNamespace(pdu=rj))]
        for event, payload in events:
            for handled, handler in evt_handlers:
                if handled is event:
                    handler(payload)
        return SimpleNamespace(is_rejected=False, is_aborted=True, is_established=False)


@pytest.mark.parametrize(("source", "diagnostic", "side"), [(1, 3, "calling AE"), (1, 7, "called AE")])
def test_a_rejection_followed_by_a_closed_connection_is_still_a_refusal(
    monkeypatch: pytest.MonkeyPatch, source: int, diagnostic: int, side: str
) -> None:
    from medzsad.errors import PacsRefusedError

    monkeypatch.setattr("medzsad.pacs.dimse.AE", _RejectedThenClosed(source, diagnostic))
    cfg = DimseInput(host="127.0.0.1", port=104, ae_title="ORTHANC", studies=("1.2.3",), retries=0)
    with pytest.raises(PacsRefusedError, match="rejected the association") as refused:
        DimseClient(cfg).list_instances("1.2.3")
    assert refused.value.side == side and "1.2.3" in str(refused.value)
