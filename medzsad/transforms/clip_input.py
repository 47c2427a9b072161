"""Display slices ``[0, 1]`` -> CLIP model input ``(N, 3, S, S)``: letterbox, resize, normalise.

With ``letterbox`` the slice is first padded (value 0, centred) to a square *physical* extent, so
that anisotropic pixels (e.g. a coronal cut of 5 mm axial slices) are not distorted; then it is
resized to ``S x S`` (bilinear, antialiased when shrinking), repeated to 3 channels and normalised
with the model's ``mean``/``std``.

With ``channels=1`` the transform stops before the last step: ``(N, 1, S, S)`` model-size slices in
``[0, 1]``, a third of the memory of the model input. :func:`clip_normalise` makes the model input
of a batch of them, with the same float32 operations (so the same numbers) as the 3-channel output.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from monai.config import KeysCollection
from monai.transforms import MapTransform, Transform

from medzsad.errors import ConfigError
from medzsad.transforms._backend import ArrayLike

__all__ = ["Letterbox", "letterbox_of", "resize_stack", "clip_normalise", "ToClipInput", "ToClipInputd"]


@dataclass(frozen=True)
class Letterbox:
    """How a ``(H, W)`` slice maps onto the ``S x S`` model grid.

    Attributes:
        size: ``(H, W)`` of the slice.
        padded: ``(Hp, Wp)`` after padding.
        offset: ``(top, left)`` of the slice inside the padded image.
        image_size: ``S``.
    """

    size: tuple[int, int]
    padded: tuple[int, int]
    offset: tuple[int, int]
    image_size: int


def letterbox_of(
    size: tuple[int, int], pixel_spacing_mm: tuple[float, float], image_size: int, letterbox: bool = True
) -> Letterbox:
    """The :class:`Letterbox` of a slice of ``size`` with ``(row, column)`` pixel spacing."""
    h, w = int(size[0]), int(size[1])
    if not letterbox:
        return Letterbox((h, w), (h, w), (0, 0), image_size)
    sr, sc = float(pixel_spacing_mm[0]), float(pixel_spacing_mm[1])
    extent = max(h * sr, w * sc)
    hp, wp = max(h, int(round(extent / sr))), max(w, int(round(extent / sc)))
    return Letterbox((h, w), (hp, wp), ((hp - h) // 2, (wp - w) // 2), image_size)


def resize_stack(x: torch.Tensor, size: tuple[int, int], mode: str = "bilinear") -> torch.Tensor:
    """Resize ``(N, H, W)`` float32 to ``(N, *size)``.

    ``bilinear`` (``align_corners=False``) is antialiased when shrinking; ``nearest`` uses
    ``nearest-exact`` (pixel centres), so that an integer up- then down-scale restores the input.
    """
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    x4 = x[:, None].to(torch.float32)
    if mode == "nearest":
        out = F.interpolate(x4, size=size, mode="nearest-exact")
    else:
        shrink = size[0] < x.shape[-2] or size[1] < x.shape[-1]
        out = F.interpolate(x4, size=size, mode="bilinear", align_corners=False, antialias=shrink)
    return out[:, 0]


#: Slices resized and normalised at a time by :class:`ToClipInput`.
_CHUNK = 16


def _channel_stats(mean: Sequence[float], std: Sequence[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(1, 3, 1, 1)`` float32 mean and std tensors."""
    m = torch.tensor([float(v) for v in mean], dtype=torch.float32).view(1, 3, 1, 1)
    return m, torch.tensor([float(v) for v in std], dtype=torch.float32).view(1, 3, 1, 1)


