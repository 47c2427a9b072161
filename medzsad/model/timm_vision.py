"""DPAM dual-path forward over a timm ViT trunk wrapped by open_clip's ``TimmModel`` (BiomedCLIP).

Same semantics as :mod:`medzsad.model.dpam_vision`, on timm's module names:

* original stream: ``x <- blk(x)`` (timm's own ``Block.forward``:
  ``x + ls1(attn(norm1(x)))`` then ``x + ls2(mlp(norm2(x)))``)
* DPAM stream:     ``d <- d + ls1(Attn_vv(norm1(x)))`` (no MLP), starting from ``x`` at the first
  DPAM block, with the block's own ``qkv``/``proj`` weights and ``norm1`` of the *original* stream.

Tapped layers return the DPAM stream inside the DPAM blocks and the single stream before them.
The global feature is the class token of the original stream through the tower's head projection
*without* the trunk's final ``norm`` (the reference's "no ``ln_post``"); patch tokens are
``head(norm(tokens))``. Register tokens (if any) take part in attention but are dropped from the
tapped tokens, so the layout stays ``[class, patches...]``. The positional embedding is resized
once, at build time (:func:`resize_timm_vision_input`), never in ``forward``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from medzsad.errors import ModelError
from medzsad.model.config import check_image_size
from medzsad.model.dpam_vision import VisionFeatures, first_dpam_block

__all__ = [
    "TimmDPAMVisionEncoder",
    "check_timm_vit",
    "fit_timm_to_pos_embed",
    "is_timm_tower",
    "resize_timm_vision_input",
]


def is_timm_tower(visual: nn.Module) -> bool:
    """True for open_clip's ``TimmModel`` adapter (a ``trunk`` plus a ``head``)."""
    return type(visual).__name__ == "TimmModel" and hasattr(visual, "trunk") and hasattr(visual, "head")


def check_timm_vit(visual: nn.Module) -> None:
    """Raise :class:`ModelError` unless ``visual`` is a ``TimmModel`` over a plain timm ViT with CLS pooling.

    Raises:
        ModelError: timm missing, a non-ViT trunk (ResNet, ConvNeXt, EVA, ...), attention or average
            pooling, no class token, no absolute positional embedding, or blocks/attention other than
            timm's pre-norm ``Block``/``Attention``; the message names the type found.
    """
    try:
        from timm.layers import Attention
        from timm.models.vision_transformer import Block, VisionTransformer
    except ImportError as e:
        raise ModelError("timm vision towers need timm: pip install 'medzsad[hf]'") from e
    trunk = getattr(visual, "trunk", None)
    name = f"TimmModel({type(trunk).__name__})"
    if not isinstance(trunk, VisionTransformer):
        raise ModelError(
            f"vision tower {name} is not a timm VisionTransformer; AnomalyCLIP's DPAM needs a ViT "
            "(e.g. vit_base_patch16_224 as in BiomedCLIP)"
        )
    if hasattr(visual.head, "pool") or trunk.attn_pool is not None or trunk.global_pool != "token":
        raise ModelError(
            f"vision tower {name} pools with {trunk.global_pool!r}/attention pooling; DPAM needs class-token "
            "pooling (timm global_pool='token', open_clip timm_pool='')"
        )
    problems = []
    if trunk.cls_token is None:
        problems.append("no class token")
    if trunk.pos_embed is None:
        problems.append("no absolute positional embedding")
    if not isinstance(trunk.fc_norm, nn.Identity):
        problems.append(f"an fc_norm ({type(trunk.fc_norm).__name__})")
    for blk in trunk.blocks:
        if type(blk) is not Block or type(blk.attn) is not Attention or blk.attn.qkv is None:
            problems.append(f"block {type(blk).__name__} with attention {type(blk.attn).__name__}")
            break
    if problems:
        raise ModelError(
            f"vision tower {name} is not supported by DPAM: {', '.join(problems)}; supported are pre-norm "
            "timm ViTs (Block + Attention with a fused qkv) with a class token"
        )


