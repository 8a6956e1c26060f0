"""Engines: the same network run by PyTorch, ONNX Runtime or OpenVINO, behind one switch.

:func:`accelerate` returns an :class:`Engine`: a callable with the model's ``forward`` contract (a clip
batch ``(B, 3, T, H, W)`` in, logits out; the batch is free, the clip shape is the one it was built
for) that also gives the clip embedding of the same pass (:meth:`Engine.run`). ``"torch"`` is the eager
model itself (under bf16 autocast for ``dtype="bf16"``); ``"onnxruntime"`` and ``"openvino"`` run the
graph that ``videozoo export`` writes (the eager model and its embedding head as one ONNX graph with
two outputs, ``logits`` and ``embedding``). ``"auto"`` builds each installed engine, times it on this
machine at the clip shape (a few runs after a warm-up) and keeps the fastest; :attr:`Engine.report`
says what it measured.

Every graph is checked against eager on random clips when it is built, within :data:`TOLERANCE` of
the largest logit for its dtype; one that differs more is never cached nor used (an explicit engine
raises :class:`~videozoo.errors.ExportError`, ``auto`` leaves it out). Graphs are cached in
``$VIDEOZOO_HOME/engines/<key>/`` (beside the checkpoints), keyed by the model's name, a digest of its
weights, the clip shape and the versions of videozoo, torch and the exporter; a run reuses the graph
and its checks (per engine, engine version and dtype) and rebuilds a damaged or stale entry. Two
processes building the same entry serialise on a file lock, and the entry appears only complete
(written to a temporary folder, then renamed).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from videozoo.errors import ExportError
from videozoo.tasks.runner import WeightsArg, check_dtype, resolve_weights
from videozoo.zoo import WeightsEnum, get_model

__all__ = ["ENGINES", "TOLERANCE", "Engine", "accelerate", "engines_dir", "installed", "runs"]

ENGINES = ("torch", "onnxruntime", "openvino")
#: Largest accepted ``|engine - eager fp32|``, relative to ``max(1, largest |logit|)``, per dtype.
TOLERANCE = {"fp32": 1e-4, "bf16": 5e-2}
_EXTRAS = {"onnxruntime": "videozoo[onnx]", "openvino": "videozoo[openvino]"}
GRAPH = "model.onnx"
CHECKS = "checks.json"


@dataclass
class Engine:
    """A network ready to run on one engine: ``engine(clips)`` is the logits, ``engine.run(clips)`` the logits
    and the clip embeddings, float32 on CPU.

    ``report`` says how it was chosen (``auto``: each engine's median time at the clip shape).
    """

    name: str
    dtype: str
    clip_shape: tuple[int, int, int]
    max_abs_diff: float  # against eager fp32 on random clips, when built (0 for torch fp32)
    run: Callable[[Tensor], tuple[Tensor, Tensor]] = field(repr=False)
    report: str = ""

    def __call__(self, clips: Tensor) -> Tensor:
        return self.run(clips)[0]

    def embed(self, clips: Tensor) -> Tensor:
        return self.run(clips)[1]


class _LogitsAndEmbedding(nn.Module):
    """The model's forward pass with both of its results: what the exported graph computes."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        features = self.model.forward_features(x)
        return self.model.forward_head(features), self.model.forward_head(features, pre_logits=True)


def engines_dir() -> Path:
    """Where built engines are cached: ``engines/`` beside the checkpoint store's ``checkpoints/``."""
    from videozoo.zoo import store

    return store.get_dir().parent / "engines"


def accelerate(
    model: str | nn.Module,
    weights: WeightsArg = "DEFAULT",
    *,
    engine: str = "auto",
    dtype: str = "fp32",
    clip_shape: tuple[int, int, int] | None = None,
    progress: bool = True,
) -> Engine:
    """The model on the engine asked for (or the fastest one installed), checked against eager.

    Args:
        model: a registered name (built with ``weights``), or a module in eval mode (``weights`` then
            names the member it holds, for its clip shape; ``None`` with an explicit ``clip_shape``).
        engine: ``"auto"``, ``"torch"``, ``"onnxruntime"`` or ``"openvino"``.
        dtype: ``"fp32"`` or ``"bf16"`` (torch: autocast; OpenVINO: its bf16 inference precision;
            ONNX Runtime runs fp32 only).
        clip_shape: ``(T, H, W)`` of the clips it will run; default the weights' evaluation clip.
        progress: show a progress bar while downloading the weights.

    Raises ``ValueError`` for an unknown engine or dtype, or a dtype the engine cannot run;
    ``ImportError`` naming the extra to install for an engine that is not installed;
    :class:`~videozoo.errors.ExportError` when the graph cannot be built or differs from eager.
    """
    check_dtype(dtype)
    if engine not in (*ENGINES, "auto"):
        raise ValueError(f"engine must be 'auto' or one of {', '.join(ENGINES)}; got {engine!r}.")
    name, net, member = _model(model, weights, progress)
    if clip_shape is None:
        if member is None:
            raise ValueError("With a model object and no weights member, pass clip_shape=(T, H, W).")
        from videozoo.tasks.export import published_clip

        clip_shape = published_clip(member)
    clip_shape = tuple(int(v) for v in clip_shape)  # type: ignore[assignment]
    if engine != "auto":
        return _build(engine, dtype, name, net, clip_shape)
    return _fastest(dtype, name, net, clip_shape)


def _model(model: str | nn.Module, weights: WeightsArg, progress: bool) -> tuple[str, nn.Module, WeightsEnum | None]:
    if isinstance(model, nn.Module):
        member = weights if isinstance(weights, WeightsEnum) else None
        return type(model).__name__, model.eval(), member
    member, _ = resolve_weights(model, weights)
    return model, get_model(model, weights=weights, progress=progress).eval(), member


def installed(engine: str) -> bool:
    """Whether ``engine``'s package can be imported (torch always can)."""
    import importlib.util

    return engine == "torch" or importlib.util.find_spec(engine) is not None


def _fastest(dtype: str, name: str, net: nn.Module, clip_shape: tuple[int, int, int]) -> Engine:
    """Every installed engine that runs ``dtype`` and matches eager, timed at the clip shape; the fastest."""
    x = torch.randn(1, 3, *clip_shape, generator=torch.Generator().manual_seed(1))
    timed: list[tuple[float, Engine]] = []
    skipped = []
    for candidate in ENGINES:
        if not installed(candidate):
            skipped.append(f"{candidate} not installed (pip install '{_EXTRAS[candidate]}')")
            continue
        if not runs(candidate, dtype):
            skipped.append(f"{candidate} has no {dtype}")
            continue
        try:
            built = _build(candidate, dtype, name, net, clip_shape)
        except ExportError as e:
            skipped.append(f"{candidate} left out ({str(e).splitlines()[0]})")
            continue
        timed.append((_median_time(built, x), built))
    best_time, best = min(timed, key=lambda pair: pair[0])
    measured = ", ".join(f"{e.name} {t * 1e3:.0f} ms" for t, e in sorted(timed, key=lambda pair: pair[0]))
    best.report = f"auto: {best.name} ({measured} per clip of {clip_shape} in {dtype})" + (
        f"; {'; '.join(skipped)}" if skipped else ""
    )
    return best


def _median_time(engine: Engine, x: Tensor, repeats: int = 3) -> float:
    engine.run(x)  # warm-up: first-run allocations and kernel selection
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        engine.run(x)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def runs(engine: str, dtype: str) -> bool:
    """Whether ``engine`` (installed) runs ``dtype`` on this machine."""
    if dtype == "fp32" or engine == "torch":
        return True
    if engine == "openvino":
        import openvino

        return "BF16" in openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    return False  # ONNX Runtime's CPU provider runs fp32


def _build(engine: str, dtype: str, name: str, net: nn.Module, clip_shape: tuple[int, int, int]) -> Engine:
    if not installed(engine):
        raise ImportError(f"engine {engine!r} is not installed: pip install '{_EXTRAS[engine]}'.")
    if not runs(engine, dtype):
        why = "ONNX Runtime's CPU provider runs fp32 only" if engine == "onnxruntime" else "this CPU has no bf16 (OPTIMIZATION_CAPABILITIES)"
        raise ValueError(f"engine {engine!r} cannot run {dtype}: {why}. Use dtype='fp32', or engine='torch' for bf16 autocast.")
    if not (hasattr(net, "forward_features") and hasattr(net, "forward_head")):
        raise ValueError(f"{type(net).__name__} has no forward_features/forward_head; engines need videozoo's model contract.")
    if engine == "torch":
        run = _torch_runner(net, dtype)
        diff = _check(net, run, clip_shape)[0] if dtype != "fp32" else 0.0  # eager fp32 is the reference itself
        return Engine("torch", dtype, clip_shape, diff, run)
    entry = _entry(name, net, clip_shape)
    return _cached(entry, engine, dtype, net, clip_shape)


def _torch_runner(net: nn.Module, dtype: str) -> Callable[[Tensor], tuple[Tensor, Tensor]]:
    both = _LogitsAndEmbedding(net)

    @torch.inference_mode()
    def run(clips: Tensor) -> tuple[Tensor, Tensor]:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16"):
            logits, embedding = both(clips)
        return logits.float(), embedding.float()

    return run


# ----------------------------------------------------------------------------------------------------
# The cache


def _entry(name: str, net: nn.Module, clip_shape: tuple[int, int, int]) -> Path:
    """The cache folder of this network (its name, a digest of its tensors) at this clip shape."""
    import onnx

    import videozoo

    digest = hashlib.sha256()
    for key, tensor in sorted(net.state_dict().items()):
        digest.update(key.encode())
        digest.update(tensor.detach().contiguous().cpu().numpy().tobytes())
    key = json.dumps(
        {"model": name, "weights": digest.hexdigest(), "clip": list(clip_shape), "videozoo": videozoo.__version__,
         "torch": torch.__version__, "onnx": onnx.__version__},  # fmt: skip
        sort_keys=True,
    )
    return engines_dir() / f"{name}-{'x'.join(map(str, clip_shape))}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def _cached(entry: Path, engine: str, dtype: str, net: nn.Module, clip_shape: tuple[int, int, int]) -> Engine:
    """The engine from the cache entry, built (graph exported, engine checked) where it is missing or stale."""
    from filelock import FileLock

    entry.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(entry) + ".lock"):
        if not (entry / GRAPH).is_file():
            _export_entry(entry, net, clip_shape)
        checks = _read_checks(entry)
        version = _version(engine)
        check = checks.get(f"{engine} {version} {dtype}")
        try:
            run = _load(engine, entry / GRAPH, dtype)
        except Exception:  # a damaged graph: build the entry again
            shutil.rmtree(entry, ignore_errors=True)
            _export_entry(entry, net, clip_shape)
            checks, check = {}, None
            run = _load(engine, entry / GRAPH, dtype)
        if check is None:
            diff, scale = _check(net, run, clip_shape)
            if diff > TOLERANCE[dtype] * max(1.0, scale):
                raise ExportError(
                    f"{engine} ({dtype}) differs from eager by up to {diff:.3g} (largest logit {scale:.3g}, tolerance "
                    f"{TOLERANCE[dtype]:g} relative to it); it is not used. Use engine='torch'."
                )
            check = {"max_abs_diff": diff, "max_abs_logit": scale}
            checks[f"{engine} {version} {dtype}"] = check
            _write_checks(entry, checks)
    return Engine(engine, dtype, clip_shape, float(check["max_abs_diff"]), run)


