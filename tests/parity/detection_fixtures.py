"""Parity fixtures of the AVA action detectors: PyTorchVideo 0.1.5's ``slow_r50_detection`` and
``slowfast_r50_detection`` (``create_resnet_with_roi_head`` / ``create_slowfast_with_roi_head``) with
random fills, on clips with several boxes per clip, boxes touching and crossing the border and a box
smaller than a map pixel. Run in the side environment:

    ~/ref-env/bin/python tests/parity/detection_fixtures.py

It writes ``fixtures/action_detection/<model>.pt`` (keys, shapes, the boxes, the reference logits:
the reference is built with ``head_activation=None``; its sigmoid output is checked here too), replays
them against videozoo, and checks our ``roi_align`` against ``torchvision.ops.roi_align``. The published
clip is used for Slow (4 frames); SlowFast's head windows are set for an 8-frame Fast clip (2 Slow
frames), where the published ones span 32 and 8 frames: the window covers the whole map either way.
"""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from parity.common import (
    FIXTURES,
    fill_state_dict,
    make_input,
    relative_error,
    save_fixture,
)

DETECTION_FIXTURES = FIXTURES / "action_detection"


def boxes_for(height: int, width: int) -> torch.Tensor:
    """Boxes for a batch of two clips: whole frame, borders, crossing the border, tiny, ordinary."""
    return torch.tensor(
        [
            [0, 0.0, 0.0, width, height],
            [0, 10.5, 6.25, 50.0, 60.0],
            [0, width - 20.0, 0.0, width, 30.0],
            [1, -12.0, -8.0, 30.0, height + 5.0],
            [1, 33.3, 20.1, 34.0, 20.9],
            [1, 0.0, height - 16.0, 24.0, height],
        ]
    )


def cases() -> dict[str, dict]:
    from pytorchvideo.models.hub import resnet as hub_resnet
    from pytorchvideo.models.hub import slowfast as hub_slowfast

    return {
        "slow_r50_detection": {
            "factory": partial(hub_resnet.slow_r50_detection, pretrained=False),
            "input_shape": (2, 3, 4, 64, 96),
            "kwargs": {},
            "alpha": None,
        },
        "slowfast_r50_detection": {
            "factory": partial(
                hub_slowfast.slowfast_r50_detection, pretrained=False, head_pool_kernel_sizes=((2, 1, 1), (8, 1, 1))
            ),
            "input_shape": (2, 3, 8, 64, 96),
            "kwargs": {"num_frames": 8},
            "alpha": 4,
        },
    }


def run_reference(model, x: torch.Tensor, boxes: torch.Tensor, alpha: int | None) -> torch.Tensor:
    with torch.inference_mode():
        if alpha is None:
            return model(x, boxes)
        t = x.shape[2]
        slow = torch.index_select(x, 2, torch.linspace(0, t - 1, t // alpha).long())
        return model([slow, x], boxes)


def main() -> None:
    from torchvision.ops import roi_align as tv_roi_align

    import videozoo
    from parity.replay import build_from_fixture
    from videozoo.models.layers import roi_align

    torch.manual_seed(0)
    features = torch.randn(2, 8, 13, 17)
    boxes = boxes_for(13 * 16, 17 * 16)
    for sampling_ratio in (0, 2):
        for aligned in (False, True):
            err = (roi_align(features, boxes, [7, 7], 1 / 16, sampling_ratio, aligned)
                   - tv_roi_align(features, boxes, (7, 7), 1 / 16, sampling_ratio, aligned)).abs().max()
            print(f"roi_align sampling_ratio={sampling_ratio} aligned={aligned}: max abs diff {err:.2e}")

    for name, case in cases().items():
        ref = case["factory"](head_activation=None).eval()
        sd = ref.state_dict()
        keys, shapes = list(sd), [list(t.shape) for t in sd.values()]
        dtypes = [str(t.dtype).split(".")[1] for t in sd.values()]
        filled = fill_state_dict(keys, shapes, dtypes)
        ref.load_state_dict(filled | {k: v for k, v in sd.items() if not v.is_floating_point()})
        x = make_input(case["input_shape"], seed=0)
        b = boxes_for(x.shape[3], x.shape[4])
        out = run_reference(ref, x, b, case["alpha"]).float()
        fixture = {
            "model": name, "kwargs": case["kwargs"], "keys": keys, "shapes": shapes, "dtypes": dtypes,
            "wrap": "model_state", "compare": "logits", "input_shape": list(x.shape), "input_seed": 0,
            "boxes": b, "output": out, "reference": f"pytorchvideo 0.1.5, torch {torch.__version__}",
        }  # fmt: skip
        save_fixture(DETECTION_FIXTURES / f"{name}.pt", fixture)
        ours = build_from_fixture(fixture)
        with torch.inference_mode():
            mine = ours(x, b)
        sigmoid_ref = case["factory"]().eval()
        sigmoid_ref.load_state_dict(ref.state_dict())
        probs = run_reference(sigmoid_ref, x, b, case["alpha"])
        print(
            f"{name}: {len(keys)} tensors, {(DETECTION_FIXTURES / f'{name}.pt').stat().st_size / 1e3:.0f} kB; "
            f"rel err logits {relative_error(mine, out):.2e}, sigmoid {relative_error(mine.sigmoid(), probs):.2e}; "
            f"parameters {sum(p.numel() for p in ref.parameters())}"
        )
    del videozoo


if __name__ == "__main__":
    main()
