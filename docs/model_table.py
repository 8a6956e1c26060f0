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
NONE = "–"


def _views(meta: dict) -> str:
    return f"{meta['num_clips']}×{meta['num_crops']}"


def _clip(meta: dict) -> str:
    """Frames × stride @ fps, or the frames of a segment recipe (one clip spread over the whole video);
    "native" where the recipe counts frames at the video's own rate."""
    rate = "native" if meta["frame_rate"] is None else f"{meta['frame_rate']:g}"
    if meta.get("sampling") == "segments":
        return f"{meta['num_frames']} segments @ {rate}"
    return f"{meta['num_frames']} × {meta['sampling_rate']} @ {rate}"


def _metric(metrics: dict, key: str) -> str:
    return f"{metrics[key]:.2f}" if key in metrics else NONE


def model_table() -> str:
    """One row per published weights entry, in list_models() order, each model's default first."""
    lines = [
        "| Model | Weights | Dataset | acc@1 | acc@5 | mAP | Params (M) | GFLOPs / view | Clip: frames × stride @ fps | Crop | Views | Licence |",
        "|---|---|---|---:|---:|---:|---:|---:|---|---|---|---|",
    ]
    for name in videozoo.list_models():
        enum = videozoo.get_model_weights(name)
        for member in [enum.DEFAULT] + [m for m in enum if m is not enum.DEFAULT]:
            meta = member.meta
            if meta.get("embedding_only", False):  # an encoder published without a classifier
                dataset, metrics = "– (features only)", {}
            else:
                [(dataset, metrics)] = meta["_metrics"].items()
            preset = member.transforms()
            default = " (default)" if member is enum.DEFAULT else ""
            lines.append(
                f"| `{name}` | `{enum.__name__}.{member.name}`{default} | {dataset} "
                f"| {_metric(metrics, 'acc@1')} | {_metric(metrics, 'acc@5')} | {_metric(metrics, 'mAP')} "
                f"| {meta['num_params'] / 1e6:.1f} | {meta['_ops']:.1f} | {_clip(meta)} "
                f"| {preset.crop_size[0]}×{preset.crop_size[1]} | {_views(meta)} | {meta['license']} |"
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
