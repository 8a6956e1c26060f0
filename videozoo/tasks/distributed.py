"""Sharding a collection of videos across torchrun ranks, resumably, and merging the ranks' records.

Used by ``videozoo extract`` (:mod:`videozoo.features`). Under ``torchrun`` (``WORLD_SIZE > 1``) a gloo
process group is initialised for the final barrier; alone, nothing distributed is touched.

- :func:`read_manifest`: a text file of video paths, one per line; blank lines and ``#`` comments are
  skipped, relative paths are relative to the manifest's folder.
- :func:`normalise`: absolute paths, duplicates removed, sorted: the same list on every rank.
- :func:`shard`: video ``i`` of that list goes to rank ``i % world_size``. Whether a video is done is
  decided by its finished output (not by the shard it was in), so a rerun with another number of
  processes redoes nothing finished.
- :class:`Session`: rank, world size, the per-rank part file of records, the barrier and the merge.
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["read_manifest", "normalise", "shard", "Session", "write_atomic"]

PARTS = "_parts"  # folder of the per-rank record files, removed after the merge


def read_manifest(path: str | os.PathLike[str]) -> list[str]:
    """The video paths listed in a manifest file (absolute; relative entries are resolved against its folder).

    Args:
        path: a text file, one video path per line; blank lines and lines starting with ``#`` are skipped.
    """
    manifest = Path(path)
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest}: no such manifest file (a text file of video paths, one per line).")
    base = manifest.resolve().parent
    out = []
    for line in manifest.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        p = Path(os.path.expanduser(line))
        out.append(str(p if p.is_absolute() else base / p))
    return out


def normalise(videos: Iterable[str | os.PathLike[str]]) -> list[str]:
    """Absolute, de-duplicated, sorted paths: every rank computes the same list from the same input."""
    return sorted({os.path.abspath(os.fspath(v)) for v in videos})


def shard(items: Sequence[str], rank: int, world_size: int) -> list[str]:
    """Item ``i`` goes to rank ``i % world_size``."""
    return list(items[rank::world_size])


def write_atomic(path: Path, write: Callable[[Any], None], mode: str = "wb") -> None:
    """Write ``path`` through a temporary file in the same folder and ``os.replace`` it into place.

    Args:
        write: called with the open temporary file.
    """
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class Session:
    """This process's place in a (possibly torchrun-launched) run writing into ``out_dir``.

    Args:
        out_dir: the output folder (created).
        timeout_s: how long the final barrier waits for the slowest rank (a rank finishing its shard).
    """

    def __init__(self, out_dir: str | os.PathLike[str], timeout_s: float = 7 * 24 * 3600) -> None:
        self.rank = int(os.environ.get("RANK", "0"))
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        (self.out_dir / PARTS).mkdir(exist_ok=True)
        self._owns_group = False
        if self.world_size > 1:
            import torch.distributed as dist

            if not dist.is_initialized():
                dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=timeout_s))
                self._owns_group = True
        self._part = open(self.out_dir / PARTS / f"rank{self.rank}-of-{self.world_size}-{os.getpid()}.jsonl", "a", encoding="utf-8")

    def record(self, entry: dict[str, Any]) -> None:
        """Append one record to this rank's part file (flushed at once, so a kill loses at most this line)."""
        self._part.write(json.dumps(entry) + "\n")
        self._part.flush()

    def barrier(self) -> None:
        if self.world_size > 1:
            import torch.distributed as dist

            dist.barrier()

    def part_records(self) -> dict[str, dict[str, Any]]:
        """The latest record of each video in all part files (this run's and any killed run's)."""
        found: dict[str, dict[str, Any]] = {}
        for part in sorted((self.out_dir / PARTS).glob("*.jsonl"), key=lambda p: p.stat().st_mtime):
            for line in part.read_text(encoding="utf-8").splitlines():
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:  # a line cut by a kill
                    continue
                found[entry["path"]] = entry
        return found

    def finish(self, index_name: str, merge: Callable[[], list[dict[str, Any]]]) -> Path:
        """Wait for every rank, then rank 0 writes ``merge()``'s records as the JSON-lines index and drops the parts.

        Args:
            index_name: file name of the index in ``out_dir``.
            merge: builds the index's records (called on rank 0 only, after the barrier).
        """
        self._part.close()
        self.barrier()
        index = self.out_dir / index_name
        if self.rank == 0:
            records = merge()
            write_atomic(index, lambda f: f.writelines(json.dumps(r) + "\n" for r in records), "w")
            for part in (self.out_dir / PARTS).glob("*.jsonl"):
                part.unlink(missing_ok=True)
            try:
                (self.out_dir / PARTS).rmdir()
            except OSError:  # not empty: something else was put there
                pass
        self.barrier()
        return index

    def close(self) -> None:
        if not self._part.closed:
            self._part.close()
        if self._owns_group:
            import torch.distributed as dist

            dist.destroy_process_group()
            self._owns_group = False
