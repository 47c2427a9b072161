"""evaluate/benchmark end to end with the tiny random model, on tiny datasets in each layout."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import average_precision_score, roc_auc_score

from medzsad.cli import main
from medzsad.datasets import read_benchmark
from medzsad.eval import api as eval_api
from medzsad.eval.paper import PAPER_TABLE2
from medzsad.model.inference import Detector
from medzsad.weights.model_loading import ModelSpec, load_anomalyclip

TINY = ModelSpec(prompts=None, clip="random", architecture="anomalyclip_tiny", image_size=28, seed=0)
TINY_ARGS = [
    "--prompts",
    "none",
    "--clip",
    "random",
    "--architecture",
    "anomalyclip_tiny",
    "--image-size",
    "28",
]


def _img(path: Path, seed: int, mask: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    if mask:
        arr = np.zeros((20, 20), np.uint8)
        r, c = rng.integers(0, 12, 2)
        arr[r : r + 6, c : c + 6] = 255
        Image.fromarray(arr).save(path)
    else:
        Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(path)


def _write_layout(name: str, root: Path) -> None:
    if name == "headct":
        for i in range(4):
            _img(root / "head_ct" / f"{i:03d}.png", i)
        (root / "labels.csv").write_text("id, hemorrhage\n0,0\n1,1\n2,0\n3,1\n")
    elif name in ("brainmri", "br35h"):
        for i in range(2):
            _img(root / "yes" / f"y{i}.jpg", i)
            _img(root / "no" / f"n{i}.jpg", 10 + i)
    elif name == "covid":
        for i in range(2):
            _img(root / "COVID" / "images" / f"COVID-{i}.png", i)
            _img(root / "Normal" / "images" / f"Normal-{i}.png", 10 + i)
    elif name == "isic":
        for i in range(3):
            _img(root / "ISBI2016_ISIC_Part1_Test_Data" / f"ISIC_{i}.jpg", i)
            _img(root / "ISBI2016_ISIC_Part1_Test_GroundTruth" / f"ISIC_{i}_Segmentation.png", i, mask=True)
    else:
        img_dir, mask_dir = ("test-image", "test-mask") if name == "tn3k" else ("images", "masks")
        for i in range(3):
            _img(root / img_dir / f"{i}.png", i)
            _img(root / mask_dir / f"{i}.png", i, mask=True)


@pytest.fixture(scope="module")
def tiny_detector() -> Detector:
    return Detector(load_anomalyclip(TINY))


@pytest.mark.parametrize("name", sorted(PAPER_TABLE2))
def test_benchmark_on_tiny_dataset_in_each_layout(name: str, tmp_path: Path, tiny_detector: Detector) -> None:
    _write_layout(name, tmp_path)
    samples = read_benchmark(name, tmp_path)
    report = eval_api.benchmark_samples(
        name, tiny_detector, samples, eval_api.EvalOptions(batch_size=3, progress=False)
    )
    paper = PAPER_TABLE2[name]
    assert report.n_images == len(samples)
    assert report.table.columns == paper.columns
    # our numbers are the metric definitions applied to the detector's outputs
    x = [tiny_detector.score(_batch(tiny_detector, [s])) for s in samples]
    if paper.level == "image":
        labels = [s.label for s in samples]
        scores = [float(r.image_scores[0]) for r in x]
        assert report.ours[0] == pytest.approx(roc_auc_score(labels, scores), abs=1e-9)
        assert report.ours[1] == pytest.approx(average_precision_score(labels, scores), abs=1e-9)
    else:
        assert 0.0 <= report.ours[0] <= 1.0 and (math.isnan(report.ours[1]) or 0.0 <= report.ours[1] <= 1.0)
    text = report.to_text()
    assert paper.title in text and f"{paper.values[0]:.1f}" in text and f"{paper.values[1]:.1f}" in text


def _batch(det: Detector, samples):
    from medzsad.datasets import SampleDataset

    ds = SampleDataset(samples, det.image_size, det.mean, det.std)
    return ds[0]["image"][None]


def test_benchmark_cli_prints_ours_beside_paper(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_layout("kvasir", tmp_path / "kvasir")
    code = main(
        [
            "benchmark",
            "--dataset",
            "kvasir",
            str(tmp_path / "kvasir"),
            "-o",
            str(tmp_path / "out"),
            *TINY_ARGS,
            "--no-progress",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "Kvasir" in out and "| pixel AUROC |" in out and "78.9" in out and "45.6" in out
    payload = json.loads((tmp_path / "out" / "benchmark_kvasir.json").read_text())
    assert payload["paper"] == [78.9, 45.6]
    # ours in the paper's unit (a walk-through found fractions beside percentages), and random
    # weights marked in the terminal and the files, with the weights that were used
    assert payload["unit"] == "percent" and all(0 <= v <= 100 for v in payload["ours"] if v is not None)
    mean = payload["table"]["mean"][payload["metrics"][0]]
    assert payload["ours"][0] == pytest.approx(mean * 100, abs=1e-3)
    assert payload["smoke_run"] is True and "SMOKE RUN" in out
    assert payload["weights"]["clip"] == "random"


def test_evaluate_writes_table_plots_and_operating_point(tmp_path: Path, tiny_detector: Detector) -> None:
    _write_layout("brainmri", tmp_path / "data")
    for i in range(2):
        _img(tmp_path / "data" / "masks" / f"y{i}.png", i, mask=True)
    from medzsad.datasets import read_folder

    samples = read_folder(tmp_path / "data", class_name="brain")
    rep = eval_api.evaluate_samples(
        tiny_detector, samples, tmp_path / "out", eval_api.EvalOptions(progress=False)
    )
    names = {p.name for p in rep.files}
    assert {
        "metrics.md",
        "metrics.csv",
        "metrics.json",
        "scores.csv",
        "roc.png",
        "pr.png",
        "histogram.png",
    } <= names
    for png in ("roc.png", "pr.png", "histogram.png"):
        assert (tmp_path / "out" / png).read_bytes()[:4] == b"\x89PNG"
    assert rep.level == "image" and rep.operating_point.method == "f1"
    data = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert data["operating_point"]["threshold"] == rep.operating_point.threshold
    assert not math.isnan(rep.table.value("brain", "pixel_auroc"))
    assert "operating point (image level, f1)" in rep.to_text()


def test_evaluate_cli_on_mvtec_layout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "mvtec"
    for cls in ("bottle", "wood"):
        for i in range(2):
            _img(root / cls / "test" / "good" / f"00{i}.png", i)
            _img(root / cls / "test" / "crack" / f"00{i}.png", 5 + i)
            _img(root / cls / "ground_truth" / "crack" / f"00{i}_mask.png", i, mask=True)
    code = main(["evaluate", str(root), "-o", str(tmp_path / "out"), *TINY_ARGS, "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0
    assert "| bottle | 4 | 2 |" in out and "| wood | 4 | 2 |" in out and "| mean | 8 | 4 |" in out
    assert (tmp_path / "out" / "roc.png").is_file()


def test_evaluate_cli_missing_weights_is_model_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write_layout("brainmri", tmp_path / "data")
    code = main(["evaluate", str(tmp_path / "data"), "--prompts", str(tmp_path / "nope.pth")])
    assert code == 5
    assert "nope.pth" in capsys.readouterr().err


def test_missing_registry_weights_name_the_fix(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("MEDZSAD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    _write_layout("brainmri", tmp_path / "data")
    code = main(["benchmark", "--dataset", "brainmri", str(tmp_path / "data"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 5
    assert "anomalyclip_vitl14_336.mvtec" in err and "medzsad weights" in err
