"""Engines: the same network run by PyTorch, ONNX Runtime or OpenVINO, behind one switch.

:func:`accelerate` returns an :class:`Engine`: a callable with the model's ``forward`` contract (a clip
batch ``(B, 3, T, H, W)`` in, logits out; the batch is free, the clip shape is the one it was built
for) that also gives the clip embedding of the same pass (:meth:`Engine.run`). ``"torch"`` is the eager
model itself (a copy with bfloat16 parameters for ``dtype="bf16"``); ``"compile"`` is the same model through
``torch.compile`` (Inductor: fused kernels, compiled in each process on first use); ``"onnxruntime"``
and ``"openvino"`` run the graph that ``videozoo export`` writes (the eager model and its embedding head
as one ONNX graph with two outputs, ``logits`` and ``embedding``). ``"auto"`` builds each installed
engine, times them on this machine at the clip shape (interleaved rounds after a warm-up) and keeps the fastest;
the first batch of more than one clip is timed again on every engine, and its fastest runs such batches.
:attr:`Engine.report` says what it measured. The choices are remembered (``engines/auto/``, keyed like the
graphs and by the thread count and every engine's version), so later runs build only the chosen engines.

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

import contextlib
import ctypes
import functools
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from videozoo.errors import ExportError
from videozoo.tasks.runner import DTYPES, WeightsArg, bf16_native, check_dtype, resolve_weights, to_bf16
from videozoo.zoo import WeightsEnum, get_model

__all__ = ["ENGINES", "TOLERANCE", "Engine", "accelerate", "calibration_clips", "engines_dir", "fold_constants", "installed", "openvino_core", "quantize_onnx", "runs"]

ENGINES = ("torch", "compile", "onnxruntime", "openvino")
ENGINE_DTYPES = (*DTYPES, "int8")
#: Largest accepted ``|engine - eager fp32|``, relative to ``max(1, largest |logit|)``, per dtype
#: (int8 is checked on its calibration clips: random clips are not what it was calibrated for).
TOLERANCE = {"fp32": 1e-4, "bf16": 5e-2, "int8": 0.25}
MAX_CALIBRATION = 64
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
    calibration: Tensor | Sequence[str | os.PathLike[str]] | None = None,
    progress: bool = True,
) -> Engine:
    """The model on the engine asked for (or the fastest one installed), checked against eager.

    Args:
        model: a registered name (built with ``weights``), or a module in eval mode (``weights`` then
            names the member it holds, for its clip shape; ``None`` with an explicit ``clip_shape``).
        engine: ``"auto"``, ``"torch"``, ``"onnxruntime"`` or ``"openvino"``.
        dtype: ``"fp32"``, ``"bf16"`` (torch and compile: a copy of the model with bfloat16 parameters, where
            the CPU has AVX512-BF16 or AMX; OpenVINO: its bf16 inference precision; ONNX
            Runtime runs fp32 only) or ``"int8"`` (post-training quantization by the engine's own tool:
            NNCF for OpenVINO, ``onnxruntime.quantization`` for ONNX Runtime; needs ``calibration``).
        clip_shape: ``(T, H, W)`` of the clips it will run; default the weights' evaluation clip.
        calibration: for int8, clips ``(N, 3, T, H, W)`` as the model takes them, or video files whose
            evaluation views (the weights' recipe and preset) are used; at most 64 clips are used, and
            the int8 graph is checked on them.
        progress: show a progress bar while downloading the weights.

    Raises ``ValueError`` for an unknown engine or dtype, or a dtype the engine cannot run;
    ``ImportError`` naming the extra to install for an engine that is not installed;
    :class:`~videozoo.errors.ExportError` when the graph cannot be built or differs from eager.
    """
    check_dtype(dtype, ENGINE_DTYPES)
    if engine not in (*ENGINES, "auto"):
        raise ValueError(f"engine must be 'auto' or one of {', '.join(ENGINES)}; got {engine!r}.")
    name, net, member = _model(model, weights, progress)
    if clip_shape is None:
        if member is None:
            raise ValueError("With a model object and no weights member, pass clip_shape=(T, H, W).")
        from videozoo.tasks.export import published_clip

        clip_shape = published_clip(member)
    clip_shape = tuple(int(v) for v in clip_shape)  # type: ignore[assignment]
    clips = calibration_clips(calibration, member, clip_shape) if dtype == "int8" else None
    key = _Key(name, net, clip_shape)
    if engine != "auto":
        return _build(engine, dtype, key, clips)
    return _remembered(dtype, key, clips) or _fastest(dtype, key, clips)


def calibration_clips(calibration: Any, member: WeightsEnum | None, clip_shape: tuple[int, int, int]) -> Tensor:
    """int8's calibration clips ``(N, 3, T, H, W)``, at most :data:`MAX_CALIBRATION`: from video files, each
    video's evaluation views (the weights' recipe and preset), an equal share of them from every video
    (evenly spaced over its views), or from as many videos as clips, spread over the list."""
    if calibration is None:
        raise ValueError(
            "dtype='int8' needs calibration clips from your own videos: pass calibration=[video files] (or a "
            "(N, 3, T, H, W) tensor of clips prepared as the model takes them)."
        )
    if isinstance(calibration, Tensor):
        clips = calibration.float()
    else:
        if member is None:
            raise ValueError("Calibration from video files needs the weights member (its recipe and preset).")
        from videozoo.video.views import clip_views

        videos = list(calibration)
        if not videos:
            raise ValueError("calibration lists no videos.")
        # Every video's share, spread over its views (time and crops): a list in order (a class per
        # folder, say) calibrates on all of it, not on its first few videos.
        if len(videos) > MAX_CALIBRATION:
            videos = [videos[i * len(videos) // MAX_CALIBRATION] for i in range(MAX_CALIBRATION)]
        transform, found = member.transforms(), []
        for i, video in enumerate(videos):
            views = clip_views(video, member.recipe, transform)
            share = min(len(views), MAX_CALIBRATION // len(videos) + (i < MAX_CALIBRATION % len(videos)))
            found.extend(views[torch.linspace(0, len(views) - 1, share).round().long()].unbind(0))
        clips = torch.stack(found)
    if clips.dim() != 5 or tuple(clips.shape[1:]) != (3, *clip_shape):
        raise ValueError(f"calibration clips must be (N, 3, {', '.join(map(str, clip_shape))}); got {list(clips.shape)}.")
    return clips[:MAX_CALIBRATION]


def _model(model: str | nn.Module, weights: WeightsArg, progress: bool) -> tuple[str, nn.Module, WeightsEnum | None]:
    if isinstance(model, nn.Module):
        member = weights if isinstance(weights, WeightsEnum) else None
        return type(model).__name__, model.eval(), member
    member, _ = resolve_weights(model, weights)
    return model, get_model(model, weights=weights, progress=progress).eval(), member


def installed(engine: str) -> bool:
    """Whether ``engine``'s package can be imported (torch, and so ``compile``, always can)."""
    import importlib.util

    return engine in ("torch", "compile") or importlib.util.find_spec(engine) is not None


