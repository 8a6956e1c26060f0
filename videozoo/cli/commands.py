"""The ``videozoo`` command line (also ``python -m videozoo``).

Exit codes:

====  ==============================================================================================
0     success
1     unexpected error (a bug: run again with ``--debug`` and report the traceback)
2     bad command-line usage
3     unknown model or weights name
4     a video could not be read (missing, no video stream, corrupt, truncated); the others were
      still classified
5     weights could not be downloaded, or a checkpoint file could not be loaded
6     export failed, or the exported graph's outputs differ from eager (nothing was written)
130   interrupted (Ctrl-C)
====  ==============================================================================================
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from videozoo.tasks.memory import reuse_freed_memory

__all__ = ["main", "EXIT_CODES"]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_UNKNOWN = 3
EXIT_VIDEO = 4
EXIT_WEIGHTS = 5
EXIT_EXPORT = 6
EXIT_INTERRUPTED = 130

EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_ERROR: "unexpected error (a bug: run again with --debug and report the traceback)",
    EXIT_USAGE: "bad command-line usage",
    EXIT_UNKNOWN: "unknown model or weights name",
    EXIT_VIDEO: "a video could not be read (the others were still classified)",
    EXIT_WEIGHTS: "weights could not be downloaded, or a checkpoint file could not be loaded",
    EXIT_EXPORT: "export failed, or the exported graph's outputs differ from eager (nothing was written)",
    EXIT_INTERRUPTED: "interrupted",
}


class _Fail(Exception):
    """An error with its exit code; printed as one line."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _error_line(message: str) -> None:
    print(f"videozoo: error: {message}", file=sys.stderr)


# ----------------------------------------------------------------------------------------------------
# Names


def _model_name(name: str) -> str:
    import videozoo

    try:
        videozoo.get_model_builder(name)
    except ValueError as e:
        raise _Fail(EXIT_UNKNOWN, str(e)) from None
    return name


def _weights_for(name: str):
    """A weights member from a model name (its DEFAULT) or ``Enum.MEMBER`` / ``model.MEMBER``."""
    import videozoo

    try:
        if name in videozoo.list_models():
            return videozoo.get_model_weights(name).DEFAULT
        head, dot, member = name.partition(".")
        if dot and head in videozoo.list_models():
            return videozoo.get_model_weights(head).verify(member)
        return videozoo.get_weight(name)
    except ValueError as e:
        models = videozoo.list_models()
        raise _Fail(
            EXIT_UNKNOWN,
            f"{e} Give a model name ({', '.join(models[:6])}{', ...' if len(models) > 6 else ''}; see "
            f"'videozoo models') or a weights name such as {videozoo.get_model_weights(models[0]).DEFAULT!r}."
            if models
            else str(e),
        ) from None


def _recipe_text(member) -> str:
    from videozoo.zoo import ClipRecipe

    meta = member.meta
    try:
        recipe = ClipRecipe.from_meta(meta)
    except (ValueError, KeyError, TypeError):
        return "?"
    crop = getattr(member.transforms(), "crop_size", None)
    crop_text = f" {crop[0]}px" if crop else ""
    rate = f"@{recipe.frame_rate:g}fps" if recipe.frame_rate else "@native fps"
    frames = (
        f"{recipe.num_frames} segments" if recipe.sampling == "segments" else f"{recipe.num_frames}x{recipe.sampling_rate}"
    )
    return f"{frames} {rate}{crop_text}, {recipe.num_clips}x{recipe.num_crops} views"


def _metrics(meta: dict[str, Any]) -> tuple[str | None, dict[str, float]]:
    """The data set a weights entry was evaluated on and its published metrics (acc@1/acc@5 or mAP)."""
    for dataset, metrics in meta.get("_metrics", {}).items():
        return dataset, dict(metrics)
    return None, {}


# ----------------------------------------------------------------------------------------------------
# Commands


