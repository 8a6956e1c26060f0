"""Reference cases for Swin3D: torchvision's models.

The stored input (18x72x88, replayed in CI) is small but reaches every path of the window logic: the
clip and the token grids are padded to whole patches and windows; windows are shifted along time as
well as space (9 tokens > 8); from stage 3 on the spatial window shrinks to the grid and stops
shifting, and the shrunk window reads its position bias from the corner of the index table; patch
merging pads odd sizes. The extra shapes add a batch of two with odd sizes and the published input,
16 frames (the generic contract) and 32 frames (torchvision's evaluation clip length) at 224x224.
"""

from torchvision.models import video as tv

from parity.common import Case

CASES = {
    name: Case(
        factory=getattr(tv, name),
        input_shape=(1, 3, 18, 72, 88),
        extra_shapes=[(2, 3, 17, 50, 30), (1, 3, 16, 224, 224), (1, 3, 32, 224, 224)],
    )
    for name in ("swin3d_t", "swin3d_s", "swin3d_b")
}
