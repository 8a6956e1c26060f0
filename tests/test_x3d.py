"""X3D specifics: PyTorchVideo's checkpoint format, the sliding-window head, BN folding, CPU layout."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import videozoo
from parity.common import TOLERANCE, load_fixture, make_input, reference_state_dict, relative_error
from videozoo.zoo import safety
from videozoo.models.x3d import X3D, ConvBN, X3D_L_Weights, X3D_M_Weights, X3D_S_Weights, X3D_XS_Weights

FIXTURES = Path(__file__).parent / "parity" / "fixtures"
ALL_WEIGHTS = [X3D_XS_Weights, X3D_S_Weights, X3D_M_Weights, X3D_L_Weights]


def published_checkpoint(name: str) -> dict:
    """A file's content in PyTorchVideo's published format, filled as the parity fixture says."""
    return {"model_state": reference_state_dict(load_fixture(FIXTURES / f"{name}.pt"))}


def small_x3d(**kwargs) -> X3D:
    torch.manual_seed(0)
    return X3D(num_frames=4, crop_size=64, **kwargs).eval()


# ---------------------------------------------------------------------------------------------------
# Architecture


@pytest.mark.parametrize(
    ("name", "depths", "window"),
    [
        ("x3d_xs", [3, 5, 11, 7], [4, 5, 5]),
        ("x3d_s", [3, 5, 11, 7], [13, 5, 5]),
        ("x3d_m", [3, 5, 11, 7], [16, 7, 7]),
        ("x3d_l", [5, 10, 25, 15], [16, 10, 10]),
    ],
)
def test_architecture(name: str, depths: list[int], window: list[int]) -> None:
    model = videozoo.get_model(name)
    assert [len(getattr(model, f"layer{i}")) for i in range(1, 5)] == depths
    assert model.pool_window == window
    for i, (width, inner, se) in enumerate([(24, 54, 8), (48, 108, 8), (96, 216, 16), (192, 432, 32)], start=1):
        blocks = getattr(model, f"layer{i}")
        assert [b.conv3.conv.out_channels for b in blocks] == [width] * len(blocks)
        assert all(b.conv2.conv.groups == inner == b.conv2.conv.out_channels for b in blocks)
        # SE on the 1st, 3rd, ... block; only the first block strides, and in stage 1 its shortcut has no BN.
        assert [b.se is not None for b in blocks] == [j % 2 == 0 for j in range(len(blocks))]
        assert [b.se.fc1.out_features for b in blocks if b.se is not None][0] == se
        assert [b.downsample is not None for b in blocks] == [True] + [False] * (len(blocks) - 1)
        assert (blocks[0].downsample.bn is None) == (i == 1)
    assert model.num_features == model.lin5.out_channels == 2048


# ---------------------------------------------------------------------------------------------------
# Checkpoints


def test_loads_published_file_from_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fixture = load_fixture(FIXTURES / "x3d_m.pt")
    (tmp_path / "checkpoints").mkdir()
    path = tmp_path / "checkpoints" / "X3D_M.pyth"
    assert path.name == X3D_M_Weights.KINETICS400_V1.url.rsplit("/", 1)[-1]
    torch.save(published_checkpoint("x3d_m"), path)
    monkeypatch.setenv("VIDEOZOO_HOME", str(tmp_path))

    model = videozoo.models.x3d_m(weights="DEFAULT", progress=False).eval()
    with torch.inference_mode():
        probs = model(make_input(fixture["input_shape"], seed=fixture["input_seed"])).softmax(-1)
    assert relative_error(probs, fixture["output"]) <= TOLERANCE

    # A file downloaded by hand loads with one call; our own state_dict round-trips strictly.
    by_hand = X3D_M_Weights.KINETICS400_V1.adapt_state_dict(safety.load_checkpoint(path))
    assert all(torch.equal(by_hand[k], v) for k, v in model.state_dict().items())
    again = videozoo.models.x3d_m()
    again.load_state_dict(model.state_dict(), strict=True)
    torch.save(model.state_dict(), tmp_path / "ours.pt")
    again.load_state_dict(torch.load(tmp_path / "ours.pt", weights_only=True), strict=True)


def test_adapter_rejects_other_formats() -> None:
    adapt = X3D_XS_Weights.KINETICS400_V1.adapt_state_dict
    checkpoint = published_checkpoint("x3d_xs")
    with pytest.raises(ValueError, match="model_state"):
        adapt(checkpoint["model_state"])  # a bare state_dict
    with pytest.raises(ValueError, match="model_state"):
        adapt(torch.zeros(3))
    with pytest.raises(ValueError, match=r"1 of its 564 keys .*blocks\.6\.extra\.weight"):
        adapt({"model_state": {**checkpoint["model_state"], "blocks.6.extra.weight": torch.zeros(1)}})
    with pytest.raises(ValueError, match="keys are not in PyTorchVideo's X3D layout"):
        adapt({"model_state": videozoo.models.x3d_xs().state_dict()})  # our layout is not theirs


def test_missing_key_in_published_file_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    checkpoint = published_checkpoint("x3d_xs")
    del checkpoint["model_state"]["blocks.3.res_blocks.4.branch2.norm_b.1.block.2.bias"]
    (tmp_path / "checkpoints").mkdir()
    torch.save(checkpoint, tmp_path / "checkpoints" / "X3D_XS.pyth")
    monkeypatch.setenv("VIDEOZOO_HOME", str(tmp_path))
    with pytest.raises(RuntimeError, match=r"1 missing \(layer3\.4\.se\.fc2\.bias\)"):
        videozoo.models.x3d_xs(weights=X3D_XS_Weights.KINETICS400_V1, progress=False)


# ---------------------------------------------------------------------------------------------------
# The head


def test_head_averages_probabilities_over_window_positions() -> None:
    model = small_x3d(num_classes=7)
    x = make_input((2, 3, 6, 96, 80), seed=3)  # stage-4 map 6x3x3 vs window 4x2x2: 3x2x2 positions
    with torch.inference_mode():
        features = model.forward_features(x)
        out = model(x)
        assert torch.equal(model.forward_head(features), out)
        per_position = F.relu(model.lin5(F.avg_pool3d(features, model.pool_window, stride=1)))
        assert per_position.shape == (2, model.num_features, 3, 2, 2)
        logits = model.fc(per_position.flatten(2).transpose(1, 2))
        torch.testing.assert_close(out.softmax(-1), logits.softmax(-1).mean(1))
        embedding = model.forward_head(features, pre_logits=True)
        torch.testing.assert_close(embedding, per_position.mean((2, 3, 4)))
        assert embedding.shape == (2, model.num_features)
        # At the built size there is one position, and forward returns the classifier's logits.
        x = make_input((2, 3, 4, 64, 64), seed=4)
        embedding = model.forward_head(model.forward_features(x), pre_logits=True)
        assert embedding.shape == (2, model.num_features)
        torch.testing.assert_close(model(x), model.fc(embedding))


def test_inputs_smaller_than_the_window_pool_globally() -> None:
    model = small_x3d()
    x = make_input((1, 3, 2, 40, 33), seed=5)  # fewer frames and pixels than the 4x64x64 it was built for
    with torch.inference_mode():
        trunk = model.conv5(model.layer4(model.layer3(model.layer2(model.layer1(model.stem(x))))))
        pooled = F.relu(trunk).mean((2, 3, 4), keepdim=True)
        expected = model.fc(F.relu(model.lin5(pooled)).flatten(1))
        torch.testing.assert_close(model(x), expected)


def test_eval_dropout_is_a_no_op_and_train_mode_differs() -> None:
    model = small_x3d(num_classes=5)
    x = make_input((2, 3, 4, 64, 64), seed=6)
    with torch.inference_mode():
        out = model(x)
        embedding = model.forward_head(model.forward_features(x), pre_logits=True)
        torch.testing.assert_close(model.fc(embedding), out)
        model.train()
        assert not torch.allclose(model(x), out)  # batch statistics and dropout


# ---------------------------------------------------------------------------------------------------
# Speed-ups that must not change the arithmetic


def test_folded_batch_norm_matches_conv_then_bn() -> None:
    torch.manual_seed(0)
    layer = ConvBN(6, 6, (3, 3, 3), (1, 2, 2), (1, 1, 1), groups=6)
    with torch.no_grad():
        layer.bn.running_mean.normal_()
        layer.bn.running_var.uniform_(0.5, 2.0)
        layer.bn.weight.normal_()
        layer.bn.bias.normal_()
    x = torch.randn(2, 6, 5, 9, 11)
    layer.eval()
    expected = layer.bn(layer.conv(x))
    torch.testing.assert_close(layer(x), expected, rtol=1e-5, atol=1e-5)
    assert layer.state_dict().keys() == {"conv.weight", "bn.weight", "bn.bias", "bn.running_mean",
                                         "bn.running_var", "bn.num_batches_tracked"}
    # Frozen BN inside a training model (a common fine-tuning setup) is folded and still trains the conv.
    layer.train()
    layer.bn.eval()
    layer(x).sum().backward()
    assert layer.conv.weight.grad is not None and layer.bn.weight.grad is not None
    # Training BN uses batch statistics and updates its running ones.
    layer.bn.train()
    before = layer.bn.running_mean.clone()
    torch.testing.assert_close(layer(x), F.batch_norm(layer.conv(x), None, None, layer.bn.weight, layer.bn.bias, True))
    assert not torch.equal(before, layer.bn.running_mean)


@pytest.mark.parametrize(
    ("kernel", "stride", "padding", "groups"),
    [
        ((1, 1, 1), (1, 1, 1), (0, 0, 0), 1),  # pointwise: a matrix product
        ((1, 1, 1), (1, 2, 2), (0, 0, 0), 1),  # strided shortcut
        ((5, 1, 1), (1, 1, 1), (2, 0, 0), 6),  # temporal, channel-wise (the stem): a 2D convolution
        ((3, 3, 3), (1, 2, 2), (1, 1, 1), 6),  # channel-wise 3x3x3
    ],
)
@pytest.mark.parametrize("training", [False, True])
def test_channels_last_paths_compute_the_convolution(kernel, stride, padding, groups, training: bool) -> None:
    torch.manual_seed(1)
    layer = ConvBN(6, 6, kernel, stride, padding, groups=groups).train(training)
    with torch.no_grad():
        layer.bn.running_var.uniform_(0.5, 2.0)
        layer.bn.bias.normal_()
    x = torch.randn(2, 6, 5, 9, 11)
    with torch.no_grad():
        expected = F.batch_norm(F.conv3d(x, layer.conv.weight, None, stride, padding, 1, groups),
                                layer.bn.running_mean.clone(), layer.bn.running_var.clone(), layer.bn.weight,
                                layer.bn.bias, training, 0.1, layer.bn.eps)
        out = layer(x.contiguous(memory_format=torch.channels_last_3d))
    assert out.is_contiguous(memory_format=torch.channels_last_3d)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_cpu_stem_is_the_plain_convolution_in_channels_last_layout() -> None:
    stem = small_x3d().stem
    x = make_input((2, 3, 5, 37, 50), seed=7)
    with torch.inference_mode():
        fast = stem._conv_xy_channels_last(x)
        assert fast.is_contiguous(memory_format=torch.channels_last_3d)
        torch.testing.assert_close(fast, stem.conv_xy(x), rtol=1e-5, atol=1e-5)
        out = stem(x)
        assert out.is_contiguous(memory_format=torch.channels_last_3d)
        # The path taken on other devices: the 3D convolution in the default layout.
        torch.testing.assert_close(out, F.relu(stem.conv_t(stem.conv_xy(x))), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------------------
# Weights metadata and presets


@pytest.mark.parametrize(
    ("weights", "frames", "rate", "train", "test"),
    [(X3D_XS_Weights, 4, 12, 160, 182), (X3D_S_Weights, 13, 6, 160, 182), (X3D_M_Weights, 16, 5, 224, 256),
     (X3D_L_Weights, 16, 5, 312, 356)],
)
def test_weights_recipe_and_preset(weights, frames: int, rate: int, train: int, test: int) -> None:
    member = weights.DEFAULT
    assert member is weights.KINETICS400_V1
    name = weights.__name__.removesuffix("_Weights")
    assert member.url == f"https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo/kinetics/{name}.pyth"
    meta = member.meta
    assert (meta["num_frames"], meta["sampling_rate"], meta["frame_rate"]) == (frames, rate, 30.0)
    assert (meta["num_clips"], meta["num_crops"]) == (10, 3)
    assert (meta["train_crop_size"], meta["test_crop_size"]) == (train, test)
    assert meta["recipe"].endswith(f"configs/Kinetics/pytorchvideo/{name}.yaml")
    preset = member.transforms()
    assert preset.crop_size == (test, test) and preset.resize_size == (test,)
    assert preset.mean == (0.45,) * 3 and preset.std == (0.225,) * 3 and not preset.resize_uint8
    # PySlowFast normalises, then resizes in float (bilinear, no antialias), then crops the centre.
    video = torch.randint(0, 256, (frames, 3, 45, 90), dtype=torch.uint8)
    normalised = (video.float() / 255 - 0.45) / 0.225
    resized = F.interpolate(normalised, size=(test, 2 * test), mode="bilinear", align_corners=False)
    expected = resized[..., test // 2 : test // 2 + test].transpose(0, 1)
    torch.testing.assert_close(preset(video), expected, rtol=1e-4, atol=1e-4)


def test_categories_follow_pyslowfast_class_index_file() -> None:
    """Spot checks against kinetics_classnames.json, the index->name file PyTorchVideo maps outputs with."""
    categories = X3D_M_Weights.DEFAULT.meta["categories"]
    assert len(categories) == 400
    published = {0: "abseiling", 1: "air drumming", 196: "massaging person's head",
                 208: "passing American football (in game)", 209: "passing American football (not in game)",
                 290: "sharpening knives", 308: "skiing (not slalom or crosscountry)", 374:
                 "using remote controller (not gaming)", 399: "zumba"}
    assert {i: categories[i] for i in published} == published
    assert all(w.DEFAULT.meta["categories"] == categories for w in ALL_WEIGHTS)


def test_gflops_are_published_per_view_at_the_test_size() -> None:
    assert [w.DEFAULT.meta["_ops"] for w in ALL_WEIGHTS] == [0.91, 2.96, 6.72, 26.64]
    assert [w.DEFAULT.meta["_metrics"]["Kinetics-400"]["acc@1"] for w in ALL_WEIGHTS] == [69.12, 73.33, 75.94, 77.44]
    assert math.isclose(X3D_L_Weights.DEFAULT.meta["num_params"] / 1e6, 6.15, abs_tol=0.005)
