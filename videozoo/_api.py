"""Weights, weights enums, the model registry and the one helper every builder uses.

The behaviour follows ``torchvision.models`` so that code written against it keeps working: a builder
takes ``weights=None | member | "NAME" | "Enum.NAME" | "DEFAULT"`` and ``progress``, and with weights it
fixes ``num_classes`` from the categories the checkpoint was trained on.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, TypeVar

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
]

StateDictAdapter = Callable[[Any], "dict[str, torch.Tensor]"]


@dataclass(frozen=True)
class Weights:
    """A published checkpoint: where it lives, how its inputs were prepared, and what it reports.

    ``state_dict_adapter`` turns the loaded file into our ``state_dict`` when the publisher's file
    format differs from ``model.state_dict()`` (for example PyTorchVideo's ``{"model_state": ...}``).
    """

    url: str
    transforms: Callable[..., nn.Module]
    meta: dict[str, Any]
    state_dict_adapter: StateDictAdapter | None = field(default=None, compare=False)


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

    def __repr__(self) -> str:
        return f"{type(self).__name__}.{self.name}"

    def __str__(self) -> str:
        return repr(self)

    @property
    def url(self) -> str:
        return self.value.url

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
        if self.value.state_dict_adapter is not None:
            return self.value.state_dict_adapter(checkpoint)
        if not isinstance(checkpoint, Mapping):
            raise TypeError(f"{self!r}: expected the checkpoint to hold a state_dict, got {type(checkpoint).__name__}.")
        return dict(checkpoint)

    def get_state_dict(self, progress: bool = True, check_hash: bool = True) -> dict[str, torch.Tensor]:
        """Download (or reuse from the cache) this checkpoint and return it as our ``state_dict``."""
        from videozoo import hub

        return self.adapt_state_dict(hub.load_state_dict_from_url(self.url, progress=progress, check_hash=check_hash))


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
# The shared builder


def build_model(
    model_class: Callable[..., nn.Module],
    weights_enum: type[WeightsEnum],
    weights: WeightsEnum | str | None,
    progress: bool,
    **kwargs: Any,
) -> nn.Module:
    """Construct ``model_class(**kwargs)`` and, when ``weights`` is given, load them strictly.

    With weights, ``num_classes`` defaults to the number of categories they were trained on and a
    conflicting value is an error. The model is only returned once every tensor has loaded.
    """
    member = weights_enum.verify(weights)
    if member is not None:
        expected = len(member.meta["categories"])
        given = kwargs.get("num_classes", expected)
        if given != expected:
            raise ValueError(
                f"num_classes={given} conflicts with {member!r}, which has {expected} classes. Build with "
                f"weights and then call model.reset_classifier({given}) to fine-tune on a new label set."
            )
        kwargs["num_classes"] = expected
    model = model_class(**kwargs)
    if member is not None:
        load_weights(model, member, member.get_state_dict(progress=progress, check_hash=True))
    return model


def load_weights(model: nn.Module, member: WeightsEnum, state_dict: Mapping[str, torch.Tensor]) -> None:
    """``load_state_dict(strict=True)`` with an error that says which file and which keys disagree."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    mismatched = [
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state_dict and tuple(state_dict[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or mismatched:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", mismatched)):
            if keys:
                shown = ", ".join(keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")
                parts.append(f"{len(keys)} {label} ({shown})")
        raise RuntimeError(
            f"The checkpoint for {member!r} ({member.url}) does not fit {type(model).__name__}: "
            f"{'; '.join(parts)}. The file may be from another model or a different release."
        )
    model.load_state_dict(state_dict, strict=True)