class _Key:
    """What identifies a network for the caches: its name, a digest of its tensors (computed once, when
    first asked for) and the clip shape."""

    def __init__(self, name: str, net: nn.Module, clip_shape: tuple[int, int, int]) -> None:
        self.name, self.net, self.clip_shape = name, net, clip_shape
        self._digest: str | None = None

    @property
    def digest(self) -> str:
        if self._digest is None:
            digest = hashlib.sha256()
            for key, tensor in sorted(self.net.state_dict().items()):
                digest.update(key.encode())
                digest.update(tensor.detach().contiguous().cpu().numpy().tobytes())
            self._digest = digest.hexdigest()
        return self._digest

    def folder(self, **versions: str) -> str:
        """``<name>-<T>x<H>x<W>-<hash of the digest, the clip shape and versions>``."""
        import videozoo

        fields = {"model": self.name, "weights": self.digest, "clip": list(self.clip_shape)}
        key = json.dumps({**fields, "videozoo": videozoo.__version__, "torch": torch.__version__, **versions}, sort_keys=True)
        return f"{self.name}-{'x'.join(map(str, self.clip_shape))}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def _candidates(dtype: str, key: _Key, clips: Tensor | None, built: dict[str, Engine]) -> list[str]:
    """Build every installed engine that runs ``dtype`` and matches eager into ``built`` (those already
    there are kept); returns why each other engine was left out."""
    skipped = []
    for candidate in ENGINES:
        if candidate in built:
            continue
        if not installed(candidate):
            skipped.append(f"{candidate} not installed (pip install '{_EXTRAS[candidate]}')")
            continue
        if not runs(candidate, dtype):
            skipped.append(f"{candidate} has no {dtype}")
            continue
        try:
            built[candidate] = _build(candidate, dtype, key, clips)
        except ExportError as e:
            skipped.append(f"{candidate} left out ({str(e).splitlines()[0]})")
    if not built:
        raise ValueError(f"no installed engine runs {dtype} here: {'; '.join(skipped)}.")
    return skipped


