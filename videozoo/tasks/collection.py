"""Whole collections into one JSON-lines file, resumably, sharded by torchrun: ``classify --manifest``
and ``timeline --manifest``.

``out_dir/results.jsonl`` (classify) or ``out_dir/timelines.jsonl`` (timeline) gets one line per
video, in sorted path order: ``path``, ``model``, ``weights``, ``status`` (``"ok"``/``"error"``),
``error``, and for ``ok`` the result: the classifier's (``views``, ``top_k``, ``labels``, as
``videozoo classify --json``) or the timeline's (``window``, ``stride``, ``windows``, as
``videozoo timeline --json``). Each rank appends a video's line to its part file as soon as it is done
(:class:`videozoo.distributed.Session`); a rerun skips videos with an ``ok`` line in the results or in
a part file left by a killed run, whatever the number of processes; rank 0 writes the results at the end.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from torch import nn

from videozoo.zoo import WeightsEnum
from videozoo.tasks.distributed import Session, normalise, read_manifest, shard
from videozoo.errors import VideoDecodeError
from videozoo.tasks.classify import VideoClassifier

__all__ = ["classify_collection", "timeline_collection", "RESULTS", "TIMELINES"]

RESULTS = "results.jsonl"
TIMELINES = "timelines.jsonl"

#: For the videos to do, yields ``(path, result, error)``: the result's fields, or the error's text.
Process = Callable[[list[str]], Iterable[tuple[str, "dict[str, Any] | None", "str | None"]]]


def _collect(
    videos_or_manifest: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    results_name: str,
    base: dict[str, Any],
    process: Process,
) -> list[dict[str, Any]]:
    """Run ``process`` on this rank's share of the videos not yet done; rank 0 writes ``results_name``."""
    if isinstance(videos_or_manifest, (str, os.PathLike)):
        videos = normalise(read_manifest(videos_or_manifest))
    else:
        videos = normalise(videos_or_manifest)
    session = Session(out_dir)
    try:
        results = session.out_dir / results_name
        previous: dict[str, dict[str, Any]] = {}
        if results.exists():
            for line in results.read_text(encoding="utf-8").splitlines():
                entry = json.loads(line)
                previous[entry["path"]] = entry
        previous.update(session.part_records())
        done = {path for path, entry in previous.items() if entry.get("status") == "ok"}
        todo = [v for v in shard(videos, session.rank, session.world_size) if v not in done]
        own = []
        for path, result, error in process(todo) if todo else ():
            if error is not None:
                record = {"path": path, **base, "status": "error", "error": error}
            else:
                record = {"path": path, **base, "status": "ok", "error": None, **(result or {})}
            session.record(record)
            own.append(record)

        def merge() -> list[dict[str, Any]]:
            latest = {**previous, **session.part_records()}
            return [latest.get(v) or {"path": v, **base, "status": "error", "error": "not processed"} for v in videos]

        session.finish(results_name, merge)
        if session.rank == 0:
            return [json.loads(line) for line in results.read_text(encoding="utf-8").splitlines()]
        return own
    finally:
        session.close()


def classify_collection(
    videos_or_manifest: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    classifier: VideoClassifier,
    out_dir: str | os.PathLike[str],
    *,
    top_k: int = 5,
    weights_name: str | None = None,
) -> list[dict[str, Any]]:
    """Classify every video not yet done into ``out_dir/results.jsonl``; returns the records (rank 0: all).

    Args:
        videos_or_manifest: video paths, or a manifest file (see :func:`videozoo.distributed.read_manifest`).
        classifier: the model and its views; under torchrun each rank builds its own.
        weights_name: what to record as ``weights`` (default ``str(classifier.weights)``; e.g. a local file's path).
    """
    base = {"model": classifier.model_name, "weights": weights_name or str(classifier.weights)}

    def process(todo: list[str]) -> Iterable[tuple[str, dict[str, Any] | None, str | None]]:
        for prediction in classifier.iter_predict(todo, top_k=top_k, on_error="return"):
            entry = prediction.to_dict()
            path = entry.pop("video")
            yield (path, None, entry["error"]) if prediction.error is not None else (path, entry, None)

    return _collect(videos_or_manifest, out_dir, RESULTS, base, process)


def timeline_collection(
    videos_or_manifest: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    model: str | nn.Module,
    out_dir: str | os.PathLike[str],
    weights: WeightsEnum | str | os.PathLike[str] = "DEFAULT",
    *,
    weights_name: str | None = None,
    **options: Any,
) -> list[dict[str, Any]]:
    """The timeline of every video not yet done into ``out_dir/timelines.jsonl``; returns the records
    (rank 0: all).

    Args:
        videos_or_manifest: video paths, or a manifest file (see :func:`videozoo.distributed.read_manifest`).
        model, weights: as :func:`videozoo.timeline`; the network is loaded once per process.
        weights_name: what to record as ``weights`` (default: the member's name).
        options: :func:`videozoo.timeline`'s keywords (``window``, ``stride``, ``top_k``, ...).
    """
    from videozoo.tasks.classify import load_model
    from videozoo.tasks.timeline import timeline

    net, member = load_model(model, weights)
    base = {"model": model if isinstance(model, str) else type(model).__name__, "weights": weights_name or str(member)}

    def process(todo: list[str]) -> Iterable[tuple[str, dict[str, Any] | None, str | None]]:
        for path in todo:
            try:
                result = timeline(path, net, member, **options).to_dict()
            except VideoDecodeError as e:
                yield path, None, str(e)
                continue
            result.pop("video", None)
            result.pop("model", None)
            result.pop("weights", None)
            yield path, result, None

    return _collect(videos_or_manifest, out_dir, TIMELINES, base, process)
