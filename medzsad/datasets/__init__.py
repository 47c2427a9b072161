"""Labelled 2D datasets for training prompts and evaluating: MVTec AD, VisA, folders, CSV, benchmarks."""

from medzsad.datasets.benchmarks import BENCHMARK_READERS, read_benchmark
from medzsad.datasets.images import SampleDataset, collate_samples, load_image, load_mask
from medzsad.datasets.layouts import read_csv, read_folder, read_mvtec, read_visa
from medzsad.datasets.open import DATASET_KINDS, LabelledData, open_dataset, open_labelled
from medzsad.datasets.samples import Sample, summarise
from medzsad.datasets.volumes import VolumeCase, VolumeSliceDataset, read_volume_cases

__all__ = [
    "BENCHMARK_READERS",
    "DATASET_KINDS",
    "open_dataset",
    "open_labelled",
    "LabelledData",
    "VolumeCase",
    "VolumeSliceDataset",
    "read_volume_cases",
    "Sample",
    "SampleDataset",
    "collate_samples",
    "load_image",
    "load_mask",
    "read_benchmark",
    "read_csv",
    "read_folder",
    "read_mvtec",
    "read_visa",
    "summarise",
]
