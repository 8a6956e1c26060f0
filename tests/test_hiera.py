"""Hiera specifics: the published files through the cache and the adapter's refusals, the published block
tables, the token order (unroll, pooling) and mask-unit attention against their definitions on raster
tokens, other clip sizes through resampled position tables, the grid errors, layer indices for
layer-wise decay, stochastic depth, bf16, and the weights' metadata."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import videozoo
from parity.common import fill_state_dict
from videozoo.zoo.categories import KINETICS400_CATEGORIES
from videozoo.errors import CheckpointError
from videozoo.models.layers import resize_pos_embed
from videozoo.models.hiera import (
    Hiera,
    Hiera_B_Plus_Weights,
    Hiera_B_Weights,
    Hiera_H_Weights,
    Hiera_L_Weights,
    MaskUnitAttention,
    _pool,
    _unroll,
    block_specs,
    from_hiera_state_dict,
    hiera_b,
)

ENUMS = {
    "hiera_b": Hiera_B_Weights,
    "hiera_b_plus": Hiera_B_Plus_Weights,
    "hiera_l": Hiera_L_Weights,
    "hiera_h": Hiera_H_Weights,
}


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(**kwargs) -> Hiera:
    """Every stage and attention kind of the published layout, 16 channels, one block per stage."""
    torch.manual_seed(0)
    config = dict(stages=(1, 1, 1, 1), embed_dim=16, num_heads=1, num_frames=4, crop_size=(64, 96), num_classes=5)
    return Hiera(**(config | kwargs)).eval()


def unroll(x: torch.Tensor) -> torch.Tensor:
    """Raster tokens (B, T, H, W, C) in the order of the published models' blocks (8x8-token units)."""
    return _unroll(x, 3, [1, 2, 2], [1, 8, 8])


# -- the published checkpoints --------------------------------------------------------------------


def published_state() -> dict[str, torch.Tensor]:
    """hiera_b's tensors at the published shapes (the publisher's key names are ours), filled by the
    parity rule."""
    with torch.device("meta"):
        own = hiera_b().state_dict()
    return fill_state_dict(list(own), [list(t.shape) for t in own.values()], ["float32"] * len(own))


def test_published_checkpoint_loads_from_the_cache(tmp_path, monkeypatch) -> None:
    state = published_state()
    monkeypatch.setenv("VIDEOZOO_HOME", str(tmp_path))
    path = tmp_path / "checkpoints" / "hiera_base_16x224.pth"
    path.parent.mkdir()
    torch.save({"model_state": state, "epoch": 100}, path)  # the publisher's wrapping
    model = hiera_b(weights="DEFAULT").eval()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    with torch.inference_mode():  # a small clip, through resampled position tables
        assert torch.isfinite(model(torch.randn(1, 3, 4, 64, 64))).all()
    with pytest.raises(ValueError, match="num_frames=8 conflicts"):
        hiera_b(weights="DEFAULT", num_frames=8)


def test_adapter_refuses_other_files(tmp_path) -> None:
    state = {"pos_embed_temporal": torch.zeros(1, 8, 96)}
    assert from_hiera_state_dict({"model_state": state, "epoch": 3}) == state
    with pytest.raises(ValueError, match="model_state"):
        from_hiera_state_dict(state)  # a bare state_dict
    with pytest.raises(ValueError, match="not a state_dict"):
        from_hiera_state_dict({"model_state": {"a": 1}})
    path = tmp_path / "image_model.pth"
    torch.save({"model_state": {**published_state(), "extra.weight": torch.zeros(1)}}, path)
    with torch.device("meta"):
        model = hiera_b()
    with pytest.raises(CheckpointError, match="1 unexpected"):
        videozoo.load_weights(model, Hiera_B_Weights.DEFAULT, path)


# -- architecture ------------------------------------------------------------------------------------


def test_block_table_is_the_published_one() -> None:
    """Hiera-B: widths and heads double at blocks 2, 5 and 21, which pool the query 2x2; blocks up to
    and including 5 (one past stage 2) attend within mask units of 64, 16 and then 4 tokens."""
    specs = block_specs((2, 3, 16, 3), 96, 1)
    assert [s.dim_out for s in specs] == [96] * 2 + [192] * 3 + [384] * 16 + [768] * 3
    assert [s.num_heads for s in specs] == [1] * 2 + [2] * 3 + [4] * 16 + [8] * 3
    assert [i for i, s in enumerate(specs) if s.q_stride > 1] == [2, 5, 21]
    assert [s.mask_unit_attn for s in specs] == [True] * 6 + [False] * 18
    assert [s.unit_size for s in specs] == [64] * 3 + [16] * 3 + [4] * 16 + [1] * 2
    with torch.device("meta"):
        model = videozoo.get_model("hiera_h")
    assert model.num_layers == 48 and model.num_features == 2048


