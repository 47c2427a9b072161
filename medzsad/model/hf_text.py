"""Text side of AnomalyCLIP on open_clip's ``HFTextEncoder`` with a BERT model (BiomedCLIP's PubMedBERT).

Prompts are built in BERT's word-embedding space:
``[CLS] V_1 .. V_E <tokens of "object."> [SEP] [PAD] ...`` (the ``V_i`` learnable), then BERT's
embedding layer adds position and token-type embeddings and applies its LayerNorm, as it does for
token ids. Deep prompts replace the hidden states at positions ``1 .. t_n_ctx`` before encoder layers
``1 .. depth-1`` (the rule of :mod:`medzsad.model.prompted_text`). Padding is masked by the token
ids, and the encoder's own pooler (``HFTextEncoder.pooler``: CLS, last-hidden-state CLS, mean, ...)
and ``proj`` give the text feature, exactly as ``HFTextEncoder.forward`` does for token ids.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from medzsad.errors import ModelError

__all__ = ["HFPromptedTextEncoder", "check_hf_text", "hf_prompt_token_ids", "is_hf_text_tower"]

_SUPPORTED_MODEL_TYPES = ("bert",)


def is_hf_text_tower(clip: nn.Module) -> bool:
    """True when ``clip.text`` is open_clip's ``HFTextEncoder``."""
    return type(getattr(clip, "text", None)).__name__ == "HFTextEncoder"


def check_hf_text(text: nn.Module) -> None:
    """Raise :class:`ModelError` unless ``text`` is an ``HFTextEncoder`` over a BERT encoder.

    Raises:
        ModelError: Other transformer families (RoBERTa/XLM-R position ids, T5 encoders, ...);
            the message names the model type.
    """
    config = getattr(text, "config", None)
    model_type = getattr(config, "model_type", None)
    transformer = getattr(text, "transformer", None)
    embeddings = getattr(transformer, "embeddings", None)
    needed = ("word_embeddings", "position_embeddings", "token_type_embeddings", "LayerNorm")
    if (
        model_type not in _SUPPORTED_MODEL_TYPES
        or embeddings is None
        or not all(hasattr(embeddings, n) for n in needed)
        or not hasattr(getattr(transformer, "encoder", None), "layer")
    ):
        raise ModelError(
            f"text tower {type(text).__name__}({type(transformer).__name__}, model_type={model_type!r}) is "
            f"not supported; deep text prompts are implemented for {list(_SUPPORTED_MODEL_TYPES)} "
            "encoders (BiomedCLIP's PubMedBERT)"
        )


