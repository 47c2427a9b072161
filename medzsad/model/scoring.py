"""AnomalyCLIP scoring head: global anomaly probability and per-layer anomaly maps.

Pure functions on tensors; they reproduce the reference ``test.py``/``compute_similarity``/
``get_similarity_map`` arithmetic, and scipy's ``gaussian_filter`` (mode ``reflect`` = half-sample
symmetric, ``truncate=4``) in torch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "image_anomaly_probs",
    "image_logits",
    "token_similarity",
    "similarity_maps",
    "anomaly_map_from_similarity",
    "gaussian_smooth",
]


def image_logits(
    image_features: torch.Tensor, text_features: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Class-token logits against ``[normal, anomalous]`` text features.

    Args:
        image_features: ``(B, D)`` float, L2-normalised.
        text_features: ``(2, D)`` float, L2-normalised.
        temperature: Softmax temperature (0.07).

    Returns:
        ``(B, 2)`` float cosine / temperature.
    """
    return (image_features[:, None, :] @ text_features.t())[:, 0, :] / temperature


def image_anomaly_probs(
    image_features: torch.Tensor, text_features: torch.Tensor, temperature: float
) -> torch.Tensor:
    """``(B,)`` float in [0, 1]: softmax probability of the anomalous prompt (paper Eq. 1).

    Computed one image at a time: a one-row product takes a different BLAS path for ``B == 1``
    than for ``B > 1``, and each image's score must not depend on its batch.
    """
    text = text_features.t()
    rows = [(image_features[i : i + 1] @ text / temperature) for i in range(image_features.shape[0])]
    return torch.cat(rows).softmax(dim=-1)[:, 1]


def token_similarity(
    patch_tokens: torch.Tensor, text_features: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Two-class softmax for every token.

    Args:
        patch_tokens: ``(B, N, D)`` float, L2-normalised (class token included or not).
        text_features: ``(2, D)`` float, L2-normalised.
        temperature: Softmax temperature.

    Returns:
        ``(B, N, 2)`` float in [0, 1], ``[..., 0]`` normal, ``[..., 1]`` anomalous. Computed as an
        elementwise product summed over ``D`` like the reference (not a matmul).
    """
    feats = patch_tokens[:, :, None, :] * text_features[None, None, :, :]
    return (feats.sum(-1) / temperature).softmax(dim=-1)


def similarity_maps(similarity: torch.Tensor, size: int) -> torch.Tensor:
    """Grid the patch similarities and resize them to the image.

    Args:
        similarity: ``(B, G*G, 2)`` float, patch tokens only, row-major grid.
        size: Output side ``S``.

    Returns:
        ``(B, 2, S, S)`` float, bilinear (``align_corners=False``, no antialias).
    """
    side = int(round(similarity.shape[1] ** 0.5))
    sm = similarity.reshape(similarity.shape[0], side, side, -1).permute(0, 3, 1, 2)
    return F.interpolate(sm, (size, size), mode="bilinear", align_corners=False)


def anomaly_map_from_similarity(maps: torch.Tensor) -> torch.Tensor:
    """``(B, 2, S, S)`` -> ``(B, S, S)``: ``(p_anomalous + 1 - p_normal) / 2`` in [0, 1]."""
    return (maps[:, 1] + 1 - maps[:, 0]) / 2.0


def gaussian_smooth(maps: torch.Tensor, sigma: float, truncate: float = 4.0) -> torch.Tensor:
    """Gaussian smoothing with scipy ``gaussian_filter`` semantics, per image.

    Separable, axis 0 then axis 1, each pass accumulated in float64 and stored back in the input
    dtype (as scipy does for a float32 output), with half-sample symmetric padding (scipy
    ``reflect``), radius ``int(truncate * sigma + 0.5)``.

    Args:
        maps: ``(B, H, W)`` float.
        sigma: Standard deviation in pixels; 0 returns a copy.
        truncate: Kernel radius in standard deviations.

    Returns:
        ``(B, H, W)`` same dtype as ``maps``.
    """
    if sigma <= 0:
        return maps.clone()
    radius = int(truncate * float(sigma) + 0.5)
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64, device=maps.device)
    kernel = torch.exp(-0.5 / (float(sigma) ** 2) * offsets**2)
    kernel = kernel / kernel.sum()
    out = maps
    for axis in (1, 2):
        out = _correlate_symmetric(out, kernel, radius, axis).to(maps.dtype)
    return out


def _correlate_symmetric(x: torch.Tensor, kernel: torch.Tensor, radius: int, axis: int) -> torch.Tensor:
    n = x.shape[axis]
    idx = torch.arange(-radius, n + radius, device=x.device)
    period = 2 * n
    idx = torch.remainder(idx, period)
    idx = torch.where(idx >= n, period - 1 - idx, idx)
    padded = torch.index_select(x.to(torch.float64), axis, idx)
    moved = padded.movedim(axis, -1)
    flat = moved.reshape(-1, 1, moved.shape[-1])
    res = F.conv1d(flat, kernel.flip(0)[None, None, :])
    return res.reshape(*moved.shape[:-1], n).movedim(-1, axis)
