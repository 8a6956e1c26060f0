r"""Time videozoo's DETR against the publisher's (facebookresearch/detr's hub model) on one image size.

    DETR_REPO=/path/to/facebookresearch/detr PYTHONPATH=$PWD ~/ref-env/bin/python benchmarks/bench_detector.py
    ... --height 480 --width 640 --batch 1 --repeats 7 --threads 4 --model detr_resnet50

Run in the side environment (the reference needs torchvision; ``DETR_REPO`` is a checkout of the
publisher's repository, whose ``models/`` is imported; scipy, needed by its training matcher only, is
stood in for). Both networks hold the same weights (the reference's random initialisation, loaded into
ours through the weights' adapter, so the outputs are checked equal first) and run on the same
normalised batch at the publisher's evaluation size for the given frame (shorter side 800, longer at most
1333), under ``torch.inference_mode``, interleaved in one process: reference, ours, reference, ... after
one warm-up each. Prints the median and spread of the wall time per batch and the ratio. The network
alone is timed (not the resize or the post-processing, which the reference does not have for tensors).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import types

import torch

import videozoo


def reference_detr(backbone: str) -> torch.nn.Module:
    sys.path.insert(0, os.environ["DETR_REPO"])
    scipy = types.ModuleType("scipy")
    scipy.optimize = types.ModuleType("scipy.optimize")  # type: ignore[attr-defined]
    scipy.optimize.linear_sum_assignment = None  # type: ignore[attr-defined]
    sys.modules.setdefault("scipy", scipy)
    sys.modules.setdefault("scipy.optimize", scipy.optimize)  # type: ignore[attr-defined]
    import models.backbone as detr_backbone

    from hubconf import _make_detr

    detr_backbone.is_main_process = lambda: False  # no ImageNet download
    return _make_detr(backbone).eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="detr_resnet50", choices=["detr_resnet50", "detr_resnet101"])
    parser.add_argument("--height", type=int, default=480, help="the frame's height before the publisher's resize")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    reference = reference_detr("resnet50" if args.model == "detr_resnet50" else "resnet101")
    ours = videozoo.get_model(args.model).eval()
    member = videozoo.get_model_weights(args.model).DEFAULT
    ours.load_state_dict(member.adapt_state_dict({"model": reference.state_dict()}))
    size = ours.resized_size(args.height, args.width)
    x = torch.randn(args.batch, 3, *size)
    with torch.inference_mode():
        theirs = reference(x)
        logits, _ = ours(x)
    error = float((logits - theirs["pred_logits"]).abs().max() / theirs["pred_logits"].abs().max())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.model}, batch {args.batch} x 3 x "
          f"{size[0]} x {size[1]} (a {args.height}x{args.width} frame resized); max relative logit error {error:.1e}")
    times: dict[str, list[float]] = {"reference": [], "videozoo": []}
    runs = {"reference": lambda: reference(x), "videozoo": lambda: ours(x)}
    with torch.inference_mode():
        for name, run in runs.items():  # warm-up
            run()
        for _ in range(args.repeats):
            for name, run in runs.items():
                start = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)
    for name, values in times.items():
        print(f"{name:<10} median {statistics.median(values) * 1e3:8.1f} ms   min {min(values) * 1e3:8.1f}   max {max(values) * 1e3:8.1f}")
    ratio = statistics.median(times["reference"]) / statistics.median(times["videozoo"])
    print(f"speed-up of videozoo over the reference (median): {ratio:.2f}x")


if __name__ == "__main__":
    main()
