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


# A column: its header, its alignment row (``---`` or ``---:``) and its cell, from (member, dataset, metrics).
Column = tuple[str, str, Callable[[videozoo.Weights, str, dict], str]]


def _dataset(member: videozoo.Weights) -> tuple[str, dict]:
    """The data set the member was evaluated on and its metrics; an encoder without a classifier has none."""
    meta = member.meta
    if meta.get("embedding_only", False) and not meta.get("_metrics"):
        return "– (features only)", {}
    [(dataset, metrics)] = meta["_metrics"].items()
    return dataset, metrics


def _params(member: videozoo.Weights, dataset: str, metrics: dict) -> str:
    return f"{member.meta['num_params'] / 1e6:.1f}"


def _ops(member: videozoo.Weights, dataset: str, metrics: dict) -> str:
    return f"{member.meta['_ops']:.1f}"


def _clip_cell(member: videozoo.Weights, dataset: str, metrics: dict) -> str:
    return _clip(member.meta)


def _crop(member: videozoo.Weights, dataset: str, metrics: dict) -> str:
    crop = member.transforms().crop_size
    return f"{crop[0]}×{crop[1]}"


def _licence(member: videozoo.Weights, dataset: str, metrics: dict) -> str:
    return member.meta["license"]


def _metric_column(header: str, key: str) -> Column:
    return header, "---:", lambda member, dataset, metrics: _metric(metrics, key)


def _dataset_column(header: str) -> Column:
    return header, "---", lambda member, dataset, metrics: dataset


def table(task: str, columns: list[Column], link: Callable[[str], str] | None = None) -> str:
    """One row per published weights entry of ``task``'s models, in list_models() order, each model's
    default first: the model's name and the weights member, then ``columns``.

    ``link(name)``, if given, is the address the model's name links to."""
    lines = [
        "| " + " | ".join(["Model", "Weights"] + [header for header, _, _ in columns]) + " |",
        "|" + "|".join(["---", "---"] + [align for _, align, _ in columns]) + "|",
    ]
    for name in videozoo.list_models(task=task):
        enum = videozoo.get_model_weights(name)
        for member in members(name):
            dataset, metrics = _dataset(member)
            default = " (default)" if member is enum.DEFAULT else ""
            model = f"[`{name}`]({link(name)})" if link else f"`{name}`"
            cells = [model, f"`{enum.__name__}.{member.name}`{default}"] + [cell(member, dataset, metrics) for _, _, cell in columns]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def model_table(link: Callable[[str], str] | None = None) -> str:
    """The classifiers (task ``classification``): one row per weights entry."""
    columns: list[Column] = [
        _dataset_column("Dataset"),
        _metric_column("acc@1", "acc@1"),
        _metric_column("acc@5", "acc@5"),
        _metric_column("mAP", "mAP"),
        ("Params (M)", "---:", _params),
        ("GFLOPs / view", "---:", _ops),
        ("Clip: frames × stride @ fps", "---", _clip_cell),
        ("Crop", "---", _crop),
        ("Views", "---", lambda member, dataset, metrics: _views(member.meta)),
        ("Licence", "---", _licence),
    ]
    return table("classification", columns, link)


def person_detector_table(link: Callable[[str], str] | None = None) -> str:
    """The person detectors (task ``person_detection``): one row per weights entry."""
    columns: list[Column] = [
        _dataset_column("Dataset"),
        _metric_column("box AP", "box_map"),
        ("Params (M)", "---:", _params),
        ("Input", "---", lambda member, dataset, metrics: member.meta["input"]),
        ("Licence", "---", _licence),
    ]
    return table("person_detection", columns, link)


def action_detector_table(link: Callable[[str], str] | None = None) -> str:
    """The action detectors (task ``action_detection``): one row per weights entry."""
    columns: list[Column] = [
        _dataset_column("Dataset"),
        _metric_column("frame-mAP", "mAP"),
        ("Params (M)", "---:", _params),
        ("GFLOPs / clip", "---:", _ops),
        ("Clip: frames × stride @ fps", "---", _clip_cell),
        ("Box short side", "---", lambda member, dataset, metrics: f"{member.meta.get('box_short_side', 256)} px"),
        ("Licence", "---", _licence),
    ]
    return table("action_detection", columns, link)


def video_text_table(link: Callable[[str], str] | None = None) -> str:
    """The video-text models (task ``video_text``): one row per weights entry."""
    columns: list[Column] = [
        _dataset_column("Evaluated on"),
        _metric_column("acc@1", "acc@1"),
        ("Params (M)", "---:", _params),
        ("GFLOPs / view", "---:", _ops),
        ("Frames", "---", _clip_cell),
        ("Crop", "---", _crop),
        ("Licence", "---", _licence),
    ]
    return table("video_text", columns, link)


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
