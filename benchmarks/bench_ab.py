"""Two versions of videozoo, end to end through the command line, interleaved: did a change move speed?

    python benchmarks/bench_ab.py --before /tmp/vz-before --after .      # two checkouts
    python benchmarks/bench_ab.py --before ../old --after . --rounds 7 --jobs classify extract

Each job is one real ``python -m videozoo ...`` process (imports, model build, decoding, inference,
writing), run with ``PYTHONPATH`` set to each checkout in turn, alternating ``before, after, after,
before, ...`` so that a load that drifts during the run weighs on both alike. Printed: the median wall
time of each side and their ratio (after / before; below 1 is faster). The inputs are made once in
``--dir``: synthetic H.264 clips (a panning texture and a moving block, 30 fps) and a random-weights
checkpoint of ``--model`` in its published format (speed does not depend on the values), so nothing is
downloaded. The jobs:

- ``classify``: ``videozoo classify`` of one 10 s 720p clip with the recipe's views (r2plus1d_18: 5 clips);
- ``timeline``: ``videozoo timeline`` of the same clip;
- ``extract``: ``videozoo extract`` of 8 clips of 2 s 320x240 into a fresh folder (2 decoding workers).
"""

from __future__ import annotations

import argparse
import fractions
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np


def make_clip(path: Path, seconds: float, height: int, seed: int = 0, fps: int = 30) -> Path:
    if path.exists():
        return path
    width = height * 4 // 3 // 2 * 2
    rng = np.random.default_rng(seed)
    texture = rng.integers(0, 256, (height // 16 + 2, width // 16 + 2, 3), dtype=np.uint8).repeat(16, 0).repeat(16, 1)
    container = av.open(str(path), "w")
    stream = container.add_stream("libx264", rate=fractions.Fraction(fps))
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    stream.options = {"crf": "23", "g": str(2 * fps), "preset": "veryfast"}
    for i in range(int(seconds * fps)):
        img = np.roll(texture[:height, :width], shift=(i, i * 3), axis=(0, 1)).copy()
        x = (i * 7) % (width - width // 4)
        img[height // 3 : height // 3 + height // 5, x : x + width // 4] = (30 + i % 200, 200, 90)
        for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return path


def random_checkpoint(model: str, folder: Path) -> Path:
    """A random-weights file of ``model`` named like its default weights' file (so its recipe applies)."""
    import torch

    import videozoo

    member = videozoo.get_model_weights(model).DEFAULT
    path = folder / member.file_name
    if not path.exists():
        net = videozoo.get_model(model, num_classes=len(member.meta["categories"]), **member.meta.get("model_args", {}))
        torch.save(net.state_dict(), path)
    return path


def jobs(args: argparse.Namespace) -> dict[str, list[str]]:
    folder = args.dir
    long_clip = make_clip(folder / "long.mp4", 10.0, 720)
    short = [make_clip(folder / f"short{i}.mp4", 2.0, 240, seed=i) for i in range(8)]
    manifest = folder / "manifest.txt"
    manifest.write_text("".join(f"{p}\n" for p in short))
    weights = str(random_checkpoint(args.model, folder))
    common = ["--model", args.model, "--weights", weights, "-q"]
    return {
        "classify": ["classify", str(long_clip), *common],
        "timeline": ["timeline", str(long_clip), *common],
        "extract": ["extract", "--manifest", str(manifest), "--out", str(folder / "out"), "--workers", "2", *common],
    }


def run(tree: Path, argv: list[str], out: Path) -> float:
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(tree.resolve()), "VIDEOZOO_OFFLINE": "1"}
    start = time.perf_counter()
    # run from the checkout: `python -m` puts the working directory first on sys.path
    result = subprocess.run([sys.executable, "-m", "videozoo", *argv], env=env, cwd=tree, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{tree}: videozoo {' '.join(argv)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, required=True, help="checkout of the earlier version")
    parser.add_argument("--after", type=Path, required=True, help="checkout of the later version")
    parser.add_argument("--model", default="r2plus1d_18", help="a model whose published file is a plain state_dict (torchvision's), which every version loads")
    parser.add_argument("--jobs", nargs="+", default=["classify", "timeline", "extract"])
    parser.add_argument("--rounds", type=int, default=5, help="runs of each side per job (default 5)")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "videozoo_bench_ab")
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    todo = jobs(args)
    print(f"{args.model}, {args.rounds} rounds per side, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")
    print("| job | before s (median) | after s (median) | after / before |\n|---|---:|---:|---:|")
    for name in args.jobs:
        times: dict[str, list[float]] = {"before": [], "after": []}
        for r in range(args.rounds):
            order = ["before", "after"] if r % 2 == 0 else ["after", "before"]
            for side in order:
                times[side].append(run(getattr(args, side), todo[name], args.dir / "out"))
        b, a = statistics.median(times["before"]), statistics.median(times["after"])
        print(f"| {name} | {b:.2f} | {a:.2f} | {a / b:.3f} |", flush=True)


if __name__ == "__main__":
    main()
