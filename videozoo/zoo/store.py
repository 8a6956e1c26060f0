"""Checkpoint store: download published weights into the cache, or find them there.

Files live in :func:`get_dir` (``$VIDEOZOO_HOME/checkpoints``, else torch.hub's
``checkpoints`` dir, so weights torchvision already downloaded are reused) under
the basename of their URL, or for a Hugging Face file ``<org>--<repo>--<file>``
(every model there is ``model.safetensors``), see :func:`cache_name`.  A cached file
is returned without any network access.
With ``VIDEOZOO_OFFLINE=1`` (or ``true``/``yes``/``on``) the network is never used:
a file that is not cached is an immediate :class:`DownloadError` naming where to put it.

A download streams into ``<file>.partial`` next to the final file and is renamed
into place (``os.replace``) only once it is complete, looks like a checkpoint and
has the sha256 it must have: the prefix in torchvision's ``name-<sha256 prefix>.ext``
names, and for Hugging Face's large files the full sha256 the server states for the
object (``X-Linked-Etag`` on its redirect).
Several processes (e.g. DDP ranks) asking for the same file serialise on
``.locks/<file>.lock`` in the store (why there, and kept: ``_lock_path``): one downloads, the others
wait and reuse its file; the store's folder itself holds only checkpoints.  Timeouts,
broken transfers and 5xx/408/429 responses are retried with exponential backoff.
A host name that does not resolve, a refused connection or an unreachable network
fails at once (waiting would not help a machine without internet), with the path
to put the file at by hand.

An interrupted transfer resumes with an HTTP Range request only if the server shows
that its file did not change: the validator of the response being saved (``ETag``,
else ``Last-Modified``) is kept in ``<file>.partial.json`` and sent as ``If-Range``,
and bytes are appended only to a 206 response that carries the same validator (or
none, if none was kept).  Anything else restarts the file from zero, so a partial
file is never glued to the tail of a changed one.

Gated Hugging Face repositories (the Hub asks each user to accept terms once, then to download with a
token). For a file of the Hub (``https://huggingface.co/<org>/<repo>/resolve/...``) the user's token is
sent as ``Authorization: Bearer``, read as huggingface_hub reads it (``HF_TOKEN``, else
``HUGGING_FACE_HUB_TOKEN``); it is never sent for any other URL, and requests drops it when the Hub
redirects to its storage on another host. ``HF_ENDPOINT`` (huggingface_hub's mirror setting) fetches the
Hub's files from that server instead, token included. Weights known to be gated fail at once without a
token, and a 401 or 403 from the Hub fails at once; both errors name the page whose terms to accept and
the variable to set, never the token.

Reading a file is :mod:`videozoo.zoo.safety`'s. torch is imported on first use, so processes that
only download start fast.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import socket
import sys
import time
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3
from filelock import FileLock
from tqdm import tqdm

from videozoo.errors import DownloadError
from videozoo.zoo.safety import HEAD_LEN, ZIP_MAGIC, describe_head, looks_like_checkpoint

__all__ = [
    "get_dir",
    "cache_name",
    "cached_path",
    "download",
    "download_first",
    "in_store",
]

ENV_VIDEOZOO_HOME = "VIDEOZOO_HOME"
#: ``1``, ``true``, ``yes`` or ``on`` (any case): never download; unset, empty or anything else: download.
ENV_VIDEOZOO_OFFLINE = "VIDEOZOO_OFFLINE"
#: The Hugging Face Hub's access token, in huggingface_hub's order of precedence.
ENV_HF_TOKENS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
#: huggingface_hub's mirror setting: the Hub's files are fetched from this server instead (token included).
ENV_HF_ENDPOINT = "HF_ENDPOINT"
HF_HUB = "https://huggingface.co"

#: torchvision's convention: ``name-<hex>.ext``; the hex is a prefix of the file's sha256.
HASH_REGEX = re.compile(r"-([a-f0-9]*)\.")

#: Delay before retry ``n`` (1-based) is ``BACKOFF_BASE * 2 ** (n - 1)`` seconds,
#: capped at ``BACKOFF_MAX``.  Tests set ``BACKOFF_BASE`` to 0.
BACKOFF_BASE: float = 1.0
BACKOFF_MAX: float = 30.0

CHUNK_SIZE = 1 << 20

#: The store's hidden folder of lock files (why there, and kept: ``_lock_path``).
LOCKS = ".locks"


_CONTENT_RANGE = re.compile(r"bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)")
#: ``https://huggingface.co/<org>/<repo>/resolve/<revision>/<path>``
_HF_RESOLVE = re.compile(r"^/([^/]+)/([^/]+)/resolve/[^/]+/(.+)$")
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


class _Transient(Exception):
    """A failure worth retrying after a backoff (the partial file is kept for resuming)."""


class _Restart(Exception):
    """The partial file is unusable; it was truncated and the next attempt starts from zero."""


class _Unreachable(Exception):
    """The server cannot be reached at all (no DNS, connection refused, no network): not retried."""


def get_dir() -> Path:
    """Return the checkpoint cache directory (not created until a download needs it).

    ``$VIDEOZOO_HOME/checkpoints`` if ``VIDEOZOO_HOME`` is set, else
    ``torch.hub.get_dir()/checkpoints``, which honours ``TORCH_HOME`` and
    ``torch.hub.set_dir`` and is where torchvision keeps its weights.
    """
    home = os.environ.get(ENV_VIDEOZOO_HOME)
    if home:
        return Path(home).expanduser() / "checkpoints"
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def cached_path(
    url: str, model_dir: str | os.PathLike[str] | None = None, file_name: str | None = None
) -> Path:
    """Return where the file for ``url`` lives or would live; it may not exist yet.

    The name is ``file_name`` if given (weights whose URLs share a basename give their own),
    else :func:`cache_name`, inside ``model_dir`` if given, else :func:`get_dir`.
    """
    name = file_name or cache_name(url)
    directory = Path(model_dir).expanduser() if model_dir is not None else get_dir()
    return directory / name


def in_store(path: Path) -> bool:
    """Whether ``path`` lies in the checkpoint store (a damaged file there can be downloaded again)."""
    return path.resolve().is_relative_to(get_dir().resolve())


def _lock_path(dst: Path) -> Path:
    """The lock file that downloads of ``dst`` serialise on: ``<dst's folder>/.locks/<name>.lock``.

    The lock files sit in a hidden folder of their own rather than beside the checkpoints, and they are
    never removed. Removing one when its download is done breaks the lock: a process that opened the file
    and waits on it is granted the lock on the removed file while a newcomer creates a new file under the
    same name and locks that one, so two processes download into the same ``.partial`` at once.
    Removing it while still holding it is safe only where every waiter checks, once granted, that the
    name still leads to its file: filelock checks ``st_nlink`` only in its recent versions, and on NFS (a
    cache shared by the nodes of a job) a removed file that is still open is renamed, not unlinked, so
    the check cannot see it. (huggingface_hub's cache keeps its lock files in a ``.locks`` folder alike.)
    """
    return dst.parent / LOCKS / (dst.name + ".lock")


def cache_name(url: str) -> str:
    """The file name a download of ``url`` is cached under.

    The basename of the URL's path (query string and fragment ignored); for a file in a Hugging Face
    repository (``https://huggingface.co/<org>/<repo>/resolve/<revision>/<path>``) it is
    ``<org>--<repo>--<path>`` with ``/`` in the path as ``--``, because every repository names its
    weights alike (``model.safetensors``).
    """
    parts = urlsplit(url)
    match = _HF_RESOLVE.match(parts.path) if parts.hostname == "huggingface.co" else None
    name = "--".join([match.group(1), match.group(2), *match.group(3).split("/")]) if match else os.path.basename(parts.path)
    if name in ("", ".", ".."):
        raise ValueError(f"Cannot derive a file name from URL {url!r}: its path must end with the file name.")
    return name


def download_first(
    sources: Sequence[tuple[str, str | None]],
    *,
    progress: bool = True,
    check_hash: bool = True,
    model_dir: str | os.PathLike[str] | None = None,
    retries: int = 4,
    timeout: tuple[float, float] = (10.0, 60.0),
    gated: bool = False,
) -> Path:
    """:func:`download` the first of several ``(url, file_name)`` sources that the server has.

    A source already in the cache is returned at once (the first such, in order). Otherwise each is
    downloaded in turn, moving on only when the server says the file does not exist (HTTP 404 or 410),
    e.g. a repository that publishes ``pytorch_model.bin`` but no ``model.safetensors``. Any other
    failure is raised as it is.

    Args:
        sources: ``(url, file_name)`` pairs in order of preference; ``file_name`` as in :func:`download`.
        gated: the files are in a gated Hugging Face repository (see :func:`download`).
    """
    if not sources:
        raise ValueError("download_first needs at least one source.")
    for url, file_name in sources:
        dst = cached_path(url, model_dir, file_name)
        if dst.is_file():
            return dst
    if len(sources) > 1 and _offline_mode():
        places = "; ".join(f"{url} at {cached_path(url, model_dir, name)}" for url, name in sources)
        raise DownloadError(
            f"None of the files of these weights is in the cache and {ENV_VIDEOZOO_OFFLINE} is on, so nothing was "
            f"downloaded. Fetch one of them on a machine with internet access and put it in place ({places}); "
            f"it is then used as is (or unset {ENV_VIDEOZOO_OFFLINE} to download it)."
        )
    missing = []
    for url, file_name in sources:
        try:
            return download(
                url, progress=progress, check_hash=check_hash, model_dir=model_dir, file_name=file_name,
                retries=retries, timeout=timeout, gated=gated,
            )
        except DownloadError as e:
            if e.status not in (404, 410) or len(sources) == 1:
                raise
            missing.append(url)
    raise DownloadError(f"None of the files of these weights exists on its server (HTTP 404): {', '.join(missing)}.", 404)


def download(
    url: str,
    *,
    progress: bool = True,
    check_hash: bool = True,
    model_dir: str | os.PathLike[str] | None = None,
    file_name: str | None = None,
    retries: int = 4,
    timeout: tuple[float, float] = (10.0, 60.0),
    sha256: str | None = None,
    checkpoint: bool = True,
    gated: bool = False,
) -> Path:
    """Return the cached file for ``url``, downloading it first if it is not cached.

    ``retries`` is the number of extra attempts after timeouts, broken connections,
    5xx/408/429 responses and interrupted transfers (an unknown host name, a refused
    connection or an unreachable network fail at once); ``timeout`` is requests'
    ``(connect, read)`` timeout in seconds.  With ``check_hash`` the sha256 of the
    whole file must start with the hash in its file name, if any, and equal the
    sha256 a Hugging Face server states for it (``X-Linked-Etag``), if any.  A cached
    file is returned as is, without network access or hash check.  ``file_name``
    overrides the cache file's name (see :func:`cached_path`). ``sha256``, where given, is the
    full sha256 the file must have (the files that travel with weights, such as a tokenizer's, state
    theirs); ``checkpoint=False`` is for such files, whose first bytes are not a checkpoint's. A file of
    the Hugging Face Hub is requested with the user's token, if any (see the module's documentation);
    ``gated`` says its repository is gated: without a token it fails at once, before any request, naming
    the page whose terms to accept and the variable to set.

    Raises :class:`~videozoo.errors.DownloadError` if the file cannot be obtained,
    at once if ``VIDEOZOO_OFFLINE`` is on; nothing is then left under the final name.
    """
    dst = cached_path(url, model_dir, file_name)
    if dst.is_file():
        return dst
    if _offline_mode():
        raise DownloadError(
            f"{dst.name} is not in the cache and {ENV_VIDEOZOO_OFFLINE} is on, so it was not downloaded. "
            f"Fetch {url} on a machine with internet access and put the file at {dst}; it is then used as is "
            f"(or unset {ENV_VIDEOZOO_OFFLINE} to download it)."
        )
    repository = hf_repository(url)
    if gated and repository is not None and _hf_token() is None:
        raise DownloadError(_gated_message(url, repository, None, None))
    lock = _lock_path(dst)
    lock.parent.mkdir(parents=True, exist_ok=True)  # and dst's folder
    with FileLock(str(lock)):
        if dst.is_file():  # another process downloaded it while we waited
            return dst
        _download_locked(
            url, dst, progress=progress, check_hash=check_hash, retries=retries, timeout=timeout, sha256=sha256,
            checkpoint=checkpoint,
        )
    return dst


# --------------------------------------------------------------------------- internals


def _download_locked(
    url: str, dst: Path, *, progress: bool, check_hash: bool, retries: int, timeout: tuple[float, float],
    sha256: str | None = None, checkpoint: bool = True,
) -> None:
    """Download ``url`` to ``dst``; the caller holds the lock."""
    partial = dst.with_name(dst.name + ".partial")
    match = HASH_REGEX.search(dst.name)
    hash_prefix = match.group(1) if (check_hash and match and match.group(1)) else None
    linked: str | None = None
    remedy = f"To work offline, download the file by other means and put it at {dst}; it is then used as is."

    # shown once the transfer has run for a moment: a download that fails at once leaves no empty bar
    bar = tqdm(desc=dst.name, file=sys.stderr, unit="B", unit_scale=True, unit_divisor=1024, disable=not progress, delay=0.5)
    with requests.Session() as session, bar:
        attempt = 0
        while True:
            attempt += 1
            try:
                hasher, linked = _attempt(session, url, partial, bar, timeout, remedy, checkpoint)
                bar.refresh()  # the finished transfer is shown, however short
                break
            except _Unreachable as e:
                raise DownloadError(f"Could not download {url}: {e}.{_resume_hint(partial)} {remedy}") from e.__cause__
            except _Restart as e:
                if attempt > retries:
                    raise DownloadError(f"Could not download {url} after {attempt} attempts: {e}. {remedy}") from None
            except _Transient as e:
                if attempt > retries:
                    raise DownloadError(
                        f"Could not download {url} after {attempt} attempts: {e}.{_resume_hint(partial)} {remedy}"
                    ) from e.__cause__
                time.sleep(min(BACKOFF_MAX, BACKOFF_BASE * 2 ** (attempt - 1)))

    try:
        digest = hasher.hexdigest()
        if check_hash and linked is not None and digest != linked:
            raise DownloadError(
                f"The file downloaded from {url} has sha256 {digest}, but the server states {linked} for it "
                f"(X-Linked-Etag); it was discarded. Try again later, or fetch it by hand and check it."
            )
        if check_hash and sha256 is not None and digest != sha256:
            raise DownloadError(
                f"The file downloaded from {url} has sha256 {digest}, but videozoo expects {sha256} for it; it was "
                f"discarded. Try again later, or fetch it by hand and check it."
            )
        if hash_prefix is not None:
            if not digest.startswith(hash_prefix):
                raise DownloadError(
                    f"The file downloaded from {url} has sha256 {digest[: max(len(hash_prefix), 8)]}..., which does "
                    f"not start with {hash_prefix} as its name {dst.name!r} requires; it was discarded. "
                    f"Try again later, or fetch it by hand and check it."
                )
        if checkpoint:
            _check_complete(partial, url)
    except DownloadError:
        partial.unlink(missing_ok=True)
        _sidecar(partial).unlink(missing_ok=True)
        raise
    os.replace(partial, dst)
    _sidecar(partial).unlink(missing_ok=True)


def _attempt(
    session: requests.Session,
    url: str,
    partial: Path,
    bar: tqdm,
    timeout: tuple[float, float],
    remedy: str,
    checkpoint: bool = True,
) -> tuple[Any, str | None]:
    """One HTTP request: resume or (re)start ``partial`` and stream the body into it.

    Returns the sha256 hasher of the whole partial file once it is complete, and the sha256 the server
    states for the file (:func:`_linked_sha256`), if any.
    """
    offset = partial.stat().st_size if partial.is_file() else 0
    kept = _kept_validator(partial, url) if offset else None
    target, credentials = _hub_request(url)
    headers = {"Accept-Encoding": "identity", **credentials}  # identity: offsets and lengths of the file itself
    if offset:
        headers["Range"] = f"bytes={offset}-"
        if kept is not None:
            headers["If-Range"] = kept  # a server whose file changed sends it whole (200) instead of a tail
    try:
        response = session.get(target, headers=headers, stream=True, timeout=timeout)
    except (requests.ConnectionError, requests.Timeout) as e:
        unreachable = _unreachable(e)
        if unreachable is not None:
            raise _Unreachable(unreachable) from e
        raise _Transient(_reason(e)) from e
    except requests.RequestException as e:
        raise DownloadError(f"Could not download {url}: {e}") from e

    with response:
        status = response.status_code
        validator = _validator(response)
        linked = _linked_sha256(response)
        content_range = _parse_content_range(response.headers.get("Content-Range"))
        if offset and status == 416:
            if content_range and content_range[2] == offset and validator == kept:  # the partial is the whole file
                return _hash_file(partial), linked
            _start_over(partial)
            raise _Restart(f"the server refused to resume at byte {offset} (HTTP 416)")
        if status >= 500 or status in (408, 429):
            raise _Transient(f"HTTP {status} {response.reason}")
        repository = hf_repository(url)
        if status in (401, 403) and repository is not None:
            raise DownloadError(_gated_message(url, repository, status, _hf_token()), status)
        if not 200 <= status < 300:
            raise DownloadError(f"{url} returned HTTP {status} {response.reason}. {remedy}", status)

        if status == 206:
            if not offset or content_range is None or content_range[0] != offset:
                _start_over(partial)
                got = response.headers.get("Content-Range", "no Content-Range")
                raise _Restart(f"the server answered a request for bytes {offset}- with {got}")
            if validator != kept:  # the tail may be of another version of the file
                _start_over(partial)
                raise _Restart(
                    f"the file on the server may have changed since the partial download began "
                    f"(validator then: {kept}, now: {validator})"
                )
            total = content_range[2]
            mode = "ab"
        else:  # 200 (also the answer to a Range request from a server that ignores Range): start from zero
            offset = 0
            total = _int_or_none(response.headers.get("Content-Length"))
            mode = "wb"

        bar.reset(total=total)
        bar.update(offset)
        received = 0
        try:
            chunks = _body_chunks(response)
            first: list[bytes] = []
            if mode == "wb":  # inspect the first bytes before anything is written
                head = b""
                for chunk in chunks:
                    head += chunk
                    if len(head) >= HEAD_LEN:
                        break
                if checkpoint and not looks_like_checkpoint(head):
                    kind = response.headers.get("Content-Type", "no Content-Type")
                    raise DownloadError(
                        f"{url} did not return a checkpoint but something starting with {describe_head(head)} "
                        f"({kind}); this is typically an error or login page from a proxy or captive portal, "
                        f"and nothing was saved. {remedy}"
                    )
                first.append(head)
            hasher = hashlib.sha256()
            if mode == "ab":
                _hash_file(partial, hasher)
            with open(partial, mode) as f:
                if mode == "wb":  # after the truncation: a kept validator always describes the bytes kept
                    _keep_validator(partial, url, validator)
                for chunk in _chain(first, chunks):
                    f.write(chunk)
                    hasher.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
                f.flush()
                os.fsync(f.fileno())
        except (requests.RequestException, urllib3.exceptions.HTTPError) as e:  # broken or timed-out transfer
            of = f" of the {total} bytes the server announced" if total is not None else " bytes"
            raise _Transient(f"the transfer stopped after {offset + received}{of} ({_reason(e)})") from e

    size = offset + received
    if total is not None and size != total:
        raise _Transient(f"received {size} bytes but the server announced {total} (Content-Length)")
    return hasher, linked


def hf_repository(url: str) -> str | None:
    """``"<org>/<repo>"`` for a file of the Hugging Face Hub (``https://huggingface.co/<org>/<repo>/resolve/
    <revision>/<path>``), else ``None``: the only URLs the user's token is sent with."""
    parts = urlsplit(url)
    if parts.scheme != "https" or parts.hostname != "huggingface.co" or parts.port is not None:
        return None
    match = _HF_RESOLVE.match(parts.path)
    return f"{match.group(1)}/{match.group(2)}" if match else None


def _hf_token() -> tuple[str, str] | None:
    """``(variable, token)``: the first of :data:`ENV_HF_TOKENS` that holds a token (line breaks and
    surrounding blanks removed, as huggingface_hub reads it), or ``None``."""
    for variable in ENV_HF_TOKENS:
        token = os.environ.get(variable, "").replace("\r", "").replace("\n", "").strip()
        if token:
            return variable, token
    return None


def _hub_request(url: str) -> tuple[str, dict[str, str]]:
    """The URL to request for ``url`` and the headers that only this request carries: for a file of the
    Hub, the same path on ``HF_ENDPOINT``'s server if that is set, and the user's token as
    ``Authorization: Bearer``; any other URL as it is, with nothing."""
    if hf_repository(url) is None:
        return url, {}
    endpoint = os.environ.get(ENV_HF_ENDPOINT, "").strip().rstrip("/")
    target = endpoint + url[len(HF_HUB) :] if endpoint else url
    token = _hf_token()
    return target, ({"Authorization": f"Bearer {token[1]}"} if token else {})


def _gated_message(url: str, repository: str, status: int | None, token: tuple[str, str] | None) -> str:
    """What to do about a file of a gated (or private) Hub repository; names the variable, never the token."""
    page = f"{HF_HUB}/{repository}"
    steps = (
        f"Log in at {HF_HUB}, accept the repository's conditions on its page, {page}, create an access token "
        f"({HF_HUB}/settings/tokens; a read token will do) and set it in the environment as HF_TOKEN "
        f"(HUGGING_FACE_HUB_TOKEN is read too), then run again."
    )
    if status is None:
        return f"{url} is in a gated repository of the Hugging Face Hub, and no token is set ({', '.join(ENV_HF_TOKENS)}). {steps}"
    if token is None:
        return f"{url} returned HTTP {status}: {repository} is a gated (or private) repository of the Hugging Face Hub. {steps}"
    return (
        f"{url} returned HTTP {status} to the token in {token[0]}: the Hub does not give that account access to "
        f"{repository}. Accept the repository's conditions on {page} while logged in with the account the token "
        f"belongs to (a gated repository may also wait for its authors' approval), and check that the token "
        f"is valid and may read gated repositories ({HF_HUB}/settings/tokens)."
    )


def _body_chunks(response: requests.Response) -> Iterator[bytes]:
    """The body as it arrives, so that a broken transfer keeps every byte received.

    (``iter_content`` on urllib3 2 drops the bytes of the chunk being read when the
    connection breaks, which would make small files never resume.)
    """
    raw = response.raw
    read1 = getattr(raw, "read1", None)
    chunk = b""
    if read1 is not None:
        try:
            chunk = read1(CHUNK_SIZE, decode_content=True)
        except NotImplementedError:
            read1 = None
    if read1 is None:  # urllib3 < 2.1: read() returns short data; the size check catches it
        yield from response.iter_content(CHUNK_SIZE)
        return
    while chunk:
        yield chunk
        chunk = read1(CHUNK_SIZE, decode_content=True)


def _chain(first: list[bytes], rest: Iterator[bytes]) -> Iterator[bytes]:
    yield from first
    yield from rest


def _check_complete(partial: Path, url: str) -> None:
    """Refuse a finished download that is not a checkpoint or is a truncated zip archive."""
    with open(partial, "rb") as f:
        head = f.read(HEAD_LEN)
    if not looks_like_checkpoint(head):
        raise DownloadError(
            f"{url} did not return a checkpoint but something starting with {describe_head(head)}; nothing was saved."
        )
    if head.startswith(ZIP_MAGIC):
        try:
            with zipfile.ZipFile(partial):
                pass
        except (zipfile.BadZipFile, OSError) as e:
            raise DownloadError(
                f"The file downloaded from {url} is an incomplete or damaged zip archive ({e}); "
                f"it was discarded. Try again."
            ) from e


def _linked_sha256(response: requests.Response) -> str | None:
    """The sha256 Hugging Face states for a large (LFS) file: ``X-Linked-Etag`` on the redirect to its
    storage (or on the response itself); ``None`` where no response carries one as a sha256."""
    for r in [*response.history, response]:
        value = r.headers.get("X-Linked-Etag", "").strip()
        value = value[2:] if value.startswith("W/") else value
        value = value.strip('"').lower()
        if _SHA256_HEX.match(value):
            return value
    return None


def _hash_file(path: Path, hasher: Any = None) -> Any:
    hasher = hasher if hasher is not None else hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK_SIZE), b""):
            hasher.update(block)
    return hasher


