"""references/video_classification: real torchrun (gloo) runs of train.py on a tiny synthetic set.

The set comes from the reference's own make_synthetic.py (24x24 px, 12 frames, 4 motion classes)
plus two unreadable files; the model is mc3_18 (a zoo model, about the cheapest per step at tiny
input) on 4-frame 16x16 clips. A published checkpoint is stood in for by our own file in a temporary
videozoo cache (VIDEOZOO_HOME). The runs every test shares happen once per session, under a file lock, so
pytest-xdist workers reuse them instead of training twice.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from filelock import FileLock

import videozoo

ROOT = Path(__file__).resolve().parents[1]
REF = ROOT / "references" / "video_classification"
TRAIN = REF / "train.py"
TIMEOUT = 300

TINY = [
    "--model", "mc3_18", "--clip-len", "4", "--crop-size", "16", "--batch-size", "4", "--val-clips", "2",
    "--val-batch-size", "1", "--workers", "0", "--print-freq", "1", "--lr", "0.02",
]  # fmt: skip


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", **extra)
    return env


def _run(cmd: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, env=_env(**env), timeout=TIMEOUT, cwd=ROOT)


def torchrun(*args: str, nproc: int = 2, **env: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "--standalone", str(TRAIN)]
    return _run([*cmd, *map(str, args)], **env)


def python(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return _run([sys.executable, str(TRAIN), *map(str, args)], **env)


def _ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr[-6000:]}"
    return result


def _metrics(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def _load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


# ----------------------------------------------------------------------------------------------------
# Shared data and runs (once per session, whatever the number of xdist workers)


@pytest.fixture(scope="session")
def shared_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # common to all workers of this session
    folder = base / "references_shared"
    folder.mkdir(exist_ok=True)
    return folder


def _once(shared: Path, name: str, make) -> Path:
    """``shared/name``, made by ``make(path)`` in whichever process gets there first."""
    target = shared / name
    with FileLock(str(shared / f"{name}.lock")):
        done = shared / f"{name}.done"
        if not done.exists():
            make(target)
            done.write_text("ok")
    return target


def _make_data(out: Path) -> None:
    script = REF / "make_synthetic.py"
    _ok(_run([sys.executable, str(script), str(out), "--classes", "left,right,up,down", "--train", "3", "--val", "2",
              "--size", "24", "--frames", "12"]))  # fmt: skip
    # One file that is not a video at all, one MP4 cut short (its index is lost): both unreadable.
    (out / "train" / "left" / "zz_garbage.mp4").write_bytes(os.urandom(3000))
    first = out / "val" / "up" / "up_0000.mp4"
    (out / "val" / "up" / "zz_truncated.mp4").write_bytes(first.read_bytes()[:1500])


@pytest.fixture(scope="session")
def data(shared_dir: Path) -> Path:
    return _once(shared_dir, "data", _make_data)


@pytest.fixture(scope="session")
def data3(shared_dir: Path) -> Path:
    """Three classes, for fine-tuning to a new label set (annotation lists are written too)."""
    script = REF / "make_synthetic.py"
    return _once(
        shared_dir,
        "data3",
        lambda out: _ok(_run([sys.executable, str(script), str(out), "--classes", "left,right,up", "--train", "2",
                              "--val", "1", "--size", "24", "--frames", "12", "--seed", "1"])),  # fmt: skip
    )


@pytest.fixture(scope="session")
def main_run(shared_dir: Path, data: Path) -> tuple[Path, str]:
    """Two processes, two epochs from scratch; the folder and the run's stderr."""

    def make(out: Path) -> None:
        result = _ok(torchrun("--data-path", data, *TINY, "--epochs", "2", "--output-dir", out))
        (shared_dir / "main_run.stderr").write_text(result.stderr)

    out = _once(shared_dir, "main_run", make)
    return out, (shared_dir / "main_run.stderr").read_text()


# ----------------------------------------------------------------------------------------------------
# torchrun runs


