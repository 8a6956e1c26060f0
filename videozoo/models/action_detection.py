"""AVA action detectors: a Slow or SlowFast backbone with a RoI head, PyTorchVideo's AVA v2.2 checkpoints.

Gu et al., "AVA: A Video Dataset of Spatio-temporally Localized Atomic Visual Actions", CVPR 2018
(https://arxiv.org/abs/1705.08421); the detector is Feichtenhofer et al.'s ("SlowFast Networks for
Video Recognition", ICCV 2019, https://arxiv.org/abs/1812.03982, section 5): a video backbone whose last
stage keeps a stride of 16 (res5 at spatial stride 1, its 3x3 convolutions dilated by 2), and a head that
classifies each person box of the clip's middle frame (the *keyframe*) into AVA's 80 atomic actions.

The **backbone** is the Slow network of :mod:`~videozoo.models.resnet3d` or the SlowFast network of
:mod:`~videozoo.models.slowfast`, built with ``spatial_strides=(1, 2, 2, 1)`` and
``spatial_dilations=(1, 1, 1, 2)``. The **RoI head**, as PyTorchVideo's ``ResNetRoIHead``:

1. average each pathway's last map over time (PyTorchVideo's ``AvgPool3d`` window spans the whole map
   at the published clip, 4 frames for Slow, 8 + 32 for SlowFast; other clip lengths, which PyTorchVideo
   refuses, are averaged whole too) and concatenate the pathways;
2. RoIAlign each box onto a 7x7 grid (:func:`~videozoo.models.layers.roi_align`, torchvision's
   function in plain torch; spatial scale 1/16, adaptive sampling ratio, ``aligned=False`` as
   PyTorchVideo builds torchvision's ``RoIAlign``);
3. max-pool the 7x7 grid, dropout, one linear layer: the box's logits.

PyTorchVideo's head ends in a sigmoid; ``forward`` here returns the logits (the contract's), and the
task layer applies the sigmoid where it makes labels (AVA is multi-label).

Called as PyTorchVideo's detectors are: ``model(clip, boxes)`` with ``boxes`` a float ``(K, 5)`` tensor of
rows ``(batch_index, x1, y1, x2, y2)`` in the clip's pixel coordinates, returning ``(K, 80)`` logits.
``forward_features(clip)`` is the backbone's map(s); ``forward_head(features, boxes, pre_logits=True)``
the ``(K, num_features)`` box embeddings.

PyTorchVideo's files hold a ``DetectionBBoxNetwork``: the backbone under ``model.`` in the layout of the
Kinetics checkpoints and the classifier as ``detection_head.proj``; the Kinetics adapters rename them.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from videozoo.models.adapters.action_detection import (
    from_pytorchvideo_slow_detection_state_dict,
    from_pytorchvideo_slowfast_detection_state_dict,
)
from videozoo.models.layers.roi_align import roi_align
from videozoo.models.publishers.pytorchvideo import (
    MODEL_ZOO_URL,
    PTV_FILES_URL,
    ptv_transforms,
)
from videozoo.models.resnet3d import ResNet3D
from videozoo.models.slowfast import SlowFast
from videozoo.zoo import Weights, WeightsEnum, build_model, register_model
from videozoo.zoo.categories import AVA_CATEGORIES, AVA_EVALUATED_IDS

__all__ = [
    "ResNet3DDetector",
    "SlowFastDetector",
    "SlowFast_R50_Detection_Weights",
    "Slow_R50_Detection_Weights",
    "slow_r50_detection",
    "slowfast_r50_detection",
]

#: res5 at stride 1 with dilated 3x3 convolutions keeps the last map at 1/16 of the frame.
DETECTION_STRIDES = (1, 2, 2, 1)
DETECTION_DILATIONS = (1, 1, 1, 2)


def check_boxes(name: str, boxes: Tensor, batch_size: int) -> None:
    """``ValueError`` naming what is wrong with ``boxes`` for a clip batch of ``batch_size`` clips."""
    if boxes.dim() != 2 or boxes.shape[1] != 5:
        raise ValueError(
            f"{name} expects boxes of shape (K, 5), rows (batch_index, x1, y1, x2, y2) in the clip's pixels; got "
            f"shape {list(boxes.shape)}. For (K, 4) boxes of one clip prepend a zero column: "
            f"torch.cat([boxes.new_zeros(len(boxes), 1), boxes], 1)."
        )
    if not boxes.is_floating_point():
        raise ValueError(f"{name} expects floating-point boxes; got {boxes.dtype}. Call boxes.float().")
    if not torch.jit.is_scripting():  # noqa: SIM102  (compiled out when scripting, the only form TorchScript skips)
        if not torch.jit.is_tracing() and not torch.compiler.is_compiling():
            _check_box_values(name, boxes, batch_size)


@torch.jit.unused
def _check_box_values(name: str, boxes: Tensor, batch_size: int) -> None:
    """The checks that read the boxes' values (eager mode only: traced and exported graphs have none)."""
    if boxes.numel() == 0:
        return
    if not bool(torch.isfinite(boxes).all()):
        row = int((~torch.isfinite(boxes)).any(1).nonzero()[0])
        raise ValueError(f"{name}: box {row} has a non-finite coordinate: {boxes[row].tolist()}.")
    index = boxes[:, 0]
    bad = (index != index.round()) | (index < 0) | (index >= batch_size)
    if bool(bad.any()):
        row = int(bad.nonzero()[0])
        raise ValueError(
            f"{name}: box {row} has batch index {index[row].item()}; the clip batch holds {batch_size} clip(s), "
            f"so the index must be an integer in [0, {batch_size - 1}]."
        )
    inverted = (boxes[:, 3] < boxes[:, 1]) | (boxes[:, 4] < boxes[:, 2])
    if bool(inverted.any()):
        row = int(inverted.nonzero()[0])
        raise ValueError(
            f"{name}: box {row} is inverted, {boxes[row, 1:].tolist()}: rows are (batch_index, x1, y1, x2, y2) with "
            f"x1 <= x2 and y1 <= y2."
        )


