"""Video in, labels out: the evaluation views of each video through the model, their probabilities combined.

Each video becomes ``num_clips * num_crops`` views (:func:`videozoo.video.views.clip_views`: the
weights' own recipe and preset). Views of consecutive videos share batches of ``batch_size``; a video's
class probabilities are the mean over its views of the softmax of the logits (as PySlowFast and
torchvision's reference scripts evaluate). Multi-label weights (Charades) score each class on its own:
the probabilities are the sigmoids of the logits and a video's views combine by their maximum
(:class:`~videozoo.tasks.runner.Labels`); every class at or above ``threshold`` is a label of the
video. With several videos, decoding runs in DataLoader worker processes while the model runs.

:func:`classify_collection` writes the predictions of a whole collection through the shared driver
(:mod:`videozoo.tasks.collection`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from videozoo.errors import VideoDecodeError
from videozoo.tasks.collection import CollectionTask, VideosArg, run_collection
from videozoo.tasks.runner import WeightsArg, check_positive, check_threshold, decode_in_workers, load_model
from videozoo.video.io import Backend
from videozoo.video.views import VideoSource, as_sources, clip_views, source_name

__all__ = ["Prediction", "VideoClassifier", "predict", "classify_collection", "RESULTS"]

RESULTS = "results.jsonl"


@dataclass
class Prediction:
    """What a video was classified as.

    ``video`` names it as every record does (its path; ``<tensor N>`` for frames in memory). ``probs``
    are the class probabilities over its views (softmax averaged; for multi-label weights, sigmoid
    maxed); ``labels`` are the classes whose probability is at least the classifier's ``threshold``,
    most probable first (for single-label weights at most the top-1); ``features`` is the clip
    embedding averaged over the views.
    """

    video: str
    top_k: list[tuple[str, float]]
    probs: Tensor | None = field(default=None, repr=False)  # (num_classes,)
    features: Tensor | None = field(default=None, repr=False)  # (num_features,) clip embedding, when asked for
    num_views: int = 0
    error: VideoDecodeError | None = None  # set instead of raising, with on_error="return"
    labels: list[tuple[str, float]] = field(default_factory=list)

    @property
    def label(self) -> str | None:
        """The top-1 label."""
        return self.top_k[0][0] if self.top_k else None

    def to_dict(self) -> dict[str, Any]:
        if self.error is not None:
            return {"video": self.video, "error": str(self.error)}
        return {
            "video": self.video,
            "views": self.num_views,
            "top_k": [{"label": label, "probability": round(p, 6)} for label, p in self.top_k],
            "labels": [{"label": label, "probability": round(p, 6)} for label, p in self.labels],
        }


@dataclass
class _Views:
    position: int
    views: Tensor | None
    error: VideoDecodeError | None = None


class _ViewsDataset(Dataset):
    """The views of each video (runs in DataLoader workers); an unreadable video is an item with its error."""

    def __init__(self, sources: Sequence[VideoSource], make: Any) -> None:
        self.sources, self.make = sources, make

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, position: int) -> _Views:
        try:
            return _Views(position, self.make(self.sources[position]))
        except VideoDecodeError as e:
            return _Views(position, None, e)


class _ViewMaker:
    """``clip_views`` with the classifier's settings, picklable for worker processes."""

    def __init__(self, classifier: VideoClassifier, fps: float | None) -> None:
        self.recipe, self.transform = classifier.recipe, classifier.transform
        self.resize_on_decode, self.backend, self.fps = classifier.resize_on_decode, classifier.backend, fps

    def __call__(self, source: VideoSource) -> Tensor:
        return clip_views(
            source, self.recipe, self.transform, resize_on_decode=self.resize_on_decode, backend=self.backend, fps=self.fps
        )


