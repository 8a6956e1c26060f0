"""The commands: each checks its arguments, loads the model through the task road, runs its task and
prints. Names are checked first (an unknown model or weights name is exit 3 before anything loads)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

from videozoo.cli.exits import EXIT_OK, EXIT_OUTPUT, EXIT_UNKNOWN, EXIT_USAGE, EXIT_VIDEO, EXIT_WEIGHTS, Fail, error_line
from videozoo.cli.render import info_lines, prediction_table, print_zoo, zoo_rows

__all__ = ["classify", "models", "download", "info", "timeline", "extract", "export", "detect", "search"]


# ----------------------------------------------------------------------------------------------------
# Shared steps


def _model_name(name: str, tasks: tuple[str, ...] | None = None) -> str:
    """``name`` if it is a registered model (of one of ``tasks``, when given), else a usage failure."""
    import videozoo
    from videozoo.tasks.runner import check_task
    from videozoo.zoo.registry import did_you_mean

    if name not in videozoo.list_models():
        raise Fail(EXIT_UNKNOWN, f"Unknown model {name!r}.{did_you_mean(name, videozoo.list_models())} 'videozoo models' lists them all.")
    if tasks is not None:
        try:
            check_task(name, tasks)
        except ValueError as e:
            raise Fail(EXIT_USAGE, str(e)) from None
    return name


def _weights_for(name: str) -> Any:
    """A weights member from a model name (its DEFAULT) or ``Enum.MEMBER`` / ``model.MEMBER``."""
    import videozoo
    from videozoo.zoo.registry import did_you_mean

    models = videozoo.list_models()
    head, dot, member = name.partition(".")
    if name in models:
        return videozoo.get_model_weights(name).DEFAULT
    enums = {videozoo.get_model_weights(m).__name__: videozoo.get_model_weights(m) for m in models}
    enum = videozoo.get_model_weights(head) if head in models else enums.get(head)
    if dot and enum is not None:
        if member in enum.__members__:
            return enum[member]
        raise Fail(EXIT_UNKNOWN, f"{enum.__name__} has no weights {member!r}.{did_you_mean(member, enum.__members__)} "
                   f"Its weights: {', '.join(enum.__members__)}.")  # fmt: skip
    hint = did_you_mean(name, [*models, *(f"{e}.{m}" for e, enum in enums.items() for m in enum.__members__)])
    raise Fail(
        EXIT_UNKNOWN,
        f"Unknown model or weights {name!r}.{hint} Give a model name (its default weights) or a weights name such "
        f"as 'x3d_m.KINETICS400_V1' or 'X3D_M_Weights.KINETICS400_V1'; 'videozoo models' lists them all.",
    )


def _member(model: str, weights: str) -> Any:
    """``--weights``: the member it stands for (a name or a local file); an unknown name is exit 3."""
    from videozoo.tasks.runner import resolve_weights

    try:
        return resolve_weights(model, weights)[0]
    except ValueError as e:
        raise Fail(EXIT_UNKNOWN, str(e)) from None


def _check_device(device: str) -> None:
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise Fail(EXIT_USAGE, "--device cuda was asked for but no CUDA device is available; use --device cpu.")


def _prepare(args: argparse.Namespace, labels: bool = True, tasks: tuple[str, ...] = ("classification", "video_text")) -> Any:
    """The checks every model-running command starts with: the model's name, the device, the engine, the
    weights (with ``labels``: weights that classify, or a video-text model and its ``--labels``)."""
    _model_name(args.model, tasks)
    _check_runtime(args)
    member = _member(args.model, args.weights)
    if labels and _is_video_text(args.model):
        if getattr(args, "labels", None) is None:
            raise Fail(
                EXIT_USAGE,
                f"{args.model} is a video-text model: it classifies into labels you give. Add --labels "
                f"\"label one,label two\" (or --labels FILE, one label per line).",
            )
        if args.engine != "torch":
            raise Fail(EXIT_USAGE, f"--labels runs the text tower in PyTorch; use --engine torch with {args.model}.")
        if isinstance(args.labels, str):  # (timeline prepares twice)
            args.labels = _read_labels(args.labels)
        return member
    if labels and getattr(args, "labels", None) is not None:
        from videozoo.tasks.runner import check_labels_fit

        try:
            check_labels_fit(object(), args.model)
        except ValueError as e:
            raise Fail(EXIT_USAGE, f"--labels: {e} Leave --labels out to get {args.model}'s own classes.") from None
    if labels and not member.has_labels:
        raise Fail(
            EXIT_USAGE,
            f"{member!r} has no labels: these are an encoder's weights, which give clip embeddings "
            f"('videozoo extract'), not classes; {args.command} needs weights with a classifier.",
        )
    return member


def _is_video_text(model: str) -> bool:
    import videozoo

    return videozoo.get_model_task(model) == "video_text"


def _read_labels(value: str) -> list[str]:
    """``--labels``: a UTF-8 file with one label per line (blank lines skipped), else comma-separated text;
    an empty list, an empty or a repeated label is a usage error."""
    from videozoo.models._video_text import check_labels

    if os.path.isfile(value):
        try:
            with open(value, encoding="utf-8") as f:
                labels = [line.strip() for line in f if line.strip()]
        except UnicodeDecodeError as e:
            raise Fail(
                EXIT_USAGE,
                f"--labels {value}: the file is not UTF-8 text (byte {e.start} cannot be read as UTF-8); save it as "
                f"UTF-8 with one label per line.",
            ) from None
        where = f"--labels {value}"
    else:
        labels = [part.strip() for part in value.split(",")]
        if all(not part for part in labels):
            labels = []
        where = "--labels"
    try:
        return check_labels(labels)
    except (ValueError, TypeError) as e:
        hint = " (a label may not contain a comma: use a file, one label per line)" if "empty" in str(e) else ""
        raise Fail(EXIT_USAGE, f"{where}: {e}{hint}") from None


def _warnings_to_stderr(caught: list[Any]) -> None:
    for w in caught:
        print(f"videozoo: warning: {w.message}", file=sys.stderr)


def _check_runtime(args: argparse.Namespace) -> None:
    """``--device`` and ``--engine`` can run here."""
    from videozoo.tasks.engines import installed, runs

    _check_device(args.device)
    if args.engine in ("onnxruntime", "openvino") and not installed(args.engine):
        extra = "onnx" if args.engine == "onnxruntime" else "openvino"
        raise Fail(EXIT_USAGE, f"--engine {args.engine} is not installed: pip install 'videozoo[{extra}]'.")
    if args.engine in ("onnxruntime", "openvino") and not runs(args.engine, args.dtype):
        raise Fail(EXIT_USAGE, f"--engine {args.engine} cannot run --dtype {args.dtype} on this machine; use --dtype fp32, "
                   f"or --engine torch or auto.")  # fmt: skip
    if args.engine != "torch" and args.device != "cpu":
        raise Fail(EXIT_USAGE, f"--engine {args.engine} runs on the CPU; use --engine torch with --device {args.device}.")


def _collection_args(args: argparse.Namespace, inputs: list[str], what: str) -> list[str]:
    """``--manifest FILE --out DIR``: the manifest's videos (usage errors are exit 2)."""

    if args.manifest is None or args.out is None or inputs:
        raise Fail(EXIT_USAGE, f"--manifest FILE and --out DIR go together, without {what}.")
    _output_folder(args.out, "--out")
    return _video_list(args.manifest, "--manifest")


