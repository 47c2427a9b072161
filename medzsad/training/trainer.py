"""Prompt training on auxiliary data (AnomalyCLIP ``train.py``), resumable and deterministic.

Only the prompt learner trains; the CLIP backbone is frozen. One step (:mod:`medzsad.training.step`,
re-exported here) is: frozen DPAM features of a batch (from the cache when there is one), learnable
text features, image cross-entropy plus ``lam x`` (focal + two dice terms) per tapped layer
(:func:`medzsad.model.losses.anomalyclip_loss`), Adam with the reference's betas. Images without a
mask add only the image loss.

Determinism: the image order of epoch ``e`` is a permutation drawn from ``seed`` and ``e`` alone,
and nothing else is random, so a run resumed from any saved step follows the uninterrupted run
exactly (bit-for-bit on the same machine and threads).
"""

from __future__ import annotations

import csv
import io
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch.utils.data import Dataset

from medzsad.datasets.images import SampleDataset, load_batches
from medzsad.datasets.samples import Sample
from medzsad.errors import ConfigError, InputError
from medzsad.fileio import write_text
from medzsad.model.anomalyclip import AnomalyCLIP
from medzsad.model.dpam_vision import VisionFeatures
from medzsad.model.losses import LossTerms
from medzsad.progress import Bar, progress_bar
from medzsad.training.config import TrainConfig
from medzsad.training.features import FeatureCache, feature_bytes_per_image, fingerprint
from medzsad.training.state import (
    TrainState,
    load_train_state,
    optimizer_tensors,
    restore_optimizer,
    save_train_state,
)
from medzsad.training.step import batch_loss, epoch_order, make_optimizer, train_step
from medzsad.weights.prompt_checkpoint import save_prompt_checkpoint

__all__ = ["Trainer", "TrainResult", "StepInfo", "make_optimizer", "batch_loss", "train_step", "epoch_order"]

logger = logging.getLogger(__name__)

STATE_FILE = "train_state.safetensors"
METRICS_FILE = "metrics.csv"
CSV_COLUMNS = ("epoch", "steps", "loss", "image_loss", "total_loss", "seconds", "lr")


class StepInfo(NamedTuple):
    """What a step callback receives: global step (1-based), epoch (0-based) and the step's losses."""

    global_step: int
    epoch: int
    total: float
    pixel: float
    image: float


@dataclass(frozen=True)
class TrainResult:
    """Outcome of :meth:`Trainer.fit`.

    Attributes:
        global_step: optimiser steps done in total (including earlier runs resumed from).
        epochs_done: finished epochs.
        finished: all epochs done (``False`` when stopped by ``max_steps`` or a callback).
        state_path: the resumable state file.
        metrics_csv: the per-epoch metrics CSV.
        last_checkpoint: the last epoch's prompt checkpoint, or ``None`` before the first epoch ends.
        history: the metrics rows of every finished epoch.
    """

    global_step: int
    epochs_done: int
    finished: bool
    state_path: Path
    metrics_csv: Path
    last_checkpoint: Path | None
    history: tuple[dict[str, Any], ...]


