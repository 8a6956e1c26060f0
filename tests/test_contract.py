"""The contract every registered model follows, checked on each of them at its smallest input, and the
feature contract at its built size and at every weights' evaluation size (docs/design.md)."""

from __future__ import annotations

import copy
import math

import pytest
import torch

import videozoo
from videozoo.models import VideoModel

MODELS = videozoo.list_models(task="classification")
REQUIRED_META = {
    "categories", "min_size", "min_temporal_size", "num_params", "recipe", "_metrics", "_ops", "_file_size", "_docs",
    "num_frames", "sampling_rate", "frame_rate", "num_clips", "num_crops", "license",
}


# MViT's token grid is fixed when it is built. The contract (and test_export.py) builds the MViTs for a
# small clip, as their published clips (up to 40x312x312) made them the slowest tests of the suite;
# their published sizes are checked on the meta device below.
SMALL_BUILD = {
    name: {"num_frames": 8, "crop_size": 64}
    for name in ("mvit_v1_b", "mvit_v2_s", "mvit_v2_b", "mvit_v2_l", "mvit_base_16x4", "mvit_base_32x3")
}
# V-JEPA 2 (up to 1.1 B parameters with its probe) with 2 encoder blocks and a 2-block probe; the ViT-g
# at half its width, with its published 64-channel heads and 48/11 MLPs. Their published sizes are
# checked on the meta device below.
SMALL_BUILD.update({name: {"depth": 2, "probe_blocks": 2} for name in ("vjepa2_vitl_256", "vjepa2_vith_256")})
SMALL_BUILD.update(
    {name: {"depth": 2, "probe_blocks": 2, "embed_dim": 704, "num_heads": 11} for name in ("vjepa2_vitg_256", "vjepa2_vitg_384")}
)
# Their Diving-48 probes read two of the two blocks (the published ones read four of 24 and of 40).
SMALL_BUILD["vjepa2_vitl_256_diving48"] = {"depth": 2, "probe_blocks": 2, "probe_layers": [0, 1]}
SMALL_BUILD["vjepa2_vitg_384_diving48"] = {"depth": 2, "probe_blocks": 2, "embed_dim": 704, "num_heads": 11, "probe_layers": [0, 1]}
# InternVideo2 with 2 blocks: the S/14 for a 4x28x28 position table (the contract's 4x42x42 clip resamples it),
# the larger ones for the contract's clip, the 1B at half its width.
SMALL_BUILD.update({"internvideo2_s14": {"depth": 2, "num_frames": 4, "crop_size": 28}})
SMALL_BUILD.update({name: {"depth": 2, "num_frames": 4, "crop_size": 42} for name in ("internvideo2_b14", "internvideo2_l14")})
SMALL_BUILD.update(
    {name: {"depth": 2, "embed_dim": 704, "num_heads": 8, "num_frames": 4, "crop_size": 42} for name in ("internvideo2_1b", "internvideo2_1b_f16")}
)


