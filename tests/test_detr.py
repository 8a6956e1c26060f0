"""DETR, the person detector: parity with facebookresearch/detr (fixtures from tests/parity/detr_fixtures.py),
its loading through the one loading path, the person-detector interface and its input checks, the box helpers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from parity.common import (
    FIXTURES,
    TOLERANCE,
    fill_state_dict,
    load_fixture,
    make_input,
    relative_error,
)

import videozoo
from videozoo import CheckpointError
from videozoo.models.detr import (
    COCO_CATEGORIES,
    DETR,
    DETR_ResNet50_Weights,
    DETR_ResNet101_Weights,
)
from videozoo.models.layers import box_iou, nms

TINY = load_fixture(FIXTURES / "detr" / "tiny.pt")
PUBLISHED = load_fixture(FIXTURES / "detr" / "published.pt")


def publisher_file(path: Path, extra: dict | None = None) -> Path:
    """The tiny reference's weights in the publisher's format: ``{"model": state_dict}``."""
    state = fill_state_dict(TINY["keys"], TINY["shapes"], TINY["dtypes"]) | TINY["overrides"]
    torch.save({"model": state, **(extra or {})}, path)
    return path


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return publisher_file(tmp_path_factory.mktemp("detr") / "detr-r50-e632da11.pth")


@pytest.fixture(scope="module")
def model(tiny_file: Path) -> DETR:
    """The tiny reference, loaded from its publisher-format file by the builder (the one loading path)."""
    torch.manual_seed(0)
    return videozoo.detr_resnet50(weights=tiny_file, **TINY["kwargs"]).eval()


# -- parity ------------------------------------------------------------------------------------------


def test_outputs_match_the_reference(model: DETR) -> None:
    x = make_input(TINY["input_shape"], seed=TINY["input_seed"])
    with torch.inference_mode():
        logits, boxes = model(x)
    assert logits.shape == TINY["pred_logits"].shape == (2, 10, 92)
    assert relative_error(logits, TINY["pred_logits"]) <= TOLERANCE
    assert relative_error(boxes, TINY["pred_boxes"]) <= TOLERANCE


@pytest.mark.parametrize("case", ["", "large_"], ids=["upsampled", "downsampled"])
def test_person_boxes_match_the_reference_pipeline(model: DETR, case: str) -> None:
    """Frames in [0, 1] through the publisher's evaluation resize (small sizes here; frames smaller and
    larger than it), normalisation, network and post-processing: the same persons, boxes and scores, at two
    thresholds."""
    frames = torch.rand(TINY[f"{case}frames_shape"], generator=torch.Generator().manual_seed(TINY[f"{case}frames_seed"]))
    model.resize_size, model.max_size = TINY["resize_size"], TINY["max_size"]
    try:
        assert list(model.resized_size(*frames.shape[-2:])) == TINY[f"{case}resized"]
        for threshold, expected in zip(TINY["thresholds"], TINY[f"{case}persons"]):
            ours = model.detect_persons(frames, score_threshold=threshold)
            assert [len(r) for r in ours] == [len(r) for r in expected]
            for got, want in zip(ours, expected):
                assert torch.allclose(got, want, atol=1e-4 * max(1.0, float(want.abs().max())), rtol=0)
        low, high = ([len(r) for r in persons] for persons in TINY[f"{case}persons"])
        assert low != high and min(high) > 0  # the threshold bites, and persons remain
    finally:
        model.resize_size, model.max_size = 800, 1333


@pytest.mark.parametrize(("name", "enum"), [("detr_resnet50", DETR_ResNet50_Weights), ("detr_resnet101", DETR_ResNet101_Weights)])
def test_published_architecture_has_the_published_keys_and_size(name: str, enum: type) -> None:
    with torch.device("meta"):
        model = videozoo.get_model(name)
    published = PUBLISHED[name]
    adapted = enum.DEFAULT.adapt_state_dict({"model": {k: torch.empty(s, device="meta") for k, s in zip(published["keys"], published["shapes"])}})
    own = model.state_dict()
    assert sorted(adapted) == sorted(own)
    assert all(tuple(adapted[k].shape) == tuple(own[k].shape) for k in own)
    num_params = sum(p.numel() for p in model.parameters())
    assert num_params == published["num_params"] == enum.DEFAULT.meta["num_params"]


# -- weights and loading -----------------------------------------------------------------------------


def test_default_weights_load_from_the_cache(tiny_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``get_model(..., weights="DEFAULT")`` finds the publisher's file in the cache (offline), as downloaded."""
    monkeypatch.setenv("VIDEOZOO_HOME", str(tmp_path))
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / DETR_ResNet50_Weights.DEFAULT.file_name).write_bytes(tiny_file.read_bytes())
    model = videozoo.get_model("detr_resnet50", weights="DEFAULT", **TINY["kwargs"]).eval()
    x = make_input(TINY["input_shape"], seed=TINY["input_seed"])
    with torch.inference_mode():
        logits, _ = model(x)
    assert relative_error(logits, TINY["pred_logits"]) <= TOLERANCE


