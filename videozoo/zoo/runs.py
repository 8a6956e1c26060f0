"""Checkpoints of training runs: a fine-tuned network that carries its own class names and recipe.

``references/video_classification/train.py`` writes ``checkpoint.pth`` as a dict holding the model's
``state_dict`` under ``"model"``, the registered ``"model_name"``, ``"num_classes"``, the class names
(``"categories"``), the weights it started from (``"recipe_weights"``), and the clip recipe and preset
it trained and evaluated with (``"recipe"``, ``"preset"``). Given as ``weights=`` (or ``--weights``),
such a file stands for a weights member of its own, :func:`run_member`: the starting member's meta and
preset with the run's categories, recipe and crop, and an adapter that takes ``"model"``. So
``videozoo classify --weights run/checkpoint.pth`` prints the run's class names, and a checkpoint of
another architecture is refused by name before anything is built.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from videozoo.errors import CheckpointError

__all__ = ["RUN_KEYS", "read_run", "run_member"]

#: What makes a file a training run's checkpoint.
RUN_KEYS = frozenset({"model", "model_name", "num_classes", "categories"})


def read_run(path: Path) -> dict[str, Any] | None:
    """The run's description in a training run's checkpoint (everything but the tensors), or ``None`` for
    any other file (including one that cannot be read: loading it reports why)."""
    if not path.is_file():
        return None
    stat = path.stat()
    return _read_run(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=16)
def _read_run(path: str, mtime_ns: int, size: int) -> dict[str, Any] | None:
    """:func:`read_run` of one version of a file (a task resolves its weights more than once)."""
    import zipfile

    from videozoo.zoo.safety import load_checkpoint

    try:  # torch.save's zip: its pickle names the keys, so most files are told apart without loading them
        with zipfile.ZipFile(path) as archive:
            pickles = [name for name in archive.namelist() if name.endswith("data.pkl")]
            header = archive.read(pickles[0]) if pickles else b""
    except (zipfile.BadZipFile, OSError):
        return None  # train.py writes zip files only
    if any(key.encode() not in header for key in RUN_KEYS):
        return None
    try:
        obj = load_checkpoint(path, mmap=True)  # the tensors stay on disk
    except (CheckpointError, OSError):
        return None
    if not isinstance(obj, dict) or not RUN_KEYS <= set(obj) or not isinstance(obj["categories"], (list, tuple)):
        return None
    return {k: v for k, v in obj.items() if k not in ("model", "optimizer", "lr_scheduler", "scaler")}


def run_member(enum: Any, run: dict[str, Any], path: Path) -> Any:
    """A one-member weights enum for the run's file: ``enum``'s starting member with the run's classes,
    recipe and preset. ``enum`` must be the weights enum of the run's model."""
    from videozoo.zoo.registry import get_model_weights
    from videozoo.zoo.weights import Weights, WeightsEnum

    name = str(run["model_name"])
    try:
        own = get_model_weights(name)
    except ValueError:
        own = None
    if own is not enum:
        raise CheckpointError(
            f"{path}: a training checkpoint of {name}, not of the model {enum.__name__} belongs to; build {name} "
            f"with it (videozoo classify --model {name} --weights {path})."
        )
    start = run.get("recipe_weights")
    base = next((m for m in enum if str(m) == start), enum.DEFAULT)
    categories = [str(c) for c in run["categories"]]
    if len(categories) != int(run["num_classes"]):
        raise CheckpointError(f"{path}: the checkpoint names {len(categories)} classes for a head of {run['num_classes']}.")
    meta = {k: v for k, v in base.meta.items() if not k.startswith("_")}  # published figures belong to the base
    meta.update({"categories": categories, "fine_tuned_from": str(base)})
    meta.update(run.get("recipe") or {})
    if "multi_label" in run:
        meta["multi_label"] = bool(run["multi_label"])
    preset = base.transforms
    if run.get("preset"):
        preset = functools.partial(type(base.transforms()), **run["preset"])
    weights = Weights(url=path.resolve().as_uri(), transforms=preset, meta=meta, state_dict_adapter=_model_state, file_name=path.name)
    return WeightsEnum(f"{enum.__name__.removesuffix('_Weights')}_Run_Weights", {"FILE": weights}).FILE


def _model_state(checkpoint: Any) -> dict[str, Any]:
    return checkpoint["model"]
