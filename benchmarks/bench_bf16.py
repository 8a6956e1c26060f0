"""bf16 against fp32 for videozoo's models on CPU, in one process, interleaved rounds.

    python benchmarks/bench_bf16.py --models r3d_18 r2plus1d_18 swin3d_t mvit_v2_s --shape 16 112 112

Times each model in fp32, under ``torch.autocast("cpu", torch.bfloat16)`` and converted with
``model.to(torch.bfloat16)`` (batch 1, random weights, ``--threads`` threads), and reports the speed-up
of each bf16 path over fp32 (median of ``--repeats`` rounds) and whether its top-1 agrees. Input: the
model's published clip unless ``--shape T H W``. Run it with the machine otherwise idle.
"""

from __future__ import annotations

import argparse
import copy

import torch
from _timing import interleaved_medians

import videozoo


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--shape", nargs=3, type=int, metavar=("T", "H", "W"), default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    videozoo.reuse_freed_memory()  # as the videozoo command does
    print("| model | clip | fp32 ms | autocast bf16 | model.to(bf16) | top-1 agrees |\n|---|---|---:|---:|---:|---|")
    for name in args.models:
        torch.manual_seed(0)
        model = videozoo.get_model(name).eval()
        if args.shape:
            t, h, w = args.shape
        else:
            member = videozoo.get_model_weights(name).DEFAULT
            t, (h, w) = member.recipe.num_frames, member.transforms().crop_size
        x = torch.randn(1, 3, t, h, w, generator=torch.Generator().manual_seed(0))
        runs = {"fp32": lambda: model(x)}

        def autocast() -> torch.Tensor:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return model(x)

        runs["autocast"] = autocast
        try:
            bf16 = copy.deepcopy(model).to(torch.bfloat16)
            bf16(x[:, :, :t].bfloat16())
            runs["bf16"] = lambda: bf16(x.bfloat16())
        except (RuntimeError, NotImplementedError) as e:
            print(f"<!-- {name}: model.to(bf16) fails: {str(e)[:80]} -->")
        with torch.inference_mode():
            tops = {k: int(run().float().argmax()) for k, run in runs.items()}  # warm-up
            med = interleaved_medians(runs, args.repeats)
        speed = {k: f"{med['fp32'] / med[k]:.2f}x" if k in med else "fails" for k in ("autocast", "bf16")}
        agree = all(v == tops["fp32"] for v in tops.values())
        print(f"| `{name}` | {t}x{h}x{w} | {med['fp32'] * 1e3:.0f} | {speed['autocast']} | {speed['bf16']} | {agree} |",
              flush=True)


if __name__ == "__main__":
    main()
