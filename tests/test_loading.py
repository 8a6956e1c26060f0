"""One loading path for every checkpoint: weights members that travel, local files through the adapter,
sizes pinned by the checkpoint, builds without random initialisation, and a light ``import videozoo``."""

from __future__ import annotations

import ast
import copy
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

import videozoo
from videozoo import CheckpointError, DownloadError, MViT_V1_B_Weights, R3D_18_Weights, Swin3D_B_Weights
from videozoo.models.slowfast import SlowFast_R50_Weights
from parity.common import FIXTURES, load_fixture, reference_state_dict

ROOT = Path(__file__).resolve().parents[1]
ALL_MEMBERS = [member for name in videozoo.list_models() for member in videozoo.get_model_weights(name)]


@pytest.fixture
def offline_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty checkpoint cache, with downloads forbidden: anything that tries one fails at once."""
    monkeypatch.setenv("VIDEOZOO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("VIDEOZOO_OFFLINE", "1")
    return tmp_path / "home" / "checkpoints"


# -- weights members travel -------------------------------------------------------------------------


@pytest.mark.parametrize("member", ALL_MEMBERS, ids=repr)
def test_members_pickle_deepcopy_and_compare(member: videozoo.WeightsEnum) -> None:
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        assert pickle.loads(pickle.dumps(member, protocol)) is member
    assert copy.deepcopy(member) is member and copy.copy(member) is member
    assert member == type(member)[member.name] and hash(member) == hash(type(member)[member.name])
    assert member != type(member) and {member: 1}[copy.deepcopy(member)] == 1


class MemberDataset(Dataset):
    """A dataset that holds a weights member, as a training set holds its recipe's weights."""

    def __init__(self, member: videozoo.WeightsEnum) -> None:
        self.member = member

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> tuple[int, videozoo.WeightsEnum]:
        return self.member.meta["num_frames"] + index, self.member


def keep(item: object) -> object:
    return item


def test_member_in_a_dataset_crosses_spawned_workers() -> None:
    member = SlowFast_R50_Weights.KINETICS400_V1
    loader = DataLoader(
        MemberDataset(member), batch_size=None, num_workers=2, multiprocessing_context="spawn", collate_fn=keep
    )
    items = list(loader)
    assert [frames for frames, _ in items] == [32, 33, 34, 35]
    assert all(back is member for _, back in items)


# -- what a weights value means ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("DEFAULT", False),
        ("KINETICS400_V1", False),
        ("R3D_18_Weights.KINETICS400_V1", False),
        (None, False),
        (R3D_18_Weights.DEFAULT, False),
        ("r3d_18-b3b3357e.pth", True),
        ("X3D_M.pyth", True),
        (os.path.join("weights", "mine"), True),
        (Path("mine"), True),
    ],
)
def test_is_checkpoint_path(value: object, expected: bool) -> None:
    assert videozoo.is_checkpoint_path(value) is expected


def test_resolve_a_file_by_its_published_name(tmp_path: Path) -> None:
    """A file downloaded by hand keeps the recipe and categories of the member it was published as."""
    member, path = Swin3D_B_Weights.resolve(tmp_path / "swin3d_b_22k-7c6ae6fa.pth")
    assert member is Swin3D_B_Weights.KINETICS400_IMAGENET22K_V1 and path == tmp_path / "swin3d_b_22k-7c6ae6fa.pth"
    assert Swin3D_B_Weights.resolve(str(tmp_path / "finetuned.pth")) == (Swin3D_B_Weights.DEFAULT, tmp_path / "finetuned.pth")
    assert Swin3D_B_Weights.resolve("KINETICS400_IMAGENET22K_V1") == (Swin3D_B_Weights.KINETICS400_IMAGENET22K_V1, None)
    assert Swin3D_B_Weights.resolve(None) == (None, None)


# -- local files go through the one loading path ------------------------------------------------------


def test_builder_loads_a_local_file(tmp_path: Path, offline_cache: Path) -> None:
    torch.manual_seed(1)
    source = videozoo.r3d_18()
    path = tmp_path / "my-r3d.pth"
    torch.save(source.state_dict(), path)
    model = videozoo.r3d_18(weights=path)
    assert model.num_classes == 400
    for key, value in source.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    assert not offline_cache.exists()  # nothing was downloaded or cached