class VideoClassifier:
    """A model, its weights' recipe and preset, and how to run them; call :meth:`predict`.

    Args:
        model: a registered name, or an ``nn.Module`` with ``weights`` its member.
        weights: a member, its name or a local checkpoint file (see :func:`videozoo.load_model`).
        clips, crops: views per video; default the weights' evaluation recipe. Fewer views are faster
            and a little less accurate.
        batch_size: views per forward pass.
        num_workers: decoding processes; ``None``: one per two CPU cores (at most 4) when several videos
            are given, none otherwise.
        threshold: every class at least this probable is one of a prediction's ``labels`` (the point of
            multi-label weights, whose probabilities are sigmoids maxed over views).
        dtype: ``"fp32"`` or ``"bf16"`` (a bfloat16 copy of the model).
        engine: what runs the model: ``"torch"``, ``"onnxruntime"``, ``"openvino"`` or ``"auto"``
            (see :func:`videozoo.accelerate`).
        labels: a video-text model's labels (e.g. ``["open fridge", "pour water"]``): the probabilities are
            the softmax of the clip's scaled similarity with each (see :func:`videozoo.load_model`).
        template: the prompt template(s) for ``labels``; ``None``: the publisher's.
    """

    def __init__(
        self,
        model: str | nn.Module,
        weights: WeightsArg = "DEFAULT",
        *,
        clips: int | None = None,
        crops: int | None = None,
        device: str | torch.device = "cpu",
        batch_size: int = 8,
        num_workers: int | None = None,
        resize_on_decode: bool = True,
        backend: Backend = "auto",
        progress: bool = True,
        threshold: float = 0.5,
        dtype: str = "fp32",
        engine: str = "torch",
        labels: Sequence[str] | None = None,
        template: str | Sequence[str] | None = None,
    ) -> None:
        check_positive(batch_size, "batch_size")
        check_threshold(threshold)
        self.runner = load_model(
            model, weights, device=device, dtype=dtype, engine=engine, progress=progress, labels=labels, template=template
        )
        self.recipe = self.runner.recipe.with_views(clips, crops)
        self.transform = self.runner.transform()
        self.labels = self.runner.labels
        self.threshold = float(threshold)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.resize_on_decode = resize_on_decode
        self.backend = backend

    @property
    def model(self) -> nn.Module:
        return self.runner.model

    @property
    def weights(self) -> Any:
        return self.runner.weights

    @property
    def multi_label(self) -> bool:
        return self.labels.multi_label

    def __repr__(self) -> str:
        return (
            f"VideoClassifier({self.runner.model_name!r}, weights={self.weights!r}, {self.recipe.describe()}, "
            f"device={str(self.runner.device)!r}, batch_size={self.batch_size}"
            + (f", multi_label=True, threshold={self.threshold:g})" if self.multi_label else ")")
        )

    def views(self, video: VideoSource, fps: float | None = None) -> Tensor:
        """The model input for one video: float ``(num_clips * num_crops, C, T, H, W)``."""
        return _ViewMaker(self, fps)(video)

    def predict(self, videos: VideoSource | Sequence[VideoSource], **options: Any) -> list[Prediction]:
        """One :class:`Prediction` per video, in order (a single video gives a one-item list).

        Args:
            options: :meth:`iter_predict`'s (``top_k``, ``features``, ``fps``, ``on_error``).
        """
        return list(self.iter_predict(videos, **options))

    def iter_predict(
        self,
        videos: VideoSource | Sequence[VideoSource],
        *,
        top_k: int = 5,
        features: bool = False,
        fps: float | None = None,
        on_error: Literal["raise", "return"] = "raise",
    ) -> Iterator[Prediction]:
        """Each video's :class:`Prediction`, in order, as soon as it is complete.

        Args:
            top_k: labels kept per video.
            features: also average the views' clip embeddings into ``Prediction.features``.
            fps: the frame rate of videos given as ``(T, C, H, W)`` tensors.

        ``on_error="return"`` yields a prediction with ``error`` set for a video that cannot be
        decoded and goes on with the others; ``"raise"`` raises its :class:`VideoDecodeError`.
        """
        if on_error not in ("raise", "return"):
            raise ValueError(f"on_error must be 'raise' or 'return', got {on_error!r}.")
        check_positive(top_k, "top_k")
        if not features:  # an encoder's weights give features only
            self.runner.require_labels("classifying (without features=True)")
        sources = as_sources(videos)
        names = [source_name(s, i) for i, s in enumerate(sources)]
        items = decode_in_workers(
            _ViewsDataset(sources, _ViewMaker(self, fps)), len(sources), self.num_workers, self.runner.device.type == "cuda"
        )
        pooled = _Pooling(self, names, top_k, features)
        for item in items:
            if item.error is not None:
                if on_error == "raise":
                    raise item.error
                pooled.done[item.position] = Prediction(names[item.position], [], error=item.error)
            else:
                pooled.add(item.position, item.views)
            yield from pooled.ready()
        pooled.flush()
        yield from pooled.ready()


