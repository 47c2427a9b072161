"""Reference check as a product feature: compare our AnomalyCLIP with tensors the reference produced.

A fixture folder (``anomalyclip_reference/<name>/``) holds a CLIP state dict in OpenAI key names,
an official-format prompt checkpoint, inputs, and every tensor the unmodified reference code
produced (see the fixture README). :func:`run_selftest` rebuilds the model from those files, runs
inference and one training step, and reports ``max |delta|`` per tensor against tolerances.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from medzsad.errors import ModelError
from medzsad.model.anomalyclip import AnomalyCLIP
from medzsad.model.build import build_anomalyclip
from medzsad.model.config import AnomalyCLIPConfig
from medzsad.model.losses import anomalyclip_loss
from medzsad.weights.prompt_checkpoint import read_official_prompt_checkpoint

__all__ = ["ReferenceFixture", "CheckRow", "SelftestReport", "load_reference_fixture", "run_selftest"]

log = logging.getLogger(__name__)

# Tolerances of the fixture README ("Tolerances observed" / "Suggested").
ATOL_DEFAULT = 1e-5
GRAD_CTX_RTOL = 1e-4
GRAD_CTX_ATOL = 1e-4
GRAD_DEEP_REL = 2.0**-10
AFTER_STEP_ATOL = 1e-6


@dataclass(frozen=True)
class ReferenceFixture:
    """A reference fixture in memory.

    Attributes:
        path: Fixture folder.
        config: Model config equivalent to the reference run.
        feature_names: Expected-tensor index of each tapped layer (``anomaly_map_layer{i}``).
        clip_state_dict: Float32 CLIP weights, OpenAI key names.
        prompt_state_dict: Official prompt learner state dict.
        inputs: ``x`` (B,3,S,S) float32, ``labels`` (B,) int64, ``gt_masks`` (B,S,S) uint8.
        expected: Every expected tensor by name.
        optimizer: Adam settings of the training step.
        lam: Pixel-loss weight.
    """

    path: Path
    config: AnomalyCLIPConfig
    feature_names: tuple[int, ...]
    clip_state_dict: dict[str, torch.Tensor]
    prompt_state_dict: dict[str, torch.Tensor]
    inputs: dict[str, torch.Tensor]
    expected: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    lam: float


@dataclass(frozen=True)
class CheckRow:
    """One compared tensor: ``ok`` when ``|got - expected| <= atol + rtol * |expected|`` everywhere."""

    name: str
    max_abs: float
    atol: float
    rtol: float
    ok: bool


@dataclass
class SelftestReport:
    """All compared tensors of one fixture."""

    fixture: str
    rows: list[CheckRow] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when every tensor is within tolerance and at least one was compared."""
        return bool(self.rows) and all(r.ok for r in self.rows)

    def to_table(self) -> str:
        """Fixed-width text table: tensor, max |delta|, tolerance, status."""
        width = max([len(r.name) for r in self.rows] + [6])
        lines = [f"{'tensor':<{width}}  {'max|d|':>10}  {'atol':>9}  {'rtol':>7}  result"]
        for r in self.rows:
            status = "ok" if r.ok else "FAIL"
            lines.append(f"{r.name:<{width}}  {r.max_abs:>10.3e}  {r.atol:>9.2e}  {r.rtol:>7.1e}  {status}")
        n_fail = sum(not r.ok for r in self.rows)
        lines.append(f"{self.fixture}: {len(self.rows) - n_fail} passed, {n_fail} failed")
        return "\n".join(lines)


def _clip_state_dict(path: Path, text_width: int, vocab: int) -> dict[str, torch.Tensor]:
    raw = load_file(str(path))
    sd = {k: v.float() for k, v in raw.items() if not k.startswith("token_embedding.sparse")}
    if "token_embedding.sparse_row_ids" in raw:
        weight = torch.zeros(vocab, text_width, dtype=torch.float32)
        weight[raw["token_embedding.sparse_row_ids"].long()] = raw["token_embedding.sparse_rows"].float()
        sd["token_embedding.weight"] = weight
    return sd


