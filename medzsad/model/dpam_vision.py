"""Vision side of AnomalyCLIP: DPAM dual-path forward over an open_clip ``VisionTransformer``.

DPAM (paper Sec. 3.3) replaces the query-key attention of the last blocks by value-value
self-attention on a second "DPAM" stream, while the original stream continues unchanged:

* original stream: ``x <- x + Attn_qk(ln_1(x)); x <- x + MLP(ln_2(x))``
* DPAM stream:     ``d <- d + Attn_vv(ln_1(x))`` (no MLP), starting from ``x`` at the first DPAM block

Both attentions use the block's own ``in_proj``/``out_proj`` weights and ``ln_1`` of the
*original* stream. Tapped layers return the DPAM stream inside the DPAM blocks and the single stream
before them. The global feature is the class token of the original stream times ``proj`` without
``ln_post``; patch tokens are ``ln_post(tokens) @ proj``. Nothing here modifies a module.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from medzsad.errors import ModelError
from medzsad.model.attention import (
    QKV,
    project_kv,
    project_q,
    project_qkv,
    query_key_attention,
    value_value_attention,
)

__all__ = ["VisionFeatures", "DPAMVisionEncoder", "first_dpam_block", "resize_positional_embedding"]


class VisionFeatures(NamedTuple):
    """Output of :class:`DPAMVisionEncoder`.

    Attributes:
        image_features: ``(B, D)`` float, global feature (not normalised).
        patch_tokens: One ``(B, 1 + G*G, D)`` float tensor per tapped layer (class token first).
    """

    image_features: torch.Tensor
    patch_tokens: list[torch.Tensor]


def first_dpam_block(n_blocks: int, dpam_layers: int, feature_layers: tuple[int, ...]) -> int:
    """0-based index of the first DPAM block, after checking both settings fit ``n_blocks``.

    Raises:
        ModelError: ``dpam_layers`` or a feature layer beyond the backbone's blocks.
    """
    if dpam_layers > n_blocks or max(feature_layers) > n_blocks:
        raise ModelError(
            f"backbone has {n_blocks} vision blocks; dpam_layers={dpam_layers} and "
            f"feature_layers={list(feature_layers)} must be within 1..{n_blocks}"
        )
    return n_blocks - dpam_layers


def resize_positional_embedding(pos: torch.Tensor, grid: int) -> torch.Tensor:
    """Resize a ViT positional embedding to a new square token grid (reference rule).

    Args:
        pos: ``(1 + g*g, W)`` float, class row first.
        grid: New grid side ``G``.

    Returns:
        ``(1 + G*G, W)``: the class row unchanged, the patch rows resized with bilinear
        interpolation (``align_corners=False``, no antialias), row-major.
    """
    old = int(round((pos.shape[0] - 1) ** 0.5))
    if old * old != pos.shape[0] - 1:
        raise ModelError(f"positional embedding with {pos.shape[0] - 1} patch rows is not a square grid")
    if old == grid:
        return pos.clone()
    width = pos.shape[1]
    patch = pos[1:].reshape(1, old, old, width).permute(0, 3, 1, 2)
    patch = F.interpolate(patch, (grid, grid), mode="bilinear", align_corners=False)
    patch = patch.reshape(1, width, grid * grid).transpose(1, 2)[0]
    return torch.cat([pos[:1], patch], dim=0)


class DPAMVisionEncoder(nn.Module):
    """Dual-path forward over the blocks of an open_clip ``VisionTransformer``.

    Args:
        visual: open_clip ``VisionTransformer`` (its weights are used, not copied).
        dpam_layers: Number of final blocks with DPAM (0 disables DPAM).
        feature_layers: 1-based block indices to tap.
    """

    def __init__(self, visual: Any, dpam_layers: int, feature_layers: tuple[int, ...]) -> None:
        super().__init__()
        _check_supported(visual)
        self.visual = visual
        self.first_dpam = first_dpam_block(len(visual.transformer.resblocks), dpam_layers, feature_layers)
        self.feature_layers = tuple(feature_layers)

    def forward(self, x: torch.Tensor) -> VisionFeatures:
        """Encode images.

        Only what the outputs use is computed: the DPAM stream up to the last tapped block, and in
        the last block the original stream for the class token only (the global feature), unless
        that block is tapped before DPAM.

        Args:
            x: ``(B, 3, S, S)`` float, CLIP-normalised; ``S`` must match the built image size.

        Returns:
            :class:`VisionFeatures`.
        """
        v: Any = self.visual
        x = self._embed(x)
        blocks = v.transformer.resblocks
        last_tap = max(self.feature_layers)
        dpam: torch.Tensor | None = None
        taps: list[torch.Tensor] = []
        for idx, blk in enumerate(blocks):
            tap = idx + 1 in self.feature_layers
            dual = self.first_dpam <= idx < last_tap
            cls_only = idx == len(blocks) - 1 and not (tap and idx < self.first_dpam)
            x, dpam = _block(blk, x, dpam if dual else None, dual=dual, cls_only=cls_only)
            if tap:
                taps.append(x if idx < self.first_dpam else _tensor(dpam))
        image_features = _per_image(lambda i: _project(x[i : i + 1, 0, :], v.proj), x)
        patch_tokens = [_project(v.ln_post(t), v.proj) for t in taps]
        return VisionFeatures(image_features, patch_tokens)

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        v: Any = self.visual
        x = v.conv1(x.to(v.conv1.weight.dtype))
        x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
        if x.shape[1] + 1 != v.positional_embedding.shape[0]:
            grid = int(round((v.positional_embedding.shape[0] - 1) ** 0.5))
            raise ModelError(
                f"input gives a {int(x.shape[1] ** 0.5)}x{int(x.shape[1] ** 0.5)} token grid, the model was "
                f"built for {grid}x{grid}; resize inputs to the configured image_size"
            )
        cls = v.class_embedding.to(x.dtype) + torch.zeros(
            x.shape[0], 1, x.shape[-1], dtype=x.dtype, device=x.device
        )
        x = torch.cat([cls, x], dim=1)
        x = x + v.positional_embedding.to(x.dtype)
        return v.ln_pre(x)


def _block(
    blk: Any, x: torch.Tensor, dpam: torch.Tensor | None, *, dual: bool, cls_only: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One residual block on the original stream ``x`` ``(B, L, C)`` and, if ``dual``, the DPAM stream.

    Returns:
        The new original stream (``(B, 1, C)`` when ``cls_only``) and the new DPAM stream
        (``dpam`` or ``x`` plus the value-value attention when ``dual``, else ``None``).
    """
    attn = blk.attn
    h = blk.ln_1(x)
    qkv = project_kv(attn, h) if cls_only else project_qkv(attn, h)
    new_dpam = None
    if dual:
        new_dpam = (x if dpam is None else dpam) + blk.ls_1(value_value_attention(attn, qkv))
    if cls_only:
        return _per_image(lambda i: _class_token_tail(blk, x[i : i + 1], h[i : i + 1], qkv, i), x), new_dpam
    x = x + blk.ls_1(query_key_attention(attn, qkv))
    x = x + blk.ls_2(blk.mlp(blk.ln_2(x)))
    return x, new_dpam