class _Pooling:
    """Views of consecutive videos in shared batches; each video's views combined as they come back."""

    def __init__(self, classifier: VideoClassifier, names: list[str], top_k: int, features: bool) -> None:
        self.classifier, self.names, self.top_k, self.features = classifier, names, top_k, features
        self.rows: list[Tensor] = []
        self.owners: list[int] = []
        self.probs: dict[int, Tensor] = {}
        self.embeddings: dict[int, Tensor] = {}
        self.seen: dict[int, int] = {}
        self.done: dict[int, Prediction] = {}
        self.next = 0

    def add(self, position: int, views: Tensor) -> None:
        self.rows.extend(views.unbind(0))
        self.owners.extend([position] * views.shape[0])
        while len(self.rows) >= self.classifier.batch_size:
            self._run(self.classifier.batch_size)

    def flush(self) -> None:
        while self.rows:
            self._run(min(len(self.rows), self.classifier.batch_size))

    def ready(self) -> Iterator[Prediction]:
        """The predictions complete so far, in input order."""
        while self.next in self.done:
            yield self.done.pop(self.next)
            self.next += 1

    def _run(self, n: int) -> None:
        c = self.classifier
        batch, who = torch.stack(self.rows[:n]), self.owners[:n]
        del self.rows[:n], self.owners[:n]
        labelled = c.runner.has_labels
        if self.features:
            embedding, logits = c.runner.embed(batch, with_logits=labelled)
        else:
            embedding, logits = None, c.runner.logits(batch)
        probs = c.labels.probabilities(logits) if labelled else None
        for row, owner in enumerate(who):
            if probs is not None:
                self.probs[owner] = c.labels.combine(self.probs.get(owner), probs[row])
            if embedding is not None:
                self.embeddings[owner] = self.embeddings.get(owner, 0) + embedding[row]
            self.seen[owner] = self.seen.get(owner, 0) + 1
            if self.seen[owner] == c.recipe.num_views:
                self.done[owner] = self._prediction(owner)

    def _prediction(self, owner: int) -> Prediction:
        c, n = self.classifier, self.classifier.recipe.num_views
        embedding = self.embeddings.pop(owner, None)
        features = None if embedding is None else embedding / n
        if owner not in self.probs:  # an encoder's weights: the embedding only
            return Prediction(self.names[owner], [], None, features, n)
        probs = c.labels.finish(self.probs.pop(owner), n)
        return Prediction(
            self.names[owner], c.labels.top_k(probs, self.top_k), probs, features, n, labels=c.labels.above(probs, c.threshold)
        )


def predict(
    videos: VideoSource | Sequence[VideoSource],
    model: str | nn.Module,
    weights: WeightsArg = "DEFAULT",
    *,
    clips: int | None = None,
    crops: int | None = None,
    top_k: int = 5,
    device: str | torch.device = "cpu",
    batch_size: int = 8,
    features: bool = False,
    fps: float | None = None,
    num_workers: int | None = None,
    threshold: float = 0.5,
    dtype: str = "fp32",
    engine: str = "torch",
    on_error: Literal["raise", "return"] = "raise",
    labels: Sequence[str] | None = None,
    template: str | Sequence[str] | None = None,
) -> list[Prediction]:
    """Classify one or many videos: the top-k ``(label, probability)`` pairs of each, in order.

    ``videozoo.predict("cat.mp4", "x3d_m")[0].top_k``; for multi-label weights (Charades)
    ``predict(video, "slowfast_r50", "CHARADES_V1")[0].labels`` holds every class with a probability of
    at least ``threshold``. ``dtype="bf16"`` runs the model with bfloat16 parameters. ``on_error="return"``
    keeps going past a video that cannot be read: its prediction, in its place, has ``error`` set (see
    :meth:`VideoClassifier.iter_predict`). A video-text model (``"pe_core_l14"``) classifies into your
    ``labels``: ``predict(video, "pe_core_l14", labels=["open fridge", "pour water"])`` (``template``: the
    prompt, default the publisher's). Builds a :class:`VideoClassifier` each call; keep one to
    classify many batches of videos.
    """
    classifier = VideoClassifier(
        model, weights, clips=clips, crops=crops, device=device, batch_size=batch_size, num_workers=num_workers,
        threshold=threshold, dtype=dtype, engine=engine, labels=labels, template=template,
    )  # fmt: skip
    return classifier.predict(videos, top_k=top_k, features=features, fps=fps, on_error=on_error)


def classify_collection(
    videos_or_manifest: VideosArg, classifier: VideoClassifier, out_dir: str | os.PathLike[str], *, top_k: int = 5
) -> list[dict[str, Any]]:
    """Classify every video not yet done into ``out_dir/results.jsonl``; returns the records (rank 0: all).

    Each record is ``video`` (its absolute path), ``model``, ``weights``, ``status`` (``"ok"``/``"error"``), ``error`` and for
    ``ok`` the prediction's ``views``, ``top_k`` and ``labels`` (as ``videozoo classify --json``).

    Args:
        videos_or_manifest: video paths, or a manifest file (see :func:`videozoo.tasks.collection.read_manifest`).
        classifier: the model and its views; under torchrun each rank builds its own.
        top_k: labels kept per video.
    """
    runner = classifier.runner
    config = {
        **runner.describe(), "clips": classifier.recipe.num_clips, "crops": classifier.recipe.num_crops,
        "top_k": top_k, "threshold": classifier.threshold, "dtype": runner.dtype, "exact": not classifier.resize_on_decode,
    }  # fmt: skip
    if runner.user_labels is not None:  # a video-text model: its labels are part of the configuration
        config["labels"] = list(runner.user_labels)
        template = runner.user_template
        config["template"] = list(template) if isinstance(template, tuple) else template

    def process(todo: list[str]) -> Iterable[tuple[str, dict[str, Any] | None, str | None]]:
        for prediction in classifier.iter_predict(todo, top_k=top_k, on_error="return"):
            entry = prediction.to_dict()
            video = entry.pop("video")
            yield (video, None, entry["error"]) if prediction.error is not None else (video, entry, None)

    task = CollectionTask("classify", RESULTS, runner.describe(), process, config=config)
    return run_collection(videos_or_manifest, out_dir, task)
