"""The AVA action detectors and the detect task: parity with PyTorchVideo's detectors (fixtures written by
parity/detection_fixtures.py), RoIAlign on hand-computed cases, the detectors' contract, box files, the
task on real encoded videos with a tiny detector, and ``videozoo detect`` through its entry point."""

from __future__ import annotations

import csv
import fractions
import io
import json
import sys
from functools import partial
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from parity.common import TOLERANCE, load_fixture, make_input, relative_error
from parity.replay import build_from_fixture
from video_factory import make_video

import videozoo
from videozoo.cli import main
from videozoo.models.action_detection import (
    AVA_LABELS,
    ResNet3DDetector,
    Slow_R50_Detection_Weights,
)
from videozoo.models.layers import box_iou, roi_align
from videozoo.tasks.detect import (
    BoxFileError,
    _iter_keyframe_frames,
    keyframe_clips,
    detect,
    link_tracks,
    read_boxes,
)
from videozoo.video.io import VideoReader
from videozoo.video.transforms import VideoClassification
from videozoo.zoo import Weights, WeightsEnum, build_model, registered

FIXTURES = sorted((Path(__file__).parent / "parity" / "fixtures" / "action_detection").glob("*.pt"))
DETECTORS = videozoo.list_models(task="action_detection")


# ----------------------------------------------------------------------------------------------------
# Parity and RoIAlign


def test_every_action_detector_has_a_fixture() -> None:
    assert {load_fixture(p)["model"] for p in FIXTURES} == set(DETECTORS) == {"slow_r50_detection", "slowfast_r50_detection"}


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_detector_matches_pytorchvideo(path: Path, one_thread) -> None:
    """Loaded from a file in PyTorchVideo's layout through the weights' adapter (strictly), then the logits of
    six boxes over two clips (whole frame, border, crossing the border, sub-pixel) within 1e-4."""
    fixture = load_fixture(path)
    assert path.stat().st_size < 1_000_000
    model = build_from_fixture(fixture)
    x = make_input(fixture["input_shape"], seed=fixture["input_seed"])
    with torch.inference_mode():
        ours = model(x, fixture["boxes"])
    assert ours.shape == fixture["output"].shape == (6, 80)
    assert relative_error(ours, fixture["output"]) <= TOLERANCE


def test_adapter_refuses_a_key_it_does_not_know() -> None:
    fixture = load_fixture(FIXTURES[0])
    state = {k: torch.zeros(s, device="meta") for k, s in zip(fixture["keys"], fixture["shapes"])}
    member = videozoo.get_model_weights(fixture["model"]).DEFAULT
    assert len(member.adapt_state_dict({"model_state": state})) == len(state)
    state["detection_head.extra.weight"] = torch.zeros(3, device="meta")
    with pytest.raises(ValueError, match="detection_head.extra.weight"):
        member.adapt_state_dict({"model_state": state})


def test_roi_align_hand_computed() -> None:
    """A map whose value is its column index: with aligned=True and one sample per bin, each bin is the
    column of its centre; a constant map pools to the constant; a box far outside the map to zero."""
    ramp = torch.arange(8.0).repeat(1, 1, 6, 1)  # (1, 1, 6, 8): value = x
    box = torch.tensor([[0.0, 2.0, 1.0, 6.0, 5.0]])  # x 2..6, y 1..5 in map pixels (scale 1)
    out = roi_align(ramp, box, [2, 2], 1.0, sampling_ratio=1, aligned=True)
    # bins of width 2 from x = 1.5: centres 2.5 and 4.5 (the half-pixel shift), both rows the same
    assert torch.allclose(out[0, 0], torch.tensor([[2.5, 4.5], [2.5, 4.5]]))
    # aligned=False: no shift, centres 3 and 5; adaptive sampling (2 samples per bin) averages 2.5/3.5, 4.5/5.5
    assert torch.allclose(roi_align(ramp, box, [2, 2], 1.0, 0, aligned=False)[0, 0], torch.tensor([[3.0, 5.0], [3.0, 5.0]]))
    constant = torch.full((2, 3, 5, 5), 7.0)
    boxes = torch.tensor([[1.0, 0.0, 0.0, 80.0, 80.0], [0.0, 10.0, 20.0, 30.0, 35.0], [0.0, 500.0, 500.0, 600.0, 600.0]])
    pooled = roi_align(constant, boxes, [7, 7], 1 / 16)
    assert torch.allclose(pooled[:2], torch.full((2, 3, 7, 7), 7.0)) and torch.equal(pooled[2], torch.zeros(3, 7, 7))
    assert roi_align(constant, boxes[:0], [7, 7], 1 / 16).shape == (0, 3, 7, 7)


