"""The AnomalyCLIP model: frozen open_clip CLIP + DPAM vision forward + learnable prompts.

``encode_text``/``encode_image`` produce features, the functions of :mod:`medzsad.model.scoring`
score them, and ``forward`` only calls the two (timm's split of features and head).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from medzsad.model import towers
from medzsad.model.config import AnomalyCLIPConfig
from medzsad.model.dpam_vision import VisionFeatures
from medzsad.model.prompt_learner import PromptLearner
from medzsad.model.scoring import (
    anomaly_map_from_similarity,
    gaussian_smooth,
    image_anomaly_probs,
    image_logits,
    similarity_maps,
    token_similarity,
)

__all__ = ["AnomalyCLIP", "AnomalyOutput", "TrainOutput"]


class AnomalyOutput(NamedTuple):
    """Inference output.

    Attributes:
        image_scores: ``(B,)`` float in [0, 1], anomalous-prompt probability of the class token.
        maps: ``(B, S, S)`` float, smoothed sum of per-layer anomaly maps, in [0, n_layers].
        layer_maps: One ``(B, S, S)`` float map in [0, 1] per tapped layer (before summing).
        raw_sum: ``(B, S, S)`` float, the sum before smoothing.
    """

    image_scores: torch.Tensor
    maps: torch.Tensor
    layer_maps: list[torch.Tensor]
    raw_sum: torch.Tensor


class TrainOutput(NamedTuple):
    """What the training losses need.

    Attributes:
        logits: ``(B, 2)`` float image logits (cosine / temperature).
        similarity_maps: One ``(B, 2, S, S)`` float probability map per tapped layer.
        text_features: ``(2, D)`` float, normalised, differentiable w.r.t. the prompts.
    """

    logits: torch.Tensor
    similarity_maps: list[torch.Tensor]
    text_features: torch.Tensor


class AnomalyCLIP(nn.Module):
    """AnomalyCLIP on an injected open_clip ``CLIP``.

    The backbone is frozen (``requires_grad=False``); only ``prompt_learner`` trains. The
    positional embedding must already be resized for ``config.image_size`` (done once by
    :func:`medzsad.model.build.build_anomalyclip`).

    Args:
        clip: open_clip ``CLIP`` (ViT towers, built-in text transformer), or ``CustomTextCLIP`` with
            a timm ViT and/or an HF BERT text tower (see :mod:`medzsad.model.towers`).
        config: Hyper-parameters.
        prompt_learner: The learnable prompts.
    """

    def __init__(self, clip: Any, config: AnomalyCLIPConfig, prompt_learner: PromptLearner) -> None:
        super().__init__()
        self.config = config
        self.clip = clip
        for p in self.clip.parameters():
            p.requires_grad_(False)
        self.prompt_learner = prompt_learner
        self.vision = towers.vision_encoder(clip.visual, config.dpam_layers, config.feature_layers)
        self.text = towers.text_encoder(clip, fp16_cast=config.deep_prompt_fp16_cast)

    @property
    def image_size(self) -> int:
        """Input side ``S`` in pixels."""
        return self.config.image_size

    def encode_text_raw(self) -> torch.Tensor:
        """``(2, D)`` float text features of ``[normal, anomalous]``, not normalised."""
        prompts, ids = self.prompt_learner()
        return self.text(prompts, ids, self.prompt_learner.deep_prompts)

    def text_features(self) -> torch.Tensor:
        """``(2, D)`` float L2-normalised text features ``[normal, anomalous]``."""
        return F.normalize(self.encode_text_raw(), dim=-1)

    def encode_image(self, x: torch.Tensor) -> VisionFeatures:
        """DPAM vision features of ``x`` ``(B, 3, S, S)`` (CLIP-normalised); no gradient."""
        with torch.no_grad():
            return self.vision(x)

    def score(self, feats: VisionFeatures, text_features: torch.Tensor) -> AnomalyOutput:
        """Scoring head: image probabilities and smoothed maps from features.

        Args:
            feats: Vision features of ``B`` images.
            text_features: ``(2, D)`` normalised text features.

        Returns:
            :class:`AnomalyOutput` (maps at ``config.image_size``).
        """
        t = self.config.temperature
        img = F.normalize(feats.image_features.float(), dim=-1)
        text = text_features.float()
        probs = image_anomaly_probs(img, text, t)
        layer_maps = [
            anomaly_map_from_similarity(m) for m in self._layer_similarity_maps(feats.patch_tokens, text)
        ]
        raw = torch.stack(layer_maps).sum(dim=0)
        return AnomalyOutput(probs, gaussian_smooth(raw, self.config.sigma), layer_maps, raw)

    def patch_anomaly(self, feats: VisionFeatures, text_features: torch.Tensor) -> torch.Tensor:
        """Each patch's anomaly value per tapped layer, at patch resolution.

        ``(p_anomalous + 1 - p_normal) / 2`` of the patch token: the value the layer map of
        :meth:`score` interpolates between patch centres.

        Args:
            feats: Vision features of ``B`` images.
            text_features: ``(2, D)`` normalised text features.

        Returns:
            ``(L, B, G*G)`` float32 in [0, 1].
        """
        t = self.config.temperature
        text = text_features.float()
        out = []
        for tokens in feats.patch_tokens:
            sim = token_similarity(F.normalize(tokens.float(), dim=-1), text, t)[:, 1:, :]
            out.append(anomaly_map_from_similarity(sim.transpose(1, 2)))  # (B, 2, G*G) -> (B, G*G)
        return torch.stack(out)

    def forward(self, x: torch.Tensor) -> AnomalyOutput:
        """Score images ``(B, 3, S, S)``: see :class:`AnomalyOutput`."""
        return self.score(self.encode_image(x), self.text_features())

    def training_forward(self, x: torch.Tensor, feats: VisionFeatures | None = None) -> TrainOutput:
        """Forward for the training losses (gradient flows into the prompts only).

        Args:
            x: ``(B, 3, S, S)`` CLIP-normalised images (ignored when ``feats`` is given).
            feats: Precomputed frozen vision features (the backbone is frozen, so they can be cached).
        """
        feats = self.encode_image(x) if feats is None else feats
        text = self.text_features()
        img = F.normalize(feats.image_features.float(), dim=-1)
        logits = image_logits(img, text, self.config.temperature)
        sims = self._layer_similarity_maps(feats.patch_tokens, text)
        return TrainOutput(logits, sims, text)

    def _layer_similarity_maps(
        self, patch_tokens: list[torch.Tensor], text: torch.Tensor
    ) -> list[torch.Tensor]:
        out = []
        for tokens in patch_tokens:
            tokens = F.normalize(tokens.float(), dim=-1)
            sim = token_similarity(tokens, text, self.config.temperature)
            out.append(similarity_maps(sim[:, 1:, :], self.config.image_size))
        return out
