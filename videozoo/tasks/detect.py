"""Who does what, and when: AVA action detection on a whole video.

:func:`detect` takes *keyframes* (one every ``1 / rate`` seconds from the first frame, by default one a
second as AVA annotates), finds the persons in each (a registered person detector, task
``"person_detection"``, or boxes the user gives), and runs an action detector (task
``"action_detection"``: ``slowfast_r50_detection``, ...) on the clip around each keyframe: every person
gets AVA's 80 action probabilities (sigmoids: several actions at once), and the actions at least
``threshold`` probable are its labels. A :class:`Detections` prints as a table and writes JSON, an
AVA-style CSV, one picture per keyframe (:meth:`Detections.plot`) and the video re-encoded with the
boxes drawn (:meth:`Detections.write_video`; both need matplotlib: ``pip install "videozoo[plot]"``).

**The clip** around a keyframe at ``t`` seconds is the weights' recipe, as PySlowFast's AVA loader
builds it (``utils.get_sequence``): ``num_frames`` frames ``sampling_rate`` apart at ``frame_rate``
fps, the first ``num_frames * sampling_rate / 2`` frames before the keyframe; each is the video's frame
nearest its time, and times before the first or after the last frame take that frame (the loader
clamps its indices the same way), so keyframes near either end, and videos shorter than a clip, are
padded with the edge frames. Frames are resized so their short side is the recipe's
``box_short_side`` (256; bilinear), normalised with mean 0.45 / std 0.225, and not cropped; boxes are
scaled by the same factor and clipped to the frame.

**Boxes** come from a person detector (``detect_persons(frames, score_threshold)``: float RGB frames
``(B, 3, H, W)`` in [0, 1] at the video's size in, one ``(K, 5)`` tensor ``(x1, y1, x2, y2, score)`` per
frame out), run on each keyframe at the video's own size, or from a file (:func:`read_boxes`): an
AVA-style CSV, ``video_id,timestamp,x1,y1,x2,y2[,action_id,score]`` with coordinates normalised to
[0, 1] (as AVA ships its predicted person boxes), or JSON with the same fields. With a file the
keyframes are its timestamps for the video (the video's file name without suffix is its id). A box
partly outside the frame is clipped (and said so in ``warnings``); an empty or inverted box, or a line
that is not six numbers after the video id, is an error naming the line. A keyframe without persons is
an empty result.

**Tracks**: persons are linked from keyframe to keyframe by their boxes' overlap (:func:`link_tracks`:
greedy matching by IoU, at least ``iou_threshold``; a track survives ``max_gap`` keyframes without a
match), so every person has an id and :meth:`Detections.spans` can say "person 2: stand from 00:12 to
00:19".

Decoding streams the video once, in order, holding only the frames of the clips not yet run, so memory
does not grow with the video's length. :func:`detect_collection` runs many videos through the shared
collection driver (resumable, sharded under torchrun).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from videozoo.errors import VideoDecodeError
from videozoo.models.layers import box_iou
from videozoo.tasks.collection import CollectionTask, VideosArg, one_at_a_time, run_collection
from videozoo.tasks.runner import Runner, WeightsArg, check_threshold, load_model
from videozoo.video.io import VideoReader
from videozoo.video.sampling import nearest_frames
from videozoo.zoo import get_model, get_model_task, list_models

__all__ = [
    "DETECTIONS",
    "BoxFile",
    "BoxFileError",
    "Detections",
    "Keyframe",
    "KeyframeClip",
    "Person",
    "default_detector",
    "detect",
    "detect_collection",
    "keyframe_clips",
    "link_tracks",
    "read_boxes",
    "resize_short_side",
]

DETECTIONS = "detections.jsonl"
#: PyTorchVideo's AVA demo shows the actions at least this probable (its ``VideoVisualizer(thres=0.5)``).
DEFAULT_THRESHOLD = 0.5
#: The normalisation of PyTorchVideo's AVA detectors (its demo's ``ava_inference_transform``).
MEAN = (0.45, 0.45, 0.45)
STD = (0.225, 0.225, 0.225)


class BoxFileError(ValueError):
    """A box file that cannot be used: the message names the file and the line (or JSON entry)."""


# ----------------------------------------------------------------------------------------------------
# Boxes from a file


@dataclass
class BoxFile:
    """Person boxes read from an AVA-style CSV or JSON file.

    ``boxes[video_id][timestamp]`` is a list of ``(x1, y1, x2, y2, score)`` rows, coordinates normalised
    to [0, 1] (clipped), ``score`` ``nan`` where the file gives none. ``warnings`` tells the boxes that
    were clipped; ``path`` is the file.
    """

    path: str
    boxes: dict[str, dict[float, list[tuple[float, float, float, float, float]]]]
    warnings: list[str] = field(default_factory=list)

    @property
    def video_ids(self) -> list[str]:
        return sorted(self.boxes)

    def unused(self, video_ids: Iterable[str]) -> list[str]:
        """The file's video ids that are none of ``video_ids`` (boxes no video will use)."""
        known = set(video_ids)
        return [v for v in self.video_ids if v not in known]

    def for_video(self, video_id: str) -> dict[float, list[tuple[float, float, float, float, float]]]:
        """The boxes of one video by timestamp; ``BoxFileError`` naming the file's ids when it has none."""
        if video_id not in self.boxes:
            ids = self.video_ids
            shown = ", ".join(ids[:10]) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")
            raise BoxFileError(
                f"{self.path}: no boxes for video id {video_id!r} (a video's id is its file name without the "
                f"suffix); the file has boxes for {shown or 'no video'}."
            )
        return self.boxes[video_id]


