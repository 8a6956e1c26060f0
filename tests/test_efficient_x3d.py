"""Efficient (mobile CPU) X3D specifics: X3D's network with BN on every shortcut and a global head,
PyTorchVideo's bare state_dict files, and the published recipe."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

import videozoo
from parity.common import TOLERANCE, load_fixture, make_input, reference_state_dict, relative_error
from videozoo import CheckpointError
from videozoo.zoo import safety
from videozoo.models.publishers.pytorchvideo import PTV_KINETICS400_CATEGORIES
from videozoo.models.efficient_x3d import EfficientX3D_S_Weights, EfficientX3D_XS_Weights
from videozoo.models.x3d import X3D

FIXTURES = Path(__file__).parent / "parity" / "fixtures"
URL = "https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo/kinetics/efficient_x3d_{}_original_form.pyth"


def published_checkpoint(name: str) -> dict[str, torch.Tensor]:
    """A file's content as PyTorchVideo publishes it (a bare state_dict), filled as the fixture says."""
    return reference_state_dict(load_fixture(FIXTURES / f"{name}.pt"))


def write_to_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, member, checkpoint) -> Path:
    (tmp_path / "checkpoints").mkdir(exist_ok=True)
    path = tmp_path / "checkpoints" / member.url.rsplit("/", 1)[-1]
    torch.save(checkpoint, path)
    monkeypatch.setenv("VIDEOZOO_HOME", str(tmp_path))
    return path


# ---------------------------------------------------------------------------------------------------
# Architecture


@pytest.mark.parametrize(("name", "frames"), [("efficient_x3d_xs", 4), ("efficient_x3d_s", 13)])
def test_architecture(name: str, frames: int) -> None:
    model = videozoo.get_model(name)
    assert isinstance(model, X3D) and model.global_pool
    assert (model.num_frames, model.crop_size) == (frames, 160)
    assert [len(getattr(model, f"layer{i}")) for i in range(1, 5)] == [3, 5, 11, 7]
    for i, (width, inner, se) in enumerate([(24, 54, 8), (48, 108, 8), (96, 216, 16), (192, 432, 32)], start=1):
        blocks = getattr(model, f"layer{i}")
        assert [b.conv3.conv.out_channels for b in blocks] == [width] * len(blocks)
        assert all(b.conv2.conv.groups == inner == b.conv2.conv.out_channels for b in blocks)
        assert [b.se is not None for b in blocks] == [j % 2 == 0 for j in range(len(blocks))]
        assert [b.se.fc1.out_features for b in blocks if b.se is not None][0] == se
        assert [b.downsample is not None for b in blocks] == [True] + [False] * (len(blocks) - 1)
        assert blocks[0].downsample.bn is not None  # in stage 1 too, unlike PySlowFast's X3D
    assert model.num_features == model.lin5.out_channels == 2048
    # X3D-XS's network plus that one BatchNorm (weight and bias of 24 channels).
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in videozoo.x3d_xs().parameters()) + 48


def test_xs_and_s_are_one_network() -> None:
    xs, s = videozoo.efficient_x3d_xs().state_dict(), videozoo.efficient_x3d_s().state_dict()
    assert [(k, v.shape) for k, v in xs.items()] == [(k, v.shape) for k, v in s.items()]


# ---------------------------------------------------------------------------------------------------
# The head


def test_head_pools_globally_at_every_size() -> None:
    torch.manual_seed(0)
    model = videozoo.efficient_x3d_xs(num_classes=7).eval()
    for shape in [(2, 3, 4, 160, 160), (2, 3, 6, 182, 150), (1, 3, 1, 20, 33)]:
        x = make_input(shape, seed=3)
        with torch.inference_mode():
            features = model.forward_features(x)
            embedding = model.forward_head(features, pre_logits=True)
            expected = F.relu(model.lin5(F.relu(model.conv5(
                model.layer4(model.layer3(model.layer2(model.layer1(model.stem(x)))))
            )).mean((2, 3, 4), keepdim=True))).flatten(1)
            torch.testing.assert_close(embedding, expected)
            torch.testing.assert_close(model(x), model.fc(embedding))  # logits, not averaged probabilities


def test_global_head_differs_from_the_window_head_above_the_training_clip() -> None:
    """The same weights in PySlowFast's window head agree at the training clip only."""
    torch.manual_seed(0)
    efficient = videozoo.efficient_x3d_xs().eval()
    window = X3D(num_frames=4, crop_size=160, shortcut_norm=True).eval()
    window.load_state_dict(efficient.state_dict())
    with torch.inference_mode():
        x = make_input((1, 3, 4, 160, 160), seed=4)
        torch.testing.assert_close(efficient(x), window(x))
        x = make_input((1, 3, 4, 256, 256), seed=4)
        assert not torch.allclose(efficient(x).softmax(-1), window(x).softmax(-1))


# ---------------------------------------------------------------------------------------------------
# Checkpoints


