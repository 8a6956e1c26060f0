"""Export a model to ONNX, TorchScript or a ``torch.export`` program, checked against eager.

``export_model("r2plus1d_18", "r2plus1d_18.onnx", weights="DEFAULT")`` writes the graph, runs it (ONNX
through onnxruntime, the others through torch) on a random clip next to the eager model, and writes
``r2plus1d_18.onnx.json`` beside it: the input the graph takes, the clip recipe, the preprocessing and
the category names, so a deployment elsewhere can prepare clips exactly as the weights were trained.

Every format starts from the eval-mode model. ONNX goes through ``torch.export`` (whose decomposed
program the ONNX exporter translates op by op; the TorchScript-based exporter cannot follow the
channels-last fast paths), TorchScript through ``torch.jit.script`` (shapes stay free), and
``exported-program`` is ``torch.export.save``'s ``.pt2`` file. Files appear at their destination only
once the graph has been verified: a failed export leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from videozoo.tasks.runner import resolve_weights
from videozoo.zoo import WeightsEnum, get_model
from videozoo.errors import ExportError

__all__ = ["ExportFormat", "FORMATS", "ExportResult", "export_model", "export_recipe", "export_onnx", "published_clip"]

ExportFormat = Literal["onnx", "torchscript", "exported-program"]
FORMATS: tuple[str, ...] = ("onnx", "torchscript", "exported-program")

#: ONNX files keep their weights inline below protobuf's 2 GiB limit, in ``FILE.data`` above it.
_ONNX_INLINE_BYTES = 1_800_000_000
INPUT_NAME = "video"
OUTPUT_NAME = "logits"
#: The second input of the action detectors (``model(clip, boxes)``): ``(K, 5)`` rows ``(batch_index, x1, y1,
#: x2, y2)`` in the clip's pixels, ``K`` a symbol of the graph.
BOXES_NAME = "boxes"


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_model` wrote and how closely the graph reproduced eager.

    ``max_abs_diff`` is the largest ``|exported - eager|`` over the logits of every verified clip
    (``None`` when ``verify=False``); ``max_abs_logit`` is the largest eager logit, its scale.
    """

    path: Path
    recipe_path: Path
    format: str
    input_shape: tuple[int | str, ...]
    max_abs_diff: float | None
    max_abs_logit: float | None