def test_two_process_run_writes_checkpoint_and_metrics(main_run) -> None:
    out, stderr = main_run
    assert "2 process(es) on cpu" in stderr
    assert "eta" in stderr and "epoch 2/2" in stderr
    checkpoint = _load(out / "checkpoint.pth")
    assert checkpoint["epoch"] == 1 and checkpoint["model_name"] == "mc3_18"
    assert checkpoint["categories"] == ["down", "left", "right", "up"] and checkpoint["num_classes"] == 4
    assert {"model", "optimizer", "lr_scheduler", "scaler", "args"} <= set(checkpoint)
    assert checkpoint["args"]["clip_len"] == 4 and checkpoint["args"]["crop_size"] == [16]
    assert checkpoint["model"]["fc.weight"].shape == (4, 512)
    assert not list(out.glob(".*.tmp")), "a temporary checkpoint file was left behind"
    log = _metrics(out)
    assert [m["epoch"] for m in log] == [0, 1]
    for m in log:
        assert {"train_loss", "val_clip_acc1", "val_clip_acc5", "val_video_acc1", "val_video_acc5"} <= set(m)
        assert m["train_clips"] == 14  # 13 listed videos, padded to a multiple of the 2 processes
        assert m["val_videos"] == 8 and m["val_clips"] == 16  # 2 clips per video


def test_unreadable_videos_are_skipped_warned_and_counted(main_run, data: Path) -> None:
    out, stderr = main_run
    garbage, truncated = str(data / "train" / "left" / "zz_garbage.mp4"), str(data / "val" / "up" / "zz_truncated.mp4")
    assert f"skipping an unreadable video (another one takes its place): {garbage}" in stderr
    assert f"leaving an unreadable video out of the evaluation: {truncated}" in stderr
    assert stderr.count("warning: skipping an unreadable video") <= 2  # once per process that met it, not per epoch
    for m in _metrics(out):
        assert m["train_skipped"] >= 1 and m["val_skipped"] == 1
        assert m["unreadable"] == sorted([garbage, truncated])
    assert "1 unreadable left out" in stderr


def test_resume_continues_exactly(tmp_path: Path, main_run, data: Path) -> None:
    """Two epochs with a stop after the first and --resume give the uninterrupted run's weights bit for bit.

    Both launches say ``--resume auto`` (what a restarting job would): the first finds no checkpoint and starts.
    """
    out = tmp_path / "run"
    _ok(torchrun("--data-path", data, *TINY, "--epochs", "2", "--stop-after", "1", "--resume", "auto", "--output-dir", out))
    first = _load(out / "checkpoint.pth")
    assert first["epoch"] == 0 and [m["epoch"] for m in _metrics(out)] == [0]
    resumed = _ok(torchrun("--data-path", data, *TINY, "--epochs", "2", "--resume", "auto", "--output-dir", out))
    steps = first["lr_scheduler"]["last_epoch"]
    assert f"epoch 2 of 2, optimizer step {steps}" in resumed.stderr
    assert "epoch 1/2 [" not in resumed.stderr  # the first epoch is not trained again
    assert [m["epoch"] for m in _metrics(out)] == [0, 1]

    expected = _load(main_run[0] / "checkpoint.pth")
    got = _load(out / "checkpoint.pth")
    assert got["epoch"] == expected["epoch"] == 1
    for key, value in expected["model"].items():
        assert torch.equal(got["model"][key], value), key
    for index, state in expected["optimizer"]["state"].items():
        assert torch.equal(got["optimizer"]["state"][index]["momentum_buffer"], state["momentum_buffer"])
    assert got["lr_scheduler"]["last_epoch"] == expected["lr_scheduler"]["last_epoch"] == 2 * steps
    assert _metrics(out)[1]["val_video_acc1"] == _metrics(main_run[0])[1]["val_video_acc1"]


