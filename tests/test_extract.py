"""videozoo extract / videozoo.extract: window embeddings of a collection, resumable, sharded by torchrun.

Real encoded videos (H.264 176x144, VP9, MPEG-4 with B-frames, MJPEG, an audio track longer than the
video, a broken file), the tiny real model of tests/video_factory.py (registered in child processes
by a small launcher script), real torchrun runs with 2 gloo processes, and a real SIGKILL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import videozoo
from video_factory import make_video
from videozoo.cli import EXIT_OK, EXIT_OUTPUT, EXIT_UNKNOWN, EXIT_USAGE, EXIT_VIDEO, main
from videozoo.tasks.collection import normalise, read_manifest, shard
from videozoo.tasks.extract import INDEX, output_name
from videozoo.zoo import ClipRecipe
from videozoo.video.windows import iter_windows

TESTS = Path(__file__).resolve().parent
TIMEOUT = 300

VIDEOS = {  # name: (codec, fps, frames, (H, W), extra)
    "a/qcif.mp4": ("libx264", 30, 60, (144, 176), {}),
    "b/qcif.mp4": ("libvpx-vp9", 15, 20, (48, 64), {}),  # same basename, other folder
    "bframes.avi": ("mpeg4", 25, 40, (64, 48), {"options": {"g": "9", "bf": "2"}}),
    "mjpeg.avi": ("mjpeg", 10, 15, (48, 64), {}),
    "longaudio.mp4": ("libx264", 30, 30, (48, 64), {"audio_seconds": 3.0}),
}

LAUNCHER = f"""
import sys
sys.path.insert(0, {str(TESTS)!r})
from video_factory import TINY_NAME, tiny_parts
import videozoo
_, enum, builder = tiny_parts()
videozoo.register_model(enum, TINY_NAME)(builder)
from videozoo.cli import main
raise SystemExit(main())
"""


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    root = tmp_path_factory.mktemp("collection")
    for name, (codec, fps, n, size, extra) in VIDEOS.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        make_video(root / name, num_frames=n, fps=fps, size=size, codec=codec, **extra)
    (root / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4)
    manifest = root / "list.txt"
    manifest.write_text("# the collection\n\n" + "\n".join([*VIDEOS, "broken.mp4"]) + "\n")
    return root, manifest




def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", VIDEOZOO_HOME=str(home), VIDEOZOO_OFFLINE="1")
    return env


def _launcher(tmp_path: Path) -> Path:
    path = tmp_path / "launch.py"
    path.write_text(LAUNCHER)
    return path


def _extract_cmd(manifest: Path, out: Path, tiny: str, *extra: str) -> list[str]:
    return ["extract", "--manifest", str(manifest), "--model", tiny, "--out", str(out), "--window", "0.5", "--stride", "0.25", *extra]


def _torchrun(tmp_path: Path, nproc: int, args: list[str]) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "--standalone", str(_launcher(tmp_path)), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=_env(tmp_path / "home"), timeout=TIMEOUT)


def _recorded_failure(result: subprocess.CompletedProcess[str], done: str) -> None:
    """A torchrun job whose broken.mp4 was recorded: exit 0, the run's summary naming the failure, no crash report."""
    assert result.returncode == 0, result.stderr[-4000:]
    assert "broken.mp4" in result.stderr and f" of {len(VIDEOS) + 1} {done}: " in result.stderr
    assert '1 could not be read (status "error" in the index' in result.stderr
    assert "ChildFailedError" not in result.stderr and "Traceback" not in result.stderr


def _index(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / INDEX).read_text().splitlines()]


