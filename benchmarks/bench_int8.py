"""int8 against fp32 and bf16 on a trained classifier: accuracy on the same videos, agreement, speed.

    python benchmarks/bench_int8.py --weights RUN/checkpoint.pth --data-path MOTION --markdown int8.md

``--weights`` is a checkpoint written by ``references/video_classification/train.py`` (or its output
folder), ``--data-path`` a data set in its folder layout (``make_synthetic.py`` writes one):
``ROOT/train/<class>/`` gives the calibration videos (``--calibration-videos``, taken in turn from each
class: the user's own videos), ``ROOT/val/<class>/`` the videos scored. Each video's evaluation views are
made by videozoo's own code (``videozoo.video.views.clip_views`` with the weights' recipe and preset), the
views videozoo.predict and train.py's evaluation use; a video's label is the softmax averaged over its
views (train.py's video acc@1).

Every engine scores the SAME views: eager fp32 (the reference), torch bf16 (autocast), and per installed
engine (``--engines``) its fp32, its bf16 where it has one, and its int8 — built by
``videozoo.accelerate(..., dtype="int8", calibration=[video files])``, the engines' own quantizers (NNCF
for OpenVINO, ``onnxruntime.quantization`` for ONNX Runtime). Columns: video and clip acc@1, top-1
agreement with eager fp32 (videos, clips), the largest ``|logit - fp32 logit|`` over all views (and
relative to the largest fp32 logit), and the time per clip at batch 1 (median of ``--repeats`` interleaved
rounds in this process, ``--threads`` threads) with its speed-up over eager fp32.

Videos without labels (real videos for a zoo model, say): ``--videos FILE ... --calibrate FILE ...``
reports agreement with fp32 only. ``--speed-shape T H W`` times engines built at another clip shape
(calibrated on the calibration views resized to it; the accuracy columns stay at the weights' clip).
Run it with the machine otherwise idle for the speed columns; the accuracy columns do not depend on load.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import torch
import torch.nn.functional as F
from _timing import interleaved_medians
from torch import Tensor

import videozoo
from videozoo.errors import ExportError
from videozoo.tasks import engines
from videozoo.tasks.export import published_clip
from videozoo.tasks.runner import resolve_weights
from videozoo.video.views import clip_views
from videozoo.zoo.runs import read_run

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v")


def class_videos(split: Path) -> dict[str, list[Path]]:
    """``{class folder: its videos}``, both sorted, of a ``split/<class>/<video>`` folder."""
    if not split.is_dir():
        sys.exit(f"{split} is not a folder of <class>/<video> sub-folders (make_synthetic.py's layout).")
    found = {
        c.name: sorted(v for v in c.iterdir() if v.suffix.lower() in VIDEO_EXTENSIONS)
        for c in sorted(split.iterdir())
        if c.is_dir() and not c.name.startswith(".")
    }
    return {c: v for c, v in found.items() if v}


def in_turn(videos: dict[str, list[Path]], count: int) -> list[Path]:
    """``count`` videos taken from each class in turn (the first of every class, then the second...)."""
    taken: list[Path] = []
    for i in range(max(map(len, videos.values()), default=0)):
        taken.extend(v[i] for v in videos.values() if i < len(v))
    return taken[:count]


def build(net, member, clip_shape, calibration, names: list[str], log) -> dict[str, engines.Engine]:
    """Eager fp32 first (the reference), then every engine and dtype asked for that runs here."""
    built = {"torch fp32": engines.accelerate(net, member, engine="torch", dtype="fp32", clip_shape=clip_shape)}
    built["torch bf16"] = engines.accelerate(net, member, engine="torch", dtype="bf16", clip_shape=clip_shape)
    for name in names:
        if not engines.installed(name):
            log(f"{name}: not installed, left out")
            continue
        for dtype in ("fp32", "bf16", "int8"):
            if not engines.runs(name, dtype):
                continue
            extra = {"calibration": calibration} if dtype == "int8" else {}
            try:
                built[f"{name} {dtype}"] = engines.accelerate(net, member, engine=name, dtype=dtype, clip_shape=clip_shape, **extra)
            except (ExportError, ImportError, ValueError, RuntimeError) as e:  # a failing engine leaves a row out
                log(f"{name} {dtype}: {type(e).__name__}: {str(e).splitlines()[0]}")
    return built


def score(engine: engines.Engine, views: Tensor, batch: int) -> Tensor:
    return torch.cat([engine(views[i : i + batch]) for i in range(0, len(views), batch)])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--weights", required=True, help="a train.py checkpoint (or its output folder), or a member of --model")
    parser.add_argument("--model", help="the registered model (default: the checkpoint's)")
    parser.add_argument("--data-path", type=Path, help="ROOT with train/<class>/ (calibration) and val/<class>/ (scored)")
    parser.add_argument("--val-dir", default="val", help="the scored folder under --data-path (default: val)")
    parser.add_argument("--calibration-videos", type=int, default=12, help="training videos that calibrate int8 (default 12)")
    parser.add_argument("--videos", type=Path, nargs="+", help="unlabelled videos to score instead of --data-path")
    parser.add_argument("--calibrate", type=Path, nargs="+", help="with --videos: the calibration videos")
    parser.add_argument("--max-videos", type=int, help="score only the first N videos of each class (a quick check)")
    parser.add_argument("--engines", nargs="+", default=["openvino", "onnxruntime"], choices=("openvino", "onnxruntime"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20, help="interleaved timing rounds (default 20)")
    parser.add_argument("--batch", type=int, default=16, help="views per engine call when scoring (default 16)")
    parser.add_argument("--speed-shape", type=int, nargs=3, metavar=("T", "H", "W"), help="time at this clip shape instead")
    parser.add_argument("--markdown", type=Path, help="also write the table (and how it was made) to this file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    lines: list[str] = []

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    weights = args.weights
    if os.path.isdir(weights):
        weights = os.path.join(weights, "checkpoint.pth")
    run = read_run(Path(weights)) if os.path.isfile(weights) else None
    model = args.model or (run or {}).get("model_name")
    if not model:
        sys.exit("--model is needed unless --weights is a train.py checkpoint.")
    member, _ = resolve_weights(model, weights)
    net = videozoo.get_model(model, weights=weights).eval()
    recipe, transform = member.recipe, member.transforms()
    clip_shape = published_clip(member)

    # The videos: scored (with labels from their folders, or none) and calibrating.
    if args.videos:
        if not args.calibrate:
            sys.exit("--videos needs --calibrate FILE ... (the int8 calibration videos).")
        scored, labels, calibration = list(args.videos), None, list(args.calibrate)
    elif args.data_path:
        val = class_videos(args.data_path / args.val_dir)
        categories = [c.replace(" ", "_") for c in member.categories]
        unknown = [c for c in val if c.replace(" ", "_") not in categories]
        if unknown:
            sys.exit(f"class folder(s) {', '.join(unknown)} are not among the weights' categories {member.categories}.")
        scored, labels = [], []
        for name, videos in val.items():
            videos = videos[: args.max_videos] if args.max_videos else videos
            scored += videos
            labels += [categories.index(name.replace(" ", "_"))] * len(videos)
        calibration = in_turn(class_videos(args.data_path / "train"), args.calibration_videos)
    else:
        sys.exit("give --data-path ROOT (labelled) or --videos FILE ... --calibrate FILE ...")
    log(f"{len(scored)} videos scored, {len(calibration)} calibrating; making their views ({recipe}) ...")
    per_video = [clip_views(v, recipe, transform) for v in scored]
    counts = torch.tensor([len(v) for v in per_video])
    views = torch.cat(per_video)
    owner = torch.arange(len(scored)).repeat_interleave(counts)

    log(f"building the engines at {clip_shape} ...")
    built = build(net, member, clip_shape, calibration, args.engines, log)
    logits = {key: score(engine, views, args.batch) for key, engine in built.items()}

    def video_top1(clip_logits: Tensor) -> Tensor:
        probs = torch.zeros(len(scored), clip_logits.shape[1], dtype=torch.float64)
        probs.index_add_(0, owner, clip_logits.double().softmax(1))
        return probs.argmax(1)

    reference = logits["torch fp32"]
    ref_clips, ref_videos = reference.argmax(1), video_top1(reference)
    scale = reference.abs().max().item()

    # Speed: batch 1, one clip, interleaved rounds (engines built again at --speed-shape if asked).
    timed, speed_shape = built, clip_shape
    if args.speed_shape:
        speed_shape = tuple(args.speed_shape)
        clips = engines.calibration_clips(calibration, member, clip_shape)
        resized = F.interpolate(clips, size=speed_shape, mode="trilinear", align_corners=False)
        log(f"building the engines at {speed_shape} for the timing ...")
        timed = build(net, member, speed_shape, resized, args.engines, log)
        x = resized[:1].contiguous()
    else:
        x = views[:1].contiguous()
    runs = {key: (lambda e=engine: e(x)) for key, engine in timed.items()}
    for run_once in runs.values():
        run_once(), run_once()  # warm-up
    log(f"timing {len(runs)} engines, {args.repeats} interleaved rounds ...")
    med = interleaved_medians(runs, args.repeats)

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], check=False, capture_output=True, text=True, cwd=Path(__file__).parent).stdout.strip()
    versions = ", ".join(f"{e} {version(e)}" for e in args.engines if engines.installed(e))
    lines.append(
        f"{model} with `{weights}` ({len(member.categories)} classes), {len(scored)} videos x {int(counts[0])} views "
        f"({'x'.join(map(str, clip_shape))}); int8 calibrated on {len(calibration)} training videos' views (at most "
        f"{engines.MAX_CALIBRATION} clips). {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, commit {commit}, "
        f"torch {torch.__version__}, {versions}, {args.threads} threads, {platform.processor() or platform.machine()}."
    )
    lines.append(f"Speed: batch 1 at {'x'.join(map(str, speed_shape))}, median of {args.repeats} interleaved rounds.")
    lines.append("")
    columns = ["engine", "dtype", *(["video acc@1", "clip acc@1"] if labels is not None else [])]
    columns += ["top-1 = fp32 (videos)", "top-1 = fp32 (clips)", "max \\|Δ logit\\| (rel.)", "mean \\|Δ logit\\|", "ms per clip", "vs eager fp32"]
    lines += ["| " + " | ".join(columns) + " |", "|---|---|" + "---:|" * (len(columns) - 2)]
    target = torch.tensor(labels) if labels is not None else None
    for key, out in logits.items():
        engine, dtype = key.split()
        clips, videos = out.argmax(1), video_top1(out)
        row = f"| {engine} | {dtype} |"
        if target is not None:
            row += f" {100.0 * (videos == target).double().mean():.1f} % | {100.0 * (clips == target.repeat_interleave(counts)).double().mean():.1f} % |"
        diff = (out - reference).abs().max().item()
        row += f" {int((videos == ref_videos).sum())}/{len(scored)} | {int((clips == ref_clips).sum())}/{len(views)} |"
        row += f" {diff:.3g} ({diff / max(scale, 1e-12):.2%}) |"
        row += f" {(out - reference).abs().mean().item():.3g} |"
        row += f" {med[key] * 1e3:.2f} | {med['torch fp32'] / med[key]:.2f}x |" if key in med else " — | — |"
        lines.append(row)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.markdown:
        command = " ".join(["python", *sys.argv])
        args.markdown.write_text(f"{text}\nCommand: `{command}`\n")


if __name__ == "__main__":
    main()
