"""The evaluation recipe of a checkpoint, typed: which clips, how many views.

:attr:`videozoo.WeightsEnum.recipe` reads it from a member's ``meta`` (``num_frames``,
``sampling_rate``, ``frame_rate``, ``num_clips``, ``num_crops``, ``sampling``); the video side
(:mod:`videozoo.video.sampling`, :mod:`videozoo.video.windows`) turns it into frame indices.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

__all__ = ["ClipRecipe", "Sampling"]

Sampling = Literal["clips", "segments"]


@dataclass(frozen=True)
class ClipRecipe:
    """The temporal half of an evaluation recipe, plus how many crops each clip gets."""

    num_frames: int
    sampling_rate: int = 1
    frame_rate: float | None = None  # fps the recipe counts ``sampling_rate`` at; None: the video's own
    num_clips: int = 1
    num_crops: int = 1
    sampling: Sampling = "clips"  # "segments": one clip spread over the whole video (sampling_rate unused)

    def __post_init__(self) -> None:
        for name in ("num_frames", "sampling_rate", "num_clips"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        if self.num_crops not in (1, 3):
            raise ValueError(f"num_crops must be 1 or 3, got {self.num_crops!r}.")
        if self.frame_rate is not None and not self.frame_rate > 0:
            raise ValueError(f"frame_rate must be positive or None, got {self.frame_rate!r}.")
        if self.sampling not in ("clips", "segments"):
            raise ValueError(f"sampling must be 'clips' or 'segments', got {self.sampling!r}.")
        if self.sampling == "segments" and self.num_clips != 1:
            raise ValueError(
                f"A segment recipe takes one temporal view spread over the whole video, so num_clips must be 1, "
                f"got {self.num_clips}; vary the spatial crops instead (num_crops 1 or 3)."
            )

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> ClipRecipe:
        """Read ``num_frames``, ``sampling_rate``, ``frame_rate``, ``num_clips``, ``num_crops``, ``sampling``."""
        if "num_frames" not in meta:
            raise ValueError("These weights' meta has no 'num_frames'; their clip recipe is unknown.")
        rate = meta.get("frame_rate")
        stride = meta.get("sampling_rate")
        return cls(
            num_frames=int(meta["num_frames"]),
            sampling_rate=1 if stride is None else int(stride),
            frame_rate=None if rate is None else float(rate),
            num_clips=int(meta.get("num_clips", 1)),
            num_crops=int(meta.get("num_crops", 1)),
            sampling=meta.get("sampling", "clips"),
        )

    def with_views(self, clips: int | None = None, crops: int | None = None) -> ClipRecipe:
        """The same clips with another number of temporal clips and/or spatial crops."""
        return replace(
            self,
            num_clips=self.num_clips if clips is None else clips,
            num_crops=self.num_crops if crops is None else crops,
        )

    @property
    def num_views(self) -> int:
        return self.num_clips * self.num_crops

    def frame_interval(self, video_fps: float) -> float:
        """Seconds between two frames of a clip."""
        return self.sampling_rate / (self.frame_rate or video_fps)

    def clip_duration(self, video_fps: float) -> float:
        """Seconds a clip spans."""
        return self.num_frames * self.frame_interval(video_fps)

    def describe(self) -> str:
        rate = f"{self.frame_rate:g} fps" if self.frame_rate else "native fps"
        if self.sampling == "segments":
            return f"{self.num_frames} frames spread over the whole video at {rate}, 1 clip x {self.num_crops} crop(s)"
        return (
            f"{self.num_frames} frames every {self.sampling_rate} at {rate}, "
            f"{self.num_clips} clip(s) x {self.num_crops} crop(s)"
        )