def test_a_file_with_training_state_and_bn_counters_loads(tmp_path: Path) -> None:
    """The publisher's training checkpoints also hold the optimizer, the epoch and the arguments."""
    path = publisher_file(tmp_path / "checkpoint.pth", {"epoch": 3, "optimizer": {"state": {}}})
    state = torch.load(path, weights_only=True)
    state["model"]["backbone.0.body.bn1.num_batches_tracked"] = torch.tensor(0)
    torch.save(state, path)
    model = videozoo.detr_resnet50(weights=path, **TINY["kwargs"])
    assert isinstance(model, DETR)


def test_wrong_files_are_refused(tmp_path: Path) -> None:
    flat = tmp_path / "flat.pth"
    torch.save(fill_state_dict(TINY["keys"], TINY["shapes"], TINY["dtypes"]), flat)
    with pytest.raises(CheckpointError, match="'model'"):
        videozoo.detr_resnet50(weights=flat, **TINY["kwargs"])
    wider = tmp_path / "wider.pth"
    publisher_file(wider)
    with pytest.raises(CheckpointError, match="wrong shape"):
        videozoo.detr_resnet50(weights=wider, **{**TINY["kwargs"], "hidden_dim": 64})


def test_weights_meta() -> None:
    for enum, ap in ((DETR_ResNet50_Weights, 42.0), (DETR_ResNet101_Weights, 43.5)):
        meta = enum.DEFAULT.meta
        assert meta["_metrics"] == {"COCO-val2017": {"box_map": ap}}
        assert meta["license"] == "Apache-2.0" and enum.DEFAULT.url.startswith("https://dl.fbaipublicfiles.com/detr/")
        assert enum.DEFAULT.categories == list(COCO_CATEGORIES)
    assert len(COCO_CATEGORIES) == 91 and COCO_CATEGORIES[1] == "person" and COCO_CATEGORIES.count("N/A") == 11
    assert videozoo.list_models(task="person_detection") == ["detr_resnet101", "detr_resnet50"]
    assert videozoo.get_model_task("detr_resnet50") == "person_detection"
    with pytest.raises(ValueError, match="num_classes=80 conflicts"):
        videozoo.detr_resnet50(weights="DEFAULT", num_classes=80)


# -- the person-detector interface -------------------------------------------------------------------


def test_detect_persons_contract(model: DETR) -> None:
    """One (K, 5) tensor per frame at the frames' own size, boxes inside the frame, sorted, above the threshold."""
    frames = torch.rand(3, 3, 30, 50, generator=torch.Generator().manual_seed(5))
    model.resize_size = 40
    try:
        default = model.detect_persons(frames)
        low = model.detect_persons(frames, score_threshold=0.0)
    finally:
        model.resize_size = 800
    assert len(default) == len(low) == 3
    assert model.default_score_threshold == 0.7
    for boxes in low:
        assert boxes.dtype == torch.float32 and boxes.dim() == 2 and boxes.shape[1] == 5
        assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= 50).all() and (boxes[:, 1] >= 0).all() and (boxes[:, 3] <= 30).all()
        assert (boxes[:, 2] >= boxes[:, 0]).all() and (boxes[:, 3] >= boxes[:, 1]).all()
        assert torch.equal(boxes[:, 4], boxes[:, 4].sort(descending=True).values)
    assert sum(len(b) for b in low) > 0
    assert all((b[:, 4] >= 0.7).all() for b in default)
    assert model.detect_persons(frames[:0]) == []


def fixture_frames() -> torch.Tensor:
    """The parity fixture's frames, on which the tiny reference finds persons (at the fixture's resize)."""
    return torch.rand(TINY["frames_shape"], generator=torch.Generator().manual_seed(TINY["frames_seed"]))


def test_detect_persons_runs_without_dropout_in_any_mode(model: DETR) -> None:
    frames = fixture_frames()
    model.resize_size, model.max_size = TINY["resize_size"], TINY["max_size"]
    try:
        evaluated = model.detect_persons(frames, score_threshold=0.0)[0]
        model.train()
        torch.manual_seed(1)
        in_training_mode = model.detect_persons(frames, score_threshold=0.0)[0]
        assert model.training
    finally:
        model.eval()
        model.resize_size, model.max_size = 800, 1333
    assert torch.equal(evaluated, in_training_mode) and len(evaluated) > 0


