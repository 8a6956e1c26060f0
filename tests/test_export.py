"""Export: every registered model to ONNX, run in onnxruntime next to eager; the other formats, the
recipe file, dynamic batches, and the command line, with real files and a real tiny checkpoint."""

from __future__ import annotations

import json

import onnxruntime
import pytest
import torch
from torch import nn

import videozoo
from test_contract import SMALL_BUILD, small_input
from video_factory import TINY_CATEGORIES
from videozoo.cli import EXIT_CODES, main
from videozoo.errors import ExportError
from videozoo.tasks.export import export_model

# A family's largest members, built by the same classes as a smaller one with more or wider blocks,
# export through the same graph: the suite exports the smaller one. Exporting these eight took 280 s of
# the suite's 1030 s, and hiera_h's 2.7 GB graph most of its disk. benchmarks/bench_models.py exports and
# runs every member at its published clip.
SAME_GRAPH_AS = {
    "mvit_v2_l": "mvit_v2_b", "hiera_l": "hiera_b", "hiera_h": "hiera_b", "videomae_l": "videomae_b",
    "videomae_h": "videomae_b", "swin3d_s": "swin3d_t", "swin3d_b": "swin3d_t", "slowfast_r101": "slowfast_r50",
    "vjepa2_vith_256": "vjepa2_vitl_256", "vjepa2_vitg_256": "vjepa2_vitl_256", "vjepa2_vitg_384": "vjepa2_vitl_256",
    "internvideo2_b14": "internvideo2_s14", "internvideo2_l14": "internvideo2_s14", "internvideo2_1b": "internvideo2_s14",
    "internvideo2_1b_f16": "internvideo2_s14",
    "videomae_v2_s": "videomae_s", "videomae_v2_b": "videomae_b",
    "vjepa2_vitg_384_diving48": "vjepa2_vitl_256_diving48",
}
MODELS = [name for name in videozoo.list_models(task="classification") if name not in SAME_GRAPH_AS]


@pytest.mark.parametrize("name", sorted(SAME_GRAPH_AS))
def test_larger_member_is_built_from_the_same_modules(name: str) -> None:
    with torch.device("meta"):  # no weights allocated
        larger, smaller = videozoo.get_model(name), videozoo.get_model(SAME_GRAPH_AS[name])
    assert type(larger) is type(smaller)
    assert {type(m) for m in larger.modules()} == {type(m) for m in smaller.modules()}


def ort_logits(path, x: torch.Tensor) -> torch.Tensor:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    [out] = session.run(None, {"video": x.numpy()})
    return torch.from_numpy(out)


@pytest.mark.parametrize("name", MODELS)
def test_each_architecture_exports_to_onnx(name: str, tmp_path) -> None:
    """Every model but the larger members of ``SAME_GRAPH_AS``, at the contract's small clip (the MViTs
    built for one, as their token grid is fixed)."""
    torch.manual_seed(0)
    model = videozoo.get_model(name, num_classes=10, **SMALL_BUILD.get(name, {})).eval()
    x = small_input(model)
    result = export_model(model, tmp_path / f"{name}.onnx", clip_shape=tuple(x.shape[2:]))
    assert result.max_abs_diff is not None and result.max_abs_diff <= 1e-4 * max(1.0, result.max_abs_logit)
    clip = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))  # not the clip it was checked on
    with torch.inference_mode():
        eager = model(clip)
    torch.testing.assert_close(ort_logits(result.path, clip), eager, rtol=0, atol=1e-4 * max(1.0, eager.abs().max().item()))


def test_dynamic_batch_runs_at_any_batch(tmp_path) -> None:
    torch.manual_seed(0)
    model = videozoo.get_model("r3d_18", num_classes=7).eval()
    result = export_model(model, tmp_path / "r3d.onnx", clip_shape=(4, 64, 64), dynamic_batch=True)
    assert result.input_shape == ("batch", 3, 4, 64, 64)
    for batch in (1, 2, 5):
        x = torch.randn(batch, 3, 4, 64, 64)
        with torch.inference_mode():
            torch.testing.assert_close(ort_logits(result.path, x), model(x), rtol=0, atol=1e-4)
    recipe = json.loads(result.recipe_path.read_text())
    assert recipe["input"]["shape"] == ["batch", 3, 4, 64, 64] and recipe["output"]["shape"] == ["batch", 7]