def _cmd_classify(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from videozoo.tasks.classify import VideoClassifier
    from videozoo.zoo import ClipRecipe

    _model_name(args.model)
    _check_device(args.device)
    if args.manifest is not None or args.out is not None:
        return _classify_manifest(args)
    if not args.videos:
        raise _Fail(EXIT_USAGE, "give VIDEO paths, or --manifest FILE --out DIR.")
    missing = [v for v in args.videos if not os.path.exists(v)]
    for video in missing:
        _error_line(f"{video}: no such file.")
    videos = [v for v in args.videos if v not in missing]
    if not videos:
        return EXIT_VIDEO
    member, weights, local_file = _resolve_weights(args.model, args.weights)
    try:  # e.g. --clips 2 with a segment recipe (one temporal view)
        ClipRecipe.from_meta(member.meta).with_views(args.clips, args.crops)
    except ValueError as e:
        raise _Fail(EXIT_USAGE, f"{member!r}: {e}") from None
    classifier = VideoClassifier(
        args.model,
        weights,
        clips=args.clips,
        crops=args.crops,
        device=args.device,
        batch_size=args.batch_size,
        num_workers=args.workers,
        resize_on_decode=not args.exact,
        progress=not args.quiet,
        threshold=args.threshold,
        dtype=args.dtype,
    )
    recipe = classifier.recipe
    header = {
        "model": args.model,
        "weights": os.fspath(args.weights) if local_file else str(classifier.weights),
        "clips": recipe.num_clips,
        "crops": recipe.num_crops,
        "multi_label": classifier.multi_label,
        "threshold": classifier.threshold,
    }
    results: list[dict[str, Any]] = [{"video": v, "error": f"{v}: no such file."} for v in missing]
    failed = bool(missing)
    bar = tqdm(total=len(videos), desc="classifying", unit="video", file=sys.stderr, disable=args.quiet or None)
    try:
        for prediction in classifier.iter_predict(videos, top_k=args.top_k, on_error="return"):
            bar.update(1)
            if prediction.error is not None:
                failed = True
                bar.clear()
                _error_line(str(prediction.error))
                bar.refresh()
            if args.json:
                results.append(prediction.to_dict())
            elif prediction.error is None:
                tqdm.write(_table(prediction, header), file=sys.stdout)
    finally:
        bar.close()
    if args.json:
        json.dump({**header, "results": results}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    return EXIT_VIDEO if failed else EXIT_OK


def _check_device(device: str) -> None:
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise _Fail(EXIT_USAGE, "--device cuda was asked for but no CUDA device is available; use --device cpu.")


def _resolve_weights(model: str, weights: str) -> tuple[Any, Any, bool]:
    """``--weights``: its member, what to pass on (the member, or the local file's path) and whether it
    is a local file; an unknown name is exit 3."""
    import videozoo

    try:
        member, _ = videozoo.get_model_weights(model).resolve(weights)
    except ValueError as e:
        raise _Fail(EXIT_UNKNOWN, str(e)) from None
    local_file = videozoo.is_checkpoint_path(weights)
    return member, weights if local_file else member, local_file


def _report_collection(records: list[dict[str, Any]], summary: str, quiet: bool) -> int:
    """Rank 0 of a collection run: one line per failed video, a summary, the exit code (others: 0)."""
    if int(os.environ.get("RANK", "0")) != 0:
        return EXIT_OK
    failed = [r for r in records if r["status"] != "ok"]
    for r in failed:
        _error_line(str(r["error"]))
    if not quiet:
        print(f"{len(records) - len(failed)} of {len(records)} {summary}", file=sys.stderr)
    return EXIT_VIDEO if failed else EXIT_OK


def _read_manifest_arg(path: str) -> list[str]:
    from videozoo.tasks.distributed import read_manifest

    try:
        videos = read_manifest(path)
    except (FileNotFoundError, UnicodeDecodeError) as e:
        raise _Fail(EXIT_USAGE, f"--manifest: {e}") from None
    if not videos:
        raise _Fail(EXIT_USAGE, f"--manifest {path}: lists no video paths.")
    return videos


def _classify_manifest(args: argparse.Namespace) -> int:
    """``classify --manifest FILE --out DIR``: every video's result in DIR/results.jsonl (resumable, sharded)."""
    import videozoo
    from videozoo.tasks.collection import RESULTS, classify_collection
    from videozoo.tasks.classify import VideoClassifier
    from videozoo.zoo import ClipRecipe

    if args.manifest is None or args.out is None or args.videos:
        raise _Fail(EXIT_USAGE, "--manifest FILE and --out DIR go together, without VIDEO paths.")
    if args.json:
        raise _Fail(EXIT_USAGE, f"--json prints results; with --out they go to {os.path.join(args.out, RESULTS)}.")
    videos = _read_manifest_arg(args.manifest)
    weights: Any = args.weights
    local_file = videozoo.is_checkpoint_path(weights)
    try:
        member, _ = videozoo.get_model_weights(args.model).resolve(weights)
    except ValueError as e:
        raise _Fail(EXIT_UNKNOWN, str(e)) from None
    try:  # e.g. --clips 2 with a segment recipe (one temporal view)
        ClipRecipe.from_meta(member.meta).with_views(args.clips, args.crops)
    except ValueError as e:
        raise _Fail(EXIT_USAGE, f"{member!r}: {e}") from None
    device = args.device
    if device == "cuda" and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        device = f"cuda:{os.environ.get('LOCAL_RANK', '0')}"
    classifier = VideoClassifier(
        args.model, weights if local_file else member, clips=args.clips, crops=args.crops, device=device,
        batch_size=args.batch_size, num_workers=args.workers, resize_on_decode=not args.exact,
        progress=False, threshold=args.threshold, dtype=args.dtype,
    )  # fmt: skip
    records = classify_collection(
        videos, classifier, args.out, top_k=args.top_k, weights_name=os.fspath(args.weights) if local_file else None
    )
    return _report_collection(records, f"videos classified; results: {os.path.join(args.out, RESULTS)}", args.quiet)


def _table(prediction, header: dict[str, Any]) -> str:
    views = f"{header['clips']} clip{'s' if header['clips'] != 1 else ''} x {header['crops']} crop{'s' if header['crops'] != 1 else ''}"
    width = max([len("label")] + [len(label) for label, _ in prediction.top_k])
    lines = [f"{prediction.source}  ({header['model']}, {views})", f"  {'#':>2}  {'label':<{width}}  probability"]
    for rank, (label, p) in enumerate(prediction.top_k, start=1):
        lines.append(f"  {rank:>2}  {label:<{width}}  {p:11.4f}")
    if header["multi_label"]:
        found = "; ".join(f"{label} ({p:.4f})" for label, p in prediction.labels) or "none"
        lines.append(f"  labels with probability >= {header['threshold']:g}: {found}")
    return "\n".join(lines) + "\n"


def _cmd_models(args: argparse.Namespace) -> int:
    import videozoo

    names = videozoo.list_models(include=args.include)
    rows = []
    for name in names:
        enum = videozoo.get_model_weights(name)
        default = enum.DEFAULT
        for member in [default] + [m for m in enum if m is not default]:  # the default first
            meta = member.meta
            dataset, metrics = _metrics(meta)
            rows.append(
                {
                    "name": name,
                    "weights": str(member),
                    "default": member is default,
                    "dataset": dataset,
                    "metrics": metrics,
                    "params": meta.get("num_params"),
                    "gflops": meta.get("_ops"),
                    "input": _recipe_text(member),
                    "license": meta.get("license"),
                }
            )
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return EXIT_OK
    if not rows:
        _error_line(f"no model matches {args.include!r}; 'videozoo models' lists them all.")
        return EXIT_UNKNOWN
    table = [
        ("name", "weights", "dataset", "metrics", "params", "GFLOPs", "input (frames x stride @rate, crop, clips x crops)", "license")
    ]
    for r in rows:
        metrics = "  ".join(f"{key} {value:.2f}" for key, value in r["metrics"].items())
        table.append(
            (
                r["name"],
                r["weights"].partition(".")[2] + ("*" if r["default"] else ""),
                r["dataset"] or "-",
                metrics or "-",
                f"{r['params'] / 1e6:.1f}M" if r["params"] else "-",
                f"{r['gflops']:.2f}" if r["gflops"] is not None else "-",
                r["input"],
                r["license"] or "-",
            )
        )
    _print_table(table, sys.stdout, right={4, 5})
    sys.stdout.write("* the model's default weights\n")
    return EXIT_OK


def _print_table(rows: Sequence[Sequence[str]], out: TextIO, right: set[int]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))]
        out.write("  ".join(cells).rstrip() + "\n")