def _box_row(where: str, values: Sequence[Any], warnings: list[str]) -> tuple[float, float, float, float]:
    """Four normalised coordinates, checked: finite, not inverted, not empty; clipped to [0, 1] with a warning."""
    try:
        x1, y1, x2, y2 = (float(v) for v in values)
    except (TypeError, ValueError):
        raise BoxFileError(f"{where}: the box {list(values)} is not four numbers x1, y1, x2, y2.") from None
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        raise BoxFileError(f"{where}: the box {[x1, y1, x2, y2]} has a coordinate that is not a finite number.")
    if x2 < x1 or y2 < y1:
        raise BoxFileError(f"{where}: the box {[x1, y1, x2, y2]} is inverted; give x1 <= x2 and y1 <= y2.")
    if x2 == x1 or y2 == y1:
        raise BoxFileError(f"{where}: the box {[x1, y1, x2, y2]} is empty (zero width or height).")
    clipped = [min(max(v, 0.0), 1.0) for v in (x1, y1, x2, y2)]
    if clipped != [x1, y1, x2, y2]:
        if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
            raise BoxFileError(f"{where}: the box {[x1, y1, x2, y2]} lies outside the frame (coordinates are in [0, 1]).")
        warnings.append(f"{where}: the box {[x1, y1, x2, y2]} reaches outside the frame; clipped to {clipped}.")
    return clipped[0], clipped[1], clipped[2], clipped[3]


def _number(where: str, value: Any, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise BoxFileError(f"{where}: the {what} {value!r} is not a number.") from None
    if not math.isfinite(number):
        raise BoxFileError(f"{where}: the {what} {value!r} is not a finite number.")
    return number


def read_boxes(path: str | os.PathLike[str]) -> BoxFile:
    """Read person boxes from an AVA-style CSV or a JSON file (told apart by the ``.json`` suffix).

    Args:
        path: a CSV file of rows ``video_id,timestamp,x1,y1,x2,y2`` (optionally followed by AVA's
            ``action_id`` and ``score`` columns; an ``action_id`` is ignored, several rows of the same
            box with different actions count once), coordinates normalised to [0, 1], no header (a first
            line starting ``video_id`` is skipped); or a JSON list of objects ``{"video_id": ...,
            "timestamp": ..., "box": [x1, y1, x2, y2], "score": ...}`` (``score`` optional).

    Raises :class:`BoxFileError` naming the line (CSV, 1-based) or the entry (JSON, 0-based) of the
    first bad box; a box that reaches outside [0, 1] is clipped and listed in ``warnings``.
    """
    name = os.fspath(path)
    if not os.path.isfile(name):
        raise BoxFileError(f"{name}: no such box file.")
    boxes: dict[str, dict[float, list[tuple[float, float, float, float, float]]]] = {}
    warnings: list[str] = []
    seen: set[tuple[str, float, tuple[float, ...]]] = set()

    def add(where: str, video_id: Any, timestamp: Any, box: Sequence[Any], score: Any) -> None:
        if not isinstance(video_id, str) or not video_id.strip():
            raise BoxFileError(f"{where}: the video id {video_id!r} is empty.")
        t = _number(where, timestamp, "timestamp")
        if t < 0:
            raise BoxFileError(f"{where}: the timestamp {t} is negative.")
        coords = _box_row(where, box, warnings)
        s = float("nan") if score in (None, "") else _number(where, score, "score")
        key = (video_id.strip(), t, coords)
        if key in seen:  # AVA's files repeat a box once per action
            return
        seen.add(key)
        boxes.setdefault(video_id.strip(), {}).setdefault(t, []).append((*coords, s))

    try:
        text = Path(name).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise BoxFileError(f"{name}: not a text file (expected an AVA-style CSV or JSON box file).") from None
    if name.lower().endswith(".json"):
        try:
            entries = json.loads(text)
        except json.JSONDecodeError as e:
            raise BoxFileError(f"{name}: not valid JSON ({e.msg} at line {e.lineno}).") from None
        if not isinstance(entries, list):
            raise BoxFileError(f"{name}: expected a JSON list of {{video_id, timestamp, box}} objects.")
        for i, entry in enumerate(entries):
            where = f"{name} entry {i}"
            if not isinstance(entry, dict) or not {"video_id", "timestamp", "box"} <= set(entry):
                raise BoxFileError(f"{where}: expected an object with video_id, timestamp and box, got {entry!r}.")
            box = entry["box"]
            if not isinstance(box, list) or len(box) != 4:
                raise BoxFileError(f"{where}: box must be a list [x1, y1, x2, y2], got {box!r}.")
            add(where, entry["video_id"], entry["timestamp"], box, entry.get("score"))
    else:
        for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
            where = f"{name} line {number}"
            if not row or all(not cell.strip() for cell in row):
                continue
            if number == 1 and row[0].strip().lower() == "video_id":
                continue
            if len(row) < 6 or len(row) > 8:
                raise BoxFileError(
                    f"{where}: expected video_id,timestamp,x1,y1,x2,y2 (and optionally action_id,score), got "
                    f"{len(row)} column(s): {','.join(row)!r}."
                )
            score = row[7].strip() if len(row) == 8 else None
            add(where, row[0], row[1].strip(), [c.strip() for c in row[2:6]], score)
    return BoxFile(name, boxes, warnings)


# ----------------------------------------------------------------------------------------------------
# Results


@dataclass
class Person:
    """One person in one keyframe: its box, its track and its actions."""

    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in the video's pixels
    score: float | None  # the person detector's score (None for boxes from a file without scores)
    actions: list[tuple[str, float]]  # at least `threshold` probable, most probable first
    top_k: list[tuple[str, float]]  # the most probable actions, most probable first
    person: int = 0  # track id, 1, 2, ... (link_tracks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "person": self.person,
            "box": [round(v, 2) for v in self.box],
            "score": None if self.score is None else round(self.score, 6),
            "actions": [{"label": label, "probability": round(p, 6)} for label, p in self.actions],
            "top_k": [{"label": label, "probability": round(p, 6)} for label, p in self.top_k],
        }