def hf_prompt_token_ids(
    tokenizer: Any, n_ctx: int, states: tuple[str, str], context_length: int, pad_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids of ``[CLS] X*n_ctx <state> [SEP] [PAD]..`` for the normal and anomalous state.

    Args:
        tokenizer: A Hugging Face tokenizer, or open_clip's ``HFTokenizer`` (its ``.tokenizer`` is used).
        n_ctx: Number of learnable context slots (placeholders at positions ``1 .. n_ctx``).
        states: ``(normal_state, anomalous_state)`` texts, e.g. ``("object.", "damaged object.")``.
        context_length: Padded length ``L``.
        pad_id: The text model's ``pad_token_id`` (what the attention mask masks).

    Returns:
        Two ``(L,)`` int64 tensors.

    Raises:
        ModelError: A tokenizer without CLS/SEP tokens, or prompts longer than ``context_length``.
    """
    hf = getattr(tokenizer, "tokenizer", tokenizer)
    cls_id, sep_id = getattr(hf, "cls_token_id", None), getattr(hf, "sep_token_id", None)
    if cls_id is None or sep_id is None:
        raise ModelError(
            f"tokenizer {type(hf).__name__} has no [CLS]/[SEP] tokens; BERT prompts need a BERT tokenizer"
        )
    pieces = hf.convert_tokens_to_ids(hf.tokenize("X"))
    placeholder = pieces[0] if pieces and pieces[0] != pad_id else hf.unk_token_id
    out = []
    for text in states:
        body = list(hf.encode(text, add_special_tokens=False))
        ids = [cls_id] + [placeholder] * n_ctx + body + [sep_id]
        if len(ids) > context_length:
            raise ModelError(
                f"prompt with n_ctx={n_ctx} and state {text!r} needs {len(ids)} tokens, more than the text "
                f"context length {context_length}; lower n_ctx or shorten the state text"
            )
        out.append(torch.tensor(ids + [pad_id] * (context_length - len(ids)), dtype=torch.long))
    return out[0], out[1]


class HFPromptedTextEncoder(nn.Module):
    """Encode embedded prompts through open_clip's ``HFTextEncoder`` (BERT) with deep prompts.

    Args:
        clip: open_clip ``CustomTextCLIP`` whose ``text`` is an ``HFTextEncoder`` over BERT.
        fp16_cast: Round deep prompts through float16 as the reference does for the CLIP text tower.
    """

    def __init__(self, clip: nn.Module, fp16_cast: bool = True) -> None:
        super().__init__()
        text: Any = clip.text
        check_hf_text(text)
        self.text: Any = text
        self.fp16_cast = fp16_cast

    @property
    def pad_token_id(self) -> int:
        """The pad token id whose positions are masked."""
        pad = self.text.config.pad_token_id
        return 0 if pad is None else int(pad)

    def forward(
        self, prompts: torch.Tensor, token_ids: torch.Tensor, deep_prompts: list[torch.Tensor]
    ) -> torch.Tensor:
        """Text features of the prompts.

        Args:
            prompts: ``(P, L, W)`` float prompts in word-embedding space (no position/type yet).
            token_ids: ``(P, L)`` int64; ``pad_token_id`` marks padding (masked in attention/pooling).
            deep_prompts: ``(t_n_ctx, W)`` float tensors for encoder layers 1, 2, ...

        Returns:
            ``(P, D)`` float text features, not normalised.
        """
        bert = self.text.transformer
        mask = (token_ids != self.pad_token_id).long()
        x = bert.embeddings(inputs_embeds=prompts)
        attn_mask = _attention_mask(bert, mask, x)
        for idx, layer in enumerate(bert.encoder.layer):
            if 1 <= idx <= len(deep_prompts):
                x = self._insert(x, deep_prompts[idx - 1])
            out = layer(x, attn_mask)
            x = out[0] if isinstance(out, tuple) else out
        pooled = self.text.pooler(_model_output(bert, x), mask)
        return self.text.proj(pooled)

    def _insert(self, x: torch.Tensor, deep: torch.Tensor) -> torch.Tensor:
        n = deep.shape[0]
        ctx = deep.expand(x.shape[0], -1, -1)
        ctx = ctx.half() if self.fp16_cast else ctx.to(x.dtype)
        return torch.cat([x[:, :1, :], ctx, x[:, 1 + n :, :]], dim=1)


def _attention_mask(bert: Any, mask: torch.Tensor, embeds: torch.Tensor) -> Any:
    """The encoder attention mask ``BertModel.forward`` would build from a ``(P, L)`` 0/1 mask."""
    try:
        from transformers.masking_utils import create_bidirectional_mask
    except ImportError:  # transformers 4.x: additive (P, 1, 1, L) mask
        return bert.get_extended_attention_mask(mask, tuple(mask.shape))
    return create_bidirectional_mask(config=bert.config, inputs_embeds=embeds, attention_mask=mask)


def _model_output(bert: Any, hidden: torch.Tensor) -> Any:
    """``BaseModelOutputWithPooling`` of the last hidden states (with BERT's pooler when it has one)."""
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    pooler = getattr(bert, "pooler", None)
    return BaseModelOutputWithPooling(
        last_hidden_state=hidden, pooler_output=pooler(hidden) if pooler is not None else None
    )