def test_test_only_reproduces_the_logged_accuracy(main_run, data: Path) -> None:
    out, _ = main_run
    logged = _metrics(out)[-1]
    # One process, the run's own settings from the checkpoint: only the data and the checkpoint are given.
    result = _ok(python("--test-only", "--resume", out / "checkpoint.pth", "--data-path", data, "--workers", "0",
                        "--val-batch-size", "1"))  # fmt: skip
    scores = json.loads(result.stdout.strip().splitlines()[-1])
    assert scores["epoch"] == 1
    for key in ("clip_acc1", "clip_acc5", "video_acc1", "video_acc5", "videos", "clips", "skipped"):
        assert scores[key] == logged[f"val_{key}"], key
    assert "1 unreadable left out" in result.stderr


def test_finetune_then_classify_with_the_runs_class_names(main_run, data: Path, tmp_path: Path) -> None:
    """The loop a practitioner runs most: train on my classes, then classify my videos with their names.

    train.py's checkpoint.pth goes to `videozoo classify --weights` as it is: the run's classes, its
    evaluation clips (--val-clips 2, 4 frames) and its 16 px crop come with it; nothing is downloaded."""
    checkpoint = main_run[0] / "checkpoint.pth"
    video = data / "val" / "left" / "left_0000.mp4"
    result = _run([sys.executable, "-m", "videozoo", "classify", str(video), "--model", "mc3_18", "--weights",
                   str(checkpoint), "--json", "-q"], VIDEOZOO_OFFLINE="1", VIDEOZOO_HOME=str(tmp_path / "empty"))  # fmt: skip
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["weights"] == str(checkpoint) and doc["clips"] == 2 and doc["crops"] == 1
    labels = [entry["label"] for entry in doc["results"][0]["top_k"]]
    assert sorted(labels) == ["down", "left", "right", "up"]
    assert sum(entry["probability"] for entry in doc["results"][0]["top_k"]) == pytest.approx(1.0, abs=1e-4)
    # the same from Python, and the checkpoint's weights are the model's
    prediction = videozoo.predict(video, "mc3_18", weights=checkpoint, num_workers=0)[0]
    assert prediction.label == labels[0] and prediction.num_views == 2
    model = videozoo.get_model("mc3_18", weights=checkpoint)
    assert torch.equal(model.fc.weight, _load(checkpoint)["model"]["fc.weight"])


def test_finetune_from_a_checkpoint_with_other_classes(tmp_path: Path, main_run, data3: Path) -> None:
    """From the 4-class run to 3 classes given as annotation lists, backbone frozen, one decoding worker."""
    out = tmp_path / "ft"
    start = main_run[0] / "checkpoint.pth"
    result = _ok(python("--train-list", data3 / "train.txt", "--val-list", data3 / "val.txt", "--weights", start,
                        "--num-classes", "3", "--freeze-backbone", "--epochs", "1", "--batch-size", "4",
                        "--workers", "1", "--output-dir", out, "--opt", "adamw"))  # fmt: skip
    assert "new classifier: 4 -> 3 classes" in result.stderr
    before, after = _load(start), _load(out / "checkpoint.pth")
    assert after["categories"] == ["left", "right", "up"] and after["model"]["fc.weight"].shape == (3, 512)
    assert after["args"]["clip_len"] == 4 and after["args"]["crop_size"] == [16]  # the recipe came with the weights
    for key, value in before["model"].items():
        if not key.startswith("fc."):
            assert torch.equal(after["model"][key], value), f"{key} changed with --freeze-backbone"
    assert not torch.equal(after["model"]["fc.bias"], torch.zeros(3)), "the new classifier was not trained"


def _publish(home: Path, always: int | None = None) -> dict[str, torch.Tensor]:
    """Put a 400-class mc3_18 state_dict where the cache keeps MC3_18_Weights.DEFAULT's file.

    ``always``: a classifier that predicts this class index for every input.
    """
    member = videozoo.get_model_weights("mc3_18").DEFAULT
    cached = home / "checkpoints" / member.file_name
    cached.parent.mkdir(parents=True)
    torch.manual_seed(0)
    published = videozoo.get_model("mc3_18").state_dict()
    if always is not None:
        published["fc.weight"].zero_()
        published["fc.bias"].zero_()[always] = 10.0
    torch.save(published, cached)
    return published


