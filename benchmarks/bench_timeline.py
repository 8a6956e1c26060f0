"""Peak memory and speed of ``videozoo timeline`` on long synthetic 1080p videos.

    python benchmarks/bench_timeline.py                          # 1 and 3 minutes of 1080p, s3d
    python benchmarks/bench_timeline.py --minutes 10 --height 1080 --model s3d
    python benchmarks/bench_timeline.py --demo /tmp/demo.mp4      # the clip and checkpoint of docs/tasks.md's timeline picture

Each video is generated once into the temporary directory (``--dir``, default ``$TMPDIR``; never the
repository): a panning texture and a moving block, H.264 (libx264, ``ultrafast``, a keyframe every
2 s), 30 fps. The model gets random weights saved as a local checkpoint file in torchvision's format
(no download; speed does not depend on the values), passed with ``--weights FILE``. Each run is a
child process, ``python -m videozoo timeline VIDEO --model M --weights FILE --json``, and its peak
resident memory is that child's ``ru_maxrss`` (``os.wait4``, the ``resource.getrusage`` record of
that one child). Bounded memory means the peak does not grow with the length.
"""

from __future__ import annotations

import argparse
import fractions
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch


def make_long_video(path: Path, seconds: float, height: int, fps: int = 30) -> Path:
    """A panning texture with a moving block, H.264 ultrafast (fast to make, realistic to decode)."""
    if path.exists():
        return path
    width = height * 16 // 9 // 2 * 2
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 256, (height // 16 + 2, width // 16 + 2, 3), dtype=np.uint8).repeat(16, 0).repeat(16, 1)
    texture = np.concatenate([texture, texture], axis=1)[:height]
    partial = path.with_suffix(".partial.mp4")
    container = av.open(str(partial), "w")
    stream = container.add_stream("libx264", rate=fractions.Fraction(fps))
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    stream.options = {"preset": "ultrafast", "g": str(2 * fps), "crf": "26"}
    for i in range(int(seconds * fps)):
        shift = (i * 4) % width
        img = np.ascontiguousarray(texture[:, shift : shift + width])
        x = (i * 17) % (width - 200)
        img[height // 3 : height // 3 + 160, x : x + 200] = (30 + i % 200, 200, 90)
        for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    os.replace(partial, path)
    return path


def make_scenes_video(path: Path, scene_seconds: float = 5.0, height: int = 240, fps: int = 30) -> Path:
    """Four generated scenes in turn: a pan over a texture, a block moving on grey, flashes, a still texture."""
    width = height * 4 // 3 // 2 * 2
    rng = np.random.default_rng(1)
    texture = rng.integers(0, 256, (height // 8 + 2, width // 8 + 2, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
    texture = np.concatenate([texture, texture], axis=1)[:height]
    container = av.open(str(path), "w")
    stream = container.add_stream("libx264", rate=fractions.Fraction(fps))
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    stream.options = {"preset": "ultrafast", "g": str(fps)}
    n = int(scene_seconds * fps)
    for i in range(4 * n):
        scene, j = divmod(i, n)
        if scene == 0:
            img = np.ascontiguousarray(texture[:, (j * 6) % width :][:, :width])
        elif scene == 1:
            img = np.full((height, width, 3), 120, np.uint8)
            x = (j * 9) % (width - 60)
            img[height // 3 : height // 3 + 60, x : x + 60] = (220, 40, 40)
        elif scene == 2:
            img = np.full((height, width, 3), 250 if j % 6 < 3 else 10, np.uint8)
        else:
            img = np.ascontiguousarray(texture[:, :width])
        for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return path


def fitted_checkpoint(video: Path, directory: Path, scene_seconds: float = 5.0) -> Path:
    """r3d_18 with a random backbone whose last layer is fitted to the four scenes of ``video``.

    The scenes are given four arbitrary Kinetics class names (the checkpoint keeps r3d_18's 400
    categories); this only makes a picture with something to show, offline. It is not a classifier.
    """
    import videozoo
    from videozoo.video.windows import iter_windows

    torch.manual_seed(0)
    weights = videozoo.R3D_18_Weights.DEFAULT
    model = videozoo.r3d_18().eval()
    feats, scenes = [], []
    with torch.inference_mode():
        for w in iter_windows(video, weights.recipe, weights.transforms(), window=2.0, stride=0.25):
            feats.append(model.forward_head(model.forward_features(w.clip[None]), pre_logits=True)[0])
            scenes.append(min(int((w.start + w.end) / 2 // scene_seconds), 3))
    x = torch.stack(feats)
    x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    target = torch.full((len(scenes), 4), -4.0)
    target[torch.arange(len(scenes)), torch.tensor(scenes)] = 4.0
    a = torch.cat([x, torch.ones(len(x), 1)], 1)
    solution = torch.linalg.solve(a.T @ a + 50.0 * torch.eye(a.shape[1]), a.T @ target)  # ridge, (513, 4)
    classes = [weights.categories.index(c) for c in ("juggling balls", "bowling", "dancing ballet", "reading book")]
    mean, std = torch.stack(feats).mean(0), torch.stack(feats).std(0) + 1e-6
    state = model.state_dict()
    fc_w, fc_b = torch.zeros_like(state["fc.weight"]), torch.full_like(state["fc.bias"], -8.0)
    for k, c in enumerate(classes):
        fc_w[c] = solution[:-1, k] / std
        fc_b[c] = solution[-1, k] - (solution[:-1, k] * mean / std).sum()
    state["fc.weight"], state["fc.bias"] = fc_w, fc_b
    path = directory / "r3d_18_scenes.pth"
    torch.save(state, path)
    return path


def random_checkpoint(model: str, directory: Path) -> Path:
    import videozoo

    path = directory / f"{model}_random.pth"
    if not path.exists():
        torch.manual_seed(0)
        torch.save(videozoo.get_model(model).state_dict(), path)
    return path


def run(video: Path, model: str, weights: Path, extra: list[str]) -> dict[str, float]:
    command = [sys.executable, "-m", "videozoo", "timeline", str(video), "--model", model, "--weights", str(weights), "--json", *extra]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(command, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own resource usage
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(command)}\n{stderr}")
    peak_mib = usage.ru_maxrss / 1024  # Linux: KiB
    doc = json.loads(stdout)
    windows = len(doc["windows"])
    return {"windows": windows, "duration": doc["duration"], "wall_s": wall, "peak_rss_mib": peak_mib}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, nargs="+", default=[1.0, 3.0])
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--model", default="s3d", help="a model with torchvision-format weights (s3d, r2plus1d_18, ...)")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "videozoo_bench_timeline")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--demo", type=Path, default=None, help="only write the 20 s clip (docs/tasks.md's timeline picture) of four generated scenes here, and an r3d_18 checkpoint whose last layer is fitted to them; print the command")
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    if args.demo is not None:
        make_scenes_video(args.demo)
        weights = fitted_checkpoint(args.demo, args.dir)
        print(f"videozoo timeline {args.demo} --model r3d_18 --weights {weights} --window 2 --stride 1 --plot docs/timeline.png")
        return
    weights = random_checkpoint(args.model, args.dir)
    print(f"model {args.model} (random weights), batch size {args.batch_size}, torch threads {torch.get_num_threads()}, "
          f"{os.cpu_count()} CPUs")
    print(f"{'video':<22} {'frames':>7} {'MB':>6} {'windows':>7} {'wall s':>7} {'windows/s':>9} {'video s/s':>9} {'peak RSS MiB':>12}")
    for minutes in args.minutes:
        video = make_long_video(args.dir / f"synthetic_{minutes:g}min_{args.height}p.mp4", minutes * 60, args.height)
        r = run(video, args.model, weights, ["--batch-size", str(args.batch_size)])
        frames = int(minutes * 60 * 30)
        print(
            f"{video.name:<22} {frames:>7} {video.stat().st_size / 1e6:>6.1f} {r['windows']:>7} {r['wall_s']:>7.1f} "
            f"{r['windows'] / r['wall_s']:>9.2f} {r['duration'] / r['wall_s']:>9.2f} {r['peak_rss_mib']:>12.0f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
