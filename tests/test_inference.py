"""videozoo.inference with a tiny real model (VideoResNet) and its own checkpoint in a temp cache."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import videozoo
from video_factory import TINY_CATEGORIES, make_audio_only, make_video, tiny_parts
from videozoo.errors import CheckpointError, VideoDecodeError
from videozoo.tasks.classify import Prediction, VideoClassifier, predict
from videozoo.tasks.runner import load_model
from videozoo.video.io import read_video
from videozoo.zoo import ClipRecipe
from videozoo.video.sampling import sample_clip_indices
from videozoo.video.transforms import resized_size


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    return {
        "a": make_video(root / "a.mp4", num_frames=75, fps=30, size=(48, 64)),
        "b": make_video(root / "b.mkv", num_frames=50, fps=25, size=(64, 48), options={"g": "5"}),
        "short": make_video(root / "short.webm", num_frames=6, fps=24, codec="libvpx-vp9"),
        "audio": make_audio_only(root / "audio.m4a"),
    }




def expected_probs(model, member, path, clips=3, crops=3, resize_on_decode=True):
    """The multi-view average computed step by step, independently of the classifier's plumbing."""
    recipe = ClipRecipe.from_meta(member.meta).with_views(clips, crops)
    preset = member.transforms()
    probe_video = read_video(path)
    h, w = probe_video.frames.shape[-2:]
    size = resized_size(h, w, preset.resize_size) if resize_on_decode else None
    video = read_video(path, size=size)
    indices = sample_clip_indices(video.pts, recipe, video.fps, video.duration)
    views = [view for clip in indices for view in preset.multi_crop(video.frames[clip], crops)]
    with torch.no_grad():
        feature_maps = model.forward_features(torch.stack(views))
        probs = model.forward_head(feature_maps).softmax(-1)
        embeddings = model.forward_head(feature_maps, pre_logits=True)
    assert embeddings.shape == (len(views), model.num_features)
    return probs.mean(0), embeddings.mean(0)


def test_multi_view_average(tiny, clips):
    classifier = VideoClassifier(tiny, batch_size=4)
    assert (classifier.recipe.num_clips, classifier.recipe.num_crops) == (3, 3)
    [prediction] = classifier.predict(clips["a"], top_k=3, features=True)
    probs, feats = expected_probs(classifier.model, classifier.weights, clips["a"])
    assert prediction.num_views == 9
    assert torch.allclose(prediction.probs, probs, atol=1e-5)
    assert torch.allclose(prediction.features, feats, atol=1e-4)
    top = probs.topk(3)
    assert [label for label, _ in prediction.top_k] == [TINY_CATEGORIES[i] for i in top.indices]
    assert [p for _, p in prediction.top_k] == pytest.approx(top.values.tolist(), abs=1e-5)
    assert prediction.label == prediction.top_k[0][0]
    assert prediction.probs.sum() == pytest.approx(1.0, abs=1e-5)


def test_exact_preprocessing_and_fewer_views(tiny, clips):
    classifier = VideoClassifier(tiny, clips=2, crops=1, resize_on_decode=False)
    [prediction] = classifier.predict(clips["b"])
    probs, _ = expected_probs(classifier.model, classifier.weights, clips["b"], 2, 1, resize_on_decode=False)
    assert prediction.num_views == 2
    assert torch.allclose(prediction.probs, probs, atol=1e-5)
    assert len(prediction.top_k) == 5  # top_k larger than the label set is cut to it


def test_views_shape_and_order(tiny, clips):
    classifier = VideoClassifier(tiny)
    views = classifier.views(clips["a"])
    assert views.shape == (9, 3, 4, 32, 32) and views.dtype == torch.float32
    # Clip-major: the centre crop (index 1) of clip 0 is the single-crop view of clip 0.
    single = VideoClassifier(tiny, crops=1).views(clips["a"])
    assert torch.equal(views[1], single[0]) and torch.equal(views[4], single[1])


def test_batch_size_workers_and_order_do_not_change_results(tiny, clips):
    videos = [clips["a"], clips["b"], clips["short"]]
    reference = VideoClassifier(tiny, clips=2, crops=1, batch_size=1, num_workers=0).predict(videos)
    batched = VideoClassifier(tiny, clips=2, crops=1, batch_size=3, num_workers=1).predict(videos)
    assert [p.video for p in batched] == [str(v) for v in videos]
    for a, b in zip(reference, batched):
        assert torch.allclose(a.probs, b.probs, atol=1e-5)
        assert a.num_views == b.num_views == 2


