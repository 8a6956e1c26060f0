"""Time the classification pipeline on a 10 s 720p clip, split into its parts.

    python benchmarks/bench_pipeline.py                       # x3d_m, its 10x3 views and 1x1
    python benchmarks/bench_pipeline.py --model r2plus1d_18 --video my.mp4

Parts: *index* (open the file, demux its packets into the frame table), *decode* (seek and decode
the frames the recipe samples, resized to the preset's size while converting to RGB), *preprocess*
(the preset: crops and normalisation, to float views), *inference* (the model on all views). The
*naive* line decodes every frame at full resolution and lets the preset resize the sampled ones in
float: what the pipeline avoids. The model has random weights (speed does not depend on them, and no
download is needed). The clip is synthetic: a panning texture, a moving block and mild noise, H.264 (libx264, CRF 23,
a keyframe every 2 s, B-frames), 30 fps, about 2 Mbit/s like a typical web video. Run it with the machine otherwise idle; medians of
``--repeats`` runs. CPU times (all threads of the process) are printed next to wall-clock times:
they stay meaningful on a busy machine.
"""

from __future__ import annotations

import argparse
import fractions
import statistics
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch

import videozoo
from videozoo.video.io import VideoReader
from videozoo.zoo import ClipRecipe
from videozoo.video.sampling import sample_clip_indices
from videozoo.video.transforms import resized_size


def make_clip(path: Path, seconds: float, height: int, fps: int = 30) -> Path:
    """A camera-like clip: a panning textured background, a moving object and mild sensor noise."""
    width = height * 16 // 9 // 2 * 2
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 256, (height // 16 + 2, width // 16 + 2, 3), dtype=np.uint8).repeat(16, 0).repeat(16, 1)
    noise = [rng.integers(-6, 7, (height, width, 1), dtype=np.int16) for _ in range(7)]
    container = av.open(str(path), "w")
    stream = container.add_stream("libx264", rate=fractions.Fraction(fps))
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    stream.options = {"crf": "23", "g": str(2 * fps), "preset": "veryfast"}
    for i in range(int(seconds * fps)):
        img = np.roll(texture[:height, :width], shift=(i, i * 3), axis=(0, 1)).astype(np.int16)
        x = (i * 17) % (width - 200)
        img[height // 3 : height // 3 + 160, x : x + 200] = (30 + i % 200, 200, 90)
        img = np.clip(img + noise[i % len(noise)], 0, 255).astype(np.uint8)
        for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return path


def run_once(path: str, model, preset, recipe: ClipRecipe, batch_size: int) -> dict[str, float]:
    stamps = [(time.perf_counter(), time.process_time())]
    reader = VideoReader(path, backend="pyav", size=lambda h, w: resized_size(h, w, preset.resize_size))
    indices = sample_clip_indices(reader.timestamps, recipe, reader.info.fps, reader.duration)
    stamps.append((time.perf_counter(), time.process_time()))
    frames = reader.get_frames(indices.reshape(-1)).frames
    reader.close()
    stamps.append((time.perf_counter(), time.process_time()))
    clips = frames.reshape(recipe.num_clips, recipe.num_frames, *frames.shape[1:])
    views = preset.multi_crop(clips, recipe.num_crops).transpose(0, 1).reshape(recipe.num_views, 3, recipe.num_frames, *preset.crop_size)
    stamps.append((time.perf_counter(), time.process_time()))
    with torch.inference_mode():
        for start in range(0, len(views), batch_size):
            model(views[start : start + batch_size]).softmax(-1)
    stamps.append((time.perf_counter(), time.process_time()))
    times: dict[str, float] = {"decoded_frames": float(torch.unique(indices).numel())}
    for i, part in enumerate(("index", "decode", "preprocess", "inference")):
        times[part] = stamps[i + 1][0] - stamps[i][0]
        times[part + "_cpu"] = stamps[i + 1][1] - stamps[i][1]
    times["total"] = stamps[-1][0] - stamps[0][0]
    times["total_cpu"] = stamps[-1][1] - stamps[0][1]
    return times


def run_naive(path: str, preset, recipe: ClipRecipe) -> tuple[float, float]:
    """Decode every frame at full size, then resize the sampled ones with the preset (wall, CPU s)."""
    t0, c0 = time.perf_counter(), time.process_time()
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    video = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2)
    timestamps = torch.arange(len(frames), dtype=torch.float64) / float(stream.average_rate)
    indices = sample_clip_indices(timestamps, recipe, float(stream.average_rate))
    clips = video[indices.reshape(-1)].reshape(recipe.num_clips, recipe.num_frames, *video.shape[1:])
    preset.multi_crop(clips, recipe.num_crops)
    return time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="x3d_m")
    parser.add_argument("--video", default=None, help="a video file (default: a synthetic 10 s 720p clip)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--views", nargs="+", default=None, help="CLIPSxCROPS to time (default: the recipe's and 1x1)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-naive", action="store_true")
    args = parser.parse_args()

    torch.manual_seed(0)
    weights = videozoo.get_model_weights(args.model).DEFAULT
    model = videozoo.get_model(args.model, weights=None, num_classes=len(weights.categories)).eval()
    preset = weights.transforms()
    base = weights.recipe
    view_sets = args.views or [f"{base.num_clips}x{base.num_crops}", "1x1"]

    with tempfile.TemporaryDirectory() as tmp:
        if args.video:
            path = args.video
        else:
            t = time.perf_counter()
            path = str(make_clip(Path(tmp) / "clip.mp4", args.seconds, args.height))
            print(f"encoded the synthetic clip in {time.perf_counter() - t:.1f} s")
        info = VideoReader(path).info
        size_mb = Path(path).stat().st_size / 1e6
        print(
            f"video: {info.width}x{info.height} {info.codec} {info.fps:g} fps {info.duration:.1f} s ({size_mb:.1f} MB); "
            f"model: {args.model} ({base.describe()}, crop {preset.crop_size[0]}); torch threads: {torch.get_num_threads()}"
        )
        print("wall-clock ms (CPU ms of all threads in brackets), medians:")
        parts = ("index", "decode", "preprocess", "inference", "total")
        print(f"{'views':>6} {'frames':>6} " + " ".join(f"{p:>17}" for p in parts) + f" {'videos/s':>9}")
        for spec in view_sets:
            clips, crops = (int(v) for v in spec.lower().split("x"))
            recipe = base.with_views(clips, crops)
            run_once(path, model, preset, recipe, args.batch_size)  # warm-up
            runs = [run_once(path, model, preset, recipe, args.batch_size) for _ in range(args.repeats)]
            med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            cells = " ".join(f"{1000 * med[p]:8.0f} ({1000 * med[p + '_cpu']:6.0f})" for p in parts)
            print(f"{spec:>6} {int(med['decoded_frames']):>6} {cells} {1 / med['total']:9.2f}")
            if not args.no_naive:
                naive = [run_naive(path, preset, recipe) for _ in range(max(1, args.repeats - 1))]
                wall = statistics.median(n[0] for n in naive)
                cpu = statistics.median(n[1] for n in naive)
                print(f"{'':>6} naive: decode every frame at full size + preset resize, no inference: "
                      f"{1000 * wall:.0f} ms ({1000 * cpu:.0f} CPU ms)")

if __name__ == "__main__":
    main()
