"""AnomalyCLIP training losses (paper Eq. 4-5): focal + two dice terms per layer, and image CE.

Arithmetic mirrors the reference ``loss.py``/``train.py``: the focal loss clamps the one-hot target
to ``[smooth, 1 - smooth]`` and adds ``smooth`` to ``p_t`` before the log; dice uses ``+1``
smoothing per image and averages over the batch; the pixel loss is ``lam`` times the sum over
layers.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

__all__ = ["LossTerms", "focal_loss", "binary_dice_loss", "anomalyclip_loss"]


class LossTerms(NamedTuple):
    """Loss values of one step (all scalar tensors).

    Attributes:
        total: ``pixel + image``, the backward target.
        pixel: ``lam * sum_layers(focal + dice_anomalous + dice_normal)``.
        image: Cross-entropy of the image logits.
        focal: One term per layer.
        dice_anomalous: ``dice(map[:, 1], gt)`` per layer.
        dice_normal: ``dice(map[:, 0], 1 - gt)`` per layer.
    """

    total: torch.Tensor
    pixel: torch.Tensor
    image: torch.Tensor
    focal: list[torch.Tensor]
    dice_anomalous: list[torch.Tensor]
    dice_normal: list[torch.Tensor]


def focal_loss(
    probs: torch.Tensor, target: torch.Tensor, gamma: float = 2.0, smooth: float = 1e-5
) -> torch.Tensor:
    """Focal loss on class probabilities (reference ``FocalLoss()`` with ``alpha=None``).

    Args:
        probs: ``(B, C, H, W)`` float, softmax probabilities.
        target: ``(B, H, W)`` float or int in ``{0, .., C-1}``.
        gamma: Focusing exponent.
        smooth: Label smoothing and log offset.

    Returns:
        Scalar mean loss.
    """
    num_class = probs.shape[1]
    flat = probs.reshape(probs.shape[0], num_class, -1).permute(0, 2, 1).reshape(-1, num_class)
    idx = target.reshape(-1, 1).long()
    one_hot = torch.zeros(idx.shape[0], num_class, dtype=probs.dtype, device=probs.device).scatter_(1, idx, 1)
    one_hot = one_hot.clamp(smooth / (num_class - 1), 1.0 - smooth)
    pt = (one_hot * flat).sum(1) + smooth
    loss = -1 * torch.pow(1 - pt, gamma) * pt.log()
    return loss.mean()


def binary_dice_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``1 - mean_b (2 |p t| + 1) / (|p| + |t| + 1)``; ``pred``/``target`` ``(B, H, W)`` float."""
    n = target.shape[0]
    p = pred.reshape(n, -1)
    t = target.reshape(n, -1)
    dice = (2 * (p * t).sum(1) + 1) / (p.sum(1) + t.sum(1) + 1)
    return 1 - dice.sum() / n


def anomalyclip_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    layer_similarity_maps: list[torch.Tensor],
    gt_masks: torch.Tensor | None,
    lam: float = 4.0,
) -> LossTerms:
    """AnomalyCLIP objective of one batch.

    Args:
        logits: ``(B, 2)`` float image logits (cosine / temperature).
        labels: ``(B,)`` int64 in {0, 1}.
        layer_similarity_maps: One ``(B, 2, S, S)`` float probability map per tapped layer.
        gt_masks: ``(B, S, S)`` float/uint8 masks (binarised at 0.5), or ``None`` to train the
            image loss only (images without masks).
        lam: Weight of the pixel loss.

    Returns:
        :class:`LossTerms`.
    """
    image = F.cross_entropy(logits, labels.long())
    focal: list[torch.Tensor] = []
    dice_a: list[torch.Tensor] = []
    dice_n: list[torch.Tensor] = []
    pixel = torch.zeros((), dtype=logits.dtype, device=logits.device)
    if gt_masks is not None:
        gt = (gt_masks.to(logits.dtype) > 0.5).to(logits.dtype)
        layer_sum = torch.zeros((), dtype=logits.dtype, device=logits.device)
        for sm in layer_similarity_maps:
            f, da, dn = focal_loss(sm, gt), binary_dice_loss(sm[:, 1], gt), binary_dice_loss(sm[:, 0], 1 - gt)
            focal.append(f)
            dice_a.append(da)
            dice_n.append(dn)
            layer_sum = layer_sum + f + da + dn
        pixel = lam * layer_sum
    return LossTerms(pixel + image, pixel, image, focal, dice_a, dice_n)
