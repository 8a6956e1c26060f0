"""The shared CPU kernels of models/layers/kernels.py against the plain PyTorch operators they stand for."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F


@pytest.mark.parametrize("mask_shape", [None, (300, 300), (1, 3, 300, 300), (2, 3, 1, 300)])
def test_attention_in_blocks_of_queries_is_sdpa(mask_shape):
    """bf16 on CPU takes the blocked path (blocks of 128 queries here, the last one shorter); fp32 is SDPA itself."""
    from videozoo.models.layers import attention

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 300, 16, generator=g) for _ in range(3))
    mask = None if mask_shape is None else torch.randn(*mask_shape, generator=g)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert torch.equal(attention(q, k, v, mask), expected)
    half = [t.bfloat16() for t in (q, k, v)]
    with torch.inference_mode():
        got = attention(*half, None if mask is None else mask.bfloat16(), block=128)
    reference = F.scaled_dot_product_attention(*[t.float() for t in half], attn_mask=mask)
    assert got.dtype == torch.bfloat16 and got.shape == expected.shape
    torch.testing.assert_close(got.float(), reference, atol=3e-2, rtol=0)
