"""Reference case for S3D: torchvision's model.

The stored input is the smallest clip the network accepts (13 x 209 x 209: its 2 x 7 x 7 average pool
just fits), replayed in CI. The extra shapes add a batch of two at a larger, non-square size, where the
pool slides over several positions, the published crop with 16 frames, and the 128-frame clips the
published accuracy was measured on.
"""

from torchvision.models import video as tv

from parity.common import Case

CASES = {
    "s3d": Case(
        factory=tv.s3d,
        input_shape=(1, 3, 13, 209, 209),
        extra_shapes=[(2, 3, 24, 224, 256), (1, 3, 16, 224, 224), (1, 3, 128, 224, 224)],
    )
}
