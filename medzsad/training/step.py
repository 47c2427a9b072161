"""One training step of the prompt learner (AnomalyCLIP ``train.py``), and the epoch order.

Split from :mod:`medzsad.training.trainer`, which re-exports these functions.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from medzsad.model.anomalyclip import AnomalyCLIP
from medzsad.model.dpam_vision import VisionFeatures
from medzsad.model.losses import LossTerms, anomalyclip_loss
from medzsad.training.config import TrainConfig

__all__ = ["make_optimizer", "batch_loss", "train_step", "epoch_order"]


def make_optimizer(params: Sequence[torch.nn.Parameter], config: TrainConfig) -> torch.optim.Adam:
    """Adam over the prompt parameters with the reference settings (single-tensor implementation)."""
    return torch.optim.Adam(params, lr=config.lr, betas=config.betas, eps=config.eps, foreach=False)


def batch_loss(
    model: AnomalyCLIP,
    labels: torch.Tensor,
    masks: torch.Tensor,
    mask_known: torch.Tensor,
    lam: float,
    images: torch.Tensor | None = None,
    feats: VisionFeatures | None = None,
) -> LossTerms:
    """Loss of one batch; images whose mask is unknown contribute the image loss only.

    Args:
        model: the model (gradients reach its prompt learner only).
        labels: (B,) int64 in {0, 1}.
        masks: (B, S, S) float in {0, 1}.
        mask_known: (B,) bool.
        lam: pixel-loss weight.
        images: (B, 3, S, S) float32 CLIP-normalised, unless ``feats`` is given.
        feats: cached frozen features of the batch.
    """
    if feats is None and images is None:
        raise ValueError("batch_loss needs images or cached features")
    out = model.training_forward(images if images is not None else torch.empty(0), feats)
    if bool(mask_known.all()):
        return anomalyclip_loss(out.logits, labels, out.similarity_maps, masks, lam=lam)
    image_terms = anomalyclip_loss(out.logits, labels, [], None, lam=lam)
    if not bool(mask_known.any()):
        return image_terms
    k = mask_known
    px = anomalyclip_loss(out.logits[k], labels[k], [s[k] for s in out.similarity_maps], masks[k], lam=lam)
    return LossTerms(
        px.pixel + image_terms.image, px.pixel, image_terms.image, px.focal, px.dice_anomalous, px.dice_normal
    )


def train_step(
    model: AnomalyCLIP,
    optimizer: torch.optim.Optimizer,
    labels: torch.Tensor,
    masks: torch.Tensor,
    mask_known: torch.Tensor,
    lam: float,
    images: torch.Tensor | None = None,
    feats: VisionFeatures | None = None,
) -> LossTerms:
    """One optimiser step (zero grad, loss, backward, Adam). Gradients stay in ``.grad`` afterwards."""
    terms = batch_loss(model, labels, masks, mask_known, lam, images, feats)
    optimizer.zero_grad()
    terms.total.backward()
    optimizer.step()
    return terms


def epoch_order(n: int, epoch: int, seed: int, shuffle: bool) -> list[int]:
    """Image order of an epoch: a permutation depending on ``seed`` and ``epoch`` only."""
    if not shuffle:
        return list(range(n))
    g = torch.Generator().manual_seed(int(seed) * 100003 + int(epoch))
    return torch.randperm(n, generator=g).tolist()
