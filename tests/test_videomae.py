"""VideoMAE specifics: the Hugging Face file through the cache, the adapter's fused qkv and kept q/v
biases, the position table and its resampling to other clips, layer-wise LR decay hooks, stochastic
depth, bf16, and the weights' metadata."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import videozoo
from parity.common import FIXTURES, TOLERANCE, load_fixture, make_input, reference_state_dict, relative_error
from videozoo.zoo.categories import KINETICS400_CATEGORIES, SSV2_CATEGORIES
from videozoo.models.videomae import (
    VideoMAE,
    VideoMAE_B_Weights,
    VideoMAE_H_Weights,
    VideoMAE_L_Weights,
    VideoMAE_S_Weights,
    from_huggingface_state_dict,
    sinusoid_table,
    videomae_s,
)


def tiny(**kwargs) -> VideoMAE:
    config = dict(embed_dim=48, depth=2, num_heads=3, num_frames=4, crop_size=32, num_classes=5)
    return VideoMAE(**(config | kwargs))


# -- the published file -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fixture() -> dict:
    return load_fixture(FIXTURES / "videomae_s.pt")


def test_published_file_loads_from_the_cache(fixture, tmp_path, monkeypatch) -> None:
    """A model.safetensors in Hugging Face's layout (ViT-S's tensors do not depend on the clip size)."""
    from safetensors.torch import save_file

    member = VideoMAE_S_Weights.KINETICS400_V1
    hf_state = reference_state_dict(fixture)
    monkeypatch.setenv("VIDEOZOO_HOME", str(tmp_path))
    monkeypatch.setenv("VIDEOZOO_OFFLINE", "1")
    path = tmp_path / "checkpoints" / member.file_name
    path.parent.mkdir()
    save_file(hf_state, str(path))
    published = videomae_s(weights="DEFAULT")
    assert published.num_frames == 16 and published.crop_size == 224  # pinned by the weights
    # The same file in a model built for the fixture's clip gives the reference's logits.
    model = videomae_s(num_frames=4, crop_size=(32, 48)).eval()
    videozoo.load_weights(model, member, path)
    with torch.inference_mode():
        out = model(make_input(fixture["input_shape"], seed=fixture["input_seed"]))
    assert relative_error(out, fixture["output"]) <= TOLERANCE
    for key, value in published.state_dict().items():
        assert torch.equal(value, model.state_dict()[key]), key


def test_weights_pin_the_built_clip() -> None:
    with pytest.raises(ValueError, match="num_frames=8 conflicts with VideoMAE_S_Weights.KINETICS400_V1"):
        videomae_s(weights="DEFAULT", num_frames=8)


# -- Hugging Face's layout --------------------------------------------------------------------------


def hf_layout(model: VideoMAE) -> dict[str, torch.Tensor]:
    """Our tensors under Hugging Face's names, with q/k/v split as it stores them."""
    out: dict[str, torch.Tensor] = {}
    for key, value in model.state_dict().items():
        value = torch.randn_like(value)
        parts = key.split(".")
        if parts[0] == "blocks":
            prefix = f"videomae.encoder.layer.{parts[1]}"
            rest = ".".join(parts[2:])
            if rest == "attn.qkv.weight":
                for name, chunk in zip(("query", "key", "value"), value.chunk(3)):
                    out[f"{prefix}.attention.attention.{name}.weight"] = chunk
                continue
            rest = {
                "attn.q_bias": "attention.attention.q_bias",
                "attn.v_bias": "attention.attention.v_bias",
                "norm1.weight": "layernorm_before.weight",
                "norm1.bias": "layernorm_before.bias",
                "norm2.weight": "layernorm_after.weight",
                "norm2.bias": "layernorm_after.bias",
            }.get(rest, rest)
            rest = rest.replace("attn.proj", "attention.output.dense").replace("mlp.fc1", "intermediate.dense")
            rest = rest.replace("mlp.fc2", "output.dense")
            out[f"{prefix}.{rest}"] = value
        elif parts[0] == "patch_embed":
            out[f"videomae.embeddings.patch_embeddings.projection.{parts[-1]}"] = value
        elif parts[0] == "head":
            out[f"classifier.{parts[-1]}"] = value
        else:
            out[key] = value
    return out


