"""TLS: DICOMweb verifies the server against ``ca_bundle``; DIMSE runs over TLS with ``tls.ca_file``.

A throw-away CA and a server certificate for 127.0.0.1 are made with the ``openssl`` command; an
https QIDO-RS stub and a pynetdicom C-FIND SCP serve with that certificate. Without the CA the
connection is refused with a typed error.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind  # type: ignore[attr-defined]

from medzsad.config.pacs import DicomWebInput, DimseInput
from medzsad.errors import PacsError
from medzsad.pacs.dicomweb import DicomWebClient
from medzsad.pacs.dimse import DimseClient

STUDY = "1.2.826.0.1.3680043.8.498.77"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("openssl is not installed (apt-get install openssl)")
    d = tmp_path_factory.mktemp("tls")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=d, check=True, capture_output=True, timeout=60)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "1",
        "-subj", "/CN=medzsad test CA", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    run(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    )
    (d / "ext.cnf").write_text(
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
        "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
    )
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.pem", "-days", "1", "-extfile", "ext.cnf")  # fmt: skip
    return {"ca": d / "ca.pem", "cert": d / "server.pem", "key": d / "server.key"}


def _server_context(certs: dict[str, Path]) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certs["cert"], certs["key"])
    return ctx


class _Qido(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        body = b'[{"0020000D": {"vr": "UI", "Value": ["%s"]}}]' % STUDY.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/dicom+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def https_url(certs: dict[str, Path]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Qido)
    server.socket = _server_context(certs).wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/dicom-web"
    finally:
        server.shutdown()
        server.server_close()


def test_dicomweb_verifies_the_server_with_the_ca_bundle(https_url: str, certs: dict[str, Path]) -> None:
    good = DicomWebInput(url=https_url, query={"PatientID": "*"}, ca_bundle=str(certs["ca"]), timeout_s=10)
    assert DicomWebClient(good).find_studies({"PatientID": "*"}) == [STUDY]
    untrusted = DicomWebInput(url=https_url, query={"PatientID": "*"}, timeout_s=10)
    with pytest.raises(PacsError, match="SSLError"):
        DicomWebClient(untrusted).find_studies({"PatientID": "*"})


@pytest.fixture
def tls_scp(certs: dict[str, Path]) -> Iterator[int]:
    def on_find(event: evt.Event):  # noqa: ANN202 (pynetdicom handler)
        answer = Dataset()
        answer.QueryRetrieveLevel = "STUDY"
        answer.StudyInstanceUID = STUDY
        yield 0xFF00, answer
        yield 0x0000, None

    ae = AE(ae_title="TLSPACS")
    ae.add_supported_context(StudyRootQueryRetrieveInformationModelFind)
    server = ae.start_server(
        ("127.0.0.1", 0),
        block=False,
        ssl_context=_server_context(certs),
        evt_handlers=[(evt.EVT_C_FIND, on_find)],
    )
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()


def test_dimse_runs_over_tls_with_the_ca_file(tls_scp: int, certs: dict[str, Path]) -> None:
    peer = {
        "host": "127.0.0.1",
        "port": tls_scp,
        "ae_title": "TLSPACS",
        "query": {"PatientID": "*"},
        "timeout_s": 5,
    }
    secure = DimseInput(**peer, tls={"ca_file": str(certs["ca"])})  # type: ignore[arg-type]
    assert DimseClient(secure).find_studies({"PatientID": "*"}) == [STUDY]
    with pytest.raises(PacsError, match="cannot be reached"):  # plain DICOM to a TLS port
        DimseClient(DimseInput(**{**peer, "timeout_s": 2})).find_studies({"PatientID": "*"})  # type: ignore[arg-type]