def _video_list(path: str, flag: str) -> list[str]:
    """The video paths a manifest file lists (``flag`` names the option in the errors, exit 2)."""
    from videozoo.tasks.collection import read_manifest

    try:
        videos = read_manifest(path)
    except (FileNotFoundError, UnicodeDecodeError) as e:
        raise Fail(EXIT_USAGE, f"{flag}: {e}") from None
    if not videos:
        raise Fail(EXIT_USAGE, f"{flag} {path}: lists no video paths.")
    return videos


def _output_folder(path: str, flag: str) -> None:
    """``--out DIR`` can be created or written (checked before any video is read)."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise Fail(EXIT_OUTPUT, f"{flag} {path}: is a file, not a folder; choose a folder for the results.")
    parent = os.path.abspath(path)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK):
        raise Fail(EXIT_OUTPUT, f"{flag} {path}: cannot be created or written in {parent}; choose another folder.")


def _output_file(path: str, flag: str) -> None:
    """``--plot FILE`` (``export --out FILE``) can be written: its folder exists and it is no folder itself."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise Fail(EXIT_OUTPUT, f"{flag} {path}: is a folder; give the file to write.")
    if not os.path.isdir(folder):
        raise Fail(EXIT_OUTPUT, f"{flag} {path}: the folder {folder} does not exist; create it first or choose another path.")
    if not os.access(folder, os.W_OK):
        raise Fail(EXIT_OUTPUT, f"{flag} {path}: no permission to write in {folder}; choose another path.")


