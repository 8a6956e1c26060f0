"""Sliding windows over a whole video, decoded once, in order, in bounded memory.

A window is ``[start, end)`` seconds of the video; windows start every ``stride`` seconds from the
first frame (0, stride, 2 * stride, ...) and the last one is the first that reaches the end of the
video (its ``end`` is clipped to the duration), so together they cover the whole video with no gap
when ``stride <= window`` (and gaps of ``stride - window`` when the stride is longer, by request).
A video shorter than one window gives one window, ``[0, duration)``.

A window's clip is the recipe's clip taken *within the window* by :mod:`videozoo.sampling`'s own rule
(:func:`~videozoo.video.sampling.clip_times` with one clip over the window's span, shifted to its start):
``num_frames`` frames every ``sampling_rate / frame_rate`` seconds, centred in the window, each the
frame nearest its time. Only the last window can be shorter than the clip; its clip starts at the
window's start and repeats the video's last frame past the end (as ``videozoo.sampling`` pads short
videos). A segment recipe (Something-Something V2) spreads its ``num_frames`` segments over the window.
The frames then go through ``transform`` (the weights' preset: resize, centre crop, normalise).

Decoding goes through :meth:`videozoo.video.io.VideoReader.iter_frames`: one pass from the start of the file,
converting (and, with ``resize_on_decode``, resizing, as :mod:`videozoo.inference` does) only the
frames some window needs, and holding only the frames of windows not yet emitted.

Contract (shared with ``videozoo.extract``): :class:`Window`, :func:`default_window`,
:func:`iter_windows`. Additions beyond the first draft of the contract: ``default_window`` takes an
optional ``fps`` (for recipes with ``frame_rate=None``), and ``iter_windows`` returns a
:class:`WindowStream` (an ``Iterator[Window]`` that also tells the number of windows and the
decoding counters); a Window also carries `frame_indices`, the frames its clip was made of.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from videozoo.video.io import VideoReader
from videozoo.zoo import ClipRecipe
from videozoo.video.sampling import clip_times, nearest_frames

__all__ = ["Window", "WindowStream", "default_window", "window_spans", "iter_windows", "SEGMENT_WINDOW_S"]

#: Default window of a segment recipe (one clip spread over a whole video): about the length of a
#: Something-Something V2 video (2 to 6 s, 4 s on average), the clips those weights were tested on.
SEGMENT_WINDOW_S = 4.0


@dataclass(frozen=True)
class Window:
    """One window of a video and its model input."""

    index: int  # 0, 1, 2, ... in time order
    start: float  # seconds from the video's first frame
    end: float  # seconds (exclusive); the last window's end is the video's duration
    clip: Tensor = field(repr=False)  # float (C, T, H, W): the recipe's frames in the window through the preset
    frame_indices: Tensor | None = field(default=None, repr=False)  # int64 (T,): the frames the clip was made of


def default_window(recipe: ClipRecipe, fps: float | None = None) -> float:
    """Seconds one clip of the recipe covers, ``num_frames * sampling_rate / frame_rate``: the default window.

    Args:
        recipe: the weights' recipe (``weights.recipe``).
        fps: the video's frame rate, used only when the recipe has none (``frame_rate=None``).

    A segment recipe has no clip length of its own (its clip spreads over a whole video) and gets
    :data:`SEGMENT_WINDOW_S`.
    """
    if recipe.sampling == "segments":
        return SEGMENT_WINDOW_S
    rate = recipe.frame_rate or fps
    if not rate:
        raise ValueError(
            "This recipe has no frame_rate (it counts frames at the video's own rate); pass the video's fps, "
            "or an explicit window in seconds."
        )
    return recipe.num_frames * recipe.sampling_rate / rate


def window_spans(duration: float, window: float, stride: float) -> list[tuple[float, float]]:
    """``(start, end)`` seconds of every window over a video of ``duration`` seconds.

    Starts are ``k * stride``; the last window is the first whose ``start + window`` reaches the
    duration, and its end is clipped to it. A video no longer than a window gives ``[(0, duration)]``.
    """
    _check_seconds(window, "window")
    _check_seconds(stride, "stride")
    eps = 1e-9
    if duration <= window + eps:
        return [(0.0, float(duration))]
    count = math.ceil((duration - window) / stride - eps) + 1
    return [(round(k * stride, 9), min(round(k * stride + window, 9), float(duration))) for k in range(count)]


def _check_seconds(value: float, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number of seconds, got {value!r}.")


class WindowStream(Iterator[Window]):
    """The windows of one video, yielded in time order as soon as their last frame is decoded.

    ``len(stream)`` is the number of windows; ``spans`` their ``(start, end)``; ``duration``,
    ``fps``, ``num_frames`` describe the video. After (or during) iteration, ``frames_decoded`` is the
    number of frames the decoder produced and ``max_frames_held`` the most decoded frames held at once.
    """

    def __init__(
        self,
        video: str | os.PathLike[str],
        recipe: ClipRecipe,
        transform: nn.Module,
        *,
        window: float | None = None,
        stride: float | None = None,
        resize_on_decode: bool = True,
    ) -> None:
        size = None
        if resize_on_decode:
            from videozoo.video.transforms import resized_size

            resize = getattr(transform, "resize_size", None)
            size = (lambda h, w: resized_size(h, w, resize)) if resize is not None else None
        self.path = os.fspath(video)
        self._reader = VideoReader(self.path, backend="pyav", size=size)
        try:
            timestamps = self._reader.timestamps
            self.duration = self._reader.duration
            self.fps = self._reader.info.fps
            self.num_frames = len(timestamps)
            self.window = float(default_window(recipe, self.fps) if window is None else window)
            _check_seconds(self.window, "window")
            self.stride = float(self.window / 2 if stride is None else stride)
            self.spans = window_spans(self.duration, self.window, self.stride)
            one = ClipRecipe(
                num_frames=recipe.num_frames,
                sampling_rate=recipe.sampling_rate,
                frame_rate=recipe.frame_rate,
                sampling=recipe.sampling,
            )
            self.indices = torch.stack(
                [nearest_frames(timestamps, clip_times(end - start, one, self.fps)[0] + start) for start, end in self.spans]
            )  # (windows, num_frames)
        except BaseException:
            self._reader.close()
            raise
        self.transform = transform
        self.frames_decoded = 0
        self.max_frames_held = 0
        self._gen = self._generate()

    def __len__(self) -> int:
        return len(self.spans)

    def __next__(self) -> Window:
        return next(self._gen)

    def close(self) -> None:
        self._gen.close()
        self._reader.close()

    def _generate(self) -> Iterator[Window]:
        lows = self.indices.min(dim=1).values.tolist()
        highs = self.indices.max(dim=1).values.tolist()
        # Frames still needed once window w is emitted: those at or after min(lows[w + 1:]).
        keep_from = lows[:]
        for w in range(len(lows) - 2, -1, -1):
            keep_from[w] = min(lows[w], keep_from[w + 1])
        held: dict[int, Tensor] = {}
        nxt = 0
        try:
            for i, frame in self._reader.iter_frames(self.indices.unique()):
                self.frames_decoded = self._reader.frames_decoded
                held[i] = frame
                self.max_frames_held = max(self.max_frames_held, len(held))
                while nxt < len(self.spans) and highs[nxt] <= i:
                    yield self._emit(nxt, held)
                    nxt += 1
                    if nxt < len(self.spans):
                        for j in [j for j in held if j < keep_from[nxt]]:
                            del held[j]
            self.frames_decoded = self._reader.frames_decoded
        finally:
            self._reader.close()

    def _emit(self, w: int, held: dict[int, Tensor]) -> Window:
        idx = self.indices[w]
        frames = torch.stack([held[int(i)] for i in idx])
        start, end = self.spans[w]
        return Window(index=w, start=start, end=end, clip=self.transform(frames), frame_indices=idx.clone())


def iter_windows(video: str | os.PathLike[str], recipe: ClipRecipe, transform: nn.Module, **options: Any) -> WindowStream:
    """Slide windows over the whole video, decoding it once, in order, holding only the frames open windows need.

    Args:
        video: a video file.
        recipe: the weights' recipe; its ``num_frames``, ``sampling_rate``, ``frame_rate`` and
            ``sampling`` shape each window's clip (its clips/crops counts are ignored: one centre crop).
        transform: the weights' preset (``weights.transforms()``).
        options: ``window`` (seconds per window; default :func:`default_window`), ``stride`` (seconds
            between window starts; default half a window), ``resize_on_decode`` (resize to the preset's
            resize size while decoding, as ``predict`` does; False decodes at full size and lets the
            preset resize: exact, slower).

    Raises :class:`~videozoo.errors.VideoDecodeError` for a file that cannot be read (when opening, or
    while iterating for a file corrupt midway), ``ValueError`` for a non-positive window or stride.
    """
    return WindowStream(video, recipe, transform, **options)