def _measure(built: dict[str, Engine], x: Tensor) -> tuple[str, str]:
    """The engine of ``built`` fastest on ``x`` (timed together), and the times measured."""
    engines = list(built.values())
    timed = sorted(zip(_interleaved_times(engines, x), engines), key=lambda pair: pair[0])
    return timed[0][1].name, ", ".join(f"{e.name} {t * 1e3:.0f} ms" for t, e in timed)


def _fastest(dtype: str, key: _Key, clips: Tensor | None) -> Engine:
    """Every installed engine that runs ``dtype`` and matches eager, timed at the clip shape; the fastest
    (remembered for the next run)."""
    x = torch.randn(1, 3, *key.clip_shape, generator=torch.Generator().manual_seed(1))
    built: dict[str, Engine] = {}
    skipped = _candidates(dtype, key, clips, built)
    name, measured = _measure(built, x)
    report = f"auto: {name} ({measured} per clip of {key.clip_shape} in {dtype})" + (f"; {'; '.join(skipped)}" if skipped else "")
    _remember(dtype, key, clips, {"engine": name, "report": report})
    return _auto_engine(built[name], report, dtype, key, clips, built, None)


def _auto_engine(
    first: Engine, report: str, dtype: str, key: _Key, clips: Tensor | None, built: dict[str, Engine], batched: str | None
) -> Engine:
    """``auto``'s engine: ``first`` (the fastest at batch 1) runs single clips; batches of more clips run on
    the engine fastest at the first such batch, measured then (every engine built and timed once more at
    that batch size) unless ``batched`` names it from an earlier run, and remembered.

    Batch size changes the ranking: efficient_x3d_s ran fastest on OpenVINO at batch 1 (41 ms against eager's
    57) and on eager at batch 8 (361 ms against 478), on the development machine. One choice serves every
    batch size above 1, so a last, shorter batch does not start a measurement of its own.
    """
    chosen = {"batched": batched}

    def run(x: Tensor) -> tuple[Tensor, Tensor]:
        if x.shape[0] <= 1:
            return first.run(x)
        name = chosen["batched"]
        if name is not None and name not in built:
            try:  # remembered from an earlier run: build only that one
                built[name] = _build(name, dtype, key, clips)
            except (ExportError, ImportError, ValueError):
                name = None
        if name is None:
            skipped = _candidates(dtype, key, clips, built)
            probe = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
            name, measured = _measure(built, probe)
            auto.report += f"; batches of {x.shape[0]} and more: {name} ({measured} per batch)" + (
                f"; {'; '.join(skipped)}" if skipped else ""
            )
            _remember(dtype, key, clips, {"batched": name})
            for unused in [n for n in built if n not in (first.name, name)]:
                del built[unused]  # measured and not chosen: their graphs and weights need not stay in memory
        chosen["batched"] = name
        return built[name].run(x)

    auto = Engine(first.name, dtype, key.clip_shape, first.max_abs_diff, run, report)
    return auto


def _choice_file(dtype: str, key: _Key, clips: Tensor | None) -> Path:
    """Where auto's choice for this network, dtype and machine setting is kept: keyed by the thread count
    and the versions of the engines installed now (a new or removed engine measures again)."""
    versions = {engine: _version(engine) for engine in ENGINES if engine not in ("torch", "compile") and installed(engine)}
    calibration = "" if clips is None else hashlib.sha256(clips.numpy().tobytes()).hexdigest()[:16]
    folder = key.folder(dtype=dtype, threads=str(torch.get_num_threads()), calibration=calibration, **versions)
    return engines_dir() / "auto" / f"{folder}.json"


