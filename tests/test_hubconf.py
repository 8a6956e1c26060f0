"""torch.hub sees this repository as a model hub."""

from pathlib import Path

import torch

import videozoo
from videozoo.models.resnet import VideoResNet

REPO = str(Path(__file__).resolve().parents[1])


def test_hub_lists_every_builder(tmp_path, monkeypatch) -> None:
    """torch.hub.list reads GitHub checkouts only: present this repository as a cached one."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    (tmp_path / "hub").mkdir()
    (tmp_path / "hub" / "videozoo_videozoo_main").symlink_to(REPO, target_is_directory=True)
    listed = torch.hub.list("videozoo/videozoo:main", trust_repo=True, skip_validation=True, verbose=False)
    assert sorted(listed) == videozoo.list_models()


def test_hub_loads_a_model(tmp_path, monkeypatch) -> None:
    model = torch.hub.load(REPO, "r2plus1d_18", source="local", num_classes=7)
    assert isinstance(model, VideoResNet) and model.fc.out_features == 7
    monkeypatch.setenv("VIDEOZOO_HOME", str(tmp_path))  # weights through the hub, from a warm cache
    (tmp_path / "checkpoints").mkdir()
    url = videozoo.R2Plus1D_18_Weights.DEFAULT.url
    torch.save(videozoo.r2plus1d_18().state_dict(), tmp_path / "checkpoints" / url.rsplit("/", 1)[-1])
    loaded = torch.hub.load(REPO, "r2plus1d_18", source="local", weights="DEFAULT", progress=False)
    assert loaded.num_classes == 400