def test_local_file_in_the_publishers_format_goes_through_the_adapter(tmp_path: Path, offline_cache: Path) -> None:
    """PyTorchVideo's layout ({"model_state": ...}, its own key names) loads from a local file, and so does
    a state_dict saved from the videozoo model (its own key names), named like the published file or not."""
    published = reference_state_dict(load_fixture(FIXTURES / "slowfast_r50.pt"))
    path = tmp_path / "SLOWFAST_8x8_R50.pyth"
    torch.save({"model_state": published, "epoch": 196}, path)
    model = videozoo.get_model("slowfast_r50", weights=str(path))
    assert torch.equal(model.fc.weight, published["blocks.6.proj.weight"])
    ours = tmp_path / "ours.pyth"
    torch.save(model.state_dict(), ours)
    again = videozoo.slowfast_r50(weights=ours)
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), model.state_dict().values()))
    neither = tmp_path / "neither.pyth"
    torch.save({"model_state": {"blocks.0.nothing": torch.zeros(1)}}, neither)
    with pytest.raises(CheckpointError, match=rf"{neither}: not a checkpoint in the format SlowFast_R50_Weights.KINETICS400_V1"):
        videozoo.slowfast_r50(weights=neither)


def test_errors_name_the_file_and_fit_a_users_own_file(tmp_path: Path, offline_cache: Path) -> None:
    missing = tmp_path / "nothing.pth"
    with pytest.raises(CheckpointError, match=f"{missing}: no such checkpoint file"):
        videozoo.r3d_18(weights=missing)
    other = tmp_path / "other.pth"
    torch.save(videozoo.mc3_18().state_dict(), other)
    with pytest.raises(CheckpointError) as info:
        videozoo.r3d_18(weights=other)
    message = str(info.value)
    assert message.startswith(f"{other}: the checkpoint does not fit VideoResNet as built for R3D_18_Weights.KINETICS400_V1")
    assert "wrong shape" in message and "Use the file published at https://" in message
    assert "download it again" not in message
    damaged = tmp_path / "damaged.pth"
    torch.save(videozoo.r3d_18().state_dict(), damaged)
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=str(damaged)) as info:
        videozoo.r3d_18(weights=damaged)
    assert "download it again" not in str(info.value) and "torch.save" in str(info.value)


def test_load_weights_into_a_built_model(tmp_path: Path) -> None:
    torch.manual_seed(3)
    source = videozoo.mc3_18()
    path = tmp_path / "mc3.pth"
    torch.save(source.state_dict(), path)
    model = videozoo.mc3_18()
    assert videozoo.load_weights(model, videozoo.MC3_18_Weights.DEFAULT, path) is model
    assert all(torch.equal(model.state_dict()[k], v) for k, v in source.state_dict().items())


def test_a_refused_file_leaves_the_model_untouched(tmp_path: Path) -> None:
    model = videozoo.r3d_18()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    state = videozoo.r3d_18().state_dict()
    state["fc.weight"] = torch.zeros(3, 512)  # one wrong shape among 100 good tensors
    path = tmp_path / "almost.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"1 wrong shape \(fc\.weight"):
        videozoo.load_weights(model, R3D_18_Weights.DEFAULT, path)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())


# -- sizes pinned by the checkpoint ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("builder", "kwargs", "needed"),
    [
        (videozoo.mvit_v1_b, {"crop_size": (112, 112)}, "crop_size=224"),
        (videozoo.mvit_v2_s, {"num_frames": 32}, "num_frames=16"),
        (videozoo.x3d_m, {"crop_size": 256}, "crop_size=224"),
        (videozoo.x3d_s, {"num_frames": 16}, "num_frames=13"),
        (videozoo.slowfast_r50, {"num_frames": 64}, "num_frames=32"),
        (videozoo.slowfast_16x8_r101_50_50, {"crop_size": 256}, "crop_size=224"),
        (videozoo.r3d_18, {"num_classes": 10}, "has 400 classes"),
    ],
)
def test_builders_pin_what_the_checkpoint_was_built_for(builder, kwargs, needed, offline_cache: Path) -> None:
    """A conflicting size is a ValueError naming the needed value, raised before any download (offline
    mode would turn a download attempt into a DownloadError)."""
    with pytest.raises(ValueError, match=needed):
        builder(weights="DEFAULT", **kwargs)


