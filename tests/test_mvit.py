"""MViT specifics: the published files through the cache, the published block tables, the fixed token
grid and its errors, the relative position bias against its definition, token chunking (exact, also
for stochastic depth), eval-mode no-ops, bf16 autocast, and the weights' metadata; PyTorchVideo's
MViT-B files (its layout, its adapter's refusals, its pooling norms, its recipe); PySlowFast's MViTv2-B/L
files (its block tables, its layout, its relative-position rounding, its recipes)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from parity.common import FIXTURES, TOLERANCE, load_fixture, make_input, reference_state_dict, relative_error
from videozoo.zoo.categories import KINETICS400_CATEGORIES
import videozoo
from videozoo.models.mvit import (
    MViT,
    MViT_B_16x4_Weights,
    MViT_B_32x3_Weights,
    MViT_V1_B_Weights,
    MViT_V2_B_Weights,
    MViT_V2_L_Weights,
    MViT_V2_S_Weights,
    _rel_index,
    block_specs,
    mvit_base_16x4,
    mvit_base_32x3,
    mvit_v1_b,
    mvit_v2_b,
    mvit_v2_l,
    mvit_v2_s,
)

BUILDERS = {"mvit_v1_b": (mvit_v1_b, MViT_V1_B_Weights), "mvit_v2_s": (mvit_v2_s, MViT_V2_S_Weights)}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def published() -> dict[str, MViT]:
    return {name: builder() for name, (builder, _) in BUILDERS.items()}


def small(version: int, **kwargs) -> MViT:
    """Every stage of the published layout, narrow (16 channels, one block per stage), on a 6 x 64 x 96
    clip: grids 3 x 16 x 24 down to 3 x 2 x 3, non-square, with resampled v2 position tables."""
    torch.manual_seed(0)
    return MViT(version, depths=(1, 1, 1, 1), embed_dim=16, crop_size=(64, 96), num_frames=6, **kwargs).eval()


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_published_checkpoint_loads_from_the_cache(name, tmp_path, monkeypatch) -> None:
    builder, weights = BUILDERS[name]
    fixture = load_fixture(FIXTURES / f"{name}.pt")
    monkeypatch.setenv("VIDEOZOO_HOME", str(tmp_path))
    path = tmp_path / "checkpoints" / weights.DEFAULT.url.rsplit("/", 1)[-1]
    path.parent.mkdir()
    torch.save(reference_state_dict(fixture), path)  # torchvision's files are bare state_dicts

    model = builder(weights="DEFAULT").eval()
    x = make_input(fixture["input_shape"], seed=fixture["input_seed"])
    with torch.inference_mode():
        assert relative_error(model(x), fixture["output"]) <= TOLERANCE


# torchvision's published tables (mvit_v1_b / mvit_v2_s): heads, channels in/out, q and kv pooling.
HEADS = [1, 2, 2] + [4] * 11 + [8, 8]
STRIDE_KV = [(1, 8, 8)] + [(1, 4, 4)] * 2 + [(1, 2, 2)] * 11 + [(1, 1, 1)] * 2
STAGE_STARTS = (1, 3, 14)
PUBLISHED = {
    1: {
        "dim_in": [96, 192, 192] + [384] * 11 + [768, 768],
        "dim_out": [192, 192] + [384] * 11 + [768] * 3,
        "stride_q": [(1, 2, 2) if i in STAGE_STARTS else () for i in range(16)],
    },
    2: {
        "dim_in": [96, 96, 192, 192] + [384] * 11 + [768],
        "dim_out": [96, 192, 192] + [384] * 11 + [768, 768],
        "stride_q": [(1, 2, 2) if i in STAGE_STARTS else (1, 1, 1) for i in range(16)],
    },
}


@pytest.mark.parametrize("version", [1, 2])
def test_block_table_is_the_published_one(version) -> None:
    specs = block_specs(version, (1, 2, 11, 2), 96, 1)
    table = PUBLISHED[version]
    assert [s.num_heads for s in specs] == HEADS
    assert [s.dim_in for s in specs] == table["dim_in"]
    assert [s.dim_out for s in specs] == table["dim_out"]
    assert [s.stride_q for s in specs] == table["stride_q"]
    assert [s.kernel_q for s in specs] == [(3, 3, 3) if s else () for s in table["stride_q"]]
    assert [s.stride_kv for s in specs] == STRIDE_KV
    assert all(s.kernel_kv == (3, 3, 3) for s in specs)


def test_published_grids(published) -> None:
    """At 16 x 224 x 224 queries go 56 -> 28 -> 14 -> 7 and keys/values stay at 7 x 7 (14 x 14 in the
    first block of a stage); v2's position tables fit those grids without resampling."""
    model = published["mvit_v2_s"]
    assert [b.grid for b in model.blocks][:5] == [[8, 56, 56], [8, 56, 56], [8, 28, 28], [8, 28, 28], [8, 14, 14]]
    assert [b.attn.kv_grid[1] for b in model.blocks] == [7, 14, 7, 14] + [7] * 10 + [14, 7]
    assert model.blocks[-1].out_grid == [8, 7, 7]
    for block in model.blocks:
        attn = block.attn
        tables = (attn.rel_pos_t, attn.rel_pos_h, attn.rel_pos_w)
        assert [t.shape[0] for t in tables] == attn.table_len


