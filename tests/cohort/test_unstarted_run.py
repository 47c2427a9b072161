"""A run whose model fails to load never started: it leaves no output folder behind (README)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from medzsad.cli import EXIT_MODEL, main

from .conftest import make_cohort, write_cohort_yaml


@pytest.mark.parametrize("existed", [False, True])
def test_weights_that_fail_to_load_leave_no_run_folder(tmp_path: Path, existed: bool) -> None:
    info = make_cohort(tmp_path / "data", n_nifti=1, corrupt=False, shape=(20, 16, 6))
    wrong = tmp_path / "prompts.pth"
    torch.save({"a": torch.randn(3, 4)}, wrong)  # present (preflight passes), not a prompt checkpoint
    out = tmp_path / "out"
    if existed:
        out.mkdir()
    cfg = write_cohort_yaml(tmp_path / "c.yaml", info["manifest"], out)
    model = (  # a small random backbone, and a prompt file that is not one
        f"model:\n  backbone: ViT-B-32\n  clip_weights: random\n  prompt_weights: {wrong}\n"
        "  image_size: 64\n  feature_layers: [6, 12]\n  dpam_layers: 2\n  device: cpu\n"
    )
    text = cfg.read_text()
    cfg.write_text(text[: text.index("model:")] + model + text[text.index("output:") :])
    assert main(["run", str(cfg), "-q"]) == EXIT_MODEL
    # a folder the run created is removed; one that was there stays (the run's traces go with it)
    assert out.exists() is existed
