r"""Reference cases for MViT: torchvision's models.

MViT's token grid is fixed at construction (v1's position embeddings, both versions' pooling
geometry), so the main fixtures replay at the published 16x224x224, the only size the published
models accept; the generator also checks batch 2.

torchvision's builders hard-code that size, but its ``MViT`` class takes others. ``EXTRA_CASES``
build it with the builders' block settings at non-square sizes, which exercise what 16x224x224
cannot (v1's embedding shapes, v2's linearly resampled relative position tables). Their fixtures
replay like the others; write them with

    cd tests && ~/ref-env/bin/python -m parity.ref_mvit

PyTorchVideo's MViT-B 16x4 / 32x3 (``mvit_base_16x4``, ``mvit_base_32x3``): its hub builders take the
clip size, so their stored fixtures are small, non-square clips (fast to replay; only names and shapes
are stored). ``PUBLISHED_CASES`` are the same models at the published clip sizes, at batch 1 and 2;
they are checked in the side environment only, without writing a fixture,

    cd tests && ~/ref-env/bin/python -m parity.ref_mvit --published

and are the pairs ``benchmarks/bench_models.py`` times (it takes a module's ``PUBLISHED_CASES`` where
there are any, else its ``CASES`` without model arguments).

PySlowFast's MViTv2-B 32x3 / L 40x3 (``mvit_v2_b``, ``mvit_v2_l``): the reference is PySlowFast's own
``MViT`` (slowfast/models/video_model_builder.py), built from its published configs
(configs/Kinetics/MVITv2_B_32x3.yaml, MVITv2_L_40x3_test.yaml) with only the clip size changed, so the
fixtures hold its key names and the replay runs PySlowFast file -> ``from_pyslowfast_state_dict`` ->
our model. PySlowFast is not installable here; its source is read from a checkout (``PYSLOWFAST_SRC``)
or extracted from a git mirror (``PYSLOWFAST_GIT``, default the workplace's mirror), and imported with
three modules stubbed that the MViT does not use (its logging, which needs simplejson and
PyTorchVideo's newer distributed helpers; detectron2's ROIAlign, for the detection head). The head's
activation is turned off (``MODEL.HEAD_ACT="none"``: PySlowFast applies softmax in eval mode, videozoo
returns logits) and activation checkpointing (L's config, needs fairscale) too; neither changes the
function. (torchvision's ``MViT`` class with these block tables is *not* a reference for L: at 312
pixels it picks other relative-position rows, see videozoo/models/mvit.py.)

The stored fixtures are small clips: B with all 24 blocks on 4 x 64 x 64; L at full width with
2 + 2 + 2 + 1 blocks on 4 x 212 x 212, whose 53 x 53 token grid against 7 x 7 keys is a ratio where
PySlowFast's and torchvision's row rounding differ. ``PUBLISHED_CASES`` add both at 32 x 224 x 224 and
40 x 312 x 312, all blocks (L: 2.8 TFLOPs, about 10 GB for PySlowFast's attention).
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import types
from functools import partial
from pathlib import Path
from unittest import mock

import torchvision.models.video.mvit as tvm
from pytorchvideo.models.hub import vision_transformers as ptv
from torch import nn

from parity.common import Case

CASES = {
    name: Case(factory=getattr(tvm, name), input_shape=(1, 3, 16, 224, 224), extra_shapes=[(2, 3, 16, 224, 224)])
    for name in ("mvit_v1_b", "mvit_v2_s")
}


def reference_at(name: str, spatial_size: tuple[int, int], temporal_size: int) -> nn.Module:
    """torchvision's ``name`` for other clip sizes: its builder's arguments, passed to the MViT class."""
    with mock.patch.object(tvm, "_mvit") as build:
        getattr(tvm, name)()
    kwargs = dict(build.call_args.kwargs)
    del kwargs["weights"], kwargs["progress"]
    kwargs.setdefault("rel_pos_embed", False)
    kwargs.setdefault("proj_after_attn", False)
    return tvm.MViT(**{**kwargs, "spatial_size": spatial_size, "temporal_size": temporal_size})


def _extra(name: str, temporal_size: int, height: int, width: int) -> tuple[str, Case]:
    return name, Case(
        factory=partial(reference_at, name, (height, width), temporal_size),
        input_shape=(2, 3, temporal_size, height, width),
        kwargs={"spatial_size": (height, width), "temporal_size": temporal_size},
        fixture_name=f"{name}-{temporal_size}x{height}x{width}",
    )


EXTRA_CASES = [_extra("mvit_v1_b", 6, 80, 96), _extra("mvit_v2_s", 10, 96, 64)]


def _ptv_case(name: str, batch: int, frames: int, height: int, width: int, extra: list[tuple[int, ...]]) -> Case:
    """PyTorchVideo's hub builder ``name`` for ``frames`` x ``height`` x ``width`` clips."""
    return Case(
        factory=partial(getattr(ptv, name), temporal_size=frames, spatial_size=(height, width)),
        input_shape=(batch, 3, frames, height, width),
        kwargs={"num_frames": frames, "crop_size": (height, width)},
        wrap="model_state",
        extra_shapes=extra,
    )


