"""``medzsad evaluate --references K``: references drawn from the test normals, left out, 5 seeded draws."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medzsad.cli import main
from medzsad.datasets.layouts import read_folder
from medzsad.errors import InputError
from medzsad.eval.few_shot import draw_references, evaluate_few_shot
from medzsad.model.inference import Detector
from medzsad.weights.model_loading import ModelSpec, load_anomalyclip

TINY = ModelSpec(prompts=None, clip="random", architecture="anomalyclip_tiny", image_size=56, seed=0)


def _write(root: Path, n_normal: int = 5, n_anomalous: int = 4) -> Path:
    """Normals: one smooth pattern with faint noise; anomalies: the same with a bright square."""
    yy, xx = np.mgrid[0:56, 0:56]
    base = (127 + 60 * np.sin(xx / 6.0) * np.cos(yy / 9.0)).astype(np.float64)
    rng = np.random.default_rng(0)
    for folder, n in (("normal", n_normal), ("abnormal", n_anomalous)):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img = base + rng.normal(0, 2, base.shape)
            if folder == "abnormal":
                r, c = rng.integers(4, 36, 2)
                img[r : r + 16, c : c + 16] = 250
                mask = np.zeros(base.shape, np.uint8)
                mask[r : r + 16, c : c + 16] = 255
                (root / "masks").mkdir(exist_ok=True)
                Image.fromarray(mask).save(root / "masks" / f"{folder}{i}.png")
            arr = np.clip(img, 0, 255).astype(np.uint8)
            Image.fromarray(np.stack([arr] * 3, axis=-1)).save(root / folder / f"{folder}{i}.png")
    return root


@pytest.fixture(scope="module")
def detector() -> Detector:
    return Detector(load_anomalyclip(TINY))


def test_references_are_left_out_reproducible_and_summarised(tmp_path: Path, detector: Detector) -> None:
    samples = read_folder(_write(tmp_path / "data"))
    rep = evaluate_few_shot(
        detector, samples, 2, seeds=(0, 1, 2), weight=1.0, batch_size=4, out_dir=tmp_path / "o"
    )
    cls = samples[0].class_name
    for d in rep.draws:
        refs = d.references[cls]
        assert len(refs) == 2 and all(samples[i].label == 0 for i in refs)
        row = d.table.rows[0]
        assert (row.n_images, row.n_anomalous) == (len(samples) - 2, 4)
        assert d.table.value(cls, "image_auroc") == 1.0  # normals match the references, squares do not
    assert rep.draws[0].references == draw_references(samples, 2, 0)
    assert len({d.references[cls] for d in rep.draws}) > 1
    vals = np.array([d.table.value("mean", "pixel_auroc") for d in rep.draws])
    mean, std = rep.summary()["pixel_auroc"]
    assert mean == pytest.approx(vals.mean()) and std == pytest.approx(vals.std(ddof=1))
    saved = json.loads((tmp_path / "o" / "few_shot.json").read_text())
    assert saved["seeds"] == [0, 1, 2] and saved["k"] == 2
    assert saved["draws"][1]["references"][cls] == list(rep.draws[1].references[cls])
    assert "seed 2" in (tmp_path / "o" / "few_shot.md").read_text()


def test_too_few_normals_is_refused(tmp_path: Path) -> None:
    samples = read_folder(_write(tmp_path / "data", n_normal=2, n_anomalous=1))
    with pytest.raises(InputError, match="lower --references"):
        draw_references(samples, 2, seed=0)


def test_cli_references_option_runs_five_draws(tmp_path: Path) -> None:
    data = _write(tmp_path / "data", n_normal=3, n_anomalous=2)
    args = ["evaluate", str(data), "--dataset-kind", "folder", "--references", "1", "-o", str(tmp_path / "o")]
    args += [
        "--prompts",
        "none",
        "--clip",
        "random",
        "--architecture",
        "anomalyclip_tiny",
        "--image-size",
        "56",
    ]
    assert main([*args, "--no-progress"]) == 0
    saved = json.loads((tmp_path / "o" / "few_shot.json").read_text())
    assert saved["seeds"] == [0, 1, 2, 3, 4]
    assert all(len(d["references"]["data"]) == 1 for d in saved["draws"])
    assert not math.isnan(saved["summary"]["image_auroc"]["mean"])
