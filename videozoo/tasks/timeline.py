"""What happens when: a model's labels over sliding windows of a whole video.

:func:`timeline` slides windows over a video (:mod:`videozoo.windows`: decoded once, in order, in
bounded memory), runs the model on each window's clip (one centre crop), and keeps per window its
start/end seconds, the top-k ``(label, probability)`` pairs and, for multi-label weights (Charades:
sigmoid probabilities), every label at least ``threshold`` probable. A :class:`Timeline` prints as a
table and writes JSON, CSV and a picture (:meth:`Timeline.plot`, matplotlib: ``pip install
"videozoo[plot]"``).

:func:`timeline_collection` writes the timelines of a whole collection through the shared driver
(:mod:`videozoo.tasks.collection`).
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from videozoo.errors import VideoDecodeError
from videozoo.tasks.collection import CollectionTask, VideosArg, one_at_a_time, run_collection
from videozoo.tasks.runner import Runner, WeightsArg, check_positive, check_threshold, load_model
from videozoo.video.windows import iter_windows

__all__ = ["Timeline", "TimelineEntry", "timeline", "timeline_collection", "TIMELINES"]

TIMELINES = "timelines.jsonl"


@dataclass(frozen=True)
class TimelineEntry:
    """One window: its span, its top-k labels and (multi-label weights) the labels above the threshold."""

    index: int
    start: float
    end: float
    top_k: list[tuple[str, float]]
    labels: list[tuple[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "start": round(self.start, 6),
            "end": round(self.end, 6),
            "top_k": [{"label": label, "probability": round(p, 6)} for label, p in self.top_k],
            "labels": [{"label": label, "probability": round(p, 6)} for label, p in self.labels],
        }


@dataclass
class Timeline:
    """A video's labels over time: one :class:`TimelineEntry` per window, and every class's probabilities."""

    video: str
    model: str
    weights: str
    window: float  # seconds
    stride: float  # seconds
    duration: float  # seconds
    multi_label: bool
    threshold: float
    categories: list[str] = field(repr=False)
    entries: list[TimelineEntry] = field(repr=False)
    probs: Tensor = field(repr=False)  # float (windows, num_classes)

    def __len__(self) -> int:
        return len(self.entries)

    def to_dict(self) -> dict[str, Any]:
        return {
            "video": self.video,
            "model": self.model,
            "weights": self.weights,
            "window": round(self.window, 6),
            "stride": round(self.stride, 6),
            "duration": round(self.duration, 6),
            "multi_label": self.multi_label,
            "threshold": self.threshold,
            "windows": [e.to_dict() for e in self.entries],
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def to_csv(self) -> str:
        """One row per window and label: ``window,start,end,rank,label,probability,above_threshold``.

        A window's rows are its top-k, then (multi-label weights) the other labels above the threshold,
        most probable first; ``above_threshold`` is 1 or 0 (empty for single-label weights).
        """
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["window", "start", "end", "rank", "label", "probability", "above_threshold"])
        for e in self.entries:
            rows = list(e.top_k) + [pair for pair in e.labels if pair[0] not in {label for label, _ in e.top_k}]
            for rank, (label, p) in enumerate(rows, start=1):
                above = "" if not self.multi_label else int(p >= self.threshold)
                writer.writerow([e.index, f"{e.start:.3f}", f"{e.end:.3f}", rank, label, f"{p:.6f}", above])
        return out.getvalue()

    def to_table(self) -> str:
        """A fixed-width table: one line per window, its top labels with probabilities."""
        head = f"{self.video}  ({self.model}, {len(self)} windows of {self.window:.3g} s every {self.stride:.3g} s)"
        lines = [head, f"  {'start':>8}  {'end':>8}  top labels"]
        for e in self.entries:
            shown = e.labels if self.multi_label else e.top_k
            text = "; ".join(f"{label} ({p:.2f})" for label, p in shown) or "none"
            if self.multi_label:
                text = f"{text}   [top: {e.top_k[0][0]} ({e.top_k[0][1]:.2f})]" if not e.labels else text
            lines.append(f"  {e.start:8.2f}  {e.end:8.2f}  {text}")
        return "\n".join(lines) + "\n"

    def top_labels(self, n: int = 8) -> list[int]:
        """Class indices worth drawing: those that top some window (or pass the threshold), the most probable
        ``n``, ordered by the window where each peaks."""
        best = self.probs.max(dim=0).values
        chosen = set(self.probs.argmax(dim=1).tolist())
        if self.multi_label:
            chosen |= set((best >= self.threshold).nonzero().flatten().tolist())
        ranked = sorted(chosen, key=lambda c: -float(best[c]))
        if len(ranked) < min(n, 3):  # a one-label video: show the runners-up too
            extra = [int(c) for c in best.argsort(descending=True) if int(c) not in ranked]
            ranked += extra[: min(n, 3) - len(ranked)]
        ranked = ranked[:n]
        peak = self.probs.argmax(dim=0)
        return sorted(ranked, key=lambda c: (int(peak[c]), -float(best[c])))  # in the order they happen

    def plot(self, path: str | os.PathLike[str], *, labels: int = 8, size: tuple[int, int] | None = None, dpi: int = 100) -> str:
        """Draw the timeline as a heat strip and save it (``.png`` or ``.svg``, from the suffix).

        Args:
            path: output file; its suffix picks the format.
            labels: at most this many rows (classes), those that top some window first.
            size: ``(width, height)`` in pixels; default 1000 wide, 60 px per row plus margins.
            dpi: pixels per inch of the PNG.

        Time runs along x; each row is a class, each window a cell coloured by its probability
        (0 white to 1 dark), with the cell's value written in it when it is at least 0.2; each window
        owns the time from halfway after the previous window's centre to halfway to the next one's.
        """
        plt_figure = _matplotlib()
        path = os.fspath(path)
        suffix = os.path.splitext(path)[1].lower()
        if suffix not in (".png", ".svg"):
            raise ValueError(f"{path}: the picture must be a .png or .svg file, got {suffix or 'no suffix'!r}.")
        rows = self.top_labels(labels)
        width, height = size if size is not None else (1000, 90 + 42 * len(rows))
        fig = plt_figure(figsize=(width / dpi, height / dpi), dpi=dpi)
        ax = fig.add_axes((0.24, 60 / height, 0.66, 1 - 90 / height))
        cax = fig.add_axes((0.92, 60 / height, 0.015, 1 - 90 / height))
        centres = [(e.start + e.end) / 2 for e in self.entries]
        edges = [0.0] + [(a + b) / 2 for a, b in zip(centres, centres[1:])] + [self.duration or 1.0]
        values = self.probs[:, rows].T.numpy()
        mesh = ax.pcolormesh(edges, range(len(rows) + 1), values, cmap="Blues", vmin=0.0, vmax=1.0)
        ax.set_yticks([r + 0.5 for r in range(len(rows))])
        ax.set_yticklabels([_short(self.categories[c] if c < len(self.categories) else str(c)) for c in rows])
        ax.invert_yaxis()
        ax.set_xlim(0, edges[-1])
        ax.set_xlabel("time (s)")
        kind = "sigmoid" if self.multi_label else "softmax"
        ax.set_title(f"{os.path.basename(self.video)}: {self.model}, {self.window:.3g} s windows every {self.stride:.3g} s", fontsize=10, loc="left")
        fig.colorbar(mesh, cax=cax).set_label(f"probability ({kind})", fontsize=8)
        if len(self.entries) <= 60:
            for r, row in enumerate(values):
                for w, p in enumerate(row):
                    if p >= 0.2:
                        ax.text((edges[w] + edges[w + 1]) / 2, r + 0.5, f"{p:.2f}", ha="center", va="center",
                                fontsize=7, color="white" if p > 0.6 else "black")
        fig.savefig(path, dpi=dpi, format=suffix[1:])
        return path


def _short(text: str, limit: int = 32) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _matplotlib() -> Callable[..., Any]:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(
            'Timeline.plot needs matplotlib, which is not installed: pip install "videozoo[plot]" (or pip install matplotlib).'
        ) from None
    return Figure


def timeline(
    video: str | os.PathLike[str],
    model: str | nn.Module | Runner,
    weights: WeightsArg = "DEFAULT",
    *,
    window: float | None = None,
    stride: float | None = None,
    top_k: int = 5,
    threshold: float = 0.5,
    batch_size: int = 8,
    device: str | torch.device = "cpu",
    resize_on_decode: bool = True,
    progress: Callable[[int, int], None] | None = None,
    dtype: str = "fp32",
    engine: str = "torch",
    labels: Sequence[str] | None = None,
    template: str | Sequence[str] | None = None,
) -> Timeline:
    """Classify every window of a video: what happens when.

    Args:
        video: a video file.
        model: a model name, an ``nn.Module`` with ``weights`` its member, or a loaded
            :class:`~videozoo.tasks.runner.Runner` (then ``weights``, ``device`` and ``dtype`` are its own).
        weights: a member, its name or a local checkpoint path (as :func:`videozoo.predict`).
        window: seconds per window; default one clip of the recipe (``num_frames * sampling_rate /
            frame_rate``; 4 s for segment recipes).
        stride: seconds between window starts; default half a window.
        top_k: labels kept per window.
        threshold: multi-label weights: every class at least this probable is one of a window's ``labels``.
        batch_size: windows per forward pass.
        resize_on_decode: as :func:`videozoo.predict`; False is exact and slower.
        progress: called as ``progress(done, total)`` after each batch.
        dtype: ``"fp32"`` or ``"bf16"`` (a bfloat16 copy of the model).
        engine: what runs the model (see :func:`videozoo.accelerate`).
        labels, template: a video-text model's labels and prompt template(s) (see :func:`videozoo.load_model`).

    Probabilities are the softmax of the logits, or the sigmoid for multi-label weights. Raises
    :class:`~videozoo.errors.VideoDecodeError` for an unreadable video.
    """
    check_positive(top_k, "top_k")
    check_positive(batch_size, "batch_size")
    check_threshold(threshold)
    if isinstance(model, Runner):
        runner = model
    else:
        runner = load_model(model, weights, device=device, dtype=dtype, engine=engine, labels=labels, template=template)
    runner.require_labels("timeline")
    labels = runner.labels
    stream = iter_windows(video, runner.recipe, runner.transform(), window=window, stride=stride, resize_on_decode=resize_on_decode)
    spans: list[tuple[int, float, float]] = []
    probs: list[Tensor] = []
    batch: list[Tensor] = []

    def run() -> None:
        probs.append(labels.probabilities(runner.logits(torch.stack(batch))))
        batch.clear()
        if progress is not None:
            progress(len(spans), len(stream))

    try:
        for w in stream:
            spans.append((w.index, w.start, w.end))
            batch.append(w.clip)
            if len(batch) == batch_size:
                run()
        if batch:
            run()
    finally:
        stream.close()
    table = torch.cat(probs)
    entries = [
        TimelineEntry(index, start, end, labels.top_k(row, top_k), labels.above(row, threshold) if labels.multi_label else [])
        for (index, start, end), row in zip(spans, table)
    ]
    return Timeline(
        video=os.fspath(video),
        model=runner.model_name,
        weights=runner.weights_name,
        window=stream.window,
        stride=stream.stride,
        duration=stream.duration,
        multi_label=labels.multi_label,
        threshold=float(threshold),
        categories=list(labels.categories),
        entries=entries,
        probs=table,
    )


def timeline_collection(
    videos_or_manifest: VideosArg,
    model: str | nn.Module,
    out_dir: str | os.PathLike[str],
    weights: WeightsArg = "DEFAULT",
    *,
    device: str | torch.device = "cpu",
    dtype: str = "fp32",
    engine: str = "torch",
    **options: Any,
) -> list[dict[str, Any]]:
    """The timeline of every video not yet done into ``out_dir/timelines.jsonl``; returns the records
    (rank 0: all).

    Each record is ``video`` (its absolute path), ``model``, ``weights``, ``status``, ``error`` and for ``ok`` the timeline's
    ``window``, ``stride``, ``windows``, ... (as ``videozoo timeline --json``).

    Args:
        videos_or_manifest: video paths, or a manifest file (see :func:`videozoo.tasks.collection.read_manifest`).
        model, weights, device, dtype, engine: as :func:`timeline`; the network is loaded once per process.
        options: :func:`timeline`'s other keywords (``window``, ``stride``, ``top_k``, ``labels``, ...).
    """
    labels, template = options.pop("labels", None), options.pop("template", None)
    runner = load_model(model, weights, device=device, dtype=dtype, engine=engine, labels=labels, template=template)
    runner.require_labels("timeline")
    config = {**runner.describe(), "dtype": dtype, **{k: v for k, v in options.items() if k != "progress"}}
    if labels is not None:
        config.update(labels=list(runner.labels.categories), template=template)
    process = one_at_a_time(lambda path: timeline(path, runner, **options), (VideoDecodeError,))
    return run_collection(videos_or_manifest, out_dir, CollectionTask("timeline", TIMELINES, runner.describe(), process, config=config))
