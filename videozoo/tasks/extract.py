"""Clip embeddings of every window of every video of a collection, resumable and torchrun-sharded.

Output, in ``out_dir``:

- per video one ``<stem>-<hash>.npz`` (``<hash>``: 12 hex digits of the SHA-1 of the video's absolute
  path, so equal basenames in different folders do not collide) holding ``features`` float32
  ``(windows, num_features)`` (the model's clip embedding, ``forward_head(forward_features(x),
  pre_logits=True)``, of each window's centre-crop clip; bf16 runs are stored as float32 too),
  ``times`` float64 ``(windows, 2)`` (each window's start and end seconds) and ``record`` (the
  video's index record as a JSON string). It is written to a temporary file and ``os.replace``-d, so
  it exists only when complete: it is the "done" mark a rerun skips on.
- ``index.jsonl``: one JSON line per video in sorted path order: ``path``, ``output``, ``windows``,
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
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from videozoo.zoo import WeightsEnum, is_checkpoint_path
from videozoo.tasks.distributed import Session, normalise, read_manifest, shard, write_atomic
from videozoo.errors import VideoDecodeError
from videozoo.tasks.classify import check_dtype, precision
from videozoo.zoo import ClipRecipe

__all__ = ["extract", "output_name", "INDEX"]

INDEX = "index.jsonl"
#: The run's model, weights, recipe, window, stride and dtype, written by the first run; later runs must match.
CONFIGURATION = "extract.json"


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


def _identity(chunk: _Chunk) -> _Chunk:
    return chunk


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)


def extract(
    videos_or_manifest: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    model: str | nn.Module,
    out_dir: str | os.PathLike[str],
    weights: WeightsEnum | str | os.PathLike[str] = "DEFAULT",
    *,
    window: float | None = None,
    stride: float | None = None,
    dtype: str = "fp32",
    device: str | torch.device = "cpu",
    batch_size: int = 8,
    num_workers: int | None = None,
    resize_on_decode: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> list[dict[str, Any]]:
    """Write every video's window embeddings to ``out_dir`` and return the index records (rank 0: all videos).

    Args:
        videos_or_manifest: video paths, or the path of a manifest file (a ``.txt``/``.lst`` or any
            file that is not a video: one path per line, see :func:`videozoo.distributed.read_manifest`).
        model: a registered name, or a module with ``weights`` its member (as :func:`videozoo.predict`).
        out_dir: where the ``.npz`` files and ``index.jsonl`` go; videos whose ``.npz`` is there are skipped.
        window, stride: seconds (default: one clip of the recipe, half a window).
        dtype: ``"fp32"`` or ``"bf16"`` (autocast, on CPU too); features are stored as float32.
        device: where the model runs; under torchrun ``"cuda"`` means ``cuda:LOCAL_RANK``.
        batch_size: windows per forward pass.
        num_workers: decoding processes (default: one per two CPU cores, at most 4; 0 decodes in this process).
        progress: called with (videos done, videos to do) on this rank.

    Under torchrun, every rank must call it with the same arguments; the return value of ranks other
    than 0 is their own shard's records.
    """
    from videozoo.tasks.classify import load_model

    check_dtype(dtype)
    if isinstance(videos_or_manifest, (str, os.PathLike)):
        videos = normalise(read_manifest(videos_or_manifest))
    else:
        videos = normalise(videos_or_manifest)
    session = Session(out_dir)
    try:
        dev = torch.device(device)
        if dev.type == "cuda" and dev.index is None and session.world_size > 1:
            dev = torch.device("cuda", session.local_rank)
        net, member = load_model(model, weights, progress=session.rank == 0)
        net = net.to(dev)
        recipe = ClipRecipe.from_meta(member.meta)
        base = {
            "model": model if isinstance(model, str) else type(model).__name__,
            "weights": os.fspath(weights) if is_checkpoint_path(weights) else str(member),
            "recipe": {k: v for k, v in dataclasses.asdict(recipe).items() if k not in ("num_clips", "num_crops")},
            "window": window,
            "stride": stride,
            "dtype": dtype,
        }
        out = session.out_dir
        _check_configuration(out, base, session.rank)
        todo = [v for v in shard(videos, session.rank, session.world_size) if not (out / output_name(v)).exists()]
        own = _run(todo, net, member, recipe, base, session, dev, window, stride, dtype, batch_size, num_workers, resize_on_decode, progress)

        def merge() -> list[dict[str, Any]]:  # rank 0, once every rank is done
            for stale in out.glob(".*.npz.tmp-*"):  # left by a run killed while writing
                stale.unlink(missing_ok=True)
            parts = session.part_records()
            records = []
            for v in videos:
                npz = out / output_name(v)
                if npz.exists():
                    with np.load(npz) as data:
                        records.append(json.loads(str(data["record"])))
                else:
                    records.append(parts.get(v) or {"path": v, "output": None, **base, "status": "error", "error": "not processed"})
            return records

        session.finish(INDEX, merge)
        if session.rank == 0:
            return [json.loads(line) for line in (out / INDEX).read_text(encoding="utf-8").splitlines()]
        return own
    finally:
        session.close()


def _check_configuration(out: Path, config: dict[str, Any], rank: int) -> None:
    """Refuse to add features computed another way to ``out``: a rerun skips finished videos, so a changed
    model, window or dtype would otherwise mix silently. The first run records its configuration."""
    path = out / CONFIGURATION
    config = json.loads(json.dumps(config))
    if path.exists():
        saved = json.loads(path.read_text(encoding="utf-8"))
        changed = sorted(k for k in set(saved) | set(config) if saved.get(k) != config.get(k))
        if changed:
            what = "; ".join(f"{k} {saved.get(k)!r} there, {config.get(k)!r} now" for k in changed)
            raise ValueError(
                f"{out} holds features computed with another configuration ({what}). Use another output "
                f"folder, or the same settings to resume."
            )
    elif rank == 0:
        write_atomic(path, lambda f: f.write(json.dumps(config, indent=1).encode("utf-8")))


@torch.inference_mode()
def _run(todo, net, member, recipe, base, session, dev, window, stride, dtype, batch_size, num_workers, resize_on_decode, progress):
    opts = {"window": window, "stride": stride, "resize_on_decode": resize_on_decode}
    dataset = _Windows(todo, recipe, member.transforms(), opts, batch_size)
    workers = num_workers
    if workers is None:
        workers = min(len(todo), max(1, (os.cpu_count() or 1) // 2), 4) if len(todo) > 1 else 0
    workers = min(workers, len(todo))
    chunks = iter(dataset) if workers == 0 else DataLoader(dataset, batch_size=None, num_workers=workers, collate_fn=_identity, worker_init_fn=_worker_init)
    pending: dict[int, tuple[list[Tensor], list[tuple[float, float]]]] = {}
    records = []
    done = 0
    for chunk in chunks:
        feats, spans = pending.setdefault(chunk.position, ([], []))
        if chunk.clips is not None:
            x = chunk.clips.to(dev)
            with precision(dev, dtype):
                f = net.forward_head(net.forward_features(x), pre_logits=True)
            feats.append(f.float().cpu())
            spans.extend(chunk.spans)
        if not chunk.last:
            continue
        del pending[chunk.position]
        video = todo[chunk.position]
        if chunk.error is not None:
            record = {"path": video, "output": None, **base, "windows": 0, "num_features": None, "status": "error", "error": chunk.error}
        else:
            features = torch.cat(feats).numpy()
            record = {
                "path": video, "output": output_name(video), **base, "windows": len(spans),
                "num_features": int(features.shape[1]), "status": "ok", "error": None,
            }  # fmt: skip
            times = np.asarray(spans, dtype=np.float64).reshape(-1, 2)
            write_atomic(
                session.out_dir / record["output"],
                lambda fh: np.savez(fh, features=features, times=times, record=np.asarray(json.dumps(record))),
            )
        session.record(record)
        records.append(record)
        done += 1
        if progress is not None:
            progress(done, len(todo))
    return records
