"""What the checkpoints published on the Hugging Face Hub (TimeSformer, ViViT, VideoMAE) have in common."""

from __future__ import annotations

from typing import Any

__all__ = ["HF_URL", "hf_files"]

HF_URL = "https://huggingface.co"


def hf_files(repo: str) -> dict[str, Any]:
    """``Weights``' ``url`` and ``fallbacks`` for a Hub repository's weights: its ``model.safetensors``,
    then its ``pytorch_model.bin`` (tried where the first does not exist).

    Args:
        repo: ``"<organisation>/<repository>"``, e.g. ``"MCG-NJU/videomae-base-finetuned-kinetics"``.
    """
    return {
        "url": f"{HF_URL}/{repo}/resolve/main/model.safetensors",
        "fallbacks": (f"{HF_URL}/{repo}/resolve/main/pytorch_model.bin",),
    }
