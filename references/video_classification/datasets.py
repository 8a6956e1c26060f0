"""Which videos, with which labels, and how each one becomes model input.

Two sources of ``(path, label)`` samples:

* a folder tree ``root/{train,val}/<class>/<video>`` (the Kinetics layout); the class names are the
  sorted sub-folders of ``root/train``;
* annotation files of ``path label`` lines (UCF101's ``trainlist01.txt`` / ``testlist01.txt`` and the
  like): the label is a class name or an integer index; a line holding only a path takes its label
  from the name of the video's folder (UCF101's test lists); integer labels index ``--classes``
  (UCF101's ``classInd.txt`` with its ``1 ApplyEyeMakeup`` lines, or one name per line), or are
  0-based class indices when no class file is given. A multi-label video (Charades) lists its labels
  separated by commas, ``path 12,97,148``.

Multi-label runs (``num_classes`` given to the datasets) turn each video's labels into a multi-hot
float vector; single-label runs keep the class index.

Decoding is :class:`videozoo.video.io.VideoReader`'s, clip times come from the recipe
(:class:`videozoo.ClipRecipe`), and evaluation views are built by videozoo's own inference
code, so a validation accuracy here is what ``videozoo.predict`` scores with the same weights and recipe.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Union

import torch
from torch import Tensor
from torch.utils.data import Dataset, Sampler

from videozoo.errors import VideoDecodeError
from videozoo.video.views import clip_views  # the views of one video, exactly as videozoo.predict makes them
from videozoo.video.io import VideoReader
from videozoo.zoo import ClipRecipe
from videozoo.video.sampling import nearest_frames

from transforms import TrainAugment
from utils import UsageError

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".ogv", ".flv", ".wmv", ".3gp")

#: A sample that cannot be decoded is replaced by another one drawn at random, at most this many times in a row.
MAX_REPLACEMENTS = 10

#: A video's class index, or its class indices when it has several (multi-label data).
Label = Union[int, tuple[int, ...]]
Samples = list[tuple[str, Label]]


# ----------------------------------------------------------------------------------------------------
# Sample lists


def _is_video(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(VIDEO_EXTENSIONS)


def scan_folder(split_dir: Path, classes: Sequence[str] | None = None) -> tuple[Samples, list[str]]:
    """``(path, label)`` for every video under ``split_dir/<class>/``; classes from the folders if not given."""
    split_dir = Path(split_dir)
    if not split_dir.is_dir():
        what = "is not a directory" if split_dir.exists() else "does not exist"
        raise UsageError(
            f"{split_dir} {what}. --data-path must hold train/ and val/ folders with one sub-folder of videos "
            f"per class (root/train/<class>/*.mp4), or use --train-list/--val-list annotation files."
        )
    folders = sorted(e.name for e in os.scandir(split_dir) if e.is_dir() and not e.name.startswith("."))
    if not folders:
        raise UsageError(f"{split_dir} has no class folders; expected {split_dir}/<class>/<video files>.")
    if classes is None:
        classes = folders
    else:
        unknown = [f for f in folders if f not in classes]
        if unknown:
            raise UsageError(
                f"{split_dir} has class folder(s) that training does not have: {', '.join(unknown[:5])}"
                f"{' ...' if len(unknown) > 5 else ''}. Every validation class needs training videos."
            )
    index = {name: i for i, name in enumerate(classes)}
    samples: Samples = []
    for name in folders:
        folder = split_dir / name
        videos = sorted(e.name for e in os.scandir(folder) if e.is_file() and _is_video(e.name))
        if not videos:
            others = sum(1 for e in os.scandir(folder) if e.is_file())
            found = f"{others} file(s) without a video extension" if others else "nothing"
            raise UsageError(
                f"class folder {folder} is empty: it holds {found}; video files end in "
                f"{', '.join(VIDEO_EXTENSIONS)}. Add its videos or remove the folder."
            )
        samples.extend((str(folder / v), index[name]) for v in videos)
    return samples, list(classes)


def read_classes_file(path: Path) -> tuple[list[str], dict[int, int]]:
    """Class names in index order, and how the file's own numbers map to those indices.

    Lines are ``name`` or ``number name`` (UCF101's 1-based ``classInd.txt``).
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"--classes {path}: no such file.")
    names: list[str] = []
    numbers: dict[int, int] = {}
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        if len(parts) >= 2 and parts[0].lstrip("-").isdigit():
            numbers[int(parts[0])] = len(names)
            name = " ".join(parts[1:])
        else:
            name = " ".join(parts)
        if name in names:
            raise UsageError(f"{path}:{lineno}: class {name!r} is listed twice.")
        names.append(name)
    if not names:
        raise UsageError(f"--classes {path} lists no classes.")
    return names, numbers


