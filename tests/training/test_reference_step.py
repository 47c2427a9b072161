"""The trainer's own step (medzsad.training.train_step) reproduces the reference training step."""

from __future__ import annotations

from medzsad import selftest as selftest_mod
from medzsad.training import TrainConfig, make_optimizer, train_step


def test_train_step_matches_reference_fixture(reference_dirs) -> None:
    for d in reference_dirs:
        fx = selftest_mod.load_reference_fixture(d)
        model = selftest_mod._build(fx)
        opt = fx.optimizer
        cfg = TrainConfig(lr=float(opt.get("lr", 1e-3)), betas=tuple(opt.get("betas", (0.5, 0.999))))
        params = dict(model.prompt_learner.named_parameters())
        optimizer = make_optimizer(list(params.values()), cfg)
        labels = fx.inputs["labels"]
        masks = fx.inputs["gt_masks"].float()
        known = labels >= 0  # the reference fixture has a mask for every image
        terms = train_step(model, optimizer, labels, masks, known, fx.lam, images=fx.inputs["x"].float())
        got = {
            "loss_total": terms.total.detach(),
            "loss_pixel": terms.pixel.detach(),
            "loss_image": terms.image,
        }
        for name, p in params.items():
            got[f"grad.{name}"] = p.grad
            got[f"after_step.{name}"] = p.detach()
        checked = 0
        for name, expected in fx.expected.items():
            if name in got and got[name] is not None:
                row = selftest_mod._compare(name, got[name], expected)
                assert row.ok, (d.name, name, row)
                checked += 1
        grads = [n for n in fx.expected if n.startswith("grad.")]
        steps = [n for n in fx.expected if n.startswith("after_step.")]
        assert grads and steps and checked >= len(grads) + len(steps) + 3


def test_trainer_defaults_are_the_reference_optimiser():
    cfg = TrainConfig()
    assert (cfg.lr, cfg.betas) == (1e-3, (0.5, 0.999))
