"""Reference cases for MViT: torchvision's models at the published input size.

MViT's token grid is fixed at construction (v1's position embeddings, both versions' pooling
geometry), so the fixtures replay at 16x224x224, the only size the published models accept.
"""

from torchvision.models import video as tv

from parity.common import Case

CASES = {
    name: Case(factory=getattr(tv, name), input_shape=(1, 3, 16, 224, 224), extra_shapes=[(2, 3, 16, 224, 224)])
    for name in ("mvit_v1_b", "mvit_v2_s")
}
