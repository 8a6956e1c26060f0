"""Frame-mAP at IoU 0.5 of AVA-style action detections, as AVA's official evaluation computes it.

    python references/action_detection/evaluate.py --groundtruth ava_val_v2.2.csv --detections detections.csv \
        [--labelmap ava_action_list_v2.2_for_activitynet_2019.pbtxt] [--exclusions ava_val_excluded_timestamps_v2.2.csv] [--json]

Both CSVs have AVA's rows: ``video_id,timestamp,x1,y1,x2,y2,action_id`` and the person id (ground truth) or
the score (detections, as ``videozoo detect --csv`` writes them), coordinates in fractions of the frame. Without ``--labelmap`` the 60 evaluated AVA actions are scored. Prints the AP of each class and the mAP (or JSON);
exit status 2 for a malformed file, naming its line. The protocol is described in ``frame_map.py``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from frame_map import IOU_THRESHOLD, CSVError, FrameMAP, evaluate_files


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--groundtruth", "-g", type=Path, required=True, help="ground-truth CSV (AVA format)")
    parser.add_argument("--detections", "-d", type=Path, required=True, help="detections CSV (AVA format, with scores)")
    parser.add_argument("--labelmap", "-l", type=Path, help="label map (.pbtxt) of the classes to score; default: AVA's 60")
    parser.add_argument("--exclusions", "-x", type=Path, help="CSV of video_id,timestamp keyframes to leave out")
    parser.add_argument("--iou", type=float, default=IOU_THRESHOLD, help="IoU of a true positive (AVA: 0.5)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    return parser.parse_args(argv)


def table(result: FrameMAP) -> str:
    width = max(len(n) for n in result.names.values())
    lines = [f"{'id':>3}  {'action':<{width}}  {'AP':>6}  {'gt':>6}  {'det':>6}"]
    for c, ap in result.average_precision.items():
        shown = "     -" if math.isnan(ap) else f"{ap:6.4f}"
        lines.append(f"{c:>3}  {result.names[c]:<{width}}  {shown}  {result.num_groundtruth[c]:>6}  {result.num_detections[c]:>6}")
    scored = sum(not math.isnan(v) for v in result.average_precision.values())
    lines.append(f"frame-mAP@0.5IOU over {scored} classes with ground truth: {result.mean_ap:.4f}")
    if result.ignored_keyframes:
        lines.append(f"ignored: detections on {len(result.ignored_keyframes)} keyframes the ground truth does not have")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for path in (args.groundtruth, args.detections, args.labelmap, args.exclusions):
        if path is not None and not path.is_file():
            print(f"evaluate.py: error: {path}: no such file", file=sys.stderr)
            return 2
    try:
        result = evaluate_files(args.groundtruth, args.detections, args.labelmap, args.exclusions, args.iou)
    except CSVError as e:
        print(f"evaluate.py: error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result.as_dict(), indent=2) if args.json else table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
