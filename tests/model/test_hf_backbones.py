"""AnomalyCLIP on open_clip CustomTextCLIP backbones (BiomedCLIP layout), offline with tiny random towers.

The backbone mirrors BiomedCLIP: a timm ViT trunk (``test_vit``: 6 blocks x 64, patch 16) with a
linear head, and an ``HFTextEncoder`` over a tiny BERT saved with ``transformers`` in a temporary
folder (config + ``vocab.txt`` tokenizer), CLS last-hidden-state pooling and an MLP projection.
"""

from __future__ import annotations

import json
from pathlib import Path

import open_clip
import pytest
import torch
import torch.nn.functional as F
import transformers  # the 'hf' extra (timm + transformers), installed by the 'dev' extra
from open_clip.model import CLIP, CustomTextCLIP

from medzsad.errors import ModelError
from medzsad.model.build import build_anomalyclip, clip_model_config, normalize_clip_keys
from medzsad.model.config import AnomalyCLIPConfig, load_architecture
from medzsad.model.dpam_vision import resize_positional_embedding
from medzsad.model.hf_text import HFPromptedTextEncoder
from medzsad.model.inference import Detector
from medzsad.model.timm_vision import TimmDPAMVisionEncoder, resize_timm_vision_input
from medzsad.weights.clip_files import hf_hub_model, offline_hub
from medzsad.weights.prompt_checkpoint import load_prompt_checkpoint, save_prompt_checkpoint

S = 64  # 4 x 4 tokens of 16 px
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "x", "object", ".", "damaged", "a", "photo", "of"]


@pytest.fixture(scope="module", autouse=True)
def _offline():
    """No test here may reach the network: the hub and transformers are forced offline."""
    import huggingface_hub.constants as hf_constants

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        mp.setattr(hf_constants, "HF_HUB_OFFLINE", True)
        yield


def _bert_dir(root: Path, name: str = "bert", model_type: str = "bert") -> Path:
    d = root / name
    d.mkdir()
    kwargs = dict(
        vocab_size=len(VOCAB),
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=40,
    )
    if model_type == "bert":
        (d / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
        transformers.BertTokenizer(str(d / "vocab.txt"), do_lower_case=True).save_pretrained(str(d))
        transformers.BertConfig(**kwargs).save_pretrained(str(d))
    else:
        transformers.RobertaConfig(**kwargs, pad_token_id=1).save_pretrained(str(d))
    return d


def _clip_cfg(bert: Path, timm_name: str = "test_vit") -> dict:
    return {
        "embed_dim": 24,
        "vision_cfg": {
            "timm_model_name": timm_name,
            "timm_model_pretrained": False,
            "timm_pool": "",
            "timm_proj": "linear",
            "image_size": 160,
        },
        "text_cfg": {
            "hf_model_name": str(bert),
            "hf_tokenizer_name": str(bert),
            "hf_model_pretrained": False,
            "hf_proj_type": "mlp",
            "hf_pooler_type": "cls_last_hidden_state_pooler",
            "context_length": 32,
        },
    }


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory) -> Path:
    return _bert_dir(tmp_path_factory.mktemp("hf"))


@pytest.fixture(scope="module")
def config(bert_dir) -> AnomalyCLIPConfig:
    return AnomalyCLIPConfig(
        backbone="tiny-biomedclip",
        clip_cfg=_clip_cfg(bert_dir),
        image_size=S,
        n_ctx=4,
        depth=4,
        t_n_ctx=2,
        dpam_layers=3,
        feature_layers=(2, 4, 6),
    )


@pytest.fixture(scope="module")
def model(config):
    return build_anomalyclip(config, seed=0)


def _images(n: int, seed: int) -> torch.Tensor:
    return torch.randn(n, 3, S, S, generator=torch.Generator().manual_seed(seed))