def _export_entry(entry: Path, net: nn.Module, clip_shape: tuple[int, int, int]) -> None:
    from videozoo.tasks.export import export_onnx

    x = torch.randn(2, 3, *clip_shape, generator=torch.Generator().manual_seed(0))
    with tempfile.TemporaryDirectory(dir=entry.parent, prefix=f".{entry.name}.") as tmp:
        export_onnx(_LogitsAndEmbedding(net).eval(), x, Path(tmp) / GRAPH, dynamic_batch=True, output_names=("logits", "embedding"))
        (Path(tmp) / CHECKS).write_text("{}\n")
        shutil.rmtree(entry, ignore_errors=True)
        os.replace(tmp, entry)


def _read_checks(entry: Path) -> dict[str, Any]:
    try:
        return json.loads((entry / CHECKS).read_text())
    except (OSError, ValueError):
        return {}


def _write_checks(entry: Path, checks: dict[str, Any]) -> None:
    tmp = entry / f".{CHECKS}.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(checks, indent=1) + "\n")
    os.replace(tmp, entry / CHECKS)


def _version(engine: str) -> str:
    module = __import__(engine)
    return str(module.__version__)


def _check(net: nn.Module, run: Callable[[Tensor], tuple[Tensor, Tensor]], clip_shape: tuple[int, int, int]) -> tuple[float, float]:
    """The largest ``|engine - eager|`` over the logits and embeddings of random clips at batch 1 and 2,
    and the largest eager logit."""
    generator = torch.Generator().manual_seed(2)
    both = _LogitsAndEmbedding(net)
    diff = scale = 0.0
    with torch.inference_mode():
        for batch in (1, 2):
            x = torch.randn(batch, 3, *clip_shape, generator=generator)
            expected = [t.float() for t in both(x)]
            got = run(x)
            for e, g in zip(expected, got):
                if e.shape != g.shape:
                    raise ExportError(f"the engine returned shape {list(g.shape)}, eager {list(e.shape)}.")
                diff = max(diff, (g - e).abs().max().item())
            scale = max(scale, expected[0].abs().max().item())
    return diff, scale


def _load(engine: str, graph: Path, dtype: str) -> Callable[[Tensor], tuple[Tensor, Tensor]]:
    threads = torch.get_num_threads()
    if engine == "onnxruntime":
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        session = onnxruntime.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])

        def run(clips: Tensor) -> tuple[Tensor, Tensor]:
            logits, embedding = session.run(["logits", "embedding"], {"video": clips.float().contiguous().numpy()})
            return torch.from_numpy(logits), torch.from_numpy(embedding)

        return run
    import openvino

    core = openvino.Core()
    config = {"INFERENCE_PRECISION_HINT": "bf16" if dtype == "bf16" else "f32", "INFERENCE_NUM_THREADS": threads}
    compiled = core.compile_model(str(graph), "CPU", config)
    request = compiled.create_infer_request()

    def run_ov(clips: Tensor) -> tuple[Tensor, Tensor]:
        out = request.infer({"video": clips.float().contiguous().numpy()})
        return torch.from_numpy(out["logits"].copy()), torch.from_numpy(out["embedding"].copy())

    return run_ov