def test_tensor_and_video_inputs(tiny, clips):
    classifier = VideoClassifier(tiny, clips=2, crops=1, resize_on_decode=False)
    [from_file] = classifier.predict(clips["a"])
    video = read_video(clips["a"])
    from_tensor, from_video = classifier.predict([video.frames, video], fps=30)
    assert from_tensor.video == "<tensor 0>" and from_video.video == str(clips["a"])
    assert torch.allclose(from_file.probs, from_tensor.probs, atol=1e-5)
    assert torch.allclose(from_file.probs, from_video.probs, atol=1e-5)
    floats = classifier.predict(video.frames.float() / 255, fps=30)[0]
    assert floats.top_k[0][0] == from_file.top_k[0][0]


def test_predict_function(tiny, clips):
    results = predict([clips["a"], clips["short"]], tiny, clips=1, crops=1, top_k=2, num_workers=0)
    assert [len(r.top_k) for r in results] == [2, 2]
    assert all(isinstance(r, Prediction) and r.error is None for r in results)
    assert results[0].to_dict()["top_k"][0]["label"] in TINY_CATEGORIES


def test_predict_keeps_the_good_results_in_order_past_a_bad_video(tiny, clips, tmp_path):
    """predict(on_error="return"): the bad video's prediction carries its error, in its place."""
    videos = [clips["a"], tmp_path / "missing.mp4", clips["audio"], clips["short"]]
    with pytest.raises(VideoDecodeError):
        predict(videos, tiny, clips=1, crops=1, num_workers=0)
    results = predict(videos, tiny, clips=1, crops=1, num_workers=0, on_error="return")
    assert [r.video for r in results] == [str(v) for v in videos]
    assert [r.error is None for r in results] == [True, False, False, True]
    alone = predict(clips["short"], tiny, clips=1, crops=1, num_workers=0)[0]
    assert torch.allclose(results[3].probs, alone.probs, atol=1e-5)  # batched with another video or alone


def test_bf16_follows_fp32(tiny, clips):
    fp32 = predict(clips["a"], tiny, clips=1, crops=1, top_k=5, num_workers=0)[0]
    classifier = VideoClassifier(tiny, clips=1, crops=1, dtype="bf16", num_workers=0)
    assert all(p.dtype == torch.bfloat16 for p in classifier.model.parameters())  # weights in bf16, not autocast
    bf16 = classifier.predict(clips["a"], top_k=5)[0]
    assert bf16.probs.dtype == torch.float32  # probabilities leave the model as float32
    torch.testing.assert_close(bf16.probs, fp32.probs, rtol=0, atol=2e-2)
    assert not torch.equal(bf16.probs, fp32.probs)  # it did run in bf16
    with pytest.raises(ValueError, match="dtype must be one of"):
        predict(clips["a"], tiny, dtype="float16")


def test_bf16_copies_a_module_it_is_given(tiny, clips):
    net = videozoo.get_model(tiny, weights="DEFAULT")
    runner = load_model(net, videozoo.get_model_weights(tiny).DEFAULT, dtype="bf16")
    assert runner.model is not net and next(runner.model.parameters()).dtype == torch.bfloat16
    assert next(net.parameters()).dtype == torch.float32  # the caller's module is left as it was
    embedding, logits = runner.embed(torch.randn(2, 3, 4, 32, 32), with_logits=True)
    assert embedding.dtype == logits.dtype == torch.float32 and logits.shape[0] == 2


