"""What the command line prints: tables of predictions, of the zoo and of one weights member."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

__all__ = ["recipe_text", "zoo_rows", "print_zoo", "prediction_table", "info_lines", "print_table"]


def recipe_text(member: Any) -> str:
    """``16x5 @30fps 256px, 10x3 views``: a member's clip, crop and evaluation views in one line."""
    try:
        recipe = member.recipe
    except (ValueError, KeyError, TypeError):
        return "?"
    crop = getattr(member.transforms(), "crop_size", None)
    crop_text = f" {crop[0]}px" if crop else ""
    rate = f"@{recipe.frame_rate:g}fps" if recipe.frame_rate else "@native fps"
    frames = f"{recipe.num_frames} segments" if recipe.sampling == "segments" else f"{recipe.num_frames}x{recipe.sampling_rate}"
    return f"{frames} {rate}{crop_text}, {recipe.num_clips}x{recipe.num_crops} views"


def _metrics(meta: dict[str, Any]) -> tuple[str | None, dict[str, float]]:
    """The data set a weights entry was evaluated on and its published metrics (acc@1/acc@5 or mAP)."""
    for dataset, metrics in meta.get("_metrics", {}).items():
        return dataset, dict(metrics)
    return None, {}


def zoo_rows(names: Sequence[str]) -> list[dict[str, Any]]:
    """One row per weights member of each model, the default first (``videozoo models --json``)."""
    import videozoo

    rows = []
    for name in names:
        enum = videozoo.get_model_weights(name)
        default = enum.DEFAULT
        for member in [default] + [m for m in enum if m is not default]:
            meta = member.meta
            dataset, metrics = _metrics(meta)
            rows.append({
                "name": name, "weights": str(member), "default": member is default, "dataset": dataset,
                "metrics": metrics, "params": meta.get("num_params"), "gflops": meta.get("_ops"),
                "input": recipe_text(member), "license": meta.get("license"),
            })  # fmt: skip
    return rows


def print_zoo(rows: list[dict[str, Any]], out: TextIO) -> None:
    """The zoo as a table, a line per weights member."""
    table = [("name", "weights", "dataset", "metrics", "params", "GFLOPs", "input (frames x stride @rate, crop, clips x crops)", "license")]
    for r in rows:
        table.append((
            r["name"],
            r["weights"].partition(".")[2] + ("*" if r["default"] else ""),
            r["dataset"] or "-",
            "  ".join(f"{key} {value:.2f}" for key, value in r["metrics"].items()) or "-",
            f"{r['params'] / 1e6:.1f}M" if r["params"] else "-",
            f"{r['gflops']:.2f}" if r["gflops"] is not None else "-",
            r["input"],
            r["license"] or "-",
        ))  # fmt: skip
    print_table(table, out, right={4, 5})
    out.write("* the model's default weights\n")


def prediction_table(prediction: Any, header: dict[str, Any]) -> str:
    """One video's top-k (and, for multi-label weights, its labels above the threshold)."""
    clips, crops = header["clips"], header["crops"]
    views = f"{clips} clip{'s' if clips != 1 else ''} x {crops} crop{'s' if crops != 1 else ''}"
    width = max([len("label")] + [len(label) for label, _ in prediction.top_k])
    lines = [f"{prediction.video}  ({header['model']}, {views})", f"  {'#':>2}  {'label':<{width}}  probability"]
    for rank, (label, p) in enumerate(prediction.top_k, start=1):
        lines.append(f"  {rank:>2}  {label:<{width}}  {p:11.4f}")
    if header["multi_label"]:
        found = "; ".join(f"{label} ({p:.4f})" for label, p in prediction.labels) or "none"
        lines.append(f"  labels with probability >= {header['threshold']:g}: {found}")
    return "\n".join(lines) + "\n"


def info_lines(member: Any, cache: Path) -> list[str]:
    """``videozoo info``: where a member's file lives, its licence, categories, recipe, preset and meta."""
    meta = dict(member.meta)
    categories = meta.pop("categories", [])
    transforms = member.transforms()
    describe = getattr(transforms, "describe", None)
    lines = [
        f"weights:           {member!r}",
        f"url:               {member.url}",
        *(f"  or else:         {url}" for url, _ in member.sources[1:]),
        f"cache file:        {cache} ({'present' if cache.is_file() else 'not downloaded'})",
        f"license:           {meta.pop('license', 'not stated')}",
        f"categories:        {len(categories)} ({', '.join(categories[:4])}{', ...' if len(categories) > 4 else ''})"
        if member.has_labels
        else "categories:        none (an encoder's weights: clip embeddings only)",
    ]
    if "num_frames" in meta:  # a clip model (a person detector takes frames: its meta says its input)
        lines += [f"clips:             {recipe_text(member)}", f"transforms:        {describe() if describe else repr(transforms)}"]
    for key in sorted(meta):
        if key == "_metrics":
            for dataset, metrics in meta[key].items():
                lines.append(f"{dataset + ':':<18} " + ", ".join(f"{k} {v}" for k, v in metrics.items()))
        else:
            lines.append(f"{key + ':':<18} {meta[key]}")
    return lines


def print_table(rows: Sequence[Sequence[str]], out: TextIO, right: set[int]) -> None:
    """Rows in aligned columns; the columns in ``right`` are right-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))]
        out.write("  ".join(cells).rstrip() + "\n")
