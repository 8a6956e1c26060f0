"""Clip embeddings of every window of every video of a collection, resumable and torchrun-sharded.

Output, in ``out_dir``:

- per video one ``<stem>-<hash>.npz`` (``<hash>``: 12 hex digits of the SHA-1 of the video's absolute
  path, so equal basenames in different folders do not collide) holding ``features`` float32
  ``(windows, num_features)`` (the model's clip embedding, ``forward_head(forward_features(x),
  pre_logits=True)``, of each window's centre-crop clip; bf16 runs are stored as float32 too),
  ``times`` float64 ``(windows, 2)`` (each window's start and end seconds) and ``record`` (the
  video's index record as a JSON string). It is written to a temporary file and ``os.replace``-d, so
  it exists only when complete: it is the "done" mark a rerun skips on.
- ``index.jsonl``: one JSON line per video in sorted path order (written by the shared collection
  driver, :mod:`videozoo.tasks.collection`): ``video`` (its absolute path), ``output``, ``windows``,
  ``num_features``, ``model``, ``weights``, ``recipe``, ``window``, ``stride``, ``dtype``,
  ``status`` (``"ok"`` or ``"error"``) and ``error`` (the message, or null). Unreadable videos are
  recorded with their error and retried by the next run.

Windows come from :func:`videozoo.video.windows.iter_windows` (one streaming pass per video). Under
``torchrun`` each rank takes every ``world_size``-th video (:mod:`videozoo.distributed`) and rank 0
writes the index once all ranks are done.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import IterableDataset, get_worker_info

from videozoo.errors import VideoDecodeError
from videozoo.tasks.collection import CollectionTask, VideosArg, run_collection, write_atomic
from videozoo.tasks.runner import Runner, WeightsArg, decode_in_workers, load_model
from videozoo.zoo import ClipRecipe

__all__ = ["extract", "output_name", "INDEX"]

INDEX = "index.jsonl"


def output_name(video: str | os.PathLike[str]) -> str:
    """The ``.npz`` file name of a video's features: its stem and a hash of its absolute path."""
    path = os.path.abspath(os.fspath(video))
    return f"{Path(path).stem}-{hashlib.sha1(path.encode()).hexdigest()[:12]}.npz"


@dataclasses.dataclass
class _Chunk:
    position: int  # the video's position in the work list
    clips: Tensor | None  # (n, C, T, H, W)
    spans: list[tuple[float, float]]
    last: bool
    error: str | None = None


class _Windows(IterableDataset):
    """Chunks of up to ``batch_size`` windows per video; DataLoader worker ``w`` takes videos ``w::workers``."""

    def __init__(self, videos: Sequence[str], recipe: ClipRecipe, transform: nn.Module, opts: dict[str, Any], batch_size: int) -> None:
        self.videos, self.recipe, self.transform, self.opts, self.batch_size = videos, recipe, transform, opts, batch_size

    def __iter__(self) -> Iterator[_Chunk]:
        from videozoo.video.windows import iter_windows

        info = get_worker_info()
        mine = range(len(self.videos)) if info is None else range(info.id, len(self.videos), info.num_workers)
        for pos in mine:
            clips: list[Tensor] = []
            spans: list[tuple[float, float]] = []
            try:
                stream = iter_windows(self.videos[pos], self.recipe, self.transform, **self.opts)
                try:
                    for w in stream:
                        clips.append(w.clip)
                        spans.append((w.start, w.end))
                        if len(clips) == self.batch_size:
                            yield _Chunk(pos, torch.stack(clips), spans, False)
                            clips, spans = [], []
                finally:
                    stream.close()
            except VideoDecodeError as e:
                yield _Chunk(pos, None, [], True, str(e))
                continue
            yield _Chunk(pos, torch.stack(clips) if clips else None, spans, True)


