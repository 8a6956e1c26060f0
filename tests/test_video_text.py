"""Video-text models (task ``video_text``): the tokenizer against open_clip's on awkward prompts, PE-Core
against open_clip (fixtures from ``parity/ref_pe_core.py``), their contract, loading a file in the
publisher's layout with the tokenizer beside it, and the labels and search tasks on real encoded videos."""

from __future__ import annotations

import json
import sys
import warnings
from functools import partial
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

import videozoo
from parity.common import FIXTURES, fill_state_dict, relative_error
from videozoo.errors import DownloadError
from videozoo.models import VideoTextModel
from videozoo.models.pe_core import PECore, PECore_B16_Weights, _build, from_open_clip_state_dict
from videozoo.video.transforms import VideoClassification
from videozoo.zoo import ExtraFile, Weights, WeightsEnum
from videozoo.zoo.store import cache_name
from videozoo.zoo.tokenizer import ClipTokenizer, TruncationWarning

TEXT = FIXTURES / "video_text"
TOKENIZER_JSON = TEXT / "clip_tokenizer.json"
CASES = ["pe_core_b16", "pe_core_l14", "pe_core_g14"]
#: what each published configuration fixes beyond the fixture's sizes
PUBLISHED = {"pe_core_g14": {"class_token": False, "rope_grid_offset": 0.0}}


def fixture(name: str) -> dict:
    return torch.load(TEXT / f"{name}.pt", weights_only=True)


def published_file(name: str) -> dict[str, torch.Tensor]:
    """The fixture's tensors in open_clip's layout (``visual.trunk.*``, ``text.*``, ``logit_scale``)."""
    fx = fixture(name)
    state = fill_state_dict(fx["keys"], fx["shapes"], fx["dtypes"])
    state["logit_scale"] = torch.tensor(fx["logit_scale"])
    return state


def arch(name: str) -> dict:
    return {**fixture(name)["kwargs"], **PUBLISHED.get(name, {})}


# -- the tokenizer ---------------------------------------------------------------------------------


@pytest.mark.parametrize("context", [32, 72])
def test_tokenizer_matches_open_clip_on_awkward_prompts(context: int) -> None:
    """Unicode, emoji, curly quotes, HTML entities, ligatures, full-width letters, mojibake, runs of
    whitespace, contractions, digits, the empty prompt, and one longer than the context (cut as open_clip
    cuts it: its first ``context - 1`` tokens and ``<|endoftext|>``, with a warning)."""
    reference = torch.load(TEXT / "clip_tokenizer.pt", weights_only=True)
    tokenizer = ClipTokenizer(TOKENIZER_JSON, context)
    with pytest.warns(TruncationWarning, match="cut to its first"):
        ours = tokenizer(reference["prompts"])
    assert torch.equal(ours, reference["tokens"][context])
    assert tokenizer.vocab_size == reference["vocab_size"]


def test_tokenizer_warns_only_for_prompts_that_are_cut() -> None:
    prompt = "someone opens the fridge"
    length = len(ClipTokenizer(TOKENIZER_JSON, 32).encode(prompt)) + 2  # with start and end of text
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        exact = ClipTokenizer(TOKENIZER_JSON, length)([prompt, "a dog"])
    with pytest.warns(TruncationWarning, match="'someone opens the fridge' has"):
        cut = ClipTokenizer(TOKENIZER_JSON, length - 1)([prompt])
    assert torch.equal(cut[0, :-1], exact[0, : length - 2]) and cut[0, -1] == exact[0, -1]


def test_tokenizer_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "tokenizer.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="not a tokenizer.json"):
        ClipTokenizer(bad, 32)
    with pytest.raises(ValueError, match="at least 2"):
        ClipTokenizer(TOKENIZER_JSON, 1)
    monkeypatch.setitem(sys.modules, "tokenizers", None)  # as if the text extra were not installed
    with pytest.raises(ImportError, match=r'pip install "videozoo\[text\]"'):
        ClipTokenizer(TOKENIZER_JSON, 32)


# -- PE-Core against open_clip ------------------------------------------------------------------------


