"""Each paper benchmark reader on a tiny dataset written in its public release's layout."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from medzsad.datasets import BENCHMARK_READERS, open_dataset, read_benchmark, summarise
from medzsad.errors import InputError


def test_every_paper_benchmark_has_a_reader() -> None:
    assert set(BENCHMARK_READERS) == {
        "headct",
        "brainmri",
        "br35h",
        "covid",
        "isic",
        "clinicdb",
        "colondb",
        "kvasir",
        "endo",
        "tn3k",
    }


def test_headct_kaggle_layout(tmp_path: Path, files: SimpleNamespace) -> None:
    for i in range(4):
        files.image(tmp_path / "head_ct" / "head_ct" / f"{i:03d}.png", i, mode="L")
    (tmp_path / "labels.csv").write_text("id, hemorrhage\n0,1\n1,1\n2,0\n3,0\n")
    s = read_benchmark("headct", tmp_path)
    assert [(x.image.name, x.label) for x in s] == [
        ("000.png", 1),
        ("001.png", 1),
        ("002.png", 0),
        ("003.png", 0),
    ]
    assert summarise(s) == {"brain": (4, 2)}
    assert all(x.mask is None for x in s)
    (tmp_path / "labels.csv").write_text("id, hemorrhage\n0,1\n7,0\n")
    with pytest.raises(InputError, match="007.png"):
        read_benchmark("headct", tmp_path)


def test_headct_reference_prepared_layout(tmp_path: Path, files: SimpleNamespace) -> None:
    files.image(tmp_path / "brain" / "test" / "good" / "a.png")
    files.image(tmp_path / "brain" / "test" / "Ungood" / "b.png")
    s = read_benchmark("headct", tmp_path)
    assert [(x.image.name, x.label) for x in s] == [("b.png", 1), ("a.png", 0)]


@pytest.mark.parametrize("nested", [True, False])
def test_brainmri_layout(tmp_path: Path, files: SimpleNamespace, nested: bool) -> None:
    base = tmp_path / "brain_tumor_dataset" if nested else tmp_path
    files.image(base / "yes" / "Y1.jpg")
    files.image(base / "yes" / "Y2.JPG")
    files.image(base / "no" / "1 no.jpeg")
    s = read_benchmark("brainmri", tmp_path)
    assert summarise(s) == {"brain": (3, 2)}
    assert {x.image.name: x.label for x in s} == {"Y1.jpg": 1, "Y2.JPG": 1, "1 no.jpeg": 0}


def test_br35h_ignores_unlabelled_pred(tmp_path: Path, files: SimpleNamespace) -> None:
    files.image(tmp_path / "yes" / "y0.jpg")
    files.image(tmp_path / "no" / "no0.jpg")
    files.image(tmp_path / "pred" / "pred0.jpg")
    s = read_benchmark("br35h", tmp_path)
    assert sorted((x.image.name, x.label) for x in s) == [("no0.jpg", 0), ("y0.jpg", 1)]


def test_br35h_without_normals_is_an_error(tmp_path: Path, files: SimpleNamespace) -> None:
    files.image(tmp_path / "yes" / "y0.jpg")
    with pytest.raises(InputError, match="normal"):
        read_benchmark("br35h", tmp_path)


@pytest.mark.parametrize("v4", [False, True])
def test_covid_layouts(tmp_path: Path, files: SimpleNamespace, v4: bool) -> None:
    sub = "images" if v4 else ""
    files.image(tmp_path / ("Normal" if v4 else "NORMAL") / sub / "Normal-1.png")
    files.image(tmp_path / "COVID" / sub / "COVID-1.png")
    files.image(tmp_path / "Viral Pneumonia" / sub / "Viral Pneumonia-1.png")
    if v4:
        files.mask(tmp_path / "COVID" / "masks" / "COVID-1.png")  # lung masks: not anomaly masks
    s = read_benchmark("covid", tmp_path)
    assert sorted((x.image.name, x.label, x.class_name) for x in s) == [
        ("COVID-1.png", 1, "chest"),
        ("Normal-1.png", 0, "chest"),
    ]
    assert all(x.mask is None for x in s)


def test_isic_public_layout(tmp_path: Path, files: SimpleNamespace) -> None:
    for stem in ("ISIC_0000003", "ISIC_0000012"):
        files.image(tmp_path / "ISBI2016_ISIC_Part1_Test_Data" / f"{stem}.jpg")
        files.mask(tmp_path / "ISBI2016_ISIC_Part1_Test_GroundTruth" / f"{stem}_Segmentation.png")
    s = read_benchmark("isic", tmp_path)
    assert [(x.image.stem, x.mask.stem, x.label, x.class_name) for x in s] == [
        ("ISIC_0000003", "ISIC_0000003_Segmentation", 1, "skin"),
        ("ISIC_0000012", "ISIC_0000012_Segmentation", 1, "skin"),
    ]


def test_isic_reference_prepared_layout(tmp_path: Path, files: SimpleNamespace) -> None:
    files.image(tmp_path / "skin" / "test" / "lesion" / "ISIC_1.jpg")
    files.mask(tmp_path / "skin" / "ISBI2016_ISIC_Part1_Test_GroundTruth" / "ISIC_1_Segmentation.png")
    s = read_benchmark("isic", tmp_path)
    assert [x.mask.name for x in s] == ["ISIC_1_Segmentation.png"]


@pytest.mark.parametrize(
    ("name", "img_dir", "mask_dir", "cls", "suffix"),
    [
        ("clinicdb", "images", "masks", "colon", ".png"),
        ("clinicdb", "Original", "Ground Truth", "colon", ".tif"),
        ("colondb", "images", "masks", "colon", ".png"),
        ("kvasir", "images", "masks", "colon", ".jpg"),
        ("endo", "images", "masks", "colon", ".jpg"),
        ("tn3k", "test-image", "test-mask", "thyroid", ".jpg"),
    ],
)
def test_segmentation_benchmarks(
    tmp_path: Path, files: SimpleNamespace, name: str, img_dir: str, mask_dir: str, cls: str, suffix: str
) -> None:
    # names chosen so that sorted-position pairing would be wrong if a stray mask sorted first
    for stem in ("10", "2", "cju0qkwl35piu0993l0dewei2"):
        files.image(tmp_path / img_dir / f"{stem}{suffix}")
        files.mask(tmp_path / mask_dir / f"{stem}{suffix if suffix != '.jpg' else '.png'}")
    files.mask(tmp_path / mask_dir / "0-unused.png")
    s = read_benchmark(name, tmp_path)
    assert summarise(s) == {cls: (3, 3)}
    assert all(x.mask is not None and x.mask.stem == x.image.stem for x in s)
    assert open_dataset(tmp_path, kind=name) == s


def test_segmentation_benchmark_missing_mask(tmp_path: Path, files: SimpleNamespace) -> None:
    files.image(tmp_path / "images" / "1.png")
    files.image(tmp_path / "images" / "2.png")
    files.mask(tmp_path / "masks" / "1.png")
    with pytest.raises(InputError, match=r"2\.png"):
        read_benchmark("kvasir", tmp_path)


def test_unknown_benchmark(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="headct"):
        read_benchmark("mnist", tmp_path)
