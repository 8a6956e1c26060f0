"""The checkpoint store (videozoo.zoo.store) and checkpoint safety (videozoo.zoo.safety) against a real HTTP server on 127.0.0.1 (see conftest.http_server)."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import pickle
import shlex
import shutil
import socket
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest
import requests
import torch

from videozoo.zoo import safety, store
from videozoo.errors import CheckpointError, DownloadError, VideozooError

REPO_ROOT = Path(__file__).resolve().parents[1]
SHIPPED_BACKOFF_BASE = store.BACKOFF_BASE  # before the autouse fixture sets it to 0

# Runs the store without videozoo/__init__ and videozoo/zoo/__init__ (models, torch): a download needs neither,
# and torch imports in several processes on two cores would dominate the tests.
BARE_HUB = (
    "import sys, types\n"
    f"pkg = types.ModuleType('videozoo'); pkg.__path__ = [{str(REPO_ROOT / 'videozoo')!r}]\n"
    "sys.modules['videozoo'] = pkg\n"
    f"zoo = types.ModuleType('videozoo.zoo'); zoo.__path__ = [{str(REPO_ROOT / 'videozoo' / 'zoo')!r}]\n"
    "sys.modules['videozoo.zoo'] = zoo\n"
    "from videozoo.zoo import store\n"
    "assert 'torch' not in sys.modules\n"
)


@pytest.fixture(autouse=True)
def cache_home(tmp_path, monkeypatch):
    """Every test gets its own VIDEOZOO_HOME, offline mode off and no backoff sleeps."""
    home = tmp_path / "vzhome"
    monkeypatch.setenv("VIDEOZOO_HOME", str(home))
    monkeypatch.delenv("VIDEOZOO_OFFLINE", raising=False)
    monkeypatch.setattr(store, "BACKOFF_BASE", 0.0)
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


def no_network_env(**extra: str) -> dict[str, str]:
    """This process's environment without proxy or videozoo settings, plus ``extra``."""
    drop = ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "videozoo_")
    env = {k: v for k, v in os.environ.items() if not k.lower().startswith(drop)}
    return {**env, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]), **extra}


def cache_files(cache_dir: Path) -> list[str]:
    """What is in the cache besides its folder of lock files, ``.locks`` (see test_the_store_holds_only_checkpoints)."""
    if not cache_dir.exists():
        return []
    return sorted(p.name for p in cache_dir.iterdir() if p.name != store.LOCKS)


def store_entries(cache_dir: Path) -> dict[str, list[str]]:
    """Every entry of the cache folder and of its ``.locks`` folder, by folder."""
    locks = cache_dir / ".locks"
    return {
        "store": sorted(p.name for p in cache_dir.iterdir()),
        ".locks": sorted(p.name for p in locks.iterdir()) if locks.is_dir() else [],
    }


