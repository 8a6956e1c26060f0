"""videozoo against every peer a user could pick, side by side in one process.

    python benchmarks/bench_models.py --models r2plus1d_18 swin3d_t --batch-sizes 1 8 --dtypes fp32 bf16
    ~/ref-env/bin/python benchmarks/bench_models.py ...   # adds the reference library's column

For each model at its published clip (``--shape T H W`` to override), batch size and dtype, the runners
are timed in interleaved rounds (one forward of each per round, ``--repeats`` rounds after a warm-up)
and their medians compared:

- ``videozoo``: the eager model (bf16: a copy with bfloat16 parameters, as ``dtype="bf16"`` runs it);
- ``openvino``: ``videozoo.accelerate(engine="openvino")`` — the exported graph compiled by OpenVINO
  (fp32 with ``INFERENCE_PRECISION_HINT=f32``, bf16 with its bf16 precision), checked against eager;
- ``onnxruntime``: the graph ``videozoo.export.export_model`` writes (dynamic batch), in an
  onnxruntime session with the same thread count (fp32 only: ORT's CPU kernels have no bf16);
- ``compile``: ``torch.compile`` (inductor, ``freezing`` on) of the same model (bf16: of the bf16 copy);
- ``reference``: torchvision / pytorchvideo / transformers / hiera with the same weights (the parity
  fill), where the side environment has them and ``tests/parity`` has a published-size case (bf16: under
  ``torch.autocast``, as their documentation runs it).

Reported: videozoo's latency and achieved GFLOP/s (FLOPs counted by torch's ``FlopCounterMode`` on
the portable path, a multiply-add = 2) against the machine's measured oneDNN peaks (a 3x3x3 conv and
an inner product, in the same dtype), each peer's latency and ``peer / videozoo`` (above 1: videozoo
is faster), and each runner's peak extra RSS during one forward (sampled in a separate, untimed call).
``--markdown FILE`` appends the table with the machine's CPU and flags. The process first calls
``videozoo.reuse_freed_memory()``, as the ``videozoo`` command does (``--allocator default`` leaves
glibc's defaults; see docs/benchmarks.md for what that costs). Run it on an idle machine.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import importlib
import os
import platform
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

import videozoo
from _timing import interleaved_medians
from videozoo.tasks.engines import accelerate
from videozoo.tasks.export import export_model, published_clip
from videozoo.models.layers import linear

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
RUNNERS = ("videozoo", "openvino", "onnxruntime", "compile", "reference")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


# ----------------------------------------------------------------------------------------------------
# The machine


def cpu_description() -> str:
    name, flags = platform.processor() or "unknown CPU", set()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name") and name in ("unknown CPU", "x86_64", ""):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    shown = sorted(f for f in flags if f.startswith(("avx512", "amx")) or f in ("avx2", "fma", "avx_vnni"))
    return f"{name}; {os.cpu_count()} logical CPUs; flags: {' '.join(shown) or 'none of interest'}"


def best_of(fn: Callable[[], object], repeats: int = 5) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def onednn_peaks(dtype: torch.dtype) -> dict[str, float]:
    """GFLOP/s of oneDNN's 256-channel 3x3x3 conv (channels-last 3D) and of its inner product."""
    conv = torch.nn.Conv3d(256, 256, 3, padding=1, bias=False).to(memory_format=torch.channels_last_3d)
    x = torch.randn(1, 256, 8, 28, 28).to(memory_format=torch.channels_last_3d)
    tokens, weight = torch.randn(3136, 1024), torch.randn(4096, 1024)
    with torch.inference_mode(), torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
        conv_s = best_of(lambda: conv(x))
    with torch.inference_mode():
        if dtype == torch.float32:
            matmul_s = best_of(lambda: linear(tokens, weight, None))  # oneDNN's inner product
        else:
            a, b = tokens.to(dtype), weight.to(dtype)
            matmul_s = best_of(lambda: torch.nn.functional.linear(a, b))
    conv_flops = 2 * 256 * 256 * 27 * 8 * 28 * 28
    return {"conv": conv_flops / conv_s / 1e9, "matmul": 2 * 3136 * 1024 * 4096 / matmul_s / 1e9}


class PeakRSS:
    """Peak resident memory above the level at entry, sampled every 2 ms by a thread."""

    def __init__(self) -> None:
        self.page = os.sysconf("SC_PAGE_SIZE")
        self.peak = 0

    def rss(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self.page

    def __enter__(self) -> PeakRSS:
        self.start = self.rss()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self) -> None:
        while not self.done.wait(0.002):
            self.peak = max(self.peak, self.rss() - self.start)

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()
        self.peak = max(self.peak, self.rss() - self.start)


# ----------------------------------------------------------------------------------------------------
# The runners


