"""V-JEPA 2 specifics: Hugging Face's files through ``weights=`` (classifier and encoder-only, the
predictor's tensors skipped), the Diving-48 probes' four encoder layers against the authors' code, wrong
files refused, the encoder-only model's embedding and its new probe,
the 3D rotary positions, the clip-size checks, the published architectures' parameter counts and the
weights' metadata."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

import videozoo
from parity.common import FIXTURES, TOLERANCE, load_fixture, make_input, reference_state_dict, relative_error
from videozoo.errors import CheckpointError
from videozoo.zoo import Weights, WeightsEnum, build_model
from videozoo.zoo.categories import DIVING48_CATEGORIES, SSV2_CATEGORIES
from videozoo.models.adapters.vjepa2 import from_huggingface_state_dict
from videozoo.models.layers import apply_rope, rope_3d_tables, rope_section_dim
from videozoo.models.vjepa2 import (
    VJEPA2,
    VJEPA2_ViTg_256_Weights,
    VJEPA2_ViTg_384_Diving48_Weights,
    VJEPA2_ViTg_384_Weights,
    VJEPA2_ViTH_256_Weights,
    VJEPA2_ViTL_256_Diving48_Weights,
    VJEPA2_ViTL_256_Weights,
    vjepa2_vitg_256,
    vjepa2_vitg_384,
    vjepa2_vitg_384_diving48,
    vjepa2_vith_256,
    vjepa2_vitl_256,
    vjepa2_vitl_256_diving48,
)
from videozoo.video.transforms import VideoClassification

LABELS = ["a", "b", "c", "d", "e"]


def _tiny_weights(repo: str, categories: list[str], model_args: dict | None = None) -> Weights:
    meta = {
        "categories": categories, "num_frames": 8, "sampling_rate": 1, "frame_rate": None, "num_clips": 1,
        "num_crops": 1, "min_size": (16, 16), "min_temporal_size": 2, "model_args": model_args or {},
    }  # fmt: skip
    if not categories:
        meta["embedding_only"] = True
    return Weights(
        url=f"https://huggingface.co/test/{repo}/resolve/main/model.safetensors",
        transforms=lambda: VideoClassification(crop_size=32, resize_size=32),
        meta=meta,
        state_dict_adapter=from_huggingface_state_dict,
    )


class Tiny_VJEPA2_Weights(WeightsEnum):
    """Members in the published format and key layout, at the parity fixtures' sizes."""

    PROBE = _tiny_weights("tiny-vjepa2-probe", LABELS)
    ENCODER = _tiny_weights("tiny-vjepa2-encoder", [])
    DEFAULT = PROBE


def tiny_vjepa2(*, weights=None, progress=True, **kwargs) -> VJEPA2:
    return build_model(
        VJEPA2, Tiny_VJEPA2_Weights, weights, progress, kwargs, embed_dim=64, depth=2, num_heads=2, probe_norm_eps=1e-5
    )


class Tiny_Diving48_L_Weights(WeightsEnum):
    """A multilevel probe in the published format, shaped as the ViT-L's (every other block, the encoder's heads)."""

    DIVING48 = _tiny_weights("tiny-vjepa2-diving48-l", LABELS, {"probe_layers": (1, 3), "probe_heads": 2, "probe_norm_eps": 1e-5})
    DEFAULT = DIVING48


class Tiny_Diving48_G_Weights(WeightsEnum):
    """Shaped as the ViT-g's: three of four blocks, more probe heads than encoder heads (16 and 22 published)."""

    DIVING48 = _tiny_weights("tiny-vjepa2-diving48-g", LABELS, {"probe_layers": (0, 2, 3), "probe_heads": 4, "probe_norm_eps": 1e-5})
    DEFAULT = DIVING48


def tiny_diving48_l(*, weights=None, progress=True, **kwargs) -> VJEPA2:
    return build_model(VJEPA2, Tiny_Diving48_L_Weights, weights, progress, kwargs, embed_dim=64, depth=4, num_heads=2)


def tiny_diving48_g(*, weights=None, progress=True, **kwargs) -> VJEPA2:
    return build_model(
        VJEPA2, Tiny_Diving48_G_Weights, weights, progress, kwargs, embed_dim=88, depth=4, num_heads=2, mlp_ratio=48 / 11
    )


def tiny_encoder(*, weights=None, progress=True, **kwargs) -> VJEPA2:
    return build_model(VJEPA2, Tiny_VJEPA2_Weights, weights, progress, kwargs, embed_dim=96, depth=2, num_heads=2)