def extract(
    videos_or_manifest: VideosArg,
    model: str | nn.Module,
    out_dir: str | os.PathLike[str],
    weights: WeightsArg = "DEFAULT",
    *,
    window: float | None = None,
    stride: float | None = None,
    dtype: str = "fp32",
    device: str | torch.device = "cpu",
    batch_size: int = 8,
    num_workers: int | None = None,
    resize_on_decode: bool = True,
    progress: Callable[[int, int], None] | None = None,
    engine: str = "torch",
) -> list[dict[str, Any]]:
    """Write every video's window embeddings to ``out_dir`` and return the index records (rank 0: all videos).

    Args:
        videos_or_manifest: video paths, or the path of a manifest file (a ``.txt``/``.lst`` or any
            file that is not a video: one path per line, see :func:`videozoo.tasks.collection.read_manifest`).
        model: a registered name, or a module with ``weights`` its member (as :func:`videozoo.predict`).
        out_dir: where the ``.npz`` files and ``index.jsonl`` go; videos whose ``.npz`` is there are skipped.
        window, stride: seconds (default: one clip of the recipe, half a window).
        dtype: ``"fp32"`` or ``"bf16"`` (the model with bfloat16 parameters); features are stored as float32.
        device: where the model runs; under torchrun ``"cuda"`` means ``cuda:LOCAL_RANK``.
        batch_size: windows per forward pass.
        num_workers: decoding processes (default: one per two CPU cores, at most 4; 0 decodes in this process).
        progress: called with (videos done, videos to do) on this rank.
        engine: what runs the model (see :func:`videozoo.accelerate`); the features are the same to
            within its checked tolerance.

    Under torchrun, every rank must call it with the same arguments; the return value of ranks other
    than 0 is their own shard's records. Raises ``ValueError`` when ``out_dir`` holds features computed
    with another configuration.
    """
    runner = load_model(model, weights, device=device, dtype=dtype, engine=engine, progress=int(os.environ.get("RANK", "0")) == 0)
    recipe = runner.recipe
    base = {
        **runner.describe(),
        "recipe": {k: v for k, v in dataclasses.asdict(recipe).items() if k not in ("num_clips", "num_crops")},
        "window": window,
        "stride": stride,
        "dtype": dtype,
    }
    out = Path(out_dir)
    opts = {"window": window, "stride": stride, "resize_on_decode": resize_on_decode}

    @torch.inference_mode()
    def process(todo: list[str]) -> Iterator[tuple[str, dict[str, Any] | None, str | None]]:
        dataset = _Windows(todo, recipe, runner.transform(), opts, batch_size)
        chunks = decode_in_workers(dataset, len(todo), num_workers)
        for done, (position, features, spans, error) in enumerate(_embeddings(chunks, runner), 1):
            video = todo[position]
            if error is not None:
                yield video, None, error
            else:
                fields = {"output": output_name(video), "windows": len(spans), "num_features": int(features.shape[1])}
                record = {"video": video, **base, "status": "ok", "error": None, **fields}
                times = np.asarray(spans, dtype=np.float64).reshape(-1, 2)
                write_atomic(
                    out / fields["output"],
                    lambda fh: np.savez(fh, features=features, times=times, record=np.asarray(json.dumps(record))),
                )
                yield video, fields, None
            if progress is not None:
                progress(done, len(todo))

    task = CollectionTask(
        "extract", INDEX, base, process,
        error_fields={"output": None, "windows": 0, "num_features": None},
        finished=lambda record: (out / record["output"]).exists(),
    )  # fmt: skip
    records = run_collection(videos_or_manifest, out, task)
    for stale in out.glob(".*.npz.tmp-*"):  # left by a run killed while writing
        if int(os.environ.get("RANK", "0")) == 0:
            stale.unlink(missing_ok=True)
    return records


def _embeddings(chunks: Iterable[_Chunk], runner: Runner) -> Iterator[tuple[int, Any, list[tuple[float, float]], str | None]]:
    """Each video's embeddings ``(windows, num_features)`` as float32 numpy, its window spans and its error,
    from the chunks of windows the workers decode (chunks of different videos interleave)."""
    pending: dict[int, tuple[list[Tensor], list[tuple[float, float]]]] = {}
    for chunk in chunks:
        feats, spans = pending.setdefault(chunk.position, ([], []))
        if chunk.clips is not None:
            feats.append(runner.embed(chunk.clips)[0])
            spans.extend(chunk.spans)
        if chunk.last:
            del pending[chunk.position]
            features = torch.cat(feats).numpy() if feats else None
            yield chunk.position, features, spans, chunk.error
