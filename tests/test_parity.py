"""Replay the reference fixtures (tests/parity/fixtures, written by make_fixtures.py) against videozoo."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import videozoo
from parity.common import FIXTURES, TOLERANCE, fixture_weights, load_fixture, make_input, relative_error
from parity.replay import build_from_fixture, model_kwargs, videozoo_output
from videozoo.video.transforms import VideoClassification

MODEL_FIXTURES = sorted(p for p in FIXTURES.glob("*.pt") if p.stem != "transforms")


def test_every_registered_model_has_a_fixture() -> None:
    covered = {load_fixture(p)["model"] for p in MODEL_FIXTURES}
    assert set(videozoo.list_models(task="classification")) <= covered  # the others: their own test files


@pytest.mark.parametrize("path", MODEL_FIXTURES, ids=lambda p: p.stem)
def test_model_matches_reference(path: Path) -> None:
    """Key names and shapes, then logits in fp32 (within 1e-4) and in bf16 (:func:`check_bf16`)."""
    fixture = load_fixture(path)
    assert path.stat().st_size < 1_000_000
    name = fixture["model"]
    model = videozoo.get_model(name, **model_kwargs(fixture))
    member = videozoo.get_model_weights(name)[fixture_weights(fixture)]
    own = model.state_dict()
    if member.state_dict_adapter is None:  # published files use our key names and shapes exactly
        assert list(own) == fixture["keys"]
        assert [list(t.shape) for t in own.values()] == fixture["shapes"]
    else:  # every tensor of the published layout is used, none is missing
        published = {k: torch.zeros(s) for k, s in zip(fixture["keys"], fixture["shapes"])}
        adapted = member.adapt_state_dict({fixture["wrap"]: published} if fixture["wrap"] else published)
        # (counted in elements: an adapter may fuse tensors, e.g. Hugging Face's query/key/value into qkv)
        assert sum(t.numel() for t in adapted.values()) == sum(t.numel() for t in published.values())
        assert sorted(adapted) == sorted(own)
        assert all(tuple(adapted[k].shape) == tuple(own[k].shape) for k in own)
    for key, checksum in fixture["int_checksums"].items():
        if key in own:
            assert int(own[key].long().sum()) == checksum, key

    model = build_from_fixture(fixture)
    x = make_input(fixture["input_shape"], seed=fixture["input_seed"])
    ours = videozoo_output(model, fixture, x)
    assert ours.shape == fixture["output"].shape
    assert relative_error(ours, fixture["output"]) <= TOLERANCE
    check_bf16(model, fixture, x)


# bf16 on the parity inputs, both as the CLI and predict run it (fp32 weights under autocast) and with the
# weights themselves cast (model.to(torch.bfloat16)). The parity fills are random weights whose logits
# sit close together, so agreement is asserted as an error bound relative to the largest fp32 logit,
# and as top-1 agreement on every sample whose fp32 margin (first minus second logit) is wider than
# twice that bound. (Measured on these fixtures: errors 0.001-0.035.)
BF16_TOLERANCE = 0.05


def check_bf16(model: torch.nn.Module, fixture: dict, x: torch.Tensor) -> None:
    reference = fixture["output"].float()
    top2 = reference.topk(2, dim=-1).values
    decisive = (top2[:, 0] - top2[:, 1]) / reference.abs().max() > 2 * BF16_TOLERANCE
    with torch.autocast("cpu", dtype=torch.bfloat16):
        autocast = videozoo_output(model, fixture, x)
    cast = videozoo_output(model.to(torch.bfloat16), fixture, x.bfloat16())
    for low in (autocast, cast):
        assert TOLERANCE < relative_error(low, reference) <= BF16_TOLERANCE  # (above fp32's bound: bf16 ran)
        assert torch.equal(low.argmax(-1)[decisive], reference.argmax(-1)[decisive])


TRANSFORM_CASES = load_fixture(FIXTURES / "transforms.pt")["cases"]


@pytest.mark.parametrize("case", TRANSFORM_CASES, ids=lambda c: f"{c['shape']}-{c['resize_size']}-{'float' if c['float'] else 'uint8'}")
def test_preset_matches_torchvision(case: dict) -> None:
    g = torch.Generator().manual_seed(case["seed"])
    video = torch.randint(0, 256, case["shape"], dtype=torch.uint8, generator=g)
    if case["float"]:
        video = video.float() / 255
    out = VideoClassification(crop_size=case["crop_size"], resize_size=case["resize_size"])(video)
    assert out.dtype == torch.float32
    assert out.shape == case["output"].shape
    torch.testing.assert_close(out, case["output"], rtol=0, atol=1e-5)
