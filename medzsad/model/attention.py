"""Fused attention for the DPAM blocks: both paths through ``F.scaled_dot_product_attention``.

The reference (AnomalyCLIP ``Attention.forward``) computes, per head, with ``scale = head_dim**-0.5``:

* query-key path: ``softmax(q k^T * scale) v``
* value-value path (DPAM, paper Sec. 3.3): ``softmax(v v^T * scale) v``

Both are written here as one SDPA call each, with the scale passed explicitly (it equals SDPA's
default ``1/sqrt(head_dim)``, but the reference's value is the contract). SDPA picks a fused kernel
(flash attention on CPU and CUDA) that never materialises the ``(B, H, L, L)`` weights. Its
results for one image do not depend on the other images of the batch (per-row kernels), which the
batch-invariance tests check bit for bit.

Tensor layout: tokens are ``(B, L, C)`` contiguous, batch first; heads are views
``(B, H, L, C/H)`` of the fused ``in_proj`` output, so splitting them copies nothing, and SDPA's
output ``(B, H, L, C/H)`` is laid out ``(B, L, H, C/H)`` so merging heads is a view too.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.nn.functional as F

__all__ = [
    "QKV",
    "attend",
    "project_kv",
    "project_q",
    "project_qkv",
    "query_key_attention",
    "value_value_attention",
]


class QKV(NamedTuple):
    """Per-head projections, each ``(B, H, L, C/H)`` (views of one fused projection)."""

    q: torch.Tensor | None
    k: torch.Tensor
    v: torch.Tensor


def _split(t: torch.Tensor, parts: int, heads: int) -> list[torch.Tensor]:
    bsz, length, width = t.shape
    head_dim = width // (parts * heads)
    return list(t.view(bsz, length, parts, heads, head_dim).permute(2, 0, 3, 1, 4).unbind(0))


def project_qkv(attn: Any, h: torch.Tensor) -> QKV:
    """Project ``h`` ``(B, L, C)`` with an ``nn.MultiheadAttention``'s fused ``in_proj``."""
    q, k, v = _split(F.linear(h, attn.in_proj_weight, attn.in_proj_bias), 3, attn.num_heads)
    return QKV(q, k, v)


def project_kv(attn: Any, h: torch.Tensor) -> QKV:
    """Keys and values only (rows ``C:3C`` of ``in_proj``); ``q`` is ``None``."""
    width = h.shape[-1]
    bias = None if attn.in_proj_bias is None else attn.in_proj_bias[width:]
    k, v = _split(F.linear(h, attn.in_proj_weight[width:], bias), 2, attn.num_heads)
    return QKV(None, k, v)


def project_q(attn: Any, h: torch.Tensor) -> torch.Tensor:
    """Queries only (rows ``0:C`` of ``in_proj``) of ``h`` ``(B, Lq, C)``: ``(B, H, Lq, C/H)``."""
    width = h.shape[-1]
    bias = None if attn.in_proj_bias is None else attn.in_proj_bias[:width]
    return _split(F.linear(h, attn.in_proj_weight[:width], bias), 1, attn.num_heads)[0]


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``softmax(q k^T * head_dim**-0.5) v`` with heads merged.

    Args:
        q: ``(B, H, Lq, d)``.
        k: ``(B, H, L, d)``.
        v: ``(B, H, L, d)``.

    Returns:
        ``(B, Lq, H*d)`` float, same dtype as ``q``.
    """
    bsz, heads, length, head_dim = q.shape
    out = F.scaled_dot_product_attention(q, k, v, scale=head_dim**-0.5)
    return out.transpose(1, 2).reshape(bsz, length, heads * head_dim)


def query_key_attention(attn: Any, qkv: QKV, q: torch.Tensor | None = None) -> torch.Tensor:
    """The original path, projected by ``out_proj``: ``(B, Lq, C)``.

    Args:
        attn: The block's ``nn.MultiheadAttention`` (weights only).
        qkv: Projections of the block input.
        q: Queries to use instead of ``qkv.q`` (e.g. the class token only).
    """
    query = qkv.q if q is None else q
    if query is None:
        raise ValueError("query_key_attention needs queries")
    return F.linear(attend(query, qkv.k, qkv.v), attn.out_proj.weight, attn.out_proj.bias)


def value_value_attention(attn: Any, qkv: QKV) -> torch.Tensor:
    """The DPAM path ``softmax(v v^T * scale) v``, projected by ``out_proj``: ``(B, L, C)``."""
    return F.linear(attend(qkv.v, qkv.v, qkv.v), attn.out_proj.weight, attn.out_proj.bias)
