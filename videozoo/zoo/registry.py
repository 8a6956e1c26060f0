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
    "TASKS",
    "register_model",
    "registered",
    "get_model_task",
    "list_models",
    "get_model",
    "get_model_builder",
    "get_model_weights",
    "get_weight",
    "did_you_mean",
]

_MODELS: dict[str, Callable[..., nn.Module]] = {}
_MODEL_WEIGHTS: dict[str, type[WeightsEnum]] = {}
_MODEL_TASKS: dict[str, str] = {}

#: What a registered model does, which decides the contract it follows and the tasks that take it:
#: ``classification`` (a clip in, logits over its classes out: ``tests/test_contract.py``),
#: ``action_detection`` (a clip and person boxes in, per-box logits out), ``person_detection`` (frames in,
#: person boxes out) and ``video_text`` (clips and texts in, embeddings and similarities out).
TASKS = ("classification", "action_detection", "person_detection", "video_text")

F = TypeVar("F", bound=Callable[..., nn.Module])


def register_model(weights: type[WeightsEnum], name: str | None = None, task: str = "classification") -> Callable[[F], F]:
    """Register a builder under ``name`` (default: its function name) with its weights enum.

    Args:
        task: one of :data:`TASKS`.
    """
    if task not in TASKS:
        raise ValueError(f"Unknown task {task!r}; expected one of {', '.join(TASKS)}.")

    def wrapper(fn: F) -> F:
        key = name or fn.__name__
        if key in _MODELS:
            raise ValueError(f"A model is already registered under the name {key!r}.")
        _MODELS[key] = fn
        _MODEL_WEIGHTS[key] = weights
        _MODEL_TASKS[key] = task
        return fn

    return wrapper


@contextlib.contextmanager
def registered(
    builder: Callable[..., nn.Module], weights: type[WeightsEnum], name: str | None = None, task: str = "classification"
) -> Iterator[str]:
    """Register ``builder`` under ``name`` (default: its function name) while the block runs.

    Yields the name. Every part of videozoo that takes a model name (``get_model``, the tasks, the
    command line in this process) sees the model until the block ends; a name already taken is a
    ``ValueError``.
    """
    key = name or builder.__name__
    register_model(weights, key, task)(builder)
    try:
        yield key
    finally:
        _MODELS.pop(key, None)
        _MODEL_WEIGHTS.pop(key, None)
        _MODEL_TASKS.pop(key, None)


def _patterns(value: str | Iterable[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def list_models(
    include: str | Iterable[str] | None = None,
    exclude: str | Iterable[str] | None = None,
    task: str | Iterable[str] | None = None,
) -> list[str]:
    """Sorted names of the registered models, filtered by fnmatch ``include``/``exclude`` patterns.

    Args:
        task: only the models of this task (or these tasks) of :data:`TASKS`; all of them by default.
    """
    names = set(_MODELS)
    tasks = _patterns(task)
    for t in tasks:
        if t not in TASKS:
            raise ValueError(f"Unknown task {t!r}; expected one of {', '.join(TASKS)}.")
    if tasks:
        names = {n for n in names if _MODEL_TASKS[n] in tasks}
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


def get_model_task(name: str) -> str:
    """The task (one of :data:`TASKS`) of the model registered under ``name``."""
    if name not in _MODEL_TASKS:
        raise _unknown_model(name)
    return _MODEL_TASKS[name]


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