def test_fixed_grid_and_clear_errors(published) -> None:
    model = published["mvit_v1_b"]
    assert (model.min_temporal_size, model.min_size, model.num_features) == (16, 224, 768)
    for shape in [(1, 3, 16, 224, 240), (1, 3, 16, 256, 256), (2, 3, 18, 224, 224)]:
        with pytest.raises(ValueError, match=r"exactly 16 frames of 224x224 pixels.*expected \(B, 3, 16, 224, 224\)"):
            model(torch.zeros(shape))
    with pytest.raises(ValueError, match="at least 16 frames; got T=15"):
        model(torch.zeros(1, 3, 15, 224, 224))
    with pytest.raises(ValueError, match="num_frames divisible by 2 and crop_size by 4"):
        MViT(2, num_frames=15)
    with pytest.raises(ValueError, match="crop_size=\\(224, 222\\)"):
        MViT(1, crop_size=(224, 222))
    with pytest.raises(ValueError, match="version must be 1"):
        MViT(3)


def test_relative_position_bias_is_its_definition() -> None:
    """bias[query (t, y, x), key (t', y', x')] = q . (R_t[t, t'] + R_h[y, y'] + R_w[x, x']), tables read at
    the coordinates' scaled distance and, where their length does not fit the grids, resampled."""
    model = small(2)
    for block in model.blocks:
        attn = block.attn
        (qt, qh, qw), (kt, kh, kw) = attn.q_grid, attn.kv_grid
        q = torch.randn(2, 1 + qt * qh * qw, attn.num_heads, attn.head_dim)
        spatial, temporal = attn.rel_pos_terms(q)
        bias = (spatial[:, :, :, None, :] + temporal[..., None]).flatten(-2)
        assert not bias[:, 0].any()  # the class token has no position

        def table(param: torch.Tensor, q_n: int, k_n: int) -> torch.Tensor:
            length = 2 * max(q_n, k_n) - 1
            if param.shape[0] != length:
                param = F.interpolate(param.t()[None], size=length, mode="linear")[0].t()
            q_scale, k_scale = max(k_n / q_n, 1.0), max(q_n / k_n, 1.0)
            rows = [[int(i * q_scale - (j + 1 - k_n) * k_scale) for j in range(k_n)] for i in range(q_n)]
            return param[torch.tensor(rows)]

        r_t, r_h, r_w = table(attn.rel_pos_t, qt, kt), table(attn.rel_pos_h, qh, kh), table(attn.rel_pos_w, qw, kw)
        full = (
            r_t[:, None, None, :, None, None] + r_h[None, :, None, None, :, None] + r_w[None, None, :, None, None, :]
        ).reshape(qt * qh * qw, kt * kh * kw, -1)
        expected = torch.einsum("bind,ijd->binj", q[:, 1:], full)
        torch.testing.assert_close(bias[:, 1:], expected, rtol=1e-4, atol=1e-4)
    assert any(b.attn.rel_pos_h.shape[0] != b.attn.table_len[1] for b in model.blocks)  # resampling was tested