def test_fixed_batch_graph_rejects_another_batch(tmp_path) -> None:
    model = videozoo.get_model("r3d_18", num_classes=7).eval()
    result = export_model(model, tmp_path / "r3d.onnx", clip_shape=(4, 64, 64), batch_size=2)
    assert result.input_shape == (2, 3, 4, 64, 64)
    ort_logits(result.path, torch.randn(2, 3, 4, 64, 64))
    with pytest.raises(Exception, match="(?i)dimension|shape"):
        ort_logits(result.path, torch.randn(3, 3, 4, 64, 64))


@pytest.mark.parametrize("fmt", ["torchscript", "exported-program"])
def test_torch_formats_load_and_match(fmt: str, tmp_path) -> None:
    torch.manual_seed(0)
    model = videozoo.get_model("r2plus1d_18", num_classes=5).eval()
    path = tmp_path / ("model.pt" if fmt == "torchscript" else "model.pt2")
    result = export_model(model, path, format=fmt, clip_shape=(4, 32, 32), dynamic_batch=True)
    loaded = torch.jit.load(str(path)) if fmt == "torchscript" else torch.export.load(str(path)).module()
    x = torch.randn(3, 3, 4, 32, 32)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x), model(x), rtol=1e-5, atol=1e-5)
    assert result.format == fmt and json.loads(result.recipe_path.read_text())["format"] == fmt


def test_recipe_file_carries_the_weights_preprocessing(tmp_path) -> None:
    member = videozoo.get_model_weights("mvit_v2_s").DEFAULT
    model = videozoo.get_model("r3d_18", num_classes=400).eval()  # any model: the recipe is the member's
    result = export_model(model, tmp_path / "m.onnx", weights=member, clip_shape=(8, 64, 64), verify=False)
    recipe = json.loads(result.recipe_path.read_text())
    preset = member.transforms()
    pre = recipe["preprocessing"]
    assert pre["resize_size"] == list(preset.resize_size) and pre["crop_size"] == list(preset.crop_size)
    assert pre["mean"] == list(preset.mean) and pre["std"] == list(preset.std)
    assert pre["interpolation"] == preset.interpolation and pre["channel_order"] == preset.channel_order
    assert recipe["sampling"]["num_frames"] == member.meta["num_frames"]
    assert recipe["sampling"]["sampling_rate"] == member.meta["sampling_rate"]
    assert recipe["output"]["probabilities"] == "softmax"
    assert recipe["verified"] is None and result.max_abs_diff is None


class _DataDependent(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3, 4)) if x.sum() > 0 else -x.mean((2, 3, 4))


