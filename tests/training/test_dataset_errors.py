"""What ``train`` and ``evaluate`` say about a bad dataset: one line naming the file, before the model.

Tiny MVTec and folder layouts of 64 x 64 PNGs, the tiny random model, the real command line.
"""

from __future__ import annotations

import logging
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medzsad.cli import EXIT_INPUT, EXIT_MODEL, EXIT_OK, main
from medzsad.datasets import SampleDataset, open_dataset, read_folder, read_mvtec
from medzsad.datasets.samples import Sample
from medzsad.errors import ImageError, InputError, ModelError
from medzsad.training import api as train_api

DOCS = Path(__file__).resolve().parents[2] / "docs" / "training.md"
TINY_TRAIN = "--clip random --architecture anomalyclip_tiny --image-size 28 --epochs 1 --no-progress"
TINY_EVAL = "--clip random --prompts random --architecture anomalyclip_tiny --image-size 28 --no-progress"
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def _png(path: Path, size_wh: tuple[int, int] = (64, 64), seed: int = 0, mask: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    w, h = size_wh
    if mask:
        arr = np.zeros((h, w), np.uint8)
        arr[h // 4 : h // 2, w // 4 : w // 2] = 255
    else:
        arr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path)
    return path


def _mvtec(root: Path) -> Path:
    cls = root / "bottle"
    for i in range(3):
        _png(cls / "test" / "good" / f"{i:03d}.png", seed=i)
        _png(cls / "test" / "crack" / f"{i:03d}.png", seed=10 + i)
        _png(cls / "ground_truth" / "crack" / f"{i:03d}_mask.png", mask=True)
    return root


def _folder(root: Path) -> Path:
    for i in range(3):
        _png(root / "normal" / f"n{i}.png", seed=i)
        _png(root / "abnormal" / f"a{i}.png", seed=10 + i)
        _png(root / "masks" / f"a{i}.png", mask=True)
    return root


def _run(command: str, data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], *extra: str):
    """Run ``medzsad train|evaluate`` on ``data`` with the tiny model; (exit code, stderr lines)."""
    flags = TINY_TRAIN if command == "train" else TINY_EVAL
    argv = [command, str(data), "-o", str(tmp_path / f"out_{command}"), *shlex.split(flags), *extra]
    code = main(argv)
    err = capsys.readouterr().err
    return code, [line for line in err.splitlines() if line.strip()]


# ---- 1. an error in a data-loading worker is the same one line as without workers -------------------


@pytest.mark.parametrize("command", ["train", "evaluate"])
@pytest.mark.parametrize("layout", ["mvtec", "folder"])
def test_worker_error_is_one_line_naming_the_file(command, layout, tmp_path, capsys) -> None:
    data = _mvtec(tmp_path / "d") if layout == "mvtec" else _folder(tmp_path / "d")
    bad = data / "bottle" / "test" / "good" / "001.png" if layout == "mvtec" else data / "normal" / "n1.png"
    bad.write_bytes(b"not a png")
    code, lines = _run(command, data, tmp_path, capsys, "--workers", "1")
    assert code == EXIT_INPUT
    assert lines == [f"medzsad: error: {bad}: cannot read image: cannot identify image file '{bad}'"]
    assert (code, lines) == _run(command, data, tmp_path, capsys, "--workers", "0")


def test_worker_traceback_only_with_vv(tmp_path, capsys, caplog) -> None:
    data = _folder(tmp_path / "d")
    (data / "normal" / "n1.png").write_bytes(b"not a png")
    caplog.set_level(logging.DEBUG)
    code, lines = _run("evaluate", data, tmp_path, capsys, "--workers", "1", "-vv")
    assert code == EXIT_INPUT and lines[-1].startswith("medzsad: error: ") and "n1.png" in lines[-1]
    assert "data-loading worker traceback" in caplog.text and "in load_image" in caplog.text


# ---- 2. a mask of another size than its image ---------------------------------------------------------


def test_mvtec_mask_of_another_size_is_an_image_error(tmp_path) -> None:
    data = _mvtec(tmp_path)
    mask = _png(data / "bottle" / "ground_truth" / "crack" / "002_mask.png", (48, 32), mask=True)
    with pytest.raises(ImageError, match=re.escape(f"{mask}: mask is 48x32 px")) as e:
        read_mvtec(data)
    assert f"{data / 'bottle' / 'test' / 'crack' / '002.png'} is 64x64 px" in str(e.value)


def test_folder_mask_of_another_size_is_an_image_error(tmp_path) -> None:
    data = _folder(tmp_path)
    mask = _png(data / "masks" / "a1.png", (90, 20), mask=True)
    with pytest.raises(ImageError, match=re.escape(f"{mask}: mask is 90x20 px")):
        read_folder(data)


def test_sample_dataset_refuses_a_mask_of_another_size(tmp_path) -> None:
    image, mask = _png(tmp_path / "a.png"), _png(tmp_path / "a_mask.png", (32, 32), mask=True)
    with pytest.raises(ImageError, match="32x32 px"):
        SampleDataset([Sample(image, mask, 1, "x")], 28, MEAN, STD)[0]


