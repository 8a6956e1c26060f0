r"""Reference cases for ViViT: Hugging Face's ``VivitForVideoClassification`` (transformers).

The reference is built from a ``VivitConfig`` with the published architecture (ViT-B, 2x16x16 tubelets,
``gelu_fast`` MLPs, ``layer_norm_eps`` 1e-6, separate query/key/value projections that our adapter fuses)
for a small clip, so its position table is built for that clip; our builder gets the same clip as
``num_frames`` / ``crop_size``. Hugging Face takes frames as ``(B, T, C, H, W)``; ``run`` transposes our
``(B, C, T, H, W)`` input. The stored case uses a 4x32x32 clip (2x2x2 tubelets).

The reference accepts only its built clip (its ``interpolate_pos_encoding`` resamples the table as one
square image grid, which does not fit a video's ``T x H x W`` tubelets). For the other accepted sizes
(``extra_shapes``, side environment only), ``run`` gives it the table our model uses there: its own table
resampled with videozoo's ``resize_pos_embed`` (trilinear), and the matching ``image_size``; so those
checks cover everything but the resampling, which is ours by definition. They are square: the port
checks the frame size against one ``image_size``.

``PUBLISHED_CASES`` is the model at the published 32x224x224 (and a shorter clip), checked in the side
environment only, without writing a fixture:

    cd tests && ~/ref-env/bin/python -m parity.ref_vivit --published
"""

from __future__ import annotations

from functools import partial

import torch
from torch import Tensor, nn
from transformers import VivitConfig, VivitForVideoClassification

from parity.common import Case
from videozoo.models.layers import resize_pos_embed


def reference(frames: int, size: int, depth: int = 12, labels: int = 400) -> nn.Module:
    config = VivitConfig(
        image_size=size, num_frames=frames, num_hidden_layers=depth, num_labels=labels, attn_implementation="eager"
    )
    return VivitForVideoClassification(config)


def run(model: nn.Module, x: Tensor) -> Tensor:
    """The reference's logits for our (B, C, T, H, W) clip, at any square size our model accepts."""
    config = model.config
    built = [config.num_frames // 2, config.image_size // 16, config.image_size // 16]
    grid = [x.shape[2] // 2, x.shape[3] // 16, x.shape[4] // 16]
    embeddings = model.vivit.embeddings
    table = getattr(model, "_built_table", None)
    if table is None:
        table = model._built_table = embeddings.position_embeddings.clone()
    embeddings.position_embeddings = nn.Parameter(
        torch.cat([table[:, :1], resize_pos_embed(table[:, 1:], built, grid, mode="trilinear")], dim=1)
    )
    embeddings.patch_embeddings.image_size = x.shape[3]
    try:
        return model(pixel_values=x.transpose(1, 2)).logits
    finally:
        embeddings.position_embeddings = nn.Parameter(table)
        embeddings.patch_embeddings.image_size = config.image_size


CASES = {
    "vivit_b_16x2": Case(
        factory=partial(reference, 4, 32),
        input_shape=(1, 3, 4, 32, 32),
        kwargs={"num_frames": 4, "crop_size": 32},
        run=run,
        extra_shapes=[(2, 3, 4, 32, 32), (2, 3, 6, 48, 48), (1, 3, 2, 32, 32)],
    ),
}

PUBLISHED_CASES = {
    "vivit_b_16x2": Case(
        factory=partial(reference, 32, 224),
        input_shape=(1, 3, 32, 224, 224),
        kwargs={},
        run=run,
        extra_shapes=[(1, 3, 16, 224, 224)],
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
