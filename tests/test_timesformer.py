"""TimeSformer specifics: nearest-neighbour resampling of the position and time tables (and that the
blocks use the input's frame count), any clip size, the Hugging Face adapter, layer-wise decay helpers,
bf16, stochastic depth, and the weights' metadata (the SSv2 member's pins)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from parity.common import FIXTURES, TOLERANCE, load_fixture, make_input, reference_state_dict, relative_error
from videozoo.zoo.store import cache_name
from videozoo.models.layers import resize_pos_embed
from videozoo.models.timesformer import (
    TimeSformer,
    TimeSformer_B_Weights,
    TimeSformer_HR_Weights,
    from_huggingface_state_dict,
    timesformer_b,
)


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(**kwargs) -> TimeSformer:
    torch.manual_seed(0)
    config = dict(num_frames=4, crop_size=32, embed_dim=32, depth=2, num_heads=2, num_classes=5)
    model = TimeSformer(**(config | kwargs)).eval()
    with torch.no_grad():  # non-zero tables and temporal_fc, so that every term shows
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def test_other_sizes_resample_the_tables_by_nearest_neighbour() -> None:
    """An 8x64x64 clip on a model built for 4x32x32 (2x2 patches) equals a model built for 8x64x64 whose
    tables are the built ones with every entry repeated (what nearest-neighbour upsampling by 2 gives)."""
    small = tiny()
    big = TimeSformer(num_frames=8, crop_size=64, embed_dim=32, depth=2, num_heads=2, num_classes=5).eval()
    state = small.state_dict()
    c = 32
    grid = state["pos_embed"][:, 1:].reshape(1, 2, 2, c).repeat_interleave(2, 1).repeat_interleave(2, 2)
    state["pos_embed"] = torch.cat([state["pos_embed"][:, :1], grid.reshape(1, 16, c)], dim=1)
    state["time_embed"] = state["time_embed"].repeat_interleave(2, 1)
    big.load_state_dict(state)
    x = torch.randn(2, 3, 8, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(small(x), big(x), rtol=0, atol=0)
        # the built size uses the tables as they are
        assert torch.equal(small(x[:, :, :4, :32, :32]), small(x[:, :, :4, :32, :32]))


@pytest.mark.parametrize("old", [1, 2, 3, 7, 8, 14, 16, 28])
def test_nearest_resampling_as_gathers_is_torchs_nearest(old: int) -> None:
    """The gathers (which export to ONNX exactly) pick the entries F.interpolate(mode="nearest") picks."""
    table = torch.randn(1, old * 5, 6)
    for new in (1, 2, 3, 5, 7, 9, 14, 16, 24, 28, 32, 37):
        expected = F.interpolate(table.reshape(1, old, 5, 6).permute(0, 3, 1, 2), size=(new, 5), mode="nearest")
        got = resize_pos_embed(table, [old, 5], [new, 5], mode="nearest")
        assert torch.equal(got, expected.permute(0, 2, 3, 1).reshape(1, new * 5, 6)), (old, new)


@pytest.mark.parametrize("shape", [(1, 3, 1, 16, 16), (2, 3, 3, 40, 72), (1, 3, 7, 47, 33)])
def test_any_clip_size(shape) -> None:
    model = tiny()
    with torch.inference_mode():
        features = model.forward_features(torch.randn(shape))
        t, h, w = shape[2], shape[3] // 16, shape[4] // 16
        assert features.shape == (shape[0], 1 + t * h * w, 32)
        assert model.forward_head(features, pre_logits=True).shape == (shape[0], 32)
        assert model.forward_head(features).shape == (shape[0], 5)


def test_pixels_beyond_whole_patches_are_ignored() -> None:
    model = tiny()
    x = torch.randn(1, 3, 4, 47, 40)
    with torch.inference_mode():
        assert torch.equal(model(x), model(x[:, :, :, :32, :32].contiguous()))


def test_class_token_is_the_mean_over_frames_of_the_spatial_attention() -> None:
    """One block against the port's description, written out with plain tensor operations."""
    model = tiny(depth=1)
    block = model.blocks[0]
    b, s, t, c = 2, 4, 4, 32
    x = torch.randn(b, 1 + s * t, c)
    with torch.inference_mode():
        cls, patches = x[:, :1], x[:, 1:]
        y = block.temporal_attn(block.temporal_norm1(patches).reshape(b * s, t, c)).reshape(b, s * t, c)
        patches = patches + block.temporal_fc(y)
        frames = patches.reshape(b, s, t, c).permute(0, 2, 1, 3)
        per_frame = torch.cat([cls.repeat(1, t, 1).reshape(b * t, 1, c), frames.reshape(b * t, s, c)], 1)
        y = block.attn(block.norm1(per_frame)).reshape(b, t, 1 + s, c)
        cls = cls + y[:, :, :1].mean(1)
        patches = patches + y[:, :, 1:].permute(0, 2, 1, 3).reshape(b, s * t, c)
        expected = torch.cat([cls, patches], 1)
        expected = expected + block.mlp(block.norm2(expected))
        torch.testing.assert_close(block(x, t), expected)