def _start_over(partial: Path) -> None:
    """Empty ``partial`` and forget its validator: the next attempt downloads from byte 0."""
    if partial.exists():
        with open(partial, "wb"):
            pass
    _sidecar(partial).unlink(missing_ok=True)


def _sidecar(partial: Path) -> Path:
    """``<file>.partial.json``: the URL and validator of the response that ``partial`` holds the start of."""
    return partial.with_name(partial.name + ".json")


def _validator(response: requests.Response) -> str | None:
    """The response's strong ``ETag``, else its ``Last-Modified``: what ``If-Range`` may carry."""
    etag = response.headers.get("ETag")
    if etag and not etag.startswith("W/"):
        return etag
    return response.headers.get("Last-Modified") or None


def _keep_validator(partial: Path, url: str, validator: str | None) -> None:
    """Save ``validator`` next to ``partial`` (atomically), or remove the old one if there is none."""
    sidecar = _sidecar(partial)
    if validator is None:
        sidecar.unlink(missing_ok=True)
        return
    tmp = sidecar.with_name(sidecar.name + ".tmp")
    tmp.write_text(json.dumps({"url": url, "validator": validator}), encoding="utf-8")
    os.replace(tmp, sidecar)


def _kept_validator(partial: Path, url: str) -> str | None:
    """The validator saved with ``partial`` when it was started from ``url``; None if none (or unreadable)."""
    try:
        kept = json.loads(_sidecar(partial).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(kept, dict) or kept.get("url") != url or not isinstance(kept.get("validator"), str):
        return None
    return kept["validator"]


def _resume_hint(partial: Path) -> str:
    return " Run again to resume it." if partial.is_file() and partial.stat().st_size else ""


def _parse_content_range(value: str | None) -> tuple[int | None, int | None, int | None] | None:
    """``bytes 10-99/100`` -> (10, 99, 100); ``bytes */100`` -> (None, None, 100)."""
    if not value:
        return None
    m = _CONTENT_RANGE.fullmatch(value.strip())
    if not m:
        return None
    start, end, total = m.groups()
    return (
        int(start) if start is not None else None,
        int(end) if end is not None else None,
        int(total) if total not in (None, "*") else None,
    )


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


_REASONS = (
    ("No route to host", "no route to host"),
    ("Connection reset", "connection reset"),
    ("IncompleteRead", "connection closed early"),
    ("timed out", "timed out"),
)


def _reason(error: BaseException) -> str:
    """A one-line cause for a requests/urllib3 exception (they nest long reprs)."""
    text = str(error)
    for marker, reason in _REASONS:
        if marker in text:
            return f"{type(error).__name__}: {reason}"
    return f"{type(error).__name__}: {text[:200]}"


def _unreachable(error: BaseException) -> str | None:
    """Why ``error`` shows that the server cannot be reached at all, or None if a retry may help.

    Looks through everything ``error`` wraps (requests and urllib3 nest the socket error
    as cause, context, ``reason`` or argument) for a failed name lookup, ECONNREFUSED or
    ENETUNREACH.  Timeouts are never such a proof.
    """
    if isinstance(error, requests.Timeout):
        return None
    seen: set[int] = set()
    stack = [error]
    while stack:
        e = stack.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, socket.gaierror):
            return f"host name not found ({e.strerror or e}): this machine is offline, or the name is wrong"
        if isinstance(e, OSError) and e.errno == errno.ECONNREFUSED:
            return "connection refused: nothing accepts connections there (or a firewall rejects them)"
        if isinstance(e, OSError) and e.errno == errno.ENETUNREACH:
            return "network unreachable: this machine seems to be offline"
        wrapped = (e.__cause__, e.__context__, getattr(e, "reason", None), *e.args)
        stack.extend(w for w in wrapped if isinstance(w, BaseException))
    return None


def _offline_mode() -> bool:
    return os.environ.get(ENV_VIDEOZOO_OFFLINE, "").strip().lower() in ("1", "true", "yes", "on")
