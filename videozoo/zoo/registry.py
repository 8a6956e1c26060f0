"""The model registry: builders by name, each with its weights enum.

Names are the publishers' own (torchvision's, PyTorchVideo's hub names): users arrive with them. A
builder takes ``weights=None | member | "NAME" | "Enum.NAME" | "DEFAULT" | path`` and ``progress``, as
``torchvision.models`` does. :func:`registered` adds a model for the length of a ``with`` block (tests
and experiments register small models through it, never by touching the tables).
"""

from __future__ import annotations

import contextlib
import difflib
import fnmatch
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from torch import nn

from videozoo.zoo.weights import WeightsEnum

__all__ = [
    "register_model",
    "registered",
    "list_models",
    "get_model",
    "get_model_builder",
    "get_model_weights",
    "get_weight",
    "did_you_mean",
]

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


@contextlib.contextmanager
def registered(builder: Callable[..., nn.Module], weights: type[WeightsEnum], name: str | None = None) -> Iterator[str]:
    """Register ``builder`` under ``name`` (default: its function name) while the block runs.

    Yields the name. Every part of videozoo that takes a model name (``get_model``, the tasks, the
    command line in this process) sees the model until the block ends; a name already taken is a
    ``ValueError``.
    """
    key = name or builder.__name__
    register_model(weights, key)(builder)
    try:
        yield key
    finally:
        _MODELS.pop(key, None)
        _MODEL_WEIGHTS.pop(key, None)


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


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """`` Did you mean 'a' or 'b'?`` for the choices closest to a misspelt ``name`` (empty if none is close)."""
    close = difflib.get_close_matches(name, list(choices), n=3, cutoff=0.5)
    return f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def _unknown_model(name: str) -> ValueError:
    hint = did_you_mean(name, _MODELS)
    return ValueError(f"Unknown model {name!r}.{hint} videozoo.list_models() lists all {len(_MODELS)} models.")


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
