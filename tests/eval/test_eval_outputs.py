"""What ``medzsad evaluate`` writes: random weights are marked, volume slices are traceable."""

from __future__ import annotations

import contextlib
import csv
import io
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from medzsad.cli import main
from medzsad.datasets.layouts import read_folder
from medzsad.eval import api as eval_api
from medzsad.eval.outputs import SMOKE_NOTE, is_random_weights
from medzsad.model.inference import Detector
from medzsad.weights.model_loading import ModelSpec, load_anomalyclip

TINY_ARGS = ["--prompts", "none", "--clip", "random", "--architecture", "anomalyclip_tiny"]
TINY_ARGS += ["--image-size", "28", "--no-progress"]
MARK = "SMOKE RUN - random weights"
SCORE_COLUMNS = ["image", "class", "label", "score", "max_map", "mask_known"]


def _folder(root: Path, n: int = 3) -> Path:
    """``normal/`` and ``abnormal/`` images with masks: a folder dataset with both labels."""
    rng = np.random.default_rng(0)
    for folder in ("normal", "abnormal"):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img = rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)
            Image.fromarray(img).save(root / folder / f"{folder}{i}.png")
            if folder == "abnormal":
                mask = np.zeros((20, 20), np.uint8)
                mask[4:10, 4:10] = 255
                (root / "masks").mkdir(exist_ok=True)
                Image.fromarray(mask).save(root / "masks" / f"{folder}{i}.png")
    return root


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def image_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """``medzsad evaluate`` with random weights on a 2D image folder: (output folder, terminal text)."""
    root = tmp_path_factory.mktemp("images")
    out, text = root / "out", io.StringIO()
    with contextlib.redirect_stdout(text):
        assert main(["evaluate", str(_folder(root / "data")), "-o", str(out), *TINY_ARGS]) == 0
    return out, text.getvalue()


def test_evaluate_with_random_weights_marks_every_output(image_run: tuple[Path, str]) -> None:
    out, text = image_run
    assert text.startswith(f"**{SMOKE_NOTE}**")
    payload = json.loads((out / "metrics.json").read_text())
    assert payload["smoke_run"] is True and MARK in payload["note"]
    assert (out / "metrics.md").read_text().splitlines()[0] == f"**{SMOKE_NOTE}**"
    assert {r["smoke_run"] for r in _rows(out / "metrics.csv")} == {"True"}
    assert {r["smoke_run"] for r in _rows(out / "scores.csv")} == {"True"}


def test_few_shot_with_random_weights_is_marked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _folder(tmp_path / "data")
    args = ["evaluate", str(data), "--references", "1", "-o", str(tmp_path / "o"), *TINY_ARGS]
    assert main(args) == 0
    assert MARK in capsys.readouterr().out
    payload = json.loads((tmp_path / "o" / "few_shot.json").read_text())
    assert payload["smoke_run"] is True and MARK in payload["note"]
    assert (tmp_path / "o" / "few_shot.md").read_text().splitlines()[0] == f"**{SMOKE_NOTE}**"


def test_real_weights_are_not_marked(tmp_path: Path) -> None:
    spec = ModelSpec(prompts=None, clip="random", architecture="anomalyclip_tiny", image_size=28)
    detector = Detector(load_anomalyclip(spec))
    samples = read_folder(_folder(tmp_path / "data"))
    rep = eval_api.evaluate_samples(detector, samples, tmp_path / "o", eval_api.EvalOptions(progress=False))
    assert not rep.smoke and MARK not in rep.to_text()
    payload = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert payload["smoke_run"] is False and payload["note"] == ""
    assert MARK not in (tmp_path / "o" / "metrics.md").read_text()
    assert {r["smoke_run"] for r in _rows(tmp_path / "o" / "scores.csv")} == {"False"}


@pytest.mark.parametrize(
    ("spec", "random"),
    [
        (ModelSpec(), False),
        (ModelSpec(prompts="runs/liver/prompt_learner.json", clip="clip_vitl14_336.openai"), False),
        (ModelSpec(clip="random"), True),
        (ModelSpec(prompts=None), True),
        (ModelSpec(prompts="random"), True),
    ],
)
def test_is_random_weights(spec: ModelSpec, random: bool) -> None:
    assert is_random_weights(spec) is random


def _volume(path: Path, arr: np.ndarray) -> None:
    # k runs inferior -> superior in RAS order reversed (negative k spacing): the stored voxel
    # order differs from the canonical one, so the test tells the two apart
    nib.save(nib.Nifti1Image(arr, np.diag([0.8, 0.8, -2.5, 1.0])), str(path))


def test_volume_scores_name_the_slice_in_stored_voxel_order(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    ct = rng.normal(40, 10, (24, 20, 6)).astype(np.float32)
    ct[4:10, 2:6, 1:3] = 300.0
    mask = np.zeros(ct.shape, np.uint8)
    mask[4:10, 2:6, 1:3] = 1  # stored slices k = 1 and 2
    _volume(tmp_path / "ct1.nii.gz", ct)
    _volume(tmp_path / "ct1_mask.nii.gz", mask)
    _volume(tmp_path / "ct2.nii.gz", rng.normal(40, 10, (24, 20, 4)).astype(np.float32))
    (tmp_path / "cases.csv").write_text(
        "image,mask,label,class\nct1.nii.gz,ct1_mask.nii.gz,,liver\nct2.nii.gz,,normal,liver\n"
    )
    out = tmp_path / "out"
    args = ["evaluate", str(tmp_path / "cases.csv"), "--dataset-kind", "volumes", "-o", str(out)]
    assert main([*args, "--window", "-160", "240", *TINY_ARGS]) == 0
    rows = _rows(out / "scores.csv")
    assert list(rows[0]) == [*SCORE_COLUMNS, "slice_index", "smoke_run"]  # new columns last
    by_volume: dict[str, list[tuple[int, int]]] = {}
    for r in rows:
        by_volume.setdefault(Path(r["image"]).name, []).append((int(r["slice_index"]), int(r["label"])))
    assert sorted(by_volume["ct1.nii.gz"]) == [(0, 0), (1, 1), (2, 1), (3, 0), (4, 0), (5, 0)]
    assert sorted(i for i, _ in by_volume["ct2.nii.gz"]) == [0, 1, 2, 3]


def test_image_scores_have_an_empty_slice_index(image_run: tuple[Path, str]) -> None:
    rows = _rows(image_run[0] / "scores.csv")
    assert list(rows[0]) == [*SCORE_COLUMNS, "slice_index", "smoke_run"]  # one layout for every kind
    assert len(rows) == 6 and {r["slice_index"] for r in rows} == {""}
