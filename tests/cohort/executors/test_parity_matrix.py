"""One parity matrix: every executor gives the same outputs for every feature, on the demo data.

{local ``workers: 0``, local ``workers: 2``, Ray with 2 actors} x {zero-shot, references (a profile
with K = 2; three axes, maps in site units: the defaults with references), calibrated flag + mask,
every output format}: heat maps and masks voxel-identical,
scores and p-values within 1e-6, the same tables and the same files. Parity comes by construction
(every executor runs :mod:`medzsad.study`); this test is the proof. Before the study pipeline was
one, Ray scored references without body positions and its heat maps differed.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import ray
from tiny_model import TINY_MODEL

from medzsad.cli import main
from medzsad.cohort.launch import run_cohort
from medzsad.config import OutputKind, parse_cohort
from medzsad.site_profile.builder import build_profile

EXECUTORS = {
    "local-w0": "executor: {kind: local, workers: 0}\n",
    "local-w2": "executor: {kind: local, workers: 2, writers: 2}\n",
    "ray-2": "executor: {kind: ray, address: auto, actors: 2, cpus_per_actor: 1}\n",
}
ALL_OUTPUTS = "[" + ", ".join(k.value for k in OutputKind) + "]"
FEATURES = {
    "zero-shot": "output: {threshold: {method: fixed, value: 0.5, min_lesion_ml: 0.0}}\n",
    "references": (
        "output:\n  flag: {profile: profile-refs, alpha: 0.25}\n"
        "  threshold: {method: fixed, value: 0.5, min_lesion_ml: 0.0}\n"
    ),
    "calibrated": (
        "output:\n  flag: {profile: profile-plain, alpha: 0.25}\n"
        "  threshold: {method: calibrated, profile: profile-plain, alpha: 0.25, min_lesion_ml: 0.0}\n"
    ),
    "all-outputs": (
        f"output: {{outputs: {ALL_OUTPUTS}, threshold: {{method: fixed, value: 0.5, min_lesion_ml: 0.0}}}}\n"
    ),
}
PIPELINE = "pipeline: {preset: auto, axis: axial, skip_empty_slices: true}\n"
# three axes (every 4th coronal and sagittal slice: cheap) with references in site units: every
# batch then mixes axes and studies, and each slice must meet its own axis's bank in every executor
THREE_AXES = (
    "pipeline: {preset: auto, axes: [axial, coronal, sagittal], axis_stride: 4, skip_empty_slices: true}\n"
)


def _pipeline(feature: str) -> str:
    return THREE_AXES if feature == "references" else PIPELINE


def _model(feature: str) -> str:
    return TINY_MODEL + ("  references: true\n" if feature == "references" else "")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo data (4 mm, 5 normals) and two profiles: plain, and with K = 2 references."""
    root = tmp_path_factory.mktemp("parity")
    assert main(["demo-data", str(root / "demo-data"), "--resolution", "4", "--normals", "5"]) == 0
    for name, profile, feature in (
        ("plain", "{alpha: 0.25}", "calibrated"),
        ("refs", "{alpha: 0.25, references: 2}", "references"),
    ):
        text = (
            f"name: normals-{name}\ninputs: {{manifest: demo-data/normals.csv}}\n"
            f"{_pipeline(feature)}{TINY_MODEL}"
            "output: {outputs: [provenance], threshold: {method: fixed, value: 0.5, min_lesion_ml: 0.0}}\n"
            f"profile: {profile}\nexecutor: {{workers: 0}}\n"
        )
        cfg = parse_cohort(text, base_dir=root).with_overrides(**{"output.dir": str(root / f"run-{name}")})
        build_profile(cfg, out_dir=root / f"profile-{name}")
    return root


@pytest.fixture(scope="module")
def ray_cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def _run(site: Path, feature: str, executor: str) -> Path:
    out = site / "out" / feature / executor
    text = (
        f"name: parity\ninputs: {{manifest: demo-data/manifest.csv}}\n{_pipeline(feature)}{_model(feature)}"
        f"{FEATURES[feature]}{EXECUTORS[executor]}"
    )
    cfg = parse_cohort(text, base_dir=site).with_overrides(**{"output.dir": str(out)})
    summary = run_cohort(cfg)
    assert summary.n_failed == 0 and summary.n_done == 6, summary.failures
    return out


def _tables(out: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    studies = pd.read_csv(out / "studies.csv").sort_values("study_id").reset_index(drop=True)
    errors = pd.read_csv(out / "errors.csv")
    return studies, errors


def _files(study: Path) -> list[str]:
    return sorted(str(p.relative_to(study)) for p in study.rglob("*") if p.is_file())


def _assert_same(a: Path, b: Path) -> None:
    ta, ea = _tables(a)
    tb, eb = _tables(b)
    numeric = [c for c in ("score", "p_value", "lesion_volume_ml") if c in ta.columns]
    pd.testing.assert_frame_equal(ta.drop(columns=numeric), tb.drop(columns=numeric))
    for c in numeric:
        np.testing.assert_allclose(ta[c].to_numpy(float), tb[c].to_numpy(float), atol=1e-6, err_msg=c)
    pd.testing.assert_frame_equal(ea, eb)
    for sid in ta["safe_id"]:
        sa, sb = a / "studies" / sid, b / "studies" / sid
        assert _files(sa) == _files(sb), sid
        for name in ("heatmap.nii.gz", "mask.nii.gz"):
            if (sa / name).exists():
                va, vb = nib.load(sa / name), nib.load(sb / name)
                voxels = np.asarray(va.dataobj), np.asarray(vb.dataobj)
                np.testing.assert_array_equal(*voxels, err_msg=f"{sid}/{name}")
                np.testing.assert_array_equal(va.affine, vb.affine)
        for name in ("slices.csv", "lesions.csv"):
            if (sa / name).exists():
                pd.testing.assert_frame_equal(pd.read_csv(sa / name), pd.read_csv(sb / name), atol=1e-6)
        pa = json.loads((sa / "provenance.json").read_text())
        pb = json.loads((sb / "provenance.json").read_text())
        assert pa["calibration"] == pb["calibration"] and pa["model"] == pb["model"], sid


@pytest.mark.parametrize("feature", list(FEATURES))
def test_every_executor_gives_the_same_outputs(site: Path, ray_cluster: None, feature: str) -> None:
    outs = {executor: _run(site, feature, executor) for executor in EXECUTORS}
    reference = outs["local-w0"]
    for executor, out in outs.items():
        if executor != "local-w0":
            _assert_same(reference, out)
    studies, _ = _tables(reference)
    if feature in ("references", "calibrated"):  # the features really acted
        assert studies["p_value"].notna().all()
    if feature == "references":
        prov = json.loads((reference / "studies" / studies["safe_id"][0] / "provenance.json").read_text())
        assert "normal references" in prov["model"]["description"]
        assert "maps in site units" in prov["model"]["description"]
        slices = pd.read_csv(reference / "studies" / studies["safe_id"][0] / "slices.csv")
        assert list(slices["axis"].unique()) == ["axial", "coronal", "sagittal"]
    if feature == "all-outputs":
        dicom = reference / "studies" / "ct-phantom-cyst" / "dicom"
        assert {p.name for p in dicom.iterdir()} >= {"anomaly_seg.dcm", "heatmap_pmap.dcm", "anomaly_sr.dcm"}