@dataclass
class Keyframe:
    """A keyframe: its time, the frame it is, and the persons in it (none is an empty result)."""

    index: int
    time: float  # seconds from the first frame
    frame_index: int  # the video's frame nearest ``time``
    persons: list[Person]
    probs: Tensor = field(repr=False)  # float (persons, num_classes): every action's probability

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index, "time": round(self.time, 6), "frame_index": self.frame_index,
            "persons": [p.to_dict() for p in self.persons],
        }  # fmt: skip


@dataclass
class Detections:
    """A video's keyframes with their persons and actions (see the module docstring)."""

    video: str
    model: str
    weights: str
    detector: str  # the person detector's name, or the box file's path
    width: int
    height: int
    fps: float
    duration: float
    threshold: float
    categories: list[str] = field(repr=False)
    keyframes: list[Keyframe] = field(repr=False)
    warnings: list[str] = field(default_factory=list, repr=False)

    def __len__(self) -> int:
        return len(self.keyframes)

    @property
    def video_id(self) -> str:
        return Path(self.video).stem

    def to_dict(self) -> dict[str, Any]:
        return {
            "video": self.video, "model": self.model, "weights": self.weights, "detector": self.detector,
            "width": self.width, "height": self.height, "fps": round(self.fps, 6), "duration": round(self.duration, 6),
            "threshold": self.threshold, "keyframes": [k.to_dict() for k in self.keyframes],
            "tracks": [s.to_dict() for s in self.spans()], "warnings": list(self.warnings),
        }  # fmt: skip

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def to_csv(self) -> str:
        """AVA's detection format, which AVA's official evaluation reads: ``video_id,timestamp,x1,y1,x2,y2,
        action_id,score`` per person and action at least ``threshold`` probable; coordinates normalised to
        [0, 1], ``action_id`` AVA's (class index + 1), ``score`` the action's probability. The track of each
        person is in :meth:`to_json` (AVA's format has no column for it)."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        index = {name: i for i, name in enumerate(self.categories)}
        for k in self.keyframes:
            for p in k.persons:
                x1, y1, x2, y2 = p.box
                coords = [f"{x1 / self.width:.4f}", f"{y1 / self.height:.4f}", f"{x2 / self.width:.4f}", f"{y2 / self.height:.4f}"]
                for label, prob in p.actions:
                    writer.writerow([self.video_id, f"{k.time:g}", *coords, index[label] + 1, f"{prob:.6f}"])
        return out.getvalue()

    def to_table(self) -> str:
        """One line per person and keyframe: time, person, box and actions; then each track's actions over time."""
        head = (
            f"{self.video}  ({self.model}, persons from {self.detector}, {len(self)} keyframes, actions at least "
            f"{self.threshold:g} probable)"
        )
        lines = [head, f"  {'time':>8}  {'person':>6}  {'box (x1, y1, x2, y2)':<24}  actions"]
        for k in self.keyframes:
            if not k.persons:
                lines.append(f"  {_clock(k.time):>8}  {'-':>6}  {'no person':<24}")
            for p in k.persons:
                box = ", ".join(f"{v:.0f}" for v in p.box)
                text = "; ".join(f"{label} ({prob:.2f})" for label, prob in p.actions)
                if not text:
                    label, prob = p.top_k[0] if p.top_k else ("-", 0.0)
                    text = f"none   [top: {label} ({prob:.2f})]"
                lines.append(f"  {_clock(k.time):>8}  {p.person:>6}  {box:<24}  {text}")
        spans = self.spans()
        if spans:
            lines.append("")
            lines.append("  tracks:")
            lines.extend(f"    {s}" for s in spans)
        return "\n".join(lines) + "\n"

    def spans(self) -> list[ActionSpan]:
        """Each person's actions over time: runs of consecutive keyframes of its track with the action at
        least ``threshold`` probable, in order of start time."""
        runs: dict[tuple[int, str], list[float]] = {}  # (person, label) -> [start, end] of the open run
        last_seen: dict[int, int] = {}  # person -> index of its last keyframe
        out: list[ActionSpan] = []
        for position, k in enumerate(self.keyframes):
            present = {p.person: p for p in k.persons}
            for (person, label), run in list(runs.items()):
                p = present.get(person)
                if p is None or label not in {a for a, _ in p.actions}:
                    out.append(ActionSpan(person, label, run[0], run[1]))
                    del runs[(person, label)]
            for p in k.persons:
                last_seen[p.person] = position
                for label, _ in p.actions:
                    if (p.person, label) in runs:
                        runs[(p.person, label)][1] = k.time
                    else:
                        runs[(p.person, label)] = [k.time, k.time]
        out.extend(ActionSpan(person, label, start, end) for (person, label), (start, end) in runs.items())
        return sorted(out, key=lambda s: (s.start, s.person, s.label))

    # -- pictures ------------------------------------------------------------------------------------

    def plot(self, folder: str | os.PathLike[str], *, dpi: int = 100) -> list[str]:
        """Draw every keyframe with each person's box, id and actions into ``folder`` (created) as
        ``keyframe_<index>_<seconds>s.png``; returns the paths. Needs matplotlib."""
        figure_class = _matplotlib("Detections.plot")
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        wanted = sorted({k.frame_index for k in self.keyframes})
        paths = []
        with VideoReader(self.video, backend="pyav") as reader:
            frames = dict(reader.iter_frames(wanted))
        for k in self.keyframes:
            frame = frames[k.frame_index].permute(1, 2, 0).numpy()
            height, width = frame.shape[:2]
            zoom = max(1.0, 640 / width)  # small videos are drawn 640 pixels wide, so that the text fits
            fig = figure_class(figsize=(width * zoom / dpi, height * zoom / dpi), dpi=dpi)
            ax = fig.add_axes((0, 0, 1, 1))
            ax.imshow(frame)
            _draw_persons(ax, k.persons, width, height, f"{_clock(k.time)}  ({self.model})")
            path = out / f"keyframe_{k.index:04d}_{k.time:.2f}s.png"
            fig.savefig(path, dpi=dpi)
            paths.append(str(path))
        return paths

    def write_video(self, path: str | os.PathLike[str], *, codec: str = "libx264", progress: Callable[[int, int], None] | None = None) -> str:
        """Re-encode the video with PyAV into ``path`` (``.mp4``), each frame showing the boxes, ids and
        actions of the nearest keyframe at or before it (streamed: one frame in memory at a time). The
        overlay of each keyframe is drawn once with matplotlib and laid over its frames with tensor ops."""
        import av
        import numpy as np

        figure_class = _matplotlib("Detections.write_video")
        times = [k.time for k in self.keyframes]
        overlays: dict[int, Tensor] = {}
        with VideoReader(self.video, backend="pyav") as reader:
            total = reader.num_frames
            stamps = reader.timestamps.tolist()
            fps = reader.fps if reader.fps and reader.fps > 0 else 30.0
            container = av.open(os.fspath(path), "w")
            try:
                stream = container.add_stream(codec, rate=round(fps * 1000) / 1000 if fps % 1 else int(fps))
                stream.width, stream.height = self.width + self.width % 2, self.height + self.height % 2
                stream.pix_fmt = "yuv420p"
                for done, (i, frame) in enumerate(reader.iter_frames(), start=1):
                    current = _keyframe_at(times, stamps[i])
                    picture = frame
                    if current is not None:
                        if current not in overlays:
                            overlays.clear()
                            k = self.keyframes[current]
                            overlays[current] = _overlay(figure_class, k.persons, self.width, self.height, _clock(k.time))
                        picture = _composite(frame, overlays[current])
                    image = picture.permute(1, 2, 0).numpy()
                    if image.shape[0] != stream.height or image.shape[1] != stream.width:
                        image = np.pad(image, ((0, stream.height - image.shape[0]), (0, stream.width - image.shape[1]), (0, 0)))
                    for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")):
                        container.mux(packet)
                    if progress is not None:
                        progress(done, total)
                for packet in stream.encode():
                    container.mux(packet)
            finally:
                container.close()
        return os.fspath(path)