@pytest.mark.parametrize("name", CASES)
def test_pe_core_matches_open_clip(name: str) -> None:
    """Video embeddings (frame embeddings averaged, then normalised), text embeddings and logits, within
    1e-4 of open_clip with timm's tower, in the B/16, L/14 (class token, rotary grid from 1) and G/14 (no
    class token, grid from 0) layouts."""
    fx = fixture(name)
    reference_tokens = torch.load(TEXT / "clip_tokenizer.pt", weights_only=True)["tokens"]
    model = PECore(**arch(name)).eval()
    model.load_state_dict(from_open_clip_state_dict(published_file(name)), strict=True)
    clip = torch.randn(fx["input_shape"], generator=torch.Generator().manual_seed(fx["input_seed"]))
    with torch.inference_mode():
        video = model.encode_video(clip)
        text = F.normalize(model.encode_tokens(reference_tokens[model.context_length]), dim=-1)
        logits = model.logit_scale.exp() * video @ text.t()
    assert relative_error(video, fx["video"]) <= 1e-4
    assert relative_error(text, fx["text"]) <= 1e-4
    assert relative_error(logits, fx["logits"]) <= 1e-4


def test_published_builders_have_the_publishers_sizes() -> None:
    with torch.device("meta"):
        sizes = {n: videozoo.get_model(n) for n in CASES}
    assert {n: (m.image_size, m.embed_dim, m.context_length) for n, m in sizes.items()} == {
        "pe_core_b16": (224, 1024, 32), "pe_core_l14": (336, 1024, 32), "pe_core_g14": (448, 1280, 72),
    }  # fmt: skip
    assert sizes["pe_core_g14"].visual.cls_token is None and sizes["pe_core_b16"].visual.cls_token is not None
    assert videozoo.list_models(task="video_text") == sorted([*CASES, "xclip_b16", "xclip_b16_zero_shot", "xclip_b32"])
    for name in CASES:
        member = videozoo.get_model_weights(name).DEFAULT
        assert member.meta["num_params"] == sum(p.numel() for p in sizes[name].parameters())
        assert member.url.endswith("/open_clip_model.safetensors") and member.meta["license"] == "Apache-2.0"


# -- a tiny PE-Core member, loaded as a published one ------------------------------------------------

TINY_PE = "tiny_pe_core_test"
TINY_REPO = "https://huggingface.co/videozoo-tests/tiny-pe"  # never fetched: the files are put in the cache


class TinyPE_Weights(WeightsEnum):
    ZERO_SHOT = Weights(
        url=f"{TINY_REPO}/resolve/main/open_clip_model.safetensors",
        transforms=partial(
            VideoClassification, crop_size=48, resize_size=(48, 48), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)
        ),
        meta={
            **PECore_B16_Weights.ZERO_SHOT.meta, "num_frames": 4, "min_size": (48, 48), "num_params": 0,
            "recipe": "tests/test_video_text.py",
        },
        state_dict_adapter=from_open_clip_state_dict,
        extra_files=(ExtraFile("tokenizer", f"{TINY_REPO}/resolve/main/tokenizer.json"),),
    )
    DEFAULT = ZERO_SHOT


def tiny_pe_core_test(*, weights=None, progress=True, **kwargs):
    return _build(TinyPE_Weights, weights, progress, kwargs, arch("pe_core_b16"))


def install_tiny_pe(home: Path) -> None:
    checkpoints = home / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    member = TinyPE_Weights.ZERO_SHOT
    save_file(published_file("pe_core_b16"), str(checkpoints / member.file_name))
    (checkpoints / cache_name(member.value.extra_files[0].url)).write_bytes(TOKENIZER_JSON.read_bytes())


@pytest.fixture
def tiny_pe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("VIDEOZOO_HOME", str(tmp_path / "home"))
    install_tiny_pe(tmp_path / "home")
    with videozoo.registered(tiny_pe_core_test, TinyPE_Weights, TINY_PE, task="video_text") as name:
        yield name


