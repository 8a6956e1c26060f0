"""VideoClassification beyond the torchvision fixtures: layouts, views, errors, description."""

from __future__ import annotations

import pytest
import torch

from videozoo.video.transforms import VideoClassification, resized_size


def ramp_video(t: int, h: int, w: int) -> torch.Tensor:
    """uint8 frames whose pixel value encodes its column, so crops can be located."""
    cols = torch.arange(w).clamp(max=255).to(torch.uint8)
    return cols.view(1, 1, 1, w).expand(t, 3, h, w).contiguous()


def test_layouts_and_dtypes() -> None:
    preset = VideoClassification(crop_size=(32, 32), resize_size=(40,))
    video = torch.randint(0, 256, (5, 3, 48, 64), dtype=torch.uint8)
    out = preset(video)
    assert out.shape == (3, 5, 32, 32) and out.dtype == torch.float32
    batched = preset(torch.stack([video, video]))
    assert batched.shape == (2, 3, 5, 32, 32)
    torch.testing.assert_close(batched[1], out)
    from_float = preset(video.float() / 255)  # no uint8 rounding: within half a grey level
    assert (from_float - out).abs().max() <= 0.5 / 255 / min(preset.std) + 1e-6


def test_resize_sizes() -> None:
    assert resized_size(240, 320, (128,)) == (128, 170)  # short side, long side truncated
    assert resized_size(320, 240, (128,)) == (170, 128)
    assert resized_size(240, 320, (128, 171)) == (128, 171)
    preset = VideoClassification(crop_size=112, resize_size=(128, 171))
    assert preset.crop_size == (112, 112)


