r"""Reference cases for VideoMAE V2's distilled ViT-S and ViT-B: the authors' ``VisionTransformer``
(OpenGVLab/VideoMAEv2, ``models/modeling_finetune.py``), which is not on PyPI.

Bring it with the ``fetch`` tool (github:OpenGVLab/VideoMAEv2) and export that file to a folder outside the
repository (``VIDEOMAE_V2_MODELS``, default ``/work/scratch-frontier/videomaev2``)::

    git --git-dir=<mirror> show HEAD:models/modeling_finetune.py > $VIDEOMAE_V2_MODELS/modeling_finetune.py

The reference is the authors' ``vit_small_patch16_224`` / ``vit_base_patch16_224`` (q/v biases,
LayerNorms at 1e-6, mean pooling with ``fc_norm``, no layer scale) at a tiny width and 2 blocks, with a
710-class head as in the published Kinetics-710 files; the fixtures are in the format of the
``KINETICS710_DISTILLED`` members (``Case.weights``). Its fixed position table is built for the clip it
runs on: ``videomae_v2_s`` is stored at 4 frames of 32 px (``CASES``) and at 8 frames of 48 px
(``EXTRA_CASES``, fixture ``videomae_v2_s-8x48x48``).

    ~/ref-env/bin/python tests/parity/make_fixtures.py videomae_v2_s videomae_v2_b
    cd tests && ~/ref-env/bin/python -m parity.ref_videomae_v2      # EXTRA_CASES
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types
from functools import partial

from torch import nn

from parity.common import Case

_FILE = os.path.join(os.environ.get("VIDEOMAE_V2_MODELS", "/work/scratch-frontier/videomaev2"), "modeling_finetune.py")


def _publisher_module() -> types.ModuleType:
    name = "videomae_v2_reference"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, _FILE)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


# builder -> (embed_dim, num_heads), depth 2; the published ViT-S has 6 heads, the ViT-B 12.
SMALL = {"videomae_v2_s": (48, 6), "videomae_v2_b": (64, 4)}
CLASSES = 710  # the published files' Kinetics-710 head


def reference(name: str, frames: int, crop: int) -> nn.Module:
    """The authors' ``VisionTransformer`` with the arguments of their ``vit_small_patch16_224`` and
    ``vit_base_patch16_224`` (patch 16, MLP 4x, q/v biases, LayerNorm at 1e-6) but a tiny width and depth."""
    embed_dim, heads = SMALL[name]
    return _publisher_module().VisionTransformer(
        img_size=crop, patch_size=16, embed_dim=embed_dim, depth=2, num_heads=heads, mlp_ratio=4, qkv_bias=True,
        norm_layer=partial(nn.LayerNorm, eps=1e-6), all_frames=frames, tubelet_size=2, num_classes=CLASSES,
        use_mean_pooling=True,
    )  # fmt: skip


def _case(name: str, frames: int, crop: int, fixture_name: str | None = None) -> Case:
    embed_dim, heads = SMALL[name]
    kwargs = {"embed_dim": embed_dim, "depth": 2, "num_heads": heads, "num_frames": frames, "crop_size": crop, "num_classes": CLASSES}
    return Case(
        factory=partial(reference, name, frames, crop),
        input_shape=(1, 3, frames, crop, crop),
        kwargs=kwargs,
        extra_shapes=[(2, 3, frames, crop, crop)],
        fixture_name=fixture_name,
        weights="KINETICS710_DISTILLED",
    )


CASES = {name: _case(name, 4, 32) for name in SMALL}
EXTRA_CASES = {"videomae_v2_s": _case("videomae_v2_s", 8, 48, fixture_name="videomae_v2_s-8x48x48")}


def published_reference(name: str) -> nn.Module:
    """The authors' ``vit_small_patch16_224`` / ``vit_base_patch16_224`` as built for the distilled files:
    16 frames of 224 px, 710 classes, mean pooling."""
    module = _publisher_module()
    builder = module.vit_small_patch16_224 if name.endswith("_s") else module.vit_base_patch16_224
    return builder(img_size=224, all_frames=16, tubelet_size=2, num_classes=CLASSES, use_mean_pooling=True)


# The published architectures at the published 16x224x224, checked in the side environment only, without a
# fixture:  cd tests && ~/ref-env/bin/python -m parity.ref_videomae_v2 --published [NAME ...]
PUBLISHED_CASES = {
    name: Case(
        factory=partial(published_reference, name), input_shape=(1, 3, 16, 224, 224), kwargs={"num_classes": CLASSES},
        weights="KINETICS710_DISTILLED",
    )
    for name in SMALL
}


if __name__ == "__main__":
    from parity.make_fixtures import family_main

    family_main(sys.argv[1:], EXTRA_CASES, PUBLISHED_CASES)