def _say_engine(runner: Any, args: argparse.Namespace) -> None:
    """``--engine auto`` says which engine it picked and why (on stderr, unless ``--quiet``)."""
    if runner.engine is not None and runner.engine.report and not args.quiet:
        print(f"videozoo: {runner.engine.report}", file=sys.stderr)


def _report_collection(records: list[dict[str, Any]], index: str, done: str, quiet: bool) -> int:
    """Rank 0 of a collection run: one line per failed video, a summary, the exit code (other ranks: 0).

    Alone, videos that could not be read make the exit code 4, as for single videos. Under torchrun the
    processes exit 0 once every video was tried (torchrun reports any other code as a crash of the
    job): the summary line says how many failed, and their records in the index have status "error".
    """
    if int(os.environ.get("RANK", "0")) != 0:
        return EXIT_OK
    failed = [r for r in records if r["status"] != "ok"]
    for r in failed:
        error_line(str(r["error"]))
    distributed = "TORCHELASTIC_RUN_ID" in os.environ or int(os.environ.get("WORLD_SIZE", "1")) > 1  # torchrun's
    if not quiet or (failed and distributed):
        summary = f"{len(records) - len(failed)} of {len(records)} {done}: {index}"
        if failed:
            summary += f"; {len(failed)} could not be read (status \"error\" in the index; a rerun tries them again)"
        print(summary, file=sys.stderr)
    return EXIT_VIDEO if failed and not distributed else EXIT_OK


