"""Decode video files into ``uint8`` ``(T, C, H, W)`` tensors.

Time is measured in seconds from the first frame: the first frame in presentation order has
``pts == 0`` whatever the container's start time. A frame's *index* is its position in presentation
order. Both come from a demux pass over the file's packets (no decoding, a few ms for a 10 s clip),
which is exact for variable-frame-rate files and lets :meth:`VideoReader.get_frames` seek to the
keyframe before the first frame it needs and decode only the stretches that contain wanted frames;
frames that are not wanted are decoded (codecs need them) but never converted to RGB.

``size`` resizes while converting to RGB (FFmpeg's swscale, bilinear, on 8-bit data), which is
much cheaper than converting full-resolution frames and resizing floats later. Rotation metadata
(a display matrix, e.g. phone videos) is applied, so frames come out as a player shows them and
``size`` refers to the displayed orientation.

The backend is PyAV (its wheel carries FFmpeg). ``backend="torchcodec"`` decodes the frames with
:mod:`torchcodec` instead, when it is installed and its FFmpeg libraries load (the frame table still
comes from PyAV's demux pass). ``"auto"`` is PyAV: resizing while converting is what makes the
classification pipeline fast, and torchcodec has not been shown faster for full-size reads here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal, Union

import av
import numpy as np
import torch
from torch import Tensor

from videozoo.errors import VideoDecodeError

__all__ = ["VideoInfo", "Video", "VideoReader", "probe", "read_video", "Size", "Backend"]

#: ``None`` keeps the decoded size, an int sets the short side (aspect ratio kept, the long side
#: rounded down as in :class:`videozoo.VideoClassification`), ``(H, W)`` is exact, and a callable
#: gets the displayed ``(height, width)`` and returns ``(H, W)``.
Size = Union[int, tuple[int, int], Callable[[int, int], tuple[int, int]], None]
Backend = Literal["auto", "pyav", "torchcodec"]

# A file is called truncated when its packets end this much before the duration its header declares.
_TRUNCATION_SLACK_S = 1.0
_TRUNCATION_SLACK_FRACTION = 0.1


@dataclass(frozen=True)
class VideoInfo:
    """What a video file declares about its first video stream, as displayed (rotation applied)."""

    path: str
    width: int
    height: int
    fps: float  # average frame rate; for variable frame rate, frames per second on average
    duration: float  # seconds; from the header, or from the timestamps when the header has none
    num_frames: int | None  # from the header; None when the container does not store it
    rotation: int  # degrees counter-clockwise applied to decoded frames (0, 90, 180 or 270)
    codec: str


@dataclass
class Video:
    """Decoded frames with the timing they were taken at."""

    frames: Tensor  # uint8 (T, 3, H, W)
    pts: Tensor  # float64 (T,): presentation time of each frame, seconds from the first frame
    indices: Tensor  # int64 (T,): each frame's index in presentation order
    fps: float  # the stream's average frame rate
    duration: float  # seconds from the first frame to the end of the last one
    path: str | None = None


def _error(path: str, what: str) -> VideoDecodeError:
    return VideoDecodeError(f"{path}: {what}", path=path)


_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
#: Still-image formats FFmpeg would open as a one-frame "video" (animated GIFs are videos and stay allowed).
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".heic", ".avif")


def not_a_video(path: str) -> str | None:
    """Why ``path`` cannot be a video file, seen without opening it (a URL, missing, an image, a folder), or ``None``."""
    if _URL.match(path):
        return "is a URL; videozoo reads local files. Download the video first (e.g. curl -O URL)."
    if not os.path.exists(path):
        return "no such file. Check the path (relative paths are taken from the current directory)."
    if path.lower().endswith(_IMAGE_SUFFIXES):
        return "is an image, not a video; the models classify clips of frames over time. Give a video file."
    if os.path.isdir(path):
        return "is a directory, not a video file."
    return None


def _open(path: str) -> av.container.InputContainer:
    reason = not_a_video(path)
    if reason is not None:
        raise _error(path, reason)
    try:
        return av.open(path, metadata_errors="ignore")
    except av.error.FFmpegError as e:
        if os.path.getsize(path) == 0:
            raise _error(path, "the file is empty (0 bytes); an interrupted download or copy?") from None
        raise _error(
            path,
            f"cannot be opened as a video ({_reason(e)}). The file is corrupt, truncated (an MP4 whose "
            f"index is at the end loses it when cut short) or not a video; re-download or re-encode it.",
        ) from None
    except PermissionError:
        raise _error(path, "permission denied; check the file's read permissions.") from None


def _reason(e: BaseException) -> str:
    if isinstance(e, av.error.FFmpegError):
        return e.strerror or type(e).__name__
    return str(e) or type(e).__name__


def _declared_duration(stream, container) -> float | None:
    """The video stream's duration as the header states it; None when only other streams say it."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    tag = stream.metadata.get("DURATION") or stream.metadata.get("duration")  # Matroska per-track tag
    if tag:
        try:
            h, m, sec = tag.split(":")
            return int(h) * 3600 + int(m) * 60 + float(sec)
        except ValueError:
            pass
    if container.duration and len(container.streams) == 1:  # else it may be the audio's duration
        return container.duration / av.time_base
    return None