def roi_head_features(maps: list[Tensor], boxes: Tensor) -> Tensor:
    """Steps 1-2 and the max-pool of the RoI head: ``(K, C)`` box features from the pathways' maps
    ``(B, C_i, T_i, H', W')`` (their time averaged, then concatenated)."""
    pooled = torch.cat([m.mean(2) for m in maps], 1)  # (B, C, H', W')
    # PyTorchVideo's RoIAlign: a 7x7 grid, the map's stride 16, torchvision's adaptive sampling ratio (0).
    grid = roi_align(pooled, boxes, [7, 7], 1.0 / 16.0, 0, aligned=False)
    return grid.amax((2, 3))


class ResNet3DDetector(ResNet3D):
    """A bottleneck 3D ResNet (Slow) with a RoI head: PyTorchVideo's ``create_resnet_with_roi_head``.

    Args: as :class:`~videozoo.models.resnet3d.ResNet3D` (the builder sets the detection strides); the
    RoI head's classifier is ``fc`` and ``dropout`` precedes it.
    """

    def forward_head(self, x: Tensor, boxes: Tensor, pre_logits: bool = False) -> Tensor:  # type: ignore[override]
        """The ``(K, 2048)`` box embeddings or ``(K, num_classes)`` logits of ``boxes`` on the map ``x``."""
        features = roi_head_features([x], boxes)
        return features if pre_logits else self.fc(self.dropout(features))

    def forward(self, x: Tensor, boxes: Tensor) -> Tensor:  # type: ignore[override]
        """Logits ``(K, num_classes)`` of each box of ``boxes`` (rows ``(batch_index, x1, y1, x2, y2)``, the
        clip's pixels) in the clip batch ``x`` ``(B, 3, T, H, W)``."""
        self.check_input(x)
        check_boxes(self._name(), boxes, x.shape[0])
        return self.forward_head(self.forward_features(x), boxes)


