"""Where the time goes: PyTorch's profile of videozoo's eager forward beside OpenVINO's own (``PERF_COUNT``).

    python benchmarks/profile_engines.py --models r3d_18 swin3d_t --dtype fp32 --repeats 5
    python benchmarks/profile_engines.py --models r2plus1d_18 s3d --against compile

Per model (random weights, batch 1, its published clip, ``--threads`` threads): the eager forward under
``torch.profiler`` and the graph ``videozoo export`` writes compiled by OpenVINO with ``PERF_COUNT``, both
grouped by kind of operation (PyTorch: the operator; OpenVINO: the node type and the kernel it chose),
milliseconds per forward (mean of ``--repeats`` after a warm-up) and the share of the forward. The two
columns of one kind are the same work done by each engine, so a kind where OpenVINO's time is much lower
is where its kernels (or its fusion of the nodes around them) win. ``--against compile`` profiles
``torch.compile`` of the same model instead of OpenVINO (Inductor's generated kernels appear under their
``cpp_fused_...`` names, the library calls it makes under their operator names). Run it with the machine
otherwise idle.
"""

from __future__ import annotations

import argparse
import collections
import tempfile
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

import videozoo
from videozoo.tasks.export import export_onnx, published_clip


def torch_profile(model: torch.nn.Module, x: torch.Tensor, repeats: int) -> dict[str, float]:
    """Self CPU milliseconds per forward of each operator."""
    with torch.inference_mode():
        model(x)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(repeats):
                model(x)
    return {e.key: e.self_cpu_time_total / 1e3 / repeats for e in prof.key_averages()}


def openvino_profile(graph: Path, x: torch.Tensor, dtype: str, threads: int, repeats: int) -> dict[str, float]:
    """Real milliseconds per forward of each (node type, kernel) OpenVINO ran."""
    from videozoo.tasks.engines import openvino_core

    config = {"INFERENCE_NUM_THREADS": threads, "PERF_COUNT": True, "INFERENCE_PRECISION_HINT": "bf16" if dtype == "bf16" else "f32"}
    request = openvino_core().compile_model(str(graph), "CPU", config).create_infer_request()
    request.infer({"video": x.numpy()})
    totals: dict[str, float] = collections.defaultdict(float)
    for _ in range(repeats):
        request.infer({"video": x.numpy()})
        for info in request.get_profiling_info():
            if info.status == info.Status.EXECUTED:
                totals[f"{info.node_type} ({info.exec_type})"] += info.real_time.total_seconds() * 1e3
    return {k: v / repeats for k, v in totals.items()}


def show(title: str, times: dict[str, float], top: int) -> None:
    total = sum(times.values())
    print(f"\n{title}: {total:.1f} ms per forward\n\n| operation | ms | share |\n|---|---:|---:|")
    for name, ms in sorted(times.items(), key=lambda kv: -kv[1])[:top]:
        print(f"| `{name}` | {ms:.1f} | {100 * ms / total:.0f} % |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--against", choices=("openvino", "compile"), default="openvino")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    for name in args.models:
        torch.manual_seed(0)
        model = videozoo.get_model(name).eval()
        x = torch.randn(1, 3, *published_clip(videozoo.get_model_weights(name).DEFAULT))
        with tempfile.TemporaryDirectory() as tmp:
            graph = Path(tmp) / "model.onnx"
            export_onnx(model, x, graph, dynamic_batch=False)  # the batch-1 graph OpenVINO compiles anyway
            ours = model if args.dtype == "fp32" else model.to(torch.bfloat16)
            eager = torch_profile(ours, x.to(next(ours.parameters()).dtype), args.repeats)
            if args.against == "compile":
                engine = torch_profile(torch.compile(ours), x.to(next(ours.parameters()).dtype), args.repeats)
            else:
                engine = openvino_profile(graph, x, args.dtype, args.threads, args.repeats)
        print(f"\n## {name} {tuple(x.shape[2:])} {args.dtype}")
        show("videozoo eager (torch.profiler, self time)", eager, args.top)
        show("torch.compile (torch.profiler, self time)" if args.against == "compile" else "OpenVINO (PERF_COUNT, real time)", engine, args.top)


if __name__ == "__main__":
    main()
