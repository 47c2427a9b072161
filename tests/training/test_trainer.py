"""Prompt training: learning on synthetic textures, bit-exact resume after a kill, files written."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from medzsad.datasets import read_folder
from medzsad.errors import ConfigError
from medzsad.eval.evaluation import class_metrics
from medzsad.eval.predict import predict_samples
from medzsad.model.inference import Detector
from medzsad.model.tiny import tiny_anomalyclip
from medzsad.training import StepInfo, TrainConfig, Trainer
from medzsad.training.state import load_train_state
from medzsad.weights.prompt_checkpoint import load_prompt_checkpoint

IMAGE_SIZE = 56
# 16 images, batch 8 -> 2 steps per epoch; 15 epochs = 30 steps (reference batch size and epochs)
CONFIG = TrainConfig(epochs=15, batch_size=8, seed=3, progress=False)


def _model():
    return tiny_anomalyclip(image_size=IMAGE_SIZE, seed=0)


def _pixel_auroc(model, samples) -> float:
    det = Detector(model)
    preds = predict_samples(det, samples, batch_size=8, progress=False)
    return class_metrics(preds.per_class[next(iter(preds.per_class))])["pixel_auroc"]


def _params(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.prompt_learner.named_parameters()}


@pytest.fixture(scope="module")
def uninterrupted(texture_set: Path, tmp_path_factory: pytest.TempPathFactory):
    samples = read_folder(texture_set)
    model = _model()
    auroc_before = _pixel_auroc(model, samples)
    det = Detector(model)
    out = tmp_path_factory.mktemp("run_full")
    losses: list[float] = []
    trainer = Trainer(
        model, samples, out, CONFIG, det.mean, det.std, on_step=lambda s: losses.append(s.total)
    )
    result = trainer.fit()
    return {
        "samples": samples,
        "model": model,
        "result": result,
        "out": out,
        "losses": losses,
        "auroc_before": auroc_before,
        "params": _params(model),
    }


def test_thirty_steps_lower_the_loss_and_raise_pixel_auroc(uninterrupted) -> None:
    res = uninterrupted["result"]
    assert res.global_step == 30 and res.finished and res.epochs_done == 15
    hist = res.history
    assert hist[-1]["total_loss"] < hist[0]["total_loss"]
    assert hist[-1]["loss"] < hist[0]["loss"]
    after = _pixel_auroc(uninterrupted["model"], uninterrupted["samples"])
    assert after > uninterrupted["auroc_before"] + 0.02, (uninterrupted["auroc_before"], after)


def test_files_written(uninterrupted) -> None:
    out: Path = uninterrupted["out"]
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == list(range(1, 16))
    assert int(rows[-1]["steps"]) == 30
    assert float(rows[0]["loss"]) > float(rows[-1]["loss"])
    ckpts = sorted((out / "checkpoints").glob("epoch_*.safetensors"))
    assert len(ckpts) == 15 and uninterrupted["result"].last_checkpoint == ckpts[-1]
    state, params, optim = load_train_state(out / "train_state.safetensors")
    assert state.global_step == 30 and state.epoch == 15
    assert any(k.endswith(".exp_avg_sq") for k in optim)
    for k, v in uninterrupted["params"].items():
        assert torch.equal(params[k], v)
    # the per-epoch prompt checkpoint holds the trained prompts (for the last epoch: the final ones)
    ckpt = load_prompt_checkpoint(ckpts[-1])
    assert ckpt.config == uninterrupted["model"].config.to_dict()
    assert torch.equal(ckpt.state_dict["ctx_pos"], uninterrupted["params"]["ctx_pos"])
    assert torch.equal(load_prompt_checkpoint(out).state_dict["ctx_neg"], uninterrupted["params"]["ctx_neg"])


def test_resume_after_kill_at_step_15_is_bit_exact(uninterrupted, tmp_path: Path) -> None:
    samples = uninterrupted["samples"]
    model = _model()
    det = Detector(model)
    cfg = replace(CONFIG, checkpoint_every_steps=5)

    def kill_during_16(info: StepInfo) -> None:
        if info.global_step == 16:  # killed before step 16 (an epoch end) is saved: state of step 15
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Trainer(model, samples, tmp_path, cfg, det.mean, det.std, on_step=kill_during_16).fit()
    state, _, _ = load_train_state(tmp_path / "train_state.safetensors")
    assert (state.global_step, state.epoch, state.batch_in_epoch) == (15, 7, 1)

    fresh = _model()  # a new process: new model from the same initialisation
    resumed: list[int] = []
    result = Trainer(
        fresh, samples, tmp_path, cfg, det.mean, det.std, on_step=lambda s: resumed.append(s.global_step)
    ).fit()
    assert resumed[0] == 16 and result.global_step == 30 and result.finished
    for k, v in uninterrupted["params"].items():
        assert torch.equal(_params(fresh)[k], v), k
    full_rows = list(csv.DictReader(open(uninterrupted["out"] / "metrics.csv")))
    resumed_rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    assert [r["loss"] for r in resumed_rows] == [r["loss"] for r in full_rows]


def test_max_steps_stops_and_resume_refuses_other_settings(texture_set: Path, tmp_path: Path) -> None:
    samples = read_folder(texture_set)
    model = _model()
    det = Detector(model)
    cfg = replace(CONFIG, epochs=2, max_steps=1, cache="none")
    res = Trainer(model, samples, tmp_path, cfg, det.mean, det.std).fit()
    assert res.global_step == 1 and not res.finished and res.last_checkpoint is None
    with pytest.raises(ConfigError, match="settings"):
        Trainer(_model(), samples, tmp_path, replace(cfg, lr=5e-3), det.mean, det.std).fit()
    # --no-resume starts afresh
    res = Trainer(_model(), samples, tmp_path, replace(cfg, lr=5e-3), det.mean, det.std).fit(resume=False)
    assert res.global_step == 1


def test_cached_and_uncached_training_agree(texture_set: Path, tmp_path: Path) -> None:
    samples = read_folder(texture_set)
    out = {}
    for mode in ("none", "memory", "disk"):
        model = _model()
        det = Detector(model)
        cfg = replace(CONFIG, epochs=2, cache=mode)
        Trainer(model, samples, tmp_path / mode, cfg, det.mean, det.std).fit()
        out[mode] = _params(model)
    assert (tmp_path / "disk" / "feature_cache" / "manifest.json").is_file()
    for k in out["none"]:
        torch.testing.assert_close(out["memory"][k], out["none"][k], rtol=0, atol=1e-5)
        assert torch.equal(out["memory"][k], out["disk"][k])


def test_images_without_masks_train_the_image_loss_only(texture_set: Path, tmp_path: Path) -> None:
    from medzsad.training.trainer import batch_loss

    samples = read_folder(texture_set)
    model = _model()
    det = Detector(model)
    from medzsad.datasets import SampleDataset, collate_samples

    ds = SampleDataset(samples[:4] + samples[-4:], IMAGE_SIZE, det.mean, det.std)
    b = collate_samples([ds[i] for i in range(len(ds))])
    known = b["mask_known"].clone()
    all_known = batch_loss(model, b["label"], b["mask"], known, 4.0, images=b["image"])
    known[:2] = False
    part = batch_loss(model, b["label"], b["mask"], known, 4.0, images=b["image"])
    assert torch.allclose(part.image, all_known.image)
    assert not torch.allclose(part.pixel, all_known.pixel)
    none = batch_loss(model, b["label"], b["mask"], torch.zeros_like(known), 4.0, images=b["image"])
    assert float(none.pixel) == 0.0 and torch.allclose(none.total, all_known.image)


def test_train_cli_then_evaluate_the_checkpoint(texture_set: Path, tmp_path: Path, capsys) -> None:
    from medzsad.cli import main

    tiny = ["--architecture", "anomalyclip_tiny", "--clip", "random", "--image-size", str(IMAGE_SIZE)]
    out = tmp_path / "run"
    args = [
        "train",
        str(texture_set),
        "-o",
        str(out),
        *tiny,
        "--epochs",
        "2",
        "--no-progress",
        "--max-steps",
        "3",
    ]
    assert main(args) == 0
    assert "stopped" in capsys.readouterr().out
    assert main(args[:-2]) == 0  # same command without --max-steps resumes and finishes
    text = capsys.readouterr().out
    assert "finished after 4 steps, 2 epochs" in text
    ckpt = out / "prompt_learner.json"
    assert ckpt.is_file() and (out / "checkpoints" / "epoch_002.json").is_file()
    code = main(["evaluate", str(texture_set), "--prompts", str(ckpt), "--clip", "random", "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    assert f"| {texture_set.name} | 16 | 8 |" in printed and "operating point (image level, f1)" in printed


def test_train_on_volume_slices(tmp_path: Path) -> None:
    import nibabel as nib
    import numpy as np

    from medzsad.training.api import train
    from medzsad.weights.model_loading import ModelSpec

    rng = np.random.default_rng(1)
    ct = rng.normal(40, 10, (30, 30, 4)).astype(np.float32)
    ct[5:15, 8:14, 1:3] = 300.0
    mask = (ct > 200).astype(np.uint8)
    nib.save(nib.Nifti1Image(ct, np.eye(4)), str(tmp_path / "ct.nii.gz"))
    nib.save(nib.Nifti1Image(mask, np.eye(4)), str(tmp_path / "mask.nii.gz"))
    (tmp_path / "cases.csv").write_text("image,mask\nct.nii.gz,mask.nii.gz\n")
    spec = ModelSpec(
        prompts=None, clip="random", architecture="anomalyclip_tiny", image_size=IMAGE_SIZE, seed=0
    )
    res = train(
        tmp_path / "cases.csv",
        tmp_path / "out",
        kind="volumes",
        model=spec,
        config=TrainConfig(epochs=1, batch_size=2, progress=False),
        window=(-160.0, 240.0),
    )
    assert res.finished and res.global_step == 2 and res.history[0]["loss"] > 0


_KILL_SCRIPT = """
import sys, time
from dataclasses import replace
from pathlib import Path
from medzsad.datasets import read_folder
from medzsad.model.inference import Detector
from medzsad.model.tiny import tiny_anomalyclip
from medzsad.training import TrainConfig, Trainer

