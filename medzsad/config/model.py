"""``model:``: the detector and where it runs."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from medzsad.config._base import _Section

#: The offline smoke model: tiny random AnomalyCLIP, no weights needed (``--smoke``).
SMOKE_MODEL: dict[str, Any] = {
    "backbone": None,
    "tiny": True,
    "clip_weights": "random",
    "prompt_weights": "random",
    "image_size": 112,
    "feature_layers": [2, 4, 6, 8],
    "dpam_layers": 6,
    "seed": 0,
}


class ModelConfig(_Section):
    """The detector and where it runs.

    ``backbone``, ``image_size``, ``feature_layers`` and ``dpam_layers`` are overrides: ``None``
    (the default) keeps the value of the architecture JSON the model is built from
    (``medzsad/model/configs``; see :mod:`medzsad.weights.architecture`). ``image_size`` is checked
    once, against the patch size of the backbone actually built.

    Attributes:
        references: Blend in the distance to few-shot normal references (docs/references.md); the
            references come from the profile named by ``output.flag``/``output.threshold``, built
            with ``profile: {references: K}``.
        reference_weight: ``w`` of ``(1 - w) * zero-shot + w * reference distance``.
        reference_window: Half-width of the body-coordinate window a slice is compared within.
        site_normalised: With references, express both map terms in units of the site's normal
            anatomy before blending (statistics from the profile; docs/references.md), so that
            ``reference_weight`` weighs comparable terms. ``false``: the raw blend of issue 10.
    """

    backbone: str | None = None
    clip_weights: str = "clip_vitl14_336.openai"
    prompt_weights: str = "anomalyclip_vitl14_336.mvtec"
    image_size: int | None = Field(default=None, ge=1)
    feature_layers: tuple[int, ...] | None = None
    dpam_layers: int | None = Field(default=None, ge=0)
    device: str = "auto"
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    compile: bool = False  # torch.compile the vision encoder (CUDA graphs on CUDA)
    batch_size: int = Field(default=8, ge=1)
    tiny: bool = False
    seed: int = 0
    references: bool = False
    reference_weight: float = Field(default=0.5, ge=0, le=1)
    reference_window: float = Field(default=0.1, gt=0, le=1)
    site_normalised: bool = True

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if v == "gpu" or v.startswith("gpu:"):  # TotalSegmentator's spelling
            v = "cuda" + v[3:]
        ok = v in ("auto", "cpu", "cuda", "mps") or (v.startswith("cuda:") and v[5:].isdigit())
        if not ok:
            raise ValueError(f"device must be auto, cpu, cuda (or gpu), cuda:N or mps (got {v!r})")
        return v

    @model_validator(mode="after")
    def _tiny_needs_random(self) -> ModelConfig:
        if self.tiny and (self.clip_weights != "random" or self.prompt_weights != "random"):
            raise ValueError(
                "tiny: true builds a random test backbone; set clip_weights and prompt_weights to random"
            )
        return self

    @property
    def is_smoke(self) -> bool:
        """True when any weight is random: outputs are labelled as a smoke run."""
        return self.tiny or self.clip_weights == "random" or self.prompt_weights == "random"

    def smoke_swapped(self, image_size: int | None = None) -> dict[str, Any]:
        """This section with the model swapped for :data:`SMOKE_MODEL` (``--smoke``), as JSON.

        Only the weights and the architecture change; where and how the model runs (device,
        precision, batch size, references and their blend) stays as the cohort says.

        Args:
            image_size: Input side of the smoke model instead of its 112 px (``--fast``).
        """
        data = {**self.model_dump(mode="json"), **SMOKE_MODEL}
        if image_size is not None:
            data["image_size"] = image_size
        return data
