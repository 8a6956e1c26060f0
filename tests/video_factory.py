"""Real test videos encoded with PyAV, and a tiny real model registered for the duration of a test.

Every frame carries its own index as an 8-bit code in its top half (8 vertical blocks, white = 1,
bit 0 on the left) and a moving bar in its bottom half, so a test can read back which source frame a
decoded frame is, after lossy compression, resizing or cropping of the bottom half.
"""

from __future__ import annotations

import fractions
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import av
import numpy as np
import torch
from torch import Tensor

PIX_FMT = {"mjpeg": "yuvj420p"}


def frame_image(index: int, height: int, width: int) -> np.ndarray:
    """RGB ``(H, W, 3)`` uint8 image of frame ``index``: bits on top, a moving bar below."""
    img = np.zeros((height, width, 3), dtype=np.uint8)
    block = width // 8
    for bit in range(8):
        if (index >> bit) & 1:
            img[: height // 2, bit * block : (bit + 1) * block] = 255
    x = (index * 3) % max(width - 4, 1)
    img[height // 2 + 2 :, x : x + 4] = (0, 200, 255)
    return img


def make_video(
    path: str | Path,
    *,
    num_frames: int = 60,
    fps: float = 30,
    size: tuple[int, int] = (48, 64),
    codec: str = "libx264",
    frame_times_ms: Sequence[int] | None = None,
    rotation: int | None = None,
    options: dict[str, str] | None = None,
    marker: bool = False,
    audio_seconds: float | None = None,
) -> Path:
    """Encode a video; ``frame_times_ms`` gives variable-frame-rate timestamps (ms) instead of ``fps``.

    ``marker`` paints a red square in the top-left corner (for rotation tests); ``audio_seconds``
    adds a silent AAC track of that length.
    """
    path = Path(path)
    height, width = size
    container = av.open(str(path), "w")
    rate = fractions.Fraction(fps).limit_denominator(1001)
    stream = container.add_stream(codec, rate=rate)
    stream.width, stream.height = width, height
    stream.pix_fmt = PIX_FMT.get(codec, "yuv420p")
    if options:
        stream.options = dict(options)
    time_base = None
    if frame_times_ms is not None:
        time_base = fractions.Fraction(1, 1000)
        stream.codec_context.time_base = time_base
        stream.time_base = time_base
        num_frames = len(frame_times_ms)
    if rotation is not None:
        stream.set_display_rotation(rotation)
    audio = container.add_stream("aac", rate=16000) if audio_seconds else None
    for i in range(num_frames):
        img = frame_image(i, height, width)
        if marker:
            img[: height // 4, : width // 4] = (255, 0, 0)
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        if time_base is not None:
            frame.pts = int(frame_times_ms[i])
            frame.time_base = time_base
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    if audio is not None:
        for i in range(int(audio_seconds * 16000 / 1024)):
            chunk = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            chunk.sample_rate, chunk.pts = 16000, i * 1024
            for packet in audio.encode(chunk):
                container.mux(packet)
        for packet in audio.encode():
            container.mux(packet)
    container.close()
    return path


def make_audio_only(path: str | Path, seconds: float = 1.0) -> Path:
    path = Path(path)
    container = av.open(str(path), "w")
    stream = container.add_stream("aac", rate=16000)
    samples = 1024
    for i in range(int(seconds * 16000 / samples)):
        t = (np.arange(samples) + i * samples) / 16000
        frame = av.AudioFrame.from_ndarray(
            (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None], format="fltp", layout="mono"
        )
        frame.sample_rate = 16000
        frame.pts = i * samples
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return path


def truncate(src: str | Path, dst: str | Path, fraction: float) -> Path:
    data = Path(src).read_bytes()
    Path(dst).write_bytes(data[: int(len(data) * fraction)])
    return Path(dst)


def frame_code(frame: Tensor) -> int:
    """Read back the index painted by :func:`frame_image` from a ``(3, H, W)`` uint8 frame."""
    height, width = frame.shape[-2:]
    block = width // 8
    top = frame[:, : height // 2].float().mean(0)
    value = 0
    for bit in range(8):
        region = top[height // 8 : height // 2 - height // 8, bit * block + block // 4 : (bit + 1) * block - block // 4]
        if region.mean() > 127:
            value |= 1 << bit
    return value


# ----------------------------------------------------------------------------------------------------
# A tiny real model: VideoResNet (MC3 layout, one block per stage) on 4 frames of 32x32 crops.

TINY_NAME = "tiny_mc3_test"
TINY_CATEGORIES = ["bars", "blocks", "noise", "static", "flash"]
TINY_URL = "http://127.0.0.1:9/tiny_mc3_test.pth"  # never fetched: the file is put in the cache; a stray fetch hits a closed local port
# A multi-label member (as Charades' weights): sigmoid probabilities, views combined by max.
TINY_MULTI_URL = "http://127.0.0.1:9/tiny_mc3_multi.pth"


def _tiny_classes():
    from videozoo.zoo import Weights, WeightsEnum, build_model
    from videozoo.models.resnet import VideoResNet
    from videozoo.video.transforms import VideoClassification

    arch = partial(VideoResNet, ("3d", "2d", "2d", "2d"), layers=(1, 1, 1, 1))
    meta = {
        "categories": list(TINY_CATEGORIES),
        "num_frames": 4,
        "sampling_rate": 2,
        "frame_rate": 15.0,
        "num_clips": 3,
        "num_crops": 3,
        "min_size": (1, 1),
        "min_temporal_size": 1,
        "num_params": 0,
        "_metrics": {"Kinetics-400": {"acc@1": 12.5, "acc@5": 50.0}},
        "_ops": 0.25,
        "recipe": "tests/video_factory.py",
    }

    class TinyMC3_Weights(WeightsEnum):
        TEST_V1 = Weights(
            url=TINY_URL,
            transforms=partial(VideoClassification, crop_size=32, resize_size=36),
            meta=meta,
        )
        MULTI_V1 = Weights(
            url=TINY_MULTI_URL,
            transforms=partial(VideoClassification, crop_size=32, resize_size=36),
            meta={**meta, "multi_label": True, "_metrics": {"Charades": {"mAP": 25.0}}},
        )
        DEFAULT = TEST_V1

    def tiny_mc3_test(*, weights=None, progress=True, **kwargs):
        return build_model(arch, TinyMC3_Weights, weights, progress, kwargs)

    return arch, TinyMC3_Weights, tiny_mc3_test


_TINY = None


def tiny_parts():
    global _TINY
    if _TINY is None:
        _TINY = _tiny_classes()
    return _TINY


def install_tiny_checkpoints(home: Path, seed: int = 0) -> None:
    """Put the tiny model's checkpoints (TEST_V1 and MULTI_V1) in the cache of ``VIDEOZOO_HOME=home``."""
    arch, _, _ = tiny_parts()
    for offset, url in enumerate((TINY_URL, TINY_MULTI_URL)):
        checkpoint = home / "checkpoints" / url.rsplit("/", 1)[1]
        if not checkpoint.exists():
            checkpoint.parent.mkdir(parents=True, exist_ok=True)
            torch.manual_seed(seed + offset)
            model = arch(num_classes=len(TINY_CATEGORIES))
            if url == TINY_MULTI_URL:  # a bias that puts several classes above 0.5 and others below
                with torch.no_grad():
                    model.fc.bias.copy_(torch.tensor([4.0, 3.0, -4.0, -3.0, 0.0]))
            torch.save(model.state_dict(), checkpoint)
