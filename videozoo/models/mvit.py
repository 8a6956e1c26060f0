"""MViT: Multiscale Vision Transformers, v1 and v2.

Fan et al., "Multiscale Vision Transformers", ICCV 2021 (https://arxiv.org/abs/2104.11227), and
Li et al., "MViTv2: Improved Multiscale Vision Transformers for Classification and Detection",
CVPR 2022 (https://arxiv.org/abs/2112.01526).

A clip is cut into 2x4x4 space-time patches, a class token is prepended, and a stack of transformer
blocks follows in four stages. At the first block of each later stage the *query* is pooled 2x in
space, so the token grid shrinks while heads and channels double; *keys and values* are pooled in
every block to the same coarse grid (strides 8, 4, 2, 1 across the stages). Pooling is a depthwise
3x3x3 convolution followed by a LayerNorm, shared by all heads ("attention pooling").

The two generations differ in four ways, all switched by ``version``:

* v1 adds learned absolute positional embeddings (temporal + spatial, separable) to the patches;
  v2 has none and adds a *decomposed relative position bias* to the attention logits instead:
  ``q . R_t[t, t'] + q . R_h[y, y'] + q . R_w[x, x']``.
* v2 adds the pooled query back to the attention output ("residual pooling").
* v1 pools the query only where the grid shrinks; v2 pools it (stride 1) in every block.
* v1 widens the channels in the last block of a stage, after its MLP; v2 in the first block of the
  next one, inside the attention.

Module names follow torchvision's, so its published checkpoints load with ``strict=True``.

PyTorchVideo's MViT-B checkpoints (``mvit_base_16x4``, ``mvit_base_32x3``, PyTorchVideo 0.1.5's hub
names) are the same v1-B network, trained in PySlowFast and published as ``{"model_state": ...}`` in
PyTorchVideo's module layout, which projects q, k and v with three layers where torchvision has one
``qkv``. Their builders keep the three apart (``separate_qkv=True``; the same products, since ``qkv``
is run as three here anyway), so :func:`from_pytorchvideo_state_dict` only renames the keys and drops
the position embeddings' leading singleton dimensions (``(1, N, C)`` there). One difference changes
outputs: the LayerNorms after attention pooling use PyTorch's default epsilon, 1e-5, as PySlowFast did
when it trained them, where torchvision's port has 1e-6: ``pool_norm_eps=1e-5``. Everything else is
v1-B as above: 3x7x7 patches at stride 2x4x4, keys/values pooled at strides 8 -> 1, queries at blocks
1, 3 and 14, every other norm at 1e-6, the class token classified after dropout 0.5. The 32x3 model
differs only in its clip: 32 frames 3 apart make 16 token frames (a 16-row temporal position table,
twice the tokens and 2.4x the GFLOPs of 16x4). Both were evaluated with PySlowFast's MViT recipe:
5 clips x 1 centre crop of 224 pixels after a 256-pixel short-side resize.

PySlowFast's MViTv2-B 32x3 and MViTv2-L 40x3 (``mvit_v2_b``, ``mvit_v2_l``; projects/mvitv2 of
PySlowFast) are v2 as above, deeper and, for L, wider: B has 2 + 3 + 16 + 3 blocks from 96 channels and
1 head, L 2 + 6 + 36 + 4 blocks from 144 channels and 2 heads (both double channels and heads at each
stage, as v2-S). Their files are PySlowFast's ``{"model_state": ...}`` checkpoints in its own module
layout, which has torchvision's single ``qkv`` projection; :func:`from_pyslowfast_state_dict` renames
the keys and reshapes the class token (``(1, 1, C)`` there). Every norm is at 1e-6, as in torchvision's
port. One detail changes outputs where the query and key grids of a block are in a non-integer ratio,
as at L's 312-pixel crop (78 x 78 queries, 10 x 10 keys): both compute a table row from the distance
``i * q_ratio - j * k_ratio + (k - 1) * k_ratio`` in float32 and truncate it, PySlowFast adding the
offset last and torchvision's port folding it into the key term; where the exact distance is a whole
number, one of the two can land just below it and truncate to the row before (2.6% of the largest
logit on the L parity fixture). Their builders index as PySlowFast does (``rel_pos_index="pyslowfast"``);
at B's 224-pixel crop the two agree.

Speed (CPU):

* q, k and v are three matrix products (over slices of the fused ``qkv`` weight), so each lands
  contiguous and its pooling convolution reads it in place, channels-last, with the heads folded
  into the channels: one depthwise convolution per tensor, no head-major copies.
* Everything after pooling is per token, so a block runs it over chunks of its queries: attention
  through ``F.scaled_dot_product_attention`` with v2's bias as the mask (built per chunk, never for
  the whole clip), projection, norm and MLP. Intermediates stay cache-sized and below glibc's 32 MB
  mmap threshold; the reference's stage-1 MLP and attention matrices are above it and pay for fresh
  pages on every call.
* Position index tables are computed once, at construction: every block's token grid is fixed.
* In bf16/fp16 on CPU the attention is two matrix products and a softmax, which beat the fused
  kernel there.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from videozoo.zoo import Weights, WeightsEnum, build_model, register_model
from videozoo.models._base import VideoModel
from videozoo.models.layers import attention, drop_path_mask, drop_path_rates, init_weights, linear, onednn_applies
from videozoo.models.adapters.mvit import from_pyslowfast_state_dict, from_pytorchvideo_state_dict
from videozoo.models.publishers.pytorchvideo import (
    MODEL_ZOO_URL,
    PTV_FILES_URL,
    PYSLOWFAST_CONFIGS_URL,
    PYSLOWFAST_MVITV2_URL,
    ptv_meta,
    ptv_transforms,
)
from videozoo.models.publishers.torchvision import IMAGENET_MEAN, IMAGENET_STD, tv_weights
from videozoo.video.transforms import VideoClassification

__all__ = [
    "MViT",
    "MViT_V1_B_Weights",
    "MViT_V2_S_Weights",
    "MViT_B_16x4_Weights",
    "MViT_B_32x3_Weights",
    "MViT_V2_B_Weights",
    "MViT_V2_L_Weights",
    "mvit_v1_b",
    "mvit_v2_s",
    "mvit_base_16x4",
    "mvit_base_32x3",
    "mvit_v2_b",
    "mvit_v2_l",
]

Grid = tuple[int, int, int]  # (T, H, W) of a block's spatial tokens
RelPosIndex = Literal["torchvision", "pyslowfast"]  # whose float32 rounding picks the table rows

PATCH_KERNEL, PATCH_STRIDE, PATCH_PADDING = (3, 7, 7), (2, 4, 4), (1, 3, 3)


class MViTBlockSpec(NamedTuple):
    """One transformer block, in the notation of the papers' architecture tables."""

    num_heads: int
    dim_in: int
    dim_out: int
    kernel_q: tuple[int, ...]  # () = the query is not pooled
    stride_q: tuple[int, ...]
    kernel_kv: tuple[int, ...]
    stride_kv: tuple[int, ...]


