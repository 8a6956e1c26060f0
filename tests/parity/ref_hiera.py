r"""Reference cases for Hiera: facebookresearch/hiera's ``Hiera`` (the ``hiera-transformer`` package).

Its video builders (``hiera_{base,base_plus,large,huge}_16x224``) hard-code the 16x224x224 clip, but
its ``Hiera`` class takes others; ``reference`` builds it with a builder's configuration at any clip
size and depth. The reference's head ends in a softmax in eval mode; the cases replace that by the
identity so that logits are compared.

Stored fixtures are small clips (fast to replay; only names and shapes are stored): every model at an
8 x 64 x 96 clip (token grid 4 x 16 x 24: 2 x 3 mask units per frame, non-square) and Hiera-B also at
6 x 96 x 64 (``hiera_b-6x96x64``); Hiera-L and Hiera-H with one or two blocks per stage (their
``stages`` passed to both networks), Hiera-B and B+ at full depth. ``PUBLISHED_CASES`` are the four
published networks at 16x224x224, full depth, checked in the side environment only, without writing a
fixture:

    cd tests && ~/ref-env/bin/python -m parity.ref_hiera --published [NAME ...]

and are the pairs ``benchmarks/bench_models.py`` times (it takes a module's ``PUBLISHED_CASES`` where
there are any, else its ``CASES`` without model arguments).
"""

from __future__ import annotations

from functools import partial

import hiera
from torch import nn

from parity.common import Case

# The publisher's video builders: hiera_base_16x224 and the others, which call it with these.
CONFIGS = {
    "hiera_b": {"embed_dim": 96, "num_heads": 1, "stages": (2, 3, 16, 3)},
    "hiera_b_plus": {"embed_dim": 112, "num_heads": 2, "stages": (2, 3, 16, 3)},
    "hiera_l": {"embed_dim": 144, "num_heads": 2, "stages": (2, 6, 36, 4)},
    "hiera_h": {"embed_dim": 256, "num_heads": 4, "stages": (2, 6, 36, 4)},
}


def reference(name: str, frames: int, height: int, width: int, stages: tuple[int, ...] | None = None) -> nn.Module:
    """The publisher's ``Hiera`` with ``name``'s video configuration for ``frames x height x width`` clips."""
    config = dict(CONFIGS[name])
    if stages is not None:
        config["stages"] = stages
    model = hiera.Hiera(
        num_classes=400,
        input_size=(frames, height, width),
        q_stride=(1, 2, 2),
        mask_unit_size=(1, 8, 8),
        patch_kernel=(3, 7, 7),
        patch_stride=(2, 4, 4),
        patch_padding=(1, 3, 3),
        sep_pos_embed=True,
        **config,
    )
    model.head.act_func = lambda x: x  # logits, not the eval-mode softmax
    return model


def _case(
    name: str, batch: int, frames: int, height: int, width: int, stages: tuple[int, ...] | None = None, **extra
) -> Case:
    kwargs = {"num_frames": frames, "crop_size": (height, width)}
    if stages is not None:
        kwargs["stages"] = stages
    return Case(
        factory=partial(reference, name, frames, height, width, stages),
        input_shape=(batch, 3, frames, height, width),
        kwargs=kwargs,
        wrap="model_state",
        **extra,
    )


CASES = {
    "hiera_b": _case("hiera_b", 2, 8, 64, 96, extra_shapes=[(1, 3, 8, 64, 96)]),
    "hiera_b_plus": _case("hiera_b_plus", 1, 8, 64, 96),
    "hiera_l": _case("hiera_l", 1, 8, 64, 96, stages=(1, 2, 2, 1)),
    "hiera_h": _case("hiera_h", 1, 8, 64, 96, stages=(1, 1, 2, 1)),
}

EXTRA_CASES = {"hiera_b": _case("hiera_b", 1, 6, 96, 64, fixture_name="hiera_b-6x96x64")}

PUBLISHED_CASES = {
    name: _case(name, 1, 16, 224, 224, extra_shapes=[(2, 3, 16, 224, 224)] if name == "hiera_b" else [])
    for name in CONFIGS
}



if __name__ == "__main__":
    from parity.make_fixtures import check_published

    import sys

    names = [a for a in sys.argv[1:] if not a.startswith("--")]
    if "--published" in sys.argv:
        for model_name, case in PUBLISHED_CASES.items():
            if not names or model_name in names:
                check_published(model_name, case)
        raise SystemExit

    from parity.common import FIXTURES
    from parity.make_fixtures import check_against_videozoo, generate

    for model_name, case in EXTRA_CASES.items():
        made = generate(model_name, case)
        path = FIXTURES / f"{case.fixture_name}.pt"
        print(f"{path.stem}: {len(made['fixture']['keys'])} tensors, {path.stat().st_size / 1e3:.0f} kB")
        check_against_videozoo(model_name, case, made["ref"], made["fixture"])