@dataclass(frozen=True)
class ActionSpan:
    """One person doing one action over consecutive keyframes, ``start`` to ``end`` seconds (keyframe times)."""

    person: int
    label: str
    start: float
    end: float

    def to_dict(self) -> dict[str, Any]:
        return {"person": self.person, "label": self.label, "start": round(self.start, 6), "end": round(self.end, 6)}

    def __str__(self) -> str:
        if self.start == self.end:
            return f"person {self.person} {self.label} at {_clock(self.start)}"
        return f"person {self.person} {self.label} from {_clock(self.start)} to {_clock(self.end)}"


def _clock(seconds: float) -> str:
    """``mm:ss`` (``h:mm:ss`` past an hour), fractions of a second kept when there are any."""
    whole = int(seconds)
    frac = seconds - whole
    minutes, secs = divmod(whole, 60)
    hours, minutes = divmod(minutes, 60)
    text = f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"
    return text + (f"{frac:.2f}"[1:] if frac > 1e-6 else "")


def _keyframe_at(times: Sequence[float], t: float) -> int | None:
    """The last keyframe at or before ``t`` (a frame before the first keyframe shows the first)."""
    if not times:
        return None
    chosen = 0
    for i, kt in enumerate(times):
        if kt <= t + 1e-9:
            chosen = i
    return chosen


