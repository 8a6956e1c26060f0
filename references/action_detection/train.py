"""Train the RoI head of an AVA action detector on AVA-format annotations.

The data is a folder with ``videos/<video_id>.<ext>`` and ``train.csv`` / ``val.csv`` in AVA's
ground-truth format, ``video_id,timestamp,x1,y1,x2,y2,action_id[,person_id]`` (coordinates normalised to
[0, 1], one row per person and action; ``make_synthetic.py`` writes such a set). Every annotated keyframe
is one example: its clip is built exactly as ``videozoo detect`` builds it (the weights' recipe around
the keyframe, short side resized, normalised; ``videozoo.tasks.detect``), its boxes are the annotated
persons, and its targets are each person's actions as an 80-way multi-hot vector (class index = AVA id - 1).

The loss is binary cross-entropy on the logits (PySlowFast's AVA recipe: ``LOSS_FUNC: bce`` on the
sigmoid head), the optimiser SGD with momentum 0.9 and weight decay 1e-7 (PySlowFast's AVA configs).
By default only the head trains (the classifier, after the frozen backbone's RoI features, backbone in
eval mode); ``--train-backbone`` fine-tunes everything. Each epoch logs the training loss and the
validation mAP with the annotated boxes (average precision per class present in the validation set,
box by box; AVA's frame-mAP with detected boxes is ``evaluate.py``'s) to ``OUT/metrics.jsonl``, and
saves ``OUT/checkpoint.pth`` (``{"model_state", "model", "epoch", "args"}``, our key layout:
``model.load_state_dict(torch.load(path)["model_state"])``, then ``videozoo.detect(video, model,
weights=member)``).

    python references/action_detection/make_synthetic.py /tmp/ava-shapes
    python references/action_detection/train.py --data /tmp/ava-shapes --model slow_r50_detection \\
        --weights DEFAULT --epochs 10 --out /tmp/ava-run
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

import videozoo
from videozoo.tasks.detect import MEAN, STD, keyframe_clips, resize_short_side
from videozoo.video.io import VideoReader

VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".avi", ".mov")


@dataclass
class Keyframe:
    """One annotated keyframe: its video, time, person boxes (normalised) and each person's AVA action ids."""

    video: Path
    time: float
    boxes: list[tuple[float, float, float, float]]
    actions: list[set[int]]


def read_annotations(path: Path, videos: Path) -> list[Keyframe]:
    """The keyframes of an AVA ground-truth CSV, rows of one person (same box or person id) merged."""
    found: dict[tuple[str, float], dict[tuple, tuple[tuple[float, ...], set[int]]]] = {}
    with open(path, newline="") as f:
        for number, row in enumerate(csv.reader(f), start=1):
            if not row:
                continue
            if len(row) not in (7, 8):
                raise SystemExit(f"{path} line {number}: expected video_id,timestamp,x1,y1,x2,y2,action_id[,person_id], got {row}")
            try:
                t, box, action = float(row[1]), tuple(float(v) for v in row[2:6]), int(row[6])
            except ValueError:
                raise SystemExit(f"{path} line {number}: timestamp, box and action_id must be numbers, got {row}") from None
            if not 1 <= action <= 80:
                raise SystemExit(f"{path} line {number}: action_id {action} is not an AVA id (1-80)")
            if box[2] <= box[0] or box[3] <= box[1]:
                raise SystemExit(f"{path} line {number}: the box {list(box)} is empty or inverted")
            person = (row[7],) if len(row) == 8 and row[7] != "" else box
            entry = found.setdefault((row[0], t), {}).setdefault(person, (box, set()))
            entry[1].add(action)
    keyframes = []
    for (video_id, t), people in sorted(found.items()):
        matches = [p for p in (videos / f"{video_id}{s}" for s in VIDEO_SUFFIXES) if p.exists()]
        if not matches:
            raise SystemExit(f"{path}: no video for id {video_id!r} in {videos}")
        keyframes.append(Keyframe(matches[0], t, [b for b, _ in people.values()], [a for _, a in people.values()]))
    return keyframes


