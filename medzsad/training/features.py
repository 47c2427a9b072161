"""Cache of the frozen backbone's features, so that each image is encoded once per training run.

The vision tower does not train, so an image's DPAM features at a fixed size (no augmentation) are
the same in every epoch. Caching them turns every epoch after the first into prompt-and-text work
only. ``memory`` keeps float32 tensors; ``disk`` keeps float32 ``numpy.memmap`` files in a folder
(valid for one run: the folder is keyed by a fingerprint of the model and the image list).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from medzsad.model.dpam_vision import VisionFeatures

__all__ = ["FeatureCache", "feature_bytes_per_image", "fingerprint"]

logger = logging.getLogger(__name__)


def feature_bytes_per_image(image_dim: int, token_shapes: Sequence[tuple[int, ...]]) -> int:
    """float32 bytes of one image's features: the global feature plus every tapped layer's tokens."""
    return 4 * (image_dim + sum(int(np.prod(s)) for s in token_shapes))


def fingerprint(parts: Sequence[str], module: torch.nn.Module | torch.Tensor) -> str:
    """Hash of some strings and of a module's parameters and buffers (identifies cached features)."""
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode())
        h.update(b"\0")
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"fingerprint needs a module, got {type(module).__name__}")
    for name, t in list(module.named_parameters()) + list(module.named_buffers()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().flatten().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


class FeatureCache:
    """Features of ``n`` images, filled once and read by index.

    Args:
        n: number of images.
        mode: ``"memory"`` or ``"disk"``.
        folder: where ``disk`` keeps its files.
        key: fingerprint stored with the disk files; files with another key are discarded.
    """

    def __init__(self, n: int, mode: str, folder: Path | None = None, key: str = "") -> None:
        if mode not in ("memory", "disk"):
            raise ValueError(f"cache mode must be 'memory' or 'disk', got {mode!r}")
        if mode == "disk" and folder is None:
            raise ValueError("a disk cache needs a folder")
        self.n = n
        self.mode = mode
        self.folder = Path(folder) if folder is not None else None
        self.key = key
        self._arrays: list[np.ndarray] = []
        self._filled = np.zeros(n, dtype=bool)
        if self.folder is not None and mode == "disk":
            self._reuse_disk(self.folder)

    def _reuse_disk(self, folder: Path) -> None:
        manifest = folder / "manifest.json"
        if not manifest.is_file():
            return
        try:
            m = json.loads(manifest.read_text())
            if m.get("key") == self.key and m.get("n") == self.n:
                self._arrays = [
                    np.lib.format.open_memmap(folder / f"f{i}.npy", mode="r+")
                    for i in range(len(m["shapes"]))
                ]
                if (folder / "filled.npy").is_file():
                    self._filled = np.load(folder / "filled.npy")
                logger.info("feature cache: reusing %d cached images in %s", int(self._filled.sum()), folder)
                return
        except (OSError, ValueError, KeyError) as e:
            logger.warning("feature cache in %s unreadable (%s); rebuilding", folder, e)
        shutil.rmtree(folder, ignore_errors=True)
        self._arrays = []

    def _allocate(self, shapes: Sequence[tuple[int, ...]]) -> None:
        if self.mode == "memory" or self.folder is None:
            self._arrays = [np.zeros((self.n, *s), dtype=np.float32) for s in shapes]
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        self._arrays = [
            np.lib.format.open_memmap(
                self.folder / f"f{i}.npy", mode="w+", dtype=np.float32, shape=(self.n, *s)
            )
            for i, s in enumerate(shapes)
        ]
        manifest = {"key": self.key, "n": self.n, "shapes": [list(s) for s in shapes]}
        (self.folder / "manifest.json").write_text(json.dumps(manifest))

    def fill(self, encode: Callable[[Sequence[int]], VisionFeatures], batch_size: int) -> None:
        """Encode every image not cached yet, ``batch_size`` at a time, in index order.

        Args:
            encode: indices -> their :class:`VisionFeatures` (the frozen backbone's forward).
            batch_size: images per forward.
        """
        todo = [i for i in range(self.n) if not self._filled[i]]
        for start in range(0, len(todo), batch_size):
            idx = todo[start : start + batch_size]
            feats = encode(idx)
            parts = [feats.image_features, *feats.patch_tokens]
            if not self._arrays:
                self._allocate([tuple(p.shape[1:]) for p in parts])
            for arr, p in zip(self._arrays, parts):
                arr[idx] = p.detach().float().cpu().numpy()
            self._filled[idx] = True
            if self.mode == "disk" and self.folder is not None:
                for arr in self._arrays:
                    arr.flush()  # type: ignore[attr-defined]
                np.save(self.folder / "filled.npy", self._filled)
        logger.info("feature cache (%s): %d images encoded", self.mode, len(todo))

    def get(self, indices: Sequence[int], device: torch.device) -> VisionFeatures:
        """Cached features of ``indices`` as float32 tensors on ``device``."""
        idx = np.asarray(indices, dtype=np.int64)
        parts = [torch.from_numpy(np.ascontiguousarray(a[idx])).to(device) for a in self._arrays]
        return VisionFeatures(parts[0], parts[1:])