def export_model(
    model: str | nn.Module,
    path: str | os.PathLike[str],
    *,
    weights: WeightsEnum | str | os.PathLike[str] | None = None,
    format: ExportFormat = "onnx",
    clip_shape: tuple[int, int, int] | None = None,
    batch_size: int = 1,
    dynamic_batch: bool = False,
    verify: bool = True,
    tolerance: float | None = None,
    calibration: Tensor | Sequence[str | os.PathLike[str]] | None = None,
) -> ExportResult:
    """Export ``model`` in eval mode to ``path`` and write its recipe to ``path + ".json"``.

    Args:
        model: a registered name (built with ``weights``) or a model object (``weights`` then only
            names the member it holds, for the recipe file).
        weights: a weights member, its name, a local checkpoint file, or ``None`` for random weights.
        clip_shape: ``(T, H, W)`` of the exported input; default: the weights' published clip (the
            model's default weights when ``weights`` is ``None``).
        batch_size: batch of the traced clip (and of the graph unless ``dynamic_batch``).
        dynamic_batch: export the batch dimension as a symbol (verified at two batch sizes).
        verify: run the exported file on a random clip next to eager; needs onnxruntime for ONNX.
        tolerance: largest accepted ``|exported - eager|``, relative to ``max(1, largest |logit|)``
            (default 1e-4; for int8 the engines' int8 tolerance, 0.25).
        calibration: an int8 ONNX graph (``format="onnx"`` only): clips ``(N, 3, T, H, W)`` or video
            files to calibrate the activations on (ONNX Runtime's static quantization, weights per
            channel); the graph is then verified on those clips.

    Raises:
        ExportError: the model could not be exported, or the exported graph's logits differ from
            eager by more than the tolerance (nothing is left at ``path`` then).
        ValueError: a clip shape or batch the model does not accept, or an unknown format.
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}; got {format!r}.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder; give the file to write, e.g. {path / 'model.onnx'}.")
    if not path.parent.is_dir():
        raise ValueError(f"{path.parent} does not exist; create it first or choose another --out.")
    if calibration is not None and format != "onnx":
        raise ValueError(f"int8 (calibration=) is for ONNX graphs; got format={format!r}.")
    name, net, member, weights_name = _model_and_member(model, weights)
    net.eval()
    if clip_shape is None:
        if member is None:
            raise ValueError("With a model object and no weights member, pass clip_shape=(T, H, W).")
        clip_shape = published_clip(member)
    int8_clips = None
    if calibration is not None:
        from videozoo.tasks.engines import TOLERANCE, calibration_clips

        int8_clips = calibration_clips(calibration, member, clip_shape)
        tolerance = TOLERANCE["int8"] if tolerance is None else tolerance
    tolerance = 1e-4 if tolerance is None else tolerance
    # The graph is traced at batch 2 when the batch is a symbol (a traced 1 would be specialised).
    trace_batch = max(batch_size, 2) if dynamic_batch else batch_size
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(trace_batch, 3, *clip_shape, generator=generator)
    if hasattr(net, "check_input"):
        net.check_input(x)  # a clip the model does not take fails here, in words, not deep in a trace
    input_shape: tuple[int | str, ...] = ("batch" if dynamic_batch else trace_batch, 3, *clip_shape)
    boxes = example_boxes(x) if takes_boxes(net) else None
    if boxes is not None and calibration is not None:
        raise ValueError(f"{name} is an action detector (it takes boxes besides the clip); int8 export is for the classifiers.")

    with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.name}.") as tmp:
        staged = Path(tmp) / path.name
        _export(net, x, staged, format, dynamic_batch, boxes)
        if int8_clips is not None:
            _to_int8(staged, int8_clips)
        diff = scale = None
        if verify:
            clips = [x] if not dynamic_batch else [x, torch.randn(1 if trace_batch > 1 else 3, *x.shape[1:], generator=generator)]
            if int8_clips is not None:  # int8 is judged on the clips it was calibrated for
                clips = [int8_clips[:trace_batch]] if not dynamic_batch else [int8_clips[:8]]
            diff, scale = _verify(net, staged, format, clips, boxes is not None)
            if diff > tolerance * max(1.0, scale):
                raise ExportError(
                    f"the exported {format} graph of {name} differs from eager by up to {diff:.3g} (largest logit "
                    f"{scale:.3g}, tolerance {tolerance:g} relative to it); nothing was written. Please report it; "
                    f"--format torchscript or exported-program may serve meanwhile.",
                    max_abs_diff=diff,
                )
        recipe = export_recipe(name, member, weights_name, format=format, file=path.name, input_shape=input_shape, num_classes=_num_classes(net))
        if boxes is not None:
            recipe["input_boxes"] = {
                "name": BOXES_NAME, "shape": ["boxes", 5], "dtype": "float32",
                "layout": "rows (batch_index, x1, y1, x2, y2) in the clip's pixels, boxes inside the frame",
            }  # fmt: skip
            recipe["output"]["shape"][0] = "boxes"
        recipe["verified"] = None if diff is None else {"max_abs_diff": diff, "max_abs_logit": scale, "tolerance": tolerance, "runtime": _runtime(format)}
        recipe_path = path.with_name(path.name + ".json")
        (Path(tmp) / recipe_path.name).write_text(json.dumps(recipe, indent=2) + "\n")
        for staged_file in sorted(Path(tmp).iterdir()):  # the graph, its external data if any, the recipe
            os.replace(staged_file, path.parent / staged_file.name)
    return ExportResult(path, recipe_path, format, input_shape, diff, scale)


def published_clip(member: WeightsEnum) -> tuple[int, int, int]:
    """``(T, H, W)`` of the clip a weights member was evaluated on."""
    crop = member.transforms().crop_size
    return member.recipe.num_frames, int(crop[0]), int(crop[1])


def export_recipe(
    name: str,
    member: WeightsEnum | None,
    weights_name: str | None,
    *,
    format: str,
    file: str,
    input_shape: tuple[int | str, ...],
    num_classes: int | None,
) -> dict[str, Any]:
    """The JSON written beside an exported file: its input and output, clip recipe and preprocessing.

    Args:
        member: the weights member whose recipe and preprocessing go with the graph (``None``: unknown).
        weights_name: what the model was built with, as results name it (``None``: random weights; the
            recipe is then the default weights', for the input size only).
    """
    import videozoo

    recipe: dict[str, Any] = {
        "model": name,
        "weights": weights_name,
        "format": format,
        "file": file,
        "input": {"name": INPUT_NAME, "shape": list(input_shape), "dtype": "float32", "layout": "B, C (RGB), T, H, W"},
        "output": {"name": OUTPUT_NAME, "shape": [input_shape[0], num_classes], "dtype": "float32"},
        "videozoo": videozoo.__version__,
        "torch": torch.__version__,
    }
    if member is None:
        return recipe
    meta = member.meta
    if member.has_labels:
        recipe["output"]["probabilities"] = "sigmoid" if member.multi_label else "softmax"
    else:  # an encoder's weights: the output is the clip embedding
        recipe["output"]["name_meaning"] = "the clip embedding (these weights have no classifier)"
    preset = member.transforms()
    recipe["preprocessing"] = {
        "frames": "uint8 RGB frames, (T, H, W, 3) as decoded",
        "resize_size": list(preset.resize_size),
        "resize": "short side to resize_size[0]" if len(preset.resize_size) == 1 else "to resize_size (H, W)",
        "interpolation": preset.interpolation,
        "antialias": False,
        "round_to_uint8_after_resize": preset.resize_uint8,
        "crop_size": list(preset.crop_size),
        "crop_offset_rounding": preset.crop_rounding,
        "scale": 1 / 255,
        "mean": list(preset.mean),
        "std": list(preset.std),
        "channel_order": preset.channel_order,
        "description": preset.describe(),
    }
    clip = member.recipe
    recipe["sampling"] = {
        "num_frames": clip.num_frames,
        "sampling_rate": clip.sampling_rate if clip.sampling == "clips" else None,  # segments have no stride
        "frame_rate": clip.frame_rate,
        "num_clips": clip.num_clips,
        "num_crops": clip.num_crops,
        "sampling": clip.sampling,
    }
    if weights_name is not None:
        recipe["license"] = meta.get("license")
        recipe["categories"] = member.categories
    return recipe


# ----------------------------------------------------------------------------------------------------
# Internals


def _model_and_member(model: str | nn.Module, weights: Any) -> tuple[str, nn.Module, WeightsEnum | None, str | None]:
    """The model's name, the network, the member whose recipe goes with it and the weights' name (``None``:
    random weights; a module without weights has no member)."""
    if isinstance(model, nn.Module) and weights is None:
        return type(model).__name__, model, None, None
    member, weights_name = resolve_weights(model, weights, untrained_ok=True)
    if isinstance(model, nn.Module):
        return type(model).__name__, model, member, weights_name
    return model, get_model(model, weights=weights), member, weights_name


def _num_classes(net: nn.Module) -> int | None:
    return getattr(net, "num_classes", None)


@contextlib.contextmanager
def _exporting(what: str) -> Iterator[None]:
    """Turn an exporter's failure into one ExportError whose first line says what broke; keep the
    exporters' own chatter (torchvision ops it skips, deprecations inside torch) off the console."""
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning)
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            yield
    except ExportError:
        raise
    except Exception as e:  # the exporters raise many types, from deep inside tracing
        lines = [line for line in str(e).strip().splitlines() if line.strip()]
        detail = f"{type(e).__name__}: {lines[0]}" if lines else type(e).__name__
        raise ExportError(f"{what} failed: {detail}") from e
    finally:
        exporter_log.setLevel(level)


