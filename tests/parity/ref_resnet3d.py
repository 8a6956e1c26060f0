"""Reference cases for the bottleneck 3D ResNets: PyTorchVideo 0.1.5's Slow, C2D, I3D, CSN and R(2+1)D.

Each factory is the hub builder's configuration (``pytorchvideo/models/hub/{resnet,csn,r2plus1d}.py``)
with a head window that can be replaced (the hub's ``slow_r50`` and ``csn_r101`` fix theirs), and
``slow_r50_4x16`` is PySlowFast's PTVResNet with configs/Kinetics/pytorchvideo/SLOW_4x16_R50.yaml: the
Slow R50 network with a (4, 7, 7) window.

As for SlowFast, the stored fixtures build each published configuration with the window of a small
clip (64 pixels: a 2x2 map; ``num_frames``/``crop_size`` on our side, ``head_pool_kernel_size`` on
PyTorchVideo's), and their extra shapes slide that window over larger and longer clips, as the
256-pixel 3-crop test does with the published window. R(2+1)D's PyTorchVideo head ends with a softmax,
so its outputs are compared as probabilities.

The published windows themselves at 224 and 256 pixels are too slow to replay in CI; check them with

    ~/ref-env/bin/python tests/parity/ref_resnet3d.py
"""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path

import torch
from pytorchvideo.models.csn import create_csn
from pytorchvideo.models.r2plus1d import create_r2plus1d
from pytorchvideo.models.resnet import create_resnet
from torch import nn

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from parity.common import Case  # noqa: E402

# The hub builders' arguments (pytorchvideo/models/hub/*.py), window left out.
slow_r50 = partial(create_resnet, stem_conv_kernel_size=(1, 7, 7), model_depth=50)
c2d_r50 = partial(
    create_resnet,
    stem_conv_kernel_size=(1, 7, 7),
    stage1_pool=nn.MaxPool3d,
    stage_conv_a_kernel_size=((1, 1, 1),) * 4,
)
i3d_r50 = partial(
    create_resnet,
    stem_conv_kernel_size=(5, 7, 7),
    stage1_pool=nn.MaxPool3d,
    stage_conv_a_kernel_size=(
        (3, 1, 1),
        [(3, 1, 1), (1, 1, 1)],
        [(3, 1, 1), (1, 1, 1)],
        [(1, 1, 1), (3, 1, 1)],
    ),
)
csn_r101 = partial(create_csn, model_depth=101, stem_pool=nn.MaxPool3d)
r2plus1d_r50 = partial(create_r2plus1d, dropout_rate=0.5)

# name: (builder, published frames, the network's temporal stride)
PUBLISHED = {
    "slow_r50": (slow_r50, 8, 1),
    "slow_r50_4x16": (slow_r50, 4, 1),
    "c2d_r50": (c2d_r50, 8, 2),
    "i3d_r50": (i3d_r50, 8, 2),
    "csn_r101": (csn_r101, 32, 8),
    "r2plus1d_r50": (r2plus1d_r50, 16, 4),
}


def _small_case(name: str) -> Case:
    builder, _, stride = PUBLISHED[name]
    frames = 2 * stride if stride > 1 else 4  # a window 2 (Slow: 4) frames long on the last map
    window = (frames // stride, 2, 2)
    longer = frames + 2 * stride  # two more window positions in time
    return Case(
        factory=partial(builder, head_pool_kernel_size=window),
        kwargs={"num_frames": frames, "crop_size": 64},
        input_shape=(1, 3, frames, 64, 64),
        wrap="model_state",
        compare="probs" if name == "r2plus1d_r50" else "logits",
        extra_shapes=[(2, 3, frames, 96, 80), (1, 3, longer, 128, 160)],
    )


CASES = {name: _small_case(name) for name in PUBLISHED}


def _published_case(name: str) -> Case:
    """The published configuration with its own head window, at 224 (1-crop) and 256 pixels (3-crop)."""
    builder, frames, stride = PUBLISHED[name]
    return Case(
        factory=partial(builder, head_pool_kernel_size=(frames // stride, 7, 7)),
        input_shape=(1, 3, frames, 224, 224),
        wrap="model_state",
        compare=CASES[name].compare,
        extra_shapes=[(1, 3, frames, 256, 256)],
    )


# Checked here without writing a fixture, and the pairs bench_models.py times.
PUBLISHED_CASES = {name: _published_case(name) for name in PUBLISHED}


if __name__ == "__main__":
    from make_fixtures import check_published

    torch.set_num_threads(max(torch.get_num_threads(), 2))
    for model_name, published in PUBLISHED_CASES.items():
        print(f"{model_name}: published head window")
        check_published(model_name, published)
