"""Fixtures of the review-output tests: a tiny shuffled CT series, its Volume, heat map and mask."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest


def load_series_lib() -> ModuleType:
    """Import ``dicom_series.py`` beside this file (tests run with ``--import-mode=importlib``)."""
    name = "medzsad_tests_dicom_series"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("dicom_series.py"))
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[name] = module
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.fixture(scope="session")
def series_lib() -> ModuleType:
    return load_series_lib()


@pytest.fixture(scope="session")
def ct_series(tmp_path_factory: pytest.TempPathFactory, series_lib: ModuleType):
    return series_lib.write_ct_series(tmp_path_factory.mktemp("ct") / "series")


@pytest.fixture(scope="session")
def ct_volume(ct_series, series_lib: ModuleType):
    return series_lib.volume_from_series(ct_series)


@pytest.fixture(scope="session")
def heat_mask(ct_volume, series_lib: ModuleType):
    return series_lib.blob_mask(ct_volume.shape_ijk)
