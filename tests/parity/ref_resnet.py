"""Reference cases for VideoResNet: torchvision's models at the published input size."""

from torchvision.models import video as tv

from parity.common import Case

CASES = {
    name: Case(factory=getattr(tv, name), input_shape=(1, 3, 16, 112, 112), extra_shapes=[(2, 3, 8, 64, 80)])
    for name in ("r3d_18", "mc3_18", "r2plus1d_18")
}
