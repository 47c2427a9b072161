"""Data makers and readers: labelled 2D datasets, volume cases and the demo cohort writer.

Labelled 2D datasets (MVTec AD, VisA, folders, CSV, benchmarks) for training and evaluation,
volume cases, and the demo cohort (:mod:`~medzsad.datasets.demo_data`).

Names are resolved lazily (PEP 562), so ``medzsad demo-data`` does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "BENCHMARK_READERS": "medzsad.datasets.benchmarks",
    "read_benchmark": "medzsad.datasets.benchmarks",
    "SampleDataset": "medzsad.datasets.images",
    "collate_samples": "medzsad.datasets.images",
    "load_image": "medzsad.datasets.images",
    "load_mask": "medzsad.datasets.images",
    "read_csv": "medzsad.datasets.layouts",
    "read_folder": "medzsad.datasets.layouts",
    "read_mvtec": "medzsad.datasets.layouts",
    "read_visa": "medzsad.datasets.layouts",
    "DATASET_KINDS": "medzsad.datasets.open",
    "LabelledData": "medzsad.datasets.open",
    "open_dataset": "medzsad.datasets.open",
    "open_labelled": "medzsad.datasets.open",
    "Sample": "medzsad.datasets.samples",
    "summarise": "medzsad.datasets.samples",
    "VolumeCase": "medzsad.datasets.volumes",
    "VolumeSliceDataset": "medzsad.datasets.volumes",
    "read_volume_cases": "medzsad.datasets.volumes",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    try:
        module = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'medzsad.datasets' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