@pytest.mark.parametrize("version", [1, 2])
def test_token_chunks_are_exact(version) -> None:
    model = small(version)
    x = torch.randn(2, 3, 6, 64, 96)
    assert all(block.chunk >= 512 for block in model.blocks)  # one chunk per block at this size
    with torch.inference_mode():
        whole = model(x)
        for block in model.blocks:
            block.chunk = 7  # chunks that split rows, heads' grids and the last chunk unevenly
        chunked = model(x)
    torch.testing.assert_close(chunked, whole, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("version", [1, 2])
def test_fast_and_portable_paths_agree(version, monkeypatch) -> None:
    """CPU fp32 inference runs on oneDNN (linears, attention per head); with oneDNN off, under autograd
    and in TorchScript the model takes F.linear and SDPA. All compute the same function."""
    model = small(version)
    x = torch.randn(2, 3, 6, 64, 96)
    with torch.inference_mode():
        fast = model(x)
        scripted = torch.jit.script(model)(x)
        with monkeypatch.context() as patch:
            patch.setattr(torch.backends.mkldnn, "enabled", False)
            portable = model(x)
    with_grad = model(x)
    assert with_grad.requires_grad
    for other in (portable, scripted, with_grad.detach()):
        torch.testing.assert_close(other, fast, rtol=1e-5, atol=1e-5)


def test_stochastic_depth_is_per_sample_across_chunks() -> None:
    model = small(2, stochastic_depth_prob=0.6, dropout=0.0).train()
    x = torch.randn(3, 3, 6, 64, 96)
    torch.manual_seed(1)
    whole = model(x)
    for block in model.blocks:
        block.chunk = 5
    torch.manual_seed(1)
    torch.testing.assert_close(model(x), whole, rtol=1e-5, atol=1e-5)
    torch.manual_seed(2)
    assert not torch.allclose(model(x), whole)


@pytest.mark.parametrize("version", [1, 2])
def test_dropout_and_stochastic_depth_are_exact_no_ops_in_eval(version) -> None:
    plain = small(version)
    noisy = small(version, dropout=0.9, attention_dropout=0.5, stochastic_depth_prob=0.9)
    noisy.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 6, 64, 96)
    with torch.no_grad():
        torch.testing.assert_close(noisy(x), plain(x), rtol=0, atol=0)
        noisy.train()
        assert not torch.allclose(noisy(x), plain(x))


def test_bf16_autocast() -> None:
    model = small(2)
    x = torch.randn(1, 3, 6, 64, 96)
    with torch.inference_mode():
        full = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(x)
    assert low.dtype == torch.bfloat16
    assert relative_error(low.float(), full) < 0.05


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_weights_metadata(name, published) -> None:
    _, weights = BUILDERS[name]
    member = weights.DEFAULT
    assert member is weights.KINETICS400_V1
    assert member.url == {
        "mvit_v1_b": "https://download.pytorch.org/models/mvit_v1_b-dbeb1030.pth",
        "mvit_v2_s": "https://download.pytorch.org/models/mvit_v2_s-ae3be167.pth",
    }[name]
    meta = member.meta
    assert meta["num_params"] == sum(p.numel() for p in published[name].parameters())
    assert tuple(meta["categories"]) == KINETICS400_CATEGORIES
    assert (meta["min_size"], meta["min_temporal_size"]) == ((224, 224), 16)
    recipe = (meta["num_frames"], meta["sampling_rate"], meta["frame_rate"], meta["num_clips"], meta["num_crops"])
    assert recipe == (16, 1, 7.5, 5, 1)
    assert "`frame_rate=7.5`, `clips_per_video=5`, and `clip_len=16`" in meta["_docs"]
    preset = member.transforms()
    assert preset.crop_size == (224, 224) and preset.resize_size == (256,)  # short side 256, then centre crop
    assert preset.mean == (0.45, 0.45, 0.45) and preset.std == (0.225, 0.225, 0.225)


# ----------------------------------------------------------------------------------------------------
# PyTorchVideo's MViT-B 16x4 / 32x3 (the stored fixtures are small clips; see tests/parity/ref_mvit.py)

PTV_BUILDERS = {
    "mvit_base_16x4": (mvit_base_16x4, MViT_B_16x4_Weights),
    "mvit_base_32x3": (mvit_base_32x3, MViT_B_32x3_Weights),
}


def ptv_published_file(name: str) -> dict:
    """A checkpoint in PyTorchVideo's format for the published clip: the stored (small-clip) fixture's
    tensors, filled by the parity rule, with the position tables of the published 16 x 56 x 56 / 8 x 56 x 56
    token grid (the only tensors whose shapes depend on the clip)."""
    fixture = load_fixture(FIXTURES / f"{name}.pt")
    frames = {"mvit_base_16x4": 8, "mvit_base_32x3": 16}[name]
    published = {
        "cls_positional_encoding.pos_embed_spatial": [1, 56 * 56, 96],
        "cls_positional_encoding.pos_embed_temporal": [1, frames, 96],
    }
    shapes = [published.get(k, s) for k, s in zip(fixture["keys"], fixture["shapes"])]
    return {"model_state": reference_state_dict(fixture | {"shapes": shapes})}


