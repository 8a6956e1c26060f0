r"""Write the frame-mAP parity fixture (tests/parity/fixtures/ava_frame_map.json) from AVA's official evaluation.

    AVA_EVAL=/path/to/ActivityNet/Evaluation ~/ref-env/bin/python tests/parity/ava_eval_fixtures.py

``AVA_EVAL`` is the ``Evaluation/`` folder of github.com/activitynet/ActivityNet (``get_ava_performance.py``
and ``ava/``). Its code predates numpy 2: the removed aliases it uses (``np.float``, ``np.NAN``) are restored
for the run. A seeded random ground truth and detections (4 videos x 12 keyframes, several persons and
actions each, actions outside the 60, keyframes without actions, a keyframe with more than 50 detections,
detections on keyframes the ground truth lacks, inverted boxes, tied scores) are written as AVA CSVs and
scored by ``run_evaluation`` with the official label map; the fixture holds both CSVs and its metrics.
"""

from __future__ import annotations

import io
import json
import os
import random
import sys
from pathlib import Path

import numpy as np

EVAL = Path(os.environ["AVA_EVAL"])
sys.path[:0] = [str(EVAL), str(EVAL / "ava")]
np.float = float  # type: ignore[attr-defined]
np.NAN = np.nan  # type: ignore[attr-defined]

import get_ava_performance

OUT = Path(__file__).resolve().parent / "fixtures" / "ava_frame_map.json"
IDS = [1, 3, 4, 5, 11, 12, 14, 17, 79, 80, 2, 16]  # 2 and 16 are not evaluated


def box(rng: random.Random) -> list[float]:
    x1, y1 = rng.uniform(0, 0.7), rng.uniform(0, 0.7)
    return [round(x1, 3), round(y1, 3), round(x1 + rng.uniform(0.1, 0.3), 3), round(y1 + rng.uniform(0.1, 0.3), 3)]


def jitter(rng: random.Random, b: list[float], amount: float) -> list[float]:
    return [round(min(max(v + rng.uniform(-amount, amount), 0.0), 1.0), 3) for v in b]


def make_case(seed: int = 0) -> tuple[str, str]:
    rng = random.Random(seed)
    gt, det = [], []
    for v in range(4):
        video = f"vid{v:02d}"
        for t in range(902, 914):
            persons = rng.randint(0, 3)
            if persons == 0:
                gt.append(f"{video},{t:04d}")
            for p in range(persons):
                b = box(rng)
                actions = rng.sample(IDS, rng.randint(1, 3))
                gt += [f"{video},{t:04d},{','.join(map(str, b))},{a},{p}" for a in actions]
                for a in set(actions + rng.sample(IDS, 2)):
                    for _ in range(rng.randint(1, 2)):
                        score = round(rng.choice([rng.random(), 0.5]), 3)  # some ties at 0.5
                        det.append(f"{video},{t},{','.join(map(str, jitter(rng, b, 0.08)))},{a},{score}")
            for _ in range(rng.randint(0, 3)):
                det.append(f"{video},{t},{','.join(map(str, box(rng)))},{rng.choice(IDS)},{round(rng.random(), 3)}")
    many = [f"vid00,903,{','.join(map(str, box(rng)))},{rng.choice(IDS)},{round(rng.random(), 3)}" for _ in range(60)]
    outside = [f"vid09,902,{','.join(map(str, box(rng)))},1,0.99", "vid00,0950,0.1,0.1,0.4,0.4,1,0.99"]
    inverted = ["vid01,905,0.6,0.2,0.3,0.5,1,0.97", "vid01,905,0.2,0.5,0.5,0.5,3,0.96"]
    return "\n".join(gt) + "\n", "\n".join(det + many + outside + inverted) + "\n"


def official(gt: str, det: str) -> dict:
    captured = {}

    def keep(metrics, indent=None):
        captured.update(metrics)

    get_ava_performance.pprint.pprint = keep
    gt_file, det_file = io.StringIO(gt), io.StringIO(det)
    gt_file.name, det_file.name = "gt.csv", "det.csv"
    with open(EVAL / "ava" / "ava_action_list_v2.1_for_activitynet_2018.pbtxt.txt") as labelmap:
        get_ava_performance.run_evaluation(labelmap, gt_file, det_file)
    return {k: (None if isinstance(v, float) and np.isnan(v) else float(v)) for k, v in captured.items()}


if __name__ == "__main__":
    gt, det = make_case()
    metrics = official(gt, det)
    OUT.write_text(json.dumps({"groundtruth": gt, "detections": det, "metrics": metrics}, indent=1) + "\n")
    print(OUT, OUT.stat().st_size, "bytes;", metrics["PascalBoxes_Precision/mAP@0.5IOU"])
