"""HTTP downloads through pooch (retries), and every missing file reported at once (issue 14).

A local http.server on 127.0.0.1 stands in for the weight hosts; nothing touches the network.
"""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import medzsad.weights.fetch as fetch_module
from medzsad.cli import EXIT_MODEL, main
from medzsad.errors import ModelError
from medzsad.weights.cache import resolve
from medzsad.weights.fetch import fetch_all, fetch_weights

PAYLOAD = bytes(range(256)) * 1024


class _Handler(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}
    fail_first: dict[str, int] = {}
    hits: dict[str, int] = {}

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        self.hits[self.path] = self.hits.get(self.path, 0) + 1
        if self.fail_first.get(self.path, 0) >= self.hits[self.path]:
            self.send_error(503, "try again")
            return
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    _Handler.files, _Handler.fail_first, _Handler.hits = {}, {}, {}
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_http_download_retries_then_verifies(home: Path, server: str, add_entry) -> None:
    _Handler.files["/w.pt"] = PAYLOAD
    _Handler.fail_first["/w.pt"] = 1  # the first request fails: pooch retries
    add_entry("tiny.http", hashlib.sha256(PAYLOAD).hexdigest(), urls=(f"{server}/w.pt",))
    stored = fetch_weights("tiny.http")
    assert stored.verified and stored.path.read_bytes() == PAYLOAD
    assert _Handler.hits["/w.pt"] == 2
    assert resolve("tiny.http") == stored.path
    assert sorted(p.name for p in stored.path.parent.iterdir() if p.name.startswith(".")) == []


def test_every_missing_file_is_named_at_once(
    home: Path, server: str, add_entry, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fetch_module, "RETRIES", 0)  # a 404 stays a 404; keep the test fast
    _Handler.files["/ok.pt"] = PAYLOAD
    add_entry("tiny.ok", None, urls=(f"{server}/ok.pt",), filename="ok.pt")
    add_entry("tiny.gone1", None, urls=(f"{server}/gone1.pt",), filename="gone1.pt")
    add_entry("tiny.gone2", None, urls=(f"{server}/gone2.pt",), filename="gone2.pt")
    with pytest.raises(ModelError) as e:
        fetch_all(["tiny.gone1", "tiny.ok", "tiny.gone2"])
    text = str(e.value)
    assert text.startswith("2 weight file(s) could not be downloaded")
    for name in ("tiny.gone1", "tiny.gone2"):
        assert f"medzsad weights import {name} /path/to/" in text
    assert resolve("tiny.ok").read_bytes() == PAYLOAD  # the reachable one is stored anyway
    # the command line: exit 5, the error line, then each step on its own line (not '|'-joined)
    assert main(["weights", "fetch", "tiny.gone1", "tiny.ok", "tiny.gone2"]) == EXIT_MODEL
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0] == "medzsad: error: 2 weight file(s) could not be downloaded:"
    assert " | " not in "\n".join(lines)
    for name in ("tiny.gone1", "tiny.gone2"):
        assert f"medzsad weights import {name} /path/to/{name[5:]}.pt" in [line.strip() for line in lines]
