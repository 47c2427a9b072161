"""The review page states what was built and decided, from one place (issue: it printed "on None")."""

from __future__ import annotations

import re
from pathlib import Path

from medzsad.cohort.launch import run_cohort
from medzsad.config import parse_cohort
from medzsad.model.config import load_architecture

from .conftest import make_cohort


def _page(out: Path) -> str:
    return re.sub(r"\s+", " ", (out / "report.html").read_text())


def test_a_default_cohort_page_names_the_built_backbone_size_layers_and_dpam(tmp_path: Path) -> None:
    info = make_cohort(tmp_path / "data", n_nifti=1, corrupt=False)
    # no backbone, image_size, feature_layers or dpam_layers: the architecture JSON decides them
    text = (
        f"name: page\ninputs: {{manifest: {info['manifest']}}}\n"
        "model: {tiny: true, clip_weights: random, prompt_weights: random, device: cpu}\n"
        f"output: {{dir: {tmp_path / 'out'}}}\nexecutor: {{workers: 0}}\n"
    )
    run_cohort(parse_cohort(text))
    arch = load_architecture("anomalyclip_tiny")
    page = _page(tmp_path / "out")
    layers = ", ".join(str(x) for x in arch.feature_layers)
    assert (
        f"on {arch.backbone}, {arch.image_size} px, feature layers {layers}, "
        f"DPAM on the last {arch.dpam_layers} blocks" in page
    )
    assert "None" not in page.split("<h2>")[0]  # the header: nothing unresolved
    assert "heat &gt;= 0.5 (uncalibrated threshold)" in page  # the run's operating point sentence
    # a rerun that computes nothing states the same model (recorded in the ledger when it was built)
    run_cohort(parse_cohort(text))
    assert f"feature layers {layers}" in _page(tmp_path / "out")
