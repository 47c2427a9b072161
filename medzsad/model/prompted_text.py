"""Text side of AnomalyCLIP: the CLIP text transformer with deep text prompts (paper Eq. 3).

In text blocks ``1 .. len(deep_prompts)`` (0-based; block 0 keeps its input) the hidden states at
positions ``1 .. t_n_ctx`` (right after SOT) are replaced, before the block, by that block's deep
prompt, broadcast over the prompts, without positional embedding. The reference casts the deep
prompt to float16 before concatenating it with float32 states, so values *and* gradients are
rounded to float16; ``fp16_cast=True`` reproduces that.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["PromptedTextEncoder"]


class PromptedTextEncoder(nn.Module):
    """Encode embedded prompts through an open_clip ``CLIP``'s text tower.

    Args:
        clip: open_clip ``CLIP`` with the built-in text transformer (``transformer``,
            ``positional_embedding``, ``ln_final``, ``text_projection``, ``attn_mask``).
        fp16_cast: Round deep prompts through float16 as the reference does.
    """

    def __init__(self, clip: nn.Module, fp16_cast: bool = True) -> None:
        super().__init__()
        self.clip = clip
        self.fp16_cast = fp16_cast

    def forward(
        self, prompts: torch.Tensor, token_ids: torch.Tensor, deep_prompts: list[torch.Tensor]
    ) -> torch.Tensor:
        """Text features of the prompts.

        Args:
            prompts: ``(P, L, W)`` float embedded prompts (no positional embedding).
            token_ids: ``(P, L)`` int64; the argmax of each row is the EOT position.
            deep_prompts: ``(t_n_ctx, W)`` float tensors for text blocks 1, 2, ...

        Returns:
            ``(P, D)`` float text features, not normalised.
        """
        clip: Any = self.clip
        x = prompts + clip.positional_embedding.to(prompts.dtype)
        for idx, blk in enumerate(clip.transformer.resblocks):
            if 1 <= idx <= len(deep_prompts):
                x = self._insert(x, deep_prompts[idx - 1])
            x = blk(x, attn_mask=clip.attn_mask)
        x = clip.ln_final(x)
        x = x[torch.arange(x.shape[0], device=x.device), token_ids.argmax(dim=-1)]
        proj = clip.text_projection
        return proj(x) if isinstance(proj, nn.Module) else x @ proj

    def _insert(self, x: torch.Tensor, deep: torch.Tensor) -> torch.Tensor:
        n = deep.shape[0]
        ctx = deep.expand(x.shape[0], -1, -1)
        ctx = ctx.half() if self.fp16_cast else ctx.to(x.dtype)
        return torch.cat([x[:, :1, :], ctx, x[:, 1 + n :, :]], dim=1)
