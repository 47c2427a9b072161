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
from medzsad.model.coreset import coreset_bank, kcenter_coreset
from medzsad.model.patch_bank import PatchBank, bank_from_tokens, merge_banks

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
    "nearest_similarity",
    "window_rows",
    "ReferenceTerms",
    "patch_terms",
    "reference_terms",
    "reference_distance",
    "faiss_available",
    "DEFAULT_CHUNK_BYTES",
]

#: Default memory budget of one search step (64 MiB).
DEFAULT_CHUNK_BYTES = 64 * 2**20

_F32 = 4


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


def _block_argmax(queries: torch.Tensor, bank_block: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_block_max` and the row of the block that gives it (the first on ties)."""
    best = (queries @ bank_block.float().t()).max(dim=1)
    return best.values, best.indices


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
    return _search(queries, bank, chunk_bytes, backend, with_index=False)[0]


def nearest_similarity(
    queries: torch.Tensor,
    bank: torch.Tensor,
    *,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    backend: str = "torch",
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`max_similarity` and the bank row of each maximum (the nearest neighbour).

    Returns:
        ``(Q,)`` float32 similarities and ``(Q,)`` int64 bank rows (the first row on ties), on the
        queries' device.

    Raises:
        ModelError: See :func:`max_similarity`.
    """
    sim, row = _search(queries, bank, chunk_bytes, backend, with_index=True)
    assert row is not None  # noqa: S101 - with_index=True always returns rows
    return sim, row


def _search(
    queries: torch.Tensor, bank: torch.Tensor, chunk_bytes: int, backend: str, *, with_index: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    if bank.shape[0] == 0 or bank.shape[1] != queries.shape[1]:
        raise ModelError(
            f"cannot search {tuple(queries.shape)} queries in a bank of shape {tuple(bank.shape)}"
        )
    if backend == "faiss":
        return _faiss_nearest(queries, bank)
    if backend != "torch":
        raise ModelError(f"unknown search backend {backend!r}; use 'torch' or 'faiss'")
    q_all = queries.float()
    copy = 0 if bank.device == q_all.device else int(bank.shape[1]) * bank.element_size()
    plan = chunk_plan(int(q_all.shape[0]), int(q_all.shape[1]), int(bank.shape[0]), chunk_bytes, copy)
    out = torch.empty(q_all.shape[0], dtype=torch.float32, device=q_all.device)
    rows = torch.zeros(q_all.shape[0], dtype=torch.int64, device=q_all.device) if with_index else None
    for qs in range(0, q_all.shape[0], plan.query_rows):
        q = q_all[qs : qs + plan.query_rows]
        best = torch.full((q.shape[0],), -math.inf, dtype=torch.float32, device=q.device)
        best_row = torch.zeros(q.shape[0], dtype=torch.int64, device=q.device)
        for ms in range(0, bank.shape[0], plan.bank_rows):
            block = bank[ms : ms + plan.bank_rows].to(q.device)
            if rows is None:
                best = torch.maximum(best, _block_max(q, block))
                continue
            value, row = _block_argmax(q, block)
            better = value > best
            best = torch.where(better, value, best)
            best_row = torch.where(better, row + ms, best_row)
        out[qs : qs + q.shape[0]] = best
        if rows is not None:
            rows[qs : qs + q.shape[0]] = best_row
    return out, rows


def _faiss_nearest(queries: torch.Tensor, bank: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        import faiss
    except ImportError as e:
        raise ModelError(
            "search backend 'faiss' asked for but faiss is not installed; "
            "pip install faiss-cpu or use 'torch'"
        ) from e
    index: Any = faiss.IndexFlatIP(int(bank.shape[1]))
    index.add(bank.float().cpu().contiguous().numpy())
    sims, rows = index.search(queries.float().cpu().contiguous().numpy(), 1)
    return torch.from_numpy(sims[:, 0]).to(queries.device), torch.from_numpy(rows[:, 0]).to(queries.device)


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


class ReferenceTerms(NamedTuple):
    """The reference terms of every patch, per tapped layer.

    Attributes:
        distance: ``(L, ...)`` float32 ``d = 1 - max cos`` (in [0, 2], in practice [0, 1]).
        residual: ``(L, ...)`` float32: the patch's zero-shot anomaly value minus that of its
            nearest bank patch (the most similar normal tissue at this level), or ``None`` when
            not asked for.
    """

    distance: torch.Tensor
    residual: torch.Tensor | None


def _check_bank(bank: PatchBank, n_layers: int, width: int, with_anomaly: bool) -> None:
    bank_layers, _, bank_width = bank.features.shape
    if n_layers != bank_layers or width != bank_width:
        raise ModelError(
            f"reference bank has {bank_layers} layers of width {bank_width}; the model taps {n_layers} "
            f"of width {width}: rebuild the references with this model"
        )
    if bank.n_patches == 0:
        raise ModelError("the reference bank is empty")
    if with_anomaly and bank.anomaly is None:
        raise ModelError(
            "the reference bank has no zero-shot values of its patches (built before maps in site "
            "units): rebuild the profile with this medzsad"
        )


def patch_terms(
    queries: Sequence[torch.Tensor],
    positions: torch.Tensor,
    bank: PatchBank,
    options: SearchOptions,
    anomaly: torch.Tensor | None = None,
) -> ReferenceTerms:
    """Reference terms of single patches, each compared within ``window`` of its own position.

    Patches at positions whose windows cover the same bank rows are searched together (one query
    matrix, in the patches' order).

    Args:
        queries: One ``(Q, D)`` float tensor per tapped layer, L2-normalised.
        positions: ``(Q,)`` float body coordinate of each patch.
        bank: Reference bank with the same layers (on the queries' device or the CPU).
        options: Window, chunk budget and backend.
        anomaly: ``(L, Q)`` zero-shot anomaly value of each patch: the residual is computed too
            (the bank must carry its own).

    Returns:
        :class:`ReferenceTerms` with ``(L, Q)`` tensors.

    Raises:
        ModelError: Layer count or width differs from the bank's, an empty bank, or a residual asked
            of a bank without zero-shot values.
    """
    n_layers, q_count = len(queries), int(positions.shape[0])
    _check_bank(bank, n_layers, int(queries[0].shape[-1]), anomaly is not None)
    device = queries[0].device
    distance = torch.empty(n_layers, q_count, dtype=torch.float32, device=device)
    residual = None if anomaly is None else torch.empty_like(distance)
    levels, level_of = torch.unique(positions, return_inverse=True)
    groups: dict[tuple[int, int], list[int]] = {}
    for u, p in enumerate(levels.tolist()):
        groups.setdefault(window_rows(bank, float(p), options.window), []).append(u)
    for (lo, hi), members in groups.items():
        rows = torch.nonzero(torch.isin(level_of, torch.tensor(members, device=level_of.device)))
        rows = rows.flatten().to(device)
        for layer, q in enumerate(queries):
            feats, chunk, backend = bank.features[layer, lo:hi], options.chunk_bytes, options.backend
            if anomaly is None or residual is None or bank.anomaly is None:
                sim = max_similarity(q[rows], feats, chunk_bytes=chunk, backend=backend)
            else:
                sim, nearest = nearest_similarity(q[rows], feats, chunk_bytes=chunk, backend=backend)
                own = anomaly[layer].to(device)[rows]
                residual[layer, rows] = own - bank.anomaly[layer, lo:hi].to(device)[nearest]
            distance[layer, rows] = 1.0 - sim
    return ReferenceTerms(distance, residual)


def reference_terms(
    patch_tokens: Sequence[torch.Tensor],
    positions: torch.Tensor,
    bank: PatchBank,
    options: SearchOptions,
    anomaly: torch.Tensor | None = None,
) -> ReferenceTerms:
    """:func:`patch_terms` of every patch of a batch of images.

    Args:
        patch_tokens: One ``(B, 1 + G*G, D)`` float tensor per tapped layer, class token first.
        positions: ``(B,)`` float in [0, 1], body coordinate of each image.
        bank: Reference bank with the same layers.
        options: Window, chunk budget and backend.
        anomaly: ``(L, B, G*G)`` zero-shot anomaly value of each patch (for the residual).

    Returns:
        :class:`ReferenceTerms` with ``(L, B, G*G)`` tensors.

    Raises:
        ModelError: See :func:`patch_terms`.
    """
    b, n, width = patch_tokens[0].shape
    queries = [F.normalize(t[:, 1:, :].float(), dim=-1).reshape(b * (n - 1), width) for t in patch_tokens]
    flat = None if anomaly is None else anomaly.reshape(len(patch_tokens), b * (n - 1))
    pos = positions.float().to(queries[0].device).repeat_interleave(n - 1)
    terms = patch_terms(queries, pos, bank, options, flat)
    shape = (len(patch_tokens), b, n - 1)
    residual = None if terms.residual is None else terms.residual.reshape(shape)
    return ReferenceTerms(terms.distance.reshape(shape), residual)


def reference_distance(
    patch_tokens: Sequence[torch.Tensor], positions: torch.Tensor, bank: PatchBank, options: SearchOptions
) -> torch.Tensor:
    """Per-layer reference distance ``d = 1 - max cos`` of every patch (:func:`reference_terms`).

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
    return reference_terms(patch_tokens, positions, bank, options).distance
