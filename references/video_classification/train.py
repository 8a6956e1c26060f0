"""Train, fine-tune or evaluate any videozoo model, on one process or many (torchrun / DDP).

    # one process
    python references/video_classification/train.py --data-path DATA --model mc3_18 --weights DEFAULT
    # N processes on this machine (gloo on CPU, nccl on GPU)
    torchrun --nproc_per_node=N references/video_classification/train.py --data-path DATA --model mc3_18 ...

Clips follow the model's evaluation recipe (``weights.meta``: frames, stride, frame rate, or
Something-Something's segments); training takes one random clip per video per epoch, evaluation the
recipe's uniformly spaced clips x crops through ``weights.transforms()`` and reports clip-level and
video-level (views averaged) accuracy. Multi-label weights (``meta["multi_label"]``, Charades) or
``--multi-label`` train with binary cross-entropy on the logits and report mean average precision
(video level: the views' sigmoid probabilities maxed, as PySlowFast's Charades test). Weights whose
recipe forbids flipping (``meta["hflip"]`` False: Something-Something V2's left/right classes) train
without horizontal flips. See README.md beside this file for the recipes.
"""

from __future__ import annotations

import argparse
import dataclasses
import contextlib
import json
import math
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

import videozoo
from videozoo.zoo import safety
from videozoo.errors import VideozooError
from videozoo.models import VideoModel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import datasets  # noqa: E402
import utils  # noqa: E402
from transforms import MixupCutmix, TrainAugment, eval_preset  # noqa: E402
from utils import Env, UsageError  # noqa: E402

CHECKPOINT = "checkpoint.pth"
METRICS = "metrics.jsonl"

# Settings a checkpoint remembers: left unset on the command line, --resume and --weights <train.py
# checkpoint> take them from the checkpoint, so a run is resumed, evaluated or fine-tuned on the
# clips it was trained on.
INHERITED = (
    "model", "clip_len", "sampling_rate", "frame_rate", "crop_size", "resize_size", "val_clips", "val_crops", "hflip_prob",
    "layer_decay", "drop_path",
)