# ----------------------------------------------------------------------------------------------------
# Drawing (matplotlib, an optional extra)

_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]


def _matplotlib(what: str) -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(
            f'{what} needs matplotlib, which is not installed: pip install "videozoo[plot]" (or pip install matplotlib).'
        ) from None
    return Figure


def _draw_persons(ax: Any, persons: Sequence[Person], width: int, height: int, title: str) -> None:
    """Each person's box, its id and its actions (or its top action) on ``ax``, in pixel coordinates."""
    from matplotlib.patches import Rectangle

    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.set_axis_off()
    size = max(6.0, min(12.0, height / 40))
    ax.text(4, 4, title, color="white", fontsize=size, va="top", ha="left", bbox={"facecolor": "black", "alpha": 0.5, "pad": 2})
    for p in persons:
        colour = _COLOURS[(p.person - 1) % len(_COLOURS)]
        x1, y1, x2, y2 = p.box
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=colour, linewidth=2))
        shown = p.actions[:3] or p.top_k[:1]
        text = "\n".join([f"person {p.person}"] + [f"{label} {prob:.2f}" for label, prob in shown])
        ax.text(x1 + 2, y1 + 2, text, color="white", fontsize=size, va="top", ha="left",
                bbox={"facecolor": colour, "alpha": 0.7, "pad": 2, "edgecolor": "none"})  # fmt: skip


