"""Time building a model with weights: the builder (no random initialisation) against build-then-load.

    python benchmarks/bench_build.py                         # swin3d_b, 5 interleaved repeats
    python benchmarks/bench_build.py --models swin3d_b mvit_v1_b x3d_m --repeats 7

*build then load* is what a builder did before it skipped the initialisation (and what
``model = builder(); model.load_state_dict(...)`` still does): construct with random initialisation,
then copy the checkpoint in. *builder* is ``builder(weights=...)``: parameters created on the meta device,
then given storage and filled from the file. Both read the same file from a temporary cache (a filled
state_dict in the published layout, written first, so no download happens) through the same loading
path; the difference is the initialisation. Medians of interleaved runs in one process, wall and CPU time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

import videozoo


def _timed(fn) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["swin3d_b"])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'model':<12} {'build then load (s)':>20} {'builder (s)':>12} {'speed-up':>9}   (median wall; CPU time)")
    with tempfile.TemporaryDirectory() as home:
        os.environ["VIDEOZOO_HOME"] = home
        cache = Path(home) / "checkpoints"
        cache.mkdir()
        for name in args.models:
            builder = videozoo.get_model_builder(name)
            member = videozoo.get_model_weights(name).DEFAULT
            torch.save(builder().state_dict(), cache / os.path.basename(member.url))
            if member.state_dict_adapter is not None:
                print(f"{name:<12} skipped: its published layout differs from ours (use a torchvision-format model)")
                continue

            def build_then_load() -> None:
                videozoo.load_weights(builder(), member)

            def build_with_weights() -> None:
                builder(weights=member)

            old, new = [], []
            for _ in range(args.repeats):
                old.append(_timed(build_then_load))
                new.append(_timed(build_with_weights))
            old_wall, new_wall = (statistics.median(t[0] for t in runs) for runs in (old, new))
            old_cpu, new_cpu = (statistics.median(t[1] for t in runs) for runs in (old, new))
            print(
                f"{name:<12} {old_wall:>12.2f} ({old_cpu:5.2f}) {new_wall:>6.2f} ({new_cpu:4.2f}) "
                f"{old_wall / new_wall:>8.1f}x"
            )


if __name__ == "__main__":
    main()
