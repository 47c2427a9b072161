"""Heat maps as scaled uint16 (or float32) NIfTI; configurable gzip level; uint8 masks."""

from __future__ import annotations

import gzip
import sys

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from pydantic import ValidationError

from medzsad.config import OutputConfig
from medzsad.errors import OutputError
from medzsad.report.nifti_writer import heat_to_uint16, write_heatmap, write_mask

#: Readers must get the heat back within one uint16 step (plus float32 rounding of scl_slope).
TOL = 1.01 / 65535

_C, _S = np.cos(0.3), np.sin(0.3)  # an oblique (rotated) grid with anisotropic spacing
AFFINE = np.array(
    [
        [0.0, -0.8, 0.0, 12.5],
        [0.75 * _C, 0.0, -2.5 * _S, -30.0],
        [0.75 * _S, 0.0, 2.5 * _C, 101.0],
        [0, 0, 0, 1.0],
    ]
)


def _heat(shape=(9, 11, 7), seed=0) -> np.ndarray:
    heat = np.random.default_rng(seed).random(shape)
    heat[0, 0, 0], heat[-1, -1, -1] = 0.0, 1.0  # the ends of the range
    return heat


def _sitk_geometry(img: sitk.Image) -> tuple:
    return img.GetSize(), img.GetOrigin(), img.GetSpacing(), img.GetDirection()


def test_uint16_heatmap_reads_back_as_floats_in_nibabel_and_simpleitk(tmp_path):
    heat = _heat()
    p16 = write_heatmap(tmp_path / "h16.nii.gz", heat, AFFINE)
    p32 = write_heatmap(tmp_path / "h32.nii.gz", heat, AFFINE, dtype="float32")
    img = nib.load(p16)
    assert img.get_data_dtype() == np.uint16
    slope, inter = img.dataobj.slope, img.dataobj.inter
    assert slope == pytest.approx(1 / 65535, rel=1e-7) and inter == 0
    got = img.get_fdata()
    assert np.abs(got - heat).max() <= TOL
    assert got.min() == 0.0 and abs(got.max() - 1.0) <= TOL
    assert np.abs(img.dataobj.get_unscaled() - heat * 65535).max() <= 0.51  # float32 rounding of heat
    # SimpleITK (ITK's NIfTI reader, as 3D Slicer uses) applies the scaling too
    s16, s32 = sitk.ReadImage(str(p16)), sitk.ReadImage(str(p32))
    arr = sitk.GetArrayFromImage(s16).transpose(2, 1, 0)
    assert arr.dtype.kind == "f"
    assert np.abs(arr - heat).max() <= TOL
    # geometry unchanged by the dtype
    assert _sitk_geometry(s16) == _sitk_geometry(s32)
    ref = nib.load(p32)
    np.testing.assert_array_equal(img.affine, ref.affine)
    np.testing.assert_allclose(img.affine, AFFINE, atol=1e-5)
    assert (int(img.header["sform_code"]), int(img.header["qform_code"])) == (1, 1)
    np.testing.assert_array_equal(np.asarray(ref.dataobj), heat.astype(np.float32))


def test_uint16_quantisation_clips_and_zeroes_nan():
    q = heat_to_uint16(np.array([-0.5, 0.0, 0.5 / 65535 + 1e-9, 0.25, 1.0, 7.0, np.nan]))
    np.testing.assert_array_equal(q, [0, 0, 1, 16384, 65535, 65535, 0])
    assert q.dtype == np.uint16


@pytest.mark.parametrize("level", [0, 1, 9, "fast"])
def test_compression_level_is_applied_and_lossless(tmp_path, level):
    heat = _heat((16, 16, 8), seed=1)
    p = write_heatmap(tmp_path / "h.nii.gz", heat, AFFINE, compression=level)
    raw = gzip.decompress(p.read_bytes())
    if level == 0:
        assert p.stat().st_size > len(raw)  # stored: no deflate gain
    else:
        assert p.stat().st_size < len(raw)
    np.testing.assert_array_equal(nib.load(p).dataobj.get_unscaled(), heat_to_uint16(heat))
    m = write_mask(tmp_path / "m.nii.gz", (heat > 0.5).astype(np.int32) * 2, AFFINE, compression=level)
    mask = nib.load(m)
    assert mask.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(np.asarray(mask.dataobj), (heat > 0.5) * 2)


def test_fast_level_is_faster_to_write_but_larger(tmp_path):
    """Level 9 must not be larger than level 1 (the setting reaches gzip)."""
    heat = _heat((32, 32, 16), seed=2)
    small = write_heatmap(tmp_path / "h9.nii.gz", heat, AFFINE, compression=9).stat().st_size
    big = write_heatmap(tmp_path / "h1.nii.gz", heat, AFFINE, compression=1).stat().st_size
    assert small < big


def test_fast_is_isal_gzip_and_falls_back_to_zlib_level_1(tmp_path, monkeypatch):
    """``fast`` is not any zlib level's stream (it reaches ISA-L); without isal it is zlib level 1."""
    heat = _heat((32, 32, 16), seed=3)
    fast = write_heatmap(tmp_path / "f.nii.gz", heat, AFFINE, compression="fast").read_bytes()
    zlib_levels = [
        write_heatmap(tmp_path / f"z{k}.nii.gz", heat, AFFINE, compression=k).read_bytes() for k in range(10)
    ]
    assert gzip.decompress(fast) == gzip.decompress(zlib_levels[6])
    assert fast not in zlib_levels
    assert write_heatmap(tmp_path / "f2.nii.gz", heat, AFFINE).read_bytes() == fast  # the default, stable
    monkeypatch.setitem(sys.modules, "isal", None)  # an import of isal now raises ImportError
    fallback = write_heatmap(tmp_path / "f3.nii.gz", heat, AFFINE, compression="fast").read_bytes()
    assert fallback == zlib_levels[1]


def test_bad_dtype_or_level_is_an_output_error(tmp_path):
    with pytest.raises(OutputError, match="0..9"):
        write_heatmap(tmp_path / "h.nii.gz", _heat(), AFFINE, compression=10)
    with pytest.raises(OutputError, match="'fast'"):
        write_heatmap(tmp_path / "h.nii.gz", _heat(), AFFINE, compression="best")  # type: ignore[arg-type]
    with pytest.raises(OutputError, match="uint16 or float32"):
        write_heatmap(tmp_path / "h.nii.gz", _heat(), AFFINE, dtype="int8")  # type: ignore[arg-type]
    assert not (tmp_path / "h.nii.gz").exists()


def test_output_config_keys():
    cfg = OutputConfig()
    assert (cfg.heatmap_dtype, cfg.compression) == ("uint16", "fast")
    assert OutputConfig(heatmap_dtype="float32", compression=1).compression == 1
    assert OutputConfig(compression=6).compression == 6
    with pytest.raises(ValidationError):
        OutputConfig(compression=11)
    with pytest.raises(ValidationError):
        OutputConfig(compression="best")
    with pytest.raises(ValidationError):
        OutputConfig(heatmap_dtype="float16")


def test_uint16_refuses_values_that_are_not_a_heat_map(tmp_path):
    """A scan (HU) passed by mistake would be clipped to [0, 1]: refused, float32 keeps it."""
    hu = np.full((3, 3, 3), -1000.0)
    with pytest.raises(OutputError, match="float32"):
        write_heatmap(tmp_path / "h.nii.gz", hu, AFFINE)
    p = write_heatmap(tmp_path / "h.nii.gz", hu, AFFINE, dtype="float32")
    np.testing.assert_array_equal(np.asarray(nib.load(p).dataobj), hu)
