"""weights.resolve: one reading of a weight name, typed."""

from __future__ import annotations

from pathlib import Path

import pytest

from medzsad.errors import ModelError
from medzsad.weights import ResolvedWeights, WeightSource, resolve
from medzsad.weights.registry import WeightKind
from medzsad.weights.resolution import is_registry_name


def test_names_resolve_to_one_typed_result(tmp_path: Path, home: Path) -> None:
    assert resolve("random").source is WeightSource.RANDOM
    hub = resolve("hf-hub:org/model")
    assert (hub.source, hub.hub_id, hub.path) == (WeightSource.HUB, "hf-hub:org/model", None)
    entry_hub = resolve("biomedclip.hf")  # a registry entry stored on the hub: no file needed
    assert entry_hub.source is WeightSource.HUB and entry_hub.hub_id and entry_hub.entry is not None
    # a relative file is taken from base_dir (the cohort file's folder) and identified
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "clip.bin").write_bytes(b"12345")
    f = resolve("w/clip.bin", tmp_path)
    assert isinstance(f, ResolvedWeights) and f.source is WeightSource.FILE
    assert f.path == tmp_path / "w" / "clip.bin" and f.identity is not None and f.identity.size == 5
    assert f.describe()["size"] == 5  # type: ignore[index]
    # registry names: metadata without the file, and the missing-file message with the fix
    meta = resolve("clip_vitb16.openai", need_file=False)
    assert meta.source is WeightSource.REGISTRY and meta.path is None and meta.entry is not None
    with pytest.raises(ModelError, match="medzsad weights import clip_vitb16.openai"):
        resolve("clip_vitb16.openai")
    with pytest.raises(ModelError, match="not prompt weights"):
        resolve("clip_vitb16.openai", kind=WeightKind.PROMPT)
    with pytest.raises(ModelError, match=r"missing\.pth does not exist \(relative to"):
        resolve("missing.pth", tmp_path)


def test_one_rule_for_registry_names(tmp_path: Path) -> None:
    assert is_registry_name("clip_vitl14_336.openai")
    for name in ("model.pth", "a/b.openai", "Clip.OpenAI", "x.ckpt", "plain"):
        assert not is_registry_name(name), name
    (tmp_path / "local.tag").write_text("x")  # an existing path is a file, even if it looks like a name
    assert not is_registry_name("local.tag", tmp_path)