def _video_stream(container: av.container.InputContainer, path: str) -> av.video.stream.VideoStream:
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["no streams at all"]
        raise _error(path, f"has no video stream (it holds {', '.join(kinds)}); videozoo needs a video track.")
    return container.streams.video[0]


def _fps(stream: av.video.stream.VideoStream) -> float | None:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and rate > 0:
            return float(rate)
    return None


def _rotation(frame: av.VideoFrame) -> int:
    """Counter-clockwise degrees to apply for display, snapped to a multiple of 90."""
    try:
        angle = frame.rotation
    except Exception:  # older PyAV: no display-matrix support
        return 0
    return int(round((angle or 0) / 90.0)) % 4 * 90


def _target_size(height: int, width: int, size: Size) -> tuple[int, int]:
    if size is None:
        return height, width
    if callable(size):
        size = tuple(size(height, width))
    if isinstance(size, int):
        if size <= 0:
            raise ValueError(f"size must be positive, got {size}.")
        short, long = (height, width) if height <= width else (width, height)
        new_long = int(size * long / short)
        return (size, new_long) if height <= width else (new_long, size)
    h, w = size
    if h <= 0 or w <= 0:
        raise ValueError(f"size must be positive, got {size!r}.")
    return int(h), int(w)


class _Index:
    """Presentation-order table of a stream's frames, built from its packets."""

    def __init__(self, pts: np.ndarray, dts: np.ndarray, key: np.ndarray, time_base: Fraction, end: int) -> None:
        order = np.argsort(pts, kind="stable")
        pts, dts, key = pts[order], dts[order], key[order]
        keep = np.concatenate([[True], pts[1:] != pts[:-1]])  # duplicate timestamps: broken muxers
        self.pts, self.dts, self.key = pts[keep], dts[keep], key[keep]
        self.time_base = time_base
        self.seconds = (self.pts - self.pts[0]).astype(np.float64) * float(time_base)
        self.end_seconds = float((end - self.pts[0]) * time_base)  # end of the last frame
        self.lookup = {int(p): i for i, p in enumerate(self.pts)}
        if not self.key.any():
            self.key[0] = True  # no flags: treat the start as the only entry point
        self.key_before = np.maximum.accumulate(np.where(self.key, np.arange(len(self.key)), -1))

    def __len__(self) -> int:
        return len(self.pts)


