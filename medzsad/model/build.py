"""Build an :class:`AnomalyCLIP` from a config and the state dicts it is handed.

No file or network access: ``medzsad.weights`` reads files and passes tensors in. The CLIP is
created through open_clip's own config mechanism (``open_clip.get_model_config`` for named
architectures, or an inline ``clip_cfg`` dict), and its positional embedding is resized once,
here, for ``config.image_size``. Models with a timm vision tower or a Hugging Face text tower
(BiomedCLIP) are built as open_clip ``CustomTextCLIP`` from an inline ``clip_cfg`` (open_clip then
reads the HF model config/tokenizer named in it, from a local folder or the HF cache), or built whole
elsewhere (``medzsad.weights.clip_files.hf_hub_model``) and injected with ``clip=``.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import open_clip
import torch
from open_clip.model import CLIP, CustomTextCLIP
from torch import nn

from medzsad.errors import ModelError
from medzsad.model import towers
from medzsad.model.anomalyclip import AnomalyCLIP
from medzsad.model.config import AnomalyCLIPConfig, check_image_size
from medzsad.model.dpam_vision import resize_positional_embedding
from medzsad.model.prompt_learner import PromptLearner
from medzsad.model.timm_vision import fit_timm_to_pos_embed, is_timm_tower, resize_timm_vision_input

__all__ = ["clip_model_config", "normalize_clip_keys", "build_clip", "build_anomalyclip", "prompt_token_ids"]

log = logging.getLogger(__name__)


def clip_model_config(config: AnomalyCLIPConfig) -> dict[str, Any]:
    """The open_clip model config dict (``embed_dim``, ``vision_cfg``, ``text_cfg``, ``quick_gelu``).

    Raises:
        ModelError: ``backbone`` is not an open_clip architecture and no ``clip_cfg`` is given.
    """
    if config.clip_cfg is not None:
        cfg = copy.deepcopy(config.clip_cfg)
    elif config.backbone.startswith("hf-hub:"):  # open_clip would look its config up on the hub
        raise ModelError(
            f"{config.backbone} is an open_clip hf-hub model: build it with "
            "medzsad.weights.clip_files.hf_hub_model and pass it as build_anomalyclip(..., clip=model), "
            "or give its model_cfg as clip_cfg"
        )
    else:
        cfg = open_clip.get_model_config(config.backbone)
        if cfg is None:
            raise ModelError(
                f"unknown open_clip architecture {config.backbone!r}; choose one of open_clip.list_models() "
                "(e.g. ViT-L-14-336, ViT-B-16, ViT-L-14) or give clip_cfg"
            )
        cfg = copy.deepcopy(cfg)
    cfg["quick_gelu"] = bool(config.quick_gelu)
    cfg.pop("custom_text", None)
    return cfg


_OPENAI_METADATA_KEYS = ("input_resolution", "context_length", "vocab_size")


def normalize_clip_keys(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map CLIP state dicts of the known layouts onto OpenAI/open_clip ``CLIP`` key names.

    Handles ``module.`` prefixes (DataParallel exports), the metadata entries of OpenAI archives
    (``input_resolution``, ``context_length``, ``vocab_size``), and open_clip's ``CustomTextCLIP``
    layout where the text tower lives under ``text.``.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        k = key[len("module.") :] if key.startswith("module.") else key
        if k in _OPENAI_METADATA_KEYS:
            continue
        if k.startswith("text."):
            k = k[len("text.") :]
        out[k] = value
    return out


def build_clip(
    config: AnomalyCLIPConfig, state_dict: dict[str, torch.Tensor] | None = None, *, seed: int | None = None
) -> nn.Module:
    """Create the open_clip CLIP, load weights (OpenAI key names), resize positional embedding.

    Args:
        config: Model config (``backbone``/``clip_cfg``, ``quick_gelu``, ``image_size``).
        state_dict: CLIP weights with OpenAI/open_clip key names, or ``None`` for random init.
        seed: Seed for random init (ignored when weights are given).

    Returns:
        ``CLIP`` (``CustomTextCLIP`` for timm/HF tower configs) in eval mode, float32, on CPU,
        positional embedding resized for ``image_size``.

    Raises:
        ModelError: Weights that do not fit the architecture, or an unsupported tower (named).
    """
    cfg = clip_model_config(config)
    if seed is not None:
        torch.manual_seed(seed)
    if towers.is_custom_tower_cfg(cfg):
        clip = _custom_text_clip(cfg, config.backbone)
        if state_dict is not None:
            _load_custom_weights(clip, state_dict, config.backbone)
    else:
        clip = CLIP(**cfg)
        if state_dict is not None:
            _load_clip_weights(clip, normalize_clip_keys(state_dict), config.backbone)
    towers.check_towers(clip)
    clip = clip.float().eval()
    _resize_vision_input(clip, config.image_size, config.backbone)
    _set_normalisation(clip)
    return clip


def _custom_text_clip(cfg: dict[str, Any], name: str) -> nn.Module:
    """open_clip ``CustomTextCLIP`` from a config with timm/HF towers, never fetching tower weights."""
    cfg = copy.deepcopy(cfg)
    if cfg.get("vision_cfg", {}).get("timm_model_name"):
        cfg["vision_cfg"]["timm_model_pretrained"] = False
    if cfg.get("text_cfg", {}).get("hf_model_name"):
        cfg["text_cfg"]["hf_model_pretrained"] = False
    try:
        return CustomTextCLIP(**cfg)
    except (RuntimeError, OSError, ImportError, ValueError, KeyError) as e:
        raise ModelError(
            f"open_clip could not build the towers of {name!r} ({type(e).__name__}: {e}); timm/HF towers "
            "need pip install 'medzsad[hf]', and hf_model_name must be a local folder or in the HF cache"
        ) from e


def _load_custom_weights(clip: nn.Module, state_dict: dict[str, torch.Tensor], name: str) -> None:
    """Load ``CustomTextCLIP`` weights (``text.`` keys kept), sizing a timm ViT for their ``pos_embed``."""
    sd = {k[len("module.") :] if k.startswith("module.") else k: v for k, v in state_dict.items()}
    visual: Any = clip.visual
    pos = sd.get("visual.trunk.pos_embed")
    if is_timm_tower(visual) and pos is not None and pos.shape != visual.trunk.pos_embed.shape:
        fit_timm_to_pos_embed(visual, pos)
    _load_clip_weights(clip, sd, name)


def _load_clip_weights(clip: Any, sd: dict[str, torch.Tensor], name: str) -> None:
    own = clip.state_dict()
    pos_key = "visual.positional_embedding"
    if pos_key in sd and pos_key in own and sd[pos_key].shape != own[pos_key].shape:
        # Weights saved from a model already resized for another input size: take their grid as it
        # is (resizing it back to the native grid first would lose information); the one resize to
        # the configured image_size happens afterwards, and is a no-op when the sizes agree.
        stored = sd[pos_key]
        if stored.ndim != 2 or stored.shape[1] != own[pos_key].shape[1]:
            raise ModelError(
                f"CLIP weights do not fit architecture {name!r}: {pos_key} has shape "
                f"{tuple(stored.shape)}, expected (*, {own[pos_key].shape[1]})"
            )
        clip.visual.positional_embedding = nn.Parameter(torch.empty_like(stored, dtype=torch.float32))
    try:
        result = clip.load_state_dict(
            {k: v.float() if v.is_floating_point() else v for k, v in sd.items()}, strict=False
        )
    except RuntimeError as e:
        raise ModelError(f"CLIP weights do not fit architecture {name!r}: {str(e).splitlines()[0]}") from e
    missing = [k for k in result.missing_keys if k != "attn_mask" and not k.endswith("logit_bias")]
    if missing or result.unexpected_keys:
        raise ModelError(
            f"CLIP weights do not fit architecture {name!r}: missing {missing[:5]}, unexpected "
            f"{list(result.unexpected_keys)[:5]}; check the backbone name against the weight file"
        )


def _set_normalisation(clip: Any) -> None:
    """Record the input normalisation on the tower, as open_clip's factory does for CLIP weights."""
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

    cfg = dict(getattr(clip.visual, "preprocess_cfg", None) or {})
    cfg.setdefault("mean", tuple(OPENAI_DATASET_MEAN))
    cfg.setdefault("std", tuple(OPENAI_DATASET_STD))
    clip.visual.preprocess_cfg = cfg


