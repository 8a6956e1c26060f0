"""videozoo.hub against a real HTTP server on 127.0.0.1 (see conftest.http_server)."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
import requests
import torch

from videozoo import hub
from videozoo.errors import CheckpointError, DownloadError, VideozooError

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def cache_home(tmp_path, monkeypatch):
    """Every test gets its own VIDEOZOO_HOME and no backoff sleeps."""
    home = tmp_path / "vzhome"
    monkeypatch.setenv("VIDEOZOO_HOME", str(home))
    monkeypatch.setattr(hub, "BACKOFF_BASE", 0.0)
    return home / "checkpoints"


def make_state_dict(seed: int = 0, module: torch.nn.Module | None = None) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return (module or torch.nn.Conv3d(3, 4, kernel_size=3)).state_dict()


def publish(root: Path, stem: str, obj: object, *, hashed: bool = True, legacy: bool = False) -> tuple[str, bytes]:
    """torch.save ``obj`` into the served dir as ``stem-<sha256 prefix>.pth``; return (name, bytes)."""
    tmp = root / f"{stem}.tmp"
    torch.save(obj, tmp, _use_new_zipfile_serialization=not legacy)
    data = tmp.read_bytes()
    name = f"{stem}-{hashlib.sha256(data).hexdigest()[:8]}.pth" if hashed else f"{stem}.pth"
    tmp.rename(root / name)
    return name, data


def cache_files(cache_dir: Path) -> list[str]:
    """What is in the cache besides lock files (which filelock may leave behind)."""
    if not cache_dir.exists():
        return []
    return sorted(p.name for p in cache_dir.iterdir() if not p.name.endswith(".lock"))


def assert_same_state_dict(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


# ----------------------------------------------------------------------------- cache location


def test_get_dir_uses_videozoo_home(tmp_path, monkeypatch):
    monkeypatch.setenv("VIDEOZOO_HOME", str(tmp_path / "vz"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    assert hub.get_dir() == tmp_path / "vz" / "checkpoints"
    assert not hub.get_dir().exists()  # not created until needed


def test_get_dir_falls_back_to_torch_home(tmp_path, monkeypatch):
    monkeypatch.delenv("VIDEOZOO_HOME")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    assert hub.get_dir() == tmp_path / "th" / "hub" / "checkpoints"  # where torchvision keeps its weights


def test_cached_path_is_url_basename(tmp_path, cache_home):
    url = "https://example.invalid/models/r3d_18-b3b3357e.pth?download=1#frag"
    assert hub.cached_path(url) == cache_home / "r3d_18-b3b3357e.pth"
    assert hub.cached_path(url, model_dir=tmp_path) == tmp_path / "r3d_18-b3b3357e.pth"
    with pytest.raises(ValueError, match="file name"):
        hub.cached_path("https://example.invalid/models/")


# ----------------------------------------------------------------------------- downloads


def test_download_then_load(http_server, cache_home):
    sd = make_state_dict()
    name, data = publish(http_server.root, "conv", sd)
    path = hub.download(http_server.url(name), progress=False)
    assert path == cache_home / name
    assert path.read_bytes() == data
    assert cache_files(cache_home) == [name]  # no .partial left behind
    assert_same_state_dict(hub.load_checkpoint(path), sd)
    assert [r.range for r in http_server.requests_for(name)] == [None]


def test_load_state_dict_from_url_with_model_dir(http_server, tmp_path, cache_home):
    sd = make_state_dict(1, torch.nn.Linear(5, 3))
    name, _ = publish(http_server.root, "linear", sd, legacy=True)  # legacy (non-zip) format too
    out = hub.load_state_dict_from_url(http_server.url(name), progress=False, model_dir=tmp_path / "mine")
    assert_same_state_dict(out, sd)
    assert (tmp_path / "mine" / name).is_file()
    assert cache_files(cache_home) == []


def test_hash_mismatch_discards_file(http_server, cache_home):
    name, _ = publish(http_server.root, "conv", make_state_dict())
    wrong = "conv-0123abcd.pth"
    (http_server.root / name).rename(http_server.root / wrong)
    with pytest.raises(DownloadError, match="sha256") as info:
        hub.download(http_server.url(wrong), progress=False)
    assert "0123abcd" in str(info.value)
    assert cache_files(cache_home) == []
    # check_hash=False accepts the same bytes
    assert hub.download(http_server.url(wrong), progress=False, check_hash=False).is_file()


def test_resume_after_connection_cut(http_server, cache_home):
    sd = make_state_dict(2, torch.nn.Conv3d(4, 8, 3))
    name, data = publish(http_server.root, "conv", sd)
    cut = len(data) // 3
    http_server.fault(name, cut_after=cut)
    path = hub.download(http_server.url(name), progress=False)
    reqs = http_server.requests_for(name)
    assert [r.range for r in reqs] == [None, f"bytes={cut}-"]
    assert [r.status for r in reqs] == [200, 206]
    assert reqs[1].body_bytes == len(data) - cut  # only the rest was transferred
    assert path.read_bytes() == data  # and the sha256 of the whole file matched the name
    assert cache_files(cache_home) == [name]
    assert_same_state_dict(hub.load_checkpoint(path), sd)


def test_resume_hashes_the_partial_part(http_server, cache_home):
    """A stale .partial with wrong bytes is resumed, and the whole-file hash catches it."""
    name, data = publish(http_server.root, "conv", make_state_dict())
    cache_home.mkdir(parents=True)
    (cache_home / f"{name}.partial").write_bytes(b"PK\x03\x04" + b"\0" * 100)
    with pytest.raises(DownloadError, match="sha256"):
        hub.download(http_server.url(name), progress=False)
    assert http_server.requests_for(name)[0].range == "bytes=104-"
    assert cache_files(cache_home) == []
    assert hub.download(http_server.url(name), progress=False).read_bytes() == data  # starts over cleanly


def test_server_ignoring_range_restarts_from_zero(http_server, cache_home):
    name, data = publish(http_server.root, "conv", make_state_dict())
    http_server.fault(name, cut_after=200, ignore_range=True)
    path = hub.download(http_server.url(name), progress=False)
    reqs = http_server.requests_for(name)
    assert [(r.range, r.status) for r in reqs] == [(None, 200), ("bytes=200-", 200)]
    assert path.read_bytes() == data


def test_416_restarts_from_zero(http_server, cache_home):
    name, data = publish(http_server.root, "conv", make_state_dict())
    cache_home.mkdir(parents=True)
    (cache_home / f"{name}.partial").write_bytes(b"\x80" * (len(data) + 10))  # longer than the file
    path = hub.download(http_server.url(name), progress=False)
    assert [(r.range, r.status) for r in http_server.requests_for(name)] == [
        (f"bytes={len(data) + 10}-", 416),
        (None, 200),
    ]
    assert path.read_bytes() == data


def test_503_then_success(http_server, cache_home):
    name, data = publish(http_server.root, "conv", make_state_dict())
    http_server.fault(name, fail_first=2)
    path = hub.download(http_server.url(name), progress=False)
    assert [r.status for r in http_server.requests_for(name)] == [503, 503, 200]
    assert path.read_bytes() == data


def test_5xx_gives_up_after_retries_with_growing_backoff(http_server, cache_home, monkeypatch):
    name, _ = publish(http_server.root, "conv", make_state_dict())
    http_server.fault(name, fail_first=100, fail_status=502)
    sleeps: list[float] = []
    monkeypatch.setattr(hub, "time", types.SimpleNamespace(sleep=sleeps.append))
    monkeypatch.setattr(hub, "BACKOFF_BASE", 0.25)
    with pytest.raises(DownloadError, match="after 4 attempts: HTTP 502") as info:
        hub.download(http_server.url(name), progress=False, retries=3)
    assert len(http_server.requests_for(name)) == 4
    assert sleeps == [0.25, 0.5, 1.0]
    assert str(cache_home / name) in str(info.value)
    assert cache_files(cache_home) == []


def test_404_is_a_clear_error(http_server, cache_home):
    url = http_server.url("missing-abcdef12.pth")
    with pytest.raises(DownloadError) as info:
        hub.download(url, progress=False)
    message = str(info.value)
    assert url in message and "404" in message
    assert str(cache_home / "missing-abcdef12.pth") in message  # where to drop the file by hand
    assert len(http_server.requests_for("missing-abcdef12.pth")) == 1  # not retried
    assert isinstance(info.value, VideozooError) and isinstance(info.value, OSError)
    assert cache_files(cache_home) == []


def test_html_with_200_is_refused(http_server, cache_home):
    page = b"<!DOCTYPE html>\n<html><head><title>Hotel WiFi login</title></head><body>...</body></html>"
    http_server.fault("conv-abcdef12.pth", status=200, body=page)
    with pytest.raises(DownloadError, match="<!DOCTYPE html") as info:
        hub.download(http_server.url("conv-abcdef12.pth"), progress=False)
    assert "text/html" in str(info.value)
    assert cache_files(cache_home) == []


def test_body_longer_than_sent_is_an_error(http_server, cache_home):
    name, data = publish(http_server.root, "conv", make_state_dict())
    http_server.fault(name, length_delta=100)  # Content-Length claims 100 more bytes
    with pytest.raises(DownloadError) as info:
        hub.download(http_server.url(name), progress=False, retries=2)
    assert f"of the {len(data) + 100} bytes the server announced" in str(info.value)
    assert [r.range for r in http_server.requests_for(name)] == [None, f"bytes={len(data)}-", f"bytes={len(data)}-"]
    assert not (cache_home / name).exists()


def test_body_shorter_than_file_is_an_error(http_server, cache_home):
    """Content-Length smaller than the file: the client gets a truncated zip, without hash in the name."""
    name, _ = publish(http_server.root, "conv", make_state_dict(), hashed=False)
    http_server.fault(name, length_delta=-200)
    with pytest.raises(DownloadError, match="incomplete or damaged zip"):
        hub.download(http_server.url(name), progress=False)
    assert cache_files(cache_home) == []


def test_offline_is_a_clear_error(cache_home):
    with socket.socket() as s:  # a port with nothing listening: connection refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/conv-abcdef12.pth"
    with pytest.raises(DownloadError) as info:
        hub.download(url, progress=False, retries=2, timeout=(2.0, 2.0))
    message = str(info.value)
    assert url in message and "after 3 attempts" in message and "connection refused" in message
    assert str(cache_home / "conv-abcdef12.pth") in message
    assert cache_files(cache_home) == []


def test_warm_cache_needs_no_network(http_server, cache_home, monkeypatch):
    name, data = publish(http_server.root, "conv", make_state_dict())
    url = http_server.url(name)
    hub.download(url, progress=False)
    http_server.stop()

    def no_network(*args, **kwargs):
        raise AssertionError("network used for a cached file")

    monkeypatch.setattr(requests.Session, "request", no_network)
    assert hub.download(url, progress=False).read_bytes() == data
    assert_same_state_dict(hub.load_state_dict_from_url(url, progress=False), make_state_dict())


def test_concurrent_processes_download_once(http_server, cache_home, tmp_path):
    name, data = publish(http_server.root, "big", make_state_dict(3, torch.nn.Conv3d(16, 32, 3)))
    http_server.fault(name, delay=0.5)  # keep the download in flight while others arrive
    url = http_server.url(name)
    go = tmp_path / "go"
    # Workers import videozoo.hub without running videozoo/__init__ (models, torch): a
    # download needs neither, and four torch imports on two cores would dominate the test.
    script = (
        "import pathlib, sys, time, types\n"
        f"pkg = types.ModuleType('videozoo'); pkg.__path__ = [{str(REPO_ROOT / 'videozoo')!r}]\n"
        "sys.modules['videozoo'] = pkg\n"
        "from videozoo import hub\n"
        "assert 'torch' not in sys.modules\n"
        "pathlib.Path(sys.argv[2]).touch()\n"
        "go = pathlib.Path(sys.argv[3])\n"
        "while not go.exists(): time.sleep(0.005)\n"
        "print(hub.download(sys.argv[1], progress=False))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    ready = [tmp_path / f"ready{i}" for i in range(4)]
    procs = [
        subprocess.Popen([sys.executable, "-c", script, url, str(r), str(go)], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for r in ready
    ]
    try:
        deadline = time.monotonic() + 30
        while not all(r.exists() for r in ready):
            assert time.monotonic() < deadline, "workers did not start"
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
            time.sleep(0.01)
        go.touch()
        results = [p.communicate(timeout=30) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in procs] == [0] * 4, results
    assert {out.strip() for out, _ in results} == {str(cache_home / name)}
    assert (cache_home / name).read_bytes() == data
    reqs = http_server.requests_for(name)
    assert len(reqs) == 1 and reqs[0].full_body
    assert cache_files(cache_home) == [name]


# ----------------------------------------------------------------------------- loading


class _Payload:
    """Unpickling this creates ``path``: stands for arbitrary code in a malicious checkpoint."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_pickle_payload_is_refused(tmp_path, legacy):
    armed = tmp_path / "armed"
    torch.save({"w": torch.ones(2), "x": _Payload(armed)}, tmp_path / "probe.pth",
               _use_new_zipfile_serialization=not legacy)
    torch.load(tmp_path / "probe.pth", weights_only=False).get("x").close()
    assert armed.exists()  # the payload is live: an unsafe load runs it

    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"w": torch.ones(2), "x": _Payload(marker)}, path, _use_new_zipfile_serialization=not legacy)
    with pytest.raises(CheckpointError, match="needs arbitrary code to load") as info:
        hub.load_checkpoint(path)
    assert str(path) in str(info.value) and "refused" in str(info.value)
    assert not marker.exists()