# ----------------------------------------------------------------------------------------------------
# Arguments


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _frame_rate(text: str) -> float | str:
    if text == "native":
        return text
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of frames per second or 'native', got {text}")
    return value


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Train, fine-tune or evaluate a videozoo model (torchrun for several processes).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    g = p.add_argument_group("data")
    g.add_argument("--data-path", type=Path, help="folder with train/<class>/<videos> and val/<class>/<videos>")
    g.add_argument("--train-dir", default="train", help="name of the training folder under --data-path")
    g.add_argument("--val-dir", default="val", help="name of the validation folder under --data-path")
    g.add_argument("--train-list", type=Path, help="annotation file of 'path label' lines for training (instead of --data-path)")
    g.add_argument("--val-list", type=Path, help="annotation file for validation")
    g.add_argument("--video-root", type=Path, help="folder the paths in the lists are relative to (default: the list's folder)")
    g.add_argument("--classes", type=Path, help="class names, one per line or 'number name' (UCF101's classInd.txt)")

    g = p.add_argument_group("model")
    g.add_argument("--model", help=f"a registered model: {', '.join(videozoo.list_models())}")
    g.add_argument(
        "--weights",
        help="start from these weights: a name (DEFAULT, KINETICS400_V1, Enum.NAME), a checkpoint written by this "
        "script, or a published checkpoint file; default: from scratch. The weights' recipe and preset are used.",
    )
    g.add_argument("--num-classes", type=_positive_int, help="check that the data has this many classes")
    g.add_argument("--multi-label", action="store_true",
                   help="several labels per video (BCE loss, mAP); the default for multi-label weights (Charades)")
    g.add_argument("--freeze-backbone", action="store_true", help="train only the classifier (what forward_head uses)")
    g.add_argument("--drop-path", type=_non_negative_float, metavar="P",
                   help="stochastic depth of the last block (the model's stochastic_depth_prob; default: the model's)")

    g = p.add_argument_group("clips (default: the weights' recipe and preset)")
    g.add_argument("--clip-len", type=_positive_int, help="frames per clip (recipe: num_frames)")
    g.add_argument("--sampling-rate", type=_positive_int, help="stride between clip frames (recipe: sampling_rate)")
    g.add_argument("--frame-rate", type=_frame_rate, help="fps the stride is counted at, or 'native' (recipe: frame_rate)")
    g.add_argument("--crop-size", type=_positive_int, nargs="+", metavar="PX", help="crop size, 1 or 2 values (preset)")
    g.add_argument("--resize-size", type=_positive_int, nargs="+", metavar="PX",
                   help="evaluation resize: short side, or H W (default: the preset's, scaled with --crop-size)")
    g.add_argument("--train-scale", type=float, nargs=2, default=(1.0, 1.25), metavar=("MIN", "MAX"),
                   help="training frames are resized to the evaluation resize times a random factor in [MIN, MAX]")
    g.add_argument("--hflip-prob", type=float,
                   help="horizontal flip probability (default 0.5; 0 for weights whose recipe forbids flips, "
                   "e.g. Something-Something V2, whose classes tell left from right)")
    g.add_argument("--val-clips", type=_positive_int, help="clips per validation video (recipe: num_clips)")
    g.add_argument("--val-crops", type=int, choices=(1, 3), help="crops per validation clip (recipe: num_crops)")

    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=_positive_int, default=30)
    g.add_argument("--batch-size", type=_positive_int, default=8, help="clips per process per step")
    g.add_argument("--accum-steps", type=_positive_int, default=1, help="gradient accumulation: batches per optimizer step")
    g.add_argument("--opt", choices=("sgd", "adamw"), default="sgd")
    g.add_argument("--lr", type=float, help="peak LR for the global batch (default: 0.01 for sgd, 0.001 for adamw)")
    g.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (Nesterov)")
    g.add_argument("--weight-decay", type=float,
                   help="default: 1e-4 for sgd, 0.05 for adamw; never on biases, norms and the model's no_weight_decay()")
    g.add_argument("--layer-decay", type=float, metavar="D",
                   help="layer-wise LR decay (e.g. 0.75, VideoMAE's): LR x D ** (num_layers + 1 - model.layer_index(name))")
    g.add_argument("--warmup-epochs", type=_non_negative_float, default=1.0, help="linear warm-up length (may be fractional)")
    g.add_argument("--warmup-factor", type=float, default=0.01, help="LR factor at the first step of the warm-up")
    g.add_argument("--min-lr", type=_non_negative_float, default=0.0, help="LR at the end of the cosine decay")
    g.add_argument("--label-smoothing", type=_non_negative_float, default=0.0)
    g.add_argument("--mixup-alpha", type=_non_negative_float, default=0.0, help="mixup Beta(alpha, alpha); 0 = off")
    g.add_argument("--cutmix-alpha", type=_non_negative_float, default=0.0, help="cutmix Beta(alpha, alpha); 0 = off")
    g.add_argument("--clip-grad-norm", type=float, help="clip the gradient norm to this value")
    g.add_argument("--amp", choices=("none", "bf16", "fp16"), default="none",
                   help="mixed precision autocast: bf16 on CPU or GPU, fp16 (with a gradient scaler) on GPU")

    g = p.add_argument_group("run")
    g.add_argument("--output-dir", type=Path, default=Path("output"), help="checkpoint.pth and metrics.jsonl go here")
    g.add_argument("--resume", type=Path,
                   help="continue from this checkpoint (or folder holding checkpoint.pth); 'auto': from --output-dir's "
                   "checkpoint if there is one, else start (for torchrun --max_restarts and preemptible jobs)")
    g.add_argument("--test-only", action="store_true", help="only evaluate (the --resume checkpoint, or --weights)")
    g.add_argument("--stop-after", type=_positive_int, metavar="EPOCHS",
                   help="stop once this many epochs are done, the schedule still planned for --epochs "
                   "(time-limited jobs: continue with --resume)")
    g.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    g.add_argument("--dist-backend", help="torch.distributed backend (default: nccl on GPU, gloo on CPU)")
    g.add_argument("--workers", type=int, help="decoding processes per training process (default: from the CPU count)")
    g.add_argument("--val-batch-size", type=_positive_int, help="videos per evaluation batch (default: batch size / views)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--print-freq", type=_positive_int, default=20, help="iterations between progress lines")
    return p


# ----------------------------------------------------------------------------------------------------
# Checkpoints


def _load(path: Path, what: str) -> Any:
    try:
        return safety.load_checkpoint(path)
    except FileNotFoundError:
        raise UsageError(f"{what} {path}: no such file.") from None


def _is_train_checkpoint(obj: Any) -> bool:
    return isinstance(obj, dict) and {"model", "args", "model_name", "categories"} <= set(obj)


def load_resume(path: Path) -> dict[str, Any]:
    path = path / CHECKPOINT if path.is_dir() else path
    obj = _load(path, "--resume")
    if not _is_train_checkpoint(obj) or "optimizer" not in obj:
        raise UsageError(f"--resume {path} is not a checkpoint written by train.py (use --weights for other files).")
    obj["path"] = str(path)
    return obj


def inherit(args: argparse.Namespace, ckpt: dict[str, Any]) -> None:
    saved = ckpt["args"]
    for key in INHERITED:
        value = saved.get(key) if key != "model" else ckpt["model_name"]
        if getattr(args, key) is None:
            setattr(args, key, value)
        elif key == "model" and args.model != value:
            raise UsageError(f"the checkpoint is of {value}, not --model {args.model}.")


