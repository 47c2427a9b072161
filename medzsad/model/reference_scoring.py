"""Scoring with normal references: the zero-shot map blended with the reference distance.

Per tapped layer, the reference distance ``d`` of each patch (:func:`~medzsad.model.references.
reference_distance`) is gridded and upsampled exactly like the zero-shot similarity
(:func:`~medzsad.model.scoring.similarity_maps`: bilinear, ``align_corners=False``); the layer maps
are summed and blended with the zero-shot sum, ``(1 - w) * zero_shot + w * reference``, and the
blend is smoothed with the same Gaussian (:func:`~medzsad.model.scoring.gaussian_smooth`, the
model's ``sigma``). The image score blends the class-token probability with the largest
layer-averaged patch distance (PatchCore's image score). ``w = 1`` gives the reference map alone.

:class:`SiteUnitsDetector` blends the same two kinds of evidence after expressing both in units of
the site's normal anatomy (:mod:`medzsad.model.site_units`), so that ``w`` weighs comparable terms.
"""

from __future__ import annotations

import torch

from medzsad.errors import ModelError
from medzsad.model.anomalyclip import AnomalyOutput
from medzsad.model.inference import DetectionResult, Detector
from medzsad.model.references import (
    PatchBank,
    SearchOptions,
    bank_from_tokens,
    reference_distance,
    reference_terms,
)
from medzsad.model.scoring import gaussian_smooth, similarity_maps
from medzsad.model.site_units import NormalStats, site_units, unit_heat

__all__ = [
    "reference_layer_maps",
    "blend_with_references",
    "ReferenceDetector",
    "SiteUnitsDetector",
    "bank_from_images",
    "DEFAULT_WEIGHT",
]

#: Default weight ``w`` of the reference distance in the blend.
DEFAULT_WEIGHT = 0.5


def reference_layer_maps(distance: torch.Tensor, size: int) -> list[torch.Tensor]:
    """Per-layer reference maps at image size.

    Args:
        distance: ``(L, B, G*G)`` float reference distance.
        size: Output side ``S``.

    Returns:
        ``L`` maps ``(B, S, S)`` float, upsampled like the zero-shot layer maps.
    """
    return [similarity_maps(d[..., None].float(), size)[:, 0] for d in distance]


def blend_with_references(
    zero_shot: AnomalyOutput, distance: torch.Tensor, *, size: int, sigma: float, weight: float
) -> AnomalyOutput:
    """Blend a zero-shot output with the reference distance (see module docstring).

    Args:
        zero_shot: The model's output for ``B`` images (maps in [0, L]).
        distance: ``(L, B, G*G)`` float reference distance of the same images.
        size: Map side ``S``.
        sigma: Gaussian sigma of the model (pixels).
        weight: ``w`` in [0, 1].

    Returns:
        :class:`AnomalyOutput`: blended image scores, smoothed blended maps, per-layer blends and
        their unsmoothed sum.

    Raises:
        ModelError: ``weight`` outside [0, 1] or layer counts differ.
    """
    if not 0.0 <= weight <= 1.0:
        raise ModelError(f"reference weight must be in [0, 1], got {weight}")
    if distance.shape[0] != len(zero_shot.layer_maps):
        raise ModelError(
            f"reference distance has {distance.shape[0]} layers, "
            f"the zero-shot output {len(zero_shot.layer_maps)}"
        )
    ref_layers = reference_layer_maps(distance.to(zero_shot.maps.device), size)
    layers = [(1.0 - weight) * z.float() + weight * r for z, r in zip(zero_shot.layer_maps, ref_layers)]
    raw = torch.stack(layers).sum(dim=0)
    image_ref = distance.float().mean(dim=0).amax(dim=1).to(zero_shot.image_scores.device)
    scores = (1.0 - weight) * zero_shot.image_scores.float() + weight * image_ref
    return AnomalyOutput(scores, gaussian_smooth(raw, sigma), layers, raw)


def _positions(x: torch.Tensor, positions: torch.Tensor | None) -> torch.Tensor:
    """``(B,)`` float body coordinates of images ``x``: ``positions``, or 0.5 for 2D images."""
    return torch.full((x.shape[0],), 0.5) if positions is None else positions.float()


class _BankDetector:
    """What both reference detectors hold: the zero-shot detector, its bank, ``w`` and the search options.

    Args:
        detector: The zero-shot detector.
        bank: Reference bank built with the same model (moved to the detector's device).
        weight: ``w`` of the blend in [0, 1].
        options: Window, chunk budget and backend of the search.

    Raises:
        ModelError: ``weight`` outside [0, 1].
    """

    def __init__(
        self,
        detector: Detector,
        bank: PatchBank,
        weight: float = DEFAULT_WEIGHT,
        options: SearchOptions | None = None,
    ) -> None:
        if not 0.0 <= weight <= 1.0:
            raise ModelError(f"reference weight must be in [0, 1], got {weight}")
        self.detector = detector
        self.bank = bank.to(detector.device)
        self.weight = weight
        self.options = options or SearchOptions()
        self.image_size = detector.image_size
        self.mean = detector.mean
        self.std = detector.std


