"""S3D specifics: the published file through the cache, the smallest clip the network accepts, the eval
path (BatchNorm folded, convolutions without spatial extent in 2D) against plain modules, the training
path, eval-mode dropout, and the weights' metadata."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from parity.common import FIXTURES, TOLERANCE, load_fixture, make_input, reference_state_dict, relative_error
from videozoo.models.s3d import S3D, ConvBNReLU, S3D_Weights, s3d
from videozoo.video.transforms import KINETICS_MEAN, KINETICS_STD


@pytest.fixture(scope="module")
def fixture() -> dict:
    return load_fixture(FIXTURES / "s3d.pt")


@pytest.fixture(scope="module")
def model(fixture: dict) -> S3D:
    model = s3d().eval()
    model.load_state_dict(reference_state_dict(fixture))
    return model


def test_published_checkpoint_loads_from_the_cache(fixture, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("VIDEOZOO_HOME", str(tmp_path))
    path = tmp_path / "checkpoints" / "s3d-d76dad2f.pth"
    assert path.name == S3D_Weights.DEFAULT.url.rsplit("/", 1)[-1]
    path.parent.mkdir()
    torch.save(reference_state_dict(fixture), path)

    model = s3d(weights=S3D_Weights.KINETICS400_V1).eval()
    x = make_input(fixture["input_shape"], seed=fixture["input_seed"])
    with torch.inference_mode():
        assert relative_error(model(x), fixture["output"]) <= TOLERANCE


def test_smallest_clip_and_clear_errors_below_it(model) -> None:
    assert (model.min_temporal_size, model.min_size) == (13, 209)
    x = torch.randn(1, 3, 13, 209, 230)  # the 2 x 7 x 7 pool just fits in T and H, slides once in W
    with torch.inference_mode():
        assert model(x).shape == (1, 400)
        with pytest.raises(ValueError, match=r"at least 13 frames; got T=12"):
            model(x[:, :, :12])
        with pytest.raises(ValueError, match=r"at least 209x209 pixels; got 208x230"):
            model(x[:, :, :, :208])


def plain_conv_bn_relu(block: ConvBNReLU, x: torch.Tensor) -> torch.Tensor:
    """What the block computes, module by module (eval-mode BatchNorm, no folding)."""
    conv, bn = block[0], block[1]
    return torch.relu(bn(nn.functional.conv3d(x, conv.weight, None, conv.stride, conv.padding)))


def test_training_uses_batch_statistics() -> None:
    torch.manual_seed(0)
    block = ConvBNReLU(3, 4, (3, 1, 1), (1, 1, 1), (1, 0, 0)).train()
    x = 5 + 3 * torch.randn(2, 3, 4, 5, 5)
    out = block(x)
    assert block[1].num_batches_tracked == 1 and not torch.equal(block[1].running_mean, torch.zeros(4))
    pre_relu = block[1](block[0](x))  # batch statistics again (a second update, same normalisation)
    torch.testing.assert_close(out, torch.relu(pre_relu))


def test_dropout_is_an_exact_no_op_in_eval(model) -> None:
    noisy = S3D(dropout=0.9)
    noisy.load_state_dict(model.state_dict())
    features = torch.randn(3, 1024, 2, 7, 7)  # block 5c's map of the smallest clip: one pooling window
    noisy.train()
    assert not torch.equal(noisy.forward_head(features), model.forward_head(features))
    noisy.eval()
    torch.testing.assert_close(noisy.forward_head(features), model.forward_head(features), rtol=0, atol=0)


def test_head_is_torchvision_classifier_on_pooled_features(model) -> None:
    """torchvision applies its 1x1x1 classifier at every pooled position and then averages: the same."""
    features = torch.randn(2, 1024, 4, 8, 10)  # block 5c's map of a longer, wider clip: 3 x 2 x 4 windows
    pooled = torch.nn.functional.avg_pool3d(features, (2, 7, 7), stride=1)  # torchvision's AvgPool3d
    per_position = model.classifier(pooled).mean((2, 3, 4))
    torch.testing.assert_close(model.forward_head(features), per_position, rtol=1e-5, atol=1e-5)
    embedding = model.forward_head(features, pre_logits=True)
    torch.testing.assert_close(embedding, pooled.mean((2, 3, 4)))
    assert embedding.shape == (2, model.num_features)


def test_weights_metadata() -> None:
    member = S3D_Weights.DEFAULT
    assert member is S3D_Weights.KINETICS400_V1 and member.url == "https://download.pytorch.org/models/s3d-d76dad2f.pth"
    meta = member.meta
    assert (meta["num_frames"], meta["sampling_rate"], meta["frame_rate"], meta["num_clips"], meta["num_crops"]) == (
        128, 1, 15.0, 1, 1,
    )
    assert "clip_len=128" in meta["_docs"] and "clips_per_video=1" in meta["_docs"]
    assert meta["min_size"] == (224, 224) and meta["min_temporal_size"] == 14  # as torchvision publishes them
    preset = member.transforms()
    assert preset.crop_size == (224, 224) and preset.resize_size == (256, 256)  # exact 256 x 256, not short side
    assert preset.mean == KINETICS_MEAN and preset.std == KINETICS_STD