def small_input(model: VideoModel, batch: int = 1) -> torch.Tensor:
    t = max(model.min_temporal_size, 4)
    s = -(-max(model.min_size, 32) // model.min_size) * model.min_size  # a multiple of a patch (InternVideo2's 14)
    return torch.randn(batch, 3, t, s, s, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module", params=MODELS)
def built(request: pytest.FixtureRequest) -> tuple[str, VideoModel, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = videozoo.get_model(request.param, num_classes=10, **SMALL_BUILD.get(request.param, {})).eval()
    x = small_input(model)
    with torch.inference_mode():
        out = model(x)
    return request.param, model, x, out


def test_is_a_video_model(built) -> None:
    name, model, x, out = built
    assert isinstance(model, VideoModel)
    assert out.shape == (1, 10) and model.num_classes == 10
    assert torch.isfinite(out).all()


def test_forward_is_head_of_features(built) -> None:
    _, model, x, out = built
    with torch.inference_mode():
        features = model.forward_features(x)
        assert torch.equal(model.forward_head(features), out)
        embedding = model.forward_head(features, pre_logits=True)
        assert embedding.shape == (1, model.num_features)
        assert torch.equal(model.forward_head(features), out)  # the pooling left the features as they were


def evaluation_inputs(name: str) -> list[tuple[str, tuple[int, ...], dict]]:
    """(label, clip shape, builder args) at the model's built size and at each weights' evaluation size."""
    enum = videozoo.get_model_weights(name)
    with torch.device("meta"):  # sizes only: nothing allocated or initialised (InternVideo2-1B: 1.0 B parameters)
        default_model = videozoo.get_model(name)
    built = getattr(default_model, "num_frames", max(default_model.min_temporal_size, 16))
    crop = getattr(default_model, "crop_size", max(default_model.min_size, 112))
    h, w = (crop, crop) if isinstance(crop, int) else crop
    cases = [("built", (2, 3, built, h, w), {})]
    for member in enum:
        size = member.transforms().crop_size
        cases.append((member.name, (2, 3, member.meta["num_frames"], *size), member.meta.get("model_args", {})))
    return cases


@pytest.mark.parametrize("name", MODELS)
def test_embedding_is_num_features_wide_at_every_evaluation_size(name: str) -> None:
    """forward_head(forward_features(x), pre_logits=True) is (B, num_features) at the built size and at
    every weights' evaluation clip (shapes propagated on the meta device: no arithmetic, any size)."""
    for label, shape, model_args in evaluation_inputs(name):
        with torch.device("meta"):
            model = videozoo.get_model(name, **model_args).eval()
            features = model.forward_features(torch.empty(shape))
            assert model.forward_head(features, pre_logits=True).shape == (2, model.num_features), label
            assert model.forward_head(features).shape == (2, model.num_classes), label
            assert model(torch.empty(shape)).shape == (2, model.num_classes), label


@pytest.mark.parametrize("name", ["x3d_xs", "x3d_s", "x3d_m", "slowfast_r50"])
def test_window_heads_at_their_evaluation_size(name: str) -> None:
    """The heads whose pooling window is fixed to the training clip and slides over the larger test
    clip: the embedding is the mean over window positions, and forward is still head(features)."""
    member = videozoo.get_model_weights(name).DEFAULT
    torch.manual_seed(0)
    model = videozoo.get_model(name).eval()
    x = torch.randn(1, 3, member.meta["num_frames"], *member.transforms().crop_size)
    with torch.inference_mode():
        features = model.forward_features(x)
        logits = model.forward_head(features)
        embedding = model.forward_head(features, pre_logits=True)
        assert torch.equal(model(x), logits)
    assert embedding.shape == (1, model.num_features) and logits.shape == (1, 400)
    if name.startswith("x3d"):
        # Several window positions: the logits are log(mean softmax) over them, the embedding their mean.
        with torch.inference_mode():
            per_position = torch.relu(model.lin5(torch.nn.functional.avg_pool3d(features, model.pool_window, stride=1)))
            probs = model.fc(per_position.flatten(2).transpose(1, 2)).softmax(-1).mean(1)
        assert per_position.flatten(2).shape[-1] > 1  # several window positions
        torch.testing.assert_close(embedding, per_position.mean((2, 3, 4)))
        torch.testing.assert_close(logits.softmax(-1), probs)
        assert math.isclose(float(logits.exp().sum()), 1.0, rel_tol=1e-5)


def test_get_classifier(built) -> None:
    _, model, _, _ = built
    head = model.get_classifier()
    assert head.weight.shape[:2] == (model.num_classes, model.num_features)
    assert head is model.get_submodule(model.classifier_name)


def test_eval_is_deterministic(built) -> None:
    _, model, x, out = built
    with torch.inference_mode():
        torch.testing.assert_close(model(x), out, rtol=0, atol=0)


def test_torchscript(built) -> None:
    _, model, x, out = built
    scripted = torch.jit.script(model)
    with torch.inference_mode():
        torch.testing.assert_close(scripted(x), out, rtol=1e-4, atol=1e-5)
    with pytest.raises(torch.jit.Error, match="expects"):
        scripted(x[0])
    with pytest.raises(torch.jit.Error, match="expects float32 clips"):
        scripted(x.double())


# torch.export: test_export.py exports every model (to ONNX, through torch.export) and checks it.


def test_bf16_weights(built) -> None:
    """``model.to(torch.bfloat16)`` runs end to end in bf16 (no float32-only op inside)."""
    _, model, x, out = built
    half = copy.deepcopy(model).to(torch.bfloat16)
    with torch.inference_mode():
        low = half(x.bfloat16())
    assert low.dtype == torch.bfloat16 and low.shape == out.shape and torch.isfinite(low).all()


def test_reset_classifier(built) -> None:
    _, built_model, x, _ = built
    model = copy.deepcopy(built_model)
    features = model.num_features
    old = model.get_classifier()
    model.reset_classifier(3)
    assert model.num_classes == 3 and model.num_features == features
    new = model.get_classifier()
    assert type(new) is type(old) and new.weight.shape[:2] == (3, features)
    assert new.weight.dtype == old.weight.dtype and new.weight.device == old.weight.device
    with torch.inference_mode():
        assert model(x).shape == (1, 3)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="num_classes"):
            model.reset_classifier(bad)


def test_rejects_bad_input_clearly(built) -> None:
    _, model, x, _ = built
    with pytest.raises(ValueError, match=r"\(B, 3, T, H, W\)"):
        model(x[0])
    with pytest.raises(ValueError, match="3 channels"):
        model(torch.cat([x, x[:, :1]], dim=1))
    with pytest.raises(ValueError, match="floating-point"):
        model(x.to(torch.uint8))
    with pytest.raises(ValueError, match=r"expects float32 clips, .* got torch\.float64. Call x\.float\(\)"):
        model(x.double())
    with pytest.raises(ValueError, match=r"expects float32 clips, .* got torch\.float16"):
        model(x.half())
    if model.min_temporal_size > 1:
        with pytest.raises(ValueError, match="frames"):
            model(x[:, :, : model.min_temporal_size - 1])
    if model.min_size > 1:
        with pytest.raises(ValueError, match="pixels"):
            model(x[:, :, :, : model.min_size - 1, : model.min_size - 1])


def test_trains(built) -> None:
    """A training step reaches every parameter (nothing is silently frozen or detached)."""
    _, built_model, x, _ = built
    model = copy.deepcopy(built_model).train()
    loss = torch.nn.functional.cross_entropy(model(torch.cat([x, x])), torch.tensor([1, 2]))
    loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_training_hooks(built) -> None:
    """no_weight_decay names real parameters; every parameter has a layer id, 0 (stem) to num_layers + 1
    (head), and the ids grow along feature_layers()."""
    _, model, _, _ = built
    names = [name for name, _ in model.named_parameters()]
    assert model.no_weight_decay() <= set(names)
    layers = model.feature_layers()
    assert len(layers) == model.num_layers >= 1 and isinstance(model.layers_are_blocks, bool)
    ids = {name: model.layer_index(name) for name in names}
    assert set(ids.values()) == set(range(model.num_layers + 2))  # stem, every layer, head
    assert ids[names[0]] == 0 and ids[f"{model.classifier_name}.weight"] == model.num_layers + 1
    for i, layer in enumerate(layers):
        assert {ids[n] for n in names if any(n.startswith(p + ".") for p in layer.params)} == {i + 1}
    with pytest.raises(ValueError, match="not a parameter"):
        model.layer_index("no.such.weight")


def test_forward_intermediates(built) -> None:
    """forward_intermediates returns forward_features exactly and one feature per layer (batch first)."""
    _, model, x, _ = built
    with torch.inference_mode():
        final, intermediates = model.forward_intermediates(x)
        features = model.forward_features(x)
        _, last = model.forward_intermediates(x, indices=[-1])
    pairs = zip(final, features) if isinstance(features, list) else [(final, features)]
    assert all(torch.equal(a, b) for a, b in pairs)
    assert len(intermediates) == model.num_layers
    for feature in intermediates:
        assert all(f.shape[0] == 1 for f in (feature if isinstance(feature, list) else [feature]))
    last_maps = last[0] if isinstance(last[0], list) else [last[0]]
    final_maps = intermediates[-1] if isinstance(intermediates[-1], list) else [intermediates[-1]]
    assert len(last) == 1 and all(torch.equal(a, b) for a, b in zip(last_maps, final_maps))


# A family's largest members run the same layers as a smaller one (test_export.py's SAME_GRAPH_AS), and are
# the slowest to train: the two training steps of the grad checkpointing test skip them.
LARGER_MEMBERS = {
    "mvit_v2_l", "hiera_l", "hiera_h", "videomae_l", "videomae_h", "swin3d_s", "swin3d_b", "slowfast_r101",
    "internvideo2_b14", "internvideo2_l14", "internvideo2_1b", "internvideo2_1b_f16", "videomae_v2_s", "videomae_v2_b",
}


def test_grad_checkpointing_changes_nothing(built) -> None:
    """With grad checkpointing the training loss and every gradient are as without; eval is unaffected."""
    name, built_model, x, _ = built
    if name in LARGER_MEMBERS:
        pytest.skip("the same layers as a smaller member of the family")
    model = copy.deepcopy(built_model).train()
    clips, labels = torch.cat([x, x]), torch.tensor([1, 2])
    results = []
    for enable in (False, True):
        model.set_grad_checkpointing(enable)
        model.zero_grad()
        torch.manual_seed(0)  # the same dropout and drop-path draws (checkpointing replays them)
        loss = torch.nn.functional.cross_entropy(model(clips), labels)
        loss.backward()
        results.append((loss.detach(), [p.grad.clone() for p in model.parameters() if p.requires_grad]))
    (loss, grads), (loss_ckpt, grads_ckpt) = results
    torch.testing.assert_close(loss_ckpt, loss)
    for g, g_ckpt in zip(grads, grads_ckpt):
        torch.testing.assert_close(g_ckpt, g)
    model.eval()
    with torch.inference_mode():
        checkpointed = model(x)
        model.set_grad_checkpointing(False)
        assert torch.equal(model(x), checkpointed)


# The data sets the zoo's checkpoints were evaluated on, and the metrics their publishers report.
DATASET_METRICS = {
    "Kinetics-400": {"acc@1", "acc@5"},
    "Something-Something-V2": {"acc@1", "acc@5"},
    "Charades": {"mAP"},  # multi-label
    "Kinetics-710": {"acc@1", "acc@5"},  # Kinetics-400, -600 and -700 merged (VideoMAE V2)
    "Diving-48": {"acc@1"},  # V-JEPA 2's probes
}


@pytest.mark.parametrize("name", MODELS)
def test_weights_metadata(name: str) -> None:
    enum = videozoo.get_model_weights(name)
    assert enum.DEFAULT in list(enum)
    models: dict[int, torch.nn.Module] = {}  # by class count: a member's categories fix the classifier
    for member in enum:
        meta = member.meta
        num_classes = len(meta["categories"])
        if num_classes not in models:
            with torch.device("meta"):  # parameters counted, none allocated (V-JEPA 2's ViT-g: 1.1 B)
                models[num_classes] = videozoo.get_model(name, num_classes=num_classes)
        model = models[num_classes]
        assert REQUIRED_META <= set(meta), REQUIRED_META - set(meta)
        assert member.url.startswith("https://") and member.url.rsplit("/", 1)[-1]
        assert len(meta["categories"]) == len(set(meta["categories"])) == model.num_classes
        assert meta["num_params"] == sum(p.numel() for p in model.parameters())
        assert meta["num_crops"] in (1, 3) and meta["num_clips"] >= 1 and meta["num_frames"] >= 1
        if meta.get("embedding_only", False):  # an encoder published without a classifier: no labels, no accuracy
            assert meta["categories"] == [] and meta["_metrics"] == {} and model.num_classes == 0
        else:
            [(dataset, metrics)] = meta["_metrics"].items()
            # acc@1 always; acc@5 where the publisher states it (Hiera and ViViT publish top-1 only)
            assert "acc@1" in metrics or "mAP" in metrics
            assert set(metrics) <= DATASET_METRICS[dataset], dataset
            assert all(0 < value < 100 for value in metrics.values())
            assert meta.get("multi_label", False) is (dataset == "Charades")
        preset = member.transforms()
        assert isinstance(preset, videozoo.VideoClassification)
        with torch.inference_mode():
            clip = preset(torch.randint(0, 256, (meta["num_frames"], 3, 80, 100), dtype=torch.uint8))
        assert clip.shape == (3, meta["num_frames"], *preset.crop_size)
