"""Few-shot normal references: a patch-feature memory bank and a chunked nearest-neighbour search.

A bank holds the tapped layers' patch tokens of a few normal images, L2-normalised and stored in
fp16, each with the normalised body coordinate of its slice (``0`` at the first body slice, ``1`` at
the last; 2D images use ``0.5``). A query patch is compared only with bank patches whose coordinate
lies within ``window`` of its own, so a slice meets reference patches from nearby anatomical levels.
The reference distance of a patch is ``d = 1 - max cos`` over those patches (PatchCore's nearest-
neighbour score, Roth et al. 2022, Eq. 6, on cosine instead of Euclidean distance; WinCLIP+/
AdaptCLIP compare patches with normal references the same way).

The search never materialises more than ``chunk_bytes`` per step: queries and bank are cut into
blocks so that the float32 similarity block plus the float32 copy of the bank block fit. Pure
torch; no file access (see :mod:`medzsad.references` for the safetensors files).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F

from medzsad.errors import ModelError

__all__ = [
    "PatchBank",
    "ChunkPlan",
    "SearchOptions",
    "bank_from_tokens",
    "merge_banks",
    "kcenter_coreset",
    "coreset_bank",
    "chunk_plan",
    "max_similarity",
    "reference_distance",
    "faiss_available",
    "DEFAULT_CHUNK_BYTES",
]

#: Default memory budget of one search step (64 MiB).
DEFAULT_CHUNK_BYTES = 64 * 2**20

_F32 = 4


class PatchBank(NamedTuple):
    """A memory bank of normal patch features.

    Attributes:
        features: ``(L, M, D)`` float16 (or float32), L2-normalised patch tokens of ``L`` tapped
            layers; row ``m`` of every layer is the same patch. Rows sorted by ``positions``.
        positions: ``(M,)`` float32 in [0, 1], ascending: normalised body coordinate of each patch.
    """

    features: torch.Tensor
    positions: torch.Tensor

    @property
    def n_patches(self) -> int:
        """Number of patches ``M``."""
        return int(self.positions.shape[0])

    @property
    def nbytes(self) -> int:
        """Bytes held by the two tensors."""
        return int(
            self.features.numel() * self.features.element_size()
            + self.positions.numel() * self.positions.element_size()
        )

    def to(self, device: str | torch.device) -> PatchBank:
        """The bank on ``device`` (dtypes kept)."""
        return PatchBank(self.features.to(device), self.positions.to(device))


class SearchOptions(NamedTuple):
    """How the reference distance is searched.

    Attributes:
        window: Half-width of the body-coordinate window (0.1 = +-10 % of the body extent);
            ``>= 1`` compares with the whole bank.
        chunk_bytes: Most bytes one search step may allocate (similarity block + bank block copy).
        backend: ``"torch"`` (chunked matmul) or ``"faiss"`` (exact inner-product index; needs
            ``faiss`` installed; its internal memory is faiss's own).
    """

    window: float = 0.1
    chunk_bytes: int = DEFAULT_CHUNK_BYTES
    backend: str = "torch"


class ChunkPlan(NamedTuple):
    """Block shape of the chunked search.

    Attributes:
        query_rows: Queries per block ``Qc``.
        bank_rows: Bank rows per block ``Mc``.
        block_bytes: Bytes one step allocates: ``4 * (Qc * Mc + Mc * D)`` (float32 similarity
            block and float32 bank block).
    """

    query_rows: int
    bank_rows: int
    block_bytes: int


def faiss_available() -> bool:
    """Whether the optional ``faiss`` package can be imported."""
    try:
        import faiss  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        return False
    return True


def bank_from_tokens(patch_tokens: Sequence[torch.Tensor], positions: torch.Tensor) -> PatchBank:
    """Bank entries of a batch of images.

    Args:
        patch_tokens: One ``(B, 1 + G*G, D)`` float tensor per tapped layer, class token first
            (:class:`~medzsad.model.dpam_vision.VisionFeatures.patch_tokens`).
        positions: ``(B,)`` float in [0, 1], body coordinate of each image.

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
    return _sorted(PatchBank(feats.to(torch.float16), pos))


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
    return _sorted(PatchBank(feats, pos))


def _sorted(bank: PatchBank) -> PatchBank:
    order = torch.argsort(bank.positions, stable=True)
    return PatchBank(bank.features[:, order], bank.positions[order].contiguous())


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
    return PatchBank(bank.features[:, idx], bank.positions[idx])


def chunk_plan(n_queries: int, dim: int, n_bank: int, chunk_bytes: int, copy_row_bytes: int = 0) -> ChunkPlan:
    """Block shape so that one step allocates at most ``chunk_bytes``.

    Queries are kept whole when ``chunk_bytes`` holds ``2 * D`` floats per query; bank rows then
    fill the rest of the budget.

    Args:
        n_queries: Queries ``Q``.
        dim: Feature width ``D``.
        n_bank: Bank rows ``M``.
        chunk_bytes: Budget of one step.
        copy_row_bytes: Extra bytes per bank row when the bank lives on another device than the
            queries (each block is copied over first).

    Raises:
        ModelError: ``chunk_bytes`` below one bank row against one query.
    """
    elems = chunk_bytes // _F32
    row = 1 + 2 * dim + -(-copy_row_bytes // _F32)
    if elems < row:
        raise ModelError(
            f"search chunk of {chunk_bytes} bytes is too small for features of width {dim}; "
            f"give at least {_F32 * row} bytes"
        )
    q = max(1, min(n_queries, elems // (2 * dim), (chunk_bytes - _F32 * dim - copy_row_bytes) // _F32))
    m = max(1, min(max(n_bank, 1), chunk_bytes // (_F32 * (q + dim) + copy_row_bytes)))
    return ChunkPlan(q, m, _F32 * (q * m + m * dim) + m * copy_row_bytes)


def _block_max(queries: torch.Tensor, bank_block: torch.Tensor) -> torch.Tensor:
    """``(Qc,)`` max similarity of each query against one bank block (the only large allocation)."""
    return (queries @ bank_block.float().t()).amax(dim=1)


def max_similarity(
    queries: torch.Tensor,
    bank: torch.Tensor,
    *,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    backend: str = "torch",
) -> torch.Tensor:
    """Largest inner product of each query with the bank rows (cosine for normalised rows).

    Args:
        queries: ``(Q, D)`` float, L2-normalised.
        bank: ``(M, D)`` float16/float32, L2-normalised (``M >= 1``).
        chunk_bytes: Budget of one step (see :func:`chunk_plan`; torch backend).
        backend: ``"torch"`` or ``"faiss"``.

    Returns:
        ``(Q,)`` float32 in [-1, 1] on the queries' device.

    Raises:
        ModelError: Empty bank, width mismatch, unknown backend or faiss not installed.
    """
    if bank.shape[0] == 0 or bank.shape[1] != queries.shape[1]:
        raise ModelError(
            f"cannot search {tuple(queries.shape)} queries in a bank of shape {tuple(bank.shape)}"
        )
    if backend == "faiss":
        return _faiss_max_similarity(queries, bank)
    if backend != "torch":
        raise ModelError(f"unknown search backend {backend!r}; use 'torch' or 'faiss'")
    q_all = queries.float()
    copy = 0 if bank.device == q_all.device else int(bank.shape[1]) * bank.element_size()
    plan = chunk_plan(int(q_all.shape[0]), int(q_all.shape[1]), int(bank.shape[0]), chunk_bytes, copy)
    out = torch.empty(q_all.shape[0], dtype=torch.float32, device=q_all.device)
    for qs in range(0, q_all.shape[0], plan.query_rows):
        q = q_all[qs : qs + plan.query_rows]
        best = torch.full((q.shape[0],), -math.inf, dtype=torch.float32, device=q.device)
        for ms in range(0, bank.shape[0], plan.bank_rows):
            best = torch.maximum(best, _block_max(q, bank[ms : ms + plan.bank_rows].to(q.device)))
        out[qs : qs + q.shape[0]] = best
    return out


def _faiss_max_similarity(queries: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
    try:
        import faiss
    except ImportError as e:
        raise ModelError(
            "search backend 'faiss' asked for but faiss is not installed; "
            "pip install faiss-cpu or use 'torch'"
        ) from e
    index: Any = faiss.IndexFlatIP(int(bank.shape[1]))
    index.add(bank.float().cpu().contiguous().numpy())
    sims, _ = index.search(queries.float().cpu().contiguous().numpy(), 1)
    return torch.from_numpy(sims[:, 0]).to(queries.device)


def window_rows(bank: PatchBank, position: float, window: float) -> tuple[int, int]:
    """Row range ``[lo, hi)`` of the bank within ``window`` of ``position`` (whole bank if empty)."""
    if window >= 1.0:
        return 0, bank.n_patches
    pos = bank.positions
    probe = torch.tensor([position - window, position + window], dtype=pos.dtype, device=pos.device)
    lo = int(torch.searchsorted(pos, probe[:1]).item())
    hi = int(torch.searchsorted(pos, probe[1:], right=True).item())
    if hi <= lo:  # no reference at this level (e.g. a longer scan): compare with every level
        return 0, bank.n_patches
    return lo, hi


def reference_distance(
    patch_tokens: Sequence[torch.Tensor], positions: torch.Tensor, bank: PatchBank, options: SearchOptions
) -> torch.Tensor:
    """Per-layer reference distance ``d = 1 - max cos`` of every patch.

    Slices whose windows cover the same bank rows are searched together (one query matrix).

    Args:
        patch_tokens: One ``(B, 1 + G*G, D)`` float tensor per tapped layer, class token first.
        positions: ``(B,)`` float in [0, 1], body coordinate of each image.
        bank: Reference bank with the same layers (on the tokens' device or the CPU).
        options: Window, chunk budget and backend.

    Returns:
        ``(L, B, G*G)`` float32, values in [0, 2] (in practice [0, 1]).

    Raises:
        ModelError: Layer count or width differs from the bank's, or the bank is empty.
    """
    n_layers, _, width = bank.features.shape
    if len(patch_tokens) != n_layers or patch_tokens[0].shape[-1] != width:
        raise ModelError(
            f"reference bank has {n_layers} layers of width {width}; the model taps {len(patch_tokens)} "
            f"of width {patch_tokens[0].shape[-1]}: rebuild the references with this model"
        )
    if bank.n_patches == 0:
        raise ModelError("the reference bank is empty")
    b, n, _ = patch_tokens[0].shape
    out = torch.empty(n_layers, b, n - 1, dtype=torch.float32, device=patch_tokens[0].device)
    groups: dict[tuple[int, int], list[int]] = {}
    for i, p in enumerate(positions.tolist()):
        groups.setdefault(window_rows(bank, float(p), options.window), []).append(i)
    for (lo, hi), members in groups.items():
        idx = torch.tensor(members, device=out.device)
        for layer, tokens in enumerate(patch_tokens):
            q = F.normalize(tokens[idx, 1:, :].float(), dim=-1).reshape(len(members) * (n - 1), width)
            sim = max_similarity(
                q, bank.features[layer, lo:hi], chunk_bytes=options.chunk_bytes, backend=options.backend
            )
            out[layer, idx] = 1.0 - sim.reshape(len(members), n - 1)
    return out