def reference_cases() -> dict:
    """Published-size reference cases from the parity generator, where their library imports here."""
    from parity.common import Case

    cases = {}
    for path in sorted((ROOT / "tests" / "parity").glob("ref_*.py")):
        try:
            module = importlib.import_module(f"parity.{path.stem}")
        except ImportError:
            continue
        published = getattr(module, "PUBLISHED_CASES", None)
        own = published if published is not None else {k: c for k, c in getattr(module, "CASES", {}).items() if not getattr(c, "kwargs", True)}
        cases.update({k: c for k, c in own.items() if isinstance(c, Case)})  # the video-text generators keep other tables
    return cases


def matched_pair(name: str, case) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The reference and our model, both holding the parity fill of the reference's tensors."""
    from parity.common import fill_state_dict
    from parity.replay import build_from_fixture

    ref = case.factory().eval()
    sd = ref.state_dict()
    fixture = {
        "model": name, "kwargs": case.kwargs, "wrap": case.wrap, "compare": case.compare, "weights": case.weights,
        "keys": list(sd), "shapes": [list(t.shape) for t in sd.values()],
        "dtypes": [str(t.dtype).split(".")[1] for t in sd.values()],
    }
    integers = {k: v for k, v in sd.items() if not v.is_floating_point()}
    ref.load_state_dict(fill_state_dict(fixture["keys"], fixture["shapes"], fixture["dtypes"]) | integers)
    return ref, build_from_fixture(fixture)


def onnx_session(model: torch.nn.Module, clip: tuple[int, int, int], threads: int, folder: str):
    import onnxruntime

    path = Path(folder) / "model.onnx"
    export_model(model, path, clip_shape=clip, dynamic_batch=True, verify=False)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda x: torch.from_numpy(session.run(None, {"video": x.numpy()})[0])


def compiled(model: torch.nn.Module) -> Callable:
    import torch._inductor.config as inductor

    inductor.freezing = True
    return torch.compile(copy.deepcopy(model))


def count_flops(model: torch.nn.Module, x: torch.Tensor) -> float:
    """FLOPs of one forward on the portable path: oneDNN off, so that no oneDNN-only op hides a product
    from the counter, and autograd off, so that the largest clips (MViTv2-L's 40x312x312) fit in memory.
    Attention counts as its two products: torch's table lacks the CPU SDPA kernel."""
    cpu_attention = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: sdpa_flop_count_of_cpu_kernel}
    counter = FlopCounterMode(display=False, custom_mapping=cpu_attention)
    needs_grad = [p for p in model.parameters() if p.requires_grad]
    for p in needs_grad:  # the counter's module tracker hooks tensors that require grad (V-JEPA 2's probe
        p.requires_grad_(False)  # query tokens, expanded, tripped it under no_grad)
    try:
        with counter, torch.no_grad(), torch.backends.mkldnn.flags(enabled=False):
            model(x[:1])
    finally:
        for p in needs_grad:
            p.requires_grad_(True)
    return counter.get_total_flops() * x.shape[0]