def load_example(keyframe: Keyframe, meta: dict, num_classes: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The model input of a keyframe: clip ``(3, T, H, W)``, boxes ``(K, 4)`` in its pixels, targets ``(K, C)``."""
    with VideoReader(keyframe.video) as reader:
        [clip] = keyframe_clips(reader.timestamps, [keyframe.time], meta["num_frames"], meta["sampling_rate"] / meta["frame_rate"])
        frames = reader.get_frames(clip.clip).frames
    height, width = frames.shape[-2:]
    frames, factor = resize_short_side(frames, int(meta.get("box_short_side", 256)))
    x = (frames.permute(1, 0, 2, 3).float() / 255 - torch.tensor(MEAN).view(3, 1, 1, 1)) / torch.tensor(STD).view(3, 1, 1, 1)
    boxes = torch.tensor(keyframe.boxes) * torch.tensor([width, height, width, height]) * factor
    targets = torch.zeros(len(keyframe.actions), num_classes)
    for i, actions in enumerate(keyframe.actions):
        targets[i, [a - 1 for a in actions if a <= num_classes]] = 1.0
    return x, boxes, targets


def batches(examples: list, batch_size: int, generator: torch.Generator | None = None):
    """``(clips, rois, targets)`` batches: clips stacked (one frame size per batch), boxes with their batch index."""
    order = torch.randperm(len(examples), generator=generator).tolist() if generator is not None else list(range(len(examples)))
    for start in range(0, len(order), batch_size):
        chosen = [examples[i] for i in order[start : start + batch_size]]
        if len({x.shape for x, _, _ in chosen}) > 1:
            raise SystemExit("videos of different sizes in one batch: use --batch-size 1")
        rois = torch.cat([torch.cat([torch.full((len(b), 1), float(i)), b], 1) for i, (_, b, _) in enumerate(chosen)])
        yield torch.stack([x for x, _, _ in chosen]), rois, torch.cat([t for _, _, t in chosen])


def average_precision(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """Non-interpolated AP of one class: the mean precision at each positive, by descending score."""
    order = scores.argsort(descending=True, stable=True)
    hits = labels[order]
    precision = hits.cumsum(0) / torch.arange(1, len(hits) + 1)
    return float((precision * hits).sum() / hits.sum())


def evaluate(model: torch.nn.Module, examples: list, batch_size: int) -> float:
    """Mean AP over the classes present in ``examples`` (the annotated boxes as input)."""
    model.eval()
    scores, labels = [], []
    with torch.inference_mode():
        for clips, rois, targets in batches(examples, batch_size):
            scores.append(model(clips, rois).sigmoid())
            labels.append(targets)
    s, t = torch.cat(scores), torch.cat(labels)
    present = (t.sum(0) > 0).nonzero().flatten().tolist()
    return sum(average_precision(s[:, c], t[:, c]) for c in present) / max(len(present), 1)


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", type=Path, required=True, help="folder with videos/, train.csv and val.csv")
    p.add_argument("--model", default="slow_r50_detection", help="an action detector (videozoo.list_models(task='action_detection'))")
    p.add_argument("--weights", default="DEFAULT", help="its weights (a member, its name, a file), or 'none' for random ones")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=4, help="keyframes per step")
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--weight-decay", type=float, default=1e-7)
    p.add_argument("--train-backbone", action="store_true", help="fine-tune the backbone too (default: the head only)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True, help="folder for metrics.jsonl and checkpoint.pth")
    return p


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    if videozoo.get_model_task(args.model) != "action_detection":
        raise SystemExit(f"--model {args.model} is no action detector: {', '.join(videozoo.list_models(task='action_detection'))}")
    torch.manual_seed(args.seed)
    weights = None if args.weights.lower() == "none" else args.weights
    model = videozoo.get_model(args.model, weights=weights)
    meta = videozoo.get_model_weights(args.model).DEFAULT.meta if weights is None else videozoo.get_model_weights(args.model).resolve(weights)[0].meta
    num_classes = model.num_classes
    train = [load_example(k, meta, num_classes) for k in read_annotations(args.data / "train.csv", args.data / "videos")]
    val = [load_example(k, meta, num_classes) for k in read_annotations(args.data / "val.csv", args.data / "videos")]
    head = [model.get_classifier().weight, model.get_classifier().bias]
    for p in model.parameters():
        p.requires_grad_(args.train_backbone)
    for p in head:
        p.requires_grad_(True)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=args.lr, momentum=0.9, weight_decay=args.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(args.epochs, 1))
    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / "metrics.jsonl"
    generator = torch.Generator().manual_seed(args.seed)
    for epoch in range(args.epochs):
        model.train()
        if not args.train_backbone:  # a frozen backbone keeps its BN statistics; dropout before the head still trains
            for module in model.modules():
                if isinstance(module, torch.nn.BatchNorm3d):
                    module.eval()
        start, total, count = time.perf_counter(), 0.0, 0
        for clips, rois, targets in batches(train, args.batch_size, generator):
            loss = F.binary_cross_entropy_with_logits(model(clips, rois), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total, count = total + loss.item() * len(targets), count + len(targets)
        schedule.step()
        record = {"epoch": epoch, "train_loss": total / max(count, 1), "val_map": evaluate(model, val, args.batch_size),
                  "seconds": round(time.perf_counter() - start, 3)}  # fmt: skip
        if not math.isfinite(record["train_loss"]):
            raise SystemExit(f"epoch {epoch}: the loss is {record['train_loss']}; lower --lr")
        print(json.dumps(record), flush=True)
        with open(log, "a") as f:
            f.write(json.dumps(record) + "\n")
        torch.save({"model_state": model.state_dict(), "model": args.model, "epoch": epoch, "args": vars(args) | {"data": str(args.data), "out": str(args.out)}},
                   args.out / "checkpoint.pth")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