def assert_same_state_dict(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


# ----------------------------------------------------------------------------- cache location


def test_get_dir_uses_videozoo_home(tmp_path, monkeypatch):
    monkeypatch.setenv("VIDEOZOO_HOME", str(tmp_path / "vz"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    assert store.get_dir() == tmp_path / "vz" / "checkpoints"
    assert not store.get_dir().exists()  # not created until needed


def test_get_dir_falls_back_to_torch_home(tmp_path, monkeypatch):
    monkeypatch.delenv("VIDEOZOO_HOME")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    assert store.get_dir() == tmp_path / "th" / "hub" / "checkpoints"  # where torchvision keeps its weights


def test_cached_path_is_url_basename(tmp_path, cache_home):
    url = "https://example.invalid/models/r3d_18-b3b3357e.pth?download=1#frag"
    assert store.cached_path(url) == cache_home / "r3d_18-b3b3357e.pth"
    assert store.cached_path(url, model_dir=tmp_path) == tmp_path / "r3d_18-b3b3357e.pth"
    with pytest.raises(ValueError, match="file name"):
        store.cached_path("https://example.invalid/models/")


# ----------------------------------------------------------------------------- downloads


def test_download_then_load(http_server, cache_home):
    sd = make_state_dict()
    name, data = publish(http_server.root, "conv", sd)
    path = store.download(http_server.url(name), progress=False)
    assert path == cache_home / name
    assert path.read_bytes() == data
    assert cache_files(cache_home) == [name]  # no .partial left behind
    assert_same_state_dict(safety.load_checkpoint(path), sd)
    assert [r.range for r in http_server.requests_for(name)] == [None]


def test_download_into_model_dir_and_load(http_server, tmp_path, cache_home):
    sd = make_state_dict(1, torch.nn.Linear(5, 3))
    name, _ = publish(http_server.root, "linear", sd, legacy=True)  # legacy (non-zip) format too
    out = safety.load_checkpoint(store.download(http_server.url(name), progress=False, model_dir=tmp_path / "mine"), downloaded=True)
    assert_same_state_dict(out, sd)
    assert (tmp_path / "mine" / name).is_file()
    assert cache_files(cache_home) == []


def test_hash_mismatch_discards_file(http_server, cache_home):
    name, _ = publish(http_server.root, "conv", make_state_dict())
    wrong = "conv-0123abcd.pth"
    (http_server.root / name).rename(http_server.root / wrong)
    with pytest.raises(DownloadError, match="sha256") as info:
        store.download(http_server.url(wrong), progress=False)
    assert "0123abcd" in str(info.value)
    assert cache_files(cache_home) == []
    # check_hash=False accepts the same bytes
    assert store.download(http_server.url(wrong), progress=False, check_hash=False).is_file()


def test_resume_after_connection_cut(http_server, cache_home):
    sd = make_state_dict(2, torch.nn.Conv3d(4, 8, 3))
    name, data = publish(http_server.root, "conv", sd)
    cut = len(data) // 3
    http_server.fault(name, cut_after=cut)
    path = store.download(http_server.url(name), progress=False)
    reqs = http_server.requests_for(name)
    assert [(r.range, r.if_range, r.status) for r in reqs] == [
        (None, None, 200),
        (f"bytes={cut}-", http_server.etag(data), 206),  # the tail only if the file is still the same
    ]
    assert reqs[1].body_bytes == len(data) - cut  # only the rest was transferred
    assert path.read_bytes() == data  # and the sha256 of the whole file matched the name
    assert cache_files(cache_home) == [name]
    assert_same_state_dict(safety.load_checkpoint(path), sd)


@pytest.mark.parametrize("validator", ["etag", "last-modified"])
def test_resume_of_a_kept_partial_sends_its_validator(http_server, cache_home, validator):
    """A cut run keeps the response's validator next to the partial file; the next run sends it as If-Range."""
    name, data = publish(http_server.root, "conv", make_state_dict(2, torch.nn.Conv3d(4, 8, 3)))
    cut = len(data) // 2
    http_server.fault(name, cut_after=cut, validator=validator)
    with pytest.raises(DownloadError, match="Run again to resume it"):
        store.download(http_server.url(name), progress=False, retries=0)
    first = http_server.requests_for(name)[0]
    kept = json.loads((cache_home / f"{name}.partial.json").read_text())
    assert kept == {"url": http_server.url(name), "validator": kept["validator"]} and kept["validator"]
    assert (cache_home / f"{name}.partial").read_bytes() == data[:cut]

    path = store.download(http_server.url(name), progress=False)
    second = http_server.requests_for(name)[1]
    assert (first.if_range, second.range, second.if_range, second.status) == (
        None, f"bytes={cut}-", kept["validator"], 206
    )
    assert path.read_bytes() == data
    assert cache_files(cache_home) == [name]  # partial and its .json are gone


@pytest.mark.parametrize("server", ["honours If-Range", "ignores If-Range"])
def test_file_replaced_between_cut_and_resume_gives_the_new_file(http_server, cache_home, tmp_path, server):
    """The partial start of the old file is never glued to the new file's tail, even without a hash in the name."""
    name, old = publish(http_server.root, "conv", make_state_dict(4), hashed=False)
    cut = len(old) // 2
    http_server.fault(name, cut_after=cut, ignore_if_range=server == "ignores If-Range")
    with pytest.raises(DownloadError, match="Run again to resume it"):
        store.download(http_server.url(name), progress=False, retries=0)
    torch.save(make_state_dict(5), tmp_path / name)  # the same name: the same zip layout
    new = (tmp_path / name).read_bytes()
    assert len(new) == len(old) and new[:cut] != old[:cut]  # only the bytes tell the versions apart
    http_server.replace(name, new)

    path = store.download(http_server.url(name), progress=False)
    reqs = [(r.range, r.if_range, r.status) for r in http_server.requests_for(name)]
    resume = (f"bytes={cut}-", http_server.etag(old))
    if server == "honours If-Range":  # the whole new file comes back instead of a tail
        assert reqs == [(None, None, 200), (*resume, 200)]
    else:  # a tail with another ETag is refused; the file restarts from zero
        assert reqs == [(None, None, 200), (*resume, 206), (None, None, 200)]
    assert path.read_bytes() == new
    assert cache_files(cache_home) == [name]


def test_partial_without_validator_restarts_if_the_server_has_one(http_server, cache_home):
    """A .partial of unknown origin cannot be shown to be of the served file: it is not resumed."""
    name, data = publish(http_server.root, "conv", make_state_dict())
    cache_home.mkdir(parents=True)
    (cache_home / f"{name}.partial").write_bytes(b"PK\x03\x04" + b"\0" * 100)
    path = store.download(http_server.url(name), progress=False)
    assert [(r.range, r.if_range, r.status) for r in http_server.requests_for(name)] == [
        ("bytes=104-", None, 206),
        (None, None, 200),
    ]
    assert path.read_bytes() == data


def test_resume_without_validators_hashes_the_partial_part(http_server, cache_home):
    """Neither side has a validator: a stale .partial is resumed, and the whole-file hash catches it."""
    name, data = publish(http_server.root, "conv", make_state_dict())
    http_server.fault(name, validator=None)
    cache_home.mkdir(parents=True)
    (cache_home / f"{name}.partial").write_bytes(b"PK\x03\x04" + b"\0" * 100)
    with pytest.raises(DownloadError, match="sha256"):
        store.download(http_server.url(name), progress=False)
    assert [(r.range, r.if_range, r.status) for r in http_server.requests_for(name)] == [("bytes=104-", None, 206)]
    assert cache_files(cache_home) == []
    assert store.download(http_server.url(name), progress=False).read_bytes() == data  # starts over cleanly


def test_resume_without_validators_after_a_cut(http_server, cache_home):
    name, data = publish(http_server.root, "conv", make_state_dict())
    http_server.fault(name, cut_after=300, validator=None)
    path = store.download(http_server.url(name), progress=False)
    assert [(r.range, r.if_range, r.status) for r in http_server.requests_for(name)] == [
        (None, None, 200),
        ("bytes=300-", None, 206),
    ]
    assert path.read_bytes() == data


def test_server_ignoring_range_restarts_from_zero(http_server, cache_home):
    name, data = publish(http_server.root, "conv", make_state_dict())
    http_server.fault(name, cut_after=200, ignore_range=True)
    path = store.download(http_server.url(name), progress=False)
    reqs = http_server.requests_for(name)
    assert [(r.range, r.if_range, r.status) for r in reqs] == [
        (None, None, 200),
        ("bytes=200-", http_server.etag(data), 200),
    ]
    assert path.read_bytes() == data
    assert cache_files(cache_home) == [name]


def test_416_restarts_from_zero(http_server, cache_home):
    name, data = publish(http_server.root, "conv", make_state_dict())
    cache_home.mkdir(parents=True)
    (cache_home / f"{name}.partial").write_bytes(b"\x80" * (len(data) + 10))  # longer than the file
    path = store.download(http_server.url(name), progress=False)
    assert [(r.range, r.status) for r in http_server.requests_for(name)] == [
        (f"bytes={len(data) + 10}-", 416),
        (None, 200),
    ]
    assert path.read_bytes() == data


def test_503_then_success(http_server, cache_home, monkeypatch):
    name, data = publish(http_server.root, "conv", make_state_dict())
    http_server.fault(name, fail_first=2)
    sleeps: list[float] = []
    monkeypatch.setattr(store, "time", types.SimpleNamespace(sleep=sleeps.append))
    monkeypatch.setattr(store, "BACKOFF_BASE", SHIPPED_BACKOFF_BASE)
    path = store.download(http_server.url(name), progress=False)
    assert [r.status for r in http_server.requests_for(name)] == [503, 503, 200]
    assert sleeps == [SHIPPED_BACKOFF_BASE, 2 * SHIPPED_BACKOFF_BASE]  # a server error is worth waiting for
    assert path.read_bytes() == data


def test_5xx_gives_up_after_retries_with_growing_backoff(http_server, cache_home, monkeypatch):
    name, _ = publish(http_server.root, "conv", make_state_dict())
    http_server.fault(name, fail_first=100, fail_status=502)
    sleeps: list[float] = []
    monkeypatch.setattr(store, "time", types.SimpleNamespace(sleep=sleeps.append))
    monkeypatch.setattr(store, "BACKOFF_BASE", 0.25)
    with pytest.raises(DownloadError, match="after 4 attempts: HTTP 502") as info:
        store.download(http_server.url(name), progress=False, retries=3)
    assert len(http_server.requests_for(name)) == 4
    assert sleeps == [0.25, 0.5, 1.0]
    assert str(cache_home / name) in str(info.value)
    assert cache_files(cache_home) == []


def test_404_is_a_clear_error(http_server, cache_home):
    url = http_server.url("missing-abcdef12.pth")
    with pytest.raises(DownloadError) as info:
        store.download(url, progress=False)
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
        store.download(http_server.url("conv-abcdef12.pth"), progress=False)
    assert "text/html" in str(info.value)
    assert cache_files(cache_home) == []


def test_body_longer_than_sent_is_an_error(http_server, cache_home):
    name, data = publish(http_server.root, "conv", make_state_dict())
    http_server.fault(name, length_delta=100)  # Content-Length claims 100 more bytes
    with pytest.raises(DownloadError) as info:
        store.download(http_server.url(name), progress=False, retries=2)
    assert f"of the {len(data) + 100} bytes the server announced" in str(info.value)
    assert [r.range for r in http_server.requests_for(name)] == [None, f"bytes={len(data)}-", f"bytes={len(data)}-"]
    assert not (cache_home / name).exists()


def test_body_shorter_than_file_is_an_error(http_server, cache_home):
    """Content-Length smaller than the file: the client gets a truncated zip, without hash in the name."""
    name, _ = publish(http_server.root, "conv", make_state_dict(), hashed=False)
    http_server.fault(name, length_delta=-200)
    with pytest.raises(DownloadError, match="incomplete or damaged zip"):
        store.download(http_server.url(name), progress=False)
    assert cache_files(cache_home) == []


def test_connection_refused_fails_at_once(cache_home, monkeypatch):
    monkeypatch.setattr(store, "BACKOFF_BASE", SHIPPED_BACKOFF_BASE)  # a retry would sleep 1 s, then 2 s, ...
    assert SHIPPED_BACKOFF_BASE >= 1.0
    with socket.socket() as s:  # a port with nothing listening: connection refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/conv-abcdef12.pth"
    start = time.monotonic()
    with pytest.raises(DownloadError) as info:
        store.download(url, progress=False)
    assert time.monotonic() - start < 2.0
    message = str(info.value)
    assert url in message and "connection refused" in message and "attempts" not in message
    assert f"put it at {cache_home / 'conv-abcdef12.pth'}" in message
    assert isinstance(info.value.__cause__, requests.ConnectionError)
    assert cache_files(cache_home) == []


def unshare_net() -> list[str]:
    """A command prefix that runs a program in a new network namespace: no network at all, only a down loopback."""
    unshare = shutil.which("unshare")
    if unshare is not None:
        for prefix in ([unshare, "-n"], [unshare, "-r", "-n"]):  # as root; else in a user namespace
            if subprocess.run([*prefix, "true"], capture_output=True).returncode == 0:
                return prefix
    pytest.fail(
        "this test needs `unshare -n` (util-linux) to run a process without any network: install util-linux "
        "and run as root, or allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1)."
    )


def test_unknown_host_fails_at_once_without_network(tmp_path):
    """In a network namespace of its own nothing resolves: the download fails at once, saying where the file goes."""
    url = "https://checkpoints.example/some-model-0123abcd.pth"
    script = BARE_HUB + (
        "import json, time\n"
        "start = time.monotonic()\n"
        "try:\n"
        "    store.download(sys.argv[1], progress=False)\n"
        "except Exception as e:\n"
        "    print(json.dumps({'elapsed': time.monotonic() - start, 'type': type(e).__name__, 'error': str(e)}))\n"
    )
    result = subprocess.run(
        [*unshare_net(), sys.executable, "-c", script, url],
        env=no_network_env(VIDEOZOO_HOME=str(tmp_path)), capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0 and result.stdout, result.stderr
    out = json.loads(result.stdout)
    assert out["type"] == "DownloadError", out
    assert out["elapsed"] < 2.0, out
    assert "host name not found" in out["error"] and "offline" in out["error"], out
    assert url in out["error"] and f"put it at {tmp_path / 'checkpoints' / 'some-model-0123abcd.pth'}" in out["error"]
    assert cache_files(tmp_path / "checkpoints") == []


@pytest.mark.parametrize("value", ["1", "TRUE", "yes"])
def test_offline_mode_never_connects(http_server, cache_home, monkeypatch, value):
    name, data = publish(http_server.root, "conv", make_state_dict())
    url = http_server.url(name)
    monkeypatch.setenv("VIDEOZOO_OFFLINE", value)
    with pytest.raises(DownloadError) as info:
        store.download(url, progress=False)
    message = str(info.value)
    assert "VIDEOZOO_OFFLINE" in message and url in message and f"put the file at {cache_home / name}" in message
    assert http_server.requests == []
    assert not cache_home.exists()

    monkeypatch.delenv("VIDEOZOO_OFFLINE")
    store.download(url, progress=False)
    monkeypatch.setenv("VIDEOZOO_OFFLINE", value)
    assert store.download(url, progress=False).read_bytes() == data  # a cached file is used
    assert_same_state_dict(safety.load_checkpoint(store.download(url, progress=False), downloaded=True), make_state_dict())
    assert len(http_server.requests) == 1


@pytest.mark.parametrize("value", ["0", ""])
def test_offline_mode_off(http_server, cache_home, monkeypatch, value):
    name, data = publish(http_server.root, "conv", make_state_dict())
    monkeypatch.setenv("VIDEOZOO_OFFLINE", value)
    assert store.download(http_server.url(name), progress=False).read_bytes() == data


def test_warm_cache_needs_no_network(http_server, cache_home, monkeypatch):
    name, data = publish(http_server.root, "conv", make_state_dict())
    url = http_server.url(name)
    store.download(url, progress=False)
    http_server.stop()

    def no_network(*args, **kwargs):
        raise AssertionError("network used for a cached file")

    monkeypatch.setattr(requests.Session, "request", no_network)
    assert store.download(url, progress=False).read_bytes() == data
    assert_same_state_dict(safety.load_checkpoint(store.download(url, progress=False), downloaded=True), make_state_dict())


def test_concurrent_processes_download_once(http_server, cache_home, tmp_path):
    name, data = publish(http_server.root, "big", make_state_dict(3, torch.nn.Conv3d(16, 32, 3)))
    http_server.fault(name, delay=0.5)  # keep the download in flight while others arrive
    url = http_server.url(name)
    go = tmp_path / "go"
    script = BARE_HUB + (
        "import pathlib, time\n"
        "pathlib.Path(sys.argv[2]).touch()\n"
        "go = pathlib.Path(sys.argv[3])\n"
        "while not go.exists(): time.sleep(0.005)\n"
        "print(store.download(sys.argv[1], progress=False))\n"
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
    assert store_entries(cache_home) == {"store": [".locks", name], ".locks": [f"{name}.lock"]}


def test_the_store_holds_only_checkpoints(http_server, cache_home):
    """The lock a download holds is kept in the store's hidden ``.locks`` folder, not beside the checkpoints
    (removing it once the download is done would break the lock: see store._lock_path)."""
    first, _ = publish(http_server.root, "conv", make_state_dict())
    second, _ = publish(http_server.root, "linear", make_state_dict(1, torch.nn.Linear(4, 2)))
    store.download(http_server.url(first), progress=False)
    assert store_entries(cache_home) == {"store": [".locks", first], ".locks": [f"{first}.lock"]}
    store.download(http_server.url(second), progress=False)
    store.download(http_server.url(first), progress=False)  # cached: no lock taken, nothing written
    assert store_entries(cache_home) == {"store": sorted([".locks", first, second]), ".locks": sorted([f"{first}.lock", f"{second}.lock"])}


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
        safety.load_checkpoint(path)
    assert str(path) in str(info.value) and "refused" in str(info.value)
    assert not marker.exists()


def test_pickle_payload_from_url_is_refused(http_server, tmp_path):
    marker = tmp_path / "pwned"
    name, _ = publish(http_server.root, "evil", {"x": _Payload(marker)})
    with pytest.raises(CheckpointError, match="needs arbitrary code"):
        safety.load_checkpoint(store.download(http_server.url(name), progress=False), downloaded=True)
    assert not marker.exists()


def test_pickle_payload_of_os_system_is_refused(tmp_path):
    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {shlex.quote(str(marker))}",))

    marker = tmp_path / "armed"
    torch.save({"w": torch.ones(2), "x": Payload()}, tmp_path / "probe.pth")
    torch.load(tmp_path / "probe.pth", weights_only=False)
    assert marker.exists()  # the payload is live: an unsafe load runs it

    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"w": torch.ones(2), "x": Payload()}, path)
    system = f"{os.system.__module__}.{os.system.__name__}"  # posix.system
    assert torch.serialization.get_unsafe_globals_in_checkpoint(path) == [system]
    with pytest.raises(CheckpointError, match="needs arbitrary code to load") as info:
        safety.load_checkpoint(path)
    assert f"({system})" in str(info.value) and str(path) in str(info.value)
    assert not marker.exists()


@pytest.mark.parametrize("form", ["zip", "legacy", "legacy-numpy1"])
def test_numpy_scalars_and_dtypes_load(tmp_path, form):
    """Training scripts (PySlowFast's) save numpy scalars and dtypes next to the weights."""
    sd = make_state_dict()
    checkpoint = {
        "model_state": sd,
        "epoch": np.int64(3),
        "lr": np.float32(0.125),
        "dtype": np.dtype("float32"),
        "more": [np.bool_(True), np.uint8(7), np.int32(-2), np.float16(0.5), np.float64(0.1), np.complex64(1 + 2j)],
        "optimizer_state": {"state": {}, "param_groups": [{"lr": np.float64(0.01), "momentum": np.float32(0.9)}]},
    }
    path = tmp_path / "slowfast.pyth"
    torch.save(checkpoint, path, _use_new_zipfile_serialization=form == "zip")
    if form == "legacy-numpy1":  # as numpy 1 wrote it: the scalar reconstructor was numpy.core's
        data = path.read_bytes()
        numpy2, numpy1 = b"cnumpy._core.multiarray\nscalar\n", b"cnumpy.core.multiarray\nscalar\n"
        assert numpy2 in data or numpy1 in data
        path.write_bytes(data.replace(numpy2, numpy1))
    allowed_before = torch.serialization.get_safe_globals()
    with pytest.raises(pickle.UnpicklingError):  # torch alone refuses them
        torch.load(path, weights_only=True)

    out = safety.load_checkpoint(path)
    assert_same_state_dict(out["model_state"], sd)
    for key in ("epoch", "lr", "dtype", "more", "optimizer_state"):
        assert out[key] == checkpoint[key]
    assert type(out["epoch"]) is np.int64 and type(out["lr"]) is np.float32
    assert [type(v) for v in out["more"]] == [type(v) for v in checkpoint["more"]]
    assert set(torch.serialization.get_safe_globals()) == set(allowed_before)  # allowed for that load only (torch keeps no order)


def test_user_allowlisted_globals_survive_a_load(tmp_path):
    path = tmp_path / "np.pth"
    torch.save({"epoch": np.int64(3)}, path)
    with torch.serialization.safe_globals([np.dtype]):
        assert safety.load_checkpoint(path) == {"epoch": 3}
        assert np.dtype in torch.serialization.get_safe_globals()


@pytest.mark.parametrize(
    ("obj", "refused"),
    [
        (np.arange(3), "multiarray._reconstruct"),  # arrays are not on the list
        (np.dtype("datetime64[s]"), "numpy.dtypes.DateTime64DType"),  # neither are other dtypes
        (datetime.date(2020, 1, 1), "datetime.date"),
    ],
    ids=["ndarray", "datetime-dtype", "date"],
)
def test_other_globals_are_refused_by_name(tmp_path, obj, refused):
    path = tmp_path / "other.pth"
    torch.save({"epoch": np.int64(3), "x": obj}, path)
    with pytest.raises(CheckpointError, match="needs arbitrary code to load") as info:
        safety.load_checkpoint(path)
    assert refused in str(info.value) and str(path) in str(info.value)


DAMAGE = ["truncated-zip", "truncated-legacy", "html", "empty", "garbage-zip"]


def write_damaged(path: Path, damage: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    good = path.with_name("good.pth")
    torch.save(make_state_dict(), good, _use_new_zipfile_serialization=damage != "truncated-legacy")
    data = good.read_bytes()
    path.write_bytes({
        "truncated-zip": data[: len(data) // 2],
        "truncated-legacy": data[: len(data) // 2],
        "html": b"<html><body>Proxy login</body></html>",
        "empty": b"",
        "garbage-zip": b"PK\x03\x04" + bytes(range(256)) * 4,
    }[damage])


@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_own_file_is_a_checkpoint_error(tmp_path, damage):
    """A file the user passes by path: downloading it again is no advice; re-saving it is."""
    path = tmp_path / "mine" / "bad-0123abcd.pth"
    write_damaged(path, damage)
    with pytest.raises(CheckpointError) as info:
        safety.load_checkpoint(path)
    message = str(info.value)
    assert str(path) in message and "download" not in message
    assert "complete PyTorch checkpoint" in message and "torch.save(model.state_dict(), path)" in message


@pytest.mark.parametrize("where", ["cache", "downloaded"])
@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_downloaded_file_is_a_checkpoint_error(tmp_path, cache_home, damage, where):
    """A file in the cache (or one download() put elsewhere): delete it and download it again."""
    path = (cache_home if where == "cache" else tmp_path / "model_dir") / "bad-0123abcd.pth"
    write_damaged(path, damage)
    with pytest.raises(CheckpointError) as info:
        # the loader passes downloaded=True for a file it downloaded, and for any file in the store
        safety.load_checkpoint(path, downloaded=where == "downloaded" or store.in_store(path))
    message = str(info.value)
    assert str(path) in message and message.endswith("Delete it and download it again.")


def test_damaged_file_from_url_says_download_again(http_server, tmp_path):
    """A truncated legacy (non-zip) file passes the download checks; loading it says to download it again."""
    write_damaged(http_server.root / "trunc.pth", "truncated-legacy")
    with pytest.raises(CheckpointError) as info:
        safety.load_checkpoint(store.download(http_server.url("trunc.pth"), progress=False, model_dir=tmp_path / "md"), downloaded=True)
    message = str(info.value)
    assert str(tmp_path / "md" / "trunc.pth") in message and message.endswith("Delete it and download it again.")


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        safety.load_checkpoint(tmp_path / "nope.pth")


# ----------------------------------------------------------------------------- progress


def test_progress_false_prints_nothing(http_server, capfd):
    name, _ = publish(http_server.root, "conv", make_state_dict())
    store.download(http_server.url(name), progress=False)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_progress_true_prints_a_bar_on_stderr(http_server, capfd):
    name, _ = publish(http_server.root, "conv", make_state_dict())
    store.download(http_server.url(name), progress=True)
    out, err = capfd.readouterr()
    assert out == ""
    assert name in err and "100%" in err



# ----------------------------------------------------------------------------- Hugging Face files


def publish_safetensors(root: Path, name: str, tensors: dict[str, torch.Tensor]) -> bytes:
    from safetensors.torch import save_file

    save_file(tensors, root / name)
    return (root / name).read_bytes()


def test_hugging_face_cache_names_carry_publisher_and_repository():
    assert (
        store.cache_name("https://huggingface.co/MCG-NJU/videomae-base-finetuned-kinetics/resolve/main/model.safetensors")
        == "MCG-NJU--videomae-base-finetuned-kinetics--model.safetensors"
    )
    assert (
        store.cache_name("https://huggingface.co/org/repo/resolve/0123abc/sub/dir/pytorch_model.bin?download=true")
        == "org--repo--sub--dir--pytorch_model.bin"
    )
    # Only Hugging Face's resolve URLs; anything else keeps its basename.
    assert store.cache_name("https://example.invalid/org/repo/resolve/main/model.safetensors") == "model.safetensors"
    assert store.cache_name("https://huggingface.co/org/repo/blob/main/model.safetensors") == "model.safetensors"


def test_safetensors_download_verified_by_the_linked_etag(http_server, cache_home):
    """A resolve URL redirects to the storage with the object's sha256 (X-Linked-Etag): checked in full."""
    tensors = {"w": torch.arange(12.0).reshape(3, 4), "b": torch.ones(3)}
    data = publish_safetensors(http_server.root, "blob-ok", tensors)
    url = http_server.link("org/repo/resolve/main/model.safetensors", "blob-ok", hashlib.sha256(data).hexdigest())
    path = store.download(url, progress=False, file_name="org--repo--model.safetensors")
    assert path.read_bytes() == data and cache_files(cache_home) == ["org--repo--model.safetensors"]
    assert_same_state_dict(safety.load_checkpoint(path), tensors)


def test_linked_etag_mismatch_discards_the_file(http_server, cache_home):
    data = publish_safetensors(http_server.root, "blob-bad", {"w": torch.zeros(4)})
    stated = hashlib.sha256(data + b"other").hexdigest()
    url = http_server.link("org/repo/resolve/main/model.safetensors", "blob-bad", stated)
    with pytest.raises(DownloadError, match=f"the server states {stated} for it"):
        store.download(url, progress=False)
    assert cache_files(cache_home) == []
    # check_hash=False keeps the file as served.
    assert store.download(url, progress=False, check_hash=False).read_bytes() == data


def test_download_first_falls_back_on_404_only(http_server, cache_home):
    sd = make_state_dict()
    name, data = publish(http_server.root, "pytorch_model", sd, hashed=False)
    sources = [(http_server.url("model.safetensors"), "r--model.safetensors"), (http_server.url(name), "r--pytorch_model.bin")]
    path = store.download_first(sources, progress=False)
    assert path == cache_home / "r--pytorch_model.bin" and path.read_bytes() == data
    assert [r.status for r in http_server.requests] == [404, 200]
    # Cached: no request at all, whichever source it came from.
    assert store.download_first(sources, progress=False) == path and len(http_server.requests) == 2
    # A failure other than "no such file" is not hidden by trying the next file.
    http_server.fault("flaky.safetensors", fail_first=10, fail_status=503)
    with pytest.raises(DownloadError, match="503"):
        store.download_first([(http_server.url("flaky.safetensors"), None), (http_server.url(name), "other.bin")],
                           progress=False, retries=0)
    assert not (cache_home / "other.bin").exists()


def test_download_first_when_no_file_exists(http_server, cache_home, monkeypatch):
    sources = [(http_server.url("a.safetensors"), None), (http_server.url("b.bin"), None)]
    with pytest.raises(DownloadError, match="None of the files of these weights exists") as info:
        store.download_first(sources, progress=False)
    assert info.value.status == 404 and cache_files(cache_home) == []
    monkeypatch.setenv("VIDEOZOO_OFFLINE", "1")
    with pytest.raises(DownloadError, match=r"Fetch one of them .*a.safetensors at .*; .*b.bin at "):
        store.download_first(sources, progress=False)


def test_truncated_safetensors_is_a_checkpoint_error(tmp_path):
    data = publish_safetensors(tmp_path, "model.safetensors", {"w": torch.randn(64)})
    (tmp_path / "model.safetensors").write_bytes(data[:-10])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        safety.load_checkpoint(tmp_path / "model.safetensors")


class _MkdirPayload:
    """Unpickling this would create the file ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_a_plain_pickle_with_a_code_payload_is_refused_as_such(tmp_path, protocol):
    """pickle.dump (not torch.save) of an object that runs code: refused by name, never run, no torch warning."""
    import pickle
    import warnings

    marker = tmp_path / "payload-ran"
    path = tmp_path / "model.pth"
    with open(path, "wb") as f:
        pickle.dump({"model": _MkdirPayload(marker)}, f, protocol=protocol)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(CheckpointError, match=r"needs arbitrary code to load \(posix\.mkdir\) and was refused"):
            safety.load_checkpoint(path)
    assert not marker.exists()


def test_a_download_that_fails_at_once_leaves_no_empty_bar(http_server, capfd):
    with pytest.raises(DownloadError):
        store.download(http_server.url("absent-0123abcd.pth"), progress=True, retries=0)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


# -- gated Hugging Face repositories: the user's token, for the Hub's files only -----------------------

HUB_FILE = "https://huggingface.co/org/gated-repo/resolve/main/stage1/S14/pytorch_model.bin"
TOKEN = "hf_test_0123456789abcdef"  # a made-up token: the tests check where it goes and that no message shows it


@pytest.fixture
def hub(http_server, monkeypatch):
    """The loopback server as the Hub (``HF_ENDPOINT``, huggingface_hub's mirror setting): the Hub's path of
    ``HUB_FILE`` redirects, as the Hub's resolve URLs do, to the file on another host name (``localhost``)."""
    for variable in store.ENV_HF_TOKENS:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", http_server.url("").rstrip("/"))
    name, data = publish(http_server.root, "blob-gated", make_state_dict(), hashed=False)
    http_server.link("org/gated-repo/resolve/main/stage1/S14/pytorch_model.bin", name, host="localhost")
    return http_server, name, data


def test_the_token_goes_to_the_hub_only(hub, cache_home, monkeypatch):
    """HF_TOKEN is sent as a bearer token to the Hub (here through HF_ENDPOINT), dropped when the Hub
    redirects to another host, and never sent with any other URL."""
    server, name, data = hub
    monkeypatch.setenv("HF_TOKEN", f"  {TOKEN}\n")
    path = store.download(HUB_FILE, progress=False, gated=True)
    assert path.name == "org--gated-repo--stage1--S14--pytorch_model.bin" and path.read_bytes() == data
    resolve, storage = server.requests
    assert resolve.authorization == f"Bearer {TOKEN}" and resolve.status == 302
    assert storage.path == f"/{name}" and storage.authorization is None and storage.status == 200
    other, _ = publish(server.root, "elsewhere", make_state_dict(1), hashed=False)
    store.download(server.url(other), progress=False)
    assert server.requests_for(other)[0].authorization is None
    # Only https://huggingface.co/<org>/<repo>/resolve/... is the Hub; look-alikes get no token.
    for url in (HUB_FILE.replace("https:", "http:"), HUB_FILE.replace("huggingface.co", "huggingface.co.evil.example"),
                HUB_FILE.replace("huggingface.co", "huggingface.co:8443"), "https://huggingface.co/org/repo/blob/main/x.bin"):
        assert store.hf_repository(url) is None and store._hub_request(url) == (url, {})


def test_hugging_face_hub_token_is_read_too_and_hf_token_first(hub, cache_home, monkeypatch):
    server, _, _ = hub
    monkeypatch.setenv("HUGGING_FACE_HUB_TOKEN", "hf_older_variable")
    store.download(HUB_FILE, progress=False, gated=True)
    assert server.requests[0].authorization == "Bearer hf_older_variable"
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert store._hub_request(HUB_FILE)[1] == {"Authorization": f"Bearer {TOKEN}"}


def test_gated_weights_without_a_token_fail_at_once(hub, cache_home, monkeypatch):
    """No request, nothing in the cache; the message names the page to accept and the variable to set."""
    server, _, _ = hub
    monkeypatch.setenv("HF_TOKEN", " \n")  # set but empty: no token
    with pytest.raises(DownloadError, match=r"gated repository .* no token is set") as info:
        store.download_first([(HUB_FILE, None)], progress=False, gated=True)
    message = str(info.value)
    assert "https://huggingface.co/org/gated-repo," in message and "HF_TOKEN" in message
    assert server.requests == [] and not cache_home.exists()


@pytest.mark.parametrize("status", [401, 403])
def test_a_refusal_from_the_hub_fails_at_once_naming_the_page(hub, cache_home, monkeypatch, status):
    """Weights not known to be gated: the Hub's 401/403 is not retried, and says what to do; with a token
    set, the message names its variable, never the token."""
    server, _, _ = hub
    server.links.clear()
    server.fault("org/gated-repo/resolve/main/stage1/S14/pytorch_model.bin", status=status, body=b'{"error": "gated"}',
                 content_type="application/json")
    with pytest.raises(DownloadError, match=rf"HTTP {status}: org/gated-repo is a gated \(or private\) repository") as info:
        store.download(HUB_FILE, progress=False)
    assert info.value.status == status and "https://huggingface.co/org/gated-repo" in str(info.value)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    with pytest.raises(DownloadError, match=rf"HTTP {status} to the token in HF_TOKEN") as info:
        store.download(HUB_FILE, progress=False)
    assert TOKEN not in str(info.value) and "https://huggingface.co/org/gated-repo" in str(info.value)
    assert len(server.requests) == 2 and not list(cache_home.glob("*.bin"))