@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_commands_stop_on_a_mask_of_another_size(command, tmp_path, capsys) -> None:
    data = _folder(tmp_path / "d")
    mask = _png(data / "masks" / "a1.png", (90, 20), mask=True)
    code, lines = _run(command, data, tmp_path, capsys)
    assert code == EXIT_INPUT and len(lines) == 1
    assert lines[0].startswith(f"medzsad: error: {mask}: mask is 90x20 px") and "64x64" in lines[0]
    assert not (tmp_path / f"out_{command}" / "metrics.csv").exists()


# ---- 3. anomalous images without a mask: the rule per layout, as docs/training.md says ----------------


def test_missing_mask_rule_per_layout_matches_the_docs(tmp_path) -> None:
    mvtec = _mvtec(tmp_path / "m")
    (mvtec / "bottle" / "ground_truth" / "crack" / "001_mask.png").unlink()
    with pytest.raises(InputError, match="001.png") as e:
        read_mvtec(mvtec)
    assert "ships a mask for every defect image" in str(e.value) and "--dataset-kind folder" in str(e.value)
    folder = _folder(tmp_path / "f")
    (folder / "masks" / "a1.png").unlink()
    assert [s.mask_known for s in read_folder(folder) if s.image.name == "a1.png"] == [False]
    rules = DOCS.read_text().split("**Anomalous images without a mask**", 1)[1].split("\n\n", 2)[1]
    assert "| `mvtec` | an error" in rules and "| `visa`, `folder`, `csv` | allowed" in rules


# ---- 4. an empty dataset names its folder and layout --------------------------------------------------


def test_empty_mvtec_category_names_the_folder(tmp_path) -> None:
    (tmp_path / "bottle" / "test" / "good").mkdir(parents=True)
    (tmp_path / "bottle" / "ground_truth").mkdir()
    expected = f"MVTec layout {tmp_path}: no images in {tmp_path / 'bottle' / 'test'}"
    with pytest.raises(InputError, match=re.escape(expected)):
        open_dataset(tmp_path)


def test_empty_folder_and_csv_name_the_path(tmp_path) -> None:
    (tmp_path / "f" / "normal").mkdir(parents=True)
    with pytest.raises(InputError, match=re.escape(f"folder layout {tmp_path / 'f'}: no images")):
        open_dataset(tmp_path / "f")
    csv_file = tmp_path / "list.csv"
    csv_file.write_text("image,label\n")
    with pytest.raises(InputError, match=re.escape(f"{csv_file}: no images in this csv dataset")):
        open_dataset(csv_file)


# ---- 5. offline training: fail fast, the smoke flags, the documented commands -------------------------


def _model_must_not_be_built(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(spec):
        raise AssertionError("the model was built before the dataset was checked")

    monkeypatch.setattr(train_api, "load_anomalyclip", refuse)


def test_train_checks_the_dataset_before_building_the_model(tmp_path, monkeypatch) -> None:
    _model_must_not_be_built(monkeypatch)
    (tmp_path / "empty" / "bottle" / "test" / "good").mkdir(parents=True)
    (tmp_path / "empty" / "bottle" / "ground_truth").mkdir()
    with pytest.raises(InputError, match="MVTec layout .*empty: no images"):
        train_api.train(tmp_path / "empty", tmp_path / "out")
    data = _folder(tmp_path / "d")
    _png(data / "masks" / "a1.png", (90, 20), mask=True)
    with pytest.raises(ImageError, match="90x20"):
        train_api.train(data, tmp_path / "out")


def test_missing_weights_error_names_the_smoke_flags(tmp_path, capsys, monkeypatch) -> None:
    def missing(spec):
        raise ModelError("weights 'clip_vitl14_336.openai' are not on this machine.")

    monkeypatch.setattr(train_api, "load_anomalyclip", missing)
    code = main(["train", str(_folder(tmp_path / "d")), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == EXIT_MODEL and "--clip random --architecture anomalyclip_tiny" in err


def test_documented_smoke_commands_run(tmp_path, capsys) -> None:
    section = DOCS.read_text().split("### Offline smoke run (no weights)", 1)[1]
    commands = re.findall(r"^medzsad (?:train|evaluate) DATA .*$", section, flags=re.MULTILINE)
    assert [c.split()[1] for c in commands] == ["train", "evaluate"]
    data = _mvtec(tmp_path / "d")
    for command in commands:
        argv = shlex.split(command.replace("DATA", str(data)))[1:]
        argv = [str(tmp_path / a) if a.startswith(("runs/", "results/")) else a for a in argv]
        assert main([*argv, "--image-size", "28", "--no-progress"]) == EXIT_OK, capsys.readouterr().err
    assert (tmp_path / "runs" / "smoke" / "prompt_learner.safetensors").is_file()
    assert (tmp_path / "results" / "smoke" / "metrics.json").is_file()


def test_evaluate_checks_the_dataset_before_building_the_model(tmp_path, monkeypatch) -> None:
    from medzsad.eval import api as eval_api

    def refuse(model, run):
        raise AssertionError("the model was built before the dataset was checked")

    monkeypatch.setattr(eval_api, "_detector", refuse)
    (tmp_path / "empty" / "bottle" / "test" / "good").mkdir(parents=True)
    (tmp_path / "empty" / "bottle" / "ground_truth").mkdir()
    with pytest.raises(InputError, match="MVTec layout .*empty: no images"):
        eval_api.evaluate(tmp_path / "empty", kind="mvtec", out_dir=tmp_path / "out")
