"""Weights, weights enums, the model registry and the one helper every builder uses.

The behaviour follows ``torchvision.models`` so that code written against it keeps working: a builder
takes ``weights=None | member | "NAME" | "Enum.NAME" | "DEFAULT"`` and ``progress``, and with weights it
fixes ``num_classes`` from the categories the checkpoint was trained on and every size the network was
built for (``meta["model_args"]``). A builder also takes the path of a local checkpoint file.

:func:`load_weights` is the one way a checkpoint reaches a model: builders, :mod:`videozoo.inference`,
the command line and the training references all go through it, so every file, downloaded or local,
passes the weights' adapter and the same strict checks, and its errors name the file.
"""

from __future__ import annotations

import contextlib
import difflib
import fnmatch
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import torch
from torch import nn

__all__ = [
    "Weights",
    "WeightsEnum",
    "register_model",
    "list_models",
    "get_model",
    "get_model_builder",
    "get_model_weights",
    "get_weight",
    "build_model",
    "load_weights",
    "is_checkpoint_path",
]

StateDictAdapter = Callable[[Any], "dict[str, torch.Tensor]"]


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
    :func:`videozoo.hub.cache_name`). ``fallbacks`` are further URLs of the same weights, tried in order
    where the server has no file at ``url`` (a repository's ``pytorch_model.bin`` where it publishes no
    ``model.safetensors``); the adapter reads each of them.
    """

    url: str
    transforms: Callable[..., nn.Module]
    meta: dict[str, Any]
    state_dict_adapter: StateDictAdapter | None = field(default=None, compare=False)
    file_name: str | None = None
    fallbacks: tuple[str, ...] = ()


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
            raise ValueError(
                f"Unknown weights {obj!r} for {cls.__name__}; valid names are "
                f"{', '.join(repr(n) for n in cls.__members__)}."
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
        (:func:`is_checkpoint_path`): the member whose cache file has that name (so a file downloaded
        by hand keeps its recipe and categories), otherwise ``DEFAULT``.
        """
        is_name = isinstance(weights, str) and (weights in cls.__members__ or weights.startswith(cls.__name__ + "."))
        if is_name or not is_checkpoint_path(weights):
            return cls.verify(weights), None
        path = Path(weights).expanduser()
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
        """The checkpoint's name in the cache: ``Weights.file_name``, else :func:`videozoo.hub.cache_name`
        of the URL (its basename; ``<org>--<repo>--<file>`` on Hugging Face)."""
        return self.sources[0][1]

    @property
    def sources(self) -> list[tuple[str, str]]:
        """``(url, cache file name)`` of the checkpoint's URL, then of each fallback, in the order tried."""
        from videozoo.hub import cache_name

        first = (self.value.url, self.value.file_name or cache_name(self.value.url))
        return [first, *((url, cache_name(url)) for url in self.value.fallbacks)]

    @property
    def file_names(self) -> list[str]:
        """Every name the checkpoint may have in the cache (one per source)."""
        return [name for _, name in self.sources]

    @property
    def meta(self) -> dict[str, Any]:
        return self.value.meta

    @property
    def transforms(self) -> Callable[..., nn.Module]:
        return self.value.transforms

    @property
    def state_dict_adapter(self) -> StateDictAdapter | None:
        return self.value.state_dict_adapter

    def adapt_state_dict(self, checkpoint: Any) -> dict[str, torch.Tensor]:
        """Turn the object stored in this checkpoint's file into a ``state_dict`` for our model."""
        adapter = self.state_dict_adapter
        if adapter is not None:
            return adapter(checkpoint)
        if not isinstance(checkpoint, Mapping):
            raise TypeError(f"{self!r}: expected the checkpoint to hold a state_dict, got {type(checkpoint).__name__}.")
        return dict(checkpoint)

    def get_state_dict(self, progress: bool = True, check_hash: bool = True) -> dict[str, torch.Tensor]:
        """Download (or reuse from the cache) this checkpoint and return it as our ``state_dict``."""
        from videozoo import hub

        path = hub.download_first(self.sources, progress=progress, check_hash=check_hash)
        return self.adapt_state_dict(hub.load_checkpoint(path, downloaded=True))


# ----------------------------------------------------------------------------------------------------
# Registry

_MODELS: dict[str, Callable[..., nn.Module]] = {}
_MODEL_WEIGHTS: dict[str, type[WeightsEnum]] = {}

F = TypeVar("F", bound=Callable[..., nn.Module])


def register_model(weights: type[WeightsEnum], name: str | None = None) -> Callable[[F], F]:
    """Register a builder under ``name`` (default: its function name) with its weights enum."""

    def wrapper(fn: F) -> F:
        key = name or fn.__name__
        if key in _MODELS:
            raise ValueError(f"A model is already registered under the name {key!r}.")
        _MODELS[key] = fn
        _MODEL_WEIGHTS[key] = weights
        return fn

    return wrapper


