from __future__ import annotations

import hashlib
import io
import urllib.error
from contextlib import contextmanager

import pytest

from medzsad.cli import EXIT_MODEL, main
from medzsad.errors import ModelError
from medzsad.weights.cache import read_manifest, resolve
from medzsad.weights.fetch import fetch_weights
from medzsad.weights.registry import get_weight_entry

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB, several read chunks


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def served(tmp_path):
    src = tmp_path / "server" / "w.pt"
    src.parent.mkdir()
    src.write_bytes(PAYLOAD)
    return src


def test_fetch_file_url_verified(home, served, add_entry):
    add_entry("tiny.fetch", sha(PAYLOAD), urls=(served.as_uri(),))
    stored = fetch_weights("tiny.fetch")
    assert stored.verified and stored.path.read_bytes() == PAYLOAD
    assert resolve("tiny.fetch") == stored.path
    assert read_manifest()["tiny.fetch"].origin == f"fetch:{served.as_uri()}"
    assert not list(stored.path.parent.glob(".tmp-*"))


def test_fetch_checksum_mismatch_keeps_nothing(home, served, add_entry):
    add_entry("tiny.fetchbad", sha(b"other"), urls=(served.as_uri(),))
    with pytest.raises(ModelError, match="mismatch") as err:
        fetch_weights("tiny.fetchbad")
    assert sha(PAYLOAD) in str(err.value)
    assert not (home / "weights" / "tiny.fetchbad" / "w.pt").exists()
    assert not list((home / "weights" / "tiny.fetchbad").glob(".tmp-*"))


def test_fetch_falls_back_to_second_url(home, served, tmp_path, add_entry):
    missing = (tmp_path / "nowhere.pt").as_uri()
    add_entry("tiny.fallback", sha(PAYLOAD), urls=(missing, served.as_uri()))
    assert fetch_weights("tiny.fallback").path.read_bytes() == PAYLOAD


def test_fetch_unreachable_gives_offline_instructions(home, add_entry):
    def offline_opener(url, timeout):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    entry = get_weight_entry("anomalyclip_vitl14_336.mvtec")
    with pytest.raises(ModelError) as err:
        fetch_weights(entry.name, opener=offline_opener)
    msg = str(err.value)
    assert "name resolution" in msg
    assert all(url in msg for url in entry.urls)
    assert "medzsad weights import anomalyclip_vitl14_336.mvtec /path/to/epoch_15.pth" in msg
    assert not (home / "weights" / entry.name / entry.filename).exists()


def test_fetch_unverified_with_fake_opener(home, add_entry):
    class Response(io.BytesIO):
        headers = {"Content-Length": str(len(PAYLOAD))}

    @contextmanager
    def opener(url, timeout):
        assert timeout > 0
        yield Response(PAYLOAD)

    add_entry("tiny.nosha", None)
    stored = fetch_weights("tiny.nosha", opener=opener)
    assert not stored.verified and stored.sha256 == sha(PAYLOAD)
    assert read_manifest()["tiny.nosha"].verified is False


def test_fetch_truncated_stream_is_a_model_error(home, add_entry):
    class Broken(io.BytesIO):
        headers: dict[str, str] = {}

        def read(self, n=-1):
            data = super().read(1000)
            if not data:
                raise ConnectionResetError("connection reset by peer")
            return data

    @contextmanager
    def opener(url, timeout):
        yield Broken(PAYLOAD[:5000])

    add_entry("tiny.reset", sha(PAYLOAD))
    with pytest.raises(ModelError, match="connection reset"):
        fetch_weights("tiny.reset", opener=opener)
    assert not list((home / "weights" / "tiny.reset").glob("*"))


def test_cli_path_missing_exit_code_and_message(home, capsys):
    assert main(["weights", "path", "clip_vitl14_336.openai"]) == EXIT_MODEL
    err = capsys.readouterr().err
    assert "medzsad weights import clip_vitl14_336.openai /path/to/ViT-L-14-336px.pt" in err
    assert str(home / "weights" / "clip_vitl14_336.openai" / "ViT-L-14-336px.pt") in err
    assert "Traceback" not in err


def test_cli_import_list_path(home, served, add_entry, capsys):
    add_entry("tiny.cli", sha(PAYLOAD))
    assert main(["weights", "import", "tiny.cli", str(served)]) == 0
    out = capsys.readouterr().out
    assert "verified" in out and sha(PAYLOAD) in out
    assert main(["weights", "path", "tiny.cli"]) == 0
    assert capsys.readouterr().out.strip() == str(home / "weights" / "tiny.cli" / "w.pt")
    assert main(["weights", "list"]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()[1:]}
    assert rows["tiny.cli"][3] == "cached"
    assert rows["clip_vitl14_336.openai"][3] == "missing"
    assert rows["anomalyclip_vitl14_336.mvtec"][1] == "prompt"


def test_cli_import_bad_checksum(home, served, add_entry, capsys):
    add_entry("tiny.clibad", sha(b"x"))
    assert main(["weights", "import", "tiny.clibad", str(served)]) == EXIT_MODEL
    err = capsys.readouterr().err
    assert "mismatch" in err and "Traceback" not in err
    assert main(["weights", "import", "tiny.clibad", str(served), "--sha256", "zz"]) == EXIT_MODEL


def test_cli_fetch_from_file_url(home, served, add_entry, capsys):
    add_entry("tiny.clifetch", sha(PAYLOAD), urls=(served.as_uri(),))
    assert main(["weights", "fetch", "tiny.clifetch"]) == 0
    assert (home / "weights" / "tiny.clifetch" / "w.pt").read_bytes() == PAYLOAD


def test_cli_list_urls_shows_unverified_record(home, tmp_fixture_pth, capsys):
    assert main(["weights", "import", "anomalyclip_vitl14_336.mvtec", str(tmp_fixture_pth)]) == 0
    assert "UNVERIFIED" in capsys.readouterr().out
    assert main(["weights", "list", "--urls"]) == 0
    out = capsys.readouterr().out
    assert "stored sha256" in out and "UNVERIFIED" in out and "not published" in out