def test_agreeing_sizes_are_accepted(offline_cache: Path) -> None:
    with pytest.raises(DownloadError, match="VIDEOZOO_OFFLINE"):  # past the pins, on to the download
        videozoo.mvit_v1_b(weights=MViT_V1_B_Weights.DEFAULT, crop_size=(224, 224), num_frames=16)


@pytest.mark.parametrize("member", ALL_MEMBERS, ids=repr)
def test_builder_defaults_are_what_each_checkpoint_pins(member: videozoo.WeightsEnum) -> None:
    name = next(n for n in videozoo.list_models() if videozoo.get_model_weights(n) is type(member))
    with torch.device("meta"):
        model = videozoo.get_model(name)
    for key, value in member.meta.get("model_args", {}).items():
        built = getattr(model, key)
        assert (built if isinstance(built, (int, float)) else tuple(built)) in (value, (value, value)), key


# -- built with weights: no random initialisation -------------------------------------------------------


@pytest.mark.parametrize("name", ["r2plus1d_18", "slowfast_r50", "mvit_v2_s", "swin3d_t", "x3d_xs", "s3d"])
def test_building_with_weights_skips_random_initialisation(name: str, tmp_path: Path) -> None:
    """The random generator is untouched (nothing was drawn), every tensor is the file's, and the
    layout the family chose at construction (SlowFast's channels-last filters) is kept."""
    fixture = load_fixture(FIXTURES / f"{name}.pt")
    published = reference_state_dict(fixture)  # the publisher's key names and shapes, filled
    member = videozoo.get_model_weights(name).DEFAULT
    checkpoint = {fixture["wrap"]: published} if fixture["wrap"] else published
    path = tmp_path / os.path.basename(member.url)
    torch.save(checkpoint, path)
    rng = torch.get_rng_state()
    model = videozoo.get_model(name, weights=path)
    assert torch.equal(torch.get_rng_state(), rng)
    expected = member.adapt_state_dict(checkpoint)
    assert all(torch.equal(value, expected[key]) for key, value in model.state_dict().items())
    reference = videozoo.get_model(name)
    assert not torch.equal(torch.get_rng_state(), rng)  # without weights the initialisation draws
    for (key, param), (_, initialised) in zip(model.named_parameters(), reference.named_parameters()):
        assert param.device.type == "cpu" and param.requires_grad, key
        for layout in (torch.contiguous_format, torch.channels_last_3d) if param.dim() == 5 else ():
            assert param.is_contiguous(memory_format=layout) == initialised.is_contiguous(memory_format=layout), key


# -- imports ---------------------------------------------------------------------------------------------


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_import_videozoo_does_not_import_pyav() -> None:
    result = _python(
        "import sys, videozoo; assert 'av' not in sys.modules, 'av imported'; "
        "videozoo.VideoClassifier; assert 'av' in sys.modules; print('ok')"
    )
    assert result.returncode == 0 and result.stdout == "ok\n", result.stderr