# Token grids 4 x 16 x 12 and 6 x 12 x 16: every stage's pooling, grids that halve unevenly (3 -> 2).
CASES.update(
    {
        "mvit_base_16x4": _ptv_case("mvit_base_16x4", 1, 8, 64, 48, [(3, 3, 8, 64, 48)]),
        "mvit_base_32x3": _ptv_case("mvit_base_32x3", 2, 12, 48, 64, [(1, 3, 12, 48, 64)]),
    }
)

# torchvision's two at their only size (their CASES), PyTorchVideo's at the published clips.
PUBLISHED_CASES = {
    "mvit_v1_b": CASES["mvit_v1_b"],
    "mvit_v2_s": CASES["mvit_v2_s"],
    "mvit_base_16x4": _ptv_case("mvit_base_16x4", 1, 16, 224, 224, [(2, 3, 16, 224, 224)]),
    "mvit_base_32x3": _ptv_case("mvit_base_32x3", 1, 32, 224, 224, [(2, 3, 32, 224, 224)]),
}


# ----------------------------------------------------------------------------------------------------
# PySlowFast's MViTv2-B / L, from PySlowFast's own code

PYSLOWFAST_MIRROR = "/work/.mirror/facebookresearch+SlowFast/repo"
_PYSLOWFAST: dict[str, object] = {}


def _pyslowfast_source() -> Path:
    """A folder holding PySlowFast's ``slowfast`` package and ``configs``."""
    if os.environ.get("PYSLOWFAST_SRC"):
        return Path(os.environ["PYSLOWFAST_SRC"])
    git_dir = os.environ.get("PYSLOWFAST_GIT", PYSLOWFAST_MIRROR)
    if not Path(git_dir).exists():
        raise RuntimeError(
            f"PySlowFast's source is needed for the mvit_v2_b/l references: set PYSLOWFAST_SRC to a checkout of "
            f"https://github.com/facebookresearch/SlowFast or PYSLOWFAST_GIT to a clone's git directory ({git_dir} "
            f"does not exist)."
        )
    out = Path(tempfile.mkdtemp(prefix="pyslowfast-"))
    atexit.register(shutil.rmtree, out, ignore_errors=True)
    command = ["git", f"--git-dir={git_dir}", "archive", "HEAD", "slowfast", "configs/Kinetics"]
    archive = subprocess.run(command, check=True, capture_output=True)
    subprocess.run(["tar", "x", "-C", str(out)], input=archive.stdout, check=True)
    return out


def _pyslowfast() -> tuple[type, object, Path]:
    """PySlowFast's ``MViT`` class, its ``get_cfg`` and its configs folder (imported once)."""
    if not _PYSLOWFAST:
        import logging

        src = _pyslowfast_source()
        sys.path.insert(0, str(src))
        import slowfast.utils

        # Import the model modules without slowfast/models/__init__.py (it imports every model family).
        models = types.ModuleType("slowfast.models")
        models.__path__ = [str(src / "slowfast" / "models")]
        sys.modules["slowfast.models"] = models
        log = types.ModuleType("slowfast.utils.logging")
        log.get_logger = logging.getLogger
        sys.modules["slowfast.utils.logging"] = slowfast.utils.logging = log
        detectron2, layers = types.ModuleType("detectron2"), types.ModuleType("detectron2.layers")
        layers.ROIAlign = None
        sys.modules.update({"detectron2": detectron2, "detectron2.layers": layers})
        from slowfast.config.defaults import get_cfg
        from slowfast.models.video_model_builder import MViT

        _PYSLOWFAST.update(MViT=MViT, get_cfg=get_cfg, configs=src / "configs" / "Kinetics")
    return _PYSLOWFAST["MViT"], _PYSLOWFAST["get_cfg"], _PYSLOWFAST["configs"]