def test_builds_custom_text_clip_with_the_biomedclip_adapters(model):
    assert isinstance(model.clip, CustomTextCLIP)
    assert isinstance(model.vision, TimmDPAMVisionEncoder)
    assert isinstance(model.text, HFPromptedTextEncoder)
    trunk = model.clip.visual.trunk
    assert trunk.pos_embed.shape == (1, 1 + 4 * 4, 64)  # resized once, at build
    ids = model.prompt_learner()[1]
    # [CLS] x x x x object . [SEP] / [CLS] x x x x damaged object . [SEP], then [PAD]
    assert ids[0, :8].tolist() == [2, 5, 5, 5, 5, 6, 7, 3] and ids[1, :9].tolist() == [
        2,
        5,
        5,
        5,
        5,
        8,
        6,
        7,
        3,
    ]
    assert ids.shape == (2, 32) and int(ids[0, 8:].abs().sum()) == 0


def test_scores_and_maps_have_documented_shapes_and_ranges(model):
    r = Detector(model).score(_images(3, 0), return_layer_maps=True)
    assert r.image_scores.shape == (3,) and r.maps.shape == (3, S, S)
    assert r.layer_maps is not None and r.layer_maps.shape == (3, 3, S, S)
    assert torch.all((r.image_scores >= 0) & (r.image_scores <= 1))
    assert torch.all((r.layer_maps >= 0) & (r.layer_maps <= 1))
    assert 0.0 <= float(r.maps.min()) and float(r.maps.max()) <= 3.0
    assert float(r.layer_maps.std()) > 0  # not a constant map


def test_batch_results_equal_single_image_results(model):
    det = Detector(model)
    x = _images(4, 1)
    batch = det.score(x)
    singles = [det.score(x[i : i + 1]) for i in range(4)]
    torch.testing.assert_close(batch.maps, torch.cat([s.maps for s in singles]), atol=1e-5, rtol=0)
    torch.testing.assert_close(
        batch.image_scores, torch.cat([s.image_scores for s in singles]), atol=1e-6, rtol=0
    )


def test_vision_matches_timm_and_dpam_changes_taps_not_the_global_feature(model):
    visual = model.clip.visual
    x = _images(2, 2)
    plain = TimmDPAMVisionEncoder(visual, 0, (2, 4, 6))(x)
    dpam = model.vision(x)  # DPAM in blocks 4..6
    with torch.no_grad():
        timm_tokens = visual.head(visual.trunk.forward_features(x))  # timm's own forward + final norm + head
        reference_global = visual.head(
            visual.trunk.blocks(visual.trunk._pos_embed(visual.trunk.patch_embed(x)))[:, 0]
        )
    torch.testing.assert_close(plain.patch_tokens[2], timm_tokens, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(plain.image_features, reference_global, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(dpam.image_features, plain.image_features, atol=0, rtol=0)
    torch.testing.assert_close(dpam.patch_tokens[0], plain.patch_tokens[0], atol=0, rtol=0)  # before DPAM
    for layer in (1, 2):
        assert (dpam.patch_tokens[layer] - plain.patch_tokens[layer]).abs().max() > 1e-3


def test_text_encoder_equals_open_clip_encode_text_for_token_prompts(model):
    """With the context slots set to the placeholder's word embedding and no deep prompts, the
    prompted encoder must reproduce ``HFTextEncoder.forward`` on the token ids (embeddings, mask,
    pooler and projection all as in open_clip/transformers)."""
    prompts, ids = model.prompt_learner()
    word = model.clip.text.transformer.embeddings.word_embeddings
    with torch.no_grad():
        prompts = word(ids)
        ours = model.text(prompts, ids, [])
        theirs = model.clip.text(ids)
        # padding is masked: changing padded embeddings changes nothing
        noisy = prompts.clone()
        noisy[:, 20:] += 5.0
        masked = model.text(noisy, ids, [])
        deep = model.text(prompts, ids, model.prompt_learner.deep_prompts)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(masked, ours, atol=1e-5, rtol=1e-5)
    assert (deep - ours).abs().max() > 1e-4


def test_prompts_train_and_the_backbone_does_not(model):
    learner = model.prompt_learner
    before_backbone = {k: v.clone() for k, v in model.clip.state_dict().items()}
    before_prompts = {k: v.detach().clone() for k, v in learner.named_parameters()}
    opt = torch.optim.Adam([p for p in learner.parameters() if p.requires_grad], lr=1e-2)
    out = model.training_forward(_images(2, 3))
    labels = torch.tensor([0, 1])
    loss = F.cross_entropy(out.logits, labels) + sum(m[:, 1].mean() for m in out.similarity_maps)
    loss.backward()
    assert learner.ctx_pos.grad is not None and learner.ctx_pos.grad.abs().sum() > 0
    assert learner.ctx_neg.grad is not None and learner.ctx_neg.grad.abs().sum() > 0
    for deep in learner.compound_prompts_text:
        assert deep.grad is not None and deep.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.clip.parameters())
    opt.step()
    for name in ("ctx_pos", "ctx_neg", "compound_prompts_text.0", "compound_prompts_text.2"):
        assert not torch.equal(dict(learner.named_parameters())[name], before_prompts[name]), name
    for k, v in model.clip.state_dict().items():
        assert torch.equal(v, before_backbone[k]), k
    opt.zero_grad(set_to_none=True)


def test_prompt_checkpoint_and_backbone_weights_round_trip(config, tmp_path):
    trained = build_anomalyclip(config, seed=5)
    with torch.no_grad():
        trained.prompt_learner.ctx_pos.add_(0.3)
        trained.prompt_learner.compound_prompts_text[1].mul_(-2.0)
    saved = save_prompt_checkpoint(tmp_path / "ckpt", trained.prompt_learner.state_dict(), config.to_dict())
    ckpt = load_prompt_checkpoint(tmp_path / "ckpt")
    assert ckpt.sha256 == saved.sha256
    restored_config = AnomalyCLIPConfig.from_dict(ckpt.config)
    # backbone weights of the built (resized) model load into a fresh CustomTextCLIP exactly
    clip_sd = {f"module.{k}": v for k, v in trained.clip.state_dict().items()}
    restored = build_anomalyclip(restored_config, clip_sd, ckpt.state_dict, seed=99)
    x = _images(2, 4)
    a, b = Detector(trained).score(x), Detector(restored).score(x)
    assert torch.equal(a.maps, b.maps) and torch.equal(a.image_scores, b.image_scores)


def _write_hub_repo(cache: Path, repo_id: str, cfg: dict, state_dict: dict) -> None:
    """A Hugging Face hub cache entry in the hub's own layout (refs/main -> snapshots/<rev>)."""
    from safetensors.torch import save_file

    rev = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snap = repo / "snapshots" / rev
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(rev)
    (snap / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg, "preprocess_cfg": {}}))
    save_file({k: v.contiguous() for k, v in state_dict.items()}, str(snap / "open_clip_model.safetensors"))