@pytest.mark.parametrize("name", sorted(PTV_BUILDERS))
def test_ptv_file_loads_from_the_cache(name, tmp_path, monkeypatch) -> None:
    builder, weights = PTV_BUILDERS[name]
    checkpoint = ptv_published_file(name)
    monkeypatch.setenv("VIDEOZOO_HOME", str(tmp_path))
    path = tmp_path / "checkpoints" / weights.DEFAULT.url.rsplit("/", 1)[-1]
    path.parent.mkdir()
    torch.save(checkpoint, path)

    with pytest.raises(ValueError, match=f"num_frames=8 conflicts with {weights.__name__}.KINETICS400_V1"):
        builder(weights="DEFAULT", num_frames=8, crop_size=(64, 48))
    model = builder(weights="DEFAULT")
    frames = 16 if name.endswith("16x4") else 32
    assert (model.num_frames, model.crop_size) == (frames, (224, 224))
    own, file = model.state_dict(), checkpoint["model_state"]
    assert len(own) == len(file)
    for ours, theirs in [
        ("blocks.3.attn.k.weight", "blocks.3.attn.k.weight"),
        ("blocks.1.attn.pool_q.norm_act.0.bias", "blocks.1.attn.norm_q.bias"),
        ("head.1.bias", "head.proj.bias"),
    ]:
        assert torch.equal(own[ours], file[theirs])
    # Position tables lose PyTorchVideo's leading singleton dimensions; 2-frame patches: frames // 2 rows.
    assert torch.equal(own["pos_encoding.temporal_pos"], file["cls_positional_encoding.pos_embed_temporal"][0])
    assert own["pos_encoding.temporal_pos"].shape == (frames // 2, 96)
    assert torch.equal(own["pos_encoding.class_token"], file["cls_positional_encoding.cls_token"].view(96))


def test_ptv_file_of_the_other_clip_fails_loudly(tmp_path, monkeypatch) -> None:
    """The 32x3 file is not the 16x4 file: its temporal position table has 16 rows, not 8."""
    monkeypatch.setenv("VIDEOZOO_HOME", str(tmp_path))
    (tmp_path / "checkpoints").mkdir()
    torch.save(ptv_published_file("mvit_base_32x3"), tmp_path / "checkpoints" / "MVIT_B_16x4.pyth")
    with pytest.raises(RuntimeError, match=r"1 wrong shape \(pos_encoding\.temporal_pos"):
        videozoo.get_model("mvit_base_16x4", weights="DEFAULT")


def test_ptv_adapter_refuses_other_files() -> None:
    adapt = MViT_B_16x4_Weights.DEFAULT.adapt_state_dict
    state = reference_state_dict(load_fixture(FIXTURES / "mvit_base_16x4.pt"))
    # PySlowFast's PTV wrapper prefixes every key with "model."
    wrapped = {"model_state": {f"model.{k}": v for k, v in state.items()}}
    assert adapt(wrapped).keys() == adapt({"model_state": state}).keys()
    with pytest.raises(ValueError, match="model_state"):
        adapt(state)  # a bare PyTorchVideo state_dict
    with pytest.raises(ValueError, match=r"not in PyTorchVideo's MViT layout .*conv_proj\.weight"):
        adapt({"model_state": mvit_v1_b(num_frames=8, crop_size=(64, 48)).state_dict()})  # torchvision's layout
    fused = {k: v for k, v in state.items() if ".attn.q." not in k and ".attn.k." not in k and ".attn.v." not in k}
    fused["blocks.0.attn.qkv.weight"] = torch.zeros(288, 96)  # PyTorchVideo's later joint-qkv option
    with pytest.raises(ValueError, match=r"1 of its \d+ keys .*blocks\.0\.attn\.qkv\.weight"):
        adapt({"model_state": fused})


def test_ptv_layout_and_pooling_norms() -> None:
    """Three input projections compute what one qkv does; PyTorchVideo's models normalise pooled
    tensors with eps 1e-5 (torchvision's port: 1e-6), every other norm at 1e-6."""
    fused = small(1)
    separate = MViT(1, depths=(1, 1, 1, 1), embed_dim=16, crop_size=(64, 96), num_frames=6, separate_qkv=True).eval()
    state = fused.state_dict()
    for key in [k for k in state if k.endswith((".attn.qkv.weight", ".attn.qkv.bias"))]:
        prefix, leaf = key.rsplit(".qkv.", 1)
        for part, value in zip("qkv", state.pop(key).chunk(3)):
            state[f"{prefix}.{part}.{leaf}"] = value
    separate.load_state_dict(state)
    x = torch.randn(2, 3, 6, 64, 96)
    with torch.inference_mode():
        torch.testing.assert_close(separate(x), fused(x), rtol=1e-6, atol=1e-6)

    def eps(model: MViT) -> tuple[set[float], set[float]]:
        norms = [(name, m.eps) for name, m in model.named_modules() if isinstance(m, torch.nn.LayerNorm)]
        return {e for name, e in norms if ".pool_" in name}, {e for name, e in norms if ".pool_" not in name}

    small_clip = {"num_frames": 8, "crop_size": (64, 48)}
    assert eps(mvit_base_16x4(**small_clip)) == eps(mvit_base_32x3(**small_clip)) == ({1e-5}, {1e-6})
    assert eps(mvit_v1_b(**small_clip)) == eps(mvit_v2_s(**small_clip)) == ({1e-6}, {1e-6})


@pytest.mark.parametrize("name", sorted(PTV_BUILDERS))
def test_ptv_weights_metadata(name) -> None:
    builder, weights = PTV_BUILDERS[name]
    member = weights.DEFAULT
    assert member is weights.KINETICS400_V1
    frames, rate = (16, 4) if name.endswith("16x4") else (32, 3)
    assert member.url == {
        "mvit_base_16x4": "https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo/kinetics/MVIT_B_16x4.pyth",
        "mvit_base_32x3": "https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo/kinetics/MVIT_B_32x3_f294077834.pyth",
    }[name]
    meta = member.meta
    with torch.device("meta"):
        model = builder()
    assert meta["num_params"] == sum(p.numel() for p in model.parameters())
    assert tuple(meta["categories"]) == KINETICS400_CATEGORIES
    published = {"mvit_base_16x4": (78.85, 93.85, 70.80), "mvit_base_32x3": (80.30, 94.69, 170.37)}[name]
    assert meta["_metrics"] == {"Kinetics-400": {"acc@1": published[0], "acc@5": published[1]}}
    assert meta["_ops"] == published[2]
    recipe = (meta["num_frames"], meta["sampling_rate"], meta["frame_rate"], meta["num_clips"], meta["num_crops"])
    assert recipe == (frames, rate, 30.0, 5, 1)
    configs = "https://github.com/facebookresearch/SlowFast/blob/main/configs/Kinetics"
    assert meta["recipe"] == f"{configs}/MVIT_B_{frames}x{rate}_CONV.yaml"
    assert meta["model_args"] == {"num_frames": frames, "crop_size": 224}
    assert (meta["min_size"], meta["min_temporal_size"]) == ((224, 224), frames)
    assert "5 clips x 1 centre crop" in meta["_docs"]
    preset = member.transforms()
    assert preset.crop_size == (224, 224) and preset.resize_size == (256,)  # short side 256, then centre crop
    assert preset.mean == (0.45, 0.45, 0.45) and preset.std == (0.225, 0.225, 0.225)
    assert not preset.resize_uint8 and preset.crop_rounding == "ceil"  # PySlowFast: float, then uniform_crop


# ----------------------------------------------------------------------------------------------------
# PySlowFast's MViTv2-B 32x3 / L 40x3 (the stored fixtures are small clips, L with fewer blocks; see
# tests/parity/ref_mvit.py, whose --published mode checks both at their published clips)

PYSF_BUILDERS = {"mvit_v2_b": (mvit_v2_b, MViT_V2_B_Weights), "mvit_v2_l": (mvit_v2_l, MViT_V2_L_Weights)}

# PySlowFast's configs: MVIT.DEPTH, DIM_MUL/HEAD_MUL/POOL_Q_STRIDE (1, 2, 2) at the stage starts,
# EMBED_DIM, NUM_HEADS; POOL_KV_STRIDE_ADAPTIVE (1, 8, 8), divided at each stage start.
PYSF_CONFIGS = {"mvit_v2_b": (24, (2, 5, 21), 96, 1), "mvit_v2_l": (48, (2, 8, 44), 144, 2)}
# Their relative-position tables at the published clips, as PySlowFast builds them: (rows, blocks) of
# rel_pos_h / rel_pos_w in block order, and rel_pos_t's rows; head_dim columns.
PYSF_TABLES = {
    "mvit_v2_b": ([(111, 2), (55, 3), (27, 17), (13, 2)], 31, 96),
    "mvit_v2_l": ([(155, 2), (77, 6), (37, 37), (17, 3)], 39, 72),
}


@pytest.mark.parametrize("name", sorted(PYSF_BUILDERS))
def test_pyslowfast_block_tables(name) -> None:
    depth, starts, embed_dim, heads = PYSF_CONFIGS[name]
    with torch.device("meta"):
        model = PYSF_BUILDERS[name][0]()
    specs = [b.attn for b in model.blocks]
    assert len(specs) == depth
    stage = [sum(i >= s for s in starts) for i in range(depth)]
    assert [a.num_heads for a in specs] == [heads * 2**s for s in stage]
    assert [a.dim_out for a in specs] == [embed_dim * 2**s for s in stage]  # widened in the stage's first block
    assert [b.skip_stride for b in model.blocks] == [[1, 2, 2] if i in starts else [1, 1, 1] for i in range(depth)]
    assert all(a.pool_q is not None and a.pool_q.pool.kernel_size == (3, 3, 3) for a in specs)
    assert [a.pool_k.stride for a in specs] == [[1, 8 >> s, 8 >> s] for s in stage]
    # Published tables: every block's rows, as PySlowFast sizes them from floor-divided grids.
    h_rows, t_rows, head_dim = PYSF_TABLES[name]
    assert [tuple(a.rel_pos_h.shape) for a in specs] == [(n, head_dim) for n, count in h_rows for _ in range(count)]
    assert all(a.rel_pos_w.shape == a.rel_pos_h.shape and a.rel_pos_t.shape == (t_rows, head_dim) for a in specs)
    eps = {m.eps for m in model.modules() if isinstance(m, torch.nn.LayerNorm)}
    assert eps == {1e-6}  # PySlowFast's norm_layer, the pooling norms included


def test_pyslowfast_relative_position_rounding() -> None:
    """PySlowFast adds the offset (k - 1) * k_ratio last, torchvision's port inside the key term; in
    float32 they truncate to other rows where the grids' ratio is fractional, as L's 78 x 78 and 39 x 39
    queries against 10 x 10 keys at 312 pixels. At B's 224 pixels (ratios 1, 2, 4, 8) they agree."""
    for q_n, k_n in [(78, 10), (39, 10), (53, 7)]:
        assert not torch.equal(_rel_index(q_n, k_n, "pyslowfast"), _rel_index(q_n, k_n, "torchvision"))
    for q_n, k_n in [(56, 7), (28, 14), (28, 7), (14, 14), (14, 7), (7, 14), (7, 7), (39, 20), (20, 10), (10, 20)]:
        assert torch.equal(_rel_index(q_n, k_n, "pyslowfast"), _rel_index(q_n, k_n, "torchvision"))
    # Both are the distance i * q_ratio - (j - k_n + 1) * k_ratio, up to that truncation.
    exact = torch.arange(78)[:, None] - (torch.arange(10)[None, :] - 9) * 7.8
    assert (_rel_index(78, 10, "pyslowfast") - exact).abs().max() < 1 + 1e-4
    with pytest.raises(ValueError, match="rel_pos_index"):
        _rel_index(4, 2, "timm")  # type: ignore[arg-type]

    # The stored L fixture (53 x 53 queries against 7 x 7 keys) tells them apart: only PySlowFast's matches.
    from parity.replay import build_from_fixture, videozoo_output

    fixture = load_fixture(FIXTURES / "mvit_v2_l.pt")
    x = make_input(fixture["input_shape"], seed=fixture["input_seed"])
    errors = {}
    for rounding in ("pyslowfast", "torchvision"):
        case = fixture | {"kwargs": fixture["kwargs"] | {"rel_pos_index": rounding}}
        errors[rounding] = relative_error(videozoo_output(build_from_fixture(case), case, x), fixture["output"])
    assert errors["pyslowfast"] <= TOLERANCE < errors["torchvision"]


def pyslowfast_published_file(name: str) -> dict:
    """A checkpoint in PySlowFast's format for the published clip: B's stored (small-clip, all blocks)
    fixture's tensors, filled by the parity rule, with the relative position tables of 32 x 224 x 224
    (the only tensors whose shapes depend on the clip), and the optimizer state and config beside them."""
    fixture = load_fixture(FIXTURES / f"{name}.pt")
    h_rows, t_rows, head_dim = PYSF_TABLES[name]
    rows = iter([n for n, count in h_rows for _ in range(count)])
    shapes = []
    for key, shape in zip(fixture["keys"], fixture["shapes"]):
        if key.endswith("rel_pos_h"):
            h = next(rows)
        if key.endswith(("rel_pos_h", "rel_pos_w", "rel_pos_t")):
            shape = [t_rows if key.endswith("_t") else h, head_dim]
        shapes.append(shape)
    state = reference_state_dict(fixture | {"shapes": shapes})
    optimizer = {"state": {}, "param_groups": []}
    return {"epoch": 200, "model_state": state, "optimizer_state": optimizer, "cfg": "MVIT:\n  DEPTH: 24\n"}


def test_pyslowfast_file_loads_from_the_cache(tmp_path, monkeypatch) -> None:
    checkpoint = pyslowfast_published_file("mvit_v2_b")
    monkeypatch.setenv("VIDEOZOO_HOME", str(tmp_path))
    path = tmp_path / "checkpoints" / MViT_V2_B_Weights.DEFAULT.url.rsplit("/", 1)[-1]
    path.parent.mkdir()
    torch.save(checkpoint, path)

    with pytest.raises(ValueError, match="num_frames=16 conflicts with MViT_V2_B_Weights.KINETICS400_V1"):
        mvit_v2_b(weights="DEFAULT", num_frames=16)
    model = mvit_v2_b(weights="DEFAULT")
    assert (model.num_frames, model.crop_size) == (32, (224, 224))
    own, file = model.state_dict(), checkpoint["model_state"]
    assert len(own) == len(file)
    for ours, theirs in [
        ("conv_proj.weight", "patch_embed.proj.weight"),
        ("blocks.2.attn.qkv.weight", "blocks.2.attn.qkv.weight"),
        ("blocks.2.attn.project.0.bias", "blocks.2.attn.proj.bias"),
        ("blocks.2.attn.pool_q.pool.weight", "blocks.2.attn.pool_q.weight"),
        ("blocks.2.attn.pool_v.norm_act.0.weight", "blocks.2.attn.norm_v.weight"),
        ("blocks.2.attn.rel_pos_t", "blocks.2.attn.rel_pos_t"),
        ("blocks.2.mlp.3.weight", "blocks.2.mlp.fc2.weight"),
        ("blocks.2.project.weight", "blocks.2.proj.weight"),
        ("head.1.weight", "head.projection.weight"),
    ]:
        assert torch.equal(own[ours], file[theirs]), ours
    assert torch.equal(own["pos_encoding.class_token"], file["cls_token"].view(96))


def test_pyslowfast_adapter_refuses_other_files() -> None:
    adapt = MViT_V2_B_Weights.DEFAULT.adapt_state_dict
    state = reference_state_dict(load_fixture(FIXTURES / "mvit_v2_b.pt"))
    with pytest.raises(ValueError, match="model_state"):
        adapt(state)  # a bare state_dict
    with pytest.raises(ValueError, match=r"not in PySlowFast's MViTv2 layout .*conv_proj\.weight"):
        adapt({"model_state": mvit_v2_s(num_frames=4, crop_size=64).state_dict()})  # torchvision's layout
    ptv = reference_state_dict(load_fixture(FIXTURES / "mvit_base_16x4.pt"))
    with pytest.raises(ValueError, match=r"not in PySlowFast's MViTv2 layout .*patch_embed\.patch_model"):
        adapt({"model_state": ptv})  # PyTorchVideo's MViT-B
    v1 = dict(state, pos_embed_spatial=torch.zeros(1, 256, 96))  # PySlowFast's MViT v1 (absolute positions)
    with pytest.raises(ValueError, match=r"1 of its \d+ keys .*pos_embed_spatial"):
        adapt({"model_state": v1})


@pytest.mark.parametrize("name", sorted(PYSF_BUILDERS))
def test_pyslowfast_models_at_other_clips(name) -> None:
    """Built for another clip (here narrower and shallower, to stay quick), the network takes it; its
    relative position tables are then resampled where their rows do not fit the new grids."""
    builder = PYSF_BUILDERS[name][0]
    torch.manual_seed(0)
    model = builder(num_frames=6, crop_size=(48, 80), depths=(1, 1, 1, 1), embed_dim=16, num_classes=5).eval()
    with torch.inference_mode():
        out = model(torch.randn(2, 3, 6, 48, 80))
    assert out.shape == (2, 5) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="exactly 6 frames of 48x80"):
        model(torch.randn(1, 3, 8, 48, 80))


