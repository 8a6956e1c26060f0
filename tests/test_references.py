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
    assert stderr.count(f"warning: skipping an unreadable video") <= 2  # once per process that met it, not per epoch
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
    cached = home / "checkpoints" / member.url.rsplit("/", 1)[1]
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
