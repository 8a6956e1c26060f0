"""videozoo.reuse_freed_memory: a freed 64 MiB activation is reused without faulting its pages back in."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Allocates and fills a 64 MiB tensor (above glibc's 32 MiB mmap ceiling, like a video network's
# activations) and frees it, three times to settle (the heap's layout may take a round or two to reach
# its steady state, e.g. when another thread allocated in between), then three more, and prints the
# fewest page faults one of those took.
CHILD = """
import contextlib, io, resource, sys, torch, videozoo, videozoo.cli
applied = videozoo.reuse_freed_memory() if sys.argv[1] == "reuse" else None
if sys.argv[1] == "cli":
    with contextlib.redirect_stdout(io.StringIO()):
        videozoo.cli.main(["models"])
def round_trip():
    x = torch.empty(16 * 2**20)  # 64 MiB of float32
    x.fill_(1.0)
    del x
def faults():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    round_trip()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
for _ in range(3):
    round_trip()
print(applied, min(faults() for _ in range(3)))
"""

PAGES = 64 * 2**20 // 4096


def settled_faults(mode: str) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True, check=True)
    applied, faults = out.stdout.split()
    return applied, int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator (Linux)")
def test_freed_memory_is_reused_without_page_faults() -> None:
    applied, faults = settled_faults("default")
    assert faults > PAGES // 2  # glibc's default: the block is unmapped on free, its pages fault in every time
    applied, faults = settled_faults("reuse")
    assert applied == "True"
    assert faults < PAGES // 10


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator (Linux)")
def test_command_line_applies_it() -> None:
    _, faults = settled_faults("cli")
    assert faults < PAGES // 10