def test_pickle_payload_from_url_is_refused(http_server, tmp_path):
    marker = tmp_path / "pwned"
    name, _ = publish(http_server.root, "evil", {"x": _Payload(marker)})
    with pytest.raises(CheckpointError, match="needs arbitrary code"):
        hub.load_state_dict_from_url(http_server.url(name), progress=False)
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["truncated-zip", "truncated-legacy", "html", "empty", "garbage-zip"])
def test_damaged_file_is_a_checkpoint_error(tmp_path, damage):
    good = tmp_path / "good.pth"
    torch.save(make_state_dict(), good, _use_new_zipfile_serialization=damage != "truncated-legacy")
    data = good.read_bytes()
    path = tmp_path / "bad-0123abcd.pth"
    path.write_bytes({
        "truncated-zip": data[: len(data) // 2],
        "truncated-legacy": data[: len(data) // 2],
        "html": b"<html><body>Proxy login</body></html>",
        "empty": b"",
        "garbage-zip": b"PK\x03\x04" + bytes(range(256)) * 4,
    }[damage])
    with pytest.raises(CheckpointError) as info:
        hub.load_checkpoint(path)
    message = str(info.value)
    assert str(path) in message and "download it again" in message


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        hub.load_checkpoint(tmp_path / "nope.pth")


# ----------------------------------------------------------------------------- progress


def test_progress_false_prints_nothing(http_server, capfd):
    name, _ = publish(http_server.root, "conv", make_state_dict())
    hub.download(http_server.url(name), progress=False)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_progress_true_prints_a_bar_on_stderr(http_server, capfd):
    name, _ = publish(http_server.root, "conv", make_state_dict())
    hub.download(http_server.url(name), progress=True)
    out, err = capfd.readouterr()
    assert out == ""
    assert name in err and "100%" in err