def _normalise_into(grey: torch.Tensor, out: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> None:
    """``out[:, c] = (grey - mean_c) / std_c`` for ``(N, S, S)`` grey and ``(N, 3, S, S)`` out.

    Channel by channel: the same float32 operations as broadcasting.
    """
    mean, std = mean.to(grey.device), std.to(grey.device)
    for c in range(3):
        torch.sub(grey, mean[0, c], out=out[:, c])
        out[:, c].div_(std[0, c])


def clip_normalise(grey: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """The model input ``(B, 3, S, S)`` float32 of ``(B, 1, S, S)`` model-size slices in ``[0, 1]``.

    The numbers equal :class:`ToClipInput`'s 3-channel output of the same slices, bit for bit, on
    the device ``grey`` is on.
    """
    if grey.ndim != 4 or grey.shape[1] != 1:
        raise ValueError(f"expected (B, 1, S, S) slices, got {tuple(grey.shape)}")
    out = torch.empty((grey.shape[0], 3, *grey.shape[-2:]), dtype=torch.float32, device=grey.device)
    _normalise_into(grey[:, 0].to(torch.float32), out, *_channel_stats(mean, std))
    return out


class ToClipInput(Transform):
    """``(N, H, W)`` slices in ``[0, 1]`` -> ``(N, 3, S, S)`` float32 torch, CLIP-normalised.

    Args:
        image_size: Model input size ``S``.
        mean: Per-channel mean (3 values) of the model's preprocessing.
        std: Per-channel std (3 values).
        pixel_spacing_mm: ``(row, column)`` spacing of the slices (for the letterbox).
        letterbox: Pad to a square physical extent before resizing.
        channels: 3 (the model input) or 1 (the model-size slices in ``[0, 1]``, not normalised;
            :func:`clip_normalise` finishes them).
    """

    def __init__(
        self,
        image_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        pixel_spacing_mm: tuple[float, float] = (1.0, 1.0),
        letterbox: bool = True,
        channels: int = 3,
    ) -> None:
        if image_size < 1 or len(mean) != 3 or len(std) != 3 or min(std) <= 0 or channels not in (1, 3):
            raise ConfigError(
                f"need image_size >= 1, 3 means, 3 positive stds and 1 or 3 channels (got {image_size}, "
                f"{mean}, {std}, {channels})"
            )
        self.image_size = int(image_size)
        self.mean, self.std = _channel_stats(mean, std)
        self.pixel_spacing_mm = pixel_spacing_mm
        self.letterbox = letterbox
        self.channels = int(channels)

    def layout(self, size: tuple[int, int]) -> Letterbox:
        """The letterbox for slices of ``size``."""
        return letterbox_of(size, self.pixel_spacing_mm, self.image_size, self.letterbox)

    def __call__(self, slices: ArrayLike, out: torch.Tensor | None = None) -> torch.Tensor:
        """Convert a stack of slices (into ``out``, ``(N, channels, S, S)`` float32, when given)."""
        x = slices if isinstance(slices, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(slices))
        n = int(x.shape[0])
        size = (n, self.channels, self.image_size, self.image_size)
        if out is None:
            out = torch.empty(size, dtype=torch.float32, device=x.device)
        elif tuple(out.shape) != size or out.dtype != torch.float32:
            raise ValueError(f"out must be float32 {size}, got {out.dtype} {tuple(out.shape)}")
        # a few slices at a time (each slice is resized on its own, so the result is the same):
        # only the output is whole, not a padded, a resized and a normalised copy of the stack
        for a in range(0, n, _CHUNK):
            self._convert(x[a : a + _CHUNK], out[a : a + _CHUNK])
        return out

    def _convert(self, slices: torch.Tensor, out: torch.Tensor) -> None:
        x = slices.to(torch.float32)
        n, h, w = x.shape
        lb = self.layout((h, w))
        if lb.padded != (h, w):
            padded = torch.zeros((n, *lb.padded), dtype=torch.float32, device=x.device)
            padded[:, lb.offset[0] : lb.offset[0] + h, lb.offset[1] : lb.offset[1] + w] = x
            x = padded
        x = resize_stack(x, (self.image_size, self.image_size))
        x = x.clamp(0.0, 1.0) if x.data_ptr() == slices.data_ptr() else x.clamp_(0.0, 1.0)
        if self.channels == 1:
            out[:, 0] = x
        else:
            _normalise_into(x, out, self.mean, self.std)


class ToClipInputd(MapTransform):
    """Dictionary version of :class:`ToClipInput` (returns a new dict)."""

    def __init__(
        self,
        keys: KeysCollection,
        image_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        pixel_spacing_mm: tuple[float, float] = (1.0, 1.0),
        letterbox: bool = True,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = ToClipInput(image_size, mean, std, pixel_spacing_mm, letterbox)

    def __call__(self, data: Mapping[Hashable, ArrayLike]) -> dict[Hashable, ArrayLike]:
        """Convert every key."""
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.transform(d[key])
        return d