class PySlowFastMViT(nn.Module):
    """PySlowFast's MViT on a plain clip tensor (it takes a list of pathways), its state_dict unchanged."""

    def __init__(self, config: str, num_frames: int, crop_size: int, depths: tuple[int, ...] | None = None) -> None:
        super().__init__()
        mvit, get_cfg, configs = _pyslowfast()
        cfg = get_cfg()
        cfg.merge_from_file(str(configs / f"{config}.yaml"))
        cfg.DATA.NUM_FRAMES = num_frames
        cfg.DATA.TRAIN_CROP_SIZE = cfg.DATA.TEST_CROP_SIZE = crop_size
        cfg.MODEL.HEAD_ACT = "none"  # logits, as videozoo returns (PySlowFast: softmax in eval mode)
        cfg.MODEL.ACT_CHECKPOINT = False  # training-time memory saving (fairscale); the same function
        if depths is not None:  # fewer blocks per stage: the stage starts move, nothing else changes
            starts = [sum(depths[: i + 1]) for i in range(len(depths) - 1)]
            cfg.MVIT.DEPTH = sum(depths)
            cfg.MVIT.DIM_MUL = [[i, 2.0] for i in starts]
            cfg.MVIT.HEAD_MUL = [[i, 2.0] for i in starts]
            cfg.MVIT.POOL_Q_STRIDE = [[i, 1, 2, 2] if i in starts else [i, 1, 1, 1] for i in range(sum(depths))]
        self.mvit = mvit(cfg)

    def forward(self, x):
        return self.mvit([x])

    def state_dict(self, *args, **kwargs):
        return self.mvit.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        return self.mvit.load_state_dict(state_dict, strict=strict, assign=assign)


def _pysf_case(
    config: str, batch: int, frames: int, crop: int, extra: list[tuple[int, ...]], depths: tuple[int, ...] | None = None
) -> Case:
    return Case(
        factory=partial(PySlowFastMViT, config, frames, crop, depths),
        input_shape=(batch, 3, frames, crop, crop),
        kwargs={"num_frames": frames, "crop_size": crop} | ({"depths": depths} if depths else {}),
        wrap="model_state",
        extra_shapes=extra,
    )


CASES.update(
    {
        "mvit_v2_b": _pysf_case("MVITv2_B_32x3", 1, 4, 64, [(2, 3, 4, 64, 64)]),
        "mvit_v2_l": _pysf_case("MVITv2_L_40x3_test", 1, 4, 212, [(2, 3, 4, 212, 212)], depths=(2, 2, 2, 1)),
    }
)
PUBLISHED_CASES.update(
    {
        "mvit_v2_b": _pysf_case("MVITv2_B_32x3", 1, 32, 224, []),
        "mvit_v2_l": _pysf_case("MVITv2_L_40x3_test", 1, 40, 312, []),
    }
)



if __name__ == "__main__":
    from parity.make_fixtures import check_published

    if "--published" in sys.argv:
        # Optionally only some: python -m parity.ref_mvit --published mvit_v2_b mvit_v2_l
        chosen = [a for a in sys.argv[1:] if not a.startswith("--")] or list(PUBLISHED_CASES)
        for model_name in chosen:
            check_published(model_name, PUBLISHED_CASES[model_name])
        raise SystemExit

    from parity.common import FIXTURES
    from parity.make_fixtures import check_against_videozoo, generate

    for model_name, case in EXTRA_CASES:
        made = generate(model_name, case)
        path = FIXTURES / f"{case.fixture_name}.pt"
        print(f"{path.stem}: {len(made['fixture']['keys'])} tensors, {path.stat().st_size / 1e3:.0f} kB")
        check_against_videozoo(model_name, case, made["ref"], made["fixture"])
