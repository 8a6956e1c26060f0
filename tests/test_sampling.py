"""Clip sampling against the recipes: frame indices, uniform multi-clip spread, padding, resampling."""

from __future__ import annotations

import re

import pytest
import torch

import videozoo
from video_factory import frame_code, make_video
from videozoo.video.io import VideoReader
from videozoo.zoo import ClipRecipe
from videozoo.video.sampling import clip_start_times, nearest_frames, sample_clip_indices, segment_indices


def frames_at(fps: float, n: int, offset: float = 0.0) -> torch.Tensor:
    return torch.arange(n, dtype=torch.float64) / fps + offset


def test_torchvision_recipe_on_30fps_video():
    """16 frames at 15 fps from a 30 fps video: every other frame; 5 clips from the first to the end."""
    recipe = ClipRecipe(num_frames=16, sampling_rate=1, frame_rate=15.0, num_clips=5)
    indices = sample_clip_indices(frames_at(30, 120), recipe, video_fps=30)
    # clip span 16/15 s, video 4 s: starts at i * (4 - 16/15) / 4 s = 22 i frames.
    expected = torch.stack([22 * i + 2 * torch.arange(16) for i in range(5)])
    assert torch.equal(indices, expected)
    assert indices[-1, -1] == 118  # the last clip reaches the end of the video


def test_single_clip_is_centred():
    recipe = ClipRecipe(num_frames=4, sampling_rate=5, frame_rate=30.0)
    indices = sample_clip_indices(frames_at(30, 100), recipe, video_fps=30)
    # span 20 frames, slack 80 frames: starts at 40.
    assert indices.tolist() == [[40, 45, 50, 55]]


def test_x3d_style_stride_at_native_rate_and_padding():
    """16 x 5 at 30 fps needs 80 frames; a 1 s video (30 frames) repeats its last frame."""
    recipe = ClipRecipe(num_frames=16, sampling_rate=5, frame_rate=30.0, num_clips=10, num_crops=3)
    indices = sample_clip_indices(frames_at(30, 30), recipe, video_fps=30)
    assert indices.shape == (10, 16)
    assert (indices == indices[0]).all()  # every clip starts at 0 when the video is shorter than a clip
    assert indices[0].tolist() == [0, 5, 10, 15, 20, 25] + [29] * 10


def test_resampling_picks_the_nearest_frame():
    """25 fps to 15 fps: wanted times k/15 s fall at source positions 5k/3, rounded to the nearest."""
    recipe = ClipRecipe(num_frames=7, sampling_rate=1, frame_rate=15.0, num_clips=2)
    indices = sample_clip_indices(frames_at(25, 11), recipe, video_fps=25)  # 11 frames = 0.44 s < clip
    assert indices[0].tolist() == [0, 2, 3, 5, 7, 8, 10]


def test_native_frame_rate_when_the_recipe_has_none():
    recipe = ClipRecipe(num_frames=3, sampling_rate=4, frame_rate=None, num_clips=2)
    indices = sample_clip_indices(frames_at(24, 50), recipe, video_fps=24)
    # span 12 frames; starts 0 and 50 - 12 = 38.
    assert indices.tolist() == [[0, 4, 8], [38, 42, 46]]


def test_timestamps_not_starting_at_zero_and_variable_rate():
    times = torch.tensor([10.0, 10.03, 10.1, 10.5, 10.52, 11.0], dtype=torch.float64)
    recipe = ClipRecipe(num_frames=3, sampling_rate=1, frame_rate=4.0)
    # duration 1.0 + 1/6, span 0.75 s: start (1.1667 - 0.75) / 2 = 0.2083 s -> times 0.21, 0.46, 0.71 after 10.
    indices = sample_clip_indices(times, recipe, video_fps=6.0)
    assert indices.tolist() == [[2, 3, 4]]


def test_nearest_frames_ties_and_bounds():
    ts = torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64)
    assert nearest_frames(ts, torch.tensor([-5.0, 0.5, 0.51, 1.49, 1.5, 7.0])).tolist() == [0, 0, 1, 1, 1, 2]
    assert nearest_frames(ts, torch.zeros(2, 3)).shape == (2, 3)
    with pytest.raises(ValueError, match="no frames"):
        nearest_frames(torch.empty(0), torch.zeros(1))


def test_clip_start_times():
    assert clip_start_times(10.0, 2.0, 5).tolist() == [0.0, 2.0, 4.0, 6.0, 8.0]
    assert clip_start_times(10.0, 2.0, 1).tolist() == [4.0]
    assert clip_start_times(1.0, 2.0, 3).tolist() == [0.0, 0.0, 0.0]