@pytest.mark.parametrize(("name", "weights"), [("efficient_x3d_xs", EfficientX3D_XS_Weights), ("efficient_x3d_s", EfficientX3D_S_Weights)])
def test_loads_published_file_from_cache(name: str, weights, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fixture = load_fixture(FIXTURES / f"{name}.pt")
    path = write_to_cache(tmp_path, monkeypatch, weights.DEFAULT, published_checkpoint(name))
    assert path.name == f"{name}_original_form.pyth"

    model = videozoo.get_model(name, weights="DEFAULT", progress=False).eval()
    with torch.inference_mode():
        logits = model(make_input(fixture["input_shape"], seed=fixture["input_seed"]))
    assert relative_error(logits, fixture["output"]) <= TOLERANCE

    # The file as a path loads the same; our own state_dict round-trips strictly.
    by_path = videozoo.get_model(name, weights=str(path))
    assert all(torch.equal(by_path.state_dict()[k], v) for k, v in model.state_dict().items())
    by_hand = weights.DEFAULT.adapt_state_dict(safety.load_checkpoint(path))
    assert all(torch.equal(by_hand[k], v) for k, v in model.state_dict().items())
    again = videozoo.get_model(name)
    again.load_state_dict(model.state_dict(), strict=True)


def test_adapter_accepts_only_the_bare_published_layout() -> None:
    adapt = EfficientX3D_XS_Weights.KINETICS400_V1.adapt_state_dict
    checkpoint = published_checkpoint("efficient_x3d_xs")
    adapted = adapt(checkpoint)
    assert len(adapted) == len(checkpoint) == 568
    assert adapted["layer1.0.se.fc1.weight"].shape == (8, 54)  # 1x1x1 convolutions -> linear layers
    with pytest.raises(ValueError, match="bare state_dict.*'model_state'.*x3d_xs"):
        adapt({"model_state": checkpoint})  # the format of PyTorchVideo's other files
    with pytest.raises(ValueError, match="bare state_dict.*got a Tensor"):
        adapt(torch.zeros(3))
    with pytest.raises(ValueError, match="non-tensor values"):
        adapt({**checkpoint, "epoch": 3})
    with pytest.raises(ValueError, match=r"1 of its 569 keys .*head\.extra\.weight"):
        adapt({**checkpoint, "head.extra.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="keys are not in PyTorchVideo's efficient X3D layout"):
        adapt(videozoo.efficient_x3d_xs().state_dict())  # our layout is not theirs
    x3d = reference_state_dict(load_fixture(FIXTURES / "x3d_xs.pt"))
    with pytest.raises(ValueError, match="keys are not in PyTorchVideo's efficient X3D layout"):
        adapt(x3d)  # PySlowFast's X3D-XS, unwrapped


def test_wrong_files_in_the_cache_fail_clearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    member = EfficientX3D_XS_Weights.KINETICS400_V1
    checkpoint = published_checkpoint("efficient_x3d_xs")
    write_to_cache(tmp_path, monkeypatch, member, {"model_state": checkpoint})
    with pytest.raises(CheckpointError, match="efficient_x3d_xs_original_form.pyth: not a checkpoint in the format"):
        videozoo.efficient_x3d_xs(weights=member, progress=False)

    del checkpoint["s4.pathway0_res4.layers.se.se.block.2.bias"]
    write_to_cache(tmp_path, monkeypatch, member, checkpoint)
    with pytest.raises(CheckpointError, match=r"1 missing \(layer3\.4\.se\.fc2\.bias\)"):
        videozoo.efficient_x3d_xs(weights=member, progress=False)


def test_the_file_needs_the_shortcut_norm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_to_cache(tmp_path, monkeypatch, EfficientX3D_XS_Weights.DEFAULT, published_checkpoint("efficient_x3d_xs"))
    with pytest.raises(CheckpointError, match=r"layer1\.0\.downsample\.bn"):
        videozoo.efficient_x3d_xs(weights="DEFAULT", progress=False, shortcut_norm=False)


# ---------------------------------------------------------------------------------------------------
# Weights metadata and presets


@pytest.mark.parametrize(
    ("weights", "size", "frames", "rate", "acc"),
    [(EfficientX3D_XS_Weights, "xs", 4, 12, (68.5, 88.0)), (EfficientX3D_S_Weights, "s", 13, 6, (73.0, 90.6))],
)
def test_weights_recipe_and_preset(weights, size: str, frames: int, rate: int, acc: tuple[float, float]) -> None:
    member = weights.DEFAULT
    assert member is weights.KINETICS400_V1 and list(weights) == [member]
    assert member.url == URL.format(size)
    meta = member.meta
    assert (meta["_metrics"]["Kinetics-400"]["acc@1"], meta["_metrics"]["Kinetics-400"]["acc@5"]) == acc
    assert (meta["num_frames"], meta["sampling_rate"], meta["frame_rate"]) == (frames, rate, 30.0)
    assert (meta["num_clips"], meta["num_crops"]) == (10, 1)
    assert "model_args" not in meta  # no pooling window to pin
    assert meta["recipe"].endswith("model_zoo.md#pytorchvideo-accelerator-model-zoo")
    assert meta["categories"] == list(PTV_KINETICS400_CATEGORIES)
    assert "10-clip evaluation" in meta["_docs"] and "FlopCounterMode" in meta["_docs"]
    preset = member.transforms()
    assert preset.crop_size == (160, 160) and preset.resize_size == (160,)
    assert preset.mean == (0.45,) * 3 and preset.std == (0.225,) * 3 and not preset.resize_uint8


@pytest.mark.parametrize("name", ["efficient_x3d_xs", "efficient_x3d_s"])
def test_gflops_are_the_counted_multiply_adds_of_one_view(name: str) -> None:
    meta = videozoo.get_model_weights(name).DEFAULT.meta
    with torch.device("meta"):
        model = videozoo.get_model(name).eval()
        counter = FlopCounterMode(display=False)
        with counter:
            model(torch.empty(1, 3, meta["num_frames"], 160, 160))
    assert round(counter.get_total_flops() / 2e9, 2) == meta["_ops"]
