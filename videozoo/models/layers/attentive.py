"""Attentive pooling: learned query tokens that cross-attend to a network's tokens (V-JEPA 2's probes)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from videozoo.models.layers.blocks import (
    Mlp,
    TransformerBlock,
    merge_heads,
    split_heads,
)
from videozoo.models.layers.kernels import linear

__all__ = ["AttentivePooler", "CrossAttention", "CrossAttentionBlock"]


class CrossAttention(nn.Module):
    """Learned queries attend to tokens: query, key and value projections and no output projection
    (the publisher's probe). ``(B, Q, C), (B, N, C) -> (B, Q, C)``."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}.")
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)

    def forward(self, queries: Tensor, x: Tensor) -> Tensor:
        b, n, c = x.shape
        heads = self.num_heads
        q = split_heads(linear(queries, self.q.weight, self.q.bias), heads)
        k, v = linear(x, self.kv.weight, self.kv.bias).reshape(b, n, 2, c).unbind(2)  # (B, N, C) views
        y = F.scaled_dot_product_attention(q, split_heads(k, heads), split_heads(v, heads))
        return merge_heads(y)


class CrossAttentionBlock(nn.Module):
    """``q + attn(q, norm1(x))``, then ``+ mlp(norm2(.))``: the queries are not normalised, the tokens are."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, norm_eps: float = 1e-6) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = CrossAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, queries: Tensor, x: Tensor) -> Tensor:
        queries = queries + self.attn(queries, self.norm1(x))
        return queries + self.mlp(self.norm2(queries))


class AttentivePooler(nn.Module):
    """The attentive probe's pooling: ``depth`` self-attention blocks over the tokens, then one learned
    query token cross-attends to them. ``(B, N, C) -> (B, C)``."""

    def __init__(self, dim: int, num_heads: int, depth: int, mlp_ratio: float = 4.0, norm_eps: float = 1e-6) -> None:
        super().__init__()
        self.query_tokens = nn.Parameter(torch.zeros(1, 1, dim))
        self.blocks = nn.ModuleList(
            [TransformerBlock(dim, num_heads, mlp_ratio, qkv_bias="qkv", norm_eps=norm_eps) for _ in range(depth)]
        )
        self.cross = CrossAttentionBlock(dim, num_heads, mlp_ratio, norm_eps)

    def forward(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            x = block(x)
        queries = self.query_tokens.expand(x.shape[0], -1, -1)
        return self.cross(queries, x).squeeze(1)

    def init_weights(self, std: float = 0.02) -> None:
        """transformers' initialisation of the pooler: truncated normal ``std`` (biases 0, norms 1/0),
        the residual outputs of self-attention block ``i`` (1-based) scaled by ``1 / sqrt(i)`` and the
        cross-attention block's MLP output by ``1 / sqrt(depth + 1)``."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=std)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.trunc_normal_(self.query_tokens, std=std)
        for i, block in enumerate(self.blocks, start=1):
            assert isinstance(block, TransformerBlock)
            nn.init.trunc_normal_(block.attn.proj.weight, std=std / math.sqrt(i))
            nn.init.trunc_normal_(block.mlp.fc2.weight, std=std / math.sqrt(i))
        nn.init.trunc_normal_(self.cross.mlp.fc2.weight, std=std / math.sqrt(len(self.blocks) + 1))