# ----------------------------------------------------------------------------------------------------
# The detectors' contract (tiny: one block per stage)


@pytest.fixture(scope="module", params=DETECTORS)
def tiny_detector(request, one_thread):
    torch.manual_seed(0)
    return request.param, videozoo.get_model(request.param, layers=(1, 1, 1, 1)).eval()


def test_contract(tiny_detector) -> None:
    name, model = tiny_detector
    assert videozoo.get_model_task(name) == "action_detection"
    x = torch.randn(2, 3, 8, 64, 80)
    boxes = torch.tensor([[0.0, 0.0, 0.0, 80.0, 64.0], [1.0, 10.0, 5.0, 40.0, 60.0], [1.0, 70.0, 0.0, 80.0, 20.0]])
    with torch.inference_mode():
        logits = model(x, boxes)
        features = model.forward_features(x)
        assert torch.equal(logits, model.forward_head(features, boxes))
        embedding = model.forward_head(features, boxes, pre_logits=True)
        assert embedding.shape == (3, model.num_features) and logits.shape == (3, 80)
        assert model(x, boxes[:0]).shape == (0, 80)  # a keyframe without persons
        # the boxes of one clip do not depend on the other clip of the batch
        assert torch.allclose(model(x[1:], boxes[1:] - torch.tensor([1.0, 0, 0, 0, 0])), logits[1:], atol=1e-5)
        scripted = torch.jit.script(model)
        assert torch.allclose(scripted(x, boxes), logits, atol=1e-4 * logits.abs().max().item())
        if name == "slowfast_r50_detection":
            assert torch.allclose(model([model.select_slow_frames(x), x], boxes), logits)
    model.reset_classifier(5)
    try:
        with torch.inference_mode():
            assert model(x, boxes).shape == (3, 5)
        model.train()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x, boxes), torch.ones(3, 5))
        loss.backward()
        assert model.get_classifier().weight.grad is not None and model.get_classifier().weight.grad.abs().sum() > 0
    finally:
        model.reset_classifier(80)
        model.zero_grad(set_to_none=True)
        model.eval()


@pytest.mark.parametrize(
    "boxes,message",
    [
        (torch.zeros(2, 4), r"boxes of shape \(K, 5\)"),
        (torch.zeros(2, 5, dtype=torch.long), "floating-point boxes"),
        (torch.tensor([[2.0, 0, 0, 10, 10]]), r"batch index 2\.0.*\[0, 1\]"),
        (torch.tensor([[0.0, 0, 0, 10, 10], [1.0, 20, 5, 10, 30]]), "box 1 is inverted"),
        (torch.tensor([[0.0, 0, 0, float("nan"), 10]]), "non-finite"),
    ],
)
def test_bad_boxes_are_named(tiny_detector, boxes, message) -> None:
    _, model = tiny_detector
    with pytest.raises(ValueError, match=message):
        model(torch.randn(2, 3, 8, 32, 32), boxes)


