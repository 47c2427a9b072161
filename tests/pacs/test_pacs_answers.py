"""Issue 22 items 13 and 14: endpoint identity, HTML answers and refusals that are never retried.

A loopback HTTP server plays an SSO login page in front of a URL that should be a DICOMweb root
(the real Orthanc cases are in tests/consumers/test_pacs_orthanc.py).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from medzsad.cli import main
from medzsad.config.pacs import DicomWebInput
from medzsad.errors import PacsError, PacsRefusedError, PacsUnreachableError
from medzsad.pacs.auth import dimse_endpoint, display_url
from medzsad.pacs.client import for_log, with_retries
from medzsad.pacs.dicomweb import DicomWebClient

SSO_PAGE = b"<!DOCTYPE html><html><head><title>Sign in</title></head><body><form>...</form></body></html>"


class _Portal(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        type(self).hits.append(self.path)
        if not self.path.startswith("/login"):
            self.send_response(302)  # what an SSO proxy does: off to the login page
            self.send_header("Location", "/login?next=" + self.path)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(SSO_PAGE)))
        self.end_headers()
        self.wfile.write(SSO_PAGE)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def portal() -> Iterator[tuple[str, type[_Portal]]]:
    handler = type("P", (_Portal,), {"hits": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/dicom-web", handler
    finally:
        server.shutdown()
        server.server_close()


def test_an_sso_login_page_is_not_a_dicomweb_server(portal, tmp_path, capsys) -> None:
    url, handler = portal
    client = DicomWebClient(DicomWebInput(url=url, studies=("1.2.3",)))
    with pytest.raises(PacsRefusedError, match="not a DICOMweb server") as info:
        client.find_studies({"ModalitiesInStudy": "CT"})
    assert info.value.side == "server" and "Expecting value" not in str(info.value)
    with pytest.raises(PacsRefusedError, match=r"study 1\.2\.3: QIDO-RS instance search: .* web page"):
        client.list_instances("1.2.3")
    handler.hits.clear()
    code = main(["pull", str(tmp_path / "d"), "--dicomweb", url, "--study", "1.2.3", "--study", "1.2.4"])
    err = capsys.readouterr().err
    assert code == 7 and "not a DICOMweb server" in err
    assert len([h for h in handler.hits if not h.startswith("/login")]) == 1  # asked once, not per study


def test_endpoint_identity_does_not_depend_on_spelling() -> None:
    same = [
        "http://127.0.0.1:8042/dicom-web",
        "http://localhost:8042/dicom-web/",
        "HTTP://LocalHost:8042//dicom-web",
        "http://user:secret@127.0.0.1:8042/dicom-web?x=1",
        "http://[::1]:8042/dicom-web",
    ]
    assert {display_url(u) for u in same} == {"http://127.0.0.1:8042/dicom-web"}
    assert display_url("https://PACS.example:443/wado/rs/") == "https://pacs.example/wado/rs"
    assert display_url("http://pacs.example:80/dicom-web") == "http://pacs.example/dicom-web"
    assert display_url("https://pacs.example:8443/dicom-web") == "https://pacs.example:8443/dicom-web"
    assert dimse_endpoint("ORTHANC ", "localhost", 4242) == dimse_endpoint("ORTHANC", "127.0.0.1", 4242)
    assert dimse_endpoint("PACS", "Pacs.Example.", 104) == "PACS@pacs.example:104"


@pytest.mark.parametrize(
    "error", [PacsRefusedError("refused", side="credentials"), PacsUnreachableError("down")]
)
def test_refusals_and_unreachable_endpoints_are_never_retried(error: PacsError) -> None:
    calls: list[int] = []

    def action() -> None:
        calls.append(1)
        raise error

    with pytest.raises(type(error)):
        with_retries(action, retries=5, backoff_s=0.0, what="x", sleep=lambda s: None)
    assert calls == [1]


def test_log_pseudonym_equals_the_cohorts_without_importing_it() -> None:
    from medzsad.ids import hashed_id

    e = PacsError("pacs, study 1.2.840.1: down", study_uid="1.2.840.1")
    assert for_log(e) == f"pacs, study {hashed_id('1.2.840.1')}: down"
