"""Every engine behind ``videozoo.accelerate``, and ``auto``'s choice, side by side (issue 28).

    python benchmarks/bench_engines.py --models r3d_18 swin3d_t videomae_s --batch-sizes 1 --dtypes fp32 bf16 int8

One process per model (this script starts them, one after another), random weights, the model's
published clip. In each process every engine is built by ``videozoo.accelerate`` — the same checked
engines a user gets: ``torch`` (eager; bf16: the model with bfloat16 parameters), ``compile``
(``torch.compile`` of it), ``onnxruntime`` and ``openvino`` (the graph ``videozoo export`` writes; bf16:
OpenVINO's bf16 precision; int8: each engine's own quantizer, calibrated on 8 random clips) — and then
``auto`` (``engine="auto"``: it measures the installed engines and keeps the fastest, so its build
reuses the cached graphs). All are timed in interleaved rounds (one forward of each per round, median of
``--repeats`` after a warm-up, 0.3 s apart: ONNX Runtime's threads spin on after a run and slowed the
engine timed right after them by up to 40 %). Reported per model, batch and dtype: each engine's milliseconds, auto's
choice and ``fastest peer / auto`` (1.00 or above: auto is as fast as the fastest peer), and auto's
achieved GFLOP/s (FLOPs of the model, multiply-add = 2) against the machine's measured peak for that
dtype (the best kernel measured: oneDNN's inner product and convolution, for int8 ``torch._int_mm``).
``--markdown FILE`` appends the rows. Run it with the machine otherwise idle; ``VIDEOZOO_HOME`` is a
temporary folder unless set.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ENGINES = ("torch", "compile", "onnxruntime", "openvino")


def openvino_matmul_peak(dtype: str, threads: int) -> float:
    """GFLOP/s of OpenVINO's own (3136 x 1024) @ (1024 x 4096) product at ``dtype`` (f32 or bf16)."""
    import numpy as np
    import openvino
    import openvino.opset13 as ops

    from bench_models import best_of

    from videozoo.tasks.engines import openvino_core

    a = ops.parameter([3136, 1024], openvino.Type.f32)
    product = ops.matmul(a, ops.constant(np.random.randn(1024, 4096).astype(np.float32)), False, False)
    config = {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "bf16" if dtype == "bf16" else "f32"}
    core = openvino_core()  # videozoo's one Core: Cores dropped out of order crash the process (engines.openvino_core)
    request = core.compile_model(openvino.Model([product], [a]), "CPU", config).create_infer_request()
    x = np.random.randn(3136, 1024).astype(np.float32)
    return 2 * 3136 * 1024 * 4096 / best_of(lambda: request.infer({0: x})) / 1e9


def peaks(dtypes: list[str], threads: int) -> dict[str, str]:
    """The fastest kernel measured per dtype: oneDNN's convolution and inner product (through torch) and
    OpenVINO's matrix product for fp32 / bf16, ``torch._int_mm`` (int8 x int8 -> int32) for int8."""
    from bench_models import best_of, onednn_peaks

    out = {}
    for dtype in dtypes:
        if dtype == "int8":
            a, b = torch.randint(-128, 127, (3136, 1024), dtype=torch.int8), torch.randint(-128, 127, (1024, 4096), dtype=torch.int8)
            seconds = best_of(lambda: torch._int_mm(a, b))  # noqa: B023
            found = {"torch._int_mm": 2 * 3136 * 1024 * 4096 / seconds / 1e9}
        else:
            found = {f"oneDNN {k}": v for k, v in onednn_peaks(torch.float32 if dtype == "fp32" else torch.bfloat16).items()}
            try:
                found["OpenVINO matmul"] = openvino_matmul_peak(dtype, threads)
            except ImportError:
                pass
        out[dtype] = found
    return out


