"""S3D: Inception-v1 inflated to video with separable 3D convolutions.

Xie et al., "Rethinking Spatiotemporal Feature Learning: Speed-Accuracy Trade-offs in Video
Classification", ECCV 2018 (https://arxiv.org/abs/1712.04851). GoogLeNet's stem and nine Inception
blocks (3b-5c), with every k x k convolution made 3D as a 1 x k x k spatial convolution followed by a
k x 1 x 1 temporal one, each with BatchNorm and ReLU (the paper's S3D, without feature gating).

Module names follow torchvision's, so the published checkpoint loads with ``strict=True``.
In eval mode the network runs in ``channels_last_3d`` layout with every BatchNorm folded into the
convolution before it (``layers.conv_bn_folded``: one pass over the activations instead of two, the
same result up to float rounding), so that the convolutions without temporal or without spatial extent
(all of them) run as oneDNN's 2D convolutions over free views of the clip, which PyTorch's CPU kernels
handle faster than the 3D ones, with the ReLU fused into them; PyTorch's channels-last max-pooling is
faster than in the default layout on S3D's maps. Training and TorchScript run the plain modules.
Measured gains: docs/performance-notes.md.
"""

from collections.abc import Sequence
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from videozoo.zoo import Weights, WeightsEnum, build_model, register_model
from videozoo.models._base import FeatureLayer, VideoModel
from videozoo.models.layers import conv_bn_folded, window_avg_pool
from videozoo.models.publishers.torchvision import tv_meta
from videozoo.video.transforms import VideoClassification

__all__ = ["S3D", "S3D_Weights", "s3d"]


class ConvBNReLU(nn.Sequential):
    """Conv3d (no bias), BatchNorm3d, ReLU; in eval mode the BatchNorm is folded into the convolution."""

    def __init__(
        self,
        in_planes: int,
        out_planes: int,
        kernel_size: Sequence[int],
        stride: Sequence[int] = (1, 1, 1),
        padding: Sequence[int] = (0, 0, 0),
    ) -> None:
        super().__init__(
            nn.Conv3d(in_planes, out_planes, tuple(kernel_size), tuple(stride), tuple(padding), bias=False),
            # The checkpoint's TensorFlow origin: eps and momentum 1e-3.
            nn.BatchNorm3d(out_planes, eps=0.001, momentum=0.001),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: Tensor) -> Tensor:
        if self.training or torch.jit.is_scripting():
            return F.relu(self[1](self[0](x)), inplace=True)
        return self._forward_folded(x)

    @torch.jit.unused
    def _forward_folded(self, x: Tensor) -> Tensor:
        return conv_bn_folded(x, self[0], self[1], activation="relu")


class TemporalSeparableConv(nn.Sequential):
    """A k x k x k convolution factorised into 1 x k x k (space) and k x 1 x 1 (time)."""

    def __init__(self, in_planes: int, out_planes: int, kernel_size: int, stride: int, padding: int) -> None:
        k, s, p = kernel_size, stride, padding
        super().__init__(
            ConvBNReLU(in_planes, out_planes, [1, k, k], [1, s, s], [0, p, p]),
            ConvBNReLU(out_planes, out_planes, [k, 1, 1], [s, 1, 1], [p, 0, 0]),
        )


class SepInceptionBlock3D(nn.Module):
    """Four parallel branches, concatenated along channels: 1x1x1; 1x1x1 then separable 3x3x3 (twice,
    with different widths); 3x3x3 max-pooling then 1x1x1."""

    def __init__(
        self, in_planes: int, b0_out: int, b1_mid: int, b1_out: int, b2_mid: int, b2_out: int, b3_out: int
    ) -> None:
        super().__init__()
        self.branch0 = ConvBNReLU(in_planes, b0_out, [1, 1, 1])
        self.branch1 = nn.Sequential(
            ConvBNReLU(in_planes, b1_mid, [1, 1, 1]), TemporalSeparableConv(b1_mid, b1_out, 3, 1, 1)
        )
        self.branch2 = nn.Sequential(
            ConvBNReLU(in_planes, b2_mid, [1, 1, 1]), TemporalSeparableConv(b2_mid, b2_out, 3, 1, 1)
        )
        self.branch3 = nn.Sequential(
            nn.MaxPool3d((3, 3, 3), (1, 1, 1), (1, 1, 1)), ConvBNReLU(in_planes, b3_out, [1, 1, 1])
        )

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat((self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)), 1)


