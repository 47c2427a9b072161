"""The model reproduces the reference AnomalyCLIP numbers (inference and one training step)."""

from __future__ import annotations

import dataclasses

import pytest

from medzsad import selftest as selftest_mod
from medzsad.cli import main


def test_selftest_passes_on_every_reference_fixture(reference_dirs):
    for d in reference_dirs:
        report = selftest_mod.run_selftest(d)
        failed = [r for r in report.rows if not r.ok]
        assert report.passed, report.to_table()
        assert not failed
        names = {r.name for r in report.rows}
        # the acceptance asks for gradients and after-step parameters, not only inference
        assert any(n.startswith("grad.") for n in names)
        assert any(n.startswith("after_step.") for n in names)
        assert "anomaly_map_smoothed" in names and "text_probs" in names


def test_selftest_detects_a_deviation(tiny_a_dir, monkeypatch):
    """Without the reference's fp16 rounding of deep prompts the check must fail (README ablation)."""
    real = selftest_mod.load_reference_fixture

    def without_fp16(path):
        fx = real(path)
        return dataclasses.replace(fx, config=fx.config.with_overrides(deep_prompt_fp16_cast=False))

    monkeypatch.setattr(selftest_mod, "load_reference_fixture", without_fp16)
    report = selftest_mod.run_selftest(tiny_a_dir)
    assert not report.passed
    bad = {r.name for r in report.rows if not r.ok}
    assert "text_features" in bad


def test_selftest_detects_wrong_smoothing(tiny_a_dir, monkeypatch):
    """torch-style 'mirror' padding instead of scipy 'reflect' moves the smoothed map by ~8e-3."""
    from medzsad.model import anomalyclip as ac

    def mirror_smooth(maps, sigma, truncate=4.0):
        import torch
        import torch.nn.functional as F

        radius = int(truncate * sigma + 0.5)
        off = torch.arange(-radius, radius + 1, dtype=torch.float64)
        k = torch.exp(-0.5 * off**2 / sigma**2)
        k = (k / k.sum()).float()
        x = F.pad(maps[:, None], (radius, radius, radius, radius), mode="reflect")
        x = F.conv2d(x, k[None, None, :, None])
        return F.conv2d(x, k[None, None, None, :])[:, 0]

    monkeypatch.setattr(ac, "gaussian_smooth", mirror_smooth)
    report = selftest_mod.run_selftest(tiny_a_dir)
    bad = {r.name for r in report.rows if not r.ok}
    assert bad == {"anomaly_map_smoothed"}


def test_selftest_cli(tiny_a_dir, capsys):
    code = main(["selftest", "--reference", str(tiny_a_dir)])
    out = capsys.readouterr().out
    assert code == 0
    assert "grad.ctx_pos" in out and "after_step.ctx_neg" in out
    assert "0 failed" in out


def test_selftest_cli_bad_folder(tmp_path, capsys):
    code = main(["selftest", "--reference", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 5
    assert "not a reference fixture folder" in err and str(tmp_path) in err
    assert "Traceback" not in err


@pytest.mark.parametrize("sigma", [1.0, 2.5, 4.0])
def test_gaussian_smooth_matches_scipy(sigma):
    import numpy as np
    import torch
    from scipy.ndimage import gaussian_filter

    from medzsad.model.scoring import gaussian_smooth

    rng = np.random.default_rng(0)
    for shape in [(2, 37, 29), (1, 5, 7)]:  # radius larger than the image exercises repeated reflection
        a = rng.random(shape).astype(np.float32)
        ours = gaussian_smooth(torch.from_numpy(a), sigma).numpy()
        ref = np.stack([gaussian_filter(m, sigma=sigma) for m in a])
        assert ours.dtype == np.float32
        np.testing.assert_allclose(ours, ref, atol=2e-7, rtol=0)