def one_model(name: str, batch_sizes: list[int], dtypes: list[str], repeats: int, threads: int) -> list[dict]:
    import videozoo
    from _timing import interleaved_medians
    from bench_models import count_flops
    from videozoo.tasks.engines import accelerate, installed, runs
    from videozoo.tasks.export import published_clip

    torch.set_num_threads(threads)
    videozoo.reuse_freed_memory()
    torch.manual_seed(0)
    model = videozoo.get_model(name).eval()
    clip = published_clip(videozoo.get_model_weights(name).DEFAULT)
    flops = count_flops(model, torch.randn(1, 3, *clip))
    calibration = torch.randn(8, 3, *clip, generator=torch.Generator().manual_seed(1))
    rows = []
    for dtype in dtypes:
        built, notes = {}, []
        for engine in ENGINES:
            if not installed(engine) or not runs(engine, dtype):
                continue
            start = time.perf_counter()
            try:
                built[engine] = accelerate(model, None, engine=engine, dtype=dtype, clip_shape=clip,
                                           calibration=calibration if dtype == "int8" else None)  # fmt: skip
            except Exception as e:  # reported, the other engines go on
                notes.append(f"{engine}: {type(e).__name__}: {str(e).splitlines()[0][:160]}")
                continue
            notes.append(f"{engine} built in {time.perf_counter() - start:.0f} s")
        try:
            auto = accelerate(model, None, engine="auto", dtype=dtype, clip_shape=clip,
                              calibration=calibration if dtype == "int8" else None)  # fmt: skip
            built["auto"] = auto
            notes.append(f"auto: {auto.report}")
        except Exception as e:
            notes.append(f"auto: {type(e).__name__}: {str(e).splitlines()[0][:160]}")
        for batch in batch_sizes:
            x = torch.randn(batch, 3, *clip, generator=torch.Generator().manual_seed(0))
            calls = {key: (lambda e=e: e(x)) for key, e in built.items()}
            for call in calls.values():
                call()
            med = interleaved_medians(calls, repeats, pause=0.3)  # no engine's spinning threads slow the next
            rows.append({"model": name, "clip": clip, "batch": batch, "dtype": dtype, "ms": {k: v * 1e3 for k, v in med.items()},
                         "auto": built["auto"].name if "auto" in built else None, "gflops": flops * batch / 1e9, "notes": notes})  # fmt: skip
        del built
        torch._dynamo.reset()
    return rows


def row_markdown(row: dict, peak: float) -> str:
    ms = row["ms"]
    cells = [f"`{row['model']}`", "x".join(map(str, row["clip"])), str(row["batch"]), row["dtype"]]
    cells += [f"{ms[e]:.0f}" if e in ms else "-" for e in ENGINES]
    peers = [ms[e] for e in ENGINES if e in ms]
    if "auto" in ms:
        achieved = row["gflops"] / (ms["auto"] / 1e3)
        cells += [f"{ms['auto']:.0f} ({row['auto']})", f"{min(peers) / ms['auto']:.2f}", f"{achieved:.0f} ({100 * achieved / peak:.0f} %)"]
    else:
        cells += ["-", "-", "-"]
    return "| " + " | ".join(cells) + " |"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1])
    parser.add_argument("--dtypes", nargs="+", choices=("fp32", "bf16", "int8"), default=["fp32", "bf16", "int8"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--markdown", default=None, help="append the rows to FILE")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # a child process: one model, JSON out
    args = parser.parse_args(argv)
    if args.one:
        print("ROWS " + json.dumps(one_model(args.one, args.batch_sizes, args.dtypes, args.repeats, args.threads)), flush=True)
        return
    torch.set_num_threads(args.threads)
    found = peaks(args.dtypes, args.threads)
    peak = {d: max(kernels.values()) for d, kernels in found.items()}
    header = [
        "kernel peaks (GFLOP/s): " + "; ".join(f"{d}: " + ", ".join(f"{k} {v:.0f}" for k, v in kernels.items()) for d, kernels in found.items()),
        f"{args.threads} threads; interleaved rounds, median of {args.repeats}; torch {torch.__version__}",
        "",
        "| model | clip | batch | dtype | torch ms | compile ms | ORT ms | OpenVINO ms | auto ms (choice) | fastest peer / auto | auto GFLOP/s (% peak) |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    out = open(args.markdown, "a") if args.markdown else None
    for line in header:
        print(line, flush=True)
        if out:
            out.write(line + "\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    with tempfile.TemporaryDirectory() as home:
        env.setdefault("VIDEOZOO_HOME", home)
        for name in args.models:
            cmd = [sys.executable, str(Path(__file__)), "--models", name, "--one", name, "--batch-sizes", *map(str, args.batch_sizes),
                   "--dtypes", *args.dtypes, "--repeats", str(args.repeats), "--threads", str(args.threads)]  # fmt: skip
            done = subprocess.run(cmd, env=env, capture_output=True, text=True)
            lines = [line for line in done.stdout.splitlines() if line.startswith("ROWS ")]
            if done.returncode or not lines:
                text = f"<!-- {name}: failed ({done.returncode}): {done.stderr.strip().splitlines()[-1][:200] if done.stderr.strip() else ''} -->"
                rows_text = [text]
            else:
                rows = json.loads(lines[-1][5:])
                rows_text = [row_markdown(r, peak[r["dtype"]]) for r in rows]
                rows_text += [f"<!-- {name} {r['dtype']}: {'; '.join(r['notes'])} -->" for r in rows if r["batch"] == args.batch_sizes[0]]
            for line in rows_text:
                print(line, flush=True)
                if out:
                    out.write(line + "\n")
                    out.flush()
    if out:
        out.close()


if __name__ == "__main__":
    main()
