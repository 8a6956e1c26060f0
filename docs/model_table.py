"""Generate the README's model table from the weights' metadata.

    python docs/model_table.py          # print the table
    python docs/model_table.py --write  # rewrite it in README.md between the markers

tests/test_readme.py fails when README.md holds a table other than the one this prints.
"""

from __future__ import annotations

import sys
from pathlib import Path

import videozoo

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- model-table:start -->", "<!-- model-table:end -->"


def _views(meta: dict) -> str:
    return f"{meta['num_clips']}×{meta['num_crops']}"


def model_table() -> str:
    """One row per published weights entry, in list_models() order."""
    lines = [
        "| Model | Weights | Kinetics-400 acc@1 | acc@5 | Params (M) | GFLOPs / view | Clip: frames × stride @ fps | Crop | Views |",
        "|---|---|---:|---:|---:|---:|---|---|---|",
    ]
    for name in videozoo.list_models():
        enum = videozoo.get_model_weights(name)
        for member in enum:
            meta = member.meta
            metrics = meta["_metrics"]["Kinetics-400"]
            preset = member.transforms()
            default = " (default)" if member is enum.DEFAULT else ""
            lines.append(
                f"| `{name}` | `{enum.__name__}.{member.name}`{default} | {metrics['acc@1']:.2f} | {metrics['acc@5']:.2f} "
                f"| {meta['num_params'] / 1e6:.1f} | {meta['_ops']:.1f} "
                f"| {meta['num_frames']} × {meta['sampling_rate']} @ {meta['frame_rate']:g} "
                f"| {preset.crop_size[0]}×{preset.crop_size[1]} | {_views(meta)} |"
            )
    return "\n".join(lines)


def readme_with_table(text: str) -> str:
    head, start, rest = text.partition(START)
    _, end, tail = rest.partition(END)
    if not start or not end:
        raise SystemExit(f"README.md lacks the {START} / {END} markers.")
    return f"{head}{START}\n{model_table()}\n{END}{tail}"


def main(argv: list[str]) -> None:
    if argv == ["--write"]:
        README.write_text(readme_with_table(README.read_text()))
        print(f"updated {README}")
    else:
        print(model_table())


if __name__ == "__main__":
    main(sys.argv[1:])