def test_finetune_from_zoo_weights(tmp_path: Path, data3: Path) -> None:
    """--weights DEFAULT: the published checkpoint (here our own file put in the cache), a new 3-class head."""
    published = _publish(tmp_path / "home")
    out = tmp_path / "ft"
    result = _ok(python("--data-path", data3, *TINY, "--weights", "DEFAULT", "--num-classes", "3", "--epochs", "1",
                        "--output-dir", out, VIDEOZOO_HOME=str(tmp_path / "home")))  # fmt: skip
    assert "mc3_18 from MC3_18_Weights.KINETICS400_V1" in result.stderr
    assert "new classifier: 400 -> 3 classes" in result.stderr
    after = _load(out / "checkpoint.pth")
    assert after["model"]["fc.weight"].shape == (3, 512) and after["recipe_weights"] == "MC3_18_Weights.KINETICS400_V1"
    assert not torch.equal(after["model"]["stem.0.weight"], published["stem.0.weight"])  # fine-tuned, not frozen


def test_test_only_with_zoo_weights_matches_classes_by_name(tmp_path: Path, data: Path) -> None:
    """Kinetics-style folders are scored against the weights' own outputs, matched by name ('_' = ' ').

    The folders sort as air_drumming (0), zumba (1); the weights' indices are 1 and 399. A model that
    always answers 399 ("zumba") is right on exactly the zumba half only if the names were matched.
    """
    categories = videozoo.get_model_weights("mc3_18").DEFAULT.meta["categories"]
    assert categories.index("air drumming") == 1 and categories.index("zumba") == 399
    _publish(tmp_path / "home", always=399)
    for split in ("train", "val"):
        for folder, source in (("air_drumming", "left"), ("zumba", "right")):
            (tmp_path / "k400" / split / folder).mkdir(parents=True)
            for video in sorted((data / split / source).glob(f"{source}_*.mp4")):
                (tmp_path / "k400" / split / folder / video.name).symlink_to(video)
    result = _ok(python("--test-only", "--data-path", tmp_path / "k400", *TINY, "--weights", "DEFAULT",
                        VIDEOZOO_HOME=str(tmp_path / "home")))  # fmt: skip
    scores = json.loads(result.stdout.strip().splitlines()[-1])
    assert scores["epoch"] is None and scores["videos"] == 4 and scores["clips"] == 8
    assert scores["video_acc1"] == scores["clip_acc1"] == 50.0
    assert "new classifier" not in result.stderr


# ----------------------------------------------------------------------------------------------------
# In-process: argument and data errors, annotation files


@pytest.fixture
def train_module(monkeypatch: pytest.MonkeyPatch):
    """train.py imported in this process, its sibling modules removed again afterwards."""
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.syspath_prepend(str(REF))
    names = ("train", "datasets", "utils", "transforms")
    saved = {n: sys.modules.pop(n) for n in names if n in sys.modules}
    try:
        yield importlib.import_module("train")
    finally:
        for n in names:
            sys.modules.pop(n, None)
        sys.modules.update(saved)