class S3D(VideoModel):
    """S3D for clips of at least 13 frames of 209 x 209 pixels (the 2 x 7 x 7 average pool must fit).

    ``forward_features`` returns the 1024 channels of block 5c; the head average-pools them over
    2 x 7 x 7 windows (stride 1) and then over all window positions, and applies torchvision's dropout
    and 1x1x1 convolution to the pooled features. (In eval mode this equals torchvision's per-position
    classifier followed by the mean; in training, dropout acts on the pooled features rather than per
    position.)

    Args:
        num_classes: outputs of the classifier.
        dropout: before the classifier, while training.
    """

    classifier_name = "classifier.1"
    stem_params = ("features.0", "features.1", "features.2", "features.3", "features.4")
    head_params = ("classifier",)

    def __init__(self, num_classes: int = 400, dropout: float = 0.2) -> None:
        super().__init__(num_classes, num_features=1024, min_temporal_size=13, min_size=209)
        self.num_layers = 3
        pool_space = partial(nn.MaxPool3d, (1, 3, 3), (1, 2, 2), (0, 1, 1))
        self.features = nn.Sequential(
            TemporalSeparableConv(3, 64, 7, 2, 3),
            pool_space(),
            ConvBNReLU(64, 64, [1, 1, 1]),
            TemporalSeparableConv(64, 192, 3, 1, 1),
            pool_space(),
            SepInceptionBlock3D(192, 64, 96, 128, 16, 32, 32),  # 3b
            SepInceptionBlock3D(256, 128, 128, 192, 32, 96, 64),  # 3c
            nn.MaxPool3d((3, 3, 3), (2, 2, 2), (1, 1, 1)),
            SepInceptionBlock3D(480, 192, 96, 208, 16, 48, 64),  # 4b
            SepInceptionBlock3D(512, 160, 112, 224, 24, 64, 64),  # 4c
            SepInceptionBlock3D(512, 128, 128, 256, 24, 64, 64),  # 4d
            SepInceptionBlock3D(512, 112, 144, 288, 32, 64, 64),  # 4e
            SepInceptionBlock3D(528, 256, 160, 320, 32, 128, 128),  # 4f
            nn.MaxPool3d((2, 2, 2), (2, 2, 2)),
            SepInceptionBlock3D(832, 256, 160, 320, 32, 128, 128),  # 5b
            SepInceptionBlock3D(832, 384, 192, 384, 48, 128, 128),  # 5c
        )
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Conv3d(1024, num_classes, kernel_size=1))

    def forward_features(self, x: Tensor) -> Tensor:
        """Block 5c's map ``(B, 1024, T', H', W')``."""
        if not self.training and not torch.jit.is_scripting():
            x = x.contiguous(memory_format=torch.channels_last_3d)
        for layer in self.features:
            x = layer(x) if torch.jit.is_scripting() else self.checkpointed(layer, x)
        return x

    @torch.jit.unused
    def feature_layers(self) -> list[FeatureLayer]:
        """Inception stages 3 (blocks 3b, 3c), 4 (max-pool, 4b-4f) and 5 (max-pool, 5b, 5c) of ``features``."""
        stages = [range(5, 7), range(7, 13), range(13, 16)]
        return [FeatureLayer(tuple(f"features.{i}" for i in s), (self.features[s[-1]],)) for s in stages]

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = window_avg_pool(x, [2, 7, 7]).mean((2, 3, 4))
        if pre_logits:
            return x
        dropout = self.classifier[0]
        conv = self.classifier[1]
        return F.linear(dropout(x), conv.weight.flatten(1), conv.bias)

    def init_classifier(self, layer: nn.Module) -> None:
        """torchvision's: PyTorch's default initialisation of a convolution."""
        assert isinstance(layer, nn.Conv3d)
        layer.reset_parameters()


# ----------------------------------------------------------------------------------------------------
# Weights


class S3D_Weights(WeightsEnum):
    KINETICS400_V1 = Weights(
        url="https://download.pytorch.org/models/s3d-d76dad2f.pth",
        # Frames resized to exactly 256 x 256, Kinetics statistics.
        transforms=partial(VideoClassification, crop_size=(224, 224), resize_size=(256, 256)),
        meta=tv_meta(
            num_params=8320048,
            acc1=68.368,
            acc5=88.050,
            gflops=17.979,
            file_size=31.972,
            recipe="https://github.com/pytorch/vision/tree/main/references/video_classification#s3d",
            docs=(
                "The weights aim to approximate the accuracy of the paper. The accuracies are estimated on clip-level "
                "with parameters `frame_rate=15`, `clips_per_video=1`, and `clip_len=128`."
            ),
            num_frames=128,
            frame_rate=15.0,
            num_clips=1,
            min_size=(224, 224),
            min_temporal_size=14,
        ),
    )
    DEFAULT = KINETICS400_V1


@register_model(S3D_Weights)
def s3d(*, weights: S3D_Weights | str | None = None, progress: bool = True, **kwargs: Any) -> S3D:
    """S3D (8.3 M parameters).

    Args:
        weights: :class:`S3D_Weights` (a member, its name or ``"DEFAULT"``), a file's path, or ``None``.
        progress: show a progress bar while downloading.
        kwargs: passed to :class:`S3D` (e.g. ``num_classes``, without weights).
    """
    return build_model(S3D, S3D_Weights, weights, progress, kwargs)