def test_adapter_fuses_qkv_and_keeps_the_q_v_biases() -> None:
    model = tiny()
    hf = hf_layout(model)
    ours = from_huggingface_state_dict(hf)
    assert sorted(ours) == sorted(model.state_dict())
    prefix = "videomae.encoder.layer.1.attention.attention"
    fused = torch.cat([hf[f"{prefix}.query.weight"], hf[f"{prefix}.key.weight"], hf[f"{prefix}.value.weight"]])
    assert torch.equal(ours["blocks.1.attn.qkv.weight"], fused)
    assert torch.equal(ours["blocks.1.attn.q_bias"], hf[f"{prefix}.q_bias"])
    assert torch.equal(ours["blocks.1.attn.v_bias"], hf[f"{prefix}.v_bias"])
    model.load_state_dict(ours)


def test_adapter_refuses_other_layouts() -> None:
    hf = hf_layout(tiny())
    with pytest.raises(ValueError, match="not in Hugging Face's VideoMAEForVideoClassification layout"):
        from_huggingface_state_dict(hf | {"videomae.encoder.layer.0.attention.attention.cls_token": torch.zeros(1)})
    del hf["videomae.encoder.layer.0.attention.attention.key.weight"]
    with pytest.raises(ValueError, match="key.weight is missing"):
        from_huggingface_state_dict(hf)
    with pytest.raises(ValueError, match="flat dict of tensors"):
        from_huggingface_state_dict({"module": {}})


def test_attention_bias_is_q_zero_v() -> None:
    """The keys get no bias; the queries' and values' biases reach the output."""
    torch.manual_seed(0)
    attn = tiny().eval().blocks[0].attn
    for bias in (attn.q_bias, attn.v_bias):
        torch.nn.init.normal_(bias)
    x = torch.randn(2, 5, 48)
    b, n, c = x.shape
    q, k, v = F.linear(x, attn.qkv.weight).chunk(3, dim=-1)
    q, v = q + attn.q_bias, v + attn.v_bias
    heads = [t.reshape(b, n, 3, 16).transpose(1, 2) for t in (q, k, v)]
    weights = (heads[0] @ heads[1].transpose(-2, -1) / math.sqrt(16)).softmax(-1)
    expected = attn.proj((weights @ heads[2]).transpose(1, 2).reshape(b, n, c))
    with torch.inference_mode():
        torch.testing.assert_close(attn(x), expected, rtol=1e-5, atol=1e-5)


# -- position table and clip sizes ------------------------------------------------------------------