class _Noisy(nn.Module):
    """Exports fine, but no two runs agree: verification must refuse it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3, 4)) + torch.rand(x.shape[0], 3)


@pytest.mark.parametrize("fmt", ["onnx", "exported-program"])
def test_failures_leave_nothing_behind(fmt: str, tmp_path) -> None:
    out = tmp_path / "model.bin"
    with pytest.raises(ExportError, match="torch.export failed: .*"):
        export_model(_DataDependent(), out, format=fmt, clip_shape=(2, 8, 8))
    with pytest.raises(ExportError, match="differs from eager by up to") as info:
        export_model(_Noisy(), out, format=fmt, clip_shape=(2, 8, 8))
    assert info.value.max_abs_diff > 1e-4
    assert list(tmp_path.iterdir()) == []


def test_an_existing_file_is_replaced_only_by_a_verified_export(tmp_path) -> None:
    out = tmp_path / "model.onnx"
    out.write_bytes(b"the previous export")
    with pytest.raises(ExportError):
        export_model(_Noisy(), out, clip_shape=(2, 8, 8))
    assert out.read_bytes() == b"the previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


def test_bad_requests_say_what_to_change(tmp_path) -> None:
    model = videozoo.get_model("x3d_xs").eval()
    with pytest.raises(ValueError, match="format must be one of onnx, torchscript, exported-program"):
        export_model(model, tmp_path / "m", format="tflite", clip_shape=(4, 64, 64))
    with pytest.raises(ValueError, match="is a folder"):
        export_model(model, tmp_path, clip_shape=(4, 64, 64))
    with pytest.raises(ValueError, match="does not exist"):
        export_model(model, tmp_path / "no" / "m.onnx", clip_shape=(4, 64, 64))
    with pytest.raises(ValueError, match="pass clip_shape"):
        export_model(model, tmp_path / "m.onnx")
    vivit = videozoo.get_model("vivit_b_16x2").eval()
    with pytest.raises(ValueError, match="frames"):
        export_model(vivit, tmp_path / "m.onnx", clip_shape=(1, 224, 224))
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------------------------------
# The command line, with the tiny registered model and its checkpoint in the cache




def test_cli_export_onnx_with_published_weights(tiny, tmp_path, capsys) -> None:
    out = tmp_path / "tiny.onnx"
    code = main(["export", tiny, "--out", str(out), "--batch", "dynamic"])
    stdout, err = capsys.readouterr()
    assert code == 0, err
    assert "max |exported - eager| = " in stdout and str(out) + ".json" in stdout
    model = videozoo.get_model(tiny, weights="DEFAULT").eval()
    x = torch.randn(2, 3, 4, 32, 32)  # the tiny weights' published clip: 4 frames, 32 px crop
    with torch.inference_mode():
        torch.testing.assert_close(ort_logits(out, x), model(x), rtol=0, atol=1e-5)
    recipe = json.loads((tmp_path / "tiny.onnx.json").read_text())
    assert recipe["weights"].endswith(".TEST_V1") and recipe["categories"] == list(TINY_CATEGORIES)
    assert recipe["input"] == {"name": "video", "shape": ["batch", 3, 4, 32, 32], "dtype": "float32", "layout": "B, C (RGB), T, H, W"}
    assert recipe["preprocessing"]["crop_size"] == [32, 32] and recipe["preprocessing"]["resize_size"] == [36]
    assert recipe["sampling"]["num_frames"] == 4 and recipe["sampling"]["sampling_rate"] == 2
    assert recipe["verified"]["max_abs_diff"] < 1e-5 and recipe["verified"]["runtime"].startswith("onnxruntime")


def test_cli_export_at_another_size_and_format(tiny, tmp_path, capsys) -> None:
    out = tmp_path / "tiny.pt2"
    code = main(["export", tiny, "-w", "MULTI_V1", "-f", "exported-program", "-o", str(out), "--frames", "6", "--size", "40", "48"])
    stdout, err = capsys.readouterr()
    assert code == 0, err
    program = torch.export.load(str(out)).module()
    x = torch.randn(1, 3, 6, 40, 48)
    model = videozoo.get_model(tiny, weights="MULTI_V1").eval()
    with torch.inference_mode():
        torch.testing.assert_close(program(x), model(x), rtol=1e-5, atol=1e-5)
    recipe = json.loads((tmp_path / "tiny.pt2.json").read_text())
    assert recipe["input"]["shape"] == [1, 3, 6, 40, 48] and recipe["output"]["probabilities"] == "sigmoid"


def test_cli_export_errors(tiny, tmp_path, capsys) -> None:
    code = main(["export", "no_such_model", "--out", str(tmp_path / "m.onnx")])
    assert code == 3 and "no_such_model" in capsys.readouterr().err
    code = main(["export", "vivit_b_16x2", "--weights", "none", "--out", str(tmp_path / "m.onnx"), "--frames", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "frames" in err and "Traceback" not in err
    code = main(["export", tiny, "--out", str(tmp_path / "missing" / "m.onnx")])
    assert code == 2 and "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["export", tiny, "--out", str(tmp_path / "m.onnx"), "--batch", "0"])
    assert exit_info.value.code == 2 and "'dynamic'" in capsys.readouterr().err
    assert 6 in EXIT_CODES and "export" in EXIT_CODES[6]
    assert list(p for p in tmp_path.iterdir() if p.name != "home") == []


def test_cli_export_int8_calibrated_on_your_videos(tiny, tmp_path, capsys) -> None:
    """`videozoo export --int8 --calibrate videos.txt`: ONNX Runtime's static quantization, verified on those clips."""
    from video_factory import make_video

    for i in range(2):
        make_video(tmp_path / f"v{i}.mp4", num_frames=30, fps=15, size=(40, 48))
    (tmp_path / "videos.txt").write_text("v0.mp4\nv1.mp4\n")
    fp32, int8 = tmp_path / "fp32.onnx", tmp_path / "int8.onnx"
    assert main(["export", tiny, "--out", str(fp32)]) == 0
    assert main(["export", tiny, "--out", str(int8), "--int8", "--calibrate", str(tmp_path / "videos.txt"), "--batch", "dynamic"]) == 0
    out = capsys.readouterr().out
    assert "as onnx int8: " in out and "verified against eager" in out
    import onnx

    ops = {node.op_type for node in onnx.load(str(int8)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops and int8.stat().st_size < fp32.stat().st_size
    recipe = json.loads((tmp_path / "int8.onnx.json").read_text())
    assert recipe["verified"]["tolerance"] == 0.25
    assert main(["export", tiny, "--out", str(tmp_path / "x.onnx"), "--int8"]) == 2
    assert "--int8 and --calibrate FILE go together" in capsys.readouterr().err
