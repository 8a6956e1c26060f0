"""Throughput of ``videozoo extract`` on a collection of short generated clips: videos per minute.

    python benchmarks/bench_extract.py                       # 8 clips of 2 s 320x240, r3d_18
    python benchmarks/bench_extract.py --videos 32 --model r3d_18 --seconds 4

The clips are generated once into ``--dir`` (default ``$TMPDIR/videozoo_bench_extract``; never the
repository): H.264, 30 fps, a moving texture. The model gets random weights saved as a local
checkpoint in torchvision's format (speed does not depend on the values). Each configuration is a
fresh run into an empty output folder: ``python -m videozoo extract --manifest M --out DIR --workers W``
for 1 process, ``torchrun --standalone --nproc_per_node 2 -m videozoo extract ...`` for 2, with the
torch threads split between the processes (``OMP_NUM_THREADS = cores / processes``). Wall time
includes the start-up (imports, building the model), as a real run's does.

The decode/model split is measured in this process with no workers: the time to produce every
window's clip (:func:`videozoo.video.windows.iter_windows`: demux, decode, resize, crop, normalise) and the
time of the model's forward passes on those clips, batch size 8.
"""

from __future__ import annotations

import argparse
import fractions
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch


def make_clip(path: Path, seconds: float, seed: int, size: tuple[int, int] = (240, 320), fps: int = 30) -> Path:
    if path.exists():
        return path
    height, width = size
    rng = np.random.default_rng(seed)
    texture = rng.integers(0, 256, (height // 8 + 2, 2 * width // 8 + 2, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)[:height]
    partial = path.with_suffix(".partial.mp4")
    container = av.open(str(partial), "w")
    stream = container.add_stream("libx264", rate=fractions.Fraction(fps))
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    stream.options = {"preset": "veryfast", "g": str(fps)}
    for i in range(int(seconds * fps)):
        shift = (i * 3) % width
        img = np.ascontiguousarray(texture[:, shift : shift + width])
        for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    os.replace(partial, path)
    return path


def random_checkpoint(model: str, directory: Path) -> Path:
    import videozoo

    path = directory / f"{model}_random.pth"
    if not path.exists():
        torch.manual_seed(0)
        torch.save(videozoo.get_model(model).state_dict(), path)
    return path


def run(manifest: Path, model: str, weights: Path, nproc: int, workers: int, batch_size: int) -> float:
    out = Path(tempfile.mkdtemp(prefix="extract_out_"))
    args = ["extract", "--manifest", str(manifest), "--model", model, "--weights", str(weights), "--out", str(out),
            "--workers", str(workers), "--batch-size", str(batch_size), "-q"]  # fmt: skip
    if nproc == 1:
        cmd = [sys.executable, "-m", "videozoo", *args]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", "-m", "videozoo", *args]
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // nproc))}
    start = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    shutil.rmtree(out, ignore_errors=True)
    if result.returncode != 0:
        raise SystemExit(f"failed ({result.returncode}): {' '.join(cmd)}\n{result.stderr[-3000:]}")
    return wall


def split(videos: list[Path], model: str, weights: Path, batch_size: int) -> tuple[float, float, int]:
    from videozoo.tasks.runner import load_model
    from videozoo.video.windows import iter_windows

    runner = load_model(model, weights)
    net, recipe, transform = runner.model, runner.recipe, runner.transform()
    start = time.perf_counter()
    clips = [w.clip for v in videos for w in iter_windows(v, recipe, transform)]
    decode = time.perf_counter() - start
    start = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(clips), batch_size):
            net.forward_head(net.forward_features(torch.stack(clips[i : i + batch_size])), pre_logits=True)
    return decode, time.perf_counter() - start, len(clips)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--model", default="r3d_18")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "videozoo_bench_extract")
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    videos = [make_clip(args.dir / f"clip{i:04d}.mp4", args.seconds, i) for i in range(args.videos)]
    manifest = args.dir / "manifest.txt"
    manifest.write_text("".join(f"{v.name}\n" for v in videos))
    weights = random_checkpoint(args.model, args.dir)
    print(f"{args.videos} clips of {args.seconds:g} s 320x240 H.264; {args.model} (random weights); "
          f"batch size {args.batch_size}; {os.cpu_count()} cores; load {os.getloadavg()[0]:.2f}")  # fmt: skip
    decode, model, windows = split(videos, args.model, weights, args.batch_size)
    print(f"in-process, no workers: {windows} windows; decode+preprocess {decode:.1f} s, model {model:.1f} s "
          f"-> decode share {100 * decode / (decode + model):.0f} %")  # fmt: skip
    print("| processes | decoding workers | wall s | videos / min |\n|---:|---:|---:|---:|")
    for nproc in args.procs:
        for workers in args.workers:
            wall = run(manifest, args.model, weights, nproc, workers, args.batch_size)
            print(f"| {nproc} | {workers} | {wall:.1f} | {60 * args.videos / wall:.1f} |", flush=True)


if __name__ == "__main__":
    main()