def test_recipe_validation_and_views():
    with pytest.raises(ValueError, match="num_crops must be 1 or 3"):
        ClipRecipe(num_frames=8, num_crops=2)
    with pytest.raises(ValueError, match="num_frames must be a positive integer"):
        ClipRecipe(num_frames=0)
    with pytest.raises(ValueError, match="frame_rate must be positive"):
        ClipRecipe(num_frames=8, frame_rate=0.0)
    with pytest.raises(ValueError, match="no 'num_frames'"):
        ClipRecipe.from_meta({"categories": []})
    recipe = ClipRecipe(num_frames=8, sampling_rate=8, frame_rate=30.0, num_clips=10, num_crops=3)
    assert recipe.num_views == 30
    assert recipe.with_views(clips=1).num_views == 3
    assert recipe.with_views(crops=1, clips=2) == ClipRecipe(8, 8, 30.0, 2, 1)
    assert recipe.clip_duration(25.0) == pytest.approx(64 / 30)


def test_sampled_frames_are_the_decoded_ones(tmp_path):
    """On a real 30 fps file, the frames decoded for a 15 fps recipe carry the sampled indices."""
    path = make_video(tmp_path / "clip.mp4", num_frames=90, fps=30, options={"g": "8", "bf": "2"})
    recipe = ClipRecipe(num_frames=4, sampling_rate=2, frame_rate=15.0, num_clips=3)
    with VideoReader(path) as reader:
        indices = sample_clip_indices(reader.timestamps, recipe, reader.info.fps, reader.duration)
        # span 8/15 s = 16 frames; starts at 0, 37, 74.
        assert indices.tolist() == [[0, 4, 8, 12], [37, 41, 45, 49], [74, 78, 82, 86]]
        frames = reader.get_frames(indices.reshape(-1)).frames
    assert [frame_code(f) for f in frames] == indices.reshape(-1).tolist()


# ----------------------------------------------------------------------------------------------------
# Every weights entry of the zoo carries the recipe in machine-readable fields.

ALL_WEIGHTS = [
    (name, member)
    for name in videozoo.list_models(task="classification")  # (a person detector has no clip recipe)
    for member in videozoo.get_model_weights(name)
]


@pytest.mark.parametrize("name,member", ALL_WEIGHTS, ids=[f"{n}-{m.name}" for n, m in ALL_WEIGHTS])
def test_every_weights_entry_has_its_recipe(name, member):
    meta = member.meta
    segments = meta.get("sampling", "clips") == "segments"
    for key in ("num_frames", "sampling_rate", "num_clips", "num_crops"):
        if key == "sampling_rate" and segments:  # a segment recipe has no stride
            assert meta[key] is None
            continue
        assert isinstance(meta[key], int) and not isinstance(meta[key], bool), key
    assert meta["frame_rate"] is None or isinstance(meta["frame_rate"], float)
    recipe = ClipRecipe.from_meta(meta)
    assert recipe.sampling == ("segments" if segments else "clips")
    assert len(meta["categories"]) > 1 or meta.get("embedding_only", False)  # (an encoder without a classifier)
    preset = member.transforms()
    assert hasattr(preset, "multi_crop") and hasattr(preset, "crop_size") and hasattr(preset, "resize_size")
    # Where the publisher states the evaluation parameters in prose, the fields say the same.
    docs = meta.get("_docs", "")
    for prose, value in (
        ("frame_rate", recipe.frame_rate),
        ("clips_per_video", recipe.num_clips),
        ("clip_len", recipe.num_frames),
    ):
        found = re.search(rf"`{prose}=([\d.]+)`", docs)
        if found:
            assert float(found.group(1)) == pytest.approx(value), prose


# torchvision's documented evaluation parameters (frame_rate, clips_per_video, clip_len).
TORCHVISION_DOCS = {
    "r3d_18": (15, 5, 16),
    "mc3_18": (15, 5, 16),
    "r2plus1d_18": (15, 5, 16),
    "s3d": (15, 1, 128),
    "mvit_v1_b": (7.5, 5, 16),
    "mvit_v2_s": (7.5, 5, 16),
    "swin3d_t": (15, 12, 32),
    "swin3d_s": (15, 12, 32),
    "swin3d_b": (15, 12, 32),
}


@pytest.mark.parametrize("name", sorted(TORCHVISION_DOCS))
def test_torchvision_documented_recipes(name):
    if name not in videozoo.list_models():
        pytest.skip(f"{name} has not landed")
    frame_rate, clips, clip_len = TORCHVISION_DOCS[name]
    recipe = ClipRecipe.from_meta(videozoo.get_model_weights(name).DEFAULT.meta)
    assert (recipe.frame_rate, recipe.num_clips, recipe.num_frames, recipe.sampling_rate) == (
        frame_rate, clips, clip_len, 1
    )