def _resize_grid_rows(pos: torch.Tensor, prefix_rows: int, grid: int) -> torch.Tensor:
    """Resize the grid rows of ``pos`` ``(P + g*g, C)`` to ``(P + G*G, C)``, prefix rows unchanged.

    Bilinear, ``align_corners=False``, no antialias: the rule of
    :func:`medzsad.model.dpam_vision.resize_positional_embedding`.
    """
    rows = pos.shape[0] - prefix_rows
    old = int(round(rows**0.5))
    if old * old != rows:
        raise ModelError(f"timm positional embedding with {rows} patch rows is not a square grid")
    if old == grid:
        return pos.clone()
    width = pos.shape[1]
    patch = pos[prefix_rows:].reshape(1, old, old, width).permute(0, 3, 1, 2)
    patch = F.interpolate(patch, (grid, grid), mode="bilinear", align_corners=False)
    patch = patch.reshape(1, width, grid * grid).transpose(1, 2)[0]
    return torch.cat([pos[:prefix_rows], patch], dim=0)


def resize_timm_vision_input(visual: nn.Module, image_size: int, backbone: str = "timm ViT") -> None:
    """Set a ``TimmModel`` ViT to ``image_size`` once: resize ``pos_embed``, update the patch embed sizes.

    Raises:
        ModelError: Unsupported tower, or ``image_size`` not a multiple of the patch size.
    """
    check_timm_vit(visual)
    v: Any = visual
    trunk, pe = v.trunk, v.trunk.patch_embed
    ph, pw = pe.patch_size
    if ph != pw:
        raise ModelError(f"{backbone}: non-square patches {pe.patch_size} are not supported")
    check_image_size(image_size, int(ph), backbone)
    grid = image_size // ph
    prefix_rows = 0 if trunk.no_embed_class else trunk.num_prefix_tokens
    with torch.no_grad():
        new = _resize_grid_rows(trunk.pos_embed.data[0], prefix_rows, grid)[None]
    trunk.pos_embed = nn.Parameter(new, requires_grad=False)
    pe.img_size = (image_size, image_size)
    pe.grid_size = (grid, grid)
    pe.num_patches = grid * grid
    v.image_size = (image_size, image_size)


def fit_timm_to_pos_embed(visual: nn.Module, pos_embed: torch.Tensor) -> None:
    """Size a ``TimmModel`` ViT for the grid of a stored ``pos_embed`` ``(1, P + g*g, C)`` before loading it.

    Weights saved from a model built for another image size then load exactly (no interpolation).

    Raises:
        ModelError: Unsupported tower, or a stored embedding that is not a square grid.
    """
    check_timm_vit(visual)
    trunk: Any = visual.trunk
    rows = pos_embed.shape[-2] - (0 if trunk.no_embed_class else trunk.num_prefix_tokens)
    grid = int(round(max(rows, 0) ** 0.5))
    if grid < 1 or grid * grid != rows:
        raise ModelError(
            f"stored visual.trunk.pos_embed {tuple(pos_embed.shape)} is not a square token grid for "
            "this tower"
        )
    resize_timm_vision_input(visual, grid * trunk.patch_embed.patch_size[0])


