"""videozoo.io on real files encoded here: frame counts, timestamps, seeking, resizing, rotation, errors."""

from __future__ import annotations

import pickle
import random

import pytest
import torch

from video_factory import frame_code, make_audio_only, make_video, truncate
from videozoo.errors import VideoDecodeError, VideozooError
from videozoo.video.io import VideoReader, probe, read_video

# (file name, codec, fps, frames, encoder options): several containers, codecs, GOP structures.
FORMATS = [
    ("h264_bframes.mp4", "libx264", 30, 90, {"g": "12", "bf": "3"}),
    ("h264_open_gop.mp4", "libx264", 30, 90, {"g": "10", "bf": "2", "x264-params": "open-gop=1"}),
    ("h264.mkv", "libx264", 25, 75, {"g": "7", "bf": "2"}),
    ("vp9.webm", "libvpx-vp9", 24, 48, {"g": "10"}),
    ("mpeg4.avi", "mpeg4", 15, 45, {"g": "9", "bf": "2"}),
    ("h264.ts", "libx264", 30, 60, {"g": "10"}),
    ("mjpeg.avi", "mjpeg", 10, 20, None),
]


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    out = {}
    for name, codec, fps, n, opts in FORMATS:
        out[name] = (make_video(root / name, codec=codec, fps=fps, num_frames=n, options=opts), fps, n)
    return out


@pytest.mark.parametrize("name", [f[0] for f in FORMATS])
def test_counts_timestamps_and_content(videos, name):
    path, fps, n = videos[name]
    with VideoReader(path) as reader:
        assert reader.num_frames == n
        ts = reader.timestamps
        assert ts.dtype == torch.float64 and ts[0] == 0
        assert torch.allclose(ts, torch.arange(n, dtype=torch.float64) / fps, atol=1.5e-3)
        assert reader.duration == pytest.approx(n / fps, abs=2e-3)
        info = reader.info
        assert (info.height, info.width, info.rotation) == (48, 64, 0)
        assert info.fps == pytest.approx(fps)
    video = read_video(path)
    assert video.frames.dtype == torch.uint8 and video.frames.shape == (n, 3, 48, 64)
    assert video.frames.is_contiguous()
    assert [frame_code(f) for f in video.frames] == list(range(n))
    assert torch.equal(video.indices, torch.arange(n))
    assert video.fps == pytest.approx(fps) and video.duration == pytest.approx(n / fps, abs=2e-3)


@pytest.mark.parametrize("name", [f[0] for f in FORMATS])
def test_random_access_matches_sequential_decoding(videos, name):
    path, _, n = videos[name]
    everything = read_video(path).frames
    rng = random.Random(name)
    with VideoReader(path) as reader:
        for _ in range(8):
            wanted = rng.sample(range(n), rng.randint(1, 10)) + [rng.randrange(n)]  # unsorted, one repeat
            got = reader.get_frames(wanted)
            assert torch.equal(got.frames, everything[wanted])
            assert got.indices.tolist() == wanted
            assert torch.equal(got.pts, reader.timestamps[wanted])


def test_only_the_needed_stretch_is_decoded(videos):
    """A wanted frame late in a file with short GOPs is reached by seeking, not by decoding from 0."""
    path, _, n = videos["h264_bframes.mp4"]
    with VideoReader(path) as reader:
        segments = reader._segments([1, 2, 80, 81])
        assert segments == [[1, 2], [80, 81]]
        calls = []
        original = reader._convert
        reader._convert = lambda frame: calls.append(frame.pts) or original(frame)
        reader.get_frames([80, 81])
        assert len(calls) == 2  # only the wanted frames are converted to RGB


def test_span_and_negative_indices(videos):
    path, fps, n = videos["h264.mkv"]
    span = read_video(path, start=1.0, end=2.0)
    assert span.indices.tolist() == list(range(25, 50))
    assert [frame_code(f) for f in span.frames] == list(range(25, 50))
    assert span.pts[0] == pytest.approx(1.0)
    assert read_video(path, start=2.9).indices.tolist() == [73, 74]
    assert read_video(path, indices=[-1]).indices.tolist() == [n - 1]
    with pytest.raises(IndexError, match="out of range; the video has 75 frames"):
        read_video(path, indices=[75])
    with pytest.raises(ValueError, match="either indices or start/end"):
        read_video(path, start=0, indices=[0])


def test_frames_at_times_pick_the_nearest(videos):
    path, _, n = videos["h264_bframes.mp4"]  # 30 fps
    with VideoReader(path) as reader:
        got = reader.get_frames_at([0.0, 0.049, 0.051, 1.0, 99.0])
        assert got.indices.tolist() == [0, 1, 2, 30, n - 1]