def test_weights_meta() -> None:
    for name in DETECTORS:
        member = videozoo.get_model_weights(name).DEFAULT
        meta = member.meta
        assert len(meta["categories"]) == 80 and meta["categories"][11] == "stand" and meta["multi_label"]
        assert len(meta["evaluated_ids"]) == 60 and 2 not in meta["evaluated_ids"] and 80 in meta["evaluated_ids"]
        assert member.url.startswith("https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo/ava/")
        assert meta["keyframe"] == "middle" and meta["box_short_side"] == 256 and meta["license"] == "Apache-2.0"
        with torch.device("meta"):
            assert sum(p.numel() for p in videozoo.get_model(name).parameters()) == meta["num_params"]
    assert [label["id"] for label in AVA_LABELS] == list(range(1, 81)) and sum(label["evaluated"] for label in AVA_LABELS) == 60
    assert AVA_LABELS[1] == {"id": 2, "name": "crawl", "evaluated": False}


# ----------------------------------------------------------------------------------------------------
# Box files


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_boxes_clipped_deduplicated_and_named(tmp_path: Path) -> None:
    path = write(
        tmp_path / "boxes.csv",
        "video_id,timestamp,x1,y1,x2,y2\n"
        "walk,1,0.1,0.2,0.5,0.9,12,0.8\n"
        "walk,1,0.1,0.2,0.5,0.9,80,0.8\n"  # AVA repeats a box once per action
        "walk,2,-0.1,0.2,1.3,0.9\n"
        "\n"
        "other,0.5,0.1,0.1,0.2,0.2\n",
    )
    boxes = read_boxes(path)
    assert boxes.video_ids == ["other", "walk"]
    walk = boxes.for_video("walk")
    assert walk[1.0] == [(0.1, 0.2, 0.5, 0.9, 0.8)]
    assert walk[2.0][0][:4] == (0.0, 0.2, 1.0, 0.9) and np.isnan(walk[2.0][0][4])
    assert len(boxes.warnings) == 1 and "line 4" in boxes.warnings[0] and "clipped to [0.0, 0.2, 1.0, 0.9]" in boxes.warnings[0]
    assert boxes.unused(["walk"]) == ["other"]
    with pytest.raises(BoxFileError, match="no boxes for video id 'run'.*other, walk"):
        boxes.for_video("run")


@pytest.mark.parametrize(
    "line,message",
    [
        ("walk,1,0.5,0.2,0.4,0.9", "line 2: the box .* is inverted"),
        ("walk,1,0.5,0.2,0.5,0.9", "line 2: the box .* is empty"),
        ("walk,1,0.5,0.2,0.6", "line 2: expected video_id,timestamp,x1,y1,x2,y2.*5 column"),
        ("walk,1,0.5,zero,0.6,0.9", "line 2: the box .* is not four numbers"),
        ("walk,soon,0.5,0.2,0.6,0.9", "line 2: the timestamp 'soon' is not a number"),
        ("walk,1,1.2,0.2,1.5,0.9", "line 2: the box .* lies outside the frame"),
    ],
)
def test_bad_csv_lines_are_named(tmp_path: Path, line: str, message: str) -> None:
    path = write(tmp_path / "boxes.csv", f"walk,0,0.1,0.1,0.2,0.2\n{line}\n")
    with pytest.raises(BoxFileError, match=message):
        read_boxes(path)


def test_json_boxes(tmp_path: Path) -> None:
    good = write(tmp_path / "b.json", json.dumps([{"video_id": "walk", "timestamp": 0, "box": [0.1, 0.1, 0.4, 0.8], "score": 0.9}]))
    assert read_boxes(good).for_video("walk") == {0.0: [(0.1, 0.1, 0.4, 0.8, 0.9)]}
    bad = write(tmp_path / "c.json", json.dumps([{"video_id": "walk", "timestamp": 0, "box": [0.1, 0.1, 0.4, 0.8]}, {"video_id": "walk", "timestamp": 1, "box": [0.5]}]))
    with pytest.raises(BoxFileError, match="entry 1: box must be a list"):
        read_boxes(bad)


# ----------------------------------------------------------------------------------------------------
# Tracks and the clip around a keyframe


