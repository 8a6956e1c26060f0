"""Find moments by text: a query's text embedding against the window embeddings of one video or a collection.

A video-text model puts a text and a clip in one space; the best moments for a query are the windows
whose (L2-normalised) video embedding has the largest cosine similarity with the query's text
embedding. Two sources of windows:

* **one video** (:func:`search_video`): its windows as ``videozoo timeline`` cuts them
  (:func:`videozoo.video.windows.iter_windows`: one decoding pass), each embedded by the model;
* **a collection** (:func:`search_features`): the window embeddings ``videozoo extract`` wrote with the
  same model (``<video>-<hash>.npz`` files and ``index.jsonl``, :mod:`videozoo.tasks.extract`). Nothing
  is decoded again: the first search gathers every video's windows into one float32 matrix,
  ``search/<model>.npy`` with ``search/<model>.json`` (each row's video, start and end) beside the
  features, rebuilt whenever ``index.jsonl`` changes; every search then memory-maps the matrix and
  multiplies it by the query in blocks of rows (brute force: exact, and about a second for a few
  million windows on a CPU; see docs/collections.md for when an index such as FAISS pays off).

Features extracted with another model, or with a model that has no text tower, are refused (the error
names both models): their embeddings live in another space. An empty features folder is an error.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from videozoo.tasks.collection import write_atomic
from videozoo.tasks.extract import INDEX
from videozoo.tasks.runner import Runner, WeightsArg, check_positive, is_video_text, load_model
from videozoo.video.windows import iter_windows

__all__ = ["Moment", "SearchResult", "WindowMatrix", "rank", "search", "search_features", "search_video", "window_matrix"]

#: Rows of the window matrix multiplied at once (bounds the memory a search takes beyond the mapping).
BLOCK_ROWS = 1 << 16


@dataclass(frozen=True)
class Moment:
    """A window that matches the query: its video, its span in seconds, and its cosine similarity."""

    video: str
    start: float
    end: float
    score: float

    def to_dict(self) -> dict[str, Any]:
        return {"video": self.video, "start": round(self.start, 6), "end": round(self.end, 6), "score": round(self.score, 6)}


@dataclass
class SearchResult:
    """The best ``moments`` for ``query``, best first; ``videos``: each video's best score, best first."""

    query: str
    model: str
    weights: str
    moments: list[Moment]
    videos: list[tuple[str, float]] = field(default_factory=list)
    windows_searched: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "query": self.query, "model": self.model, "weights": self.weights, "windows_searched": self.windows_searched,
            "moments": [m.to_dict() for m in self.moments],
            "videos": [{"video": v, "score": round(s, 6)} for v, s in self.videos],
        }  # fmt: skip

    def to_table(self) -> str:
        lines = [f"{self.query!r}  ({self.model}, {self.windows_searched} windows)"]
        lines.append(f"  {'#':>3}  {'score':>7}  {'start':>9}  {'end':>9}  video")
        for i, m in enumerate(self.moments, 1):
            lines.append(f"  {i:>3}  {m.score:>7.4f}  {m.start:>9.2f}  {m.end:>9.2f}  {m.video}")
        return "\n".join(lines) + "\n"


def _query_embedding(runner: Runner, query: str) -> torch.Tensor:
    if not isinstance(query, str) or not query.strip():
        raise ValueError("The search query is empty; describe the moment to find, e.g. 'a dog catches a frisbee'.")
    with torch.inference_mode():
        return runner.model.encode_text([query]).float().cpu()[0]


def _text_runner(model: str | nn.Module | Runner, weights: WeightsArg, device: Any, dtype: str) -> Runner:
    runner = model if isinstance(model, Runner) else load_model(model, weights, device=device, dtype=dtype)
    if not is_video_text(runner.model):
        from videozoo.zoo import list_models

        raise ValueError(
            f"{runner.model_name} has no text tower: it cannot embed a query. Search needs a video-text model "
            f"({', '.join(list_models(task='video_text'))})."
        )
    return runner


