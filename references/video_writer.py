"""The H.264 writer the references' synthetic data sets share (each script puts this folder on its path).

    from video_writer import write_video
"""

from __future__ import annotations

import fractions
from pathlib import Path

import av
import numpy as np


def write_video(path: Path, frames: np.ndarray, fps: float) -> None:
    """Write ``(frames, height, width, 3)`` uint8 RGB frames to ``path`` as H.264 (yuv420p, CRF 18) at ``fps``.

    Args:
        fps: frames per second; a fractional rate is kept to a denominator of at most 1001 (29.97 fps).
    """
    container = av.open(str(path), "w")
    try:
        stream = container.add_stream("libx264", rate=fractions.Fraction(fps).limit_denominator(1001))
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "18"}
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    finally:
        container.close()
