"""Training-time augmentation; evaluation uses the weights' own preset (``weights.transforms()``).

What is here exists only for training. Everything else comes from videozoo: frames are decoded and
resized by :class:`videozoo.video.io.VideoReader`, and normalisation and the ``(T, C, H, W)`` uint8 to
``(C, T, H, W)`` float conversion are done by :class:`videozoo.video.transforms.VideoClassification` with
the preset's own mean and std.

Training view of a clip (PySlowFast's and torchvision's recipes in one rule):

1. random scale: the frames are resized on decode to the preset's evaluation resize multiplied by a
   random factor in ``scale_range`` (default 1.0-1.25: short side 182-227 for X3D-XS, whose preset
   resizes the short side to 182, as PySlowFast trains it; 128-160 x 171-214 for the torchvision
   VideoResNets, whose preset resizes to 128 x 171);
2. a random ``crop_size`` crop, the same for every frame of the clip;
3. a horizontal flip with probability ``hflip_prob``;
4. the preset's normalisation.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from videozoo.video.transforms import VideoClassification, resized_size


def eval_preset(preset: VideoClassification, crop_size: Sequence[int] | None, resize_size: Sequence[int] | None) -> VideoClassification:
    """The weights' preset, or a copy of it with another crop and resize size.

    With only ``crop_size`` given, the resize size is scaled by the same factor as the crop
    (e.g. torchvision's 128 x 171 resize for 112 crops becomes 37 x 49 for 32 crops).
    """
    if crop_size is None and resize_size is None:
        return preset
    if not isinstance(preset, VideoClassification):
        raise TypeError(
            f"--crop-size / --resize-size need a VideoClassification preset, these weights use {type(preset).__name__}."
        )
    crop = tuple(crop_size) if crop_size is not None else preset.crop_size
    if len(crop) == 1:
        crop = (crop[0], crop[0])
    if resize_size is None:
        factor = crop[0] / preset.crop_size[0]
        resize_size = tuple(max(1, round(r * factor)) for r in preset.resize_size)
    # Every other setting (mean, std, interpolation, rounding...) as the preset has it.
    return VideoClassification(**{**preset.settings(), "crop_size": crop, "resize_size": tuple(resize_size)})


class TrainAugment:
    """Random scale (a decode size), random crop, horizontal flip and the preset's normalisation."""

    def __init__(self, preset: VideoClassification, scale_range: Sequence[float] = (1.0, 1.25), hflip_prob: float = 0.5) -> None:
        lo, hi = float(scale_range[0]), float(scale_range[1])
        if not 0 < lo <= hi:
            raise ValueError(f"the scale range must satisfy 0 < min <= max, got {lo} {hi}.")
        if not 0.0 <= hflip_prob <= 1.0:
            raise ValueError(f"the flip probability must be in [0, 1], got {hflip_prob}.")
        self.resize_size = preset.resize_size
        self.crop_size = preset.crop_size
        self.scale_range = (lo, hi)
        self.hflip_prob = float(hflip_prob)
        # The preset itself, with nothing left to resize or crop (a clip smaller than the crop, only
        # possible with a scale factor below 1, is stretched to it): it normalises, channels first.
        self.finish = VideoClassification(
            crop_size=self.crop_size, resize_size=self.crop_size, mean=preset.mean, std=preset.std
        )

    def decode_size(self, generator: torch.Generator):
        """A size for :class:`videozoo.video.io.VideoReader`: the preset's resize times a random factor."""
        lo, hi = self.scale_range
        factor = lo + (hi - lo) * float(torch.rand((), generator=generator, dtype=torch.float64))
        resize = self.resize_size

        def size(height: int, width: int) -> tuple[int, int]:
            h, w = resized_size(height, width, resize)
            return max(1, round(h * factor)), max(1, round(w * factor))

        return size

    def __call__(self, frames: Tensor, generator: torch.Generator) -> Tensor:
        """uint8 ``(T, C, H, W)`` frames (already scaled) to a float ``(C, T, h, w)`` training clip."""
        crop_h, crop_w = self.crop_size
        height, width = frames.shape[-2:]
        top = int(torch.randint(max(height - crop_h, 0) + 1, (), generator=generator))
        left = int(torch.randint(max(width - crop_w, 0) + 1, (), generator=generator))
        frames = frames[..., top : top + crop_h, left : left + crop_w]
        if float(torch.rand((), generator=generator)) < self.hflip_prob:
            frames = frames.flip(-1)
        return self.finish(frames)


class MixupCutmix:
    """Batch-level mixup and/or cutmix on ``(B, C, T, H, W)`` clips; returns clips and soft targets.

    With both alphas > 0 each batch gets one of the two, chosen with probability 1/2. Cutmix cuts
    the same box out of every frame (the box spans the whole clip in time).
    """

    def __init__(self, num_classes: int, mixup_alpha: float = 0.0, cutmix_alpha: float = 0.0) -> None:
        self.num_classes = num_classes
        self.mixup_alpha = float(mixup_alpha)
        self.cutmix_alpha = float(cutmix_alpha)

    @property
    def enabled(self) -> bool:
        return self.mixup_alpha > 0 or self.cutmix_alpha > 0

    def __call__(self, clips: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """``labels``: class indices ``(B,)``, or multi-hot ``(B, num_classes)`` for multi-label runs."""
        if labels.dim() == 2:
            targets = labels.to(clips.dtype)
        else:
            targets = torch.nn.functional.one_hot(labels, self.num_classes).to(clips.dtype)
        if not self.enabled or clips.shape[0] < 2:
            return clips, targets
        use_cutmix = self.cutmix_alpha > 0 and (self.mixup_alpha <= 0 or bool(torch.rand(()) < 0.5))
        alpha = self.cutmix_alpha if use_cutmix else self.mixup_alpha
        lam = float(torch.distributions.Beta(alpha, alpha).sample())
        if use_cutmix:
            height, width = clips.shape[-2:]
            cut = (1.0 - lam) ** 0.5
            ch, cw = int(height * cut), int(width * cut)
            cy, cx = int(torch.randint(height, ())), int(torch.randint(width, ()))
            y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, height)
            x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, width)
            clips = clips.clone()
            clips[..., y0:y1, x0:x1] = clips.flip(0)[..., y0:y1, x0:x1]
            lam = 1.0 - (y1 - y0) * (x1 - x0) / (height * width)
        else:
            clips = clips * lam + clips.flip(0) * (1.0 - lam)
        return clips, targets * lam + targets.flip(0) * (1.0 - lam)
