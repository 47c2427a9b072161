"""``medzsad train``: learn AnomalyCLIP prompts on an auxiliary dataset with masks."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from medzsad import api
from medzsad.cli._model_args import add_dataset_kind, add_selection_arguments, window

#: The flags of a training run without any weights (docs/training.md, "Offline smoke run").
SMOKE_FLAGS = "--clip random --architecture anomalyclip_tiny --epochs 1"


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``train`` parser."""
    d = api.TrainConfig()
    p = sub.add_parser(
        "train",
        help="learn prompts on auxiliary data (MVTec AD, VisA, your own annotated images)",
        description=(
            "Train the AnomalyCLIP prompts with a frozen CLIP backbone, as the reference train.py: "
            "image cross-entropy plus 4 x (focal + dice) per feature layer, Adam (lr 1e-3, betas 0.5/0.999), "
            "batch 8, 15 epochs, 518 px. Anomalous images without a mask train the image loss only "
            "(folder, csv, VisA; the MVTec layout requires every mask). Saves a prompt "
            "checkpoint each epoch (OUTPUT/checkpoints/epoch_NNN.*, OUTPUT/prompt_learner.*), "
            "OUTPUT/metrics.csv and a resumable state; rerunning the same command resumes after a kill. "
            f"Without weights (offline smoke run, meaningless prompts, seconds on a CPU): {SMOKE_FLAGS}. "
            "See docs/training.md."
        ),
        epilog="example: medzsad train /data/mvtec -o runs/mvtec --device cuda",
    )
    p.add_argument(
        "data", type=Path, help="auxiliary dataset folder (or CSV file with image,label[,mask,class])"
    )
    p.add_argument("-o", "--output", type=Path, required=True, metavar="DIR", help="output folder")
    add_dataset_kind(p)
    p.add_argument(
        "--split", default="test", help="MVTec/VisA split to train on (default: test, as the paper)"
    )
    add_selection_arguments(p)
    _add_model_arguments(p)
    t = p.add_argument_group("training")
    t.add_argument("--epochs", type=int, default=d.epochs, help=f"(default: {d.epochs})")
    t.add_argument("--batch-size", type=int, default=d.batch_size, help=f"(default: {d.batch_size})")
    t.add_argument("--lr", type=float, default=d.lr, help=f"Adam learning rate (default: {d.lr})")
    t.add_argument("--seed", type=int, default=d.seed, help=f"(default: {d.seed})")
    t.add_argument(
        "--save-every", type=int, default=0, metavar="STEPS", help="also save the state every N steps"
    )
    t.add_argument("--max-steps", type=int, default=None, help="stop after this many steps in total")
    t.add_argument(
        "--cache",
        default=d.cache,
        choices=api.TRAIN_CACHE_MODES,
        help=f"frozen-feature cache (default: {d.cache})",
    )
    t.add_argument("--no-resume", action="store_true", help="start afresh even if OUTPUT holds a saved state")
    r = p.add_argument_group("runtime")
    r.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    r.add_argument("--workers", type=int, default=0, help="data-loading processes (default: 0)")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=_handle)


def _add_model_arguments(p: argparse.ArgumentParser) -> None:
    """The ``model`` group: architecture, starting weights and input size."""
    g = p.add_argument_group("model")
    g.add_argument(
        "--architecture", default=None, help="(default: the multi-layer ViT-L/14@336 training architecture)"
    )
    g.add_argument(
        "--clip",
        default=None,
        metavar="NAME|FILE",
        help="CLIP weights (default: OpenAI weights); 'random' for a smoke run without weights, "
        "with --architecture anomalyclip_tiny (a random ViT-L at 518 px takes minutes per epoch on a CPU)",
    )
    g.add_argument("--init-prompts", default=None, metavar="NAME|FILE", help="start from these prompts")
    g.add_argument(
        "--image-size", type=int, default=None, metavar="PX", help="input side (default: the architecture's)"
    )


def _handle(args: argparse.Namespace) -> int:
    config = api.TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        checkpoint_every_steps=args.save_every,
        max_steps=args.max_steps,
        cache=args.cache,
        num_workers=args.workers,
        device=args.device,
        progress=False if args.no_progress else None,
    )
    spec = api.ModelSpec(
        prompts=args.init_prompts,
        clip=args.clip,
        architecture=args.architecture or api.TRAIN_ARCHITECTURE,
        image_size=args.image_size,
        seed=args.seed,
    )
    try:
        result = api.train(
            args.data,
            args.output,
            kind=args.dataset_kind,
            split=args.split,
            classes=args.classes,
            model=spec,
            config=config,
            resume=not args.no_resume,
            window=window(args),
        )
    except api.ModelError as e:
        if args.clip is not None:
            raise
        hint = f"Smoke run without any weights (meaningless prompts): {SMOKE_FLAGS}"
        raise api.ModelError(f"{e}\n  {hint}") from e
    last = result.history[-1] if result.history else None
    status = "finished" if result.finished else "stopped (rerun the same command to resume)"
    sys.stdout.write(f"{status} after {result.global_step} steps, {result.epochs_done} epochs\n")
    if last is not None:
        sys.stdout.write(f"last epoch: loss {last['loss']:.4f}, image_loss {last['image_loss']:.4f}\n")
    if result.last_checkpoint is not None:
        sys.stdout.write(f"prompts: {result.last_checkpoint}\nmetrics: {result.metrics_csv}\n")
    return 0