class Trainer:
    """Train the prompts of ``model`` on ``samples``, saving into ``out_dir``.

    Files written: ``train_state.safetensors`` (resumable state, each epoch and every
    ``checkpoint_every_steps``), ``checkpoints/epoch_NNN.safetensors|.json`` (prompt checkpoint
    per epoch, :mod:`medzsad.weights.prompt_checkpoint` format), ``prompt_learner.safetensors|.json``
    (the latest epoch's prompts), ``metrics.csv`` (one row per epoch).

    Args:
        model: the AnomalyCLIP (its prompt learner is trained in place).
        samples: the auxiliary images.
        out_dir: output folder.
        config: training settings.
        mean: backbone normalisation mean (3,).
        std: backbone normalisation std (3,).
        on_step: called after every step; returning ``True`` stops training after saving the state.
        dataset: loader of ``samples`` (default :class:`SampleDataset`; e.g. volume slices).
    """

    def __init__(
        self,
        model: AnomalyCLIP,
        samples: Sequence[Sample],
        out_dir: Path,
        config: TrainConfig,
        mean: Sequence[float],
        std: Sequence[float],
        on_step: Callable[[StepInfo], bool | None] | None = None,
        dataset: Dataset | None = None,
    ) -> None:
        if not samples:
            raise InputError("no training images: the dataset is empty")
        if len({s.label for s in samples}) < 2:
            logger.warning("all training images have the same label; the image loss cannot learn a decision")
        self.model = model
        self.samples = list(samples)
        self.out_dir = Path(out_dir)
        self.config = config
        self.device = torch.device(config.device)
        self.dataset = (
            dataset if dataset is not None else SampleDataset(self.samples, model.image_size, mean, std)
        )
        if len(self.dataset) != len(self.samples):  # type: ignore[arg-type]
            raise ValueError(f"dataset has {len(self.dataset)} items for {len(self.samples)} samples")  # type: ignore[arg-type]
        self.on_step = on_step
        self.params = dict(model.prompt_learner.named_parameters())
        self.optimizer = make_optimizer(list(self.params.values()), config)
        self.cache: FeatureCache | None = None

    @property
    def steps_per_epoch(self) -> int:
        """Batches per epoch (the last one may be smaller)."""
        return math.ceil(len(self.samples) / self.config.batch_size)

    @property
    def state_path(self) -> Path:
        """The resumable state file."""
        return self.out_dir / STATE_FILE

    # ---- state ---------------------------------------------------------------------------------------

    def _fresh_state(self) -> TrainState:
        return TrainState(settings=self.config.trajectory_key(), model_config=self.model.config.to_dict())

    def _resume(self) -> TrainState:
        state, params, optim = load_train_state(self.state_path)
        if state.settings != self.config.trajectory_key():
            raise ConfigError(
                f"{self.state_path}: saved with settings {state.settings}, "
                f"now {self.config.trajectory_key()}; "
                "use the same settings to resume, or another output folder (or --no-resume) to start afresh"
            )
        if state.model_config != self.model.config.to_dict():
            raise ConfigError(
                f"{self.state_path}: saved for another model configuration; use another output folder"
            )
        missing = sorted(set(self.params) - set(params))
        if missing:
            raise ConfigError(f"{self.state_path}: prompt parameters {missing} missing from the saved state")
        with torch.no_grad():
            for name, p in self.params.items():
                p.copy_(params[name].to(p.device, p.dtype))
        restore_optimizer(self.optimizer, self.params, optim)
        logger.info(
            "resuming %s at step %d (epoch %d, batch %d)",
            self.out_dir,
            state.global_step,
            state.epoch + 1,
            state.batch_in_epoch,
        )
        return state

    def _save_state(self, state: TrainState) -> None:
        names = {id(p): n for n, p in self.params.items()}
        save_train_state(self.state_path, state, self.params, optimizer_tensors(self.optimizer, names))
        logger.debug("saved training state at step %d", state.global_step)

    # ---- features ------------------------------------------------------------------------------------

    def _cache_mode(self) -> str:
        mode = self.config.cache
        if mode != "auto":
            return mode
        if self.config.epochs < 2:
            return "none"
        x = self.dataset[0]["image"][None].to(self.device)
        f = self.model.encode_image(x)
        per_image = feature_bytes_per_image(
            f.image_features.shape[1], [tuple(t.shape[1:]) for t in f.patch_tokens]
        )
        total_gib = per_image * len(self.samples) / 2**30
        mode = "memory" if total_gib <= self.config.cache_memory_gib else "disk"
        logger.info("frozen features: %.2f GiB for %d images -> %s cache", total_gib, len(self.samples), mode)
        return mode

    def _encode(self, indices: Sequence[int]) -> VisionFeatures:
        x = torch.stack([self.dataset[i]["image"] for i in indices]).to(self.device)
        return self.model.encode_image(x)

    def _prepare_cache(self) -> None:
        mode = self._cache_mode()
        if mode == "none":
            return
        key = fingerprint(
            [str(s.image) for s in self.samples] + [repr(self.model.config.to_dict())], self.model.clip.visual
        )
        self.cache = FeatureCache(len(self.samples), mode, self.out_dir / "feature_cache", key)
        self.cache.fill(self._encode, self.config.batch_size)

    # ---- loop ----------------------------------------------------------------------------------------

    def _batches(self, epoch: int, skip: int) -> list[list[int]]:
        order = epoch_order(len(self.samples), epoch, self.config.seed, self.config.shuffle)
        bs = self.config.batch_size
        return [order[i : i + bs] for i in range(0, len(order), bs)][skip:]

    def _step(self, batch: dict[str, Any], indices: list[int]) -> LossTerms:
        labels = batch["label"].to(self.device)
        masks = batch["mask"].to(self.device)
        known = batch["mask_known"].to(self.device)
        if self.cache is not None:
            feats = self.cache.get(indices, self.device)
            return train_step(self.model, self.optimizer, labels, masks, known, self.config.lam, feats=feats)
        images = batch["image"].to(self.device)
        return train_step(self.model, self.optimizer, labels, masks, known, self.config.lam, images=images)

    def fit(self, resume: bool = True) -> TrainResult:
        """Train until all epochs are done, ``max_steps`` is reached or the callback says stop.

        Args:
            resume: continue from ``train_state.safetensors`` in ``out_dir`` when present.

        Returns:
            :class:`TrainResult`.
        """
        self.out_dir.mkdir(parents=True, exist_ok=True)
        state = self._resume() if (resume and self.state_path.is_file()) else self._fresh_state()
        self.model.to(self.device).eval()
        self.model.prompt_learner.train()
        if state.epoch < self.config.epochs:
            self._prepare_cache()
        stopped = False
        while state.epoch < self.config.epochs and not stopped:
            stopped = self._run_epoch(state)
        self._write_metrics(state)
        last = self._epoch_checkpoint(len(state.history)) if state.history else None
        return TrainResult(
            state.global_step,
            len(state.history),
            state.epoch >= self.config.epochs,
            self.state_path,
            self.out_dir / METRICS_FILE,
            last if last is not None and last.is_file() else None,
            tuple(state.history),
        )

    def _run_epoch(self, state: TrainState) -> bool:
        cfg = self.config
        batches = self._batches(state.epoch, state.batch_in_epoch)
        t0 = time.perf_counter() - state.sums.get("seconds", 0.0)
        desc = f"epoch {state.epoch + 1}/{cfg.epochs}"
        with progress_bar(
            self.steps_per_epoch, enabled=cfg.progress, desc=desc, unit="step", initial=state.batch_in_epoch
        ) as bar:
            return self._run_batches(state, batches, bar, t0)

    def _run_batches(self, state: TrainState, batches: list[list[int]], bar: Bar, t0: float) -> bool:
        cfg = self.config
        stop = False
        for indices, batch in zip(batches, load_batches(self.dataset, batches, self.config.num_workers)):
            terms = self._step(batch, indices)
            state.global_step += 1
            state.batch_in_epoch += 1
            n = len(indices)
            s = state.sums
            for key, value in (("pixel", terms.pixel), ("image", terms.image), ("total", terms.total)):
                s[key] = s.get(key, 0.0) + float(value.detach()) * n
            s["n"] = s.get("n", 0.0) + n
            s["seconds"] = time.perf_counter() - t0
            bar.update(1)
            bar.set_postfix_str(f"loss={s['pixel'] / s['n']:.4f}, image_loss={s['image'] / s['n']:.4f}")
            info = StepInfo(
                state.global_step,
                state.epoch,
                float(terms.total.detach()),
                float(terms.pixel.detach()),
                float(terms.image.detach()),
            )
            stop = bool(self.on_step(info)) if self.on_step is not None else False
            stop = stop or (cfg.max_steps is not None and state.global_step >= cfg.max_steps)
            if state.batch_in_epoch == self.steps_per_epoch:
                self._end_epoch(state)
            elif stop or (cfg.checkpoint_every_steps and state.global_step % cfg.checkpoint_every_steps == 0):
                self._save_state(state)
            if stop:
                break
        return stop

    def _end_epoch(self, state: TrainState) -> None:
        s = state.sums
        n = max(s.get("n", 0.0), 1.0)
        epoch_no = state.epoch + 1
        row: dict[str, Any] = {
            "epoch": epoch_no,
            "steps": state.global_step,
            "loss": s.get("pixel", 0.0) / n,
            "image_loss": s.get("image", 0.0) / n,
            "total_loss": s.get("total", 0.0) / n,
            "seconds": s.get("seconds", 0.0),
            "lr": self.config.lr,
        }
        state.history.append(row)
        logger.info(
            "epoch [%d/%d], loss:%.4f, image_loss:%.4f",
            row["epoch"],
            self.config.epochs,
            row["loss"],
            row["image_loss"],
        )
        state.epoch += 1
        state.batch_in_epoch = 0
        state.sums = {}
        sd, cfg = self.model.prompt_learner.state_dict(), self.model.config.to_dict()
        save_prompt_checkpoint(self._epoch_checkpoint(epoch_no), sd, cfg)
        save_prompt_checkpoint(self.out_dir / "prompt_learner.safetensors", sd, cfg)
        self._save_state(state)
        self._write_metrics(state)

    def _epoch_checkpoint(self, epoch: int) -> Path:
        return self.out_dir / "checkpoints" / f"epoch_{epoch:03d}.safetensors"

    def _write_metrics(self, state: TrainState) -> None:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(CSV_COLUMNS), lineterminator="\n")
        w.writeheader()
        for row in state.history:
            w.writerow({k: row.get(k, "") for k in CSV_COLUMNS})
        write_text(self.out_dir / METRICS_FILE, buf.getvalue())