data, out, marker = sys.argv[1:4]
cfg = TrainConfig(epochs=15, batch_size=8, seed=3, progress=False, checkpoint_every_steps=5)
model = tiny_anomalyclip(image_size=56, seed=0)
det = Detector(model)

def hang_at_16(info):
    if info.global_step == 16:
        Path(marker).write_text("16")
        time.sleep(600)  # the parent sends SIGKILL here

Trainer(model, read_folder(Path(data)), Path(out), cfg, det.mean, det.std, on_step=hang_at_16).fit()
"""


def test_resume_after_sigkill_is_bit_exact(uninterrupted, texture_set: Path, tmp_path: Path) -> None:
    """A real ``kill -9`` of a training process after step 15, then resume: same parameters."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out, marker = tmp_path / "run", tmp_path / "at16"
    proc = subprocess.Popen([sys.executable, "-c", _KILL_SCRIPT, str(texture_set), str(out), str(marker)])
    try:
        deadline = time.monotonic() + 240
        while not marker.exists():
            assert proc.poll() is None, "training process ended before step 16"
            assert time.monotonic() < deadline, "training did not reach step 16"
            time.sleep(0.1)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    state, _, _ = load_train_state(out / "train_state.safetensors")
    assert 15 <= state.global_step < 30
    fresh = _model()
    det = Detector(fresh)
    cfg = replace(CONFIG, checkpoint_every_steps=5)
    result = Trainer(fresh, uninterrupted["samples"], out, cfg, det.mean, det.std).fit()
    assert result.global_step == 30 and result.finished
    for k, v in uninterrupted["params"].items():
        assert torch.equal(_params(fresh)[k], v), k
    assert not list(out.rglob("*.tmp*")), "a temporary file was left behind"
