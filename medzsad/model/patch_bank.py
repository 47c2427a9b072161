"""A memory bank of normal patch features: its type, and building it from a batch's tokens.

Re-exported by :mod:`medzsad.model.references` (the search), which is where users import it from.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F

from medzsad.errors import ModelError

__all__ = ["PatchBank", "bank_from_tokens", "merge_banks"]


class PatchBank(NamedTuple):
    """A memory bank of normal patch features.

    Attributes:
        features: ``(L, M, D)`` float16 (or float32), L2-normalised patch tokens of ``L`` tapped
            layers; row ``m`` of every layer is the same patch. Rows sorted by ``positions``.
        positions: ``(M,)`` float32 in [0, 1], ascending: normalised body coordinate of each patch.
        anomaly: ``(L, M)`` float32 in [0, 1]: the zero-shot anomaly value of each patch per layer
            (:meth:`~medzsad.model.anomalyclip.AnomalyCLIP.patch_anomaly`), or ``None`` (a bank
            built before maps in site units; it cannot normalise the zero-shot term).
    """

    features: torch.Tensor
    positions: torch.Tensor
    anomaly: torch.Tensor | None = None

    @property
    def n_patches(self) -> int:
        """Number of patches ``M``."""
        return int(self.positions.shape[0])

    @property
    def nbytes(self) -> int:
        """Bytes held by the two tensors."""
        extra = 0 if self.anomaly is None else self.anomaly.numel() * self.anomaly.element_size()
        return int(
            self.features.numel() * self.features.element_size()
            + self.positions.numel() * self.positions.element_size()
            + extra
        )

    def to(self, device: str | torch.device) -> PatchBank:
        """The bank on ``device`` (dtypes kept)."""
        anomaly = None if self.anomaly is None else self.anomaly.to(device)
        return PatchBank(self.features.to(device), self.positions.to(device), anomaly)

    def rows(self, index: torch.Tensor) -> PatchBank:
        """The bank's rows ``index`` (a subset or a reordering) of every tensor."""
        anomaly = None if self.anomaly is None else self.anomaly[:, index]
        return PatchBank(self.features[:, index], self.positions[index], anomaly)


def bank_from_tokens(
    patch_tokens: Sequence[torch.Tensor], positions: torch.Tensor, anomaly: torch.Tensor | None = None
) -> PatchBank:
    """Bank entries of a batch of images.

    Args:
        patch_tokens: One ``(B, 1 + G*G, D)`` float tensor per tapped layer, class token first
            (:class:`~medzsad.model.dpam_vision.VisionFeatures.patch_tokens`).
        positions: ``(B,)`` float in [0, 1], body coordinate of each image.
        anomaly: ``(L, B, G*G)`` zero-shot anomaly value of each patch, or ``None``.

    Returns:
        :class:`PatchBank` with ``M = B * G * G`` patches, float16, sorted by position (on the
        tokens' device).

    Raises:
        ModelError: No layer, or ``positions`` does not match the batch.
    """
    if not patch_tokens:
        raise ModelError("no tapped layer: a reference bank needs the patch tokens of >= 1 layer")
    b, n, d = patch_tokens[0].shape
    if positions.shape != (b,):
        raise ModelError(f"positions must have shape ({b},), got {tuple(positions.shape)}")
    feats = torch.stack(
        [F.normalize(t[:, 1:, :].float(), dim=-1).reshape(b * (n - 1), d) for t in patch_tokens]
    )
    pos = positions.float().to(feats.device).repeat_interleave(n - 1)
    flat = None
    if anomaly is not None:
        flat = anomaly.float().reshape(len(patch_tokens), b * (n - 1)).to(feats.device)
    return _sorted(PatchBank(feats.to(torch.float16), pos, flat))


def merge_banks(banks: Sequence[PatchBank]) -> PatchBank:
    """Concatenate banks (same layers and width) and sort by position.

    Raises:
        ModelError: No bank, or banks of different layer count or width.
    """
    if not banks:
        raise ModelError("no reference bank to merge: give at least one reference image")
    shapes = {(int(bk.features.shape[0]), int(bk.features.shape[2])) for bk in banks}
    if len(shapes) != 1:
        raise ModelError(f"reference banks of different (layers, width) cannot be merged: {sorted(shapes)}")
    feats = torch.cat([bk.features for bk in banks], dim=1)
    pos = torch.cat([bk.positions for bk in banks])
    with_anomaly = all(bk.anomaly is not None for bk in banks)
    anomaly = torch.cat([bk.anomaly for bk in banks], dim=1) if with_anomaly else None  # type: ignore[misc]
    return _sorted(PatchBank(feats, pos, anomaly))


def _sorted(bank: PatchBank) -> PatchBank:
    order = torch.argsort(bank.positions, stable=True)
    out = bank.rows(order)
    return out._replace(positions=out.positions.contiguous())
