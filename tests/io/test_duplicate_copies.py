"""Issue 22 item 5: which copy of a duplicated slice is kept does not depend on file names.

pydicom-data holds one real CT slice twice: ``693_UNCR.dcm`` (original) and ``693_UNCI.dcm``, a
decompressed lossy copy (ImageType DERIVED, LossyImageCompression 01, a new SOPInstanceUID) and
the same pair as JPEG 2000 (``693_J2KR``/``693_J2KI``). A PACS export that holds both must give
the original whatever the names, and call them duplicates, not echoes or phases.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from real_studies import ct5n, real, restamp

from medzsad.errors import DicomError
from medzsad.io.discovery import discover
from medzsad.io.readers import load_volume
from medzsad.io.volume import Volume


def _series(folder: Path, policy: str = "warn") -> Volume:
    (study,) = discover(folder).studies
    (series,) = study.series
    return load_volume(series, policy=policy)


@pytest.mark.parametrize(
    ("original", "copy"), [("693_UNCR.dcm", "693_UNCI.dcm"), ("693_J2KR.dcm", "693_J2KI.dcm")]
)
def test_the_original_lossless_copy_wins_whatever_the_names(tmp_path: Path, original: str, copy: str) -> None:
    expected = load_volume(str(real(original)))
    for first, last in ((copy, original), (original, copy)):
        folder = tmp_path / f"{first}-first"
        folder.mkdir()
        shutil.copy(real(first), folder / "a.dcm")  # sorts first
        shutil.copy(real(last), folder / "b.dcm")
        v = _series(folder)
        assert np.array_equal(v.data, expected.data), f"{first} named first"
        assert v.source.sop_instance_uids == expected.source.sop_instance_uids
        (warning,) = v.warnings
        assert "1 duplicate copy" in warning and "1 lossy or derived" in warning
        assert "echoes" not in warning
        assert np.array_equal(_series(folder, policy="error").data, expected.data)  # not a geometry problem


def test_a_lossy_copy_of_a_whole_series_is_dropped(tmp_path: Path) -> None:
    """The real CT5N series plus a lossy copy of every slice (new UIDs), names sorting first."""
    for f in ct5n():
        restamp(f, tmp_path / "only" / f.name, "1.2.826.0.1.3680043.8.498.225")
    expected = _series(tmp_path / "only")
    rng = np.random.default_rng(5)
    for f in ct5n():
        restamp(f, tmp_path / "both" / f"z{f.name}", "1.2.826.0.1.3680043.8.498.225")
        ds = pydicom.dcmread(tmp_path / "both" / f"z{f.name}")
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
        ds.ImageType = ["DERIVED", "PRIMARY", "AXIAL"]
        ds.LossyImageCompression = "01"
        noisy = ds.pixel_array.astype(np.int32) + rng.integers(-3, 4, ds.pixel_array.shape)
        ds.PixelData = noisy.astype(ds.pixel_array.dtype).tobytes()
        ds.save_as(tmp_path / "both" / f"a{f.name}")  # the lossy copy sorts first
    v = _series(tmp_path / "both")
    assert v.shape_ijk == expected.shape_ijk == (16, 16, 5)
    assert np.array_equal(v.data, expected.data)
    assert any("5 duplicate copies" in w for w in v.warnings)


def test_echoes_at_one_position_are_still_told_apart(tmp_path: Path) -> None:
    """Two echoes (different EchoTime) share positions: not copies, a geometry problem per policy."""
    for echo, te in ((1, "10"), (2, "80")):
        for f in ct5n():
            restamp(
                f,
                tmp_path / "echoes" / f"e{echo}_{f.name}",
                "1.2.826.0.1.3680043.8.498.226",
                SOPInstanceUID=pydicom.uid.generate_uid(),
                EchoTime=te,
            )
    v = _series(tmp_path / "echoes")
    assert v.shape_ijk[2] == 5 and any("several echoes, phases or acquisitions" in w for w in v.warnings)
    with pytest.raises(DicomError, match="several echoes"):
        _series(tmp_path / "echoes", policy="error")


def test_copies_of_one_series_in_two_folders_count_each_slice_once(tmp_path: Path) -> None:
    """The same export copied twice (same SOPInstanceUIDs): 5 slices in 10 files, not 10 slices."""
    from medzsad.io.inspect import inspect_path
    from medzsad.io.series_selection import SeriesRules, select_series

    for copy in ("a", "b"):
        for f in ct5n():
            (tmp_path / copy).mkdir(exist_ok=True)
            shutil.copy(f, tmp_path / copy / f.name)
    (study,) = discover(tmp_path).studies
    (series,) = study.series
    assert (series.n_slices, series.n_instances, len(series.files)) == (5, 5, 10)
    assert _series(tmp_path).data.shape[2] == 5  # what the reader keeps, and what inspect says
    assert "5 slices in 10 files, axial" in inspect_path(tmp_path, load=False).to_text()
    # a rule on the number of slices counts slices, not copies
    assert select_series(study, SeriesRules(min_slices=6)).chosen is None
    assert select_series(study, SeriesRules(min_slices=5)).chosen == series
