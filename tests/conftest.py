"""Shared test fixtures.

``tiny``: the tiny classifier of ``video_factory`` registered for one test (through
``videozoo.registered``), its checkpoints in the test's own cache. ``one_thread``: torch on one thread
for a module of small models (``pytestmark = pytest.mark.usefixtures("one_thread")``).

``http_server``: a real HTTP server on 127.0.0.1 (random port) serving the files of a
temporary directory, with Range and If-Range support (an ``ETag`` derived from the
file's bytes), a request log and programmable faults, so tests exercise real sockets
without ever touching the network.
"""

from __future__ import annotations

import email.utils
import hashlib
import os
import shutil
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

# torch.compile (the engines' "compile") compiles in this process, not in a pool of compile workers that
# would stay alive in the test worker after its test (set before torch._inductor is imported).
os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook: the suite also runs with -p no:xdist
def pytest_testnodedown(node, error):  # pytest-xdist's controller, when a worker ends
    """A worker that died mid-run (xdist: "node down: Not properly terminated") gets its exit status said:
    -9 is SIGKILL (the kernel's out-of-memory killer, when its log says so), other negatives other signals,
    where xdist alone names only the test that was running."""
    if not error:
        return
    popen = getattr(getattr(node.gateway, "_io", None), "popen", None)
    try:
        status = popen.wait(timeout=10) if popen is not None else None
    except Exception as e:  # the status is a diagnosis only; the failure is reported by xdist either way
        status = f"unknown ({type(e).__name__})"
    print(f"\n[{node.gateway.id}] worker process ended with status {status}", flush=True)


@dataclass
class Fault:
    """Misbehaviour for one served file name; counters are consumed as requests arrive."""

    fail_first: int = 0  # answer the next N requests with `fail_status`
    fail_status: int = 503
    cut_after: int | None = None  # send only this many body bytes, then drop the connection...
    cut_times: int = 1  # ...for this many requests
    length_delta: int = 0  # claim the file is this many bytes longer (<0: shorter) than it is
    ignore_range: bool = False  # answer Range requests with 200 and the whole file
    ignore_if_range: bool = False  # serve the Range even when If-Range does not match
    validator: str | None = "etag"  # what the responses carry: "etag", "last-modified" or None (neither)
    delay: float = 0.0  # seconds to wait after the headers, before the body
    status: int | None = None  # serve `body` with this status instead of the file
    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"


@dataclass
class Request:
    method: str
    path: str
    range: str | None
    status: int
    if_range: str | None = None
    body_bytes: int = 0  # body bytes actually written
    full_body: bool = False  # the whole file was sent from byte 0
    authorization: str | None = None  # the request's Authorization header (tests of the Hub's token)


