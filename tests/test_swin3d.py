"""Swin3D specifics: the published file through the cache, shifted-window attention against a textbook
implementation at awkward shapes, the per-shape cache (and that tracing never pollutes it), eval-mode
no-ops, bf16 autocast, and the weights' metadata."""

from __future__ import annotations

import sys

import pytest
import torch
import torch.nn.functional as F

import videozoo
from parity.common import FIXTURES, TOLERANCE, load_fixture, make_input, reference_state_dict, relative_error
from videozoo.models.swin3d import (
    ShiftedWindowAttention3d,
    Swin3D_B_Weights,
    Swin3D_S_Weights,
    Swin3D_T_Weights,
    SwinTransformer3d,
    swin3d_t,
)

swin3d_module = sys.modules["videozoo.models.swin3d"]


def tiny(**kwargs) -> SwinTransformer3d:
    """Two stages, 2x3x3 windows: every code path of the real models at a fraction of the cost."""
    config = dict(patch_size=(2, 4, 4), embed_dim=16, depths=(2, 2), num_heads=(2, 4), window_size=(2, 3, 3))
    return SwinTransformer3d(**(config | {"num_classes": 5} | kwargs))


# -- the published checkpoint -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def fixture() -> dict:
    return load_fixture(FIXTURES / "swin3d_t.pt")


@pytest.fixture(scope="module")
def published_state(fixture: dict) -> dict[str, torch.Tensor]:
    """swin3d_t's checkpoint in the published layout, with the fixture's reference weights."""
    state = reference_state_dict(fixture)
    # The published file holds the real index tables (the fill rule zeroes integer tensors).
    for key, value in swin3d_t().state_dict().items():
        if not value.is_floating_point():
            assert int(value.sum()) == fixture["int_checksums"][key], key
            state[key] = value
    return state


def write_checkpoint(home, monkeypatch, state: dict) -> None:
    monkeypatch.setenv("VIDEOZOO_HOME", str(home))
    path = home / "checkpoints" / Swin3D_T_Weights.DEFAULT.url.rsplit("/", 1)[-1]
    path.parent.mkdir()
    torch.save(state, path)


def test_published_checkpoint_loads_from_the_cache(fixture, published_state, tmp_path, monkeypatch) -> None:
    write_checkpoint(tmp_path, monkeypatch, published_state)
    model = swin3d_t(weights="DEFAULT").eval()
    x = make_input(fixture["input_shape"], seed=fixture["input_seed"])
    with torch.inference_mode():
        assert relative_error(model(x), fixture["output"]) <= TOLERANCE


def test_checkpoint_with_another_window_is_refused(published_state, tmp_path, monkeypatch) -> None:
    key = "features.0.0.attn.relative_position_bias_table"
    write_checkpoint(tmp_path, monkeypatch, published_state | {key: torch.zeros(7 * 13 * 13, 3)})
    with pytest.raises(RuntimeError, match=rf"1 wrong shape \({key}: checkpoint \(1183, 3\) vs model \(2535, 3\)"):
        swin3d_t(weights="DEFAULT")


# -- shifted-window attention against the textbook algorithm -----------------------------------------