def sdpa_flop_count_of_cpu_kernel(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


# ----------------------------------------------------------------------------------------------------
# The table


def _under(context: contextlib.AbstractContextManager, run: Callable[[], torch.Tensor]) -> torch.Tensor:
    with context:
        return run()


def fmt_ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1e3:.0f}" if seconds >= 0.1 else f"{seconds * 1e3:.1f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=None, help="model names (default: all)")
    parser.add_argument("--batch-sizes", nargs="*", type=int, default=[1, 8])
    parser.add_argument("--dtypes", nargs="*", choices=list(DTYPES), default=["fp32", "bf16"])
    parser.add_argument("--runners", nargs="*", choices=RUNNERS, default=list(RUNNERS))
    parser.add_argument("--shape", nargs=3, type=int, metavar=("T", "H", "W"), default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--markdown", metavar="FILE", default=None, help="append the table to FILE")
    parser.add_argument(
        "--allocator", choices=("reuse", "default"), default="reuse",
        help="reuse: videozoo.reuse_freed_memory() first, as videozoo's command line does (default); "
        "default: the C library's defaults (ONNX Runtime keeps its own arena either way)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    reused = args.allocator == "reuse" and videozoo.reuse_freed_memory()
    names = args.models or videozoo.list_models()
    cases = reference_cases() if "reference" in args.runners else {}

    peaks = {d: onednn_peaks(DTYPES[d]) for d in args.dtypes}
    versions = [f"torch {torch.__version__}"]
    with contextlib.suppress(ImportError):
        import onnxruntime

        versions.append(f"onnxruntime {onnxruntime.__version__}")
    header = [
        f"CPU: {cpu_description()}",
        f"{args.threads} threads, {', '.join(versions)}; interleaved rounds, median of {args.repeats}; "
        f"malloc: {'freed memory reused (videozoo.reuse_freed_memory)' if reused else 'C library defaults'}",
        "oneDNN peaks (GFLOP/s): " + "; ".join(
            f"{d} conv3d {p['conv']:.0f}, inner product {p['matmul']:.0f}" for d, p in peaks.items()
        ),
        "",
        "| model | clip | batch | dtype | videozoo ms | GFLOP/s (% peak) | OpenVINO ms | OV / vz | ORT ms | ORT / vz "
        "| compile ms | compile / vz | reference ms | ref / vz | peak extra RSS MiB (vz / OV / ORT / compile / ref) |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    markdown = open(args.markdown, "a") if args.markdown else None

    def emit(line: str) -> None:  # written as it comes: a process killed midway (OOM) keeps its rows
        print(line, flush=True)
        if markdown is not None:
            markdown.write(line + "\n")
            markdown.flush()

    for line in header:
        emit(line)
    for name in names:
        torch.manual_seed(0)
        ref = None
        if name in cases:
            try:
                ref, model = matched_pair(name, cases[name])
            except Exception as e:  # e.g. a reference that needs a source checkout: the other runners go on
                emit(f"<!-- {name}: no reference: {str(e).splitlines()[0][:200]} -->")
        if ref is None:
            model = videozoo.get_model(name).eval()
        clip = tuple(args.shape) if args.shape else published_clip(videozoo.get_model_weights(name).DEFAULT)
        flops = count_flops(model, torch.randn(1, 3, *clip))
        with tempfile.TemporaryDirectory() as folder:
            ort = None
            if "onnxruntime" in args.runners and "fp32" in args.dtypes:
                try:
                    ort = onnx_session(model, clip, args.threads, folder)
                except Exception as e:  # reported in the table, the other runners go on
                    emit(f"<!-- {name}: ONNX export failed: {str(e).splitlines()[0][:200]} -->")
            openvino = {}
            if "openvino" in args.runners:  # videozoo's engine: the same exported graph, checked against eager
                for dtype in args.dtypes:
                    try:
                        openvino[dtype] = accelerate(model, None, engine="openvino", dtype=dtype, clip_shape=clip)
                    except Exception as e:  # reported in the table, the other runners go on
                        emit(f"<!-- {name} {dtype}: OpenVINO failed: {str(e).splitlines()[0][:200]} -->")
            half = copy.deepcopy(model).to(torch.bfloat16) if "bf16" in args.dtypes else None
            comp = {d: compiled(model if d == "fp32" else half) for d in args.dtypes} if "compile" in args.runners else None
            for batch in args.batch_sizes:
                x = torch.randn(batch, 3, *clip, generator=torch.Generator().manual_seed(0))
                xb = x.bfloat16()
                for dtype in args.dtypes:
                    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16")
                    runs: dict[str, Callable[[], torch.Tensor]] = {
                        "videozoo": (lambda: model(x)) if dtype == "fp32" else (lambda: half(xb))  # noqa: B023
                    }
                    if dtype in openvino:
                        runs["openvino"] = lambda: openvino[dtype](x)  # noqa: B023  (run in this iteration)
                    if ort is not None and dtype == "fp32":
                        runs["onnxruntime"] = lambda: ort(x)
                    if comp is not None:
                        runs["compile"] = (lambda: comp["fp32"](x)) if dtype == "fp32" else (lambda: comp["bf16"](xb))  # noqa: B023
                    if ref is not None and "reference" in args.runners:
                        case = cases[name]
                        runs["reference"] = (lambda: case.run(ref, x)) if case.run else (lambda: ref(x))
                    if "reference" in runs:  # the reference runs under autocast, ours as they are
                        plain = runs["reference"]
                        runs["reference"] = lambda plain=plain, autocast=autocast: _under(autocast, plain)
                    memory: dict[str, float] = {}
                    with torch.inference_mode():
                        for key, run in list(runs.items()):  # warm-up (compilation), then memory
                            try:
                                run()
                            except Exception as e:
                                emit(f"<!-- {name} b{batch} {dtype}: {key} failed: {str(e).splitlines()[0][:200]} -->")
                                del runs[key]
                                continue
                            gc.collect()
                            with PeakRSS() as rss:
                                run()
                            memory[key] = rss.peak / 2**20
                        med = interleaved_medians(runs, args.repeats)
                    ours = med["videozoo"]
                    peak = max(peaks[dtype].values())
                    cells = [f"`{name}`", "x".join(map(str, clip)), str(batch), dtype, fmt_ms(ours),
                             f"{flops * batch / ours / 1e9:.0f} ({100 * flops * batch / ours / 1e9 / peak:.0f}%)"]
                    for key in ("openvino", "onnxruntime", "compile", "reference"):
                        cells += [fmt_ms(med.get(key)), f"{med[key] / ours:.2f}" if key in med else "-"]
                    cells.append(" / ".join(f"{memory[k]:.0f}" if k in memory else "-" for k in RUNNERS))
                    emit("| " + " | ".join(cells) + " |")
                    del runs
            del comp, ort, openvino, half
        torch._dynamo.reset()
        gc.collect()
    if markdown is not None:
        markdown.write("\n")
        markdown.close()


if __name__ == "__main__":
    main()
