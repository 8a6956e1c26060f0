"""Exception types raised by videozoo.

Every videozoo error derives from :class:`VideozooError`, so ``except VideozooError``
catches all of them; each also derives from the matching built-in type so code
written against plain Python exceptions keeps working.
"""

from __future__ import annotations

__all__ = ["VideozooError", "DownloadError", "CheckpointError"]


class VideozooError(Exception):
    """Base class of all videozoo errors."""


class DownloadError(VideozooError, OSError):
    """A checkpoint could not be downloaded, or what the server sent was refused."""


class CheckpointError(VideozooError, RuntimeError):
    """A checkpoint file is truncated, corrupt, or would need arbitrary code to load."""