class LoopbackServer:
    """Serves ``root`` on 127.0.0.1; ``faults[name]`` makes ``/name`` misbehave."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.faults: dict[str, Fault] = {}
        self.links: dict[str, tuple[str, str | None]] = {}
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        self.running = True

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def link(self, path: str, target: str, linked_etag: str | None = None, host: str = "127.0.0.1") -> str:
        """Answer ``/path`` as Hugging Face's ``resolve`` URLs do: a 302 to ``/target`` carrying
        ``X-Linked-Etag: "<linked_etag>"`` (the sha256 it states for the file); returns ``/path``'s URL.
        ``host``: the host name the redirect names (``"localhost"``: this server under another host name,
        as the Hub redirects to its storage)."""
        with self._lock:
            self.links["/" + path] = (f"http://{host}:{self.port}/{target}", linked_etag)
        return self.url(path)

    def fault(self, name: str, **settings: object) -> Fault:
        """Make ``/name`` misbehave as :class:`Fault` ``settings`` say; returns the fault."""
        with self._lock:
            fault = self.faults[name] = Fault(**settings)  # type: ignore[arg-type]
        return fault

    @staticmethod
    def etag(data: bytes) -> str:
        """The ``ETag`` served for a file holding ``data``."""
        return '"' + hashlib.sha256(data).hexdigest()[:16] + '"'

    def replace(self, name: str, data: bytes) -> None:
        """Republish ``/name`` with ``data`` (atomically): a new ETag and a later Last-Modified."""
        file = self.root / name
        before = file.stat().st_mtime if file.exists() else time.time()
        tmp = file.with_name(name + ".new")
        tmp.write_bytes(data)
        os.utime(tmp, (before + 1, before + 1))
        os.replace(tmp, file)

    def requests_for(self, name: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path == "/" + name]

    def stop(self) -> None:
        if self.running:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(timeout=5)
            self.running = False


def _make_handler(server: LoopbackServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # one request per connection; a cut is a closed socket

        def log_message(self, format: str, *args: object) -> None:  # keep test output clean
            pass

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            name = unquote(path.lstrip("/"))
            record = Request("GET", path, self.headers.get("Range"), 0, self.headers.get("If-Range"))
            record.authorization = self.headers.get("Authorization")
            with server._lock:
                server.requests.append(record)
                link = server.links.get(path)
            if link is not None:
                target, linked = link
                extra = {"Location": target} | ({"X-Linked-Etag": f'"{linked}"'} if linked else {})
                return self._reply(record, 302, b"", "text/plain", extra)
            with server._lock:
                fault = server.faults.get(name)
                fail = fault is not None and fault.fail_first > 0
                cut = fault is not None and fault.cut_after is not None and fault.cut_times > 0
                if fail:
                    fault.fail_first -= 1
                if cut:
                    fault.cut_times -= 1
            if fail:
                return self._reply(record, fault.fail_status, b"<html>try later</html>", "text/html")
            if fault is not None and fault.status is not None:
                return self._reply(record, fault.status, fault.body, fault.content_type)
            file = server.root / name
            if not name or "/" in name or not file.is_file():
                return self._reply(record, 404, b"<html>not found</html>", "text/html")
            data = file.read_bytes()
            size = len(data)
            announced_size = size + (fault.length_delta if fault else 0)  # what the headers claim
            start, status = 0, 200
            headers = {"Content-Type": "application/octet-stream", "Accept-Ranges": "bytes"}
            validator = fault.validator if fault else "etag"
            if validator == "etag":
                headers["ETag"] = server.etag(data)
            elif validator == "last-modified":
                headers["Last-Modified"] = email.utils.formatdate(file.stat().st_mtime, usegmt=True)
            # If-Range: serve the range only if it names the current file, else the whole file (RFC 9110 13.1.5)
            current = record.if_range is None or record.if_range in (headers.get("ETag"), headers.get("Last-Modified"))
            if record.range and not (fault and fault.ignore_range) and (current or (fault and fault.ignore_if_range)):
                first, _, last = record.range.removeprefix("bytes=").partition("-")
                start = int(first)
                if start >= announced_size:
                    extra = {**headers, "Content-Range": f"bytes */{announced_size}"}
                    return self._reply(record, 416, b"", "text/plain", extra)
                end = min(int(last), announced_size - 1) if last else announced_size - 1
                data = data[start : end + 1]
                status = 206
                headers["Content-Range"] = f"bytes {start}-{end}/{announced_size}"
                announced = end - start + 1
            else:
                announced = announced_size
            if cut:
                data = data[: fault.cut_after]
            self._send(record, status, headers, announced, data, fault.delay if fault else 0.0)
            record.full_body = start == 0 and record.body_bytes == size

        def _reply(self, record: Request, status: int, body: bytes, content_type: str,
                   extra: dict[str, str] | None = None) -> None:
            self._send(record, status, {**(extra or {}), "Content-Type": content_type}, len(body), body, 0.0)

        def _send(self, record: Request, status: int, headers: dict[str, str], length: int, body: bytes,
                  delay: float) -> None:
            record.status = status
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(length))
            self.end_headers()
            if delay:
                self.wfile.flush()
                time.sleep(delay)
            try:
                self.wfile.write(body)
                record.body_bytes = len(body)
            except (BrokenPipeError, ConnectionResetError):
                pass

    return Handler


@pytest.fixture(autouse=True)
def _never_download(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reaches a real checkpoint host: offline mode is on unless a test serves files itself
    (``http_server`` turns it off; tests of the mode set it as they need)."""
    monkeypatch.setenv("VIDEOZOO_OFFLINE", "1")


@pytest.fixture
def http_server(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """A :class:`LoopbackServer` serving a fresh temporary directory (``server.root``)."""
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.delenv("VIDEOZOO_OFFLINE", raising=False)  # its files are on loopback
    root = tmp_path_factory.mktemp("served")
    server = LoopbackServer(root)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)  # served checkpoints are full-size: free the disk as we go


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    """The tiny classifier registered under ``TINY_NAME`` for this test, its files in ``tmp_path/home``."""
    import videozoo
    from video_factory import TINY_NAME, install_tiny_checkpoints, tiny_parts

    _, enum, builder = tiny_parts()
    monkeypatch.setenv("VIDEOZOO_HOME", str(tmp_path / "home"))
    install_tiny_checkpoints(tmp_path / "home")
    with videozoo.registered(builder, enum, TINY_NAME) as name:
        yield name


@pytest.fixture(scope="module")
def one_thread():
    """Small models on a shared 2-core machine: OpenMP's per-op barriers would dominate."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
