"""Text search over a collection's stored windows: seconds per query, brute force over a memory-mapped matrix.

    python benchmarks/bench_search.py                                   # 1,000,000 windows x 1024, 1,000 videos
    python benchmarks/bench_search.py --windows 20000 --videos 50 --from-npz   # also time gathering extract's .npz

A features folder is written once into ``--dir`` (default ``$TMPDIR/videozoo_bench_search``; never the
repository): random unit-length float32 embeddings of ``--dim`` (PE-Core B and L: 1024) for
``--windows`` windows spread over ``--videos`` videos, in the form ``videozoo search`` keeps them
(``search/<model>.npy`` beside an ``index.jsonl``; 4.1 GB at the defaults). With ``--from-npz`` the
folder is instead written as ``videozoo extract`` writes it (one ``.npz`` per video) and the first search
gathers it into that matrix: its time is reported apart (it happens once per collection).

Each query is a random unit vector (the text tower's time, about 50 ms for PE-Core B on a CPU, is the
same for every collection size and is left out): :func:`videozoo.tasks.search.rank` maps the matrix,
multiplies it by the query in blocks, and picks the best windows and videos. The first query reads the
matrix from disk (``cold``, unless the page cache holds it already); the others are the median of
``--queries`` (``warm``). The issue's bar: under 2 s for 1,000,000 windows.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from videozoo.tasks.search import rank, window_matrix

MODEL = "pe_core_l14"


def write_folder(folder: Path, windows: int, videos: int, dim: int, from_npz: bool, seed: int = 0) -> None:
    """The features folder: ``index.jsonl`` and either extract's ``.npz`` files or search's matrix."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    counts = np.full(videos, windows // videos)
    counts[: windows % videos] += 1
    records, blocks, times, first, row = [], [], [], [], 0
    for v, count in enumerate(counts.tolist()):
        features = rng.standard_normal((count, dim), dtype=np.float32)
        features /= np.linalg.norm(features, axis=1, keepdims=True)
        spans = np.stack([np.arange(count) * 2.0, np.arange(count) * 2.0 + 4.0], axis=1)
        name = f"video{v:06d}.npz"
        records.append({
            "video": f"/videos/video{v:06d}.mp4", "output": name, "windows": count, "num_features": dim, "model": MODEL,
            "weights": "PECore_L14_Weights.ZERO_SHOT", "status": "ok", "error": None,
        })  # fmt: skip
        if from_npz:
            np.savez(folder / name, features=features, times=spans, record=np.asarray(json.dumps(records[-1])))
        else:
            blocks.append(features)
            times.append(spans)
            first.append(row)
        row += count
    with open(folder / "index.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)
    if not from_npz:
        stamp = (folder / "index.jsonl").stat()
        key = {"index_size": stamp.st_size, "index_mtime_ns": stamp.st_mtime_ns, "model": MODEL}
        (folder / "search").mkdir(exist_ok=True)
        np.save(folder / "search" / f"{MODEL}.npy", np.concatenate(blocks))
        np.save(folder / "search" / f"{MODEL}-times.npy", np.concatenate(times))
        meta = {"key": key, "videos": [r["video"] for r in records], "first": first}
        (folder / "search" / f"{MODEL}.json").write_text(json.dumps(meta), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=1_000_000)
    parser.add_argument("--videos", type=int, default=1_000)
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--from-npz", action="store_true", help="write extract's .npz files and time gathering them")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "videozoo_bench_search")
    args = parser.parse_args()

    folder = args.dir / f"{args.windows}x{args.dim}-{args.videos}{'-npz' if args.from_npz else ''}"
    if not (folder / "index.jsonl").is_file():
        start = time.perf_counter()
        write_folder(folder, args.windows, args.videos, args.dim, args.from_npz)
        print(f"wrote {folder} in {time.perf_counter() - start:.1f} s")
    start = time.perf_counter()
    windows = window_matrix(folder)
    opened = time.perf_counter() - start
    what = "gathered the .npz files into the matrix" if args.from_npz else "opened the matrix"
    print(f"{what}: {opened:.3f} s ({windows.matrix.shape[0]:,} windows x {windows.matrix.shape[1]}, "
          f"{windows.matrix.nbytes / 2**30:.2f} GiB, {os.cpu_count()} CPUs)")  # fmt: skip
    rng = np.random.default_rng(1)
    queries = rng.standard_normal((args.queries + 1, args.dim), dtype=np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    start = time.perf_counter()
    rank(windows, queries[0], args.top_k)
    cold = time.perf_counter() - start
    warm = []
    for q in queries[1:]:
        start = time.perf_counter()
        moments, _ = rank(windows, q, args.top_k)
        warm.append(time.perf_counter() - start)
    print(f"first query (cold): {cold:.3f} s; then median {statistics.median(warm):.3f} s, "
          f"min {min(warm):.3f} s over {len(warm)} queries (top {args.top_k}: best score {moments[0].score:.3f})")  # fmt: skip


if __name__ == "__main__":
    main()