def test_unroll_and_pooling_are_max_pooling_in_raster_order() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 16, 24, 5, generator=g)  # (B, T, H, W, C): 2 x 3 units per frame
    tokens = unroll(x)
    raster = x.permute(0, 4, 1, 2, 3)
    for level, unit in enumerate((64, 16, 4)):
        tokens = _pool(tokens, unit, 4)
        pooled = F.max_pool3d(raster, (1, 2 ** (level + 1), 2 ** (level + 1))).permute(0, 2, 3, 4, 1)
        expected = _unroll(pooled, 2 - level, [1, 2, 2], [1, 2 ** (2 - level), 2 ** (2 - level)])
        torch.testing.assert_close(tokens, expected, rtol=0, atol=0)
    assert torch.equal(tokens, pooled.flatten(1, 3))  # one token per unit, in raster order


@pytest.mark.parametrize("q_stride", [1, 4])
def test_mask_unit_attention_is_attention_within_each_unit(q_stride) -> None:
    torch.manual_seed(0)
    attn = MaskUnitAttention(6, 8, 2, q_stride, mask_unit_attn=True).eval()
    x = torch.randn(2, 2, 16, 8, 6)  # (B, T, H, W, C): two 8x8 units per frame
    with torch.inference_mode():
        ours = attn(unroll(x), 64)
        expected = torch.empty(2, 2, 16 // 2 ** (q_stride > 1), 8 // 2 ** (q_stride > 1), 8)
        for t in range(2):
            for row in range(2):
                unit = x[:, t, 8 * row : 8 * row + 8]  # (B, 8, 8, C)
                q, k, v = attn.qkv(unit).chunk(3, dim=-1)
                if q_stride > 1:
                    q = F.max_pool2d(q.permute(0, 3, 1, 2), 2).permute(0, 2, 3, 1)
                qs = q.shape[1:3]
                heads = [t_.flatten(1, 2).unflatten(-1, (2, 4)).transpose(1, 2) for t_ in (q, k, v)]
                scores = (heads[0] @ heads[1].transpose(-1, -2) / 2.0).softmax(-1)  # head_dim 4
                y = attn.proj((scores @ heads[2]).transpose(1, 2).flatten(2)).unflatten(1, qs)
                expected[:, t, row * qs[0] : (row + 1) * qs[0]] = y
        levels, unit = (3, 8) if q_stride == 1 else (2, 4)
        torch.testing.assert_close(ours, _unroll(expected, levels, [1, 2, 2], [1, unit, unit]))


# -- clip sizes --------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(2, 3, 8, 64, 96), (1, 3, 2, 32, 32), (1, 3, 6, 128, 64)])
def test_other_clip_sizes_use_resampled_position_tables(shape) -> None:
    """A model built for 4 x 64 x 96 runs other accepted clips as the model built for them would with
    the tables resampled (temporal linearly, spatial bicubically); the built size uses them as they are."""
    model = tiny()
    _, _, t, h, w = shape
    other = tiny(num_frames=t, crop_size=(h, w))
    state = model.state_dict()
    state["pos_embed_temporal"] = resize_pos_embed(state["pos_embed_temporal"], [2], [t // 2], mode="linear")
    state["pos_embed_spatial"] = resize_pos_embed(state["pos_embed_spatial"], [16, 24], [h // 4, w // 4], mode="bicubic")
    other.load_state_dict(state)
    x = torch.randn(shape)
    with torch.inference_mode():
        features = model.forward_features(x)
        assert features.shape == (shape[0], t // 2, h // 32, w // 32, 128)
        torch.testing.assert_close(model(x), other(x), rtol=1e-5, atol=1e-6)
        assert model.pos_embed([2, 16, 24]).shape == (2 * 16 * 24, 16)
        built = model.pos_embed_spatial[0].unsqueeze(0) + model.pos_embed_temporal[0].unsqueeze(1)
        assert torch.equal(model.pos_embed([2, 16, 24]), built.flatten(0, 1))


def test_grid_errors_name_the_accepted_sizes() -> None:
    model = tiny()
    for bad in [(1, 3, 5, 64, 96), (1, 3, 4, 48, 96), (1, 3, 4, 64, 100)]:
        with pytest.raises(ValueError, match=r"multiple of 2 .* multiples of 32"):
            model(torch.randn(bad))
    with pytest.raises(torch.jit.Error, match="multiples of 32"):
        torch.jit.script(model)(torch.randn(1, 3, 4, 48, 96))
    for kwargs in ({"num_frames": 7}, {"crop_size": 200}, {"crop_size": (64, 80)}):
        with pytest.raises(ValueError, match="num_frames divisible by 2 and crop_size by 32"):
            tiny(**kwargs)
    assert (model.min_temporal_size, model.min_size) == (2, 32)


# -- training ----------------------------------------------------------------------------------------


def test_layer_index_covers_every_parameter() -> None:
    model = tiny(stages=(1, 2, 1, 1))
    index = {name: model.layer_index(name) for name, _ in model.named_parameters()}
    assert model.num_layers == 5
    assert {n for n, i in index.items() if i == 0} == {
        "patch_embed.proj.weight", "patch_embed.proj.bias", "pos_embed_spatial", "pos_embed_temporal"
    }
    assert {n for n, i in index.items() if i == 6} == {
        "norm.weight", "norm.bias", "head.projection.weight", "head.projection.bias"
    }
    assert all(index[n] == int(n.split(".")[1]) + 1 for n in index if n.startswith("blocks."))
    assert set(index.values()) == set(range(7))
    assert model.no_weight_decay() == {"pos_embed_spatial", "pos_embed_temporal"}
    assert model.no_weight_decay() <= set(index)
    with pytest.raises(ValueError):
        model.layer_index("nothing.weight")


def test_stochastic_depth_grows_linearly_and_is_a_no_op_in_eval() -> None:
    model = tiny(stochastic_depth_prob=0.3, dropout=0.5)
    assert [round(b.stochastic_depth_prob, 6) for b in model.blocks] == [0.0, 0.1, 0.2, 0.3]
    reference = tiny()
    x = torch.randn(2, 3, 4, 64, 96)
    with torch.inference_mode():
        assert torch.equal(model(x), reference(x))
    model.train()
    torch.manual_seed(1)
    assert not torch.equal(model(x), reference(x))


def test_bf16() -> None:
    model = tiny()
    x = torch.randn(2, 3, 4, 64, 96)
    with torch.inference_mode():
        full = model(x)
        with torch.autocast("cpu", torch.bfloat16):
            mixed = model(x)
        half = model.to(torch.bfloat16)(x.bfloat16())
    assert mixed.dtype == half.dtype == torch.bfloat16
    scale = full.abs().max()
    assert (mixed.float() - full).abs().max() < 0.05 * scale
    assert (half.float() - full).abs().max() < 0.05 * scale


def test_classifier_initialisation_is_the_references() -> None:
    model = tiny()
    model.reset_classifier(7)
    head = model.get_classifier()
    assert head is model.head.projection
    assert 0.01e-3 < float(head.weight.detach().std()) < 0.03e-3  # truncated normal, std 0.02, scaled by 1e-3
    assert torch.allclose(head.bias, torch.full((7,), 0.02 * 1e-3))


# -- metadata ----------------------------------------------------------------------------------------

PUBLISHED = {  # the README's model zoo: file, K400 top-1; parameters of the built networks
    "hiera_b": ("hiera_base_16x224.pth", 84.0, 51_092_560),
    "hiera_b_plus": ("hiera_base_plus_16x224.pth", 85.0, 69_392_240),
    "hiera_l": ("hiera_large_16x224.pth", 87.3, 213_091_600),
    "hiera_h": ("hiera_huge_16x224.pth", 87.8, 671_627_664),
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_weights_metadata(name) -> None:
    file, acc1, num_params = PUBLISHED[name]
    member = ENUMS[name].DEFAULT
    meta = member.meta
    assert member.url == f"https://dl.fbaipublicfiles.com/hiera/{file}"
    assert meta["_metrics"] == {"Kinetics-400": {"acc@1": acc1}}  # top-5 is not published
    assert meta["num_params"] == num_params
    with torch.device("meta"):
        assert sum(p.numel() for p in videozoo.get_model(name).parameters()) == num_params
    assert meta["categories"] == list(KINETICS400_CATEGORIES)
    assert meta["categories"][363] == "training dog"  # the publisher's example output
    assert meta["license"] == "CC-BY-NC-4.0"
    assert (meta["num_frames"], meta["sampling_rate"], meta["frame_rate"]) == (16, 4, 30.0)
    assert (meta["num_clips"], meta["num_crops"]) == (5, 3)
    assert meta["model_args"] == {"num_frames": 16, "crop_size": 224}
    preset = member.transforms()
    assert preset.crop_size == (224, 224) and preset.resize_size == (224,)
    assert preset.mean == (0.45,) * 3 and preset.std == (0.225,) * 3
    assert math.isclose(meta["_ops"], {"hiera_b": 101.73, "hiera_b_plus": 132.30, "hiera_l": 412.13,
                                       "hiera_h": 1157.80}[name])