def block_specs(version: int, depths: tuple[int, ...], embed_dim: int, num_heads: int) -> list[MViTBlockSpec]:
    """The blocks of MViT-B (v1) / MViTv2-S: stage ``s`` has ``num_heads * 2**s`` heads of equal width."""
    specs = []
    stride_kv = 2 ** (len(depths) - 1)  # keys/values always pooled to the last stage's grid
    dim_in = embed_dim
    for stage, depth in enumerate(depths):
        dim = embed_dim * 2**stage
        for j in range(depth):
            first = j == 0 and stage > 0
            if first:
                stride_kv //= 2
            stride_q = (1, 2, 2) if first else (1, 1, 1)
            if version == 1:
                pool_q = first
                last = j == depth - 1 and stage < len(depths) - 1
                dim_out = 2 * dim if last else dim
            else:
                pool_q = True
                dim_out = dim
            specs.append(
                MViTBlockSpec(
                    num_heads=num_heads * 2**stage,
                    dim_in=dim_in,
                    dim_out=dim_out,
                    kernel_q=(3, 3, 3) if pool_q else (),
                    stride_q=stride_q if pool_q else (),
                    kernel_kv=(3, 3, 3),
                    stride_kv=(1, stride_kv, stride_kv),
                )
            )
            dim_in = dim_out
    return specs