def _overlay(figure_class: Any, persons: Sequence[Person], width: int, height: int, title: str) -> Tensor:
    """The drawing of one keyframe on a transparent ``(4, H, W)`` uint8 RGBA canvas of the video's size."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    dpi = 100
    fig = figure_class(figsize=(width / dpi, height / dpi), dpi=dpi)
    fig.patch.set_alpha(0.0)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.patch.set_alpha(0.0)
    _draw_persons(ax, persons, width, height, title)
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())[:height, :width]
    return torch.from_numpy(rgba.copy()).permute(2, 0, 1)


def _composite(frame: Tensor, overlay: Tensor) -> Tensor:
    """``overlay`` (RGBA) laid over the uint8 RGB ``frame`` by its alpha."""
    h = min(frame.shape[1], overlay.shape[1])
    w = min(frame.shape[2], overlay.shape[2])
    out = frame.clone()
    alpha = overlay[3:, :h, :w].float() / 255.0
    mixed = frame[:, :h, :w].float() * (1 - alpha) + overlay[:3, :h, :w].float() * alpha
    out[:, :h, :w] = mixed.round().clamp(0, 255).to(torch.uint8)
    return out


# ----------------------------------------------------------------------------------------------------
# Tracks


def link_tracks(keyframes: Sequence[Keyframe], iou_threshold: float = 0.3, max_gap: int = 1) -> None:
    """Give every person of ``keyframes`` (in time order) a track id, in place.

    A person continues the track whose latest box it overlaps most (IoU at least ``iou_threshold``),
    matched greedily, the largest overlap first, one person per track; the others start new tracks
    (ids 1, 2, ... in order of appearance). A track not matched for more than ``max_gap`` keyframes in a
    row ends. This is the simple tracker AVA-style demos use: it follows people who move less than
    their own size between keyframes, and may swap two people who cross.
    """
    tracks: dict[int, tuple[Tensor, int]] = {}  # id -> (latest box, keyframe position it was seen at)
    next_id = 1
    for position, k in enumerate(keyframes):
        for track_id in [t for t, (_, seen) in tracks.items() if position - seen > max_gap + 1]:
            del tracks[track_id]
        if not k.persons:
            continue
        boxes = torch.tensor([p.box for p in k.persons], dtype=torch.float64)
        ids = list(tracks)
        assigned: dict[int, int] = {}
        if ids:
            iou = box_iou(boxes, torch.stack([tracks[t][0] for t in ids]))
            pairs = sorted(
                ((float(iou[i, j]), i, j) for i in range(len(k.persons)) for j in range(len(ids))), key=lambda x: -x[0]
            )
            used_tracks: set[int] = set()
            for value, i, j in pairs:
                if value < iou_threshold:
                    break
                if i in assigned or j in used_tracks:
                    continue
                assigned[i] = ids[j]
                used_tracks.add(j)
        for i, p in enumerate(k.persons):
            if i not in assigned:
                assigned[i] = next_id
                next_id += 1
            p.person = assigned[i]
            tracks[p.person] = (boxes[i], position)


# ----------------------------------------------------------------------------------------------------
# The task


#: The person detector ``detect`` prefers when none is named (DETR-R50, the smaller of the two DETRs;
#: COCO box AP 42.0); any other registered one otherwise.
PREFERRED_DETECTOR = "detr_resnet50"


def default_detector() -> str:
    """The registered person detector ``detect`` uses when none is named: :data:`PREFERRED_DETECTOR` if it
    is registered, else the first of ``list_models(task="person_detection")``; ``ValueError`` when there
    is none."""
    names = list_models(task="person_detection")
    if PREFERRED_DETECTOR in names:
        return PREFERRED_DETECTOR
    if not names:
        raise ValueError(
            "No person detector is registered (models of task 'person_detection'); give the person boxes instead "
            "(boxes=, or --boxes FILE: an AVA-style CSV or JSON)."
        )
    return names[0]


@dataclass(frozen=True)
class KeyframeClip:
    """A keyframe's place in the video: its time, its frame and the frames of its clip."""

    index: int
    time: float
    frame_index: int
    clip: Tensor  # int64 (num_frames,)