# ----------------------------------------------------------------------------------------------------
# Segment sampling (Something-Something V2)


def pyslowfast_segments(video_length: int, num_frames: int) -> list[int]:
    """PySlowFast's ``ssv2.py`` ``get_seq_frames`` at test time, as written there (NumPy's rounding)."""
    import numpy as np

    seg_size = float(video_length - 1) / num_frames
    seq = []
    for i in range(num_frames):
        start = int(np.round(seg_size * i))
        end = int(np.round(seg_size * (i + 1)))
        seq.append((start + end) // 2)
    return seq


@pytest.mark.parametrize("num_frames", [8, 32])
def test_segment_indices_are_pyslowfasts(num_frames):
    for length in range(1, 400):  # short videos (fewer frames than segments) to long ones, ties included
        assert segment_indices(length, num_frames).tolist() == pyslowfast_segments(length, num_frames), length


def test_segment_recipe_on_30fps_frames_short_and_long():
    recipe = ClipRecipe(num_frames=8, frame_rate=30.0, num_crops=3, sampling="segments")
    # PySlowFast's SSv2 frames are the video's frames at 30 fps: at 30 fps they are the rule's indices.
    for n in (5, 8, 33, 100, 301):
        indices = sample_clip_indices(frames_at(30, n), recipe, 30.0)
        assert indices.tolist() == [pyslowfast_segments(n, 8)], n
    assert sample_clip_indices(frames_at(30, 100), recipe, 30.0).tolist() == [[6, 18, 31, 43, 56, 68, 80, 93]]
    # Fewer frames than segments: frames repeat, in order.
    assert sample_clip_indices(frames_at(30, 5), recipe, 30.0).tolist() == [[0, 0, 1, 2, 2, 2, 3, 4]]


def test_segment_recipe_resamples_a_12fps_webm_to_30fps():
    """SSv2's videos are 12 fps; PySlowFast extracted their frames at 30 fps (ffmpeg -r 30) first."""
    recipe = ClipRecipe(num_frames=8, frame_rate=30.0, sampling="segments")
    # 40 frames at 12 fps = 100 frames at 30 fps: the rule's frames 6, 18, ... 93 at 30 fps are
    # 0.2 s, 0.6 s, ... 3.1 s, nearest to these 12 fps frames.
    assert sample_clip_indices(frames_at(12, 40), recipe, 12.0).tolist() == [[2, 7, 12, 17, 22, 27, 32, 37]]
    native = ClipRecipe(num_frames=8, sampling="segments")  # frame_rate None: the video's own frames
    assert sample_clip_indices(frames_at(12, 40), native, 12.0).tolist() == [pyslowfast_segments(40, 8)]


def test_segment_recipe_from_meta_and_validation():
    member = videozoo.get_weight("SlowFast_R50_Weights.SSV2_V1")
    recipe = ClipRecipe.from_meta(member.meta)
    assert (recipe.sampling, recipe.num_frames, recipe.frame_rate, recipe.num_clips, recipe.num_crops) == (
        "segments", 32, 30.0, 1, 3
    )
    assert recipe.describe() == "32 frames spread over the whole video at 30 fps, 1 clip x 3 crop(s)"
    assert ClipRecipe.from_meta(videozoo.get_weight("SlowFast_R50_Weights.KINETICS400_V1").meta).sampling == "clips"
    with pytest.raises(ValueError, match="num_clips must be 1"):
        recipe.with_views(clips=2)
    with pytest.raises(ValueError, match="sampling must be 'clips' or 'segments'"):
        ClipRecipe(num_frames=8, sampling="tsn")


def test_segment_frames_are_the_decoded_ones(tmp_path):
    """A real 30 fps file through Slow R50's SSv2 recipe (8 segments): the decoded frames are the rule's."""
    path = make_video(tmp_path / "ssv2.webm", num_frames=47, fps=30, codec="libvpx-vp9")
    recipe = ClipRecipe.from_meta(videozoo.get_weight("Slow_R50_Weights.SSV2_V1").meta)
    with VideoReader(path) as reader:
        indices = sample_clip_indices(reader.timestamps, recipe, reader.info.fps, reader.duration)
        frames = reader.get_frames(indices.reshape(-1)).frames
    assert indices.tolist() == [pyslowfast_segments(47, 8)]
    assert [frame_code(f) for f in frames] == pyslowfast_segments(47, 8)
