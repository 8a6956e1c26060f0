"""Peak memory of loading published weights: ``builder(weights=FILE)`` in a fresh process, against the file's size.

    python benchmarks/bench_load_memory.py                                   # internvideo2_1b
    python benchmarks/bench_load_memory.py --models internvideo2_1b internvideo2_l14 videomae_v2_b

For each model a file in the publisher's format is written first (of its first member whose published key
names are ours: InternVideo2's, VideoMAE V2's Kinetics-710 file), filled with zeros, and put in a
temporary cache, so no download happens. A fresh Python process then imports videozoo, notes its resident set (Linux's VmRSS),
builds the model with that member through the builder (the file found in the cache; parameters on the
meta device, then given storage and filled from the file) and reports its peak resident set (``ru_maxrss``). "peak - import" over the file's size is the loading's cost in copies of the
weights: 2 means the checkpoint and the model were both whole in memory at the peak, 1 that one copy was.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

import videozoo

_CHILD = r"""
import json, resource, sys, time
import torch, videozoo
# the resident set now (Linux): the high-water mark may hold a transient peak of the imports
before = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmRSS:"))
start = time.perf_counter()
model = videozoo.get_model(sys.argv[1], weights=sys.argv[2], progress=False)  # found in the cache
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
params = sum(p.numel() * p.element_size() for p in model.parameters())
print(json.dumps({"import_kb": before, "peak_kb": peak, "params_bytes": params, "seconds": seconds}))
"""


def write_published_file(name: str, folder: Path) -> tuple[str, Path]:
    """The file of ``name``'s first member whose published layout is our own (e.g. VideoMAE V2's Kinetics-710
    file, not its Kinetics-400 reading), zeros, named as that member's cached file; and the member's name."""
    for member in videozoo.get_model_weights(name):
        with torch.device("meta"):
            model = videozoo.get_model(name, num_classes=len(member.categories), **member.meta.get("model_args", {}))
        state = {k: torch.zeros(v.shape, dtype=v.dtype) for k, v in model.state_dict().items()}
        try:
            adapted = member.adapt_state_dict(state)
        except ValueError:
            continue
        if sorted(adapted) == sorted(state) and all(adapted[k].shape == state[k].shape for k in state):
            path = folder / member.file_name
            torch.save(state, path)
            return member.name, path
    raise SystemExit(f"{name}: no member's published layout is its own; this benchmark writes only such files.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["internvideo2_1b"])
    args = parser.parse_args()
    print("| model | file (GB) | parameters (GB) | peak RSS - import (GB) | copies | load (s) |")
    print("|---|---|---|---|---|---|")
    for name in args.models:
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "checkpoints").mkdir()
            member, path = write_published_file(name, Path(tmp) / "checkpoints")
            env = {**os.environ, "VIDEOZOO_OFFLINE": "1", "VIDEOZOO_HOME": tmp}
            out = subprocess.run(
                [sys.executable, "-c", _CHILD, name, member], env=env, check=True, capture_output=True, text=True
            ).stdout
            result = json.loads(out.strip().splitlines()[-1])
            size = path.stat().st_size
        grown = (result["peak_kb"] - result["import_kb"]) * 1024
        print(
            f"| `{name}` {member} | {size / 1e9:.2f} | {result['params_bytes'] / 1e9:.2f} | {grown / 1e9:.2f} | "
            f"{grown / size:.2f} | {result['seconds']:.1f} |"
        )


if __name__ == "__main__":
    main()
