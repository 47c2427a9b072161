"""Greedy k-center coresets of a reference bank (PatchCore), per body-coordinate bin.

Re-exported by :mod:`medzsad.model.references`.
"""

from __future__ import annotations

import math

import torch

from medzsad.errors import ModelError
from medzsad.model.patch_bank import PatchBank

__all__ = ["kcenter_coreset", "coreset_bank"]


def kcenter_coreset(
    features: torch.Tensor, n: int, *, seed: int = 0, projection_dim: int | None = 128
) -> torch.Tensor:
    """Greedy k-center selection (PatchCore, Roth et al. 2022, Alg. 1).

    Starts from a seeded random row, then repeatedly adds the row farthest (Euclidean) from the
    selected set. Distances use a seeded Gaussian random projection to ``projection_dim``
    dimensions (Johnson-Lindenstrauss, as PatchCore does) when the width is larger.

    Args:
        features: ``(M, D)`` float.
        n: Rows to select (``>= M`` selects all).
        seed: Seed of the first row and the projection.
        projection_dim: Width of the projection, or ``None`` for none.

    Returns:
        ``(min(n, M),)`` int64 indices, in selection order.
    """
    m = int(features.shape[0])
    if n >= m:
        return torch.arange(m, device=features.device)
    if n <= 0:
        return torch.zeros(0, dtype=torch.int64, device=features.device)
    gen = torch.Generator().manual_seed(seed)
    x = features.float()
    if projection_dim is not None and x.shape[1] > projection_dim:
        proj = torch.randn(x.shape[1], projection_dim, generator=gen) / math.sqrt(projection_dim)
        x = x @ proj.to(x.device)
    first = int(torch.randint(m, (1,), generator=gen).item())
    chosen = torch.empty(n, dtype=torch.int64)
    chosen[0] = first
    min_d = ((x - x[first]) ** 2).sum(1)
    for i in range(1, n):
        nxt = int(torch.argmax(min_d).item())
        chosen[i] = nxt
        min_d = torch.minimum(min_d, ((x - x[nxt]) ** 2).sum(1))
    return chosen.to(features.device)


def coreset_bank(
    bank: PatchBank, ratio: float, *, bins: int = 10, seed: int = 0, projection_dim: int | None = 128
) -> PatchBank:
    """Reduce a bank to about ``ratio`` of its patches with greedy k-center per position bin.

    Selection runs within ``bins`` equal bins of the body coordinate, each keeping
    ``ceil(ratio * size)`` patches, so every anatomical level keeps its share (a global coreset
    could drop a level whose patches resemble another level's). Distances use the layers'
    features concatenated.

    Args:
        bank: The full bank.
        ratio: Kept fraction in (0, 1].
        bins: Position bins.
        seed: Seed of :func:`kcenter_coreset`.
        projection_dim: See :func:`kcenter_coreset`.

    Raises:
        ModelError: ``ratio`` outside (0, 1] or ``bins < 1``.
    """
    if not 0.0 < ratio <= 1.0 or bins < 1:
        raise ModelError(f"coreset ratio must be in (0, 1] and bins >= 1; got ratio={ratio}, bins={bins}")
    if ratio == 1.0:
        return bank
    edges = torch.linspace(0.0, 1.0, bins + 1, device=bank.positions.device)[1:-1]
    bin_of = torch.bucketize(bank.positions, edges, right=True)
    keep: list[torch.Tensor] = []
    flat = bank.features.permute(1, 0, 2).reshape(bank.n_patches, -1)
    for b in range(bins):
        rows = torch.nonzero(bin_of == b).flatten()
        if rows.numel() == 0:
            continue
        k = math.ceil(ratio * rows.numel())
        picked = kcenter_coreset(flat[rows], k, seed=seed + b, projection_dim=projection_dim)
        keep.append(rows[picked])
    idx = torch.sort(torch.cat(keep)).values
    return bank.rows(idx)