def _cmd_download(args: argparse.Namespace) -> int:
    from videozoo.zoo import store
    from videozoo.errors import DownloadError

    members = [_weights_for(name) for name in args.names]  # all names are checked before any download
    code = EXIT_OK
    for member in members:
        try:
            path = store.download_first(member.sources, progress=not args.quiet)
        except DownloadError as e:
            _error_line(f"{member!r}: {e}")
            code = EXIT_WEIGHTS
            continue
        print(f"{member!r}\t{path}")
    return code


def _cmd_info(args: argparse.Namespace) -> int:
    from videozoo.zoo import store

    member = _weights_for(args.name)
    meta = dict(member.meta)
    caches = [store.cached_path(url, file_name=name) for url, name in member.sources]
    cache = next((path for path in caches if path.is_file()), caches[0])
    transforms = member.transforms()
    if args.json:
        out = {
            "weights": str(member),
            "url": member.url,
            "fallbacks": [url for url, _ in member.sources[1:]],
            "cache_path": str(cache),
            "cached": cache.is_file(),
            "transforms": repr(transforms),
            "meta": meta,
        }
        json.dump(out, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
        return EXIT_OK
    categories = meta.pop("categories", [])
    lines = [
        f"weights:           {member!r}",
        f"url:               {member.url}",
        *(f"  or else:         {url}" for url, _ in member.sources[1:]),
        f"cache file:        {cache} ({'present' if cache.is_file() else 'not downloaded'})",
        f"license:           {meta.pop('license', 'not stated')}",
        f"categories:        {len(categories)} ({', '.join(categories[:4])}{', ...' if len(categories) > 4 else ''})",
        f"clips:             {_recipe_text(member)}",
    ]
    describe = getattr(transforms, "describe", None)
    lines.append(f"transforms:        {describe() if describe else repr(transforms)}")
    for key in sorted(meta):
        value = meta[key]
        if key == "_metrics":
            for dataset, metrics in value.items():
                lines.append(f"{dataset + ':':<18} " + ", ".join(f"{k} {v}" for k, v in metrics.items()))
            continue
        lines.append(f"{key + ':':<18} {value}")
    sys.stdout.write("\n".join(lines) + "\n")
    return EXIT_OK


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _timeline_manifest(args: argparse.Namespace) -> int:
    """``timeline --manifest FILE --out DIR``: every video's timeline in DIR/timelines.jsonl (resumable, sharded)."""
    from videozoo.tasks.collection import TIMELINES, timeline_collection

    if args.manifest is None or args.out is None or args.video is not None:
        raise _Fail(EXIT_USAGE, "--manifest FILE and --out DIR go together, without a VIDEO path.")
    if args.json or args.csv or args.plot is not None:
        raise _Fail(EXIT_USAGE, f"with --manifest the timelines go to {os.path.join(args.out, TIMELINES)} (no --json, --csv or --plot).")
    videos = _read_manifest_arg(args.manifest)
    member, weights, local_file = _resolve_weights(args.model, args.weights)
    device = args.device
    if device == "cuda" and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        device = f"cuda:{os.environ.get('LOCAL_RANK', '0')}"
    records = timeline_collection(
        videos, args.model, args.out, weights,
        weights_name=os.fspath(weights) if local_file else None, window=args.window, stride=args.stride,
        top_k=args.top_k, threshold=args.threshold, batch_size=args.batch_size, device=device,
        resize_on_decode=not args.exact, dtype=args.dtype,
    )  # fmt: skip
    return _report_collection(records, f"timelines written: {os.path.join(args.out, TIMELINES)}", args.quiet)


def _cmd_timeline(args: argparse.Namespace) -> int:
    from videozoo.tasks.timeline import timeline

    _model_name(args.model)
    if args.json and args.csv:
        raise _Fail(EXIT_USAGE, "--json and --csv both print the timeline; choose one.")
    if args.plot is not None:
        suffix = os.path.splitext(args.plot)[1].lower()
        if suffix not in (".png", ".svg"):
            raise _Fail(EXIT_USAGE, f"--plot {args.plot}: the picture must be a .png or .svg file.")
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise _Fail(EXIT_USAGE, '--plot needs matplotlib, which is not installed: pip install "videozoo[plot]".') from None
    _check_device(args.device)
    if args.manifest is not None or args.out is not None:
        return _timeline_manifest(args)
    if args.video is None:
        raise _Fail(EXIT_USAGE, "give a VIDEO, or --manifest FILE with --out DIR.")
    if not os.path.exists(args.video):
        raise _Fail(EXIT_VIDEO, f"{args.video}: no such file.")
    member, weights, _ = _resolve_weights(args.model, args.weights)
    from tqdm import tqdm

    bar = tqdm(desc="windows", unit="window", file=sys.stderr, disable=args.quiet or None)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    try:
        result = timeline(
            args.video,
            args.model,
            weights,
            window=args.window,
            stride=args.stride,
            top_k=args.top_k,
            threshold=args.threshold,
            batch_size=args.batch_size,
            device=args.device,
            resize_on_decode=not args.exact,
            progress=progress,
            dtype=args.dtype,
        )
    finally:
        bar.close()
    if args.json:
        sys.stdout.write(result.to_json() + "\n")
    elif args.csv:
        sys.stdout.write(result.to_csv())
    else:
        sys.stdout.write(result.to_table())
    if args.plot is not None:
        result.plot(args.plot)
        print(f"wrote {args.plot}", file=sys.stderr)
    return EXIT_OK


def _cmd_extract(args: argparse.Namespace) -> int:
    from videozoo.tasks.extract import extract

    _model_name(args.model)
    if bool(args.videos) == bool(args.manifest):
        raise _Fail(EXIT_USAGE, "give either VIDEO paths or --manifest FILE (a text file of video paths, one per line).")
    _check_device(args.device)
    if args.manifest:
        videos = _read_manifest_arg(args.manifest)
    else:
        videos = list(args.videos)
    member, weights, _ = _resolve_weights(args.model, args.weights)
    try:
        records = extract(
            videos,
            args.model,
            args.out,
            weights,
            window=args.window,
            stride=args.stride,
            dtype=args.dtype,
            device=args.device,
            batch_size=args.batch_size,
            num_workers=args.workers,
            resize_on_decode=not args.exact,
        )
    except ValueError as e:  # e.g. --out holds features of another configuration
        raise _Fail(EXIT_USAGE, str(e)) from None
    return _report_collection(records, f"videos extracted; index: {os.path.join(args.out, 'index.jsonl')}", args.quiet)


def _batch(text: str) -> int | str:
    if text == "dynamic":
        return text
    try:
        return _positive(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'dynamic', got {text!r}") from None


def _cmd_export(args: argparse.Namespace) -> int:
    from videozoo.tasks.export import export_model, published_clip

    _model_name(args.model)
    if args.weights.lower() == "none":
        member, weights = _weights_for(args.model), None  # random weights; the default's clip and recipe
    else:
        member, weights, _ = _resolve_weights(args.model, args.weights)
    frames, height, width = published_clip(member)
    if args.frames is not None:
        frames = args.frames
    if args.size is not None:
        height, width = args.size
    dynamic = args.batch == "dynamic"
    try:
        result = export_model(
            args.model,
            args.out,
            weights=weights,
            format=args.format,
            clip_shape=(frames, height, width),
            batch_size=1 if dynamic else args.batch,
            dynamic_batch=dynamic,
            verify=not args.no_verify,
            tolerance=args.tolerance,
        )
    except ValueError as e:  # a clip the model does not accept, an --out that cannot be written
        raise _Fail(EXIT_USAGE, str(e)) from None
    shape = ", ".join(str(d) for d in result.input_shape)
    print(f"exported {args.model} ({weights if weights is not None else 'random weights'}) as {result.format}: {result.path}")
    print(f"input 'video': [{shape}] float32 (B, C, T, H, W); output 'logits'")
    if result.max_abs_diff is None:
        print("not verified (--no-verify)")
    else:
        print(
            f"verified against eager on random clips: max |exported - eager| = {result.max_abs_diff:.3g} "
            f"(largest logit {result.max_abs_logit:.3g})"
        )
    print(f"recipe (clip sampling, preprocessing, categories): {result.recipe_path}")
    return EXIT_OK


# ----------------------------------------------------------------------------------------------------
# Parser and entry point


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a probability between 0 and 1, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a probability between 0 and 1, got {text!r}")
    return value


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    codes = "\n".join(f"  {code:<4} {text}" for code, text in EXIT_CODES.items())
    parser = argparse.ArgumentParser(
        prog="videozoo",
        description="Video classification models with their published weights.",
        epilog=f"exit codes:\n{codes}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser(
        "classify",
        help="classify videos with a model's published weights",
        description="Print the top-k classes of each video, probabilities averaged over the recipe's views.",
    )
    p.add_argument("videos", nargs="*", metavar="VIDEO", help="video files (or --manifest with --out)")
    p.add_argument("--model", "-m", required=True, help="model name (see 'videozoo models')")
    p.add_argument(
        "--weights", "-w", default="DEFAULT",
        help="weights name (default: the model's DEFAULT) or the path of a local checkpoint file in the "
        "published format",
    )
    p.add_argument(
        "--manifest", metavar="FILE", default=None,
        help="text file of video paths, one per line; with --out: results to DIR/results.jsonl, resumable, "
        "shared among the ranks under torchrun",
    )
    p.add_argument("--out", "-o", metavar="DIR", default=None, help="with --manifest: the output folder")
    p.add_argument("--top-k", "-k", type=_positive, default=5, help="classes to show (default 5)")
    p.add_argument(
        "--threshold", type=_probability, default=0.5,
        help="multi-label weights (e.g. slowfast_r50's CHARADES_V1): also list every class with at least this "
        "probability (default 0.5; JSON output lists them for any weights)",
    )
    p.add_argument("--clips", type=_positive, default=None, help="temporal clips per video (default: the recipe's)")
    p.add_argument("--crops", type=int, choices=(1, 3), default=None, help="spatial crops per clip (default: the recipe's)")
    p.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32", help="model precision (bf16: autocast; default fp32)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where the model runs (default cpu)")
    p.add_argument("--batch-size", "-b", type=_positive, default=8, help="views per forward pass (default 8)")
    p.add_argument("--workers", type=_non_negative, default=None, help="decoding processes (default: automatic)")
    p.add_argument("--exact", action="store_true", help="decode at full size and resize exactly as the preset does (slower)")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of tables")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_classify)

    p = sub.add_parser(
        "models", help="list the zoo", description="The zoo: every model with each of its weights, the default first."
    )
    p.add_argument("--include", "-i", default=None, metavar="PATTERN", help="shell-style pattern, e.g. 'x3d*'")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_cmd_models)

    p = sub.add_parser(
        "download",
        help="fetch weights into the cache ahead of time",
        description="Download weights into the cache (run once before many offline workers start).",
    )
    p.add_argument("names", nargs="+", metavar="NAME", help="model name (its default weights) or weights name")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_download)

    p = sub.add_parser("info", help="show a weight's meta", description="Show a weight's URL, cache file, recipe and meta.")
    p.add_argument("name", metavar="NAME", help="model name (its default weights) or weights name")
    p.add_argument("--json", action="store_true", help="print JSON (categories included)")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser(
        "timeline",
        help="label a long video window by window (what happens when)",
        description="Slide windows over the whole video (decoded once, in bounded memory) and print each "
        "window's start/end seconds and top labels.",
    )
    p.add_argument("video", nargs="?", metavar="VIDEO", help="video file (or --manifest with --out)")
    p.add_argument("--model", "-m", required=True, help="model name (see 'videozoo models')")
    p.add_argument("--manifest", metavar="FILE", default=None, help="text file of video paths, one per line (# comments)")
    p.add_argument("--out", "-o", metavar="DIR", default=None, help="with --manifest: the output folder")
    p.add_argument(
        "--weights", "-w", default="DEFAULT",
        help="weights name (default: the model's DEFAULT) or the path of a local checkpoint file",
    )
    p.add_argument("--window", type=_seconds, default=None, help="seconds per window (default: one clip of the recipe)")
    p.add_argument("--stride", type=_seconds, default=None, help="seconds between window starts (default: half a window)")
    p.add_argument("--top-k", "-k", type=_positive, default=5, help="labels per window (default 5)")
    p.add_argument(
        "--threshold", type=_probability, default=0.5,
        help="multi-label weights: every class with at least this probability is a label of the window (default 0.5)",
    )
    p.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32", help="model precision (bf16: autocast; default fp32)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where the model runs (default cpu)")
    p.add_argument("--batch-size", "-b", type=_positive, default=8, help="windows per forward pass (default 8)")
    p.add_argument("--exact", action="store_true", help="decode at full size and resize exactly as the preset does (slower)")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of a table")
    p.add_argument("--csv", action="store_true", help="print CSV: one row per window and label")
    p.add_argument("--plot", metavar="FILE", default=None, help="also draw the timeline to FILE (.png or .svg; needs matplotlib)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_timeline)

    p = sub.add_parser(
        "extract",
        help="write clip embeddings of every window of many videos (resumable; shards under torchrun)",
        description="Write each video's window embeddings (windows x num_features) and window times to "
        "OUT/<name>-<hash>.npz and an index OUT/index.jsonl. Videos already done are skipped; under "
        "torchrun the videos are shared among the ranks.",
    )
    p.add_argument("videos", nargs="*", metavar="VIDEO", help="video files (or --manifest)")
    p.add_argument("--manifest", metavar="FILE", default=None, help="text file of video paths, one per line (# comments)")
    p.add_argument("--model", "-m", required=True, help="model name (see 'videozoo models')")
    p.add_argument("--out", "-o", required=True, metavar="DIR", help="output folder")
    p.add_argument(
        "--weights", "-w", default="DEFAULT",
        help="weights name (default: the model's DEFAULT) or the path of a local checkpoint file",
    )
    p.add_argument("--window", type=_seconds, default=None, help="seconds per window (default: one clip of the recipe)")
    p.add_argument("--stride", type=_seconds, default=None, help="seconds between window starts (default: half a window)")
    p.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32", help="model precision (bf16: autocast; default fp32)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where the model runs (default cpu)")
    p.add_argument("--batch-size", "-b", type=_positive, default=8, help="windows per forward pass (default 8)")
    p.add_argument("--workers", type=_non_negative, default=None, help="decoding processes per rank (default: automatic)")
    p.add_argument("--exact", action="store_true", help="decode at full size and resize exactly as the preset does (slower)")
    p.add_argument("--quiet", "-q", action="store_true", help="no summary line")
    p.set_defaults(func=_cmd_extract)

    p = sub.add_parser(
        "export",
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
    p.add_argument("--tolerance", type=float, default=1e-4, help="largest accepted difference from eager, relative to max(1, largest logit) (default 1e-4)")
    p.add_argument("--no-verify", action="store_true", help="skip running the exported graph (needs no onnxruntime)")
    p.set_defaults(func=_cmd_export)
    return parser


def _exit_code(error: BaseException) -> tuple[int, str]:
    from videozoo.errors import CheckpointError, DownloadError, ExportError, VideoDecodeError

    if isinstance(error, _Fail):
        return error.code, str(error)
    if isinstance(error, ExportError):
        return EXIT_EXPORT, str(error)
    if isinstance(error, VideoDecodeError):
        return EXIT_VIDEO, str(error)
    if isinstance(error, (DownloadError, CheckpointError)):
        return EXIT_WEIGHTS, str(error)
    detail = str(error).strip().splitlines()
    text = f"{type(error).__name__}: {detail[0]}" if detail else type(error).__name__
    return EXIT_ERROR, f"unexpected {text} (run again with --debug for the traceback)"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (the console script exits with it)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    reuse_freed_memory()  # this process runs models: keep activations' memory between forward passes
    try:
        return args.func(args)
    except KeyboardInterrupt:
        _error_line("interrupted.")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `videozoo models | head`
        sys.stderr.close()
        return EXIT_OK
    except Exception as error:
        if args.debug:
            raise
        code, message = _exit_code(error)
        _error_line(message)
        return code
