"""Distributed setup, metric reduction, atomic checkpoints, the LR schedule and progress lines.

Everything distributed is torch.distributed's own: torchrun sets RANK / WORLD_SIZE / LOCAL_RANK (and
the rendezvous), we only call ``init_process_group`` with gloo (CPU) or nccl (GPU). Started without
torchrun the script is a single process with no process group at all.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist


class UsageError(Exception):
    """Bad arguments or bad data: printed as one line, exit status 2, no traceback."""


# ----------------------------------------------------------------------------------------------------
# Processes


@dataclass
class Env:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    device: torch.device = torch.device("cpu")
    distributed: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str = "auto", backend: str | None = None) -> Env:
    """Read torchrun's environment, pick the device and start the process group (if > 1 process)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world_size = int(os.environ.get("LOCAL_WORLD_SIZE", str(world_size)))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise UsageError("--device cuda was asked for but torch.cuda.is_available() is False; use --device cpu.")
        if local_rank >= torch.cuda.device_count():
            raise UsageError(
                f"local rank {local_rank} has no GPU: this node has {torch.cuda.device_count()}; start at most "
                f"that many processes per node (torchrun --nproc_per_node)."
            )
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    elif device == "cpu":
        dev = torch.device("cpu")
    else:
        raise UsageError(f"--device must be auto, cpu or cuda, got {device!r}.")
    env = Env(rank, world_size, local_rank, local_world_size, dev, world_size > 1)
    if env.distributed:
        backend = backend or ("nccl" if dev.type == "cuda" else "gloo")
        kwargs: dict[str, Any] = {"backend": backend}
        if dev.type == "cuda":
            kwargs["device_id"] = dev
        dist.init_process_group(**kwargs)
    return env


def cleanup(env: Env) -> None:
    if env.distributed and dist.is_initialized():
        dist.destroy_process_group()


def reduce_sums(values: Sequence[float], env: Env) -> list[float]:
    """Sum each value over all processes (float64, so counts stay exact)."""
    t = torch.tensor(list(values), dtype=torch.float64, device=env.device)
    if env.distributed:
        dist.all_reduce(t)
    return t.tolist()


def broadcast_buffers(model: torch.nn.Module, env: Env) -> None:
    """Give every process rank 0's buffers (BatchNorm running statistics drift apart between ranks)."""
    if env.distributed:
        for buffer in model.buffers():
            dist.broadcast(buffer, 0)


def gather_lists(items: list[Any], env: Env) -> list[Any]:
    """Concatenate every process's list (small picklable items: error messages, paths)."""
    if not env.distributed:
        return list(items)
    out: list[list[Any] | None] = [None] * env.world_size
    dist.all_gather_object(out, items)
    return [x for part in out for x in (part or [])]


def print0(env: Env, *args: Any) -> None:
    """Print a progress line on stderr, from rank 0 only."""
    if env.is_main:
        print(*args, file=sys.stderr, flush=True)


def warn(env: Env, message: str) -> None:
    """A warning from whichever process met the problem (it may be the only one that sees it)."""
    prefix = f"[rank {env.rank}] " if env.distributed else ""
    print(f"{prefix}warning: {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------------
# Files (rank 0 only)


def save_atomic(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file in the same folder, fsync, then rename over ``path``.

    A crash at any moment leaves either the previous complete file or the new complete file.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    try:  # make the rename itself durable
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


class MetricsLog:
    """One JSON object per epoch in ``metrics.jsonl``; on resume, lines of epochs to be redone are dropped."""

    def __init__(self, path: Path, start_epoch: int) -> None:
        self.path = Path(path)
        kept = []
        if start_epoch > 0 and self.path.is_file():
            for line in self.path.read_text().splitlines():
                try:
                    if json.loads(line).get("epoch", math.inf) < start_epoch:
                        kept.append(line)
                except json.JSONDecodeError:
                    pass
        self.path.write_text("".join(line + "\n" for line in kept))

    def write(self, record: dict[str, Any]) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())


# ----------------------------------------------------------------------------------------------------
# Schedule and randomness


class WarmupCosine:
    """LR factor for ``LambdaLR``, per optimizer step: linear warm-up, then cosine decay to ``min_factor``.

    A class, not a closure, so that ``LambdaLR.state_dict()`` records it.
    """

    def __init__(self, warmup_steps: int, total_steps: int, warmup_factor: float, min_factor: float) -> None:
        self.warmup_steps = int(warmup_steps)
        self.total_steps = max(int(total_steps), 1)
        self.warmup_factor = float(warmup_factor)
        self.min_factor = float(min_factor)

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            alpha = step / self.warmup_steps
            return self.warmup_factor + (1.0 - self.warmup_factor) * alpha
        span = max(self.total_steps - self.warmup_steps, 1)
        progress = min((step - self.warmup_steps) / span, 1.0)
        return self.min_factor + (1.0 - self.min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def seed_epoch(seed: int, epoch: int, rank: int) -> None:
    """Reseed the global RNGs at the start of every epoch, so a resumed run draws what the original would have."""
    torch.manual_seed(seed + 100_003 * (epoch + 1) + 1_009 * rank)


# ----------------------------------------------------------------------------------------------------
# Progress


def hms(seconds: float) -> str:
    return str(datetime.timedelta(seconds=int(max(seconds, 0))))


class Progress:
    """Running averages and an ETA line every ``every`` iterations (rank 0, stderr)."""

    def __init__(self, env: Env, header: str, total: int, every: int, run_eta=None) -> None:
        self.env, self.header, self.total, self.every = env, header, total, max(every, 1)
        self.run_eta = run_eta  # seconds left in this phase -> seconds left in the whole run
        self.start = time.perf_counter()
        self.sums: dict[str, float] = {}
        self.count = 0

    def update(self, i: int, n: int, note: str = "", **values: float) -> None:
        """Iteration ``i`` (0-based) processed ``n`` items with these per-item ``values``."""
        self.count += n
        for key, value in values.items():
            self.sums[key] = self.sums.get(key, 0.0) + value * n
        done = i + 1
        if done % self.every and done != self.total:
            return
        elapsed = time.perf_counter() - self.start
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - done) / rate if rate > 0 else 0.0
        parts = [f"{self.header} [{done:>{len(str(self.total))}}/{self.total}]", f"eta {hms(eta)}"]
        if self.run_eta is not None:
            parts.append(f"(run {hms(self.run_eta(eta))})")
        parts += [f"{k} {v / max(self.count, 1):.4g}" for k, v in self.sums.items()]
        if note:
            parts.append(note)
        parts.append(f"{rate:.2f} it/s")
        print0(self.env, "  ".join(parts))