class ReferenceDetector(_BankDetector):
    """A :class:`Detector` that scores against a bank of normal references.

    Same interface as :class:`Detector` (``image_size``, ``mean``, ``std``, ``score``), plus the
    images' body coordinates.

    Args:
        detector: The zero-shot detector.
        bank: Reference bank built with the same model (moved to the detector's device).
        weight: ``w`` of the blend in [0, 1].
        options: Window, chunk budget and backend of the search.
    """

    def score(
        self, x: torch.Tensor, positions: torch.Tensor | None = None, *, return_layer_maps: bool = False
    ) -> DetectionResult:
        """Score images with the blend.

        Args:
            x: ``(B, 3, S, S)`` float32, CLIP-normalised.
            positions: ``(B,)`` float body coordinates in [0, 1] (default 0.5: 2D images).
            return_layer_maps: Also return the per-layer blended maps.

        Returns:
            :class:`DetectionResult` on CPU (maps in [0, L]).
        """
        det = self.detector
        feats = det.encode(x)
        pos = _positions(x, positions)
        with torch.inference_mode():
            zero = det.model.score(feats, det.text_features())
            dist = reference_distance(feats.patch_tokens, pos, self.bank, self.options)
            cfg = det.model.config
            out = blend_with_references(zero, dist, size=cfg.image_size, sigma=cfg.sigma, weight=self.weight)
            layers = torch.stack(out.layer_maps).float().cpu() if return_layer_maps else None
            return DetectionResult(out.image_scores.float().cpu(), out.maps.float().cpu(), layers)


def bank_from_images(detector: Detector, x: torch.Tensor, positions: torch.Tensor | None = None) -> PatchBank:
    """Reference bank entries of images ``x`` ``(B, 3, S, S)`` (CLIP-normalised), fp16 on the CPU.

    Each patch keeps its zero-shot anomaly value per layer too (for maps in site units).

    Args:
        detector: The model the bank is for.
        x: Normal reference images.
        positions: ``(B,)`` body coordinates (default 0.5).
    """
    feats = detector.encode(x)
    pos = _positions(x, positions)
    with torch.inference_mode():
        anomaly = detector.model.patch_anomaly(feats, detector.text_features())
    return bank_from_tokens(feats.patch_tokens, pos, anomaly).to("cpu")


class SiteUnitsDetector(_BankDetector):
    """A :class:`Detector` whose maps are in units of the site's normal anatomy (:mod:`.site_units`).

    Same interface as :class:`ReferenceDetector`. Per patch, the zero-shot residual against the
    nearest reference patch and the reference distance are standardised with the site's
    statistics and blended, ``(1 - w) z_r + w z_d``; the blend is upsampled and smoothed like the
    zero-shot map and turned into heat in [0, 1) (:func:`~medzsad.model.site_units.unit_heat`).
    Maps are returned in [0, L] like every detector's (the heat times the layer count); a slice's
    score is its map's maximum heat.

    Args:
        detector: The zero-shot detector.
        bank: Reference bank with zero-shot values, built with the same model.
        stats: The site's statistics of the two terms.
        weight: ``w`` in [0, 1].
        options: Window, chunk budget and backend of the search.
    """

    def __init__(
        self,
        detector: Detector,
        bank: PatchBank,
        stats: NormalStats,
        weight: float = DEFAULT_WEIGHT,
        options: SearchOptions | None = None,
    ) -> None:
        super().__init__(detector, bank, weight, options)
        if bank.anomaly is None:
            raise ModelError("maps in site units need a bank with zero-shot values: rebuild the profile")
        self.stats = stats

    def score(self, x: torch.Tensor, positions: torch.Tensor | None = None) -> DetectionResult:
        """Score images in site units.

        Args:
            x: ``(B, 3, S, S)`` float32, CLIP-normalised.
            positions: ``(B,)`` float body coordinates in [0, 1] (default 0.5: 2D images).

        Returns:
            :class:`DetectionResult` on CPU: scores in [0, 1), maps in [0, L).
        """
        det = self.detector
        feats = det.encode(x)
        pos = _positions(x, positions)
        with torch.inference_mode():
            anomaly = det.model.patch_anomaly(feats, det.text_features())
            terms = reference_terms(feats.patch_tokens, pos, self.bank, self.options, anomaly)
            z = site_units(terms, pos, self.stats, self.weight)
            cfg = det.model.config
            smooth = gaussian_smooth(similarity_maps(z[..., None], cfg.image_size)[:, 0], cfg.sigma)
            heat = unit_heat(smooth).float()
            maps = heat * float(len(cfg.feature_layers))
            return DetectionResult(heat.amax(dim=(1, 2)).cpu(), maps.cpu(), None)
