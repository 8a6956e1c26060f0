"""The one loading path: a checkpoint file into a model, strictly, and the builder every family uses.

:func:`load_weights` is the one way a checkpoint reaches a model: builders, the tasks, the command
line and the training references all go through it, so every file, downloaded or local, passes the
weights' adapter and the same strict checks, and its errors name the file. :func:`build_model` is what
every builder returns: the network built for its weights (``num_classes`` and ``meta["model_args"]``
pinned), its parameters on the meta device until the file fills them.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import torch
from torch import nn

from videozoo.errors import CheckpointError
from videozoo.zoo.safety import load_checkpoint
from videozoo.zoo.weights import WeightsEnum

__all__ = ["load_weights", "build_model"]

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
    from videozoo.zoo import store  # requests, tqdm and filelock load with the first checkpoint

    if path is None:
        file = store.download_first(weights.sources, progress=progress, check_hash=check_hash, gated=weights.gated)
        remedy = f"Delete {file} and run again to download it anew."
    else:
        file = Path(path).expanduser()
        if file.is_dir():
            inside = sorted(p.name for p in file.iterdir() if p.suffix in (".pth", ".pt", ".pyth", ".ckpt", ".bin", ".safetensors"))
            which = f"one of the checkpoint files in it ({', '.join(inside[:5])})" if inside else "a checkpoint file (it holds none)"
            raise CheckpointError(f"{file}: is a folder; give {which}.")
        if not file.is_file():
            raise CheckpointError(f"{file}: no such checkpoint file.")
        remedy = f"Use the file published at {weights.url}, unchanged."
    try:
        checkpoint = load_checkpoint(file, downloaded=path is None or store.in_store(file))
    except (PermissionError, IsADirectoryError) as e:
        raise CheckpointError(f"{file}: cannot read the checkpoint ({e.strerror or e}).") from None
    own = model.state_dict()
    try:
        state_dict: Mapping[str, Any] | None = weights.adapt_state_dict(checkpoint)
        problems = _mismatches(own, state_dict)
    except (ValueError, TypeError, KeyError) as e:
        state_dict, problems = None, f"not a checkpoint in the format {weights!r} is published in ({_first_line(e)})"
    if problems and path is not None:  # a user's file: maybe a state_dict saved from a videozoo model
        found = own_layout(checkpoint, own)
        if found is not None and (state_dict is None or found[1] is not None):
            state_dict, key = found
            problems = _mismatches(own, state_dict)
            if problems:
                where = f" (the weights under the key {key!r})" if key else ""
                raise CheckpointError(
                    f"{file}: a state_dict of {type(model).__name__}{where} that does not fit it as built for "
                    f"{weights!r}: {problems}. Build the model with the sizes it was saved with (num_classes, ...), "
                    f"or pass the checkpoint train.py wrote, which carries its class names and recipe."
                )
    if state_dict is None:
        raise CheckpointError(f"{file}: {problems}. {remedy}")
    if problems:
        raise CheckpointError(
            f"{file}: the checkpoint does not fit {type(model).__name__} as built for {weights!r}: {problems}. "
            f"The file may be of another model or a different release. {remedy}{_namesakes(weights, file)}"
        )
    _fill(model, state_dict)
    return model



#: Keys under which training scripts keep a model's state_dict (train.py, Lightning, PySlowFast, ...).
_WRAPPER_KEYS = ("model", "state_dict", "model_state", "module")


def own_layout(checkpoint: Any, own: Mapping[str, torch.Tensor]) -> tuple[dict[str, Any], str | None] | None:
    """A state_dict in the model's own key names in ``checkpoint``: the file itself or under a wrapper key
    (DDP's ``module.`` prefix removed), with the key it sits under; ``None`` if the names do not match."""
    if not isinstance(checkpoint, Mapping):
        return None
    candidates = [(checkpoint, None)]
    candidates += [(checkpoint[k], k) for k in _WRAPPER_KEYS if isinstance(checkpoint.get(k), Mapping)]
    for state, key in candidates:
        names = list(state)
        if names and all(isinstance(n, str) and n.startswith("module.") for n in names):
            state = {n[len("module."):]: v for n, v in state.items()}
        if set(state) == set(own):
            return dict(state), key
    return None


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
    return text.splitlines()[0] if text else type(error).__name__



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
    pinned = {"num_classes": len(member.categories), **member.meta.get("model_args", {})}
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
    :func:`_fill` gives the parameters the file's tensors (or storage with the strides they were built with).
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



def _fill(model: nn.Module, state_dict: Mapping[str, Any]) -> None:
    """Load ``state_dict`` (known to fit) into ``model``. A parameter still on the meta device (a builder's
    network) takes the file's tensor itself where its dtype, device and strides are the parameter's, so the
    weights are never twice in memory (a 1 B-parameter network: 4 GB, not 8); otherwise, and for tensors
    that already have storage, the values are copied (e.g. a bf16 file into float32 parameters, a
    channels-last 1x1x1 filter: ``empty_strided`` keeps the strides the network was built with)."""
    device = torch.get_default_device()
    own = model.state_dict(keep_vars=True)
    fitted: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for key, value in state_dict.items():
            target = own[key]
            value = torch.as_tensor(value).detach()
            if target.device.type != "meta":
                fitted[key] = target.copy_(value)
            elif value.dtype == target.dtype and value.device == device and value.stride() == target.stride():
                fitted[key] = value
            else:
                fitted[key] = torch.empty_strided(target.shape, target.stride(), dtype=target.dtype, device=device).copy_(value)
    model.load_state_dict(fitted, strict=True, assign=True)