def test_bf16_refused_on_a_cpu_without_it(tiny):
    """PyTorch's CPU kernels at AVX2 (``ATEN_CPU_CAPABILITY``, as on a CPU without AVX-512): bf16 would be
    emulated, slower than fp32, so it is refused before the model is built, saying what to use."""
    script = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "import videozoo\n"
        "from video_factory import TINY_NAME, tiny_parts\n"
        "_, enum, builder = tiny_parts()\n"
        "videozoo.register_model(enum, TINY_NAME)(builder)\n"
        "from videozoo.tasks.runner import load_model\n"
        "from videozoo.tasks.engines import accelerate\n"
        "for call in (lambda: load_model(TINY_NAME, dtype='bf16'), lambda: accelerate(TINY_NAME, engine='torch', dtype='bf16')):\n"
        "    try:\n"
        "        call()\n"
        "    except ValueError as e:\n"
        "        print(e)\n"
        "print(load_model(TINY_NAME).dtype)\n"
    )
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "avx2"}
    done = subprocess.run([sys.executable, "-c", script, str(Path(__file__).parent)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    refused, by_engine, fp32 = done.stdout.strip().splitlines()
    assert "dtype 'bf16' needs native bfloat16 arithmetic and this CPU has neither AVX512-BF16 nor AMX" in refused
    assert "Use dtype 'fp32'" in refused and "(PyTorch's CPU kernels: AVX2)" in refused
    assert "engine 'torch' cannot run bf16: this CPU has neither AVX512-BF16 nor AMX" in by_engine
    assert fp32 == "fp32"


def test_bad_videos_raise_or_are_returned(tiny, clips, tmp_path):
    classifier = VideoClassifier(tiny, clips=1, crops=1, num_workers=0)
    with pytest.raises(VideoDecodeError, match="audio.m4a: has no video stream"):
        classifier.predict([clips["a"], clips["audio"]])
    missing = tmp_path / "missing.mp4"
    results = VideoClassifier(tiny, clips=1, crops=1, num_workers=1).predict(
        [clips["a"], missing, clips["audio"], clips["b"]], on_error="return"
    )
    assert [r.error is None for r in results] == [True, False, False, True]
    assert "missing.mp4: no such file" in str(results[1].error)
    assert results[1].to_dict() == {"video": str(missing), "error": str(results[1].error)}
    assert isinstance(results[2].error, VideoDecodeError) and results[2].error.path == str(clips["audio"])


def test_local_checkpoint_file(tiny, tmp_path, clips):
    arch, enum, _ = tiny_parts()
    torch.manual_seed(1)
    other = arch(num_classes=len(TINY_CATEGORIES))
    path = tmp_path / "mine.pth"
    torch.save(other.state_dict(), path)
    runner = load_model(tiny, str(path))
    model, member = runner.model, runner.weights
    assert member is enum.DEFAULT and runner.weights_name == str(path) and runner.model_name == tiny
    for key, value in other.state_dict().items():
        assert torch.equal(model.state_dict()[key], value)
    assert not model.training
    a = VideoClassifier(tiny, path, clips=1, crops=1).predict(clips["a"])[0]
    b = VideoClassifier(tiny, clips=1, crops=1).predict(clips["a"])[0]
    assert not torch.allclose(a.probs, b.probs)


def test_local_checkpoint_with_adapter(tiny, tmp_path, monkeypatch):
    """Publisher formats such as PyTorchVideo's {"model_state": ...} go through the adapter."""
    arch, enum, _ = tiny_parts()
    member = enum.DEFAULT
    monkeypatch.setattr(type(member), "state_dict_adapter", property(lambda self: lambda ckpt: ckpt["model_state"]))
    net = arch(num_classes=len(TINY_CATEGORIES))
    path = tmp_path / "ptv.pyth"
    torch.save({"model_state": net.state_dict(), "epoch": 1}, path)
    model = load_model(tiny, path).model
    assert torch.equal(model.fc.weight, net.fc.weight)


def test_checkpoint_errors(tiny, tmp_path, clips):
    with pytest.raises(CheckpointError, match="nothing.pth: no such checkpoint file"):
        load_model(tiny, str(tmp_path / "nothing.pth"))
    with pytest.raises(CheckpointError, match="is not a PyTorch checkpoint"):
        load_model(tiny, str(clips["a"]))
    wrong = tmp_path / "wrong.pth"
    torch.save(torch.nn.Linear(3, 4).state_dict(), wrong)
    with pytest.raises(CheckpointError, match="wrong.pth: the checkpoint does not fit VideoResNet as built for TinyMC3"):
        load_model(tiny, str(wrong))


def test_argument_errors(tiny):
    with pytest.raises(ValueError, match="Unknown model 'tiny_mc3'"):
        VideoClassifier("tiny_mc3")
    with pytest.raises(ValueError, match="Unknown weights 'NOPE'"):
        VideoClassifier(tiny, "NOPE")
    with pytest.raises(ValueError, match="untrained weights"):
        VideoClassifier(tiny, None)
    with pytest.raises(ValueError, match="weights= the WeightsEnum member"):
        VideoClassifier(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="num_crops must be 1 or 3"):
        VideoClassifier(tiny, crops=2)
    with pytest.raises(ValueError, match="batch_size"):
        VideoClassifier(tiny, batch_size=0)


def test_model_object_with_its_weights(tiny, clips):
    _, enum, _ = tiny_parts()
    model = videozoo.get_model(tiny, weights="DEFAULT")
    classifier = VideoClassifier(model, enum.DEFAULT, clips=1, crops=1)
    assert classifier.predict(clips["short"])[0].num_views == 1


def test_features_are_the_clip_embedding_at_the_evaluation_size():
    """X3D-M is evaluated at 256 px with a head built for 224 (4 window positions): the features a user
    gets are still its (num_features,) embedding, the mean over the positions."""
    torch.manual_seed(0)
    model = videozoo.x3d_m().eval()
    member = videozoo.X3D_M_Weights.DEFAULT
    frames = torch.randint(0, 256, (80, 3, 120, 160), dtype=torch.uint8)
    [prediction] = VideoClassifier(model, member, clips=1, crops=1).predict(frames, features=True, fps=30.0)
    assert prediction.features.shape == (model.num_features,) == (2048,)
    clip = VideoClassifier(model, member, clips=1, crops=1).views(frames, fps=30.0)
    assert clip.shape == (1, 3, 16, 256, 256)
    with torch.inference_mode():
        expected = model.forward_head(model.forward_features(clip), pre_logits=True)[0]
    torch.testing.assert_close(prediction.features, expected)


# ----------------------------------------------------------------------------------------------------
# Multi-label weights (Charades): sigmoid per class, views combined by max, labels above a threshold


def test_multi_label_sigmoid_max_over_views_and_threshold(tiny, clips):
    classifier = VideoClassifier(tiny, "MULTI_V1", batch_size=4)
    assert classifier.multi_label and classifier.threshold == 0.5
    assert "multi_label=True, threshold=0.5" in repr(classifier)
    [prediction] = classifier.predict(clips["a"], top_k=3, features=True)
    views = classifier.views(clips["a"])
    assert views.shape[0] == prediction.num_views == 9
    with torch.inference_mode():
        per_view = classifier.model(views).sigmoid()  # (views, classes)
    expected = per_view.amax(0)
    assert not torch.allclose(per_view.mean(0), expected, atol=1e-3)  # max, not mean, is being checked
    assert torch.allclose(prediction.probs, expected, atol=1e-5)
    assert prediction.probs.sum() > 1.5  # independent classes, not a distribution
    above = [(TINY_CATEGORIES[i], float(expected[i])) for i in expected.argsort(descending=True) if expected[i] >= 0.5]
    assert [label for label, _ in prediction.labels] == [label for label, _ in above]
    found = {label for label, _ in prediction.labels}
    assert {"bars", "blocks"} <= found and not {"noise", "static"} & found  # the checkpoint's biases: +4, +3, -4, -3
    assert [p for _, p in prediction.labels] == pytest.approx([p for _, p in above], abs=1e-6)
    assert [label for label, _ in prediction.top_k] == [TINY_CATEGORIES[i] for i in expected.topk(3).indices]
    assert prediction.to_dict()["labels"] == [{"label": label, "probability": round(p, 6)} for label, p in prediction.labels]
    # The embedding is still the mean over views.
    with torch.inference_mode():
        feats = classifier.model.forward_head(classifier.model.forward_features(views), pre_logits=True).mean(0)
    assert torch.allclose(prediction.features, feats, atol=1e-4)


def test_threshold_chooses_the_labels(tiny, clips):
    every = predict(clips["b"], tiny, "MULTI_V1", clips=2, crops=1, threshold=0.0)[0]
    assert sorted(label for label, _ in every.labels) == sorted(TINY_CATEGORIES)
    strict = predict(clips["b"], tiny, "MULTI_V1", clips=2, crops=1, threshold=0.99)[0]
    assert [label for label, _ in strict.labels] == [label for label, p in every.labels if p >= 0.99]
    assert torch.equal(every.probs, strict.probs)
    for bad in (-0.1, 1.5, True, "0.5"):
        with pytest.raises(ValueError, match="threshold must be a probability between 0 and 1"):
            VideoClassifier(tiny, "MULTI_V1", threshold=bad)


def test_single_label_weights_keep_softmax_mean_and_list_the_top_label_above_threshold(tiny, clips):
    [prediction] = predict(clips["a"], tiny, clips=1, crops=1, threshold=0.0)
    assert prediction.probs.sum() == pytest.approx(1.0, abs=1e-5)
    assert len(prediction.labels) == len(TINY_CATEGORIES)
    [confident] = predict(clips["a"], tiny, clips=1, crops=1, threshold=1.0)
    assert confident.labels == [] and confident.top_k  # the top-k is reported whatever the threshold


# ----------------------------------------------------------------------------------------------------
# PyTorchVideo's Something-Something V2 and Charades members: files in the publisher's format


def _publish_ptv(home, member, fixture_name):
    """Put a file in PyTorchVideo's format (``{"model_state": ...}``, its key names, the member's class
    count) where the cache keeps ``member``'s download: the parity fixture's reference tensors."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from parity.common import FIXTURES, load_fixture, reference_state_dict

    fixture = load_fixture(FIXTURES / f"{fixture_name}.pt")
    path = home / "checkpoints" / member.file_name
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model_state": reference_state_dict(fixture)}, path)
    return path


@pytest.mark.parametrize(
    "name,member,fixture,classes",
    [
        ("slowfast_r50", "SSV2_V1", "slowfast_r50-ssv2", 174),
        ("slowfast_r50", "CHARADES_V1", "slowfast_r50-charades", 157),
        ("slow_r50", "SSV2_V1", "slow_r50-ssv2", 174),
        ("slow_r50", "CHARADES_V1", "slow_r50-charades", 157),
    ],
)
def test_dataset_members_load_the_publishers_file(tmp_path, monkeypatch, name, member, fixture, classes):
    monkeypatch.setenv("VIDEOZOO_HOME", str(tmp_path / "home"))
    weights = videozoo.get_model_weights(name).verify(member)
    _publish_ptv(tmp_path / "home", weights, fixture)
    model = videozoo.get_model(name, weights=member)
    assert model.num_classes == len(weights.meta["categories"]) == classes
    assert model.get_classifier().out_features == classes
    assert (model.num_frames, model.crop_size) == (weights.meta["model_args"]["num_frames"], 224)
    with pytest.raises(ValueError, match=f"num_classes=400 conflicts with .*{member}, which has {classes} classes"):
        videozoo.get_model(name, weights=member, num_classes=400)


def test_ssv2_and_charades_end_to_end(tmp_path, monkeypatch, clips):
    """Slow R50's SSv2 weights classify a real video with the segment recipe (one view spread over the
    whole video), its Charades weights with sigmoid probabilities maxed over views and a threshold."""
    monkeypatch.setenv("VIDEOZOO_HOME", str(tmp_path / "home"))
    ssv2 = videozoo.get_weight("Slow_R50_Weights.SSV2_V1")
    _publish_ptv(tmp_path / "home", ssv2, "slow_r50-ssv2")
    classifier = VideoClassifier("slow_r50", "SSV2_V1", crops=1)
    assert classifier.recipe.sampling == "segments" and classifier.recipe.num_views == 1
    [prediction] = classifier.predict(clips["a"], top_k=3)
    assert prediction.num_views == 1 and prediction.probs.shape == (174,)
    assert prediction.probs.sum() == pytest.approx(1.0, abs=1e-4)
    assert all(label in ssv2.meta["categories"] for label, _ in prediction.top_k)

    charades = videozoo.get_weight("Slow_R50_Weights.CHARADES_V1")
    _publish_ptv(tmp_path / "home", charades, "slow_r50-charades")  # the same file name: this test's cache only
    classifier = VideoClassifier("slow_r50", "CHARADES_V1", clips=2, crops=1, threshold=0.0)
    assert classifier.multi_label and classifier.recipe.frame_rate == 24.0
    [prediction] = classifier.predict(clips["a"])
    views = classifier.views(clips["a"])
    with torch.inference_mode():
        expected = classifier.model(views).sigmoid().amax(0)
    assert torch.allclose(prediction.probs, expected, atol=1e-5)
    assert len(prediction.labels) == 157 and prediction.labels[0][0] == charades.meta["categories"][int(expected.argmax())]