def _error(train_module, capsys, *argv: str) -> str:
    assert train_module.main([*map(str, argv), "--epochs", "1", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("train.py: error: ") and "Traceback" not in err
    return err


def test_missing_data_root(train_module, capsys, tmp_path: Path) -> None:
    err = _error(train_module, capsys, "--data-path", tmp_path / "nope", "--model", "mc3_18")
    assert f"--data-path {tmp_path / 'nope'}: no such directory" in err
    err = _error(train_module, capsys, "--data-path", tmp_path, "--model", "mc3_18")
    assert f"{tmp_path / 'train'} does not exist" in err and "root/train/<class>" in err
    assert "give the data" in _error(train_module, capsys, "--model", "mc3_18")


def test_empty_class_folder(train_module, capsys, tmp_path: Path, data: Path) -> None:
    for split in ("train", "val"):
        (tmp_path / split / "left").mkdir(parents=True)
        (tmp_path / split / "left" / "a.mp4").symlink_to(data / split / "left" / "left_0000.mp4")
    (tmp_path / "train" / "right").mkdir()
    (tmp_path / "train" / "right" / "notes.txt").write_text("no videos here")
    err = _error(train_module, capsys, "--data-path", tmp_path, "--model", "mc3_18")
    assert f"class folder {tmp_path / 'train' / 'right'} is empty" in err and "without a video extension" in err


def test_validation_class_unknown_to_training(train_module, capsys, tmp_path: Path, data: Path) -> None:
    for split, label in (("train", "left"), ("val", "left"), ("val", "right")):
        (tmp_path / split / label).mkdir(parents=True)
        (tmp_path / split / label / "a.mp4").symlink_to(data / split / label / f"{label}_0000.mp4")
    err = _error(train_module, capsys, "--data-path", tmp_path, "--model", "mc3_18")
    assert "class folder(s) that training does not have: right" in err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--model", "mc3_19"], "Unknown model 'mc3_19'. Did you mean 'mc3_18'"),
        (["--model", "mc3_18", "--weights", "KINETICS600"], "Unknown weights 'KINETICS600' for MC3_18_Weights"),
        (["--model", "mc3_18", "--weights", "runs/nope.pth"], "--weights runs/nope.pth: no such checkpoint file"),
        (["--model", "mc3_18", "--num-classes", "5"], "--num-classes 5, but the data has 4 classes"),
        (["--model", "mc3_18", "--amp", "fp16"], "--amp fp16 needs a GPU"),
        (["--model", "mc3_18", "--test-only"], "--test-only evaluates a trained model"),
        (["--resume", "nope/checkpoint.pth"], "--resume nope/checkpoint.pth: no such file"),
        (["--model", "mc3_18", "--train-scale", "1.2", "1.1"], "--train-scale"),
        ([], "--model is required"),
        (["--model", "mc3_18", "--layer-decay", "0.75"], "--layer-decay needs a model with numbered transformer layers"),
        (["--model", "mc3_18", "--drop-path", "0.1"], "--drop-path: mc3_18 has no stochastic depth"),
    ],
)
def test_bad_arguments(train_module, capsys, data: Path, argv: list[str], message: str) -> None:
    assert message in _error(train_module, capsys, "--data-path", data, *argv)


def test_annotation_lists_ucf101_style(train_module, tmp_path: Path) -> None:
    """classInd.txt numbering, 'path number' training lines, path-only test lines, a missing file."""
    import datasets

    for name in ("Archery/v_Archery_g01_c01.avi", "Basketball/v_Basketball_g01_c01.avi", "Basketball/v_Basketball_g02_c01.avi"):
        (tmp_path / "videos" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "videos" / name).write_bytes(b"")
    (tmp_path / "classInd.txt").write_text("1 Archery\n2 Basketball\n3 Bowling\n")
    (tmp_path / "trainlist01.txt").write_text(
        "Archery/v_Archery_g01_c01.avi 1\nBasketball/v_Basketball_g01_c01.avi 2\nBowling/v_Bowling_g09_c01.avi 3\n"
    )
    (tmp_path / "testlist01.txt").write_text("Basketball/v_Basketball_g02_c01.avi\n")
    warnings: list[str] = []
    train, val, classes = datasets.annotation_samples(
        tmp_path / "trainlist01.txt", tmp_path / "testlist01.txt", tmp_path / "videos", tmp_path / "classInd.txt",
        warnings.append,
    )
    assert classes == ["Archery", "Basketball", "Bowling"]
    assert [(Path(p).name, label) for p, label in train] == [("v_Archery_g01_c01.avi", 0), ("v_Basketball_g01_c01.avi", 1)]
    assert [(Path(p).name, label) for p, label in val] == [("v_Basketball_g02_c01.avi", 1)]
    assert any("1 listed video(s) do not exist" in w for w in warnings)
    assert any("have no training video: Bowling" in w for w in warnings)


