"""Bottleneck 3D ResNets (Slow, C2D, I3D, CSN, R(2+1)D): PyTorchVideo's files, the block kinds, the head."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import videozoo
from parity.common import FIXTURES, TOLERANCE, load_fixture, make_input, reference_state_dict, relative_error
from videozoo.zoo import safety
from videozoo.errors import CheckpointError
from videozoo.models import resnet3d
from videozoo.models.layers import conv3d_channels_last, onednn_applies
from videozoo.models.resnet3d import (
    C2D_R50_Weights,
    ResNet3D,
    Slow_R50_Weights,
    r2plus1d_r50,
    slow_r50,
)
from videozoo.models.slowfast import SlowFast

# name: (published file, frames, sampling rate, acc@1, acc@5, GFLOPs per view) as in PyTorchVideo's model zoo.
PUBLISHED = {
    "slow_r50": ("SLOW_8x8_R50", 8, 8, 74.58, 91.63, 54.52),
    "slow_r50_4x16": ("SLOW_4x16_R50", 4, 16, 72.40, 90.18, 27.55),
    "c2d_r50": ("C2D_8x8_R50", 8, 8, 71.46, 89.68, 25.89),
    "i3d_r50": ("I3D_8x8_R50", 8, 8, 73.27, 90.70, 37.53),
    "csn_r101": ("CSN_32x2_R101", 32, 2, 77.00, 92.90, 75.62),
    "r2plus1d_r50": ("R2PLUS1D_16x4_R50", 16, 4, 76.01, 92.23, 76.45),
}


def fixture_of(name: str) -> dict:
    return load_fixture(FIXTURES / f"{name}.pt")


def ptv_checkpoint(name: str) -> dict:
    """A checkpoint in PyTorchVideo's published format: ``{"model_state": ...}`` in its module layout."""
    return {"model_state": reference_state_dict(fixture_of(name))}


def small_model(name: str) -> ResNet3D:
    """The stored fixture's configuration (the published network, the head window of a 64-pixel clip),
    holding the fixture's weights."""
    fixture = fixture_of(name)
    model = videozoo.get_model(name, **fixture["kwargs"]).eval()
    model.load_state_dict(videozoo.get_model_weights(name).DEFAULT.adapt_state_dict(ptv_checkpoint(name)))
    return model