def _resize_vision_input(clip: nn.Module, image_size: int, backbone: str) -> None:
    visual: Any = clip.visual
    if is_timm_tower(visual):
        resize_timm_vision_input(visual, image_size, backbone)
        return
    check_image_size(image_size, int(visual.conv1.kernel_size[0]), backbone)
    patch = visual.conv1.kernel_size[0]
    grid = image_size // patch
    with torch.no_grad():
        new = resize_positional_embedding(visual.positional_embedding.data, grid)
    visual.positional_embedding = nn.Parameter(new, requires_grad=False)
    visual.image_size = (image_size, image_size)
    visual.grid_size = (grid, grid)


def prompt_token_ids(config: AnomalyCLIPConfig, context_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids ``(L,)`` int64 of ``"X X .. X object."`` and ``"X X .. X damaged object."``."""
    tokenizer = open_clip.tokenizer.SimpleTokenizer(context_length=context_length)
    prefix = " ".join(["X"] * config.n_ctx)
    ids = tokenizer([f"{prefix} {config.normal_state}", f"{prefix} {config.anomalous_state}"], context_length)
    return ids[0], ids[1]


def _hf_tokenizer(config: AnomalyCLIPConfig) -> towers.Tokenizer:
    """open_clip's tokenizer for an HF text tower, from ``clip_cfg`` or the ``hf-hub:`` backbone id."""
    text_cfg = (config.clip_cfg or {}).get("text_cfg", {})
    name = text_cfg.get("hf_tokenizer_name") or text_cfg.get("hf_model_name")
    try:
        if name:
            return open_clip.tokenizer.HFTokenizer(name, context_length=text_cfg.get("context_length", 77))
        if config.backbone.startswith("hf-hub:"):
            return open_clip.get_tokenizer(config.backbone)
    except (OSError, ValueError, ImportError) as e:
        raise ModelError(f"could not load the tokenizer of {name or config.backbone!r}: {e}") from e
    raise ModelError(
        f"backbone {config.backbone!r} has a Hugging Face text tower but no tokenizer is known; pass "
        "build_anomalyclip(..., tokenizer=open_clip.get_tokenizer('hf-hub:...'))"
    )


def _prompt_ids(
    clip: nn.Module, config: AnomalyCLIPConfig, tokenizer: towers.Tokenizer | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids ``(L,)`` of the normal and anomalous prompt for ``clip``'s text tower."""
    states = (config.normal_state, config.anomalous_state)
    if towers.is_hf_text_tower(clip):
        return towers.hf_token_ids(clip, tokenizer or _hf_tokenizer(config), config.n_ctx, states)
    context_length: Any = getattr(clip, "context_length", None) or towers.text_tower(clip).context_length
    if tokenizer is None:
        return prompt_token_ids(config, context_length)
    prefix = " ".join(["X"] * config.n_ctx)
    ids = tokenizer([f"{prefix} {state}" for state in states])
    return ids[0], ids[1]


def build_anomalyclip(
    config: AnomalyCLIPConfig,
    clip_state_dict: dict[str, torch.Tensor] | None = None,
    prompt_state_dict: dict[str, torch.Tensor] | None = None,
    *,
    seed: int | None = None,
    clip: nn.Module | None = None,
    tokenizer: towers.Tokenizer | None = None,
) -> AnomalyCLIP:
    """Build the full detector model (CPU, float32, eval mode).

    Args:
        config: Architecture and hyper-parameters.
        clip_state_dict: CLIP weights (OpenAI key names; ``CustomTextCLIP`` names for timm/HF
            towers) or ``None`` for random init (tests).
        prompt_state_dict: Prompt learner weights (official or medzsad format) or ``None`` for the
            reference ``N(0, 0.02)`` initialisation.
        seed: Seeds random initialisation of the CLIP and of the prompts.
        clip: An already built open_clip model (e.g. ``hf_hub_model('hf-hub:...').model``) to use
            instead of building one; its positional embedding is resized in place for
            ``config.image_size``. Not combined with ``clip_state_dict``.
        tokenizer: Tokenizer for the prompt token ids; default: open_clip's ``SimpleTokenizer`` for
            the CLIP text transformer, and for an HF text tower the ``HFTokenizer`` named by
            ``clip_cfg`` (``hf_tokenizer_name``) or ``open_clip.get_tokenizer(backbone)`` for an
            ``hf-hub:`` backbone (read from a local folder or the HF cache).

    Returns:
        :class:`AnomalyCLIP`; move it with ``.to(device)``.

    Raises:
        ModelError: Unsupported towers (named), weights that do not fit, or no tokenizer.
    """
    if clip is None:
        clip = build_clip(config, clip_state_dict, seed=seed)
    elif clip_state_dict is not None:
        raise ModelError("give either clip (a built model) or clip_state_dict, not both")
    else:
        towers.check_towers(clip)
        clip = clip.float().eval()
        _resize_vision_input(clip, config.image_size, config.backbone)
    _set_normalisation(clip)
    ids_normal, ids_anomalous = _prompt_ids(clip, config, tokenizer)
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    learner = PromptLearner(
        towers.token_embedding(clip),
        ids_normal,
        ids_anomalous,
        n_ctx=config.n_ctx,
        depth=config.depth,
        t_n_ctx=config.t_n_ctx,
        projection_dim=config.projection_dim,
        generator=generator,
    )
    if prompt_state_dict is not None:
        learner.load_reference_state_dict(prompt_state_dict)
    model = AnomalyCLIP(clip, config, learner)
    return model.eval()
