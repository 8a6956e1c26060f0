"""SlowFast specifics: PyTorchVideo's checkpoint files, Slow-frame selection, the [slow, fast] form, the head."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import videozoo
from parity.common import FIXTURES, TOLERANCE, load_fixture, make_input, reference_state_dict, relative_error
from videozoo.zoo import safety
from videozoo.models.slowfast import (
    SlowFast,
    SlowFast_16x8_R101_50_50_Weights,
    SlowFast_R50_4x16_Weights,
    SlowFast_R50_Weights,
    slowfast_r50,
)

# The configuration of the stored slowfast_r50 fixture: published R50 8x8, head window of an 8x64x64 clip.
SMALL = {"num_frames": 8, "crop_size": 64}


@pytest.fixture(scope="module")
def fixture() -> dict:
    return load_fixture(FIXTURES / "slowfast_r50.pt")


@pytest.fixture(scope="module")
def ptv_checkpoint(fixture: dict) -> dict:
    """A checkpoint in PyTorchVideo's published format: ``{"model_state": ...}`` in its module layout."""
    return {"model_state": reference_state_dict(fixture)}


@pytest.fixture(scope="module")
def model(ptv_checkpoint: dict) -> SlowFast:
    model = slowfast_r50(**SMALL).eval()
    model.load_state_dict(SlowFast_R50_Weights.DEFAULT.adapt_state_dict(ptv_checkpoint))
    return model