def _patterns(value: str | Iterable[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def list_models(include: str | Iterable[str] | None = None, exclude: str | Iterable[str] | None = None) -> list[str]:
    """Sorted names of the registered models, filtered by fnmatch ``include``/``exclude`` patterns."""
    names = set(_MODELS)
    inc, exc = _patterns(include), _patterns(exclude)
    if inc:
        names = {n for n in names if any(fnmatch.fnmatch(n, p) for p in inc)}
    if exc:
        names = {n for n in names if not any(fnmatch.fnmatch(n, p) for p in exc)}
    return sorted(names)


def _unknown_model(name: str) -> ValueError:
    close = difflib.get_close_matches(name, _MODELS, n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return ValueError(f"Unknown model {name!r}.{hint} See videozoo.list_models() for all {len(_MODELS)} models.")


def get_model_builder(name: str) -> Callable[..., nn.Module]:
    """The builder function registered under ``name``."""
    try:
        return _MODELS[name]
    except KeyError:
        raise _unknown_model(name) from None


def get_model(name: str, **config: Any) -> nn.Module:
    """Build the model registered under ``name``; ``config`` goes to its builder (``weights=`` etc.)."""
    return get_model_builder(name)(**config)


def get_model_weights(name: str | Callable[..., nn.Module]) -> type[WeightsEnum]:
    """The weights enum of a model, given its name or its builder."""
    if callable(name) and not isinstance(name, str):
        for key, fn in _MODELS.items():
            if fn is name:
                return _MODEL_WEIGHTS[key]
        raise ValueError(f"{getattr(name, '__name__', name)!r} is not a registered videozoo builder.")
    if name not in _MODEL_WEIGHTS:
        raise _unknown_model(name)
    return _MODEL_WEIGHTS[name]


def get_weight(name: str) -> WeightsEnum:
    """Resolve ``"R2Plus1D_18_Weights.KINETICS400_V1"`` to its member."""
    enum_name, _, member = name.partition(".")
    enums = {e.__name__: e for e in _MODEL_WEIGHTS.values()}
    if not member or enum_name not in enums:
        raise ValueError(
            f"Unknown weights {name!r}; expected 'EnumName.MEMBER' with EnumName one of {', '.join(sorted(enums))}."
        )
    return enums[enum_name].verify(member)  # type: ignore[return-value]


# ----------------------------------------------------------------------------------------------------
# Loading checkpoints

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


def load_weights(
    model: nn.Module,
    weights: WeightsEnum,
    path: str | os.PathLike[str] | None = None,
    *,
    progress: bool = True,
    check_hash: bool = True,
) -> nn.Module:
    """Load a published checkpoint into ``model`` strictly; the one loading path of videozoo.

    Args:
        model: the network, built for the checkpoint (the builders pin ``num_classes`` and
            ``meta["model_args"]``; a network built otherwise loads only if every shape fits).
        weights: the member whose file format (adapter), keys and shapes the checkpoint has.
        path: a local file in that format (e.g. downloaded by hand); ``None`` downloads the member's
            URL (or the first fallback the server has) into the cache, or reuses the cached file.
        progress: show a progress bar while downloading.
        check_hash: check a download's sha256 (the prefix in its file name, the sha256 its server states).

    Returns ``model``. Nothing is copied until every key and shape is known to fit, so a model is never
    half-loaded. Raises :class:`~videozoo.errors.CheckpointError` naming the file (unreadable, not in
    the member's format, or not this network) and :class:`~videozoo.errors.DownloadError`.
    """
    from videozoo import hub
    from videozoo.errors import CheckpointError

    if path is None:
        file = hub.download_first(weights.sources, progress=progress, check_hash=check_hash)
        remedy = f"Delete {file} and run again to download it anew."
    else:
        file = Path(path).expanduser()
        if not file.is_file():
            raise CheckpointError(f"{file}: no such checkpoint file.")
        remedy = f"Use the file published at {weights.url}, unchanged."
    try:
        checkpoint = hub.load_checkpoint(file, downloaded=path is None)
    except (PermissionError, IsADirectoryError) as e:
        raise CheckpointError(f"{file}: cannot read the checkpoint ({e.strerror or e}).") from None
    try:
        state_dict = weights.adapt_state_dict(checkpoint)
    except (ValueError, TypeError, KeyError) as e:
        raise CheckpointError(
            f"{file}: not a checkpoint in the format {weights!r} is published in ({_first_line(e)}). {remedy}"
        ) from None
    problems = _mismatches(model.state_dict(), state_dict)
    if problems:
        raise CheckpointError(
            f"{file}: the checkpoint does not fit {type(model).__name__} as built for {weights!r}: {problems}. "
            f"The file may be of another model or a different release. {remedy}{_namesakes(weights, file)}"
        )
    _materialize(model)
    model.load_state_dict(state_dict, strict=True)
    return model


def _namesakes(weights: WeightsEnum, file: Path) -> str:
    """A hint for a local file named like several published files (the hand-downloaded SSv2 file of a
    model whose Kinetics file has the same name): which members, and under which name each loads."""
    others = [
        m for m in type(weights)
        if m is not weights and any(os.path.basename(urlsplit(url).path) == file.name for url, _ in m.sources)
    ]
    if not others:
        return ""
    names = ", ".join(f"{m!r} (name the file {m.file_name})" for m in others)
    return f" A file named {file.name} is also published as {names}; its name tells videozoo which one it is."


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return (text.splitlines()[0] if text else type(error).__name__)[:300]


def _mismatches(own: Mapping[str, torch.Tensor], state_dict: Mapping[str, Any]) -> str:
    """What keeps ``state_dict`` from loading strictly into a model with ``own``; empty if nothing."""
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    mismatched = [
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state_dict and tuple(getattr(state_dict[k], "shape", ())) != tuple(own[k].shape)
    ]
    parts = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", mismatched)):
        if keys:
            shown = ", ".join(keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")
            parts.append(f"{len(keys)} {label} ({shown})")
    return "; ".join(parts)


# ----------------------------------------------------------------------------------------------------
# The shared builder


def build_model(
    model_class: Callable[..., nn.Module],
    weights_enum: type[WeightsEnum],
    weights: WeightsEnum | str | os.PathLike[str] | None,
    progress: bool,
    kwargs: Mapping[str, Any],
    **config: Any,
) -> nn.Module:
    """What every builder returns: ``model_class(**config, **kwargs)``, loaded with ``weights``.

    Args:
        model_class: the family's model class.
        weights_enum: the builder's weights enum; ``weights`` is resolved with
            :meth:`WeightsEnum.resolve` (a member, its name, or a local checkpoint file).
        progress: show a progress bar while downloading.
        kwargs: the caller's arguments; they override ``config``.
        config: the architecture of this builder.

    With weights, ``num_classes`` and ``meta["model_args"]`` are taken from the checkpoint, and a
    conflicting value raises ``ValueError`` before anything is downloaded. The network is then built
    without random initialisation (its parameters on the meta device) and its tensors come from the
    file alone.
    """
    member, path = weights_enum.resolve(weights)
    config = {**config, **kwargs}
    if member is None:
        return model_class(**config)
    config.update(_pinned_args(member, config))
    with _parameters_on_meta():
        model = model_class(**config)
    return load_weights(model, member, path, progress=progress)


def _pinned_args(member: WeightsEnum, config: Mapping[str, Any]) -> dict[str, Any]:
    """The builder arguments ``member`` fixes; a conflicting value in ``config`` is a ``ValueError``."""
    pinned = {"num_classes": len(member.meta["categories"]), **member.meta.get("model_args", {})}
    for key, needed in pinned.items():
        if key in config and _canonical(config[key]) != _canonical(needed):
            if key == "num_classes":
                raise ValueError(
                    f"num_classes={config[key]} conflicts with {member!r}, which has {needed} classes. Build with "
                    f"weights and then call model.reset_classifier({config[key]}) to fine-tune on a new label set."
                )
            raise ValueError(
                f"{key}={config[key]!r} conflicts with {member!r}: its checkpoint was trained for {key}={needed!r}. "
                f"Leave {key} out to get {needed!r}, or build without weights to choose another value."
            )
    return pinned


def _canonical(value: Any) -> Any:
    """Compare sizes by value: ``224 == (224, 224) == [224, 224]``."""
    if isinstance(value, (list, tuple)):
        items = tuple(value)
        return items[0] if items and all(v == items[0] for v in items) else items
    return value


_META_LOCK = threading.Lock()


@contextlib.contextmanager
def _parameters_on_meta() -> Iterator[None]:
    """Put every parameter created in this block on the meta device (no memory, no initialisation).

    Buffers stay where they are created, so index tables and other computed buffers keep their values;
    :func:`_materialize` gives the parameters real (uninitialised) storage again, strides included.
    Only this thread's parameters are redirected: modules other threads build meanwhile are untouched.
    """
    original = nn.Module.register_parameter
    owner = threading.get_ident()

    def register_parameter(module: nn.Module, name: str, param: nn.Parameter | None) -> None:
        original(module, name, param)
        if param is not None and param.device.type != "meta" and threading.get_ident() == owner:
            module._parameters[name] = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)

    with _META_LOCK:
        nn.Module.register_parameter = register_parameter  # type: ignore[method-assign]
        try:
            yield
        finally:
            nn.Module.register_parameter = original  # type: ignore[method-assign]


def _materialize(model: nn.Module) -> None:
    """Give the meta-device parameters of ``model`` uninitialised storage on the default device."""
    device = torch.get_default_device()
    for module in model.modules():
        for name, param in module._parameters.items():
            if param is not None and param.device.type == "meta":
                module._parameters[name] = nn.Parameter(
                    # empty_strided, not empty_like: on the meta device empty_like drops the channels-last
                    # strides of filters with size-1 dimensions (1x1x1 convolutions).
                    torch.empty_strided(param.shape, param.stride(), dtype=param.dtype, device=device),
                    requires_grad=param.requires_grad,
                )
