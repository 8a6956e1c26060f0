"""Which frames of a video a checkpoint's evaluation recipe feeds the model.

A clip is ``num_frames`` frames taken every ``sampling_rate / frame_rate`` seconds, so it spans
``num_frames * sampling_rate / frame_rate`` seconds (``frame_rate=None``: the video's own rate).
Each wanted time maps to the frame whose presentation timestamp is nearest (ties go to the earlier
frame), which resamples any source rate, constant or variable, to the recipe's.

Multi-view testing takes ``num_clips`` clips whose start times are spread uniformly over the
video, the first clip starting at the first frame and the last clip ending at the end of the
video: clip ``i`` of ``N`` starts at ``i * (duration - clip_duration) / (N - 1)`` seconds
(torchvision's ``UniformClipSampler``, which evaluated its published weights); a single clip is
centred. PySlowFast and PyTorchVideo start clip ``i`` at ``i * (duration - clip_duration) / N``
instead, which never reaches the last part of the video; the difference in accuracy is noise.
A video shorter than a clip gives every clip the same start, 0, and times past its end map to the
last frame: short videos are padded by repeating their last frame.

Segment sampling (``sampling="segments"``, Something-Something V2) instead spreads one clip over the
whole video, whatever its length, as PySlowFast's ``ssv2.py`` and PyTorchVideo's ``SSv2`` dataset do:
the video's ``n`` frames at ``frame_rate`` (the frames PySlowFast extracted at 30 fps) are split into
``num_frames`` equal segments of ``(n - 1) / num_frames`` frames and the test clip takes the centre of
each, frame ``(round(s * i) + round(s * (i + 1))) // 2`` for segment ``i`` (``round``: half to even,
as NumPy's). A video of fewer frames than ``num_frames`` repeats frames. ``sampling_rate`` does not
apply and there is one temporal view.
"""

from __future__ import annotations

import torch
from torch import Tensor

from videozoo.zoo.recipe import ClipRecipe

__all__ = [
    "clip_start_times",
    "clip_times",
    "nearest_frames",
    "sample_clip_indices",
    "segment_indices",
]

def clip_start_times(duration: float, clip_duration: float, num_clips: int) -> Tensor:
    """float64 ``(num_clips,)`` start times: uniform from 0 to ``duration - clip_duration``."""
    slack = max(duration - clip_duration, 0.0)
    if num_clips == 1:
        return torch.tensor([slack / 2], dtype=torch.float64)
    return torch.arange(num_clips, dtype=torch.float64) * (slack / (num_clips - 1))


def segment_indices(length: int, num_frames: int) -> Tensor:
    """int64 ``(num_frames,)``: the centre frame of each of ``num_frames`` equal segments of ``length`` frames.

    PySlowFast's test-time rule (``ssv2.py`` ``get_seq_frames``): segment ``i`` spans frames
    ``round(s * i)`` to ``round(s * (i + 1))`` with ``s = (length - 1) / num_frames``, rounded half to
    even, and gives the frame halfway between, rounded down.
    """
    if length < 1 or num_frames < 1:
        raise ValueError(f"length and num_frames must be positive, got {length} and {num_frames}.")
    size = (length - 1) / num_frames
    bounds = [round(size * i) for i in range(num_frames + 1)]  # Python's round: half to even, as np.round
    return torch.tensor([(bounds[i] + bounds[i + 1]) // 2 for i in range(num_frames)], dtype=torch.int64)


def clip_times(duration: float, recipe: ClipRecipe, video_fps: float) -> Tensor:
    """float64 ``(num_clips, num_frames)``: the time, in seconds, each frame of each clip is taken at."""
    if recipe.sampling == "segments":
        rate = recipe.frame_rate or video_fps
        length = max(1, round(duration * rate))  # the frames the video has at the recipe's rate
        return (segment_indices(length, recipe.num_frames).to(torch.float64) / rate)[None, :]
    step = recipe.frame_interval(video_fps)
    starts = clip_start_times(duration, recipe.num_frames * step, recipe.num_clips)
    return starts[:, None] + torch.arange(recipe.num_frames, dtype=torch.float64)[None, :] * step


def nearest_frames(timestamps: Tensor, times: Tensor) -> Tensor:
    """int64 indices, shaped like ``times``, of the frame whose timestamp is nearest each time.

    ``timestamps`` must be sorted (presentation order). Ties go to the earlier frame; times before
    the first or after the last frame give the first or last frame.
    """
    ts = timestamps.to(torch.float64).contiguous()
    if ts.numel() == 0:
        raise ValueError("The video has no frames.")
    t = times.to(torch.float64)
    flat = t.reshape(-1).contiguous()
    after = torch.searchsorted(ts, flat).clamp(max=ts.numel() - 1)  # first frame at or after t
    before = (after - 1).clamp(min=0)
    pick_before = (flat - ts[before]) <= (ts[after] - flat) + 1e-9
    return torch.where(pick_before, before, after).reshape(t.shape)


def sample_clip_indices(
    timestamps: Tensor, recipe: ClipRecipe, video_fps: float, duration: float | None = None
) -> Tensor:
    """int64 ``(num_clips, num_frames)`` frame indices for the recipe's clips.

    ``timestamps`` are the frames' sorted presentation times in seconds (as
    :attr:`videozoo.video.io.VideoReader.timestamps` gives them, from 0); ``duration``, counted from the
    first frame, defaults to one frame period past the last timestamp.
    """
    t0 = float(timestamps[0])
    if duration is None:
        duration = float(timestamps[-1]) - t0 + 1.0 / video_fps
    return nearest_frames(timestamps, clip_times(duration, recipe, video_fps) + t0)