# ----------------------------------------------------------------------------------------------------
# PyTorchVideo's Something-Something V2 (no flips, segments) and Charades (multi-label) recipes


def _publish_ptv(home: Path, weights: str, fixture_name: str) -> None:
    """A file in PyTorchVideo's format where the cache keeps ``weights``' download (the parity
    fixture's reference tensors: the published network's keys, shapes and class count)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from parity.common import FIXTURES, load_fixture, reference_state_dict

    member = videozoo.get_weight(weights)
    cached = home / "checkpoints" / member.file_name
    cached.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model_state": reference_state_dict(load_fixture(FIXTURES / f"{fixture_name}.pt"))}, cached)


def _multi_label_lists(data: Path, out: Path) -> tuple[Path, Path]:
    """Annotation lists giving every video of class i the labels i and i + 1 (mod 4)."""
    classes = ["down", "left", "right", "up"]
    lists = []
    for split in ("train", "val"):
        lines = [
            f"{data / split / name / video.name} {i},{(i + 1) % 4}"
            for i, name in enumerate(classes)
            for video in sorted((data / split / name).glob(f"{name}_*.mp4"))
        ]
        path = out / f"{split}_multi.txt"
        path.write_text("\n".join(lines) + "\n")
        lists.append(path)
    return lists[0], lists[1]


SLOW_TINY = [*TINY, "--model", "slow_r50", "--crop-size", "32", "--val-crops", "1"]


def test_multi_label_weights_train_with_bce_and_report_map(tmp_path: Path, data: Path) -> None:
    """Slow R50's Charades weights, two processes: BCE training, mAP over the videos of both processes,
    and a one-process --test-only that scores the same mAP."""
    home = tmp_path / "home"
    _publish_ptv(home, "Slow_R50_Weights.CHARADES_V1", "slow_r50-charades")
    train_list, val_list = _multi_label_lists(data, tmp_path)
    out = tmp_path / "charades"
    result = _ok(torchrun("--train-list", train_list, "--val-list", val_list, *SLOW_TINY, "--weights", "CHARADES_V1",
                          "--epochs", "1", "--output-dir", out, VIDEOZOO_HOME=str(home)))  # fmt: skip
    assert "slow_r50 from Slow_R50_Weights.CHARADES_V1" in result.stderr
    assert "new classifier: 157 -> 4 classes" in result.stderr and "multi-label, BCE, mAP" in result.stderr
    [m] = _metrics(out)
    assert {"val_clip_map", "val_video_map"} <= set(m) and "val_video_acc1" not in m
    assert 0 < m["val_video_map"] <= 100 and m["val_videos"] == 8 and m["val_clips"] == 16
    assert 0.2 < m["train_loss"] < 2.0  # binary cross-entropy per class, near log 2 for a fresh head
    result = _ok(python("--test-only", "--resume", out / "checkpoint.pth", "--train-list", train_list, "--val-list",
                        val_list, "--workers", "0", VIDEOZOO_HOME=str(home)))  # fmt: skip
    scores = json.loads(result.stdout.strip().splitlines()[-1])
    assert scores["video_map"] == pytest.approx(m["val_video_map"], abs=1e-9)
    assert scores["clip_map"] == pytest.approx(m["val_clip_map"], abs=1e-9)


def test_ssv2_weights_never_flip_and_sample_segments(tmp_path: Path, data: Path) -> None:
    home = tmp_path / "home"
    _publish_ptv(home, "Slow_R50_Weights.SSV2_V1", "slow_r50-ssv2")
    out = tmp_path / "ssv2"
    argv = ["--data-path", data, *SLOW_TINY, "--weights", "SSV2_V1", "--epochs", "1", "--output-dir", out]
    result = _ok(python(*argv, "--val-clips", "1", VIDEOZOO_HOME=str(home)))
    assert "single-label, hflip 0" in result.stderr
    assert "4 frames spread over the whole video at 30 fps, 1 clip x 1 crop(s)" in result.stderr
    checkpoint = _load(out / "checkpoint.pth")
    assert checkpoint["args"]["hflip_prob"] == 0.0 and checkpoint["recipe_weights"] == "Slow_R50_Weights.SSV2_V1"
    assert _metrics(out)[0]["val_clips"] == _metrics(out)[0]["val_videos"] == 8  # one view per video
    # A segment recipe has one temporal view.
    bad = python(*argv, "--val-clips", "2", VIDEOZOO_HOME=str(home))
    assert bad.returncode == 2 and "A segment recipe takes one temporal view" in bad.stderr


def test_train_augment_never_flips_at_zero(train_module) -> None:
    """What --hflip-prob 0 (SSv2's recipe) means for a clip: its left half stays on the left."""
    from transforms import TrainAugment

    preset = videozoo.get_weight("Slow_R50_Weights.SSV2_V1").transforms()
    augment = TrainAugment(train_module.eval_preset(preset, [16], None), hflip_prob=0.0)
    frames = torch.zeros(4, 3, 16, 16, dtype=torch.uint8)
    frames[..., :8] = 255  # bright left half
    for seed in range(20):
        clip = augment(frames, torch.Generator().manual_seed(seed))
        assert (clip[..., :8] > clip[..., 8:]).all()


def test_average_precision_is_sklearns(train_module) -> None:
    scores = torch.tensor([[0.9, 0.1], [0.8, 0.7], [0.8, 0.3], [0.1, 0.2]], dtype=torch.float64)
    targets = torch.tensor([[1, 0], [0, 0], [1, 0], [0, 0]])
    # Class 0: thresholds 0.9 (precision 1, recall 1/2) and the tied 0.8s (precision 2/3, recall 1).
    # Class 1 has no positive video and is left out, as PySlowFast's Charades mAP does.
    assert train_module.average_precision(scores, targets) == pytest.approx(100 * (0.5 * 1 + 0.5 * 2 / 3))
    targets[1, 1] = 1  # class 1: its positive ranks first
    assert train_module.average_precision(scores, targets) == pytest.approx(100 * ((0.5 + 1 / 3) + 1.0) / 2)


def test_several_labels_need_multi_label_training(train_module, capsys, tmp_path: Path, data: Path) -> None:
    train_list, val_list = _multi_label_lists(data, tmp_path)
    err = _error(train_module, capsys, "--train-list", train_list, "--val-list", val_list, "--model", "mc3_18")
    assert "has several labels, but MC3_18_Weights.KINETICS400_V1 is single-label: pass --multi-label" in err
    import datasets

    train, _, classes = datasets.annotation_samples(train_list, val_list, None, None, lambda m: None)
    assert classes == ["0", "1", "2", "3"] and train[0][1] == (0, 1) and train[-1][1] == (0, 3)
    assert datasets.multi_hot((0, 3), 4).tolist() == [1.0, 0.0, 0.0, 1.0]


def test_training_segments_are_random_within_each_segment(train_module) -> None:
    """PySlowFast's SSv2 training rule: frame randint(round(s * i), round(s * (i + 1))) of segment i."""
    import datasets
    from videozoo.zoo import ClipRecipe

    recipe = ClipRecipe(num_frames=8, frame_rate=30.0, sampling="segments")
    timestamps = torch.arange(100, dtype=torch.float64) / 30
    bounds = [round(99 / 8 * i) for i in range(9)]
    seen = set()
    for seed in range(50):
        picks = datasets.random_clip_indices(timestamps, recipe, 30.0, 100 / 30, torch.Generator().manual_seed(seed))
        assert all(bounds[i] <= int(p) <= bounds[i + 1] for i, p in enumerate(picks)), picks
        seen.add(tuple(picks.tolist()))
    assert len(seen) > 40  # random, not the test-time centres


# ----------------------------------------------------------------------------------------------------
# VideoMAE's fine-tuning recipe: layer-wise LR decay, drop path, no decay on biases and norms


def test_layer_decay_param_groups_of_a_tiny_videomae(train_module) -> None:
    """A 2-block VideoMAE: embeddings at 0.75^3, block i at 0.75^(2 - i), fc_norm and head at 1; biases
    and norms without weight decay; the scales hold through warm-up and cosine decay."""
    from utils import WarmupCosine

    torch.manual_seed(0)
    model = videozoo.get_model("videomae_s", embed_dim=48, depth=2, num_heads=3, num_frames=4, crop_size=16, num_classes=4)
    groups = train_module.param_groups(model, 0.05, 0.75)
    names = {id(p): n for n, p in model.named_parameters()}
    seen = [names[id(p)] for g in groups for p in g["params"]]
    assert sorted(seen) == sorted(names.values())  # every parameter once
    for g in groups:
        for p in g["params"]:
            name = names[id(p)]
            layer = 0 if name.startswith("patch_embed") else 3 if name.startswith(("fc_norm", "head")) else int(name.split(".")[1]) + 1
            assert g["layer"] == layer and g["lr_scale"] == pytest.approx(0.75 ** (3 - layer)), name
            assert g["weight_decay"] == (0.05 if p.ndim > 1 else 0.0), name
    assert {round(g["lr_scale"], 6) for g in groups} == {round(0.75**k, 6) for k in range(4)}
    # A few steps on generated clips, with the script's optimizer set-up.
    for g in groups:
        g["lr"] = 1e-3 * g["lr_scale"]
    optimizer = torch.optim.AdamW(groups, lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupCosine(2, 6, 0.01, 0.0))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for _ in range(4):
        loss = torch.nn.functional.cross_entropy(model(torch.randn(2, 3, 4, 16, 16)), torch.tensor([0, 3]))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        scheduler.step()
        head_lr = max(g["lr"] for g in optimizer.param_groups)
        for g in optimizer.param_groups:
            assert g["lr"] == pytest.approx(head_lr * g["lr_scale"])
    assert all(not torch.equal(p, before[n]) for n, p in model.named_parameters())


def test_videomae_finetunes_with_layer_decay_and_drop_path(tmp_path: Path, data: Path) -> None:
    """train.py end to end: the flags reach the model and the optimizer, and the checkpoint remembers them."""
    out = tmp_path / "mae"
    result = _ok(python("--data-path", data, "--model", "videomae_s", "--clip-len", "4", "--crop-size", "16",
                        "--batch-size", "4", "--val-clips", "1", "--workers", "0", "--opt", "adamw", "--lr", "1e-3",
                        "--layer-decay", "0.75", "--drop-path", "0.2", "--epochs", "1", "--output-dir", out))  # fmt: skip
    assert "drop path 0.2, layer decay 0.75" in result.stderr
    checkpoint = _load(out / "checkpoint.pth")
    assert checkpoint["args"]["layer_decay"] == 0.75 and checkpoint["args"]["drop_path"] == 0.2
    groups = checkpoint["optimizer"]["param_groups"]
    assert sorted({g["layer"] for g in groups}) == list(range(14))  # embeddings, 12 blocks, head
    for g in groups:
        assert g["initial_lr"] == pytest.approx(1e-3 * 0.75 ** (13 - g["layer"]))
    model = videozoo.get_model("videomae_s", num_classes=4, stochastic_depth_prob=0.2)
    assert model.blocks[-1].stochastic_depth_prob == pytest.approx(0.2)
    model.load_state_dict(checkpoint["model"])