class SlowFastDetector(SlowFast):
    """SlowFast with a RoI head: PyTorchVideo's ``create_slowfast_with_roi_head``.

    Args: as :class:`~videozoo.models.slowfast.SlowFast` (the builder sets the detection strides).
    ``model([slow, fast], boxes)`` takes PyTorchVideo's pair of clips in eager mode.
    """

    def forward_head(self, x: list[Tensor], boxes: Tensor, pre_logits: bool = False) -> Tensor:  # type: ignore[override]
        """The ``(K, 2304)`` box embeddings or ``(K, num_classes)`` logits of ``boxes`` on ``[slow, fast]``."""
        features = roi_head_features(x, boxes)
        return features if pre_logits else self.fc(self.dropout(features))

    @torch.jit.export
    def forward_pathways(self, slow: Tensor, fast: Tensor, boxes: Tensor) -> Tensor:  # type: ignore[override]
        """Logits for PyTorchVideo's calling convention: the ``[slow, fast]`` clips and the boxes."""
        self._check_pathways(slow, fast)
        check_boxes(self._name(), boxes, fast.shape[0])
        return self.forward_head(self.forward_pathway_features(slow, fast), boxes)

    def forward(self, x: Tensor, boxes: Tensor) -> Tensor:  # type: ignore[override]
        """Logits ``(K, num_classes)`` of each box (rows ``(batch_index, x1, y1, x2, y2)``, the clip's pixels)
        in the Fast clip batch ``x`` ``(B, 3, T, H, W)``; in eager mode ``x`` may be a ``[slow, fast]`` pair."""
        if isinstance(x, (list, tuple)):  # statically False when scripted: use forward_pathways there
            if len(x) != 2:
                raise ValueError(f"{self._name()} expects one clip or a [slow, fast] pair, got {len(x)} tensors.")
            return self.forward_pathways(x[0], x[1], boxes)
        self.check_input(x)
        check_boxes(self._name(), boxes, x.shape[0])
        return self.forward_head(self.forward_features(x), boxes)


# ----------------------------------------------------------------------------------------------------
# Weights

_EVALUATED = set(AVA_EVALUATED_IDS)
#: AVA's labels as the CSVs number them: ``id = class index + 1``; ``evaluated`` marks the 60 ids of
#: AVA's frame-mAP (the other 20 are trained on but not scored).
AVA_LABELS: tuple[dict[str, Any], ...] = tuple(
    {"id": i + 1, "name": name, "evaluated": i + 1 in _EVALUATED} for i, name in enumerate(AVA_CATEGORIES)
)