def test_sinusoid_table_is_its_definition() -> None:
    table = sinusoid_table(7, 6)
    for n in range(7):
        for j in range(6):
            angle = n / 10000 ** (2 * (j // 2) / 6)
            assert table[n, j].item() == pytest.approx(math.sin(angle) if j % 2 == 0 else math.cos(angle), abs=1e-7)


def test_built_clip_uses_the_table_itself_other_clips_a_resampled_one() -> None:
    model = tiny(num_frames=4, crop_size=(32, 48)).eval()
    assert model.grid == [2, 2, 3]
    assert model.position_embedding([2, 2, 3]) is model.pos_embed
    assert "pos_embed" not in model.state_dict()  # not in the published files either
    resized = model.position_embedding([3, 4, 2])
    assert resized.shape == (24, 48)
    expected = F.interpolate(model.pos_embed.reshape(1, 2, 2, 3, 48).permute(0, 4, 1, 2, 3), size=[3, 4, 2],
                             mode="trilinear", align_corners=False)  # fmt: skip
    torch.testing.assert_close(resized, expected.permute(0, 2, 3, 4, 1).reshape(24, 48))
    with torch.inference_mode():
        for shape in [(1, 3, 4, 32, 48), (2, 3, 6, 64, 32), (1, 3, 2, 16, 16)]:
            tokens = shape[2] // 2 * (shape[3] // 16) * (shape[4] // 16)
            assert model.forward_features(torch.randn(shape)).shape == (shape[0], tokens, 48)
            assert model(torch.randn(shape)).shape == (shape[0], 5)


def test_clips_must_be_whole_tubelets() -> None:
    model = tiny()
    for shape in [(1, 3, 5, 32, 32), (1, 3, 4, 40, 32)]:
        with pytest.raises(ValueError, match="2x16x16 tubelets"):
            model(torch.randn(shape))
    with pytest.raises(ValueError, match="num_frames divisible by tubelet_size"):
        tiny(num_frames=5)


# -- training hooks ---------------------------------------------------------------------------------


def test_layer_index_and_no_weight_decay() -> None:
    model = tiny(depth=3)
    assert model.num_layers == 3
    index = {name: model.layer_index(name) for name, _ in model.named_parameters()}
    assert index["patch_embed.proj.weight"] == 0
    assert index["blocks.0.attn.q_bias"] == 1 and index["blocks.2.mlp.fc2.weight"] == 3
    assert index["fc_norm.weight"] == index["head.bias"] == 4
    assert set(index.values()) == {0, 1, 2, 3, 4}
    assert model.no_weight_decay() == set()
    with pytest.raises(ValueError, match="not a parameter name"):
        model.layer_index("cls_token")


def test_stochastic_depth_grows_linearly_and_is_a_no_op_in_eval() -> None:
    model = tiny(depth=3, stochastic_depth_prob=0.2, dropout=0.5)
    assert [b.stochastic_depth_prob for b in model.blocks] == pytest.approx([0.0, 0.1, 0.2])
    x = torch.randn(4, 3, 4, 32, 32)
    model.eval()
    with torch.inference_mode():
        reference = tiny(depth=3, stochastic_depth_prob=0.0).eval()
        reference.load_state_dict(model.state_dict())
        torch.testing.assert_close(model(x), reference(x), rtol=0, atol=0)
    model.train()
    model(x).sum().backward()


def test_bf16_and_autocast() -> None:
    torch.manual_seed(0)
    model = tiny().eval()
    x = torch.randn(1, 3, 4, 32, 32)
    with torch.inference_mode():
        full = model(x)
        with torch.autocast("cpu", torch.bfloat16):
            auto = model(x)
        half = model.to(torch.bfloat16)(x.bfloat16())
    assert half.dtype == torch.bfloat16
    torch.testing.assert_close(auto.float(), full, rtol=0.05, atol=0.05)
    torch.testing.assert_close(half.float(), full, rtol=0.05, atol=0.05)


# -- weights ----------------------------------------------------------------------------------------

ENUMS = {
    "small": VideoMAE_S_Weights,
    "base": VideoMAE_B_Weights,
    "large": VideoMAE_L_Weights,
    "huge": VideoMAE_H_Weights,
}


@pytest.mark.parametrize("size", list(ENUMS))
def test_weights_metadata(size: str) -> None:
    enum = ENUMS[size]
    k400 = enum.KINETICS400_V1
    repo = f"https://huggingface.co/MCG-NJU/videomae-{size}-finetuned-kinetics/resolve/main"
    assert k400.url == f"{repo}/model.safetensors" and k400.value.fallbacks == (f"{repo}/pytorch_model.bin",)
    assert k400.meta["categories"] == list(KINETICS400_CATEGORIES)
    assert k400.meta["license"] == "CC-BY-NC-4.0"
    assert (k400.meta["num_frames"], k400.meta["sampling_rate"], k400.meta["num_clips"], k400.meta["num_crops"]) == (16, 4, 5, 3)
    assert k400.meta["model_args"] == {"num_frames": 16, "crop_size": 224}
    preset = k400.transforms()
    assert preset.crop_size == (224, 224) and preset.resize_size == (224,)
    assert preset.mean == (0.485, 0.456, 0.406) and preset.std == (0.229, 0.224, 0.225)
    assert k400.state_dict_adapter is from_huggingface_state_dict
    if size in ("small", "base"):
        ssv2 = enum.SSV2_V1
        assert ssv2.url == f"https://huggingface.co/MCG-NJU/videomae-{size}-finetuned-ssv2/resolve/main/model.safetensors"
        assert ssv2.meta["categories"] == list(SSV2_CATEGORIES)
        assert ssv2.meta["sampling"] == "segments" and ssv2.meta["hflip"] is False
        assert set(ssv2.meta["_metrics"]) == {"Something-Something-V2"}
    else:
        assert "SSV2_V1" not in enum.__members__