def search_video(
    video: str | os.PathLike[str],
    query: str,
    model: str | nn.Module | Runner,
    weights: WeightsArg = "DEFAULT",
    *,
    window: float | None = None,
    stride: float | None = None,
    top_k: int = 5,
    batch_size: int = 8,
    device: str | torch.device = "cpu",
    dtype: str = "fp32",
    resize_on_decode: bool = True,
) -> SearchResult:
    """The ``top_k`` windows of one video that best match ``query``.

    Args:
        video: a video file.
        query: what to find, in words (used as given, without a prompt template).
        model: a video-text model's name (or module with ``weights`` its member, or a loaded runner).
        window, stride: seconds, as :func:`videozoo.timeline` (default: one clip of the recipe, half a window).
        top_k: moments returned.
    """
    check_positive(top_k, "top_k")
    check_positive(batch_size, "batch_size")
    runner = _text_runner(model, weights, device, dtype)
    text = _query_embedding(runner, query)
    stream = iter_windows(video, runner.recipe, runner.transform(), window=window, stride=stride, resize_on_decode=resize_on_decode)
    spans, scores, batch = [], [], []
    for w in stream:
        batch.append(w.clip)
        spans.append((w.start, w.end))
        if len(batch) == batch_size:
            scores.append(F.normalize(runner.embed(torch.stack(batch))[0], dim=-1) @ text)
            batch = []
    if batch:
        scores.append(F.normalize(runner.embed(torch.stack(batch))[0], dim=-1) @ text)
    all_scores = torch.cat(scores)
    order = all_scores.argsort(descending=True, stable=True)[:top_k]
    name = os.fspath(video)
    moments = [Moment(name, spans[i][0], spans[i][1], float(all_scores[i])) for i in order.tolist()]
    return SearchResult(
        query, runner.model_name, runner.weights_name, moments, [(name, float(all_scores.max()))], len(spans)
    )


# ----------------------------------------------------------------------------------------------------
# Collections


