"""ViViT specifics: trilinear resampling of the tubelet position table, any clip size, the tanh GELU, the
Hugging Face adapter (q/k/v fusion), layer-wise decay helpers, bf16, stochastic depth, and the weights'
metadata."""

from __future__ import annotations

import pytest
import torch

from parity.common import FIXTURES, TOLERANCE, load_fixture, make_input, reference_state_dict, relative_error
from videozoo.zoo.store import cache_name
from videozoo.models.layers import resize_pos_embed
from videozoo.models.vivit import ViViT, ViViT_B_16x2_Weights, from_huggingface_state_dict, vivit_b_16x2


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(**kwargs) -> ViViT:
    torch.manual_seed(0)
    config = dict(num_frames=4, crop_size=32, embed_dim=32, depth=2, num_heads=2, num_classes=5)
    model = ViViT(**(config | kwargs)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def test_other_sizes_resample_the_position_table_trilinearly() -> None:
    """A 6x48x64 clip on a model built for 4x32x32 equals a model built for 6x48x64 holding the table
    resampled from the (2, 2, 2) tubelet grid to (3, 3, 4), the class token's entry unchanged."""
    small = tiny()
    big = ViViT(num_frames=6, crop_size=(48, 64), embed_dim=32, depth=2, num_heads=2, num_classes=5).eval()
    state = small.state_dict()
    table = state["pos_embed"]
    state["pos_embed"] = torch.cat([table[:, :1], resize_pos_embed(table[:, 1:], [2, 2, 2], [3, 3, 4])], dim=1)
    big.load_state_dict(state)
    x = torch.randn(2, 3, 6, 48, 64)
    with torch.inference_mode():
        torch.testing.assert_close(small(x), big(x), rtol=0, atol=0)


@pytest.mark.parametrize("shape", [(1, 3, 2, 16, 16), (2, 3, 6, 40, 72), (1, 3, 9, 47, 33)])
def test_any_clip_size(shape) -> None:
    model = tiny()
    with torch.inference_mode():
        features = model.forward_features(torch.randn(shape))
        assert features.shape == (shape[0], 1 + (shape[2] // 2) * (shape[3] // 16) * (shape[4] // 16), 32)
        assert model.forward_head(features, pre_logits=True).shape == (shape[0], 32)
        assert model.forward_head(features).shape == (shape[0], 5)


def test_frames_and_pixels_beyond_whole_tubelets_are_ignored() -> None:
    model = tiny()
    x = torch.randn(1, 3, 5, 40, 33)
    with torch.inference_mode():
        assert torch.equal(model(x), model(x[:, :, :4, :32, :32].contiguous()))


def test_tubelet_embedding_is_the_strided_convolution() -> None:
    model = tiny()
    x = torch.randn(2, 3, 4, 32, 48)
    with torch.inference_mode():
        conv = model.patch_embed(x).flatten(2).transpose(1, 2)
        # compared through a depth-0 model with a zero table: the tokens the blocks receive
        zero = ViViT(num_frames=4, crop_size=(32, 48), embed_dim=32, depth=0, num_heads=2, num_classes=5).eval()
        state = {k: v for k, v in model.state_dict().items() if not k.startswith("blocks.")}
        state["pos_embed"] = torch.zeros(1, 13, 32)
        zero.load_state_dict(state)
        expected = torch.cat([model.cls_token.expand(2, 1, 32), conv], dim=1)
        torch.testing.assert_close(zero.forward_features(x), model.norm(expected))


def test_mlp_uses_the_tanh_gelu() -> None:
    assert all(block.mlp.approximate == "tanh" for block in vivit_b_16x2(depth=1).blocks)


def test_bf16() -> None:
    model = tiny()
    x = torch.randn(1, 3, 4, 32, 32)
    with torch.inference_mode():
        assert model.to(torch.bfloat16)(x.bfloat16()).dtype == torch.bfloat16
        model.float()
        with torch.autocast("cpu", torch.bfloat16):
            assert model(x).shape == (1, 5)


def test_stochastic_depth_trains() -> None:
    model = tiny(stochastic_depth_prob=0.5).train()
    assert [blk.stochastic_depth_prob for blk in model.blocks] == [0.0, 0.5]
    model(torch.randn(2, 3, 4, 32, 32)).sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_layer_index_and_no_weight_decay() -> None:
    model = tiny(depth=3)
    indices = {name: model.layer_index(name) for name, _ in model.named_parameters()}
    assert set(indices.values()) == set(range(model.num_layers + 2))
    assert {n for n, i in indices.items() if i == 0} == {"cls_token", "pos_embed", "patch_embed.weight", "patch_embed.bias"}
    assert all(indices[n] == int(n.split(".")[1]) + 1 for n in indices if n.startswith("blocks."))
    assert {n for n, i in indices.items() if i == 4} == {"norm.weight", "norm.bias", "head.weight", "head.bias"}
    assert model.no_weight_decay() <= set(indices)


# -- the published file ----------------------------------------------------------------------------------


def test_hugging_face_file_replays_the_reference() -> None:
    fixture = load_fixture(FIXTURES / "vivit_b_16x2.pt")
    model = vivit_b_16x2(**fixture["kwargs"]).eval()
    model.load_state_dict(from_huggingface_state_dict(reference_state_dict(fixture)))
    x = make_input(fixture["input_shape"], seed=fixture["input_seed"])
    with torch.inference_mode():
        assert relative_error(model(x), fixture["output"]) <= TOLERANCE


def test_adapter_fuses_query_key_value_and_drops_the_pooler() -> None:
    prefix = "vivit.encoder.layer.0.attention.attention"
    q, k, v = torch.full((4, 4), 1.0), torch.full((4, 4), 2.0), torch.full((4, 4), 3.0)
    state = from_huggingface_state_dict(
        {f"{prefix}.query.weight": q, f"{prefix}.key.weight": k, f"{prefix}.value.weight": v,
         "vivit.pooler.dense.weight": torch.zeros(4, 4), "classifier.bias": torch.zeros(3)}
    )
    assert set(state) == {"blocks.0.attn.qkv.weight", "head.bias"}
    assert torch.equal(state["blocks.0.attn.qkv.weight"], torch.cat([q, k, v]))
    with pytest.raises(ValueError, match="no value projection"):
        from_huggingface_state_dict({f"{prefix}.query.bias": q[0], f"{prefix}.key.bias": k[0]})
    with pytest.raises(ValueError, match="not in Hugging Face's ViViT layout"):
        from_huggingface_state_dict({"vivit.embeddings.cls_token": q, "module.head": q})


def test_weights_meta() -> None:
    member = ViViT_B_16x2_Weights.KINETICS400_V1
    assert member.meta["license"] == "MIT"
    assert member.meta["model_args"] == {"num_frames": 32, "crop_size": 224}
    preset = member.transforms()
    assert preset.mean == preset.std == (0.5, 0.5, 0.5) and preset.resize_size == (256,)
    assert member.value.fallbacks == (member.url.replace("model.safetensors", "pytorch_model.bin"),)
    assert cache_name(member.url) == "google--vivit-b-16x2-kinetics400--model.safetensors"
    with pytest.raises(ValueError, match="num_frames=16 conflicts"):
        vivit_b_16x2(weights="DEFAULT", num_frames=16)
