from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from medzsad.errors import ModelError
from medzsad.weights.cache import expected_path, medzsad_home, read_manifest, resolve, sha256_file
from medzsad.weights.import_file import import_weights
from medzsad.weights.registry import get_weight_entry


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


PAYLOAD = b"tiny weights \x00\x01\x02" * 1000


def _no_temp_files(root: Path) -> bool:
    return not [p for p in root.rglob("*") if p.name.startswith(".tmp-")]


def test_home_defaults(monkeypatch, tmp_path):
    monkeypatch.delenv("MEDZSAD_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert medzsad_home() == tmp_path / ".cache" / "medzsad"
    monkeypatch.setenv("MEDZSAD_HOME", str(tmp_path / "x"))
    assert medzsad_home() == tmp_path / "x"
    assert medzsad_home(tmp_path / "y") == tmp_path / "y"


def test_resolve_missing_names_file_url_and_commands(home):
    entry = get_weight_entry("clip_vitl14_336.openai")
    with pytest.raises(ModelError) as err:
        resolve(entry.name)
    msg = str(err.value)
    assert str(home / "weights" / "clip_vitl14_336.openai" / "ViT-L-14-336px.pt") in msg
    assert entry.urls[0] in msg
    assert "medzsad weights import clip_vitl14_336.openai /path/to/ViT-L-14-336px.pt" in msg
    assert "medzsad weights fetch clip_vitl14_336.openai" in msg
    assert "MEDZSAD_HOME" in msg


def test_resolve_finds_open_clip_url_cache(home):
    entry = get_weight_entry("clip_vitb16.openai")
    cached = Path(os.environ["HOME"]) / ".cache" / "clip" / "ViT-B-16.pt"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"x")
    assert resolve(entry.name) == cached


def test_import_verified(home, tmp_path, add_entry):
    entry = add_entry("tiny.good", sha256_bytes(PAYLOAD))
    src = tmp_path / "download.pt"
    src.write_bytes(PAYLOAD)
    stored = import_weights("tiny.good", src)
    assert stored.verified and stored.sha256 == entry.sha256 and stored.size_bytes == len(PAYLOAD)
    assert stored.path == expected_path(entry) == home / "weights" / "tiny.good" / "w.pt"
    assert stored.path.read_bytes() == PAYLOAD
    assert resolve("tiny.good") == stored.path
    record = read_manifest()["tiny.good"]
    assert record.verified and record.sha256 == entry.sha256 and record.origin == f"import:{src.resolve()}"
    assert _no_temp_files(home)


def test_import_bad_checksum_stores_nothing(home, tmp_path, add_entry):
    expected = sha256_bytes(b"the real file")
    add_entry("tiny.bad", expected)
    src = tmp_path / "download.pt"
    src.write_bytes(PAYLOAD)
    with pytest.raises(ModelError) as err:
        import_weights("tiny.bad", src)
    msg = str(err.value)
    assert expected in msg and sha256_bytes(PAYLOAD) in msg and "mismatch" in msg
    assert not (home / "weights" / "tiny.bad" / "w.pt").exists()
    assert "tiny.bad" not in read_manifest()
    assert _no_temp_files(home)


def test_import_real_registry_checksum_mismatch(home, tmp_path):
    src = tmp_path / "ViT-L-14-336px.pt"
    src.write_bytes(b"not the OpenAI archive")
    with pytest.raises(ModelError, match="3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02"):
        import_weights("clip_vitl14_336.openai", src)
    with pytest.raises(ModelError):
        resolve("clip_vitl14_336.openai")


def test_import_unpublished_checksum_recorded_unverified(home, tmp_fixture_pth):
    stored = import_weights("anomalyclip_vitl14_336.mvtec", tmp_fixture_pth)
    assert not stored.verified
    assert stored.sha256 == sha256_file(tmp_fixture_pth)
    record = read_manifest()["anomalyclip_vitl14_336.mvtec"]
    assert record.sha256 == stored.sha256 and record.verified is False
    assert resolve("anomalyclip_vitl14_336.mvtec").read_bytes() == tmp_fixture_pth.read_bytes()


def test_import_pinned_checksum(home, tmp_fixture_pth):
    good = sha256_file(tmp_fixture_pth)
    stored = import_weights("anomalyclip_vitl14_336.visa", tmp_fixture_pth, sha256=good.upper())
    assert stored.verified and read_manifest()["anomalyclip_vitl14_336.visa"].verified
    with pytest.raises(ModelError, match="mismatch"):
        import_weights("anomalyclip_vitl14_336.mvtec", tmp_fixture_pth, sha256="0" * 64)
    with pytest.raises(ModelError, match="not a SHA-256"):
        import_weights("anomalyclip_vitl14_336.mvtec", tmp_fixture_pth, sha256="abc")


def test_pinned_checksum_contradicting_registry(home, tmp_path, add_entry):
    add_entry("tiny.pin", sha256_bytes(PAYLOAD))
    src = tmp_path / "w.pt"
    src.write_bytes(PAYLOAD)
    with pytest.raises(ModelError, match="contradicts"):
        import_weights("tiny.pin", src, sha256="1" * 64)


def test_import_missing_source_and_hf_entry(home, tmp_path):
    with pytest.raises(ModelError, match="is not a file"):
        import_weights("anomalyclip_vitl14_336.mvtec", tmp_path / "nope.pth")
    with pytest.raises(ModelError, match="Hugging Face"):
        import_weights("biomedclip.hf", tmp_path / "nope.bin")


def test_reimport_replaces_and_manifest_keeps_others(home, tmp_path, add_entry):
    add_entry("tiny.one", None)
    add_entry("tiny.two", None)
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    a.write_bytes(b"aaaa")
    b.write_bytes(b"bbbb")
    import_weights("tiny.one", a)
    import_weights("tiny.two", b)
    import_weights("tiny.one", b)
    manifest = read_manifest()
    assert set(manifest) == {"tiny.one", "tiny.two"}
    assert manifest["tiny.one"].sha256 == sha256_bytes(b"bbbb")
    raw = json.loads((home / "weights" / "manifest.json").read_text())
    assert raw["format_version"] == 1


def test_corrupt_manifest_is_a_model_error(home, tmp_path, add_entry):
    (home / "weights").mkdir(parents=True)
    (home / "weights" / "manifest.json").write_text("{not json")
    with pytest.raises(ModelError, match="manifest"):
        read_manifest()


def test_import_without_checksum_rejects_a_file_that_is_no_prompt_checkpoint(home, tmp_path):
    bogus = tmp_path / "epoch_15.pth"
    bogus.write_text("name: not a checkpoint\n")
    with pytest.raises(ModelError, match="not a readable AnomalyCLIP checkpoint"):
        import_weights("anomalyclip_vitl14_336.mvtec", bogus)
    assert not any(p.is_file() for p in Path(home).rglob("*.pth*"))
