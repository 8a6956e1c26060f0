"""references/action_detection: frame-mAP as AVA's official evaluation computes it, against cases computed
by hand (real CSV files in AVA's format, the command line run as a user runs it)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REF = ROOT / "references" / "action_detection"
sys.path.insert(0, str(REF))

from frame_map import (
    AVA_EVALUATED_ACTIONS,
    CSVError,
    average_precision,
    evaluate_files,
    keyframe_key,
    read_labelmap,
)

A = (0.1, 0.1, 0.5, 0.5)
A_NEAR = (0.12, 0.1, 0.5, 0.52)  # IoU with A: 0.38*0.40 / (0.16 + 0.1596 - 0.152) = 0.907
B = (0.5, 0.5, 0.9, 0.9)
B_NEAR = (0.52, 0.5, 0.9, 0.9)  # IoU with B: 0.95
FAR = (0.0, 0.6, 0.2, 0.8)  # overlaps neither


def write(path: Path, rows: list[tuple]) -> Path:
    path.write_text("".join(",".join(str(v) for v in row) + "\n" for row in rows))
    return path


def gt(video: str, t: str, box: tuple, action: int, person: int = 0) -> tuple:
    return (video, t, *box, action, person)


def det(video: str, t: str, box: tuple, action: int, score: float) -> tuple:
    return (video, t, *box, action, score)


def run(tmp_path: Path, truth: list[tuple], detections: list[tuple], **kwargs):
    return evaluate_files(write(tmp_path / "gt.csv", truth), write(tmp_path / "det.csv", detections), **kwargs)


def test_two_classes_with_a_duplicate_and_unmatched_detections(tmp_path: Path) -> None:
    truth = [gt("v1", "0902", A, 1), gt("v1", "0902", B, 1, 1), gt("v1", "0902", A, 3)]
    detections = [
        det("v1", "0902", A_NEAR, 1, 0.9),  # TP (A)
        det("v1", "0902", A, 1, 0.8),  # duplicate of A, already taken: FP
        det("v1", "0902", FAR, 1, 0.7),  # FP
        det("v1", "0902", B_NEAR, 1, 0.6),  # TP (B)
        det("v1", "0902", A_NEAR, 3, 0.4),  # TP
        det("v1", "0902", A, 5, 0.9),  # an evaluated class without ground truth: no AP, not in the mean
        det("v1", "0902", A, 2, 0.9),  # id 2 is not one of the 60: skipped
    ]
    result = run(tmp_path, [*truth, gt("v1", "0902", B, 2)], detections)
    # class 1: TP FP FP TP of 2 boxes -> precision 1, 1/2, 1/3, 1/2 at recall 1/2, 1/2, 1/2, 1;
    # made non-increasing from the right: 1 up to recall 1/2, 1/2 up to recall 1 -> AP 0.75
    assert result.average_precision[1] == pytest.approx(0.75)
    assert result.average_precision[3] == pytest.approx(1.0)
    assert math.isnan(result.average_precision[5]) and 2 not in result.average_precision
    assert result.mean_ap == pytest.approx((0.75 + 1.0) / 2)
    assert result.num_groundtruth[1] == 2 and result.num_detections[1] == 4 and result.num_detections[5] == 1


def test_a_class_with_ground_truth_and_no_detection_counts_as_zero(tmp_path: Path) -> None:
    result = run(tmp_path, [gt("v1", "1000", A, 1), gt("v1", "1000", A, 4)], [det("v1", "1000", A, 1, 0.5)])
    assert result.average_precision[4] == 0.0
    assert result.mean_ap == pytest.approx(0.5)


def test_detections_on_keyframes_outside_the_ground_truth(tmp_path: Path) -> None:
    """Ignored where the ground truth lacks the keyframe; false positives on a keyframe without actions."""
    truth = [gt("v1", "0902", A, 1), ("v1", "0903")]  # 0903: a keyframe with no actions
    detections = [
        det("v1", "0902", A, 1, 0.5),
        det("v1", "0903", A, 1, 0.9),  # FP: ranked first
        det("v2", "0902", A, 1, 0.95),  # video not in the ground truth: ignored
        det("v1", "0904", A, 1, 0.95),  # timestamp not in the ground truth: ignored
    ]
    result = run(tmp_path, truth, detections)
    # FP then TP, 1 box: precision 1/2 at recall 1 -> AP 0.5
    assert result.average_precision[1] == pytest.approx(0.5)
    assert result.ignored_keyframes == [keyframe_key("v2", "0902"), keyframe_key("v1", "0904")]


def test_excluded_timestamps_leave_both_files(tmp_path: Path) -> None:
    truth = [gt("v1", "0902", A, 1), gt("v1", "0903", B, 1)]
    detections = [det("v1", "0902", A, 1, 0.9), det("v1", "0903", FAR, 1, 0.95)]
    assert run(tmp_path, truth, detections).average_precision[1] == pytest.approx(0.25)  # FP, TP of 2 boxes
    exclusions = write(tmp_path / "excluded.csv", [("v1", "903")])  # the same keyframe, written otherwise
    assert run(tmp_path, truth, detections, exclusions=exclusions).average_precision[1] == pytest.approx(1.0)


def test_only_the_best_overlapping_box_can_be_matched(tmp_path: Path) -> None:
    """VOC's rule: a detection goes to the box it overlaps most; if that one is taken it is a false
    positive even though another free box overlaps it by more than 0.5."""
    g1, g2 = (0.0, 0.0, 0.4, 0.4), (0.04, 0.0, 0.44, 0.4)
    d2 = (0.01, 0.0, 0.41, 0.4)  # IoU 0.951 with g1, 0.860 with g2
    result = run(tmp_path, [gt("v", "1", g1, 1), gt("v", "1", g2, 1)], [det("v", "1", g1, 1, 0.9), det("v", "1", d2, 1, 0.8)])
    assert result.average_precision[1] == pytest.approx(0.5)  # TP, FP of 2 boxes: precision 1 at recall 1/2


def test_iou_must_reach_one_half(tmp_path: Path) -> None:
    box = (0.0, 0.0, 0.5, 0.5)  # binary fractions: the IoUs below are exact
    half, just_under = (0.0, 0.0, 0.5, 0.25), (0.0, 0.0, 0.5, 0.2421875)  # IoU 0.5 and 0.484375
    assert run(tmp_path, [gt("v", "1", box, 1)], [det("v", "1", half, 1, 0.9)]).average_precision[1] == pytest.approx(1.0)
    assert run(tmp_path, [gt("v", "1", box, 1)], [det("v", "1", just_under, 1, 0.9)]).average_precision[1] == 0.0


def test_fifty_detections_per_keyframe(tmp_path: Path) -> None:
    """The 50 best rows of a keyframe are read (over all classes): a 51st, weaker true positive is dropped."""
    falses = [det("v", "1", FAR, 1, 0.9)] * 49
    true = det("v", "1", A, 1, 0.1)
    assert run(tmp_path, [gt("v", "1", A, 1)], [*falses, true]).average_precision[1] == pytest.approx(1 / 50)
    other_class = det("v", "1", FAR, 3, 0.8)  # fills the 50th place
    assert run(tmp_path, [gt("v", "1", A, 1)], [*falses, other_class, true]).average_precision[1] == 0.0


def test_invalid_detection_boxes_are_dropped(tmp_path: Path) -> None:
    inverted, flat = (0.5, 0.1, 0.1, 0.5), (0.1, 0.3, 0.5, 0.3)
    detections = [det("v", "1", inverted, 1, 0.9), det("v", "1", flat, 1, 0.8), det("v", "1", A, 1, 0.5)]
    result = run(tmp_path, [gt("v", "1", A, 1)], detections)
    assert result.average_precision[1] == pytest.approx(1.0) and result.num_detections[1] == 1


def test_ties_and_several_keyframes(tmp_path: Path) -> None:
    """Scores pooled over keyframes: keyframe 1 TP 0.9, FP 0.3; keyframe 2 FP 0.8, TP 0.6; 3 boxes.
    Ranked TP FP TP FP: precision 1, 1/2, 2/3, 1/2 at recall 1/3, 1/3, 2/3, 2/3 -> AP 1/3 + 2/9."""
    truth = [gt("v", "1", A, 1), gt("v", "2", B, 1), gt("v", "2", A, 1)]
    detections = [det("v", "1", A, 1, 0.9), det("v", "1", FAR, 1, 0.3), det("v", "2", FAR, 1, 0.8), det("v", "2", B, 1, 0.6)]
    assert run(tmp_path, truth, detections).average_precision[1] == pytest.approx(1 / 3 + 2 / 9)


def test_average_precision_by_hand() -> None:
    import numpy as np

    assert math.isnan(average_precision(np.array([0.5]), np.array([False]), 0))
    assert average_precision(np.zeros(0), np.zeros(0, dtype=bool), 3) == 0.0
    assert average_precision(np.array([0.9, 0.8]), np.array([True, True]), 4) == pytest.approx(0.5)


def test_a_ninth_column_is_refused_as_the_official_script_does(tmp_path: Path) -> None:
    with pytest.raises(CSVError, match=r"line 1: expected .* \(2, 7 or 8 columns\), got 9"):
        run(tmp_path, [gt("v", "1", A, 1)], [(*det("v", "1", A, 1, 0.9), 3)])
    with pytest.raises(CSVError, match="line 1: expected"):
        run(tmp_path, [(*gt("v", "1", A, 1), 7)], [])


def test_keyframe_keys() -> None:
    assert keyframe_key("v", "0902") == keyframe_key("v", "902") == keyframe_key("v", "902.0") == "v,902.000000"
    assert keyframe_key("v", "902.5") != keyframe_key("v", "902")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("v,0902,0.1,0.1,0.5\n", "line 2: expected video_id,timestamp"),
        ("v,09x2,0.1,0.1,0.5,0.5,1,0.9\n", "line 2: the timestamp '09x2' is not a number"),
        ("v,0902,0.1,a,0.5,0.5,1,0.9\n", "line 2: the box"),
        ("v,0902,0.1,0.1,0.5,0.5,walk,0.9\n", "line 2: the action id 'walk'"),
        ("v,0902,0.1,0.1,0.5,0.5,1,high\n", "line 2: the score 'high'"),
    ],
)
def test_malformed_lines_name_the_line(tmp_path: Path, line: str, message: str) -> None:
    truth = write(tmp_path / "gt.csv", [gt("v", "0902", A, 1)])
    detections = tmp_path / "det.csv"
    detections.write_text("v,0902,0.1,0.1,0.5,0.5,1,0.9\n" + line)
    with pytest.raises(CSVError, match=message):
        evaluate_files(truth, detections)


def test_labelmap_file(tmp_path: Path) -> None:
    labelmap = tmp_path / "labels.pbtxt"
    labelmap.write_text('item {\n  name: "stand"\n  id: 12\n}\nitem {\n  name: "walk"\n  label_id: 14\n}\n')
    assert read_labelmap(labelmap) == {12: "stand", 14: "walk"}
    result = run(tmp_path, [gt("v", "1", A, 12), gt("v", "1", A, 1)], [det("v", "1", A, 12, 0.9)], labelmap=labelmap)
    assert list(result.average_precision) == [12, 14] and result.mean_ap == pytest.approx(1.0)


def test_the_evaluated_classes() -> None:
    assert len(AVA_EVALUATED_ACTIONS) == 60
    assert AVA_EVALUATED_ACTIONS[1] == "bend/bow (at the waist)" and AVA_EVALUATED_ACTIONS[80] == "watch (a person)"
    assert not {2, 16, 18, 19, 21, 23, 25, 31, 32, 33, 35, 39, 40, 42, 44, 50, 53, 55, 71, 75} & set(AVA_EVALUATED_ACTIONS)
    categories = pytest.importorskip("videozoo.zoo.categories")
    if hasattr(categories, "AVA_EVALUATED_IDS"):  # the action-detection models' list, where it exists
        assert sorted(categories.AVA_EVALUATED_IDS) == sorted(AVA_EVALUATED_ACTIONS)


def test_command_line(tmp_path: Path) -> None:
    truth = write(tmp_path / "gt.csv", [gt("v1", "0902", A, 1), gt("v1", "0902", A, 3)])
    detections = write(tmp_path / "det.csv", [det("v1", "0902", A, 1, 0.9), det("v1", "0902", FAR, 3, 0.9)])
    cmd = [sys.executable, str(REF / "evaluate.py"), "--groundtruth", str(truth), "--detections", str(detections)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    assert "frame-mAP@0.5IOU over 2 classes with ground truth: 0.5000" in out
    data = json.loads(subprocess.run([*cmd, "--json"], capture_output=True, text=True, check=True).stdout)
    assert data["mAP@0.5IOU"] == pytest.approx(0.5)
    assert {c["id"]: c["AP@0.5IOU"] for c in data["classes"] if c["AP@0.5IOU"] is not None} == {1: 1.0, 3: 0.0}
    (tmp_path / "bad.csv").write_text("v1,0902,0.1\n")
    bad = subprocess.run([*cmd[:-1], str(tmp_path / "bad.csv")], capture_output=True, text=True, check=False)
    assert bad.returncode == 2 and "bad.csv, line 1" in bad.stderr and "Traceback" not in bad.stderr
    missing = subprocess.run([*cmd[:-1], str(tmp_path / "none.csv")], capture_output=True, text=True, check=False)
    assert missing.returncode == 2 and "none.csv: no such file" in missing.stderr


def test_matches_the_official_evaluation(tmp_path: Path) -> None:
    """A seeded random case (tests/parity/ava_eval_fixtures.py) scored by ActivityNet's get_ava_performance.py."""
    fixture = json.loads((ROOT / "tests" / "parity" / "fixtures" / "ava_frame_map.json").read_text())
    (tmp_path / "gt.csv").write_text(fixture["groundtruth"])
    (tmp_path / "det.csv").write_text(fixture["detections"])
    result = evaluate_files(tmp_path / "gt.csv", tmp_path / "det.csv")
    official = fixture["metrics"]
    assert result.mean_ap == pytest.approx(official["PascalBoxes_Precision/mAP@0.5IOU"], abs=1e-12)
    for action_id, name in AVA_EVALUATED_ACTIONS.items():
        expected = official[f"PascalBoxes_PerformanceByCategory/AP@0.5IOU/{name}"]
        ours = result.average_precision[action_id]
        assert (math.isnan(ours) and expected is None) or ours == pytest.approx(expected, abs=1e-12), name
    assert sum(v is not None for v in official.values()) > 10 and result.ignored_keyframes
