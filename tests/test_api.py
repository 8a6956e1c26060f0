"""The weights API and the registry, with real checkpoint files in a temporary cache."""

from __future__ import annotations

import hashlib
from functools import partial
from pathlib import Path

import pytest
import torch

import videozoo
from videozoo import CheckpointError, R2Plus1D_18_Weights, R3D_18_Weights, Weights, WeightsEnum
from videozoo.zoo import build_model
from videozoo.models.resnet import VideoResNet
from videozoo.video.transforms import VideoClassification


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty checkpoint cache; VIDEOZOO_HOME points at it."""
    monkeypatch.setenv("VIDEOZOO_HOME", str(tmp_path))
    (tmp_path / "checkpoints").mkdir()
    return tmp_path / "checkpoints"


def cache_checkpoint(cache: Path, member: WeightsEnum, model: torch.nn.Module) -> Path:
    path = cache / member.url.rsplit("/", 1)[-1]
    torch.save(model.state_dict(), path)
    return path


# -- WeightsEnum.verify ---------------------------------------------------------------------------

@pytest.mark.parametrize(
    "given", [R3D_18_Weights.KINETICS400_V1, "KINETICS400_V1", "DEFAULT", "R3D_18_Weights.KINETICS400_V1"]
)
def test_verify_accepts_member_and_names(given) -> None:
    assert R3D_18_Weights.verify(given) is R3D_18_Weights.KINETICS400_V1


def test_verify_none_and_default_alias() -> None:
    assert R3D_18_Weights.verify(None) is None
    assert R3D_18_Weights.DEFAULT is R3D_18_Weights.KINETICS400_V1
    assert list(R3D_18_Weights) == [R3D_18_Weights.KINETICS400_V1]  # the alias is not a second member


@pytest.mark.parametrize("bad", ["IMAGENET1K_V1", "R2Plus1D_18_Weights.KINETICS400_V1", "default"])
def test_verify_unknown_name_lists_valid_names(bad: str) -> None:
    with pytest.raises(ValueError, match="valid names are 'KINETICS400_V1', 'DEFAULT'"):
        R3D_18_Weights.verify(bad)


def test_verify_rejects_other_enums_and_types() -> None:
    with pytest.raises(ValueError, match="do not belong to this model"):
        R3D_18_Weights.verify(R2Plus1D_18_Weights.KINETICS400_V1)
    with pytest.raises(ValueError, match="not int"):
        R3D_18_Weights.verify(3)


def test_member_properties() -> None:
    w = R2Plus1D_18_Weights.KINETICS400_V1
    assert w.url == "https://download.pytorch.org/models/r2plus1d_18-91a641e6.pth"
    assert w.meta["_metrics"]["Kinetics-400"]["acc@1"] == 67.463
    assert w.meta["categories"][0] == "abseiling" and len(w.meta["categories"]) == 400
    preset = w.transforms()
    assert isinstance(preset, VideoClassification)
    assert preset.crop_size == (112, 112) and preset.resize_size == (128, 171)
    assert repr(w) == "R2Plus1D_18_Weights.KINETICS400_V1"


# -- registry --------------------------------------------------------------------------------------

def test_list_models_is_sorted_and_filtered() -> None:
    names = videozoo.list_models()
    assert names == sorted(names) and {"r3d_18", "mc3_18", "r2plus1d_18"} <= set(names)
    assert videozoo.list_models(include="r*") == [n for n in names if n.startswith("r")]
    assert videozoo.list_models(include=["r3d*", "mc3*"]) == ["mc3_18", "r3d_18"]
    assert "r3d_18" not in videozoo.list_models(exclude="r3d*")
    assert videozoo.list_models(include="nothing-matches-*") == []


def test_models_by_task() -> None:
    everything = videozoo.list_models()
    by_task = {task: videozoo.list_models(task=task) for task in videozoo.TASKS}
    assert sorted(n for names in by_task.values() for n in names) == everything  # each model in exactly one task
    assert "r3d_18" in by_task["classification"] and videozoo.get_model_task("r3d_18") == "classification"
    assert videozoo.list_models(task=["classification"], include="r3d*") == ["r3d_18"]
    with pytest.raises(ValueError, match="Unknown task 'detection'; expected one of classification"):
        videozoo.list_models(task="detection")
    with pytest.raises(ValueError, match="Unknown model 'r3d_19'"):
        videozoo.get_model_task("r3d_19")


def test_get_model_and_builders() -> None:
    assert videozoo.get_model_builder("r3d_18") is videozoo.r3d_18
    assert videozoo.get_model_weights("r3d_18") is R3D_18_Weights
    assert videozoo.get_model_weights(videozoo.r3d_18) is R3D_18_Weights
    assert videozoo.get_weight("R3D_18_Weights.KINETICS400_V1") is R3D_18_Weights.KINETICS400_V1
    assert videozoo.get_weight("R3D_18_Weights.DEFAULT") is R3D_18_Weights.KINETICS400_V1
    model = videozoo.get_model("mc3_18", num_classes=5)
    assert isinstance(model, VideoResNet) and model.fc.out_features == 5


def test_unknown_model_suggests_close_names() -> None:
    with pytest.raises(ValueError, match=r"Unknown model 'r2plus1d_8'\. Did you mean 'r2plus1d_18'"):
        videozoo.get_model("r2plus1d_8")
    with pytest.raises(ValueError, match="Unknown model"):
        videozoo.get_model_weights("resnet50")
    with pytest.raises(ValueError, match="EnumName.MEMBER"):
        videozoo.get_weight("R3D_18_Weights")
    with pytest.raises(ValueError, match="not a registered videozoo builder"):
        videozoo.get_model_weights(print)


def test_register_twice_is_an_error() -> None:
    with pytest.raises(ValueError, match="already registered"):
        videozoo.register_model(R3D_18_Weights, name="r3d_18")(videozoo.r3d_18)


# -- builders with weights -------------------------------------------------------------------------

def test_builder_loads_cached_weights_without_network(cache: Path) -> None:
    source = videozoo.r3d_18().eval()
    cache_checkpoint(cache, R3D_18_Weights.DEFAULT, source)
    for weights in ("DEFAULT", R3D_18_Weights.KINETICS400_V1, "R3D_18_Weights.KINETICS400_V1"):
        model = videozoo.r3d_18(weights=weights, progress=False).eval()
        for key, value in source.state_dict().items():
            assert torch.equal(model.state_dict()[key], value), key
    assert model.num_classes == 400


def test_weights_fix_num_classes_and_reject_a_conflict(cache: Path) -> None:
    cache_checkpoint(cache, R3D_18_Weights.DEFAULT, videozoo.r3d_18())
    assert videozoo.r3d_18(weights="DEFAULT", num_classes=400, progress=False).num_classes == 400
    with pytest.raises(ValueError, match=r"num_classes=10 conflicts with R3D_18_Weights\.KINETICS400_V1.*reset_classifier"):
        videozoo.r3d_18(weights="DEFAULT", num_classes=10)


def test_checkpoint_of_another_model_is_refused_clearly(cache: Path) -> None:
    cache_checkpoint(cache, R3D_18_Weights.DEFAULT, videozoo.mc3_18())  # right file name, wrong network
    with pytest.raises(CheckpointError, match=r"r3d_18-b3b3357e.pth: the checkpoint does not fit VideoResNet as built for R3D_18_Weights.KINETICS400_V1: .*wrong shape \(layer2\.0\.conv1\.0\.weight"):
        videozoo.r3d_18(weights="DEFAULT", progress=False)


def test_weights_download_through_a_builder(http_server, cache: Path, tmp_path: Path) -> None:
    """A weights entry whose URL is a real loopback server: download, hash check, cache, strict load."""
    source = VideoResNet(("3d",) * 4, num_classes=4)
    raw = tmp_path / "raw.pth"
    torch.save(source.state_dict(), raw)
    digest = hashlib.sha256(raw.read_bytes()).hexdigest()[:8]
    name = f"tiny_r3d-{digest}.pth"
    raw.rename(http_server.root / name)

    class TinyWeights(WeightsEnum):
        V1 = Weights(
            url=http_server.url(name),
            transforms=partial(VideoClassification, crop_size=112, resize_size=128),
            meta={"categories": ["a", "b", "c", "d"]},
        )
        DEFAULT = V1

    model = build_model(VideoResNet, TinyWeights, "DEFAULT", False, {}, stage_convs=("3d",) * 4)
    assert (cache / name).is_file()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in source.state_dict().items())
    served = len(http_server.requests_for(name))
    build_model(VideoResNet, TinyWeights, "V1", False, {}, stage_convs=("3d",) * 4)
    assert len(http_server.requests_for(name)) == served  # the second build never asked the server


def test_weights_fall_back_to_the_next_published_file(http_server, cache: Path, tmp_path: Path) -> None:
    """A repository without the preferred model.safetensors: the builder takes its fallback .bin, through
    the same adapter; a local file named like any of the member's files is recognised as that member."""
    from safetensors.torch import save_file

    source = VideoResNet(("3d",) * 4, num_classes=4)
    published = {f"backbone.{k}": v for k, v in source.state_dict().items()}  # the publisher's key names
    torch.save(published, http_server.root / "weights.bin")
    safe = http_server.link("org/repo/resolve/main/model.safetensors", "gone.safetensors")  # -> 404
    fallback = http_server.link("org/repo/resolve/main/pytorch_model.bin", "weights.bin")

    class TinyWeights(WeightsEnum):
        V1 = Weights(
            url=safe,
            fallbacks=(fallback,),
            transforms=partial(VideoClassification, crop_size=112, resize_size=128),
            meta={"categories": ["a", "b", "c", "d"]},
            state_dict_adapter=lambda sd: {k.removeprefix("backbone."): v for k, v in sd.items()},
        )
        DEFAULT = V1

    assert TinyWeights.V1.file_names == ["model.safetensors", "pytorch_model.bin"]  # loopback: not huggingface.co
    model = build_model(VideoResNet, TinyWeights, "DEFAULT", False, {}, stage_convs=("3d",) * 4)
    assert (cache / "pytorch_model.bin").is_file() and not (cache / "model.safetensors").exists()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in source.state_dict().items())
    # The same weights as a local safetensors file, named like the preferred file.
    local = tmp_path / "model.safetensors"
    save_file(published, local)
    assert TinyWeights.resolve(str(local)) == (TinyWeights.V1, local)
    model = build_model(VideoResNet, TinyWeights, local, False, {}, stage_convs=("3d",) * 4)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in source.state_dict().items())


def test_a_misspelt_weights_name_gets_a_suggestion() -> None:
    with pytest.raises(ValueError, match=r"Unknown weights 'KINETICS400_V2' for R3D_18_Weights; valid names .* Did you mean 'KINETICS400_V1'"):
        videozoo.get_model("r3d_18", weights="KINETICS400_V2")
