#!/usr/bin/env bash
# The CUDA benchmark and CPU cross-check (benchmarks/bench_gpu.py) on a machine with a GPU, whose python3
# has torch with CUDA (requests, tqdm and filelock too; PyAV is not needed). Usage:
#   bash benchmarks/gpu.sh OUT_DIR [bench_gpu.py options, e.g. --models x3d_m --budget 300]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-gpu-results}
shift || true
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 python3 benchmarks/bench_gpu.py --out "$out" "$@"
