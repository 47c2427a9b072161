"""The one batch loop: slices and their body positions through the model.

Every path that runs the model on a study's slices goes through here: :func:`score_batch` is the
call on one batch (the local executor's model thread calls it on batches that mix studies),
:func:`score_study` runs one study batch by batch (the Ray actor, the profile builder), and
:func:`encode_study` turns a reference study into bank entries with the same batching. A batch
always carries its slices' positions (body coordinate and axis code, :func:`slice_positions`), so
zero-shot, reference and multi-axis scoring cannot drift apart between executors. A study holds
its slices at model size in one channel; the batch becomes the CLIP-normalised model input here
(:func:`~medzsad.transforms.clip_input.clip_normalise`), after its copy to the model's device.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import torch

from medzsad.errors import InputError
from medzsad.model.reference_scoring import bank_from_images
from medzsad.model.references import PatchBank, merge_banks
from medzsad.study.scorer import ModelScorer, SliceScorer
from medzsad.study.types import PreparedStudy, Scored
from medzsad.transforms.clip_input import clip_normalise

__all__ = [
    "layer_mean",
    "slice_positions",
    "batches",
    "score_batch",
    "score_study",
    "encode_study",
    "device_of",
    "nothing_to_score",
]


def nothing_to_score(study_id: str) -> InputError:
    """The error of a study whose every slice was skipped as empty (the same words on every path)."""
    return InputError(f"study {study_id}: every slice was skipped as empty; nothing to score")


def device_of(scorer: object) -> torch.device | None:
    """The device the scorer's model runs on (``None`` for a scorer without a detector, e.g. tests)."""
    device = getattr(getattr(scorer, "detector", None), "device", None)
    return torch.device(device) if device is not None else None


def slice_positions(prepared: PreparedStudy) -> torch.Tensor:
    """``(N, 2)`` float32: each slice's body coordinate along its axis and its axis code.

    Column 0 is :attr:`PreparedStudy.positions`, column 1 the index of the slice's plane in
    :data:`~medzsad.study.types.AXES`. This is what every batch carries to the model.
    """
    coords = np.asarray(prepared.positions, dtype=np.float32)
    return torch.from_numpy(np.stack([coords, prepared.axis_codes.astype(np.float32)], axis=1))


def batches(
    prepared: PreparedStudy, batch_size: int, rows: slice | None = None
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """A study's ``(B, 1, S, S)`` slices with their ``(B, 2)`` slice positions, ``batch_size`` at a time.

    Args:
        prepared: The study.
        batch_size: Slices per batch.
        rows: Only these rows (e.g. one axis's), default all.
    """
    images, positions = prepared.images, slice_positions(prepared)
    if rows is not None:
        images, positions = images[rows], positions[rows]
    for start in range(0, int(images.shape[0]), max(1, batch_size)):
        yield images[start : start + batch_size], positions[start : start + batch_size]


def layer_mean(maps: np.ndarray, n_layers: int) -> np.ndarray:
    """Maps summed over ``n_layers`` feature layers -> their mean, clipped to [0, 1] (a new float32 array)."""
    m = np.divide(np.asarray(maps, dtype=np.float32), np.float32(max(n_layers, 1)), dtype=np.float32)
    return np.clip(m, np.float32(0.0), np.float32(1.0), out=m)


def score_batch(
    scorer: SliceScorer, images: torch.Tensor, positions: torch.Tensor, device: torch.device | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Run the model on one batch: ``(B,)`` scores and ``(B, S, S)`` maps in [0, 1], float32 numpy.

    The model's maps (summed over its ``n_layers`` feature layers) become their mean here, batch by
    batch (:func:`layer_mean`), so every later stage uses a study's maps as they are, without a copy.

    Args:
        scorer: The model.
        images: ``(B, 1, S, S)`` float32 model-size slices in ``[0, 1]`` (of one or several studies).
        positions: ``(B, 2)`` float32 slice positions of the same slices (:func:`slice_positions`).
        device: The scorer's device; on CUDA the batch is pinned and copied without blocking (a
            third of the bytes of the model input), then normalised there.
    """
    if device is not None and device.type == "cuda":
        images = images.pin_memory().to(device, non_blocking=True)
    res = scorer.score(clip_normalise(images, scorer.mean, scorer.std), positions)
    scores = res.image_scores.detach().float().cpu().numpy()
    return scores, layer_mean(res.maps.detach().float().cpu().numpy(), scorer.n_layers)


def score_study(prepared: PreparedStudy, scorer: SliceScorer, batch_size: int) -> Scored:
    """Run one study's kept slices through the model in batches of ``batch_size``.

    Raises:
        InputError: The study has no slice to score (every slice empty).
    """
    if int(prepared.images.shape[0]) == 0:
        raise nothing_to_score(prepared.study.study_id)
    t = time.perf_counter()
    device = device_of(scorer)
    parts = [score_batch(scorer, x, pos, device) for x, pos in batches(prepared, batch_size)]
    scores = np.concatenate([p[0] for p in parts])
    maps = np.concatenate([p[1] for p in parts])
    return Scored(scores, maps, time.perf_counter() - t)


def encode_study(prepared: PreparedStudy, scorer: ModelScorer, batch_size: int) -> dict[str, PatchBank]:
    """The bank of a (normal reference) study per scored axis, each patch with its body coordinate.

    Raises:
        InputError: The study has no slice to encode on one of its axes (every slice empty).
    """
    out: dict[str, PatchBank] = {}
    for axis in prepared.axes:
        if len(axis.slice_index) == 0:
            raise InputError(
                f"study {prepared.study.study_id}: every {axis.axis} slice was skipped as empty; "
                "nothing to encode"
            )
        parts = [
            bank_from_images(scorer.detector, clip_normalise(x, scorer.mean, scorer.std), pos[:, 0])
            for x, pos in batches(prepared, batch_size, axis.rows)
        ]
        out[axis.axis] = merge_banks(parts)
    return out