def _config_from_fixture(cfg: dict[str, Any]) -> tuple[AnomalyCLIPConfig, tuple[int, ...]]:
    vis, txt = cfg["vision"], cfg["text"]
    features = [int(i) for i in cfg["features_list"]]
    first_map = int(cfg.get("feature_map_layer", [0])[0])
    used = tuple(range(first_map, len(features)))
    clip_cfg = {
        "embed_dim": int(vis["embed_dim"]),
        "quick_gelu": True,
        "vision_cfg": {
            "image_size": int(vis["native_resolution"]),
            "layers": int(vis["layers"]),
            "width": int(vis["width"]),
            "head_width": int(vis["width"]) // int(vis["heads"]),
            "patch_size": int(vis["patch_size"]),
        },
        "text_cfg": {
            "context_length": int(txt["context_length"]),
            "vocab_size": int(txt["vocab_size"]),
            "width": int(txt["width"]),
            "heads": int(txt["heads"]),
            "layers": int(txt["layers"]),
        },
    }
    config = AnomalyCLIPConfig(
        backbone=f"reference-fixture-{cfg.get('name', 'unnamed')}",
        clip_cfg=clip_cfg,
        quick_gelu=True,
        image_size=int(cfg["image_size"]),
        n_ctx=int(cfg["n_ctx"]),
        depth=int(cfg["depth"]),
        t_n_ctx=int(cfg["t_n_ctx"]),
        dpam_layers=max(int(cfg["dpam_layer"]) - 1, 0),
        feature_layers=tuple(features[i] for i in used),
        temperature=float(cfg.get("temperature", 0.07)),
        sigma=float(cfg.get("sigma", 4)),
    )
    return config, used


def load_reference_fixture(path: str | Path) -> ReferenceFixture:
    """Read a reference fixture folder.

    Raises:
        ModelError: The folder does not exist, is a file, or lacks files or keys (the message names
            the path).
    """
    root = Path(path)
    if not root.is_dir():
        what = "is not a folder" if root.exists() else "does not exist"
        raise ModelError(
            f"reference fixture folder {root} {what}; give a folder such as "
            "../shared/fixtures/anomalyclip_reference/tiny_a (config.json, clip_state_dict.safetensors, "
            "prompt_learner.pth, inputs.safetensors, expected.safetensors)"
        )
    needed = [
        "config.json",
        "clip_state_dict.safetensors",
        "prompt_learner.pth",
        "inputs.safetensors",
        "expected.safetensors",
    ]
    missing = [n for n in needed if not (root / n).is_file()]
    if missing:
        raise ModelError(f"{root}: not a reference fixture folder, missing {missing}")
    try:
        cfg = json.loads((root / "config.json").read_text())
        config, used = _config_from_fixture(cfg)
    except (KeyError, ValueError, TypeError) as e:
        raise ModelError(f"{root / 'config.json'}: unreadable fixture config ({e!r})") from e
    txt = cfg["text"]
    return ReferenceFixture(
        path=root,
        config=config,
        feature_names=used,
        clip_state_dict=_clip_state_dict(
            root / "clip_state_dict.safetensors", int(txt["width"]), int(txt["vocab_size"])
        ),
        prompt_state_dict=read_official_prompt_checkpoint(root / "prompt_learner.pth"),
        inputs=load_file(str(root / "inputs.safetensors")),
        expected=load_file(str(root / "expected.safetensors")),
        optimizer=dict(cfg.get("optimizer", {"lr": 1e-3, "betas": [0.5, 0.999], "eps": 1e-8})),
        lam=float(cfg.get("lam", 4)),
    )


def _build(fx: ReferenceFixture) -> AnomalyCLIP:
    return build_anomalyclip(fx.config, fx.clip_state_dict, fx.prompt_state_dict)


def _inference_tensors(fx: ReferenceFixture) -> dict[str, torch.Tensor]:
    model = _build(fx)
    x = fx.inputs["x"].float()
    with torch.no_grad():
        prompts, ids = model.prompt_learner()
        text_raw = model.encode_text_raw()
        text = torch.nn.functional.normalize(text_raw, dim=-1)
        feats = model.encode_image(x)
        out = model.score(feats, text)
        img = torch.nn.functional.normalize(feats.image_features, dim=-1)
    got: dict[str, torch.Tensor] = {
        "text_features": text[None],
        "image_features": img,
        "text_probs": out.image_scores,
        "anomaly_map_sum": out.raw_sum,
        "anomaly_map_smoothed": out.maps,
        "debug.text_probs_2class": (img @ text.t() / fx.config.temperature).softmax(-1),
        "debug.text_features_raw": text_raw,
        "debug.image_features_raw": feats.image_features,
        "debug.visual_positional_embedding_after_forward": model.clip.visual.positional_embedding.detach(),
        "debug.prompts": prompts,
        "debug.tokenized_prompts": ids,
    }
    from medzsad.model.scoring import token_similarity

    for name, m, tokens in zip(fx.feature_names, out.layer_maps, feats.patch_tokens):
        got[f"anomaly_map_layer{name}"] = m
        normed = torch.nn.functional.normalize(tokens, dim=-1)
        got[f"debug.similarity_layer{name}"] = token_similarity(normed, text, fx.config.temperature)
    return got


