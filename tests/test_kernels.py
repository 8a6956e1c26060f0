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


@pytest.mark.parametrize("mask_shape", [(40, 1, 392, 392), (1, 2, 392, 392)])
def test_attention_in_blocks_of_windows_is_sdpa(mask_shape):
    """Many windows of 392 tokens (Swin3D's shape): the bf16 path takes the windows a few at a time (6 of 40
    here, the last group shorter), with a mask per window or one for all."""
    from videozoo.models.layers import attention

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(40, 2, 392, 8, generator=g).bfloat16() for _ in range(3))
    mask = torch.randn(*mask_shape, generator=g).bfloat16()
    with torch.inference_mode():
        got = attention(q, k, v, mask)
    reference = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=mask.float())
    assert got.dtype == torch.bfloat16 and got.shape == reference.shape
    torch.testing.assert_close(got.float(), reference, atol=3e-2, rtol=0)


def test_folded_filters_follow_every_change_of_the_parameters():
    """conv_bn_folded keeps the folded filters between calls; loading, an optimizer step, BatchNorm's running
    statistics in training, a new tensor and ``.to()`` all fold again, so it always equals ``bn(conv(x))``."""
    from videozoo.models.layers import conv_bn_folded

    torch.manual_seed(0)
    conv, bn = torch.nn.Conv3d(4, 8, (3, 3, 3), padding=1, bias=False), torch.nn.BatchNorm3d(8)
    x = torch.randn(2, 4, 3, 6, 6).contiguous(memory_format=torch.channels_last_3d)

    def check(mode) -> None:
        bn.eval()
        with torch.no_grad():
            expected = bn(conv(x))
        with mode():
            got = conv_bn_folded(x, conv, bn)
            again = conv_bn_folded(x, conv, bn)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
        assert torch.equal(again, got)

    for mode in (torch.inference_mode, torch.no_grad):
        check(mode)
        with torch.no_grad():
            bn.running_var.mul_(3.0)  # in place
        check(mode)
        other = torch.nn.Conv3d(4, 8, (3, 3, 3), padding=1, bias=False)
        conv.load_state_dict(other.state_dict())  # loading copies into the same tensors
        check(mode)
        bn.train()  # a training step: BatchNorm's statistics and the filters change in place
        optimizer = torch.optim.SGD([*conv.parameters(), *bn.parameters()], lr=0.5)
        bn(conv(x)).square().mean().backward()
        optimizer.step()
        check(mode)
        bn.weight = torch.nn.Parameter(torch.rand(8))  # a new tensor
        check(mode)
    conv.double(), bn.double()
    x = x.double()
    check(torch.inference_mode)
    # where autograd records, the folded filters are computed in the graph (fine-tuning with frozen statistics)
    bn.eval()
    conv.weight.grad = bn.weight.grad = None
    conv_bn_folded(x, conv, bn).sum().backward()
    assert conv.weight.grad is not None and bn.weight.grad is not None


def test_position_mean_is_the_mean_over_positions():
    """bf16 channels-last clips take the product with ones; every other clip is ``mean((2, 3, 4))`` itself."""
    from videozoo.models.layers import position_mean

    x = torch.randn(2, 6, 3, 5, 7, generator=torch.Generator().manual_seed(0))
    assert torch.equal(position_mean(x), x.mean((2, 3, 4)))
    half = x.bfloat16().contiguous(memory_format=torch.channels_last_3d)
    with torch.inference_mode():
        got = position_mean(half)
    assert got.dtype == torch.bfloat16 and got.shape == (2, 6)
    torch.testing.assert_close(got.float(), half.float().mean((2, 3, 4)), atol=1e-2, rtol=1e-2)
