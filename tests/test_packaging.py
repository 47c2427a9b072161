"""The wheel carries every subpackage, the architecture JSONs and the modality presets."""

from __future__ import annotations

from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_listed_in_pyproject():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(cfg["packages"])
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "medzsad").rglob("__init__.py")}
    assert on_disk - listed == set(), "add new subpackages to [tool.setuptools].packages"
    assert cfg["package-dir"]["medzsad.pipelines"] == "pipelines"
    assert "*.yaml" in cfg["package-data"]["medzsad.pipelines"]
    presets = sorted(p.stem for p in (ROOT / "pipelines").glob("*.yaml"))
    assert presets == ["ct-abdomen", "ct-chest", "ct-head", "mr-brain", "xray-2d"]