# -- PyTorchVideo's files --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["slow_r50", "r2plus1d_r50"])
def test_weights_load_the_published_file_from_the_cache(name: str, tmp_path, monkeypatch) -> None:
    fixture = fixture_of(name)
    member = videozoo.get_model_weights(name).DEFAULT
    monkeypatch.setenv("VIDEOZOO_HOME", str(tmp_path))
    path = tmp_path / "checkpoints" / f"{PUBLISHED[name][0]}.pyth"
    assert path.name == member.url.rsplit("/", 1)[-1]
    path.parent.mkdir()
    torch.save(ptv_checkpoint(name), path)

    frames = fixture["kwargs"]["num_frames"]
    with pytest.raises(ValueError, match=f"num_frames={frames} conflicts with {type(member).__name__}.KINETICS400_V1"):
        videozoo.get_model(name, weights="DEFAULT", num_frames=frames)
    # Built for the published 224-pixel clip, the head pools the fixture's small clip whole, as the
    # fixture's own window does.
    model = videozoo.get_model(name, weights="DEFAULT").eval()
    assert model.pool_window == [PUBLISHED[name][1] // (4 if name == "r2plus1d_r50" else 1), 7, 7]
    x = make_input(fixture["input_shape"], seed=fixture["input_seed"])
    with torch.inference_mode():
        out = model(x)
    ours = out.softmax(-1) if fixture["compare"] == "probs" else out
    assert relative_error(ours, fixture["output"]) <= TOLERANCE

    # One call for a file downloaded by hand; our own state_dict loads back strictly.
    again = videozoo.get_model(name).eval()
    again.load_state_dict(member.adapt_state_dict(safety.load_checkpoint(path)))
    again.load_state_dict(model.state_dict())
    with torch.inference_mode():
        torch.testing.assert_close(again(x), out, rtol=0, atol=0)


def test_adapter_accepts_pyslowfast_wrapper_prefix() -> None:
    adapt = Slow_R50_Weights.DEFAULT.adapt_state_dict
    checkpoint = ptv_checkpoint("slow_r50")
    wrapped = {"model_state": {f"model.{k}": v for k, v in checkpoint["model_state"].items()}}
    assert adapt(wrapped).keys() == adapt(checkpoint).keys()


def test_adapter_numbers_the_stages_past_c2ds_pool() -> None:
    """C2D's and I3D's parameter-free pool after res2 shifts PyTorchVideo's indices of res3-res5 and the
    head by one; Slow's do not."""
    c2d = ptv_checkpoint("c2d_r50")["model_state"]
    slow = ptv_checkpoint("slow_r50")["model_state"]
    assert "blocks.3.res_blocks.0.branch1_conv.weight" in c2d and "blocks.6.proj.weight" in c2d
    assert "blocks.2.res_blocks.0.branch1_conv.weight" in slow and "blocks.5.proj.weight" in slow
    adapted = C2D_R50_Weights.DEFAULT.adapt_state_dict({"model_state": c2d})
    assert adapted["layer2.0.downsample.0.weight"] is c2d["blocks.3.res_blocks.0.branch1_conv.weight"]
    assert adapted["fc.weight"] is c2d["blocks.6.proj.weight"]
    adapted = Slow_R50_Weights.DEFAULT.adapt_state_dict({"model_state": slow})
    assert adapted["layer2.0.downsample.0.weight"] is slow["blocks.2.res_blocks.0.branch1_conv.weight"]
    assert adapted["fc.weight"] is slow["blocks.5.proj.weight"]


def test_adapter_maps_the_2plus1d_convolution() -> None:
    state = ptv_checkpoint("r2plus1d_r50")["model_state"]
    adapted = videozoo.get_model_weights("r2plus1d_r50").DEFAULT.adapt_state_dict({"model_state": state})
    prefix = "blocks.1.res_blocks.0.branch2.conv_b."
    assert adapted["layer1.0.conv2.conv_t.weight"] is state[prefix + "conv_t.weight"]
    assert adapted["layer1.0.conv2.bn.running_var"] is state[prefix + "norm.running_var"]
    assert adapted["layer1.0.conv2.conv_xy.weight"] is state[prefix + "conv_xy.weight"]


def test_adapter_refuses_other_files() -> None:
    adapt = Slow_R50_Weights.DEFAULT.adapt_state_dict
    checkpoint = ptv_checkpoint("slow_r50")
    with pytest.raises(ValueError, match="model_state"):
        adapt(checkpoint["model_state"])  # a bare PyTorchVideo state_dict
    with pytest.raises(ValueError, match="model_state"):
        adapt([1, 2])
    with pytest.raises(ValueError, match=r"not in PyTorchVideo's ResNet layout .*stem\.conv\.weight"):
        adapt({"model_state": small_model("slow_r50").state_dict()})  # our own layout: use load_state_dict
    x3d_like = dict(checkpoint["model_state"]) | {"blocks.5.pool.pre_conv.weight": torch.zeros(1)}
    with pytest.raises(ValueError, match=r"1 of its \d+ keys .*blocks\.5\.pool\.pre_conv\.weight"):
        adapt({"model_state": x3d_like})
    slowfast = {"model_state": reference_state_dict(load_fixture(FIXTURES / "slowfast_r50.pt"))}
    with pytest.raises(ValueError, match=r"not in PyTorchVideo's ResNet layout .*multipathway_blocks"):
        adapt(slowfast)


def test_checkpoint_of_another_network_fails_loudly(tmp_path, monkeypatch) -> None:
    """A C2D file renames onto the Slow network's keys, but its res4/res5 first kernels are 1 long, not 3."""
    monkeypatch.setenv("VIDEOZOO_HOME", str(tmp_path))
    (tmp_path / "checkpoints").mkdir()
    torch.save(ptv_checkpoint("c2d_r50"), tmp_path / "checkpoints" / "SLOW_8x8_R50.pyth")
    with pytest.raises(CheckpointError, match=r"9 wrong shape \(layer3\.0\.conv1\.weight: checkpoint \(256, 512, 1, 1, 1\) vs model \(256, 512, 3, 1, 1\)"):
        videozoo.get_model("slow_r50", weights=Slow_R50_Weights.KINETICS400_V1)


# -- the architectures as published --------------------------------------------------------------------------


def first_kernels(model: ResNet3D) -> list[list[int]]:
    return [[block.conv1.kernel_size[0] for block in getattr(model, f"layer{i}")] for i in range(1, 5)]


@pytest.mark.parametrize(
    ("name", "depths", "stem", "kernels", "pool1", "window"),
    [
        ("slow_r50", [3, 4, 6, 3], (1, 7, 7), [[1] * 3, [1] * 4, [3] * 6, [3] * 3], False, [8, 7, 7]),
        ("slow_r50_4x16", [3, 4, 6, 3], (1, 7, 7), [[1] * 3, [1] * 4, [3] * 6, [3] * 3], False, [4, 7, 7]),
        ("c2d_r50", [3, 4, 6, 3], (1, 7, 7), [[1] * 3, [1] * 4, [1] * 6, [1] * 3], True, [4, 7, 7]),
        ("i3d_r50", [3, 4, 6, 3], (5, 7, 7), [[3] * 3, [3, 1] * 2, [3, 1] * 3, [1, 3, 1]], True, [4, 7, 7]),
        ("csn_r101", [3, 4, 23, 3], (3, 7, 7), [[1] * 3, [1] * 4, [1] * 23, [1] * 3], False, [4, 7, 7]),
        ("r2plus1d_r50", [3, 4, 6, 3], (1, 7, 7), [[1] * 3, [1] * 4, [1] * 6, [1] * 3], False, [4, 7, 7]),
    ],
)
def test_published_configuration(name: str, depths, stem, kernels, pool1: bool, window) -> None:
    """Depths, stem, first-convolution kernels, temporal pool and head window as PyTorchVideo builds them."""
    model = videozoo.get_model(name)
    assert [len(getattr(model, f"layer{i}")) for i in range(1, 5)] == depths
    assert model.stem.conv.kernel_size == stem
    assert first_kernels(model) == kernels
    assert (model.stage1_pool is not None) == pool1 and model.min_temporal_size == (2 if pool1 else 1)
    assert model.pool_window == window and model.num_features == 2048
    assert isinstance(model.fc, torch.nn.Linear) and model.dropout.p == 0.5


def strides(model: ResNet3D) -> list[tuple[int, ...]]:
    """Each stage's first middle convolution's (temporal, height, width) stride."""
    out = []
    for i in range(1, 5):
        conv2 = getattr(model, f"layer{i}")[0].conv2
        if isinstance(conv2, resnet3d.Conv2Plus1d):  # time in conv_t, space in conv_xy
            out.append((conv2.conv_t.stride[0], *conv2.conv_xy.stride[1:]))
        else:
            out.append(conv2.stride)
    return out


def test_block_kinds() -> None:
    """Slow/C2D/I3D: a 1x3x3 middle convolution; CSN: a channel-wise 3x3x3 one that also strides in
    time; R(2+1)D: 3x1x1 (temporal stride), BN, ReLU, then 1x3x3 (spatial stride)."""
    slow, csn, r21d = (videozoo.get_model(n) for n in ("slow_r50", "csn_r101", "r2plus1d_r50"))
    block = slow.layer3[0].conv2
    assert (block.kernel_size, block.groups) == ((1, 3, 3), 1)
    assert strides(slow) == [(1, 1, 1), (1, 2, 2), (1, 2, 2), (1, 2, 2)]
    assert isinstance(slow.stem.pool, torch.nn.MaxPool3d)

    for i, planes in enumerate((64, 128, 256, 512), start=1):
        for block in getattr(csn, f"layer{i}"):
            conv = block.conv2
            assert (conv.kernel_size, conv.groups, conv.in_channels, conv.weight.shape[1]) == ((3, 3, 3), planes, planes, 1)
    assert strides(csn) == [(1, 1, 1), (2, 2, 2), (2, 2, 2), (2, 2, 2)]
    assert csn.layer2[0].downsample[0].stride == (2, 2, 2)  # the shortcut follows

    conv2 = r21d.layer3[0].conv2
    assert [type(m) for m in conv2.children()] == [torch.nn.Conv3d, torch.nn.BatchNorm3d, torch.nn.ReLU, torch.nn.Conv3d]
    assert (conv2.conv_t.kernel_size, conv2.conv_xy.kernel_size) == ((3, 1, 1), (1, 3, 3))
    assert conv2.conv_t.out_channels == conv2.conv_xy.in_channels == 256  # PyTorchVideo's inner width
    assert strides(r21d) == [(1, 2, 2), (1, 2, 2), (2, 2, 2), (2, 2, 2)]
    assert r21d.stem.pool is None


@pytest.mark.parametrize(("name", "frames"), [("slow_r50", 8), ("c2d_r50", 8), ("csn_r101", 32), ("r2plus1d_r50", 16)])
def test_maps_at_the_published_clip(name: str, frames: int) -> None:
    """Each network's last map at its published 224-pixel clip is exactly the head's window."""
    with torch.device("meta"):
        model = videozoo.get_model(name)
        features = model.forward_features(torch.empty(1, 3, frames, 224, 224))
    assert list(features.shape[2:]) == model.pool_window


def test_slowfast_pathways_are_this_files_blocks() -> None:
    model = SlowFast(layers=(1, 1, 1, 1), num_frames=8, num_classes=2)
    for pathway in (model.slow, model.fast):
        assert isinstance(pathway.layer1[0], resnet3d.ResNet3dBottleneck)
        assert isinstance(pathway.stem, resnet3d.ResNet3dStem) and isinstance(pathway.stem.pool, torch.nn.MaxPool3d)


# -- the head ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["slow_r50", "i3d_r50", "r2plus1d_r50"])
def test_head_slides_the_window_like_pytorchvideo(name: str) -> None:
    """On clips larger than the window: average-pool with the window at stride 1, classify every position,
    average the logits (Slow, C2D, I3D, CSN) or the class probabilities (R(2+1)D), as PyTorchVideo's models."""
    model = small_model(name)
    maps = []
    hook = model.layer4.register_forward_hook(lambda m, i, o: maps.append(o))
    frames = model.num_frames + 8
    x = make_input((2, 3, frames, 96, 128), seed=4)  # 3x4 maps (and longer) under a 2x2 window
    with torch.inference_mode():
        out = model(x)
        embedding = model.forward_head(model.forward_features(x), pre_logits=True)
        positions = F.avg_pool3d(maps[0], model.pool_window, stride=1)
        logits = model.fc(positions.permute(0, 2, 3, 4, 1)).flatten(1, 3)  # (B, positions, classes)
        global_mean = model.fc(maps[0].mean((2, 3, 4)))
        window_mean = model.fc(embedding)
    hook.remove()
    assert positions.shape[2] > 1 and positions.shape[3:] == (2, 3)
    torch.testing.assert_close(embedding, positions.mean((2, 3, 4)))
    if name == "r2plus1d_r50":
        torch.testing.assert_close(out.softmax(-1), logits.softmax(-1).mean(1), rtol=1e-5, atol=1e-6)
        assert math.isclose(float(out.exp().sum(-1)[0]), 1.0, rel_tol=1e-5)  # log-probabilities
        assert not torch.allclose(out.softmax(-1), logits.mean(1).softmax(-1), rtol=1e-3, atol=1e-4)
    else:
        torch.testing.assert_close(out, logits.mean(1), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(window_mean, global_mean, rtol=1e-3, atol=1e-3)  # the window matters


def test_one_window_position_gives_the_classifiers_logits() -> None:
    model = small_model("r2plus1d_r50")
    x = make_input((1, 3, model.num_frames, 64, 64), seed=5)
    with torch.inference_mode():
        features = model.forward_features(x)
        assert list(features.shape[2:]) == model.pool_window
        torch.testing.assert_close(model(x), model.fc(features.mean((2, 3, 4))), rtol=0, atol=0)


def test_clips_smaller_than_the_window_are_pooled_whole() -> None:
    model = small_model("slow_r50")  # a 4x2x2 window
    x = make_input((1, 3, 2, 32, 32), seed=6)
    with torch.inference_mode():
        features = model.forward_features(x)
        assert features.shape[2:] == (2, 1, 1)
        torch.testing.assert_close(model(x), model.fc(features.mean((2, 3, 4))), rtol=0, atol=0)


def test_clip_length_checks() -> None:
    model = videozoo.get_model("c2d_r50", num_classes=3)
    with pytest.raises(ValueError, match="at least 2 frames"):
        model(torch.zeros(1, 3, 1, 64, 64))
    with pytest.raises(ValueError, match=r"num_frames \(6\) must be a positive multiple of the network's temporal stride \(8\)"):
        videozoo.get_model("csn_r101", num_frames=6)
    with pytest.raises(ValueError, match="'2d', 'channelwise' or '2\\+1d'"):
        ResNet3D(block="3d")  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["slow_r50", "csn_r101", "r2plus1d_r50"])
def test_folded_eval_path_agrees_with_the_modules(name: str) -> None:
    """Eager eval folds every BN into its convolution; TorchScript runs the modules one by one."""
    model = small_model(name)
    x = make_input((1, 3, model.num_frames, 64, 64), seed=7)
    scripted = torch.jit.script(model)
    with torch.inference_mode():
        torch.testing.assert_close(scripted(x), model(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("kernel", "stride", "padding", "groups"),
    [
        ((1, 1, 1), (1, 1, 1), (0, 0, 0), 1),  # as a 2D convolution over (T, H*W)
        ((3, 1, 1), (1, 1, 1), (1, 0, 0), 1),
        ((3, 1, 1), (2, 1, 1), (1, 0, 0), 1),
        ((1, 1, 1), (1, 2, 2), (0, 0, 0), 1),  # frame by frame
        ((1, 3, 3), (1, 2, 2), (0, 1, 1), 1),
        ((1, 3, 3), (2, 2, 2), (0, 1, 1), 1),  # 3D
        ((3, 3, 3), (2, 2, 2), (1, 1, 1), 8),
        ((3, 3, 3), (1, 1, 1), (1, 1, 1), 1),  # PyTorch's im2col path for an input this small
    ],
)
@pytest.mark.parametrize(("activation", "residual"), [("none", False), ("relu", False), ("swish", False), ("none", True), ("relu", True)])
@pytest.mark.parametrize("path", ["onednn", "portable"])
def test_conv3d_channels_last_is_conv3d(kernel, stride, padding, groups, activation: str, residual: bool, path: str) -> None:
    """Every path of conv3d_channels_last, with the shortcut's sum and each activation fused (oneDNN) or after."""
    torch.manual_seed(0)  # unseeded draws missed the 1e-5 tolerance in some runs (2 of 9 here, before this change too)
    x = torch.randn(1, 8, 4, 9, 10).contiguous(memory_format=torch.channels_last_3d)
    weight = torch.randn(16, 8 // groups, *kernel, requires_grad=path == "portable")  # autograd: F.conv
    bias = torch.randn(16)
    assert onednn_applies(x, weight) == (path == "onednn")
    expected = F.conv3d(x, weight, bias, stride, padding, 1, groups)
    other = torch.randn(expected.shape).contiguous(memory_format=torch.channels_last_3d) if residual else None
    kept = None if other is None else other.clone()
    out = conv3d_channels_last(x, weight, bias, stride, padding, groups, activation, other)
    if other is not None:
        expected = expected + other
        assert torch.equal(other, kept)  # the residual is read, never written
    expected = {"none": expected, "relu": F.relu(expected), "swish": F.silu(expected)}[activation]
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    assert out.is_contiguous(memory_format=torch.channels_last_3d)
    if path == "portable":
        out.sum().backward()
        assert weight.grad is not None


def test_conv3d_channels_last_refuses_swish_after_a_residual() -> None:
    x = torch.randn(1, 8, 2, 4, 4).contiguous(memory_format=torch.channels_last_3d)
    with pytest.raises(ValueError, match="'none' or 'relu'"):
        conv3d_channels_last(x, torch.randn(8, 8, 1, 1, 1), None, (1, 1, 1), (0, 0, 0), 1, "swish", x)


# -- meta ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_meta_as_published(name: str) -> None:
    file, frames, rate, acc1, acc5, gflops = PUBLISHED[name]
    member = videozoo.get_model_weights(name).DEFAULT
    assert member is videozoo.get_model_weights(name).KINETICS400_V1
    assert member.url == f"https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo/kinetics/{file}.pyth"
    meta = member.meta
    assert meta["_metrics"]["Kinetics-400"] == {"acc@1": acc1, "acc@5": acc5} and meta["_ops"] == gflops
    assert (meta["num_frames"], meta["sampling_rate"], meta["frame_rate"]) == (frames, rate, 30.0)
    assert (meta["num_clips"], meta["num_crops"]) == (10, 3)
    assert meta["recipe"] == f"https://github.com/facebookresearch/SlowFast/blob/main/configs/Kinetics/pytorchvideo/{file}.yaml"
    assert meta["model_args"] == {"num_frames": frames, "crop_size": 224}
    model = videozoo.get_model(name)
    assert meta["num_params"] == sum(p.numel() for p in model.parameters())
    assert (meta["min_temporal_size"], meta["min_size"]) == (model.min_temporal_size, (model.min_size,) * 2)
    assert len(meta["categories"]) == 400 and meta["categories"][0] == "abseiling"
    preset = member.transforms()
    assert preset.crop_size == (256, 256) and preset.resize_size == (256,)
    assert preset.mean == (0.45,) * 3 and preset.std == (0.225,) * 3
    assert ("probabilities" in meta["_docs"]) == (name == "r2plus1d_r50")


def test_builders_pin_the_published_clip() -> None:
    assert slow_r50().num_frames == 8 and r2plus1d_r50().num_frames == 16
    model = slow_r50(num_frames=4, crop_size=64, num_classes=5)
    assert model.pool_window == [4, 2, 2] and model.num_classes == 5
