"""Fuzz test: mutated inputs of every kind through ``discover`` + ``load_volume`` in limited subprocesses.

A seeded generator (``fuzz_gen``) writes 300 mutated DICOM (plain, RLE, JPEG-LS, enhanced, deflated,
series, zip, DICOMDIR), NIfTI(.gz), NRRD/MHA/MHD and PNG/JPEG/TIFF inputs, plus the issue 16
reproducers. Workers (``fuzz_harness``) run them under a 4 GiB address-space limit and a 20 s
timeout per case. Required: no untyped exception, no silently unusable volume, no hang, no crash,
and every reproducer under 1 GiB peak RSS. ``bench/fuzz_bench.py`` runs the same generator longer.
"""

from __future__ import annotations

import collections
from pathlib import Path

import fuzz_gen
import hostile_inputs as h
import pytest
from fuzz_harness import BAD, run_cases

SEED = 16
N_CASES = 300

REPRODUCERS = (
    h.nifti_claim, h.nifti_gzip_bomb, h.nifti_datatype, h.nifti_bad_dim0, h.cifti, h.mhd_external,
    h.mha_ndims, h.dicom_frames_claim, h.dicom_rle_truncated, h.dicom_nested, h.dicom_many_items,
    h.dicomdir_cyclic,
    h.zip_declared_size, h.png_claim, h.symlink_loop,
)  # fmt: skip


@pytest.fixture(scope="module")
def fuzz_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list]:
    root = tmp_path_factory.mktemp("fuzz")
    seeds = fuzz_gen.build_seeds(root / "seeds")
    cases = [str(fuzz_gen.write_case(seeds, SEED, i, root / "cases")) for i in range(N_CASES)]
    repro = []
    for fn in REPRODUCERS:
        folder = root / "repro" / fn.__name__
        folder.mkdir(parents=True)
        out = fn(folder)
        repro.append(str(out[0] if isinstance(out, list) else out))
    results = run_cases(repro + cases, timeout_s=20.0)
    return {"repro": results[: len(repro)], "fuzz": results[len(repro) :]}


def test_fuzz_has_no_untyped_errors_hangs_or_crashes(fuzz_results: dict[str, list]) -> None:
    results = fuzz_results["fuzz"]
    assert len(results) == N_CASES
    bad = [r for r in results if r.outcome in BAD]
    assert not bad, "\n".join(f"{r.outcome}: {r.case}: {r.detail}" for r in bad[:20])
    counts = collections.Counter(r.outcome for r in results)
    # the generator must really break inputs, and leave some readable
    assert counts["typed"] >= N_CASES // 10 and counts["ok"] >= N_CASES // 10, counts


def test_every_kind_was_fuzzed(fuzz_results: dict[str, list]) -> None:
    names = {r.case.split("/cases/")[1].split("/")[0].split("-", 2)[2] for r in fuzz_results["fuzz"]}
    assert {
        "dcm",
        "dcm_rle",
        "zip",
        "dicomdir",
        "nii_gz",
        "nrrd",
        "mha",
        "mhd",
        "png",
        "jpeg",
        "tiff",
    } <= names


def test_reproducers_are_typed_and_bounded(fuzz_results: dict[str, list]) -> None:
    for r in fuzz_results["repro"]:
        assert r.outcome in ("typed", "ok"), (r.case, r.outcome, r.detail)
        assert r.peak_rss_mb < 1024, (r.case, r.peak_rss_mb)
    outcomes = {Path(r.case).parent.name: r.outcome for r in fuzz_results["repro"]}
    assert outcomes["nifti_claim"] == "typed"
    assert outcomes["mha_ndims"] == "typed"
    assert outcomes["dicom_frames_claim"] == "typed"