def read_annotations(list_file: Path, video_root: Path | None) -> tuple[list[tuple[str, str | int, int]], list[str]]:
    """Raw ``(path, label, line number)`` entries of an annotation file and the paths that do not exist."""
    list_file = Path(list_file)
    if not list_file.is_file():
        raise UsageError(f"annotation file {list_file}: no such file.")
    root = Path(video_root) if video_root is not None else list_file.parent
    if not root.is_dir():
        raise UsageError(f"--video-root {root}: no such directory.")
    entries, missing = [], []
    for lineno, line in enumerate(list_file.read_text().splitlines(), 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        parts = text.rsplit(maxsplit=1)
        if len(parts) == 2:
            rel, label = parts[0].strip(), parts[1]
        else:
            rel, label = parts[0], None
        path = rel if os.path.isabs(rel) else str(root / rel)
        if label is None:
            label = Path(rel).parent.name
            if not label:
                raise UsageError(f"{list_file}:{lineno}: {rel!r} has no label and no class folder to take it from.")
        elif "," in label:
            label = tuple(int(part) if part.lstrip("-").isdigit() else part for part in label.split(",") if part)
        elif label.lstrip("-").isdigit():
            label = int(label)
        if not os.path.isfile(path):
            missing.append(path)
            continue
        entries.append((path, label, lineno))
    return entries, missing


def label_samples(
    entries: list[tuple[str, str | int | tuple, int]], list_file: Path, classes: list[str], numbers: dict[int, int] | None
) -> Samples:
    index = {name: i for i, name in enumerate(classes)}
    samples: Samples = []
    for path, label, lineno in entries:
        if isinstance(label, tuple):
            indices = label_samples([(path, part, lineno) for part in label], list_file, classes, numbers)
            samples.append((path, tuple(sorted({i for _, i in indices}))))
            continue
        if isinstance(label, int):
            i = numbers.get(label) if numbers else label
            if i is None or not 0 <= i < len(classes):
                known = f"the numbers of --classes ({min(numbers)}-{max(numbers)})" if numbers else f"0-{len(classes) - 1}"
                raise UsageError(f"{list_file}:{lineno}: label {label} is outside {known}.")
        else:
            i = index.get(label)
            if i is None:
                raise UsageError(
                    f"{list_file}:{lineno}: unknown class {label!r}"
                    f"{' (not in --classes)' if numbers is not None else ' (no training video has it)'}."
                )
        samples.append((path, i))
    return samples


def annotation_samples(
    train_list: Path, val_list: Path, video_root: Path | None, classes_file: Path | None, warn
) -> tuple[Samples, Samples, list[str]]:
    """Train and validation samples from two annotation files."""
    names, numbers = read_classes_file(classes_file) if classes_file is not None else (None, None)
    loaded = {}
    for split, list_file in (("train", train_list), ("val", val_list)):
        entries, missing = read_annotations(list_file, video_root)
        if missing and not entries:
            raise UsageError(
                f"none of the {len(missing)} videos listed in {list_file} exists (the first is {missing[0]}). "
                f"Paths are relative to --video-root (default: the list file's folder)."
            )
        if missing:
            warn(f"{list_file}: {len(missing)} listed video(s) do not exist and are left out, e.g. {missing[0]}")
        if not entries:
            raise UsageError(f"annotation file {list_file} lists no videos.")
        loaded[split] = entries
    if names is None:
        labels = [part for _, label, _ in loaded["train"] for part in (label if isinstance(label, tuple) else (label,))]
        if all(isinstance(label, int) for label in labels):
            val_labels = [part for _, label, _ in loaded["val"] for part in (label if isinstance(label, tuple) else (label,))]
            every = labels + [label for label in val_labels if isinstance(label, int)]
            if min(every) < 0:
                raise UsageError(f"{train_list}: class indices must be >= 0; got {min(every)}.")
            names = [str(i) for i in range(max(every) + 1)]
        elif any(isinstance(label, int) for label in labels):
            raise UsageError(f"{train_list} mixes class names and class numbers; use one or pass --classes.")
        else:
            names = sorted(set(labels))
    train = label_samples(loaded["train"], train_list, names, numbers)
    val = label_samples(loaded["val"], val_list, names, numbers)
    empty = sorted(set(range(len(names))) - {i for _, label in train for i in as_indices(label)})
    if empty:
        warn(f"{len(empty)} class(es) have no training video: {', '.join(names[i] for i in empty[:5])}")
    return train, val, names


def as_indices(label: Label) -> tuple[int, ...]:
    return label if isinstance(label, tuple) else (label,)


def multi_hot(label: Label, num_classes: int) -> Tensor:
    """float ``(num_classes,)``: 1 for each of the video's classes."""
    target = torch.zeros(num_classes)
    target[list(as_indices(label))] = 1.0
    return target


# ----------------------------------------------------------------------------------------------------
# Clips


def random_clip_indices(
    timestamps: Tensor, recipe: ClipRecipe, video_fps: float, duration: float, generator: torch.Generator
) -> Tensor:
    """int64 ``(num_frames,)``: one clip of the recipe starting at a uniformly random time.

    The training counterpart of :func:`videozoo.video.sampling.sample_clip_indices`: the same clip
    (``num_frames`` frames every ``sampling_rate / frame_rate`` s, nearest frames, short videos
    padded with their last frame), only its start is random in ``[0, duration - clip_duration]``.
    A segment recipe (SSv2) takes a random frame of each segment instead of its centre, as
    PySlowFast trains: frame ``randint(round(s * i), round(s * (i + 1)))`` of segment ``i``.
    """
    if recipe.sampling == "segments":
        rate = recipe.frame_rate or video_fps
        length = max(1, round(duration * rate))
        size = (length - 1) / recipe.num_frames
        bounds = torch.tensor([round(size * i) for i in range(recipe.num_frames + 1)], dtype=torch.float64)
        picks = bounds[:-1] + torch.floor(
            torch.rand(recipe.num_frames, generator=generator, dtype=torch.float64) * (bounds[1:] - bounds[:-1] + 1)
        )
        return nearest_frames(timestamps, picks / rate + float(timestamps[0]))
    slack = max(duration - recipe.clip_duration(video_fps), 0.0)
    start = float(torch.rand((), generator=generator, dtype=torch.float64)) * slack
    times = start + torch.arange(recipe.num_frames, dtype=torch.float64) * recipe.frame_interval(video_fps)
    return nearest_frames(timestamps, times + float(timestamps[0]))


class TrainClips(Dataset):
    """One random clip per video per epoch, augmented; an undecodable video is replaced by another.

    Item: ``(clip (C, T, h, w) float, label, failures)`` with ``failures`` the ``(path, message)``
    of each video that had to be replaced (message ``None`` for one already known to be bad), and
    ``label`` the class index, or with ``num_classes`` (multi-label) a multi-hot vector.
    Randomness comes from ``(seed, epoch, index)`` only, so it does not depend on the number of
    loader workers, on whether the run was resumed, or on whether a bad file was already known.
    """

    def __init__(
        self, samples: Samples, recipe: ClipRecipe, augment: TrainAugment, seed: int = 0, num_classes: int | None = None
    ) -> None:
        self.samples = samples
        self.recipe = recipe
        self.augment = augment
        self.seed = seed
        self.num_classes = num_classes
        self.epoch = 0
        self.known_bad: frozenset[str] = frozenset()

    def set_epoch(self, epoch: int, known_bad: set[str]) -> None:
        self.epoch = epoch
        self.known_bad = frozenset(known_bad)

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, path: str, generator: torch.Generator) -> Tensor:
        with VideoReader(path, size=self.augment.decode_size(generator)) as reader:
            indices = random_clip_indices(reader.timestamps, self.recipe, reader.fps, reader.duration, generator)
            frames = reader.get_frames(indices).frames
        return self.augment(frames, generator)

    def _generator(self, index: int, attempt: int, purpose: int) -> torch.Generator:
        seed = ((self.seed * 1_000_003 + self.epoch) * 1_000_003 + index) * 1_024 + attempt * 2 + purpose
        return torch.Generator().manual_seed(seed % 2**63)

    def __getitem__(self, index: int) -> tuple[Tensor, int | Tensor, list[tuple[str, str | None]]]:
        failures: list[tuple[str, str | None]] = []
        current = index
        for attempt in range(MAX_REPLACEMENTS + 1):
            path, label = self.samples[current]
            if path in self.known_bad:
                failures.append((path, None))
            else:
                try:
                    clip = self.load(path, self._generator(index, attempt, 0))
                    return clip, _target(label, self.num_classes), failures
                except VideoDecodeError as e:
                    failures.append((path, str(e)))
            current = int(torch.randint(len(self.samples), (), generator=self._generator(index, attempt, 1)))
        raise RuntimeError(
            f"{len(failures)} videos in a row could not be decoded, the last: {failures[-1][1] or failures[-1][0]}. "
            f"Check the dataset (a wrong codec build, or files that are not videos?)."
        )


