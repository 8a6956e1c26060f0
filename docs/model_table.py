"""The model table (one row per published weights entry), generated from the weights' metadata.

    python docs/model_table.py          # print the table

It is the table of docs/models/index.md, which ``python docs/gen_docs.py --write`` writes (with a link
from each model name to its page); tests/test_docs.py fails when the committed page is stale.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import videozoo

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


def members(name: str) -> list:
    """A model's weights members, its default first."""
    enum = videozoo.get_model_weights(name)
    return [enum.DEFAULT] + [m for m in enum if m is not enum.DEFAULT]


def model_table(link: Callable[[str], str] | None = None) -> str:
    """One row per published weights entry, in list_models() order, each model's default first.

    ``link(name)``, if given, is the address the model's name links to."""
    lines = [
        "| Model | Weights | Dataset | acc@1 | acc@5 | mAP | Params (M) | GFLOPs / view | Clip: frames × stride @ fps | Crop | Views | Licence |",
        "|---|---|---|---:|---:|---:|---:|---:|---|---|---|---|",
    ]
    for name in videozoo.list_models(task="classification"):
        enum = videozoo.get_model_weights(name)
        for member in members(name):
            meta = member.meta
            if meta.get("embedding_only", False) and not meta.get("_metrics"):  # an encoder without a classifier
                dataset, metrics = "– (features only)", {}
            else:
                [(dataset, metrics)] = meta["_metrics"].items()
            preset = member.transforms()
            default = " (default)" if member is enum.DEFAULT else ""
            model = f"[`{name}`]({link(name)})" if link else f"`{name}`"
            lines.append(
                f"| {model} | `{enum.__name__}.{member.name}`{default} | {dataset} "
                f"| {_metric(metrics, 'acc@1')} | {_metric(metrics, 'acc@5')} | {_metric(metrics, 'mAP')} "
                f"| {meta['num_params'] / 1e6:.1f} | {meta['_ops']:.1f} | {_clip(meta)} "
                f"| {preset.crop_size[0]}×{preset.crop_size[1]} | {_views(meta)} | {meta['license']} |"
            )
    return "\n".join(lines)


def person_detector_table(link: Callable[[str], str] | None = None) -> str:
    """The person detectors (task ``person_detection``): one row per weights entry."""
    lines = [
        "| Model | Weights | Dataset | box AP | Params (M) | Input | Licence |",
        "|---|---|---|---:|---:|---|---|",
    ]
    for name in videozoo.list_models(task="person_detection"):
        enum = videozoo.get_model_weights(name)
        for member in members(name):
            meta = member.meta
            [(dataset, metrics)] = meta["_metrics"].items()
            default = " (default)" if member is enum.DEFAULT else ""
            model = f"[`{name}`]({link(name)})" if link else f"`{name}`"
            lines.append(
                f"| {model} | `{enum.__name__}.{member.name}`{default} | {dataset} | {_metric(metrics, 'box_map')} "
                f"| {meta['num_params'] / 1e6:.1f} | {meta['input']} | {meta['license']} |"
            )
    return "\n".join(lines)


def action_detector_table(link: Callable[[str], str] | None = None) -> str:
    """The action detectors (task ``action_detection``): one row per weights entry."""
    lines = [
        "| Model | Weights | Dataset | frame-mAP | Params (M) | GFLOPs / clip | Clip: frames × stride @ fps | Box short side | Licence |",
        "|---|---|---|---:|---:|---:|---|---|---|",
    ]
    for name in videozoo.list_models(task="action_detection"):
        enum = videozoo.get_model_weights(name)
        for member in members(name):
            meta = member.meta
            [(dataset, metrics)] = meta["_metrics"].items()
            default = " (default)" if member is enum.DEFAULT else ""
            model = f"[`{name}`]({link(name)})" if link else f"`{name}`"
            lines.append(
                f"| {model} | `{enum.__name__}.{member.name}`{default} | {dataset} | {_metric(metrics, 'mAP')} "
                f"| {meta['num_params'] / 1e6:.1f} | {meta['_ops']:.1f} | {_clip(meta)} | {meta.get('box_short_side', 256)} px "
                f"| {meta['license']} |"
            )
    return "\n".join(lines)


def video_text_table(link: Callable[[str], str] | None = None) -> str:
    """The video-text models (task ``video_text``): one row per weights entry."""
    lines = [
        "| Model | Weights | Evaluated on | acc@1 | Params (M) | GFLOPs / view | Frames | Crop | Licence |",
        "|---|---|---|---:|---:|---:|---|---|---|",
    ]
    for name in videozoo.list_models(task="video_text"):
        enum = videozoo.get_model_weights(name)
        for member in members(name):
            meta = member.meta
            [(dataset, metrics)] = meta["_metrics"].items()
            preset = member.transforms()
            default = " (default)" if member is enum.DEFAULT else ""
            model = f"[`{name}`]({link(name)})" if link else f"`{name}`"
            lines.append(
                f"| {model} | `{enum.__name__}.{member.name}`{default} | {dataset} | {_metric(metrics, 'acc@1')} "
                f"| {meta['num_params'] / 1e6:.1f} | {meta['_ops']:.1f} | {_clip(meta)} "
                f"| {preset.crop_size[0]}×{preset.crop_size[1]} | {meta['license']} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:]:
        raise SystemExit("usage: python docs/model_table.py  (the page is written by docs/gen_docs.py --write)")
    print(model_table())
    print()
    print(person_detector_table())
    print()
    print(action_detector_table())
    print()
    print(video_text_table())
