r"""Write DETR's parity fixtures (tests/parity/fixtures/detr/) from the publisher's code. Side environment only:

    DETR_REPO=/path/to/facebookresearch/detr PYTHONPATH=$PWD/tests:$PWD ~/ref-env/bin/python tests/parity/detr_fixtures.py

``DETR_REPO`` is a checkout of github.com/facebookresearch/detr (its ``models/``, ``util/`` and ``datasets/``
are imported; torchvision comes from the side environment). Its ``models/detr.py`` imports the Hungarian
matcher, which needs scipy for training only: a stand-in module is registered instead.

* ``tiny.pt``: the reference built as hubconf's ``_make_detr`` builds it (``Backbone("resnet50")`` with frozen
  batch norm, ``PositionEmbeddingSine(d/2, normalize=True)``, ``Transformer(return_intermediate_dec=True)``,
  ``DETR(num_classes=91)``) but with a small transformer (d=32, 4 heads, 2+2 layers, MLP 64, 10 queries),
  filled by ``common.fill_state_dict``; the class bias of "person" raised by 3 (stored) so that persons
  appear. Stored: keys and shapes in the publisher's layout, the raw outputs (``pred_logits``,
  ``pred_boxes``) on a seeded image batch, and the end-to-end person boxes of frames in [0, 1] through
  the publisher's evaluation transforms (``datasets.transforms.resize`` with a small size and max size,
  torchvision's tensor resize, ImageNet normalisation) and ``PostProcess`` (label = most probable class,
  boxes scaled to the frame), persons kept at two thresholds, clipped to the frame and sorted.
* ``published.pt``: the published architectures' key names, shapes and parameter counts (R50 and R101).
"""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, os.environ["DETR_REPO"])

from parity.common import FIXTURES, fill_state_dict, make_input, save_fixture

_scipy = types.ModuleType("scipy")
_scipy.optimize = types.ModuleType("scipy.optimize")  # type: ignore[attr-defined]
_scipy.optimize.linear_sum_assignment = None  # type: ignore[attr-defined]
sys.modules.setdefault("scipy", _scipy)
sys.modules.setdefault("scipy.optimize", _scipy.optimize)  # type: ignore[attr-defined]

import importlib.util

import torchvision.transforms.functional as TF
from PIL import Image

# datasets/__init__.py needs pycocotools (COCO loading): read its transforms module alone.
_spec = importlib.util.spec_from_file_location("detr_transforms", Path(os.environ["DETR_REPO"]) / "datasets" / "transforms.py")
DT = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
_spec.loader.exec_module(DT)  # type: ignore[union-attr]
import models.backbone as detr_backbone
from models.backbone import Backbone, Joiner
from models.detr import DETR, PostProcess
from models.position_encoding import PositionEmbeddingSine
from models.transformer import Transformer

detr_backbone.is_main_process = lambda: False  # no ImageNet download: the fill replaces every tensor

OUT = FIXTURES / "detr"
TINY = {"hidden_dim": 32, "num_heads": 4, "num_encoder_layers": 2, "num_decoder_layers": 2, "mlp_dim": 64, "num_queries": 10}
PERSON_BIAS = 2.9
QUERY_SCALE = 20.0


