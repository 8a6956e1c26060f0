r"""Reference cases for VideoMAE: Hugging Face's ``VideoMAEForVideoClassification`` (transformers).

The reference is built from a ``VideoMAEConfig`` with each published model's architecture (the port's
``config.json`` values: ``layer_norm_eps`` 1e-12, q/v biases, mean pooling with ``fc_norm``) and a
small clip, so its fixed position table is built for that clip; our builder gets the same clip as
``num_frames`` / ``crop_size``. Hugging Face takes frames as ``(B, T, C, H, W)``; ``run`` transposes
our ``(B, C, T, H, W)`` input. ViT-S has 6 heads, as the authors' ``vit_small_patch16_224`` that
trained the weights. ViT-L and ViT-H are stored with 2 blocks (``depth=2``, ``num_hidden_layers=2``)
to keep the fixtures fast; every block is the same code.

The reference accepts only its built clip. For the other accepted sizes (``extra_shapes``, checked in
the side environment), ``run`` gives it the table our model uses there: its own table resampled with
videozoo's ``resize_pos_embed``, and the matching ``image_size``; so those checks cover everything but
the resampling, which is ours by definition.

``PUBLISHED_CASES`` are the four models at full depth at the published 16x224x224, checked in the side
environment only, without writing a fixture:

    cd tests && ~/ref-env/bin/python -m parity.ref_videomae --published
"""

from __future__ import annotations

from functools import partial

import torch
from torch import Tensor, nn
from transformers import VideoMAEConfig, VideoMAEForVideoClassification

from parity.common import Case
from videozoo.models.layers import resize_pos_embed

# builder -> (hidden_size, num_hidden_layers, num_attention_heads), intermediate_size = 4 x hidden
ARCHITECTURES = {
    "videomae_s": (384, 12, 6),
    "videomae_b": (768, 12, 12),
    "videomae_l": (1024, 24, 16),
    "videomae_h": (1280, 32, 16),
}


def reference(name: str, frames: int, height: int, width: int, depth: int | None = None, labels: int = 400) -> nn.Module:
    hidden, layers, heads = ARCHITECTURES[name]
    config = VideoMAEConfig(
        image_size=(height, width),
        num_frames=frames,
        hidden_size=hidden,
        num_hidden_layers=depth or layers,
        num_attention_heads=heads,
        intermediate_size=4 * hidden,
        use_mean_pooling=True,
        num_labels=labels,
        attn_implementation="eager",
    )
    return VideoMAEForVideoClassification(config)


def run(model: nn.Module, x: Tensor) -> Tensor:
    """The reference's logits for our (B, C, T, H, W) clip, at any size our model accepts."""
    config = model.config
    built = [config.num_frames // config.tubelet_size, config.image_size[0] // 16, config.image_size[1] // 16]
    grid = [x.shape[2] // config.tubelet_size, x.shape[3] // 16, x.shape[4] // 16]
    embeddings = model.videomae.embeddings
    table = getattr(model, "_built_table", None)
    if table is None:
        table = model._built_table = embeddings.position_embeddings.clone()
    embeddings.position_embeddings = resize_pos_embed(table, built, grid)
    embeddings.patch_embeddings.image_size = (x.shape[3], x.shape[4])
    return model(pixel_values=x.transpose(1, 2)).logits


def _case(name: str, frames: int, height: int, width: int, extra: list[tuple[int, ...]], depth: int | None = None) -> Case:
    kwargs: dict = {"num_frames": frames, "crop_size": (height, width)}
    if depth is not None:
        kwargs["depth"] = depth
    return Case(
        factory=partial(reference, name, frames, height, width, depth),
        input_shape=(1, 3, frames, height, width),
        kwargs=kwargs,
        run=run,
        extra_shapes=extra,
    )


# Token grids 2 x 2 x 3 (stored) and, in the side environment, 3 x 3 x 2 with batch 2 (another clip
# length and frame size: the resampled table) and the built grid at batch 2.
CASES = {
    "videomae_s": _case("videomae_s", 4, 32, 48, [(2, 3, 6, 48, 32), (2, 3, 4, 32, 48)]),
    "videomae_b": _case("videomae_b", 4, 32, 48, [(2, 3, 6, 48, 32), (2, 3, 4, 32, 48)]),
    "videomae_l": _case("videomae_l", 4, 32, 48, [(2, 3, 6, 48, 32)], depth=2),
    "videomae_h": _case("videomae_h", 4, 32, 48, [(2, 3, 6, 48, 32)], depth=2),
}

PUBLISHED_CASES = {
    name: Case(
        factory=partial(reference, name, 16, 224, 224),
        input_shape=(1, 3, 16, 224, 224),
        kwargs={},
        run=run,
        extra_shapes=[(1, 3, 8, 160, 160)],
    )
    for name in ARCHITECTURES
}



if __name__ == "__main__":
    from parity.make_fixtures import check_published

    import sys

    torch.set_grad_enabled(False)
    names = [a for a in sys.argv[1:] if not a.startswith("--")] or list(PUBLISHED_CASES)
    if "--published" in sys.argv:
        for model_name in names:
            check_published(model_name, PUBLISHED_CASES[model_name])