def textbook_attention(attn: ShiftedWindowAttention3d, x: torch.Tensor) -> torch.Tensor:
    """Pad, roll, partition into windows, attend with bias and -100 region mask, then undo it all."""
    b, *size, c = x.shape
    window = [s if s <= w else w for s, w in zip(size, attn.window_size)]
    shift = [0 if s <= w else sh for s, w, sh in zip(size, attn.window_size, attn.shift_size)]
    padded = [-(-s // w) * w for s, w in zip(size, window)]
    x = F.pad(x, (0, 0, 0, padded[2] - size[2], 0, padded[1] - size[1], 0, padded[0] - size[0]))
    x = torch.roll(x, [-s for s in shift], (1, 2, 3))

    labels = []  # region of every position of the rolled grid, per dimension
    for p, w, s in zip(padded, window, shift):
        label = torch.zeros(p, dtype=torch.long)
        if s:
            label[p - w : p - s], label[p - s :] = 1, 2
        labels.append(label)
    region = labels[0][:, None, None] * 9 + labels[1][None, :, None] * 3 + labels[2][None, None, :]

    def partition(t: torch.Tensor) -> torch.Tensor:  # (B, T, H, W, C) -> (B * windows, n, C)
        g = [p // w for p, w in zip(padded, window)]
        t = t.reshape(t.shape[0], g[0], window[0], g[1], window[1], g[2], window[2], -1)
        return t.permute(0, 1, 3, 5, 2, 4, 6, 7).reshape(-1, window[0] * window[1] * window[2], t.shape[-1])

    windows = partition(x)
    regions = partition(region[None, ..., None].expand(b, -1, -1, -1, 1))[..., 0]
    mask = (regions[:, :, None] != regions[:, None, :]).float() * -100.0
    n, heads = windows.shape[1], attn.num_heads
    bias = attn.relative_position_bias_table[attn.relative_position_index[:n, :n]].permute(2, 0, 1)
    q, k, v = attn.qkv(windows).reshape(-1, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
    scores = (q * (c // heads) ** -0.5) @ k.transpose(-2, -1) + bias + mask[:, None]
    out = attn.proj((scores.softmax(-1) @ v).transpose(1, 2).reshape(-1, n, c))

    g = [p // w for p, w in zip(padded, window)]
    out = out.reshape(b, g[0], g[1], g[2], window[0], window[1], window[2], c)
    out = out.permute(0, 1, 4, 2, 5, 3, 6, 7).reshape(b, *padded, c)
    out = torch.roll(out, shift, (1, 2, 3))
    return out[:, : size[0], : size[1], : size[2]]


@pytest.mark.parametrize("shift", [(0, 0, 0), (2, 1, 1)])
@pytest.mark.parametrize(
    "shape",
    [
        (1, 8, 6, 6, 12),  # whole windows
        (2, 9, 7, 10, 12),  # padding in every dimension, shifted along all three
        (1, 4, 3, 3, 12),  # exactly one window: no shift, full table
        (1, 3, 2, 5, 12),  # windows shrink in T and H (corner of the index table), not in W
        (1, 1, 1, 1, 12),  # a single token
    ],
)
def test_attention_matches_textbook_algorithm(shape, shift) -> None:
    torch.manual_seed(0)
    attn = ShiftedWindowAttention3d(12, [4, 3, 3], list(shift), num_heads=3).eval()
    with torch.no_grad():
        attn.relative_position_bias_table.normal_(0, 1.0)  # make the bias and its indexing matter
    x = torch.randn(shape)
    with torch.inference_mode():
        ours, expected = attn(x), textbook_attention(attn, x)
    assert ours.shape == x.shape
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)


def test_shifted_windows_are_grouped_by_mask() -> None:
    layout = swin3d_module._build_window_layout(2, [9, 7, 10], [4, 3, 3], [2, 1, 1], torch.device("cpu"))
    assert layout.window == [4, 3, 3] and layout.pad == [3, 2, 2]
    # 3 x 3 x 4 windows per clip; groups (last along T?, H?, W?) in order, each over both clips:
    # 2*2*3 interior windows, then 2*2*1, 2*1*3, 2*1*1, 1*2*3, 1*2*1, 1*1*3 and the one last corner
    sizes = [2 * n for n in (12, 4, 6, 2, 6, 2, 3, 1)]
    assert layout.bounds == [sum(sizes[:i]) for i in range(9)]
    assert layout.masked == [False] + [True] * 7
    assert not layout.masks[0].any() and all(layout.masks[i].eq(-100).any() for i in range(1, 8))
    assert sorted(layout.gather.tolist()) == list(range(2 * 12 * 9 * 12))  # a permutation of padded tokens


# -- the per-shape cache -----------------------------------------------------------------------------


def test_layouts_are_computed_once_per_shape() -> None:
    model = tiny().eval()
    x = torch.randn(1, 3, 6, 40, 44)
    cache = swin3d_module._cached_window_layout
    cache.cache_clear()
    with torch.inference_mode():
        first = model(x)
        misses = cache.cache_info().misses
        assert misses == 4  # two stages x (plain, shifted)
        torch.testing.assert_close(model(x), first, rtol=0, atol=0)
        assert cache.cache_info().misses == misses and cache.cache_info().hits >= 4
        model(torch.randn(2, 3, 6, 40, 44))  # a new batch size is a new shape
        assert cache.cache_info().misses == misses + 4


def test_tracing_does_not_pollute_the_cache() -> None:
    model = tiny().eval()
    x = torch.randn(1, 3, 5, 36, 52)  # a shape nothing else in this session uses
    cache = swin3d_module._cached_window_layout
    cache.cache_clear()
    exported = torch.export.export(model, (x,))
    assert cache.cache_info().currsize == 0  # traced with FakeTensors: nothing may be kept
    scripted = torch.jit.script(model)
    with torch.inference_mode():
        eager = model(x)
        torch.testing.assert_close(exported.module()(x), eager, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(scripted(x), eager, rtol=1e-4, atol=1e-5)
    assert cache.cache_info().currsize == 4


# -- eval mode, autocast, any size -------------------------------------------------------------------


def test_dropout_and_stochastic_depth_are_exact_no_ops_in_eval() -> None:
    torch.manual_seed(0)
    plain = tiny(stochastic_depth_prob=0.0).eval()
    noisy = tiny(dropout=0.5, attention_dropout=0.5, stochastic_depth_prob=0.5)
    noisy.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 6, 40, 44)
    with torch.no_grad():
        noisy.train()
        assert not torch.equal(noisy(x), plain(x))  # they do act while training
        noisy.eval()
        torch.testing.assert_close(noisy(x), plain(x), rtol=0, atol=0)


def test_bf16_autocast_follows_fp32() -> None:
    model = tiny().eval()
    x = torch.randn(1, 3, 6, 40, 44)
    with torch.inference_mode():
        reference = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x)
    assert relative_error(out.float(), reference) < 0.05


def test_accepts_every_size_as_torchvision_does() -> None:
    model = tiny().eval()
    with torch.inference_mode():
        for shape in [(1, 3, 1, 1, 1), (1, 3, 3, 5, 130), (2, 3, 33, 17, 9)]:
            out = model(torch.randn(shape))
            assert out.shape == (shape[0], 5) and torch.isfinite(out).all()


# -- weights -------------------------------------------------------------------------------------------


def test_weights_metadata() -> None:
    members = [*Swin3D_T_Weights, *Swin3D_S_Weights, *Swin3D_B_Weights]
    assert len({m.url for m in members}) == 4
    assert Swin3D_B_Weights.DEFAULT is Swin3D_B_Weights.KINETICS400_V1
    assert Swin3D_B_Weights.KINETICS400_IMAGENET22K_V1.meta["_metrics"]["Kinetics-400"]["acc@1"] == 81.643
    for member in members:
        meta = member.meta
        assert member.url.startswith("https://download.pytorch.org/models/swin3d_")
        assert (meta["num_frames"], meta["sampling_rate"], meta["frame_rate"]) == (32, 1, 15.0)
        assert (meta["num_clips"], meta["num_crops"]) == (12, 1)
        assert "clips_per_video=12" in meta["_docs"] and "clip_len=32" in meta["_docs"]
        preset = member.transforms()
        assert preset.crop_size == (224, 224) and preset.resize_size == (256,)
        assert preset.mean == (0.485, 0.456, 0.406) and preset.std == (0.229, 0.224, 0.225)
    assert videozoo.get_model_weights("swin3d_s") is Swin3D_S_Weights
