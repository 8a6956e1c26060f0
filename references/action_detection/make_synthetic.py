"""Write a small AVA-format action-detection set: coloured shapes ("persons") doing distinguishable motions.

Every video shows one or two coloured rectangles on a grey, noisy background; each rectangle does one
action for the whole video, which only its motion tells apart:

* ``stand`` (AVA id 12): it stays where it is (a pixel of jitter);
* ``walk`` (AVA id 14): it slides left or right;
* ``jump/leap`` (AVA id 7): it bounces up and down.

Colours, sizes, places and speeds are drawn at random independently of the action, so one frame says
nothing about it. Layout (what ``train.py --data`` reads)::

    OUT/videos/<video_id>.mp4
    OUT/train.csv, OUT/val.csv   AVA's ground-truth rows: video_id,timestamp,x1,y1,x2,y2,action_id,person_id
                                 (coordinates normalised to [0, 1]; one keyframe a second, from 1 s)

    python references/action_detection/make_synthetic.py /tmp/ava-shapes --train 12 --val 4
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # references/: the shared video writer
from video_writer import write_video

#: The actions, by their AVA ids (so a zoo detector's categories name them).
ACTIONS = {"stand": 12, "walk": 14, "jump/leap": 7}


def render_video(
    actions: list[str], rng: np.random.Generator, size: int, seconds: int, fps: int
) -> tuple[np.ndarray, list[np.ndarray]]:
    """``(frames, size, size, 3)`` uint8 frames, and per person its ``(frames, 4)`` boxes in pixels."""
    n = seconds * fps
    frames = (110 + rng.normal(0, 6, size=(n, size, size, 3))).clip(0, 255).astype(np.uint8)
    boxes = []
    for k, action in enumerate(actions):
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}; choose from {', '.join(ACTIONS)}")
        w, h = int(rng.integers(size // 8, size // 5)), int(rng.integers(size // 4, size // 3))
        colour = rng.integers(0, 255, size=3)
        colour[k % 3] = 230  # a strong channel: the shapes stand out from the background
        x0 = rng.uniform(0.15, 0.85 - w / size) * size
        y0 = rng.uniform(0.2, 0.8 - h / size) * size
        speed = rng.uniform(0.3, 0.6) * size / fps  # pixels per frame
        direction = rng.choice([-1.0, 1.0])
        track = np.zeros((n, 4))
        for i in range(n):
            t = i / fps
            if action == "walk":  # back and forth across the frame
                span = size - w - 2
                x = (x0 + direction * speed * i) % (2 * span)
                x, y = (x if x <= span else 2 * span - x) + 1, y0
            elif action == "jump/leap":
                x, y = x0, y0 - abs(math.sin(2 * math.pi * 1.2 * t)) * size * 0.18
            else:
                x, y = x0 + rng.integers(-1, 2), y0
            x, y = float(np.clip(x, 0, size - w)), float(np.clip(y, 0, size - h))
            frames[i, int(y) : int(y) + h, int(x) : int(x) + w] = colour
            track[i] = (int(x), int(y), int(x) + w, int(y) + h)
        boxes.append(track)
    return frames, boxes


def make_dataset(out: Path, train: int, val: int, *, size: int = 96, seconds: int = 4, fps: int = 30, seed: int = 0) -> None:
    """``train`` + ``val`` videos with one or two persons each, their actions cycling through :data:`ACTIONS`."""
    rng = np.random.default_rng(seed)
    (out / "videos").mkdir(parents=True, exist_ok=True)
    names = list(ACTIONS)
    count = 0
    for split, videos in (("train", train), ("val", val)):
        rows = []
        for v in range(videos):
            people = 1 + v % 2
            actions = [names[(count + p) % len(names)] for p in range(people)]
            count += people
            video_id = f"{split}_{v:03d}"
            frames, boxes = render_video(actions, rng, size, seconds, fps)
            write_video(out / "videos" / f"{video_id}.mp4", frames, fps)
            for t in range(1, seconds):  # keyframes at whole seconds, the clip around each inside the video
                for person, (action, track) in enumerate(zip(actions, boxes)):
                    x1, y1, x2, y2 = track[t * fps] / size
                    rows.append([video_id, t, f"{x1:.4f}", f"{y1:.4f}", f"{x2:.4f}", f"{y2:.4f}", ACTIONS[action], person])
        with open(out / f"{split}.csv", "w", newline="") as f:
            csv.writer(f).writerows(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path, help="output folder")
    p.add_argument("--train", type=int, default=12, help="training videos")
    p.add_argument("--val", type=int, default=4, help="validation videos")
    p.add_argument("--size", type=int, default=96, help="frame side in pixels")
    p.add_argument("--seconds", type=int, default=4, help="seconds per video")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    make_dataset(args.out, args.train, args.val, size=args.size, seconds=args.seconds, seed=args.seed)
    print(f"wrote {args.train} + {args.val} videos and train.csv, val.csv to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