def test_bf16() -> None:
    model = tiny()
    x = torch.randn(1, 3, 4, 32, 32)
    with torch.inference_mode():
        assert model.to(torch.bfloat16)(x.bfloat16()).dtype == torch.bfloat16
        model.float()
        with torch.autocast("cpu", torch.bfloat16):
            assert model(x).shape == (1, 5)


def test_stochastic_depth_trains() -> None:
    model = tiny(stochastic_depth_prob=0.5).train()
    assert [blk.stochastic_depth_prob for blk in model.blocks] == [0.0, 0.5]
    model(torch.randn(2, 3, 4, 32, 32)).sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_layer_index_and_no_weight_decay() -> None:
    model = tiny(depth=3)
    indices = {name: model.layer_index(name) for name, _ in model.named_parameters()}
    assert set(indices.values()) == set(range(model.num_layers + 2))
    assert {n for n, i in indices.items() if i == 0} == {
        "cls_token", "pos_embed", "time_embed", "patch_embed.weight", "patch_embed.bias"
    }
    assert all(indices[n] == int(n.split(".")[1]) + 1 for n in indices if n.startswith("blocks."))
    assert {n for n, i in indices.items() if i == 4} == {"norm.weight", "norm.bias", "head.weight", "head.bias"}
    assert model.no_weight_decay() <= set(indices)


# -- the published files -------------------------------------------------------------------------------


def test_hugging_face_file_replays_the_reference() -> None:
    fixture = load_fixture(FIXTURES / "timesformer_b.pt")
    model = timesformer_b(**fixture["kwargs"]).eval()
    model.load_state_dict(from_huggingface_state_dict(reference_state_dict(fixture)))
    x = make_input(fixture["input_shape"], seed=fixture["input_seed"])
    with torch.inference_mode():
        assert relative_error(model(x), fixture["output"]) <= TOLERANCE


def test_adapter_refuses_foreign_keys() -> None:
    with pytest.raises(ValueError, match="not in Hugging Face's TimeSformer layout"):
        from_huggingface_state_dict({"timesformer.embeddings.cls_token": torch.zeros(1), "model.head.weight": torch.zeros(1)})


def test_weights_meta() -> None:
    ssv2 = TimeSformer_B_Weights.SSV2_V1
    assert len(ssv2.meta["categories"]) == 174 and ssv2.meta["model_args"] == {"num_frames": 8, "crop_size": 224}
    assert ssv2.meta["sampling"] == "segments" and ssv2.meta["hflip"] is False
    assert TimeSformer_HR_Weights.KINETICS400_V1.meta["model_args"] == {"num_frames": 16, "crop_size": 448}
    assert TimeSformer_HR_Weights.KINETICS400_V1.transforms().crop_size == (448, 448)
    for member in [*TimeSformer_B_Weights, *TimeSformer_HR_Weights]:
        assert member.meta["license"] == "CC-BY-NC-4.0"
        assert member.url.endswith("/resolve/main/model.safetensors")
        assert member.value.fallbacks == (member.url.replace("model.safetensors", "pytorch_model.bin"),)
        assert cache_name(member.url).startswith("facebook--timesformer-")
    # the pins are checked before anything is downloaded
    with pytest.raises(ValueError, match="num_frames=16 conflicts"):
        timesformer_b(weights="SSV2_V1", num_frames=16)
    with pytest.raises(ValueError, match="num_classes=400 conflicts"):
        timesformer_b(weights="SSV2_V1", num_classes=400)