def test_resize_on_decode(videos):
    path, _, n = videos["h264_bframes.mp4"]
    short = read_video(path, indices=[5, 6], size=24)
    assert short.frames.shape == (2, 3, 24, 32)
    exact = read_video(path, indices=[5], size=(30, 50))
    assert exact.frames.shape == (1, 3, 30, 50)
    assert frame_code(read_video(path, indices=[77], size=(96, 128)).frames[0]) == 77
    called = read_video(path, indices=[0], size=lambda h, w: (h // 2, w // 2))
    assert called.frames.shape == (1, 3, 24, 32)


def test_odd_size_and_pixel_formats(tmp_path):
    path = make_video(tmp_path / "odd.webm", codec="libvpx-vp9", size=(49, 65), num_frames=10, fps=25)
    video = read_video(path)
    assert video.frames.shape == (10, 3, 49, 65)
    assert [frame_code(f) for f in video.frames] == list(range(10))
    info = probe(path)
    assert (info.width, info.height, info.codec) == (65, 49, "vp9")


def test_variable_frame_rate(tmp_path):
    times_ms = [0, 33, 66, 166, 186, 236, 269, 469, 502, 535, 700, 733]
    for name in ("vfr.mp4", "vfr.mkv"):
        path = make_video(tmp_path / name, frame_times_ms=times_ms)
        with VideoReader(path) as reader:
            assert reader.num_frames == len(times_ms)
            assert torch.allclose(reader.timestamps, torch.tensor(times_ms, dtype=torch.float64) / 1000, atol=1e-3)
            # 0.3 s lies between frames at 0.269 and 0.469: the nearest is 0.269 (index 6); 0.4 s
            # is nearer 0.469; 0.65 s is nearer 0.700 than 0.535.
            got = reader.get_frames_at([0.3, 0.4, 0.65])
            assert got.indices.tolist() == [6, 7, 10]
            assert [frame_code(f) for f in got.frames] == [6, 7, 10]


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_rotation_metadata_is_applied(tmp_path, rotation):
    path = make_video(tmp_path / f"rot{rotation}.mp4", rotation=rotation, num_frames=5, marker=True)
    info = probe(path)
    assert info.rotation == rotation % 360
    video = read_video(path)
    h, w = video.frames.shape[-2:]
    assert (h, w) == ((48, 64) if rotation == 180 else (64, 48))
    assert (info.height, info.width) == (h, w)
    red = (video.frames[0, 0].float() > 150) & (video.frames[0, 1].float() < 100)
    corner = {  # where the coded top-left corner is shown after rotating counter-clockwise
        90: red[-4:, :4], -90: red[:4, -4:], 180: red[-4:, -4:]
    }[rotation]
    assert corner.all()
    assert not red[:4, :4].any()  # nothing is left where the coded frame had it
    resized = read_video(path, indices=[0], size=32)
    assert resized.frames.shape[-2:] == ((32, 42) if rotation == 180 else (42, 32))


def test_missing_file(tmp_path):
    path = tmp_path / "nope.mp4"
    with pytest.raises(VideoDecodeError, match="nope.mp4: no such file") as info:
        read_video(path)
    assert info.value.path == str(path)
    assert isinstance(info.value, VideozooError) and isinstance(info.value, ValueError)


def test_directory_empty_and_garbage(tmp_path):
    with pytest.raises(VideoDecodeError, match="is a directory"):
        read_video(tmp_path)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(VideoDecodeError, match="empty.mp4: the file is empty"):
        read_video(empty)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(bytes(range(256)) * 40)
    with pytest.raises(VideoDecodeError, match="junk.mp4: cannot be opened as a video"):
        probe(junk)


def test_audio_only(tmp_path):
    path = make_audio_only(tmp_path / "speech.m4a")
    with pytest.raises(VideoDecodeError, match=r"speech.m4a: has no video stream \(it holds audio\)"):
        read_video(path)


def test_truncated_files(tmp_path, videos):
    mkv, _, n = videos["h264.mkv"]
    cut = truncate(mkv, tmp_path / "cut.mkv", 0.4)
    with pytest.raises(VideoDecodeError, match="cut.mkv: the file is truncated"):
        read_video(cut)
    partial = read_video(cut, strict=False)
    assert 0 < len(partial.indices) < n
    # B-frames cut off before their reference is: the frames present are found by their timestamps.
    assert [frame_code(f) for f in partial.frames] == [round(t * 25) for t in partial.pts.tolist()]
    # An MP4 whose index (moov) is at the end cannot be opened at all once cut.
    mp4, _, _ = videos["h264_bframes.mp4"]
    with pytest.raises(VideoDecodeError, match="cut.mp4: cannot be opened as a video"):
        read_video(truncate(mp4, tmp_path / "cut.mp4", 0.7))


@pytest.mark.parametrize("name", ["talk.mkv", "talk.mp4"])
def test_audio_longer_than_video_is_not_truncation(tmp_path, name):
    path = make_video(tmp_path / name, num_frames=30, fps=30, audio_seconds=4.0)
    video = read_video(path)
    assert len(video.indices) == 30 and video.duration == pytest.approx(1.0, abs=1e-3)
    assert probe(path).duration == pytest.approx(1.0, abs=0.05)


def test_error_survives_pickling(tmp_path):
    error = VideoDecodeError("x.mp4: broken", path="x.mp4")
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is VideoDecodeError and str(again) == "x.mp4: broken" and again.path == "x.mp4"


def test_unknown_backend(videos):
    path, _, _ = videos["h264.mkv"]
    with pytest.raises(ValueError, match="backend must be"):
        VideoReader(path, backend="opencv")


def test_torchcodec_backend(videos):
    from videozoo.video.io import _torchcodec_usable

    path, _, n = videos["h264_bframes.mp4"]
    if not _torchcodec_usable():
        with pytest.raises(ValueError, match="backend='torchcodec' needs the torchcodec package"):
            VideoReader(path, backend="torchcodec")
        return
    wanted = [0, 45, 3, 89, 45]
    with VideoReader(path, backend="torchcodec") as reader:
        got = reader.get_frames(wanted)
    assert [frame_code(f) for f in got.frames] == wanted
    assert (got.frames.float() - read_video(path, indices=wanted).frames.float()).abs().mean() < 2