def _remember(dtype: str, key: _Key, clips: Tensor | None, fields: dict[str, str]) -> None:
    """Write ``fields`` into auto's choice file: a new batch-1 choice (``engine``, ``report``) starts the file
    again, a choice for larger batches (``batched``) is added to it."""
    path = _choice_file(dtype, key, clips)
    path.parent.mkdir(parents=True, exist_ok=True)
    choice: dict[str, str] = {}
    if "engine" not in fields:
        try:
            choice = dict(json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return  # nothing to add to: the next run measures again
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps({**choice, **fields}) + "\n")
    os.replace(tmp, path)


def _remembered(dtype: str, key: _Key, clips: Tensor | None) -> Engine | None:
    """The engine auto chose before for this network and setting, built (and checked) again; ``None`` when
    there is no choice yet, or it cannot be read or built (then auto measures again)."""
    path = _choice_file(dtype, key, clips)
    try:
        choice = json.loads(path.read_text())
        engine, report = choice["engine"], choice["report"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if engine not in ENGINES or not installed(engine):
        return None
    try:
        built = _build(engine, dtype, key, clips)
    except (ExportError, ImportError, ValueError):
        return None
    batched = choice.get("batched")
    batched = batched if batched in ENGINES and installed(batched) else None
    report = f"{report}; remembered from an earlier run ({path})"
    if batched is not None:
        report += f"; batches of more than one clip: {batched}, remembered"
    return _auto_engine(built, report, dtype, key, clips, {engine: built}, batched)


def _interleaved_times(engines: list[Engine], x: Tensor, budget: float = 2.0, pause: float = 0.05) -> list[float]:
    """Median seconds per call of each engine on ``x``: a warm-up call of each, then rounds of one call of
    each, as many as fit in ``budget`` seconds (3 to 15), ``pause`` seconds before each call.

    Timed together after every build, not each right after its own: a build (compile's above all) leaves
    the machine busy for a while, and ONNX Runtime's threads spin on after a run, slowing whatever runs
    next; interleaving spreads such effects over all engines alike. Timed one after another with three
    calls each, auto chose eager (59 ms) over OpenVINO (47 ms) for efficient_x3d_s on the 2-core
    development machine.
    """
    per_round = 0.0
    for engine in engines:
        start = time.perf_counter()
        engine.run(x)  # warm-up: first-run allocations and kernel selection
        per_round += time.perf_counter() - start + pause
    times: list[list[float]] = [[] for _ in engines]
    for _ in range(max(3, min(15, int(budget / per_round)))):
        for engine, spent in zip(engines, times):
            time.sleep(pause)
            start = time.perf_counter()
            engine.run(x)
            spent.append(time.perf_counter() - start)
    return [sorted(spent)[len(spent) // 2] for spent in times]


def runs(engine: str, dtype: str) -> bool:
    """Whether ``engine`` (installed) runs ``dtype`` on this machine."""
    if dtype == "fp32":
        return True
    if dtype == "int8":
        return engine not in ("torch", "compile")  # int8 is the engines' quantizers' work
    if engine in ("torch", "compile"):
        return bf16_native(torch.device("cpu"))
    if engine == "openvino":
        return "BF16" in openvino_core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    return False  # ONNX Runtime's CPU provider runs fp32


def _build(engine: str, dtype: str, key: _Key, clips: Tensor | None = None) -> Engine:
    net, clip_shape = key.net, key.clip_shape
    if not installed(engine):
        raise ImportError(f"engine {engine!r} is not installed: pip install '{_EXTRAS[engine]}'.")
    if not runs(engine, dtype):
        why = {
            "torch": "int8 is quantized by the ONNX Runtime and OpenVINO engines" if dtype == "int8" else _NO_BF16,
            "compile": "int8 is quantized by the ONNX Runtime and OpenVINO engines" if dtype == "int8" else _NO_BF16,
            "onnxruntime": "ONNX Runtime's CPU provider runs fp32 and int8",
            "openvino": "this CPU has no bf16 (OPTIMIZATION_CAPABILITIES)",
        }[engine]
        raise ValueError(f"engine {engine!r} cannot run {dtype}: {why}. Use another dtype or engine.")
    if not (hasattr(net, "forward_features") and hasattr(net, "forward_head")):
        raise ValueError(f"{type(net).__name__} has no forward_features/forward_head; engines need videozoo's model contract.")
    if engine == "torch":
        run = _torch_runner(net, dtype)
        diff = _check(net, run, clip_shape)[0] if dtype != "fp32" else 0.0  # eager fp32 is the reference itself
        return Engine("torch", dtype, clip_shape, diff, run)
    if engine == "compile":
        return _compiled(net, dtype, clip_shape)
    return _cached(_entry(key), engine, dtype, net, clip_shape, clips)


_NO_BF16 = "this CPU has neither AVX512-BF16 nor AMX (bf16 would be emulated, slower than fp32)"


def _torch_runner(net: nn.Module, dtype: str, compiled: bool = False) -> Callable[[Tensor], tuple[Tensor, Tensor]]:
    """Eager (or compiled) logits and embedding; bf16 runs a copy of ``net`` with bfloat16 parameters."""
    precision = torch.bfloat16 if dtype == "bf16" else torch.float32
    both: Callable[[Tensor], tuple[Tensor, Tensor]] = _LogitsAndEmbedding(to_bf16(net, copy_first=True) if dtype == "bf16" else net)
    if compiled:
        both = torch.compile(both)

    @torch.inference_mode()
    def run(clips: Tensor) -> tuple[Tensor, Tensor]:
        logits, embedding = both(clips.to(precision))
        return logits.float(), embedding.float()

    return run


def _compiled(net: nn.Module, dtype: str, clip_shape: tuple[int, int, int]) -> Engine:
    """``torch.compile`` of the model, compiled now (at batch 1 and 2, so the batch is dynamic) and checked
    against eager; a compiler failure (no C++ compiler, an unsupported operator) is an ``ExportError``."""
    run = _torch_runner(net, dtype, compiled=True)
    try:
        diff, scale = _check(net, run, clip_shape)
    except Exception as e:  # Inductor's errors are long; the first line says what failed
        raise ExportError(f"torch.compile failed: {type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}") from e
    if diff > TOLERANCE[dtype] * max(1.0, scale):
        raise ExportError(
            f"compile ({dtype}) differs from eager by up to {diff:.3g} (largest logit {scale:.3g}, tolerance "
            f"{TOLERANCE[dtype]:g} relative to it); it is not used. Use engine='torch'."
        )
    return Engine("compile", dtype, clip_shape, diff, run)


# ----------------------------------------------------------------------------------------------------
# The cache


def _entry(key: _Key) -> Path:
    """The cache folder of this network (its name, a digest of its tensors) at this clip shape."""
    import onnx

    return engines_dir() / key.folder(onnx=onnx.__version__)


def _cached(entry: Path, engine: str, dtype: str, net: nn.Module, clip_shape: tuple[int, int, int], clips: Tensor | None) -> Engine:
    """The engine from the cache entry, built (graph exported, quantized, engine checked) where it is missing or stale."""
    from filelock import FileLock

    entry.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(entry) + ".lock"):
        if not (entry / GRAPH).is_file():
            _export_entry(entry, net, clip_shape)
        calibration = "" if clips is None else hashlib.sha256(clips.numpy().tobytes()).hexdigest()[:16]
        key = f"{engine} {_version(engine)} {dtype}" + (f" {calibration}" if calibration else "")
        checks = _read_checks(entry)
        check = checks.get(key)
        try:
            run = _load(engine, _graph(entry, engine, dtype, calibration, clips), dtype)
        except ExportError:
            raise
        except Exception:  # a damaged file: build the entry again
            shutil.rmtree(entry, ignore_errors=True)
            _export_entry(entry, net, clip_shape)
            checks, check = {}, None
            run = _load(engine, _graph(entry, engine, dtype, calibration, clips), dtype)
        if check is None:
            diff, scale = _check(net, run, clip_shape, clips[:8] if clips is not None else None)
            if diff > TOLERANCE[dtype] * max(1.0, scale):
                raise ExportError(
                    f"{engine} ({dtype}) differs from eager by up to {diff:.3g} (largest logit {scale:.3g}, tolerance "
                    f"{TOLERANCE[dtype]:g} relative to it); it is not used. Use engine='torch'."
                )
            check = {"max_abs_diff": diff, "max_abs_logit": scale}
            checks[key] = check
            _write_checks(entry, checks)
    return Engine(engine, dtype, clip_shape, float(check["max_abs_diff"]), run)


def _graph(entry: Path, engine: str, dtype: str, calibration: str, clips: Tensor | None) -> Path:
    """The file the engine loads: the exported graph, or (int8) its quantized copy, made once per calibration."""
    if dtype != "int8":
        return entry / GRAPH
    assert clips is not None
    target = entry / f"{engine}-int8-{calibration}.{'onnx' if engine == 'onnxruntime' else 'xml'}"
    if not target.is_file():
        with tempfile.TemporaryDirectory(dir=entry) as tmp:
            staged = Path(tmp) / target.name
            with _quantizing(engine):
                folded = entry / "folded.onnx"
                if not folded.is_file():
                    fold_constants(entry / GRAPH, folded)
                (quantize_onnx if engine == "onnxruntime" else _quantize_openvino)(folded, staged, clips)
            for file in sorted(Path(tmp).iterdir(), key=lambda f: f.suffix == ".xml"):  # the .xml (OpenVINO) last
                os.replace(file, entry / file.name)
    return target


@contextlib.contextmanager
def _quantizing(engine: str) -> Any:
    """The quantizers' errors as one line naming what failed; their logging (progress, hints) kept quiet."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        if engine == "openvino":
            import nncf

            nncf.set_log_level(logging.ERROR)
        yield
    except ImportError as e:
        extra = "videozoo[int8]" if engine == "openvino" else "videozoo[onnx]"
        raise ImportError(f"int8 with engine {engine!r} needs {e.name}: pip install '{extra}'.") from None
    except Exception as e:
        raise ExportError(f"quantizing for {engine} failed: {type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}") from e
    finally:
        root.setLevel(level)


def fold_constants(graph: Path, target: Path) -> None:
    """Write ``graph`` with what depends only on the weights computed once (BatchNorm folded into the
    convolutions, as the models do at run time): the quantizers need constant weights. ONNX Runtime's
    ``quant_pre_process`` (shape inference and its basic graph optimizations); ``target`` appears complete."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    staged = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    quant_pre_process(str(graph), str(staged), skip_symbolic_shape=True)
    os.replace(staged, target)


def quantize_onnx(graph: Path, target: Path, clips: Tensor) -> None:
    """ONNX Runtime's static quantization of a constant-folded ``graph``: int8 weights per channel,
    activations calibrated on ``clips`` ``(N, 3, T, H, W)`` (QDQ format, runs on any ONNX runtime)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([{"video": clip[None].numpy()} for clip in clips])

        def get_next(self) -> dict[str, Any] | None:
            return next(self.items, None)

    quantize_static(
        str(graph), str(target), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
    )  # fmt: skip


def _quantize_openvino(graph: Path, target: Path, clips: Tensor) -> None:
    """OpenVINO's post-training quantization through NNCF, calibrated on ``clips``."""
    import nncf
    import openvino

    model = openvino_core().read_model(str(graph))
    dataset = nncf.Dataset([clip[None].numpy() for clip in clips])
    # NNCF makes and drops Cores of its own (openvino_core says why that matters); its progress bar is not output
    with _signal_stack_kept(), contextlib.redirect_stdout(sys.stderr):
        quantized = nncf.quantize(model, dataset, subset_size=len(clips))
    openvino.save_model(quantized, str(target))


@functools.cache
def openvino_core() -> Any:
    """The process's one ``openvino.Core``, kept until the process ends; every OpenVINO call here uses it.

    OpenVINO's CPU plugin (2025.x, 2026.x) gives the thread that creates a Core a signal stack of its own
    (room for AMX state) and, when that Core goes, puts back the stack it found there and unmaps its own.
    Cores that go in another order than they came leave the thread on an unmapped signal stack; the next
    signal that runs a Python handler on it (SIGCHLD, once a PyTorch DataLoader has run workers) then kills
    the process with SIGSEGV wherever it is. One Core that never goes cannot be taken out of order. Code
    that uses OpenVINO beside videozoo in one process is safe with this Core, or with Cores of its own kept
    as long. (tests/test_engines.py: a process that drops its OpenVINO engines, then takes SIGCHLD.)
    """
    import openvino

    return openvino.Core()


class _SignalStack(ctypes.Structure):
    _fields_ = [("sp", ctypes.c_void_p), ("flags", ctypes.c_int), ("size", ctypes.c_size_t)]  # Linux's stack_t


@contextlib.contextmanager
def _signal_stack_kept() -> Iterator[None]:
    """Runs the block, then gives the calling thread back the signal stack it had before (Linux), so that
    OpenVINO Cores made and dropped in the block cannot leave it on an unmapped one (:func:`openvino_core`)."""
    if not sys.platform.startswith("linux"):
        yield
        return
    libc = ctypes.CDLL(None, use_errno=True)
    before = _SignalStack()
    libc.sigaltstack(None, ctypes.byref(before))
    try:
        yield
    finally:
        libc.sigaltstack(ctypes.byref(before), None)


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


def _check(
    net: nn.Module, run: Callable[[Tensor], tuple[Tensor, Tensor]], clip_shape: tuple[int, int, int], clips: Tensor | None = None
) -> tuple[float, float]:
    """The largest ``|engine - eager|`` over the logits of random clips at batch 1 and 2 (or of ``clips``) and
    over their embeddings (fp32 and bf16), and the largest eager logit."""
    generator = torch.Generator().manual_seed(2)
    both = _LogitsAndEmbedding(net)
    batches = [torch.randn(b, 3, *clip_shape, generator=generator) for b in (1, 2)] if clips is None else [clips]
    diff = scale = 0.0
    with torch.inference_mode():
        for x in batches:
            expected = [t.float() for t in both(x)]
            got = run(x)
            for i, (e, g) in enumerate(zip(expected, got)):
                if e.shape != g.shape:
                    raise ExportError(f"the engine returned shape {list(g.shape)}, eager {list(e.shape)}.")
                if i == 0 or clips is None:  # int8 is judged by its logits
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
    return _openvino(graph, dtype, threads)


def _openvino(graph: Path, dtype: str, threads: int) -> Callable[[Tensor], tuple[Tensor, Tensor]]:
    """OpenVINO's CPU plugin running ``graph``, compiled for each batch size it is given (a static shape,
    compiled on first use of that size; the graph itself keeps its dynamic batch).

    Static shapes are faster: OpenVINO 2026.4 ran x3d_m's dynamic-batch graph at batch 1 in 747 ms and the
    same graph compiled for batch 1 in 356 ms on the development machine (its kernels and memory plan are
    chosen for the shape). And they are right: with the batch left dynamic, its CPU plugin ran the
    quantized residual additions of an int8 ResNet wrongly (mc3_18 trained on references/' motion set:
    top-1 agreement with fp32 70 % dynamic, 98-100 % static; docs/engines.md, int8). fp32 runs at f32
    precision, bf16 at bf16; int8 as quantized.
    """
    core = openvino_core()
    model = core.read_model(str(graph))
    config: dict[str, Any] = {"INFERENCE_NUM_THREADS": threads}
    if dtype != "int8":
        config["INFERENCE_PRECISION_HINT"] = "bf16" if dtype == "bf16" else "f32"
    requests: dict[tuple[int, ...], Any] = {}

    def run(clips: Tensor) -> tuple[Tensor, Tensor]:
        x = clips.float().contiguous().numpy()
        request = requests.get(x.shape)
        if request is None:
            static = model.clone()
            static.reshape({"video": list(x.shape)})
            request = requests[x.shape] = core.compile_model(static, "CPU", config).create_infer_request()
        out = request.infer({"video": x})
        return torch.from_numpy(out["logits"].copy()), torch.from_numpy(out["embedding"].copy())

    return run
