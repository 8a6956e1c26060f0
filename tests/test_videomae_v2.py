"""VideoMAE V2 specifics: the authors' distilled Kinetics-710 files through ``weights=`` (bare or under
their wrapper keys), read as the Kinetics-400 member (the head cut to its 400 rows) or as the Kinetics-710
one, wrong files refused, and the weights' metadata."""

from __future__ import annotations

import pytest
import torch

import videozoo
from parity.common import FIXTURES, TOLERANCE, load_fixture, make_input, reference_state_dict, relative_error
from videozoo.errors import CheckpointError
from videozoo.models.adapters.videomae import from_videomae_v2_state_dict, kinetics400_from_videomae_v2_k710
from videozoo.models.videomae import VideoMAE, VideoMAE_V2_B_Weights, VideoMAE_V2_S_Weights
from videozoo.video.transforms import VideoClassification
from videozoo.zoo import Weights, WeightsEnum, build_model
from videozoo.zoo.categories import KINETICS400_CATEGORIES, KINETICS710_CATEGORIES, KINETICS710_TO_400

FIXTURE = "videomae_v2_s"  # 48 channels, 6 heads, 2 blocks, 710 classes; 4 frames of 32 px
URL = "https://huggingface.co/test/tiny-videomae2/resolve/main/distill/vit_t_k710_dl_from_giant.pth"


def _preset() -> VideoClassification:
    return VideoClassification(crop_size=32, resize_size=32)


def _tiny(categories: list[str], adapter) -> Weights:
    meta = {
        "categories": categories, "num_frames": 4, "sampling_rate": 1, "frame_rate": None, "num_clips": 1,
        "num_crops": 1, "min_size": (16, 16), "min_temporal_size": 2, "model_args": {"num_frames": 4, "crop_size": 32},
    }  # fmt: skip
    return Weights(url=URL, transforms=_preset, meta=meta, state_dict_adapter=adapter)


class Tiny_VideoMAE_V2_Weights(WeightsEnum):
    """The published members' pair at the parity fixture's size: one file, two readings."""

    KINETICS400_DISTILLED = _tiny(list(KINETICS400_CATEGORIES), kinetics400_from_videomae_v2_k710)
    KINETICS710_DISTILLED = _tiny(list(KINETICS710_CATEGORIES), from_videomae_v2_state_dict)
    DEFAULT = KINETICS400_DISTILLED


def tiny_videomae_v2(*, weights=None, progress=True, **kwargs) -> VideoMAE:
    return build_model(
        VideoMAE, Tiny_VideoMAE_V2_Weights, weights, progress, kwargs, embed_dim=48, depth=2, num_heads=6, norm_eps=1e-6,
        fc_norm_eps=1e-6,
    )  # fmt: skip


@pytest.fixture(scope="module")
def fixture() -> dict:
    return load_fixture(FIXTURES / f"{FIXTURE}.pt")


@pytest.mark.parametrize("wrapper", [None, "model", "module"], ids=["bare", "model", "module"])
def test_published_file_loads_as_kinetics400_and_as_kinetics710(wrapper, fixture, tmp_path) -> None:
    """The file named as the members' cached file: ``weights=path`` reads it as the Kinetics-400 member,
    whose scores are the reference's Kinetics-710 scores at the Kinetics-400 rows; ``load_weights`` with the
    Kinetics-710 member gives all 710."""
    state = reference_state_dict(fixture)
    checkpoint = state if wrapper is None else {wrapper: state, "epoch": 89}
    path = tmp_path / Tiny_VideoMAE_V2_Weights.DEFAULT.file_name
    torch.save(checkpoint, path)
    x = make_input(fixture["input_shape"], seed=fixture["input_seed"])
    reference = fixture["output"]
    with videozoo.registered(tiny_videomae_v2, Tiny_VideoMAE_V2_Weights):
        k400 = tiny_videomae_v2(weights=path).eval()
        model = tiny_videomae_v2(num_classes=710, num_frames=4, crop_size=32)
        k710 = videozoo.load_weights(model, Tiny_VideoMAE_V2_Weights.KINETICS710_DISTILLED, path)
    with torch.inference_mode():
        assert relative_error(k710.eval()(x), reference) <= TOLERANCE
        assert relative_error(k400(x), reference[:, list(KINETICS710_TO_400)]) <= TOLERANCE


def test_a_file_without_a_kinetics710_head_is_refused(fixture, tmp_path) -> None:
    state = reference_state_dict(fixture)
    state["head.weight"], state["head.bias"] = state["head.weight"][:174], state["head.bias"][:174]
    with pytest.raises(ValueError, match=r"Kinetics-710 classifier \(head\.weight with 710 rows\), found 174 rows"):
        kinetics400_from_videomae_v2_k710({"module": state})
    torch.save({"model": state}, tmp_path / "ssv2_head.pth")
    torch.save({"state": state}, tmp_path / "neither.pth")
    with videozoo.registered(tiny_videomae_v2, Tiny_VideoMAE_V2_Weights):
        with pytest.raises(CheckpointError, match=r"ssv2_head\.pth.*head\.weight: checkpoint \(174, 48\) vs model \(400, 48\)"):
            tiny_videomae_v2(weights=tmp_path / "ssv2_head.pth")
        with pytest.raises(CheckpointError, match=r"neither\.pth.*VideoMAE V2 checkpoint"):
            tiny_videomae_v2(weights=tmp_path / "neither.pth")


def test_kinetics400_rows_are_400_distinct_rows_of_the_710() -> None:
    rows = list(KINETICS710_TO_400)
    assert len(rows) == len(set(rows)) == 400 and all(0 <= r < 710 for r in rows)
    assert len(KINETICS710_CATEGORIES) == len(set(KINETICS710_CATEGORIES)) == 710
    # The same classes: 387 names equal outright; the others are the Kinetics-400 names of later releases.
    same = sum(KINETICS710_CATEGORIES[r] == name for r, name in zip(rows, KINETICS400_CATEGORIES))
    assert same == 387
    assert KINETICS710_CATEGORIES[rows[KINETICS400_CATEGORIES.index("balloon blowing")]] == "inflating balloons"


def test_weights_name_the_authors_files_and_figures() -> None:
    base = "https://huggingface.co/OpenGVLab/VideoMAE2/resolve/main/distill/"
    for enum, size, k400, k710 in ((VideoMAE_V2_S_Weights, "s", 83.7, 77.6), (VideoMAE_V2_B_Weights, "b", 86.6, 81.5)):
        assert enum.KINETICS400_DISTILLED.url == enum.KINETICS710_DISTILLED.url == f"{base}vit_{size}_k710_dl_from_giant.pth"
        assert enum.DEFAULT is enum.KINETICS400_DISTILLED
        assert enum.KINETICS400_DISTILLED.meta["_metrics"] == {"Kinetics-400": {"acc@1": k400}}
        assert enum.KINETICS710_DISTILLED.meta["_metrics"] == {"Kinetics-710": {"acc@1": k710}}
        assert enum.DEFAULT.recipe.num_frames == 16 and enum.DEFAULT.recipe.num_views == 15
        assert enum.DEFAULT.meta["license"] == "MIT" and not enum.DEFAULT.gated
