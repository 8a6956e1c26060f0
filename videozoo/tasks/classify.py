"""Video in, labels out: decode, sample the recipe's clips, preprocess, run the model, average views.

Each video becomes ``num_clips * num_crops`` views (clip-major: all crops of clip 0, then clip 1...),
taken with the weights' own recipe (:mod:`videozoo.sampling`) and preset (``weights.transforms()``).
Views of consecutive videos share batches of ``batch_size``; a video's class probabilities are the
mean over its views of the softmax of the logits (as PySlowFast and torchvision's reference scripts
evaluate). Multi-label weights (``meta["multi_label"]``, Charades) score each class on its own: the
probabilities are the sigmoids of the logits and a video's views combine by their maximum (PySlowFast's
Charades test, ``ENSEMBLE_METHOD: max``); every class at or above ``threshold`` is a label of the
video. With several videos, decoding runs in DataLoader worker processes while the model runs.

By default frames are resized to the preset's resize size while they are decoded (swscale on
8-bit data); the preset then only crops and normalises. ``resize_on_decode=False`` decodes at full
resolution and lets the preset resize, reproducing the published preprocessing bit for bit at the
cost of speed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Union

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from videozoo.zoo import WeightsEnum, get_model, get_model_weights
from videozoo.errors import VideoDecodeError
from videozoo.video.io import Backend, Video, VideoReader
from videozoo.zoo import ClipRecipe
from videozoo.video.sampling import sample_clip_indices

__all__ = ["Prediction", "VideoClassifier", "predict", "load_model", "clip_views", "check_threshold", "VideoSource"]

#: A video: a file path, a :class:`~videozoo.video.io.Video`, or frames ``(T, C, H, W)`` (uint8, or float
#: in [0, 1]) taken at ``fps`` (default: the recipe's frame rate).
VideoSource = Union[str, "os.PathLike[str]", Video, Tensor]


@dataclass
class Prediction:
    """What a video was classified as.

    ``probs`` are the class probabilities over its views (softmax averaged; for multi-label weights,
    sigmoid maxed); ``labels`` are the classes whose probability is at least the classifier's
    ``threshold``, most probable first (for single-label weights at most the top-1); ``features`` is the
    clip embedding averaged over the views.
    """

    source: str
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
            return {"video": self.source, "error": str(self.error)}
        return {
            "video": self.source,
            "views": self.num_views,
            "top_k": [{"label": label, "probability": round(p, 6)} for label, p in self.top_k],
            "labels": [{"label": label, "probability": round(p, 6)} for label, p in self.labels],
        }


# ----------------------------------------------------------------------------------------------------
# Model + weights


def load_model(
    model: str | nn.Module,
    weights: WeightsEnum | str | os.PathLike[str] | None = "DEFAULT",
    *,
    progress: bool = True,
) -> tuple[nn.Module, WeightsEnum]:
    """The network in eval mode and the weights member whose recipe, preset and labels go with it.

    Args:
        model: a registered name, or an ``nn.Module`` (then ``weights`` must be the member it was
            trained with).
        weights: a member, its name (``"DEFAULT"``, ``"KINETICS400_V1"``, ``"Enum.NAME"``) or the path
            of a local checkpoint file in the published format (see :meth:`WeightsEnum.resolve`).
        progress: show a progress bar while downloading.

    Unknown names raise ``ValueError``; a checkpoint that cannot be read or does not fit raises
    :class:`~videozoo.errors.CheckpointError`.
    """
    if isinstance(model, nn.Module):
        if not isinstance(weights, WeightsEnum):
            raise ValueError(
                "With a model object, pass weights= the WeightsEnum member it was trained with: its meta "
                "and transforms() give the clip recipe, the preprocessing and the category names."
            )
        return model.eval(), weights
    if not isinstance(model, str):
        raise TypeError(f"model must be a model name or an nn.Module, not {type(model).__name__}.")
    enum = get_model_weights(model)
    if weights is None:
        raise ValueError(
            f"Classifying with untrained weights gives meaningless labels; pass weights='DEFAULT' or one of "
            f"{', '.join(enum.__members__)} (or a checkpoint file path)."
        )
    member, _ = enum.resolve(weights)
    assert member is not None
    return get_model(model, weights=weights, progress=progress).eval(), member


# ----------------------------------------------------------------------------------------------------
# Views of one video (runs in DataLoader workers)


@dataclass
class _Job:
    recipe: ClipRecipe
    transform: nn.Module
    resize_on_decode: bool
    backend: Backend
    fps: float | None


@dataclass
class _Item:
    position: int
    views: Tensor | None
    error: VideoDecodeError | None = None


def _source_name(source: VideoSource, position: int) -> str:
    if isinstance(source, Video):
        return source.path or f"<video {position}>"
    if isinstance(source, Tensor):
        return f"<tensor {position}>"
    return os.fspath(source)


def clip_views(
    source: VideoSource,
    recipe: ClipRecipe,
    transform: nn.Module,
    *,
    resize_on_decode: bool = True,
    backend: Backend = "auto",
    fps: float | None = None,
) -> Tensor:
    """The evaluation views of one video, exactly as :func:`predict` makes them.

    Float ``(num_clips * num_crops, C, T, H, W)``: the recipe's uniformly spread clips (or, for a
    segment recipe, its one clip spread over the whole video), each through ``transform`` (the weights'
    preset) and its ``num_crops`` spatial crops.
    """
    return _views(source, _Job(recipe, transform, resize_on_decode, backend, fps))


def _views(source: VideoSource, job: _Job) -> Tensor:
    """Float ``(num_clips * num_crops, C, T, H, W)`` for one video."""
    recipe, transform = job.recipe, job.transform
    if isinstance(source, (Video, Tensor)):
        frames = source.frames if isinstance(source, Video) else source
        if frames.dim() != 4:
            raise ValueError(f"Expected frames of shape (T, C, H, W), got {list(frames.shape)}.")
        if isinstance(source, Video):
            fps, timestamps = source.fps, source.pts - source.pts[0]
        else:
            fps = job.fps or recipe.frame_rate or 30.0
            timestamps = torch.arange(frames.shape[0], dtype=torch.float64) / fps
        indices = sample_clip_indices(timestamps, recipe, fps)
        clips = frames[indices.reshape(-1)]
    else:
        path = os.fspath(source)
        size = None
        if job.resize_on_decode:
            from videozoo.video.transforms import resized_size

            resize = getattr(transform, "resize_size", None)
            size = (lambda h, w: resized_size(h, w, resize)) if resize is not None else None
        with VideoReader(path, backend=job.backend, size=size) as reader:
            indices = sample_clip_indices(reader.timestamps, recipe, reader.info.fps, reader.duration)
            clips = reader.get_frames(indices.reshape(-1)).frames
    clips = clips.reshape(recipe.num_clips, recipe.num_frames, *clips.shape[1:])
    if recipe.num_crops == 1 and not hasattr(transform, "multi_crop"):
        return torch.stack([transform(clip) for clip in clips])
    views = transform.multi_crop(clips, recipe.num_crops)  # (crops, clips, C, T, H, W)
    return views.transpose(0, 1).reshape(recipe.num_views, *views.shape[2:])


class _ViewsDataset(Dataset):
    def __init__(self, sources: Sequence[VideoSource], job: _Job) -> None:
        self.sources = sources
        self.job = job

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, position: int) -> _Item:
        try:
            return _Item(position, _views(self.sources[position], self.job))
        except VideoDecodeError as e:
            return _Item(position, None, e)


def _identity(item: _Item) -> _Item:
    return item


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)  # decoding threads are FFmpeg's; leave the cores to the model


# ----------------------------------------------------------------------------------------------------
# The classifier


class VideoClassifier:
    """A model, its weights' recipe and preset, and how to run them; call :meth:`predict`.

    ``clips`` / ``crops`` default to the weights' evaluation recipe (``meta["num_clips"]``,
    ``meta["num_crops"]``); fewer views are faster and a little less accurate. ``batch_size`` counts
    views. ``num_workers=None`` decodes in one worker process per two CPU cores (at most 4) when
    several videos are given, in the calling process otherwise. ``threshold`` (0 to 1) makes every
    class at least that probable one of a prediction's ``labels``: the point of multi-label weights
    (``multi_label``, from ``meta["multi_label"]``), whose probabilities are sigmoids maxed over views.
    ``dtype="bf16"`` runs the model under bf16 autocast (see :data:`DTYPES`).
    """

    def __init__(
        self,
        model: str | nn.Module,
        weights: WeightsEnum | str | os.PathLike[str] | None = "DEFAULT",
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
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
        check_threshold(threshold)
        check_dtype(dtype)
        self.dtype = dtype
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("device='cuda' was asked for but torch.cuda.is_available() is False.")
        net, self.weights = load_model(model, weights, progress=progress)
        self.model = net.to(self.device)
        self.model_name = model if isinstance(model, str) else type(model).__name__
        self.recipe = ClipRecipe.from_meta(self.weights.meta).with_views(clips, crops)
        self.transform = self.weights.transforms()
        self.categories: list[str] = list(self.weights.meta["categories"])
        self.multi_label = bool(self.weights.meta.get("multi_label", False))
        self.threshold = float(threshold)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.resize_on_decode = resize_on_decode
        self.backend = backend

    def __repr__(self) -> str:
        return (
            f"VideoClassifier({self.model_name!r}, weights={self.weights!r}, {self.recipe.describe()}, "
            f"device={str(self.device)!r}, batch_size={self.batch_size}"
            + (f", multi_label=True, threshold={self.threshold:g})" if self.multi_label else ")")
        )

    def views(self, video: VideoSource, fps: float | None = None) -> Tensor:
        """The model input for one video: float ``(num_clips * num_crops, C, T, H, W)``."""
        return _views(video, self._job(fps))

    def _job(self, fps: float | None) -> _Job:
        return _Job(self.recipe, self.transform, self.resize_on_decode, self.backend, fps)

    def predict(
        self,
        videos: VideoSource | Sequence[VideoSource],
        *,
        top_k: int = 5,
        features: bool = False,
        fps: float | None = None,
        on_error: Literal["raise", "return"] = "raise",
    ) -> list[Prediction]:
        """One :class:`Prediction` per video, in order (a single video gives a one-item list)."""
        return list(self.iter_predict(videos, top_k=top_k, features=features, fps=fps, on_error=on_error))

    def iter_predict(
        self,
        videos: VideoSource | Sequence[VideoSource],
        *,
        top_k: int = 5,
        features: bool = False,
        fps: float | None = None,
        on_error: Literal["raise", "return"] = "raise",
    ) -> Iterator[Prediction]:
        """Like :meth:`predict`, yielding each video's prediction as soon as it is complete.

        ``on_error="return"`` yields a prediction with ``error`` set for a video that cannot be
        decoded and goes on with the others; ``"raise"`` raises its :class:`VideoDecodeError`.
        """
        if on_error not in ("raise", "return"):
            raise ValueError(f"on_error must be 'raise' or 'return', got {on_error!r}.")
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}.")
        sources = _as_list(videos)
        names = [_source_name(s, i) for i, s in enumerate(sources)]
        loader = self._loader(sources, fps)
        num_views = self.recipe.num_views
        rows: list[Tensor] = []
        owners: list[int] = []
        prob_sum: dict[int, Tensor] = {}
        feat_sum: dict[int, Tensor] = {}
        seen: dict[int, int] = {}
        done: dict[int, Prediction] = {}
        next_out = 0

        def run(n: int) -> None:
            batch = torch.stack(rows[:n]).to(self.device, non_blocking=True)
            who = owners[:n]
            del rows[:n], owners[:n]
            probs, feats = self._forward(batch, features)
            for row, owner in enumerate(who):
                if owner not in prob_sum:
                    prob_sum[owner] = probs[row].clone()
                elif self.multi_label:  # PySlowFast's Charades test: the maximum over views
                    prob_sum[owner] = torch.maximum(prob_sum[owner], probs[row])
                else:
                    prob_sum[owner] += probs[row]
                if feats is not None:
                    feat_sum[owner] = feat_sum.get(owner, 0) + feats[row]
                seen[owner] = seen.get(owner, 0) + 1
                if seen[owner] == num_views:
                    done[owner] = self._finish(names[owner], prob_sum.pop(owner), feat_sum.pop(owner, None), top_k)

        for item in loader:
            if item.error is not None:
                if on_error == "raise":
                    raise item.error
                done[item.position] = Prediction(names[item.position], [], error=item.error)
            else:
                rows.extend(item.views.unbind(0))
                owners.extend([item.position] * item.views.shape[0])
                while len(rows) >= self.batch_size:
                    run(self.batch_size)
            while next_out in done:
                yield done.pop(next_out)
                next_out += 1
        while rows:
            run(min(len(rows), self.batch_size))
        while next_out in done:
            yield done.pop(next_out)
            next_out += 1

    def _loader(self, sources: list[VideoSource], fps: float | None) -> Iterable[_Item]:
        dataset = _ViewsDataset(sources, self._job(fps))
        workers = self.num_workers
        if workers is None:
            workers = 0 if len(sources) < 2 else min(len(sources), max(1, (os.cpu_count() or 1) // 2), 4)
        if workers == 0:
            return (dataset[i] for i in range(len(dataset)))
        return DataLoader(
            dataset,
            batch_size=None,
            num_workers=workers,
            collate_fn=_identity,
            worker_init_fn=_worker_init,
            pin_memory=self.device.type == "cuda",
        )

    @torch.inference_mode()
    def _forward(self, batch: Tensor, features: bool) -> tuple[Tensor, Tensor | None]:
        with precision(self.device, self.dtype):
            logits, embedding = self._run_model(batch, features)
        probs = logits.float().sigmoid() if self.multi_label else logits.float().softmax(dim=-1)
        return probs.cpu(), embedding

    def _run_model(self, batch: Tensor, features: bool) -> tuple[Tensor, Tensor | None]:
        model = self.model
        embedding = None
        if features and hasattr(model, "forward_features") and hasattr(model, "forward_head"):
            if hasattr(model, "check_input"):
                model.check_input(batch)
            feature_maps = model.forward_features(batch)
            embedding = model.forward_head(feature_maps, pre_logits=True).float().cpu()
            logits = model.forward_head(feature_maps)
        elif features:
            raise ValueError(f"{type(model).__name__} has no forward_features/forward_head; cannot return features.")
        else:
            logits = model(batch)
        return logits, embedding

    def _finish(self, name: str, prob_sum: Tensor, feat_sum: Tensor | None, top_k: int) -> Prediction:
        n = self.recipe.num_views
        probs = prob_sum if self.multi_label else prob_sum / n
        k = min(top_k, probs.numel())
        values, classes = probs.topk(k)
        top = [(self._label(int(c)), float(v)) for v, c in zip(values, classes)]
        above = (probs >= self.threshold).nonzero().flatten()
        above = above[probs[above].argsort(descending=True, stable=True)]
        labels = [(self._label(int(c)), float(probs[c])) for c in above]
        features = None if feat_sum is None else feat_sum / n
        return Prediction(name, top, probs, features, n, labels=labels)

    def _label(self, index: int) -> str:
        return self.categories[index] if index < len(self.categories) else str(index)


#: Model precisions: ``"bf16"`` runs the model under ``torch.autocast`` (CPU with AVX512-BF16 or AMX, or
#: CUDA); probabilities and features come back as float32 either way.
DTYPES = ("fp32", "bf16")


def check_dtype(dtype: str) -> None:
    """Raise ``ValueError`` unless ``dtype`` is one of :data:`DTYPES`."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(map(repr, DTYPES))}, got {dtype!r}.")


