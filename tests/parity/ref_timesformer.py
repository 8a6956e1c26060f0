r"""Reference cases for TimeSformer: Hugging Face's ``TimesformerForVideoClassification`` (transformers).

The reference is built from a ``TimesformerConfig`` with the published architecture (ViT-B/16, divided
space-time attention, ``layer_norm_eps`` 1e-6, exact GELU) for a small clip, so its position and time
tables are built for that clip; our builder gets the same clip as ``num_frames`` / ``crop_size``.
Hugging Face takes frames as ``(B, T, C, H, W)``; ``run`` transposes our ``(B, C, T, H, W)`` input.
``timesformer_b`` and ``timesformer_hr`` are the same network for different clips (8x224 and 16x448
published); the stored cases use 3x48x48 and 4x64x64 clips.

Other clip sizes (``extra_shapes``, side environment only): the port resamples its tables itself, by
nearest-neighbour interpolation, as we do, so those checks cover the resampling too. Its blocks,
however, reshape the tokens with ``config.num_frames`` and ``config.image_size`` (the built clip), which
scrambles positions and frames at any other size; ``run`` sets both to the input's size for the call,
which is what the authors' code does and what our model does.

``PUBLISHED_CASES`` are the two models at full size at the published clips (and a shorter clip),
checked in the side environment only, without writing a fixture:

    cd tests && ~/ref-env/bin/python -m parity.ref_timesformer --published
"""

from __future__ import annotations

from functools import partial

import torch
from torch import Tensor, nn
from transformers import TimesformerConfig, TimesformerForVideoClassification

from parity.common import Case


def reference(frames: int, size: int, depth: int = 12, labels: int = 400) -> nn.Module:
    config = TimesformerConfig(image_size=size, num_frames=frames, num_hidden_layers=depth, num_labels=labels)
    return TimesformerForVideoClassification(config)


def run(model: nn.Module, x: Tensor) -> Tensor:
    """The reference's logits for our (B, C, T, H, W) clip, its blocks told the clip's size."""
    config = model.config
    built = (config.num_frames, config.image_size)
    config.num_frames, config.image_size = x.shape[2], x.shape[4]
    try:
        return model(pixel_values=x.transpose(1, 2)).logits
    finally:
        config.num_frames, config.image_size = built


def _case(frames: int, size: int, extra: list[tuple[int, ...]]) -> Case:
    return Case(
        factory=partial(reference, frames, size),
        input_shape=(1, 3, frames, size, size),
        kwargs={"num_frames": frames, "crop_size": size},
        run=run,
        extra_shapes=extra,
    )


# Stored: 3 frames of 3x3 patches (4 frames of 4x4 for -HR). Side environment: batch 2 at the built clip,
# and another length with non-square frames (nearest-neighbour resampling of both tables).
CASES = {
    "timesformer_b": _case(3, 48, [(2, 3, 3, 48, 48), (2, 3, 5, 64, 32)]),
    "timesformer_hr": _case(4, 64, [(2, 3, 4, 64, 64), (1, 3, 2, 48, 80)]),
}

PUBLISHED_CASES = {
    "timesformer_b": Case(
        factory=partial(reference, 8, 224),
        input_shape=(1, 3, 8, 224, 224),
        kwargs={},
        run=run,
        extra_shapes=[(1, 3, 4, 224, 224), (1, 3, 16, 160, 192)],
    ),
    "timesformer_hr": Case(
        factory=partial(reference, 16, 448),
        input_shape=(1, 3, 16, 448, 448),
        kwargs={},
        run=run,
        extra_shapes=[(1, 3, 8, 224, 224)],
    ),
}



if __name__ == "__main__":
    from parity.make_fixtures import check_published

    import sys

    torch.set_grad_enabled(False)
    names = [a for a in sys.argv[1:] if not a.startswith("--")] or list(PUBLISHED_CASES)
    if "--published" in sys.argv:
        for model_name in names:
            check_published(model_name, PUBLISHED_CASES[model_name])