def _training_tensors(fx: ReferenceFixture) -> dict[str, torch.Tensor]:
    model = _build(fx)
    opt_cfg = fx.optimizer
    params = list(model.prompt_learner.parameters())
    optimizer = torch.optim.Adam(
        params,
        lr=float(opt_cfg.get("lr", 1e-3)),
        betas=tuple(opt_cfg.get("betas", (0.5, 0.999))),
        eps=float(opt_cfg.get("eps", 1e-8)),
        weight_decay=float(opt_cfg.get("weight_decay", 0)),
        foreach=False,
    )
    out = model.training_forward(fx.inputs["x"].float())
    terms = anomalyclip_loss(
        out.logits, fx.inputs["labels"], out.similarity_maps, fx.inputs["gt_masks"].float(), lam=fx.lam
    )
    optimizer.zero_grad()
    terms.total.backward()
    got: dict[str, torch.Tensor] = {
        "loss_image": terms.image,
        "loss_pixel": terms.pixel,
        "loss_total": terms.total,
        "train_image_logits": out.logits,
    }
    for name, f, da, dn in zip(fx.feature_names, terms.focal, terms.dice_anomalous, terms.dice_normal):
        got[f"loss_focal_layer{name}"] = f
        got[f"loss_dice_anomalous_layer{name}"] = da
        got[f"loss_dice_normal_layer{name}"] = dn
    named = dict(model.prompt_learner.named_parameters())
    for key, p in named.items():
        if p.grad is not None:
            got[f"grad.{key}"] = p.grad.detach().clone()
    optimizer.step()
    for key, p in named.items():
        got[f"after_step.{key}"] = p.detach().clone()
    return got


def _tolerance(name: str, expected: torch.Tensor) -> tuple[float, float]:
    if name.startswith("grad.ctx_"):
        return GRAD_CTX_ATOL, GRAD_CTX_RTOL
    if name.startswith("grad."):
        return max(GRAD_DEEP_REL * float(expected.abs().max()), 1e-6), 0.0
    if name.startswith("after_step."):
        return AFTER_STEP_ATOL, 0.0
    if name == "debug.tokenized_prompts":
        return 0.0, 0.0
    return ATOL_DEFAULT, 0.0


def _compare(name: str, got: torch.Tensor, expected: torch.Tensor) -> CheckRow:
    atol, rtol = _tolerance(name, expected)
    g = got.detach().to(torch.float64).reshape(expected.shape) if got.numel() == expected.numel() else None
    if g is None:
        return CheckRow(name, float("inf"), atol, rtol, False)
    e = expected.to(torch.float64)
    diff = (g - e).abs()
    ok = bool(torch.all(diff <= atol + rtol * e.abs()))
    return CheckRow(name, float(diff.max()) if diff.numel() else 0.0, atol, rtol, ok)


def run_selftest(path: str | Path) -> SelftestReport:
    """Compare inference and one training step with a reference fixture.

    Every tensor of ``expected.safetensors`` is compared; one we do not produce is a failure.

    Args:
        path: Fixture folder.

    Returns:
        :class:`SelftestReport` (``passed`` tells the verdict).
    """
    fx = load_reference_fixture(path)
    torch_threads = torch.get_num_threads()
    log.info("selftest on %s (%d expected tensors, %d threads)", fx.path, len(fx.expected), torch_threads)
    got = _inference_tensors(fx)
    got.update(_training_tensors(fx))
    report = SelftestReport(fixture=fx.path.name)
    for name in sorted(fx.expected):
        if name not in got:
            report.rows.append(CheckRow(name, float("inf"), 0.0, 0.0, False))
            continue
        report.rows.append(_compare(name, got[name], fx.expected[name]))
    return report
