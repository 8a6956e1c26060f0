"""The videozoo command line: in-process ``main([...])`` runs with a tiny real model, and a few real
subprocess runs (``python -m videozoo``) with a real r3d_18 checkpoint made here. No network."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import videozoo
from video_factory import TINY_CATEGORIES, TINY_NAME, make_audio_only, make_video, tiny_parts, truncate
from videozoo.zoo import store
from videozoo.cli import EXIT_CODES, main
from videozoo.tasks.classify import predict

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_clips")
    a = make_video(root / "walk.mp4", num_frames=45, fps=30)
    return {
        "a": a,
        "b": make_video(root / "run.webm", num_frames=30, fps=15, codec="libvpx-vp9"),
        "audio": make_audio_only(root / "song.m4a"),
        "cut": truncate(make_video(root / "long.mkv", num_frames=90, fps=30), root / "cut.mkv", 0.3),
    }




def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_classify_table(tiny, clips, capsys):
    code, out, err = run(capsys, "classify", clips["a"], clips["b"], "--model", tiny, "--top-k", "3", "--clips", "2")
    assert code == 0, err
    blocks = out.strip().split("\n\n")
    assert len(blocks) == 2
    first = blocks[0].splitlines()
    assert first[0] == f"{clips['a']}  ({tiny}, 2 clips x 3 crops)"
    assert first[1].split() == ["#", "label", "probability"]
    rows = [line.split() for line in first[2:]]
    assert [r[0] for r in rows] == ["1", "2", "3"]
    assert all(r[1] in TINY_CATEGORIES for r in rows)
    probs = [float(r[2]) for r in rows]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0001
    assert "Traceback" not in err


def test_classify_json_matches_the_api(tiny, clips, capsys):
    code, out, err = run(capsys, "classify", clips["a"], "-m", tiny, "--json", "--clips", "1", "--crops", "1", "-k", "5")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["model"] == tiny and doc["weights"].endswith(".TEST_V1")
    assert (doc["clips"], doc["crops"]) == (1, 1)
    [result] = doc["results"]
    assert result["video"] == str(clips["a"]) and result["views"] == 1
    expected = predict(clips["a"], tiny, clips=1, crops=1, top_k=5)[0]
    assert [e["label"] for e in result["top_k"]] == [label for label, _ in expected.top_k]
    assert [e["probability"] for e in result["top_k"]] == pytest.approx([p for _, p in expected.top_k], abs=1e-6)


def test_classify_bf16_follows_fp32(tiny, clips, capsys):
    code, out, err = run(capsys, "classify", clips["a"], "-m", tiny, "--json", "--clips", "1", "--crops", "1", "--dtype", "bf16")
    assert code == 0, err
    [result] = json.loads(out)["results"]
    expected = predict(clips["a"], tiny, clips=1, crops=1, top_k=5)[0]
    assert [e["probability"] for e in result["top_k"]] == pytest.approx([p for _, p in expected.top_k][: len(result["top_k"])], abs=2e-2)
    with pytest.raises(SystemExit):
        main(["classify", str(clips["a"]), "-m", tiny, "--dtype", "fp16"])


def test_classify_bad_videos_go_on_with_the_others(tiny, clips, tmp_path, capsys):
    missing = tmp_path / "gone.mp4"
    code, out, err = run(
        capsys, "classify", clips["a"], missing, clips["audio"], clips["cut"], "-m", tiny, "--json",
        "--clips", "1", "--crops", "1", "--workers", "0",
    )
    assert code == 4
    doc = json.loads(out)
    assert [r["video"] for r in doc["results"]] == [str(v) for v in (clips["a"], missing, clips["audio"], clips["cut"])]
    assert [("error" in r) for r in doc["results"]] == [False, True, True, True]  # in the order given
    lines = err.strip().splitlines()
    assert lines == [
        f"videozoo: error: {missing}: no such file. Check the path (relative paths are taken from the current directory).",
        f"videozoo: error: {clips['audio']}: has no video stream (it holds audio); videozoo needs a video track.",
        lines[2],
    ]
    assert lines[2].startswith(f"videozoo: error: {clips['cut']}: the file is truncated")


def test_urls_and_images_are_refused_with_a_hint(tiny, tmp_path, capsys):
    image = tmp_path / "frame.jpg"
    image.write_bytes(b"\xff\xd8\xff\xe0 not decoded")
    code, out, err = run(capsys, "classify", "https://example.com/v.mp4", image, "-m", tiny, "--json")
    assert code == 4
    assert [r["error"] for r in json.loads(out)["results"]] == [
        "https://example.com/v.mp4: is a URL; videozoo reads local files. Download the video first (e.g. curl -O URL).",
        f"{image}: is an image, not a video; the models classify clips of frames over time. Give a video file.",
    ]
    with pytest.raises(videozoo.VideoDecodeError, match="is a URL"):
        videozoo.predict("http://example.com/v.mp4", tiny)


def test_classify_only_missing_videos_fails_before_loading_the_model(tiny, tmp_path, capsys):
    code, out, err = run(capsys, "classify", tmp_path / "a.mp4", "-m", tiny)
    assert code == 4 and out == ""
    assert err == f"videozoo: error: {tmp_path / 'a.mp4'}: no such file. Check the path (relative paths are taken from the current directory).\n"


def test_classify_with_a_local_checkpoint(tiny, clips, tmp_path, capsys):
    arch, _, _ = tiny_parts()
    torch.manual_seed(3)
    path = tmp_path / "finetuned.pth"
    torch.save(arch(num_classes=len(TINY_CATEGORIES)).state_dict(), path)
    code, out, err = run(capsys, "classify", clips["b"], "-m", tiny, "-w", path, "--json", "--clips", "1")
    assert code == 0, err
    assert json.loads(out)["weights"] == str(path)
    bad = tmp_path / "notes.pth"
    bad.write_text("not a checkpoint")
    code, out, err = run(capsys, "classify", clips["b"], "-m", tiny, "-w", bad)
    assert code == 5 and err.count("\n") == 1 and "is not a PyTorch checkpoint" in err


@pytest.mark.parametrize(
    "argv,code,message",
    [
        (["classify", "{a}", "-m", "tiny_mc4_test"], 3, "Unknown model 'tiny_mc4_test'. Did you mean 'tiny_mc3_test'"),
        (["classify", "{a}", "-m", TINY_NAME, "-w", "V2"], 3, "Unknown weights 'V2'"),
        (["info", "NoSuch_Weights.V1"], 3, "Unknown model or weights 'NoSuch_Weights.V1'"),
        (["download", TINY_NAME, "nothing"], 3, "Unknown model or weights 'nothing'"),
        (["info", "x3d_mm"], 3, "Unknown model or weights 'x3d_mm'. Did you mean 'x3d_m'"),
        (["download", "X3D_M_Weights.KINETICS400"], 3, "X3D_M_Weights has no weights 'KINETICS400'. Did you mean 'KINETICS400_V1'"),
        (["info", "x3d_m.KINETICS"], 3, "X3D_M_Weights has no weights 'KINETICS'."),
    ],
)
def test_unknown_names(tiny, clips, capsys, argv, code, message):
    got, out, err = run(capsys, *[a.format(a=clips["a"]) for a in argv])
    assert got == code
    assert err.startswith("videozoo: error: ") and message in err and err.count("\n") == 1
    assert len(err) < 400 and "list_models" not in err  # a hint for the command line, not a list of 40 names


def test_usage_errors_exit_2(capsys):
    for argv in (["classify", "x.mp4"], ["classify", "x.mp4", "-m", "r3d_18", "--crops", "2"], ["frobnicate"], []):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2
    capsys.readouterr()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu(tiny, clips, capsys):
    code, out, err = run(capsys, "classify", clips["a"], "-m", tiny, "--device", "cuda")
    assert code == 2 and err == "videozoo: error: --device cuda was asked for but no CUDA device is available; use --device cpu.\n"


def test_debug_shows_the_traceback(tiny, tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"PK\x03\x04 broken zip")
    with pytest.raises(videozoo.errors.CheckpointError):
        main(["--debug", "classify", __file__, "-m", TINY_NAME, "-w", str(bad)])
    with pytest.raises(videozoo.errors.CheckpointError):  # after the command too
        main(["classify", __file__, "-m", TINY_NAME, "-w", str(bad), "--debug"])


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out == f"videozoo {videozoo.__version__}\n"


def test_models_table_and_json(tiny, capsys):
    code, out, err = run(capsys, "models")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:7] == ["name", "weights", "dataset", "metrics", "params", "GFLOPs", "input"]
    assert lines[-1] == "* the model's default weights"
    rows = [line.split() for line in lines[1:-1]]
    expected = [(name, m.name) for name in videozoo.list_models() for m in videozoo.get_model_weights(name)]
    assert sorted((r[0], r[1].rstrip("*")) for r in rows) == sorted(expected)  # every weights entry, once
    assert [r[0] for r in rows if r[1].endswith("*")] == videozoo.list_models()  # one default each, first
    code, out, err = run(capsys, "models", "--include", "tiny*")
    assert code == 0
    first, second = (line.split() for line in out.splitlines()[1:3])
    assert first == [TINY_NAME, "TEST_V1*", "Kinetics-400", "acc@1", "12.50", "acc@5", "50.00", "-", "0.25", "4x2",
                     "@15fps", "32px,", "3x3", "views", "-"]  # fmt: skip  (the tiny weights state no licence)
    assert second[1:5] == ["MULTI_V1", "Charades", "mAP", "25.00"]
    code, out, _ = run(capsys, "models", "--json", "--include", "r3d*")
    [entry] = json.loads(out)
    meta = videozoo.get_model_weights("r3d_18").DEFAULT.meta
    assert entry["params"] == meta["num_params"] and entry["gflops"] == meta["_ops"]
    assert (entry["dataset"], entry["metrics"], entry["default"]) == ("Kinetics-400", meta["_metrics"]["Kinetics-400"], True)
    assert entry["license"] == "BSD-3-Clause"
    code, out, err = run(capsys, "models", "--include", "nothing*")
    assert code == 3 and "no model matches 'nothing*'" in err


def test_models_shows_each_datasets_metric(capsys):
    code, out, _ = run(capsys, "models", "--include", "slowfast_r50")
    assert code == 0
    rows = {line.split()[1]: line.split() for line in out.splitlines()[1:-1]}
    assert rows["KINETICS400_V1*"][2:7] == ["Kinetics-400", "acc@1", "76.94", "acc@5", "92.69"]
    assert rows["SSV2_V1"][2:7] == ["Something-Something-V2", "acc@1", "61.68", "acc@5", "86.92"]
    assert rows["SSV2_V1"][9:11] == ["32", "segments"]
    assert rows["CHARADES_V1"][2:5] == ["Charades", "mAP", "37.24"]
    code, out, _ = run(capsys, "models", "--json", "--include", "slow_r50")
    entries = {e["weights"]: e for e in json.loads(out)}
    assert entries["Slow_R50_Weights.CHARADES_V1"]["metrics"] == {"mAP": 34.72}
    assert entries["Slow_R50_Weights.SSV2_V1"]["metrics"] == {"acc@1": 60.04, "acc@5": 85.19}


def test_classify_multi_label_threshold_table_and_json(tiny, clips, capsys):
    code, out, err = run(capsys, "classify", clips["a"], "-m", tiny, "-w", "MULTI_V1", "--clips", "1", "--threshold", "0.6")
    assert code == 0, err
    expected = predict(clips["a"], tiny, "MULTI_V1", clips=1, threshold=0.6)[0]
    assert expected.labels and len(expected.labels) < len(TINY_CATEGORIES)
    listed = "; ".join(f"{label} ({p:.4f})" for label, p in expected.labels)
    assert out.strip().splitlines()[-1] == f"  labels with probability >= 0.6: {listed}"
    code, out, err = run(capsys, "classify", clips["a"], "-m", tiny, "-w", "MULTI_V1", "--clips", "1", "--json", "--threshold", "0.6")
    assert code == 0, err
    doc = json.loads(out)
    assert (doc["multi_label"], doc["threshold"]) == (True, 0.6)
    [result] = doc["results"]
    assert [e["label"] for e in result["labels"]] == [label for label, _ in expected.labels]
    assert [e["probability"] for e in result["labels"]] == pytest.approx([p for _, p in expected.labels], abs=1e-6)
    # Single-label weights: the table is unchanged (no labels line), the JSON has the labels field too.
    code, out, err = run(capsys, "classify", clips["a"], "-m", tiny, "--clips", "1", "--json")
    assert code == 0 and json.loads(out)["multi_label"] is False and "labels" in json.loads(out)["results"][0]


def test_multi_label_exit_codes_unchanged(tiny, clips, tmp_path, capsys):
    missing = tmp_path / "gone.mp4"
    code, out, err = run(capsys, "classify", clips["a"], missing, "-m", tiny, "-w", "MULTI_V1", "--clips", "1", "--json")
    assert code == 4 and [("error" in r) for r in json.loads(out)["results"]] == [False, True]  # in the order given
    for bad in ("1.5", "-0.1", "half"):
        with pytest.raises(SystemExit) as info:
            main(["classify", str(clips["a"]), "-m", tiny, "--threshold", bad])
        assert info.value.code == 2
    assert "expected a probability between 0 and 1" in capsys.readouterr().err


def test_segment_weights_take_one_temporal_view(clips, capsys):
    """--clips 2 with Something-Something weights is a usage error, found before any checkpoint is needed."""
    code, out, err = run(capsys, "classify", clips["a"], "-m", "slowfast_r50", "-w", "SSV2_V1", "--clips", "2")
    assert code == 2 and "SlowFast_R50_Weights.SSV2_V1: A segment recipe takes one temporal view" in err


def test_info(tiny, tmp_path, capsys):
    code, out, err = run(capsys, "info", TINY_NAME)
    assert code == 0
    cache = tmp_path / "home" / "checkpoints" / "tiny_mc3_test.pth"
    assert f"cache file:        {cache} (present)" in out
    assert "clips:             4x2 @15fps 32px, 3x3 views" in out
    assert "categories:        5 (bars, blocks, noise, static, ...)" in out
    code, out, err = run(capsys, "info", "TinyMC3_Weights.TEST_V1", "--json")
    doc = json.loads(out)
    assert doc["meta"]["categories"] == TINY_CATEGORIES and doc["cached"] is True
    assert doc["cache_path"] == str(cache) and doc["meta"]["num_clips"] == 3
    code, out, err = run(capsys, "info", f"{TINY_NAME}.DEFAULT")
    assert code == 0 and "TinyMC3_Weights.TEST_V1" in out


def test_download_cached_and_impossible(tiny, tmp_path, capsys, monkeypatch, http_server):
    code, out, err = run(capsys, "download", TINY_NAME, "-q")
    assert code == 0
    assert out == f"TinyMC3_Weights.TEST_V1\t{tmp_path / 'home' / 'checkpoints' / 'tiny_mc3_test.pth'}\n"
    # Weights whose file the (local) server does not have: one line, exit 5, nothing left behind.
    from videozoo import zoo

    arch, enum, _ = tiny_parts()
    weights = zoo.Weights(url=http_server.url("gone-0123.pth"), transforms=enum.DEFAULT.transforms, meta=enum.DEFAULT.meta)
    gone = zoo.WeightsEnum(
        "Gone_Weights", {"V1": weights, "DEFAULT": weights}
    )

    def builder(*, weights=None, progress=True, **kwargs):
        return zoo.build_model(arch, gone, weights, progress, kwargs)

    with videozoo.registered(builder, gone, "gone_model"):
        monkeypatch.setattr(store, "BACKOFF_BASE", 0.0)
        code, out, err = run(capsys, "download", "gone_model", "-q")
        assert code == 5 and out == ""
        assert err.startswith("videozoo: error: Gone_Weights.V1: ") and err.count("\n") == 1
        assert not (tmp_path / "home" / "checkpoints" / "gone-0123.pth").exists()
        code, out, err = run(capsys, "classify", __file__, "-m", "gone_model", "-q")
        assert code == 5 and "Traceback" not in err and err.count("\n") == 1


def test_exit_codes_are_documented():
    from videozoo import cli

    for code in EXIT_CODES:
        assert f"{code} " in cli.__doc__
    doc = (REPO / "docs" / "reference" / "cli.md").read_text()  # generated by docs/gen_docs.py
    for code, text in EXIT_CODES.items():
        assert f"| {code} |" in doc


# ----------------------------------------------------------------------------------------------------
# Real processes: the console entry point and `python -m videozoo`, offline, with a real r3d_18.


def cli(*argv, env):
    return subprocess.run(
        [sys.executable, "-m", "videozoo", *map(str, argv)], capture_output=True, text=True, env=env, timeout=300
    )


@pytest.fixture(scope="module")
def offline_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    torch.manual_seed(0)
    weights = videozoo.get_model_weights("r3d_18").DEFAULT
    path = home / "checkpoints" / os.path.basename(weights.url)
    path.parent.mkdir()
    torch.save(videozoo.get_model("r3d_18").state_dict(), path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIDEOZOO_", "TORCH_HOME"))}
    env.update(VIDEOZOO_HOME=str(home), PYTHONPATH=str(REPO), HTTPS_PROXY="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9")
    return home, env


def test_subprocess_classify_json(offline_home, clips):
    home, env = offline_home
    result = cli("classify", clips["a"], "--model", "r3d_18", "--clips", "1", "--crops", "1", "--json", "-k", "2", env=env)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["weights"] == "R3D_18_Weights.KINETICS400_V1"
    [entry] = doc["results"]
    assert len(entry["top_k"]) == 2 and entry["top_k"][0]["label"] in videozoo.get_model_weights("r3d_18").DEFAULT.meta["categories"]


def test_subprocess_errors_are_one_line(offline_home, tmp_path):
    home, env = offline_home
    result = cli("classify", tmp_path / "none.mp4", "--model", "r3d_18", env=env)
    assert result.returncode == 4
    assert result.stderr == f"videozoo: error: {tmp_path / 'none.mp4'}: no such file. Check the path (relative paths are taken from the current directory).\n"