def test_tracker_links_overlapping_boxes_and_ends_lost_tracks() -> None:
    from videozoo.tasks.detect import Keyframe, Person

    def frame(i: int, *boxes: tuple[float, float, float, float]) -> Keyframe:
        return Keyframe(i, float(i), i, [Person(b, None, [], []) for b in boxes], torch.zeros(len(boxes), 1))

    keyframes = [
        frame(0, (0, 0, 10, 10), (50, 50, 60, 60)),
        frame(1, (52, 51, 62, 61), (1, 0, 11, 10), (100, 100, 110, 110)),  # both move a little, a third arrives
        frame(2),  # nobody: an empty keyframe
        frame(3, (2, 0, 12, 10)),  # person 1 again, after one empty keyframe (max_gap=1)
        frame(4), frame(5), frame(6),
        frame(7, (2, 0, 12, 10)),  # too long gone: a new person
    ]  # fmt: skip
    link_tracks(keyframes, iou_threshold=0.3, max_gap=1)
    assert [[p.person for p in k.persons] for k in keyframes] == [[1, 2], [2, 1, 3], [], [1], [], [], [], [4]]
    assert torch.allclose(box_iou(torch.tensor([[0.0, 0, 10, 10]]), torch.tensor([[5.0, 0, 15, 10]])), torch.tensor([[1 / 3]]))


def test_keyframe_clips_pad_with_the_edge_frames_as_pyslowfast() -> None:
    stamps = torch.arange(10, dtype=torch.float64) / 30  # a 10-frame video, shorter than the clip
    [clip] = keyframe_clips(stamps, [4 / 30], num_frames=4, step=8 / 30)
    # PySlowFast's get_sequence: range(center - 16, center + 16, 8), clamped to [0, 9]
    assert clip.frame_index == 4 and clip.clip.tolist() == [0, 0, 4, 9]


# ----------------------------------------------------------------------------------------------------
# The task on real videos, with a tiny action detector and a real (colour-threshold) person detector

TINY_DETECTOR = "tiny_ava_test"
TINY_PERSONS = "tiny_red_persons_test"
TINY_URL = "http://127.0.0.1:9/tiny_ava_test.pth"
TINY_META = {
    **Slow_R50_Detection_Weights.AVA_V2_2.meta,
    "num_frames": 4, "sampling_rate": 8, "frame_rate": 30.0, "box_short_side": 64, "num_params": 0,
    "recipe": "tests/test_action_detection.py",
}  # fmt: skip
TINY_ARCH = partial(ResNet3DDetector, layers=(1, 1, 1, 1), spatial_strides=(1, 2, 2, 1), spatial_dilations=(1, 1, 1, 2), num_frames=4)


class TinyAVA_Weights(WeightsEnum):
    TEST_V1 = DEFAULT = Weights(TINY_URL, partial(VideoClassification, crop_size=64, resize_size=64), TINY_META)


def tiny_ava_test(*, weights=None, progress=True, **kwargs):
    return build_model(TINY_ARCH, TinyAVA_Weights, weights, progress, kwargs)


class RedPersons(torch.nn.Module):
    """A person detector for videos whose persons are red squares: the box around the red pixels."""

    default_score_threshold = 0.5

    def detect_persons(self, frames: torch.Tensor, score_threshold: float | None = None) -> list[torch.Tensor]:
        out = []
        for frame in frames:
            red = (frame[0] > 0.5) & (frame[1] < 0.35) & (frame[2] < 0.35)
            if red.sum() < 4:
                out.append(torch.zeros(0, 5))
                continue
            ys, xs = red.nonzero(as_tuple=True)
            out.append(torch.tensor([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1, 1.0]], dtype=torch.float32))
        return out


class RedPersons_Weights(WeightsEnum):
    NONE = DEFAULT = Weights("http://127.0.0.1:9/none.pth", partial(VideoClassification, crop_size=8, resize_size=8), {"categories": ["person"]})


def tiny_red_persons_test(*, weights=None, progress=True, **kwargs):
    return RedPersons()