def _weights(
    file: str, arch: str, frames: int, rate: int, num_params: int, mAP: float, gflops: float, adapter: Any
) -> Weights:
    """PyTorchVideo's AVA v2.2 checkpoint ``{PTV_FILES_URL}/ava/<file>.pyth``: ``frames`` frames ``rate`` apart
    at 30 fps around the keyframe, fine-tuned from the Kinetics-400 network of the same name."""
    span = frames * rate
    return Weights(
        url=f"{PTV_FILES_URL}/ava/{file}.pyth",
        transforms=ptv_transforms(256),
        meta={
            "categories": list(AVA_CATEGORIES),
            # AVA's action id of class index i is i + 1 (AVA_LABELS); frame-mAP is over these 60 ids.
            "evaluated_ids": list(AVA_EVALUATED_IDS),
            "min_size": (16, 16),
            "min_temporal_size": 1,
            "num_params": num_params,
            "recipe": MODEL_ZOO_URL,
            "_metrics": {"AVA-v2.2": {"mAP": mAP}},
            "_ops": gflops,
            "_file_size": None,
            "_docs": (
                f"PyTorchVideo's {arch} AVA v2.2 detector (80 atomic actions, fine-tuned from its Kinetics-400 "
                f"network). Input: {frames} frames {rate} apart at 30 fps (a {span}-frame span) centred on the "
                f"keyframe (frame indices keyframe - {span // 2} + i * {rate}, clamped to the video as PySlowFast's "
                f"AVA loader does), the full frame with its short side resized to 256 (no crop), mean 0.45 / std "
                f"0.225, and person boxes in that frame's pixels. mAP is PyTorchVideo's model zoo figure (frame-mAP "
                f"at IoU 0.5 over AVA's 60 evaluated classes, PySlowFast's AVA test with its Faster R-CNN person "
                f"boxes). Multi-label: probabilities are the sigmoids of the logits. GFLOPs (multiply-adds) are of one "
                f"256x256 clip, counted with torch.utils.flop_counter (PyTorchVideo publishes none; a 16:9 frame at "
                f"256x455 costs about 1.8 times as much). The file was not downloaded here; its key layout is "
                f"PyTorchVideo 0.1.5's builder's."
            ),
            # The recipe in machine-readable form (the detect task reads it).
            "num_frames": frames,
            "sampling_rate": rate,
            "frame_rate": 30.0,
            "num_clips": 1,
            "num_crops": 1,
            "keyframe": "middle",
            "box_short_side": 256,
            "multi_label": True,
            "license": "Apache-2.0",
        },
        state_dict_adapter=adapter,
        file_name=f"{file}.pyth",
    )


class Slow_R50_Detection_Weights(WeightsEnum):
    AVA_V2_2 = DEFAULT = _weights(
        "SLOW_4x16_R50_DETECTION", "Slow R50 4x16", 4, 16, 31_798_416, 19.5, 41.56,
        from_pytorchvideo_slow_detection_state_dict,
    )


class SlowFast_R50_Detection_Weights(WeightsEnum):
    AVA_V2_2 = DEFAULT = _weights(
        "SLOWFAST_8x8_R50_DETECTION", "SlowFast R50 8x8", 32, 2, 33_828_888, 24.67, 96.89,
        from_pytorchvideo_slowfast_detection_state_dict,
    )


# ----------------------------------------------------------------------------------------------------
# Builders

_R50 = (3, 4, 6, 3)
_DETECTION = {"spatial_strides": DETECTION_STRIDES, "spatial_dilations": DETECTION_DILATIONS, "num_classes": 80}


@register_model(Slow_R50_Detection_Weights, task="action_detection")
def slow_r50_detection(
    *, weights: Slow_R50_Detection_Weights | str | None = None, progress: bool = True, **kwargs: Any
) -> ResNet3DDetector:
    """Slow R50 4x16 with a RoI head, AVA v2.2: 4 frames 16 apart, res5 dilated (stride 16).

    Args:
        weights: :class:`Slow_R50_Detection_Weights` (a member, its name or ``"DEFAULT"``), a file's path, or
            ``None`` (PyTorchVideo's format).
        progress: show a progress bar while downloading.
        kwargs: passed to :class:`ResNet3DDetector`.
    """
    arch = {"layers": _R50, "num_frames": 4, **_DETECTION}
    return build_model(ResNet3DDetector, Slow_R50_Detection_Weights, weights, progress, kwargs, **arch)


@register_model(SlowFast_R50_Detection_Weights, task="action_detection")
def slowfast_r50_detection(
    *, weights: SlowFast_R50_Detection_Weights | str | None = None, progress: bool = True, **kwargs: Any
) -> SlowFastDetector:
    """SlowFast R50 8x8 with a RoI head, AVA v2.2: Fast 32 frames 2 apart, Slow 8 of them, res5 dilated.

    Args: as :func:`slow_r50_detection`, with :class:`SlowFast_R50_Detection_Weights`.
    """
    arch = {"layers": _R50, "alpha": 4, "fusion_kernel": 7, "num_frames": 32, **_DETECTION}
    return build_model(SlowFastDetector, SlowFast_R50_Detection_Weights, weights, progress, kwargs, **arch)
