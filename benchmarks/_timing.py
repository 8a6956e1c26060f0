"""Timing shared by the benchmark scripts: interleaved rounds, medians."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def interleaved_medians(runs: dict[str, Callable[[], object]], repeats: int, pause: float = 0.0) -> dict[str, float]:
    """Median seconds of each run over ``repeats`` rounds, one call of every run per round.

    Interleaving spreads any drift of the machine (another process, clock changes) over all runs
    alike, so their ratios hold even when the absolute times move. The caller warms the runs up first.
    ``pause`` seconds pass before each call: ONNX Runtime's and OpenVINO's worker threads keep spinning
    for a while after their run, and would otherwise slow the run that follows them on a small machine.
    """
    times: dict[str, list[float]] = {key: [] for key in runs}
    for _ in range(repeats):
        for key, run in runs.items():
            time.sleep(pause)
            start = time.perf_counter()
            run()
            times[key].append(time.perf_counter() - start)
    return {key: statistics.median(values) for key, values in times.items()}