def test_weights_load_the_published_file_from_the_cache(fixture, ptv_checkpoint, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("VIDEOZOO_HOME", str(tmp_path))
    path = tmp_path / "checkpoints" / "SLOWFAST_8x8_R50.pyth"
    assert path.name == SlowFast_R50_Weights.DEFAULT.url.rsplit("/", 1)[-1]
    path.parent.mkdir()
    torch.save(ptv_checkpoint, path)

    with pytest.raises(ValueError, match="num_frames=8 conflicts with SlowFast_R50_Weights.KINETICS400_V1"):
        videozoo.get_model("slowfast_r50", weights="DEFAULT", **SMALL)
    # Built for the published 32 x 224 clip, the head pools the fixture's small clip whole, as SMALL's does.
    model = videozoo.get_model("slowfast_r50", weights="DEFAULT").eval()
    x = make_input(fixture["input_shape"], seed=fixture["input_seed"])
    with torch.inference_mode():
        assert relative_error(model(x), fixture["output"]) <= TOLERANCE

    # One call for a file downloaded by hand; our own state_dict loads back strictly.
    state = SlowFast_R50_Weights.KINETICS400_V1.adapt_state_dict(safety.load_checkpoint(path))
    again = slowfast_r50(**SMALL).eval()
    again.load_state_dict(state)
    again.load_state_dict(model.state_dict())
    with torch.inference_mode():
        torch.testing.assert_close(again(x), model(x), rtol=0, atol=0)


def test_adapter_accepts_pyslowfast_wrapper_prefix(ptv_checkpoint) -> None:
    adapt = SlowFast_R50_Weights.DEFAULT.adapt_state_dict
    wrapped = {"model_state": {f"model.{k}": v for k, v in ptv_checkpoint["model_state"].items()}}
    assert adapt(wrapped).keys() == adapt(ptv_checkpoint).keys()


def test_adapter_refuses_other_files(model, ptv_checkpoint) -> None:
    adapt = SlowFast_R50_Weights.DEFAULT.adapt_state_dict
    with pytest.raises(ValueError, match="model_state"):
        adapt(ptv_checkpoint["model_state"])  # a bare PyTorchVideo state_dict
    with pytest.raises(ValueError, match="model_state"):
        adapt([1, 2])
    with pytest.raises(ValueError, match=r"not in PyTorchVideo's SlowFast layout .*slow\.stem\.conv\.weight"):
        adapt({"model_state": model.state_dict()})  # our own layout: load it with load_state_dict
    x3d_like = dict(ptv_checkpoint["model_state"]) | {"blocks.5.pool.pre_conv.weight": torch.zeros(1)}
    with pytest.raises(ValueError, match=r"1 of its \d+ keys .*blocks\.5\.pool\.pre_conv\.weight"):
        adapt({"model_state": x3d_like})


def test_checkpoint_of_another_configuration_fails_loudly(ptv_checkpoint, tmp_path, monkeypatch) -> None:
    """The R50 8x8 file is not a 4x16 file: its lateral kernels are 7 long, not 5."""
    monkeypatch.setenv("VIDEOZOO_HOME", str(tmp_path))
    (tmp_path / "checkpoints").mkdir()
    torch.save(ptv_checkpoint, tmp_path / "checkpoints" / "SLOWFAST_4x16_R50.pyth")
    with pytest.raises(RuntimeError, match=r"4 wrong shape \(fuse0\.conv\.weight"):
        videozoo.get_model("slowfast_r50_4x16", weights=SlowFast_R50_4x16_Weights.DEFAULT)


@pytest.mark.parametrize(
    ("alpha", "frames", "expected"),
    [
        (4, 32, [0, 4, 8, 13, 17, 22, 26, 31]),  # PackPathway: linspace(0, 31, 8).long()
        (8, 32, [0, 10, 20, 31]),
        (4, 8, [0, 7]),
    ],
)
def test_slow_frames_are_packpathways(alpha: int, frames: int, expected: list[int]) -> None:
    model = SlowFast(layers=(1, 1, 1, 1), alpha=alpha, num_frames=frames, num_classes=2)
    clip = torch.arange(frames, dtype=torch.float32).view(1, 1, frames, 1, 1).expand(2, 3, frames, 4, 5)
    slow = model.select_slow_frames(clip)
    assert slow.shape == (2, 3, frames // alpha, 4, 5)
    assert slow[0, 0, :, 0, 0].tolist() == expected


def test_slow_frames_of_the_16x8_model() -> None:
    model = SlowFast(layers=(1, 1, 1, 1), num_frames=64, num_classes=2)
    index = model.select_slow_frames(torch.arange(64.0).view(1, 1, 64, 1, 1))[0, 0, :, 0, 0]
    assert index.tolist() == [0, 4, 8, 12, 16, 21, 25, 29, 33, 37, 42, 46, 50, 54, 58, 63]


def test_pathway_pair_is_accepted_eager_and_scripted(model, fixture) -> None:
    x = make_input(fixture["input_shape"], seed=3)
    slow = model.select_slow_frames(x)
    with torch.inference_mode():
        out = model(x)
        torch.testing.assert_close(model([slow, x]), out, rtol=0, atol=0)
        torch.testing.assert_close(model((slow, x)), out, rtol=0, atol=0)
        torch.testing.assert_close(model.forward_pathways(slow, x), out, rtol=0, atol=0)
    scripted = torch.jit.script(model)  # the plain modules: eager's folded BNs differ by float rounding
    with torch.inference_mode():
        torch.testing.assert_close(scripted.forward_pathways(slow, x), out, rtol=1e-5, atol=1e-5 * out.abs().max())
    with pytest.raises(ValueError, match=r"\[slow, fast\].*slow of shape \[1, 3, 2, 64, 64\]"):
        model([x, x])
    with pytest.raises(ValueError, match="one clip or a \\[slow, fast\\] pair"):
        model([slow, x, x])


def test_frames_must_fuse(model) -> None:
    with pytest.raises(ValueError, match=r"divisible by 4.*T=10.*Use T=8 or 12"):
        model(torch.zeros(1, 3, 10, 64, 64))
    with pytest.raises(ValueError, match="at least 4 frames"):
        model(torch.zeros(1, 3, 3, 64, 64))


def test_head_slides_the_window_like_pytorchvideo(model) -> None:
    """On frames larger than the window: pool each pathway with the window at stride 1, concatenate,
    project every position, average the logits (PyTorchVideo's order of operations)."""
    maps = {}
    hooks = [
        model.slow.layer4.register_forward_hook(lambda m, i, o: maps.__setitem__("slow", o)),
        model.fast.layer4.register_forward_hook(lambda m, i, o: maps.__setitem__("fast", o)),
    ]
    x = make_input((2, 3, 8, 96, 112), seed=4)  # 3x4 maps under a 2x2 window
    with torch.inference_mode():
        out = model(x)
    for hook in hooks:
        hook.remove()
    assert maps["slow"].shape[2:] == (2, 3, 4) and maps["fast"].shape[2:] == (8, 3, 4)
    pooled = torch.cat([F.avg_pool3d(maps["slow"], (2, 2, 2), 1), F.avg_pool3d(maps["fast"], (8, 2, 2), 1)], 1)
    expected = model.fc(pooled.permute(0, 2, 3, 4, 1)).mean((1, 2, 3))
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    global_mean = model.fc(torch.cat([maps["slow"].mean((2, 3, 4)), maps["fast"].mean((2, 3, 4))], 1))
    assert not torch.allclose(out, global_mean, rtol=1e-3, atol=1e-3)  # the window matters


@pytest.mark.parametrize(
    ("name", "alpha", "frames", "slow_window", "fast_window"),
    [
        ("slowfast_r50", 4, 32, [8, 7, 7], [32, 7, 7]),
        ("slowfast_r50_4x16", 8, 32, [4, 7, 7], [32, 7, 7]),
        ("slowfast_r101", 4, 32, [8, 7, 7], [32, 7, 7]),
        ("slowfast_16x8_r101_50_50", 4, 64, [16, 7, 7], [64, 7, 7]),
    ],
)
def test_published_configuration(name: str, alpha: int, frames: int, slow_window, fast_window) -> None:
    """Head windows as in PyTorchVideo's builders; meta holds the Fast clip the model takes."""
    model = videozoo.get_model(name)
    assert (model.alpha, model.slow_pool_window, model.fast_pool_window) == (alpha, slow_window, fast_window)
    meta = videozoo.get_model_weights(name).DEFAULT.meta
    assert (meta["num_frames"], meta["sampling_rate"], meta["slowfast_alpha"]) == (frames, 2, alpha)
    assert (meta["frame_rate"], meta["num_clips"], meta["num_crops"]) == (30.0, 10, 3)
    assert (meta["min_temporal_size"], meta["min_size"]) == (model.min_temporal_size, (model.min_size,) * 2)
    preset = videozoo.get_model_weights(name).DEFAULT.transforms()
    assert preset.crop_size == (256, 256) and preset.resize_size == (256,)
    assert preset.mean == (0.45,) * 3 and preset.std == (0.225,) * 3


def test_16x8_has_temporal_kernels_in_six_res4_blocks() -> None:
    model = videozoo.get_model("slowfast_16x8_r101_50_50")
    kernels = [block.conv1.kernel_size[0] for block in model.slow.layer3]
    assert kernels == [3] * 6 + [1] * 17
    assert [block.conv1.kernel_size[0] for block in model.fast.layer3] == [3] * 6 + [1] * 17
    assert SlowFast_16x8_R101_50_50_Weights.DEFAULT.url.endswith("/kinetics/SLOWFAST_16x8_R101_50_50.pyth")
