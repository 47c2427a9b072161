"""Array/dict transforms on numpy and torch, slicing display orientation, CLIP input, presets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from medzsad.errors import ConfigError
from medzsad.transforms.clip_input import ToClipInput, ToClipInputd, clip_normalise, letterbox_of
from medzsad.transforms.foreground import ForegroundSlices, ForegroundSlicesd
from medzsad.transforms.normalize import NormalizeMR, NormalizeMRd
from medzsad.transforms.preset import Preset, auto_preset_name, list_presets, load_preset
from medzsad.transforms.slicing import SliceExtractor
from medzsad.transforms.windowing import WINDOW_PRESETS_HU, WindowCT, WindowCTd

LIBS = [np.asarray, torch.as_tensor]


@pytest.mark.parametrize("lib", LIBS)
def test_window_ct_exact(lib) -> None:
    x = lib(np.array([-1000.0, 0.0, 20.0, 40.0, 60.0, 80.0, 3000.0], np.float32))
    y = WindowCT("brain")(x)
    assert type(y) is type(x)
    np.testing.assert_array_equal(np.asarray(y), [0.0, 0.0, 0.25, 0.5, 0.75, 1.0, 1.0])
    y2 = WindowCT(center=-600, width=1500)(lib(np.array([-1350.0, -600.0, 150.0], np.float32)))
    np.testing.assert_array_equal(np.asarray(y2), [0.0, 0.5, 1.0])


def test_window_presets_and_errors() -> None:
    assert set(WINDOW_PRESETS_HU) == {
        "brain",
        "subdural",
        "stroke",
        "lung",
        "mediastinum",
        "abdomen",
        "liver",
        "bone",
    }
    with pytest.raises(ConfigError, match="unknown window preset"):
        WindowCT("lungs")
    with pytest.raises(ConfigError, match="not both"):
        WindowCT("brain", center=1, width=2)
    with pytest.raises(ConfigError, match="> 0"):
        WindowCT(center=1, width=0)


@pytest.mark.parametrize("lib", LIBS)
def test_window_ctd_copies(lib) -> None:
    x = lib(np.array([40.0], np.float32))
    data = {"image": x, "other": 1}
    out = WindowCTd("image", preset="brain")(data)
    assert data["image"] is x and float(np.asarray(out["image"])[0]) == 0.5 and out["other"] == 1


@pytest.mark.parametrize("lib", LIBS)
def test_normalize_mr(lib) -> None:
    x = np.zeros(1001, np.float32)
    x[1:] = np.arange(1, 1001)
    y = NormalizeMR(0, 100, nonzero=True)(lib(x))
    y = np.asarray(y)
    assert y[0] == 0.0 and y[1] == 0.0 and y[-1] == 1.0
    np.testing.assert_allclose(y[501], 500 / 999, rtol=1e-6)
    d = NormalizeMRd("img", 0, 100)({"img": lib(x)})
    np.testing.assert_array_equal(np.asarray(d["img"]), y)
    assert np.all(np.asarray(NormalizeMR()(lib(np.full(5, 3.0, np.float32)))) == 0)
    with pytest.raises(ConfigError):
        NormalizeMR(50, 10)


@settings(max_examples=30, deadline=None)
@given(arrays(np.float32, st.integers(2, 50), elements=st.floats(-1e4, 1e4, width=32)))
def test_normalize_in_range_and_idempotent(x) -> None:
    t = NormalizeMR(0, 100, nonzero=False)
    y = t(x)
    assert y.dtype == np.float32 and y.min() >= 0 and y.max() <= 1
    if y.max() > y.min():
        np.testing.assert_allclose(t(y), y, atol=1e-6)


@pytest.mark.parametrize("lib", LIBS)
def test_foreground_slices(lib) -> None:
    x = np.full((4, 4, 5), -1000.0, np.float32)
    x[:, :, 1] = 50.0
    x[0, 0, 3] = 50.0  # 1/16 of the slice
    keep = ForegroundSlices(-500, min_fraction=0.1, axis=2)(lib(x))
    np.testing.assert_array_equal(np.asarray(keep), [False, True, False, False, False])
    keep = ForegroundSlices(-500, min_fraction=0.05, axis=-1)(lib(x))
    np.testing.assert_array_equal(np.asarray(keep), [False, True, False, True, False])
    d = ForegroundSlicesd("ct", -500, 0.1, axis=2)({"ct": lib(x)})
    np.testing.assert_array_equal(np.asarray(d["ct_foreground"]), [False, True, False, False, False])


@pytest.mark.parametrize("lib", LIBS)
def test_axial_display_orientation_lps_source(lib) -> None:
    """LPS-ordered source (i -> left, j -> posterior): display rows anterior->posterior, cols right->left."""
    data = np.zeros((3, 4, 2), np.float32)
    data[0, 0, 1] = 1.0  # most right (i=0 is patient right in LPS), most anterior, superior slice
    aff = np.diag([-1.0, -1.0, 1.0, 1.0])  # RAS affine of an LPS grid
    out = SliceExtractor("axial")(lib(data), aff)
    s = np.asarray(out.slices)
    assert s.shape == (2, 4, 3)
    assert s[1, 0, 0] == 1.0  # top-left of the superior slice = anterior & patient right
    assert out.geometry.source_axis == 2 and not out.geometry.source_flipped


def test_sagittal_and_coronal_display() -> None:
    data = np.zeros((3, 4, 5), np.float32)  # RAS grid
    data[2, 3, 4] = 1.0  # right, anterior, superior corner
    aff = np.eye(4)
    sag = SliceExtractor("sagittal")(data, aff)
    assert sag.slices.shape == (3, 5, 4) and sag.slices[2, 0, 0] == 1.0  # superior top, anterior left
    cor = SliceExtractor("coronal")(data, aff)
    assert cor.slices.shape == (4, 5, 3) and cor.slices[3, 0, 0] == 1.0  # superior top, right on left
    with pytest.raises(ConfigError):
        SliceExtractor("transverse")


@pytest.mark.parametrize("lib", LIBS)
def test_to_clip_input(lib) -> None:
    x = lib(np.full((2, 8, 8), 0.5, np.float32))
    out = ToClipInput(16, (0.5, 0.25, 0.0), (0.5, 0.25, 1.0), letterbox=False)(x)
    assert out.shape == (2, 3, 16, 16) and out.dtype == torch.float32
    np.testing.assert_allclose(out[:, 0].numpy(), 0.0, atol=1e-6)
    np.testing.assert_allclose(out[:, 1].numpy(), 1.0, atol=1e-6)
    np.testing.assert_allclose(out[:, 2].numpy(), 0.5, atol=1e-6)
    d = ToClipInputd("img", 16, (0.5,) * 3, (0.5,) * 3)({"img": x})
    assert d["img"].shape == (2, 3, 16, 16)


def test_one_channel_slices_normalised_per_batch_equal_the_model_input_bit_for_bit() -> None:
    """A study holds (N, 1, S, S) model-size slices; clip_normalise makes exactly the model input."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-0.2, 1.2, (20, 37, 23)).astype(np.float32)  # > one chunk, letterboxed, clamped
    mean, std = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)  # CLIP's
    three = ToClipInput(28, mean, std, (0.7, 1.3))(x)
    one = ToClipInput(28, mean, std, (0.7, 1.3), channels=1)(x)
    assert one.shape == (20, 1, 28, 28) and float(one.min()) >= 0.0 and float(one.max()) <= 1.0
    assert torch.equal(clip_normalise(one, mean, std), three)
    assert torch.equal(clip_normalise(one[3:7], mean, std), three[3:7])  # any batch of them
    with pytest.raises(ValueError, match="expected"):
        clip_normalise(three, mean, std)
    with pytest.raises(ConfigError):
        ToClipInput(28, mean, std, channels=2)