def takes_boxes(net: nn.Module) -> bool:
    """Whether ``net`` is called as ``net(clip, boxes)`` (the action detectors)."""
    return "boxes" in inspect.signature(net.forward).parameters


def example_boxes(x: Tensor, seed: int = 0) -> Tensor:
    """Three boxes inside each clip of ``x`` (the whole frame, a person-sized one, a small one): the boxes an
    action detector's graph is traced and verified with."""
    g = torch.Generator().manual_seed(seed)
    h, w = x.shape[-2:]
    rows = []
    for b in range(x.shape[0]):
        x1, y1 = float(torch.randint(0, w // 2, (1,), generator=g)), float(torch.randint(0, h // 2, (1,), generator=g))
        rows += [[b, 0.0, 0.0, w, h], [b, x1, y1, x1 + w / 3, y1 + h / 2], [b, w - 12.0, h - 20.0, w - 1.0, h - 1.0]]
    return torch.tensor(rows, dtype=torch.float32)


def _export(net: nn.Module, x: Tensor, path: Path, format: str, dynamic_batch: bool, boxes: Tensor | None = None) -> None:
    if format == "torchscript":
        with _exporting("torch.jit.script"):
            torch.jit.save(torch.jit.script(net), str(path))
        return
    if format == "exported-program":
        program = _program(net, x, dynamic_batch, boxes)
        with _exporting("torch.export.save"):
            torch.export.save(program, str(path))
        return
    export_onnx(net, x, path, dynamic_batch=dynamic_batch, boxes=boxes)


def _to_int8(staged: Path, clips: Tensor) -> None:
    """Replace the staged fp32 ONNX graph with its int8 quantization (constants folded first)."""
    from videozoo.tasks.engines import fold_constants, quantize_onnx

    folded = staged.with_name("folded.onnx")
    with _exporting("int8 quantization (onnxruntime.quantization)"):
        fold_constants(staged, folded)
        quantize_onnx(folded, staged, clips)
    folded.unlink()


def _program(net: nn.Module, x: Tensor, dynamic_batch: bool, boxes: Tensor | None = None) -> torch.export.ExportedProgram:
    dynamic_shapes: Any = ({0: torch.export.Dim("batch", min=1, max=4096)},) if dynamic_batch else None
    args: tuple[Tensor, ...] = (x,)
    if boxes is not None:  # an action detector: the number of boxes is a symbol
        dynamic_shapes = ((dynamic_shapes or (None,))[0], {0: torch.export.Dim("boxes", min=1, max=4096)})
        args = (x, boxes)
    with _exporting("torch.export"), torch.no_grad():
        return torch.export.export(net, args, dynamic_shapes=dynamic_shapes, strict=False)


def export_onnx(
    net: nn.Module, x: Tensor, path: Path, *, dynamic_batch: bool, output_names: Sequence[str] = (OUTPUT_NAME,),
    boxes: Tensor | None = None,
) -> None:
    """Write ``net`` (eval mode) traced at ``x`` as an ONNX graph with input ``video`` and ``output_names``.

    Args:
        dynamic_batch: export the batch dimension as a symbol (trace with a batch of at least 2).
        output_names: one name per output of ``net`` (``("logits",)`` for a model; engines export a
            wrapper that also returns the clip embedding).
        boxes: an action detector's example boxes: the graph's second input ``boxes``, their number a symbol.

    Raises :class:`~videozoo.errors.ExportError` when the exporter fails or onnx/onnxscript are missing.
    """
    program = _program(net, x, dynamic_batch, boxes)
    try:
        import onnx  # noqa: F401  (the exporter needs both)
        import onnxscript  # noqa: F401
    except ImportError as e:
        raise ExportError(f"ONNX export needs onnx and onnxscript ({e.name} is missing): pip install 'videozoo[onnx]'.") from None
    size = sum(p.numel() * p.element_size() for p in net.parameters()) + sum(b.numel() * b.element_size() for b in net.buffers())
    with _exporting("torch.onnx.export"), torch.no_grad():
        torch.onnx.export(
            program,
            (x,) if boxes is None else (x, boxes),
            str(path),
            dynamo=True,
            custom_translation_table={torch.ops.aten.conv3d.default: _onnx_conv3d},
            input_names=[INPUT_NAME] if boxes is None else [INPUT_NAME, BOXES_NAME],
            output_names=list(output_names),
            external_data=size > _ONNX_INLINE_BYTES,
            # onnxscript's graph optimizer miscompiled mvit_v2_b (0.17 off at 8x64x64, onnxscript 0.7.2);
            # onnxruntime optimizes the graph itself when it loads it.
            optimize=False,
            verbose=False,
        )


def _onnx_conv3d(
    input: Any,
    weight: Any,
    bias: Any = None,
    stride: Sequence[int] = (1, 1, 1),
    padding: Sequence[int] = (0, 0, 0),
    dilation: Sequence[int] = (1, 1, 1),
    groups: int = 1,
) -> Any:
    """``aten.conv3d`` as one ONNX ``Conv``, with no bias input when there is no bias (onnxscript 0.7.2
    makes a missing bias a zero tensor of shape (out_channels, 2), which onnxruntime rejects)."""
    from onnxscript import opset18 as op

    def triple(v: Sequence[int]) -> list[int]:
        return list(v) * 3 if len(v) == 1 else list(v)

    return op.Conv(
        input, weight, bias, strides=triple(stride), pads=triple(padding) * 2, dilations=triple(dilation), group=groups
    )


def _runtime(format: str) -> str:
    if format == "onnx":
        import onnxruntime

        return f"onnxruntime {onnxruntime.__version__}"
    return f"torch {torch.__version__}"


def _verify(net: nn.Module, path: Path, format: str, clips: list[Tensor], with_boxes: bool = False) -> tuple[float, float]:
    """The largest ``|exported - eager|`` over ``clips`` (``with_boxes``: an action detector's, each with two
    sets of boxes), and the largest eager logit."""
    if format == "onnx":
        try:
            import onnxruntime
        except ImportError:
            raise ExportError(
                "verifying an ONNX export runs it in onnxruntime, which is not installed: pip install "
                "'videozoo[onnx]', or skip the check (--no-verify / verify=False)."
            ) from None
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

        def run(x: Tensor, *boxes: Tensor) -> Tensor:
            feeds = {INPUT_NAME: x.numpy(), **({BOXES_NAME: boxes[0].numpy()} if boxes else {})}
            return torch.from_numpy(session.run([OUTPUT_NAME], feeds)[0])

    elif format == "torchscript":
        scripted = torch.jit.load(str(path))
        run = scripted
    else:
        run = torch.export.load(str(path)).module()
    diff = scale = 0.0
    with _exporting(f"running the exported {format} graph"), torch.inference_mode():
        for x in clips:
            for inputs in [(x,)] if not with_boxes else [(x, example_boxes(x)), (x, example_boxes(x, seed=1)[1:3])]:
                eager = net(*inputs).float()
                out = run(*inputs).float()
                if out.shape != eager.shape:
                    raise ExportError(f"the exported graph returned shape {list(out.shape)}, eager {list(eager.shape)}.")
                diff = max(diff, (out - eager).abs().max().item())
                scale = max(scale, eager.abs().max().item())
    return diff, scale