def _jsonable(args: argparse.Namespace) -> dict[str, Any]:
    out = {}
    for key, value in vars(args).items():
        if isinstance(value, Path):
            value = str(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[key] = value
    return out


# ----------------------------------------------------------------------------------------------------
# Model


def freeze_backbone(model: nn.Module) -> list[nn.Module]:
    """Freeze everything but the classifier; returns the norm layers to keep in eval mode while training."""
    head = {id(p) for p in model.get_classifier().parameters()}
    for p in model.parameters():
        p.requires_grad_(id(p) in head)
    return [
        m for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._NormBase) and not any(p.requires_grad for p in m.parameters(recurse=False))
    ]


def _takes(name: str, argument: str) -> bool:
    """Whether the model class behind builder ``name`` takes ``argument`` (looked up without building it)."""
    import inspect

    with torch.device("meta"):
        model = videozoo.get_model(name)
    return argument in inspect.signature(type(model)).parameters


def check_layer_decay(model: VideoModel, layer_decay: float | None) -> None:
    """``UsageError`` unless ``layer_decay`` is ``None``, or in (0, 1] for a transformer (``model.layers_are_blocks``)."""
    if layer_decay is None:
        return
    if not 0.0 < layer_decay <= 1.0:
        raise UsageError(f"--layer-decay must be in (0, 1], got {layer_decay}.")
    if not model.layers_are_blocks:
        raise UsageError(
            f"--layer-decay needs a model with numbered transformer layers (num_layers, layer_index()); "
            f"{type(model).__name__} numbers residual stages, and layer-wise decay is a transformer fine-tuning recipe."
        )


