"""Frame-mAP at IoU 0.5, computed as AVA's official evaluation computes it.

The protocol is the ActivityNet challenge's ``get_ava_performance.py`` (github.com/activitynet/ActivityNet,
Evaluation/), which runs the TensorFlow Object Detection API's Pascal VOC evaluation
(``PascalDetectionEvaluator``, ``per_image_evaluation``, ``metrics.compute_average_precision``) on
keyframes. This module follows it step by step; only the code is our own:

* **Keyframes** are keyed by ``video_id`` and the timestamp as a number (``"0902"``, ``"902"`` and
  ``"902.0"`` are one keyframe).
* **Classes**: only the label map's ids are read (by default AVA's 60 evaluated actions); rows of other
  ids are skipped in both files.
* **Ground truth**: every row is a box of one action (a person doing two actions is two rows). A row of
  two columns (``video_id,timestamp``) is a keyframe without actions: detections there are false positives.
* **Detections**: per keyframe, the 50 highest-scoring rows of the label map's classes (over all
  classes); detections on a keyframe the ground-truth file does not have are ignored (counted in
  ``ignored_keyframes``). A box whose ``x2 <= x1`` or ``y2 <= y1`` is dropped.
* **Excluded timestamps** (AVA v2.x's ``ava_*_excluded_timestamps_*.csv``, the earlier official
  protocol): keyframes listed there are left out of both files.
* **Matching**, per keyframe and class, detections in descending score: each goes to the ground-truth box
  it overlaps most (IoU, boxes in the files' normalised coordinates, no +1); it is a true positive when
  that IoU is at least 0.5 and the box is not yet taken, otherwise a false positive (even if another
  box it overlaps by 0.5 is still free: VOC's rule).
* **AP** per class: all its detections by descending score (numpy's ``argsort`` reversed, so ties are
  broken as the reference breaks them), precision and recall, precision made non-increasing from the
  right, summed over the points where recall changes (VOC 2010+, no 11-point sampling). A class with
  ground truth but no detection has AP 0; a class without ground truth has none (NaN) and is left out of
  the mean. **mAP** is the mean over the label map's classes that have ground truth.

CSV rows are ``video_id, timestamp, x1, y1, x2, y2, action_id`` and an 8th column: the person id in
ground truth (unused), the score in detections (1.0 when absent). Coordinates are fractions of the
frame, as AVA ships them (and as ``videozoo detect --csv`` writes them). Like the official script, 2, 7
or 8 columns only.
"""

from __future__ import annotations

import csv
import heapq
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

import numpy as np

__all__ = [
    "AVA_EVALUATED_ACTIONS",
    "FrameMAP",
    "Row",
    "average_precision",
    "evaluate",
    "evaluate_files",
    "keyframe_key",
    "read_csv",
    "read_exclusions",
    "read_labelmap",
]

#: AVA's 60 evaluated action ids and their names, from the official evaluation's label map
#: (ActivityNet's Evaluation/ava/ava_action_list_v2.1_for_activitynet_2018.pbtxt; AVA v2.2 evaluates
#: the same 60).
AVA_EVALUATED_ACTIONS: dict[int, str] = {
    1: 'bend/bow (at the waist)',
    3: 'crouch/kneel',
    4: 'dance',
    5: 'fall down',
    6: 'get up',
    7: 'jump/leap',
    8: 'lie/sleep',
    9: 'martial art',
    10: 'run/jog',
    11: 'sit',
    12: 'stand',
    13: 'swim',
    14: 'walk',
    15: 'answer phone',
    17: 'carry/hold (an object)',
    20: 'climb (e.g., a mountain)',
    22: 'close (e.g., a door, a box)',
    24: 'cut',
    26: 'dress/put on clothing',
    27: 'drink',
    28: 'drive (e.g., a car, a truck)',
    29: 'eat',
    30: 'enter',
    34: 'hit (an object)',
    36: 'lift/pick up',
    37: 'listen (e.g., to music)',
    38: 'open (e.g., a window, a car door)',
    41: 'play musical instrument',
    43: 'point to (an object)',
    45: 'pull (an object)',
    46: 'push (an object)',
    47: 'put down',
    48: 'read',
    49: 'ride (e.g., a bike, a car, a horse)',
    51: 'sail boat',
    52: 'shoot',
    54: 'smoke',
    56: 'take a photo',
    57: 'text on/look at a cellphone',
    58: 'throw',
    59: 'touch (an object)',
    60: 'turn (e.g., a screwdriver)',
    61: 'watch (e.g., TV)',
    62: 'work on a computer',
    63: 'write',
    64: 'fight/hit (a person)',
    65: 'give/serve (an object) to (a person)',
    66: 'grab (a person)',
    67: 'hand clap',
    68: 'hand shake',
    69: 'hand wave',
    70: 'hug (a person)',
    72: 'kiss (a person)',
    73: 'lift (a person)',
    74: 'listen to (a person)',
    76: 'push (another person)',
    77: 'sing to (e.g., self, a person, a group)',
    78: 'take (an object) from (a person)',
    79: 'talk to (e.g., self, a person, a group)',
    80: 'watch (a person)',
}