def test_detect_persons_with_nms(model: DETR) -> None:
    frames = fixture_frames()[:1]
    model.resize_size, model.max_size = TINY["resize_size"], TINY["max_size"]
    try:
        plain = model.detect_persons(frames, score_threshold=0.0)[0]
        model.nms_iou_threshold = 0.9
        suppressed = model.detect_persons(frames, score_threshold=0.0)[0]
    finally:
        model.resize_size, model.max_size, model.nms_iou_threshold = 800, 1333, None
    assert torch.equal(suppressed, plain[nms(plain[:, :4], plain[:, 4], 0.9)])
    assert 1 < len(suppressed) < len(plain)  # the tiny reference's boxes overlap: some are suppressed
    iou = box_iou(suppressed[:, :4], suppressed[:, :4])
    assert (iou.triu(1) <= 0.9).all()


def test_resized_size_follows_the_publisher() -> None:
    model = DETR.__new__(DETR)
    model.resize_size, model.max_size = 800, 1333
    assert model.resized_size(480, 640) == (800, 1066)
    assert model.resized_size(1080, 1920) == (750, 1333)  # the longer side capped
    assert model.resized_size(800, 600) == (1066, 800)
    assert model.resized_size(600, 800) == (800, 1066)
    model.resize_size = None
    assert model.resized_size(37, 41) == (37, 41)


@pytest.mark.parametrize(
    ("frames", "message"),
    [
        (torch.zeros(2, 3, 16, 16, dtype=torch.uint8), "frames.float\\(\\) / 255"),
        (torch.zeros(3, 16, 16), "unsqueeze\\(0\\)"),
        (torch.zeros(2, 16, 16, 3), "permute\\(0, 3, 1, 2\\)"),
        (torch.full((1, 3, 16, 16), 255.0), "values in \\[0, 1\\]; got values from 255 to 255"),
        (torch.full((1, 3, 16, 16), -0.5), "values in \\[0, 1\\]"),
    ],
    ids=["uint8", "one-frame", "channels-last", "0-255", "normalised"],
)
def test_bad_frames_are_explained(model: DETR, frames: torch.Tensor, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        model.detect_persons(frames)


def test_frames_must_be_a_tensor(model: DETR) -> None:
    with pytest.raises(TypeError, match="tensor of frames"):
        model.detect_persons([torch.zeros(3, 16, 16)])


# -- boxes -------------------------------------------------------------------------------------------


def test_box_iou_by_hand() -> None:
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0], [1.0, 1.0, 3.0, 3.0], [5.0, 5.0, 5.0, 5.0]])
    iou = box_iou(a, a)
    assert torch.allclose(iou[0, 1], torch.tensor(1 / 7))  # overlap 1, union 4 + 4 - 1
    assert iou[0, 0] == 1 and iou[2, 2] == 0 and iou[0, 2] == 0  # an empty box overlaps nothing, not NaN
    assert box_iou(a, a[:0]).shape == (3, 0)


def test_nms_by_hand() -> None:
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 11.0, 11.0], [20.0, 20.0, 30.0, 30.0], [0.0, 0.0, 10.0, 9.0]])
    scores = torch.tensor([0.5, 0.9, 0.8, 0.7])
    # 1 (0.9) is kept; 2 (0.8) lies apart; 3 (0.7) overlaps 1 by 72/118 = 0.61; 0 (0.5) overlaps 1 by 81/119 = 0.68
    assert nms(boxes, scores, 0.5).tolist() == [1, 2]
    assert nms(boxes, scores, 0.7).tolist() == [1, 2, 3]  # 3 vs 0: 0.9 > 0.7, so 0 goes with 3 kept
    assert nms(boxes, scores, 1.0).tolist() == [1, 2, 3, 0]
    assert nms(boxes[:0], scores[:0], 0.5).tolist() == []
    with pytest.raises(ValueError, match="boxes \\(N, 4\\)"):
        nms(boxes[:, :3], scores, 0.5)


def test_network_exports_to_onnx(tmp_path: Path) -> None:
    """The network (normalised images in, logits and boxes out) through torch.onnx's exporter and onnxruntime."""
    onnxruntime = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    model = videozoo.detr_resnet50(**{**TINY["kwargs"], "num_encoder_layers": 1, "num_decoder_layers": 1}).eval()
    x = make_input((1, 3, 64, 96), seed=2)
    torch.onnx.export(model, (x,), tmp_path / "detr.onnx", dynamo=True, input_names=["images"])
    session = onnxruntime.InferenceSession(str(tmp_path / "detr.onnx"), providers=["CPUExecutionProvider"])
    logits, boxes = session.run(None, {"images": x.numpy()})
    with torch.inference_mode():
        want_logits, want_boxes = model(x)
    assert relative_error(torch.from_numpy(logits), want_logits) <= TOLERANCE
    assert relative_error(torch.from_numpy(boxes), want_boxes) <= TOLERANCE