def param_groups(model: VideoModel, weight_decay: float, layer_decay: float | None = None) -> list[dict[str, Any]]:
    """The optimizer's parameter groups: no weight decay on biases, norms (1-D tensors) and the names in
    ``model.no_weight_decay()``; with ``layer_decay``, each layer's LR scaled by
    ``layer_decay ** (model.num_layers + 1 - model.layer_index(name))`` (BEiT's and VideoMAE's layer-wise
    decay: the head at the full LR, each block below it ``layer_decay`` times less, the embeddings least).

    Each group holds ``lr_scale`` (multiply the base LR by it) and ``layer`` (``None`` without decay).
    Raises ``UsageError`` when ``layer_decay`` is given for a model whose layers are not transformer blocks.
    """
    check_layer_decay(model, layer_decay)
    no_decay_names = model.no_weight_decay()
    groups: dict[tuple[int | None, bool], dict[str, Any]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        decay = p.ndim > 1 and name not in no_decay_names
        layer = model.layer_index(name) if layer_decay is not None else None
        scale = 1.0 if layer is None else layer_decay ** (model.num_layers + 1 - layer)
        group = groups.setdefault(
            (layer, decay), {"params": [], "weight_decay": weight_decay if decay else 0.0, "lr_scale": scale, "layer": layer}
        )
        group["params"].append(p)
    return [groups[key] for key in sorted(groups, key=lambda k: (-1 if k[0] is None else k[0], k[1]))]


def build_model(args, env: Env, classes: list[str], resume: dict | None, init: dict | None, member):
    """The network with ``len(classes)`` outputs, and where its weights came from (for the log)."""
    torch.manual_seed(args.seed)
    name = args.model
    arch = {} if args.drop_path is None else {"stochastic_depth_prob": args.drop_path}
    if arch and not _takes(name, "stochastic_depth_prob"):
        raise UsageError(f"--drop-path: {name} has no stochastic depth (no stochastic_depth_prob argument).")
    if resume is not None:
        if list(resume["categories"]) != classes:
            raise UsageError(
                f"the checkpoint was trained on {len(resume['categories'])} other classes than the data's {len(classes)}; "
                f"--resume continues the same run (to fine-tune on new classes use --weights {resume['path']})."
            )
        model = videozoo.get_model(name, num_classes=resume["num_classes"], **arch)
        model.load_state_dict(resume["model"])
        return model, list(resume["categories"]), f"{resume['path']} (epoch {resume['epoch'] + 1})"
    if init is not None:
        model = videozoo.get_model(name, num_classes=init["num_classes"], **arch)
        try:
            model.load_state_dict(init["model"])
        except RuntimeError as e:
            raise UsageError(f"--weights {args.weights} does not fit {name}: {str(e).splitlines()[0]}") from None
        head_classes, source = list(init["categories"]), f"checkpoint {args.weights}"
    elif args.weights is not None:
        local = videozoo.is_checkpoint_path(args.weights)
        try:
            model = videozoo.get_model(name, weights=args.weights if local else member, **arch)
        except VideozooError as e:
            raise UsageError(str(e)) from None
        head_classes = member.categories
        source = f"{args.weights} (published format of {member})" if local else str(member)
    else:
        return videozoo.get_model(name, num_classes=len(classes), **arch), classes, "scratch"
    if head_classes != classes and not args.test_only:
        utils.print0(env, f"new classifier: {len(head_classes)} -> {len(classes)} classes (reset_classifier)")
        model.reset_classifier(len(classes))
        head_classes = classes
    return model, head_classes, source


# ----------------------------------------------------------------------------------------------------
# Data


def load_data(args, env: Env) -> tuple[datasets.Samples, datasets.Samples, list[str]]:
    if args.train_list is not None or args.val_list is not None:
        if args.train_list is None or args.val_list is None:
            raise UsageError("annotation files need both --train-list and --val-list.")
        return datasets.annotation_samples(
            args.train_list, args.val_list, args.video_root, args.classes, lambda m: utils.print0(env, f"warning: {m}")
        )
    if args.data_path is None:
        raise UsageError("give the data: --data-path ROOT (ROOT/train/<class>/*.mp4, ROOT/val/...) or --train-list/--val-list.")
    if not args.data_path.is_dir():
        raise UsageError(f"--data-path {args.data_path}: no such directory.")
    train, classes = datasets.scan_folder(args.data_path / args.train_dir)
    val, _ = datasets.scan_folder(args.data_path / args.val_dir, classes)
    return train, val, classes


def default_workers(env: Env) -> int:
    return max(0, min(4, (os.cpu_count() or 1) // env.local_world_size - 1))


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)


# ----------------------------------------------------------------------------------------------------
# One epoch


def autocast(args, env: Env):
    if args.amp == "none":
        return contextlib.nullcontext()
    return torch.autocast(env.device.type, dtype=torch.bfloat16 if args.amp == "bf16" else torch.float16)


def loss_fn(logits: torch.Tensor, targets: torch.Tensor, args) -> torch.Tensor:
    """Cross-entropy on (soft) one-hot targets; binary cross-entropy on the logits for multi-label runs."""
    if args.multi_label:
        return F.binary_cross_entropy_with_logits(logits, targets)
    return F.cross_entropy(logits, targets, label_smoothing=args.label_smoothing)


def top1_hits(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per clip, whether the top class is its label (multi-label: one of its labels)."""
    top = logits.argmax(-1)
    if labels.dim() == 2:
        return labels.gather(1, top[:, None]).squeeze(1) > 0
    return top == labels


def train_one_epoch(model, loader, optimizer, scheduler, scaler, mix, args, env: Env, epoch, known_bad, frozen_norms, run_eta):
    model.train()
    for m in frozen_norms:
        m.eval()
    params = [p for p in model.parameters() if p.requires_grad]
    n = len(loader)
    progress = utils.Progress(env, f"epoch {epoch + 1}/{args.epochs}", n, args.print_freq, run_eta)
    loss_sum = correct = seen = skipped = 0.0
    optimizer.zero_grad(set_to_none=True)
    for i, (clips, labels, failures) in enumerate(loader):
        for path, message in failures:
            skipped += 1
            if path not in known_bad:
                known_bad.add(path)
                utils.warn(env, f"skipping an unreadable video (another one takes its place): {message}")
        clips = clips.to(env.device, non_blocking=True)
        labels = labels.to(env.device, non_blocking=True)
        inputs, targets = mix(clips, labels)
        group_start = i - i % args.accum_steps
        group_size = min(args.accum_steps, n - group_start)
        step_now = i + 1 == group_start + group_size
        sync = contextlib.nullcontext() if step_now or not isinstance(model, DistributedDataParallel) else model.no_sync()
        with sync:
            with autocast(args, env):
                logits = model(inputs)
            loss = loss_fn(logits.float(), targets, args)
            scaler.scale(loss / group_size).backward()
        # the base LR of this step (before the scheduler moves on): the unscaled groups' (layer decay: the head's)
        lr = max(g["lr"] for g in optimizer.param_groups)
        if step_now:
            if args.clip_grad_norm is not None:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(params, args.clip_grad_norm)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
        b = labels.shape[0]
        batch_correct = top1_hits(logits.detach(), labels).sum().item()
        loss_sum += loss.item() * b
        correct += batch_correct
        seen += b
        progress.update(i, b, f"lr {lr:.4g}", loss=loss.item(), acc1=100.0 * batch_correct / b)
    loss_sum, correct, seen, skipped = utils.reduce_sums([loss_sum, correct, seen, skipped], env)
    return {
        "train_loss": loss_sum / max(seen, 1),
        "train_acc1": 100.0 * correct / max(seen, 1),
        "train_clips": int(seen),
        "train_skipped": int(skipped),
        "lr": lr,
    }


def average_precision(scores: torch.Tensor, targets: torch.Tensor) -> float:
    """Mean over classes with at least one positive of the average precision (scikit-learn's
    ``average_precision_score``, tied scores one threshold), in percent: PySlowFast's Charades mAP."""
    aps = []
    for c in range(scores.shape[1]):
        positives = targets[:, c] > 0
        if not positives.any():
            continue
        order = scores[:, c].argsort(descending=True, stable=True)
        s, hit = scores[order, c], positives[order].double()
        last = torch.ones_like(s, dtype=torch.bool)
        last[:-1] = s[1:] != s[:-1]  # the last row of each run of tied scores is a threshold
        tp = hit.cumsum(0)[last]
        seen = torch.arange(1, len(s) + 1, dtype=torch.float64)[last]
        recall = tp / tp[-1]
        steps = torch.diff(recall, prepend=torch.zeros(1, dtype=torch.float64))
        aps.append(float((steps * tp / seen).sum()))
    return 100.0 * sum(aps) / max(len(aps), 1)


@torch.inference_mode()
def evaluate_multi_label(model, loader, args, env: Env, known_bad: set[str], label_map: torch.Tensor | None = None) -> dict[str, Any]:
    """Clip-level (every view on its own) and video-level (sigmoid maxed over views) mAP."""
    model.eval()
    clip_scores, clip_targets, video_scores, video_targets = [], [], [], []
    sums = torch.zeros(3, dtype=torch.float64)  # loss, clips, skipped
    progress = utils.Progress(env, "eval", len(loader), args.print_freq)
    for i, (views, labels, counts, failures) in enumerate(loader):
        for path, message in failures:
            sums[2] += 1
            if path not in known_bad:
                known_bad.add(path)
                utils.warn(env, f"leaving an unreadable video out of the evaluation: {message}")
        if views is None:
            continue
        with autocast(args, env):
            logits = model(views.to(env.device, non_blocking=True))
        logits = logits.float().cpu()
        if label_map is not None:  # the data's classes are columns label_map of the model's
            mapped = torch.zeros(labels.shape[0], logits.shape[1])
            mapped[:, label_map] = labels
            labels = mapped
        clip_labels = labels.repeat_interleave(counts, dim=0)
        sums[0] += F.binary_cross_entropy_with_logits(logits, clip_labels, reduction="sum") / logits.shape[1]
        sums[1] += clip_labels.shape[0]
        probs = logits.sigmoid()
        clip_scores.append(probs), clip_targets.append(clip_labels)
        video_scores.extend(p.amax(0) for p in probs.split(counts.tolist()))
        video_targets.extend(labels.unbind(0))
        progress.update(i, len(counts))
    loss, clips, skipped = utils.reduce_sums(sums.tolist(), env)
    # mAP is not a sum over videos: every process's scores go to all of them.
    gathered = utils.gather_lists([(torch.cat(clip_scores), torch.cat(clip_targets))] if clip_scores else [], env)
    videos = utils.gather_lists([(torch.stack(video_scores), torch.stack(video_targets))] if video_scores else [], env)
    clip_map = average_precision(torch.cat([s for s, _ in gathered]), torch.cat([t for _, t in gathered])) if gathered else 0.0
    video_map = average_precision(torch.cat([s for s, _ in videos]), torch.cat([t for _, t in videos])) if videos else 0.0
    return {
        "clip_map": clip_map,
        "video_map": video_map,
        "loss": loss / max(clips, 1),
        "clips": int(clips),
        "videos": int(sum(len(s) for s, _ in videos)),
        "skipped": int(skipped),
    }


@torch.inference_mode()
def evaluate(model, loader, args, env: Env, known_bad: set[str], label_map: torch.Tensor | None = None) -> dict[str, Any]:
    """Clip-level (every view on its own) and video-level (softmax averaged over views) accuracy."""
    if args.multi_label:
        return evaluate_multi_label(model, loader, args, env, known_bad, label_map)
    model.eval()
    sums = torch.zeros(8, dtype=torch.float64)  # clip top1, top5, count, loss; video top1, top5, count; skipped
    progress = utils.Progress(env, "eval", len(loader), args.print_freq)
    for i, (views, labels, counts, failures) in enumerate(loader):
        for path, message in failures:
            sums[7] += 1
            if path not in known_bad:
                known_bad.add(path)
                utils.warn(env, f"leaving an unreadable video out of the evaluation: {message}")
        if views is None:
            continue
        if label_map is not None:
            labels = label_map[labels]
        with autocast(args, env):
            logits = model(views.to(env.device, non_blocking=True))
        logits = logits.float().cpu()
        k = min(5, logits.shape[1])
        clip_labels = labels.repeat_interleave(counts)
        top = logits.topk(k, dim=1).indices
        sums[0] += (top[:, 0] == clip_labels).sum()
        sums[1] += (top == clip_labels[:, None]).any(1).sum()
        sums[2] += clip_labels.numel()
        sums[3] += F.cross_entropy(logits, clip_labels, reduction="sum")
        owner = torch.arange(len(counts)).repeat_interleave(counts)
        probs = torch.zeros(len(counts), logits.shape[1], dtype=torch.float64).index_add_(0, owner, logits.double().softmax(1))
        probs /= counts[:, None]
        vtop = probs.topk(k, dim=1).indices
        sums[4] += (vtop[:, 0] == labels).sum()
        sums[5] += (vtop == labels[:, None]).any(1).sum()
        sums[6] += labels.numel()
        progress.update(i, len(counts))
    s = utils.reduce_sums(sums.tolist(), env)
    clips, videos = max(s[2], 1), max(s[6], 1)
    return {
        "clip_acc1": 100.0 * s[0] / clips,
        "clip_acc5": 100.0 * s[1] / clips,
        "video_acc1": 100.0 * s[4] / videos,
        "video_acc5": 100.0 * s[5] / videos,
        "loss": s[3] / clips,
        "clips": int(s[2]),
        "videos": int(s[6]),
        "skipped": int(s[7]),
    }


# ----------------------------------------------------------------------------------------------------
# The run


def resolve_recipe_weights(args, resume, init):
    """The weights member whose recipe, preset and categories this run uses."""
    saved = (resume or init or {}).get("recipe_weights")
    if saved is not None:
        return videozoo.get_weight(saved)
    enum = videozoo.get_model_weights(args.model)
    if args.weights is None:
        return enum.DEFAULT
    if videozoo.is_checkpoint_path(args.weights) and not os.path.isfile(args.weights):
        raise UsageError(f"--weights {args.weights}: no such checkpoint file.")
    try:
        member, _ = enum.resolve(args.weights)
    except ValueError as e:
        raise UsageError(f"--weights: {e}") from None
    return member


def run(args: argparse.Namespace, env: Env) -> int:
    start_time = time.time()
    if args.resume is not None and str(args.resume) == "auto":
        args.resume = args.output_dir if (args.output_dir / CHECKPOINT).is_file() else None
    resume = load_resume(args.resume) if args.resume is not None else None
    init = None
    if args.weights is not None and resume is None and os.path.isfile(args.weights):
        obj = _load(Path(args.weights), "--weights")
        if _is_train_checkpoint(obj):
            init = obj
    for ckpt in (resume, init):
        if ckpt is not None:
            inherit(args, ckpt)
    if args.model is None:
        raise UsageError("--model is required (one of: " + ", ".join(videozoo.list_models()) + ").")
    try:
        member = resolve_recipe_weights(args, resume, init)
    except ValueError as e:  # unknown model name
        raise UsageError(str(e)) from None
    if args.test_only and resume is None and args.weights is None:
        raise UsageError("--test-only evaluates a trained model: give --resume CHECKPOINT or --weights.")
    if args.freeze_backbone and args.weights is None and resume is None:
        utils.print0(env, "warning: --freeze-backbone without --weights trains a classifier on random features.")
    if args.amp == "fp16" and env.device.type != "cuda":
        raise UsageError("--amp fp16 needs a GPU; on CPU use --amp bf16.")
    args.multi_label = bool(args.multi_label or member.multi_label)
    if args.multi_label and args.label_smoothing:
        raise UsageError("--label-smoothing is for single-label training; multi-label runs use binary cross-entropy.")
    may_flip = member.meta.get("hflip", True)
    if args.hflip_prob is None:
        args.hflip_prob = 0.5 if may_flip else 0.0
    elif args.hflip_prob > 0 and not may_flip:
        utils.print0(env, f"warning: --hflip-prob {args.hflip_prob}, but the recipe of {member} trains without flips "
                          f"(its classes tell left from right).")  # fmt: skip
    if not 0.0 <= args.hflip_prob <= 1.0:
        raise UsageError(f"--hflip-prob must be in [0, 1], got {args.hflip_prob}.")

    # Clips: the weights' recipe and preset, with the command line's overrides.
    recipe = member.recipe
    frame_rate = recipe.frame_rate if args.frame_rate is None else (None if args.frame_rate == "native" else float(args.frame_rate))
    try:
        recipe = replace(
            recipe,
            num_frames=args.clip_len or recipe.num_frames,
            sampling_rate=args.sampling_rate or recipe.sampling_rate,
            frame_rate=frame_rate,
        ).with_views(args.val_clips, args.val_crops)
    except ValueError as e:  # e.g. --val-clips 2 with a segment recipe (one view spread over the video)
        raise UsageError(f"{member}: {e}") from None
    if args.crop_size is not None and len(args.crop_size) > 2 or args.resize_size is not None and len(args.resize_size) > 2:
        raise UsageError("--crop-size and --resize-size take one or two values.")
    preset = eval_preset(member.transforms(), args.crop_size, args.resize_size)
    try:
        augment = TrainAugment(preset, args.train_scale, args.hflip_prob)
    except ValueError as e:
        raise UsageError(f"--train-scale: {e}") from None

    train_samples, val_samples, classes = load_data(args, env)
    several = next((path for path, label in train_samples + val_samples if isinstance(label, tuple)), None)
    if several is not None and not args.multi_label:
        raise UsageError(
            f"{several} has several labels, but {member} is single-label: pass --multi-label (binary cross-entropy, "
            f"mAP), or start from multi-label weights such as slow_r50's CHARADES_V1."
        )
    if args.num_classes is not None and args.num_classes != len(classes):
        raise UsageError(f"--num-classes {args.num_classes}, but the data has {len(classes)} classes: {', '.join(classes[:10])}.")

    model, head_classes, source = build_model(args, env, classes, resume, init, member)
    check_layer_decay(model, args.layer_decay)
    label_map = None
    if head_classes != classes:  # --test-only of weights trained on other classes: match them by name
        names = {c.replace("_", " "): i for i, c in enumerate(head_classes)}
        missing = [c for c in classes if c.replace("_", " ") not in names]
        if missing:
            raise UsageError(
                f"the model was trained on other classes than the data's ({', '.join(missing[:5])} unknown to it); "
                f"to evaluate it here, fine-tune it first."
            )
        label_map = torch.tensor([names[c.replace("_", " ")] for c in classes])
    crop_h, crop_w = preset.crop_size
    if min(crop_h, crop_w) < model.min_size or recipe.num_frames < model.min_temporal_size:
        raise UsageError(
            f"{args.model} needs clips of at least {model.min_temporal_size} frames of {model.min_size}x{model.min_size} px; "
            f"this run uses {recipe.num_frames} frames of {crop_h}x{crop_w} (--clip-len, --crop-size)."
        )
    frozen_norms = freeze_backbone(model) if args.freeze_backbone else []
    model.to(env.device)
    net = model
    if env.distributed and not args.test_only:
        net = DistributedDataParallel(model, device_ids=[env.device.index] if env.device.type == "cuda" else None)

    utils.print0(
        env,
        f"{args.model} from {source} | {len(classes)} classes, {len(train_samples)} train / {len(val_samples)} val videos | "
        f"{env.world_size} process(es) on {env.device.type} | clips: {recipe.describe()}, {crop_h}x{crop_w} px "
        f"(recipe of {member}) | {'multi-label, BCE, mAP' if args.multi_label else 'single-label'}, "
        f"hflip {args.hflip_prob:g}"
        + (f", drop path {args.drop_path:g}" if args.drop_path is not None else "")
        + (f", layer decay {args.layer_decay:g}" if args.layer_decay is not None else ""),
    )

    # Loaders
    workers = default_workers(env) if args.workers is None else args.workers
    targets = len(classes) if args.multi_label else None  # multi-hot labels over the data's classes
    val_set = datasets.EvalViews(val_samples, recipe, preset, targets)
    val_loader = DataLoader(
        val_set,
        batch_size=args.val_batch_size or max(1, args.batch_size // recipe.num_views),
        sampler=datasets.ShardSampler(len(val_set), env.rank, env.world_size),
        num_workers=workers,
        collate_fn=datasets.collate_eval,
        worker_init_fn=_worker_init,
        pin_memory=env.device.type == "cuda",
    )
    known_bad: set[str] = set()

    if args.test_only:
        metrics = evaluate(model, val_loader, args, env, known_bad, label_map)
        metrics = {"epoch": resume["epoch"] if resume else None, **metrics}
        utils.print0(env, _summary("test", metrics))
        if env.is_main:
            print(json.dumps(metrics))
        return 0

    train_set = datasets.TrainClips(train_samples, recipe, augment, args.seed, targets)
    sampler = DistributedSampler(train_set, num_replicas=env.world_size, rank=env.rank, shuffle=True, seed=args.seed)
    train_loader = DataLoader(
        train_set,
        batch_size=args.batch_size,
        sampler=sampler,
        num_workers=workers,
        collate_fn=datasets.collate_train,
        worker_init_fn=_worker_init,
        pin_memory=env.device.type == "cuda",
    )

    # Optimiser and schedule (stepped once per optimizer step)
    lr = args.lr if args.lr is not None else (0.01 if args.opt == "sgd" else 1e-3)
    wd = args.weight_decay if args.weight_decay is not None else (1e-4 if args.opt == "sgd" else 0.05)
    groups = param_groups(model, wd, args.layer_decay)
    for group in groups:
        group["lr"] = lr * group["lr_scale"]  # LambdaLR scales each group's own initial LR
    if args.opt == "sgd":
        optimizer = torch.optim.SGD(groups, lr=lr, momentum=args.momentum, nesterov=args.momentum > 0)
    else:
        optimizer = torch.optim.AdamW(groups, lr=lr)
    steps_per_epoch = math.ceil(len(train_loader) / args.accum_steps)
    schedule = utils.WarmupCosine(
        round(args.warmup_epochs * steps_per_epoch), args.epochs * steps_per_epoch, args.warmup_factor, args.min_lr / lr
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    scaler = torch.amp.GradScaler(env.device.type, enabled=args.amp == "fp16")
    mix = MixupCutmix(len(classes), args.mixup_alpha, args.cutmix_alpha)

    start_epoch = 0
    if resume is not None:
        optimizer.load_state_dict(resume["optimizer"])
        scheduler.load_state_dict(resume["lr_scheduler"])
        if resume.get("scaler"):
            scaler.load_state_dict(resume["scaler"])
        saved = scheduler.lr_lambdas[0]
        if vars(saved) != vars(schedule):
            utils.print0(env, "warning: --epochs, --batch-size or the data changed since the checkpoint; the LR schedule is re-planned.")
        scheduler.lr_lambdas = [schedule] * len(optimizer.param_groups)
        start_epoch = resume["epoch"] + 1
        known_bad.update(resume["metrics"].get("unreadable", []))
        utils.print0(env, f"resuming from {resume['path']}: epoch {start_epoch + 1} of {args.epochs}, optimizer step {scheduler.last_epoch}")
    end_epoch = min(args.epochs, args.stop_after or args.epochs)
    if start_epoch >= end_epoch:
        utils.print0(env, f"nothing to do: {start_epoch} epoch(s) already done (--epochs {args.epochs}, --stop-after {args.stop_after}).")
        return 0

    if env.is_main:
        args.output_dir.mkdir(parents=True, exist_ok=True)
        log = utils.MetricsLog(args.output_dir / METRICS, start_epoch)
    epoch_times: list[float] = []

    def run_eta(epoch_eta: float) -> float:
        per_epoch = sum(epoch_times) / len(epoch_times) if epoch_times else None
        left = end_epoch - epoch - 1
        return epoch_eta + left * (per_epoch if per_epoch is not None else progress_epoch_estimate(epoch_eta))

    def progress_epoch_estimate(epoch_eta: float) -> float:
        return epoch_eta + (time.perf_counter() - epoch_start)

    for epoch in range(start_epoch, end_epoch):
        epoch_start = time.perf_counter()
        utils.seed_epoch(args.seed, epoch, env.rank)
        sampler.set_epoch(epoch)
        train_set.set_epoch(epoch, known_bad)
        train_metrics = train_one_epoch(
            net, train_loader, optimizer, scheduler, scaler, mix, args, env, epoch, known_bad, frozen_norms, run_eta
        )
        utils.broadcast_buffers(model, env)  # BN statistics of rank 0, the ones the checkpoint keeps
        val_metrics = evaluate(model, val_loader, args, env, known_bad)
        known_bad.update(utils.gather_lists(sorted(known_bad), env))
        epoch_times.append(time.perf_counter() - epoch_start)
        record = {
            "epoch": epoch,
            **train_metrics,
            **{f"val_{k}": v for k, v in val_metrics.items()},
            "unreadable": sorted(known_bad),
            "epoch_seconds": round(epoch_times[-1], 3),
            "elapsed_seconds": round(time.time() - start_time, 3),
        }
        if env.is_main:
            log.write(record)
            checkpoint = {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "lr_scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(),
                "epoch": epoch,
                "args": _jsonable(args),
                "model_name": args.model,
                "num_classes": len(classes),
                "categories": list(classes),
                "recipe_weights": str(member),
                # what videozoo needs to use the file as weights= (videozoo.zoo.runs): the evaluation clips
                # and preprocessing of this run, and how its outputs are read
                "recipe": dataclasses.asdict(recipe),
                "preset": preset.settings(),
                "multi_label": args.multi_label,
                "metrics": record,
            }
            utils.save_atomic(checkpoint, args.output_dir / CHECKPOINT)
        left = (end_epoch - epoch - 1) * sum(epoch_times) / len(epoch_times)
        utils.print0(env, _summary(f"epoch {epoch + 1}/{args.epochs}", record, epoch_times[-1], left))
    utils.print0(env, f"done in {utils.hms(time.time() - start_time)}; checkpoint and metrics in {args.output_dir}")
    return 0


def _summary(header: str, m: dict[str, Any], seconds: float | None = None, left: float | None = None) -> str:
    p = "val_" if "val_videos" in m else ""
    parts = [header]
    if seconds is not None:
        parts.append(f"{utils.hms(seconds)}")
    if "train_loss" in m:
        parts.append(f"train loss {m['train_loss']:.4f} acc1 {m['train_acc1']:.1f}")
    if p + "video_map" in m:
        scores = f"val clip mAP {m[p + 'clip_map']:.2f} | video mAP {m[p + 'video_map']:.2f}"
    else:
        scores = (
            f"val clip acc1 {m[p + 'clip_acc1']:.2f} acc5 {m[p + 'clip_acc5']:.2f} | video acc1 {m[p + 'video_acc1']:.2f} "
            f"acc5 {m[p + 'video_acc5']:.2f}"
        )
    parts.append(
        f"{scores} ({m[p + 'videos']} videos"
        + (f", {m[p + 'skipped']} unreadable left out" if m[p + "skipped"] else "")
        + ")"
    )
    if m.get("train_skipped"):
        parts.append(f"{m['train_skipped']} unreadable training video(s) replaced")
    if left is not None:
        parts.append(f"eta {utils.hms(left)}")
    return " | ".join(parts)


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    try:
        env = utils.init_distributed(args.device, args.dist_backend)
    except UsageError as e:
        print(f"train.py: error: {e}", file=sys.stderr)
        return 2
    try:
        return run(args, env)
    except (UsageError, VideozooError) as e:
        if env.is_main:
            print(f"train.py: error: {e}", file=sys.stderr)
        return 2
    finally:
        utils.cleanup(env)


if __name__ == "__main__":
    sys.exit(main())