def red_square_video(path: Path, num_frames: int = 60, appear: int = 20) -> Path:
    """64x64 grey frames at 30 fps; from frame ``appear`` a 16x16 red square drifting right (1 px / 4 frames)."""
    container = av.open(str(path), "w")
    stream = container.add_stream("libx264", rate=fractions.Fraction(30))
    stream.width = stream.height = 64
    stream.pix_fmt = "yuv420p"
    for i in range(num_frames):
        img = np.full((64, 64, 3), 90, dtype=np.uint8)
        if i >= appear:
            x = 8 + (i - appear) // 4
            img[20:36, x : x + 16] = (230, 20, 20)
        for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return path


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory, one_thread):
    home = tmp_path_factory.mktemp("ava_home")
    torch.manual_seed(0)
    model = TINY_ARCH(num_classes=80)
    with torch.no_grad():  # some actions above 0.5 and others below, whatever the clip
        model.fc.bias.copy_(torch.linspace(-3.0, 3.0, 80))
    (home / "checkpoints").mkdir()
    torch.save(model.state_dict(), home / "checkpoints" / "tiny_ava_test.pth")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VIDEOZOO_HOME", str(home))
        with (
            registered(tiny_ava_test, TinyAVA_Weights, TINY_DETECTOR, task="action_detection"),
            registered(tiny_red_persons_test, RedPersons_Weights, TINY_PERSONS, task="person_detection"),
        ):
            yield {"detector": TINY_DETECTOR, "persons": TINY_PERSONS}


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("ava_videos")
    return {
        "red": red_square_video(root / "red.mp4"),
        "walk": make_video(root / "walk.mp4", num_frames=45, fps=30, size=(48, 64)),
        "short": make_video(root / "short.mp4", num_frames=10, fps=30, size=(48, 64)),
    }


def test_detect_with_a_person_detector_is_the_publishers_recipe(tiny_models, videos) -> None:
    result = detect(videos["red"], TINY_DETECTOR, detector=TINY_PERSONS, rate=2.0, threshold=0.6)
    assert [k.time for k in result.keyframes] == [0.0, 0.5, 1.0, 1.5]
    assert [len(k.persons) for k in result.keyframes] == [0, 0, 1, 1]  # no person yet: empty keyframes
    third, fourth = result.keyframes[2:]
    assert [p.person for p in third.persons + fourth.persons] == [1, 1]  # the drifting square is one person
    x1, y1, x2, y2 = third.persons[0].box
    assert abs(y1 - 20) <= 2 and abs(y2 - 36) <= 2 and abs(x1 - 10) <= 2 and abs(x2 - 26) <= 2
    # The same probabilities by hand: frames 30 - 16 + 8 i, scaled (64 px: factor 1), normalised, the model.
    with VideoReader(videos["red"]) as reader:
        frames = reader.get_frames([14, 22, 30, 38]).frames.float() / 255
    clip = ((frames - 0.45) / 0.225).permute(1, 0, 2, 3)[None]
    model = videozoo.get_model(TINY_DETECTOR, weights="DEFAULT").eval()
    with torch.inference_mode():
        expected = model(clip, torch.tensor([[0.0, x1, y1, x2, y2]])).sigmoid()
    assert torch.allclose(third.probs, expected, atol=1e-5)
    actions = third.persons[0].actions
    assert actions and all(p >= 0.6 for _, p in actions) and [p for _, p in actions] == sorted((p for _, p in actions), reverse=True)
    assert {label for label, _ in actions} == {result.categories[i] for i in (expected[0] >= 0.6).nonzero().flatten().tolist()}