#: Detections kept per keyframe (the highest-scoring), as the official evaluation reads them.
DETECTIONS_PER_KEYFRAME = 50
IOU_THRESHOLD = 0.5


class CSVError(ValueError):
    """A malformed row of an AVA CSV file; the message names the file and line."""


def keyframe_key(video_id: str, timestamp: str) -> str:
    """One key per keyframe: the video id and the timestamp as a number with 6 decimals."""
    return f"{video_id},{float(Decimal(timestamp)):.6f}"


@dataclass(frozen=True)
class Row:
    """One box of one action on one keyframe; ``box`` is ``(x1, y1, x2, y2)`` in fractions of the frame."""

    key: str
    box: tuple[float, float, float, float]
    action_id: int
    score: float


def read_csv(path: str | Path, with_scores: bool) -> tuple[list[Row], list[str]]:
    """The rows of an AVA CSV file, and every keyframe key it names (in order of first appearance).

    Args:
        path: the file.
        with_scores: read the 8th column as the score (detections); ground truth's 8th column is a
            person id and is not read.

    Raises :class:`CSVError` naming the file and line of a row that is not 2, 7 or 8 columns of the
    right types.
    """
    rows: list[Row] = []
    keys: dict[str, None] = {}
    with open(path, newline="") as f:
        for line, fields in enumerate(csv.reader(f), start=1):
            if not fields or all(not x.strip() for x in fields):
                continue
            where = f"{path}, line {line}"
            if len(fields) not in (2, 7, 8):
                raise CSVError(
                    f"{where}: expected video_id,timestamp[,x1,y1,x2,y2,action_id[,{'score' if with_scores else 'person_id'}]] "
                    f"(2, 7 or 8 columns), got {len(fields)}: {','.join(fields)!r}"
                )
            try:
                key = keyframe_key(fields[0], fields[1])
            except (InvalidOperation, ValueError):
                raise CSVError(f"{where}: the timestamp {fields[1]!r} is not a number") from None
            keys[key] = None
            if len(fields) == 2:
                continue
            try:
                x1, y1, x2, y2 = (float(v) for v in fields[2:6])
            except ValueError:
                raise CSVError(f"{where}: the box {fields[2:6]} is not four numbers") from None
            try:
                action_id = int(fields[6])
            except ValueError:
                raise CSVError(f"{where}: the action id {fields[6]!r} is not an integer") from None
            score = 1.0
            if with_scores and len(fields) == 8:
                try:
                    score = float(fields[7])
                except ValueError:
                    raise CSVError(f"{where}: the score {fields[7]!r} is not a number") from None
            rows.append(Row(key, (x1, y1, x2, y2), action_id, score))
    return rows, list(keys)


def read_labelmap(path: str | Path) -> dict[int, str]:
    """``{id: name}`` of an AVA label map (``.pbtxt``: ``item { name: "..." id: N }``, or ``label_id: N``)."""
    labels: dict[int, str] = {}
    name = ""
    with open(path) as f:
        for line in f:
            text = line.strip()
            if text.startswith("name:"):
                name = text.split('"')[1] if '"' in text else text.split(":", 1)[1].strip()
            elif text.startswith(("id:", "label_id:")):
                labels[int(text.split(":", 1)[1])] = name
    if not labels:
        raise CSVError(f"{path}: no label ids found (expected lines like '  id: 12' after '  name: \"...\"')")
    return labels


