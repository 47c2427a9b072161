"""Inference wrapper: one call scores a batch of CLIP-normalised images.

Device and precision are arguments, never chosen here. Text features are computed once and
cached (the prompts are fixed at inference); the backbone is never modified.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import torch

from medzsad.errors import ModelError
from medzsad.model.anomalyclip import AnomalyCLIP
from medzsad.model.dpam_vision import VisionFeatures

__all__ = ["DetectionResult", "Detector", "PRECISIONS", "compile_vision"]

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class DetectionResult(NamedTuple):
    """Scores of one batch (CPU tensors, float32).

    Attributes:
        image_scores: ``(B,)`` in [0, 1], anomaly probability of each image.
        maps: ``(B, S, S)`` smoothed anomaly maps, in [0, n_layers].
        layer_maps: ``(L, B, S, S)`` per-layer maps in [0, 1], or ``None`` unless asked for.
    """

    image_scores: torch.Tensor
    maps: torch.Tensor
    layer_maps: torch.Tensor | None


class Detector:
    """Batch scorer around an :class:`AnomalyCLIP`.

    Args:
        model: The model (moved to ``device`` and put in eval mode here).
        device: Torch device string, e.g. ``"cpu"``, ``"cuda"``, ``"cuda:1"``.
        precision: ``"fp32"`` (default); ``"bf16"`` autocast (CUDA or CPU) or ``"fp16"`` autocast
            (CUDA). Only the vision encoder runs in reduced precision; text features and the scoring
            head stay float32.
        mean: CLIP normalisation mean (3,), default the backbone's (OpenAI) values.
        std: CLIP normalisation std (3,).
        compile: Run the vision encoder through ``torch.compile`` (on CUDA with CUDA graphs, mode
            ``reduce-overhead``). The first call of each batch size compiles (slow); later calls
            reuse the compiled graph. Results stay within float rounding of the eager ones.
    """

    def __init__(
        self,
        model: AnomalyCLIP,
        device: str | torch.device = "cpu",
        precision: str = "fp32",
        mean: tuple[float, float, float] | None = None,
        std: tuple[float, float, float] | None = None,
        compile: bool = False,
    ) -> None:
        if precision not in PRECISIONS:
            raise ModelError(f"precision {precision!r} is not one of {sorted(PRECISIONS)}")
        self.device = torch.device(device)
        if precision == "fp16" and self.device.type != "cuda":
            raise ModelError(
                f"precision 'fp16' needs a CUDA device (got {self.device}); use fp32 or bf16 on CPU"
            )
        if precision == "bf16" and self.device.type not in ("cuda", "cpu"):
            raise ModelError(f"precision 'bf16' needs a CUDA or CPU device (got {self.device}); use fp32")
        self.precision = precision
        self.model = model.to(self.device).eval()
        preprocess = getattr(model.clip.visual, "preprocess_cfg", {}) or {}
        if (mean is None and "mean" not in preprocess) or (std is None and "std" not in preprocess):
            raise ModelError(
                "the backbone carries no normalisation (visual.preprocess_cfg mean/std); pass mean= and std="
            )
        self.mean = tuple(mean or preprocess["mean"])
        self.std = tuple(std or preprocess["std"])
        self._text: torch.Tensor | None = None
        self.compiled = compile
        self._vision: Callable[[torch.Tensor], VisionFeatures] = (
            compile_vision(self.model.vision, self.device) if compile else self.model.vision
        )

    @property
    def image_size(self) -> int:
        """Input side ``S`` the model was built for."""
        return self.model.image_size

    def text_features(self) -> torch.Tensor:
        """``(2, D)`` cached normalised text features on the device."""
        if self._text is None:
            with torch.inference_mode(), self._autocast():
                self._text = self.model.text_features().float()
        return self._text

    def invalidate_text_cache(self) -> None:
        """Forget cached text features (after prompts change)."""
        self._text = None

    @contextlib.contextmanager
    def _autocast(self) -> Iterator[None]:
        dtype = PRECISIONS[self.precision]
        if dtype is None:
            yield
        else:
            with torch.autocast(device_type=self.device.type, dtype=dtype):
                yield

    def score(self, x: torch.Tensor, *, return_layer_maps: bool = False) -> DetectionResult:
        """Score images.

        Args:
            x: ``(B, 3, S, S)`` float32, CLIP-normalised, ``S == image_size``.
            return_layer_maps: Also return per-layer maps.

        Returns:
            :class:`DetectionResult` on CPU.
        """
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            raise ModelError(
                f"expected images of shape (B, 3, {self.image_size}, {self.image_size}), got {tuple(x.shape)}"
            )
        text = self.text_features()
        with torch.inference_mode():
            with self._autocast():
                if self.compiled and self.device.type == "cuda":
                    torch.compiler.cudagraph_mark_step_begin()  # outputs of the last replay are consumed
                feats = self._vision(x.to(self.device, torch.float32))
            out = self.model.score(feats, text)
            layers = torch.stack(out.layer_maps).float().cpu() if return_layer_maps else None
            return DetectionResult(out.image_scores.float().cpu(), out.maps.float().cpu(), layers)

    def encode(self, x: torch.Tensor) -> VisionFeatures:
        """Vision features of images (for reference banks and reference scoring).

        Args:
            x: ``(B, 3, S, S)`` float32, CLIP-normalised, ``S == image_size``.

        Returns:
            :class:`~medzsad.model.dpam_vision.VisionFeatures` on the device (inference tensors).
        """
        self._check_input(x)
        with torch.inference_mode(), self._autocast():
            return self.model.vision(x.to(self.device, torch.float32))

    def _check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            raise ModelError(
                f"expected images of shape (B, 3, {self.image_size}, {self.image_size}), got {tuple(x.shape)}"
            )


def compile_vision(vision: Any, device: torch.device) -> Callable[[torch.Tensor], VisionFeatures]:
    """``torch.compile`` a vision encoder for inference on ``device``.

    Static shapes (one graph per batch size: inputs have a fixed image size and the batch size only
    changes for a cohort's last batch); on CUDA the ``reduce-overhead`` mode replays CUDA graphs,
    which removes the per-kernel launch cost of the small-batch forward.

    Raises:
        ModelError: ``torch.compile`` is not available in this torch build.
    """
    if not hasattr(torch, "compile"):
        raise ModelError("model.compile needs torch >= 2.0 with torch.compile; set compile: false")
    mode = "reduce-overhead" if device.type == "cuda" else None
    compiled: Callable[[torch.Tensor], VisionFeatures] = torch.compile(vision, mode=mode, dynamic=False)
    return compiled