def test_detect_with_boxes_from_a_file(tiny_models, videos, tmp_path) -> None:
    boxes = write(tmp_path / "b.csv", "walk,0.5,0.1,0.1,0.5,0.9\nwalk,1,0.6,-0.2,1.1,0.5\nwalk,1,0.1,0.1,0.5,0.9\nwalk,9,0.1,0.1,0.5,0.9\n")
    result = detect(videos["walk"], TINY_DETECTOR, boxes=boxes)
    assert [k.time for k in result.keyframes] == [0.5, 1.0]
    assert [p.box for p in result.keyframes[1].persons] == [pytest.approx(b) for b in [(38.4, 0.0, 64.0, 24.0), (6.4, 4.8, 32.0, 43.2)]]
    assert [p.person for p in result.keyframes[1].persons] == [2, 1]
    assert any("clipped" in w for w in result.warnings) and any("past the video's end" in w for w in result.warnings)
    rows = list(csv.reader(io.StringIO(result.to_csv())))
    assert rows and {r[0] for r in rows} == {"walk"} and {r[1] for r in rows} == {"0.5", "1"}
    assert all(1 <= int(r[6]) <= 80 and float(r[7]) >= 0.5 for r in rows)
    assert rows[0][2:6] == ["0.1000", "0.1000", "0.5000", "0.9000"]
    doc = json.loads(result.to_json())
    assert doc["keyframes"][1]["persons"][0]["box"] == [38.4, 0.0, 64.0, 24.0] and doc["tracks"]
    spans = result.spans()
    assert spans and all(s.person in (1, 2) for s in spans)


def test_short_video_is_padded(tiny_models, videos, tmp_path) -> None:
    boxes = write(tmp_path / "s.csv", "short,0.1,0.0,0.0,1.0,1.0\n")
    result = detect(videos["short"], TINY_DETECTOR, boxes=boxes)
    assert len(result.keyframes) == 1 and len(result.keyframes[0].persons) == 1


def test_decoding_holds_only_the_open_clips(videos, tmp_path) -> None:
    video = make_video(tmp_path / "long.mp4", num_frames=150, fps=30, size=(32, 32))
    held = []
    with VideoReader(video, backend="pyav") as reader:
        clips = keyframe_clips(reader.timestamps, [i / 2 for i in range(10)], num_frames=4, step=8 / 30)
        for clip, frames in _iter_keyframe_frames(reader, clips):
            assert all(int(i) in frames for i in clip.clip)
            held.append(len(frames))
    assert len(held) == 10 and max(held) <= 8  # two overlapping clips, while the video has 150 frames


def test_plot_and_video(tiny_models, videos, tmp_path) -> None:
    pytest.importorskip("matplotlib")
    result = detect(videos["red"], TINY_DETECTOR, detector=TINY_PERSONS, rate=2.0)
    paths = result.plot(tmp_path / "plot")
    assert [Path(p).name for p in paths] == [f"keyframe_000{i}_{t:.2f}s.png" for i, t in enumerate((0, 0.5, 1, 1.5))]
    out = result.write_video(tmp_path / "out.mp4")
    with VideoReader(out) as drawn, VideoReader(videos["red"]) as source:
        assert drawn.num_frames == source.num_frames == 60
        a = drawn.get_frames([40]).frames[0].float()
        b = source.get_frames([40]).frames[0].float()
    assert (a - b).abs().mean() > 3  # the box and its label are drawn over the frame


# ----------------------------------------------------------------------------------------------------
# The command line


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_table_json_csv(tiny_models, videos, capsys) -> None:
    code, out, err = run(capsys, "detect", videos["red"], "-m", TINY_DETECTOR, "--detector", TINY_PERSONS, "--rate", "2", "-q")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(f"{videos['red']}  ({TINY_DETECTOR}, persons from {TINY_PERSONS}, 4 keyframes")
    assert "no person" in lines[2] and lines[4].split()[:2] == ["00:01", "1"] and "tracks:" in out
    code, out, _ = run(capsys, "detect", videos["red"], "-m", TINY_DETECTOR, "--detector", TINY_PERSONS, "--rate", "2", "--json", "-q")
    doc = json.loads(out)
    assert code == 0 and [len(k["persons"]) for k in doc["keyframes"]] == [0, 0, 1, 1] and doc["detector"] == TINY_PERSONS
    code, out, _ = run(capsys, "detect", videos["red"], "-m", TINY_DETECTOR, "--detector", TINY_PERSONS, "--csv", "--threshold", "0.9", "-q")
    assert code == 0 and out and all(float(r[7]) >= 0.9 for r in csv.reader(io.StringIO(out)))


