"""Reference cases for X3D: PyTorchVideo 0.1.5's hub builders (its published hyper-parameters).

PyTorchVideo's X3D returns class probabilities (softmax inside the model, then averaged over the
head's window positions), hence ``compare="probs"``. Stored shapes are the sizes each head was built
for (X3D-XS at its 3-crop test size, so the stored fixtures also cover the averaging); the extra
shapes add the 3-crop test sizes and odd, non-square clips.
"""

from pytorchvideo.models.hub import x3d as ptv

from parity.common import Case


def _case(name: str, frames: int, built: int, test: int, stored: int, extra: list[tuple[int, ...]]) -> Case:
    return Case(
        factory=getattr(ptv, name),
        input_shape=(1, 3, frames, stored, stored),
        wrap="model_state",
        compare="probs",
        extra_shapes=[(1, 3, frames, s, s) for s in sorted({built, test} - {stored})] + extra,
    )


CASES = {
    "x3d_xs": _case("x3d_xs", 4, 160, 182, 182, [(2, 3, 6, 170, 205)]),
    "x3d_s": _case("x3d_s", 13, 160, 182, 160, [(2, 3, 13, 129, 190)]),
    "x3d_m": _case("x3d_m", 16, 224, 256, 224, [(1, 3, 18, 240, 200)]),
    "x3d_l": _case("x3d_l", 16, 312, 356, 312, []),
}