def keyframe_clips(timestamps: Tensor, times: Sequence[float], num_frames: int, step: float) -> list[KeyframeClip]:
    """The clip of each keyframe time: ``num_frames`` frames ``step`` seconds apart, the first
    ``num_frames / 2`` steps before it, each the frame nearest its time (edge frames past either end)."""
    offsets = (torch.arange(num_frames, dtype=torch.float64) - num_frames // 2) * step
    out = []
    for i, t in enumerate(times):
        key = int(nearest_frames(timestamps, torch.tensor([t], dtype=torch.float64))[0])
        out.append(KeyframeClip(i, float(t), key, nearest_frames(timestamps, t + offsets)))
    return out


def _iter_keyframe_frames(reader: VideoReader, clips: list[KeyframeClip]) -> Iterator[tuple[KeyframeClip, dict[int, Tensor]]]:
    """Each keyframe's clip with the frames it needs, in order, decoding the video once and holding only
    the frames of clips not yet emitted."""
    if not clips:
        return
    lows = [int(c.clip.min()) for c in clips]
    highs = [max(int(c.clip.max()), c.frame_index) for c in clips]
    keep_from = lows[:]
    for w in range(len(lows) - 2, -1, -1):
        keep_from[w] = min(lows[w], keep_from[w + 1])
    wanted = sorted({int(i) for c in clips for i in c.clip.tolist()} | {c.frame_index for c in clips})
    held: dict[int, Tensor] = {}
    nxt = 0
    for i, frame in reader.iter_frames(wanted):
        held[i] = frame
        while nxt < len(clips) and highs[nxt] <= i:
            yield clips[nxt], held
            nxt += 1
            if nxt < len(clips):
                for j in [j for j in held if j < min(keep_from[nxt], clips[nxt].frame_index)]:
                    del held[j]


def resize_short_side(frames: Tensor, short_side: int) -> tuple[Tensor, float]:
    """uint8 ``(T, 3, H, W)`` frames with their short side ``short_side`` (bilinear, rounded back to uint8 as
    PySlowFast's cv2 resize returns them) and the factor the long side was scaled by (PySlowFast's
    ``scale_boxes``: the same factor for both coordinates)."""
    h, w = frames.shape[-2:]
    if min(h, w) == short_side:
        return frames, 1.0
    if w < h:
        new_w, new_h = short_side, math.floor(h / w * short_side)
        factor = new_h / h
    else:
        new_h, new_w = short_side, math.floor(w / h * short_side)
        factor = new_w / w
    out = F.interpolate(frames.float(), size=(new_h, new_w), mode="bilinear", align_corners=False)
    return out.round().clamp(0, 255).to(torch.uint8), factor


def detect(
    video: str | os.PathLike[str],
    model: str | nn.Module | Runner,
    weights: WeightsArg = "DEFAULT",
    *,
    boxes: str | os.PathLike[str] | BoxFile | None = None,
    video_id: str | None = None,
    detector: str | nn.Module | None = None,
    detector_weights: WeightsArg = "DEFAULT",
    person_threshold: float | None = None,
    rate: float = 1.0,
    threshold: float = DEFAULT_THRESHOLD,
    top_k: int = 3,
    iou_threshold: float = 0.3,
    device: str | torch.device = "cpu",
    dtype: str = "fp32",
    progress: Callable[[int, int], None] | None = None,
) -> Detections:
    """Detect persons and their actions at keyframes of a video (see the module docstring).

    Args:
        video: a video file.
        model: an action detector's name (task ``"action_detection"``), an ``nn.Module`` with ``weights``
            its member, or a loaded :class:`~videozoo.tasks.runner.Runner`.
        weights: a member, its name or a local checkpoint path.
        boxes: person boxes from a file (:func:`read_boxes`) instead of a detector; its timestamps for
            this video are the keyframes.
        video_id: the video's id in ``boxes`` (default: the file name without its suffix).
        detector: a person detector's name (task ``"person_detection"``) or module; default
            :func:`default_detector`. Unused with ``boxes``.
        detector_weights: the detector's weights.
        person_threshold: the detector's score threshold (default: its ``default_score_threshold``).
        rate: keyframes per second (from the first frame), without ``boxes``.
        threshold: the actions at least this probable are a person's labels (default 0.5, PyTorchVideo's demo).
        top_k: the most probable actions kept per person besides.
        iou_threshold: :func:`link_tracks`' overlap to continue a track.
        device, dtype: where and in which precision the models run (``"fp32"`` or ``"bf16"``, as :func:`~videozoo.tasks.runner.load_model`).
        progress: called as ``progress(done, total)`` after each keyframe.

    Raises :class:`BoxFileError` for an unusable box file, ``ValueError`` for a model that is not an
    action detector, :class:`~videozoo.errors.VideoDecodeError` for an unreadable video.
    """
    check_threshold(threshold)
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}.")
    if not (isinstance(rate, (int, float)) and math.isfinite(rate) and rate > 0):
        raise ValueError(f"rate must be a positive number of keyframes per second, got {rate!r}.")
    runner = model if isinstance(model, Runner) else load_model(model, weights, device=device, dtype=dtype, tasks=("action_detection",))
    meta = runner.weights.meta
    labels = runner.labels
    box_file = read_boxes(boxes) if boxes is not None and not isinstance(boxes, BoxFile) else boxes
    path = os.fspath(video)
    warnings: list[str] = []
    finder: Callable[[Tensor], Tensor] | None = None
    if box_file is None:
        person_model = _detector(detector, detector_weights, runner.device)
        source = detector if isinstance(detector, str) else default_detector() if detector is None else _name_of(person_model)

        def finder(frame: Tensor) -> Tensor:
            with torch.inference_mode():
                found = person_model.detect_persons(frame[None].float().div(255).to(runner.device), person_threshold)[0]
            return found.float().cpu()
    else:
        source = box_file.path
    with VideoReader(path, backend="pyav") as reader:
        timestamps = reader.timestamps
        duration = reader.duration
        fps = reader.info.fps or 0.0
        height, width = reader.info.height, reader.info.width
        if box_file is not None:
            given = box_file.for_video(video_id or Path(path).stem)
            warnings.extend(box_file.warnings)
            times = sorted(given)
            late = [t for t in times if t > duration]
            if late:
                warnings.append(
                    f"{box_file.path}: {len(late)} timestamp(s) of {video_id or Path(path).stem!r} lie past the video's "
                    f"end ({duration:.3f} s), e.g. {late[0]:g}; their boxes were not used."
                )
                times = [t for t in times if t <= duration]
        else:
            times = [i / rate for i in range(math.floor(duration * rate - 1e-9) + 1)] if duration > 0 else [0.0]
        step = meta["sampling_rate"] / meta["frame_rate"]
        clips = keyframe_clips(timestamps, times, meta["num_frames"], step)
        short_side = int(meta.get("box_short_side", 256))
        mean = torch.tensor(MEAN).view(3, 1, 1, 1)
        std = torch.tensor(STD).view(3, 1, 1, 1)
        keyframes: list[Keyframe] = []
        for clip, held in _iter_keyframe_frames(reader, clips):
            if box_file is not None:
                rows = torch.tensor(given[clip.time], dtype=torch.float64)
                pixel = rows[:, :4] * torch.tensor([width, height, width, height], dtype=torch.float64)
                scores: list[float | None] = [None if math.isnan(s) else float(s) for s in rows[:, 4].tolist()]
            else:
                assert finder is not None
                found = finder(held[clip.frame_index])
                pixel, scores = found[:, :4].double(), [float(s) for s in found[:, 4].tolist()]
            persons: list[Person] = []
            probs = torch.zeros(0, len(labels.categories))
            if len(pixel):
                frames, factor = resize_short_side(torch.stack([held[int(i)] for i in clip.clip]), short_side)
                x = (frames.permute(1, 0, 2, 3).float() / 255.0 - mean) / std  # (3, T, h, w)
                scaled = pixel.float() * factor
                scaled[:, 0::2] = scaled[:, 0::2].clamp(0, frames.shape[-1] - 1)
                scaled[:, 1::2] = scaled[:, 1::2].clamp(0, frames.shape[-2] - 1)
                rois = torch.cat([torch.zeros(len(scaled), 1), scaled], 1)
                with torch.inference_mode():
                    logits = runner.model(runner.model_input(x[None]), rois.to(runner.device))
                probs = labels.probabilities(logits.float().cpu())
                for box, score, row in zip(pixel.tolist(), scores, probs):
                    persons.append(Person(tuple(box), score, labels.above(row, threshold), labels.top_k(row, top_k)))  # type: ignore[arg-type]
            keyframes.append(Keyframe(clip.index, clip.time, clip.frame_index, persons, probs))
            if progress is not None:
                progress(len(keyframes), len(clips))
    link_tracks(keyframes, iou_threshold)
    return Detections(
        video=path, model=runner.model_name, weights=runner.weights_name, detector=source, width=width, height=height,
        fps=fps, duration=duration, threshold=float(threshold), categories=list(labels.categories), keyframes=keyframes,
        warnings=warnings,
    )  # fmt: skip


