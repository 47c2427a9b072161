from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms

from medzsad.datasets import (
    SampleDataset,
    collate_samples,
    load_image,
    load_mask,
    open_dataset,
    read_csv,
    read_folder,
    read_mvtec,
    read_visa,
    summarise,
)
from medzsad.errors import ConfigError, InputError

MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)


def _mvtec(root: Path, files: SimpleNamespace) -> None:
    for cls in ("bottle", "wood"):
        files.image(root / cls / "train" / "good" / "000.png")
        files.image(root / cls / "test" / "good" / "000.png", 1)
        files.image(root / cls / "test" / "good" / "001.png", 2)
        for i in range(2):
            files.image(root / cls / "test" / "crack" / f"00{i}.png", 3 + i)
            files.mask(root / cls / "ground_truth" / "crack" / f"00{i}_mask.png")


def test_mvtec_layout(tmp_path: Path, files: SimpleNamespace) -> None:
    _mvtec(tmp_path, files)
    s = read_mvtec(tmp_path)
    assert summarise(s) == {"bottle": (4, 2), "wood": (4, 2)}
    anom = [x for x in s if x.label == 1]
    assert all(x.mask is not None and x.mask.name == x.image.stem + "_mask.png" for x in anom)
    assert all(x.defect == "crack" for x in anom)
    assert all(x.mask is None for x in s if x.label == 0)
    assert len(read_mvtec(tmp_path, split="train", classes=["wood"])) == 1
    assert open_dataset(tmp_path) == s  # auto-detected
    with pytest.raises(ConfigError, match="carpet"):
        read_mvtec(tmp_path, classes=["carpet"])


def test_mvtec_missing_mask_is_an_error(tmp_path: Path, files: SimpleNamespace) -> None:
    _mvtec(tmp_path, files)
    (tmp_path / "wood" / "ground_truth" / "crack" / "001_mask.png").unlink()
    with pytest.raises(InputError, match="001.png"):
        read_mvtec(tmp_path)


def test_visa_layout(tmp_path: Path, files: SimpleNamespace) -> None:
    rows = ["object,split,label,image,mask"]
    for obj in ("candle", "pcb1"):
        for split in ("train", "test"):
            files.image(tmp_path / obj / "Data" / "Images" / "Normal" / f"{split}0.JPG")
            rows.append(f"{obj},{split},normal,{obj}/Data/Images/Normal/{split}0.JPG,")
        files.image(tmp_path / obj / "Data" / "Images" / "Anomaly" / "a0.JPG")
        files.mask(tmp_path / obj / "Data" / "Masks" / "Anomaly" / "a0.png")
        rows.append(f"{obj},test,anomaly,{obj}/Data/Images/Anomaly/a0.JPG,{obj}/Data/Masks/Anomaly/a0.png")
    (tmp_path / "split_csv").mkdir()
    (tmp_path / "split_csv" / "1cls.csv").write_text("\n".join(rows) + "\n")
    s = read_visa(tmp_path)
    assert summarise(s) == {"candle": (2, 1), "pcb1": (2, 1)}
    assert [x.mask.name for x in s if x.label] == ["a0.png", "a0.png"]
    assert len(read_visa(tmp_path, split="train", classes=["pcb1"])) == 1
    assert open_dataset(tmp_path, split="train") == read_visa(tmp_path, split="train")
    with pytest.raises(ConfigError):
        read_visa(tmp_path, classes=["fryum"])


def test_folder_layout_with_optional_masks(tmp_path: Path, files: SimpleNamespace) -> None:
    files.image(tmp_path / "normal" / "n0.png")
    files.image(tmp_path / "abnormal" / "a0.png")
    files.image(tmp_path / "abnormal" / "a1.png")
    files.mask(tmp_path / "masks" / "a0_mask.png")
    s = read_folder(tmp_path, class_name="liver")
    assert [(x.image.name, x.label, x.mask.name if x.mask else None) for x in s] == [
        ("a0.png", 1, "a0_mask.png"),
        ("a1.png", 1, None),
        ("n0.png", 0, None),
    ]
    assert [x.mask_known for x in s] == [True, False, True]
    assert {x.class_name for x in s} == {"liver"}