def _class_token_tail(blk: Any, x: torch.Tensor, h: torch.Tensor, qkv: QKV, i: int) -> torch.Tensor:
    """Original stream of image ``i`` through ``blk`` for its class token only: ``(1, 1, C)``.

    ``x``/``h`` are that image's block input and ``ln_1`` of it, ``(1, L, C)``; ``qkv`` holds the
    keys and values of the whole batch.
    """
    attn = blk.attn
    q = project_q(attn, h[:, :1])
    one = QKV(None, qkv.k[i : i + 1], qkv.v[i : i + 1])
    cls = x[:, :1] + blk.ls_1(query_key_attention(attn, one, q))
    return cls + blk.ls_2(blk.mlp(blk.ln_2(cls)))


def _per_image(fn: Callable[[int], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """``cat([fn(0), ..., fn(B-1)])``: one-row products computed one image at a time.

    A matrix product with one row per image goes through a different BLAS kernel for ``B == 1``
    (matrix-vector) than for ``B > 1`` (matrix-matrix), whose sums are ordered differently; computing
    each image on its own keeps its result independent of the batch it came in, bit for bit. These
    are class-token-sized products, so the loop costs microseconds.
    """
    return torch.cat([fn(i) for i in range(x.shape[0])])


def _tensor(t: torch.Tensor | None) -> torch.Tensor:
    if t is None:  # unreachable: a tapped DPAM block always has a DPAM stream
        raise ModelError("internal: tapped DPAM block without a DPAM stream")
    return t


def _project(tokens: torch.Tensor, proj: Any) -> torch.Tensor:
    if proj is None:
        return tokens
    if isinstance(proj, nn.Module):
        return proj(tokens)
    return tokens @ proj


def _check_supported(visual: Any) -> None:
    needed = ("conv1", "class_embedding", "positional_embedding", "ln_pre", "transformer", "ln_post")
    missing = [name for name in needed if not hasattr(visual, name)]
    if missing:
        raise ModelError(
            f"vision tower {type(visual).__name__} is not an open_clip VisionTransformer "
            f"(missing {missing}); AnomalyCLIP's DPAM needs a ViT CLIP (ViT-L-14-336, ViT-B-16, ...)"
        )
    if getattr(visual, "attn_pool", None) is not None:
        raise ModelError(
            f"vision tower {type(visual).__name__} uses attention pooling; DPAM needs CLS pooling"
        )
    for blk in visual.transformer.resblocks:
        if not isinstance(getattr(blk, "attn", None), nn.MultiheadAttention):
            raise ModelError(
                f"vision block {type(blk).__name__} has no nn.MultiheadAttention; "
                "custom-attention towers are not supported by DPAM"
            )