@pytest.mark.parametrize("name", sorted(PYSF_BUILDERS))
def test_pyslowfast_weights_metadata(name) -> None:
    builder, weights = PYSF_BUILDERS[name]
    member = weights.DEFAULT
    assert member is weights.KINETICS400_V1
    files = "https://dl.fbaipublicfiles.com/pyslowfast/model_zoo/mvitv2/pysf_video_models"
    file, config, frames, crop, crops, (acc1, acc5, gflops) = {
        "mvit_v2_b": ("MViTv2_B_32x3_k400_f304025456.pyth", "MVITv2_B_32x3", 32, 224, 1, (82.9, 95.7, 225.0)),
        "mvit_v2_l": ("MViTv2_L_40x3_k400_f306903192.pyth", "MVITv2_L_40x3_test", 40, 312, 3, (86.1, 97.0, 2828.0)),
    }[name]
    assert member.url == f"{files}/{file}"
    meta = member.meta
    with torch.device("meta"):
        model = builder()
    assert meta["num_params"] == sum(p.numel() for p in model.parameters())
    assert tuple(meta["categories"]) == KINETICS400_CATEGORIES
    assert meta["_metrics"] == {"Kinetics-400": {"acc@1": acc1, "acc@5": acc5}}
    assert meta["_ops"] == gflops and meta["license"] == "Apache-2.0"
    recipe = (meta["num_frames"], meta["sampling_rate"], meta["frame_rate"], meta["num_clips"], meta["num_crops"])
    assert recipe == (frames, 3, 30.0, 5, crops)
    assert meta["recipe"] == f"https://github.com/facebookresearch/SlowFast/blob/main/configs/Kinetics/{config}.yaml"
    assert meta["model_args"] == {"num_frames": frames, "crop_size": crop}
    assert (meta["min_size"], meta["min_temporal_size"]) == ((crop, crop), frames)
    preset = member.transforms()
    # 1 crop: short side to TRAIN_JITTER_SCALES[0] = 256; 3 crops: to TEST_CROP_SIZE. L's config sets
    # ImageNet's mean and std.
    assert preset.crop_size == (crop, crop) and preset.resize_size == ((256,) if crops == 1 else (312,))
    mean, std = ((0.45,) * 3, (0.225,) * 3) if name == "mvit_v2_b" else ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    assert preset.mean == mean and preset.std == std
    assert not preset.resize_uint8 and preset.crop_rounding == "ceil"  # PySlowFast: float, then uniform_crop


@pytest.mark.parametrize("version", [1, 2])
def test_layer_decay_helpers(version) -> None:
    """Every parameter has a depth (0 embeddings, i + 1 block i, num_layers + 1 norm and head); the
    class token, v1's position embeddings and v2's relative position tables take no weight decay."""
    model = small(version)
    assert model.num_layers == len(model.blocks) == 4
    depths = {name: model.layer_index(name) for name, _ in model.named_parameters()}
    assert depths["conv_proj.weight"] == depths["pos_encoding.class_token"] == 0
    assert depths["blocks.0.attn.qkv.weight"] == 1 and depths["blocks.3.mlp.3.bias"] == 4
    assert depths["norm.weight"] == depths["head.1.bias"] == 5
    assert set(depths.values()) == set(range(6))
    no_decay = model.no_weight_decay()
    expected = {"pos_encoding.class_token"} | (
        {"pos_encoding.spatial_pos", "pos_encoding.temporal_pos", "pos_encoding.class_pos"}
        if version == 1
        else {f"blocks.{i}.attn.rel_pos_{axis}" for i in range(4) for axis in "hwt"}
    )
    assert no_decay == expected
    with pytest.raises(ValueError, match="not a parameter"):
        model.layer_index("fc.weight")