def precision(device: torch.device, dtype: str) -> torch.autocast:
    """The autocast context a forward pass in ``dtype`` runs under (disabled for fp32)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == "bf16")


def check_threshold(threshold: float) -> None:
    """Raise ``ValueError`` unless ``threshold`` is a probability (multi-label outputs are listed above it)."""
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be a probability between 0 and 1, got {threshold!r}.")


def _as_list(videos: VideoSource | Sequence[VideoSource]) -> list[VideoSource]:
    if isinstance(videos, (str, os.PathLike, Video, Tensor)):
        return [videos]
    items = list(videos)
    for item in items:
        if not isinstance(item, (str, os.PathLike, Video, Tensor)):
            raise TypeError(f"A video must be a path, a Video or a (T, C, H, W) tensor, not {type(item).__name__}.")
    return items


def predict(
    videos: VideoSource | Sequence[VideoSource],
    model: str | nn.Module,
    weights: WeightsEnum | str | os.PathLike[str] | None = "DEFAULT",
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
) -> list[Prediction]:
    """Classify one or many videos: the top-k ``(label, probability)`` pairs of each, in order.

    ``videozoo.predict("cat.mp4", "x3d_m")[0].top_k``; for multi-label weights (Charades)
    ``predict(video, "slowfast_r50", "CHARADES_V1")[0].labels`` holds every class with a probability of
    at least ``threshold``. ``dtype="bf16"`` runs the model under bf16 autocast. Builds a
    :class:`VideoClassifier` each call; keep one to classify many batches of videos.
    """
    classifier = VideoClassifier(
        model,
        weights,
        clips=clips,
        crops=crops,
        device=device,
        batch_size=batch_size,
        num_workers=num_workers,
        threshold=threshold,
        dtype=dtype,
    )
    return classifier.predict(videos, top_k=top_k, features=features, fps=fps)
