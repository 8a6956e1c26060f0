r"""Time videozoo's AVA action detectors against PyTorchVideo's (0.1.5) on one clip and a few boxes.

    PYTHONPATH=$PWD ~/ref-env/bin/python benchmarks/bench_action_detection.py
    ... --model slowfast_r50_detection --height 256 --width 341 --boxes 5 --repeats 7 --threads 4

Run in the side environment (the reference is pytorchvideo's ``slow_r50_detection`` /
``slowfast_r50_detection`` with torchvision's RoIAlign). Both networks hold the same weights (the
reference's random initialisation, loaded into ours through the weights' adapter from a file in
PyTorchVideo's layout, so the outputs are checked equal first: ours are logits, the reference's the
sigmoid of them) and run on the same normalised clip at the published frame count (Slow 4, SlowFast 32
Fast frames, the Slow ones picked as PyTorchVideo's demo does) with ``--boxes`` person boxes, under
``torch.inference_mode``, interleaved in one process (reference, ours, reference, ... after one warm-up
each). Prints the median and spread of the wall time per clip and the ratio. ``--roi-only`` times the
RoIAlign alone (ours against torchvision's) on the backbone's map.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from pytorchvideo.models.hub import resnet as hub_resnet
from pytorchvideo.models.hub import slowfast as hub_slowfast

import videozoo
from videozoo.models.layers import roi_align

REFERENCES = {
    "slow_r50_detection": (hub_resnet.slow_r50_detection, 4, None),
    "slowfast_r50_detection": (hub_slowfast.slowfast_r50_detection, 32, 4),
}


def boxes_for(count: int, height: int, width: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    rows = []
    for _ in range(count):
        w, h = float(torch.randint(width // 8, width // 3, (1,), generator=g)), float(torch.randint(height // 3, height, (1,), generator=g))
        x1, y1 = float(torch.randint(0, int(width - w), (1,), generator=g)), float(torch.randint(0, int(height - h) + 1, (1,), generator=g))
        rows.append([0.0, x1, y1, x1 + w, y1 + h])
    return torch.tensor(rows)


def interleaved(runs: dict, repeats: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in runs}
    with torch.inference_mode():
        for run in runs.values():  # warm-up
            run()
        for _ in range(repeats):
            for name, run in runs.items():
                start = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="slow_r50_detection", choices=sorted(REFERENCES))
    parser.add_argument("--height", type=int, default=256, help="the clip's height (the recipe's short side: 256)")
    parser.add_argument("--width", type=int, default=341)
    parser.add_argument("--boxes", type=int, default=5, help="person boxes in the clip")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--roi-only", action="store_true", help="time RoIAlign alone (ours against torchvision's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    builder, frames, alpha = REFERENCES[args.model]
    reference = builder(pretrained=False).eval()
    ours = videozoo.get_model(args.model).eval()
    member = videozoo.get_model_weights(args.model).DEFAULT
    ours.load_state_dict(member.adapt_state_dict({"model_state": reference.state_dict()}))
    x = torch.randn(1, 3, frames, args.height, args.width)
    boxes = boxes_for(args.boxes, args.height, args.width)
    pathways = x if alpha is None else [torch.index_select(x, 2, torch.linspace(0, frames - 1, frames // alpha).long()), x]
    if args.roi_only:
        from torchvision.ops import roi_align as tv_roi_align

        with torch.inference_mode():
            features = ours.forward_features(x)
            pooled = torch.cat([m.mean(2) for m in (features if isinstance(features, list) else [features])], 1).contiguous()
        runs = {
            "reference": lambda: tv_roi_align(pooled, boxes, (7, 7), 1 / 16, 0, False),
            "videozoo": lambda: roi_align(pooled, boxes, [7, 7], 1 / 16, 0, False),
        }
        what = f"RoIAlign of {args.boxes} boxes on a {list(pooled.shape)} map"
    else:
        with torch.inference_mode():
            error = float((ours(x, boxes).sigmoid() - reference(pathways if alpha is None else [*pathways], boxes)).abs().max())
        print(f"max |sigmoid(ours) - reference| = {error:.1e}")
        # PyTorchVideo's multipathway network replaces the items of the list it is given: a new list each call
        runs = {"reference": lambda: reference(pathways if alpha is None else [*pathways], boxes), "videozoo": lambda: ours(x, boxes)}
        what = f"{args.model}, 1 x 3 x {frames} x {args.height} x {args.width} with {args.boxes} boxes"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {what}")
    times = interleaved(runs, args.repeats)
    for name, values in times.items():
        print(f"{name:<10} median {statistics.median(values) * 1e3:8.1f} ms   min {min(values) * 1e3:8.1f}   max {max(values) * 1e3:8.1f}")
    ratio = statistics.median(times["reference"]) / statistics.median(times["videozoo"])
    print(f"reference / videozoo = {ratio:.2f} (above 1: videozoo is faster)")


if __name__ == "__main__":
    main()
