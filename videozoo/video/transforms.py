"""The evaluation preset each checkpoint was trained with: resize, crop, normalise, to (C, T, H, W).

Numerically this is torchvision's ``VideoClassification`` preset (bilinear resize without antialias,
uint8 frames rounded back to uint8 after resizing, ``round()`` centre crop), in plain torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["VideoClassification", "KINETICS_MEAN", "KINETICS_STD"]

# The Kinetics-400 statistics torchvision's video models were trained with.
KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)

Interpolation = Literal["bilinear", "bicubic", "nearest"]


def _pair(value: int | Sequence[int], name: str, allow_single: bool) -> tuple[int, ...]:
    values = (value,) if isinstance(value, int) else tuple(value)
    lengths = (1, 2) if allow_single else (2,)
    if len(values) not in lengths or not all(isinstance(v, int) and v > 0 for v in values):
        raise ValueError(f"{name} must be {'one or ' if allow_single else ''}two positive ints, got {value!r}.")
    return values


def resized_size(height: int, width: int, resize_size: Sequence[int]) -> tuple[int, int]:
    """Output (H, W) of the resize step: one value sets the short side, two values are exact."""
    if len(resize_size) == 2:
        return resize_size[0], resize_size[1]
    short, long = (height, width) if height <= width else (width, height)
    new_short, new_long = resize_size[0], int(resize_size[0] * long / short)
    return (new_short, new_long) if height <= width else (new_long, new_short)


#: Float frames may stray this far outside [0, 1] (rounding in a user's own resize or colour conversion).
_RANGE_SLACK = 1e-3


class VideoClassification(nn.Module):
    """Turn frames ``(T, C, H, W)`` or ``(B, T, C, H, W)``, uint8 or float in [0, 1], into model input.

    Returns float32 ``(C, T, H, W)`` or ``(B, C, T, H, W)``. ``resize_uint8`` keeps torchvision's
    behaviour of resizing uint8 frames through float and rounding back to uint8; set it to False for
    recipes (PySlowFast) that convert to float before resizing. ``crop_rounding`` places the centre
    crop at ``round((size - crop) / 2)`` (torchvision, Python's half-to-even) or at ``ceil(...)``
    (PySlowFast); the two differ by one pixel when the margin is odd. ``channel_order="bgr"`` reverses
    the channels after normalising (``mean``/``std`` stay in RGB order), for checkpoints trained on BGR
    input (PySlowFast's ``REVERSE_INPUT_CHANNEL``, e.g. its Something-Something V2 and Charades ones);
    frames always come in as RGB.
    """

    def __init__(
        self,
        *,
        crop_size: int | Sequence[int],
        resize_size: int | Sequence[int],
        mean: Sequence[float] = KINETICS_MEAN,
        std: Sequence[float] = KINETICS_STD,
        interpolation: Interpolation = "bilinear",
        resize_uint8: bool = True,
        crop_rounding: Literal["round", "ceil"] = "round",
        channel_order: Literal["rgb", "bgr"] = "rgb",
    ) -> None:
        super().__init__()
        crop = _pair(crop_size, "crop_size", allow_single=True)
        self.crop_size: tuple[int, int] = (crop[0], crop[-1])
        self.resize_size: tuple[int, ...] = _pair(resize_size, "resize_size", allow_single=True)
        if len(mean) != 3 or len(std) != 3 or any(s <= 0 for s in std):
            raise ValueError(f"mean and std need 3 values each (std > 0), got mean={mean!r}, std={std!r}.")
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        if interpolation not in ("bilinear", "bicubic", "nearest"):
            raise ValueError(f"interpolation must be 'bilinear', 'bicubic' or 'nearest', got {interpolation!r}.")
        self.interpolation = interpolation
        self.resize_uint8 = resize_uint8
        if crop_rounding not in ("round", "ceil"):
            raise ValueError(f"crop_rounding must be 'round' or 'ceil', got {crop_rounding!r}.")
        self.crop_rounding = crop_rounding
        if channel_order not in ("rgb", "bgr"):
            raise ValueError(f"channel_order must be 'rgb' or 'bgr', got {channel_order!r}.")
        self.channel_order = channel_order

    def settings(self) -> dict[str, Any]:
        """The constructor's arguments (``VideoClassification(**preset.settings())`` is the same preset)."""
        return {
            "crop_size": list(self.crop_size), "resize_size": list(self.resize_size), "mean": list(self.mean),
            "std": list(self.std), "interpolation": self.interpolation, "resize_uint8": self.resize_uint8,
            "crop_rounding": self.crop_rounding, "channel_order": self.channel_order,
        }  # fmt: skip

    # -- the steps -----------------------------------------------------------------------------------

    def _check(self, video: Tensor) -> None:
        if not isinstance(video, Tensor):
            raise TypeError(f"Expected a torch.Tensor of frames, got {type(video).__name__}.")
        if video.dim() not in (4, 5) or video.shape[-3] != 3:
            raise ValueError(
                f"Expected frames of shape (T, 3, H, W) or (B, T, 3, H, W); got {list(video.shape)}. "
                f"Decoded frames in (T, H, W, 3) layout need video.permute(0, 3, 1, 2)."
            )
        if video.dtype != torch.uint8 and not video.is_floating_point():
            raise ValueError(f"Expected uint8 frames or float frames in [0, 1], got {video.dtype}.")
        if video.is_floating_point() and video.numel():
            low, high = (float(v) for v in torch.aminmax(video))
            if low < -_RANGE_SLACK or high > 1.0 + _RANGE_SLACK:
                hint = " They look like 0-255 values: divide by 255, or pass the uint8 frames." if high > 2.0 else ""
                raise ValueError(f"Float frames must lie in [0, 1]; these range from {low:g} to {high:g}.{hint}")

    def _resize(self, frames: Tensor) -> Tensor:
        """Resize ``(N, C, H, W)`` frames; the result is float unless uint8 rounding is kept."""
        height, width = frames.shape[-2:]
        size = resized_size(height, width, self.resize_size)
        if size == (height, width):
            return frames
        is_uint8 = frames.dtype == torch.uint8
        out = frames.float() if is_uint8 else frames
        align = False if self.interpolation in ("bilinear", "bicubic") else None
        out = F.interpolate(out, size=size, mode=self.interpolation, align_corners=align, antialias=False)
        if is_uint8 and self.resize_uint8:
            if self.interpolation == "bicubic":
                out = out.clamp(0, 255)
            out = out.round().to(torch.uint8)
        elif is_uint8:
            out = out / 255.0  # from here on the frames are float in [0, 1]
        return out

    def _crop(self, frames: Tensor, top: int, left: int) -> Tensor:
        crop_h, crop_w = self.crop_size
        return frames[..., top : top + crop_h, left : left + crop_w]

    def _pad_to_crop(self, frames: Tensor) -> Tensor:
        """Zero-pad frames smaller than the crop symmetrically, as torchvision's ``center_crop`` does."""
        crop_h, crop_w = self.crop_size
        height, width = frames.shape[-2:]
        if crop_h <= height and crop_w <= width:
            return frames
        pad_w, pad_h = max(crop_w - width, 0), max(crop_h - height, 0)
        return F.pad(frames, [pad_w // 2, (pad_w + 1) // 2, pad_h // 2, (pad_h + 1) // 2])

    def _normalize(self, frames: Tensor) -> Tensor:
        """``(x / 255 - mean) / std`` as one multiply-add over the frames (uint8 scaling folded in)."""
        to_unit = 1.0 / 255.0 if frames.dtype == torch.uint8 else 1.0
        scale = torch.tensor([to_unit / s for s in self.std], device=frames.device).view(-1, 1, 1)
        shift = torch.tensor([-m / s for m, s in zip(self.mean, self.std)], device=frames.device).view(-1, 1, 1)
        return torch.addcmul(shift, frames.float(), scale)

    def _offsets(self, height: int, width: int, num_crops: int) -> list[tuple[int, int]]:
        crop_h, crop_w = self.crop_size
        offset = math.ceil if self.crop_rounding == "ceil" else round
        centre = (int(offset((height - crop_h) / 2.0)), int(offset((width - crop_w) / 2.0)))
        if num_crops == 1:
            return [centre]
        if width >= height:  # left, centre, right along the long side
            return [(centre[0], 0), centre, (centre[0], width - crop_w)]
        return [(0, centre[1]), centre, (height - crop_h, centre[1])]

    def _views(self, video: Tensor, num_crops: int) -> Tensor:
        self._check(video)
        batched = video.dim() == 5
        clips = video if batched else video.unsqueeze(0)
        b, t, c, h, w = clips.shape
        frames = self._pad_to_crop(self._resize(clips.reshape(b * t, c, h, w)))
        height, width = frames.shape[-2:]
        views = [self._crop(frames, top, left) for top, left in self._offsets(height, width, num_crops)]
        out = self._normalize(torch.stack(views))  # (V, B*T, C, h, w)
        if self.channel_order == "bgr":
            out = out.flip(2)
        out = out.view(num_crops, b, t, c, *self.crop_size).permute(0, 1, 3, 2, 4, 5)
        return out if batched else out.squeeze(1)

    # -- public --------------------------------------------------------------------------------------

    def forward(self, video: Tensor) -> Tensor:
        return self._views(video, 1)[0]

    def multi_crop(self, video: Tensor, num_crops: int) -> Tensor:
        """``num_crops`` spatial views: 1 = centre, 3 = start/centre/end along the long side.

        Returns ``(num_crops, C, T, H, W)`` for ``(T, C, H, W)`` input, ``(num_crops, B, C, T, H, W)``
        for batched input.
        """
        if num_crops not in (1, 3):
            raise ValueError(f"num_crops must be 1 or 3, got {num_crops!r}.")
        return self._views(video, num_crops)

    def describe(self) -> str:
        """One paragraph, in words, of what this preset does to a video."""
        if len(self.resize_size) == 1:
            resize = f"resized so that the short side is {self.resize_size[0]} px"
        else:
            resize = f"resized to {self.resize_size[0]}x{self.resize_size[1]} px (H x W)"
        return (
            f"Accepts (T, C, H, W) or (B, T, C, H, W) uint8 frames or float frames in [0, 1]. Frames are "
            f"{resize} with {self.interpolation} interpolation (no antialias), centre-cropped to "
            f"{self.crop_size[0]}x{self.crop_size[1]} px, scaled to [0, 1] and normalised with mean={list(self.mean)} "
            f"and std={list(self.std)}"
            + ("; the channels are then reversed to BGR order" if self.channel_order == "bgr" else "")
            + "; the output is float32 (C, T, H, W) or (B, C, T, H, W)."
        )

    def __repr__(self) -> str:
        fields = [
            f"crop_size={list(self.crop_size)}",
            f"resize_size={list(self.resize_size)}",
            f"mean={list(self.mean)}",
            f"std={list(self.std)}",
            f"interpolation={self.interpolation!r}",
        ]
        if not self.resize_uint8:
            fields.append("resize_uint8=False")
        if self.crop_rounding != "round":
            fields.append(f"crop_rounding={self.crop_rounding!r}")
        if self.channel_order != "rgb":
            fields.append(f"channel_order={self.channel_order!r}")
        return f"{type(self).__name__}(\n    " + ",\n    ".join(fields) + "\n)"
