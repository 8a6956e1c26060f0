"""Whole collections of videos, resumable and sharded by torchrun: the one driver every collection task uses.

:func:`run_collection` is the road from a list of videos to one JSON-lines index in an output folder:

1. **manifest**: the videos (:func:`read_manifest`: a text file of paths, one per line; blank lines and
   ``#`` comments skipped, relative paths relative to the manifest's folder), made absolute,
   de-duplicated and sorted (:func:`normalise`), the same list on every rank;
2. **configuration**: the task's settings are written to ``<task>.json`` in the folder by the first run;
   a later run with other settings is refused (a rerun skips finished videos, so a changed model,
   window or dtype would otherwise mix results silently). The check and the write hold the folder's
   lock, so two runs started together cannot both write their own;
3. **shard**: video ``i`` goes to rank ``i % world_size`` (:func:`shard`); whether a video is done is
   decided by its finished record (an ``ok`` line in the index or in a part file left by a killed run),
   not by the shard it was in, so a rerun with another number of processes redoes nothing finished;
   One run at a time writes into a folder: a second one with the same settings waits for the first to
   finish (:func:`hold_folder`), then finds its videos done;
4. **parts**: each rank appends a video's record to its own part file as soon as it is done
   (:class:`Session`; a kill loses at most that line);
5. **merge**: once every rank is done (a gloo barrier under torchrun), rank 0 writes the index, one
   record per video in sorted path order, and removes the parts.

A task gives the driver a :class:`CollectionTask`: its index and configuration names, the fields every
record carries, and a function that processes a list of videos. Under ``torchrun``
(``WORLD_SIZE > 1``) a gloo process group is initialised for the barriers; alone, nothing distributed
is touched.
"""

from __future__ import annotations

import datetime
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "CollectionTask",
    "Session",
    "VideosArg",
    "normalise",
    "one_at_a_time",
    "read_manifest",
    "run_collection",
    "shard",
    "write_atomic",
]

#: Video paths, or the path of a manifest file listing them.
VideosArg = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]

#: What a task's ``process`` yields per video: ``(path, fields, error)``, the result's fields or the error's text.
Outcome = tuple[str, "dict[str, Any] | None", "str | None"]
LOCK = ".videozoo.lock"  # the output folder's lock (configuration check and write)
RUN_LOCK = ".videozoo.run.lock"  # held by one run at a time (see hold_folder)

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
        self._part_path = self.out_dir / PARTS / f"rank{self.rank}-of-{self.world_size}-{os.getpid()}.jsonl"
        self._part: Any = None  # opened with the first record, once this run holds the folder

    def record(self, entry: dict[str, Any]) -> None:
        """Append one record to this rank's part file (flushed at once, so a kill loses at most this line)."""
        if self._part is None:
            self._part_path.parent.mkdir(exist_ok=True)  # a run that finished meanwhile removed it
            self._part = open(self._part_path, "a", encoding="utf-8")
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
                found[entry["video"]] = entry
        return found

    def finish(self, index_name: str, merge: Callable[[], list[dict[str, Any]]]) -> Path:
        """Wait for every rank, then rank 0 writes ``merge()``'s records as the JSON-lines index and drops the parts.

        Args:
            index_name: file name of the index in ``out_dir``.
            merge: builds the index's records (called on rank 0 only, after the barrier).
        """
        if self._part is not None:
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
        if self._part is not None and not self._part.closed:
            self._part.close()
        if self._owns_group:
            import torch.distributed as dist

            dist.destroy_process_group()
            self._owns_group = False


@dataclass
class CollectionTask:
    """What a task gives :func:`run_collection`.

    Args:
        name: the task (``classify``, ``timeline``, ``extract``); its configuration file is ``<name>.json``.
        index_name: the JSON-lines index written in the output folder.
        base: fields every record carries (``model``, ``weights``, ...).
        config: the settings a rerun must share (default: ``base``).
        process: yields an :data:`Outcome` for each video of the list it is given, as each is done.
        error_fields: fields an error record carries besides ``base``, ``status`` and ``error``.
        finished: whether an ``ok`` record's outputs are still there (default: always).
    """

    name: str
    index_name: str
    base: dict[str, Any]
    process: Callable[[list[str]], Iterable[Outcome]]
    config: dict[str, Any] | None = None
    error_fields: dict[str, Any] = field(default_factory=dict)
    finished: Callable[[dict[str, Any]], bool] = lambda record: True

    def record(self, path: str, fields: dict[str, Any] | None, error: str | None) -> dict[str, Any]:
        if error is not None:
            return {"video": path, **self.base, **self.error_fields, "status": "error", "error": error}
        return {"video": path, **self.base, "status": "ok", "error": None, **(fields or {})}