def test_hf_hub_id_builds_offline_from_the_hub_cache(config, tmp_path):
    """The 'hf-hub:' route end to end: weights layer builds the open_clip model offline, the model
    layer wraps it; same weights through clip_cfg give the same scores."""
    reference = build_anomalyclip(config, seed=7)
    torch.manual_seed(7)
    hub_sd = CustomTextCLIP(**config.clip_cfg).state_dict()  # at the tower's native 160 px
    hf_id = "hf-hub:medzsad-test/tiny-biomedclip"
    _write_hub_repo(tmp_path, hf_id[len("hf-hub:") :], config.clip_cfg, hub_sd)
    hub = hf_hub_model(hf_id, cache_dir=tmp_path)
    with offline_hub():
        tokenizer = open_clip.get_tokenizer(hf_id, cache_dir=str(tmp_path))
    hub_config = config.with_overrides(backbone=hf_id, clip_cfg=None)
    from_hub = build_anomalyclip(hub_config, clip=hub.model, tokenizer=tokenizer, seed=0)
    from_cfg = build_anomalyclip(config, hub_sd, seed=0)
    assert isinstance(from_hub.clip, CustomTextCLIP) and from_hub.clip.visual.trunk.pos_embed.shape[1] == 17
    x = _images(2, 5)
    a, b = Detector(from_hub).score(x), Detector(from_cfg).score(x)
    torch.testing.assert_close(a.maps, b.maps, atol=1e-6, rtol=0)
    torch.testing.assert_close(a.image_scores, b.image_scores, atol=1e-6, rtol=0)
    assert not torch.equal(a.maps, Detector(reference).score(x).maps)  # other weights, other maps
    with pytest.raises(ModelError, match="hf_hub_model"):
        build_anomalyclip(hub_config)