def test_cli_boxes_manifest_and_errors(tiny_models, videos, tmp_path, capsys) -> None:
    boxes = write(tmp_path / "b.csv", "walk,1,0.1,0.1,0.5,0.9\nred,1,0.1,0.1,0.5,0.9\nnobody,1,0.1,0.1,0.5,0.9\n")
    code, out, err = run(capsys, "detect", videos["walk"], "-m", TINY_DETECTOR, "--boxes", boxes, "-q")
    assert code == 0 and "not among the videos: nobody, red" in err and "00:01" in out
    manifest = write(tmp_path / "videos.txt", f"{videos['walk']}\n{videos['red']}\n")
    code, out, err = run(capsys, "detect", "-m", TINY_DETECTOR, "--boxes", boxes, "--manifest", manifest, "--out", tmp_path / "out")
    records = [json.loads(line) for line in (tmp_path / "out" / "detections.jsonl").read_text().splitlines()]
    assert code == 0 and [r["status"] for r in records] == ["ok", "ok"] and "not among the videos: nobody" in err
    assert [len(r["keyframes"]) for r in records] == [1, 1]
    code, _, err = run(capsys, "detect", "-m", TINY_DETECTOR, "--detector", TINY_PERSONS, "--rate", "2", "--manifest", manifest, "--out", tmp_path / "found")
    records = {Path(r["video"]).stem: r for r in map(json.loads, (tmp_path / "found" / "detections.jsonl").read_text().splitlines())}
    assert code == 0, err
    assert [len(k["persons"]) for k in records["red"]["keyframes"]] == [0, 0, 1, 1] and records["red"]["detector"] == TINY_PERSONS
    bad = write(tmp_path / "bad.csv", "walk,1,0.5,0.1,0.4,0.9\n")
    code, _, err = run(capsys, "detect", videos["walk"], "-m", TINY_DETECTOR, "--boxes", bad)
    assert code == 2 and "bad.csv line 1: the box [0.5, 0.1, 0.4, 0.9] is inverted" in err
    code, _, err = run(capsys, "detect", videos["short"], "-m", TINY_DETECTOR, "--boxes", boxes)
    assert code == 2 and "no boxes for video id 'short'" in err
    code, _, err = run(capsys, "detect", tmp_path / "missing.mp4", "-m", TINY_DETECTOR, "--boxes", boxes)
    assert code == 4
    code, _, err = run(capsys, "detect", videos["walk"], "-m", "r3d_18", "--boxes", boxes)
    assert code == 2 and "'r3d_18' is a classification model (it labels whole clips" in err and "needs an action detection model" in err
    code, _, err = run(capsys, "detect", videos["walk"], "-m", TINY_DETECTOR, "--detector", "r3d_18")
    assert code == 2 and "this needs a person detection model" in err


def test_export_onnx_with_boxes_as_second_input(tiny_models, tmp_path, capsys) -> None:
    """``videozoo export`` of an action detector: ONNX with inputs video and boxes (their number a symbol),
    verified against eager by the command; then run here with another number of boxes."""
    onnxruntime = pytest.importorskip("onnxruntime")
    out = tmp_path / "ava.onnx"
    code, text, err = run(capsys, "export", TINY_DETECTOR, "--out", out, "--size", "64", "80")
    assert code == 0, err
    assert "input 'boxes': [K, 5]" in text and "verified against eager" in text
    recipe = json.loads(out.with_name("ava.onnx.json").read_text())
    assert recipe["input_boxes"]["shape"] == ["boxes", 5] and recipe["output"]["shape"] == ["boxes", 80]
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = torch.randn(1, 3, 4, 64, 80)
    boxes = torch.tensor([[0.0, 3.0, 4.0, 40.0, 60.0], [0.0, 50.0, 10.0, 79.0, 30.0], [0.0, 0.0, 0.0, 80.0, 64.0], [0.0, 20.0, 20.0, 22.0, 23.0]])
    [logits] = session.run(None, {"video": x.numpy(), "boxes": boxes.numpy()})
    model = videozoo.get_model(TINY_DETECTOR, weights="DEFAULT").eval()
    with torch.inference_mode():
        eager = model(x, boxes)
    torch.testing.assert_close(torch.from_numpy(logits), eager, rtol=0, atol=1e-4 * max(1.0, eager.abs().max().item()))


