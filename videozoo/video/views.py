"""The evaluation views of one video: decode the recipe's clips and preprocess them with the preset.

Each video becomes ``num_clips * num_crops`` views (clip-major: all crops of clip 0, then clip 1...),
taken with the weights' own recipe (:mod:`videozoo.video.sampling`) and preset (``weights.transforms()``).

By default frames are resized to the preset's resize size while they are decoded (swscale on 8-bit
data); the preset then only crops and normalises. ``resize_on_decode=False`` decodes at full
resolution and lets the preset resize, reproducing the published preprocessing bit for bit at the
cost of speed.
"""

from __future__ import annotations

import os
from typing import Union

import torch
from torch import Tensor, nn

from videozoo.video.io import Backend, Video, VideoReader
from videozoo.video.sampling import sample_clip_indices
from videozoo.video.transforms import resized_size
from videozoo.zoo import ClipRecipe

__all__ = ["VideoSource", "clip_views", "source_name", "as_sources"]

#: A video: a file path, a :class:`~videozoo.video.io.Video`, or frames ``(T, C, H, W)`` (uint8, or float
#: in [0, 1]) taken at ``fps`` (default: the recipe's frame rate).
VideoSource = Union[str, "os.PathLike[str]", Video, Tensor]


def source_name(source: VideoSource, position: int) -> str:
    """How results name a video: its path, or ``<video N>`` / ``<tensor N>`` for frames in memory."""
    if isinstance(source, Video):
        return source.path or f"<video {position}>"
    if isinstance(source, Tensor):
        return f"<tensor {position}>"
    return os.fspath(source)


def as_sources(videos: VideoSource | list[VideoSource] | tuple[VideoSource, ...]) -> list[VideoSource]:
    """One video or a sequence of them, as a list; anything else is a ``TypeError``."""
    if isinstance(videos, (str, os.PathLike, Video, Tensor)):
        return [videos]
    items = list(videos)
    for item in items:
        if not isinstance(item, (str, os.PathLike, Video, Tensor)):
            raise TypeError(f"A video must be a path, a Video or a (T, C, H, W) tensor, not {type(item).__name__}.")
    return items


def clip_views(
    source: VideoSource,
    recipe: ClipRecipe,
    transform: nn.Module,
    *,
    resize_on_decode: bool = True,
    backend: Backend = "auto",
    fps: float | None = None,
) -> Tensor:
    """Float ``(num_clips * num_crops, C, T, H, W)``: the evaluation views of one video.

    Args:
        recipe: the recipe's uniformly spread clips (or, for a segment recipe, its one clip spread over
            the whole video) are taken.
        transform: the weights' preset; each clip goes through it, and its ``multi_crop`` for 3 crops.
        resize_on_decode: resize while decoding (fast); ``False`` is the published preprocessing exactly.
        backend: the decoder (see :class:`~videozoo.video.io.VideoReader`).
        fps: the frame rate of a ``(T, C, H, W)`` tensor (default: the recipe's, else 30).
    """
    if isinstance(source, (Video, Tensor)):
        frames = source.frames if isinstance(source, Video) else source
        if frames.dim() != 4:
            raise ValueError(f"Expected frames of shape (T, C, H, W), got {list(frames.shape)}.")
        if isinstance(source, Video):
            rate, timestamps = source.fps, source.pts - source.pts[0]
        else:
            rate = fps or recipe.frame_rate or 30.0
            timestamps = torch.arange(frames.shape[0], dtype=torch.float64) / rate
        indices = sample_clip_indices(timestamps, recipe, rate)
        clips = frames[indices.reshape(-1)]
    else:
        size = None
        resize = getattr(transform, "resize_size", None)
        if resize_on_decode and resize is not None:
            size = lambda h, w: resized_size(h, w, resize)  # noqa: E731
        with VideoReader(os.fspath(source), backend=backend, size=size) as reader:
            indices = sample_clip_indices(reader.timestamps, recipe, reader.info.fps, reader.duration)
            clips = reader.get_frames(indices.reshape(-1)).frames
    clips = clips.reshape(recipe.num_clips, recipe.num_frames, *clips.shape[1:])
    if recipe.num_crops == 1 and not hasattr(transform, "multi_crop"):
        return torch.stack([transform(clip) for clip in clips])
    views = transform.multi_crop(clips, recipe.num_crops)  # (crops, clips, C, T, H, W)
    return views.transpose(0, 1).reshape(recipe.num_views, *views.shape[2:])
