"""Write a small labelled video dataset that can only be classified by looking at motion.

Every video shows a random colour texture (a sum of plane waves) that moves: the class is how it
moves, sliding left, right, up or down, or turning clockwise or anticlockwise about a point near
the centre. Texture, colours, speed and centre of rotation are
drawn at random independently of the class, so any single frame is equally likely under every class:
a model has to use time to tell them apart. (Motion over the whole frame is learnt from scratch in a
few hundred steps; one small moving shape gives a CNN far less signal per clip and takes much longer.)

Layout (Kinetics-style, what ``train.py --data-path`` reads), plus annotation lists for ``--train-list``::

    OUT/train/<class>/<class>_0000.mp4 ...
    OUT/val/<class>/<class>_0000.mp4 ...
    OUT/train.txt, OUT/val.txt     "train/<class>/<class>_0000.mp4 <class>" lines
    OUT/classes.txt                one class name per line, in class-index order

Horizontal flipping turns "left" into "right" and "clockwise" into "anticlockwise": train on this set
with ``--hflip-prob 0``.

    python references/video_classification/make_synthetic.py /tmp/motion --train 40 --val 10
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # references/: the shared video writer
from video_writer import write_video

CLASSES = ("left", "right", "up", "down", "clockwise", "anticlockwise")

#: Per-video draws: speed as a fraction of the frame size per frame, spin in degrees per frame.
SPEED = (0.04, 0.07)
SPIN = (4.0, 8.0)
WAVES = 6


def render_video(label: str, rng: np.random.Generator, size: int, frames: int) -> np.ndarray:
    """``(frames, size, size, 3)`` uint8 RGB frames of one video of class ``label``."""
    if label not in CLASSES:
        raise ValueError(f"unknown class {label!r}; choose from {', '.join(CLASSES)}")
    # The texture: WAVES plane waves of random spatial frequency (1.5-5 periods per frame width),
    # direction, phase and colour on a random base colour.
    freqs = rng.uniform(1.5, 5.0, size=WAVES) * 2 * math.pi / size
    directions = rng.uniform(0, 2 * math.pi, size=WAVES)
    phases = rng.uniform(0, 2 * math.pi, size=WAVES)
    colours = rng.uniform(-1, 1, size=(WAVES, 3)) * 0.12
    base = rng.uniform(0.3, 0.7, size=3)
    speed = rng.uniform(*SPEED) * size
    spin = math.radians(rng.uniform(*SPIN))
    vx, vy, omega = {
        "left": (-speed, 0.0, 0.0),
        "right": (speed, 0.0, 0.0),
        "up": (0.0, -speed, 0.0),
        "down": (0.0, speed, 0.0),
        # Image rows grow downwards, so a growing angle turns clockwise on screen.
        "clockwise": (0.0, 0.0, spin),
        "anticlockwise": (0.0, 0.0, -spin),
    }[label]
    centre = size / 2 + rng.uniform(-0.15, 0.15, size=2) * size
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    xs, ys = xs - centre[0], ys - centre[1]
    out = np.empty((frames, size, size, 3), dtype=np.uint8)
    for t in range(frames):
        # The texture moved by (vx, vy) t and turned by omega t: sample it where each pixel came from.
        px, py, a = xs - vx * t, ys - vy * t, omega * t
        u = px * math.cos(a) + py * math.sin(a)
        v = -px * math.sin(a) + py * math.cos(a)
        image = np.broadcast_to(base, (size, size, 3)).copy()
        for f, d, p, c in zip(freqs, directions, phases, colours):
            image += c * np.sin(f * (u * math.cos(d) + v * math.sin(d)) + p)[..., None]
        image += rng.normal(0.0, 0.015, size=image.shape)  # sensor noise, new every frame
        out[t] = np.clip(image * 255, 0, 255).astype(np.uint8)
    return out


def make_dataset(
    out: Path,
    classes: list[str],
    train: int,
    val: int,
    size: int = 64,
    frames: int = 30,
    fps: float = 15.0,
    seed: int = 0,
) -> dict[str, int]:
    """Write the dataset; returns the number of videos per split."""
    rng = np.random.default_rng(seed)
    counts = {}
    for split, per_class in (("train", train), ("val", val)):
        lines = []
        for label in classes:
            folder = out / split / label
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                name = f"{label}_{i:04d}.mp4"
                write_video(folder / name, render_video(label, rng, size, frames), fps)
                lines.append(f"{split}/{label}/{name} {label}")
        (out / f"{split}.txt").write_text("".join(line + "\n" for line in lines))
        counts[split] = len(lines)
    (out / "classes.txt").write_text("".join(c + "\n" for c in classes))
    return counts


def _classes(text: str) -> list[str]:
    names = [c.strip() for c in text.split(",") if c.strip()]
    unknown = [c for c in names if c not in CLASSES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown class(es) {', '.join(unknown)}; choose from {', '.join(CLASSES)}")
    if len(names) < 2 or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError("give at least two different classes, comma-separated")
    return names


def _size(text: str) -> int:
    value = int(text)
    if value < 16 or value % 2:
        raise argparse.ArgumentTypeError(f"the frame size must be an even number >= 16 (H.264 4:2:0), got {value}")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="output folder (created; existing files of the same name are overwritten)")
    parser.add_argument("--classes", type=_classes, default=list(CLASSES), help=f"comma-separated subset of {','.join(CLASSES)} (default: all)")
    parser.add_argument("--train", type=_non_negative, default=40, help="training videos per class (default: 40)")
    parser.add_argument("--val", type=_non_negative, default=10, help="validation videos per class (default: 10)")
    parser.add_argument("--size", type=_size, default=64, help="frame width and height in pixels (default: 64)")
    parser.add_argument("--frames", type=int, default=30, help="frames per video (default: 30)")
    parser.add_argument("--fps", type=float, default=15.0, help="frame rate (default: 15)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.frames < 1 or args.fps <= 0:
        parser.error("--frames must be >= 1 and --fps > 0")
    counts = make_dataset(args.out, args.classes, args.train, args.val, args.size, args.frames, args.fps, args.seed)
    print(
        f"wrote {counts['train']} training and {counts['val']} validation videos of {len(args.classes)} classes "
        f"({args.size}x{args.size}, {args.frames} frames at {args.fps:g} fps) to {args.out}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