def test_registers_and_no_embed_class_trunk_matches_timm(bert_dir):
    """A timm ViT with register tokens and a class-free positional embedding (DeiT-3 style)."""
    from open_clip.timm_model import TimmModel
    from timm.models.vision_transformer import VisionTransformer

    visual = TimmModel("test_vit", embed_dim=24, pool="", proj="linear")
    visual.trunk = VisionTransformer(
        img_size=32,
        patch_size=8,
        embed_dim=32,
        depth=3,
        num_heads=2,
        reg_tokens=2,
        no_embed_class=True,
        num_classes=0,
    ).eval()
    visual.head.proj = torch.nn.Linear(32, 24, bias=False)
    old = visual.trunk.pos_embed.detach().clone()
    resize_timm_vision_input(visual, 48)
    assert visual.trunk.pos_embed.shape == (1, 36, 32)  # no prefix rows with no_embed_class
    # the bilinear rule of the standard path (a class row in front is left alone)
    expected = resize_positional_embedding(torch.cat([torch.zeros(1, 32), old[0]]), 6)[1:]
    torch.testing.assert_close(visual.trunk.pos_embed[0], expected, atol=0, rtol=0)
    x = torch.randn(2, 3, 48, 48, generator=torch.Generator().manual_seed(6))
    feats = TimmDPAMVisionEncoder(visual, 0, (3,))(x)
    with torch.no_grad():
        tokens = visual.head(visual.trunk.forward_features(x))
    assert feats.patch_tokens[0].shape == (2, 1 + 36, 24)
    torch.testing.assert_close(feats.patch_tokens[0], torch.cat([tokens[:, :1], tokens[:, 3:]], dim=1))
    with pytest.raises(ModelError, match="built for 6x6"):
        TimmDPAMVisionEncoder(visual, 1, (3,))(torch.randn(1, 3, 32, 32))


def test_custom_text_clip_with_open_clip_text_transformer_equals_clip():
    """CustomTextCLIP with open_clip's TextTransformer (text tower under 'text.') is handled like CLIP."""
    config = load_architecture("anomalyclip_tiny")
    cfg = clip_model_config(config)
    torch.manual_seed(2)
    custom = CustomTextCLIP(**cfg)
    plain = build_anomalyclip(config, normalize_clip_keys(custom.state_dict()), seed=0)
    wrapped = build_anomalyclip(config, clip=custom, seed=0)
    x = torch.randn(2, 3, 112, 112, generator=torch.Generator().manual_seed(0))
    a, b = Detector(plain).score(x), Detector(wrapped).score(x)
    torch.testing.assert_close(a.maps, b.maps, atol=1e-5, rtol=0)
    torch.testing.assert_close(a.image_scores, b.image_scores, atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    ("timm_name", "match"),
    [
        ("test_resnet", r"TimmModel\(ResNet\) is not a timm VisionTransformer"),
        ("test_vit2", r"pools with 'avg'"),
        ("test_vit3", r"attention pooling"),
    ],
)
def test_unsupported_timm_towers_are_named(bert_dir, config, timm_name, match):
    cfg = _clip_cfg(bert_dir, timm_name)
    with pytest.raises(ModelError, match=match):
        build_anomalyclip(config.with_overrides(clip_cfg=cfg), seed=0)


def test_resnet_clip_and_non_bert_text_are_named(tmp_path, config):
    rn_cfg = {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 64, "layers": [1, 1, 1, 1], "width": 16, "head_width": 16},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 1, "layers": 2},
    }
    assert isinstance(CLIP(**rn_cfg).visual, open_clip.model.ModifiedResNet)
    with pytest.raises(ModelError, match="ModifiedResNet"):
        build_anomalyclip(AnomalyCLIPConfig(backbone="rn", clip_cfg=rn_cfg, image_size=64), seed=0)
    roberta = _bert_dir(tmp_path, "roberta", model_type="roberta")
    cfg = _clip_cfg(roberta)
    cfg["text_cfg"]["hf_pooler_type"] = "mean_pooler"
    with pytest.raises(ModelError, match="model_type='roberta'"):
        build_anomalyclip(config.with_overrides(clip_cfg=cfg), seed=0)