def test_csv_list(tmp_path: Path, files: SimpleNamespace) -> None:
    files.image(tmp_path / "img" / "a.png")
    files.image(tmp_path / "img" / "b.png")
    files.mask(tmp_path / "img" / "a_seg.png")
    (tmp_path / "list.csv").write_text(
        "image,mask,label,class\nimg/a.png,img/a_seg.png,anomaly,lung\nimg/b.png,,0,\n"
    )
    s = read_csv(tmp_path / "list.csv")
    assert [(x.label, x.class_name, x.mask is not None) for x in s] == [(1, "lung", True), (0, "list", False)]
    (tmp_path / "bad.csv").write_text("image,label\nimg/a.png,maybe\n")
    with pytest.raises(InputError, match="line 2"):
        read_csv(tmp_path / "bad.csv")
    (tmp_path / "missing.csv").write_text("image,label\nimg/zzz.png,1\n")
    with pytest.raises(InputError, match="zzz.png"):
        read_csv(tmp_path / "missing.csv")


def test_load_image_matches_reference_torchvision_transform(tmp_path: Path, files: SimpleNamespace) -> None:
    p = files.image(tmp_path / "x.png", size=(37, 23))
    ref = transforms.Compose(
        [
            transforms.Resize((28, 28), interpolation=transforms.InterpolationMode.BICUBIC),
            transforms.CenterCrop(28),
            transforms.ToTensor(),
            transforms.Normalize(MEAN, STD),
        ]
    )(Image.open(p).convert("RGB"))
    ours = load_image(p, 28, MEAN, STD)
    assert ours.shape == (3, 28, 28) and ours.dtype == torch.float32
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-6)


def test_load_mask_matches_reference_target_transform(tmp_path: Path, files: SimpleNamespace) -> None:
    p = files.mask(tmp_path / "m.png", box=(3, 4, 11, 15), size=(37, 23))
    raw = np.array(Image.open(p).convert("L")) > 0
    ref = transforms.Compose([transforms.Resize((28, 28)), transforms.CenterCrop(28), transforms.ToTensor()])(
        Image.fromarray(raw.astype(np.uint8) * 255, mode="L")
    )[0]
    ref = (ref > 0.5).float()
    ours = load_mask(p, 28)
    assert torch.equal(ours, ref)
    assert ours.sum() > 0
    assert torch.equal(load_mask(None, 5), torch.zeros(5, 5))


def test_load_16bit_grey_image(tmp_path: Path, files: SimpleNamespace) -> None:
    arr = (np.arange(20 * 16, dtype=np.uint16).reshape(16, 20) * 100).astype(np.uint16)
    p = tmp_path / "ct.png"
    Image.fromarray(arr).save(p)
    x = load_image(p, 14, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    assert float(x.min()) == pytest.approx(0.0, abs=0.02) and float(x.max()) == pytest.approx(1.0, abs=0.02)
    assert torch.equal(x[0], x[1])


def test_sample_dataset_and_collate(tmp_path: Path, files: SimpleNamespace) -> None:
    _mvtec(tmp_path, files)
    ds = SampleDataset(read_mvtec(tmp_path, classes=["bottle"]), 14, MEAN, STD)
    batch = collate_samples([ds[i] for i in range(len(ds))])
    assert batch["image"].shape == (4, 3, 14, 14)
    assert batch["label"].tolist() == [1, 1, 0, 0]
    assert batch["mask"][:2].sum() > 0 and batch["mask"][2:].sum() == 0
    assert batch["mask_known"].all()
    assert batch["class_name"] == ["bottle"] * 4


def test_unreadable_image_is_input_error(tmp_path: Path, files: SimpleNamespace) -> None:
    p = tmp_path / "broken.png"
    p.write_bytes(b"not a png")
    with pytest.raises(InputError, match="broken.png"):
        load_image(p, 14, MEAN, STD)
