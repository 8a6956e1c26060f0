"""Weights and weights enums: a published checkpoint, where it lives, how its inputs were prepared.

``WeightsEnum.resolve`` is the one rule for what a ``weights=`` value means: ``None``, a member, its
name (``"DEFAULT"``, ``"KINETICS400_V1"``, ``"Enum.NAME"``) or the path of a local checkpoint file. The
evaluation recipe, the categories and whether the labels are multi-label are read from a member as
typed attributes (:attr:`WeightsEnum.recipe`, :attr:`~WeightsEnum.categories`,
:attr:`~WeightsEnum.multi_label`), never from ``meta`` by hand.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import torch
from torch import nn

from videozoo.zoo.recipe import ClipRecipe

__all__ = ["ExtraFile", "Weights", "WeightsEnum", "is_checkpoint_path"]

StateDictAdapter = Callable[[Any], "dict[str, torch.Tensor]"]


@dataclass(frozen=True)
class ExtraFile:
    """A file published beside a checkpoint that the model needs as well, e.g. a text model's tokenizer.

    It is downloaded into the checkpoint store with the checkpoint's rules (cache name, ``VIDEOZOO_OFFLINE``,
    locks, resuming) and checked against ``sha256`` where the publisher's file is known (the full sha256 of
    the file; ``None``: only the sha256 a Hugging Face server states for it, if any, is checked).
    """

    #: What the model calls it (``"tokenizer"``).
    role: str
    url: str
    sha256: str | None = None


@dataclass(frozen=True)
class Weights:
    """A published checkpoint: where it lives, how its inputs were prepared, and what it reports.

    ``state_dict_adapter`` turns the loaded file into our ``state_dict`` when the publisher's file
    format differs from ``model.state_dict()`` (for example PyTorchVideo's ``{"model_state": ...}``).
    ``meta["model_args"]``, where present, holds the builder arguments the checkpoint fixes (the clip
    size the network was built for, e.g. ``{"num_frames": 16, "crop_size": 224}``) and ``meta["license"]``
    the licence its publisher states for the weights. ``file_name`` is the file's name in the cache when
    the URL's basename is not unique among published files (e.g. PyTorchVideo's Kinetics, SSv2 and
    Charades ``SLOW_8x8_R50.pyth``; Hugging Face files get unique names by themselves, see
    :func:`videozoo.zoo.store.cache_name`). ``fallbacks`` are further URLs of the same weights, tried in order
    where the server has no file at ``url`` (a repository's ``pytorch_model.bin`` where it publishes no
    ``model.safetensors``); the adapter reads each of them. ``extra_files`` are further files the model
    needs beside its checkpoint (a video-text model's tokenizer), see :meth:`WeightsEnum.extra_file`.
    """

    url: str
    transforms: Callable[..., nn.Module]
    meta: dict[str, Any]
    state_dict_adapter: StateDictAdapter | None = field(default=None, compare=False)
    file_name: str | None = None
    fallbacks: tuple[str, ...] = ()
    extra_files: tuple[ExtraFile, ...] = field(default=(), compare=False)



class WeightsEnum(Enum):
    """Base of every ``<Model>_Weights`` enum; members wrap :class:`Weights`, ``DEFAULT`` is an alias."""

    @classmethod
    def verify(cls, obj: Any) -> WeightsEnum | None:
        """Resolve ``None``, a member, ``"NAME"``, ``"DEFAULT"`` or ``"Enum.NAME"`` to a member."""
        if obj is None or isinstance(obj, cls):
            return obj
        if isinstance(obj, str):
            name = obj
            prefix = cls.__name__ + "."
            if name.startswith(prefix):
                name = name[len(prefix) :]
            if name in cls.__members__:
                return cls.__members__[name]
            from videozoo.zoo.registry import did_you_mean

            raise ValueError(
                f"Unknown weights {obj!r} for {cls.__name__}; valid names are "
                f"{', '.join(repr(n) for n in cls.__members__)}.{did_you_mean(name, cls.__members__)}"
            )
        if isinstance(obj, WeightsEnum):
            raise ValueError(
                f"Weights {type(obj).__name__}.{obj.name} do not belong to this model; expected one of "
                f"{', '.join(f'{cls.__name__}.{n}' for n in cls.__members__)}."
            )
        raise ValueError(
            f"weights must be None, a {cls.__name__} member or its name as a string, "
            f"not {type(obj).__name__}."
        )

    @classmethod
    def resolve(cls, weights: Any) -> tuple[WeightsEnum | None, Path | None]:
        """The member ``weights`` stands for, and the local file to load it from (``None``: its URL).

        ``weights`` is anything :meth:`verify` takes, or the path of a local checkpoint file
        (:func:`is_checkpoint_path`): a training run's checkpoint stands for a member of its own, with
        the run's classes and recipe (:mod:`videozoo.zoo.runs`); another file for the member whose cache
        file has that name (so a file downloaded by hand keeps its recipe and categories), otherwise
        ``DEFAULT``.
        """
        is_name = isinstance(weights, str) and (weights in cls.__members__ or weights.startswith(cls.__name__ + "."))
        if is_name or not is_checkpoint_path(weights):
            return cls.verify(weights), None
        from videozoo.zoo.runs import read_run, run_member

        path = Path(weights).expanduser()
        run = read_run(path)
        if run is not None:
            return run_member(cls, run, path), path
        for member in cls:
            if path.name in member.file_names:
                return member, path
        return cls.DEFAULT, path  # type: ignore[attr-defined]

    def __reduce_ex__(self, protocol: Any) -> tuple[Any, ...]:
        # By name: the value holds functions (transforms, adapter) that do not compare equal once
        # unpickled, so Enum's default (look the value up again) fails in DataLoader workers.
        return getattr, (type(self), self.name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}.{self.name}"

    def __str__(self) -> str:
        return repr(self)

    @property
    def url(self) -> str:
        return self.value.url

    @property
    def file_name(self) -> str:
        """The checkpoint's name in the cache: ``Weights.file_name``, else :func:`videozoo.zoo.store.cache_name`
        of the URL (its basename; ``<org>--<repo>--<file>`` on Hugging Face)."""
        return self.sources[0][1]

    @property
    def sources(self) -> list[tuple[str, str]]:
        """``(url, cache file name)`` of the checkpoint's URL, then of each fallback, in the order tried."""
        from videozoo.zoo.store import cache_name

        first = (self.value.url, self.value.file_name or cache_name(self.value.url))
        return [first, *((url, cache_name(url)) for url in self.value.fallbacks)]

    @property
    def file_names(self) -> list[str]:
        """Every name the checkpoint may have in the cache (one per source)."""
        return [name for _, name in self.sources]

    def extra_file(self, role: str, *, progress: bool = True) -> Path:
        """The local path of the file published beside the checkpoint for ``role`` (``"tokenizer"``),
        downloaded into the checkpoint store first if it is not there (and hash-checked, see
        :class:`ExtraFile`). ``KeyError`` naming the roles these weights have for another role."""
        from videozoo.zoo.store import download

        for extra in self.value.extra_files:
            if extra.role == role:
                return download(extra.url, progress=progress, sha256=extra.sha256, checkpoint=False)
        roles = ", ".join(repr(e.role) for e in self.value.extra_files) or "none"
        raise KeyError(f"{self!r} publishes no {role!r} file beside its checkpoint (its extra files: {roles}).")

    @property
    def meta(self) -> dict[str, Any]:
        return self.value.meta

    @property
    def transforms(self) -> Callable[..., nn.Module]:
        return self.value.transforms

    @property
    def state_dict_adapter(self) -> StateDictAdapter | None:
        return self.value.state_dict_adapter

    @property
    def recipe(self) -> ClipRecipe:
        """The evaluation recipe the published figures were measured with (clips, frames, views)."""
        return ClipRecipe.from_meta(self.meta)

    @property
    def categories(self) -> list[str]:
        """The class names, in the order of the classifier's outputs (none for encoder-only weights)."""
        return list(self.meta.get("categories", ()))

    @property
    def has_labels(self) -> bool:
        """Whether these weights classify (an encoder's weights give clip embeddings only)."""
        return bool(self.categories) and not self.meta.get("embedding_only", False)

    @property
    def gated(self) -> bool:
        """Whether the file is in a gated Hugging Face repository (``meta["gated"]``): its terms are accepted
        once on the repository's page and it downloads with the user's token (``HF_TOKEN``)."""
        return bool(self.meta.get("gated", False))

    @property
    def multi_label(self) -> bool:
        """Whether each class is scored on its own (sigmoid; Charades) rather than one of all (softmax)."""
        return bool(self.meta.get("multi_label", False))

    def adapt_state_dict(self, checkpoint: Any) -> dict[str, torch.Tensor]:
        """Turn the object stored in this checkpoint's file into a ``state_dict`` for our model."""
        adapter = self.state_dict_adapter
        if adapter is not None:
            return adapter(checkpoint)
        if not isinstance(checkpoint, Mapping):
            raise TypeError(f"{self!r}: expected the checkpoint to hold a state_dict, got {type(checkpoint).__name__}.")
        return dict(checkpoint)




_CHECKPOINT_SUFFIXES = (".pth", ".pt", ".pyth", ".ckpt", ".bin", ".tar", ".safetensors")



def is_checkpoint_path(weights: object) -> bool:
    """Whether ``weights`` names a local checkpoint file rather than a weights member or name.

    True for a ``Path``, and for a string with a path separator, a checkpoint suffix (``.pth``,
    ``.pyth``, ...) or naming an existing file; weights names (``"DEFAULT"``, ``"Enum.NAME"``) are none
    of these. The file need not exist: loading a missing one is a clear error.
    """
    if isinstance(weights, os.PathLike):
        return True
    if not isinstance(weights, str):
        return False
    return (
        os.sep in weights
        or (os.altsep is not None and os.altsep in weights)
        or weights.lower().endswith(_CHECKPOINT_SUFFIXES)
        or os.path.isfile(weights)
    )