class TimmDPAMVisionEncoder(nn.Module):
    """Dual-path forward over the blocks of a timm ViT inside open_clip's ``TimmModel``.

    Args:
        visual: ``TimmModel`` (its weights are used, not copied); sized by
            :func:`resize_timm_vision_input` beforehand.
        dpam_layers: Number of final blocks with DPAM (0 disables DPAM).
        feature_layers: 1-based block indices to tap.
    """

    def __init__(self, visual: nn.Module, dpam_layers: int, feature_layers: tuple[int, ...]) -> None:
        super().__init__()
        check_timm_vit(visual)
        self.visual: Any = visual
        trunk: Any = self.visual.trunk
        self.first_dpam = first_dpam_block(len(trunk.blocks), dpam_layers, feature_layers)
        self.feature_layers = tuple(feature_layers)

    def forward(self, x: torch.Tensor) -> VisionFeatures:
        """Encode images.

        Args:
            x: ``(B, 3, S, S)`` float, normalised with the backbone's mean/std; ``S`` must match the
                built image size.

        Returns:
            :class:`VisionFeatures`: ``image_features`` ``(B, D)``, ``patch_tokens`` one
            ``(B, 1 + G*G, D)`` per tapped layer (class token first, register tokens dropped).
        """
        trunk = self.visual.trunk
        x = self._embed(x)
        dpam: torch.Tensor | None = None
        taps: list[torch.Tensor] = []
        for idx, blk in enumerate(trunk.blocks):
            if idx >= self.first_dpam:
                vv = _vv_attention(blk.attn, blk.norm1(x))
                dpam = (x if dpam is None else dpam) + blk.drop_path1(blk.ls1(vv))
                x = blk(x)
                tapped = dpam
            else:
                x = blk(x)
                tapped = x
            if idx + 1 in self.feature_layers:
                taps.append(tapped)
        image_features = self._head(x[:, 0, :])
        keep = trunk.num_prefix_tokens
        patch_tokens = [self._head(trunk.norm(torch.cat([t[:, :1], t[:, keep:]], dim=1))) for t in taps]
        return VisionFeatures(image_features, patch_tokens)

    def _head(self, tokens: torch.Tensor) -> torch.Tensor:
        """Token-wise projection: trunk classifier (``Identity`` after open_clip's reset), adapter head."""
        trunk = self.visual.trunk
        return self.visual.head(trunk.head(trunk.head_drop(tokens)))

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        trunk = self.visual.trunk
        pe = trunk.patch_embed
        if tuple(x.shape[-2:]) != tuple(pe.img_size):
            g = pe.grid_size
            raise ModelError(
                f"input of {x.shape[-2]}x{x.shape[-1]} pixels does not fit: the model was built for "
                f"{g[0]}x{g[1]} tokens ({pe.img_size[0]}x{pe.img_size[1]} pixels); resize inputs to the "
                "configured image_size"
            )
        x = pe(x.to(trunk.pos_embed.dtype))
        if x.ndim == 4:  # dynamic_img_size trunks emit NHWC
            x = x.flatten(1, 2)
        prefix = [trunk.cls_token.expand(x.shape[0], -1, -1)]
        if trunk.reg_token is not None:
            prefix.append(trunk.reg_token.expand(x.shape[0], -1, -1))
        if trunk.no_embed_class:
            x = torch.cat([*prefix, x + trunk.pos_embed], dim=1)
        else:
            x = torch.cat([*prefix, x], dim=1) + trunk.pos_embed
        x = trunk.patch_drop(trunk.pos_drop(x))
        return trunk.norm_pre(x)


def _vv_attention(attn: Any, h: torch.Tensor) -> torch.Tensor:
    """Value-value self-attention of a timm ``Attention`` on ``h`` ``(B, L, C)``, projected by ``proj``.

    ``softmax(v v^T * attn.scale) v`` as one fused SDPA call (``attn.scale`` = ``head_dim**-0.5``).
    """
    bsz, length, _ = h.shape
    heads, head_dim = attn.num_heads, attn.head_dim
    v = attn.qkv(h).view(bsz, length, 3, heads, head_dim)[:, :, 2].transpose(1, 2)
    out = F.scaled_dot_product_attention(v, v, v, scale=attn.scale)
    out = out.transpose(1, 2).reshape(bsz, length, heads * head_dim)
    out = attn.norm(out)
    gate = getattr(attn, "gate", None)
    if gate is not None:
        out = out * gate(h).sigmoid()
    return attn.proj(out)