def _collect(run: Any, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
    """A collection task; an output folder of another configuration is a usage error."""
    try:
        return run(*args, **kwargs)
    except ValueError as e:  # e.g. --out holds results of another configuration
        raise Fail(EXIT_USAGE, str(e)) from None


def _readable_video(path: str) -> None:
    """A VIDEO that cannot be a video file (a URL, missing, an image, a folder) is exit 4, before any model runs."""
    from videozoo.video.io import not_a_video

    if (reason := not_a_video(path)) is not None:
        raise Fail(EXIT_VIDEO, f"{path}: {reason}")


@contextlib.contextmanager
def _progress_bar(desc: str, unit: str, quiet: bool) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on stderr (hidden by ``--quiet``), moved by the ``progress(done, total)`` it yields."""
    from tqdm import tqdm

    bar = tqdm(desc=desc, unit=unit, file=sys.stderr, disable=quiet or None)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    try:
        yield progress
    finally:
        bar.close()


def _one_format(args: argparse.Namespace, what: str) -> None:
    """``--json`` and ``--csv`` both print ``what``: at most one of them (timeline, detect)."""
    if args.json and args.csv:
        raise Fail(EXIT_USAGE, f"--json and --csv both print the {what}; choose one.")


def _print_result(result: Any, args: argparse.Namespace) -> None:
    """One video's result on stdout: ``--json``, ``--csv`` or its table (timeline, detect)."""
    if args.json:
        sys.stdout.write(result.to_json() + "\n")
    elif args.csv:
        sys.stdout.write(result.to_csv())
    else:
        sys.stdout.write(result.to_table())


# ----------------------------------------------------------------------------------------------------
# Commands


def classify(args: argparse.Namespace) -> int:
    member = _prepare(args)
    if args.manifest is not None or args.out is not None:
        return _classify_collection(args, member)
    return _classify_videos(args, member)


def _classifier(args: argparse.Namespace, member: Any, progress: bool) -> Any:
    from videozoo.tasks.classify import VideoClassifier

    try:  # e.g. --clips 2 with a segment recipe (one temporal view)
        member.recipe.with_views(args.clips, args.crops)
    except ValueError as e:
        raise Fail(EXIT_USAGE, f"{member!r}: {e}") from None
    import warnings

    with warnings.catch_warnings(record=True) as caught:  # a label cut to the text context
        warnings.simplefilter("always")
        classifier = VideoClassifier(
            args.model, args.weights, clips=args.clips, crops=args.crops, device=args.device, batch_size=args.batch_size,
            num_workers=args.workers, resize_on_decode=not args.exact, progress=progress, threshold=args.threshold,
            dtype=args.dtype, engine=args.engine, labels=args.labels, template=args.template,
        )  # fmt: skip
    _warnings_to_stderr(caught)
    _say_engine(classifier.runner, args)
    return classifier


def _classify_collection(args: argparse.Namespace, member: Any) -> int:
    """``classify --manifest FILE --out DIR``: every video's line in DIR/results.jsonl."""
    from videozoo.tasks.classify import RESULTS, classify_collection

    if args.json:
        raise Fail(EXIT_USAGE, f"--json prints results; with --out they go to {os.path.join(args.out or '', RESULTS)}.")
    videos = _collection_args(args, args.videos, "VIDEO paths")
    classifier = _classifier(args, member, progress=False)
    records = _collect(classify_collection, videos, classifier, args.out, top_k=args.top_k)
    return _report_collection(records, os.path.join(args.out, RESULTS), "videos classified", args.quiet)


def _classify_videos(args: argparse.Namespace, member: Any) -> int:
    """``classify VIDEO ...``: a table per video (or one JSON document), in the order given."""
    from tqdm import tqdm

    from videozoo.video.io import not_a_video

    if not args.videos:
        raise Fail(EXIT_USAGE, "give VIDEO paths, or --manifest FILE --out DIR.")
    unreadable = {v: f"{v}: {reason}" for v in args.videos if (reason := not_a_video(v)) is not None}
    for message in unreadable.values():
        error_line(message)
    videos = [v for v in args.videos if v not in unreadable]
    if not videos:  # nothing to classify: the model is not even loaded
        if args.json:
            errors = [{"video": v, "error": unreadable[v]} for v in args.videos]
            json.dump({"model": args.model, "weights": args.weights, "results": errors}, sys.stdout, indent=2)
            sys.stdout.write("\n")
        return EXIT_VIDEO
    classifier = _classifier(args, member, progress=not args.quiet)
    recipe = classifier.recipe
    header = {
        **classifier.runner.describe(), "clips": recipe.num_clips, "crops": recipe.num_crops,
        "multi_label": classifier.multi_label, "threshold": classifier.threshold,
    }  # fmt: skip
    results: list[dict[str, Any]] = []  # in the order of the command line, failed videos in place
    failed = bool(unreadable)
    bar = tqdm(total=len(videos), desc="classifying", unit="video", file=sys.stderr, disable=args.quiet or None)
    predictions = classifier.iter_predict(videos, top_k=args.top_k, on_error="return")
    try:
        for video in args.videos:
            if video in unreadable:
                results.append({"video": video, "error": unreadable[video]})
                continue
            prediction = next(predictions)
            bar.update(1)
            if prediction.error is not None:
                failed = True
                bar.clear()
                error_line(str(prediction.error))
                bar.refresh()
            if args.json:
                results.append(prediction.to_dict())
            elif prediction.error is None:
                tqdm.write(prediction_table(prediction, header), file=sys.stdout)
    finally:
        bar.close()
    if args.json:
        json.dump({**header, "results": results}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    return EXIT_VIDEO if failed else EXIT_OK


def models(args: argparse.Namespace) -> int:
    import videozoo

    rows = zoo_rows(videozoo.list_models(include=args.include))
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return EXIT_OK
    if not rows:
        error_line(f"no model matches {args.include!r}; 'videozoo models' lists them all.")
        return EXIT_UNKNOWN
    print_zoo(rows, sys.stdout)
    return EXIT_OK


def download(args: argparse.Namespace) -> int:
    from videozoo.errors import DownloadError
    from videozoo.zoo import store

    members = [_weights_for(name) for name in args.names]  # all names are checked before any download
    code = EXIT_OK
    for member in members:
        try:
            path = store.download_first(member.sources, progress=not args.quiet, gated=member.gated)
            extras = [member.extra_file(e.role, progress=not args.quiet) for e in member.value.extra_files]  # a tokenizer
        except DownloadError as e:
            error_line(f"{member!r}: {e}")
            code = EXIT_WEIGHTS
            continue
        print(f"{member!r}\t{path}")
        for extra in extras:
            print(f"{member!r}\t{extra}")
    return code


def info(args: argparse.Namespace) -> int:
    from videozoo.zoo import store

    member = _weights_for(args.name)
    caches = [store.cached_path(url, file_name=name) for url, name in member.sources]
    cache = next((path for path in caches if path.is_file()), caches[0])
    if args.json:
        out = {
            "weights": str(member),
            "url": member.url,
            "fallbacks": [url for url, _ in member.sources[1:]],
            "cache_path": str(cache),
            "cached": cache.is_file(),
            "transforms": repr(member.transforms()),
            "meta": dict(member.meta),
        }
        json.dump(out, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        sys.stdout.write("\n".join(info_lines(member, cache)) + "\n")
    return EXIT_OK


def timeline(args: argparse.Namespace) -> int:
    from videozoo.tasks.timeline import TIMELINES, timeline, timeline_collection

    _model_name(args.model, ("classification", "video_text"))
    _one_format(args, "timeline")
    if args.plot is not None:
        suffix = os.path.splitext(args.plot)[1].lower()
        if suffix not in (".png", ".svg"):
            raise Fail(EXIT_USAGE, f"--plot {args.plot}: the picture must be a .png or .svg file.")
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise Fail(EXIT_USAGE, '--plot needs matplotlib, which is not installed: pip install "videozoo[plot]".') from None
        _output_file(args.plot, "--plot")
    options = {
        "window": args.window, "stride": args.stride, "top_k": args.top_k, "threshold": args.threshold,
        "batch_size": args.batch_size, "resize_on_decode": not args.exact,
    }  # fmt: skip
    if args.labels is not None or _is_video_text(args.model):
        _prepare(args)  # --labels read and checked before any video is
        options.update(labels=args.labels, template=args.template)
    if args.manifest is not None or args.out is not None:
        videos = _collection_args(args, [args.video] if args.video is not None else [], "a VIDEO path")
        if args.json or args.csv or args.plot is not None:
            raise Fail(EXIT_USAGE, f"with --manifest the timelines go to {os.path.join(args.out, TIMELINES)} (no --json, --csv or --plot).")
        _prepare(args)
        records = _collect(
            timeline_collection, videos, args.model, args.out, args.weights, device=args.device, dtype=args.dtype,
            engine=args.engine, **options,
        )  # fmt: skip
        return _report_collection(records, os.path.join(args.out, TIMELINES), "timelines written", args.quiet)
    if args.video is None:
        raise Fail(EXIT_USAGE, "give a VIDEO, or --manifest FILE with --out DIR.")
    _prepare(args)
    _readable_video(args.video)
    import warnings

    # the warnings caught: a label cut to the text context
    with _progress_bar("windows", "window", args.quiet) as progress, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = timeline(
            args.video, args.model, args.weights, device=args.device, dtype=args.dtype, engine=args.engine,
            progress=progress, **options,
        )  # fmt: skip
    _warnings_to_stderr(caught)
    _print_result(result, args)
    if args.plot is not None:
        try:
            result.plot(args.plot)
        except OSError as e:  # e.g. the disk filled up while the picture was written
            raise Fail(EXIT_OUTPUT, f"--plot {args.plot}: cannot write it ({e.strerror or e}); free some space or choose another path.") from None
        print(f"wrote {args.plot}", file=sys.stderr)
    return EXIT_OK


def extract(args: argparse.Namespace) -> int:
    from videozoo.tasks.extract import INDEX, extract

    _model_name(args.model, ("classification", "video_text"))
    if bool(args.videos) == bool(args.manifest):
        raise Fail(EXIT_USAGE, "give either VIDEO paths or --manifest FILE (a text file of video paths, one per line).")
    videos = _collection_args(args, [], "VIDEO paths") if args.manifest else list(args.videos)
    _output_folder(args.out, "--out")
    _prepare(args, labels=False)
    records = _collect(
        extract, videos, args.model, args.out, args.weights, window=args.window, stride=args.stride, dtype=args.dtype,
        device=args.device, batch_size=args.batch_size, num_workers=args.workers, resize_on_decode=not args.exact,
        engine=args.engine,
    )  # fmt: skip
    return _report_collection(records, os.path.join(args.out, INDEX), "videos extracted", args.quiet)


def export(args: argparse.Namespace) -> int:
    from videozoo.tasks.export import export_model, published_clip

    _model_name(args.model, ("classification", "video_text", "action_detection"))
    if args.weights.lower() == "none":
        member, weights = _weights_for(args.model), None  # random weights; the default's clip and recipe
    else:
        member, weights = _member(args.model, args.weights), args.weights
    frames, height, width = published_clip(member)
    if args.frames is not None:
        frames = args.frames
    if args.size is not None:
        height, width = args.size
    dynamic = args.batch == "dynamic"
    calibration = None
    if args.int8 or args.calibrate is not None:
        if not (args.int8 and args.calibrate is not None and args.format == "onnx"):
            raise Fail(EXIT_USAGE, "--int8 and --calibrate FILE go together, with --format onnx.")
        calibration = _video_list(args.calibrate, "--calibrate")
    try:
        result = export_model(
            args.model, args.out, weights=weights, format=args.format, clip_shape=(frames, height, width),
            batch_size=1 if dynamic else args.batch, dynamic_batch=dynamic, verify=not args.no_verify, tolerance=args.tolerance,
            calibration=calibration,
        )  # fmt: skip
    except ValueError as e:  # a clip the model does not accept, an --out that cannot be written
        raise Fail(EXIT_USAGE, str(e)) from None
    shape = ", ".join(str(d) for d in result.input_shape)
    import videozoo
    from videozoo import is_checkpoint_path

    shown = "random weights" if weights is None else (weights if is_checkpoint_path(weights) else member)
    print(f"exported {args.model} ({shown}) as {result.format}{' int8' if calibration else ''}: {result.path}")
    print(f"input 'video': [{shape}] float32 (B, C, T, H, W); output 'logits'")
    if videozoo.get_model_task(args.model) == "action_detection":
        print("input 'boxes': [K, 5] float32 rows (batch_index, x1, y1, x2, y2) in the clip's pixels; logits (K, classes)")
    if result.max_abs_diff is None:
        print("not verified (--no-verify)")
    else:
        print(
            f"verified against eager on random clips: max |exported - eager| = {result.max_abs_diff:.3g} "
            f"(largest logit {result.max_abs_logit:.3g})"
        )
    print(f"recipe (clip sampling, preprocessing, categories): {result.recipe_path}")
    return EXIT_OK


def search(args: argparse.Namespace) -> int:
    """``search VIDEO_OR_FEATURES QUERY``: the best moments (and, for a collection, videos)."""
    from videozoo.tasks.search import search_features, search_video

    if not args.query.strip():
        raise Fail(EXIT_USAGE, 'QUERY is empty; describe the moment to find, e.g. "a dog catches a frisbee".')
    _check_device(args.device)
    if args.model is not None:
        _model_name(args.model)
        if not _is_video_text(args.model):
            import videozoo

            raise Fail(
                EXIT_USAGE,
                f"{args.model} has no text tower, so it cannot embed a query; search needs a video-text model "
                f"({', '.join(videozoo.list_models(task='video_text'))}).",
            )
    if os.path.isdir(args.target):
        try:
            result = search_features(
                args.target, args.query, args.model, args.weights, top_k=args.top_k, device=args.device, dtype=args.dtype
            )
        except ValueError as e:  # another model's features, none at all
            raise Fail(EXIT_USAGE, str(e)) from None
    else:
        if args.model is None:
            raise Fail(EXIT_USAGE, "searching a VIDEO needs --model, a video-text model (e.g. pe_core_l14).")
        _readable_video(args.target)
        result = search_video(
            args.target, args.query, args.model, args.weights or "DEFAULT", window=args.window, stride=args.stride,
            top_k=args.top_k, batch_size=args.batch_size, device=args.device, dtype=args.dtype,
        )  # fmt: skip
    if args.json:
        json.dump(result.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(result.to_table())
    return EXIT_OK


def detect(args: argparse.Namespace) -> int:
    """``videozoo detect``: persons and their actions at keyframes (AVA action detectors)."""
    from videozoo.tasks.detect import (
        DETECTIONS,
        BoxFileError,
        default_detector,
        detect,
        detect_collection,
        read_boxes,
    )

    _model_name(args.model, ("action_detection",))
    if args.engine != "torch":
        raise Fail(EXIT_USAGE, "detect runs the models with --engine torch (the action detectors take boxes besides the clip).")
    _one_format(args, "detections")
    if args.boxes is not None and args.detector is not None:
        raise Fail(EXIT_USAGE, "--boxes gives the persons, so no --detector runs; choose one.")
    if args.plot is not None or args.video_out is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise Fail(EXIT_USAGE, '--plot and --video need matplotlib, which is not installed: pip install "videozoo[plot]".') from None
    if args.plot is not None:
        _output_folder(args.plot, "--plot")
    if args.video_out is not None:
        if os.path.splitext(args.video_out)[1].lower() != ".mp4":
            raise Fail(EXIT_USAGE, f"--video {args.video_out}: the video is written as .mp4; give a file ending in .mp4.")
        _output_file(args.video_out, "--video")
    boxes = None
    if args.boxes is not None:
        try:
            boxes = read_boxes(args.boxes)
        except BoxFileError as e:
            raise Fail(EXIT_USAGE, f"--boxes: {e}") from None
    else:
        if args.detector is not None:
            _model_name(args.detector, ("person_detection",))
        else:
            try:
                default_detector()
            except ValueError as e:
                raise Fail(EXIT_USAGE, str(e)) from None
    options: dict[str, Any] = {
        "threshold": args.threshold, "top_k": args.top_k, "rate": args.rate, "detector": args.detector,
        "person_threshold": args.person_threshold,
    }  # fmt: skip
    if boxes is not None:
        del options["detector"]
    if args.manifest is not None or args.out is not None:
        videos = _collection_args(args, [args.video] if args.video is not None else [], "a VIDEO path")
        if args.json or args.csv or args.plot is not None or args.video_out is not None:
            raise Fail(EXIT_USAGE, f"with --manifest the detections go to {os.path.join(args.out, DETECTIONS)} (no --json, --csv, --plot or --video).")
        _prepare(args, tasks=("action_detection",))
        if boxes is not None:
            _report_unused_ids(boxes, videos)
        records = _collect(detect_collection, videos, args.model, args.out, args.weights, device=args.device, dtype=args.dtype, boxes=boxes, **options)
        return _report_collection(records, os.path.join(args.out, DETECTIONS), "videos detected", args.quiet)
    if args.video is None:
        raise Fail(EXIT_USAGE, "give a VIDEO, or --manifest FILE with --out DIR.")
    _prepare(args, tasks=("action_detection",))
    _readable_video(args.video)
    if boxes is not None:
        _report_unused_ids(boxes, [args.video])
    with _progress_bar("keyframes", "keyframe", args.quiet) as progress:
        try:
            result = detect(args.video, args.model, args.weights, boxes=boxes, device=args.device, dtype=args.dtype, progress=progress, **options)
        except BoxFileError as e:
            raise Fail(EXIT_USAGE, f"--boxes: {e}") from None
    for warning in result.warnings:
        print(f"videozoo: warning: {warning}", file=sys.stderr)
    _print_result(result, args)
    try:
        if args.plot is not None:
            paths = result.plot(args.plot)
            print(f"wrote {len(paths)} keyframe picture(s) to {args.plot}", file=sys.stderr)
        if args.video_out is not None:
            result.write_video(args.video_out)
            print(f"wrote {args.video_out}", file=sys.stderr)
    except OSError as e:  # e.g. the disk filled up while a picture was written
        raise Fail(EXIT_OUTPUT, f"cannot write {e.filename or 'the output'} ({e.strerror or e}); free some space or choose another path.") from None
    return EXIT_OK


def _report_unused_ids(boxes: Any, videos: list[str]) -> None:
    """Say which video ids of a box file no given video has (their boxes are not used)."""
    from pathlib import Path

    unused = boxes.unused(Path(v).stem for v in videos)
    if unused:
        shown = ", ".join(unused[:10]) + (f" and {len(unused) - 10} more" if len(unused) > 10 else "")
        print(f"videozoo: warning: {boxes.path} has boxes for video id(s) that are not among the videos: {shown}.", file=sys.stderr)