def _conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def _pooled_grid(grid: Grid, kernel: tuple[int, ...], stride: tuple[int, ...]) -> Grid:
    if not kernel:
        return grid
    t, h, w = (_conv_out(n, k, s, k // 2) for n, k, s in zip(grid, kernel, stride))
    return (t, h, w)


def _grid_view(tokens: Tensor, grid: list[int]) -> Tensor:
    """``(B, T*H*W, C)`` tokens as a ``(B, C, T, H, W)`` volume: a view, channels-last."""
    return tokens.unflatten(1, grid).movedim(-1, 1)


def _tokens(volume: Tensor) -> Tensor:
    """``(B, C, T, H, W)`` -> ``(B, T*H*W, C)``: a view when the volume is channels-last."""
    return volume.flatten(2).transpose(1, 2)


# Queries per chunk (measured on 2 cores; flat between 1024 and 2048 except where noted): 2048, fewer
# where one head's attention scores would exceed 8 MB (the stage-1 block attending to a 14x14 grid),
# never fewer than 512. At batch 1 every intermediate then stays below glibc's 32 MB mmap threshold,
# above which each allocation is fresh memory paid for in page faults, as the reference's stage-1 MLP
# and attention matrices are on every call.
_CHUNK_ROWS = 2048
_CHUNK_SCORES = 1 << 21
_MIN_CHUNK_ROWS = 512


# ----------------------------------------------------------------------------------------------------
# Building blocks


class AttentionPool(nn.Module):
    """Depthwise 3D convolution + LayerNorm over one head's channels, applied to every head.

    The class token skips the convolution but not the norm. The heads become channels of one
    convolution (its filter repeated per head), so it reads the projection's output in place,
    channels-last. (Checkpoint names: ``pool`` and ``norm_act.0``.)
    """

    def __init__(self, head_dim: int, kernel: tuple[int, ...], stride: tuple[int, ...], norm_eps: float) -> None:
        super().__init__()
        padding = tuple(k // 2 for k in kernel)
        self.pool = nn.Conv3d(head_dim, head_dim, kernel, stride, padding, groups=head_dim, bias=False)  # type: ignore[arg-type]
        self.norm_act = nn.Sequential(nn.LayerNorm(head_dim, eps=norm_eps))
        self.head_dim = head_dim
        self.stride = list(stride)
        self.padding = list(padding)

    def forward(self, x: Tensor, grid: list[int], num_heads: int) -> Tensor:
        """``(B, 1 + N, heads * head_dim)`` -> ``(B, 1 + N', heads, head_dim)``, normalised."""
        weight = self.pool.weight.repeat(num_heads, 1, 1, 1, 1)
        pooled = F.conv3d(_grid_view(x[:, 1:], grid), weight, None, self.stride, self.padding, 1, weight.shape[0])
        x = torch.cat((x[:, :1], _tokens(pooled)), dim=1)
        return self.norm_act(x.unflatten(-1, (num_heads, self.head_dim)))


class MultiscaleAttention(nn.Module):
    """Multi-head pooling attention: pool q, k and v; attend (with v2's relative position bias).

    Used by :class:`MultiscaleBlock` in two steps, so that the block can run the attention of its
    queries in chunks: :meth:`queries_keys_values` once, then :meth:`attend` per chunk of queries.
    """

    def __init__(
        self, spec: MViTBlockSpec, dim_out: int, grid: Grid, table_grid: Grid, rel_pos: bool, residual_pool: bool,
        dropout: float, pool_norm_eps: float = 1e-6, separate_qkv: bool = False,
        rel_pos_index: RelPosIndex = "torchvision",
    ) -> None:
        super().__init__()
        self.num_heads = spec.num_heads
        self.head_dim = dim_out // spec.num_heads
        self.dim_out = dim_out
        self.residual_pool = residual_pool

        # One projection (torchvision's layout) or three (PyTorchVideo's): the same three products.
        self.qkv: nn.Linear | None = None
        self.q: nn.Linear | None = None
        self.k: nn.Linear | None = None
        self.v: nn.Linear | None = None
        if separate_qkv:
            self.q = nn.Linear(spec.dim_in, dim_out)
            self.k = nn.Linear(spec.dim_in, dim_out)
            self.v = nn.Linear(spec.dim_in, dim_out)
        else:
            self.qkv = nn.Linear(spec.dim_in, 3 * dim_out)
        self.project = nn.Sequential(nn.Linear(dim_out, dim_out), nn.Dropout(dropout, inplace=True))

        self.pool_q: AttentionPool | None = None
        if spec.kernel_q and (_prod(spec.kernel_q) > 1 or _prod(spec.stride_q) > 1):
            self.pool_q = AttentionPool(self.head_dim, spec.kernel_q, spec.stride_q, pool_norm_eps)
        self.pool_k: AttentionPool | None = None
        self.pool_v: AttentionPool | None = None
        if spec.kernel_kv and (_prod(spec.kernel_kv) > 1 or _prod(spec.stride_kv) > 1):
            self.pool_k = AttentionPool(self.head_dim, spec.kernel_kv, spec.stride_kv, pool_norm_eps)
            self.pool_v = AttentionPool(self.head_dim, spec.kernel_kv, spec.stride_kv, pool_norm_eps)

        # The token grids are static: the input size is fixed at construction.
        self.grid = list(grid)
        self.q_grid = list(_pooled_grid(grid, spec.kernel_q, spec.stride_q) if self.pool_q is not None else grid)
        self.kv_grid = list(_pooled_grid(grid, spec.kernel_kv, spec.stride_kv) if self.pool_k is not None else grid)

        self.rel_pos_h: nn.Parameter | None = None
        self.rel_pos_w: nn.Parameter | None = None
        self.rel_pos_t: nn.Parameter | None = None
        if rel_pos:
            # Table lengths as the checkpoints have them: from the nominal (floor-divided) grid.
            size = max(table_grid[1:])
            q_size = size // spec.stride_q[1] if spec.stride_q else size
            kv_size = size // spec.stride_kv[1] if spec.stride_kv else size
            spatial, temporal = 2 * max(q_size, kv_size) - 1, 2 * table_grid[0] - 1
            self.rel_pos_h = nn.Parameter(torch.zeros(spatial, self.head_dim))
            self.rel_pos_w = nn.Parameter(torch.zeros(spatial, self.head_dim))
            self.rel_pos_t = nn.Parameter(torch.zeros(temporal, self.head_dim))
            for table in (self.rel_pos_h, self.rel_pos_w, self.rel_pos_t):
                nn.init.trunc_normal_(table, std=0.02)
        # Which table row each (query, key) coordinate pair reads, per axis; empty without rel_pos.
        self.table_len = [0, 0, 0]
        for axis, name in enumerate(("rel_index_t", "rel_index_h", "rel_index_w")):
            q_n, k_n = self.q_grid[axis], self.kv_grid[axis]
            self.table_len[axis] = 2 * max(q_n, k_n) - 1
            index = _rel_index(q_n, k_n, rel_pos_index) if rel_pos else torch.zeros(0, 0, dtype=torch.long)
            self.register_buffer(name, index, persistent=False)

    def _project_in(self, x: Tensor, part: int) -> Tensor:
        """Projection ``part`` (0: q, 1: k, 2: v) of ``x``, as its own contiguous tensor."""
        if self.qkv is not None:
            rows = slice(part * self.dim_out, (part + 1) * self.dim_out)
            return linear(x, self.qkv.weight[rows], self.qkv.bias[rows])
        if self.q is not None and self.k is not None and self.v is not None:
            weight = [self.q.weight, self.k.weight, self.v.weight][part]
            bias = [self.q.bias, self.k.bias, self.v.bias][part]
            return linear(x, weight, bias)
        raise RuntimeError("MultiscaleAttention has no input projection")

    def queries_keys_values(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Normalised tokens ``(B, 1 + N, C)`` -> queries, keys and values ``(B, 1 + N', heads, head_dim)``,
        each pooled and normalised where the block says so."""
        # One after the other, so that each full-resolution projection is freed (and its memory reused
        # by the next) as soon as it is pooled.
        heads = (self.num_heads, self.head_dim)
        q = self._project_in(x, 0)
        q = q.unflatten(-1, heads) if self.pool_q is None else self.pool_q(q, self.grid, self.num_heads)
        k = self._project_in(x, 1)
        k = k.unflatten(-1, heads) if self.pool_k is None else self.pool_k(k, self.grid, self.num_heads)
        v = self._project_in(x, 2)
        v = v.unflatten(-1, heads) if self.pool_v is None else self.pool_v(v, self.grid, self.num_heads)
        return q, k, v

    def rel_pos_terms(self, q: Tensor) -> tuple[Tensor, Tensor]:
        """v2's decomposed relative position bias of the queries ``q`` (pooled, normalised, unscaled):
        the spatial part ``q . R_h[y, y'] + q . R_w[x, x']`` as ``(B, 1 + Nq, heads, kh * kw)`` and the
        temporal part ``q . R_t[t, t']`` as ``(B, 1 + Nq, heads, kt)``; the bias of key (t', y', x') is
        their sum. Zero for the class token, which has no position."""
        assert self.rel_pos_h is not None and self.rel_pos_w is not None and self.rel_pos_t is not None
        b, heads, head_dim = q.shape[0], self.num_heads, self.head_dim
        qt, qh, qw = self.q_grid
        kt, kh, kw = self.kv_grid
        r_t = _resize_table(self.rel_pos_t, self.table_len[0])[self.rel_index_t]  # (qt, kt, head_dim)
        r_h = _resize_table(self.rel_pos_h, self.table_len[1])[self.rel_index_h]  # (qh, kh, head_dim)
        r_w = _resize_table(self.rel_pos_w, self.table_len[2])[self.rel_index_w]  # (qw, kw, head_dim)
        r = q[:, 1:].reshape(b, qt, qh, qw, heads, head_dim)
        # Batched over the query coordinate that selects the table rows: (B, t, y) for R_h ...
        rel_h = torch.matmul(r.reshape(b, qt, qh, qw * heads, head_dim), r_h.transpose(1, 2))
        rel_h = rel_h.reshape(b, qt, qh, qw, heads, kh)
        # ... x for R_w, which must lead ...
        rel_w = torch.matmul(r.permute(3, 0, 1, 2, 4, 5).reshape(qw, -1, head_dim), r_w.transpose(1, 2))
        rel_w = rel_w.reshape(qw, b, qt, qh, heads, kw).permute(1, 2, 3, 0, 4, 5)
        # ... and (B, t) for R_t.
        rel_t = torch.matmul(r.reshape(b, qt, qh * qw * heads, head_dim), r_t.transpose(1, 2))
        spatial = (rel_h[..., :, None] + rel_w[..., None, :]).reshape(b, qt * qh * qw, heads, kh * kw)
        class_row = [0, 0, 0, 0, 1, 0]
        return F.pad(spatial, class_row), F.pad(rel_t.reshape(b, qt * qh * qw, heads, kt), class_row)

    def attend(
        self, q: Tensor, k: Tensor, v: Tensor, rel_spatial: Tensor | None, rel_temporal: Tensor | None,
        starts_with_class_token: bool,
    ) -> Tensor:
        """Attention of the query rows ``q`` ``(B, n, heads, head_dim)``, projected: ``(B, n, dim_out)``.

        ``rel_*`` are these rows' :meth:`rel_pos_terms` (None: no bias). With residual pooling the
        query is added back, except to the class token.
        """
        b, n = q.shape[0], q.shape[1]
        if self._by_heads(q, k):
            out = self._attention_by_heads(q, k, v, rel_spatial, rel_temporal).view(b, n, self.num_heads, -1)
        else:
            mask: Tensor | None = None
            if rel_spatial is not None and rel_temporal is not None:
                bias = (rel_spatial[:, :, :, None, :] + rel_temporal[..., None]).reshape(b, n, self.num_heads, -1)
                mask = F.pad(bias, [1, 0]).transpose(1, 2)  # the class-token key has no position: zero bias
            out = attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), mask)
            out = out.transpose(1, 2)  # (B, n, heads, head_dim); contiguous as SDPA lays out its result
        if self.residual_pool:
            if starts_with_class_token:
                out = torch.cat((out[:, :1], out[:, 1:] + q[:, 1:]), dim=1)
            else:
                out = out + q
        projection = self.project[0]
        return self.project[1](linear(out.reshape(b, n, self.dim_out), projection.weight, projection.bias))

    def _by_heads(self, q: Tensor, k: Tensor) -> bool:
        """Whether :meth:`_attention_by_heads` beats SDPA: on CPU in fp32 inference (where its matrix
        products run on oneDNN, SDPA's on MKL) and in bf16/fp16 (where SDPA's fused kernel is slow)."""
        if q.device.type != "cpu":
            return False
        if q.dtype != torch.float32:
            return True
        if torch.jit.is_scripting():
            return False
        return onednn_applies(q, k)

    def _attention_by_heads(
        self, q: Tensor, k: Tensor, v: Tensor, rel_spatial: Tensor | None, rel_temporal: Tensor | None
    ) -> Tensor:
        """``softmax(q k^T / sqrt(head_dim) + bias) v``, one (sample, head) at a time, the bias added to
        the scores in place: ``(B, n, heads, head_dim)`` -> ``(B, n, heads * head_dim)``."""
        kt, kh, kw = self.kv_grid
        q = q * self.head_dim**-0.5
        samples: list[Tensor] = []
        for i in range(q.shape[0]):
            heads: list[Tensor] = []
            for h in range(self.num_heads):
                scores = linear(q[i, :, h], k[i, :, h], None)  # (n, 1 + Nk)
                if rel_spatial is not None and rel_temporal is not None:
                    bias = rel_spatial[i, :, h, None, :] + rel_temporal[i, :, h, :, None]  # (n, kt, kh * kw)
                    scores[:, 1:].unflatten(1, [kt, kh * kw]).add_(bias)  # the class-token key has no bias
                heads.append(linear(scores.softmax(-1), v[i, :, h].t(), None))
            samples.append(torch.cat(heads, dim=-1))
        return torch.stack(samples)


def _prod(values: tuple[int, ...]) -> int:
    out = 1
    for v in values:
        out *= v
    return out


def _rel_index(q_n: int, k_n: int, rounding: RelPosIndex = "torchvision") -> Tensor:
    """Table row of each (query, key) coordinate pair along one axis; grids of unequal size are
    aligned by scaling the finer one's coordinates (MViTv2, Sec. 3.1).

    The row is the distance ``i * q_ratio - (j - (k_n - 1)) * k_ratio``, computed in float32 and
    truncated exactly as ``rounding``'s implementation does (torchvision's port or PySlowFast): the two
    differ where the grids' ratio is not a whole number (see the module docstring)."""
    q_ratio, k_ratio = max(k_n / q_n, 1.0), max(q_n / k_n, 1.0)
    if rounding == "pyslowfast":
        dist = torch.arange(q_n)[:, None] * q_ratio - torch.arange(k_n)[None, :] * k_ratio
        dist += (k_n - 1) * k_ratio
    elif rounding == "torchvision":
        dist = torch.arange(q_n)[:, None] * q_ratio - (torch.arange(k_n)[None, :] + (1.0 - k_n)) * k_ratio
    else:
        raise ValueError(f"rel_pos_index must be 'torchvision' or 'pyslowfast', got {rounding!r}.")
    return dist.long()


def _resize_table(table: Tensor, length: int) -> Tensor:
    """Linearly resample a relative position table to ``length`` rows (only for unusual grids)."""
    if table.shape[0] == length:
        return table
    return F.interpolate(table.t().unsqueeze(0), size=length, mode="linear").squeeze(0).t()


class MultiscaleBlock(nn.Module):
    """Pre-norm transformer block: pooling attention, then a GELU MLP; both with stochastic depth.

    The shortcut of a block that pools the query is max-pooled the same way; a block that widens the
    channels projects its shortcut with ``project`` (v1: after the attention, v2: before it).

    Everything after pooling works on each token independently, so it runs over chunks of the
    (pooled) query tokens, which are concatenated at the end.
    """

    def __init__(
        self, spec: MViTBlockSpec, grid: Grid, table_grid: Grid, version: int, dropout: float,
        stochastic_depth_prob: float, pool_norm_eps: float = 1e-6, separate_qkv: bool = False,
        rel_pos_index: RelPosIndex = "torchvision",
    ) -> None:
        super().__init__()
        self.widen_in_attention = version == 2
        attn_dim = spec.dim_out if self.widen_in_attention else spec.dim_in
        self.norm1 = nn.LayerNorm(spec.dim_in, eps=1e-6)
        self.norm2 = nn.LayerNorm(attn_dim, eps=1e-6)
        self.attn = MultiscaleAttention(
            spec,
            attn_dim,
            grid,
            table_grid,
            rel_pos=version == 2,
            residual_pool=version == 2,
            dropout=dropout,
            pool_norm_eps=pool_norm_eps,
            separate_qkv=separate_qkv,
            rel_pos_index=rel_pos_index,
        )
        self.mlp = nn.Sequential(
            nn.Linear(attn_dim, 4 * attn_dim),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(4 * attn_dim, spec.dim_out),
            nn.Dropout(dropout),
        )
        self.project: nn.Linear | None = None
        if spec.dim_in != spec.dim_out:
            self.project = nn.Linear(spec.dim_in, spec.dim_out)
        self.stochastic_depth_prob = stochastic_depth_prob
        self.rel_pos = version == 2

        self.grid = list(grid)
        self.out_grid = list(self.attn.q_grid)
        self.skip_stride = list(spec.stride_q) or [1, 1, 1]
        self.pool_skip = _prod(spec.stride_q) > 1
        self.skip_kernel = [s + 1 if s > 1 else s for s in self.skip_stride]
        self.skip_padding = [k // 2 for k in self.skip_kernel]
        keys = 1 + _prod(tuple(self.attn.kv_grid))
        self.chunk = max(_MIN_CHUNK_ROWS, min(_CHUNK_ROWS, _CHUNK_SCORES // keys))

    def forward(self, x: Tensor) -> Tensor:
        x_norm = self.norm1(x)
        q, k, v = self.attn.queries_keys_values(x_norm)
        shortcut = x
        if self.widen_in_attention and self.project is not None:
            shortcut = linear(x_norm, self.project.weight, self.project.bias)
        if self.pool_skip:
            volume = _grid_view(shortcut[:, 1:], self.grid)
            pooled = F.max_pool3d(volume, self.skip_kernel, self.skip_stride, self.skip_padding)
            shortcut = torch.cat((shortcut[:, :1], _tokens(pooled)), dim=1)
        rel_spatial: Tensor | None = None
        rel_temporal: Tensor | None = None
        if self.rel_pos:
            rel_spatial, rel_temporal = self.attn.rel_pos_terms(q)
        noise_attn = drop_path_mask(x, self.stochastic_depth_prob, self.training)
        noise_mlp = drop_path_mask(x, self.stochastic_depth_prob, self.training)

        outs: list[Tensor] = []
        for start in range(0, q.shape[1], self.chunk):
            rows = slice(start, start + self.chunk)
            outs.append(
                self._rows(
                    q[:, rows],
                    k,
                    v,
                    None if rel_spatial is None else rel_spatial[:, rows],
                    None if rel_temporal is None else rel_temporal[:, rows],
                    shortcut[:, rows],
                    start == 0,
                    noise_attn,
                    noise_mlp,
                )
            )
        return outs[0] if len(outs) == 1 else torch.cat(outs, dim=1)

    def _rows(
        self, q: Tensor, k: Tensor, v: Tensor, rel_spatial: Tensor | None, rel_temporal: Tensor | None,
        shortcut: Tensor, starts_with_class_token: bool, noise_attn: Tensor | None, noise_mlp: Tensor | None,
    ) -> Tensor:
        """The block's output for one chunk of (pooled) query tokens."""
        x = self.attn.attend(q, k, v, rel_spatial, rel_temporal, starts_with_class_token)
        if noise_attn is not None:
            x = x * noise_attn
        x = x + shortcut
        x_norm = self.norm2(x)
        if not self.widen_in_attention and self.project is not None:
            x = linear(x_norm, self.project.weight, self.project.bias)
        fc1, fc2 = self.mlp[0], self.mlp[3]
        hidden = self.mlp[2](linear(x_norm, fc1.weight, fc1.bias, gelu="none"))
        out = self.mlp[4](linear(hidden, fc2.weight, fc2.bias))
        if noise_mlp is not None:
            out = out * noise_mlp
        return out + x


class PositionalEncoding(nn.Module):
    """Prepends the class token; v1 also adds learned separable space-time position embeddings."""

    def __init__(self, embed_dim: int, grid: Grid, absolute: bool) -> None:
        super().__init__()
        self.class_token = nn.Parameter(torch.zeros(embed_dim))
        self.spatial_pos: nn.Parameter | None = None
        self.temporal_pos: nn.Parameter | None = None
        self.class_pos: nn.Parameter | None = None
        if absolute:
            self.spatial_pos = nn.Parameter(torch.zeros(grid[1] * grid[2], embed_dim))
            self.temporal_pos = nn.Parameter(torch.zeros(grid[0], embed_dim))
            self.class_pos = nn.Parameter(torch.zeros(embed_dim))

    def forward(self, tokens: Tensor) -> Tensor:
        cls = self.class_token
        if self.spatial_pos is not None and self.temporal_pos is not None and self.class_pos is not None:
            pos = (self.temporal_pos[:, None] + self.spatial_pos[None]).flatten(0, 1)
            tokens = tokens + pos
            cls = cls + self.class_pos
        return torch.cat((cls.expand(tokens.shape[0], 1, -1), tokens), dim=1)


# ----------------------------------------------------------------------------------------------------
# The model


class MViT(VideoModel):
    """MViT for clips of exactly ``num_frames`` x ``crop_size`` (the token grid is fixed at construction).

    Args:
        version: 1 for MViT (v1-B with the defaults), 2 for MViTv2 (v2-S); see the module docstring.
        depths: blocks per stage.
        embed_dim: channels of the first stage.
        num_heads: attention heads of the first stage.
        num_frames: frames of the clip the model is built for (a multiple of 2).
        crop_size: (H, W) of its frames, or one int for square frames (multiples of 4).
        num_classes: outputs of the classifier.
        dropout: before the classifier, while training.
        attention_dropout: on the attention weights, while training.
        stochastic_depth_prob: drop-path probability of the last block (growing linearly from 0).
        pool_norm_eps: epsilon of the LayerNorms after attention pooling. 1e-6 in torchvision's port;
            PySlowFast and PyTorchVideo 0.1.5, which trained and publish the MViT-B checkpoints, used
            PyTorch's default, 1e-5 (PyTorchVideo's builder switched to 1e-6 in 2022).
        separate_qkv: three input projections ``attn.q``/``k``/``v`` (PyTorchVideo's layout) instead of
            one ``attn.qkv`` (torchvision's); the same computation.
        rel_pos_index: v2's relative position table rows as torchvision's port rounds them
            (``"torchvision"``) or as PySlowFast does (``"pyslowfast"``); they differ only where a block's
            query and key grids are in a non-integer ratio (see the module docstring).
    """

    classifier_name = "head.1"
    layers_are_blocks = True
    stem_params = ("conv_proj", "pos_encoding")
    head_params = ("norm", "head")

    def __init__(
        self, version: int, depths: tuple[int, ...] = (1, 2, 11, 2), embed_dim: int = 96, num_heads: int = 1,
        num_frames: int = 16, crop_size: int | tuple[int, int] = (224, 224), num_classes: int = 400,
        dropout: float = 0.5, attention_dropout: float = 0.0, stochastic_depth_prob: float = 0.0,
        pool_norm_eps: float = 1e-6, separate_qkv: bool = False, rel_pos_index: RelPosIndex = "torchvision",
    ) -> None:
        if version not in (1, 2):
            raise ValueError(f"version must be 1 (MViT) or 2 (MViTv2), got {version!r}.")
        specs = block_specs(version, tuple(depths), embed_dim, num_heads)
        height, width = (crop_size, crop_size) if isinstance(crop_size, int) else crop_size
        grid = (num_frames // PATCH_STRIDE[0], height // PATCH_STRIDE[1], width // PATCH_STRIDE[2])
        patches = tuple(
            _conv_out(n, k, s, p)
            for n, k, s, p in zip((num_frames, height, width), PATCH_KERNEL, PATCH_STRIDE, PATCH_PADDING)
        )
        if patches != grid or min(grid) < 1:
            raise ValueError(
                f"MViT needs num_frames divisible by {PATCH_STRIDE[0]} and crop_size by {PATCH_STRIDE[1]} "
                f"(its {PATCH_STRIDE[0]}x{PATCH_STRIDE[1]}x{PATCH_STRIDE[2]} patches tile the clip); got "
                f"num_frames={num_frames}, crop_size={(height, width)}."
            )
        super().__init__(num_classes, specs[-1].dim_out, min_temporal_size=num_frames, min_size=min(height, width))
        self.version = version
        self.arch_name = "MViT" if version == 1 else "MViTv2"
        self.num_frames = num_frames
        self.crop_size = (height, width)

        self.conv_proj = nn.Conv3d(3, embed_dim, PATCH_KERNEL, PATCH_STRIDE, PATCH_PADDING)  # type: ignore[arg-type]
        self.pos_encoding = PositionalEncoding(embed_dim, grid, absolute=version == 1)

        blocks = []
        table_grid = grid  # the reference sizes its position tables from floor-divided grids
        for spec, sd_prob in zip(specs, drop_path_rates(stochastic_depth_prob, len(specs))):
            block = MultiscaleBlock(
                spec, grid, table_grid, version, attention_dropout, sd_prob, pool_norm_eps, separate_qkv, rel_pos_index
            )
            blocks.append(block)
            grid = (block.out_grid[0], block.out_grid[1], block.out_grid[2])
            if spec.stride_q:
                table_grid = (
                    table_grid[0] // spec.stride_q[0],
                    table_grid[1] // spec.stride_q[1],
                    table_grid[2] // spec.stride_q[2],
                )
        self.blocks = nn.ModuleList(blocks)
        self.num_layers = len(blocks)
        self.norm = nn.LayerNorm(specs[-1].dim_out, eps=1e-6)
        self.head = nn.Sequential(nn.Dropout(dropout, inplace=True), nn.Linear(specs[-1].dim_out, num_classes))

        init_weights(self, truncated=True)
        for p in self.pos_encoding.parameters():
            nn.init.trunc_normal_(p, std=0.02)

    def check_input_grid(self, x: Tensor) -> None:
        t = self.num_frames
        h, w = self.crop_size
        if x.shape[2] != t or x.shape[3] != h or x.shape[4] != w:
            raise ValueError(
                f"{self._name()} was built for clips of exactly {t} frames of {h}x{w} pixels (its token grid "
                f"is fixed at construction); got {list(x.shape)}, expected (B, 3, {t}, {h}, {w}). Resize and "
                f"crop with weights.transforms(), or build the model with num_frames= and crop_size=."
            )

    def forward_features(self, x: Tensor) -> Tensor:
        """The normalised tokens ``(B, 1 + N, num_features)``, the class token first."""
        # Channels-last patches make the (B, T*H*W, C) token sequence a free view.
        x = self.conv_proj(x.contiguous(memory_format=torch.channels_last_3d))
        x = self.pos_encoding(x.flatten(2).transpose(1, 2))
        for block in self.blocks:
            x = block(x) if torch.jit.is_scripting() else self.checkpointed(block, x)
        return self.norm(x)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = x[:, 0]  # the class token
        if pre_logits:
            return x
        return self.head(x.clone() if self.training else x)  # its dropout is in place; x is the caller's

    def init_classifier(self, layer: nn.Module) -> None:
        nn.init.trunc_normal_(layer.weight, std=0.02)
        nn.init.zeros_(layer.bias)

    @torch.jit.unused
    def no_weight_decay(self) -> set[str]:
        """Parameters trained without weight decay: the class token, v1's position embeddings and v2's
        relative position tables. (PySlowFast's MViTv2 recipes decay them too: ZERO_DECAY_POS_CLS False.)"""
        return {
            name
            for name, _ in self.named_parameters()
            if name.startswith("pos_encoding.") or name.rsplit(".", 1)[-1] in ("rel_pos_h", "rel_pos_w", "rel_pos_t")
        }



# ----------------------------------------------------------------------------------------------------
# Weights

_TRANSFORMS = partial(
    VideoClassification, crop_size=(224, 224), resize_size=(256,), mean=(0.45, 0.45, 0.45), std=(0.225, 0.225, 0.225)
)
_DOCS = (
    "The weights were ported from the paper. The accuracies are estimated on video-level "
    "with parameters `frame_rate=7.5`, `clips_per_video=5`, and `clip_len=16`"
)
_CLIP: dict[str, Any] = {"num_frames": 16, "crop_size": 224}  # the token grid is built for this clip
_tv_weights = partial(
    tv_weights, transforms=_TRANSFORMS, docs=_DOCS, num_frames=16, frame_rate=7.5, num_clips=5,
    min_size=(224, 224), min_temporal_size=16, model_args=_CLIP,
)


class MViT_V1_B_Weights(WeightsEnum):
    KINETICS400_V1 = DEFAULT = _tv_weights(
        "mvit_v1_b-dbeb1030.pth", 36610672, 78.477, 93.582, 70.599, 139.764, recipe=MODEL_ZOO_URL
    )


class MViT_V2_S_Weights(WeightsEnum):
    KINETICS400_V1 = DEFAULT = _tv_weights(
        "mvit_v2_s-ae3be167.pth", 34537744, 80.757, 94.665, 64.224, 131.884,
        recipe="https://github.com/facebookresearch/SlowFast/blob/main/MODEL_ZOO.md",
    )


def _ptv_weights(
    file: str, num_frames: int, sampling_rate: int, num_params: int, acc1: float, acc5: float, gflops: float, docs: str = ""
) -> Weights:
    """A PyTorchVideo MViT-B checkpoint, evaluated with PySlowFast's MViT recipe (5 clips x 1 crop)."""
    clip = f"{num_frames}x{sampling_rate}"
    return Weights(
        url=f"{PTV_FILES_URL}/kinetics/{file}",
        transforms=ptv_transforms(224, resize_size=256),  # 1 crop: short side to TRAIN_JITTER_SCALES[0]
        meta=ptv_meta(
            num_params=num_params, acc1=acc1, acc5=acc5, gflops=gflops,
            num_frames=num_frames, sampling_rate=sampling_rate, num_clips=5, num_crops=1,
            min_size=(224, 224), min_temporal_size=num_frames,
            docs=(
                f"PyTorchVideo's MViT-B {clip} Kinetics-400 checkpoint. Accuracy is "
                f"PyTorchVideo's model zoo figure: PySlowFast evaluation with 5 clips x 1 centre crop of 224 "
                f"pixels ({num_frames} frames {sampling_rate} apart at 30 fps), short side resized to 256, "
                f"mean 0.45 / std 0.225 (5 clips as in the zoo's views column and the MViT paper; the config "
                f"leaves PySlowFast's default of 10)." + (f" {docs}" if docs else "")
            ),
            recipe=f"{PYSLOWFAST_CONFIGS_URL}/Kinetics/MVIT_B_{clip}_CONV.yaml",
            model_args={"num_frames": num_frames, "crop_size": 224},  # the token grid is built for this clip
        ),
        state_dict_adapter=from_pytorchvideo_state_dict,
    )


class MViT_B_16x4_Weights(WeightsEnum):
    KINETICS400_V1 = DEFAULT = _ptv_weights("MVIT_B_16x4.pyth", 16, 4, 36610672, acc1=78.85, acc5=93.85, gflops=70.80)


class MViT_B_32x3_Weights(WeightsEnum):
    KINETICS400_V1 = DEFAULT = _ptv_weights(
        "MVIT_B_32x3_f294077834.pyth", 32, 3, 36611440, acc1=80.30, acc5=94.69, gflops=170.37,
        docs=(
            "Of the recipe file only the test settings apply: its MVIT section describes a 24-block model, "
            "this checkpoint is the 16-block MViT-B of PyTorchVideo's hub configuration."
        ),
    )


def _pyslowfast_weights(
    file: str,
    config: str,
    clip: tuple[int, int, int],
    figures: tuple[int, float, float, float],
    docs: str,
    transforms: partial[VideoClassification],
) -> Weights:
    """A PySlowFast MViTv2 Kinetics-400 checkpoint: ``clip`` = (frames, crop size, crops), clips of that
    many frames 3 apart at 30 fps, 5 clips x that many crops (its README's views column and the config's
    TEST section); ``figures`` = (parameters, top-1, top-5, GFLOPs) as published."""
    num_frames, crop_size, num_crops = clip
    num_params, acc1, acc5, gflops = figures
    views = f"5 clips x {'1 centre crop' if num_crops == 1 else '3 crops'} of {crop_size} pixels"
    return Weights(
        url=f"{PYSLOWFAST_MVITV2_URL}/{file}",
        transforms=transforms,
        meta=ptv_meta(
            num_params=num_params, acc1=acc1, acc5=acc5, gflops=gflops,
            num_frames=num_frames, sampling_rate=3, num_clips=5, num_crops=num_crops,
            min_size=(crop_size, crop_size), min_temporal_size=num_frames,
            docs=(
                f"PySlowFast's {config} Kinetics-400 checkpoint (projects/mvitv2 model zoo). Accuracy is that "
                f"table's figure: PySlowFast evaluation with {views} ({num_frames} frames 3 apart at 30 fps, "
                f"clips spread evenly over the video, USE_OFFSET_SAMPLING). {docs}"
            ),
            recipe=f"{PYSLOWFAST_CONFIGS_URL}/Kinetics/{config}.yaml",
            model_args={"num_frames": num_frames, "crop_size": crop_size},  # the token grid is built for this clip
            license="Apache-2.0",  # PySlowFast's licence (its LICENSE file), under which it publishes its model zoo
        ),
        state_dict_adapter=from_pyslowfast_state_dict,
    )


class MViT_V2_B_Weights(WeightsEnum):
    KINETICS400_V1 = DEFAULT = _pyslowfast_weights(
        "MViTv2_B_32x3_k400_f304025456.pyth", "MVITv2_B_32x3", (32, 224, 1), (51230128, 82.9, 95.7, 225.0),
        docs="Short side resized to 256 (TRAIN_JITTER_SCALES[0], PySlowFast's rule for 1 crop), mean 0.45 / std 0.225.",
        transforms=ptv_transforms(224, resize_size=256),
    )


class MViT_V2_L_Weights(WeightsEnum):
    KINETICS400_V1 = DEFAULT = _pyslowfast_weights(
        "MViTv2_L_40x3_k400_f306903192.pyth", "MVITv2_L_40x3_test", (40, 312, 3), (213390112, 86.1, 97.0, 2828.0),
        docs=(
            "Short side resized to 312 (TEST_CROP_SIZE, PySlowFast's rule for 3 crops), ImageNet mean "
            "(0.485, 0.456, 0.406) / std (0.229, 0.224, 0.225) as the config sets them. The README lists "
            "217.6M parameters; the config builds 213.4M (its SSv2 sibling's 213.1M differs by the classifier "
            "alone), and this model has the config's."
        ),
        # PySlowFast normalises in float, then resizes and crops (as ptv_transforms), with ImageNet statistics here.
        transforms=partial(
            VideoClassification, crop_size=312, resize_size=312, mean=IMAGENET_MEAN, std=IMAGENET_STD,
            resize_uint8=False, crop_rounding="ceil",
        ),
    )


# ----------------------------------------------------------------------------------------------------
# Builders

# The published variants' architectures (MViT's defaults are v1-B's: depths (1, 2, 11, 2), 96 channels, 1 head).
_PTV_LAYOUT: dict[str, Any] = {"separate_qkv": True, "pool_norm_eps": 1e-5}  # PyTorchVideo's MViT-B files
_V2_B = {"version": 2, "depths": (2, 3, 16, 3), "num_frames": 32, "rel_pos_index": "pyslowfast"}
_V2_L = {**_V2_B, "depths": (2, 6, 36, 4), "embed_dim": 144, "num_heads": 2, "num_frames": 40, "crop_size": 312}


@register_model(MViT_V1_B_Weights)
def mvit_v1_b(*, weights: MViT_V1_B_Weights | str | None = None, progress: bool = True, **kwargs: Any) -> MViT:
    """MViT-B (16x4): 16 blocks, absolute position embeddings; 16x224x224 clips.

    Args:
        weights: :class:`MViT_V1_B_Weights` (a member, its name or ``"DEFAULT"``), a file's path, or ``None``.
        progress: show a progress bar while downloading.
        kwargs: passed to :class:`MViT`; ``num_frames`` and ``crop_size`` are fixed by weights.
    """
    return build_model(MViT, MViT_V1_B_Weights, weights, progress, kwargs, version=1, stochastic_depth_prob=0.2)


@register_model(MViT_V2_S_Weights)
def mvit_v2_s(*, weights: MViT_V2_S_Weights | str | None = None, progress: bool = True, **kwargs: Any) -> MViT:
    """MViTv2-S (16x4): 16 blocks, relative position bias and residual pooling; 16x224x224 clips.

    Args: as :func:`mvit_v1_b`, with :class:`MViT_V2_S_Weights`.
    """
    return build_model(MViT, MViT_V2_S_Weights, weights, progress, kwargs, version=2, stochastic_depth_prob=0.2)


@register_model(MViT_B_16x4_Weights)
def mvit_base_16x4(*, weights: MViT_B_16x4_Weights | str | None = None, progress: bool = True, **kwargs: Any) -> MViT:
    """PyTorchVideo's MViT-B 16x4 (its hub name): :func:`mvit_v1_b`'s network in PyTorchVideo's layout
    (``separate_qkv=True``) with its pooling norms (``pool_norm_eps=1e-5``); 16x224x224 clips, 16 frames
    4 apart at 30 fps.

    Args: as :func:`mvit_v1_b`, with :class:`MViT_B_16x4_Weights` (files in PyTorchVideo's format).
    """
    arch = {"version": 1, "stochastic_depth_prob": 0.2, **_PTV_LAYOUT}
    return build_model(MViT, MViT_B_16x4_Weights, weights, progress, kwargs, **arch)


@register_model(MViT_B_32x3_Weights)
def mvit_base_32x3(*, weights: MViT_B_32x3_Weights | str | None = None, progress: bool = True, **kwargs: Any) -> MViT:
    """PyTorchVideo's MViT-B 32x3: :func:`mvit_base_16x4` for 32x224x224 clips, 32 frames 3 apart at 30 fps;
    stochastic depth 0.3 as in PySlowFast's MVIT_B_32x3_CONV.yaml (0.2 in its 16x4 config).

    Args: as :func:`mvit_v1_b`, with :class:`MViT_B_32x3_Weights` (files in PyTorchVideo's format).
    """
    arch = {"version": 1, "num_frames": 32, "stochastic_depth_prob": 0.3, **_PTV_LAYOUT}
    return build_model(MViT, MViT_B_32x3_Weights, weights, progress, kwargs, **arch)


@register_model(MViT_V2_B_Weights)
def mvit_v2_b(*, weights: MViT_V2_B_Weights | str | None = None, progress: bool = True, **kwargs: Any) -> MViT:
    """PySlowFast's MViTv2-B 32x3: 24 blocks (2 + 3 + 16 + 3) from 96 channels and 1 head; 32x224x224 clips,
    32 frames 3 apart at 30 fps; stochastic depth 0.3 (PySlowFast's MVITv2_B_32x3.yaml).

    Args: as :func:`mvit_v1_b`, with :class:`MViT_V2_B_Weights` (files in PySlowFast's format).
    """
    return build_model(MViT, MViT_V2_B_Weights, weights, progress, kwargs, stochastic_depth_prob=0.3, **_V2_B)


@register_model(MViT_V2_L_Weights)
def mvit_v2_l(*, weights: MViT_V2_L_Weights | str | None = None, progress: bool = True, **kwargs: Any) -> MViT:
    """PySlowFast's MViTv2-L 40x3: 48 blocks (2 + 6 + 36 + 4) from 144 channels and 2 heads; 40x312x312
    clips, 40 frames 3 apart at 30 fps; stochastic depth 0.75 (PySlowFast's MVITv2_L_40x3_test.yaml).

    Args: as :func:`mvit_v1_b`, with :class:`MViT_V2_L_Weights` (files in PySlowFast's format).
    """
    return build_model(MViT, MViT_V2_L_Weights, weights, progress, kwargs, stochastic_depth_prob=0.75, **_V2_L)