def reference(backbone: str, hidden_dim: int = 256, num_heads: int = 8, num_encoder_layers: int = 6,
              num_decoder_layers: int = 6, mlp_dim: int = 2048, num_queries: int = 100) -> DETR:  # fmt: skip
    """hubconf's ``_make_detr`` with the transformer's sizes as arguments."""
    body = Backbone(backbone, train_backbone=True, return_interm_layers=False, dilation=False)
    joiner = Joiner(body, PositionEmbeddingSine(hidden_dim // 2, normalize=True))
    joiner.num_channels = body.num_channels
    transformer = Transformer(
        d_model=hidden_dim, nhead=num_heads, num_encoder_layers=num_encoder_layers,
        num_decoder_layers=num_decoder_layers, dim_feedforward=mlp_dim, return_intermediate_dec=True,
    )  # fmt: skip
    return DETR(joiner, transformer, num_classes=91, num_queries=num_queries).eval()


def resized_size(height: int, width: int, size: int, max_size: int) -> list[int]:
    """The publisher's evaluation resize (``datasets.transforms.resize``), read off a PIL image of that size."""
    image, _ = DT.resize(Image.new("RGB", (width, height)), None, size, max_size)
    return [image.height, image.width]


def persons(model: DETR, frames: torch.Tensor, size: int, max_size: int, thresholds: list[float]) -> dict:
    height, width = frames.shape[-2:]
    new_size = resized_size(height, width, size, max_size)
    x = TF.normalize(TF.resize(frames, new_size), [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    with torch.inference_mode():
        out = model(x)
        results = PostProcess()(out, torch.tensor([[height, width]] * len(frames)))
    per_threshold = []
    for threshold in thresholds:
        frame_results = []
        for r in results:
            keep = (r["labels"] == 1) & (r["scores"] >= threshold)
            boxes, scores = r["boxes"][keep], r["scores"][keep]
            scale = torch.tensor([width, height, width, height], dtype=torch.float32)
            boxes = torch.minimum(boxes.clamp(min=0), scale)
            order = torch.argsort(scores, descending=True, stable=True)
            frame_results.append(torch.cat((boxes[order], scores[order, None]), dim=1))
        per_threshold.append(frame_results)
    return {"resized": new_size, "persons": per_threshold}


def tiny() -> dict:
    torch.manual_seed(0)
    model = reference("resnet50", **TINY)
    sd = model.state_dict()
    keys, shapes = list(sd), [list(t.shape) for t in sd.values()]
    dtypes = [str(t.dtype).split(".")[1] for t in sd.values()]
    filled = fill_state_dict(keys, shapes, dtypes)
    overrides = {"class_embed.bias": filled["class_embed.bias"].clone()}
    overrides["class_embed.bias"][1] += PERSON_BIAS
    overrides["query_embed.weight"] = filled["query_embed.weight"] * QUERY_SCALE  # queries that differ
    model.load_state_dict(filled | overrides)
    x = make_input((2, 3, 64, 96), seed=0)
    with torch.inference_mode():
        out = model(x)
    frames = torch.rand((2, 3, 40, 60), generator=torch.Generator().manual_seed(3))
    thresholds = [0.0, 0.11]
    end_to_end = persons(model, frames, size=48, max_size=64, thresholds=thresholds)
    # frames larger than the resize (as video frames are at 800 px): the antialiased downsampling
    large = torch.rand((2, 3, 90, 130), generator=torch.Generator().manual_seed(4))
    downsampled = persons(model, large, size=48, max_size=64, thresholds=thresholds)
    print("persons per frame:", [[len(f) for f in t] for t in end_to_end["persons"]], "resized", end_to_end["resized"])
    print("large frames:", [[len(f) for f in t] for t in downsampled["persons"]], "resized", downsampled["resized"])
    return {
        "kwargs": TINY,
        "keys": keys,
        "shapes": shapes,
        "dtypes": dtypes,
        "overrides": overrides,
        "input_shape": [2, 3, 64, 96],
        "input_seed": 0,
        "pred_logits": out["pred_logits"].float(),
        "pred_boxes": out["pred_boxes"].float(),
        "frames_shape": [2, 3, 40, 60],
        "frames_seed": 3,
        "resize_size": 48,
        "max_size": 64,
        "thresholds": thresholds,
        **end_to_end,
        "large_frames_shape": [2, 3, 90, 130],
        "large_frames_seed": 4,
        "large_resized": downsampled["resized"],
        "large_persons": downsampled["persons"],
        "reference": f"facebookresearch/detr, torch {torch.__version__}",
    }


def published() -> dict:
    out = {}
    for name, backbone in (("detr_resnet50", "resnet50"), ("detr_resnet101", "resnet101")):
        sd = reference(backbone).state_dict()
        out[name] = {
            "keys": list(sd),
            "shapes": [list(t.shape) for t in sd.values()],
            "num_params": sum(p.numel() for p in reference(backbone).parameters()),
        }
        print(name, out[name]["num_params"], "parameters")
    return out


if __name__ == "__main__":
    save_fixture(OUT / "tiny.pt", tiny())
    save_fixture(OUT / "published.pt", published())
    for path in sorted(OUT.glob("*.pt")):
        print(path, path.stat().st_size, "bytes")