def _target(label: Label, num_classes: int | None) -> int | Tensor:
    if num_classes is not None:
        return multi_hot(label, num_classes)
    if isinstance(label, tuple):
        raise ValueError(f"a video with several labels {label} in a single-label run")
    return label


def _stack_labels(labels) -> Tensor:
    return torch.stack(list(labels)) if isinstance(labels[0], Tensor) else torch.tensor(labels, dtype=torch.int64)


def collate_train(items):
    clips, labels, failures = zip(*items)
    return torch.stack(clips), _stack_labels(labels), [f for fs in failures for f in fs]


class EvalViews(Dataset):
    """All the views of a video (the recipe's clips x crops, through the evaluation preset).

    Item: ``(views (V, C, T, H, W) or None, label, message or None)``: an undecodable video gives
    ``None`` and the error message, and is left out of the accuracy. With ``num_classes``
    (multi-label) the label is a multi-hot vector.
    """

    def __init__(self, samples: Samples, recipe: ClipRecipe, preset, num_classes: int | None = None) -> None:
        self.samples = samples
        self.recipe, self.preset = recipe, preset
        self.num_classes = num_classes

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, label = self.samples[index]
        label = _target(label, self.num_classes)
        try:
            return clip_views(path, self.recipe, self.preset), label, None
        except VideoDecodeError as e:
            return None, label, (path, str(e))


def collate_eval(items):
    """``(views of the decodable videos concatenated, their labels, views per video, failures)``."""
    good = [(v, label) for v, label, err in items if v is not None]
    failures = [err for _, _, err in items if err is not None]
    if not good:
        return None, None, None, failures
    views = torch.cat([v for v, _ in good])
    labels = _stack_labels([label for _, label in good])
    counts = torch.tensor([v.shape[0] for v, _ in good], dtype=torch.int64)
    return views, labels, counts, failures


class ShardSampler(Sampler[int]):
    """Every ``world_size``-th index from ``rank``, without the padding DistributedSampler adds.

    For evaluation: every video is scored exactly once over all processes, so the reduced counts
    are exactly those of a single-process run.
    """

    def __init__(self, length: int, rank: int, world_size: int) -> None:
        self.indices = list(range(rank, length, world_size))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)
