"""Training entry point (called by ``medzsad train``)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from medzsad.datasets.open import open_dataset, open_labelled
from medzsad.datasets.samples import summarise
from medzsad.model.inference import Detector
from medzsad.training.config import TrainConfig
from medzsad.training.trainer import Trainer, TrainResult
from medzsad.weights.model_loading import TRAIN_ARCHITECTURE, ModelSpec, load_anomalyclip

__all__ = ["train"]

logger = logging.getLogger(__name__)


def train(
    data: Path,
    out_dir: Path,
    *,
    kind: str = "auto",
    split: str = "test",
    classes: Sequence[str] | None = None,
    model: ModelSpec | None = None,
    config: TrainConfig | None = None,
    resume: bool = True,
    window: tuple[float, float] | None = None,
) -> TrainResult:
    """Learn AnomalyCLIP prompts on an auxiliary dataset.

    Args:
        data: dataset root or CSV (see :func:`medzsad.datasets.open_dataset`).
        out_dir: output folder (checkpoints, metrics CSV, resumable state).
        kind: dataset layout.
        split: MVTec/VisA split (the reference trains on the *test* split of the auxiliary set).
        classes: MVTec/VisA classes to keep.
        model: architecture and starting weights; default the paper's ViT-L/14@336 architecture with
            OpenAI CLIP weights and freshly initialised prompts (seeded by ``config.seed``).
        config: training settings (default: the reference's).
        resume: continue from ``out_dir``'s saved state when present.
        window: intensity window of ``volumes`` slices, e.g. ``(-160, 240)`` HU.

    Raises:
        InputError: the dataset is missing, empty or unreadable (for 2D layouts before the model is
            built); ImageError for a mask whose size differs from its image's.
        ModelError: missing or invalid weights.
    """
    config = config or TrainConfig()
    spec = model or ModelSpec(prompts=None, architecture=TRAIN_ARCHITECTURE, seed=config.seed)
    # 2D layouts are read (and their masks checked) before the model is built, so a wrong dataset
    # fails in a second, not after loading the weights; volume slices need the model's input size.
    samples = None if kind == "volumes" else open_dataset(Path(data), kind, split, classes)
    net = load_anomalyclip(spec)
    det = Detector(net, device=config.device)
    dataset = None  # 2D samples: the Trainer's SampleDataset at the model's size
    if samples is None:
        data_set = open_labelled(Path(data), kind, net.image_size, det.mean, det.std, split, classes, window)
        samples, dataset = data_set.samples, data_set.dataset
    for cls, (n, n_anom) in summarise(samples).items():
        logger.info("training class %s: %d images, %d anomalous", cls, n, n_anom)
    trainer = Trainer(net, samples, Path(out_dir), config, det.mean, det.std, dataset=dataset)
    return trainer.fit(resume=resume)
