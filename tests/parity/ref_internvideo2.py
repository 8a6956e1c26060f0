r"""Reference cases for InternVideo2: the publisher's ``InternVideo2`` (OpenGVLab/InternVideo,
``InternVideo2/single_modality/models/internvideo2.py``), which is not on PyPI.

Bring it with the ``fetch`` tool (github:OpenGVLab/InternVideo) and export the model files to a folder
outside the repository, e.g.::

    git --git-dir=<mirror> show HEAD:InternVideo2/single_modality/models/internvideo2.py > $INTERNVIDEO2_MODELS/internvideo2.py
    (likewise pos_embed.py and flash_attention_class.py)

``INTERNVIDEO2_MODELS`` (default ``/work/scratch-frontier/iv2``) names that folder. Its imports of flash-attn
are satisfied by empty stand-ins: the reference is built with ``use_flash_attn``, ``use_fused_rmsnorm``
and ``use_fused_mlp`` off (its plain PyTorch path, which computes the same functions as the fused kernels
the published models were trained with; the key names are the same).

Each case is the published architecture at a tiny width (2 blocks; the S/14's 6-head, the 1B's 48/11 MLP
shapes), its attention pooling at 4 heads and 32 channels instead of 16 and 768, and 5 classes, built for
4 frames of 28 px (``CASES``) and, for ``internvideo2_s14``, for 2 frames of 42 px (``EXTRA_CASES``,
fixture ``internvideo2_s14-2x42x42``): the position table of another grid.

Clips of another size than the built one (fixture ``internvideo2_s14-resampled``: the 4x28x28 model on
6 frames of 42 px). The publisher resamples the position table when it loads a checkpoint into a model
built for another clip (``run_finetuning.py``: linearly over time, then bicubically over each frame's
grid, the class token's entry kept); :func:`run_resampled` does that, to a reference built for the
clip at hand, and runs it: videozoo resamples at the forward of the model built for 4x28x28.

    ~/ref-env/bin/python tests/parity/make_fixtures.py internvideo2_s14 internvideo2_b14 internvideo2_l14 internvideo2_1b internvideo2_1b_f16
    cd tests && ~/ref-env/bin/python -m parity.ref_internvideo2      # EXTRA_CASES
"""

from __future__ import annotations

import importlib
import os
import sys
import types
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from parity.common import Case

_FOLDER = os.environ.get("INTERNVIDEO2_MODELS", "/work/scratch-frontier/iv2")


def _publisher_module() -> types.ModuleType:
    """``internvideo2.py`` from ``_FOLDER``, imported as a module of a package of its own (its relative
    imports), with empty stand-ins for the flash-attn modules it imports but does not use here."""
    for name, attrs in {
        "flash_attn": (),
        "flash_attn.flash_attn_interface": ("flash_attn_varlen_qkvpacked_func",),
        "flash_attn.bert_padding": ("unpad_input", "pad_input"),
        "flash_attn.modules": (),
        "flash_attn.modules.mlp": ("FusedMLP",),
        "flash_attn.ops": (),
        "flash_attn.ops.rms_norm": ("DropoutAddRMSNorm",),
    }.items():
        module = sys.modules.setdefault(name, types.ModuleType(name))
        for attr in attrs:
            setattr(module, attr, None)
    package = types.ModuleType("internvideo2_reference")
    package.__path__ = [_FOLDER]
    sys.modules.setdefault("internvideo2_reference", package)
    return importlib.import_module("internvideo2_reference.internvideo2")


# builder -> (embed_dim, num_heads, mlp_ratio), depth 2: the published architectures' shapes.
SMALL = {
    "internvideo2_s14": (48, 6, 4.0),  # S/14: 6 heads
    "internvideo2_b14": (64, 2, 4.0),
    "internvideo2_l14": (64, 4, 4.0),
    "internvideo2_1b": (96, 2, 48 / 11),
    "internvideo2_1b_f16": (96, 2, 48 / 11),  # 1B: MLP int(96 * 48 / 11) = 418 wide (a 3D sine-cosine init needs 96)
}
LABELS = 5
POOL_HEADS, POOL_DIM = 4, 32


def reference(name: str, frames: int, crop: int) -> nn.Module:
    embed_dim, heads, mlp_ratio = SMALL[name]
    return _publisher_module().InternVideo2(
        img_size=crop, patch_size=14, embed_dim=embed_dim, depth=2, num_heads=heads, mlp_ratio=mlp_ratio,
        attn_pool_num_heads=POOL_HEADS, clip_embed_dim=POOL_DIM, num_frames=frames, tubelet_size=1, num_classes=LABELS,
        use_flash_attn=False, use_fused_rmsnorm=False, use_fused_mlp=False,
    )  # fmt: skip


