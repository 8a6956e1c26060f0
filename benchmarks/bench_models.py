"""Time videozoo's models, and the reference implementation with the same weights when it is importable.

    python benchmarks/bench_models.py --models mvit_v2_s swin3d_t --batch-sizes 1 8 --dtypes fp32 bf16

Input: each model's published clip (``num_frames`` × the preset's crop size) unless ``--shape T H W``.
Prints latency (median of ``--repeats`` after a warm-up), clips/s, achieved GFLOP/s (FLOPs counted
by torch's FlopCounterMode on this input, multiply-add = 2 FLOPs) next to the machine's measured
matmul peak, and, in an environment with torchvision / pytorchvideo (the side environment), the
reference's latency with identical weights and the speed-up. Run it with the machine otherwise idle.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

import videozoo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def reference_cases() -> dict:
    """The parity generator's reference cases whose library imports here (torchvision, pytorchvideo)."""
    cases = {}
    for path in sorted((ROOT / "tests" / "parity").glob("ref_*.py")):
        try:
            cases.update(importlib.import_module(f"parity.{path.stem}").CASES)
        except ImportError:
            pass
    return cases


def matched_pair(name: str, case) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The reference and our model, both holding the parity fill of the reference's tensors."""
    from parity.common import fill_state_dict
    from parity.replay import build_from_fixture

    ref = case.factory().eval()
    sd = ref.state_dict()
    fixture = {
        "model": name, "kwargs": case.kwargs, "wrap": case.wrap, "compare": case.compare,
        "keys": list(sd), "shapes": [list(t.shape) for t in sd.values()], "dtypes": [str(t.dtype).split(".")[1] for t in sd.values()],
    }
    ref.load_state_dict(fill_state_dict(fixture["keys"], fixture["shapes"], fixture["dtypes"]) | {k: v for k, v in sd.items() if not v.is_floating_point()})
    return ref, build_from_fixture(fixture)


def timed(fn, repeats: int) -> float:
    fn()  # warm-up (and one-off caches)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def matmul_peak(dtype: torch.dtype, n: int = 2048) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    return 2 * n**3 / timed(lambda: a @ b, 5) / 1e9


def count_flops(model: torch.nn.Module, x: torch.Tensor) -> float:
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        model(x)
    return counter.get_total_flops()


def default_shape(name: str) -> tuple[int, int, int]:
    member = videozoo.get_model_weights(name).DEFAULT
    crop = member.transforms().crop_size
    return member.meta["num_frames"], crop[0], crop[1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=None, help="model names (default: all)")
    parser.add_argument("--batch-sizes", nargs="*", type=int, default=[1, 8])
    parser.add_argument("--dtypes", nargs="*", choices=["fp32", "bf16"], default=["fp32", "bf16"])
    parser.add_argument("--shape", nargs=3, type=int, metavar=("T", "H", "W"), default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--no-reference", action="store_true", help="time videozoo only")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    cases = {} if args.no_reference else reference_cases()
    peaks = {d: matmul_peak(torch.float32 if d == "fp32" else torch.bfloat16) for d in args.dtypes}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; matmul peak: "
          + ", ".join(f"{d} {p:.0f} GFLOP/s" for d, p in peaks.items()))
    print(f"{'model':<26}{'input':<20}{'dtype':<6}{'latency ms':>11}{'clips/s':>9}{'GFLOP/s':>9}{'% peak':>8}"
          f"{'ref ms':>10}{'speed-up':>10}")
    for name in args.models or videozoo.list_models():
        torch.manual_seed(0)
        if name in cases:
            ref, model = matched_pair(name, cases[name])
        else:
            ref, model = None, videozoo.get_model(name).eval()
        t, h, w = args.shape or default_shape(name)
        for batch in args.batch_sizes:
            x = torch.randn(batch, 3, t, h, w)
            flops = count_flops(model, x)
            for dtype in args.dtypes:
                autocast = torch.autocast("cpu", dtype=torch.bfloat16) if dtype == "bf16" else contextlib.nullcontext()

                def run(m):
                    with torch.inference_mode(), autocast:
                        return (cases[name].run(m, x) if (m is ref and cases[name].run) else m(x))

                ours = timed(lambda: run(model), args.repeats)
                line = (f"{name:<26}{f'{batch}x3x{t}x{h}x{w}':<20}{dtype:<6}{ours * 1e3:>11.1f}{batch / ours:>9.2f}"
                        f"{flops / ours / 1e9:>9.1f}{100 * flops / ours / 1e9 / peaks[dtype]:>7.0f}%")
                if ref is not None:
                    theirs = timed(lambda: run(ref), args.repeats)
                    line += f"{theirs * 1e3:>10.1f}{theirs / ours:>9.2f}x"
                print(line, flush=True)


if __name__ == "__main__":
    main()