def with_predictor(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The published files also hold the pre-training predictor: a few of its tensors, under its names."""
    g = torch.Generator().manual_seed(0)
    extra = {
        f"{prefix}predictor.embeddings.mask_tokens": torch.randn(10, 1, 1, 32, generator=g),
        f"{prefix}predictor.embeddings.predictor_embeddings.weight": torch.randn(32, 64, generator=g),
        f"{prefix}predictor.layer.0.attention.query.weight": torch.randn(32, 32, generator=g),
        f"{prefix}predictor.layernorm.bias": torch.randn(32, generator=g),
        f"{prefix}predictor.proj.weight": torch.randn(64, 32, generator=g),
    }
    return state | extra


def save_safetensors(state: dict[str, torch.Tensor], path: Path) -> Path:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


# -- the published files ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture_name", "builder", "member"),
    [("vjepa2_vitl_256", tiny_vjepa2, Tiny_VJEPA2_Weights.PROBE), ("vjepa2_vith_256", tiny_encoder, Tiny_VJEPA2_Weights.ENCODER)],
    ids=["probe", "encoder"],
)
def test_published_file_loads_strictly_through_weights(fixture_name, builder, member, tmp_path) -> None:
    """A model.safetensors in Hugging Face's layout, predictor included, named as the member's cached
    file: ``weights=path`` reads it as that member (the classes it pins, or none), strictly, drawing no
    random numbers, and gives the reference's outputs."""
    fixture = load_fixture(FIXTURES / f"{fixture_name}.pt")
    prefix = "vjepa2." if member is Tiny_VJEPA2_Weights.PROBE else ""
    path = save_safetensors(with_predictor(reference_state_dict(fixture), prefix), tmp_path / member.file_name)
    with videozoo.registered(builder, Tiny_VJEPA2_Weights):
        rng = torch.get_rng_state()
        model = builder(weights=path).eval()
        assert torch.equal(torch.get_rng_state(), rng)  # built on the meta device, filled from the file
    assert model.num_classes == len(member.categories)
    assert (model.pooler is None) is (member is Tiny_VJEPA2_Weights.ENCODER)
    with torch.inference_mode():
        out = model(make_input(fixture["input_shape"], seed=fixture["input_seed"]))
    assert relative_error(out, fixture["output"]) <= TOLERANCE


def test_a_wrong_file_is_refused_naming_it(tmp_path) -> None:
    fixture = load_fixture(FIXTURES / "vjepa2_vitl_256.pt")
    state = reference_state_dict(fixture)
    with videozoo.registered(tiny_vjepa2, Tiny_VJEPA2_Weights):
        unknown = save_safetensors(state | {"pooler.extra_token": torch.zeros(3)}, tmp_path / "unknown.safetensors")
        with pytest.raises(CheckpointError, match=r"unknown\.safetensors.*not in Hugging Face's VJEPA2 layout"):
            tiny_vjepa2(weights=unknown)
        del state["vjepa2.encoder.layer.1.attention.value.weight"]
        missing = save_safetensors(state, tmp_path / "missing.safetensors")
        with pytest.raises(CheckpointError, match=r"missing\.safetensors.*value\.weight is missing"):
            tiny_vjepa2(weights=missing)
        other = save_safetensors(reference_state_dict(load_fixture(FIXTURES / "vjepa2_vitg_384.pt")), tmp_path / "other.safetensors")
        with pytest.raises(CheckpointError, match=r"other\.safetensors.*does not fit VJEPA2"):
            tiny_vjepa2(weights=other)  # a classifier of another width (the ViT-g-shaped fixture)


def test_adapter_fuses_projections_and_skips_the_predictor() -> None:
    fixture = load_fixture(FIXTURES / "vjepa2_vitl_256.pt")
    hf = with_predictor(reference_state_dict(fixture), "vjepa2.")
    ours = from_huggingface_state_dict(hf)
    model = VJEPA2(embed_dim=64, depth=2, num_heads=2, num_classes=5)
    assert sorted(ours) == sorted(model.state_dict())
    prefix = "vjepa2.encoder.layer.1.attention"
    for kind in ("weight", "bias"):
        fused = torch.cat([hf[f"{prefix}.{p}.{kind}"] for p in ("query", "key", "value")])
        assert torch.equal(ours[f"blocks.1.attn.qkv.{kind}"], fused)
        pool = "pooler.self_attention_layers.2.self_attn"
        assert torch.equal(ours[f"pooler.blocks.2.attn.qkv.{kind}"], torch.cat([hf[f"{pool}.{p}_proj.{kind}"] for p in "qkv"]))
        cross = "pooler.cross_attention_layer.cross_attn"
        assert torch.equal(ours[f"pooler.cross.attn.kv.{kind}"], torch.cat([hf[f"{cross}.{p}_proj.{kind}"] for p in "kv"]))
    assert not any("predictor" in key for key in ours)
    model.load_state_dict(ours)
    with pytest.raises(ValueError, match="flat dict of tensors"):
        from_huggingface_state_dict({"encoder": {}})


# -- the Diving-48 probes: four of the encoder's layers -----------------------------------------------


@pytest.mark.parametrize(
    ("fixture_name", "builder"),
    [
        ("vjepa2_vitl_256_diving48", tiny_diving48_l),
        ("vjepa2_vitl_256_diving48-16x48x48", tiny_diving48_l),
        ("vjepa2_vitg_384_diving48", tiny_diving48_g),
    ],
    ids=["vitl-8x32x32", "vitl-16x48x48", "vitg-8x48x48"],
)
def test_diving48_file_loads_strictly_and_matches_the_authors_probe(fixture_name, builder, tmp_path) -> None:
    """A Diving-48 model.safetensors (Hugging Face's layout, predictor included) read through ``weights=``
    as a member that pins the multilevel probe gives the authors' multilevel encoder and probe's logits
    (tests/parity/ref_vjepa2.py), at two clip sizes; the probe run on the last layer alone does not."""
    fixture = load_fixture(FIXTURES / f"{fixture_name}.pt")
    enum = Tiny_Diving48_L_Weights if builder is tiny_diving48_l else Tiny_Diving48_G_Weights
    member = enum.DIVING48
    path = save_safetensors(with_predictor(reference_state_dict(fixture), "vjepa2."), tmp_path / member.file_name)
    with videozoo.registered(builder, enum):
        model = builder(weights=path).eval()
        with pytest.raises(ValueError, match=r"probe_layers=\[3\] conflicts with .*DIVING48"):
            builder(weights=path, probe_layers=[3])
    assert model.probe_layers == list(fixture["kwargs"]["probe_layers"])
    assert model.probe_heads == fixture["kwargs"]["probe_heads"] == model.pooler.cross.attn.num_heads
    assert {m.eps for m in model.pooler.modules() if isinstance(m, torch.nn.LayerNorm)} == {1e-5}
    assert model.norm.eps == 1e-6  # the encoder's own
    x = make_input(fixture["input_shape"], seed=fixture["input_seed"])
    with torch.inference_mode():
        out = model(x)
        tokens = model.forward_features(x)
    assert relative_error(out, fixture["output"]) <= TOLERANCE
    _, t, h, w = x.shape[1:]
    assert tokens.shape == (1, len(model.probe_layers) * (t // 2) * (h // 16) * (w // 16), model.num_features)
    single = copy.deepcopy(model)
    single.probe_layers = [model.num_layers - 1]  # the same tensors, the probe on the last layer only
    with torch.inference_mode():
        assert relative_error(single(x), fixture["output"]) > 100 * TOLERANCE  # transformers' way: not the probe


def test_multilevel_tokens_are_the_normed_outputs_of_the_probe_layers() -> None:
    torch.manual_seed(0)
    model = VJEPA2(embed_dim=64, depth=4, num_heads=2, num_classes=3, probe_layers=[0, 2, 3], probe_heads=4).eval()
    x = torch.randn(2, 3, 4, 32, 48)
    with torch.inference_mode():
        tokens, blocks = model.forward_intermediates(x)
        assert torch.equal(tokens, torch.cat([model.norm(blocks[i]) for i in (0, 2, 3)], dim=1))
        assert model.forward_head(tokens, pre_logits=True).shape == (2, 64)
    model.reset_classifier(7)
    assert model.pooler.cross.attn.num_heads == 4
    for bad in ([], [4], [2, 1], [1, 1], [-1]):
        with pytest.raises(ValueError, match=r"probe_layers must be increasing indices of encoder blocks, each in 0\.\.3"):
            VJEPA2(embed_dim=64, depth=4, num_heads=2, num_classes=3, probe_layers=bad)
    with pytest.raises(ValueError, match="probe_heads=5"):
        VJEPA2(embed_dim=64, depth=4, num_heads=2, num_classes=3, probe_heads=5)


# -- encoder-only weights ---------------------------------------------------------------------------


def test_encoder_alone_embeds_and_takes_a_new_probe() -> None:
    torch.manual_seed(0)
    model = VJEPA2(embed_dim=64, depth=2, num_heads=2, num_classes=0).eval()
    assert model.num_classes == 0 and model.pooler is None
    assert isinstance(model.get_classifier(), torch.nn.Identity)
    assert "pooler.query_tokens" not in model.state_dict()
    x = torch.randn(2, 3, 4, 32, 48)
    with torch.inference_mode():
        tokens = model.forward_features(x)
        assert tokens.shape == (2, 2 * 2 * 3, 64)
        embedding = model.forward_head(tokens, pre_logits=True)
        assert embedding.shape == (2, model.num_features) == (2, 64)
        torch.testing.assert_close(embedding, tokens.mean(1))
        assert torch.equal(model(x), embedding)  # no classifier: forward is the embedding
    model.reset_classifier(3)  # a fresh attentive probe and classifier, the publisher's recipe for a task
    assert model.num_classes == 3 and model.pooler is not None and len(model.pooler.blocks) == 3
    with torch.inference_mode():
        assert model(x).shape == (2, 3)
    with pytest.raises(ValueError, match="num_classes must be 0"):
        VJEPA2(embed_dim=64, depth=2, num_heads=2, num_classes=-1)


# -- rotary positions and clip sizes ----------------------------------------------------------------


def test_rotary_tables_are_the_publishers_layout() -> None:
    assert [rope_section_dim(d) for d in (64, 80, 44, 48)] == [20, 26, 14, 16]
    cos, sin = rope_3d_tables([2, 3, 4], 44, torch.device("cpu"))
    assert cos.shape == sin.shape == (24, 42)
    token = 1 * 12 + 2 * 4 + 3  # frame 1, row 2, column 3
    for section, pos in enumerate((1, 2, 3)):
        for c in range(14):
            angle = pos * 10000 ** (-(c % 7) / 7)  # the 7 frequencies laid out twice in a row
            assert cos[token, 14 * section + c].item() == pytest.approx(torch.tensor(angle).cos().item(), abs=1e-6)
            assert sin[token, 14 * section + c].item() == pytest.approx(torch.tensor(angle).sin().item(), abs=1e-6)
    x = torch.randn(1, 2, 24, 44)
    y = apply_rope(x, cos, sin)
    assert torch.equal(y[..., 42:], x[..., 42:])  # channels beyond the three sections pass unchanged
    torch.testing.assert_close(y[..., 0], x[..., 0] * cos[:, 0] - x[..., 1] * sin[:, 0])
    torch.testing.assert_close(y[..., 1], x[..., 1] * cos[:, 1] + x[..., 0] * sin[:, 1])


def test_any_clip_of_whole_tubelets_runs_others_are_refused() -> None:
    model = VJEPA2(embed_dim=64, depth=1, num_heads=2, num_classes=4).eval()
    with torch.inference_mode():
        for shape in [(1, 3, 2, 16, 16), (2, 3, 6, 48, 32), (1, 3, 10, 32, 64)]:
            assert model(torch.randn(shape)).shape == (shape[0], 4)
    for shape in [(1, 3, 5, 32, 32), (1, 3, 4, 40, 32), (1, 3, 4, 32, 24)]:
        with pytest.raises(ValueError, match="2x16x16 tubelets"):
            model(torch.randn(shape))
    with pytest.raises(ValueError, match="at least 2 frames"):
        model(torch.randn(1, 3, 1, 32, 32))


# -- the published architectures --------------------------------------------------------------------

ARCHITECTURES = {  # width, blocks, heads, MLP width: the publisher's vit_large / vit_huge / vit_giant_xformers
    vjepa2_vitl_256: (1024, 24, 16, 4096),
    vjepa2_vith_256: (1280, 32, 16, 5120),
    vjepa2_vitg_256: (1408, 40, 22, 6144),
    vjepa2_vitg_384: (1408, 40, 22, 6144),
    vjepa2_vitl_256_diving48: (1024, 24, 16, 4096),
    vjepa2_vitg_384_diving48: (1408, 40, 22, 6144),
}


@pytest.mark.parametrize("builder", list(ARCHITECTURES), ids=lambda b: b.__name__)
def test_published_architectures_and_parameter_counts(builder) -> None:
    width, depth, heads, mlp = ARCHITECTURES[builder]
    enum = videozoo.get_model_weights(builder)
    for member in enum:
        with torch.device("meta"):  # 1.1 B parameters for the ViT-g with its probe: shapes only
            model = builder(num_classes=len(member.categories))
        assert (model.num_features, len(model.blocks), model.num_heads) == (width, depth, heads)
        assert model.blocks[0].mlp.fc1.out_features == mlp
        assert (model.pooler is None) is bool(member.meta.get("embedding_only"))
        if model.pooler is not None:  # the publisher's probe: 16 heads whatever the encoder's, LayerNorms at 1e-5
            assert len(model.pooler.blocks) == 3 and model.pooler.cross.mlp.fc1.out_features == 4 * width
            assert model.pooler.cross.attn.num_heads == model.pooler.blocks[0].attn.num_heads == 16
            assert {m.eps for m in model.pooler.modules() if isinstance(m, torch.nn.LayerNorm)} == {1e-5}
        assert member.meta["num_params"] == sum(p.numel() for p in model.parameters())


# -- weights ----------------------------------------------------------------------------------------


def test_weights_metadata() -> None:
    hf = "https://huggingface.co/facebook"
    expected = {
        VJEPA2_ViTL_256_Weights.SSV2_FPC16: ("vjepa2-vitl-fpc16-256-ssv2", 256, 16, 4, 73.7),
        VJEPA2_ViTL_256_Weights.PRETRAINED_FPC64: ("vjepa2-vitl-fpc64-256", 256, 64, 1, None),
        VJEPA2_ViTH_256_Weights.PRETRAINED_FPC64: ("vjepa2-vith-fpc64-256", 256, 64, 1, None),
        VJEPA2_ViTg_256_Weights.PRETRAINED_FPC64: ("vjepa2-vitg-fpc64-256", 256, 64, 1, None),
        VJEPA2_ViTg_384_Weights.SSV2_FPC64: ("vjepa2-vitg-fpc64-384-ssv2", 384, 64, 2, 77.3),
        VJEPA2_ViTg_384_Weights.PRETRAINED_FPC64: ("vjepa2-vitg-fpc64-384", 384, 64, 1, None),
    }
    members = [m for enum in (VJEPA2_ViTL_256_Weights, VJEPA2_ViTH_256_Weights, VJEPA2_ViTg_256_Weights, VJEPA2_ViTg_384_Weights) for m in enum]
    assert set(members) == set(expected)
    for member, (repo, crop, frames, step, acc1) in expected.items():
        meta = member.meta
        assert member.url == f"{hf}/{repo}/resolve/main/model.safetensors"
        assert member.state_dict_adapter is from_huggingface_state_dict
        assert (meta["num_frames"], meta["sampling_rate"], meta["frame_rate"]) == (frames, step, None)
        preset = member.transforms()
        assert preset.crop_size == (crop, crop) and preset.resize_size == ({256: 292, 384: 438}[crop],)
        assert preset.mean == (0.485, 0.456, 0.406) and preset.std == (0.229, 0.224, 0.225)
        assert meta["license"] in ("MIT", "Apache-2.0")
        if acc1 is None:  # an encoder published without a probe
            assert meta["embedding_only"] is True and meta["categories"] == [] and meta["_metrics"] == {}
            assert meta["model_args"] == {}
            assert (meta["num_clips"], meta["num_crops"]) == (1, 1)
        else:
            assert "embedding_only" not in meta and meta["categories"] == list(SSV2_CATEGORIES)
            assert meta["model_args"] == {"probe_heads": 16, "probe_norm_eps": 1e-5}
            assert meta["_metrics"] == {"Something-Something-V2": {"acc@1": acc1}}
            assert (meta["num_clips"], meta["num_crops"], meta["hflip"]) == (2, 3, False)
    assert VJEPA2_ViTL_256_Weights.DEFAULT is VJEPA2_ViTL_256_Weights.SSV2_FPC16
    assert VJEPA2_ViTg_384_Weights.DEFAULT is VJEPA2_ViTg_384_Weights.SSV2_FPC64
    # An encoder's weights pin num_classes=0: no classifier can be asked of them.
    with pytest.raises(ValueError, match="num_classes=174 conflicts with VJEPA2_ViTH_256_Weights.PRETRAINED_FPC64"):
        vjepa2_vith_256(weights="DEFAULT", num_classes=174)


def test_diving48_weights_metadata() -> None:
    """The two published Diving-48 probes: their files, the multilevel probe each pins (the publisher's
    out_layers, 16 heads, LayerNorms at 1e-5), Diving-48's classes and the publisher's recipe."""
    hf = "https://huggingface.co/facebook"
    expected = {
        VJEPA2_ViTL_256_Diving48_Weights.DIVING48_FPC32: ("vjepa2-vitl-fpc32-256-diving48", 256, (17, 19, 21, 23), 89.0, "MIT"),
        VJEPA2_ViTg_384_Diving48_Weights.DIVING48_FPC32: ("vjepa2-vitg-fpc32-384-diving48", 384, (24, 29, 34, 39), 90.2, "Apache-2.0"),
    }
    for member, (repo, crop, layers, acc1, license) in expected.items():
        meta = member.meta
        assert type(member).DEFAULT is member
        assert member.url == f"{hf}/{repo}/resolve/main/model.safetensors"
        assert member.state_dict_adapter is from_huggingface_state_dict
        assert meta["categories"] == list(DIVING48_CATEGORIES) and meta["_metrics"] == {"Diving-48": {"acc@1": acc1}}
        assert meta["model_args"] == {"probe_layers": layers, "probe_heads": 16, "probe_norm_eps": 1e-5}
        assert (meta["num_frames"], meta["sampling_rate"], meta["num_clips"], meta["num_crops"]) == (32, 2, 4, 3)
        assert meta["license"] == license and "embedding_only" not in meta
        preset = member.transforms()
        assert preset.crop_size == (crop, crop) and preset.resize_size == ({256: 292, 384: 438}[crop],)
        builder = vjepa2_vitl_256_diving48 if crop == 256 else vjepa2_vitg_384_diving48
        with torch.device("meta"):
            model = builder()
        assert (model.probe_layers, model.probe_heads, model.num_classes) == (list(layers), 16, 48)
        assert model.pooler.cross.attn.num_heads == 16 and model.pooler.cross.norm1.eps == 1e-5
        assert model.num_heads == {256: 16, 384: 22}[crop]
        # The pinned probe is the file's: another one is refused before anything is downloaded.
        with pytest.raises(ValueError, match="probe_heads=22 conflicts with"):
            builder(weights="DEFAULT", probe_heads=22)
    # Diving48_vocab.json's order: transformers' converter names classes 22 and 35 so.
    assert len(set(DIVING48_CATEGORIES)) == 48
    assert DIVING48_CATEGORIES[22] == "Forward 25som 2Twis PIKE" and DIVING48_CATEGORIES[35] == "Inward 35som NoTwis TUCK"


# -- encoder-only weights in the tasks ----------------------------------------------------------------


def test_encoder_weights_give_features_and_refuse_to_classify(tmp_path, capsys) -> None:
    """An encoder's weights: predict(features=True), extract and the embedding work; classify and timeline
    say that these weights have no labels (Python: ValueError; command line: exit 2, before any video)."""
    import videozoo
    from video_factory import make_video
    from videozoo.cli import EXIT_USAGE, main

    torch.manual_seed(0)
    encoder = tiny_encoder(num_classes=0).eval()
    member = Tiny_VJEPA2_Weights.ENCODER
    video = make_video(tmp_path / "v.mp4", num_frames=24, fps=15, size=(40, 48))
    [prediction] = videozoo.predict(video, encoder, member, features=True, num_workers=0)
    assert prediction.top_k == [] and prediction.probs is None and prediction.features.shape == (96,)
    with pytest.raises(ValueError, match=r"Tiny_VJEPA2_Weights.ENCODER has no labels: these are an encoder's weights"):
        videozoo.predict(video, encoder, member, num_workers=0)
    with pytest.raises(ValueError, match="has no labels"):
        videozoo.timeline(video, encoder, member)
    records = videozoo.extract([video], encoder, tmp_path / "feats", member, num_workers=0)
    assert records[0]["status"] == "ok" and records[0]["num_features"] == 96
    with videozoo.registered(tiny_encoder, Tiny_VJEPA2_Weights, "tiny_vjepa2_encoder"):
        code = main(["classify", str(tmp_path / "unread.mp4"), "-m", "tiny_vjepa2_encoder", "-w", "ENCODER"])
        err = capsys.readouterr().err
        assert code == EXIT_USAGE and "has no labels" in err and "'videozoo extract'" in err
        assert main(["timeline", str(video), "-m", "tiny_vjepa2_encoder", "-w", "ENCODER", "-q"]) == EXIT_USAGE
