"""One entry point to read any supported dataset kind by name."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from torch.utils.data import Dataset

from medzsad.datasets.benchmarks import BENCHMARK_READERS, read_benchmark
from medzsad.datasets.images import SampleDataset
from medzsad.datasets.layouts import read_csv, read_folder, read_mvtec, read_visa
from medzsad.datasets.samples import Sample
from medzsad.datasets.volumes import VolumeSliceDataset, read_volume_cases
from medzsad.errors import ConfigError, InputError

__all__ = ["DATASET_KINDS", "LabelledData", "open_dataset", "open_labelled"]

#: Kinds accepted by :func:`open_labelled` ("auto" guesses from the path; "volumes" is a CSV of
#: volume files with mask volumes, see :mod:`medzsad.datasets.volumes`).
DATASET_KINDS = ("auto", "mvtec", "visa", "folder", "csv", "volumes", *sorted(BENCHMARK_READERS))


@dataclass(frozen=True)
class LabelledData:
    """Samples and the torch dataset that loads them (items as :class:`SampleDataset`'s)."""

    samples: list[Sample]
    dataset: Dataset


def _guess_kind(path: Path) -> str:
    if path.is_file() and path.suffix.lower() == ".csv":
        return "csv"
    if (path / "split_csv").is_dir():
        return "visa"
    if path.is_dir() and any((p / "test").is_dir() and (p / "ground_truth").is_dir() for p in path.iterdir()):
        return "mvtec"
    if path.is_dir():
        return "folder"
    raise InputError(f"{path}: not a folder or CSV file; give --dataset-kind explicitly")


def open_dataset(
    path: Path, kind: str = "auto", split: str = "test", classes: Sequence[str] | None = None
) -> list[Sample]:
    """Read the samples of a dataset.

    Args:
        path: dataset root folder (or CSV file for ``csv``).
        kind: one of :data:`DATASET_KINDS`; ``auto`` recognises VisA (``split_csv/``), MVTec
            (``<class>/test`` + ``<class>/ground_truth``), a CSV file, else a labelled folder.
        split: ``train`` or ``test`` for MVTec/VisA.
        classes: restrict MVTec/VisA to these classes.

    Raises:
        ConfigError: unknown kind.
        InputError: the layout does not match, or it holds no images (the message names the path).
        ImageError: a mask whose size differs from its image's.
    """
    path = Path(path)
    if kind == "volumes":
        raise ConfigError("volume datasets need the model's input size: use open_labelled()")
    if kind not in DATASET_KINDS:
        raise ConfigError(f"unknown dataset kind {kind!r}; choose one of {list(DATASET_KINDS)}")
    if kind == "auto":
        kind = _guess_kind(path)
    samples = _read(path, kind, split, classes)
    if not samples:
        raise InputError(
            f"{path}: no images in this {kind} dataset (split {split!r}"
            + (f", classes {list(classes)})" if classes else ")")
            + "; check the path and its layout (docs/training.md)"
        )
    return samples


def _read(path: Path, kind: str, split: str, classes: Sequence[str] | None) -> list[Sample]:
    if kind == "mvtec":
        return read_mvtec(path, split, classes)
    if kind == "visa":
        return read_visa(path, split, classes)
    if kind == "csv":
        return read_csv(path)
    if kind == "folder":
        return read_folder(path)
    return read_benchmark(kind, path)


def open_labelled(
    path: Path,
    kind: str,
    image_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    split: str = "test",
    classes: Sequence[str] | None = None,
    window: tuple[float, float] | None = None,
) -> LabelledData:
    """Read a dataset of any kind, 2D or ``volumes``, with the loader for a model's input.

    Args:
        path: dataset root or CSV file.
        kind: one of :data:`DATASET_KINDS`.
        image_size: model input side ``S``.
        mean: backbone normalisation mean (3,).
        std: backbone normalisation std (3,).
        split: MVTec/VisA split.
        classes: MVTec/VisA classes to keep.
        window: intensity window of ``volumes`` slices (default per-volume percentiles).
    """
    if kind == "volumes":
        ds = VolumeSliceDataset(read_volume_cases(Path(path)), image_size, mean, std, window=window)
        return LabelledData(ds.samples, ds)
    samples = open_dataset(path, kind, split, classes)
    return LabelledData(samples, SampleDataset(samples, image_size, mean, std))