def test_normalisation_uses_mean_and_std() -> None:
    preset = VideoClassification(crop_size=4, resize_size=4, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    out = preset(torch.full((2, 3, 4, 4), 255, dtype=torch.uint8))
    torch.testing.assert_close(out, torch.full((3, 2, 4, 4), 2.0))


def test_three_crops_along_the_long_side() -> None:
    preset = VideoClassification(crop_size=20, resize_size=(20, 60), mean=(0, 0, 0), std=(1, 1, 1))
    views = preset.multi_crop(ramp_video(2, 20, 60), 3)
    assert views.shape == (3, 3, 2, 20, 20)
    first_columns = (views[:, 0, 0, 0, 0] * 255).round().tolist()
    assert first_columns == [0, 20, 40]  # left, centre, right
    torch.testing.assert_close(preset.multi_crop(ramp_video(2, 20, 60), 1)[0], preset(ramp_video(2, 20, 60)))


def test_three_crops_portrait_go_top_to_bottom() -> None:
    preset = VideoClassification(crop_size=10, resize_size=(30, 10), mean=(0, 0, 0), std=(1, 1, 1))
    rows = torch.arange(30, dtype=torch.uint8).view(1, 1, 30, 1).expand(1, 3, 30, 10)
    views = preset.multi_crop(rows, 3)
    assert (views[:, 0, 0, 0, 0] * 255).round().tolist() == [0, 10, 20]
    batched = preset.multi_crop(torch.stack([rows, rows]), 3)
    assert batched.shape == (3, 2, 3, 1, 10, 10)


@pytest.mark.parametrize(
    ("video", "message"),
    [
        (torch.zeros(3, 8, 8, dtype=torch.uint8), r"\(T, 3, H, W\)"),
        (torch.zeros(2, 8, 8, 3, dtype=torch.uint8), r"permute\(0, 3, 1, 2\)"),
        (torch.zeros(2, 4, 8, 8, dtype=torch.uint8), r"\(T, 3, H, W\)"),
        (torch.zeros(2, 3, 8, 8, dtype=torch.int32), "uint8 frames or float"),
        (torch.full((2, 3, 8, 8), 200.0), r"range from 200 to 200\. They look like 0-255 values: divide by 255"),
        (torch.full((2, 3, 8, 8), -0.5), r"Float frames must lie in \[0, 1\]; these range from -0.5 to -0.5\.$"),
    ],
)
def test_bad_input_is_explained(video: torch.Tensor, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        VideoClassification(crop_size=4, resize_size=6)(video)


def test_float_frames_at_the_edges_of_the_unit_range_pass() -> None:
    frames = torch.rand(2, 3, 8, 8)
    frames[0, 0, 0, 0], frames[0, 0, 0, 1] = 0.0, 1.0
    assert VideoClassification(crop_size=4, resize_size=6)(frames).shape == (3, 2, 4, 4)


def test_bad_parameters_are_explained() -> None:
    with pytest.raises(ValueError, match="crop_size"):
        VideoClassification(crop_size=(1, 2, 3), resize_size=4)
    with pytest.raises(ValueError, match="resize_size"):
        VideoClassification(crop_size=4, resize_size=0)
    with pytest.raises(ValueError, match="interpolation"):
        VideoClassification(crop_size=4, resize_size=4, interpolation="area")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_crops"):
        VideoClassification(crop_size=4, resize_size=4).multi_crop(torch.zeros(1, 3, 4, 4), 2)
    with pytest.raises(TypeError, match="torch.Tensor"):
        VideoClassification(crop_size=4, resize_size=4)([[0]])  # type: ignore[arg-type]


def test_float_resize_path_for_pyslowfast_recipes() -> None:
    video = torch.randint(0, 256, (2, 3, 30, 40), dtype=torch.uint8)
    exact = VideoClassification(crop_size=16, resize_size=20, resize_uint8=False)(video)
    via_float = VideoClassification(crop_size=16, resize_size=20)(video.float() / 255)
    torch.testing.assert_close(exact, via_float)


def test_describe_and_repr() -> None:
    preset = VideoClassification(crop_size=(112, 112), resize_size=(128, 171))
    text = preset.describe()
    assert "resized to 128x171 px" in text and "centre-cropped to 112x112" in text and "0.43216" in text
    assert "short side is 256" in VideoClassification(crop_size=224, resize_size=256).describe()
    assert repr(preset).startswith("VideoClassification(\n    crop_size=[112, 112],\n    resize_size=[128, 171]")


def test_crop_rounding_follows_the_recipe() -> None:
    """A 5 px margin: torchvision rounds 2.5 half-to-even to 2, PySlowFast takes the ceiling, 3."""
    video = ramp_video(1, 8, 13)
    common = dict(crop_size=8, resize_size=(8, 13), mean=(0, 0, 0), std=(1, 1, 1))
    assert round(float(VideoClassification(**common)(video)[0, 0, 0, 0]) * 255) == 2
    ceil = VideoClassification(**common, crop_rounding="ceil")
    assert round(float(ceil(video)[0, 0, 0, 0]) * 255) == 3
    assert "crop_rounding='ceil'" in repr(ceil)
    with pytest.raises(ValueError, match="crop_rounding"):
        VideoClassification(**common, crop_rounding="floor")  # type: ignore[arg-type]


def test_bgr_channel_order_reverses_the_normalised_channels() -> None:
    """PySlowFast's REVERSE_INPUT_CHANNEL: normalise in RGB order, then feed the channels as B, G, R."""
    video = torch.randint(0, 256, (4, 3, 40, 50), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    settings = dict(crop_size=32, resize_size=36, mean=(0.4, 0.45, 0.5), std=(0.2, 0.225, 0.25))
    rgb = VideoClassification(**settings)
    bgr = VideoClassification(**settings, channel_order="bgr")
    assert torch.equal(bgr(video), rgb(video)[[2, 1, 0]])
    assert torch.equal(bgr.multi_crop(video, 3), rgb.multi_crop(video, 3)[:, [2, 1, 0]])
    assert "BGR" in bgr.describe() and "channel_order='bgr'" in repr(bgr)
    with pytest.raises(ValueError, match="channel_order must be 'rgb' or 'bgr'"):
        VideoClassification(crop_size=32, resize_size=36, channel_order="brg")
