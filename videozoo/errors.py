"""Exception types raised by videozoo.

Every videozoo error derives from :class:`VideozooError`, so ``except VideozooError``
catches all of them; each also derives from the matching built-in type so code
written against plain Python exceptions keeps working.
"""

from __future__ import annotations

__all__ = ["VideozooError", "DownloadError", "CheckpointError", "VideoDecodeError", "ExportError"]


class VideozooError(Exception):
    """Base class of all videozoo errors."""


class DownloadError(VideozooError, OSError):
    """A checkpoint could not be downloaded, or what the server sent was refused.

    ``status`` is the HTTP status that ended the download when the server answered with an error
    (404: no such file), else ``None``.
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status

    def __reduce__(self):  # keep ``status`` across pickling
        return (type(self), (str(self), self.status))


class CheckpointError(VideozooError, RuntimeError):
    """A checkpoint file is truncated, corrupt, or would need arbitrary code to load."""


class VideoDecodeError(VideozooError, ValueError):
    """A video file is missing, has no video stream, or cannot be decoded (corrupt or truncated).

    ``path`` is the file concerned (``None`` for in-memory input); the message names it too.
    """

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path

    def __reduce__(self):  # keep ``path`` across pickling (DataLoader workers)
        return (type(self), (str(self), self.path))


class ExportError(VideozooError, RuntimeError):
    """A model could not be exported, or the exported graph's outputs differ from eager beyond the tolerance.

    ``max_abs_diff`` is the largest difference found when verification failed, else ``None``.
    """

    def __init__(self, message: str, max_abs_diff: float | None = None) -> None:
        super().__init__(message)
        self.max_abs_diff = max_abs_diff

    def __reduce__(self):
        return (type(self), (str(self), self.max_abs_diff))