# ----------------------------------------------------------------------------------------------------
# references/action_detection: training the RoI head on a generated AVA-format set


def _reference(name: str):
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "references" / "action_detection" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"ava_reference_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # (its dataclasses look their module up)
    spec.loader.exec_module(module)
    return module


def test_training_the_roi_head_end_to_end(tiny_models, tmp_path, capsys) -> None:
    make_synthetic, train = _reference("make_synthetic"), _reference("train")
    data = tmp_path / "shapes"
    make_synthetic.make_dataset(data, train=3, val=2, size=64, seconds=3)
    rows = list(csv.reader((data / "train.csv").read_text().splitlines()))
    assert len(rows) == 2 * (1 + 2 + 1) and {int(r[6]) for r in rows} == {7, 12, 14}  # 2 keyframes x persons
    out = tmp_path / "run"
    assert train.main(["--data", str(data), "--model", TINY_DETECTOR, "--epochs", "8", "--lr", "4", "--out", str(out)]) == 0
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(metrics) == 8 and metrics[-1]["train_loss"] < 0.5 * metrics[0]["train_loss"]
    assert all(0.0 <= m["val_map"] <= 1.0 for m in metrics)
    checkpoint = torch.load(out / "checkpoint.pth", weights_only=True)
    model = videozoo.get_model(TINY_DETECTOR, weights="DEFAULT")
    before = model.fc.weight.clone()
    model.load_state_dict(checkpoint["model_state"])
    assert checkpoint["epoch"] == 7 and not torch.equal(model.fc.weight, before)
    frozen = videozoo.get_model(TINY_DETECTOR, weights="DEFAULT").state_dict()
    assert all(torch.equal(frozen[k], v) for k, v in checkpoint["model_state"].items() if not k.startswith("fc."))  # head only
    result = detect(data / "videos" / "val_001.mp4", model.eval(), TinyAVA_Weights.TEST_V1, boxes=_gt_boxes(data / "val.csv", tmp_path))
    assert [len(k.persons) for k in result.keyframes] == [2, 2]


def _gt_boxes(annotations: Path, tmp_path: Path) -> Path:
    """AVA ground truth as a box file (its first six columns)."""
    rows = {tuple(r[:6]) for r in csv.reader(annotations.read_text().splitlines())}
    return write(tmp_path / "gt_boxes.csv", "".join(",".join(r) + "\n" for r in sorted(rows)))


def test_detect_with_detr_as_the_person_detector(tiny_models, videos, tmp_path) -> None:
    """The registered person detector's interface end to end: DETR (the tiny parity build, its class head
    biased so that every query is a person) finds the persons, the action detector labels each."""
    from test_detr import TINY, publisher_file

    torch.manual_seed(0)
    detr = videozoo.detr_resnet50(weights=publisher_file(tmp_path / "detr-r50-e632da11.pth"), **TINY["kwargs"]).eval()
    with torch.no_grad():
        detr.class_embed.bias[1] += 100.0  # COCO id 1: person
    detr.resize_size, detr.max_size = TINY["resize_size"], TINY["max_size"]
    result = detect(videos["walk"], TINY_DETECTOR, detector=detr, rate=2)
    assert result.detector == "DETR" and len(result.keyframes) == 3
    queries = TINY["kwargs"]["num_queries"]
    for k in result.keyframes:
        assert len(k.persons) == queries and k.probs.shape == (queries, 80)
        for p in k.persons:
            x1, y1, x2, y2 = p.box
            assert 0 <= x1 <= x2 <= result.width and 0 <= y1 <= y2 <= result.height and p.score > 0.99
    assert {p.person for k in result.keyframes for p in k.persons} >= set(range(1, queries + 1))  # tracks linked
