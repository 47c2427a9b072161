"""Object-agnostic prompt learner of AnomalyCLIP (paper Sec. 3.2, Eq. 2).

Two learnable prompts share one object word: ``[V_1..V_E] object.`` (normal) and
``[W_1..W_E] damaged object.`` (anomalous). Deep text prompts (``t_n_ctx`` tokens) replace the
first context slots in text blocks ``1 .. depth-1``. Parameter and buffer names equal the
reference ``AnomalyCLIP_PromptLearner`` so official checkpoints load as they are.
"""

from __future__ import annotations

import torch
from torch import nn

from medzsad.errors import ModelError

__all__ = ["PromptLearner"]


class PromptLearner(nn.Module):
    """Learnable normal/anomalous prompts plus deep text prompts.

    Args:
        token_embedding: The CLIP token embedding, or BERT's word embedding (used once, to embed the
            fixed tokens).
        token_ids_normal: ``(L,)`` int token ids of ``"X X ... X object."`` (SOT/EOT or CLS/SEP included).
        token_ids_anomalous: ``(L,)`` int token ids of ``"X X ... X damaged object."``.
        n_ctx: Learnable context tokens per prompt.
        depth: Deep prompt depth (``depth - 1`` deep prompt tensors).
        t_n_ctx: Tokens per deep prompt.
        projection_dim: Output size of the (unused) reference projection layers, kept so that
            official checkpoints round-trip.
        generator: Optional RNG for the ``N(0, 0.02)`` initialisation.
    """

    token_prefix_pos: torch.Tensor
    token_suffix_pos: torch.Tensor
    token_prefix_neg: torch.Tensor
    token_suffix_neg: torch.Tensor
    tokenized_prompts_pos: torch.Tensor
    tokenized_prompts_neg: torch.Tensor

    def __init__(
        self,
        token_embedding: nn.Embedding,
        token_ids_normal: torch.Tensor,
        token_ids_anomalous: torch.Tensor,
        *,
        n_ctx: int,
        depth: int,
        t_n_ctx: int,
        projection_dim: int = 896,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        width = token_embedding.weight.shape[1]
        dtype = token_embedding.weight.dtype
        self.n_ctx = n_ctx
        self.t_n_ctx = t_n_ctx
        self.ctx_pos = nn.Parameter(_normal((1, 1, n_ctx, width), dtype, generator))
        self.ctx_neg = nn.Parameter(_normal((1, 1, n_ctx, width), dtype, generator))
        self.compound_prompts_text = nn.ParameterList(
            [nn.Parameter(_normal((t_n_ctx, width), dtype, generator)) for _ in range(depth - 1)]
        )
        self.compound_prompt_projections = nn.ModuleList(
            [nn.Linear(width, projection_dim) for _ in range(depth - 1)]
        )
        ids = torch.stack([token_ids_normal, token_ids_anomalous]).long()
        with torch.no_grad():
            emb = token_embedding(ids.to(token_embedding.weight.device)).to(dtype)
        self.register_buffer("token_prefix_pos", emb[0:1, None, :1, :].clone())
        self.register_buffer("token_suffix_pos", emb[0:1, None, 1 + n_ctx :, :].clone())
        self.register_buffer("token_prefix_neg", emb[1:2, None, :1, :].clone())
        self.register_buffer("token_suffix_neg", emb[1:2, None, 1 + n_ctx :, :].clone())
        self.register_buffer("tokenized_prompts_pos", ids[0:1, None, :].to(torch.int32))
        self.register_buffer("tokenized_prompts_neg", ids[1:2, None, :].to(torch.int32))

    @property
    def deep_prompts(self) -> list[torch.Tensor]:
        """Deep text prompts, one ``(t_n_ctx, W)`` tensor per text block ``1 .. depth-1``."""
        return list(self.compound_prompts_text)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Embedded prompts and their token ids.

        Returns:
            ``prompts`` ``(2, L, W)`` float (row 0 normal, row 1 anomalous; no positional
            embedding yet) and ``token_ids`` ``(2, L)`` int64 (argmax = EOT position).
        """
        pos = torch.cat([self.token_prefix_pos, self.ctx_pos, self.token_suffix_pos], dim=2)
        neg = torch.cat([self.token_prefix_neg, self.ctx_neg, self.token_suffix_neg], dim=2)
        prompts = torch.cat([pos.reshape(-1, *pos.shape[-2:]), neg.reshape(-1, *neg.shape[-2:])], dim=0)
        ids = torch.cat(
            [
                self.tokenized_prompts_pos.reshape(-1, self.tokenized_prompts_pos.shape[-1]),
                self.tokenized_prompts_neg.reshape(-1, self.tokenized_prompts_neg.shape[-1]),
            ],
            dim=0,
        ).long()
        return prompts, ids

    def load_reference_state_dict(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Load a reference/official or medzsad prompt state dict, checking every shape.

        Raises:
            ModelError: Missing or unexpected keys, or a shape that does not match this learner.
        """
        own = self.state_dict()
        missing = sorted(set(own) - set(state_dict))
        unexpected = sorted(set(state_dict) - set(own))
        if missing or unexpected:
            raise ModelError(
                f"prompt checkpoint does not fit the configured prompt learner: missing keys {missing[:6]}"
                f"{'...' if len(missing) > 6 else ''}, unexpected keys {unexpected[:6]}; check n_ctx/depth/"
                "t_n_ctx of the model config against the checkpoint's"
            )
        for key, value in state_dict.items():
            if tuple(value.shape) != tuple(own[key].shape):
                raise ModelError(
                    f"prompt checkpoint tensor {key!r} has shape {tuple(value.shape)}, the configured model "
                    f"expects {tuple(own[key].shape)}; the checkpoint was trained for another backbone/config"
                )
        with torch.no_grad():
            for key, value in state_dict.items():
                own[key].copy_(value.to(own[key].dtype))


def _normal(shape: tuple[int, ...], dtype: torch.dtype, generator: torch.Generator | None) -> torch.Tensor:
    t = torch.empty(shape, dtype=dtype)
    return nn.init.normal_(t, std=0.02, generator=generator)
