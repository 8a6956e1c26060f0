"""Windows over whole videos (videozoo.windows), timelines (videozoo.timelines) and ``videozoo timeline``.

Real PyAV-encoded videos of several codecs and sizes (176x144 H.264, VP9, MPEG-4 with B-frames,
MJPEG, variable frame rate, an audio track longer than the video) and the tiny real model of
``video_factory``. No network, no mocks.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import videozoo
from video_factory import TINY_CATEGORIES, frame_code, make_audio_only, make_video, tiny_parts
from videozoo.cli import EXIT_OUTPUT, EXIT_UNKNOWN, EXIT_USAGE, EXIT_VIDEO, main
from videozoo.video.io import VideoReader
from videozoo.zoo import ClipRecipe
from videozoo.video.sampling import nearest_frames, segment_indices
from videozoo.tasks.timeline import Timeline, timeline
from videozoo.video.transforms import VideoClassification, resized_size
from videozoo.video.windows import default_window, iter_windows, window_spans

REPO = Path(__file__).resolve().parents[1]
RECIPE = ClipRecipe(num_frames=4, sampling_rate=2, frame_rate=15.0)  # the tiny model's: 4 frames over 0.533 s
PRESET = VideoClassification(crop_size=32, resize_size=36)

VIDEOS = {  # name: (codec, fps, frames, size, extra make_video arguments)
    "qcif.mp4": ("libx264", 30, 90, (144, 176), {}),
    "vp9.webm": ("libvpx-vp9", 15, 40, (48, 64), {}),
    "bframes.avi": ("mpeg4", 25, 60, (64, 48), {"options": {"g": "9", "bf": "2"}}),
    "mjpeg.avi": ("mjpeg", 10, 23, (48, 64), {}),
    "longaudio.mp4": ("libx264", 30, 45, (48, 64), {"audio_seconds": 4.0}),
}


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("timeline_videos")
    out = {}
    for name, (codec, fps, n, size, extra) in VIDEOS.items():
        out[name] = make_video(root / name, num_frames=n, fps=fps, size=size, codec=codec, **extra)
    times = [0, 33, 50, 120, 133, 300, 310, 320, 500, 700, 733, 766, 1000, 1100, 1500, 1510, 1800, 2000]
    out["vfr.mkv"] = make_video(root / "vfr.mkv", frame_times_ms=times)
    return out




def _check_cover(spans, duration, window, stride):
    assert spans[0][0] == 0.0
    assert spans[-1][1] == pytest.approx(duration, abs=1e-9)
    for k, (start, end) in enumerate(spans):
        assert start == pytest.approx(k * stride, abs=1e-9)
        assert 0 < end - start <= window + 1e-9
        assert end <= duration + 1e-9
    for (_, end), (start, _) in zip(spans, spans[1:]):
        assert start - end <= max(stride - window, 0) + 1e-9  # no gap beyond what the stride asks for
    if len(spans) > 1:
        assert spans[-2][1] < duration  # the last window is the first that reaches the end


# ----------------------------------------------------------------------------------------------------
# Windows


@pytest.mark.parametrize("name", [*VIDEOS, "vfr.mkv"])
def test_windows_cover_the_video_decoded_once(videos, name):
    path = videos[name]
    with VideoReader(path) as reader:
        n, duration, ts = reader.num_frames, reader.duration, reader.timestamps
    stream = iter_windows(path, RECIPE, PRESET, window=0.6, stride=0.25)
    windows = list(stream)
    assert [w.index for w in windows] == list(range(len(stream)))
    spans = [(w.start, w.end) for w in windows]
    assert spans == stream.spans and len(spans) == math.ceil((duration - 0.6) / 0.25 - 1e-9) + 1
    _check_cover(spans, duration, 0.6, 0.25)
    assert stream.frames_decoded <= n and stream.frames_decoded == int(stream.indices.max()) + 1  # one pass
    assert stream.max_frames_held <= 2 * RECIPE.num_frames  # only open windows' frames
    for w in windows:
        assert w.clip.shape == (3, 4, 32, 32) and w.clip.dtype == torch.float32
        # the recipe's clip centred in the window (videozoo.sampling's rule), past the end: the last frame
        step = 2 / 15
        first = w.start + max(w.end - w.start - 4 * step, 0) / 2
        expected = nearest_frames(ts, first + torch.arange(4, dtype=torch.float64) * step)
        assert w.frame_indices.tolist() == expected.tolist()


def test_clips_equal_get_frames_through_the_preset(videos):
    path = videos["qcif.mp4"]
    size = lambda h, w: resized_size(h, w, PRESET.resize_size)  # noqa: E731  (as predict decodes)
    for resize_on_decode, reader_size in ((True, size), (False, None)):
        windows = list(iter_windows(path, RECIPE, PRESET, resize_on_decode=resize_on_decode))
        with VideoReader(path, size=reader_size) as reader:
            for w in windows:
                frames = reader.get_frames(w.frame_indices).frames
                assert torch.equal(w.clip, PRESET(frames))
    # 30 fps, 4 frames every 2/15 s: window k of 0.533 s every 0.267 s takes frames 8k + (0, 4, 8, 12)
    stream = iter_windows(path, RECIPE, PRESET, resize_on_decode=False)
    assert stream.window == pytest.approx(default_window(RECIPE)) == pytest.approx(4 * 2 / 15)
    for k, w in enumerate(stream):
        if w.end - w.start >= stream.window - 1e-9:
            assert w.frame_indices.tolist() == [8 * k, 8 * k + 4, 8 * k + 8, 8 * k + 12]


def test_frames_carry_their_own_index(videos):
    path = videos["vp9.webm"]
    with VideoReader(path) as reader:
        for i, frame in reader.iter_frames([7, 3, 3, 20]):
            assert frame_code(frame) == i
        assert reader.frames_decoded == 21  # decoding stops after the last wanted frame
        assert [i for i, _ in reader.iter_frames()] == list(range(reader.num_frames))
        with pytest.raises(IndexError, match="out of range"):
            list(reader.iter_frames([reader.num_frames]))


def test_bounded_memory_on_a_longer_video(tmp_path):
    path = make_video(tmp_path / "long.mp4", num_frames=600, fps=30, size=(48, 64))  # 20 s
    stream = iter_windows(path, RECIPE, PRESET, resize_on_decode=False)
    count = sum(1 for _ in stream)
    assert count == len(stream) == 74
    assert stream.frames_decoded == int(stream.indices.max()) + 1 == 597  # one pass, stops after the last needed frame
    assert stream.max_frames_held <= 8  # two overlapping windows of 4 frames, not 20 s of video


def test_segment_recipe_spreads_over_each_window(videos):
    recipe = ClipRecipe(num_frames=4, frame_rate=30.0, sampling="segments")
    assert default_window(recipe) == 4.0
    path = videos["qcif.mp4"]  # 3 s at 30 fps
    stream = iter_windows(path, recipe, PRESET, window=1.0, stride=0.5)
    windows = list(stream)
    _check_cover([(w.start, w.end) for w in windows], 3.0, 1.0, 0.5)
    for k, w in enumerate(windows):
        assert w.frame_indices.tolist() == (15 * k + segment_indices(30, 4)).tolist()


def test_short_video_gives_one_window(videos, tmp_path):
    path = make_video(tmp_path / "short.mp4", num_frames=6, fps=30)  # 0.2 s
    [w] = list(iter_windows(path, RECIPE, PRESET))
    assert (w.index, w.start, w.end) == (0, 0.0, pytest.approx(0.2))
    assert w.frame_indices.tolist() == [0, 4, 5, 5]  # past the end: the last frame
    assert window_spans(0.2, 0.5, 0.25) == [(0.0, 0.2)]


def test_gaps_only_when_the_stride_asks_and_bad_values():
    spans = window_spans(10.0, 1.0, 3.0)
    assert spans == [(0.0, 1.0), (3.0, 4.0), (6.0, 7.0), (9.0, 10.0)]
    _check_cover(spans, 10.0, 1.0, 3.0)
    for bad in (0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="positive number of seconds"):
            window_spans(10.0, bad, 1.0)
    with pytest.raises(ValueError, match="frame_rate"):
        default_window(ClipRecipe(num_frames=8))
    assert default_window(ClipRecipe(num_frames=8), fps=24) == pytest.approx(8 / 24)


# ----------------------------------------------------------------------------------------------------
# Timelines


def test_timeline_probabilities_are_the_models_on_each_window(tiny, videos):
    path = videos["longaudio.mp4"]  # 1.5 s of video, 4 s of audio: windows follow the video track
    result = videozoo.timeline(path, tiny, top_k=3, batch_size=3)
    assert isinstance(result, Timeline) and result.duration == pytest.approx(1.5)
    _check_cover([(e.start, e.end) for e in result.entries], 1.5, result.window, result.stride)
    _, enum, _ = tiny_parts()
    model = videozoo.get_model(tiny, weights="DEFAULT").eval()
    with torch.no_grad():
        clips = torch.stack([w.clip for w in iter_windows(path, RECIPE, enum.DEFAULT.transforms())])
        expected = model(clips).softmax(-1)
    torch.testing.assert_close(result.probs, expected, atol=1e-5, rtol=1e-4)
    for entry, row in zip(result.entries, expected):
        assert [label for label, _ in entry.top_k] == [TINY_CATEGORIES[c] for c in row.topk(3).indices]
        assert entry.labels == []


def test_multi_label_timeline_json_and_csv(tiny, videos):
    result = timeline(videos["vfr.mkv"], tiny, "MULTI_V1", window=0.5, stride=0.5, top_k=2, threshold=0.5)
    assert result.multi_label and len(result) == 5  # 2.033 s: 0-0.5, ..., 2.0-2.033
    doc = json.loads(result.to_json())
    assert doc["weights"].endswith(".MULTI_V1") and doc["window"] == 0.5 and len(doc["windows"]) == 5
    for entry, row in zip(doc["windows"], result.probs):
        above = {TINY_CATEGORIES[c] for c in (row >= 0.5).nonzero().flatten().tolist()}
        assert {x["label"] for x in entry["labels"]} == above and above  # the bias puts some above 0.5
        assert len(entry["top_k"]) == 2
    rows = list(csv.DictReader(io.StringIO(result.to_csv())))
    assert set(rows[0]) == {"window", "start", "end", "rank", "label", "probability", "above_threshold"}
    for k, entry in enumerate(result.entries):
        mine = [r for r in rows if int(r["window"]) == k]
        assert {r["label"] for r in mine} == {label for label, _ in entry.top_k} | {label for label, _ in entry.labels}
        assert all(r["above_threshold"] == str(int(float(r["probability"]) >= 0.5)) for r in mine)
        assert float(mine[0]["start"]) == pytest.approx(entry.start, abs=1e-3)


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_plot_png_and_svg(tiny, videos, tmp_path):
    pytest.importorskip("matplotlib")
    from matplotlib.image import imread

    result = timeline(videos["bframes.avi"], tiny, "MULTI_V1", window=0.5)  # "bars" about 0.98 everywhere
    png = tmp_path / "t.png"
    assert result.plot(png, size=(640, 240)) == str(png)
    assert _png_size(png) == (640, 240)
    pixels = torch.from_numpy(imread(png)[..., :3].copy()).reshape(-1, 3)
    assert len(torch.unique(pixels, dim=0)) > 10  # labels, cells, colour bar: not a blank picture
    dark_blue = (pixels[:, 0] < 0.15) & (pixels[:, 2] > 0.35)  # the cells of a class near 1
    medium = (pixels[:, 0] > 0.25) & (pixels[:, 0] < 0.6) & (pixels[:, 2] > 0.7)  # "flash", about 0.5
    assert dark_blue.sum() > 640 * 240 * 0.05 and medium.sum() > 640 * 240 * 0.05
    svg = tmp_path / "t.svg"
    result.plot(svg)
    assert "<svg" in svg.read_text()[:1000]
    with pytest.raises(ValueError, match=r"\.png or \.svg"):
        result.plot(tmp_path / "t.jpg")


def test_plot_without_matplotlib_names_the_extra(tmp_path):
    script = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "import torch\n"
        "from videozoo.tasks.timeline import Timeline, TimelineEntry\n"
        "t = Timeline('v.mp4', 'm', 'W', 1.0, 0.5, 1.0, False, 0.5, ['a', 'b'],"
        " [TimelineEntry(0, 0.0, 1.0, [('a', 0.9)])], torch.tensor([[0.9, 0.1]]))\n"
        f"t.plot({str(tmp_path / 'x.png')!r})\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 1
    assert 'ImportError: Timeline.plot needs matplotlib, which is not installed: pip install "videozoo[plot]"' in proc.stderr
    assert not (tmp_path / "x.png").exists()


# ----------------------------------------------------------------------------------------------------
# Command line


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_table_json_csv_and_plot(tiny, videos, tmp_path, capsys):
    path = videos["qcif.mp4"]
    code, out, err = run(capsys, "timeline", path, "-m", tiny, "-k", "2")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"{path}  ({tiny}, 11 windows of 0.533 s every 0.267 s)"
    assert lines[1].split() == ["start", "end", "top", "labels"] and len(lines) == 13
    assert lines[-1].split()[:2] == ["2.67", "3.00"]
    code, out, err = run(capsys, "timeline", path, "-m", tiny, "--json", "--window", "1", "--stride", "0.5")
    assert code == 0, err
    doc = json.loads(out)
    assert doc == timeline(path, tiny, window=1, stride=0.5).to_dict()
    local = Path(os.environ["VIDEOZOO_HOME"]) / "checkpoints" / "tiny_mc3_test.pth"
    code, out, err = run(capsys, "timeline", path, "-m", tiny, "--weights", local, "--json", "-q")
    assert code == 0, err
    assert json.loads(out)["weights"] == str(local) and err == ""
    pytest.importorskip("matplotlib")
    png = tmp_path / "out.png"
    code, out, err = run(capsys, "timeline", path, "-m", tiny, "--csv", "--plot", png)
    assert code == 0, err
    assert out.startswith("window,start,end,rank,label,probability,above_threshold\n") and len(out.splitlines()) == 1 + 11 * 5
    assert _png_size(png)[0] == 1000 and f"wrote {png}" in err


def test_cli_errors_and_exit_codes(tiny, videos, tmp_path, capsys, monkeypatch):
    path = videos["qcif.mp4"]
    cases = [
        (["timeline", tmp_path / "gone.mp4", "-m", tiny], EXIT_VIDEO, "gone.mp4: no such file."),
        (["timeline", make_audio_only(tmp_path / "song.m4a"), "-m", tiny], EXIT_VIDEO, "has no video stream"),
        (["timeline", path, "-m", "no_such_model"], EXIT_UNKNOWN, "no_such_model"),
        (["timeline", path, "-m", tiny, "-w", "NOPE"], EXIT_UNKNOWN, "NOPE"),
        (["timeline", path, "-m", tiny, "--json", "--csv"], EXIT_USAGE, "choose one"),
        (["timeline", path, "-m", tiny, "--plot", tmp_path / "t.gif"], EXIT_USAGE, ".png or .svg"),
    ]
    for argv, expected, message in cases:
        code, out, err = run(capsys, *argv)
        assert code == expected, err
        assert err.startswith("videozoo: error: ") and message in err and len(err.splitlines()) == 1
        assert "Traceback" not in err
    for bad in (["--window", "0"], ["--stride", "-1"], ["--top-k", "0"], ["--threshold", "2"]):
        with pytest.raises(SystemExit) as e:
            main(["timeline", str(path), "-m", tiny, *bad])
        assert e.value.code == EXIT_USAGE
    capsys.readouterr()
    # outputs are checked before any video is read (no output, one line, exit 7)
    (tmp_path / "folder.png").mkdir()
    for plot, message in [(tmp_path / "nowhere" / "t.png", "does not exist"), (tmp_path / "folder.png", "is a folder")]:
        code, out, err = run(capsys, "timeline", tmp_path / "not-read.mp4", "-m", tiny, "--plot", plot)
        assert code == EXIT_OUTPUT and out == "" and message in err and len(err.splitlines()) == 1, err
    # the disk fills up while the picture is written: one line that names the path, exit 7
    full = tmp_path / "full.png"
    full.symlink_to("/dev/full")
    code, out, err = run(capsys, "timeline", path, "-m", tiny, "--plot", full, "-q")
    assert code == EXIT_OUTPUT and f"--plot {full}: cannot write it (No space left on device)" in err, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    code, out, err = run(capsys, "timeline", path, "-m", tiny, "--plot", tmp_path / "t.png")
    assert code == EXIT_USAGE and 'pip install "videozoo[plot]"' in err and out == ""
