"""Reference cases for the efficient (mobile CPU) X3D: PyTorchVideo 0.1.5's hub builders.

Its ``EfficientX3d`` returns logits (``head_act="identity"``) averaged by a global pool, so any clip size
is accepted; PyTorchVideo publishes its files as bare state_dicts (``wrap=None``). Stored shapes are
the training clips (4 or 13 frames of 160 px); the extra shapes add a larger frame, odd non-square
clips and one smaller than the stage-4 stride.
"""

from pytorchvideo.models.hub import efficient_x3d_mobile_cpu as ptv

from parity.common import Case


def _case(name: str, frames: int, extra: list[tuple[int, ...]]) -> Case:
    return Case(
        factory=getattr(ptv, name),
        input_shape=(1, 3, frames, 160, 160),
        wrap=None,
        compare="logits",
        extra_shapes=extra,
    )


CASES = {
    "efficient_x3d_xs": _case("efficient_x3d_xs", 4, [(1, 3, 4, 182, 182), (2, 3, 6, 170, 205), (1, 3, 1, 20, 33)]),
    "efficient_x3d_s": _case("efficient_x3d_s", 13, [(2, 3, 13, 129, 190)]),
}
