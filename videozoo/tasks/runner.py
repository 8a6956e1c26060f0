"""The task road: a model and its weights, resolved once and made ready for every task.

:func:`load_model` turns what a user names — a registered model or a module, a weights member, its
name or a checkpoint file, a device and a precision — into a :class:`Runner`: the network in eval
mode on its device, the weights member whose recipe, preset and categories go with it, and how the
logits become probabilities (:class:`Labels`). Classify, timeline, extract and export all start here,
so a weights value is resolved, a checkpoint loaded and a device checked in one place. A new task adds
only what it does with the runner's outputs and the records it writes.

The decoding side of a task runs in DataLoader worker processes (:func:`decode_in_workers`) while the
model runs in this one.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, IterableDataset

from videozoo.zoo import ClipRecipe, WeightsEnum, get_model, get_model_task, get_model_weights, is_checkpoint_path

__all__ = [
    "DTYPES",
    "Labels",
    "Runner",
    "bf16_native",
    "check_bf16",
    "check_dtype",
    "check_labels_fit",
    "check_task",
    "check_threshold",
    "decode_in_workers",
    "is_video_text",
    "load_model",
    "resolve_weights",
    "to_bf16",
]

#: Model precisions: ``"bf16"`` runs a copy of the model whose parameters are bfloat16 (on a CPU with
#: AVX512-BF16 or AMX, or CUDA); probabilities and features come back as float32 either way.
DTYPES = ("fp32", "bf16")

WeightsArg = WeightsEnum | str | os.PathLike[str] | None


def check_dtype(dtype: str, allowed: tuple[str, ...] = DTYPES) -> None:
    """Raise ``ValueError`` unless ``dtype`` is one of ``allowed`` (default :data:`DTYPES`)."""
    if dtype not in allowed:
        raise ValueError(f"dtype must be one of {', '.join(map(repr, allowed))}, got {dtype!r}.")


def bf16_native(device: torch.device) -> bool:
    """Whether ``device`` computes in bfloat16 natively: CUDA with bf16 support, or a CPU whose kernels
    (PyTorch's dispatch level, ``ATEN_CPU_CAPABILITY``) are AVX-512 and which has AVX512-BF16 or AMX
    instructions. Elsewhere bf16 is emulated, slower than fp32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    avx512 = torch.backends.cpu.get_cpu_capability().startswith("AVX512")
    return avx512 and (torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def check_bf16(device: torch.device) -> None:
    """Raise ``ValueError`` where ``device`` has no native bf16 (:func:`bf16_native`), saying what to use."""
    if not bf16_native(device):
        where = "this CPU has neither AVX512-BF16 nor AMX" if device.type == "cpu" else f"{device} has no bf16"
        raise ValueError(
            f"dtype 'bf16' needs native bfloat16 arithmetic and {where} (PyTorch's CPU kernels: "
            f"{torch.backends.cpu.get_cpu_capability()}); emulated it runs slower than fp32. Use dtype 'fp32'."
        )


def to_bf16(model: nn.Module, copy_first: bool) -> nn.Module:
    """``model`` with bfloat16 parameters and buffers (integer index tables stay as they are); a copy if
    ``copy_first`` (a module the caller owns), else converted in place (one the task built itself).

    Every operation then runs on bf16 operands: oneDNN's bf16 kernels for the linear layers and
    convolutions, no casts in and out of each layer as autocast makes, half the weight traffic.
    Normalisations and softmax accumulate in float32 inside PyTorch's kernels."""
    return (copy.deepcopy(model) if copy_first else model).to(torch.bfloat16)


def check_threshold(threshold: float) -> None:
    """Raise ``ValueError`` unless ``threshold`` is a probability (multi-label outputs are listed above it)."""
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be a probability between 0 and 1, got {threshold!r}.")


def check_positive(value: int, name: str) -> None:
    """Raise ``ValueError`` unless ``value`` (an argument called ``name``) is at least 1."""
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}.")


@dataclass(frozen=True)
class Labels:
    """How a model's outputs become labels: softmax over the classes, or (multi-label weights, Charades)
    a sigmoid per class; views of one video are averaged, or maxed for multi-label weights (PySlowFast's
    Charades test, ``ENSEMBLE_METHOD: max``)."""

    categories: tuple[str, ...]
    multi_label: bool = False

    def probabilities(self, logits: Tensor) -> Tensor:
        """float32 ``(..., num_classes)`` probabilities of the logits."""
        logits = logits.float()
        return logits.sigmoid() if self.multi_label else logits.softmax(dim=-1)

    def combine(self, total: Tensor | None, probs: Tensor) -> Tensor:
        """Fold one more view's ``probs`` into a running ``total`` (sum, or maximum for multi-label)."""
        if total is None:
            return probs.clone()
        return torch.maximum(total, probs) if self.multi_label else total.add_(probs)

    def finish(self, total: Tensor, num_views: int) -> Tensor:
        """A video's probabilities from its :meth:`combine`-d views."""
        return total if self.multi_label else total / num_views

    def name(self, index: int) -> str:
        return self.categories[index] if index < len(self.categories) else str(index)

    def top_k(self, probs: Tensor, k: int) -> list[tuple[str, float]]:
        """The ``k`` most probable ``(label, probability)`` pairs, most probable first."""
        values, classes = probs.topk(min(k, probs.numel()))
        return [(self.name(int(c)), float(v)) for v, c in zip(values, classes)]

    def above(self, probs: Tensor, threshold: float) -> list[tuple[str, float]]:
        """Every ``(label, probability)`` at least ``threshold`` probable, most probable first."""
        chosen = (probs >= threshold).nonzero().flatten()
        chosen = chosen[probs[chosen].argsort(descending=True, stable=True)]
        return [(self.name(int(c)), float(probs[c])) for c in chosen]


@dataclass
class Runner:
    """A model ready to run: the network in eval mode on ``device``, its weights and what goes with them.

    ``model_name`` is the registered name (a module's class name otherwise) and ``weights_name`` what a
    result records as its weights: the member (``"R2Plus1D_18_Weights.KINETICS400_V1"``) or the local
    checkpoint file's path.
    """

    model: nn.Module
    weights: WeightsEnum
    model_name: str
    weights_name: str
    device: torch.device
    dtype: str = "fp32"
    engine: Any = None  # a videozoo.tasks.engines.Engine that runs the model instead of eager PyTorch
    #: A video-text model's labels, given by the user (:func:`load_model`'s ``labels``); ``None``: the weights'.
    user_labels: tuple[str, ...] | None = None
    #: The prompt template(s) given with them (``None``: the publisher's).
    user_template: str | tuple[str, ...] | None = None

    @property
    def recipe(self) -> ClipRecipe:
        return self.weights.recipe

    @property
    def labels(self) -> Labels:
        if self.user_labels is not None:  # scaled similarities: one of the labels, softmax
            return Labels(self.user_labels, False)
        return Labels(tuple(self.weights.categories), self.weights.multi_label)

    @property
    def has_labels(self) -> bool:
        """Whether the model gives logits: weights with a classifier, or a video-text model given labels."""
        return self.user_labels is not None or self.weights.has_labels

    def transform(self) -> nn.Module:
        """A fresh instance of the weights' preprocessing preset."""
        return self.weights.transforms()

    def require_labels(self, task: str) -> None:
        """Raise ``ValueError`` when the weights have no classifier (an encoder's): ``task`` needs labels."""
        if self.has_labels:
            return
        if is_video_text(self.model):
            raise ValueError(
                f"{self.model_name} is a video-text model: it classifies into labels you give, and {task} was given "
                f"none. Pass labels=[...] (on the command line --labels \"a,b,c\" or --labels FILE)."
            )
        if not self.weights.has_labels:
            raise ValueError(
                f"{self.weights!r} has no labels: these are an encoder's weights, which give clip embeddings "
                f"(videozoo.extract / videozoo extract), not classes; {task} needs weights with a classifier."
            )

    def describe(self) -> dict[str, Any]:
        """``model`` and ``weights``, as every record of a task names them."""
        return {"model": self.model_name, "weights": self.weights_name}

    def model_input(self, x: Tensor) -> Tensor:
        """``x`` (a float32 clip batch) on the model's device, in the model's precision."""
        return x.to(self.device, torch.bfloat16 if self.dtype == "bf16" else torch.float32, non_blocking=True)

    @torch.inference_mode()
    def logits(self, clips: Tensor) -> Tensor:
        """The model's logits for a batch of clips ``(B, C, T, H, W)``, on CPU, float32."""
        if self.engine is not None:
            return self.engine(clips)
        return self.model(self.model_input(clips)).float().cpu()

    @torch.inference_mode()
    def embed(self, clips: Tensor, *, with_logits: bool = False) -> tuple[Tensor, Tensor | None]:
        """The clip embeddings ``(B, num_features)`` (``forward_head(..., pre_logits=True)``) and, when asked,
        the logits of the same forward pass; float32 on CPU."""
        if self.engine is not None:
            logits, embedding = self.engine.run(clips)
            return embedding, logits if with_logits else None
        model = self.model
        if not (hasattr(model, "forward_features") and hasattr(model, "forward_head")):
            raise ValueError(f"{type(model).__name__} has no forward_features/forward_head; it gives no clip embedding.")
        clips = self.model_input(clips)
        if hasattr(model, "check_input"):
            model.check_input(clips)
        features = model.forward_features(clips)
        embedding = model.forward_head(features, pre_logits=True).float().cpu()
        logits = model.forward_head(features).float().cpu() if with_logits else None
        return embedding, logits


def is_video_text(model: Any) -> bool:
    """Whether ``model`` is a video-text model (it has a text tower and takes labels: ``set_labels``)."""
    return callable(getattr(model, "set_labels", None)) and callable(getattr(model, "encode_text", None))


def check_labels_fit(model: Any, model_name: str) -> None:
    """``ValueError`` saying why labels cannot be given to ``model``, a classifier with its own classes."""
    if is_video_text(model):
        return
    from videozoo.zoo import list_models

    text_models = ", ".join(list_models(task="video_text")) or "none registered"
    raise ValueError(
        f"{model_name} is a classifier: it scores the classes it was trained on (its weights' categories) and "
        f"cannot read other labels. Labels in words need a video-text model ({text_models})."
    )


def resolve_weights(model: str | nn.Module, weights: WeightsArg, *, untrained_ok: bool = False) -> tuple[WeightsEnum, str | None]:
    """The member a ``weights`` value stands for and the name results record for it (``None``: untrained).

    Args:
        model: a registered name, or a module (then ``weights`` must be the member it holds).
        weights: a member, its name, or the path of a local checkpoint file (see
            :meth:`WeightsEnum.resolve`); ``None`` only with ``untrained_ok`` (then the default's recipe).
        untrained_ok: accept ``None`` (random weights: export, benchmarks).

    Unknown names raise ``ValueError``.
    """
    if isinstance(model, nn.Module):
        if not isinstance(weights, WeightsEnum) and not (untrained_ok and weights is None):
            raise ValueError(
                "With a model object, pass weights= the WeightsEnum member it was trained with: its meta "
                "and transforms() give the clip recipe, the preprocessing and the category names."
            )
        return weights, str(weights)  # type: ignore[return-value]
    if not isinstance(model, str):
        raise TypeError(f"model must be a model name or an nn.Module, not {type(model).__name__}.")
    enum = get_model_weights(model)
    if weights is None:
        if untrained_ok:
            return enum.DEFAULT, None  # type: ignore[attr-defined]  (the default's recipe, for the clip size)
        raise ValueError(
            f"Running with untrained weights gives meaningless labels; pass weights='DEFAULT' or one of "
            f"{', '.join(enum.__members__)} (or a checkpoint file path)."
        )
    member, _ = enum.resolve(weights)
    assert member is not None
    return member, os.fspath(weights) if is_checkpoint_path(weights) else str(member)  # type: ignore[arg-type]


#: What a model of each task is for, in the message that refuses it elsewhere.
_USE = {
    "classification": "it labels whole clips: videozoo classify / timeline / extract",
    "action_detection": "it labels each person's actions: videozoo detect VIDEO --model {name}",
    "person_detection": "it finds the people in frames, for videozoo detect VIDEO --detector {name}",
    "video_text": "it matches clips with texts: videozoo classify --labels, videozoo search",
}


def check_task(model: str, tasks: Sequence[str]) -> None:
    """``ValueError`` when the registered ``model``'s task is not one of ``tasks``, saying what it is for."""
    task = get_model_task(model)
    if task not in tasks:
        use = _USE[task].format(name=model)
        wanted = " or ".join(t.replace("_", " ") for t in tasks)
        raise ValueError(
            f"{model!r} is {_a(task)} {task.replace('_', ' ')} model ({use}); this needs {_a(wanted)} {wanted} model "
            f"('videozoo models' lists them)."
        )


def _a(noun: str) -> str:
    return "an" if noun[:1] in "aeiou" else "a"


def load_model(
    model: str | nn.Module,
    weights: WeightsArg = "DEFAULT",
    *,
    device: str | torch.device = "cpu",
    dtype: str = "fp32",
    engine: str = "torch",
    progress: bool = True,
    tasks: Sequence[str] = ("classification", "video_text"),
    labels: Sequence[str] | None = None,
    template: str | Sequence[str] | None = None,
) -> Runner:
    """The model in eval mode on ``device``, with the weights member whose recipe, preset and labels go with it.

    Args:
        model: a registered name, or an ``nn.Module`` (then ``weights`` must be the member it was
            trained with).
        weights: a member, its name (``"DEFAULT"``, ``"KINETICS400_V1"``, ``"Enum.NAME"``) or the path
            of a local checkpoint file in the published format (see :meth:`WeightsEnum.resolve`).
        device: where the model runs; ``"cuda"`` needs a CUDA device (under torchrun, ``"cuda"`` is the
            rank's ``cuda:LOCAL_RANK``).
        dtype: ``"fp32"``, or ``"bf16"``: the model runs with bfloat16 parameters (:func:`to_bf16`; a copy of
            a module you pass), or the engine runs in bf16; refused where the device has no native bf16.
        engine: ``"torch"`` (eager PyTorch), ``"onnxruntime"``, ``"openvino"`` or ``"auto"`` (the fastest
            installed, measured once): see :func:`videozoo.accelerate`. Other engines than torch run on
            the CPU, at the weights' evaluation clip (frames x crop).
        progress: show a progress bar while downloading.
        tasks: the model tasks the caller runs (a registered model of another task is refused, naming
            what it is for).
        labels: for a video-text model, the labels to classify into (its logits are the scaled similarities
            of a clip with each label's text embedding); a classifier given labels is a ``ValueError``.
        template: the prompt template(s) for ``labels`` (``"a video of {}."``); ``None``: the publisher's.

    Unknown names raise ``ValueError``; a checkpoint that cannot be read or does not fit raises
    :class:`~videozoo.errors.CheckpointError`.
    """
    check_dtype(dtype)
    if isinstance(model, str):
        check_task(model, tasks)
    where = _device(device)
    if dtype == "bf16":
        check_bf16(where)
    member, weights_name = resolve_weights(model, weights)
    if isinstance(model, nn.Module):
        net, model_name = model, type(model).__name__
    else:
        net, model_name = get_model(model, weights=weights, progress=progress), model
    net = net.eval().to(where)
    if dtype == "bf16" and engine == "torch":  # other engines build their bf16 graph from the fp32 model
        net = to_bf16(net, copy_first=net is model)
    runner = Runner(net, member, model_name, str(weights_name), where, dtype)
    if labels is not None:
        check_labels_fit(net, model_name)
        net.set_labels(labels, template)
        runner.user_labels = tuple(net.categories)
        runner.user_template = template if template is None or isinstance(template, str) else tuple(template)
    if engine != "torch":
        from videozoo.tasks.engines import accelerate

        if where.type != "cpu":
            raise ValueError(f"engine={engine!r} runs on the CPU; use engine='torch' with device={str(where)!r}.")
        crop = runner.transform().crop_size
        runner.engine = accelerate(runner.model, member, engine=engine, dtype=dtype, clip_shape=(runner.recipe.num_frames, *crop))
    return runner


def _device(device: str | torch.device) -> torch.device:
    where = torch.device(device)
    if where.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device='cuda' was asked for but torch.cuda.is_available() is False.")
        if where.index is None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
            where = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return where


def decode_in_workers(dataset: Dataset | IterableDataset, count: int, num_workers: int | None, pin_memory: bool = False) -> Iterable[Any]:
    """The items of ``dataset`` (one per video, or chunks of one), decoded in worker processes.

    Args:
        count: how many videos the dataset holds.
        num_workers: worker processes; ``None``: one per two CPU cores, at most 4, and none for a
            single video; 0 decodes in this process.
        pin_memory: pin the items' tensors (for a CUDA model).
    """
    workers = num_workers
    if workers is None:
        workers = min(count, max(1, (os.cpu_count() or 1) // 2), 4) if count > 1 else 0
    workers = min(workers, count)
    if workers == 0:
        return iter(dataset) if isinstance(dataset, IterableDataset) else (dataset[i] for i in range(count))
    return DataLoader(
        dataset, batch_size=None, num_workers=workers, collate_fn=_as_is, worker_init_fn=_one_thread, pin_memory=pin_memory
    )


def _as_is(item: Any) -> Any:
    return item


def _one_thread(_: int) -> None:
    torch.set_num_threads(1)  # decoding threads are FFmpeg's; leave the cores to the model