def _name_of(module: nn.Module) -> str:
    """A person detector's name in results: the registered name it was loaded under, or its class name."""
    return getattr(module, "_videozoo_name", type(module).__name__)


def _detector(detector: str | nn.Module | None, weights: WeightsArg, device: torch.device) -> Any:
    """The person detector module, loaded once, in eval mode on ``device`` (remembering its registered name)."""
    if isinstance(detector, nn.Module):
        module = detector
    else:
        name = detector if detector is not None else default_detector()
        if get_model_task(name) != "person_detection":
            raise ValueError(
                f"{name!r} is a {get_model_task(name)} model, not a person detector; person detectors: "
                f"{', '.join(list_models(task='person_detection')) or 'none registered'}."
            )
        module = get_model(name, weights=weights)
        module._videozoo_name = name
    if not hasattr(module, "detect_persons"):
        raise ValueError(f"{type(module).__name__} has no detect_persons(frames, score_threshold); it is no person detector.")
    return module.eval().to(device)


def detect_collection(
    videos_or_manifest: VideosArg,
    model: str | nn.Module,
    out_dir: str | os.PathLike[str],
    weights: WeightsArg = "DEFAULT",
    *,
    device: str | torch.device = "cpu",
    dtype: str = "fp32",
    boxes: str | os.PathLike[str] | BoxFile | None = None,
    **options: Any,
) -> list[dict[str, Any]]:
    """The detections of every video not yet done into ``out_dir/detections.jsonl``; returns the records
    (rank 0: all). Each record is ``video``, ``model``, ``weights``, ``status``, ``error`` and for ``ok``
    the result's fields (as ``videozoo detect --json``). A video without boxes in ``boxes`` is an error
    record.

    Args:
        videos_or_manifest: video paths, or a manifest file.
        model, weights, device, dtype, boxes: as :func:`detect`; the models are loaded once per process.
        options: :func:`detect`'s other keywords (``detector``, ``rate``, ``threshold``, ...).
    """
    runner = load_model(model, weights, device=device, dtype=dtype, tasks=("action_detection",))
    box_file = read_boxes(boxes) if boxes is not None and not isinstance(boxes, BoxFile) else boxes
    config = {
        **runner.describe(), "dtype": dtype, "boxes": None if box_file is None else os.path.abspath(box_file.path),
        **{k: v for k, v in options.items() if k != "progress"},
    }  # fmt: skip
    if box_file is None:
        detector = options.pop("detector", None)
        module = _detector(detector, options.pop("detector_weights", "DEFAULT"), runner.device)
        options["detector"] = module
        config["detector"] = detector if detector is not None else default_detector()
    process = one_at_a_time(lambda path: detect(path, runner, boxes=box_file, **options), (VideoDecodeError, BoxFileError))
    return run_collection(videos_or_manifest, out_dir, CollectionTask("detect", DETECTIONS, runner.describe(), process, config=config))
