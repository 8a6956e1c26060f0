"""InternVideo2 specifics: the publisher's files through ``weights=`` (bare or under its wrapper keys),
wrong files refused, clip sizes (the position table kept at the built size, resampled at others, sizes
off the patch grid refused before any compute), the published architectures and the weights' metadata."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import videozoo
import videozoo.errors
from parity.common import FIXTURES, TOLERANCE, load_fixture, make_input, reference_state_dict, relative_error
from videozoo.errors import CheckpointError
from videozoo.models.adapters.internvideo2 import from_internvideo2_state_dict
from videozoo.models.internvideo2 import (
    InternVideo2,
    InternVideo2_1B_F16_Weights,
    InternVideo2_1B_Weights,
    InternVideo2_L14_Weights,
    internvideo2_1b,
    internvideo2_1b_f16,
    internvideo2_b14,
    internvideo2_l14,
    internvideo2_s14,
)
from videozoo.video.transforms import VideoClassification
from videozoo.zoo import Weights, WeightsEnum, build_model

LABELS = ["a", "b", "c", "d", "e"]
FIXTURE = "internvideo2_s14"  # 48 channels, 6 heads, 2 blocks; pooling 4 heads to 32; 4 frames of 28 px


class Tiny_InternVideo2_Weights(WeightsEnum):
    """A member in the publisher's format and key layout, at the parity fixture's size."""

    DEFAULT = Weights(
        url="https://huggingface.co/test/tiny-internvideo2/resolve/main/stage1/S14/tiny/pytorch_model.bin",
        transforms=lambda: VideoClassification(crop_size=28, resize_size=28),
        meta={
            "categories": LABELS,
            "num_frames": 4,
            "sampling": "segments",
            "sampling_rate": None,
            "frame_rate": None,
            "num_clips": 1,
            "num_crops": 1,
            "min_size": (14, 14),
            "min_temporal_size": 1,
            "model_args": {"num_frames": 4, "crop_size": 28},
        },
        state_dict_adapter=from_internvideo2_state_dict,
    )


def tiny_internvideo2(*, weights=None, progress=True, **kwargs) -> InternVideo2:
    return build_model(
        InternVideo2, Tiny_InternVideo2_Weights, weights, progress, kwargs, embed_dim=48, depth=2, num_heads=6, pool_heads=4,
        pool_dim=32,
    )  # fmt: skip


@pytest.fixture(scope="module")
def fixture() -> dict:
    return load_fixture(FIXTURES / f"{FIXTURE}.pt")


@pytest.fixture(scope="module")
def model(fixture: dict) -> InternVideo2:
    state = reference_state_dict(fixture)
    built = InternVideo2(**fixture["kwargs"]).eval()
    built.load_state_dict(state, strict=True)
    return built


# -- the published files ----------------------------------------------------------------------------


@pytest.mark.parametrize("wrapper", [None, "module", "model"], ids=["bare", "module", "model"])
def test_published_file_loads_strictly_through_weights(wrapper, fixture, tmp_path) -> None:
    """A pytorch_model.bin with the publisher's keys, bare or under the keys its fine-tuning script reads
    (DeepSpeed's "module", its own "model"), with the other entries such files carry: ``weights=path``
    loads it strictly, draws no random numbers (built on the meta device) and gives the reference's
    outputs."""
    state = reference_state_dict(fixture)
    checkpoint = state if wrapper is None else {wrapper: state, "epoch": 4, "optimizer": {"state": {}}}
    path = tmp_path / Tiny_InternVideo2_Weights.DEFAULT.file_name
    torch.save(checkpoint, path)
    with videozoo.registered(tiny_internvideo2, Tiny_InternVideo2_Weights):
        rng = torch.get_rng_state()
        model = tiny_internvideo2(weights=path).eval()
        assert torch.equal(torch.get_rng_state(), rng)
    assert model.num_classes == len(LABELS) and model.grid == [4, 2, 2]
    with torch.inference_mode():
        out = model(make_input(fixture["input_shape"], seed=fixture["input_seed"]))
    assert relative_error(out, fixture["output"]) <= TOLERANCE


def test_a_wrong_file_is_refused_naming_it(fixture, tmp_path) -> None:
    state = reference_state_dict(fixture)
    with videozoo.registered(tiny_internvideo2, Tiny_InternVideo2_Weights):
        missing = tmp_path / "missing.bin"
        torch.save({k: v for k, v in state.items() if k != "blocks.1.attn.q_norm.weight"}, missing)
        with pytest.raises(CheckpointError, match=r"missing\.bin.*1 missing \(blocks\.1\.attn\.q_norm\.weight\)"):
            tiny_internvideo2(weights=missing)
        other = tmp_path / "other.bin"  # the 1B-shaped fixture: 96 channels
        torch.save({"module": reference_state_dict(load_fixture(FIXTURES / "internvideo2_1b.pt"))}, other)
        with pytest.raises(CheckpointError, match=r"other\.bin.*wrong shape"):
            tiny_internvideo2(weights=other)
        neither = tmp_path / "neither.bin"
        torch.save({"state": state}, neither)
        with pytest.raises(CheckpointError, match=r"neither\.bin.*InternVideo2 checkpoint"):
            tiny_internvideo2(weights=neither)


# -- clip sizes ---------------------------------------------------------------------------------------


def test_the_built_size_uses_the_learned_table_itself(model) -> None:
    assert model.position_embedding([4, 2, 2]) is model.pos_embed
    resampled = model.position_embedding([6, 3, 3])
    assert resampled.shape == (1, 1 + 6 * 3 * 3, 48)
    assert torch.equal(resampled[:, 0], model.pos_embed[:, 0])  # the class token's entry is kept


def test_a_clip_off_the_patch_grid_is_refused_before_any_compute(model) -> None:
    calls = []
    handle = model.patch_embed.register_forward_pre_hook(lambda *args: calls.append(1))
    try:
        with pytest.raises(ValueError, match=r"1x14x14 tubelets.*multiples of 14 and 14.*\(B, 3, 4, 28, 28\) as built"):
            model(torch.randn(1, 3, 4, 30, 28))
    finally:
        handle.remove()
    assert calls == []
    with torch.inference_mode():  # any frame count, any multiple of 14, square or not
        assert model(torch.randn(1, 3, 3, 42, 28)).shape == (1, 5)


# -- the published architectures and weights ------------------------------------------------------


@pytest.mark.parametrize(
    ("builder", "params", "blocks", "width", "mlp"),
    [
        (internvideo2_s14, 23_352_976, 12, 384, 1536),
        (internvideo2_b14, 89_748_112, 12, 768, 3072),
        (internvideo2_l14, 309_238_416, 24, 1024, 4096),
        (internvideo2_1b, 1_021_017_744, 40, 1408, 6144),
        (internvideo2_1b_f16, 1_023_901_328, 40, 1408, 6144),
    ],
)
def test_published_architectures(builder, params, blocks, width, mlp) -> None:
    with torch.device("meta"):
        model = builder()
    frames = 16 if builder is internvideo2_1b_f16 else 8
    assert sum(p.numel() for p in model.parameters()) == params
    assert len(model.blocks) == blocks and model.pos_embed.shape == (1, 1 + frames * 16 * 16, width)
    assert model.blocks[0].mlp.fc1.weight.shape == (mlp, width)
    assert model.clip_projector.cross_attn.proj.weight.shape == (768, width) and model.num_features == 768


def test_weights_name_the_publishers_files_and_figures() -> None:
    l14 = InternVideo2_L14_Weights.KINETICS400_V1
    assert l14.url == (
        "https://huggingface.co/OpenGVLab/InternVideo2_distillation_models/resolve/main/stage1/L14/"
        "L14_ft_k710_ft_k400_f8/pytorch_model.bin"
    )
    assert l14.meta["_metrics"] == {"Kinetics-400": {"acc@1": 90.4}}
    assert InternVideo2_1B_Weights.SSV2_V1.url.endswith("/OpenGVLab/InternVideo2-Stage1-1B-224p-f8-SthSth/resolve/main/1B_ft_ssv2_f8.pth")
    assert InternVideo2_1B_Weights.SSV2_V1.gated and InternVideo2_1B_Weights.KINETICS400_V1.gated and not l14.gated
    f16 = InternVideo2_1B_F16_Weights.KINETICS400_V1  # the 16-frame fine-tune: its own position table, builder
    assert f16.gated and internvideo2_1b_f16 is videozoo.get_model_builder("internvideo2_1b_f16")
    assert f16.url.endswith("/OpenGVLab/InternVideo2-Stage1-1B-224p-f8-K400/resolve/main/1B_ft_k710_ft_k400_f16.pth")
    assert f16.meta["model_args"] == {"num_frames": 16, "crop_size": 224} and f16.recipe.num_frames == 16
    assert f16.meta["_metrics"] == {"Kinetics-400": {"acc@1": 91.6}}
    for member in (l14, InternVideo2_1B_Weights.SSV2_V1):
        assert member.recipe.num_frames == 8 and member.recipe.sampling == "segments"
        assert member.transforms().crop_size == (224, 224)


def test_gated_weights_without_a_token_fail_before_any_download(cache_home_offline_off, monkeypatch) -> None:
    """internvideo2_1b(weights=...) without HF_TOKEN: the error names the repository's page and the
    variable, and nothing is built or downloaded (no server is even needed)."""
    for variable in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(variable, raising=False)
    with pytest.raises(videozoo.errors.DownloadError, match=r"gated repository.*no token is set") as info:
        internvideo2_1b(weights="KINETICS400_V1", progress=False)
    assert "https://huggingface.co/OpenGVLab/InternVideo2-Stage1-1B-224p-f8-K400," in str(info.value)
    assert not any(cache_home_offline_off.rglob("*"))


@pytest.fixture
def cache_home_offline_off(tmp_path, monkeypatch) -> Path:
    """An empty VIDEOZOO_HOME with downloads allowed: a gated member must fail before any request."""
    monkeypatch.setenv("VIDEOZOO_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("VIDEOZOO_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # were a request made, it would stay on this machine
    (tmp_path / "home").mkdir()
    return tmp_path / "home"


def test_cli_download_of_gated_weights_says_what_to_do(cache_home_offline_off, monkeypatch, capsys) -> None:
    """``videozoo download internvideo2_1b`` without a token: exit 5, one line naming the page and HF_TOKEN."""
    from videozoo.cli import main

    for variable in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(variable, raising=False)
    code = main(["download", "internvideo2_1b", "-q"])
    out, err = capsys.readouterr()
    assert code == 5 and out == "" and err.count("\n") == 1
    assert err.startswith("videozoo: error: InternVideo2_1B_Weights.KINETICS400_V1: ")
    assert "https://huggingface.co/OpenGVLab/InternVideo2-Stage1-1B-224p-f8-K400," in err and "HF_TOKEN" in err
