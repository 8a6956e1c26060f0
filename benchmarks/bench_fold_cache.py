"""BatchNorm folded once and kept, against folded again on every call (issue 28, item 4).

    python benchmarks/bench_fold_cache.py --models r3d_18 r2plus1d_18 slow_r50 --repeats 7

The convolutional families run each convolution with its BatchNorm folded into the filters
(``layers.conv_bn_folded``); the folded filters, in oneDNN's layout, are kept between calls while the
parameters stay the same. Per model (random weights, batch 1, its published clip, ``--threads``
threads, inference mode): the eager forward with the kept filters, and the same forward with the cache
emptied before each call (the filters folded and laid out again every call, as before the cache),
interleaved rounds, median of ``--repeats``. Run it with the machine otherwise idle.
"""

from __future__ import annotations

import argparse

import torch
from _timing import interleaved_medians

import videozoo
from videozoo.models.layers import kernels
from videozoo.tasks.export import published_clip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    videozoo.reuse_freed_memory()  # as the videozoo command does
    print("| model | clip | kept ms | folded every call ms | kept / every call |\n|---|---|---:|---:|---:|")
    for name in args.models:
        torch.manual_seed(0)
        model = videozoo.get_model(name).eval()
        clip = published_clip(videozoo.get_model_weights(name).DEFAULT)
        x = torch.randn(1, 3, *clip)

        def every_call() -> torch.Tensor:
            kernels._FOLDED.clear()
            return model(x)

        runs = {"kept": lambda: model(x), "every call": every_call}
        with torch.inference_mode():
            for run in runs.values():
                run()
            med = interleaved_medians(runs, args.repeats)
        print(f"| `{name}` | {'x'.join(map(str, clip))} | {med['kept'] * 1e3:.0f} | {med['every call'] * 1e3:.0f} | "
              f"{med['kept'] / med['every call']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