@pytest.fixture(scope="module")
def model() -> PECore:
    """The tiny member with its tokenizer, loaded once for the contract tests."""
    torch.manual_seed(0)
    m = PECore(**arch("pe_core_b16")).eval()
    m.load_state_dict(from_open_clip_state_dict(published_file("pe_core_b16")), strict=True)
    m.set_tokenizer(ClipTokenizer(TOKENIZER_JSON, m.context_length))
    return m


def test_a_published_file_loads_with_its_tokenizer(tiny_pe: str) -> None:
    model = videozoo.get_model(tiny_pe, weights="DEFAULT")
    assert isinstance(model, VideoTextModel) and model.tokenizer is not None
    assert videozoo.get_model_task(tiny_pe) == "video_text"
    reference = fixture("pe_core_b16")
    assert float(model.logit_scale.detach()) == reference["logit_scale"]
    with torch.inference_mode():
        text = model.encode_text(["a dog catches a frisbee"])
    assert relative_error(text[0], reference["text"][0]) <= 1e-4  # the fixture's first prompt


def test_the_tokenizer_is_downloaded_and_hash_checked(http_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIDEOZOO_HOME", str(tmp_path / "home"))
    data = TOKENIZER_JSON.read_bytes()
    (http_server.root / "tokenizer.json").write_bytes(data)
    (http_server.root / "changed.json").write_bytes(data + b" ")
    import hashlib

    good = hashlib.sha256(data).hexdigest()

    class Served(WeightsEnum):
        OK = Weights("http://127.0.0.1:9/unused.safetensors", TinyPE_Weights.ZERO_SHOT.transforms, {},
                     extra_files=(ExtraFile("tokenizer", http_server.url("tokenizer.json"), good),))  # fmt: skip
        BAD = Weights("http://127.0.0.1:9/unused2.safetensors", TinyPE_Weights.ZERO_SHOT.transforms, {},
                      extra_files=(ExtraFile("tokenizer", http_server.url("changed.json"), good),))  # fmt: skip

    path = Served.OK.extra_file("tokenizer", progress=False)
    assert path.read_bytes() == data and path.parent == tmp_path / "home" / "checkpoints"
    with pytest.raises(DownloadError, match=f"videozoo expects {good}"):
        Served.BAD.extra_file("tokenizer", progress=False)
    assert not (tmp_path / "home" / "checkpoints" / "changed.json").exists()
    with pytest.raises(KeyError, match="no 'merges' file"):
        Served.OK.extra_file("merges")


def test_offline_without_the_tokenizer_names_where_to_put_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIDEOZOO_HOME", str(tmp_path / "home"))
    install_tiny_pe(tmp_path / "home")
    (tmp_path / "home" / "checkpoints" / "videozoo-tests--tiny-pe--tokenizer.json").unlink()
    with (
        videozoo.registered(tiny_pe_core_test, TinyPE_Weights, TINY_PE, task="video_text"),
        pytest.raises(DownloadError, match="tokenizer.json is not in the cache"),
    ):
        videozoo.get_model(TINY_PE, weights="DEFAULT")


# -- the contract --------------------------------------------------------------------------------------


def clip_batch(model: PECore, batch: int = 2, frames: int = 3) -> torch.Tensor:
    return torch.randn(batch, 3, frames, model.image_size, model.image_size, generator=torch.Generator().manual_seed(3))


def test_embeddings_are_normalised_and_the_head_is_the_video_embedding(model: PECore) -> None:
    x = clip_batch(model)
    with torch.inference_mode():
        video = model.encode_video(x)
        features = model.forward_features(x)
        text = model.encode_text(["a dog", "a cat", "a forklift tips over"])
    assert video.shape == (2, model.embed_dim) and features.shape == (2, 3, model.embed_dim)
    assert text.shape == (3, model.embed_dim)
    torch.testing.assert_close(video.norm(dim=-1), torch.ones(2))
    torch.testing.assert_close(text.norm(dim=-1), torch.ones(3))
    torch.testing.assert_close(model.forward_head(features, pre_logits=True), video)
    assert model.num_features == model.embed_dim


def test_labels_turn_it_into_a_classifier(model: PECore) -> None:
    x = clip_batch(model)
    with pytest.raises(ValueError, match="no labels to classify into: call model.set_labels"):
        model(x)
    model.set_labels(["dog", "cat", "forklift"], template="a video of a {}.")
    try:
        with torch.inference_mode():
            logits = model(x)
            expected = model.logit_scale.exp() * model.encode_video(x) @ model.encode_text(
                ["a video of a dog.", "a video of a cat.", "a video of a forklift."]
            ).t()
        assert logits.shape == (2, 3) and model.categories == ["dog", "cat", "forklift"] and model.num_classes == 3
        torch.testing.assert_close(logits, expected)
        # the publisher's templates by default: each label's prompts averaged and normalised
        model.set_labels(["dog", "cat"])
        prompts = model.encode_text([t.replace("{c}", "dog") for t in model.templates])
        torch.testing.assert_close(model.label_embeddings[0], F.normalize(prompts.mean(0), dim=-1))
        assert len(model.templates) == 28
        # cached per (labels, templates): the same tensor comes back
        assert model.embed_labels(["dog", "cat"]) is model.embed_labels(["dog", "cat"])
    finally:
        model.label_embeddings = torch.empty(0, model.embed_dim)
        model.categories, model.num_classes = [], 0


@pytest.mark.parametrize(
    "labels, message",
    [
        ([], "label list is empty"),
        (["dog", "cat", "dog"], "'dog' is given twice \\(labels 1 and 3\\)"),
        (["dog", "  "], "Label 2 is empty"),
        ("dog", "not one string"),
        (["dog", 3], "got int at position 1"),
    ],
)
def test_bad_labels_are_refused(model: PECore, labels, message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        model.set_labels(labels)
    assert model.categories == []


def test_bad_templates_and_inputs_are_refused(model: PECore) -> None:
    with pytest.raises(ValueError, match="has no '\\{\\}'"):
        model.set_labels(["dog"], template="a video")
    with pytest.raises(ValueError, match="exactly 48x48"):
        model.encode_video(torch.randn(1, 3, 2, 64, 64))
    with pytest.raises(ValueError, match="\\(B, 3, T, H, W\\)"):
        model.encode_video(torch.randn(3, 2, 48, 48))
    with pytest.raises(ValueError, match="set_labels"):
        model.reset_classifier(3)


def test_a_model_without_weights_has_no_tokenizer() -> None:
    bare = PECore(**arch("pe_core_b16"))
    with pytest.raises(ValueError, match="has no tokenizer"):
        bare.encode_text(["a dog"])


# -- labels in words: predict, classify and timeline -----------------------------------------------


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    from video_factory import make_video

    root = tmp_path_factory.mktemp("text_videos")
    return {
        "short": make_video(root / "short.mp4", num_frames=24, fps=12),
        "long": make_video(root / "long.mp4", num_frames=96, fps=12),
    }


def test_predict_with_labels_ranks_them_by_scaled_similarity(tiny_pe: str, videos) -> None:
    labels = ["a dog catches a frisbee", "someone opens the fridge", "pour water"]
    classifier = videozoo.VideoClassifier(tiny_pe, labels=labels, template="a video of {}.")
    [prediction] = classifier.predict(videos["short"], top_k=3)
    assert sorted(label for label, _ in prediction.top_k) == sorted(labels)
    assert abs(sum(p for _, p in prediction.top_k) - 1.0) < 1e-5
    # what the probabilities are: softmax over logit_scale.exp() * cos(video, prompt), averaged over views
    model, views = classifier.model, classifier.views(videos["short"])
    with torch.inference_mode():
        video = model.encode_video(views)
        text = model.encode_text([f"a video of {label}." for label in labels])
        expected = (model.logit_scale.exp() * video @ text.t()).softmax(-1).mean(0)
    torch.testing.assert_close(prediction.probs, expected)
    assert [p.top_k for p in videozoo.predict(videos["short"], tiny_pe, labels=labels, template="a video of {}.", top_k=3)] == [
        prediction.top_k
    ]


def test_labels_are_refused_by_a_classifier_and_required_by_a_video_text_model(tiny, tiny_pe, videos) -> None:
    with pytest.raises(ValueError, match="is a classifier: it scores the classes it was trained on"):
        videozoo.predict(videos["short"], tiny, labels=["dog", "cat"])
    with pytest.raises(ValueError, match="video-text model: it classifies into labels you give"):
        videozoo.predict(videos["short"], tiny_pe)


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    from videozoo.cli import main

    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_classify_command_with_labels(tiny_pe, videos, capsys, tmp_path: Path) -> None:
    code, out, err = run_cli(capsys, "classify", videos["short"], "-m", tiny_pe, "--labels", "dog, cat,forklift", "-q")
    assert code == 0, err
    rows = [line.split() for line in out.strip().splitlines()[2:]]
    assert [r[0] for r in rows] == ["1", "2", "3"] and {r[1] for r in rows} == {"dog", "cat", "forklift"}
    file = tmp_path / "labels.txt"
    file.write_text("dog\n\ncat\nforklift tips over\n", encoding="utf-8")
    code, out, err = run_cli(capsys, "classify", videos["short"], "-m", tiny_pe, "--labels", file, "--json", "-q")
    assert code == 0, err
    import json

    result = json.loads(out)["results"][0]
    assert sorted(t["label"] for t in result["top_k"]) == ["cat", "dog", "forklift tips over"]
    assert abs(sum(t["probability"] for t in result["top_k"]) - 1.0) < 1e-4


@pytest.mark.parametrize(
    "labels, message",
    [
        ("dog,cat,dog", "'dog' is given twice"),
        (",", "label list is empty"),
        ("dog,,cat", "Label 2 is empty.*use a file"),
        ("BADFILE", "is not UTF-8 text"),
    ],
)
def test_classify_command_refuses_bad_labels(tiny_pe, videos, capsys, tmp_path: Path, labels: str, message: str) -> None:
    if labels == "BADFILE":
        labels = tmp_path / "latin1.txt"
        labels.write_bytes("caf\xe9\nthé\n".encode("latin-1"))
    code, _, err = run_cli(capsys, "classify", videos["short"], "-m", tiny_pe, "--labels", labels)
    assert code == 2 and "Traceback" not in err
    import re

    assert re.search(message, err), err


def test_classify_command_says_why_labels_do_not_fit(tiny, tiny_pe, videos, capsys) -> None:
    code, _, err = run_cli(capsys, "classify", videos["short"], "-m", tiny, "--labels", "dog,cat")
    assert code == 2 and f"{tiny} is a classifier" in err and "pe_core_b16" in err
    code, _, err = run_cli(capsys, "classify", videos["short"], "-m", tiny_pe)
    assert code == 2 and "Add --labels" in err


def test_an_over_long_label_is_cut_with_a_warning(tiny_pe, videos, capsys) -> None:
    long = "a person " + "slowly " * 40 + "opens the fridge"
    code, out, err = run_cli(capsys, "classify", videos["short"], "-m", tiny_pe, "--labels", f"dog,{long}", "-q")
    assert code == 0, err
    assert "videozoo: warning: The prompt" in err and "it was cut to its first 30 tokens" in err


def test_timeline_command_with_labels(tiny_pe, videos, capsys) -> None:
    import json

    code, out, err = run_cli(
        capsys, "timeline", videos["long"], "-m", tiny_pe, "--labels", "dog,cat", "--window", "2", "--stride", "2",
        "--json", "-q",
    )  # fmt: skip
    assert code == 0, err
    result = json.loads(out)
    assert len(result["windows"]) == 4
    assert all({t["label"] for t in w["top_k"]} == {"dog", "cat"} for w in result["windows"])


# -- search ------------------------------------------------------------------------------------------


def test_search_one_video_ranks_its_windows_by_cosine_similarity(tiny_pe, videos) -> None:
    from videozoo.tasks.search import search_video
    from videozoo.video.windows import iter_windows

    result = search_video(videos["long"], "a dog catches a frisbee", tiny_pe, window=2, stride=1, top_k=3)
    assert result.windows_searched == 7 and len(result.moments) == 3
    runner = videozoo.load_model(tiny_pe)
    with torch.inference_mode():
        text = runner.model.encode_text(["a dog catches a frisbee"])[0]
        stream = list(iter_windows(videos["long"], runner.recipe, runner.transform(), window=2, stride=1))
        scores = runner.model.encode_video(torch.stack([w.clip for w in stream])) @ text
    best = scores.argsort(descending=True)[:3].tolist()
    assert [(m.start, m.end) for m in result.moments] == [(stream[i].start, stream[i].end) for i in best]
    torch.testing.assert_close(torch.tensor([m.score for m in result.moments]), scores[best])


@pytest.fixture
def features(tiny_pe, videos, tmp_path: Path) -> Path:
    from videozoo.tasks.extract import extract

    out = tmp_path / "features"
    extract([videos["short"], videos["long"]], tiny_pe, out, window=2, stride=2, num_workers=0)
    return out


def test_search_a_collection_from_extracted_features(tiny_pe, features: Path, videos) -> None:
    import numpy as np

    from videozoo.tasks.search import search_features

    result = search_features(features, "someone opens the fridge", top_k=4)
    assert result.model == tiny_pe and result.windows_searched == 1 + 4  # 2 s and 8 s at 2 s windows
    # brute force over the .npz files extract wrote
    runner = videozoo.load_model(tiny_pe)
    with torch.inference_mode():
        text = runner.model.encode_text(["someone opens the fridge"])[0].numpy()
    rows = []
    for npz in sorted(features.glob("*.npz")):
        data = np.load(npz)
        video = json.loads(str(data["record"]))["video"]
        for (start, end), f in zip(data["times"], data["features"]):
            rows.append((float(f @ text / np.linalg.norm(f)), video, float(start), float(end)))
    rows.sort(key=lambda r: -r[0])
    assert [(m.video, m.start, m.end) for m in result.moments] == [(v, s, e) for _, v, s, e in rows[:4]]
    np.testing.assert_allclose([m.score for m in result.moments], [r[0] for r in rows[:4]], rtol=1e-5)
    assert result.videos[0] == (rows[0][1], pytest.approx(rows[0][0], rel=1e-5)) and len(result.videos) == 2
    # the matrix is kept beside the features and memory-mapped by the next search
    assert (features / "search" / f"{tiny_pe}.npy").is_file()
    again = search_features(features, "someone opens the fridge", top_k=4)
    assert again.moments == result.moments


def test_search_refuses_features_it_cannot_compare(tiny, tiny_pe, videos, tmp_path: Path) -> None:
    from videozoo.tasks.extract import extract
    from videozoo.tasks.search import search_features

    classifier_features = tmp_path / "classifier"
    extract([videos["short"]], tiny, classifier_features, num_workers=0)
    with pytest.raises(ValueError, match=f"extracted with {tiny}.*embedded by {tiny_pe} cannot be compared"):
        search_features(classifier_features, "a dog", tiny_pe)
    with pytest.raises(ValueError, match=f"extracted with {tiny}, which has no text tower"):
        search_features(classifier_features, "a dog")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="holds no extracted features"):
        search_features(empty, "a dog", tiny_pe)


def test_search_command(tiny_pe, features: Path, videos, capsys, tmp_path: Path) -> None:
    code, out, err = run_cli(capsys, "search", features, "a dog catches a frisbee", "--json", "-k", "2")
    assert code == 0, err
    result = json.loads(out)
    assert result["model"] == tiny_pe and len(result["moments"]) == 2 and result["windows_searched"] == 5
    assert result["moments"][0]["score"] >= result["moments"][1]["score"]
    code, out, err = run_cli(capsys, "search", videos["long"], "a dog", "-m", tiny_pe, "--window", "2")
    assert code == 0, err
    assert out.splitlines()[0].startswith("'a dog'") and len(out.strip().splitlines()) == 2 + 5
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run_cli(capsys, "search", empty, "a dog")
    assert code == 2 and "holds no extracted features" in err
    code, _, err = run_cli(capsys, "search", videos["long"], "a dog")
    assert code == 2 and "needs --model" in err


def test_the_video_tower_exports_to_onnx_with_its_labels(model: PECore, tmp_path: Path) -> None:
    """The graph of a model given labels: clips in, the logits over those labels out, checked against eager."""
    from videozoo.tasks.export import export_model

    model.set_labels(["dog", "cat", "forklift"])
    try:
        result = export_model(model, tmp_path / "pe.onnx", clip_shape=(2, 48, 48))
    finally:
        model.label_embeddings = torch.empty(0, model.embed_dim)
        model.categories, model.num_classes = [], 0
    assert result.max_abs_diff is not None and result.max_abs_diff <= 1e-4 * max(1.0, result.max_abs_logit)


def test_download_command_fetches_the_tokenizer_too(tiny_pe, capsys) -> None:
    code, out, err = run_cli(capsys, "download", tiny_pe, "-q")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert [line.split("\t")[1].rsplit("/", 1)[1] for line in lines] == [
        "videozoo-tests--tiny-pe--open_clip_model.safetensors", "videozoo-tests--tiny-pe--tokenizer.json",
    ]  # fmt: skip


def test_a_collection_classified_into_labels_keeps_them_in_its_configuration(tiny_pe, videos, capsys, tmp_path: Path) -> None:
    manifest = tmp_path / "videos.txt"
    manifest.write_text(f"{videos['short']}\n", encoding="utf-8")
    out = tmp_path / "labels"
    code, _, err = run_cli(capsys, "classify", "-m", tiny_pe, "--labels", "dog,cat", "--manifest", manifest, "--out", out, "-q")
    assert code == 0, err
    [record] = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert {t["label"] for t in record["top_k"]} == {"dog", "cat"}
    code, _, err = run_cli(capsys, "classify", "-m", tiny_pe, "--labels", "dog,bird", "--manifest", manifest, "--out", out, "-q")
    assert code == 2 and "labels" in err


# -- X-CLIP against transformers ------------------------------------------------------------------------

from videozoo.models.xclip import XCLIP, XCLIP_B32_Weights  # noqa: E402
from videozoo.models.xclip import _build as _build_xclip  # noqa: E402
from videozoo.models.xclip import from_huggingface_state_dict as from_hf_xclip  # noqa: E402

VOCAB, MERGES = TEXT / "clip_vocab.json", TEXT / "clip_merges.txt"


def xclip_fixture() -> dict:
    return torch.load(TEXT / "xclip.pt", weights_only=True)


def xclip_file() -> dict[str, torch.Tensor]:
    """The fixture's tensors in Hugging Face's layout, with the ``position_ids`` older files carry."""
    fx = xclip_fixture()
    state = fill_state_dict(fx["keys"], fx["shapes"], fx["dtypes"])
    state["logit_scale"] = torch.tensor(fx["logit_scale"])
    state["prompts_generator.alpha"] = torch.full_like(state["prompts_generator.alpha"], 0.5)
    state["text_model.embeddings.position_ids"] = torch.arange(77)[None]
    return state


@pytest.fixture(scope="module")
def xclip() -> XCLIP:
    m = XCLIP(**xclip_fixture()["kwargs"]).eval()
    m.load_state_dict(from_hf_xclip(xclip_file()), strict=True)
    m.set_tokenizer(ClipTokenizer.from_vocab_and_merges(VOCAB, MERGES, 77))
    return m


def test_xclip_tokenizer_matches_transformers_clip_tokenizer_fast() -> None:
    """vocab.json and merges.txt read as CLIPTokenizerFast reads them (no ftfy), on the awkward prompts; the
    reference pads with <|endoftext|> under an attention mask, videozoo with zeros (the text tower reads the
    first end-of-text token either way)."""
    fx = xclip_fixture()
    with pytest.warns(TruncationWarning):
        ids = ClipTokenizer.from_vocab_and_merges(VOCAB, MERGES, 77)(fx["prompts"])
    mask = fx["attention_mask"].bool()
    assert torch.equal(ids[mask], fx["input_ids"][mask]) and bool((ids[~mask] == 0).all())


def test_xclip_matches_transformers(xclip: XCLIP) -> None:
    """Video embeddings (cross-frame messages, integration transformer), projected text embeddings and the
    logits with video-specific prompts, within 1e-4 of XCLIPModel."""
    fx = xclip_fixture()
    clip = torch.randn(fx["input_shape"], generator=torch.Generator().manual_seed(fx["input_seed"]))
    with torch.inference_mode():
        video = xclip.encode_video(clip)
        with pytest.warns(TruncationWarning):
            text = xclip.encode_tokens(xclip.tokenizer(fx["prompts"]))
    assert relative_error(video, fx["video"]) <= 1e-4 and relative_error(text, fx["text"]) <= 1e-4
    labels = [p for p in fx["prompts"] if p.strip() and len(p) < 60]
    rows = [fx["prompts"].index(p) for p in labels]
    xclip.set_labels(labels, template="{}")
    try:
        with torch.inference_mode():
            logits = xclip(clip)
    finally:
        xclip.label_embeddings = torch.empty(0, xclip.embed_dim)
        xclip.categories, xclip.num_classes = [], 0
    # the labels are stripped and their prompts averaged (one template): the reference's rows for them
    stripped = [i for i, p in zip(rows, labels) if p == p.strip()]
    assert relative_error(logits[:, [rows.index(i) for i in stripped]], fx["logits"][:, stripped]) <= 1e-4


def test_xclip_takes_its_number_of_frames(xclip: XCLIP) -> None:
    with pytest.raises(ValueError, match="exactly 4 frames of 64x64"):
        xclip.encode_video(torch.randn(1, 3, 8, 64, 64))


TINY_XCLIP = "tiny_xclip_test"
TINY_XCLIP_REPO = "https://huggingface.co/videozoo-tests/tiny-xclip/resolve/main"


class TinyXCLIP_Weights(WeightsEnum):
    KINETICS400_4_FRAMES = Weights(
        url=f"{TINY_XCLIP_REPO}/model.safetensors",
        transforms=partial(VideoClassification, crop_size=64, resize_size=64),
        meta={**XCLIP_B32_Weights.DEFAULT.meta, "num_frames": 4, "model_args": {"num_frames": 4}, "num_params": 0},
        state_dict_adapter=from_hf_xclip,
        extra_files=(ExtraFile("vocab", f"{TINY_XCLIP_REPO}/vocab.json"), ExtraFile("merges", f"{TINY_XCLIP_REPO}/merges.txt")),
    )
    DEFAULT = KINETICS400_4_FRAMES


def tiny_xclip_test(*, weights=None, progress=True, **kwargs):
    return _build_xclip(TinyXCLIP_Weights, weights, progress, kwargs, {k: v for k, v in xclip_fixture()["kwargs"].items() if k != "num_frames"})


def test_a_published_xclip_file_classifies_a_video_into_labels(tmp_path: Path, monkeypatch, videos, capsys) -> None:
    checkpoints = tmp_path / "home" / "checkpoints"
    checkpoints.mkdir(parents=True)
    monkeypatch.setenv("VIDEOZOO_HOME", str(tmp_path / "home"))
    save_file(xclip_file(), str(checkpoints / TinyXCLIP_Weights.DEFAULT.file_name))
    for extra, source in zip(TinyXCLIP_Weights.DEFAULT.value.extra_files, (VOCAB, MERGES)):
        (checkpoints / cache_name(extra.url)).write_bytes(source.read_bytes())
    with videozoo.registered(tiny_xclip_test, TinyXCLIP_Weights, TINY_XCLIP, task="video_text") as name:
        code, out, err = run_cli(capsys, "classify", videos["short"], "-m", name, "--labels", "dog,cat,forklift", "--json", "-q")
    assert code == 0, err
    top = json.loads(out)["results"][0]["top_k"]
    assert sorted(t["label"] for t in top) == ["cat", "dog", "forklift"]


def test_every_video_text_model_has_a_parity_fixture() -> None:
    covered: set[str] = set()
    for path in TEXT.glob("*.pt"):
        fx = torch.load(path, weights_only=True)
        covered |= set(fx.get("models", [fx["model"]] if "model" in fx else []))
    assert set(videozoo.list_models(task="video_text")) <= covered