def read_exclusions(path: str | Path) -> set[str]:
    """The keyframe keys of an AVA excluded-timestamps file (``video_id,timestamp`` rows)."""
    rows, keys = read_csv(path, with_scores=False)
    if rows:
        raise CSVError(f"{path}: an excluded-timestamps file has video_id,timestamp rows only")
    return set(keys)


# ----------------------------------------------------------------------------------------------------
# Matching and AP


def _iou(boxes1: np.ndarray, boxes2: np.ndarray) -> np.ndarray:
    """(N, M) IoU of (N, 4) and (M, 4) corner boxes; areas without +1."""
    top_left = np.maximum(boxes1[:, None, :2], boxes2[None, :, :2])
    bottom_right = np.minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])
    inter = np.prod(np.clip(bottom_right - top_left, 0, None), axis=2)
    area1 = np.prod(boxes1[:, 2:] - boxes1[:, :2], axis=1)
    area2 = np.prod(boxes2[:, 2:] - boxes2[:, :2], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / (area1[:, None] + area2[None, :] - inter)


def _match(detections: np.ndarray, groundtruth: np.ndarray, threshold: float) -> np.ndarray:
    """True/false positive of each detection (rows in descending score) against one class's boxes."""
    tp = np.zeros(len(detections), dtype=bool)
    if len(groundtruth) == 0:
        return tp
    iou = _iou(detections, groundtruth)
    best = np.argmax(iou, axis=1)
    taken = np.zeros(len(groundtruth), dtype=bool)
    for i, j in enumerate(best):
        if iou[i, j] >= threshold and not taken[j]:
            tp[i] = taken[j] = True
    return tp


def average_precision(scores: np.ndarray, tp: np.ndarray, num_groundtruth: int) -> float:
    """Pascal VOC's AP of one class: NaN without ground truth, 0 without detections.

    Args:
        scores: every detection's score.
        tp: whether each is a true positive.
        num_groundtruth: the class's ground-truth boxes.
    """
    if num_groundtruth == 0:
        return math.nan
    if len(scores) == 0:
        return 0.0
    order = np.argsort(scores)[::-1]
    hits = tp[order].astype(int)
    true_positives, false_positives = np.cumsum(hits), np.cumsum(1 - hits)
    precision = true_positives / (true_positives + false_positives)
    recall = true_positives / num_groundtruth
    recall = np.concatenate([[0.0], recall, [1.0]])
    precision = np.concatenate([[0.0], precision, [0.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]  # non-increasing from the right
    steps = np.where(recall[1:] != recall[:-1])[0] + 1
    return float(np.sum((recall[steps] - recall[steps - 1]) * precision[steps]))


@dataclass
class FrameMAP:
    """The result: ``mean_ap`` over the classes with ground truth, and per class (label-map order)."""

    mean_ap: float
    #: AP of each label-map class; NaN for a class without ground truth (left out of the mean).
    average_precision: dict[int, float]
    names: dict[int, str]
    num_groundtruth: dict[int, int]
    num_detections: dict[int, int]
    #: Keyframes with detections that the ground truth does not have (their detections are ignored).
    ignored_keyframes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        def number(x: float) -> float | None:
            return None if math.isnan(x) else x

        return {
            "mAP@0.5IOU": number(self.mean_ap),
            "classes": [
                {
                    "id": c,
                    "name": self.names[c],
                    "AP@0.5IOU": number(self.average_precision[c]),
                    "groundtruth": self.num_groundtruth[c],
                    "detections": self.num_detections[c],
                }
                for c in self.average_precision
            ],
            "ignored_keyframes": self.ignored_keyframes,
        }


def _top_detections(rows: Iterable[Row], capacity: int) -> dict[str, list[Row]]:
    """Per keyframe, the ``capacity`` highest-scoring rows, in descending score (ties as the reference's
    heap leaves them)."""
    heaps: dict[str, list[tuple[float, int, tuple[float, ...], int, Row]]] = {}
    for n, row in enumerate(rows):
        heap = heaps.setdefault(row.key, [])
        # the reference's heap entries: (score, action_id, y1, x1, y2, x2)
        y_first = (row.box[1], row.box[0], row.box[3], row.box[2])
        entry = (row.score, row.action_id, y_first, n, row)
        if len(heap) < capacity:
            heapq.heappush(heap, entry)
        elif row.score > heap[0][0]:
            heapq.heapreplace(heap, entry)
    return {key: [e[-1] for e in sorted(heap, key=lambda e: -e[0])] for key, heap in heaps.items()}


def evaluate(
    groundtruth: Iterable[Row],
    groundtruth_keys: Iterable[str],
    detections: Iterable[Row],
    labelmap: Mapping[int, str] | None = None,
    excluded: Iterable[str] = (),
    iou_threshold: float = IOU_THRESHOLD,
) -> FrameMAP:
    """Frame-mAP of ``detections`` against ``groundtruth`` (rows as :func:`read_csv` gives them).

    Args:
        groundtruth: the ground-truth rows.
        groundtruth_keys: every keyframe of the ground-truth file, those without actions included.
        detections: the detection rows.
        labelmap: the evaluated classes ``{id: name}`` (default: AVA's 60).
        excluded: keyframe keys left out of both.
        iou_threshold: the IoU a true positive needs (AVA: 0.5).
    """
    labelmap = dict(AVA_EVALUATED_ACTIONS if labelmap is None else labelmap)
    excluded = set(excluded)
    included = set(groundtruth_keys) - excluded
    gt_boxes: dict[tuple[str, int], list[tuple[float, ...]]] = {}
    for row in groundtruth:
        if row.action_id in labelmap and row.key not in excluded:
            gt_boxes.setdefault((row.key, row.action_id), []).append(row.box)
    num_gt = dict.fromkeys(labelmap, 0)
    for (_, action_id), boxes in gt_boxes.items():
        num_gt[action_id] += len(boxes)

    evaluated = (row for row in detections if row.action_id in labelmap and row.key not in excluded)
    scores: dict[int, list[np.ndarray]] = {c: [] for c in labelmap}
    hits: dict[int, list[np.ndarray]] = {c: [] for c in labelmap}
    ignored = []
    for key, rows in _top_detections(evaluated, DETECTIONS_PER_KEYFRAME).items():
        if key not in included:
            ignored.append(key)
            continue
        rows = [r for r in rows if r.box[0] < r.box[2] and r.box[1] < r.box[3]]
        for action_id in labelmap:
            mine = [r for r in rows if r.action_id == action_id]
            if not mine:
                continue
            boxes = np.array([r.box for r in mine], dtype=float).reshape(-1, 4)
            truth = np.array(gt_boxes.get((key, action_id), []), dtype=float).reshape(-1, 4)
            scores[action_id].append(np.array([r.score for r in mine], dtype=float))
            hits[action_id].append(_match(boxes, truth, iou_threshold))

    ap = {}
    for c in labelmap:
        s = np.concatenate(scores[c]) if scores[c] else np.zeros(0)
        t = np.concatenate(hits[c]) if hits[c] else np.zeros(0, dtype=bool)
        ap[c] = average_precision(s, t, num_gt[c])
    valid = [v for v in ap.values() if not math.isnan(v)]
    return FrameMAP(
        mean_ap=float(np.mean(valid)) if valid else math.nan,
        average_precision=ap,
        names=labelmap,
        num_groundtruth=num_gt,
        num_detections={c: int(sum(len(x) for x in scores[c])) for c in labelmap},
        ignored_keyframes=ignored,
    )


def evaluate_files(
    groundtruth: str | Path,
    detections: str | Path,
    labelmap: str | Path | None = None,
    exclusions: str | Path | None = None,
    iou_threshold: float = IOU_THRESHOLD,
) -> FrameMAP:
    """:func:`evaluate` on AVA CSV files (and a ``.pbtxt`` label map, an excluded-timestamps CSV)."""
    gt_rows, gt_keys = read_csv(groundtruth, with_scores=False)
    det_rows, _ = read_csv(detections, with_scores=True)
    return evaluate(
        gt_rows,
        gt_keys,
        det_rows,
        labelmap=None if labelmap is None else read_labelmap(labelmap),
        excluded=() if exclusions is None else read_exclusions(exclusions),
        iou_threshold=iou_threshold,
    )
