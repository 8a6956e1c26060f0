"""The command line's parser: shared option groups (parents) and one sub-parser per command."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from videozoo.cli.exits import EXIT_CODES

__all__ = ["build_parser"]

def _parents() -> dict[str, argparse.ArgumentParser]:
    """Option groups that several commands share, each declared once."""

    def group() -> argparse.ArgumentParser:
        return argparse.ArgumentParser(add_help=False)

    debug = group()  # also after the command: `videozoo classify ... --debug`
    debug.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show the traceback of an error")
    model = group()
    model.add_argument("--model", "-m", required=True, help="model name (see 'videozoo models')")
    model.add_argument(
        "--weights", "-w", default="DEFAULT",
        help="weights name (default: the model's DEFAULT) or the path of a local checkpoint file in the published format",
    )
    run = group()
    run.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32", help="model precision (bf16: the model in bfloat16 where the CPU has AVX512-BF16 or AMX; default fp32)")
    run.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where the model runs (default cpu)")
    run.add_argument(
        "--engine", default="torch", choices=("torch", "compile", "onnxruntime", "openvino", "auto"),
        help="what runs the model (default torch; compile: torch.compile; auto: the fastest installed, measured once and remembered)",
    )
    run.add_argument("--exact", action="store_true", help="decode at full size and resize exactly as the preset does (slower)")
    manifest = group()
    manifest.add_argument(
        "--manifest", metavar="FILE", default=None,
        help="text file of video paths, one per line (# comments); resumable, shared among the ranks under torchrun",
    )
    windows = group()
    windows.add_argument("--window", type=_seconds, default=None, help="seconds per window (default: one clip of the recipe)")
    windows.add_argument("--stride", type=_seconds, default=None, help="seconds between window starts (default: half a window)")
    labels = group()
    labels.add_argument("--top-k", "-k", type=_positive, default=5, help="labels to show (default 5)")
    labels.add_argument(
        "--threshold", type=_probability, default=0.5,
        help="multi-label weights (e.g. slowfast_r50's CHARADES_V1): every class with at least this probability "
        "is a label (default 0.5)",
    )
    labels.add_argument(
        "--labels", metavar="TEXT|FILE", default=None,
        help="video-text models (e.g. pe_core_l14): your labels, comma-separated (\"open fridge,pour water\") or a "
        "UTF-8 text file with one per line",
    )
    labels.add_argument(
        "--template", metavar="TEXT", default=None,
        help="with --labels: the prompt, {} marking the label (default: the publisher's prompts, averaged)",
    )
    workers = group()
    workers.add_argument("--workers", type=_non_negative, default=None, help="decoding processes (default: automatic)")
    return {"debug": debug, "model": model, "run": run, "manifest": manifest, "windows": windows, "labels": labels, "workers": workers}


def build_parser() -> argparse.ArgumentParser:
    from videozoo import __version__
    from videozoo.cli import commands

    codes = "\n".join(f"  {code:<4} {text}" for code, text in EXIT_CODES.items())
    parser = argparse.ArgumentParser(
        prog="videozoo",
        description="Video models with their published weights.",
        epilog=f"exit codes:\n{codes}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    parser.add_argument("--version", action="version", version=f"videozoo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    g = _parents()

    def command(name: str, func: Callable[[argparse.Namespace], int], parents: list[str], **text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[g["debug"], *(g[k] for k in parents)], **text)
        p.set_defaults(func=func)
        return p

    p = command(
        "classify", commands.classify, ["model", "manifest", "labels", "run", "workers"],
        help="classify videos with a model's published weights",
        description="Print the top-k classes of each video, probabilities averaged over the recipe's views.",
    )
    p.add_argument("videos", nargs="*", metavar="VIDEO", help="video files (or --manifest with --out)")
    p.add_argument("--out", "-o", metavar="DIR", default=None, help="with --manifest: results to DIR/results.jsonl")
    p.add_argument("--clips", type=_positive, default=None, help="temporal clips per video (default: the recipe's)")
    p.add_argument("--crops", type=int, choices=(1, 3), default=None, help="spatial crops per clip (default: the recipe's)")
    p.add_argument("--batch-size", "-b", type=_positive, default=8, help="views per forward pass (default 8)")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of tables")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")

    p = command("models", commands.models, [], help="list the zoo", description="The zoo: every model with each of its weights, the default first.")
    p.add_argument("--include", "-i", default=None, metavar="PATTERN", help="shell-style pattern, e.g. 'x3d*'")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")

    p = command(
        "download", commands.download, [],
        help="fetch weights into the cache ahead of time",
        description="Download weights into the cache (run once before many offline workers start).",
    )
    p.add_argument("names", nargs="+", metavar="NAME", help="model name (its default weights) or weights name")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")

    p = command("info", commands.info, [], help="show a weight's meta", description="Show a weight's URL, cache file, recipe and meta.")
    p.add_argument("name", metavar="NAME", help="model name (its default weights) or weights name")
    p.add_argument("--json", action="store_true", help="print JSON (categories included)")

    p = command(
        "timeline", commands.timeline, ["model", "manifest", "windows", "labels", "run"],
        help="label a long video window by window (what happens when)",
        description="Slide windows over the whole video (decoded once, in bounded memory) and print each "
        "window's start/end seconds and top labels.",
    )
    p.add_argument("video", nargs="?", metavar="VIDEO", help="video file (or --manifest with --out)")
    p.add_argument("--out", "-o", metavar="DIR", default=None, help="with --manifest: timelines to DIR/timelines.jsonl")
    p.add_argument("--batch-size", "-b", type=_positive, default=8, help="windows per forward pass (default 8)")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of a table")
    p.add_argument("--csv", action="store_true", help="print CSV: one row per window and label")
    p.add_argument("--plot", metavar="FILE", default=None, help="also draw the timeline to FILE (.png or .svg; needs matplotlib)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")

    p = command(
        "extract", commands.extract, ["model", "manifest", "windows", "run", "workers"],
        help="write clip embeddings of every window of many videos (resumable; shards under torchrun)",
        description="Write each video's window embeddings (windows x num_features) and window times to "
        "OUT/<name>-<hash>.npz and an index OUT/index.jsonl. Videos already done are skipped; under "
        "torchrun the videos are shared among the ranks.",
    )
    p.add_argument("videos", nargs="*", metavar="VIDEO", help="video files (or --manifest)")
    p.add_argument("--out", "-o", required=True, metavar="DIR", help="output folder")
    p.add_argument("--batch-size", "-b", type=_positive, default=8, help="windows per forward pass (default 8)")
    p.add_argument("--quiet", "-q", action="store_true", help="no summary line")

    p = command(
        "search", commands.search, ["windows"],
        help="find the moments that match a text in a video, or across the features 'videozoo extract' wrote",
        description="Embed QUERY with a video-text model's text tower and rank windows by cosine similarity: "
        "the windows of VIDEO (as timeline cuts them), or every window stored in a FEATURES folder of "
        "'videozoo extract' (no decoding; the model is the one the features were extracted with).",
    )
    p.add_argument("target", metavar="VIDEO_OR_FEATURES", help="a video file, or the --out folder of 'videozoo extract'")
    p.add_argument("query", metavar="QUERY", help='what to find, e.g. "a dog catches a frisbee"')
    p.add_argument("--model", "-m", default=None, help="a video-text model (needed for a VIDEO; default for FEATURES: theirs)")
    p.add_argument("--weights", "-w", default=None, help="weights name or local checkpoint file (default: DEFAULT, or the features')")
    p.add_argument("--top-k", "-k", type=_positive, default=5, help="moments (and videos) to show (default 5)")
    p.add_argument("--batch-size", "-b", type=_positive, default=8, help="windows per forward pass (default 8)")
    p.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32", help="model precision (default fp32)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where the model runs (default cpu)")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of a table")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress messages")

    p = command(
        "export", commands.export, [],
        help="export a model to ONNX, TorchScript or a torch.export program, verified against eager",
        description="Export MODEL with its weights to --out, run the exported graph on random clips next to "
        "the eager model (the largest difference is printed; beyond --tolerance nothing is written), and write "
        "OUT.json beside it: input and output, clip recipe, preprocessing and category names.",
    )
    p.add_argument("model", metavar="MODEL", help="model name (see 'videozoo models')")
    p.add_argument(
        "--weights", "-w", default="DEFAULT",
        help="weights name (default: the model's DEFAULT), a local checkpoint file, or 'none' for random weights",
    )
    p.add_argument("--format", "-f", choices=("onnx", "torchscript", "exported-program"), default="onnx", help="default onnx")
    p.add_argument("--out", "-o", required=True, metavar="FILE", help="file to write (e.g. model.onnx, model.pt, model.pt2)")
    p.add_argument("--batch", type=_batch, default=1, help="batch size of the graph, or 'dynamic' (default 1)")
    p.add_argument("--frames", type=_positive, default=None, help="clip length (default: the weights' published clip)")
    p.add_argument("--size", type=_positive, nargs=2, metavar=("H", "W"), default=None, help="crop size (default: the published one)")
    p.add_argument(
        "--tolerance", type=float, default=None,
        help="largest accepted difference from eager, relative to max(1, largest logit) (default 1e-4; 0.25 with --int8)",
    )
    p.add_argument("--int8", action="store_true", help="an int8 ONNX graph (ONNX Runtime's static quantization); needs --calibrate")
    p.add_argument(
        "--calibrate", metavar="FILE", default=None,
        help="with --int8: a text file of your video paths, one per line; their evaluation clips calibrate the activations",
    )
    p.add_argument("--no-verify", action="store_true", help="skip running the exported graph (needs no onnxruntime)")

    p = command(
        "detect", commands.detect, ["model", "manifest", "run"],
        help="who does what, and when: persons and their actions at keyframes (AVA action detectors)",
        description="Find the persons in keyframes of the video (a person detector, or --boxes FILE), run an "
        "action detector (e.g. slowfast_r50_detection) on the clip around each keyframe and print each person's "
        "actions; persons are linked across keyframes by their boxes' overlap.",
    )
    p.add_argument("video", nargs="?", metavar="VIDEO", help="video file (or --manifest with --out)")
    p.add_argument("--out", "-o", metavar="DIR", default=None, help="with --manifest: detections to DIR/detections.jsonl")
    p.add_argument("--detector", default=None, metavar="NAME", help="person detector (default: the registered one)")
    p.add_argument(
        "--boxes", metavar="FILE", default=None,
        help="person boxes instead of a detector: AVA-style CSV (video_id,timestamp,x1,y1,x2,y2, normalised) or JSON; "
        "its timestamps are the keyframes",
    )
    p.add_argument("--rate", type=_seconds, default=1.0, help="keyframes per second, without --boxes (default 1, as AVA)")
    p.add_argument(
        "--threshold", type=_probability, default=0.5,
        help="actions at least this probable are listed (default 0.5, PyTorchVideo's demo)",
    )
    p.add_argument("--person-threshold", type=_probability, default=None, help="the detector's score threshold (default: its own)")
    p.add_argument("--top-k", "-k", type=_positive, default=3, help="most probable actions kept per person besides (default 3)")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of a table")
    p.add_argument("--csv", action="store_true", help="print AVA-style CSV: video_id,timestamp,x1,y1,x2,y2,action_id,score,person")
    p.add_argument("--plot", metavar="DIR", default=None, help="also draw each keyframe with boxes and actions into DIR (needs matplotlib)")
    p.add_argument("--video", dest="video_out", metavar="OUT.mp4", default=None,
                   help="also write the video re-encoded with boxes and actions drawn (needs matplotlib)")  # fmt: skip
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    return parser


# ----------------------------------------------------------------------------------------------------
# Argument types

def _number(parse: Callable[[str], float], ok: Callable[[float], bool], expected: str) -> Callable[[str], float]:
    """An argparse type: ``parse`` the text, and refuse it unless ``ok``, saying what was ``expected``."""

    def convert(text: str) -> float:
        try:
            value = parse(text)
        except ValueError:
            value = None
        if value is None or not ok(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return convert


_positive = _number(int, lambda v: v >= 1, "a positive integer")
_non_negative = _number(int, lambda v: v >= 0, "an integer >= 0")
_probability = _number(float, lambda v: 0.0 <= v <= 1.0, "a probability between 0 and 1")
_seconds = _number(float, lambda v: 0.0 < v < float("inf"), "a positive number of seconds")


def _batch(text: str) -> int | str:
    if text == "dynamic":
        return text
    try:
        return _positive(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'dynamic', got {text!r}") from None
