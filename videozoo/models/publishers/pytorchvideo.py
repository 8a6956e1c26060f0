"""What the checkpoints published by PyTorchVideo (X3D, SlowFast, ...) have in common.

Their files are ``{"model_state": state_dict}`` dicts; they were evaluated with PySlowFast's Kinetics
recipe: 10 uniformly spaced clips x 3 crops per video, frames converted to float and normalised with
mean 0.45 / std 0.225 before a bilinear short-side resize, then cropped.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, Literal

from torch import Tensor

from videozoo.zoo import Weights
from videozoo.zoo.categories import CHARADES_CATEGORIES, KINETICS400_CATEGORIES, SSV2_CATEGORIES
from videozoo.video.transforms import VideoClassification
from videozoo.models.adapters import wrapped_state_dict

__all__ = [
    "PTV_MEAN",
    "PTV_STD",
    "PTV_KINETICS400_CATEGORIES",
    "MODEL_ZOO_URL",
    "PTV_FILES_URL",
    "PYSLOWFAST_CONFIGS_URL",
    "PYSLOWFAST_MVITV2_URL",
    "ptv_finetune_weights",
    "unwrap_model_state",
    "ptv_transforms",
    "ptv_meta",
]

PTV_MEAN = (0.45, 0.45, 0.45)
PTV_STD = (0.225, 0.225, 0.225)

# Class index -> name of the Kinetics-400 checkpoints. PyTorchVideo maps predictions to names with
# PySlowFast's https://dl.fbaipublicfiles.com/pyslowfast/dataset/class_names/kinetics_classnames.json
# ({name: index}). Checked entry by entry: its 400 indices map to exactly the names of
# KINETICS400_CATEGORIES in the same order, once the CSV quoting of the multi-word names is removed
# (the file spells index 290 '"sharpening knives"', quotes included; PyTorchVideo's tutorial strips
# them with ``.replace('"', "")``). So the published order is torchvision's, unquoted.
PTV_KINETICS400_CATEGORIES: tuple[str, ...] = KINETICS400_CATEGORIES

MODEL_ZOO_URL = "https://github.com/facebookresearch/pytorchvideo/blob/main/docs/source/model_zoo.md"
#: Where PyTorchVideo publishes its checkpoints: ``{PTV_FILES_URL}/{kinetics,ssv2,charades}/<FILE>.pyth``.
PTV_FILES_URL = "https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo"
#: Where PySlowFast publishes the MViTv2 video checkpoints (projects/mvitv2/README.md).
PYSLOWFAST_MVITV2_URL = "https://dl.fbaipublicfiles.com/pyslowfast/model_zoo/mvitv2/pysf_video_models"
#: PySlowFast's configuration files, which hold each checkpoint's training and test recipe.
PYSLOWFAST_CONFIGS_URL = "https://github.com/facebookresearch/SlowFast/blob/main/configs"


def unwrap_model_state(checkpoint: Any) -> dict[str, Tensor]:
    """The ``state_dict`` inside a PyTorchVideo checkpoint file (``{"model_state": state_dict}``).

    Keys prefixed ``model.`` (PySlowFast's ``PTV*`` wrappers of PyTorchVideo's networks) lose the prefix.
    Raises ``ValueError`` for anything else, e.g. a bare ``state_dict`` or another library's file.
    """
    state = wrapped_state_dict(checkpoint, "model_state", "PyTorchVideo")
    if state and all(key.startswith("model.") for key in state):
        return {key[len("model.") :]: value for key, value in state.items()}
    return state


def ptv_transforms(
    test_size: int, resize_size: int | None = None, channel_order: Literal["rgb", "bgr"] = "rgb"
) -> partial[VideoClassification]:
    """PySlowFast's test-time preset: short side resized to ``resize_size`` (default: ``test_size``, as
    for 3 crops), centre crop of ``test_size``.

    Frames are normalised in float before resizing (``resize_uint8=False``) and the centre crop's
    offset is rounded up (``crop_rounding="ceil"``), as PySlowFast's ``uniform_crop`` does.
    ``channel_order="bgr"`` for its configurations with ``REVERSE_INPUT_CHANNEL`` (SSv2, Charades).
    """
    return partial(
        VideoClassification,
        crop_size=test_size,
        resize_size=test_size if resize_size is None else resize_size,
        mean=PTV_MEAN,
        std=PTV_STD,
        resize_uint8=False,
        crop_rounding="ceil",
        channel_order=channel_order,
    )


def ptv_meta(
    *,
    num_params: int,
    acc1: float,
    acc5: float,
    gflops: float,
    num_frames: int,
    sampling_rate: int,
    min_size: tuple[int, int],
    min_temporal_size: int,
    docs: str,
    file_size: float | None = None,
    num_clips: int = 10,
    num_crops: int = 3,
    **extra: Any,
) -> dict[str, Any]:
    """Meta of a Kinetics-400 checkpoint from PyTorchVideo's model zoo (GFLOPs are per view).

    ``num_clips`` x ``num_crops``: the views the accuracy was measured with (PySlowFast's default 10 x 3;
    MViT's 5 x 1).
    """
    return {
        "categories": list(PTV_KINETICS400_CATEGORIES),
        "min_size": min_size,
        "min_temporal_size": min_temporal_size,
        "num_params": num_params,
        "recipe": MODEL_ZOO_URL,
        "_metrics": {"Kinetics-400": {"acc@1": acc1, "acc@5": acc5}},
        "_ops": gflops,
        "_file_size": file_size,
        "_docs": docs,
        # PySlowFast's Kinetics test protocol in machine-readable form (see videozoo.sampling):
        # num_frames frames every sampling_rate frames of the 30 fps video, num_clips x num_crops views.
        "num_frames": num_frames,
        "sampling_rate": sampling_rate,
        "frame_rate": 30.0,
        "num_clips": num_clips,
        "num_crops": num_crops,
        "license": "Apache-2.0",  # PyTorchVideo's licence, under which it publishes its model zoo
        **extra,
    }


# ----------------------------------------------------------------------------------------------------
# Fine-tunes on other data sets

# What PySlowFast's SSv2 and Charades configurations (configs/{SSv2,Charades}/pytorchvideo/) change
# from the Kinetics recipe, besides the categories:
# * Something-Something V2: frames sampled by segments over the whole video (one from each of
#   num_frames equal segments at 30 fps; the segment centres at test time), one temporal view x 3
#   crops, and no horizontal flip in training (classes such as "Pushing [something] from left to
#   right" would swap). ``sampling_rate`` does not apply.
# * Charades: multi-label (BCE-with-logits training, sigmoid outputs), 10 clips x 3 crops whose class
#   probabilities are combined by their maximum (ENSEMBLE_METHOD: max), reported as mAP. Charades'
#   frames are 24 fps.
# Both feed the network BGR frames (REVERSE_INPUT_CHANNEL: True, after normalising) at a 256-pixel
# test crop; the network is the Kinetics one with another number of classes.
# data set -> (PySlowFast's config folder, the metrics' data set name, categories, recipe in meta)
_FINETUNES: dict[str, tuple[str, str, tuple[str, ...], dict[str, Any]]] = {
    "ssv2": (
        "SSv2",
        "Something-Something-V2",
        SSV2_CATEGORIES,
        {
            "sampling": "segments",
            "sampling_rate": None,
            "frame_rate": 30.0,
            "num_clips": 1,
            "num_crops": 3,
            "hflip": False,
        },
    ),
    "charades": (
        "Charades",
        "Charades",
        CHARADES_CATEGORIES,
        {"multi_label": True, "frame_rate": 24.0, "num_clips": 10, "num_crops": 3},
    ),
}


def ptv_finetune_weights(
    dataset: Literal["ssv2", "charades"],
    num_params: int,
    metrics: dict[str, float],
    gflops: float,
    *,
    kinetics: Weights,
    arch: str,
    input_note: str = "",
) -> Weights:
    """A PyTorchVideo checkpoint fine-tuned from ``kinetics`` on Something-Something V2 or Charades.

    Args:
        dataset: the model zoo's folder, ``"ssv2"`` or ``"charades"``.
        num_params: of the network with this data set's number of classes.
        metrics: as published: ``{"acc@1", "acc@5"}`` (SSv2) or ``{"mAP"}`` (Charades).
        gflops: per view, as published.
        kinetics: the Kinetics-400 weights of the same network (its file name, meta and adapter carry over).
        arch: the network as the docs name it, e.g. ``"Slow 8x8 R50"``.
        input_note: what the docs say of the model's input before its test crops (SlowFast's pathways).

    The file's cache name gets the data set appended (``SLOW_8x8_R50_ssv2.pyth``): PyTorchVideo
    publishes the Kinetics, SSv2 and Charades files under the same name.
    """
    config = kinetics.url.rsplit("/", 1)[-1].removesuffix(".pyth")
    frames, rate = kinetics.meta["num_frames"], kinetics.meta["sampling_rate"]
    yaml = f"configs/{_FINETUNES[dataset][0]}/pytorchvideo/{config}.yaml"
    input_note += (" " if input_note else "") + (
        "Test crops of 256 pixels, short side resized to 256, mean 0.45 / std 0.225, channels in BGR order (as "
        "PySlowFast fed them)."
    )
    if dataset == "ssv2":
        docs = (
            f"PyTorchVideo's {arch} Something-Something V2 checkpoint (174 classes, fine-tuned from "
            f"Kinetics-400). Frames: one from each of {frames} equal segments of the whole video at 30 fps (the "
            f"segment centres), one temporal view x 3 crops. {input_note} Accuracy is PyTorchVideo's model zoo "
            f"figure (PySlowFast evaluation, {yaml})."
        )
    else:
        docs = (
            f"PyTorchVideo's {arch} Charades checkpoint (157 classes, multi-label, fine-tuned from "
            f"Kinetics-400). Class probabilities are the sigmoids of the logits; a video's 10 clips x 3 crops "
            f"({frames} frames {rate} apart at 24 fps) are combined by their maximum. {input_note} mAP is "
            f"PyTorchVideo's model zoo figure (PySlowFast evaluation, {yaml})."
        )
    folder, name, categories, recipe = _FINETUNES[dataset]
    adapter: Callable[[Any], dict[str, Tensor]] | None = kinetics.state_dict_adapter
    return Weights(
        url=f"{PTV_FILES_URL}/{dataset}/{config}.pyth",
        transforms=ptv_transforms(256, channel_order="bgr"),
        meta={
            **kinetics.meta,
            "categories": list(categories),
            "num_params": num_params,
            "recipe": f"{PYSLOWFAST_CONFIGS_URL}/{folder}/pytorchvideo/{config}.yaml",
            "_metrics": {name: dict(metrics)},
            "_ops": gflops,
            "_file_size": None,
            "_docs": docs,
            **recipe,
        },
        state_dict_adapter=adapter,
        file_name=f"{config}_{dataset}.pyth",
    )