def _results(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def _arrays(out: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    found = {}
    for record in _index(out):
        if record["status"] == "ok":
            with np.load(out / record["output"]) as data:
                found[record["video"]] = (data["features"], data["times"])
    return found


def _same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_allclose(a[key][0], b[key][0], rtol=1e-4, atol=1e-5)
        np.testing.assert_array_equal(a[key][1], b[key][1])


# ----------------------------------------------------------------------------------------------------


def test_manifest_sharding_and_names(collection, tmp_path):
    root, manifest = collection
    videos = read_manifest(manifest)
    assert videos == [str(root / n) for n in [*VIDEOS, "broken.mp4"]]  # comments, blank lines skipped; relative to the manifest
    ordered = normalise(videos + videos[:2])
    assert ordered == sorted(videos)
    shards = [shard(ordered, r, 2) for r in range(2)]
    assert sorted(shards[0] + shards[1]) == ordered and not set(shards[0]) & set(shards[1])
    assert output_name(root / "a/qcif.mp4") != output_name(root / "b/qcif.mp4")
    assert output_name(root / "a/qcif.mp4").startswith("qcif-") and output_name(root / "a/qcif.mp4").endswith(".npz")


def test_extract_writes_model_embeddings_and_index(collection, tmp_path, tiny):
    root, manifest = collection
    out = tmp_path / "out"
    records = videozoo.extract(manifest, tiny, out, window=0.5, stride=0.25, batch_size=3, num_workers=0)
    assert [r["video"] for r in records] == sorted(read_manifest(manifest))
    assert records == _index(out)
    by_name = {Path(r["video"]).relative_to(root).as_posix(): r for r in records}
    assert by_name["broken.mp4"]["status"] == "error" and "broken.mp4" in by_name["broken.mp4"]["error"]
    model = videozoo.get_model(tiny, weights="DEFAULT").eval()
    weights = videozoo.get_model_weights(tiny).DEFAULT
    recipe = ClipRecipe.from_meta(weights.meta)
    for name in VIDEOS:
        r = by_name[name]
        assert r["status"] == "ok" and r["error"] is None and r["model"] == tiny and r["weights"] == str(weights)
        assert r["num_features"] == model.num_features and r["recipe"]["num_frames"] == 4
        with np.load(out / r["output"]) as data:
            features, times = data["features"], data["times"]
        windows = list(iter_windows(root / name, recipe, weights.transforms(), window=0.5, stride=0.25))
        assert features.shape == (len(windows), model.num_features) == (r["windows"], r["num_features"])
        assert features.dtype == np.float32
        np.testing.assert_array_equal(times, [[w.start, w.end] for w in windows])
        with torch.inference_mode():
            x = torch.stack([w.clip for w in windows])
            expected = model.forward_head(model.forward_features(x), pre_logits=True)
        np.testing.assert_allclose(features, expected.numpy(), rtol=1e-4, atol=1e-5)
    # the audio track outlasts the video: windows stop at the video's end
    assert _arrays(out)[str(root / "longaudio.mp4")][1][-1, 1] == pytest.approx(1.0, abs=0.04)
    assert not (out / "_parts").exists() or not list((out / "_parts").iterdir())


def test_bf16_and_workers(collection, tmp_path, tiny):
    root, manifest = collection
    fp32 = tmp_path / "fp32"
    bf16 = tmp_path / "bf16"
    videos = [root / "a/qcif.mp4", root / "mjpeg.avi", root / "bframes.avi"]
    videozoo.extract(videos, tiny, fp32, num_workers=2)
    videozoo.extract(videos, tiny, bf16, dtype="bf16", num_workers=0)
    a, b = _arrays(fp32), _arrays(bf16)
    assert a.keys() == b.keys() and len(a) == 3
    for key in a:
        np.testing.assert_array_equal(a[key][1], b[key][1])
        assert b[key][0].dtype == np.float32
        assert not np.array_equal(a[key][0], b[key][0])  # really computed in bf16
        np.testing.assert_allclose(a[key][0], b[key][0], rtol=0.1, atol=0.1)
    assert {r["dtype"] for r in _index(bf16)} == {"bf16"}


def test_torchrun_two_processes_equal_one_and_rerun_redoes_nothing(collection, tmp_path, tiny):
    root, manifest = collection
    single = tmp_path / "single"
    videozoo.extract(manifest, tiny, single, window=0.5, stride=0.25, num_workers=0)
    out = tmp_path / "two"
    result = _torchrun(tmp_path, 2, _extract_cmd(manifest, out, tiny, "--workers", "1"))
    # the broken file is recorded; the job ends with its own summary, not torchrun's crash report
    _recorded_failure(result, "videos extracted")
    assert "broken.mp4" in result.stderr
    _same(_arrays(out), _arrays(single))
    assert [(r["video"], r["status"], r["windows"]) for r in _index(out)] == [(r["video"], r["status"], r["windows"]) for r in _index(single)]
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.npz")}
    assert len(stamps) == len(VIDEOS)
    again = _torchrun(tmp_path, 1, _extract_cmd(manifest, out, tiny))
    _recorded_failure(again, "videos extracted")
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.npz")} == stamps  # nothing redone
    assert [r["status"] for r in _index(out)] == [r["status"] for r in _index(single)]


def test_sigkill_midway_then_resume_is_complete(collection, tmp_path, tiny):
    root, _ = collection
    many = tmp_path / "many"
    many.mkdir()
    for i in range(8):
        make_video(many / f"clip{i}.mp4", num_frames=90, fps=30, size=(48, 64))
    manifest = many / "list.txt"
    manifest.write_text("\n".join(f"clip{i}.mp4" for i in range(8)) + "\n")
    clean = tmp_path / "clean"
    videozoo.extract(manifest, tiny, clean, window=0.3, stride=0.1, batch_size=1, num_workers=0)
    out = tmp_path / "killed"
    cmd = [sys.executable, str(_launcher(tmp_path)), *_extract_cmd(manifest, out, tiny, "--workers", "0", "--batch-size", "1")]
    cmd[cmd.index("0.5")], cmd[cmd.index("0.25")] = "0.3", "0.1"
    proc = subprocess.Popen(cmd, env=_env(tmp_path / "home"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while proc.poll() is None and not list(out.glob("*.npz")):
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=TIMEOUT)
    done_at_kill = len(list(out.glob("*.npz")))
    assert proc.returncode == -signal.SIGKILL and 1 <= done_at_kill < 8
    assert not (out / INDEX).exists()
    assert main(["extract", "--manifest", str(manifest), "--model", tiny, "--out", str(out), "--window", "0.3", "--stride", "0.1", "--workers", "0", "-b", "1", "-q"]) == EXIT_OK
    assert [r["status"] for r in _index(out)] == ["ok"] * 8
    assert len(list(out.glob("*.npz"))) == 8 and not list(out.glob(".*tmp*"))
    _same(_arrays(out), _arrays(clean))


def test_cli_errors(collection, tmp_path, tiny, capsys):
    root, manifest = collection
    out = str(tmp_path / "out")
    assert main(["extract", "--model", tiny, "--out", out]) == EXIT_USAGE
    assert "either VIDEO paths or --manifest" in capsys.readouterr().err
    assert main(["extract", str(root / "mjpeg.avi"), "--manifest", str(manifest), "--model", tiny, "--out", out]) == EXIT_USAGE
    assert main(["extract", "--manifest", str(tmp_path / "nope.txt"), "--model", tiny, "--out", out]) == EXIT_USAGE
    assert "nope.txt: no such manifest file" in capsys.readouterr().err
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n")
    assert main(["extract", "--manifest", str(empty), "--model", tiny, "--out", out]) == EXIT_USAGE
    capsys.readouterr()
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    assert main(["extract", str(root / "mjpeg.avi"), "--model", tiny, "--out", str(a_file)]) == EXIT_OUTPUT
    assert f"--out {a_file}: is a file, not a folder" in capsys.readouterr().err
    assert main(["extract", str(root / "mjpeg.avi"), "--model", "no_such_model", "--out", out]) == EXIT_UNKNOWN
    assert main(["extract", str(root / "mjpeg.avi"), "--model", tiny, "--weights", "NOPE", "--out", out]) == EXIT_UNKNOWN
    with pytest.raises(SystemExit) as e:
        main(["extract", str(root / "mjpeg.avi"), "--model", tiny, "--out", out, "--dtype", "fp8"])
    assert e.value.code == EXIT_USAGE
    capsys.readouterr()
    assert main(["extract", str(root / "mjpeg.avi"), str(tmp_path / "missing.mp4"), "--model", tiny, "--out", out, "--workers", "0"]) == EXIT_VIDEO
    err = capsys.readouterr().err
    assert "missing.mp4" in err and "1 of 2 videos extracted" in err


def test_classify_manifest_torchrun_resumes_with_other_process_count(collection, tmp_path, tiny, capsys):
    root, manifest = collection
    single = tmp_path / "single"
    args = ["classify", "--manifest", str(manifest), "--model", tiny, "--clips", "1", "--crops", "1", "--workers", "0"]
    assert main([*args, "--out", str(single), "-q"]) == EXIT_VIDEO
    assert "broken.mp4" in capsys.readouterr().err
    expected = [json.loads(line) for line in (single / "results.jsonl").read_text().splitlines()]
    assert [r["video"] for r in expected] == sorted(read_manifest(manifest))
    assert [r["status"] for r in expected].count("ok") == len(VIDEOS)
    ok = next(r for r in expected if r["status"] == "ok")
    assert ok["model"] == tiny and ok["views"] == 1 and len(ok["top_k"]) == 5
    out = tmp_path / "two"
    result = _torchrun(tmp_path, 2, [*args, "--out", str(out)])
    _recorded_failure(result, "videos classified")
    got = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [(r["video"], r["status"]) for r in got] == [(r["video"], r["status"]) for r in expected]
    for a, b in zip(got, expected):
        if a["status"] == "ok":
            assert [t["label"] for t in a["top_k"]] == [t["label"] for t in b["top_k"]]
            assert [t["probability"] for t in a["top_k"]] == pytest.approx([t["probability"] for t in b["top_k"]], abs=1e-4)
    # rerun with one process: the finished videos are kept as they are, only the broken one is retried
    (out / "results.jsonl").write_text("".join(json.dumps({**r, "views": 99} if r["status"] == "ok" else r) + "\n" for r in got))
    assert main([*args, "--out", str(out), "-q"]) == EXIT_VIDEO
    again = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r.get("views") for r in again if r["status"] == "ok"] == [99] * len(VIDEOS)
    # a collection with everything done: nothing to classify, the results are kept
    fine = tmp_path / "fine.txt"
    fine.write_text("".join(f"{root / name}\n" for name in VIDEOS))
    assert main([*args[:1], "--manifest", str(fine), *args[3:], "--out", str(out), "-q"]) == EXIT_OK
    assert [r.get("views") for r in _results(out)] == [99] * len(VIDEOS)


def test_classify_manifest_usage(collection, tmp_path, tiny, capsys):
    root, manifest = collection
    assert main(["classify", "--manifest", str(manifest), "--model", tiny]) == EXIT_USAGE
    assert "--manifest FILE and --out DIR go together" in capsys.readouterr().err
    assert main(["classify", "--model", tiny]) == EXIT_USAGE
    assert main(["classify", "--manifest", str(manifest), "--out", str(tmp_path), "--json", "--model", tiny]) == EXIT_USAGE


def test_python_m_videozoo_runs_the_cli():
    result = subprocess.run([sys.executable, "-m", "videozoo", "extract", "--help"], capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0 and "--manifest" in result.stdout


def test_an_output_folder_holds_one_configuration(collection, tmp_path, tiny, capsys):
    """A rerun skips finished videos, so features of another window (or model, dtype) must not be mixed in."""
    root, _ = collection
    video = str(root / "mjpeg.avi")
    out = tmp_path / "out"
    videozoo.extract([video], tiny, out, window=0.5, stride=0.25, num_workers=0)
    before = (out / output_name(video)).stat().st_mtime_ns
    with pytest.raises(ValueError, match=r"another configuration \(window 0.5 there, 0.4 now\)"):
        videozoo.extract([video], tiny, out, window=0.4, stride=0.25, num_workers=0)
    assert (out / output_name(video)).stat().st_mtime_ns == before
    args = ["extract", video, "--model", tiny, "--out", str(out), "--window", "0.5", "--stride", "0.25", "--workers", "0"]
    assert main(args) == EXIT_OK  # the same settings resume
    assert main([*args[:-4], "--dtype", "bf16", "--stride", "0.25", "--workers", "0"]) == EXIT_USAGE
    assert "another configuration" in capsys.readouterr().err


def test_timeline_manifest_torchrun_equals_one_process_and_resumes(collection, tmp_path, tiny, capsys):
    """``timeline --manifest``: every video's timeline in one JSON-lines file, the same with 2 gloo
    processes as with one and as ``videozoo.timeline`` per video; a rerun keeps finished lines."""
    root, manifest = collection
    args = ["timeline", "--manifest", str(manifest), "--model", tiny, "--window", "0.5", "--stride", "0.25", "-q"]
    single = tmp_path / "single"
    assert main([*args, "--out", str(single)]) == EXIT_VIDEO
    assert "broken.mp4" in capsys.readouterr().err
    expected = [json.loads(line) for line in (single / "timelines.jsonl").read_text().splitlines()]
    assert [r["video"] for r in expected] == sorted(read_manifest(manifest))
    assert [r["status"] for r in expected].count("ok") == len(VIDEOS)
    first = next(r for r in expected if r["status"] == "ok")
    direct = videozoo.timeline(first["video"], tiny, window=0.5, stride=0.25).to_dict()
    assert [w["start"] for w in first["windows"]] == [w["start"] for w in direct["windows"]]
    assert [w["top_k"][0]["label"] for w in first["windows"]] == [w["top_k"][0]["label"] for w in direct["windows"]]
    out = tmp_path / "two"
    result = _torchrun(tmp_path, 2, [*args, "--out", str(out)])
    _recorded_failure(result, "timelines written")
    got = [json.loads(line) for line in (out / "timelines.jsonl").read_text().splitlines()]
    assert [(r["video"], r["status"], len(r.get("windows", []))) for r in got] == [
        (r["video"], r["status"], len(r.get("windows", []))) for r in expected
    ]
    marked = [{**r, "model": "kept"} if r["status"] == "ok" else r for r in got]
    (out / "timelines.jsonl").write_text("".join(json.dumps(r) + "\n" for r in marked))
    assert main([*args, "--out", str(out)]) == EXIT_VIDEO  # only the broken file is tried again
    again = [json.loads(line) for line in (out / "timelines.jsonl").read_text().splitlines()]
    assert [r["model"] for r in again if r["status"] == "ok"] == ["kept"] * len(VIDEOS)
    assert main(["timeline", "--manifest", str(manifest), "--model", tiny]) == EXIT_USAGE
    assert main(["timeline", "--manifest", str(manifest), "--model", tiny, "--out", str(out), "--json"]) == EXIT_USAGE


def test_two_runs_into_one_folder_never_mix_and_never_redo(collection, tmp_path, tiny):
    """Real concurrent processes: two runs with the same settings started together (one writes, the other says
    it waits for it, then redoes nothing), and, while they run, one with other settings, refused at once (exit 2,
    nothing mixed)."""
    root, manifest = collection
    out = tmp_path / "shared"
    base = [sys.executable, str(_launcher(tmp_path))]
    slow = _extract_cmd(manifest, out, tiny, "--workers", "0", "--batch-size", "1")
    slow[slow.index("0.5")], slow[slow.index("0.25")] = "0.3", "0.05"  # many windows: a run takes a while
    env = _env(tmp_path / "home")
    # Started together, the two reach the folder's lock within their start-up's spread, well inside the
    # first one's run: whichever comes second must wait (starting the second only once the first had
    # written its configuration raced with the first's whole run on a loaded machine).
    runs = [subprocess.Popen([*base, *slow], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    done: list[float | None] = [None, None]
    try:
        while all(p.poll() is None for p in runs) and not (out / "extract.json").exists():
            time.sleep(0.01)
        other = [*slow]
        other[other.index("0.3")] = "0.4"
        refused = subprocess.run([*base, *other], env=env, capture_output=True, text=True, timeout=TIMEOUT)
        running_when_refused = any(p.poll() is None for p in runs)
        deadline = time.time() + TIMEOUT
        while None in done and time.time() < deadline:
            for i, p in enumerate(runs):
                if done[i] is None and p.poll() is not None:
                    done[i] = time.time()
            time.sleep(0.01)
        errs = [p.communicate(timeout=TIMEOUT)[1] for p in runs]
    finally:
        for proc in runs:
            if proc.poll() is None:
                proc.kill()
    assert [p.returncode for p in runs] == [EXIT_VIDEO, EXIT_VIDEO], errs  # broken.mp4 is recorded as an error
    assert refused.returncode == EXIT_USAGE and "another configuration (window 0.3 there, 0.4 now)" in refused.stderr
    if running_when_refused:  # the refusal did not wait for the runs to end
        assert "waiting" not in refused.stderr
    waited = ["another run is writing into" in e and "waiting for it to finish" in e for e in errs]
    assert sorted(waited) == [False, True], errs  # exactly one waited
    first_done = done[waited.index(False)]
    assert json.loads((out / "extract.json").read_text())["window"] == 0.3
    records = _index(out)
    assert [r["status"] for r in records].count("ok") == len(VIDEOS) and {r["window"] for r in records} == {0.3}
    assert all((out / r["output"]).stat().st_mtime <= first_done for r in records if r["status"] == "ok")  # none redone