def one_at_a_time(run: Callable[[str], Any], errors: tuple[type[Exception], ...]) -> Callable[[list[str]], Iterator[Outcome]]:
    """A :class:`CollectionTask`'s ``process`` for a task that takes one video at a time (timeline, detect).

    Args:
        run: a video's path to its result, whose ``to_dict()`` fields but ``video``, ``model`` and
            ``weights`` (every record carries those) are the video's record.
        errors: the exceptions that make a video's error record (its text the error) rather than stop the run.
    """

    def process(todo: list[str]) -> Iterator[Outcome]:
        for path in todo:
            try:
                fields = run(path).to_dict()
            except errors as e:
                yield path, None, str(e)
                continue
            for key in ("video", "model", "weights"):
                fields.pop(key, None)
            yield path, fields, None

    return process


def videos_of(videos_or_manifest: VideosArg) -> list[str]:
    """The normalised video list of a list of paths or a manifest file."""
    if isinstance(videos_or_manifest, (str, os.PathLike)):
        return normalise(read_manifest(videos_or_manifest))
    return normalise(videos_or_manifest)


def run_collection(videos_or_manifest: VideosArg, out_dir: str | os.PathLike[str], task: CollectionTask) -> list[dict[str, Any]]:
    """Run ``task`` on this rank's share of the videos not yet done in ``out_dir``; rank 0 writes the index.

    Returns the records: every video's on rank 0, this rank's own elsewhere. Raises ``ValueError`` when
    ``out_dir`` holds results of another configuration.
    """
    videos = videos_of(videos_or_manifest)
    session = Session(out_dir)
    held = None
    try:
        check_configuration(session.out_dir, task.name, task.config if task.config is not None else task.base)
        if session.rank == 0:
            held = hold_folder(session.out_dir)
        session.barrier()
        index = session.out_dir / task.index_name
        previous: dict[str, dict[str, Any]] = {}
        if index.exists():
            for line in index.read_text(encoding="utf-8").splitlines():
                entry = json.loads(line)
                previous[entry["video"]] = entry
        previous.update(session.part_records())
        done = {path for path, entry in previous.items() if entry.get("status") == "ok" and task.finished(entry)}
        todo = [v for v in shard(videos, session.rank, session.world_size) if v not in done]
        own = []
        for path, fields, error in task.process(todo) if todo else ():
            record = task.record(path, fields, error)
            session.record(record)
            own.append(record)

        def merge() -> list[dict[str, Any]]:
            latest = {**previous, **session.part_records()}
            return [latest.get(v) or task.record(v, None, "not processed") for v in videos]

        session.finish(task.index_name, merge)
        if session.rank == 0:
            return [json.loads(line) for line in index.read_text(encoding="utf-8").splitlines()]
        return own
    finally:
        session.close()
        if held is not None:
            held.release()


def hold_folder(out: Path) -> Any:
    """The folder's run lock, held by rank 0 of one run at a time (returned acquired; ``release()`` it).

    A second run into the same folder with the same settings waits here until the first has written its
    index, then finds its videos done and redoes none of them (two runs at once would also remove each
    other's part files when they merge).
    """
    from filelock import FileLock, Timeout

    lock = FileLock(str(out / RUN_LOCK))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        print(f"videozoo: another run is writing into {out}; waiting for it to finish.", file=sys.stderr, flush=True)
        lock.acquire()
    return lock


def check_configuration(out: Path, name: str, config: dict[str, Any]) -> None:
    """Refuse to add results computed another way to ``out``; the first run records its configuration.

    The check and the write hold the folder's lock: of two runs started together with other settings,
    one writes its configuration and the other is refused.
    """
    from filelock import FileLock

    path = out / f"{name}.json"
    config = json.loads(json.dumps(config))
    with FileLock(str(out / LOCK)):
        if path.exists():
            saved = json.loads(path.read_text(encoding="utf-8"))
            changed = sorted(k for k in set(saved) | set(config) if saved.get(k) != config.get(k))
            if changed:
                what = "; ".join(f"{k} {saved.get(k)!r} there, {config.get(k)!r} now" for k in changed)
                raise ValueError(
                    f"{out} holds {name} results computed with another configuration ({what}). Use another output "
                    f"folder, or the same settings to resume."
                )
        else:
            write_atomic(path, lambda f: f.write(json.dumps(config, indent=1).encode("utf-8")))