class VideoReader:
    """An open video file: its info, its frame timestamps, and frames by index, time or span.

    Use as a context manager (or call :meth:`close`). Not thread-safe; open one per worker.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, backend: Backend = "auto", size: Size = None, strict: bool = True
    ) -> None:
        self.path = os.fspath(path)
        self.size = size
        self.strict = strict
        self._container = _open(self.path)
        try:
            self._stream = _video_stream(self._container, self.path)
            self._stream.thread_type = "AUTO"
            first = self._first_frame()
        except BaseException:
            self._container.close()
            raise
        self._rotation = _rotation(first)
        self._coded_hw = (first.height, first.width)
        self._index: _Index | None = None
        self._sequential = False  # True when packets carry no timestamps: decode from the start, count
        self._can_seek = True
        self._reformatter = av.video.reformatter.VideoReformatter()
        self._backend = _pick_backend(backend, size)
        self._tc_decoder = None
        self.frames_decoded = 0  # frames the decoder produced in the last iter_frames()

    # -- metadata ------------------------------------------------------------------------------------

    def _first_frame(self) -> av.VideoFrame:
        try:
            for frame in self._container.decode(self._stream):
                return frame
        except av.error.FFmpegError as e:
            raise _error(self.path, f"the video stream cannot be decoded ({_reason(e)}); the file is corrupt.") from None
        raise _error(self.path, "the video stream holds no decodable frame; the file is corrupt or truncated.")

    @property
    def info(self) -> VideoInfo:
        s = self._stream
        h, w = self._coded_hw
        if self._rotation in (90, 270):
            h, w = w, h
        duration = _declared_duration(s, self._container)
        fps = _fps(s)
        if duration is None or fps is None:
            index = self._get_index()
            duration = index.end_seconds if duration is None else duration
            fps = fps or (len(index) / index.end_seconds if index.end_seconds > 0 else 1.0)
        return VideoInfo(
            path=self.path,
            width=w,
            height=h,
            fps=fps,
            duration=duration,
            num_frames=s.frames or None,
            rotation=self._rotation,
            codec=s.codec_context.name,
        )

    @property
    def num_frames(self) -> int:
        """Exact number of frames (from the demux pass)."""
        return len(self._get_index())

    @property
    def timestamps(self) -> Tensor:
        """float64 ``(N,)``: every frame's presentation time, seconds from the first frame."""
        return torch.from_numpy(self._get_index().seconds.copy())

    @property
    def duration(self) -> float:
        """Seconds from the first frame to the end of the last one (from the demux pass)."""
        return self._get_index().end_seconds

    @property
    def fps(self) -> float:
        return self.info.fps

    def _get_index(self) -> _Index:
        if self._index is None:
            self._index = self._scan()
        return self._index

    def _scan(self) -> _Index:
        """Demux every packet of the stream (no decoding) into the frame table; check for truncation."""
        container = _open(self.path)
        try:
            stream = container.streams.video[0]
            pts, dts, key, ends = [], [], [], []
            try:
                for packet in container.demux(stream):
                    if packet.size == 0 or packet.is_discard:
                        continue
                    if packet.pts is None:
                        self._sequential = True
                        break
                    pts.append(packet.pts)
                    dts.append(packet.dts if packet.dts is not None else packet.pts)
                    key.append(packet.is_keyframe)
                    ends.append(packet.pts + (packet.duration or 0))
            except av.error.FFmpegError as e:
                raise _error(self.path, f"reading the video failed ({_reason(e)}); the file is corrupt or truncated.") from None
            if self._sequential or not pts:
                return self._scan_by_decoding()
            tb = stream.time_base
            p = np.asarray(pts, dtype=np.int64)
            end = max(ends)
            if end <= p.max():  # packets without durations: one average frame period
                rate = _fps(stream)
                step = int(round(1 / (rate * tb))) if rate else 0
                if len(p) > 1 and not step:
                    step = int(np.median(np.diff(np.sort(p))))
                end = int(p.max()) + max(step, 1)
            index = _Index(p, np.asarray(dts, dtype=np.int64), np.asarray(key, dtype=bool), tb, end)
            if self.strict:
                self._check_truncation(stream, container, index)
            return index
        finally:
            container.close()

    def _scan_by_decoding(self) -> _Index:
        """Fallback for streams whose packets have no timestamps: decode everything once, count."""
        self._sequential = True
        container = _open(self.path)
        try:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            rate = _fps(stream) or 25.0
            n = 0
            try:
                for _ in container.decode(stream):
                    n += 1
            except av.error.FFmpegError as e:
                raise _error(self.path, f"decoding failed after {n} frames ({_reason(e)}); the file is corrupt or truncated.") from None
            if n == 0:
                raise _error(self.path, "the video stream holds no decodable frame.")
            tb = Fraction(1, 1_000_000)
            p = np.round(np.arange(n) / rate * 1e6).astype(np.int64)
            end = int(round(n / rate * 1e6))
            return _Index(p, p.copy(), np.r_[True, np.zeros(n - 1, dtype=bool)], tb, end)
        finally:
            container.close()

    def _check_truncation(self, stream, container, index: _Index) -> None:
        declared = _declared_duration(stream, container)
        found = index.end_seconds
        if declared and declared - found > max(_TRUNCATION_SLACK_S, _TRUNCATION_SLACK_FRACTION * declared):
            raise _error(
                self.path,
                f"the file is truncated: its video ends at {found:.2f} s but the header declares "
                f"{declared:.2f} s (an interrupted download or copy?). Download or copy it again "
                f"(in Python, read_video and VideoReader take strict=False to read the frames that are there).",
            )
        if stream.frames and stream.frames > len(index) + max(2, len(index) // 10):
            raise _error(
                self.path,
                f"the file is truncated: {len(index)} of the {stream.frames} frames its header lists are "
                f"present (an interrupted download or copy?). Download or copy it again (in Python, read_video "
                f"and VideoReader take strict=False to read the frames that are there).",
            )

    # -- frames --------------------------------------------------------------------------------------

    def get_frames(self, indices: Sequence[int] | Tensor | np.ndarray) -> Video:
        """Frames at these indices (presentation order), in the order given; repeats are allowed."""
        index = self._get_index()
        n = len(index)
        idx = torch.as_tensor(np.asarray(indices), dtype=torch.int64).reshape(-1)
        idx = torch.where(idx < 0, idx + n, idx)
        if idx.numel() and (idx.min() < 0 or idx.max() >= n):
            bad = idx[(idx < 0) | (idx >= n)][0].item()
            raise IndexError(f"{self.path}: frame index {bad} is out of range; the video has {n} frames.")
        unique, inverse = torch.unique(idx, sorted=True, return_inverse=True)
        h, w = self._output_size()
        if unique.numel() == 0:
            frames = torch.empty((0, 3, h, w), dtype=torch.uint8)
        else:
            if self._backend == "torchcodec" and not self._sequential:
                decoded = self._decode_torchcodec(unique.tolist())
            else:
                decoded = self._decode_pyav(unique.tolist())
            frames = decoded.index_select(0, inverse)
        pts = torch.from_numpy(index.seconds[idx.numpy()].copy()) if idx.numel() else torch.empty(0, dtype=torch.float64)
        return Video(frames=frames, pts=pts, indices=idx, fps=self.info.fps, duration=index.end_seconds, path=self.path)

    def get_frames_at(self, times: Sequence[float] | Tensor) -> Video:
        """The frame shown nearest to each time (seconds from the first frame); past the end: the last."""
        from videozoo.video.sampling import nearest_frames

        t = torch.as_tensor(times, dtype=torch.float64).reshape(-1)
        return self.get_frames(nearest_frames(self.timestamps, t))

    def read(self, start: float | None = None, end: float | None = None) -> Video:
        """Every frame whose presentation time is in ``[start, end)`` seconds (default: all)."""
        seconds = self._get_index().seconds
        lo = 0.0 if start is None else float(start)
        hi = np.inf if end is None else float(end)
        if hi < lo:
            raise ValueError(f"end ({end}) is before start ({start}).")
        (idx,) = np.nonzero((seconds >= lo - 1e-9) & (seconds < hi - 1e-9))
        return self.get_frames(idx)

    def iter_frames(self, indices: Sequence[int] | Tensor | np.ndarray | None = None) -> Iterator[tuple[int, Tensor]]:
        """Stream ``(index, frame)`` pairs, decoding the file once from its start, in presentation order.

        Args:
            indices: the frames to yield (any order, repeats ignored; they come out sorted); ``None``
                yields every frame. Other frames are decoded (the codec needs them) but not converted.

        Each frame is uint8 ``(3, H, W)`` (``size`` and rotation applied, as :meth:`get_frames`), and only
        one is held at a time, so memory does not grow with the video's length. Decoding stops after the
        last wanted frame. :attr:`frames_decoded` counts the frames the decoder produced. Always PyAV.
        """
        index = self._get_index()
        n = len(index)
        if indices is None:
            wanted = set(range(n))
        else:
            wanted = {int(i) for i in np.asarray(indices).reshape(-1)}
            bad = [i for i in wanted if not 0 <= i < n]
            if bad:
                raise IndexError(f"{self.path}: frame index {min(bad)} is out of range; the video has {n} frames.")
        self.frames_decoded = 0
        if not wanted:
            return
        last = max(wanted)
        self._container.close()
        self._container = _open(self.path)
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        seen: set[int] = set()
        for count, frame in enumerate(self._frames()):
            self.frames_decoded += 1
            i = count if self._sequential else (index.lookup.get(frame.pts) if frame.pts is not None else None)
            if i is None or i in seen:
                continue  # a frame the table does not list (discarded leading frame, odd muxer)
            if i in wanted:
                seen.add(i)
                yield i, self._finish([self._convert(frame)])[0]
            if i >= last:
                break
        missing = sorted(wanted - seen)
        if missing:
            raise _error(
                self.path,
                f"{len(missing)} frame(s) could not be decoded, the first at {index.seconds[missing[0]]:.3f} s "
                f"(index {missing[0]}); the file is corrupt or truncated. Re-download it or re-encode it with ffmpeg.",
            )

    # -- decoding ------------------------------------------------------------------------------------

    def _output_size(self) -> tuple[int, int]:
        h, w = self._coded_hw
        if self._rotation in (90, 270):
            h, w = w, h
        return _target_size(h, w, self.size)

    def _convert(self, frame: av.VideoFrame) -> np.ndarray:
        h, w = self._output_size()
        if self._rotation in (90, 270):
            h, w = w, h  # resize in coded orientation, rotate afterwards
        out = self._reformatter.reformat(frame, width=w, height=h, format="rgb24", interpolation="BILINEAR")
        return out.to_ndarray()

    def _finish(self, arrays: list[np.ndarray]) -> Tensor:
        frames = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
        if self._rotation:
            frames = torch.rot90(frames, k=self._rotation // 90, dims=(2, 3))
        return frames.contiguous()

    def _segments(self, wanted: list[int]) -> list[list[int]]:
        """Split sorted frame indices into runs that are each decoded from one seek."""
        index = self._get_index()
        segments: list[list[int]] = []
        for i in wanted:
            if segments and (index.key_before[i] <= segments[-1][-1] or not self._can_seek):
                segments[-1].append(i)
            else:
                segments.append([i])
        return segments

    def _decode_pyav(self, wanted: list[int]) -> Tensor:
        index = self._get_index()
        got: dict[int, np.ndarray] = {}
        if self._sequential:
            self._decode_from_start(wanted, got, by_count=True)
        else:
            for segment in self._segments(wanted):
                if not self._decode_segment(segment, got):
                    # The seek landed after the first wanted frame (inexact container index):
                    # decode this stretch from the start of the file, and stop seeking in it.
                    self._can_seek = False
                    self._decode_from_start(segment, got, by_count=False)
        missing = [i for i in wanted if i not in got]
        if missing:
            t = index.seconds[missing[0]]
            raise _error(
                self.path,
                f"{len(missing)} frame(s) could not be decoded, the first at {t:.3f} s (index {missing[0]}); "
                f"the file is corrupt or truncated. Re-download it or re-encode it with ffmpeg.",
            )
        return self._finish([got[i] for i in wanted])

    def _seek(self, key: int) -> None:
        index = self._get_index()
        # Seek by the keyframe's decode timestamp: it is <= its pts, so a backward seek cannot land
        # on a later keyframe whatever timestamp the container's index is kept in.
        self._container.seek(int(index.dts[key]), backward=True, any_frame=False, stream=self._stream)

    def _frames(self):
        try:
            yield from self._container.decode(self._stream)
        except av.error.FFmpegError as e:
            raise _error(self.path, f"decoding failed ({_reason(e)}); the file is corrupt or truncated.") from None

    def _decode_segment(self, segment: list[int], got: dict[int, np.ndarray]) -> bool:
        """Seek and decode ``segment``; False if the seek overshot its first frame."""
        index = self._get_index()
        try:
            self._seek(int(index.key_before[segment[0]]))
        except av.error.FFmpegError:
            return False
        wanted, last = set(segment), segment[-1]
        first = True
        for frame in self._frames():
            i = index.lookup.get(frame.pts) if frame.pts is not None else None
            if i is None:
                continue  # a frame the table does not list (discarded leading frame, odd muxer)
            if first and i > segment[0]:
                return False
            first = False
            if i in wanted:
                got[i] = self._convert(frame)
            if i >= last:
                return True
        return not first

    def _decode_from_start(self, segment: list[int], got: dict[int, np.ndarray], by_count: bool) -> None:
        self._container.close()
        self._container = _open(self.path)
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        index = self._get_index()
        wanted = set(segment)
        last = segment[-1]
        for count, frame in enumerate(self._frames()):
            i = count if by_count else (index.lookup.get(frame.pts) if frame.pts is not None else None)
            if i is None:
                continue
            if i in wanted:
                got[i] = self._convert(frame)
            if i >= last:
                break

    def _decode_torchcodec(self, wanted: list[int]) -> Tensor:
        if self._tc_decoder is None:
            from torchcodec.decoders import VideoDecoder

            self._tc_decoder = VideoDecoder(self.path, seek_mode="exact", dimension_order="NCHW")
            if self._tc_decoder.metadata.num_frames != self.num_frames:
                # Its frame table disagrees with ours (edit lists, broken timestamps): stay with PyAV.
                self._backend = "pyav"
                return self._decode_pyav(wanted)
        try:
            frames = self._tc_decoder.get_frames_at(indices=wanted).data
        except Exception as e:
            raise _error(self.path, f"decoding failed ({_reason(e)}); the file is corrupt or truncated.") from None
        if self._rotation and tuple(frames.shape[-2:]) == self._coded_hw:
            frames = torch.rot90(frames, k=self._rotation // 90, dims=(2, 3))
        h, w = self._output_size()
        if tuple(frames.shape[-2:]) != (h, w):
            frames = torch.nn.functional.interpolate(frames, size=(h, w), mode="bilinear", antialias=True)
        return frames.contiguous()

    # -- lifetime ------------------------------------------------------------------------------------

    def close(self) -> None:
        self._container.close()
        self._tc_decoder = None

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        i = self.info
        return f"VideoReader({self.path!r}, {i.width}x{i.height}, {i.fps:.3g} fps, {i.duration:.2f} s, {i.codec})"


def _torchcodec_usable() -> bool:
    try:
        from torchcodec.decoders import VideoDecoder  # noqa: F401  (loads its FFmpeg libraries)
    except Exception:
        return False
    return True


def _pick_backend(backend: Backend, size: Size) -> str:
    """``"auto"`` is PyAV; see the module docstring."""
    if backend == "pyav":
        return "pyav"
    if backend == "torchcodec":
        if not _torchcodec_usable():
            raise ValueError(
                "backend='torchcodec' needs the torchcodec package and FFmpeg libraries it can load; "
                "install them (pip install torchcodec) or use backend='pyav'."
            )
        return "torchcodec"
    if backend != "auto":
        raise ValueError(f"backend must be 'auto', 'pyav' or 'torchcodec', got {backend!r}.")
    return "pyav"


def probe(path: str | os.PathLike[str]) -> VideoInfo:
    """The file's :class:`VideoInfo` (opens it and decodes one frame to learn its rotation)."""
    with VideoReader(path, backend="pyav") as reader:
        return reader.info


def read_video(
    path: str | os.PathLike[str],
    start: float | None = None,
    end: float | None = None,
    *,
    indices: Sequence[int] | Tensor | None = None,
    size: Size = None,
    backend: Backend = "auto",
    strict: bool = True,
) -> Video:
    """Decode a whole video, the frames in ``[start, end)`` seconds, or the frames at ``indices``.

    ``strict=False`` accepts a truncated file and returns the frames it still has.
    """
    if indices is not None and (start is not None or end is not None):
        raise ValueError("Pass either indices or start/end, not both.")
    with VideoReader(path, backend=backend, size=size, strict=strict) as reader:
        if indices is not None:
            return reader.get_frames(indices)
        return reader.read(start, end)
