"""Choose the AnomalyCLIP adapters for the towers of an open_clip model.

Vision: open_clip ``VisionTransformer`` -> :class:`~medzsad.model.dpam_vision.DPAMVisionEncoder`;
``TimmModel`` over a timm ViT (BiomedCLIP) -> :class:`~medzsad.model.timm_vision.TimmDPAMVisionEncoder`.
Text: the built-in CLIP text transformer (``CLIP``, or ``CustomTextCLIP`` with an open_clip
``TextTransformer`` pooling at the EOT token) -> :class:`~medzsad.model.prompted_text.PromptedTextEncoder`;
``HFTextEncoder`` over BERT -> :class:`~medzsad.model.hf_text.HFPromptedTextEncoder`.
Anything else raises :class:`ModelError` naming the tower type.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from medzsad.errors import ModelError
from medzsad.model.dpam_vision import DPAMVisionEncoder, _check_supported
from medzsad.model.hf_text import HFPromptedTextEncoder, check_hf_text, hf_prompt_token_ids, is_hf_text_tower
from medzsad.model.prompted_text import PromptedTextEncoder
from medzsad.model.timm_vision import TimmDPAMVisionEncoder, check_timm_vit, is_timm_tower

__all__ = [
    "Tokenizer",
    "check_towers",
    "hf_token_ids",
    "is_custom_tower_cfg",
    "is_hf_text_tower",
    "is_timm_tower",
    "text_encoder",
    "text_tower",
    "token_embedding",
    "vision_encoder",
]

Tokenizer = Callable[..., Any]
"""A tokenizer: open_clip's ``SimpleTokenizer``/``HFTokenizer`` or a Hugging Face tokenizer."""


def _any(module: nn.Module) -> Any:
    """``module`` typed as ``Any``: tower attributes are dynamic (open_clip, timm, transformers)."""
    return module


def is_custom_tower_cfg(cfg: dict[str, Any]) -> bool:
    """True when an open_clip model config needs ``CustomTextCLIP`` (timm vision or HF text tower)."""
    return bool(
        cfg.get("vision_cfg", {}).get("timm_model_name") or cfg.get("text_cfg", {}).get("hf_model_name")
    )


def vision_encoder(visual: nn.Module, dpam_layers: int, feature_layers: tuple[int, ...]) -> nn.Module:
    """The DPAM vision encoder for ``visual`` (see module docstring).

    Raises:
        ModelError: Unsupported tower (ModifiedResNet, timm ResNet/ConvNeXt, attention pooling, ...).
    """
    if is_timm_tower(visual):
        return TimmDPAMVisionEncoder(visual, dpam_layers, feature_layers)
    return DPAMVisionEncoder(visual, dpam_layers, feature_layers)


def text_tower(clip: nn.Module) -> nn.Module:
    """The module holding the built-in text transformer: ``clip`` itself or ``CustomTextCLIP.text``.

    Raises:
        ModelError: A text tower that is neither (the message names its type).
    """
    if hasattr(clip, "transformer") and hasattr(clip, "token_embedding"):
        return clip
    text: Any = getattr(clip, "text", None)
    if type(text).__name__ == "TextTransformer":
        if getattr(text, "cls_emb", None) is not None or getattr(text, "pool_type", "argmax") != "argmax":
            raise ModelError(
                f"text tower TextTransformer pools with {getattr(text, 'pool_type', '?')!r}"
                f"{' and a class embedding' if getattr(text, 'cls_emb', None) is not None else ''}; "
                "AnomalyCLIP's prompts need EOT (argmax) pooling"
            )
        return text
    raise ModelError(
        f"text tower {type(text).__name__ if text is not None else type(clip).__name__} is not supported; "
        "AnomalyCLIP needs the CLIP text transformer or an HFTextEncoder over BERT"
    )


def text_encoder(clip: nn.Module, fp16_cast: bool) -> nn.Module:
    """The prompted text encoder for ``clip``'s text tower (see module docstring)."""
    if is_hf_text_tower(clip):
        return HFPromptedTextEncoder(clip, fp16_cast=fp16_cast)
    return PromptedTextEncoder(text_tower(clip), fp16_cast=fp16_cast)


def token_embedding(clip: nn.Module) -> nn.Embedding:
    """The word/token embedding the prompt learner embeds its fixed tokens with."""
    tower: Any = _any(clip).text if is_hf_text_tower(clip) else text_tower(clip)
    if is_hf_text_tower(clip):
        return tower.transformer.embeddings.word_embeddings
    return tower.token_embedding


def check_towers(clip: nn.Module) -> None:
    """Raise :class:`ModelError` early if either tower of ``clip`` is unsupported."""
    visual = getattr(clip, "visual", None)
    if visual is None:
        raise ModelError(f"{type(clip).__name__} has no vision tower")
    if is_timm_tower(visual):
        check_timm_vit(visual)
    else:
        _check_supported(visual)
    if is_hf_text_tower(clip):
        check_hf_text(_any(clip).text)
    else:
        text_tower(clip)


def hf_token_ids(
    clip: nn.Module, tokenizer: Tokenizer, n_ctx: int, states: tuple[str, str]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompt token ids for an HF text tower, padded to the tokenizer's context length.

    The length is the tokenizer's ``context_length`` (open_clip ``HFTokenizer``; BiomedCLIP: 256),
    else 77, capped at the model's ``max_position_embeddings``.
    """
    text_config: Any = _any(clip).text.config
    max_len = int(getattr(text_config, "max_position_embeddings", 512))
    length = min(int(getattr(tokenizer, "context_length", None) or 77), max_len)
    pad = text_config.pad_token_id
    return hf_prompt_token_ids(tokenizer, n_ctx, states, length, 0 if pad is None else int(pad))
