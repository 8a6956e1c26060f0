"""bf16 against fp32 on every parity fixture: does the top-1 class survive, and by how much do logits move?

    python benchmarks/bf16_agreement.py [--markdown FILE]

Each classifier fixture of tests/parity/fixtures (the reference's filled weights in the publisher's
layout, loaded through the weights' adapter, and its input batch) runs in fp32, under bf16 autocast,
and as ``model.to(torch.bfloat16)`` — what ``dtype="bf16"`` runs on the torch path. Per fixture: whether
each clip's top-1 class is fp32's, and the largest logit difference relative to the largest fp32 logit.
Filled weights are not trained ones (their logits are flatter than a trained network's, so a top-1 flip
is likelier here); the trained model of references/ is checked by benchmarks/bench_int8.py's columns.
Accuracy does not depend on the machine's load.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from parity.common import FIXTURES, load_fixture, make_input  # noqa: E402
from parity.replay import build_from_fixture  # noqa: E402

import videozoo  # noqa: E402


def compare(path: Path) -> tuple[str, int, int, int, float, float] | None:
    fixture = load_fixture(path)
    if videozoo.get_model_task(fixture["model"]) != "classification":
        return None
    model = build_from_fixture(fixture)
    x = make_input(fixture["input_shape"], seed=fixture["input_seed"])
    half = copy.deepcopy(model).to(torch.bfloat16)
    with torch.inference_mode():
        fp32 = model(x).float()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = model(x).float()
        bf16 = half(x.bfloat16()).float()
    scale = fp32.abs().max().item()
    top = fp32.argmax(-1)
    return (
        path.stem, len(top), int((mixed.argmax(-1) == top).sum()), int((bf16.argmax(-1) == top).sum()),
        (mixed - fp32).abs().max().item() / scale, (bf16 - fp32).abs().max().item() / scale,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args(argv)
    lines = [
        "| fixture | clips | top-1 = fp32 (autocast) | top-1 = fp32 (bf16 weights) | max diff / max logit (autocast) | (bf16 weights) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    print("\n".join(lines), flush=True)
    totals = [0, 0, 0]
    for path in sorted(FIXTURES.glob("*.pt")):
        if path.stem == "transforms":
            continue
        row = compare(path)
        if row is None:
            continue
        name, n, mixed, bf16, d_mixed, d_bf16 = row
        totals = [totals[0] + n, totals[1] + mixed, totals[2] + bf16]
        lines.append(f"| `{name}` | {n} | {mixed} | {bf16} | {d_mixed:.3f} | {d_bf16:.3f} |")
        print(lines[-1], flush=True)
    lines.append(f"| all | {totals[0]} | {totals[1]} | {totals[2]} | | |")
    print(lines[-1])
    if args.markdown:
        args.markdown.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