def test_hub_user_needs_only_the_listed_dependencies() -> None:
    """With PyAV unavailable, torch.hub loads hubconf.py (checking its `dependencies`) and builds a model."""
    result = _python(
        "import sys; sys.modules['av'] = None\n"
        "import torch\n"
        f"model = torch.hub.load({str(ROOT)!r}, 'x3d_xs', source='local', num_classes=3)\n"
        "print(type(model).__name__, model.num_classes)\n"
        f"import runpy; deps = runpy.run_path({str(ROOT / 'hubconf.py')!r})['dependencies']\n"
        "print(sorted(deps))\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["X3D 3", "['filelock', 'requests', 'safetensors', 'torch', 'tqdm']"]


def _private_imports(path: Path) -> list[str]:
    """``from videozoo.x import _name`` and ``module._name`` uses of another videozoo module, in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    modules = set()
    found = []
    for node in ast.walk(tree):
        ours = isinstance(node, ast.ImportFrom) and (node.level > 0 or (node.module or "").startswith("videozoo"))
        if ours:
            private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
            found += [f"{node.module}.{name}" for name in private]
        if isinstance(node, ast.ImportFrom) and node.module == "videozoo":
            modules |= {a.asname or a.name for a in node.names}
        if isinstance(node, ast.Import):
            modules |= {a.asname or a.name for a in node.names if a.name.startswith("videozoo")}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules:
            if node.attr.startswith("_") and not node.attr.startswith("__"):
                found.append(f"{node.value.id}.{node.attr}")
    return found


def test_nothing_private_is_imported_across_modules() -> None:
    files = sorted((ROOT / "videozoo").rglob("*.py")) + sorted((ROOT / "references").rglob("*.py"))
    offenders = {str(p.relative_to(ROOT)): _private_imports(p) for p in files}
    assert {p: names for p, names in offenders.items() if names} == {}


def test_modules_built_in_other_threads_meanwhile_keep_real_parameters(tmp_path: Path) -> None:
    """Building with weights redirects only its own thread's parameters to the meta device."""
    import threading

    path = tmp_path / "r3d.pth"
    torch.save(videozoo.r3d_18().state_dict(), path)
    started, stop = threading.Event(), threading.Event()
    devices: set[str] = set()

    def build_layers() -> None:
        started.set()
        while not stop.is_set():
            devices.add(torch.nn.Linear(4, 4).weight.device.type)

    worker = threading.Thread(target=build_layers)
    worker.start()
    started.wait()
    try:
        for _ in range(3):
            videozoo.r3d_18(weights=path)
    finally:
        stop.set()
        worker.join()
    assert devices == {"cpu"}


# -- cache names -----------------------------------------------------------------------------------------


def test_no_two_published_files_share_a_cache_name() -> None:
    """Every file of every member (fallbacks too) has its own cache name, and Hugging Face names carry the
    publisher and repository (their files are all model.safetensors / pytorch_model.bin). Members that read
    one file (VideoMAE V2's Kinetics-710 file, also read as Kinetics-400) share its one name."""
    files = {(url, name) for member in ALL_MEMBERS for url, name in member.sources}
    names = [name for _, name in files]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    for member in ALL_MEMBERS:
        for url, name in member.sources:
            if url.startswith("https://huggingface.co/"):
                org, repo, _, _, file = url.removeprefix("https://huggingface.co/").split("/", 4)
                assert name == f"{org}--{repo}--{file.replace('/', '--')}"  # files in folders: every / a --
    assert videozoo.SlowFast_R50_Weights.SSV2_V1.file_name == "SLOWFAST_8x8_R50_ssv2.pyth"
    assert videozoo.SlowFast_R50_Weights.KINETICS400_V1.file_name == "SLOWFAST_8x8_R50.pyth"  # as published


def test_members_with_a_shared_basename_have_their_own_cache_files(tmp_path: Path, monkeypatch) -> None:
    """PyTorchVideo's Kinetics and SSv2 SLOW_8x8_R50.pyth: each member finds its own file in the cache, and
    a hand-downloaded SSv2 file under the published name gets an error that says how to load it."""
    monkeypatch.setenv("VIDEOZOO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("VIDEOZOO_OFFLINE", "1")
    cache = tmp_path / "home" / "checkpoints"
    cache.mkdir(parents=True)
    published = reference_state_dict(load_fixture(FIXTURES / "slow_r50-ssv2.pt"))
    weights = videozoo.Slow_R50_Weights
    torch.save({"model_state": published}, cache / weights.SSV2_V1.file_name)
    model = videozoo.slow_r50(weights="SSV2_V1")
    assert model.num_classes == 174 and torch.equal(model.fc.weight, published["blocks.5.proj.weight"])
    with pytest.raises(DownloadError, match="SLOW_8x8_R50.pyth is not in the cache"):  # Kinetics' own file
        videozoo.slow_r50(weights="KINETICS400_V1")
    by_hand = tmp_path / "SLOW_8x8_R50.pyth"
    torch.save({"model_state": published}, by_hand)
    with pytest.raises(CheckpointError, match=r"also published as Slow_R50_Weights.SSV2_V1 \(name the file SLOW_8x8_R50_ssv2.pyth\)"):
        videozoo.slow_r50(weights=by_hand)
    renamed = by_hand.rename(tmp_path / "SLOW_8x8_R50_ssv2.pyth")
    assert videozoo.slow_r50(weights=renamed).num_classes == 174


@pytest.mark.parametrize("member", [m for m in ALL_MEMBERS if m.url.split("/")[-2] in ("ssv2", "charades")], ids=repr)
def test_ssv2_and_charades_presets_feed_bgr(member: videozoo.WeightsEnum) -> None:
    """PySlowFast's SSv2 and Charades configurations set REVERSE_INPUT_CHANNEL: their checkpoints expect BGR."""
    assert member.transforms().channel_order == "bgr"
    kinetics = type(member).KINETICS400_V1
    assert kinetics.transforms().channel_order == "rgb"


# ----------------------------------------------------------------------------------------------------
# A user's own files: state_dicts saved from videozoo models, and training runs' checkpoints


@pytest.mark.parametrize("wrapper", [None, "model", "state_dict", "model_state", "module."])
def test_a_state_dict_saved_from_a_videozoo_model_loads_back(wrapper, tmp_path: Path, offline_cache: Path) -> None:
    """x3d_xs's published files are PyTorchVideo's; a state_dict in videozoo's own names loads too, bare,
    under a wrapper key, or with DDP's ``module.`` prefix."""
    torch.manual_seed(0)
    saved = videozoo.get_model("x3d_xs").state_dict()
    if wrapper == "module.":
        obj = {f"module.{k}": v for k, v in saved.items()}
    else:
        obj = saved if wrapper is None else {wrapper: saved, "epoch": 3}
    torch.save(obj, tmp_path / "mine.pth")
    loaded = videozoo.get_model("x3d_xs", weights=tmp_path / "mine.pth").state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in saved.items())


def test_a_state_dict_of_other_sizes_says_which_and_where(tmp_path: Path, offline_cache: Path) -> None:
    saved = videozoo.get_model("x3d_xs", num_classes=10).state_dict()
    torch.save({"model": saved}, tmp_path / "ten.pth")
    with pytest.raises(CheckpointError) as info:
        videozoo.get_model("x3d_xs", weights=tmp_path / "ten.pth")
    message = str(info.value)
    assert "a state_dict of X3D (the weights under the key 'model')" in message
    assert "wrong shape" in message and "(10, 2048) vs model (400, 2048)" in message
    assert "num_classes" in message


def test_a_folder_as_weights_names_its_checkpoint_files(tmp_path: Path, offline_cache: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pth").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"run: is a folder; give one of the checkpoint files in it \(checkpoint.pth\)"):
        videozoo.get_model("r3d_18", weights=run)


def test_a_training_runs_checkpoint_brings_its_classes_and_recipe(tmp_path: Path, offline_cache: Path) -> None:
    """train.py's checkpoint.pth stands for a weights member of its own (videozoo.zoo.runs)."""
    torch.manual_seed(0)
    model = videozoo.get_model("r3d_18", num_classes=3)
    base = R3D_18_Weights.KINETICS400_V1
    preset = {**base.transforms().settings(), "crop_size": [64, 64], "resize_size": [72, 96]}
    recipe = {**videozoo.ClipRecipe(num_frames=8, sampling_rate=2, frame_rate=15.0, num_clips=2).__dict__}
    run = {"model": model.state_dict(), "model_name": "r3d_18", "num_classes": 3, "categories": ["a", "b", "c"],
           "recipe_weights": str(base), "recipe": recipe, "preset": preset, "multi_label": False, "epoch": 4}  # fmt: skip
    torch.save(run, tmp_path / "checkpoint.pth")
    member, path = R3D_18_Weights.resolve(str(tmp_path / "checkpoint.pth"))
    assert path == tmp_path / "checkpoint.pth" and member.categories == ["a", "b", "c"]
    assert member.recipe == videozoo.ClipRecipe(num_frames=8, sampling_rate=2, frame_rate=15.0, num_clips=2)
    assert member.transforms().crop_size == (64, 64) and member.meta["fine_tuned_from"] == str(base)
    assert "_metrics" not in member.meta  # the published figures are the base's, not the run's
    loaded = videozoo.get_model("r3d_18", weights=tmp_path / "checkpoint.pth")
    assert loaded.num_classes == 3 and torch.equal(loaded.fc.weight, model.fc.weight)
    with pytest.raises(CheckpointError, match="a training checkpoint of r3d_18, not of the model MC3_18_Weights belongs to"):
        videozoo.get_model("mc3_18", weights=tmp_path / "checkpoint.pth")
