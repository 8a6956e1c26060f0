"""The CUDA path of every model: speed by dtype, layout and batch, and outputs checked against the CPU.

    python benchmarks/bench_gpu.py --out results/ --budget 100000   # every registered model (the default
                                                                    # --budget 420 skips those not reached in 7 min)
    python benchmarks/bench_gpu.py --models x3d_m swin3d_t --batch-sizes 1 8

For each model at its default weights' evaluation clip (random weights, the same on both devices):

* the CPU's fp32 output on one clip is the reference;
* on the GPU, fp32 (TF32 off), TF32, bf16 and fp16 autocast, each with NCDHW and channels-last-3D
  input, batch 1 and 8: median latency (CUDA events, after warm-up), clips/s, the error of the
  batch-1 output against the reference (relative to its largest logit) and whether top-1 agrees;
* a CUDA graph of the fastest batch-1 configuration (static input, replayed).

Writes ``results.jsonl`` (one line per configuration, as soon as it is measured) and ``results.md``.
``--budget`` seconds bound the whole run: models not reached are listed as skipped.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time
from pathlib import Path

import torch

import videozoo

DTYPES = ("fp32", "tf32", "bf16", "fp16")
LAYOUTS = ("ncdhw", "channels_last_3d")


def evaluation_shape(name: str, batch: int) -> tuple[int, ...]:
    member = videozoo.get_model_weights(name).DEFAULT
    return (batch, 3, member.recipe.num_frames, *member.transforms().crop_size)


def precision(dtype: str):
    torch.backends.cuda.matmul.allow_tf32 = dtype == "tf32"
    torch.backends.cudnn.allow_tf32 = dtype == "tf32"
    if dtype in ("bf16", "fp16"):
        return torch.autocast("cuda", dtype=torch.bfloat16 if dtype == "bf16" else torch.float16)
    return contextlib.nullcontext()


def gpu_time(fn, repeats: int) -> float:
    """Median milliseconds of ``fn()`` over ``repeats`` runs after warm-up, by CUDA events."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def relative_error(ours: torch.Tensor, reference: torch.Tensor) -> float:
    return float((ours.float() - reference).abs().max() / reference.abs().max().clamp_min(1e-12))


def run_model(name: str, batch_sizes: list[int], repeats: int, emit) -> None:
    torch.manual_seed(0)
    model = videozoo.get_model(name).eval()
    shape = evaluation_shape(name, max(batch_sizes))
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        t0 = time.perf_counter()
        reference = model(x[:1]).float()
        cpu_ms = (time.perf_counter() - t0) * 1e3
    model = model.cuda()
    x_gpu = x.cuda()
    best: tuple[float, str, str] | None = None
    for layout in LAYOUTS:
        fmt = torch.channels_last_3d if layout == "channels_last_3d" else torch.contiguous_format
        model = model.to(memory_format=fmt)
        for dtype in DTYPES:
            for batch in batch_sizes:
                clip = x_gpu[:batch].contiguous(memory_format=fmt)
                with torch.inference_mode(), precision(dtype):
                    out = model(clip)
                    ms = gpu_time(lambda: model(clip), repeats)
                row = {
                    "model": name, "shape": list(clip.shape), "layout": layout, "dtype": dtype, "batch": batch,
                    "ms": round(ms, 3), "clips_per_s": round(batch * 1e3 / ms, 1), "cpu_fp32_ms_batch1": round(cpu_ms, 1),
                }
                if batch == batch_sizes[0]:
                    row["rel_err_vs_cpu"] = relative_error(out[:1].cpu(), reference)
                    row["top1_agrees"] = bool(out[:1].float().argmax(-1).cpu() == reference.argmax(-1))
                    if batch == 1 and (best is None or ms < best[0]):
                        best = (ms, layout, dtype)
                emit(row)
    if best is not None:
        _, layout, dtype = best
        fmt = torch.channels_last_3d if layout == "channels_last_3d" else torch.contiguous_format
        model = model.to(memory_format=fmt)
        static = x_gpu[:1].contiguous(memory_format=fmt).clone()
        try:
            with torch.inference_mode(), precision(dtype):
                stream = torch.cuda.Stream()
                stream.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(stream):
                    for _ in range(3):
                        model(static)
                torch.cuda.current_stream().wait_stream(stream)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    graph_out = model(static)
                ms = gpu_time(graph.replay, repeats)
                err = relative_error(graph_out.cpu(), reference)
            emit({"model": name, "layout": layout, "dtype": dtype, "batch": 1, "cuda_graph": True, "ms": round(ms, 3),
                  "eager_ms": round(best[0], 3), "rel_err_vs_cpu": err})
        except Exception as e:  # a model whose forward cannot be captured (host syncs): say so
            emit({"model": name, "layout": layout, "dtype": dtype, "batch": 1, "cuda_graph": False, "error": str(e)[:300]})
    del model, x_gpu
    torch.cuda.empty_cache()


def markdown(rows: list[dict]) -> str:
    lines = [
        "| model | clip | layout | dtype | batch | ms | clips/s | rel. err vs CPU fp32 | top-1 |",
        "|---|---|---|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        if r.get("cuda_graph") is not None:
            continue
        err = f"{r['rel_err_vs_cpu']:.1e}" if "rel_err_vs_cpu" in r else ""
        top1 = {True: "same", False: "DIFFERS"}.get(r.get("top1_agrees"), "")
        clip = "×".join(str(s) for s in r["shape"][2:])
        lines.append(f"| {r['model']} | {clip} | {r['layout']} | {r['dtype']} | {r['batch']} | {r['ms']} | {r['clips_per_s']} | {err} | {top1} |")
    graphs = [r for r in rows if r.get("cuda_graph")]
    if graphs:
        lines += ["", "| model | layout | dtype | eager ms | CUDA graph ms | rel. err |", "|---|---|---|---:|---:|---:|"]
        lines += [f"| {r['model']} | {r['layout']} | {r['dtype']} | {r['eager_ms']} | {r['ms']} | {r['rel_err_vs_cpu']:.1e} |" for r in graphs]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=None)
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--budget", type=float, default=420.0, help="seconds for the whole run")
    parser.add_argument("--out", type=Path, default=Path("."))
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("bench_gpu.py needs a CUDA device.")
    args.out.mkdir(parents=True, exist_ok=True)
    torch.backends.cudnn.benchmark = True
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}, {torch.get_num_threads()} CPU threads", flush=True)
    rows: list[dict] = []
    log = open(args.out / "results.jsonl", "w")

    def emit(row: dict) -> None:
        rows.append(row)
        log.write(json.dumps(row) + "\n")
        log.flush()
        print(json.dumps(row), flush=True)

    start = time.perf_counter()
    for name in args.models or videozoo.list_models():
        if time.perf_counter() - start > args.budget:
            emit({"model": name, "skipped": "budget"})
            continue
        try:
            run_model(name, args.batch_sizes, args.repeats, emit)
        except Exception as e:
            emit({"model": name, "error": f"{type(e).__name__}: {str(e)[:300]}"})
    (args.out / "results.md").write_text(markdown([r for r in rows if "ms" in r]))
    print(f"done in {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