def _case(name: str, frames: int, crop: int, fixture_name: str | None = None) -> Case:
    embed_dim, heads, _ = SMALL[name]  # the builder sets the MLP ratio
    kwargs = {
        "embed_dim": embed_dim, "depth": 2, "num_heads": heads, "pool_heads": POOL_HEADS, "pool_dim": POOL_DIM,
        "num_frames": frames, "crop_size": crop, "num_classes": LABELS,
    }  # fmt: skip
    return Case(
        factory=partial(reference, name, frames, crop),
        input_shape=(1, 3, frames, crop, crop),
        kwargs=kwargs,
        extra_shapes=[(2, 3, frames, crop, crop)],
        fixture_name=fixture_name,
    )


def run_resampled(name: str, model: nn.Module, x: Tensor) -> Tensor:
    """The publisher's checkpoint loading at another clip size: ``model``'s tensors into a reference built
    for ``x``'s frames and size, the position table resampled as ``run_finetuning.py`` resamples it."""
    frames, crop = x.shape[2], x.shape[3]
    state = dict(model.state_dict())
    table = state["pos_embed"]
    c = table.shape[-1]
    t, s = model.patch_embed.grid_size[0], model.patch_embed.grid_size[1]
    new_s = crop // 14
    cls, patches = table[:, :1], table[:, 1:]
    # time: (1, T*S*S, C) -> (S*S, C, T), linear to the new frame count
    patches = patches.reshape(1, t, s * s, c).permute(0, 2, 3, 1).reshape(-1, c, t)
    patches = F.interpolate(patches, size=frames, mode="linear")
    patches = patches.reshape(1, s * s, c, frames).permute(0, 3, 1, 2)  # (1, T', S*S, C)
    # space: each frame's (S, S) grid, bicubic to the new side
    patches = patches.reshape(frames, s, s, c).permute(0, 3, 1, 2)
    patches = F.interpolate(patches, size=(new_s, new_s), mode="bicubic", align_corners=False)
    patches = patches.permute(0, 2, 3, 1).reshape(1, frames * new_s * new_s, c)
    state["pos_embed"] = torch.cat([cls, patches], dim=1)
    other = reference(name, frames, crop).eval()
    other.load_state_dict(state)
    return other(x)


CASES = {name: _case(name, 4, 28) for name in SMALL}
EXTRA_CASES = {
    "internvideo2_s14": _case("internvideo2_s14", 2, 42, fixture_name="internvideo2_s14-2x42x42"),
    "internvideo2_s14-resampled": Case(
        factory=partial(reference, "internvideo2_s14", 4, 28),
        input_shape=(1, 3, 6, 42, 42),
        kwargs=_case("internvideo2_s14", 4, 28).kwargs,
        run=partial(run_resampled, "internvideo2_s14"),
        extra_shapes=[(2, 3, 2, 28, 28), (1, 3, 4, 42, 42)],
        fixture_name="internvideo2_s14-resampled",
    ),
}


# The published architectures (models/internvideo2.py's internvideo2_{small,base,large,1B}_patch14_224: width,
# blocks, heads, MLP ratio; attention pooling 16 heads to 768; 400 classes) at the published 8x224x224, checked
# in the side environment only, without a fixture:  cd tests && ~/ref-env/bin/python -m parity.ref_internvideo2 --published [NAME ...]
PUBLISHED = {
    "internvideo2_s14": (384, 12, 6, 4.0),
    "internvideo2_b14": (768, 12, 12, 4.0),
    "internvideo2_l14": (1024, 24, 16, 4.0),
    "internvideo2_1b": (1408, 40, 16, 48 / 11),
}


def published_reference(name: str) -> nn.Module:
    embed_dim, depth, heads, mlp_ratio = PUBLISHED[name]
    return _publisher_module().InternVideo2(
        img_size=224, patch_size=14, embed_dim=embed_dim, depth=depth, num_heads=heads, mlp_ratio=mlp_ratio,
        attn_pool_num_heads=16, clip_embed_dim=768, num_frames=8, tubelet_size=1, num_classes=400,
        use_flash_attn=False, use_fused_rmsnorm=False, use_fused_mlp=False,
    )  # fmt: skip


PUBLISHED_CASES = {
    name: Case(factory=partial(published_reference, name), input_shape=(1, 3, 8, 224, 224), kwargs={})
    for name in PUBLISHED
}


if __name__ == "__main__":
    from parity.make_fixtures import family_main

    family_main(sys.argv[1:], EXTRA_CASES, PUBLISHED_CASES)