def test_letterbox_keeps_physical_aspect() -> None:
    lb = letterbox_of((40, 100), (5.0, 0.5), 28)  # 200 mm tall, 50 mm wide
    assert lb.padded == (40, 400) and lb.offset == (0, 150)
    x = torch.zeros((1, 40, 100))
    out = ToClipInput(28, (0.0,) * 3, (1.0,) * 3, pixel_spacing_mm=(5.0, 0.5))(x + 1.0)
    # the 100 columns fill the middle quarter of the width; the padding is 0
    assert float(out[0, 0, 14, 0]) == 0.0 and float(out[0, 0, 14, 14]) == pytest.approx(1.0, abs=1e-6)


def test_presets_load_and_validate(tmp_path: Path) -> None:
    assert list_presets() == ["ct-abdomen", "ct-chest", "ct-head", "mr-brain", "xray-2d"]
    for name in list_presets():
        p = load_preset(name)
        assert isinstance(p, Preset) and p.name == name
    assert load_preset("ct-head").intensity.window == "brain"
    assert load_preset("mr-brain").intensity.percentiles == (1.0, 99.0)
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ndescription: x\nmodality: [CT]\nintensity: {window: brian}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: intensity.window"):
        load_preset(bad)
    extra = tmp_path / "extra.yaml"
    extra.write_text("name: extra\ndescription: x\nmodality: [CT]\nintensity: {window: bone}\nwindw: 3\n")
    with pytest.raises(ConfigError, match="windw"):
        load_preset(extra)
    with pytest.raises(ConfigError, match="not found"):
        load_preset("ct-knee")


def test_preset_overrides() -> None:
    p = load_preset("ct-head")
    q = p.updated(
        window={"center": 60, "width": 100, "percentiles": None}, axis="coronal", series={"min_slices": 20}
    )
    assert q.intensity.window.center == 60 and q.axis == "coronal" and q.series.min_slices == 20
    assert q.series.modality == ("CT",)
    r = p.updated(window={"percentiles": (2, 98)})
    assert r.intensity.percentiles == (2.0, 98.0) and r.intensity.window is None
    with pytest.raises(ConfigError, match="invalid override"):
        p.updated(axis="oblique")


def test_auto_preset_name() -> None:
    assert auto_preset_name("CT", "HEAD") == "ct-head"
    assert auto_preset_name("CT", "", "Thorax 1.0 B70f") == "ct-chest"
    assert auto_preset_name("CT", "ABDOMEN") == "ct-abdomen"
    assert auto_preset_name("MR") == "mr-brain"
    assert auto_preset_name("CR") == "xray-2d"


def test_preset_registry_is_torch_free() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from medzsad.transforms.preset import list_presets; "
        "list_presets(); print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