def _index_records(folder: Path) -> list[dict[str, Any]]:
    index = folder / INDEX
    if not folder.is_dir():
        raise ValueError(f"{folder}: no such features folder (videozoo extract VIDEOS --model M --out {folder} writes one).")
    if not index.is_file():
        raise ValueError(
            f"{folder} holds no extracted features (no {INDEX}): run videozoo extract VIDEOS --model MODEL --out "
            f"{folder} with a video-text model first."
        )
    with open(index, encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    records = [r for r in records if r.get("status") == "ok" and r.get("windows")]
    if not records:
        raise ValueError(f"{folder}: {INDEX} lists no video whose features were extracted; nothing to search.")
    return records


def _check_same_model(records: list[dict[str, Any]], folder: Path, model: str | None, weights: str | None) -> tuple[str, str]:
    """The model and weights the features were extracted with; ``ValueError`` naming both models when they
    are not the ones asked for, or not those of a video-text model."""
    from videozoo.zoo import get_model_task, list_models

    pairs = sorted({(r["model"], r["weights"]) for r in records})
    if len(pairs) > 1:
        raise ValueError(f"{folder}: its features come from several models ({pairs}); search one model's at a time.")
    (theirs, their_weights), = pairs
    if model is not None and model != theirs:
        raise ValueError(
            f"{folder} holds features extracted with {theirs} ({their_weights}); a query embedded by {model} cannot be "
            f"compared with them (another embedding space). Search with --model {theirs}, or extract again with {model}."
        )
    if weights is not None and weights != "DEFAULT" and weights != their_weights:
        raise ValueError(
            f"{folder} holds features extracted with {theirs} weights {their_weights}, not {weights}: search with "
            f"those weights, or extract again."
        )
    try:
        task = get_model_task(theirs)
    except ValueError:
        task = None
    if task != "video_text":
        raise ValueError(
            f"{folder} holds features extracted with {theirs}, which has no text tower: a text query cannot be compared "
            f"with them. Extract them with a video-text model ({', '.join(list_models(task='video_text'))}) to search."
        )
    return theirs, their_weights


@dataclass
class WindowMatrix:
    """Every extracted window of a features folder: ``matrix`` float32 ``(windows, D)`` (L2-normalised rows,
    memory-mapped where the folder keeps it), ``times`` float64 ``(windows, 2)`` (start, end seconds),
    ``videos`` and ``first`` (each video's path and its first row: a video's rows are contiguous)."""

    matrix: np.ndarray
    times: np.ndarray
    videos: list[str]
    first: np.ndarray  # int64 (videos,)

    def video_of(self, row: int) -> str:
        return self.videos[int(np.searchsorted(self.first, row, side="right")) - 1]


def window_matrix(folder: str | os.PathLike[str]) -> WindowMatrix:
    """The :class:`WindowMatrix` of ``folder``: built from the ``.npz`` files on first use and kept in
    ``folder/search/`` (``<model>.npy``, ``<model>-times.npy``, ``<model>.json``), rebuilt when
    ``index.jsonl`` changes; a folder that cannot be written gets it in memory."""
    folder = Path(folder)
    records = _index_records(folder)
    stamp = (folder / INDEX).stat()
    model = records[0]["model"]
    key = {"index_size": stamp.st_size, "index_mtime_ns": stamp.st_mtime_ns, "model": model}
    cache = folder / "search"
    paths = (cache / f"{model}.npy", cache / f"{model}-times.npy", cache / f"{model}.json")
    if all(p.is_file() for p in paths):
        saved = json.loads(paths[2].read_text(encoding="utf-8"))
        if saved.get("key") == key:
            return WindowMatrix(
                np.load(paths[0], mmap_mode="r"), np.load(paths[1]), saved["videos"], np.asarray(saved["first"], dtype=np.int64)
            )
    blocks, times, videos, first, row = [], [], [], [], 0
    for record in records:
        with np.load(folder / record["output"]) as npz:
            features = np.asarray(npz["features"], dtype=np.float32)
            spans = np.asarray(npz["times"], dtype=np.float64).reshape(-1, 2)
        norms = np.linalg.norm(features, axis=1, keepdims=True)
        blocks.append(features / np.maximum(norms, 1e-12))
        times.append(spans)
        videos.append(record["video"])
        first.append(row)
        row += features.shape[0]
    windows = WindowMatrix(
        np.concatenate(blocks).astype(np.float32, copy=False), np.concatenate(times), videos, np.asarray(first, dtype=np.int64)
    )
    try:
        cache.mkdir(exist_ok=True)
        write_atomic(paths[0], lambda fh: np.save(fh, windows.matrix))
        write_atomic(paths[1], lambda fh: np.save(fh, windows.times))
        write_atomic(paths[2], lambda fh: fh.write(json.dumps({"key": key, "videos": videos, "first": first})), mode="w")
    except OSError:  # a read-only folder: search from memory
        return windows
    windows.matrix = np.load(paths[0], mmap_mode="r")
    return windows


def scores_of(matrix: np.ndarray, query: np.ndarray, block_rows: int = BLOCK_ROWS) -> np.ndarray:
    """float32 ``(windows,)``: each row of a (memory-mapped) ``matrix`` times ``query``, block by block."""
    out = np.empty(matrix.shape[0], dtype=np.float32)
    for start in range(0, matrix.shape[0], block_rows):
        np.matmul(matrix[start : start + block_rows], query, out=out[start : start + block_rows])
    return out


def best_rows(scores: np.ndarray, k: int) -> np.ndarray:
    """The indices of the ``k`` largest scores, best first (ties: the earlier row first)."""
    k = min(k, scores.shape[0])
    top = np.argpartition(-scores, k - 1)[:k] if k < scores.shape[0] else np.arange(scores.shape[0])
    return top[np.lexsort((top, -scores[top]))]


def search_features(
    folder: str | os.PathLike[str],
    query: str,
    model: str | Runner | None = None,
    weights: WeightsArg = None,
    *,
    top_k: int = 5,
    device: str | torch.device = "cpu",
    dtype: str = "fp32",
) -> SearchResult:
    """The ``top_k`` moments across a collection whose window embeddings ``videozoo extract`` wrote into
    ``folder``, and the ``top_k`` best videos (each by its best window).

    Args:
        folder: ``extract``'s output folder (``index.jsonl`` and the ``.npz`` files).
        query: what to find, in words.
        model, weights: the model whose text tower embeds the query; ``None``: the one the features were
            extracted with. Another model is refused (its embeddings are not comparable).
    """
    check_positive(top_k, "top_k")
    folder = Path(folder)
    records = _index_records(folder)
    given = model.model_name if isinstance(model, Runner) else model
    theirs, their_weights = _check_same_model(records, folder, given, None if weights is None else os.fspath(weights))
    windows = window_matrix(folder)
    runner = model if isinstance(model, Runner) else _text_runner(theirs, weights or their_weights, device, dtype)
    text = _query_embedding(runner, query).numpy().astype(np.float32)
    if text.shape[0] != windows.matrix.shape[1]:
        raise ValueError(
            f"{folder}: its embeddings have {windows.matrix.shape[1]} dimensions, {runner.model_name}'s text embeddings "
            f"{text.shape[0]}; extract the features again."
        )
    moments, videos = rank(windows, text, top_k)
    return SearchResult(query, theirs, their_weights, moments, videos, int(windows.matrix.shape[0]))


def rank(windows: WindowMatrix, text: np.ndarray, top_k: int) -> tuple[list[Moment], list[tuple[str, float]]]:
    """The ``top_k`` windows and the ``top_k`` videos (by their best window) for the normalised query
    embedding ``text`` ``(D,)``, best first: one brute-force pass over the matrix."""
    scores = scores_of(windows.matrix, text)
    moments = [
        Moment(windows.video_of(i), float(windows.times[i, 0]), float(windows.times[i, 1]), float(scores[i]))
        for i in best_rows(scores, top_k).tolist()
    ]
    per_video = np.maximum.reduceat(scores, windows.first)
    order = np.lexsort((np.arange(len(per_video)), -per_video))[:top_k]
    return moments, [(windows.videos[i], float(per_video[i])) for i in order.tolist()]


def search(target: str | os.PathLike[str], query: str, model: str | None = None, weights: WeightsArg = None, **options: Any) -> SearchResult:
    """:func:`search_features` when ``target`` is a folder, :func:`search_video` for a video file."""
    if os.path.isdir(target):
        return search_features(target, query, model, weights, **options)
    if model is None:
        raise ValueError("Searching a video needs a video-text model: pass model= (e.g. 'pe_core_l14').")
    return search_video(target, query, model, "DEFAULT" if weights is None else weights, **options)
